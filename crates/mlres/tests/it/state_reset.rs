//! A missing, moved or replaced state dir is noticed: before a run (nothing is approved or
//! spent until a human acknowledges the reset) and during one (`loop run` stops, never hangs).

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{Env, Fast, code, stderr};

fn env_with_history() -> Env {
    let env = Env::new();
    env.write_program(
        &Fast {
            max_jobs: 2,
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    env.ok(&["loop", "run"]);
    let status = env.json(&["loop", "status", "--json"]);
    assert_eq!(status["budget"]["jobs"]["used"], 2);
    env
}

fn assert_reset_refused(env: &Env) {
    let secret = env.secret_file();
    for args in [
        &[
            "exp",
            "submit",
            "--config",
            r#"{"x": 3}"#,
            "--hypothesis",
            "again",
        ][..],
        &["loop", "run"][..],
        &["approve", "--secret-file", &secret][..],
    ] {
        let out = env.run(args);
        assert_eq!(code(&out), 4, "{args:?}: {}", stderr(&out));
        let e = stderr(&out);
        assert!(e.contains("another ledger"), "{args:?}: {e}");
        assert!(e.contains("--acknowledge-reset"), "{args:?}: {e}");
    }
    // Nothing was recorded: the fresh ledger holds no approval and no campaign.
    let out = env.run(&["ledger", "events", "--json"]);
    let events: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(
        events.as_array().is_none_or(|a| a
            .iter()
            .all(|e| e["kind"] != "approval_recorded" && e["kind"] != "reserved")),
        "{events}"
    );
}

fn acknowledge_and_continue(env: &Env) {
    // The replaced state dir has no approval secret either: the human sets it up again.
    let out = env.approve_args(&["--acknowledge-reset"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    env.ok(&["loop", "run"]);
    let status = env.json(&["loop", "status", "--json"]);
    let id = status["campaign"]["id"]
        .as_str()
        .or_else(|| status["campaign"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(id.ends_with("-2"), "campaign ids are not reused: {status}");
    let events = env.json(&["ledger", "events", "--json"]);
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "ledger_reset_acknowledged"),
        "{events}"
    );
}

#[test]
fn a_deleted_state_dir_needs_an_acknowledged_reset() {
    let env = env_with_history();
    std::fs::remove_dir_all(&env.state).unwrap();
    assert_reset_refused(&env);
    acknowledge_and_continue(&env);
}

#[test]
fn a_moved_state_dir_needs_an_acknowledged_reset() {
    let env = env_with_history();
    std::fs::rename(&env.state, env.path().join("moved-state")).unwrap();
    assert_reset_refused(&env);
    acknowledge_and_continue(&env);
}

/// The state dir vanishing under a running loop ends it with a clear error (exit 4).
#[test]
fn loop_run_stops_when_its_state_vanishes() {
    for how in ["delete", "move"] {
        let env = Env::new();
        env.write_program(
            &Fast {
                max_jobs: 4,
                script: "sleep 2; echo score={x}",
                ..Default::default()
            }
            .program(),
        );
        env.approve();
        let child = env
            .cmd()
            .args(["loop", "run"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Hang guard only: wait for the first job to be launched.
        let t = Instant::now();
        while crate::concurrency::attempt_dirs(&env.state) == 0 {
            assert!(t.elapsed() < Duration::from_secs(120), "no job launched");
            std::thread::sleep(Duration::from_millis(20));
        }
        match how {
            // The job's supervisor may be writing into it: retry until it is gone.
            "delete" => {
                while env.state.exists() {
                    let _ = std::fs::remove_dir_all(&env.state);
                }
            }
            _ => std::fs::rename(&env.state, env.path().join("elsewhere")).unwrap(),
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("loop run hung after its state dir vanished")
            .unwrap();
        env.record(&["loop", "run", how], &out);
        assert_eq!(code(&out), 4, "{how}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("state directory is gone"),
            "{how}: {}",
            stderr(&out)
        );
    }
}
