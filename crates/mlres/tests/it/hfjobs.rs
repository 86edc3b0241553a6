//! The hf-jobs backend and `mlres jobs` against the in-process fake Hugging Face server: a full
//! campaign whose ledger, fake job list and money agree; the cost cap; reconciliation of
//! unknown and foreign jobs; every refusal; the token never leaving the broker; logs through
//! dropped SSE connections.

use std::process::Output;
use std::time::{Duration, Instant};

use mlres_fakehf::{CANARY_TOKEN, FakeConfig, FakeHf};
use serde_json::Value;

use crate::support::{Env, code, stderr};

/// How long a wait loop polls before it declares that the awaited event never happened. It is
/// a hang guard, not a speed check: generous, so a loaded CI machine cannot fail a test.
const WAIT: Duration = Duration::from_secs(180);

struct Hf {
    env: Env,
    fake: FakeHf,
}

/// An hf-jobs campaign: jobs print `score=<x>` (after `sleep` seconds).
struct Spec<'a> {
    max_jobs: u32,
    values: &'a str,
    flavor: &'a str,
    allowed: &'a str,
    timeout: &'a str,
    max_cost: &'a str,
    script: &'a str,
    extra_envelope: &'a str,
    extra_job: &'a str,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Spec {
            max_jobs: 3,
            values: "[1, 2, 3]",
            flavor: "cpu-basic",
            allowed: "[cpu-basic, a100x8, cpu-unpriced, gpu-imaginary]",
            timeout: "1m",
            max_cost: "1.00",
            script: "echo score={x}",
            extra_envelope: "",
            extra_job: "",
        }
    }
}

impl Spec<'_> {
    fn program(&self) -> String {
        format!(
            r#"# hf-jobs test campaign

## Goal
Maximise score on Hugging Face Jobs.

## Budget envelope
```yaml
max_jobs: {max_jobs}
max_walltime: 2h
allowed_flavors: {allowed}
max_timeout: 10m
allow_deletes: false
output_repos: []
max_cost_usd: {max_cost}
max_concurrent: 1
backends: [hf-jobs]
namespace: alice
images: [python:3.12]
{extra_envelope}
```

## Objective
```yaml
metric: score
goal: maximize
```

## Job
```yaml
backend: hf-jobs
image: python:3.12
command: ["/bin/sh", "-c", "{script}"]
flavor: {flavor}
timeout: {timeout}
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
            allowed = self.allowed,
            max_cost = self.max_cost,
            extra_envelope = self.extra_envelope,
            flavor = self.flavor,
            timeout = self.timeout,
            script = self.script,
            extra_job = self.extra_job,
            values = self.values,
        )
    }
}

/// A catalog with a flavor whose prices are `null` (`cpu-unpriced`).
fn unpriced() -> FakeConfig {
    FakeConfig {
        unpriced_flavor: Some("cpu-unpriced".into()),
        ..FakeConfig::default()
    }
}

fn start(spec: &Spec) -> Hf {
    start_with(spec, FakeConfig::default())
}

fn start_with(spec: &Spec, cfg: FakeConfig) -> Hf {
    let env = Env::new();
    env.write_program(&spec.program());
    env.approve();
    let fake = FakeHf::start(FakeConfig {
        work_root: Some(env!("CARGO_TARGET_TMPDIR").into()),
        scheduling_delay_ms: 5,
        ..cfg
    })
    .unwrap();
    Hf { env, fake }
}

impl Hf {
    fn cmd(&self) -> std::process::Command {
        let mut c = self.env.cmd();
        c.env("HF_ENDPOINT", self.fake.url())
            .env("HF_TOKEN", CANARY_TOKEN)
            .env("HF_HOME", self.env.path().join("hfhome"))
            .env("MLRES_HF_RECONCILE_SECS", "0.05")
            .env("MLRES_HF_POLL_MS", "50")
            // Tests poll every 50 ms; the request budget has its own tests.
            .env("MLRES_HF_REQUESTS_PER_MINUTE", "10000")
            .env_remove("HUGGING_FACE_HUB_TOKEN")
            .env_remove("HF_TOKEN_PATH")
            .env_remove("MLRES_HF_JOB_TOKEN")
            .env_remove("HF_HUB_DISABLE_IMPLICIT_TOKEN");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd().args(args).output().unwrap();
        self.record(args, &out);
        out
    }

    fn record(&self, args: &[&str], out: &Output) {
        self.env.record(args, out);
        for s in [&out.stdout, &out.stderr] {
            assert!(
                !String::from_utf8_lossy(s).contains("mlresCANARY"),
                "canary leaked by {args:?}"
            );
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "mlres {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let s = self.ok(args);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {s}"))
    }

    fn jobs(&self) -> Vec<Value> {
        self.fake.state().snapshot()["jobs"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn spent_micro(&self) -> u64 {
        self.fake.state().snapshot()["spentMicroUSD"]["alice"]
            .as_u64()
            .unwrap_or(0)
    }

    fn job_creates(&self) -> usize {
        self.fake.state().snapshot()["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["method"] == "POST" && r["path"] == "/api/jobs/alice")
            .count()
    }

    fn status(&self) -> Value {
        self.json(&["loop", "status", "--json"])
    }

    /// Every file under the state dir, and the project's runs/, must be free of the canary.
    fn no_canary_in_files(&self) {
        for root in [&self.env.state, &self.env.project] {
            for p in walk(root) {
                let b = std::fs::read(&p).unwrap_or_default();
                assert!(
                    !b.windows(11).any(|w| w == b"mlresCANARY"),
                    "canary in {}",
                    p.display()
                );
            }
        }
    }

    fn attempt_logs(&self) -> Vec<String> {
        walk(&self.env.state.join("jobs"))
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|n| n == "stdout.log"))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn usd_used(status: &Value) -> f64 {
    status["budget"]["cost_usd"]["used"].as_f64().unwrap()
}

#[test]
fn full_campaign_ledger_fake_and_money_agree() {
    let h = start(&Spec::default());
    let out = h.run(&["loop", "run", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["experiments"], 3, "{summary}");
    assert_eq!(summary["best"]["metric"], 3.0, "{summary}");

    let status = h.status();
    let exps = status["experiments"].as_array().unwrap();
    assert!(exps.iter().all(|e| e["status"] == "completed"), "{status}");
    // The fake ran exactly the ledger's experiments, labelled with campaign/exp/attempt,
    // with the approved image, flavor and integer timeout, and no scheduled job.
    let jobs = h.jobs();
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    let campaign = status["campaign"]["id"].as_str().unwrap();
    let mut exp_ids: Vec<i64> = exps.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    let mut labelled: Vec<i64> = jobs
        .iter()
        .map(|j| {
            assert_eq!(j["labels"]["mlres-campaign"], campaign, "{j}");
            assert_eq!(j["labels"]["mlres-attempt"], "1", "{j}");
            assert_eq!(j["stage"], "COMPLETED", "{j}");
            assert_eq!(j["dockerImage"], "python:3.12");
            assert_eq!(j["flavor"], "cpu-basic");
            assert_eq!(j["timeoutSeconds"], 60);
            // No token in the job unless the envelope allows it (it does not here).
            assert!(j["secretNames"].as_array().unwrap().is_empty(), "{j}");
            j["labels"]["mlres-exp"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    exp_ids.sort();
    labelled.sort();
    assert_eq!(exp_ids, labelled);
    assert_eq!(h.fake.state().scheduled_calls(), 0);
    // Money: the ledger settles each job at price × billed running time (rounded up), so it
    // is never below the fake's bill and agrees to the cent.
    let ledger_micro = (usd_used(&status) * 1e6).round() as u64;
    let fake_micro = h.spent_micro();
    assert!(ledger_micro >= fake_micro, "{ledger_micro} < {fake_micro}");
    assert_eq!(
        (ledger_micro as f64 / 1e4).round(),
        (fake_micro as f64 / 1e4).round(),
        "ledger {ledger_micro} vs fake {fake_micro} micro-USD"
    );
    // Metric parsing worked from the streamed logs.
    let logs = h.attempt_logs();
    assert_eq!(logs.len(), 3);
    for x in 1..=3 {
        assert!(
            logs.iter()
                .any(|l| l.lines().any(|s| s == format!("score={x}"))),
            "{logs:?}"
        );
    }
    // Each job is recorded in the ledger.
    let events = h.json(&["ledger", "events", "--json", "--limit", "500"]);
    let remote = events
        .as_array()
        .or_else(|| events["events"].as_array())
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "remote_job")
        .count();
    assert_eq!(remote, 3, "{events}");
    // The exports carry each experiment's real Hugging Face job id, the one the fake ran.
    let jsonl = std::fs::read_to_string(h.env.project.join("runs/ledger.jsonl")).unwrap();
    let rows: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    for r in &rows {
        let exp = r["mlres"]["experiment_id"].as_i64().unwrap().to_string();
        let job = jobs
            .iter()
            .find(|j| j["labels"]["mlres-exp"] == exp.as_str())
            .unwrap();
        assert_eq!(r["job_id"], job["id"], "{r}");
        assert!(!r["job_id"].as_str().unwrap().starts_with("local-"), "{r}");
        assert_eq!(r["mlres"]["backend"], "hf-jobs");
        assert!(r["hub_url"].is_null(), "{r}");
    }
    h.ok(&["ledger", "verify"]);
    h.no_canary_in_files();
}

#[test]
fn next_job_over_max_cost_is_not_submitted() {
    // a100x8 costs $0.3333 a minute: one reservation of the 1-minute timeout fits in $0.34,
    // a second one fits only if the first job's actual cost left room.
    let h = start(&Spec {
        max_jobs: 10,
        values: "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]",
        flavor: "a100x8",
        max_cost: "0.34",
        ..Spec::default()
    });
    let out = h.run(&["loop", "run", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("max_cost"), "{err}");
    let status = h.status();
    let exps = status["experiments"].as_array().unwrap();
    assert!(!exps.is_empty() && exps.len() < 10, "{status}");
    // Nothing beyond what the ledger has was sent to the Jobs API.
    assert_eq!(h.job_creates(), exps.len());
    assert_eq!(h.jobs().len(), exps.len());
    // The refusal was right: what was spent plus one more reservation is over the cap.
    let used = (usd_used(&status) * 1e6).round() as u64;
    let reservation = 333_300u64; // a100x8, 60 s
    assert!(used + reservation > 340_000, "used {used}");
    assert!(used <= 340_000);
    assert!(used >= h.spent_micro());
}

#[test]
fn out_of_band_jobs_are_cancelled_and_reported() {
    let h = start(&Spec {
        max_jobs: 2,
        values: "[1, 2]",
        script: "sleep 1; echo score={x}",
        ..Spec::default()
    });
    let child = h
        .cmd()
        .args(["loop", "run", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the campaign's first job, then submit two jobs behind mlres' back: one with a
    // foreign label, one with the campaign's label but an experiment the ledger never had.
    let start = Instant::now();
    let campaign = loop {
        if let Some(j) = h.jobs().first() {
            break j["labels"]["mlres-campaign"].as_str().unwrap().to_string();
        }
        assert!(start.elapsed() < WAIT, "no job started");
        std::thread::sleep(Duration::from_millis(20));
    };
    let client = mlres_hf::HfClient::new(
        mlres_hf::Endpoint::parse(Some(&h.fake.url())).unwrap(),
        mlres_hf::Token::new(CANARY_TOKEN),
    );
    let spec = |labels: &[(&str, &str)]| mlres_hf::JobSpec {
        command: vec!["/bin/sh".into(), "-c".into(), "sleep 60".into()],
        environment: Default::default(),
        secrets: Default::default(),
        flavor: "cpu-basic".into(),
        docker_image: "python:3.12".into(),
        timeout_seconds: 120,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let foreign = client
        .create_job("alice", &spec(&[("team", "other")]))
        .unwrap();
    let unknown = client
        .create_job(
            "alice",
            &spec(&[
                ("mlres-campaign", &campaign),
                ("mlres-exp", "9999"),
                ("mlres-attempt", "1"),
            ]),
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    h.record(&["loop", "run", "oob"], &out);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&foreign.id), "{err}");
    assert!(err.contains(&unknown.id), "{err}");
    assert!(err.contains("unknown to the ledger"), "{err}");
    let stage = |id: &str| {
        h.jobs().into_iter().find(|j| j["id"] == id).unwrap()["stage"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let t = Instant::now();
    while (stage(&foreign.id) != "CANCELED" || stage(&unknown.id) != "CANCELED")
        && t.elapsed() < WAIT
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(stage(&foreign.id), "CANCELED");
    assert_eq!(stage(&unknown.id), "CANCELED");
    // The campaign's own jobs completed; both cancellations are in the ledger.
    let status = h.status();
    let exps = status["experiments"].as_array().unwrap();
    assert!(exps.iter().all(|e| e["status"] == "completed"), "{status}");
    let events = h.json(&["ledger", "events", "--json", "--limit", "500"]);
    let cancelled: Vec<&Value> = events
        .as_array()
        .or_else(|| events["events"].as_array())
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "remote_job_cancelled")
        .collect();
    assert_eq!(cancelled.len(), 2, "{events}");
    h.no_canary_in_files();
}

#[test]
fn loop_stop_cancels_unknown_jobs_of_the_campaign() {
    let h = start(&Spec::default());
    h.ok(&["jobs", "run", "--config", "x=2", "--wait"]);
    let status = h.status();
    let campaign = status["campaign"]["id"].as_str().unwrap().to_string();
    let client = mlres_hf::HfClient::new(
        mlres_hf::Endpoint::parse(Some(&h.fake.url())).unwrap(),
        mlres_hf::Token::new(CANARY_TOKEN),
    );
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("mlres-campaign".to_string(), campaign);
    labels.insert("mlres-exp".to_string(), "4242".to_string());
    labels.insert("mlres-attempt".to_string(), "1".to_string());
    let stray = client
        .create_job(
            "alice",
            &mlres_hf::JobSpec {
                command: vec!["/bin/sh".into(), "-c".into(), "sleep 60".into()],
                environment: Default::default(),
                secrets: Default::default(),
                flavor: "cpu-basic".into(),
                docker_image: "python:3.12".into(),
                timeout_seconds: 120,
                labels,
            },
        )
        .unwrap();
    let list = h.json(&["jobs", "list", "--json"]);
    let rows = list["jobs"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{list}");
    assert!(
        rows.iter()
            .any(|r| r["id"] == stray.id.as_str() && r["known"].is_null())
    );
    assert!(rows.iter().any(|r| !r["known"].is_null()), "{list}");
    let out = h.run(&["loop", "stop"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&stray.id) && err.contains("cancelled"),
        "{err}"
    );
    let t = Instant::now();
    loop {
        let st = client.get_job("alice", &stray.id).unwrap();
        if st.stage == mlres_hf::JobStage::Canceled {
            break;
        }
        assert!(t.elapsed() < WAIT, "{st:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn jobs_run_status_logs_cancel() {
    let h = start(&Spec {
        script: "echo hello {x}; echo score={x}; sleep 30",
        ..Spec::default()
    });
    let v = h.json(&["jobs", "run", "--config", "x=3", "--json"]);
    let job = v["job_id"].as_str().unwrap().to_string();
    let exp = v["experiment"]["id"].as_i64().unwrap().to_string();
    let s = h.json(&["jobs", "status", &job, "--json"]);
    assert_eq!(s["known"]["exp"].to_string(), exp, "{s}");
    let s2 = h.json(&["jobs", "status", &exp, "--json"]);
    assert_eq!(s2["id"], job.as_str());
    // Wait until the job printed, then read its logs by experiment id.
    let t = Instant::now();
    loop {
        let l = h.ok(&["jobs", "logs", &exp]);
        if l.contains("score=3") {
            assert!(l.contains("hello 3"), "{l}");
            break;
        }
        assert!(t.elapsed() < WAIT, "{l}");
        std::thread::sleep(Duration::from_millis(50));
    }
    h.ok(&["jobs", "cancel", &job]);
    let out = h.run(&["exp", "wait", &exp, "--json"]);
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["status"], "cancelled", "{done}");
    assert_eq!(code(&out), 5);
    let j = h.jobs();
    assert_eq!(j[0]["stage"], "CANCELED");
    h.no_canary_in_files();
}

/// `jobs run --config` takes one JSON object as well as NAME=VALUE pairs; malformed flags are
/// usage errors (exit 2) and values outside the space are refusals (exit 3), neither creating
/// a job.
#[test]
fn jobs_run_takes_a_json_config_too() {
    let h = start(&Spec::default());
    let v = h.json(&["jobs", "run", "--config", r#"{"x": 2}"#, "--wait", "--json"]);
    assert_eq!(
        v["experiment"]["config"],
        serde_json::json!({"x": 2}),
        "{v}"
    );
    assert_eq!(v["experiment"]["metric"].as_f64(), Some(2.0), "{v}");
    let before = h.job_creates();
    for (bad, want) in [
        (&["--config", "x"][..], 2),
        (&["--config", "{\"x\": 2"], 2),
        (&["--config", r#"{"x": 2}"#, "--config", "x=3"], 2),
        (&["--config", "x=1", "--config", "x=3"], 2),
        (&["--config", "x=9"], 3),
        (&["--config", r#"{"x": 9}"#], 3),
    ] {
        let mut args = vec!["jobs", "run"];
        args.extend_from_slice(bad);
        let out = h.run(&args);
        let err = stderr(&out);
        assert_eq!(code(&out), want, "{bad:?}: {err}");
        assert!(
            err.contains("--config") || err.contains("`x`"),
            "{bad:?}: {err}"
        );
    }
    assert_eq!(h.job_creates(), before, "a bad --config created a job");
}

fn refused(h: &Hf, args: &[&str], needle: &str) {
    let before = h.job_creates();
    let out = h.run(args);
    let err = stderr(&out);
    assert_eq!(code(&out), 3, "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err}");
    assert_eq!(h.job_creates(), before, "{args:?} created a job");
}

#[test]
fn refusals_create_no_job() {
    let h = start_with(&Spec::default(), unpriced());
    // Flavor not allowed by the envelope.
    refused(
        &h,
        &["jobs", "run", "--flavor", "a10g-large"],
        "not allowed by the approved envelope",
    );
    // Allowed by the envelope but not in the live catalog.
    refused(
        &h,
        &["jobs", "run", "--flavor", "gpu-imaginary"],
        "not in the live hardware catalog",
    );
    // Listed without a price.
    refused(&h, &["jobs", "run", "--flavor", "cpu-unpriced"], "no price");
    // Timeout over max_timeout.
    refused(&h, &["jobs", "run", "--timeout", "11m"], "max_timeout");
    // Namespace other than the envelope's.
    refused(
        &h,
        &["jobs", "run", "--namespace", "acme-ml"],
        "not the envelope's namespace",
    );
    // Scheduled jobs.
    refused(
        &h,
        &["jobs", "run", "--schedule", "@hourly"],
        "scheduled jobs",
    );
    assert_eq!(h.fake.state().scheduled_calls(), 0);
    // Nothing was reserved by any of them.
    let status = h.status();
    assert!(
        status["experiments"].as_array().unwrap().is_empty(),
        "{status}"
    );
    assert_eq!(usd_used(&status), 0.0);
}

#[test]
fn program_refusals_image_namespace_timeout_flavor() {
    for (spec, needle) in [
        (
            Spec {
                extra_job: "",
                ..Spec::default()
            }
            .program()
            .replace("image: python:3.12\ncommand", "image: evil:latest\ncommand"),
            "not in the envelope's images",
        ),
        (
            Spec::default().program().replace("namespace: alice\n", ""),
            "needs a `namespace`",
        ),
        (
            Spec {
                timeout: "20m",
                ..Spec::default()
            }
            .program(),
            "max_timeout",
        ),
        (
            Spec {
                flavor: "a10g-large",
                ..Spec::default()
            }
            .program(),
            "allowed_flavors",
        ),
    ] {
        let env = Env::new();
        env.write_program(&spec);
        let out = env.run(&["check"]);
        assert_ne!(code(&out), 0, "{spec}");
        assert!(stderr(&out).contains(needle), "{needle}: {}", stderr(&out));
    }
}

#[test]
fn no_price_in_the_loop_is_a_clear_refusal() {
    let h = start_with(
        &Spec {
            flavor: "cpu-unpriced",
            ..Spec::default()
        },
        unpriced(),
    );
    let out = h.run(&["loop", "run"]);
    let err = stderr(&out);
    assert!(
        err.contains("no_price") && err.contains("cpu-unpriced"),
        "{err}"
    );
    assert_eq!(h.job_creates(), 0);
}

#[test]
fn billing_402_is_explained_and_stops_the_loop() {
    let h = start(&Spec::default());
    h.fake.state().set_credits("alice", 0);
    let out = h.run(&["loop", "run"]);
    let err = stderr(&out);
    assert!(err.contains("402") && err.contains("credits"), "{err}");
    // One attempt reached the API and was refused there; nothing more was tried.
    assert_eq!(h.job_creates(), 1, "{err}");
    assert!(h.jobs().is_empty());
    let status = h.status();
    assert_eq!(usd_used(&status), 0.0);
    assert_ne!(status["campaign"]["status"], "active", "{status}");
}

#[test]
fn tokens_reach_jobs_only_by_the_token_rule_and_never_any_output() {
    // Without `user_token_in_jobs`, no token goes into the job (checked in the full
    // campaign); with it, the user token is injected as the HF_TOKEN secret.
    let h = start(&Spec {
        max_jobs: 1,
        values: "[1]",
        extra_envelope: "user_token_in_jobs: true",
        script: "echo token=$HF_TOKEN; echo score={x}",
        ..Spec::default()
    });
    h.ok(&["loop", "run"]);
    let jobs = h.jobs();
    assert_eq!(jobs[0]["secretNames"], serde_json::json!(["HF_TOKEN"]));
    // The job echoed its token: the captured log has it redacted.
    let logs = h.attempt_logs();
    assert!(logs[0].contains("token=[REDACTED:HF_TOKEN]"), "{logs:?}");
    h.ok(&["jobs", "list"]);
    h.ok(&["jobs", "logs", "1"]);
    h.no_canary_in_files();

    // A job-scoped token wins over the user token (even without `user_token_in_jobs`).
    let h = start(&Spec {
        max_jobs: 1,
        values: "[1]",
        script: "echo token=$HF_TOKEN; echo score={x}",
        ..Spec::default()
    });
    let out = h
        .cmd()
        .env("MLRES_HF_JOB_TOKEN", "hf_jobscopedTOKENvalue123")
        .args(["loop", "run"])
        .output()
        .unwrap();
    h.record(&["loop", "run", "jobtoken"], &out);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(h.jobs()[0]["secretNames"], serde_json::json!(["HF_TOKEN"]));
    // What the job really saw (the fake's raw log): the job token, not the user's.
    let raw: Vec<String> = h.fake.state().lock().jobs[0]
        .log
        .iter()
        .map(|(l, _)| l.clone())
        .collect();
    assert!(
        raw.iter().any(|l| l == "token=hf_jobscopedTOKENvalue123"),
        "{raw:?}"
    );
    assert!(!raw.iter().any(|l| l.contains("mlresCANARY")));
    assert!(h.attempt_logs()[0].contains("token=[REDACTED:HF_TOKEN]"));
    h.no_canary_in_files();
}

#[test]
fn a_job_running_past_its_reservation_is_cancelled_as_a_breach() {
    let h = start(&Spec {
        max_jobs: 1,
        values: "[1]",
        script: "sleep 30; echo score={x}",
        ..Spec::default()
    });
    let Some(past) = Instant::now().checked_sub(Duration::from_secs(600)) else {
        return; // machine up for less than 10 minutes: cannot fake the clock
    };
    let child = h
        .cmd()
        .args(["loop", "run"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    loop {
        if h.jobs().first().is_some_and(|j| j["stage"] == "RUNNING") {
            break;
        }
        assert!(t.elapsed() < WAIT);
        std::thread::sleep(Duration::from_millis(10));
    }
    // Make the API report that the job has been running for 10 minutes (its reservation is
    // 1 minute): the reconciler must cancel it.
    {
        let mut g = h.fake.state().lock();
        let j = &mut g.jobs[0];
        let wall = j.started.unwrap().1;
        j.started = Some((past, wall));
    }
    let out = child.wait_with_output().unwrap();
    h.record(&["loop", "run", "breach"], &out);
    let err = stderr(&out);
    assert!(err.contains("envelope breach"), "{err}");
    assert_eq!(h.jobs()[0]["stage"], "CANCELED");
    let status = h.status();
    assert_eq!(status["experiments"][0]["status"], "cancelled", "{status}");
}

#[test]
fn dropped_log_streams_lose_and_duplicate_nothing() {
    let h = start(&Spec {
        max_jobs: 1,
        values: "[1]",
        script: "for i in $(seq 1 40); do echo line-$i; done; echo score={x}",
        ..Spec::default()
    });
    h.fake.state().drop_sse_after(&[3, 1, 7, 0, 15]);
    h.ok(&["loop", "run"]);
    let logs = h.attempt_logs();
    let lines: Vec<&str> = logs[0].lines().filter(|l| l.starts_with("line-")).collect();
    let want: Vec<String> = (1..=40).map(|i| format!("line-{i}")).collect();
    assert_eq!(lines, want);
    assert_eq!(logs[0].matches("score=1").count(), 1, "{}", logs[0]);
    let status = h.status();
    assert_eq!(status["experiments"][0]["metric"], 1.0, "{status}");
}

fn supervisor_pid(h: &Hf) -> i32 {
    let t = Instant::now();
    loop {
        if let Some(p) = walk(&h.env.state.join("jobs"))
            .into_iter()
            .find(|p| p.file_name().is_some_and(|n| n == "supervisor.pid"))
            && let Ok(s) = std::fs::read_to_string(&p)
            && let Ok(pid) = s.trim().parse()
        {
            return pid;
        }
        assert!(t.elapsed() < WAIT, "no supervisor");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_dead_supervisor_is_settled_lost_and_its_job_cancelled() {
    let h = start(&Spec {
        script: "echo score={x}; sleep 60",
        ..Spec::default()
    });
    let v = h.json(&["jobs", "run", "--json"]);
    let job = v["job_id"].as_str().unwrap().to_string();
    let pid = supervisor_pid(&h);
    // SAFETY: kill has no memory-safety preconditions; pid is our own supervisor.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let t = Instant::now();
    let exp = loop {
        let s = h.status();
        let e = s["experiments"][0].clone();
        if e["state"] == "evaluated" {
            break e;
        }
        assert!(t.elapsed() < WAIT, "{s}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exp["status"], "lost", "{exp}");
    let t = Instant::now();
    while h.jobs()[0]["stage"] != "CANCELED" {
        assert!(t.elapsed() < WAIT, "{:?}", h.jobs());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(h.jobs()[0]["id"], job.as_str());
    // It was billed for the time it ran, and the ledger says so.
    let used = (usd_used(&h.status()) * 1e6).round() as u64;
    assert!(
        used > 0 && used >= h.spent_micro().saturating_sub(10),
        "{used}"
    );
}

#[test]
fn a_job_deleted_mid_run_ends_its_experiment_and_the_loop_goes_on() {
    let h = start(&Spec {
        max_jobs: 2,
        values: "[1, 2]",
        script: "echo score={x}; sleep {x}; sleep 2",
        ..Spec::default()
    });
    let child = h
        .cmd()
        .args(["loop", "run", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let first = loop {
        if let Some(j) = h.jobs().first()
            && j["stage"] == "RUNNING"
        {
            break j["id"].as_str().unwrap().to_string();
        }
        assert!(t.elapsed() < WAIT);
        std::thread::sleep(Duration::from_millis(10));
    };
    h.fake.state().set_stage(&first, "DELETED");
    let out = child.wait_with_output().unwrap();
    h.record(&["loop", "run", "deleted"], &out);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let status = h.status();
    let exps = status["experiments"].as_array().unwrap();
    assert_eq!(exps.len(), 2, "{status}");
    assert_eq!(exps[0]["status"], "failed", "{status}");
    assert_eq!(exps[1]["status"], "completed", "{status}");
}

#[test]
fn jobs_commands_need_an_hf_jobs_template() {
    let env = Env::new();
    env.write_program(&crate::support::Fast::default().program());
    env.approve();
    for args in [
        &["jobs", "run"][..],
        &["jobs", "list"][..],
        &["jobs", "status", "1"][..],
    ] {
        let out = env.run(args);
        assert_eq!(code(&out), 3, "{args:?}");
        assert!(
            stderr(&out).contains("hf-jobs templates only"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn hf_jobs_without_a_token_are_refused_before_reserving() {
    let h = start(&Spec::default());
    let out = h
        .cmd()
        .env_remove("HF_TOKEN")
        .args(["jobs", "run"])
        .output()
        .unwrap();
    h.record(&["jobs", "run", "notoken"], &out);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("token"), "{}", stderr(&out));
    assert_eq!(h.job_creates(), 0);
    assert!(h.status()["experiments"].as_array().unwrap().is_empty());
}

#[test]
fn a_bad_endpoint_is_refused_with_its_reason() {
    let h = start(&Spec::default());
    let out = h
        .cmd()
        .env("HF_ENDPOINT", "ftp://example.com")
        .args(["jobs", "run"])
        .output()
        .unwrap();
    h.record(&["jobs", "run", "badendpoint"], &out);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("HF_ENDPOINT"), "{}", stderr(&out));
    assert_eq!(h.job_creates(), 0);
}

/// N `jobs run` processes started together right after an approval share one campaign: exactly
/// min(N, max_jobs) remote jobs are created, `loop status` counts them all, verify is clean.
fn hf_first_submits_race(n: u32, max_jobs: u32) {
    let values: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    let values = format!("[{}]", values.join(", "));
    let spec = Spec {
        max_jobs,
        values: &values,
        max_cost: "100.00",
        ..Spec::default()
    };
    let h = start(&spec);
    // No concurrency cap: only max_jobs bounds the race.
    h.env.write_program(
        &spec
            .program()
            .replace("max_concurrent: 1", "max_concurrent: 1000"),
    );
    h.env.approve();
    let children: Vec<_> = (1..=n)
        .map(|x| {
            h.cmd()
                .args([
                    "jobs",
                    "run",
                    "--config",
                    &format!("x={x}"),
                    "--wait",
                    "--json",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ok = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        h.record(&["jobs", "run", "race"], &out);
        match code(&out) {
            0 => ok += 1,
            3 => assert!(stderr(&out).contains("max_jobs"), "{}", stderr(&out)),
            other => panic!("unexpected exit {other}: {}", stderr(&out)),
        }
    }
    assert_eq!(ok, n.min(max_jobs), "accepted");
    assert_eq!(h.job_creates(), ok as usize, "remote jobs created");
    assert_eq!(
        crate::concurrency::attempt_dirs(&h.env.state),
        ok as usize,
        "attempt dirs"
    );
    let s = h.status();
    assert_eq!(s["budget"]["jobs"]["used"], ok, "{s}");
    let v = h.json(&["ledger", "verify", "--json"]);
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0), "{v}");
    h.no_canary_in_files();
}

#[test]
fn sixteen_hf_first_submits_open_one_campaign() {
    hf_first_submits_race(16, 2);
}

#[test]
fn sixty_four_hf_first_submits_open_one_campaign() {
    hf_first_submits_race(64, 3);
}

const UV_SCRIPT: &str = "# /// script\n# requires-python = \">=3.10\"\n# dependencies = []\n# ///\nimport sys\nprint(f\"score={int(sys.argv[1]) * 10}\")\n";

fn code_program(code: &str) -> String {
    format!(
        r#"# hf-jobs with pinned code

## Budget envelope
```yaml
max_jobs: 4
max_walltime: 2h
allowed_flavors: [cpu-basic]
max_timeout: 10m
max_cost_usd: 1.00
backends: [hf-jobs]
namespace: alice
images: ["ghcr.io/astral-sh/uv:python3.12-bookworm"]
```

## Objective
```yaml
metric: score
goal: maximize
```

## Job
```yaml
backend: hf-jobs
image: "ghcr.io/astral-sh/uv:python3.12-bookworm"
command: [uv, run, "{{code}}/train.py", "{{x}}"]
timeout: 1m
code: {code}
```

## Search space
```yaml
method: grid
parameters:
  x: {{values: [1, 2, 3]}}
```
"#
    )
}

/// A job's pinned script is shipped the way `hf jobs uv run train.py` ships a local script
/// (huggingface_hub 1.4 to 1.12): base64 in `LOCAL_FILES_ENCODED`, decoded by a `bash -c`
/// step in the job's working directory, where `{code}` is `.`; the script runs under `uv run`
/// with its PEP 723 block. A changed script is refused before any job is created.
#[test]
fn pinned_code_is_shipped_like_hf_jobs_uv_run_and_a_change_is_refused() {
    let env = Env::new();
    std::fs::write(env.project.join("train.py"), UV_SCRIPT).unwrap();
    env.write_program(&code_program("[train.py]"));
    env.approve();
    let fake = FakeHf::start(FakeConfig {
        work_root: Some(env!("CARGO_TARGET_TMPDIR").into()),
        scheduling_delay_ms: 5,
        ..FakeConfig::default()
    })
    .unwrap();
    let h = Hf { env, fake };
    let v = h.json(&[
        "exp",
        "submit",
        "--config",
        "x=2",
        "--hypothesis",
        "h",
        "--json",
    ]);
    let id = v["id"].to_string();
    let done = h.json(&["exp", "wait", &id, "--timeout", "2m", "--json"]);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["metric"], 20.0, "{done}");
    let jobs = h.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0]["command"],
        serde_json::json!([
            "bash",
            "-c",
            "echo $LOCAL_FILES_ENCODED | xargs -n 2 bash -c 'echo \"$1\" | base64 -d > \"$0\"' && 'uv' 'run' './train.py' '2'"
        ])
    );
    let names = jobs[0]["environmentNames"].to_string();
    assert!(names.contains("LOCAL_FILES_ENCODED"), "{names}");
    // The ledger and the attempt's spec name the code that ran.
    let events = h.json(&["ledger", "events", "--json", "--limit", "500"]);
    let sub = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "submitted")
        .unwrap();
    let sha = sub["payload"]["code_sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64);
    let specs: Vec<_> = walk(&h.env.state.join("jobs"))
        .into_iter()
        .filter(|p| p.ends_with("spec.json"))
        .collect();
    let spec: Value = serde_json::from_slice(&std::fs::read(&specs[0]).unwrap()).unwrap();
    assert_eq!(spec["code_sha256"], sha);

    // The script is edited after approval: refused, no job created.
    std::fs::write(
        h.env.project.join("train.py"),
        UV_SCRIPT.replace("* 10", "* 1000"),
    )
    .unwrap();
    let creates = h.job_creates();
    let out = h.run(&["exp", "submit", "--config", "x=3", "--hypothesis", "h"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refused (code_changed)"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("+print(f\"score={int(sys.argv[1]) * 1000}\")"));
    assert_eq!(h.job_creates(), creates);
    h.no_canary_in_files();
}

/// More than one file cannot be shipped yet: refused at approval, naming the files.
#[test]
fn hf_jobs_code_of_several_files_is_refused_at_approval() {
    let env = Env::new();
    std::fs::create_dir_all(env.project.join("src")).unwrap();
    std::fs::write(env.project.join("src/train.py"), UV_SCRIPT).unwrap();
    std::fs::write(env.project.join("src/util.py"), "").unwrap();
    env.write_program(&code_program("[src]").replace("{code}/train.py", "{code}/src/train.py"));
    let out = env.approve_args(&[]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("code_not_shippable"), "{err}");
    assert!(err.contains("2 files (src/train.py, src/util.py)"), "{err}");
}

/// Splits a POSIX shell word list made of plain and single-quoted words (what both
/// huggingface_hub and mlres write after the decode step).
fn shell_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    cur.push(q);
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// The body of the last job creation the fake received.
fn last_job_create(fake: &FakeHf) -> Value {
    let snap = fake.state().snapshot();
    let body = snap["requests"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|r| r["method"] == "POST" && r["path"] == "/api/jobs/alice")
        .expect("a job creation")["body"]
        .as_str()
        .expect("its JSON body is logged")
        .to_string();
    serde_json::from_str(&body).unwrap()
}

/// What mlres sends for a job's pinned script, side by side with what huggingface_hub's own
/// `HfApi.run_uv_job` (1.12.2, the last release that ships a local script in
/// `LOCAL_FILES_ENCODED`; installed by tests/trl/setup-venv.sh) sends for the same script and
/// arguments to the same fake: the encoded files are byte for byte the same, the decode step
/// is the same, and the command after it is the same words (mlres single-quotes every word of
/// the approved command and names the script `./train.py`, `{code}` being `.`).
#[test]
fn the_shipped_script_matches_what_huggingface_hub_run_uv_job_sends() {
    let py = crate::trl::python();
    let venv = py.parent().unwrap().parent().unwrap();
    let fake = FakeHf::start(FakeConfig {
        work_root: Some(env!("CARGO_TARGET_TMPDIR").into()),
        scheduling_delay_ms: 5,
        ..FakeConfig::default()
    })
    .unwrap();

    // huggingface_hub itself, from a directory holding train.py.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("uvjob-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("train.py"), UV_SCRIPT).unwrap();
    let out = std::process::Command::new(py)
        .current_dir(&dir)
        .env("PYTHONPATH", venv.join("hub-1.12"))
        .env("HF_ENDPOINT", fake.url())
        .env("HF_TOKEN", CANARY_TOKEN)
        .env("HF_HOME", dir.join("hfhome"))
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .arg("-c")
        .arg(
            "import huggingface_hub as h\n\
             assert h.__version__ == '1.12.2', h.__version__\n\
             job = h.HfApi().run_uv_job('train.py', script_args=['2'], namespace='alice',\n\
                 image='ghcr.io/astral-sh/uv:python3.12-bookworm', flavor='cpu-basic', timeout=60)\n\
             print(job.id)\n",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "huggingface_hub run_uv_job against the fake failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = last_job_create(&fake);

    // mlres, for the same script and argument.
    let env = Env::new();
    std::fs::write(env.project.join("train.py"), UV_SCRIPT).unwrap();
    env.write_program(&code_program("[train.py]"));
    env.approve();
    let h = Hf { env, fake };
    let v = h.json(&[
        "exp",
        "submit",
        "--config",
        "x=2",
        "--hypothesis",
        "h",
        "--json",
    ]);
    let id = v["id"].to_string();
    let done = h.json(&["exp", "wait", &id, "--timeout", "2m", "--json"]);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(h.job_creates(), 2, "huggingface_hub's job, then mlres'");
    let ours = last_job_create(&h.fake);
    assert!(ours.get("labels").is_some(), "mlres' own request: {ours}");

    assert_eq!(
        ours["environment"]["LOCAL_FILES_ENCODED"], theirs["environment"]["LOCAL_FILES_ENCODED"],
        "the encoded script"
    );
    for b in [&ours, &theirs] {
        assert_eq!(
            b["command"].as_array().unwrap().len(),
            3,
            "{}",
            b["command"]
        );
        assert_eq!(b["command"][0], "bash");
        assert_eq!(b["command"][1], "-c");
    }
    let split = |b: &Value| {
        let s = b["command"][2].as_str().unwrap().to_string();
        let (decode, run) = s.split_once(" && ").expect("decode step && command");
        (decode.to_string(), shell_words(run))
    };
    let (our_decode, our_run) = split(&ours);
    let (their_decode, their_run) = split(&theirs);
    assert_eq!(our_decode, their_decode, "the decode step");
    assert_eq!(their_run, ["uv", "run", "train.py", "2"]);
    let norm = |w: Vec<String>| -> Vec<String> {
        w.into_iter()
            .map(|x| x.strip_prefix("./").map(String::from).unwrap_or(x))
            .collect()
    };
    assert_eq!(norm(our_run), their_run, "the command after it");
    for k in ["dockerImage", "flavor", "timeoutSeconds"] {
        assert_eq!(ours[k], theirs[k], "{k}");
    }
    h.no_canary_in_files();
}

/// A job another client started in the namespace, through the fake's own create path:
/// `environment` holds a number, a boolean and a null (`dict[str, Any]` in huggingface_hub's
/// `run_job`); no mlres label; it sleeps.
fn plant_foreign_job(h: &Hf) -> String {
    let j = mlres_fakehf::create_job_as(
        h.fake.state(),
        CANARY_TOKEN,
        "alice",
        &serde_json::json!({
            "command": ["/bin/sh", "-c", "sleep 60"],
            "arguments": [],
            "environment": {"WORKERS": 4, "DEBUG": true, "UNSET": null},
            "flavor": "cpu-basic",
            "dockerImage": "python:3.12",
            "timeoutSeconds": 120,
        }),
    )
    .unwrap();
    j["id"].as_str().unwrap().to_string()
}

fn fake_stage(h: &Hf, id: &str) -> String {
    h.jobs().into_iter().find(|j| j["id"] == id).unwrap()["stage"]
        .as_str()
        .unwrap()
        .to_string()
}

fn wait_stage(h: &Hf, id: &str, stage: &str) {
    let t = Instant::now();
    while fake_stage(h, id) != stage {
        assert!(t.elapsed() < WAIT, "job {id} never reached {stage}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_foreign_job_with_non_string_env_values_is_listed_and_cancelled() {
    let h = start(&Spec::default());
    h.ok(&["jobs", "run", "--config", "x=2", "--wait"]);
    let foreign = plant_foreign_job(&h);
    let list = h.json(&["jobs", "list", "--json"]);
    let rows = list["jobs"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{list}");
    assert!(rows.iter().any(|r| r["id"] == foreign.as_str()), "{list}");
    let out = h.run(&["loop", "stop"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&foreign) && err.contains("cancelled"), "{err}");
    wait_stage(&h, &foreign, "CANCELED");
    assert_eq!(h.status()["campaign"]["status"], "stopped");
}

/// A namespace listing that does not decode checked nothing: `loop stop` fails (exit 1) and
/// says why instead of "0 job(s) cancelled", the foreign job keeps running, the campaign
/// stays active with its stop requested, and the next `loop stop` retries and cancels it.
#[test]
fn loop_stop_reports_a_listing_that_does_not_decode_and_a_retry_cancels() {
    let h = start(&Spec::default());
    h.ok(&["jobs", "run", "--config", "x=2", "--wait"]);
    let foreign = plant_foreign_job(&h);
    // `status` as a bare string: a shape this client cannot read.
    h.fake
        .state()
        .serve_job_fields(&foreign, serde_json::json!({"status": "RUNNING"}));
    let list = h.run(&["jobs", "list", "--json"]);
    assert_eq!(code(&list), 1, "{}", stderr(&list));
    let out = h.run(&["loop", "stop"]);
    let (stdout, err) = (String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(code(&out), 1, "{stdout}\n{err}");
    assert!(!stdout.contains("job(s) cancelled"), "{stdout}");
    assert!(
        err.contains("namespace alice could not be checked")
            && err.contains("expected struct WireStatus")
            && err.contains("run `mlres loop stop` again"),
        "{err}"
    );
    assert_eq!(fake_stage(&h, &foreign), "RUNNING");
    let st = h.status();
    assert_eq!(st["campaign"]["status"], "active", "{st}");
    assert_eq!(st["campaign"]["stop_requested"], true, "{st}");
    // Still failing: still an error, never "nothing to cancel".
    let again = h.run(&["loop", "stop", "--json"]);
    assert_eq!(code(&again), 1, "{}", stderr(&again));
    // The listing reads again: the retry cancels the job and ends the campaign.
    h.fake.state().serve_job_fields(&foreign, Value::Null);
    let out = h.run(&["loop", "stop"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains(&foreign), "{}", stderr(&out));
    wait_stage(&h, &foreign, "CANCELED");
    assert_eq!(h.status()["campaign"]["status"], "stopped");
}

/// In the loop, a sweep whose listing does not decode is reported and retried: once the
/// listing reads again, the foreign job is cancelled and the campaign runs to its end.
#[test]
fn the_loop_reports_a_listing_that_does_not_decode_and_retries() {
    let h = start(&Spec {
        max_jobs: 2,
        values: "[1, 2]",
        script: "sleep 1; echo score={x}",
        ..Spec::default()
    });
    let child = h
        .cmd()
        .args(["loop", "run", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while h.jobs().is_empty() {
        assert!(t.elapsed() < WAIT, "no job started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let foreign = plant_foreign_job(&h);
    h.fake
        .state()
        .serve_job_fields(&foreign, serde_json::json!({"status": "RUNNING"}));
    // Several sweeps (every 50 ms) fail meanwhile.
    let lists = |h: &Hf| {
        h.fake.state().snapshot()["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["method"] == "GET" && is_listing(&r["path"]))
            .count()
    };
    let before = lists(&h);
    let t = Instant::now();
    while lists(&h) < before + 3 {
        assert!(t.elapsed() < WAIT, "the loop stopped listing");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(fake_stage(&h, &foreign), "RUNNING");
    h.fake.state().serve_job_fields(&foreign, Value::Null);
    let out = child.wait_with_output().unwrap();
    h.record(&["loop", "run", "undecodable"], &out);
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(
        err.contains("namespace alice could not be checked (retried at the next sweep)"),
        "{err}"
    );
    assert!(err.contains(&foreign) && err.contains("cancelled"), "{err}");
    wait_stage(&h, &foreign, "CANCELED");
}

/// `GET /api/jobs/alice`, with or without a query: a listing of the namespace.
fn is_listing(path: &Value) -> bool {
    let p = path.as_str().unwrap_or("");
    p == "/api/jobs/alice" || p.starts_with("/api/jobs/alice?")
}

fn listings(h: &Hf) -> Vec<String> {
    h.fake.state().snapshot()["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "GET" && is_listing(&r["path"]))
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect()
}

/// The loop's sweeps ask only for the stages a job can still be cancelled in; the first and
/// every 10th sweep (and `loop stop`'s) list every stage, so a job in a stage mlres does not
/// know is still seen.
#[test]
fn sweeps_list_live_stages_and_every_stage_on_stop() {
    let h = start(&Spec {
        max_jobs: 2,
        values: "[1, 2]",
        script: "sleep 1; echo score={x}",
        ..Spec::default()
    });
    let out = h.run(&["loop", "run", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let seen = listings(&h);
    let live = "/api/jobs/alice?stage=SCHEDULING&stage=RUNNING&stage=UPDATING";
    let filtered = seen.iter().filter(|p| *p == live).count();
    let full = seen.iter().filter(|p| *p == "/api/jobs/alice").count();
    assert_eq!(filtered + full, seen.len(), "{seen:?}");
    assert!(filtered >= 1 && full >= 1, "{seen:?}");
    // At most one full listing per ten sweeps, plus the forced ones (start and end).
    assert!(full <= seen.len().div_ceil(10) + 2, "{seen:?}");
    // The first sweep lists every stage.
    assert_eq!(seen[0], "/api/jobs/alice", "{seen:?}");
}

/// The loop and its supervisors share one request budget: with 30 requests a minute and
/// settings that would otherwise send dozens a second (50 ms polls and sweeps), the whole
/// campaign's API requests stay within what the bucket allows for the time it took, and the
/// campaign still finishes. `mlres doctor` shows the budget and what is left of it.
#[test]
fn the_request_budget_caps_the_loop_and_its_supervisors_together() {
    let h = start(&Spec {
        max_jobs: 2,
        values: "[1, 2]",
        script: "sleep 2; echo score={x}",
        ..Spec::default()
    });
    let api = |h: &Hf| {
        h.fake.state().snapshot()["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["path"].as_str().unwrap().starts_with("/api/"))
            .count()
    };
    let before = api(&h);
    let t0 = Instant::now();
    let out = h
        .cmd()
        .env("MLRES_HF_REQUESTS_PER_MINUTE", "30")
        .args(["loop", "run", "--json"])
        .output()
        .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    h.record(&["loop", "run", "budget"], &out);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["experiments"], 2, "{summary}");
    let sent = api(&h) - before;
    // A full bucket (30) plus the refill (30 a minute) over the run, plus rounding.
    let allowed = 30.0 + 30.0 * secs / 60.0 + 1.0;
    assert!(
        (sent as f64) <= allowed,
        "{sent} API requests in {secs:.1} s (allowed {allowed:.0})"
    );
    // (Without the budget the same settings send about 120 requests in under 5 s.)
    let doctor = h
        .cmd()
        .env("MLRES_HF_REQUESTS_PER_MINUTE", "30")
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    assert_eq!(code(&doctor), 0);
    let d: Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let budget = d["hf_api"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "request budget")
        .unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        budget.starts_with(
            "30 requests/min for the loop and its job supervisors together, at most 180 per 5 min"
        ) && budget.contains("left now")
            && !budget.contains("unused"),
        "{budget}"
    );
    h.no_canary_in_files();
}
