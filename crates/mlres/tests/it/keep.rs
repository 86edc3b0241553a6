//! The objective's keep/discard rules end to end, through the real binary and real jobs:
//! a percent accuracy is kept (a declared range refuses with the reason), a noise-aware
//! campaign on a job whose metric is pure seed noise keeps nothing but its first result and
//! records its evidence everywhere it reports, a rerun of the same config is not an
//! improvement, and early stopping prunes (cancels) jobs through the local backend without
//! tripping the circuit breaker.

use serde_json::Value;

use crate::support::{Env, Fast};

fn with_job(env: &Env, fast: &Fast<'_>, job: &str, command: &str) -> String {
    std::fs::write(env.project.join("job.py"), job).unwrap();
    fast.program()
        .replace(&format!(r#"["/bin/sh", "-c", "{}"]"#, fast.script), command)
}

fn events(env: &Env, kind: &str) -> Vec<Value> {
    let all = env.json(&["ledger", "events", "--json", "--limit", "5000"]);
    let list = all
        .as_array()
        .cloned()
        .or_else(|| all["events"].as_array().cloned())
        .unwrap_or_default();
    list.into_iter().filter(|e| e["kind"] == kind).collect()
}

#[test]
fn a_percent_accuracy_keeps_its_results_and_a_declared_range_refuses_with_why() {
    let env = Env::new();
    let fast = Fast {
        values: "[81.1, 86.4, 80.0]",
        max_jobs: 3,
        script: "echo val_accuracy={x}",
        ..Default::default()
    };
    env.write_program(
        &fast
            .program()
            .replace("metric: score", "metric: val_accuracy"),
    );
    env.approve();
    env.ok(&["loop", "run"]);
    let s = env.json(&["loop", "status", "--json"]);
    let decisions: Vec<&str> = s["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["keep", "keep", "discard"], "{s}");
    assert_eq!(s["best"]["metric"].as_f64(), Some(86.4), "{s}");
    let why = s["experiments"][0]["reason"].as_str().unwrap();
    assert!(
        why.contains("outside [0, 1]") && why.contains("range:"),
        "{why}"
    );

    // The same job with `range: [0, 1]` declared: every value is refused, and says why.
    let env = Env::new();
    let fast = Fast {
        extra_objective: "range: [0, 1]",
        ..fast
    };
    env.write_program(
        &fast
            .program()
            .replace("metric: score", "metric: val_accuracy"),
    );
    env.approve();
    env.run(&["loop", "run"]);
    let e = env.json(&["exp", "status", "1", "--json"]);
    assert_eq!(e["decision"], "anomalous", "{e}");
    assert!(
        e["reason"]
            .as_str()
            .unwrap()
            .contains("outside the objective's declared range [0, 1]"),
        "{e}"
    );
    let text = env.ok(&["exp", "status", "1"]);
    assert!(text.contains("declared range [0, 1]"), "{text}");
    let md = std::fs::read_to_string(env.project.join("runs/summary.md")).unwrap();
    assert!(md.contains("declared range \\[0, 1\\]"), "{md}");
}

/// The job's metric is pure seed noise: 0.92 + N(0, 0.002²), seeded by `{seed}`; `x` changes
/// nothing.
const NOISE_JOB: &str = "import random, sys\n\
r = random.Random(int(sys.argv[1]) * 7919)\n\
print('score=%.6f' % (0.92 + 0.002 * r.gauss(0, 1)))\n";

#[test]
fn a_noise_aware_campaign_on_pure_noise_keeps_only_its_first_result_and_shows_the_evidence() {
    let env = Env::new();
    let fast = Fast {
        values: "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]",
        max_jobs: 14,
        extra_objective: "noise: {repeats: 3}",
        ..Default::default()
    };
    env.write_program(&with_job(
        &env,
        &fast,
        NOISE_JOB,
        r#"["python3", "{project}/job.py", "{seed}", "{x}"]"#,
    ));
    env.approve();
    env.ok(&["loop", "run"]);
    let s = env.json(&["loop", "status", "--json"]);
    let exps = s["experiments"].as_array().unwrap();
    assert_eq!(exps.len(), 12, "10 grid points and 2 repeats: {s}");
    // The first result, then two repeats of it with other seeds, then the changes.
    assert!(
        exps[1]["hypothesis"]
            .as_str()
            .unwrap()
            .contains("run 2 of 3"),
        "{s}"
    );
    assert!(
        exps[2]["hypothesis"]
            .as_str()
            .unwrap()
            .contains("run 3 of 3"),
        "{s}"
    );
    assert_eq!(exps[1]["config"], exps[0]["config"]);
    let keeps: Vec<&Value> = exps.iter().filter(|e| e["decision"] == "keep").collect();
    assert_eq!(
        keeps.len(),
        1,
        "a seed change was kept as an improvement: {s}"
    );
    for e in &exps[3..] {
        let ev = &e["evidence"];
        assert_eq!(ev["noise_model"], "measured", "{e}");
        assert!(ev["p_value"].as_f64().unwrap() >= 0.05, "{e}");
        assert_eq!(ev["incumbent_n"].as_u64(), Some(3), "{e}");
        assert!(ev["df"].as_u64().unwrap() >= 2, "{e}");
        assert!(ev["sd"].as_f64().unwrap() > 0.0, "{e}");
        assert!(
            e["reason"].as_str().unwrap().contains("within the noise"),
            "{e}"
        );
    }
    assert!(
        s["keep_rule"].as_str().unwrap().contains("pooled t test"),
        "{s}"
    );
    // The evidence is in the ledger's evaluated events, in `exp status`, `loop status` and
    // runs/summary.md.
    let evaluated = events(&env, "evaluated");
    assert_eq!(evaluated.len(), 12);
    assert!(
        evaluated
            .iter()
            .all(|e| e["payload"]["evidence"]["noise_model"] == "measured"),
        "{evaluated:?}"
    );
    let id = exps[5]["id"].to_string();
    let e = env.json(&["exp", "status", &id, "--json"]);
    assert_eq!(e["evidence"]["noise_model"], "measured", "{e}");
    let text = env.ok(&["exp", "status", &id]);
    assert!(
        text.contains("evidence:") && text.contains("measured, df"),
        "{text}"
    );
    let text = env.ok(&["loop", "status"]);
    assert!(
        text.contains("keep rule: keep only an improvement"),
        "{text}"
    );
    assert!(text.contains("evidence: delta"), "{text}");
    let md = std::fs::read_to_string(env.project.join("runs/summary.md")).unwrap();
    assert!(md.contains("- Keep rule: keep only an improvement"), "{md}");
    assert!(md.contains("(measured, df"), "{md}");
}

#[test]
fn the_same_config_run_again_scoring_0_919_after_0_921_is_not_kept() {
    // Seed (= experiment id) 1 scores 0.921, any other 0.919: a lower loss by noise alone.
    let script = "if [ {seed} = 1 ]; then echo score=0.921; else echo score=0.919; fi";
    let run = |extra: &'static str| {
        let env = Env::new();
        let fast = Fast {
            script,
            extra_objective: extra,
            ..Default::default()
        };
        env.write_program(&fast.program().replace("goal: maximize", "goal: minimize"));
        env.approve();
        for _ in 0..2 {
            let v = env.json(&[
                "exp",
                "submit",
                "--config",
                "x=1",
                "--hypothesis",
                "same",
                "--json",
            ]);
            let id = v["id"].to_string();
            env.ok(&["exp", "wait", &id, "--timeout", "2m"]);
        }
        env.json(&["exp", "status", "2", "--json"])
    };
    let e = run("noise: {sd: 0.002}");
    assert_eq!(e["decision"], "discard", "{e}");
    assert_eq!(e["evidence"]["repeat_of"].as_i64(), Some(1), "{e}");
    assert!(
        e["reason"]
            .as_str()
            .unwrap()
            .contains("repeats the incumbent"),
        "{e}"
    );
    // Without `noise:` the rule is unchanged, but the record says what it could not tell.
    let e = run("");
    assert_eq!(e["decision"], "keep", "{e}");
    assert_eq!(e["evidence"]["noise_model"], "none", "{e}");
    assert!(
        e["reason"].as_str().unwrap().contains("same configuration"),
        "{e}"
    );
}

fn metric(e: &Value) -> f64 {
    e["metric"].as_f64().unwrap()
}

#[test]
fn repeats_of_the_incumbent_do_not_use_up_patience_and_the_best_is_their_mean() {
    // `patience: 2` with `noise: {repeats: 3}`: the first result's two repeats are not
    // hypotheses, so the loop goes on to two changes (grid points 2 and 3, the search's own
    // proposals, none used up by the repeats) before patience ends it. Before, it stopped
    // after the repeats alone, having tried one configuration.
    let env = Env::new();
    let fast = Fast {
        values: "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]",
        max_jobs: 14,
        extra_objective: "noise: {repeats: 3}\npatience: 2",
        ..Default::default()
    };
    env.write_program(&with_job(
        &env,
        &fast,
        NOISE_JOB,
        r#"["python3", "{project}/job.py", "{seed}", "{x}"]"#,
    ));
    env.approve();
    let out = env.ok(&["loop", "run"]);
    let s = env.json(&["loop", "status", "--json"]);
    let exps = s["experiments"].as_array().unwrap();
    assert_eq!(exps.len(), 5, "one result, two repeats, two changes: {s}");
    let stop = s["campaign"]["stop_reason"].as_str().unwrap();
    assert!(
        stop.contains("no improvement in the last 2 experiments (patience 2)"),
        "{stop}"
    );
    let hyp = |i: usize| exps[i]["hypothesis"].as_str().unwrap().to_string();
    assert!(hyp(1).contains("run 2 of 3") && hyp(2).contains("run 3 of 3"));
    assert!(hyp(0).starts_with("grid point 1/10"), "{}", hyp(0));
    assert!(hyp(3).starts_with("grid point 2/10"), "{}", hyp(3));
    assert!(hyp(4).starts_with("grid point 3/10"), "{}", hyp(4));
    // They still spend budget: five jobs used.
    assert_eq!(s["budget"]["jobs"]["used"].as_u64(), Some(5), "{s}");

    // The best is the incumbent's mean over its three runs, not its lucky first value.
    let mean = (metric(&exps[0]) + metric(&exps[1]) + metric(&exps[2])) / 3.0;
    let best = &s["best"];
    assert_eq!(best["id"], exps[0]["id"], "{best}");
    assert!(
        (best["metric"].as_f64().unwrap() - mean).abs() < 1e-9,
        "{best}"
    );
    assert_eq!(best["runs"].as_u64(), Some(3), "{best}");
    assert_eq!(best["best_single"]["id"], exps[0]["id"], "{best}");
    assert_eq!(
        best["best_single"]["metric"].as_f64(),
        Some(metric(&exps[0]))
    );
    assert!(out.contains("mean of 3 runs of its configuration"), "{out}");
    let text = env.ok(&["loop", "status"]);
    assert!(
        text.contains(&format!("= {mean:.4} (mean of 3 runs of its configuration")),
        "{text}"
    );
    let md = std::fs::read_to_string(env.project.join("runs/summary.md")).unwrap();
    assert!(md.contains("the incumbent's mean over 3 runs"), "{md}");
    // Its table's "best so far" is the mean too, from the third run on.
    let last = md.lines().find(|l| l.starts_with("| 5 | ")).unwrap();
    assert!(last.contains(&format!("| discard | {mean:.4} |")), "{last}");
    // An evaluation records the incumbent's mean as the best so far, and of how many runs.
    let e = env.json(&["exp", "status", &exps[4]["id"].to_string(), "--json"]);
    assert!(
        (e["best_so_far"].as_f64().unwrap() - mean).abs() < 1e-9,
        "{e}"
    );
    assert_eq!(e["evidence"]["best_runs"].as_u64(), Some(3), "{e}");
    assert_eq!(
        e["evidence"]["best_single"].as_f64(),
        Some(metric(&exps[0]))
    );
}

#[test]
fn under_noise_the_target_is_reached_by_the_incumbents_mean_not_one_lucky_seed() {
    let run = |script: &'static str, extra: &'static str| {
        let env = Env::new();
        let fast = Fast {
            script,
            max_jobs: 6,
            extra_objective: extra,
            ..Default::default()
        };
        env.write_program(&fast.program());
        env.approve();
        env.ok(&["loop", "run"]);
        env.json(&["loop", "status", "--json"])
    };
    // Seed (= experiment id) 1 scores 0.95, every other 0.90: the target 0.93 was one lucky
    // run. Its mean over three runs is 0.9167, so the loop goes on to its budget.
    let lucky = "if [ {seed} = 1 ]; then echo score=0.95; else echo score=0.90; fi";
    let s = run(lucky, "target: 0.93\nnoise: {repeats: 3}");
    let stop = s["campaign"]["stop_reason"].as_str().unwrap();
    assert!(stop.contains("max_jobs"), "{stop}");
    assert_eq!(s["experiments"].as_array().unwrap().len(), 6, "{s}");
    assert!(
        (s["best"]["metric"].as_f64().unwrap() - 2.75 / 3.0).abs() < 1e-9,
        "{s}"
    );
    assert_eq!(
        s["best"]["best_single"]["metric"].as_f64(),
        Some(0.95),
        "{s}"
    );
    // Every seed at 0.95: reached once the incumbent has its three runs, and said so.
    let s = run("echo score=0.95", "target: 0.93\nnoise: {repeats: 3}");
    let stop = s["campaign"]["stop_reason"].as_str().unwrap();
    assert!(
        stop.contains("target reached: the incumbent's mean 0.95 over 3 runs"),
        "{stop}"
    );
    assert_eq!(s["experiments"].as_array().unwrap().len(), 3, "{s}");
    // Without `noise:` nothing changes: the lucky run reaches the target, and the best has
    // neither `runs` nor `best_single`.
    let s = run(lucky, "target: 0.93");
    let stop = s["campaign"]["stop_reason"].as_str().unwrap();
    assert_eq!(
        stop, "target reached: best 0.95 meets the target 0.93",
        "{s}"
    );
    assert_eq!(s["experiments"].as_array().unwrap().len(), 1, "{s}");
    assert_eq!(s["best"]["metric"].as_f64(), Some(0.95));
    assert!(s["best"].get("runs").is_none() && s["best"].get("best_single").is_none());
}

/// A learning curve: 9 steps, `score` = x · step / 9, a pause per step so the loop sees it run.
const CURVE_JOB: &str = concat!(
    "import sys, time\n",
    "x = float(sys.argv[1])\n",
    "for step in range(1, 10):\n",
    "    print('step=%d score=%.4f' % (step, x * step / 9), flush=True)\n",
    "    time.sleep(0.4)\n",
);

#[test]
fn early_stopping_prunes_worse_curves_through_the_backend_and_records_them_as_pruned() {
    let env = Env::new();
    let fast = Fast {
        values: "[5, 1, 2, 3, 6]",
        max_jobs: 5,
        timeout: "5m",
        extra_objective: "max_consecutive_failures: 1\nearly_stop: {min_step: 1, max_step: 9, startup: 1}",
        ..Default::default()
    };
    env.write_program(&with_job(
        &env,
        &fast,
        CURVE_JOB,
        r#"["python3", "{project}/job.py", "{x}"]"#,
    ));
    env.approve();
    let out = env.run(&["loop", "run"]);
    let s = env.json(&["loop", "status", "--json"]);
    assert!(out.status.success(), "{out:?}\n{s}");
    let exps = s["experiments"].as_array().unwrap();
    // Pruned jobs are not failures: max_consecutive_failures 1 did not stop the campaign.
    assert_eq!(exps.len(), 5, "{s}");
    let status: Vec<&str> = exps.iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert_eq!(
        status,
        ["completed", "pruned", "pruned", "pruned", "completed"],
        "{s}"
    );
    let decisions: Vec<&str> = exps
        .iter()
        .map(|e| e["decision"].as_str().unwrap())
        .collect();
    assert_eq!(
        decisions,
        ["keep", "discard", "discard", "discard", "keep"],
        "{s}"
    );
    let e = env.json(&["exp", "status", "2", "--json"]);
    let why = e["reason"].as_str().unwrap();
    assert!(
        why.contains("pruned at step") && why.contains("ranked 2 of 2"),
        "{e}"
    );
    assert_eq!(
        e["metric"],
        Value::Null,
        "a partial-fidelity value is not the metric: {e}"
    );
    // Settled to what it used, not its 5-minute reservation.
    let walltime = s["budget"]["walltime_secs"]["used"].as_u64().unwrap();
    assert!(walltime < 60, "{s}");
    let pruned = events(&env, "pruned");
    assert_eq!(pruned.len(), 3, "{pruned:?}");
    // At the first rung the loop saw it reach (steps 1 and 3; which depends on when it looked).
    assert!(
        matches!(pruned[0]["payload"]["rung"].as_u64(), Some(0 | 1)),
        "{pruned:?}"
    );
    assert!(!events(&env, "rung").is_empty());
    // `exp wait` on a pruned job is not a failed job.
    let out = env.run(&["exp", "wait", "2", "--timeout", "1m"]);
    assert!(out.status.success(), "{out:?}");
    let md = std::fs::read_to_string(env.project.join("runs/summary.md")).unwrap();
    assert!(md.contains("- Early stopping: successive halving"), "{md}");
    assert!(md.contains("| pruned |"), "{md}");
    // The plugin's runs/ledger.jsonl calls it cancelled, not an error.
    let jsonl = std::fs::read_to_string(env.project.join("runs/ledger.jsonl")).unwrap();
    let row: Value = serde_json::from_str(jsonl.lines().nth(1).unwrap()).unwrap();
    assert_eq!(
        (row["status"].as_str(), row["mlres"]["outcome"].as_str()),
        (Some("cancelled"), Some("pruned")),
        "{row}"
    );
}
