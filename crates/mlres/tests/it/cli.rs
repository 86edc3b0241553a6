use crate::support::{Env, Fast, code, stderr};

#[test]
fn help_teaches_the_workflow() {
    let env = Env::new();
    let out = env.ok(&["--help"]);
    insta::assert_snapshot!("help", out);
}

/// `check` output with the temp project path replaced, and what this machine enforces
/// (probed, so it differs between machines; `sandbox.rs` checks it) reduced to the limit, so
/// it can be snapshotted.
fn check_human(env: &Env) -> String {
    env.ok(&["check"])
        .replace(&env.project.display().to_string(), "[PROJECT]")
        .lines()
        .map(|l| match l.split_once("on this machine: ") {
            Some((indent, rest)) => {
                let what = rest
                    .split(" enforced")
                    .next()
                    .and_then(|w| w.split(" NOT").next())
                    .unwrap_or(rest);
                format!("{indent}on this machine: {what} [ENFORCED OR NOT]\n")
            }
            None => format!("{l}\n"),
        })
        .collect()
}

#[test]
fn check_prints_a_readable_summary_and_json_for_scripts() {
    let env = Env::new();
    env.write_program(
        &Fast {
            extra_objective: "target: 5\npatience: 3",
            ..Default::default()
        }
        .program(),
    );
    let out = check_human(&env);
    insta::assert_snapshot!("check_human", out);
    // Not the raw approval document.
    assert!(!out.contains('{') || out.contains("{x}"), "{out}");
    let j = env.json(&["check", "--json"]);
    // The fields scripts already read keep their names and shapes.
    assert_eq!(j["grid_size"], 6);
    let hash = j["hash"].as_str().unwrap();
    assert_eq!(hash.len(), 64);
    assert!(out.contains(&hash[..16]), "{out}");
    assert_eq!(j["campaign"]["envelope"]["max_jobs"], 6);
    assert!(j["program"].as_str().unwrap().ends_with("program.md"));
    assert_eq!(j["warnings"], serde_json::json!([]));
}

/// Dollars, Hub scope, an image, distributions with their sizes, and a warning.
#[test]
fn check_summarises_hf_jobs_budgets_and_random_search() {
    let env = Env::new();
    let p = Fast {
        method: "random",
        extra_space: "seed: 7",
        script: "echo score={x} lr={lr}",
        ..Default::default()
    }
    .program()
    .replace(
        "    values: [1, 2, 3, 4, 5, 6]",
        "    values: [1, 2, 3, 4, 5, 6]\n  lr:\n    distribution: log_uniform_values\n    min: 0.0001\n    max: 0.1\n  layers: {distribution: int_uniform, min: 1, max: 4}",
    )
    .replace("backends: [local]", "backends: [local, hf-jobs]\nmax_cost_usd: 2.50\nnamespace: alice\nimages: [\"python:3.12\"]\noutput_repos: [\"alice/sweep-*\"]")
    .replace("output_repos: []\n", "")
    .replace("backend: local", "backend: hf-jobs\nimage: \"python:3.12\"");
    env.write_program(&p);
    insta::assert_snapshot!("check_human_hf_random", check_human(&env));
}

/// A slurm job where no Slurm is configured (no `sbatch` in `MLRES_SLURM_BIN_DIR`) is refused
/// at submit with the reason, never run on another backend, and nothing is spent.
#[test]
fn a_slurm_job_without_slurm_is_refused_and_never_runs_elsewhere() {
    let good = Fast::default().program();
    let text = good
        .replace("backend: local", "backend: slurm")
        .replace("backends: [local]", "backends: [slurm]");
    let env = Env::new();
    env.write_program(&text);
    env.approve();
    let empty = env.path().join("no-slurm-here");
    std::fs::create_dir_all(&empty).unwrap();
    for args in [
        &["exp", "submit", "--config", "x=1", "--hypothesis", "h"][..],
        &["loop", "run"],
    ] {
        let out = env
            .cmd()
            .env("MLRES_SLURM_BIN_DIR", &empty)
            .args(args)
            .output()
            .unwrap();
        env.record(args, &out);
        assert_ne!(code(&out), 0, "{args:?}: accepted");
        let err = stderr(&out);
        assert!(
            err.contains("the slurm backend is unavailable"),
            "{args:?}: {err}"
        );
    }
    assert!(!env.state.join("jobs").exists(), "a job directory was made");
    // Doctor says why, and is not an error itself.
    let out = env
        .cmd()
        .env("MLRES_SLURM_BIN_DIR", &empty)
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    env.record(&["doctor", "--json"], &out);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["slurm"]["available"], false, "{v}");
    assert!(
        v["slurm"]["detail"]
            .as_str()
            .unwrap()
            .contains("sbatch not found"),
        "{v}"
    );
}

/// Programs that parse but could never run an experiment are refused by `check` and
/// `approve`, with the reason, before anything is approved or spent.
#[test]
fn check_and_approve_refuse_programs_that_cannot_run() {
    let good = Fast::default().program();
    let no_objective = {
        let start = good.find("## Objective").unwrap();
        let end = good.find("## Job").unwrap();
        format!("{}{}", &good[..start], &good[end..])
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("no objective", no_objective, "no `## Objective` section"),
        (
            "walltime under one timeout",
            Fast {
                max_walltime: "30s",
                ..Default::default()
            }
            .program(),
            "job timeout 1m is over max_walltime 30s",
        ),
        (
            "no jobs",
            Fast {
                max_jobs: 0,
                ..Default::default()
            }
            .program(),
            "`max_jobs` is 0",
        ),
        (
            "no money",
            good.replace("backends: [local]", "backends: [local]\nmax_cost_usd: 0"),
            "`max_cost_usd` is 0",
        ),
    ];
    for (name, text, needle) in cases {
        let env = Env::new();
        env.write_program(&text);
        env.set_secret();
        let secret = env.secret_file();
        for args in [&["check"][..], &["approve", "--secret-file", &secret]] {
            let out = env.run(args);
            assert_eq!(code(&out), 1, "{name} {args:?}: {}", stderr(&out));
            assert!(
                stderr(&out).contains(needle),
                "{name} {args:?}: {}",
                stderr(&out)
            );
            assert!(stderr(&out).contains("line "), "{name}: {}", stderr(&out));
        }
        let out = env.run(&["loop", "status", "--json"]);
        assert_ne!(code(&out), 0, "{name}: status accepted it");
        assert!(!env.project.join("runs").exists(), "{name}: something ran");
    }
}

/// A search parameter the command never uses is a warning (the sweep would run identical
/// jobs): shown by `check`, by `approve` before the human confirms, and listed in `--json`.
#[test]
fn warnings_are_shown_by_check_and_approve_and_listed_in_json() {
    let env = Env::new();
    env.write_program(
        &Fast {
            script: "echo score=1",
            ..Default::default()
        }
        .program(),
    );
    let out = check_human(&env);
    assert!(out.contains("Warning"), "{out}");
    assert!(
        out.contains("parameter `x` is not used by the job command"),
        "{out}"
    );
    let j = env.json(&["check", "--json"]);
    let w = j["warnings"].as_array().expect("warnings list");
    assert_eq!(w.len(), 1, "{j}");
    assert!(w[0]["message"].as_str().unwrap().contains("`x`"), "{j}");
    assert!(w[0]["line"].as_u64().unwrap() > 0, "{j}");
    assert!(w[0]["help"].as_str().unwrap().contains("{x}"), "{j}");
    // approve shows the warning on the screen the human reads before giving the secret.
    let out = env.approve_args(&[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    let warned = err.find("parameter `x` is not used").expect(&err);
    assert!(warned < err.find("Approved").unwrap_or(err.len()), "{err}");
    // ...and in its JSON.
    env.write_program(
        &Fast {
            script: "echo score=2",
            ..Default::default()
        }
        .program(),
    );
    let out = env.approve_args(&["--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["approved"], true);
    assert_eq!(j["warnings"].as_array().map(Vec::len), Some(1), "{j}");
}

/// `exp submit --config` takes NAME=VALUE pairs as well as a JSON object.
#[test]
fn exp_submit_takes_name_value_configs_too() {
    let env = Env::new();
    env.write_program(
        &Fast {
            values: r#"["1", "2"]"#,
            max_concurrent: 2,
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    // The space lists strings: `x=2` is the string "2", not the number 2.
    let e = env.json(&[
        "exp",
        "submit",
        "--config",
        "x=2",
        "--hypothesis",
        "h",
        "--json",
    ]);
    assert_eq!(e["config"], serde_json::json!({"x": "2"}), "{e}");
    let e = env.json(&[
        "exp",
        "submit",
        "--config",
        r#"{"x": "1"}"#,
        "--hypothesis",
        "h",
        "--json",
    ]);
    assert_eq!(e["config"], serde_json::json!({"x": "1"}), "{e}");
    for bad in [
        &["--config", "x"][..],
        &["--config", "x=3"],
        &["--config", "y=1"],
        &["--config", "x=1", "--config", "x=2"],
        &["--config", r#"{"x": "1"}"#, "--config", "x=1"],
    ] {
        let mut args = vec!["exp", "submit", "--hypothesis", "h"];
        args.extend_from_slice(bad);
        let out = env.run(&args);
        let err = stderr(&out);
        assert_eq!(code(&out), 3, "{bad:?}: {err}");
        assert!(
            err.contains("--config") || err.contains("`x`"),
            "{bad:?}: {err}"
        );
    }
    let status = env.json(&["loop", "status", "--json"]);
    assert_eq!(
        status["budget"]["jobs"]["used"], 2,
        "only the two good submits reserved"
    );
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
        // And a human cannot approve it either, so nothing can be spent.
        let out = env.approve_args(&[]);
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
    // A local attempt's job id names it; nothing was pushed, so no Hub URL.
    for r in &rows {
        let id = r["mlres"]["experiment_id"].as_i64().unwrap();
        assert_eq!(r["job_id"], format!("local-e{id}-a1"), "{r}");
        assert_eq!(r["mlres"]["backend"], "local");
        assert!(r["hub_url"].is_null(), "{r}");
    }
    // Two run at once, so evaluation order varies; every decision must agree with best_so_far.
    for r in &rows {
        let keep = r["decision"] == "keep";
        assert_eq!(keep, r["metric"] == r["best_so_far"], "{r}");
        assert!(
            r["best_so_far"].as_f64().unwrap() >= r["metric"].as_f64().unwrap(),
            "{r}"
        );
    }
    assert!(
        rows.iter()
            .any(|r| r["decision"] == "keep" && r["metric"] == 6.0)
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
    let out = env.run(&["loop", "run", "--json"]);
    assert_eq!(code(&out), 5, "no metric: the campaign failed");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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

#[test]
fn the_loop_stops_when_the_target_is_reached() {
    let env = Env::new();
    env.write_program(
        &Fast {
            extra_objective: "target: 3",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let s = env.json(&["loop", "run", "--json"]);
    assert_eq!(s["experiments"], 3, "{s}");
    assert!(s["stop_reason"].as_str().unwrap().contains("target"), "{s}");
}

#[test]
fn the_loop_stops_after_patience_runs_without_improvement() {
    let env = Env::new();
    env.write_program(
        &Fast {
            values: "[6, 5, 4, 3, 2, 1]",
            extra_objective: "patience: 2",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let s = env.json(&["loop", "run", "--json"]);
    // 6 is kept, then 5 and 4 do not improve: patience 2 is exhausted.
    assert_eq!(s["experiments"], 3, "{s}");
    assert!(
        s["stop_reason"].as_str().unwrap().contains("patience"),
        "{s}"
    );
    assert_eq!(s["best"]["metric"].as_f64(), Some(6.0));
}

#[test]
fn random_search_is_seeded_and_reproducible() {
    let configs = |seed: u64| {
        let env = Env::new();
        let space = format!("seed: {seed}");
        let mut p = Fast {
            method: "random",
            max_jobs: 4,
            extra_space: &space,
            ..Default::default()
        }
        .program();
        p = p.replace(
            "    values: [1, 2, 3, 4, 5, 6]",
            "    distribution: uniform\n    min: 0\n    max: 1",
        );
        env.write_program(&p);
        env.approve();
        env.ok(&["loop", "run"]);
        let s = env.json(&["loop", "status", "--json"]);
        s["experiments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["config"]["x"].as_f64().unwrap())
            .collect::<Vec<_>>()
    };
    let a = configs(7);
    assert_eq!(a.len(), 4);
    assert_eq!(a, configs(7), "same seed, same proposals");
    assert_ne!(a, configs(8), "another seed, other proposals");
    assert!(a.iter().all(|x| (0.0..=1.0).contains(x)));
}

#[test]
fn train_sft_reports_bad_data_with_the_line_and_trains_on_jsonl() {
    let env = Env::new();
    let data = env.path().join("train.jsonl");
    let rows: Vec<String> = (0..40)
        .map(|i| format!(r#"{{"prompt": "echo {i}:", "completion": "{i}"}}"#))
        .collect();
    std::fs::write(&data, rows.join("\n") + "\n").unwrap();
    let out = env.ok(&[
        "train",
        "sft",
        "--train-file",
        data.to_str().unwrap(),
        "--steps",
        "20",
        "--d-model",
        "16",
        "--heads",
        "2",
        "--layers",
        "1",
        "--log-every",
        "10",
        "--warmup",
        "2",
    ]);
    assert!(out.contains("step=10"), "{out}");
    assert!(
        out.lines().last().unwrap().starts_with("eval_loss="),
        "{out}"
    );
    std::fs::write(
        &data,
        "{\"prompt\": \"a\", \"completion\": \"b\"}\n{broken\n",
    )
    .unwrap();
    let o = env.run(&[
        "train",
        "sft",
        "--train-file",
        data.to_str().unwrap(),
        "--steps",
        "5",
    ]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("train.jsonl:2:"), "{}", stderr(&o));
    let o = env.run(&["train", "sft", "--task", "div2"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let o = env.run(&["train", "sft", "--lr=-1", "--steps", "5"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
}
