use crate::support::{Env, Fast, code, stderr};

#[test]
fn help_teaches_the_workflow() {
    let env = Env::new();
    let out = env.ok(&["--help"]);
    insta::assert_snapshot!("help", out);
}

#[test]
fn check_prints_the_resolved_campaign_and_json() {
    let env = Env::new();
    env.write_program(&Fast::default().program());
    let out = env.ok(&["check"]);
    assert!(out.contains("is valid"), "{out}");
    assert!(out.contains("max_jobs"), "{out}");
    let j = env.json(&["check", "--json"]);
    assert_eq!(j["grid_size"], 6);
    assert_eq!(j["hash"].as_str().map(str::len), Some(64));
}

/// Every malformed program is a clear error naming the line, and nothing is spent.
#[test]
fn malformed_programs_name_the_line_and_spend_nothing() {
    let good = Fast::default().program();
    let cases: Vec<(&str, String)> = vec![
        (
            "duplicate key",
            good.replace("max_jobs: 6\n", "max_jobs: 6\nmax_jobs: 7\n"),
        ),
        (
            "unknown key",
            good.replace("max_jobs: 6\n", "max_jobs: 6\nmax_jbos: 7\n"),
        ),
        ("wrong type", good.replace("max_jobs: 6", "max_jobs: \"6\"")),
        ("decimal jobs", good.replace("max_jobs: 6", "max_jobs: 6.0")),
        (
            "exponent duration",
            good.replace("max_walltime: 1h", "max_walltime: 1e5s"),
        ),
        (
            "signed duration",
            good.replace("max_walltime: 1h", "max_walltime: +86400"),
        ),
        (
            "underscore duration",
            good.replace("max_walltime: 1h", "max_walltime: 86_400"),
        ),
        (
            "two envelopes",
            good.replace(
                "## Objective",
                "## Budget envelope\n```yaml\nmax_jobs: 1\n```\n\n## Objective",
            ),
        ),
        (
            "hidden envelope",
            format!("<!--\n## Budget envelope\n```yaml\nmax_jobs: 999\n```\n-->\n{good}"),
        ),
    ];
    for (name, text) in cases {
        let env = Env::new();
        env.write_program(&text);
        let out = env.run(&["check"]);
        assert_ne!(code(&out), 0, "{name}: accepted");
        let err = stderr(&out);
        assert!(err.contains("line "), "{name}: no line in {err}");
        // And an operator cannot approve it either, so nothing can be spent.
        let out = env.run(&["approve", "--operator"]);
        assert_ne!(code(&out), 0, "{name}: approved");
        let out = env.run(&[
            "exp",
            "submit",
            "--config",
            r#"{"x": 1}"#,
            "--hypothesis",
            "h",
        ]);
        assert_ne!(code(&out), 0, "{name}: submitted");
        assert!(!env.project.join("runs").exists(), "{name}: something ran");
    }
}

#[test]
fn submitted_configs_must_lie_in_the_approved_search_space() {
    let env = Env::new();
    env.write_program(&Fast::default().program());
    env.approve();
    for bad in [
        r#"{"x": 7}"#,
        r#"{"x": 1, "y": 2}"#,
        r#"{}"#,
        r#"{"x": "1; rm -rf /"}"#,
        r#"[1]"#,
        "not json",
    ] {
        let out = env.run(&["exp", "submit", "--config", bad, "--hypothesis", "h"]);
        assert_eq!(code(&out), 3, "{bad}: {}", stderr(&out));
    }
    let out = env.run(&[
        "exp",
        "submit",
        "--config",
        r#"{"x": 1}"#,
        "--hypothesis",
        "  ",
    ]);
    assert_eq!(code(&out), 3, "empty hypothesis: {}", stderr(&out));
    let status = env.json(&["loop", "status", "--json"]);
    assert_eq!(status["budget"]["jobs"]["used"], 0);
}

#[test]
fn loop_runs_to_completion_and_exports_plugin_rows() {
    let env = Env::new();
    env.write_program(
        &Fast {
            max_concurrent: 2,
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let summary = env.json(&["loop", "run", "--json"]);
    assert_eq!(summary["experiments"], 6);
    assert_eq!(summary["best"]["metric"].as_f64(), Some(6.0));
    assert_eq!(summary["best"]["config"]["x"], 6);
    let jsonl = std::fs::read_to_string(env.project.join("runs/ledger.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 6);
    for key in [
        "iter",
        "ts",
        "hypothesis",
        "config",
        "job_id",
        "status",
        "metric",
        "hub_url",
        "decision",
        "best_so_far",
        "timeout",
    ] {
        assert!(rows.iter().all(|r| r.get(key).is_some()), "missing {key}");
    }
    assert!(rows.iter().all(|r| r["status"] == "completed"));
    assert_eq!(
        rows.iter().filter(|r| r["decision"] == "keep").count(),
        6,
        "grid ascending: every run improves"
    );
    let summary_md = std::fs::read_to_string(env.project.join("runs/summary.md")).unwrap();
    assert!(summary_md.contains("| 6 |"), "{summary_md}");
    let v = env.json(&["ledger", "verify", "--json"]);
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0));
}

#[test]
fn three_consecutive_failures_trip_the_circuit_breaker() {
    let env = Env::new();
    env.write_program(
        &Fast {
            max_jobs: 6,
            script: "exit 1",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let s = env.json(&["loop", "run", "--json"]);
    assert_eq!(s["experiments"], 3, "{s}");
    assert!(s["stop_reason"].as_str().unwrap().contains("fail"), "{s}");
}

#[test]
fn in_flight_jobs_reserve_their_whole_timeout_and_settle_to_actual_duration() {
    let env = Env::new();
    env.write_program(
        &Fast {
            max_walltime: "150s",
            timeout: "1m",
            max_concurrent: 5,
            script: "sleep 30; echo score={x}",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let mut ids = vec![];
    for x in [1, 2] {
        let e = env.json(&[
            "exp",
            "submit",
            "--config",
            &format!(r#"{{"x": {x}}}"#),
            "--hypothesis",
            "h",
            "--json",
        ]);
        ids.push(e["id"].as_i64().unwrap().to_string());
    }
    // 2 x 60 s reserved; a third would need 180 s > 150 s.
    let out = env.run(&[
        "exp",
        "submit",
        "--config",
        r#"{"x": 3}"#,
        "--hypothesis",
        "h",
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("max_walltime"), "{}", stderr(&out));
    let status = env.json(&["loop", "status", "--json"]);
    assert_eq!(status["budget"]["walltime_secs"]["used"], 120);
    assert_eq!(status["budget"]["jobs"]["used"], 2);
    // Cancel them: they settle to what they actually ran, freeing the rest of the reservation.
    env.ok(&["loop", "stop", "--drain"]);
    let _ = env.run(&["loop", "stop"]);
    for id in &ids {
        let _ = env.run(&["exp", "wait", id, "--timeout", "2m"]);
    }
    let status = env.json(&["loop", "status", "--json"]);
    let used = status["budget"]["walltime_secs"]["used"].as_u64().unwrap();
    assert!(
        used < 120,
        "settled walltime should be the real duration, got {used}"
    );
}

#[test]
fn loop_stop_cancels_jobs_in_flight() {
    let env = Env::new();
    env.write_program(
        &Fast {
            script: "sleep 600; echo score={x}",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let e = env.json(&[
        "exp",
        "submit",
        "--config",
        r#"{"x": 1}"#,
        "--hypothesis",
        "slow",
        "--json",
    ]);
    let id = e["id"].as_i64().unwrap().to_string();
    let s = env.json(&["loop", "stop", "--json"]);
    assert_eq!(s["cancelled"], 1);
    let out = env.run(&["exp", "wait", &id, "--json", "--timeout", "2m"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "cancelled");
    let status = env.json(&["loop", "status", "--json"]);
    assert_eq!(status["campaign"]["status"], "stopped");
}
