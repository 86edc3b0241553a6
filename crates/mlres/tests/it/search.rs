//! `method: tpe` end to end and `mlres exp suggest`: log-scaled integers stay integers in the
//! ledger, suggestions spend nothing and can be submitted as printed.

use serde_json::Value;

use crate::support::{Env, Fast, code, stderr};

/// A TPE campaign over a log-scaled integer and a W&B `q_log_uniform_values` batch size; the
/// job scores `-(x-20)^2 - (b-100)^2/100` with shell integer arithmetic (so it fails on a
/// non-integer value).
fn tpe_program(max_jobs: u32) -> String {
    Fast {
        max_jobs,
        method: "tpe",
        extra_space: "seed: 3",
        script: "echo score=$(( -({x}-20)*({x}-20) - ({b}-100)*({b}-100)/100 ))",
        ..Default::default()
    }
    .program()
    .replace(
        "  x:\n    values: [1, 2, 3, 4, 5, 6]",
        "  x: {distribution: int_uniform, min: 1, max: 64, log: true}\n  b: {distribution: q_log_uniform_values, min: 16, max: 512}",
    )
}

fn configs(v: &Value) -> Vec<Value> {
    v["suggestions"]
        .as_array()
        .expect("suggestions")
        .iter()
        .map(|s| s["config"].clone())
        .collect()
}

#[test]
fn exp_suggest_proposes_integers_and_spends_nothing() {
    let env = Env::new();
    env.write_program(&tpe_program(12));
    // Not approved: refused like every other command that acts on the campaign.
    let out = env.run(&["exp", "suggest"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("approve"), "{}", stderr(&out));
    env.approve();
    let a = env.json(&["exp", "suggest", "-n", "3", "--json"]);
    let b = env.json(&["exp", "suggest", "--count", "3", "--json"]);
    assert_eq!(a, b, "suggestions are a pure function of seed and history");
    let cs = configs(&a);
    assert_eq!(cs.len(), 3);
    for c in &cs {
        let x = c["x"].as_i64().unwrap_or_else(|| panic!("integer x: {c}"));
        let bs = c["b"].as_i64().unwrap_or_else(|| panic!("integer b: {c}"));
        assert!((1..=64).contains(&x) && (16..=512).contains(&bs), "{c}");
    }
    assert!(cs[0] != cs[1] && cs[1] != cs[2] && cs[0] != cs[2], "{a}");
    assert_eq!(a["suggestions"][0]["method"], "tpe");
    let status = env.json(&["loop", "status", "--json"]);
    assert_eq!(status["experiments"], serde_json::json!([]), "{status}");
    // The human form prints a submit command that works as printed.
    let human = env.ok(&["exp", "suggest"]);
    let line = human
        .lines()
        .find(|l| l.trim_start().starts_with("mlres exp submit --config '"))
        .unwrap_or_else(|| panic!("{human}"));
    let json = line.split('\'').nth(1).expect("quoted config");
    let sub = env.json(&[
        "exp",
        "submit",
        "--config",
        json,
        "--hypothesis",
        "from suggest",
        "--json",
    ]);
    assert_eq!(&sub["config"], &cs[0], "{sub}");
    let bad = env.run(&["exp", "suggest", "-n", "0"]);
    assert_eq!(code(&bad), 2, "{}", stderr(&bad));
}

#[test]
fn loop_runs_tpe_with_log_integers_recorded_as_integers() {
    let env = Env::new();
    env.write_program(&tpe_program(14));
    env.approve();
    env.ok(&["loop", "run"]);
    let status = env.json(&["loop", "status", "--json"]);
    let exps = status["experiments"].as_array().expect("experiments");
    assert_eq!(exps.len(), 14, "{status}");
    let mut seen = std::collections::BTreeSet::new();
    for e in exps {
        let c = &e["config"];
        assert!(c["x"].is_i64() && c["b"].is_i64(), "{c}");
        assert!(seen.insert(c.to_string()), "proposed twice: {c}");
        assert!(e["metric"].is_number(), "{e}");
        let h = e["hypothesis"].as_str().unwrap_or("");
        assert!(h.starts_with("tpe proposal #"), "{h}");
    }
}

/// The loop skill tells agents to type `mlres exp suggest …` exactly as written there.
#[test]
fn the_skill_suggest_command_runs_as_written() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let skill = std::fs::read_to_string(root.join("plugin/skills/ml-research-loop/SKILL.md"))
        .expect("skill");
    let line = skill
        .lines()
        .find(|l| l.starts_with("mlres exp suggest"))
        .expect("the skill names exp suggest");
    let cmd = line.split('#').next().expect("command").trim();
    let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
    let env = Env::new();
    env.write_program(&tpe_program(4));
    env.approve();
    let out = env.json(&args);
    assert_eq!(configs(&out).len(), 2, "{cmd}: {out}");
}
