//! `mlres init --template sft|dpo|grpo [--lora]`: the program and script it writes parse and
//! pin as they should, data that cannot train the template is refused naming the one it fits,
//! and `mlres data inspect` names the templates. (The scripts really training under mlres:
//! `trl.rs`.)

use serde_json::Value;

use crate::support::{Env, code, stderr};

fn write(env: &Env, rel: &str, rows: &[Value]) {
    let p = env.project.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(p, text).unwrap();
}

fn sft_rows() -> Vec<Value> {
    (0..4)
        .map(|i| {
            serde_json::json!({"messages": [
                {"role": "user", "content": format!("what is {i} plus 1")},
                {"role": "assistant", "content": format!("{}", i + 1)}]})
        })
        .collect()
}

fn dpo_rows() -> Vec<Value> {
    (0..4)
        .map(|i| serde_json::json!({"prompt": format!("q{i}"), "chosen": "a", "rejected": "b"}))
        .collect()
}

fn grpo_rows(answer: bool) -> Vec<Value> {
    (0..4)
        .map(|i| {
            if answer {
                serde_json::json!({"prompt": format!("what is {i} plus 1"), "answer": format!("{}", i + 1)})
            } else {
                serde_json::json!({"prompt": format!("what is {i} plus 1")})
            }
        })
        .collect()
}

#[test]
fn every_template_writes_a_program_that_checks_clean_and_pins_its_script() {
    for (t, rows) in [
        ("sft", sft_rows()),
        ("dpo", dpo_rows()),
        ("grpo", grpo_rows(true)),
    ] {
        for lora in [false, true] {
            let env = Env::new();
            write(&env, "data/train.jsonl", &rows);
            let mut args = vec!["init", "--template", t, "--dataset", "data"];
            if lora {
                args.push("--lora");
            }
            let out = env.ok(&args);
            assert!(out.contains(&format!("{t}.py")), "{out}");
            let script = std::fs::read_to_string(env.project.join(format!("{t}.py"))).unwrap();
            assert!(script.starts_with("# /// script\n"), "PEP 723 block first");
            assert!(
                script.contains("TrlParser"),
                "TRL example-script conventions"
            );
            let check = env.json(&["check", "--json"]);
            assert_eq!(check["warnings"], serde_json::json!([]), "{t} lora={lora}");
            let job = &check["campaign"]["job"];
            assert_eq!(job["code"], serde_json::json!([format!("{t}.py")]));
            assert_eq!(job["outputs"], serde_json::json!(["checkpoint"]));
            assert!(job["limits"].get("address_space").is_none(), "{job}");
            let cmd: Vec<String> = job["command"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            assert_eq!(cmd[1], format!("{{code}}/{t}.py"));
            assert!(cmd.contains(&"{seed}".to_string()));
            assert_eq!(cmd.contains(&"--use_peft".to_string()), lora);
            assert_eq!(cmd.contains(&"all-linear".to_string()), lora);
            let metric = check["campaign"]["objective"]["metric"].as_str().unwrap();
            assert_eq!(
                metric,
                if t == "grpo" {
                    "eval_reward"
                } else {
                    "eval_loss"
                }
            );
            assert_eq!(
                check["campaign"]["envelope"]["datasets"],
                serde_json::json!(["data"])
            );
        }
    }
}

#[test]
fn a_hub_model_gives_the_job_the_network_and_a_project_model_does_not() {
    let env = Env::new();
    write(&env, "data/train.jsonl", &sft_rows());
    env.ok(&["init", "--template", "sft", "--dataset", "data"]);
    let check = env.json(&["check", "--json"]);
    assert_eq!(check["campaign"]["job"]["network"], true);
    std::fs::create_dir_all(env.project.join("models/tiny")).unwrap();
    let model = env.project.join("models/tiny");
    env.ok(&[
        "init",
        "--template",
        "sft",
        "--dataset",
        "data",
        "--model",
        model.to_str().unwrap(),
        "--force",
    ]);
    let check = env.json(&["check", "--json"]);
    let job = &check["campaign"]["job"];
    assert_eq!(job["network"], false);
    assert_eq!(job["env"]["HF_HUB_OFFLINE"], "1");
    assert!(
        job["command"]
            .as_array()
            .unwrap()
            .contains(&Value::from("{project}/models/tiny"))
    );
    // A model outside the project is not visible to the job: refused, nothing written.
    let outside = env.path().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    let out = env.run(&[
        "init",
        "--template",
        "dpo",
        "--model",
        outside.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("outside the project"),
        "{}",
        stderr(&out)
    );
    assert!(!env.project.join("dpo.py").exists());
}

#[test]
fn existing_files_are_not_overwritten_without_force() {
    let env = Env::new();
    env.ok(&["init", "--template", "grpo"]);
    let out = env.run(&["init", "--template", "grpo"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("program.md exists; pass --force to overwrite it"),
        "{}",
        stderr(&out)
    );
    // The script alone is protected too (same message as the demo's init).
    std::fs::remove_file(env.project.join("program.md")).unwrap();
    let out = env.run(&["init", "--template", "grpo"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("grpo.py exists; pass --force"),
        "{}",
        stderr(&out)
    );
    env.ok(&["init", "--template", "grpo", "--force"]);
    // Without --dataset the program points at data/, which does not exist yet.
    let check = env.json(&["check", "--json"]);
    assert_eq!(
        check["campaign"]["envelope"]["datasets"],
        serde_json::json!(["data"])
    );
    // CPU by default; --gpus asks for GPUs and drops the CPU flags.
    let cmd = check["campaign"]["job"]["command"].to_string();
    assert!(cmd.contains("--use_cpu"), "{cmd}");
    env.ok(&["init", "--template", "grpo", "--gpus", "2", "--force"]);
    let check = env.json(&["check", "--json"]);
    assert_eq!(check["campaign"]["job"]["gpus"], 2);
    let cmd = check["campaign"]["job"]["command"].to_string();
    assert!(
        !cmd.contains("--use_cpu") && !cmd.contains("--bf16"),
        "{cmd}"
    );
}

#[test]
fn data_that_cannot_train_the_template_is_refused_naming_the_one_it_fits() {
    let env = Env::new();
    write(&env, "prefs.jsonl", &dpo_rows());
    let out = env.run(&["init", "--template", "sft", "--dataset", "prefs.jsonl"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("refused (data_unfit)"), "{err}");
    assert!(err.contains("`messages`"), "{err}");
    assert!(err.contains("mlres init --template dpo"), "{err}");
    assert!(!env.project.join("program.md").exists());
    assert!(!env.project.join("sft.py").exists());

    // GRPO fitness (a prompt) is not enough: the template's reward needs `answer`.
    write(&env, "prompts.jsonl", &grpo_rows(false));
    let out = env.run(&["init", "--template", "grpo", "--dataset", "prompts.jsonl"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("`answer`"), "{}", stderr(&out));

    write(&env, "math.jsonl", &grpo_rows(true));
    env.ok(&["init", "--template", "grpo", "--dataset", "math.jsonl"]);
}

#[test]
fn data_inspect_names_the_templates_the_data_fits() {
    let env = Env::new();
    for (file, rows, want) in [
        ("a.jsonl", sft_rows(), vec!["sft"]),
        ("b.jsonl", dpo_rows(), vec!["dpo"]),
        ("c.jsonl", grpo_rows(true), vec!["grpo"]),
        ("d.jsonl", grpo_rows(false), vec![]),
    ] {
        write(&env, file, &rows);
        let path = env.project.join(file);
        let r = env.json(&["data", "inspect", path.to_str().unwrap(), "--json"]);
        assert_eq!(r["templates"], serde_json::json!(want), "{file}");
        assert!(r["fitness"].is_object(), "the report keeps its fields");
        let human = env.ok(&["data", "inspect", path.to_str().unwrap()]);
        for t in &want {
            assert!(
                human.contains(&format!("mlres init --template {t} --dataset")),
                "{human}"
            );
        }
    }
}
