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

/// A campaign whose configs come from `propose.py` in the project (`method: command`).
fn command_program(max_jobs: u32, extra: &str) -> String {
    Fast {
        max_jobs,
        method: "command",
        extra_space: &format!("command: [python3, propose.py]\n{extra}"),
        ..Default::default()
    }
    .program()
}

/// Proposes the first untried x; prints garbage on its first attempt of the third
/// proposal, to exercise the retry; records the environment names it was given.
const PROPOSER: &str = r#"import json, os, sys
s = json.load(sys.stdin)
with open("proposer-env.txt", "a") as f:
    f.write(" ".join(sorted(os.environ)) + "\n" + " ".join(os.environ.values()) + "\n")
tried = [h["config"] for h in s["history"]] + s["pending"]
if len(tried) == 2 and s["attempt"] == 1:
    print("thinking... no JSON here")
    sys.exit(0)
for x in [1, 2, 3, 4, 5, 6]:
    if {"x": x} not in tried:
        print("some chatter first")
        print(json.dumps({"hypothesis": f"x={x} after {len(s['rejected'])} refusals", "config": {"x": x}}))
        break
"#;

#[test]
fn a_command_proposes_each_config_and_gets_no_secrets() {
    let env = Env::new();
    env.write_program(&command_program(3, ""));
    std::fs::write(env.project.join("propose.py"), PROPOSER).unwrap();
    env.approve();
    let out = env
        .cmd()
        .args(["loop", "run"])
        .env("HF_TOKEN", "hf_canaryCANARYproposer000")
        .env("MY_SECRET", "mlresCANARYproposer")
        .output()
        .expect("run");
    env.record(&["loop", "run"], &out);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let status = env.json(&["loop", "status", "--json"]);
    let hyps: Vec<&str> = status["experiments"]
        .as_array()
        .expect("experiments")
        .iter()
        .map(|e| e["hypothesis"].as_str().expect("hypothesis"))
        .collect();
    assert_eq!(
        hyps,
        vec![
            "x=1 after 0 refusals",
            "x=2 after 0 refusals",
            "x=3 after 1 refusals"
        ],
        "{status}"
    );
    let seen = std::fs::read_to_string(env.project.join("proposer-env.txt")).expect("env");
    assert!(
        !seen.contains("HF_TOKEN") && !seen.contains("MY_SECRET"),
        "{seen}"
    );
    assert!(!seen.contains("CANARY"), "{seen}");
    assert!(seen.contains("PATH"), "{seen}");
}

#[test]
fn invalid_proposals_are_refused_then_the_loop_stops_with_the_reasons() {
    let env = Env::new();
    env.write_program(&command_program(3, ""));
    std::fs::write(
        env.project.join("propose.py"),
        "print('{\"hypothesis\": \"big\", \"config\": {\"x\": 99}}')\n",
    )
    .unwrap();
    env.approve();
    let out = env.run(&["loop", "run"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("proposer_failed"), "{err}");
    assert!(err.contains("in 3 attempts"), "{err}");
    assert!(
        err.contains("#1 invalid config: `x` must be one of"),
        "{err}"
    );
    assert!(err.contains("#3 "), "{err}");
    let status = env.json(&["loop", "status", "--json"]);
    assert_eq!(
        status["experiments"],
        serde_json::json!([]),
        "nothing spent: {status}"
    );

    // A proposer that hangs is killed at its timeout and refused the same way.
    let env = Env::new();
    env.write_program(&command_program(3, "timeout: 1s"));
    std::fs::write(
        env.project.join("propose.py"),
        "import time\ntime.sleep(30)\n",
    )
    .unwrap();
    env.approve();
    let out = env.run(&["loop", "run"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("#1 timed out after 1s"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn method_command_needs_a_command_and_only_it_takes_one() {
    let env = Env::new();
    env.write_program(
        &Fast {
            method: "command",
            ..Default::default()
        }
        .program(),
    );
    let out = env.run(&["check"]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("`method: command` needs `command`"),
        "{}",
        stderr(&out)
    );
    env.write_program(
        &Fast {
            extra_space: "command: [python3, propose.py]",
            ..Default::default()
        }
        .program(),
    );
    let out = env.run(&["check"]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("`command` is only used with `method: command`"),
        "{}",
        stderr(&out)
    );
}

/// Three workers at once: each proposal counts the running ones as pending, so a six-value
/// space is covered by six distinct experiments.
#[test]
fn parallel_tpe_never_proposes_a_running_config_again() {
    let env = Env::new();
    env.write_program(
        &Fast {
            max_jobs: 6,
            max_concurrent: 3,
            method: "tpe",
            script: "sleep 0.3; echo score={x}",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    env.ok(&["loop", "run"]);
    let status = env.json(&["loop", "status", "--json"]);
    let mut xs: Vec<i64> = status["experiments"]
        .as_array()
        .expect("experiments")
        .iter()
        .map(|e| e["config"]["x"].as_i64().expect("x"))
        .collect();
    xs.sort();
    assert_eq!(xs, vec![1, 2, 3, 4, 5, 6], "{status}");
}

#[test]
fn loop_runs_bayes_and_suggest_names_it() {
    let env = Env::new();
    env.write_program(&tpe_program(14).replace("method: tpe\n", "method: bayes\n"));
    let check = env.ok(&["check"]);
    assert!(
        check.contains("Search     bayes (Gaussian process) over 2 parameter(s), seed 3"),
        "{check}"
    );
    env.approve();
    let s = env.json(&["exp", "suggest", "-n", "2", "--json"]);
    assert_eq!(s["suggestions"][0]["method"], "bayes", "{s}");
    env.ok(&["loop", "run"]);
    let status = env.json(&["loop", "status", "--json"]);
    let exps = status["experiments"].as_array().expect("experiments");
    assert_eq!(exps.len(), 14, "{status}");
    let mut seen = std::collections::BTreeSet::new();
    let mut best = i64::MIN;
    for e in exps {
        let c = &e["config"];
        assert!(c["x"].is_i64() && c["b"].is_i64(), "{c}");
        assert!(seen.insert(c.to_string()), "proposed twice: {c}");
        best = best.max(e["metric"].as_f64().expect("metric") as i64);
        let h = e["hypothesis"].as_str().unwrap_or("");
        assert!(h.starts_with("bayes proposal #"), "{h}");
    }
    // The score is -(x-20)^2 - (b-100)^2/100: random configurations average far below this.
    assert!(best > -60, "best score {best} after 14 trials: {status}");
}
