//! The slurm backend on a real throwaway one-node cluster (munged, slurmctld, slurmd started
//! by the test, see `mlres_testkit::slurm`): a full campaign with budgets in jobs and
//! GPU-hours, `max_concurrent`, exit codes, the time limit, cancel on `loop stop`, resume after
//! SIGKILL, preemption, a foreign job carrying the campaign's marker, a requeued job, a job
//! lengthened past its reservation, and the canary sweep over everything mlres wrote (each test's [`Env`] is swept when it ends). Without Slurm
//! installed the tests say so loudly and pass, except under CI, where they fail.

use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use mlres_testkit::slurm::{SlurmCluster, cluster_or_skip};
use serde_json::Value;

use crate::support::{Env, stderr};

/// Hang guard for waits (not a speed check).
const WAIT: Duration = Duration::from_secs(240);
/// A granted secret (the job gets it; logs show it redacted).
const GRANTED: &str = "mlresCANARY-granted-5b1c9e0d77";
/// A value in the loop's environment that no job may see.
const LOOP_ONLY: &str = "mlresCANARY-loop-only-3e8a41f2";

struct Spec<'a> {
    max_jobs: u32,
    max_concurrent: u32,
    values: &'a str,
    script: &'a str,
    timeout: &'a str,
    gpus: u32,
    max_gpu_hours: &'a str,
    cpus: usize,
    memory: &'a str,
    extra_job: &'a str,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Spec {
            max_jobs: 3,
            max_concurrent: 1,
            values: "[1, 2, 3]",
            script: "echo score={x}",
            timeout: "1m",
            gpus: 0,
            max_gpu_hours: "10",
            cpus: 1,
            memory: "100MB",
            extra_job: "",
        }
    }
}

impl Spec<'_> {
    fn program(&self) -> String {
        format!(
            r#"# slurm test campaign

## Goal
Maximise score on the cluster.

## Budget envelope
```yaml
max_jobs: {max_jobs}
max_walltime: 4h
allowed_flavors: [cpu-basic]
max_timeout: 10m
max_concurrent: {max_concurrent}
backends: [slurm]
partitions: [debug, other]
max_gpus_per_job: 2
max_gpu_hours: {gpu_hours}
```

## Objective
```yaml
metric: score
goal: maximize
max_consecutive_failures: 10
```

## Job
```yaml
backend: slurm
command: ["/bin/sh", "-c", "{script}"]
timeout: {timeout}
gpus: {gpus}
secrets: [MLRES_TEST_GRANTED]
limits:
  memory: {memory}
slurm:
  partition: debug
  cpus: {cpus}
{extra_job}
```

## Search space
```yaml
method: grid
parameters:
  x:
    values: {values}
```
"#,
            max_jobs = self.max_jobs,
            max_concurrent = self.max_concurrent,
            gpu_hours = self.max_gpu_hours,
            script = self.script,
            timeout = self.timeout,
            gpus = self.gpus,
            cpus = self.cpus,
            memory = self.memory,
            extra_job = self.extra_job,
            values = self.values,
        )
    }
}

struct Sl {
    env: Env,
    cluster: SlurmCluster,
    /// More environment for every mlres command (set after the defaults).
    extra: Vec<(String, String)>,
}

fn start(test: &str, spec: &Spec) -> Option<Sl> {
    let cluster = cluster_or_skip(test)?;
    let env = Env::new();
    env.write_program(&spec.program());
    env.approve();
    Some(Sl {
        env,
        cluster,
        extra: Vec::new(),
    })
}

impl Sl {
    fn cmd(&self) -> std::process::Command {
        let mut c = self.env.cmd();
        c.env("SLURM_CONF", self.cluster.conf())
            .env("MLRES_SLURM_BIN_DIR", &self.cluster.bin_dir)
            .env("MLRES_SLURM_RECONCILE_SECS", "0.2")
            .env("MLRES_SLURM_POLL_MS", "200")
            .env("MLRES_TEST_GRANTED", GRANTED)
            .env("LOOP_ONLY", LOOP_ONLY);
        for (k, v) in &self.extra {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd().args(args).output().unwrap();
        self.env.record(args, &out);
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "mlres {args:?} failed ({:?}):\nstdout: {}\nstderr: {}\ncluster:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            stderr(&out),
            self.cluster.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let s = self.ok(args);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {s}"))
    }

    fn status(&self) -> Value {
        self.json(&["loop", "status", "--json"])
    }

    /// `exp status <id> --json` (with the error text).
    fn exp(&self, e: &Value) -> Value {
        let id = e["id"].as_i64().unwrap().to_string();
        self.json(&["exp", "status", &id, "--json"])
    }

    fn spawn_loop(&self) -> Child {
        self.cmd()
            .args(["loop", "run", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn finish_loop(&self, child: Child, label: &str) -> Output {
        let out = child.wait_with_output().unwrap();
        self.env.record(&["loop", "run", label], &out);
        out
    }

    fn events(&self) -> Vec<Value> {
        self.json(&["ledger", "events", "--json", "--limit", "1000"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Jobs in the queue: (id, state, comment).
    fn queue(&self) -> Vec<(String, String, String)> {
        self.cluster
            .run("squeue", &["-h", "-a", "-o", "%i|%T|%k"])
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.splitn(3, '|').collect();
                (f.len() == 3).then(|| (f[0].into(), f[1].into(), f[2].into()))
            })
            .collect()
    }

    fn wait_until(&self, what: &str, mut ok: impl FnMut(&Sl) -> bool) {
        let start = Instant::now();
        while !ok(self) {
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting for {what}; queue {:?}\n{}",
                self.queue(),
                self.cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn attempt_dirs(&self) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let Ok(camps) = std::fs::read_dir(self.env.state.join("jobs")) else {
            return out;
        };
        for c in camps.flatten() {
            for a in std::fs::read_dir(c.path()).into_iter().flatten().flatten() {
                if a.path().join("slurmjob.json").exists() {
                    out.push(a.path());
                }
            }
        }
        out.sort();
        out
    }

    fn stdout_of(&self, exp: &Value) -> String {
        let id = exp["id"].as_i64().unwrap();
        self.attempt_dirs()
            .into_iter()
            .filter(|d| {
                d.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("e{id}-"))
            })
            .map(|d| std::fs::read_to_string(d.join("stdout.log")).unwrap_or_default())
            .collect()
    }
}

fn exps(status: &Value) -> Vec<Value> {
    status["experiments"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn kill9(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

#[test]
fn a_full_campaign_runs_on_the_cluster_within_jobs_and_gpu_hours() {
    let Some(s) = start(
        "slurm full campaign",
        &Spec {
            max_jobs: 4,
            max_concurrent: 2,
            values: "[0, 1, 2, 3, 4, 5]",
            script: "echo score={x}; echo granted=$MLRES_TEST_GRANTED; \
                     echo loop_only=${{LOOP_ONLY:-absent}}; echo gpus=${{SLURM_GPUS_ON_NODE:-none}}; \
                     test {x} -ne 2 || exit 3",
            gpus: 1,
            max_gpu_hours: "0.5",
            ..Spec::default()
        },
    ) else {
        return;
    };
    let out = s.run(&["loop", "run", "--json"]);
    assert!(
        out.status.success(),
        "loop run failed: {}\n{}",
        stderr(&out),
        s.cluster.logs()
    );
    let status = s.status();
    let es = exps(&status);
    // max_jobs: 4 of the 6 grid points ran.
    assert_eq!(es.len(), 4, "{status}");
    assert_eq!(status["budget"]["jobs"]["used"], 4);
    for e in &es {
        let x = e["config"]["x"].as_i64().unwrap();
        let log = s.stdout_of(e);
        if x == 2 {
            assert_eq!(e["status"], "failed", "{e}");
            let full = s.exp(e);
            let err = full["error"].as_str().unwrap_or_default();
            assert!(err.contains("exit code 3"), "{full}");
        } else {
            assert_eq!(e["status"], "completed", "{e}\n{log}");
            assert_eq!(e["metric"].as_f64(), Some(x as f64), "{e}");
        }
        // The granted secret reached the job and was redacted from its log; nothing of the
        // loop's own environment did; the job got one GPU.
        assert!(
            log.contains("granted=[REDACTED:MLRES_TEST_GRANTED]"),
            "{log}"
        );
        assert!(log.contains("loop_only=absent"), "{log}");
        assert!(log.contains("gpus=1"), "{log}");
    }
    // The raw Slurm output files were removed once copied; the script is mlres' own.
    for d in s.attempt_dirs() {
        assert!(!d.join("slurm/out.log").exists(), "{}", d.display());
        let script = std::fs::read_to_string(d.join("slurm/job.sh")).unwrap();
        assert!(script.starts_with("#!/bin/sh\n"), "{script}");
        assert!(
            script.contains("exec '/bin/sh' '-c' 'echo score="),
            "{script}"
        );
    }
    // GPU-hours: 1 GPU × the walltime Slurm reported, far below the reservation of 4 × 1 min.
    let gh = &status["budget"]["gpu_hours"];
    let used = gh["used"].as_f64().unwrap();
    let wall = status["budget"]["walltime_secs"]["used"].as_f64().unwrap();
    assert!((used - wall / 3600.0).abs() < 1e-9, "{gh} vs {wall}");
    assert!(
        used < 4.0 * 60.0 / 3600.0,
        "settled to elapsed, not the limit: {gh}"
    );
    assert_eq!(gh["max"].as_f64(), Some(0.5));
    let human = s.ok(&["loop", "status"]);
    assert!(
        human.contains("gpu-hours:") && human.contains("/0.5 (1 GPU(s) per job"),
        "{human}"
    );
    // Every job was recorded with its Slurm id; the comments carried the markers.
    let events = s.events();
    let remote: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "remote_job")
        .collect();
    assert!(remote.len() >= 4, "{events:?}");
    // max_concurrent 2: never more than two in flight, according to the ledger's events.
    let mut now = 0i32;
    let mut most = 0;
    for e in &events {
        match e["kind"].as_str().unwrap_or("") {
            "submitted" => now += 1,
            "finished" => now -= 1,
            _ => {}
        }
        most = most.max(now);
    }
    assert!(most <= 2, "at most 2 in flight, saw {most}");
    // Doctor sees the cluster.
    let d = s.json(&["doctor", "--json"]);
    assert_eq!(d["slurm"]["available"], true, "{d}");
    assert!(
        d["slurm"]["version"].as_str().unwrap().contains("slurm"),
        "{d}"
    );
    assert_eq!(d["slurm"]["accounting"], false, "{d}");
    let parts: Vec<&str> = d["slurm"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(parts.contains(&"debug") && parts.contains(&"other"), "{d}");
}

#[test]
fn a_job_over_the_gpu_hours_budget_is_refused_before_anything_is_submitted() {
    let Some(s) = start(
        "slurm gpu budget refusal",
        &Spec {
            gpus: 2,
            // 2 GPUs × 1 min = 0.0333 GPU-hours; the envelope allows 0.03.
            max_gpu_hours: "0.03",
            ..Spec::default()
        },
    ) else {
        return;
    };
    let out = s.run(&[
        "exp",
        "submit",
        "--config",
        "x=1",
        "--hypothesis",
        "h",
        "--json",
    ]);
    assert!(!out.status.success(), "must be refused");
    let err = stderr(&out);
    assert!(err.contains("max_gpu_hours"), "{err}");
    assert!(s.queue().is_empty(), "nothing reached Slurm");
    let st = s.status();
    assert!(exps(&st).is_empty(), "{st}");
}

#[test]
fn a_job_killed_by_its_time_limit_is_timed_out() {
    let Some(s) = start(
        "slurm time limit",
        &Spec {
            max_jobs: 1,
            values: "[1]",
            script: "echo started; sleep 600; echo score={x}",
            timeout: "1m",
            ..Spec::default()
        },
    ) else {
        return;
    };
    // The campaign ends without any result (its exit code says so); the job is timed out.
    let out = s.run(&["loop", "run", "--json"]);
    assert!(stderr(&out).contains("exp 1 timed_out"), "{}", stderr(&out));
    let st = s.status();
    let e = &exps(&st)[0];
    assert_eq!(e["status"], "timed_out", "{e}");
    let full = s.exp(e);
    assert!(
        full["error"]
            .as_str()
            .unwrap_or_default()
            .contains("time limit"),
        "{full}"
    );
    assert!(s.stdout_of(e).contains("started"));
    // Settled to what Slurm reported, at least the minute it ran.
    assert!(
        st["budget"]["walltime_secs"]["used"].as_u64().unwrap() >= 60,
        "{st}"
    );
}

#[test]
fn loop_stop_cancels_jobs_and_foreign_jobs_with_the_marker_are_cancelled() {
    let Some(s) = start(
        "slurm stop and foreign",
        &Spec {
            max_jobs: 2,
            values: "[1, 2]",
            script: "echo started; sleep 300; echo score={x}",
            ..Spec::default()
        },
    ) else {
        return;
    };
    let child = s.spawn_loop();
    s.wait_until("our job running", |s| {
        s.queue()
            .iter()
            .any(|(_, st, c)| st == "RUNNING" && c.starts_with("mlres:"))
    });
    let campaign = s.status()["campaign"]["id"].as_str().unwrap().to_string();
    // Someone submits a job carrying this campaign's marker, and someone else an ordinary job.
    let foreign = s.cluster.submit_script(
        &[
            &format!("--comment=mlres:campaign={campaign},exp=999,attempt=1"),
            "--time=5",
        ],
        "#!/bin/sh\nsleep 300\n",
    );
    let bystander = s.cluster.submit_script(
        &["--time=5", "--partition=other", "--mem=100M"],
        "#!/bin/sh\nsleep 300\n",
    );
    s.wait_until("the foreign job cancelled", |s| {
        s.cluster.job_state(&foreign).as_deref() == Some("CANCELLED")
    });
    let ev = s.events();
    let rec = ev
        .iter()
        .find(|e| e["kind"] == "remote_job_cancelled" && e["payload"]["job_id"] == foreign.as_str())
        .unwrap_or_else(|| panic!("no record of the cancel: {ev:?}"));
    assert!(
        rec["payload"]["reason"]
            .as_str()
            .unwrap()
            .contains("experiment 999 is unknown to the ledger"),
        "{rec}"
    );
    let by = s.cluster.job_state(&bystander).unwrap_or_default();
    assert!(
        by == "RUNNING" || by == "PENDING",
        "a job without marker is left alone: {by}"
    );
    // The operator stops the campaign: the running job is cancelled on Slurm.
    s.ok(&["loop", "stop", "--reason", "enough"]);
    let out = s.finish_loop(child, "stopped");
    assert!(out.status.success(), "{}", stderr(&out));
    let st = s.status();
    let es = exps(&st);
    assert_eq!(es.len(), 1, "{st}");
    assert_eq!(es[0]["status"], "cancelled", "{st}");
    let ours: Vec<_> = s
        .queue()
        .into_iter()
        .filter(|(_, st, c)| c.starts_with("mlres:") && (st == "RUNNING" || st == "PENDING"))
        .collect();
    assert!(ours.is_empty(), "{ours:?}");
}

#[test]
fn a_loop_killed_while_jobs_run_and_wait_re_attaches_to_them() {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let Some(s) = start(
        "slurm resume",
        &Spec {
            max_jobs: 2,
            max_concurrent: 2,
            values: "[1, 2]",
            // Each job takes every CPU of the node: one runs while the other waits.
            script: "echo started {x}; sleep 15; echo score={x}",
            cpus,
            ..Spec::default()
        },
    ) else {
        return;
    };
    let mut child = s.spawn_loop();
    s.wait_until("one job running and one pending", |s| {
        let q = s.queue();
        q.iter().any(|(_, st, _)| st == "RUNNING") && q.iter().any(|(_, st, _)| st == "PENDING")
    });
    let before: Vec<String> = s.queue().into_iter().map(|(id, _, _)| id).collect();
    // SIGKILL the loop and every supervisor: nothing of mlres is left watching.
    kill9(child.id());
    let _ = child.wait();
    for d in s.attempt_dirs() {
        if let Ok(p) = std::fs::read_to_string(d.join("supervisor.pid")) {
            kill9(p.trim().parse().unwrap());
        }
    }
    let out = s.run(&["loop", "run", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let st = s.status();
    let es = exps(&st);
    assert_eq!(es.len(), 2, "{st}");
    for e in &es {
        assert_eq!(e["status"], "completed", "{e}");
        let x = e["config"]["x"].as_i64().unwrap();
        assert!(
            s.stdout_of(e).contains(&format!("started {x}")),
            "logs kept"
        );
    }
    let ev = s.events();
    let reattached = ev
        .iter()
        .filter(|e| e["kind"] == "remote_job_reattached")
        .count();
    assert_eq!(reattached, 2, "{ev:?}");
    // The same two Slurm jobs, never submitted again.
    let mut ids: Vec<String> = ev
        .iter()
        .filter(|e| e["kind"] == "remote_job")
        .filter_map(|e| e["payload"]["job_id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids.dedup();
    let mut before = before;
    before.sort();
    assert_eq!(ids, before);
}

#[test]
fn a_requeued_job_is_followed_as_the_same_attempt() {
    let Some(s) = start(
        "slurm requeue",
        &Spec {
            max_jobs: 1,
            values: "[7]",
            script: "echo run $SLURM_RESTART_COUNT; sleep 10; echo {x} > result.txt; echo score={x}",
            extra_job: "outputs: [result.txt]",
            ..Spec::default()
        },
    ) else {
        return;
    };
    let child = s.spawn_loop();
    let mut id = String::new();
    s.wait_until("the job running", |s| {
        if let Some((i, _, _)) = s.queue().into_iter().find(|(_, st, _)| st == "RUNNING") {
            id = i;
            true
        } else {
            false
        }
    });
    s.cluster.run("scontrol", &["requeue", &id]);
    // Slurm holds a requeued job back for about two minutes; let it start again now.
    s.wait_until("the job pending again", |s| {
        s.cluster.job_state(&id).as_deref() == Some("PENDING")
    });
    let _ = s
        .cluster
        .cmd("scontrol")
        .args(["update", &format!("JobId={id}"), "StartTime=now"])
        .output();
    let out = s.finish_loop(child, "requeue");
    assert!(out.status.success(), "{}", stderr(&out));
    let st = s.status();
    let es = exps(&st);
    assert_eq!(es.len(), 1, "{st}");
    assert_eq!(es[0]["status"], "completed", "{st}");
    assert_eq!(es[0]["metric"].as_f64(), Some(7.0));
    let log = s.stdout_of(&es[0]);
    assert!(log.contains("Slurm requeued job"), "{log}");
    assert!(
        log.contains("run 1"),
        "the second run's output is there: {log}"
    );
    assert_eq!(s.attempt_dirs().len(), 1, "one attempt");
    // The job's declared outputs come back from its work dir, as a local job's do.
    let id = es[0]["id"].as_i64().unwrap().to_string();
    s.ok(&["exp", "artifacts", &id, "--json"]);
    let got =
        std::fs::read_to_string(s.env.project.join(format!("artifacts/e{id}/result.txt"))).unwrap();
    assert_eq!(got.trim(), "7");
}

#[test]
fn a_job_running_past_its_reservation_is_cancelled_and_recorded() {
    let Some(s) = start(
        "slurm overrun",
        &Spec {
            max_jobs: 1,
            values: "[1]",
            script: "echo started; sleep 600; echo score={x}",
            timeout: "1m",
            ..Spec::default()
        },
    ) else {
        return;
    };
    let child = s
        .cmd()
        .env("MLRES_SLURM_OVERRUN_GRACE_SECS", "5")
        .args(["loop", "run", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut id = String::new();
    s.wait_until("the job running", |s| {
        match s.queue().into_iter().find(|(_, st, _)| st == "RUNNING") {
            Some((i, _, _)) => {
                id = i;
                true
            }
            None => false,
        }
    });
    // Someone with rights on the cluster lengthens the job past what the envelope reserved.
    s.cluster.run(
        "scontrol",
        &["update", &format!("JobId={id}"), "TimeLimit=10"],
    );
    let out = s.finish_loop(child, "overrun");
    let ev = s.events();
    let rec = ev
        .iter()
        .find(|e| e["kind"] == "remote_job_cancelled" && e["payload"]["job_id"] == id.as_str())
        .unwrap_or_else(|| panic!("no cancel recorded: {ev:?}\n{}", stderr(&out)));
    assert!(
        rec["payload"]["reason"]
            .as_str()
            .unwrap()
            .contains("envelope breach"),
        "{rec}"
    );
    assert_eq!(s.cluster.job_state(&id).as_deref(), Some("CANCELLED"));
    let st = s.status();
    assert_eq!(exps(&st)[0]["status"], "cancelled", "{st}");
}

#[test]
fn a_preempted_job_is_a_failure_the_failure_streak_sees() {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let Some(s) = start(
        "slurm preemption",
        &Spec {
            max_jobs: 1,
            values: "[1]",
            script: "echo started; sleep 300; echo score={x}",
            cpus,
            ..Spec::default()
        },
    ) else {
        return;
    };
    let child = s.spawn_loop();
    s.wait_until("our job running", |s| {
        s.queue()
            .iter()
            .any(|(_, st, c)| st == "RUNNING" && c.starts_with("mlres:"))
    });
    // A job in a partition of higher priority needs the whole node: ours is preempted.
    let urgent = s.cluster.submit_script(
        &[
            "--partition=urgent",
            &format!("--cpus-per-task={cpus}"),
            "--mem=100M",
            "--time=1",
        ],
        "#!/bin/sh\nsleep 2\n",
    );
    let out = s.finish_loop(child, "preempted");
    let st = s.status();
    let e = &exps(&st)[0];
    assert_eq!(e["status"], "failed", "{e}\n{}", stderr(&out));
    let full = s.exp(e);
    assert!(
        full["error"]
            .as_str()
            .unwrap_or_default()
            .contains("preempted"),
        "{full}"
    );
    // It counts as a failure in the campaign (not a cancel by the operator).
    assert_eq!(st["campaign"]["status"], "finished", "{st}");
    assert!(s.cluster.job_state(&urgent).is_some());
}

#[test]
fn a_job_slurm_refuses_is_a_start_failure_with_slurms_reason() {
    let Some(s) = start(
        "slurm refusal",
        &Spec {
            max_jobs: 1,
            values: "[1]",
            // More memory than the node has: sbatch refuses the job outright.
            memory: "64GB",
            ..Spec::default()
        },
    ) else {
        return;
    };
    let out = s.run(&[
        "exp",
        "submit",
        "--config",
        "x=1",
        "--hypothesis",
        "h",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "reserved and launched: {}",
        stderr(&out)
    );
    let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"]
        .as_i64()
        .unwrap()
        .to_string();
    // `exp wait` says it failed through its exit code, and prints the experiment.
    let out = s.run(&["exp", "wait", &id, "--json"]);
    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["status"], "start_failed", "{e}");
    let full = s.json(&["exp", "status", &id, "--json"]);
    let err = full["error"].as_str().unwrap_or_default();
    assert!(err.contains("Slurm refused the job"), "{full}");
    assert!(s.queue().is_empty(), "nothing is queued");
    // Nothing ran: no walltime or GPU time was spent.
    let st = s.status();
    assert_eq!(st["budget"]["walltime_secs"]["used"], 0, "{st}");
}

#[test]
fn a_job_no_node_can_run_is_cancelled_as_a_start_failure() {
    let Some(s) = start(
        "slurm impossible job",
        &Spec {
            max_jobs: 1,
            values: "[1]",
            // More CPUs than any node has: Slurm accepts it and leaves it pending for ever.
            cpus: 4000,
            ..Spec::default()
        },
    ) else {
        return;
    };
    let out = s.run(&[
        "exp",
        "submit",
        "--config",
        "x=1",
        "--hypothesis",
        "h",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let out = s.run(&["exp", "wait", &id, "--json"]);
    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["status"], "start_failed", "{e}");
    let full = s.json(&["exp", "status", &id, "--json"]);
    let err = full["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("cannot run") && err.contains("PartitionConfig"),
        "{full}"
    );
    let pending: Vec<_> = s
        .queue()
        .into_iter()
        .filter(|(_, st, _)| st == "PENDING" || st == "RUNNING")
        .collect();
    assert!(pending.is_empty(), "{pending:?}");
}

// ---- The slurmrestd path (JWT over loopback TCP) ----

/// A bad slurmrestd token that the canary sweep looks for.
const BAD_TOKEN: &str = "mlresCANARY-not-a-jwt-7d2e91";

/// A cluster with slurmrestd, and mlres configured to use it. `sbatch` and `scancel` in mlres'
/// `MLRES_SLURM_BIN_DIR` are replaced by scripts that fail loudly, so a job that runs (or is
/// cancelled) can only have gone through slurmrestd.
fn start_rest(test: &str, spec: &Spec, token: Option<&str>) -> Option<(Sl, String)> {
    if let Some(why) = mlres_testkit::slurm::slurmrestd_missing() {
        if std::env::var_os("CI").is_some() {
            panic!("{test}: {why} (CI is set, so slurmrestd must be present)");
        }
        eprintln!("\n!!!!! SKIPPED {test}: {why} !!!!!\n");
        return None;
    }
    let cluster = SlurmCluster::start_with_rest().unwrap_or_else(|e| panic!("{test}: {e}"));
    let env = Env::new();
    env.write_program(&spec.program());
    env.approve();
    let bin = env.path().join("slurm-bin");
    std::fs::create_dir_all(&bin).unwrap();
    for p in ["squeue", "scontrol", "sacct", "sinfo"] {
        std::os::unix::fs::symlink(cluster.bin_dir.join(p), bin.join(p)).unwrap();
    }
    for p in ["sbatch", "scancel"] {
        std::fs::write(
            bin.join(p),
            format!(
                "#!/bin/sh\necho \"{p} must not be used on the slurmrestd path\" >&2\nexit 99\n"
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join(p), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let real = cluster.token();
    let url = cluster.rest_url.clone().unwrap();
    let extra = vec![
        ("MLRES_SLURM_BIN_DIR".to_string(), bin.display().to_string()),
        ("MLRES_SLURM_REST_URL".to_string(), url),
        ("MLRES_SLURM_USER".to_string(), "root".to_string()),
        (
            "MLRES_SLURM_JWT".to_string(),
            token.unwrap_or(&real).to_string(),
        ),
    ];
    Some((
        Sl {
            env,
            cluster,
            extra,
        },
        real,
    ))
}

/// Every file under `root` (recursively) that contains `needle`.
fn files_containing(root: &std::path::Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                todo.push(p);
            } else if ft.is_file()
                && let Ok(b) = std::fs::read(&p)
                && b.windows(needle.len()).any(|w| w == needle.as_bytes())
            {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn through_slurmrestd_jobs_run_fail_with_their_exit_code_and_the_token_stays_secret() {
    let Some((s, token)) = start_rest(
        "slurmrestd campaign",
        &Spec {
            max_jobs: 2,
            values: "[1, 2]",
            script: "echo score={x}; echo granted=$MLRES_TEST_GRANTED; \
                     echo gpus=${{SLURM_GPUS_ON_NODE:-none}}; env | sort; \
                     test {x} -ne 2 || exit 3",
            gpus: 1,
            ..Spec::default()
        },
        None,
    ) else {
        return;
    };
    let d = s.json(&["doctor", "--json"]);
    let url = s.cluster.rest_url.clone().unwrap();
    assert_eq!(d["slurm"]["path"], format!("slurmrestd at {url}"), "{d}");
    assert_eq!(d["slurm"]["rest_ping"], "ok", "{d}");
    let human = s.ok(&["doctor"]);
    assert!(
        human.contains(&format!("path: slurmrestd at {url} (ping ok)")),
        "{human}"
    );
    // The token from a file, as `scontrol token` prints it (`SLURM_JWT=...`).
    let file = s.env.path().join("jwt");
    std::fs::write(&file, format!("SLURM_JWT={token}\n")).unwrap();
    let mut c = s.cmd();
    c.env_remove("MLRES_SLURM_JWT")
        .env("MLRES_SLURM_JWT_FILE", &file)
        .args(["doctor", "--json"]);
    let out = c.output().unwrap();
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["slurm"]["rest_ping"], "ok", "{d}");
    std::fs::remove_file(&file).unwrap();
    // The README's slurmrestd paragraph names exactly the variables exercised here.
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .unwrap();
    let para = readme
        .split("- **slurmrestd (optional).**")
        .nth(1)
        .and_then(|r| r.split("\n- ").next())
        .expect("README has the slurmrestd paragraph");
    for v in [
        "MLRES_SLURM_REST_URL=http://127.0.0.1:PORT",
        "`MLRES_SLURM_JWT`",
        "`MLRES_SLURM_JWT_FILE`",
        "`MLRES_SLURM_USER`",
        "SLURM_JWT=daemon",
        "AuthAltTypes=auth/jwt",
    ] {
        assert!(
            para.contains(v),
            "README slurmrestd paragraph lacks {v}: {para}"
        );
    }
    let out = s.run(&["loop", "run", "--json"]);
    assert!(
        out.status.success(),
        "loop run failed: {}\n{}",
        stderr(&out),
        s.cluster.logs()
    );
    let status = s.status();
    let es = exps(&status);
    assert_eq!(es.len(), 2, "{status}");
    for e in &es {
        let x = e["config"]["x"].as_i64().unwrap();
        let log = s.stdout_of(e);
        if x == 2 {
            assert_eq!(e["status"], "failed", "{e}");
            let full = s.exp(e);
            let err = full["error"].as_str().unwrap_or_default();
            // The raw wait status 768 decoded.
            assert!(err.contains("exit code 3"), "{full}");
        } else {
            assert_eq!(e["status"], "completed", "{e}\n{log}");
            assert_eq!(e["metric"].as_f64(), Some(x as f64), "{e}");
        }
        // The job got its granted secret (redacted in the log) and no token variable.
        assert!(
            log.contains("granted=[REDACTED:MLRES_TEST_GRANTED]"),
            "{log}"
        );
        assert!(!log.contains("JWT"), "{log}");
        // One GPU through the job's `gres`, as `--gres=gpu:1` on the sbatch path.
        assert!(log.contains("gpus=1"), "{log}");
        assert!(!log.contains("LOOP_ONLY"), "{log}");
    }
    let events = s.events();
    assert!(
        events.iter().filter(|e| e["kind"] == "remote_job").count() >= 2,
        "{events:?}"
    );
    // The token is nowhere in what mlres wrote or printed (the swept dir holds the state,
    // the job directories and every captured output).
    let leaks = files_containing(s.env.path(), &token);
    assert!(leaks.is_empty(), "the token leaked into {leaks:?}");
    let leaks = files_containing(s.cluster.path(), &token);
    assert!(leaks.is_empty(), "the token leaked into {leaks:?}");
}

#[test]
fn through_slurmrestd_loop_stop_and_the_queue_sweep_cancel_jobs() {
    let Some((s, _)) = start_rest(
        "slurmrestd stop",
        &Spec {
            max_jobs: 1,
            values: "[1]",
            script: "echo started; sleep 300; echo score={x}",
            ..Spec::default()
        },
        None,
    ) else {
        return;
    };
    let child = s.spawn_loop();
    s.wait_until("our job running", |s| {
        s.queue()
            .iter()
            .any(|(_, st, c)| st == "RUNNING" && c.starts_with("mlres:"))
    });
    let id = s.queue()[0].0.clone();
    // A job carrying this campaign's marker that the ledger does not know: the queue sweep
    // cancels it, through slurmrestd (scancel is a failing script here).
    let campaign = s.status()["campaign"]["id"].as_str().unwrap().to_string();
    let foreign = s.cluster.submit_script(
        &[
            &format!("--comment=mlres:campaign={campaign},exp=999,attempt=1"),
            "--time=5",
        ],
        "#!/bin/sh\nsleep 300\n",
    );
    s.wait_until("the foreign job cancelled", |s| {
        s.cluster.job_state(&foreign).as_deref() == Some("CANCELLED")
    });
    s.ok(&["loop", "stop", "--reason", "enough"]);
    let out = s.finish_loop(child, "stopped");
    assert!(out.status.success(), "{}", stderr(&out));
    let st = s.status();
    let es = exps(&st);
    assert_eq!(es.len(), 1, "{st}");
    assert_eq!(es[0]["status"], "cancelled", "{st}");
    // scancel is a failing script here: the cancel went through DELETE /job/{id}.
    assert_eq!(s.cluster.job_state(&id).as_deref(), Some("CANCELLED"));
}

#[test]
fn a_token_slurmrestd_refuses_is_a_clear_start_failure_and_nothing_is_spent() {
    let Some((s, real)) = start_rest(
        "slurmrestd bad token",
        &Spec {
            max_jobs: 2,
            values: "[1, 2]",
            // More memory than the node has: once the token is good, Slurm refuses the job.
            memory: "64GB",
            ..Spec::default()
        },
        Some(BAD_TOKEN),
    ) else {
        return;
    };
    let d = s.json(&["doctor", "--json"]);
    assert_eq!(d["slurm"]["rest_ping"], "failed", "{d}");
    assert!(
        d["slurm"]["rest_error"]
            .as_str()
            .unwrap_or_default()
            .contains("slurmrestd refused the token"),
        "{d}"
    );
    let out = s.run(&[
        "exp",
        "submit",
        "--config",
        "x=1",
        "--hypothesis",
        "h",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let out = s.run(&["exp", "wait", &id, "--json"]);
    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["status"], "start_failed", "{e}");
    let full = s.json(&["exp", "status", &id, "--json"]);
    let err = full["error"].as_str().unwrap_or_default();
    assert!(err.contains("slurmrestd refused the token"), "{full}");
    assert!(s.queue().is_empty(), "nothing is queued");
    let st = s.status();
    assert_eq!(st["budget"]["walltime_secs"]["used"], 0, "{st}");
    // With the right token, a job Slurm cannot take is a start failure with Slurm's reason.
    let mut c = s.cmd();
    c.env("MLRES_SLURM_JWT", &real).args([
        "exp",
        "submit",
        "--config",
        "x=2",
        "--hypothesis",
        "h",
        "--json",
    ]);
    let out = c.output().unwrap();
    s.env.record(&["exp", "submit", "good token"], &out);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let out = s.run(&["exp", "wait", &id, "--json"]);
    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["status"], "start_failed", "{e}");
    let full = s.json(&["exp", "status", &id, "--json"]);
    let err = full["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("Slurm refused the job")
            && err.contains("Requested node configuration is not available"),
        "{full}"
    );
    assert!(s.queue().is_empty(), "nothing is queued");
    // A URL without a token, or off loopback, is refused before anything runs.
    let mut c = s.cmd();
    c.env_remove("MLRES_SLURM_JWT").env_remove("SLURM_JWT");
    let out = c.args(["loop", "run"]).output().unwrap();
    s.env.record(&["loop", "run", "no token"], &out);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no token is"), "{}", stderr(&out));
    let mut c = s.cmd();
    c.env("MLRES_SLURM_REST_URL", "http://10.1.2.3:6820");
    let out = c.args(["loop", "run"]).output().unwrap();
    s.env.record(&["loop", "run", "remote url"], &out);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("loopback"), "{}", stderr(&out));
}

#[test]
fn through_slurmrestd_a_killed_loop_re_attaches_to_its_job() {
    let Some((s, _)) = start_rest(
        "slurmrestd resume",
        &Spec {
            max_jobs: 1,
            values: "[1]",
            script: "echo started {x}; sleep 6; echo score={x}",
            ..Spec::default()
        },
        None,
    ) else {
        return;
    };
    let mut child = s.spawn_loop();
    s.wait_until("the job running", |s| {
        s.queue().iter().any(|(_, st, _)| st == "RUNNING")
    });
    let before = s.queue()[0].0.clone();
    kill9(child.id());
    let _ = child.wait();
    for d in s.attempt_dirs() {
        if let Ok(p) = std::fs::read_to_string(d.join("supervisor.pid")) {
            kill9(p.trim().parse().unwrap());
        }
    }
    // The new supervisor gets the token again and follows the job through slurmrestd.
    let out = s.run(&["loop", "run", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let st = s.status();
    let es = exps(&st);
    assert_eq!(es.len(), 1, "{st}");
    assert_eq!(es[0]["status"], "completed", "{st}");
    assert_eq!(es[0]["metric"].as_f64(), Some(1.0), "{st}");
    let ev = s.events();
    assert_eq!(
        ev.iter()
            .filter(|e| e["kind"] == "remote_job_reattached")
            .count(),
        1,
        "{ev:?}"
    );
    let ids: Vec<&str> = ev
        .iter()
        .filter(|e| e["kind"] == "remote_job")
        .filter_map(|e| e["payload"]["job_id"].as_str())
        .collect();
    assert!(ids.iter().all(|i| *i == before), "{ids:?} vs {before}");
}
