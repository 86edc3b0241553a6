//! Retention: a long campaign does not keep every finished attempt's directory. Kept and
//! recent experiments keep theirs; older discarded ones are removed, the removal is in the
//! ledger, and `exp logs` and `exp artifacts` say why the logs and outputs are gone.

use serde_json::Value;

use crate::support::{Env, Fast, code, stderr};

#[test]
fn old_discarded_attempts_are_removed_and_the_rest_kept() {
    let env = Env::new();
    // The first value is the best: every later experiment is discarded.
    let values: Vec<String> = std::iter::once(100)
        .chain(1..=23)
        .map(|v| v.to_string())
        .collect();
    let values = format!("[{}]", values.join(", "));
    env.write_program(
        &Fast {
            max_jobs: 24,
            values: &values,
            script: "echo x={x} > out.txt; echo score={x}",
            extra_job: "outputs: [out.txt]",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let out = env
        .cmd()
        .env("MLRES_KEEP_ATTEMPTS", "10")
        .args(["loop", "run", "--json"])
        .output()
        .unwrap();
    env.record(&["loop", "run"], &out);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["experiments"], 24, "{s}");

    let status = env.json(&["loop", "status", "--json", "--limit", "100"]);
    let exps = status["experiments"].as_array().unwrap();
    assert_eq!(exps.len(), 24);
    let campaign = status["campaign"]["id"].as_str().unwrap();
    let jobs = env.state.join("jobs").join(campaign);
    let has_dir = |id: i64| jobs.join(format!("e{id}-a1")).is_dir();
    let mut ids: Vec<(i64, String)> = exps
        .iter()
        .map(|e| {
            (
                e["id"].as_i64().unwrap(),
                e["decision"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    ids.sort();
    let kept: Vec<i64> = ids
        .iter()
        .filter(|(_, d)| d == "keep")
        .map(|x| x.0)
        .collect();
    assert_eq!(kept.len(), 1, "{ids:?}");
    assert!(has_dir(kept[0]), "a kept experiment keeps its attempt dir");
    let discarded: Vec<i64> = ids
        .iter()
        .filter(|(_, d)| d == "discard")
        .map(|x| x.0)
        .collect();
    assert_eq!(discarded.len(), 23);
    let (old, recent) = discarded.split_at(discarded.len() - 10);
    for id in recent {
        assert!(has_dir(*id), "recent experiment {id} keeps its attempt dir");
    }
    for id in old {
        assert!(!has_dir(*id), "old discarded experiment {id} was removed");
    }
    // The removal is recorded, and the ledger still verifies.
    let events = env.ok(&["ledger", "events", "--json"]);
    assert!(events.contains("attempts_pruned"), "{events}");
    env.ok(&["ledger", "verify"]);
    // What an old experiment still has: its metric in the ledger; its logs say why they are gone.
    let e = env.json(&["exp", "status", &old[0].to_string(), "--json"]);
    assert!(e["metric"].as_f64().is_some(), "{e}");
    let out = env.run(&["exp", "logs", &old[0].to_string()]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("retention"), "{}", stderr(&out));
    // A recent one still shows its logs.
    let logs = env.ok(&["exp", "logs", &recent[0].to_string()]);
    assert!(logs.contains("score="), "{logs}");
    // Its outputs went with it, and `exp artifacts` says so; the kept one's still come back.
    let out = env.run(&["exp", "artifacts", &old[0].to_string()]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("outputs are gone"), "{err}");
    assert!(
        err.contains("retention rule") && err.contains("MLRES_KEEP_ATTEMPTS"),
        "{err}"
    );
    assert!(!env.project.join("artifacts").exists());
    let v = env.json(&["exp", "artifacts", &kept[0].to_string(), "--json"]);
    assert_eq!(v["decision"], "keep");
    assert_eq!(v["files"][0]["path"], "out.txt");
    let dest = env.project.join(format!("artifacts/e{}/out.txt", kept[0]));
    assert_eq!(std::fs::read_to_string(dest).unwrap(), "x=100\n");
}

#[test]
fn a_bad_retention_setting_is_a_usage_error_and_spends_nothing() {
    let env = Env::new();
    env.write_program(&Fast::default().program());
    env.approve();
    for bad in ["3", "lots", "-1"] {
        let out = env
            .cmd()
            .env("MLRES_KEEP_ATTEMPTS", bad)
            .args(["loop", "run"])
            .output()
            .unwrap();
        env.record(&["loop", "run", bad], &out);
        assert_eq!(code(&out), 2, "{bad}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("MLRES_KEEP_ATTEMPTS"),
            "{}",
            stderr(&out)
        );
    }
    assert!(!env.state.join("jobs").exists(), "nothing was launched");
}
