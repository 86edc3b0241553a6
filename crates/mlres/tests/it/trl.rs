//! The TRL templates against a real TRL install: `mlres init --template …` writes the program
//! and script, a human approves, and `mlres loop run` trains a tiny random GPT-2 (built
//! offline here) through the sandbox on CPU with torch, transformers, trl and peft from PyPI.
//! Each campaign (SFT, SFT+LoRA, DPO, GRPO with its verifiable reward) must parse its metric
//! into the ledger, decide keep/discard, produce a checkpoint that `mlres exp artifacts`
//! brings back, and refuse an edited script with the diff.
//!
//! The Python environment comes from `crates/mlres/tests/trl/setup-venv.sh`, the one place it
//! is made (`.ci/run` runs it first, timed; here it is a no-op when the venv is current). If it
//! cannot be made, the tests fail saying why: they never skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::support::{Env, code, stderr};

fn trl_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/trl")
}

/// The venv's python, made (or found current) by setup-venv.sh once per test process.
pub(crate) fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("target dir")
            .to_path_buf();
        let mut cmd = Command::new("bash");
        cmd.arg(trl_dir().join("setup-venv.sh"));
        if std::env::var_os("MLRES_TRL_VENV").is_none() {
            cmd.env("CARGO_TARGET_DIR", &target);
        }
        let started = std::time::Instant::now();
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run tests/trl/setup-venv.sh: {e}"));
        assert!(
            out.status.success(),
            "the TRL test needs a venv with torch, transformers, trl, peft and datasets from \
             PyPI, and tests/trl/setup-venv.sh could not make it ({:?}):\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "trl venv ready in {:.1}s: {}",
            started.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let venv = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .expect("setup-venv.sh prints the venv path")
            .to_string();
        let py = PathBuf::from(venv).join("bin/python");
        assert!(py.exists(), "{} missing", py.display());
        py
    })
}

/// Vocabulary of the test's data: "what is A plus B" and the sums.
fn words() -> Vec<String> {
    let mut w: Vec<String> = ["what", "is", "plus", "the", "answer"]
        .map(String::from)
        .to_vec();
    w.extend((0..=18).map(|n| n.to_string()));
    w
}

/// A tiny random GPT-2 and its WordLevel tokenizer with a chat template, built once.
fn tiny_model() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("trl-tiny-model-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new(python())
            .arg(trl_dir().join("make_tiny_model.py"))
            .arg(&dir)
            .args(words())
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .expect("run make_tiny_model.py");
        assert!(
            out.status.success(),
            "make_tiny_model.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn sums(seed: u64, n: usize) -> Vec<(u64, u64)> {
    // A fixed sequence of digit pairs (splitmix-style), no rand dependency.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 10, (x >> 8) % 10)
        })
        .collect()
}

fn write_jsonl(path: &Path, rows: impl IntoIterator<Item = Value>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let text: String = rows.into_iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// The template's data in the project's `data/`.
fn write_data(env: &Env, template: &str) {
    let data = env.project.join("data");
    match template {
        // Chat messages, with a test split.
        "sft" => {
            let row = |(a, b): (u64, u64)| {
                serde_json::json!({"messages": [
                    {"role": "user", "content": format!("what is {a} plus {b}")},
                    {"role": "assistant", "content": format!("{}", a + b)}]})
            };
            write_jsonl(&data.join("train.jsonl"), sums(1, 32).into_iter().map(row));
            write_jsonl(&data.join("test.jsonl"), sums(2, 8).into_iter().map(row));
        }
        // Preference pairs, no test split: the script holds 10% of train out.
        "dpo" => {
            let row = |(a, b): (u64, u64)| {
                serde_json::json!({"prompt": format!("what is {a} plus {b}"),
                    "chosen": format!(" {}", a + b), "rejected": format!(" {}", (a + b + 3) % 19)})
            };
            write_jsonl(&data.join("train.jsonl"), sums(3, 40).into_iter().map(row));
        }
        // Conversational prompts and the numeric answer the reward checks.
        "grpo" => {
            let row = |(a, b): (u64, u64)| {
                serde_json::json!({"prompt": [{"role": "user", "content": format!("what is {a} plus {b}")}],
                    "answer": format!("{}", a + b)})
            };
            write_jsonl(&data.join("train.jsonl"), sums(4, 16).into_iter().map(row));
            write_jsonl(&data.join("test.jsonl"), sums(5, 4).into_iter().map(row));
        }
        _ => unreachable!(),
    }
}

/// Shrinks the template's program to a test-sized campaign, the way a human edits it before
/// approving: 2 experiments of 3 steps, 5-minute jobs, short generations.
fn shrink(program: &str) -> String {
    let mut p = program.to_string();
    for (from, to) in [
        ("\"--num_train_epochs\", \"1\"", "\"--max_steps\", \"3\""),
        ("\"--eval_steps\", \"50\"", "\"--eval_steps\", \"2\""),
        ("\"--logging_steps\", \"10\"", "\"--logging_steps\", \"1\""),
        (
            "\"--max_completion_length\", \"128\"",
            "\"--max_completion_length\", \"6\"",
        ),
        ("max_jobs: 8\n", "max_jobs: 2\n"),
        ("max_timeout: 1h\n", "max_timeout: 5m\n"),
        ("timeout: 1h\n", "timeout: 5m\n"),
    ] {
        assert!(
            p.contains(from) || from.contains("max_completion_length"),
            "the template no longer has {from}"
        );
        p = p.replace(from, to);
    }
    p
}

struct Run {
    env: Env,
    script: &'static str,
    metric: &'static str,
}

/// `init --template` with the tiny model and the data in the project, shrink, approve, run.
fn campaign(template: &'static str, lora: bool) -> Run {
    let py = python();
    let env = Env::new();
    write_data(&env, template);
    copy_dir(tiny_model(), &env.project.join("model"));
    let data = env.project.join("data");
    let model = env.project.join("model");
    let mut args = vec![
        "init",
        "--template",
        template,
        "--dataset",
        data.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--python",
        py.to_str().unwrap(),
    ];
    if lora {
        args.push("--lora");
    }
    let out = env.ok(&args);
    assert!(out.contains("fits"), "{out}");
    let program = std::fs::read_to_string(env.project.join("program.md")).unwrap();
    env.write_program(&shrink(&program));
    env.ok(&["check"]);
    env.approve();
    let started = std::time::Instant::now();
    let out = env.run(&["loop", "run", "--json"]);
    eprintln!(
        "{template}{}: loop run took {:.1}s",
        if lora { "+lora" } else { "" },
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        code(&out),
        0,
        "loop run failed:\n{}\n{}\nlogs of e1:\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out),
        String::from_utf8_lossy(&env.run(&["exp", "logs", "1", "--stderr"]).stdout)
    );
    Run {
        env,
        script: match template {
            "sft" => "sft.py",
            "dpo" => "dpo.py",
            _ => "grpo.py",
        },
        metric: if template == "grpo" {
            "eval_reward"
        } else {
            "eval_loss"
        },
    }
}

/// Metrics parsed, keep/discard decided, the checkpoint back with `exp artifacts` (its
/// eval_results.json holding the very number the ledger has), and an edited script refused.
/// Returns the copied checkpoint directory.
fn assert_campaign(run: &Run, weights: &str) -> PathBuf {
    let env = &run.env;
    let status = env.json(&["loop", "status", "--json"]);
    let exps = status["experiments"].as_array().unwrap();
    assert_eq!(exps.len(), 2, "{status}");
    let mut kept = 0;
    for e in exps {
        assert_eq!(e["status"], "completed", "{e}");
        let m = e["metric"]
            .as_f64()
            .unwrap_or_else(|| panic!("no metric: {e}"));
        assert!(m.is_finite(), "{e}");
        match e["decision"].as_str() {
            Some("keep") => kept += 1,
            Some("discard") => {}
            d => panic!("undecided: {d:?} {e}"),
        }
    }
    assert!(kept >= 1, "the first result is always kept: {status}");
    assert_eq!(exps[0]["decision"], "keep", "{status}");
    let best = status["best"]["id"].as_i64().unwrap().to_string();
    let best_metric = status["best"]["metric"].as_f64().unwrap();
    let exp = env.json(&["exp", "status", &best, "--json"]);
    assert!(
        exp["metrics"].get(run.metric).is_some(),
        "metric lines parsed: {exp}"
    );
    // The export agrees with the ledger.
    let ledger = std::fs::read_to_string(env.project.join("runs/ledger.jsonl")).unwrap();
    assert_eq!(ledger.lines().count(), 2, "{ledger}");

    // The checkpoint comes back.
    let to = env.project.join("best");
    let copied = env.json(&[
        "exp",
        "artifacts",
        &best,
        "--to",
        to.to_str().unwrap(),
        "--json",
    ]);
    assert!(copied.is_object() || copied.is_array(), "{copied}");
    let ck = to.join("checkpoint");
    for f in [
        weights,
        "eval_results.json",
        "tokenizer.json",
        "config.json",
    ] {
        if f == "config.json" && weights.starts_with("adapter") {
            continue;
        }
        assert!(ck.join(f).is_file(), "{f} not in {}", ck.display());
    }
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(ck.join("eval_results.json")).unwrap())
            .unwrap();
    let saved = results[run.metric].as_f64().unwrap();
    assert!(
        (saved - best_metric).abs() <= 1e-9 * saved.abs().max(1.0),
        "the ledger's {} {best_metric} is the script's final evaluation {saved}",
        run.metric
    );

    // Editing the training script after approval is refused with the diff.
    let script = env.project.join(run.script);
    let mut text = std::fs::read_to_string(&script).unwrap();
    text.push_str("# evaluate on the training set instead\n");
    std::fs::write(&script, text).unwrap();
    let out = env.run(&[
        "exp",
        "submit",
        "--config",
        "learning_rate=0.0001",
        "--hypothesis",
        "edited script",
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("code_changed"), "{err}");
    assert!(err.contains(&format!("changed: {}", run.script)), "{err}");
    assert!(
        err.contains("+# evaluate on the training set instead"),
        "{err}"
    );
    ck
}

fn logs(env: &Env, id: &str) -> String {
    String::from_utf8_lossy(&env.run(&["exp", "logs", id]).stdout).into_owned()
}

#[test]
fn trl_sft_campaign_trains_evaluates_and_brings_its_checkpoint_back() {
    let run = campaign("sft", false);
    assert_campaign(&run, "model.safetensors");
    assert!(logs(&run.env, "1").contains("eval: the `test` split (8 rows)"));
}

#[test]
fn trl_sft_lora_campaign_trains_an_adapter() {
    let run = campaign("sft", true);
    let ck = assert_campaign(&run, "adapter_model.safetensors");
    assert!(
        !ck.join("model.safetensors").exists(),
        "LoRA saves the adapter only"
    );
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(ck.join("adapter_config.json")).unwrap())
            .unwrap();
    // all-linear: every linear (Conv1D in GPT-2) layer of the blocks.
    let targets = cfg["target_modules"].as_array().unwrap();
    assert!(targets.len() >= 3, "{cfg}");
    assert_eq!(cfg["lora_alpha"], 32);
    let exp = run.env.json(&["exp", "status", "1", "--json"]);
    let r = exp["config"]["lora_r"].as_i64().unwrap();
    let best = run.env.json(&["loop", "status", "--json"])["best"]["config"]["lora_r"].clone();
    assert!([8, 16, 32].contains(&r), "{exp}");
    assert_eq!(cfg["r"], best, "{cfg}");
}

#[test]
fn trl_dpo_campaign_holds_out_eval_rows_and_uses_a_frozen_reference() {
    let run = campaign("dpo", false);
    assert_campaign(&run, "model.safetensors");
    let log = logs(&run.env, "1");
    assert!(
        log.contains("eval: no `test` split; holding out 4 of 40 train rows (seed 0)"),
        "{log}"
    );
    assert!(log.contains("reference model: a frozen copy of"), "{log}");
    let exp = run.env.json(&["exp", "status", "1", "--json"]);
    assert!(
        exp["metrics"].get("eval_rewards/accuracies").is_some(),
        "{exp}"
    );
}

#[test]
fn trl_grpo_campaign_scores_completions_with_its_verifiable_reward() {
    let run = campaign("grpo", false);
    assert_campaign(&run, "model.safetensors");
    let exp = run.env.json(&["exp", "status", "1", "--json"]);
    let reward = exp["metrics"]["eval_rewards/numeric_answer_reward/mean"]
        .as_f64()
        .unwrap_or_else(|| panic!("the reward function ran on the held-out prompts: {exp}"));
    assert!((0.0..=1.0).contains(&reward), "{exp}");
    // The reward itself, on completions whose answers are known.
    let out = Command::new(python())
        .arg("-c")
        .arg(
            "import importlib.util, sys\n\
             spec = importlib.util.spec_from_file_location('g', sys.argv[1])\n\
             g = importlib.util.module_from_spec(spec); spec.loader.exec_module(g)\n\
             got = g.numeric_answer_reward(\n\
                 ['so the answer is 7', [{'role': 'assistant', 'content': '1,234'}], 'no idea', '3.0', '-2'],\n\
                 answer=['7', 'natalia sold #### 1234', '5', '3', '2'])\n\
             print(got); assert got == [1.0, 1.0, 0.0, 1.0, 0.0], got\n",
        )
        .arg(run.env.project.join("grpo.py"))
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `import torch` runs as a local job under mlres' default limits (2 GiB of cgroup memory, no
/// address-space cap), which an RLIMIT_AS of 1-2 GiB used to kill ("failed to map segment").
#[test]
fn import_torch_runs_under_the_default_job_limits() {
    let py = python();
    let env = Env::new();
    env.write_program(&format!(
        r#"# torch

## Budget envelope
```yaml
max_jobs: 1
max_walltime: 10m
allowed_flavors: [cpu-basic]
max_timeout: 5m
backends: [local]
```

## Objective
```yaml
metric: torch_ok
goal: maximize
```

## Job
```yaml
command: ["{py}", "-c", "import torch; x = torch.ones(1000, 1000); print('torch_ok=%s' % (float((x @ x)[0, 0]) / 1000))"]
timeout: 5m
```

## Search space
```yaml
method: grid
parameters:
  x: {{value: 1}}
```
"#,
        py = py.display()
    ));
    let check = env.json(&["check", "--json"]);
    let limits = &check["campaign"]["job"]["limits"];
    assert_eq!(limits["memory"], "2GiB", "{limits}");
    assert!(limits.get("address_space").is_none(), "{limits}");
    env.approve();
    let out = env.run(&["loop", "run"]);
    assert_eq!(
        code(&out),
        0,
        "{}\n{}",
        stderr(&out),
        String::from_utf8_lossy(&env.run(&["exp", "logs", "1", "--stderr"]).stdout)
    );
    let exp = env.json(&["exp", "status", "1", "--json"]);
    assert_eq!(exp["metric"].as_f64(), Some(1.0), "{exp}");
}
