//! The loop tells the truth: where a job runs and why it failed, the exit status of a campaign
//! that produced nothing, what an interrupted loop leaves running, the stop reason, and a
//! `runs/summary.md` whose rows say what was known at that row.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Env, Fast, code, stderr};

/// Hang guard for waits on real processes (never a timing assertion).
const WAIT: Duration = Duration::from_secs(180);

const SH_C_ECHO: &str = r#"["/bin/sh", "-c", "echo score={x}"]"#;

fn submit(env: &Env, config: &str, hypothesis: &str) -> String {
    let v = env.json(&[
        "exp",
        "submit",
        "--config",
        config,
        "--hypothesis",
        hypothesis,
        "--json",
    ]);
    v["id"].as_i64().unwrap().to_string()
}

#[test]
fn a_job_finds_its_script_through_the_project_placeholder_and_runs_in_its_work_dir() {
    let env = Env::new();
    std::fs::write(
        env.project.join("job.sh"),
        "echo cwd=$(pwd)\necho score=$1\n",
    )
    .unwrap();
    env.write_program(
        &Fast::default()
            .program()
            .replace(SH_C_ECHO, r#"["/bin/sh", "{project}/job.sh", "{x}"]"#),
    );
    env.approve();
    let id = submit(&env, r#"{"x": 4}"#, "a script beside program.md");
    let e = env.json(&["exp", "wait", &id, "--timeout", "2m", "--json"]);
    assert_eq!(e["status"], "completed", "{e}");
    assert_eq!(e["metric"].as_f64(), Some(4.0), "{e}");
    let logs = env.ok(&["exp", "logs", &id]);
    let cwd = logs
        .lines()
        .find_map(|l| l.strip_prefix("cwd="))
        .unwrap_or_else(|| panic!("no cwd line: {logs}"));
    // The documented contract: a job runs in its attempt's work dir, not in the project.
    assert!(cwd.ends_with("/work"), "{cwd}");
    assert!(!cwd.starts_with(env.project.to_str().unwrap()), "{cwd}");
}

#[test]
fn a_failed_job_reports_the_end_of_its_stderr_redacted_not_the_sandbox() {
    let env = Env::new();
    let script = "i=0; while [ $i -lt 100 ]; do i=$((i+1)); echo noise-$i >&2; done; \
                  echo token=$MLRES_GRANTED >&2; echo cannot open file job.py >&2; exit 2";
    env.write_program(
        &Fast {
            script,
            extra_job: "secrets: [MLRES_GRANTED]",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let out = env
        .cmd()
        .env("MLRES_GRANTED", "granted-value-42")
        .args([
            "exp",
            "submit",
            "--config",
            r#"{"x": 1}"#,
            "--hypothesis",
            "fails",
            "--json",
        ])
        .output()
        .unwrap();
    env.record(&["exp", "submit"], &out);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"].to_string();
    let out = env.run(&["exp", "wait", &id, "--timeout", "2m", "--json"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = e["error"].as_str().unwrap_or_default();
    let reason = e["reason"].as_str().unwrap_or_default();
    for text in [error, reason] {
        assert!(text.contains("exited with code 2"), "{text}");
        assert!(text.contains("cannot open file job.py"), "{text}");
        assert!(
            !text.contains("network"),
            "the sandbox is not the reason: {text}"
        );
        assert!(!text.contains("granted-value-42"), "secret shown: {text}");
    }
    // The last lines of stderr, bounded: the end is there, the beginning is not.
    assert!(error.contains("token=[REDACTED:MLRES_GRANTED]"), "{error}");
    assert!(error.contains("noise-100"), "{error}");
    assert!(!error.contains("noise-50\n"), "{error}");
    assert!(error.len() < 4096, "{}", error.len());
    // The human view says the same.
    let human = env.ok(&["exp", "status", &id]);
    assert!(human.contains("cannot open file job.py"), "{human}");
    assert!(!human.contains("granted-value-42"), "{human}");
}

#[test]
fn a_campaign_in_which_no_experiment_produced_a_metric_exits_job_failed() {
    let env = Env::new();
    env.write_program(
        &Fast {
            script: "echo no metric here; exit 1",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let out = env.run(&["loop", "run", "--json"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        s["stop_reason"]
            .as_str()
            .unwrap()
            .contains("circuit breaker"),
        "{s}"
    );
    assert_eq!(s["best"], Value::Null, "{s}");
    assert_eq!(s["failed"], true, "{s}");
    let out = env.run(&["loop", "status"]);
    assert_eq!(code(&out), 0);

    // A campaign that produced a metric is a success even if some jobs failed.
    let env = Env::new();
    env.write_program(
        &Fast {
            max_jobs: 3,
            values: "[1, 2, 3]",
            script: "[ {x} = 2 ] && exit 1; echo score={x}",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let s = env.json(&["loop", "run", "--json"]);
    assert_eq!(s["failed"], false, "{s}");
    assert_eq!(s["best"]["metric"].as_f64(), Some(3.0), "{s}");
}

/// Spawns `mlres loop run` with piped stderr; lines arrive on the channel.
fn spawn_loop(env: &Env) -> (Child, mpsc::Receiver<String>) {
    let mut child = env
        .cmd()
        .args(["loop", "run"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Reads lines until one contains `needle`; returns everything read so far.
fn read_until(rx: &mpsc::Receiver<String>, needle: &str) -> String {
    let start = Instant::now();
    let mut seen = String::new();
    while start.elapsed() < WAIT {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) => {
                seen.push_str(&l);
                seen.push('\n');
                if l.contains(needle) {
                    return seen;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    panic!("never saw {needle:?}; stderr so far:\n{seen}");
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > WAIT {
            let _ = child.kill();
            panic!("`mlres loop run` did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigint_says_what_is_still_running_and_how_to_stop_or_resume_it() {
    let env = Env::new();
    env.write_program(
        &Fast {
            script: "sleep 600; echo score={x}",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let (mut child, rx) = spawn_loop(&env);
    read_until(&rx, "submitted");
    let st = env.json(&["loop", "status", "--json"]);
    let in_flight: Vec<i64> = st["in_flight"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(in_flight.len(), 1, "{st}");
    // SAFETY: plain kill(2) on the child we spawned.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = wait_exit(&mut child);
    let mut rest = String::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(5)) {
        rest.push_str(&l);
        rest.push('\n');
    }
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(rest.contains("interrupted"), "{rest}");
    assert!(rest.contains(&format!("{}", in_flight[0])), "{rest}");
    assert!(rest.contains("detached"), "{rest}");
    assert!(rest.contains("mlres"), "{rest}");
    assert!(rest.contains("loop stop"), "{rest}");
    assert!(rest.contains("loop run"), "{rest}");
    // What it said is true: the job is still running, and `loop stop` ends it.
    let st = env.json(&["loop", "status", "--json"]);
    assert_eq!(st["campaign"]["status"], "active", "{st}");
    assert_eq!(st["in_flight"], serde_json::json!(in_flight), "{st}");
    let s = env.json(&["loop", "stop", "--json"]);
    assert_eq!(s["cancelled"], 1, "{s}");
    let out = env.run(&["exp", "wait", &in_flight[0].to_string(), "--timeout", "2m"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
}

#[test]
fn a_finished_campaigns_stop_reason_is_immutable_and_status_shows_it() {
    let env = Env::new();
    env.write_program(
        &Fast {
            max_jobs: 2,
            values: "[1, 2]",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let s = env.json(&["loop", "run", "--json"]);
    let reason = s["stop_reason"].as_str().unwrap().to_string();
    let out = env.run(&["loop", "stop", "--reason", "changed my mind"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("already finished"), "{text}");
    assert!(text.contains(&reason), "{text}");
    let j = env.json(&["loop", "stop", "--reason", "again", "--json"]);
    assert_eq!(j["stop_requested"], false, "{j}");
    assert_eq!(j["already_ended"], true, "{j}");
    assert_eq!(j["stop_reason"], reason.as_str(), "{j}");
    let st = env.json(&["loop", "status", "--json"]);
    assert_eq!(st["campaign"]["stop_reason"], reason.as_str(), "{st}");
    assert_eq!(st["stop_reason"], reason.as_str(), "{st}");
    let human = env.ok(&["loop", "status"]);
    assert!(human.contains(&reason), "{human}");
    assert!(!human.contains("changed my mind"), "{human}");
    let events = env.ok(&["ledger", "events", "--limit", "5"]);
    assert!(!events.contains("changed my mind"), "{events}");
}

#[test]
fn the_operators_stop_reason_is_shown_while_stopping_and_kept_when_the_loop_ends() {
    let env = Env::new();
    env.write_program(
        &Fast {
            script: "sleep 600; echo score={x}",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let (mut child, rx) = spawn_loop(&env);
    read_until(&rx, "submitted");
    env.ok(&["loop", "stop", "--drain", "--reason", "GPU quota gone"]);
    // Stopping, job in flight: the status names the operator's reason.
    let st = env.json(&["loop", "status", "--json"]);
    assert_eq!(st["campaign"]["status"], "active", "{st}");
    assert!(
        st["stop_reason"]
            .as_str()
            .unwrap()
            .contains("GPU quota gone"),
        "{st}"
    );
    assert!(env.ok(&["loop", "status"]).contains("GPU quota gone"));
    env.ok(&["loop", "stop", "--reason", "GPU quota gone"]);
    let status = wait_exit(&mut child);
    // The operator stopped it: not a failed campaign, even without a metric.
    assert_eq!(status.code(), Some(0));
    let st = env.json(&["loop", "status", "--json"]);
    assert_eq!(st["campaign"]["status"], "stopped", "{st}");
    assert!(
        st["campaign"]["stop_reason"]
            .as_str()
            .unwrap()
            .contains("GPU quota gone"),
        "{st}"
    );
    assert!(env.ok(&["loop", "status"]).contains("GPU quota gone"));
}

#[test]
fn summary_best_so_far_is_the_best_up_to_each_row_and_agent_text_is_escaped() {
    let env = Env::new();
    // In the project, named by `{project}`: the job's sandbox then shows it the project
    // (read-only), nothing else of ours.
    let gate = env.project.join("gate");
    let script =
        "if [ {x} = 1 ]; then while [ ! -e {project}/gate ]; do sleep 0.05; done; fi; echo score={x}"
            .to_string();
    env.write_program(
        &Fast {
            script: &script,
            max_concurrent: 2,
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let hostile = "first line\nsecond | cell <script>alert(1)</script> `tick` *bold* [l](u)";
    let slow = submit(&env, r#"{"x": 1}"#, hostile);
    let fast = submit(&env, r#"{"x": 5}"#, "five");
    let e = env.json(&["exp", "wait", &fast, "--timeout", "2m", "--json"]);
    assert_eq!(e["metric"].as_f64(), Some(5.0), "{e}");
    std::fs::write(&gate, "").unwrap();
    let e = env.json(&["exp", "wait", &slow, "--timeout", "2m", "--json"]);
    assert_eq!(e["metric"].as_f64(), Some(1.0), "{e}");
    env.ok(&["ledger", "export"]);
    let md = std::fs::read_to_string(env.project.join("runs/summary.md")).unwrap();
    let header = md
        .lines()
        .position(|l| l.starts_with("| iter |"))
        .unwrap_or_else(|| panic!("{md}"));
    let columns = md.lines().nth(header).unwrap().matches(" | ").count();
    let rows: Vec<&str> = md
        .lines()
        .skip(header + 2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert_eq!(rows.len(), 2, "one line per experiment:\n{md}");
    // Every row has exactly the header's cells: nothing the agent wrote splits a cell.
    for r in &rows {
        assert_eq!(r.matches(" | ").count(), columns, "{r}");
    }
    let cells = |r: &str| -> Vec<String> {
        r.split(" | ")
            .map(|c| c.trim_matches('|').trim().to_string())
            .collect()
    };
    let first = cells(rows[0]);
    let second = cells(rows[1]);
    assert_eq!(first[0], "1", "{md}");
    assert_eq!(second[0], "2", "{md}");
    // Iteration 1 could not know iteration 2's 5.0.
    assert_eq!(first[5], "1.0000", "{md}");
    assert_eq!(second[5], "5.0000", "{md}");
    assert!(!md.contains("<script>"), "{md}");
    assert!(md.contains("&lt;script&gt;"), "{md}");
    assert!(rows[0].contains("first line second"), "{md}");
}
