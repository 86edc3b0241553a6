//! `mlres exp artifacts`: a finished local job's declared outputs come back into the project,
//! text redacted (granted secrets and secret-shaped strings), never through a symlink out of
//! the work dir, never over an existing file without --force, never into runs/ or a hidden
//! directory, and every copy is in the ledger. Each way there is nothing to copy says why.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::support::{Env, Fast, code, stderr};

/// The secret granted to the job: a canary, so the swept temp dir fails the test if it is
/// found anywhere outside the job's own files.
const GRANTED: &str = "canary-7f3a9c1e-granted-0451";

/// A job (`job.sh`, pinned as code) that writes a checkpoint folder and an eval file holding
/// the granted secret and a token-shaped canary it assembles at run time (so no canary is in
/// program.md, the approval or the code snapshot). `extra` runs after it.
fn job_script(extra: &str) -> String {
    format!(
        r#"set -e
mkdir -p checkpoint
head -c 300000 /dev/urandom > checkpoint/model.bin
printf '{{"hidden_size": 64}}\n' > checkpoint/config.json
t=hf_CANA
t=$t'RY0123456789abcdefghijklmnopqrstuv'
printf '{{"eval_accuracy": 0.9, "granted": "%s", "note": "token %s"}}\n' "$MLRES_GRANTED" "$t" > eval_results.json
{extra}
echo score=$1
"#
    )
}

fn program(outputs: &str, values: &str) -> String {
    Fast {
        script: "/bin/sh {code}/job.sh {x}",
        values,
        extra_job: &format!("code: [job.sh]\nsecrets: [MLRES_GRANTED]\n{outputs}"),
        ..Default::default()
    }
    .program()
}

/// A project whose job is `job_script(extra)`, approved, with its job dirs (which hold the
/// secret, as the job wrote it) allowed in the sweep.
fn setup(outputs: &str, extra: &str, values: &str) -> Env {
    let env = Env::new();
    setup_in(&env, outputs, extra, values);
    env
}

fn setup_in(env: &Env, outputs: &str, extra: &str, values: &str) {
    std::fs::write(env.project.join("job.sh"), job_script(extra)).unwrap();
    env.write_program(&program(outputs, values));
    env.approve();
    env.tmp.allow(env.state.join("jobs"));
}

/// Submits x and waits for it; returns the experiment id.
fn run_one(env: &Env, x: u32) -> String {
    let out = env
        .cmd()
        .env("MLRES_GRANTED", GRANTED)
        .args([
            "exp",
            "submit",
            "--config",
            &format!("x={x}"),
            "--hypothesis",
            "artifacts",
            "--json",
        ])
        .output()
        .unwrap();
    env.record(&["exp", "submit"], &out);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"].to_string();
    env.ok(&["exp", "wait", &id, "--timeout", "2m"]);
    id
}

fn sha256_file(p: &Path) -> String {
    mlres_fakehf::sha256_hex(&std::fs::read(p).unwrap())
}

/// The attempt's work dir of experiment `id`.
fn work_dir(env: &Env, id: &str) -> PathBuf {
    let e = env.json(&["ledger", "events", "--json", "--limit", "500"]);
    let campaign = e
        .as_array()
        .unwrap()
        .iter()
        .find_map(|ev| ev["campaign"].as_str().map(str::to_string))
        .unwrap();
    env.state
        .join("jobs")
        .join(campaign)
        .join(format!("e{id}-a1"))
        .join("work")
}

fn events_of(env: &Env, kind: &str) -> Vec<Value> {
    env.json(&["ledger", "events", "--json", "--limit", "1000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

fn fails(env: &Env, args: &[&str], exit: i32, needle: &str) -> Output {
    let out = env.run(args);
    let err = stderr(&out);
    assert_eq!(code(&out), exit, "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err}");
    out
}

#[test]
fn artifacts_come_back_redacted_and_are_recorded() {
    let env = setup("outputs: [checkpoint/, eval_results.json]", "", "[1]");
    let id = run_one(&env, 1);
    let work = work_dir(&env, &id);
    // The job really wrote the secrets (so the redaction below is not vacuous).
    let raw = std::fs::read_to_string(work.join("eval_results.json")).unwrap();
    assert!(
        raw.contains(GRANTED) && raw.contains("hf_CANARY0123"),
        "{raw}"
    );

    // The artifacts command runs without the secret in its environment: the values come
    // from the attempt's own spec.
    let v = env.json(&["exp", "artifacts", &id, "--json"]);
    let dest = env.project.join("artifacts").join(format!("e{id}"));
    assert_eq!(
        Path::new(v["dest"].as_str().unwrap()),
        dest.canonicalize().unwrap()
    );
    assert_eq!(v["exp_id"].to_string(), id);
    assert_eq!(v["status"], "completed");
    let files = v["files"].as_array().unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "checkpoint/config.json",
            "checkpoint/model.bin",
            "eval_results.json"
        ]
    );
    // The checkpoint is byte for byte what the job wrote; its hash is the one reported.
    let model = dest.join("checkpoint/model.bin");
    assert_eq!(
        std::fs::read(&model).unwrap(),
        std::fs::read(work.join("checkpoint/model.bin")).unwrap()
    );
    let m = &files[1];
    assert_eq!(m["bytes"], 300_000);
    assert_eq!(m["sha256"], sha256_file(&model));
    assert!(m.get("redacted").is_none(), "{m}");
    // The eval file is redacted: the granted secret by name, the token by kind.
    let eval = std::fs::read_to_string(dest.join("eval_results.json")).unwrap();
    assert!(
        !eval.contains(GRANTED) && !eval.contains("CANARY"),
        "{eval}"
    );
    assert!(
        eval.contains("\"granted\": \"[REDACTED:MLRES_GRANTED]\""),
        "{eval}"
    );
    assert!(
        eval.contains("token [REDACTED:huggingface_token]"),
        "{eval}"
    );
    assert!(eval.contains("\"eval_accuracy\": 0.9"), "{eval}");
    let e = &files[2];
    assert_eq!(e["sha256"], sha256_file(&dest.join("eval_results.json")));
    assert_eq!(
        e["redacted"],
        serde_json::json!(["MLRES_GRANTED", "huggingface_token"])
    );
    // Recorded: one event with every file and its sha256.
    let ev = events_of(&env, "artifacts_copied");
    assert_eq!(ev.len(), 1);
    let p = &ev[0]["payload"];
    assert_eq!(p["exp_id"].to_string(), id);
    assert_eq!(p["dest"], format!("artifacts/e{id}"));
    assert_eq!(
        p["outputs"],
        serde_json::json!(["checkpoint", "eval_results.json"])
    );
    let recorded: Vec<(String, String)> = p["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let reported: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(recorded, reported);
    assert_eq!(p["files"][2]["redactions"], 2);
    env.ok(&["ledger", "verify"]);

    // The human view, to another directory in the project.
    let out = env.ok(&[
        "exp",
        "artifacts",
        &id,
        "--to",
        env.project.join("best").to_str().unwrap(),
    ]);
    assert!(out.contains("Copied 3 file(s)"), "{out}");
    assert!(out.contains("eval_results.json"), "{out}");
    assert!(
        out.contains("2 redacted: MLRES_GRANTED, huggingface_token"),
        "{out}"
    );
    assert!(env.project.join("best/checkpoint/config.json").is_file());
    // Nothing but the copies was left behind (no temporary files).
    let mut names: Vec<String> = walk(&env.project.join("best"))
        .iter()
        .map(|p| {
            p.strip_prefix(env.project.join("best"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "checkpoint/config.json",
            "checkpoint/model.bin",
            "eval_results.json"
        ]
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn symlinks_out_of_the_work_dir_are_not_followed() {
    // Outside the work dir, in the test's temp dir: what a symlink could try to exfiltrate.
    let env = Env::new();
    let outside = env.path().join("outside-secret.txt");
    std::fs::write(&outside, "outside the work dir\n").unwrap();
    // x=1: the declared `report.txt` itself is a symlink out; x=2: it is a plain file. Both
    // put, inside the checkpoint, a symlink out, a symlink in, and a FIFO.
    let extra = format!(
        r#"ln -s {out} checkpoint/leak.txt
ln -s ../eval_results.json checkpoint/eval-copy.json
mkfifo checkpoint/pipe
if [ "$1" = 1 ]; then ln -s {out} report.txt; else echo plain > report.txt; fi"#,
        out = outside.display()
    );
    setup_in(&env, "outputs: [checkpoint/, report.txt]", &extra, "[1, 2]");
    let first = run_one(&env, 1);
    let second = run_one(&env, 2);
    // A declared output that leads outside: refused, nothing copied.
    fails(
        &env,
        &["exp", "artifacts", &first],
        3,
        "`report.txt` is a symlink that leads outside the job's work dir",
    );
    assert!(!env.project.join("artifacts").exists());
    // Below a declared output: skipped and reported; the link that stays inside is followed.
    let v = env.json(&["exp", "artifacts", &second, "--json"]);
    let dest = env.project.join(format!("artifacts/e{second}"));
    let paths: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "checkpoint/config.json",
            "checkpoint/eval-copy.json",
            "checkpoint/model.bin",
            "report.txt"
        ]
    );
    assert!(!dest.join("checkpoint/leak.txt").exists());
    assert!(!dest.join("checkpoint/pipe").exists());
    let copy = std::fs::read_to_string(dest.join("checkpoint/eval-copy.json")).unwrap();
    assert!(copy.contains("[REDACTED:MLRES_GRANTED]"), "{copy}");
    assert!(
        !std::fs::symlink_metadata(dest.join("checkpoint/eval-copy.json"))
            .unwrap()
            .is_symlink()
    );
    let skipped: Vec<(String, String)> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_string(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(skipped[0].0, "checkpoint/leak.txt");
    assert!(
        skipped[0].1.contains("outside the job's work dir"),
        "{skipped:?}"
    );
    assert_eq!(skipped[1].0, "checkpoint/pipe");
    assert!(skipped[1].1.contains("FIFO"), "{skipped:?}");
    // The project holds nothing from outside the work dir.
    for p in walk(&env.project.join("artifacts")) {
        let b = std::fs::read_to_string(&p).unwrap_or_default();
        assert!(!b.contains("outside the work dir"), "{}", p.display());
    }
    let ev = events_of(&env, "artifacts_copied");
    assert_eq!(ev.len(), 1);
    assert_eq!(
        ev[0]["payload"]["skipped"][0]["path"],
        "checkpoint/leak.txt"
    );
}

#[test]
fn existing_targets_and_forbidden_destinations_are_refused() {
    let env = setup("outputs: [checkpoint/, eval_results.json]", "", "[1]");
    let id = run_one(&env, 1);
    env.ok(&["exp", "artifacts", &id]);
    let dest = env.project.join(format!("artifacts/e{id}"));
    let eval = dest.join("eval_results.json");
    std::fs::write(&eval, "edited by hand\n").unwrap();
    // Again, without --force: refused, nothing touched, nothing recorded.
    let out = fails(&env, &["exp", "artifacts", &id], 1, "already exist");
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&eval).unwrap(), "edited by hand\n");
    assert_eq!(events_of(&env, "artifacts_copied").len(), 1);
    // One existing file is enough, and a symlink planted where a file would go is not
    // followed: it counts as existing.
    let other = env.project.join("other");
    std::fs::create_dir_all(other.join("checkpoint")).unwrap();
    let target = env.path().join("planted.txt");
    std::fs::write(&target, "planted\n").unwrap();
    std::os::unix::fs::symlink(&target, other.join("checkpoint/config.json")).unwrap();
    fails(
        &env,
        &["exp", "artifacts", &id, "--to", other.to_str().unwrap()],
        1,
        "checkpoint/config.json",
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "planted\n");
    assert!(!other.join("eval_results.json").exists(), "all or nothing");
    // With --force the copies replace them (the symlink itself, never its target).
    let v = env.json(&["exp", "artifacts", &id, "--force", "--json"]);
    assert!(
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["replaced"] == true),
        "{v}"
    );
    assert!(
        std::fs::read_to_string(&eval)
            .unwrap()
            .contains("[REDACTED:MLRES_GRANTED]")
    );
    env.ok(&[
        "exp",
        "artifacts",
        &id,
        "--to",
        other.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "planted\n");
    assert!(
        !std::fs::symlink_metadata(other.join("checkpoint/config.json"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(events_of(&env, "artifacts_copied").len(), 3);

    // Destinations: never runs/, a hidden directory, the project itself, outside it, or
    // through a symlink that leaves it.
    let outside = env.path().join("elsewhere");
    let existing_outside = env.path().join("existing-elsewhere");
    std::fs::create_dir(&existing_outside).unwrap();
    std::os::unix::fs::symlink(&existing_outside, env.project.join("link-out")).unwrap();
    std::os::unix::fs::symlink(&outside, env.project.join("dangling")).unwrap();
    for (to, why) in [
        (env.project.join("runs/best"), "mlres' exports"),
        (env.project.join(".claude/x"), "hidden directory"),
        (env.project.join("a/.git/hooks"), "hidden directory"),
        (env.project.clone(), "the project itself"),
        (outside.clone(), "outside the project"),
        (env.project.join("link-out/x"), "outside the project"),
        (env.project.join("dangling/x"), "cannot resolve"),
        (env.state.join("x"), "outside the project"),
    ] {
        fails(
            &env,
            &["exp", "artifacts", &id, "--to", to.to_str().unwrap()],
            3,
            why,
        );
    }
    assert!(!env.project.join("runs/best").exists());
    assert!(!env.project.join(".claude").exists());
    assert!(!outside.exists());
    assert_eq!(std::fs::read_dir(&existing_outside).unwrap().count(), 0);
    assert_eq!(events_of(&env, "artifacts_copied").len(), 3);
    // A cap below the outputs' size refuses before anything is written.
    fails(
        &env,
        &[
            "exp",
            "artifacts",
            &id,
            "--to",
            env.project.join("small").to_str().unwrap(),
            "--max-size",
            "100KiB",
        ],
        3,
        "over the 100.0 KiB cap",
    );
    assert!(!env.project.join("small").exists());
}

#[test]
fn bad_ids_and_states_say_why_nothing_is_copied() {
    let env = setup(
        "outputs: [checkpoint/, eval_results.json, missing.txt]",
        "if [ \"$1\" = 2 ]; then sleep 60; fi",
        "[1, 2]",
    );
    // Unknown id.
    fails(&env, &["exp", "artifacts", "999"], 1, "no experiment 999");
    // A declared output the job did not write.
    let id = run_one(&env, 1);
    fails(
        &env,
        &["exp", "artifacts", &id],
        1,
        "did not write `missing.txt`",
    );
    assert!(!env.project.join("artifacts").exists());
    // Not finished yet.
    let out = env
        .cmd()
        .args([
            "exp",
            "submit",
            "--config",
            "x=2",
            "--hypothesis",
            "slow",
            "--json",
        ])
        .output()
        .unwrap();
    env.record(&["exp", "submit"], &out);
    let slow = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"].to_string();
    fails(&env, &["exp", "artifacts", &slow], 1, "has not finished");
    env.ok(&["loop", "stop"]);
    // A program changed since approval: refused until a human approves it again.
    let prog = std::fs::read_to_string(env.project.join("program.md")).unwrap();
    env.write_program(&prog.replace("missing.txt", "other.txt"));
    fails(&env, &["exp", "artifacts", &id], 3, "approve");
    // No outputs declared (and approved): refused, with what a human does about it.
    env.write_program(
        &prog
            .replace(", missing.txt]", "]")
            .replace("outputs: [checkpoint/, eval_results.json]", ""),
    );
    env.approve();
    let out = fails(
        &env,
        &["exp", "artifacts", &id],
        3,
        "declares no `outputs:`",
    );
    assert!(stderr(&out).contains("mlres approve"), "{}", stderr(&out));
    assert!(events_of(&env, "artifacts_copied").is_empty());
}
