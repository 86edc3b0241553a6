//! `mlres data inspect`: human and JSON reports, exit codes, nothing spent.

use crate::support::{Env, code, stderr};

fn dataset(env: &Env) -> std::path::PathBuf {
    let d = env.project.join("ds");
    std::fs::create_dir_all(d.join("data")).unwrap();
    let mut train = String::new();
    for i in 0..40 {
        train.push_str(&format!(
            "{{\"prompt\": \"question {i}\", \"chosen\": \"good {i}\", \"rejected\": \"bad {i}\", \"label\": \"{}\"}}\n",
            if i % 4 == 0 { "b" } else { "a" }
        ));
    }
    train.push_str("{\"prompt\": \"broken\n");
    std::fs::write(d.join("data/train.jsonl"), train).unwrap();
    std::fs::write(
        d.join("data/test.csv"),
        "prompt,chosen,rejected,label\nq,c,r,a\nq2,same,same,b\n",
    )
    .unwrap();
    d
}

#[test]
fn inspect_reports_splits_columns_skips_and_fitness() {
    let env = Env::new();
    let d = dataset(&env);
    let out = env.ok(&["data", "inspect", d.to_str().unwrap()]);
    let shown = out.replace(d.to_str().unwrap(), "<ds>");
    insta::assert_snapshot!("data_inspect_human", shown);
    // Nothing was approved, nothing spent: no ledger was even needed.
    assert!(!env.state.join("ledger.db").exists());
}

#[test]
fn inspect_json_is_machine_readable() {
    let env = Env::new();
    let d = dataset(&env);
    let v = env.json(&["data", "inspect", d.to_str().unwrap(), "--json"]);
    assert_eq!(v["rows"], 42);
    assert_eq!(v["skipped"], 1);
    assert_eq!(v["splits"][0]["name"], "train");
    assert_eq!(v["splits"][0]["errors"][0]["row"], 41);
    assert_eq!(v["fitness"]["dpo"]["fits"], false);
    assert!(
        v["fitness"]["dpo"]["problems"][0]
            .as_str()
            .unwrap()
            .contains("identical")
    );
    assert_eq!(v["fitness"]["grpo"]["fits"], true);
    let label = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "label")
        .unwrap();
    assert_eq!(label["balance"][0][0], "a");
}

#[test]
fn unreadable_sources_fail_clearly() {
    let env = Env::new();
    let out = env.run(&["data", "inspect", "/nonexistent/train.jsonl"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("cannot inspect"), "{}", stderr(&out));
    std::fs::write(env.project.join("notes.txt"), "hello").unwrap();
    let p = env.project.join("notes.txt");
    let out = env.run(&["data", "inspect", p.to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("unknown format"), "{}", stderr(&out));
    let p = env.project.join("bad.parquet");
    std::fs::write(&p, "PAR1 not really").unwrap();
    let out = env.run(&["data", "inspect", p.to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("parquet"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn a_source_with_no_readable_row_fails_naming_file_rows_and_first_error() {
    let env = Env::new();
    let p = env.project.join("train.jsonl");
    let mut bytes = Vec::new();
    for i in 0..300u32 {
        bytes.extend_from_slice(&[0, 159, 146, 150, (i % 251) as u8, b'\n']);
    }
    std::fs::write(&p, bytes).unwrap();
    // As a file, and as one file of a directory whose other file is readable.
    let d = env.project.join("ds");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(&p, d.join("train.jsonl")).unwrap();
    std::fs::write(d.join("test.jsonl"), "{\"text\": \"ok\"}\n").unwrap();
    for src in [&p, &d] {
        for json in [false, true] {
            let mut a = vec!["data", "inspect", src.to_str().unwrap()];
            if json {
                a.push("--json");
            }
            let o = env.run(&a);
            assert_eq!(code(&o), 1, "{}", stderr(&o));
            let e = stderr(&o);
            assert!(
                e.contains("train.jsonl")
                    && e.contains(
                        "no readable row: all 300 rows are broken (first, line 1: not UTF-8"
                    ),
                "{e}"
            );
        }
    }
    // An empty file is not broken.
    let empty = env.project.join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    env.ok(&["data", "inspect", empty.to_str().unwrap()]);
}

#[test]
fn compressed_files_fifos_and_deep_json_are_read_or_refused_clearly() {
    use std::io::Write;
    let env = Env::new();
    let p = env.project.join("train.jsonl.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for i in 0..20 {
        writeln!(e, "{{\"text\": \"row {i}\", \"label\": \"a\"}}").unwrap();
    }
    let deep = format!("{{\"text\": {}1{}}}", "[".repeat(200), "]".repeat(200));
    writeln!(e, "{deep}").unwrap();
    std::fs::write(&p, e.finish().unwrap()).unwrap();
    let v = env.json(&["data", "inspect", p.to_str().unwrap(), "--json"]);
    assert_eq!(v["rows"], 20);
    assert_eq!(v["skipped"], 1);
    let err = v["splits"][0]["errors"][0]["message"].as_str().unwrap();
    assert!(err.contains("nested deeper than 128 levels"), "{err}");
    assert_eq!(v["splits"][0]["errors"][0]["row"], 21);
    let out = env.ok(&["data", "inspect", p.to_str().unwrap()]);
    assert!(
        out.contains("skipped train.jsonl.gz:21: JSON nested deeper than 128 levels"),
        "{out}"
    );
    // A FIFO: refused from its metadata; nothing writes to it, so opening it would hang.
    let fifo = env.project.join("pipe.jsonl");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for cmd in ["inspect", "audit"] {
        let o = env.run(&["data", cmd, fifo.to_str().unwrap()]);
        assert_eq!(code(&o), 1, "{cmd}");
        let e = stderr(&o);
        assert!(
            e.contains("is a FIFO (named pipe), not a regular file")
                && !e.contains("Not a directory"),
            "{cmd}: {e}"
        );
    }
}

#[test]
fn rows_with_ever_new_keys_are_reported_with_the_untracked_columns_counted() {
    let env = Env::new();
    let p = env.project.join("wide.jsonl");
    let n = mlres_data::inspect::MAX_COLUMNS + 9;
    let body: String = (0..n)
        .map(|i| format!("{{\"text\": \"row {i}\", \"k{i}\": {i}}}\n"))
        .collect();
    std::fs::write(&p, body).unwrap();
    let out = env.ok(&["data", "inspect", p.to_str().unwrap()]);
    assert!(
        out.contains("… and 10 more columns without statistics"),
        "{out}"
    );
    let v = env.json(&["data", "inspect", p.to_str().unwrap(), "--json"]);
    assert_eq!(v["untracked_columns"], 10);
    assert_eq!(
        v["columns"].as_array().unwrap().len(),
        mlres_data::inspect::MAX_COLUMNS
    );
}

mod viewer {
    use super::*;
    use mlres_fakehf::{CANARY_TOKEN, FakeConfig, FakeHf};

    fn run(env: &Env, fake: &FakeHf, token: Option<&str>, args: &[&str]) -> std::process::Output {
        let mut c = env.cmd();
        c.env("MLRES_HF_VIEWER_ENDPOINT", fake.url())
            .env("HF_HOME", env.path().join("hfhome"))
            .env_remove("HF_TOKEN")
            .env_remove("HUGGING_FACE_HUB_TOKEN")
            .env_remove("HF_TOKEN_PATH");
        if let Some(t) = token {
            c.env("HF_TOKEN", t);
        }
        let out = c.args(args).output().unwrap();
        env.record(args, &out);
        out
    }

    #[test]
    fn a_hub_dataset_is_inspected_through_the_viewer() {
        let env = Env::new();
        let fake = FakeHf::start(FakeConfig::default()).unwrap();
        let out = run(
            &env,
            &fake,
            Some(CANARY_TOKEN),
            &[
                "data",
                "inspect",
                "hf:mlres-fake/sft-chat",
                "--json",
                "--max-rows",
                "120",
            ],
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["source"], "hf:mlres-fake/sft-chat");
        assert_eq!(v["sampled"], true, "250 train rows, 120 read");
        let splits: Vec<(&str, u64)> = v["splits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["name"].as_str().unwrap(), s["rows"].as_u64().unwrap()))
            .collect();
        assert_eq!(splits, vec![("train", 120), ("test", 20)]);
        assert_eq!(v["fitness"]["sft"]["fits"], true, "{}", v["fitness"]);
        assert_eq!(v["fitness"]["sft"]["layout"], "messages");

        let out = run(
            &env,
            &fake,
            None,
            &["data", "inspect", "datasets/mlres-fake/dpo-pairs"],
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("DPO   fits (prompt+chosen+rejected)"),
            "{text}"
        );
    }

    #[test]
    fn gated_and_unknown_datasets_fail_with_a_reason() {
        let env = Env::new();
        let fake = FakeHf::start(FakeConfig::default()).unwrap();
        let out = run(
            &env,
            &fake,
            None,
            &["data", "inspect", "hf:mlres-fake/gated-sft"],
        );
        assert_eq!(code(&out), 1);
        assert!(stderr(&out).contains("HF_TOKEN"), "{}", stderr(&out));
        let out = run(
            &env,
            &fake,
            Some(CANARY_TOKEN),
            &["data", "inspect", "hf:nobody/missing"],
        );
        assert_eq!(code(&out), 1);
        assert!(
            stderr(&out).contains("cannot inspect hf:nobody/missing"),
            "{}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("mlresCANARY"));
    }
}

#[test]
fn fitness_counts_every_row_and_a_text_label_set_is_called_classification() {
    let env = Env::new();
    let d = env.project.join("mixed");
    std::fs::create_dir_all(&d).unwrap();
    let mut rows = String::from("{\"text\": \"a sentence\"}\n");
    for i in 0..99 {
        rows.push_str(&format!("{{\"foo\": {i}}}\n"));
    }
    std::fs::write(d.join("train.jsonl"), rows).unwrap();
    let o = env.run(&["data", "inspect", d.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        text.contains("SFT   does not fit (text): 1 of 100 rows fit")
            && text.contains("99 rows with no `text` (first: train.jsonl:2)"),
        "{text}{}",
        stderr(&o)
    );
    assert!(!text.contains("Text classification"), "{text}");

    let c = env.project.join("sentiment.csv");
    std::fs::write(&c, "text,label\ngood,pos\nbad,neg\n").unwrap();
    let o = env.run(&["data", "inspect", c.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        text.contains("Text classification fits (text+label): all 2 rows")
            && text.contains("this is a classification set (text → label), not SFT data"),
        "{text}"
    );
    let o = env.run(&["data", "inspect", c.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["fitness"]["classification"]["fits"], true);
    assert_eq!(v["fitness"]["sft"]["fits"], false);
    assert_eq!(v["fitness"]["sft"]["fitting_rows"], 2);
}
