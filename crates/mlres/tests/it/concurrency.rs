use std::process::Stdio;

use crate::support::{Env, Fast, code};

/// Many parallel `exp submit` processes against a nearly spent envelope never exceed it.
#[test]
fn parallel_submits_never_exceed_the_envelope() {
    let env = Env::new();
    let values: Vec<String> = (1..=40).map(|i| i.to_string()).collect();
    let values = format!("[{}]", values.join(", "));
    env.write_program(
        &Fast {
            max_jobs: 10,
            max_concurrent: 100,
            values: &values,
            script: "echo score={x}",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    // Spend most of the envelope first.
    for x in 1..=7 {
        env.ok(&[
            "exp",
            "submit",
            "--config",
            &format!(r#"{{"x": {x}}}"#),
            "--hypothesis",
            "warm-up",
        ]);
    }
    // 24 racing submits for the last 3 slots.
    let children: Vec<_> = (8..32)
        .map(|x| {
            env.cmd()
                .args([
                    "exp",
                    "submit",
                    "--config",
                    &format!(r#"{{"x": {x}}}"#),
                    "--hypothesis",
                    "race",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ok = 0;
    let mut refused = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        match code(&out) {
            0 => ok += 1,
            3 => {
                refused += 1;
                assert!(String::from_utf8_lossy(&out.stderr).contains("max_jobs"));
            }
            other => panic!(
                "unexpected exit {other}: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
    assert_eq!(ok, 3, "exactly the remaining budget may be spent");
    assert_eq!(refused, 21);
    let status = env.json(&["loop", "status", "--json"]);
    assert_eq!(status["budget"]["jobs"]["used"], 10);
    assert_eq!(status["experiments"].as_array().unwrap().len(), 10);
    let v = env.json(&["ledger", "verify", "--json"]);
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0), "{v}");
}

/// Attempt directories under the state dir (`jobs/<campaign>/e<N>-a<M>`).
pub fn attempt_dirs(state: &std::path::Path) -> usize {
    let Ok(campaigns) = std::fs::read_dir(state.join("jobs")) else {
        return 0;
    };
    campaigns
        .flatten()
        .filter_map(|c| std::fs::read_dir(c.path()).ok())
        .flat_map(|d| d.flatten())
        .filter(|e| e.path().is_dir())
        .count()
}

/// N `exp submit` processes started together right after an approval: they share one campaign
/// and exactly min(N, max_jobs) are accepted.
fn first_submits_race(n: u32, max_jobs: u32) {
    let env = Env::new();
    let values: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    env.write_program(
        &Fast {
            max_jobs,
            max_concurrent: 100,
            values: &format!("[{}]", values.join(", ")),
            script: "echo score={x}",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let children: Vec<_> = (1..=n)
        .map(|x| {
            env.cmd()
                .args([
                    "exp",
                    "submit",
                    "--config",
                    &format!(r#"{{"x": {x}}}"#),
                    "--hypothesis",
                    "first",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ok = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        match code(&out) {
            0 => ok += 1,
            3 => assert!(
                String::from_utf8_lossy(&out.stderr).contains("max_jobs"),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            ),
            other => panic!(
                "unexpected exit {other}: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
    assert_eq!(ok, n.min(max_jobs), "accepted");
    assert_eq!(attempt_dirs(&env.state), ok as usize, "attempt dirs");
    let status = env.json(&["loop", "status", "--json"]);
    assert_eq!(status["budget"]["jobs"]["used"], ok);
    let events = env.json(&["ledger", "events", "--json", "--limit", "100000"]);
    let created = events
        .as_array()
        .map(|a| a.iter().filter(|e| e["kind"] == "campaign_created").count());
    assert_eq!(created, Some(1), "one campaign per approval");
    let v = env.json(&["ledger", "verify", "--json"]);
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0), "{v}");
}

#[test]
fn sixteen_first_submits_open_one_campaign() {
    first_submits_race(16, 3);
}

#[test]
fn sixty_four_first_submits_open_one_campaign() {
    first_submits_race(64, 5);
}

/// One SQL statement used to refund the budget; now spending refuses (exit 4) and verify
/// names the rows.
#[test]
fn a_refund_by_sql_is_refused_with_exit_4() {
    let env = Env::new();
    env.write_program(
        &Fast {
            max_jobs: 6,
            max_concurrent: 100,
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    for x in 1..=3 {
        env.ok(&[
            "exp",
            "submit",
            "--config",
            &format!(r#"{{"x": {x}}}"#),
            "--hypothesis",
            "spend",
        ]);
    }
    let status = env.json(&["loop", "status", "--json"]);
    assert_eq!(status["budget"]["jobs"]["used"], 3);
    let db = rusqlite::Connection::open(env.state.join("ledger.sqlite3")).unwrap();
    db.execute("UPDATE experiments SET state = 'released'", [])
        .unwrap();
    drop(db);
    let out = env.run(&[
        "exp",
        "submit",
        "--config",
        r#"{"x": 4}"#,
        "--hypothesis",
        "after the refund",
    ]);
    assert_eq!(code(&out), 4, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("tampered"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.run(&["ledger", "verify", "--json"]);
    assert_ne!(code(&out), 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = v.to_string();
    assert!(text.contains("table_mismatch"), "{text}");
    let out = env.run(&["loop", "run"]);
    assert_eq!(code(&out), 4, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(attempt_dirs(&env.state), 3, "nothing more was launched");
}

/// `loop status` is a bounded view: the newest experiments, a page at a time, with counts and
/// budget covering the whole campaign.
#[test]
fn loop_status_pages_through_a_campaign() {
    let env = Env::new();
    env.write_program(
        &Fast {
            max_jobs: 8,
            values: "[1, 2, 3, 4, 5, 6, 7, 8]",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    env.ok(&["loop", "run"]);
    let iters = |v: &serde_json::Value| -> Vec<u64> {
        v["experiments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["iter"].as_u64().unwrap())
            .collect()
    };
    let all = env.json(&["loop", "status", "--json"]);
    assert_eq!(iters(&all), (1..=8).collect::<Vec<_>>());
    assert_eq!(all["page"]["total"], 8);
    assert_eq!(all["page"]["next_before_iter"], serde_json::Value::Null);
    let p1 = env.json(&["loop", "status", "--json", "--limit", "3"]);
    assert_eq!(iters(&p1), vec![6, 7, 8]);
    assert_eq!(p1["page"]["total"], 8);
    assert_eq!(p1["budget"]["jobs"]["used"], 8);
    assert_eq!(p1["best"]["iter"], 8, "{p1}");
    assert_eq!(p1["page"]["next_before_iter"], 6);
    let p2 = env.json(&[
        "loop",
        "status",
        "--json",
        "--limit",
        "3",
        "--before-iter",
        "6",
    ]);
    assert_eq!(iters(&p2), vec![3, 4, 5]);
    let p3 = env.json(&[
        "loop",
        "status",
        "--json",
        "--limit",
        "3",
        "--before-iter",
        "3",
    ]);
    assert_eq!(iters(&p3), vec![1, 2]);
    assert_eq!(p3["page"]["next_before_iter"], serde_json::Value::Null);
    let human = env.ok(&["loop", "status", "--limit", "2"]);
    assert!(human.contains("showing 2 of 8 experiments"), "{human}");
    assert!(human.contains("--before-iter 7"), "{human}");
    let out = env.run(&["loop", "status", "--limit", "0"]);
    assert_eq!(code(&out), 2);
}
