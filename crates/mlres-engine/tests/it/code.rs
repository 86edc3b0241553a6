//! Code pinning through the engine API: what an approval snapshots, which code cannot be
//! pinned, and a submit refused with the difference before anything is reserved. Jobs that
//! really run the snapshot are tested through the binary (`crates/mlres/tests/it/code.rs`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mlres_engine::{Engine, EngineConfig, EngineError, SubmitRequest};

const PROGRAM: &str = r#"# Code pinning

## Budget envelope
```yaml
max_jobs: 4
max_walltime: 1h
allowed_flavors: [cpu-basic]
max_timeout: 10m
backends: [local]
```

## Objective
```yaml
metric: score
goal: maximize
```

## Job
```yaml
command: ["python3", "{code}/train.py", "{x}"]
timeout: 1m
code: CODE
```

## Search space
```yaml
method: grid
parameters:
  x: {values: [1, 2]}
```
"#;

struct Setup {
    _tmp: tempfile::TempDir,
    project: PathBuf,
    state: PathBuf,
}

fn setup(code: &str) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("proj");
    let state = tmp.path().join("state");
    std::fs::create_dir_all(project.join("lib")).unwrap();
    std::fs::write(project.join("program.md"), PROGRAM.replace("CODE", code)).unwrap();
    std::fs::write(project.join("train.py"), "print('score=1')\n").unwrap();
    std::fs::write(project.join("lib/util.py"), "X = 1\n").unwrap();
    Setup {
        _tmp: tmp,
        project,
        state,
    }
}

fn engine(s: &Setup) -> Engine {
    let cfg = EngineConfig {
        state_dir: s.state.clone(),
        // Never launched: these tests stop before a job would start.
        exe: PathBuf::from("/nonexistent/mlres"),
        parent_env: Default::default(),
        hf: None,
        bwrap: None,
        keep_attempts: mlres_engine::DEFAULT_KEEP_ATTEMPTS,
        local_gpus: Vec::new(),
        slurm: None,
    };
    Engine::open(cfg, &s.project).unwrap()
}

/// A human's approval: the secret set once per state dir, then given.
fn approve(e: &mut Engine) -> Result<mlres_ledger::Approval, EngineError> {
    const SECRET: &str = "engine-tests-secret";
    if !e.approver_secret_is_set()? {
        mlres_engine::set_approver_secret(&mut e.ledger, SECRET, None, "tester")?;
    }
    e.approve_with(
        &mlres_engine::HumanApprover {
            user: "tester".into(),
            uid: 0,
            source: mlres_engine::SecretSource::File,
            secret: SECRET.into(),
        },
        false,
    )
}

fn refusal(e: EngineError) -> String {
    match e {
        EngineError::Refused { code, .. } => code,
        other => panic!("expected a refusal, got {other}"),
    }
}

fn submit(e: &mut Engine) -> Result<mlres_ledger::Experiment, EngineError> {
    e.submit_agent(
        SubmitRequest {
            config: serde_json::json!({"x": 1}),
            hypothesis: "h".into(),
            source: "agent",
            proposal_index: None,
        },
        &Default::default(),
    )
}

/// Every regular file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(d: &Path, rel: &str, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let r = format!("{rel}{}", e.file_name().to_string_lossy());
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), &format!("{r}/"), out);
            } else {
                out.push(r);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out);
    out.sort();
    out
}

#[test]
fn approval_pins_a_read_only_content_addressed_snapshot_and_the_manifest() {
    let s = setup("[train.py, lib]");
    std::fs::set_permissions(
        s.project.join("train.py"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let mut e = engine(&s);
    let a = approve(&mut e).unwrap();
    let pinned = e.ledger.pinned_code(&a).unwrap().expect("a code manifest");
    let sha = pinned["sha256"].as_str().unwrap().to_string();
    assert_eq!(sha.len(), 64);
    let paths: Vec<&str> = pinned["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["lib/util.py", "train.py"]);
    assert_eq!(pinned["files"][1]["executable"], true);
    let snap = s.state.join("code").join(&sha);
    assert_eq!(files(&snap), ["lib/util.py", "train.py"]);
    assert_eq!(
        std::fs::read_to_string(snap.join("train.py")).unwrap(),
        "print('score=1')\n"
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&snap.join("train.py")), 0o555);
    assert_eq!(mode(&snap.join("lib/util.py")), 0o444);
    assert_eq!(mode(&snap.join("lib")), 0o555);
    assert_eq!(mode(&snap), 0o555);
    // Unchanged code: nothing to report; the same content approved again reuses the snapshot.
    assert!(e.code_change(&a).unwrap().is_none());
    let a2 = approve(&mut e).unwrap();
    assert_eq!(
        e.ledger.pinned_code(&a2).unwrap().unwrap()["sha256"],
        sha.as_str()
    );
    assert_eq!(std::fs::read_dir(s.state.join("code")).unwrap().count(), 1);
}

#[test]
fn a_changed_file_refuses_the_submit_before_anything_is_reserved() {
    let s = setup("[train.py, lib]");
    let mut e = engine(&s);
    approve(&mut e).unwrap();
    std::fs::write(
        s.project.join("train.py"),
        "print('score=1')\nprint('score=99')\n",
    )
    .unwrap();
    std::fs::write(s.project.join("lib/extra.py"), "Y = 2\n").unwrap();
    std::fs::remove_file(s.project.join("lib/util.py")).unwrap();
    let events = e.ledger.event_count().unwrap();
    let err = submit(&mut e).unwrap_err();
    assert!(err.is_refusal());
    let EngineError::CodeChanged(c) = &err else {
        panic!("expected code_changed, got {err}");
    };
    assert_eq!(c.changed, ["train.py"]);
    assert_eq!(c.added, ["lib/extra.py"]);
    assert_eq!(c.removed, ["lib/util.py"]);
    assert_ne!(c.approved_sha256, c.current_sha256);
    assert!(
        c.diff.contains(
            "--- approved/train.py\n+++ current/train.py\n@@ -1,1 +1,2 @@\n print('score=1')\n+print('score=99')\n"
        ),
        "{}",
        c.diff
    );
    assert!(c.diff.contains("--- approved/lib/util.py\n+++ /dev/null\n"));
    let msg = err.to_string();
    assert!(msg.starts_with("refused (code_changed): "), "{msg}");
    assert!(msg.contains("`mlres approve` again"), "{msg}");
    assert!(msg.contains("  changed: train.py"), "{msg}");
    // Nothing reserved, and no campaign opened: an agent's submit opens the campaign only in
    // the transaction of its first reservation.
    assert!(e.current_campaign().unwrap().is_none());
    assert!(!s.state.join("jobs").exists(), "no attempt directory");
    assert!(
        e.ledger.event_count().unwrap() <= events + 2,
        "no spend events"
    );
}

#[test]
fn secrets_in_the_diff_are_redacted_and_long_diffs_are_cut() {
    let s = setup("[train.py]");
    let mut e = engine(&s);
    let a = approve(&mut e).unwrap();
    let token = format!("hf_{}", "a1B2c3D4e5".repeat(4));
    let mut body = format!("TOKEN = \"{token}\"\n");
    for i in 0..500 {
        body.push_str(&format!("print({i})\n"));
    }
    std::fs::write(s.project.join("train.py"), &body).unwrap();
    let c = e.code_change(&a).unwrap().expect("a change");
    assert!(!c.diff.contains(&token), "{}", c.diff);
    assert!(c.diff.contains("[redacted]"), "{}", c.diff);
    assert!(c.diff_truncated);
    assert!(c.diff.lines().count() <= 200, "{}", c.diff.lines().count());
    assert!(
        c.to_string().contains("the file list above is complete"),
        "{c}"
    );
}

#[test]
fn a_binary_file_is_named_not_dumped() {
    let s = setup("[train.py, lib]");
    std::fs::write(s.project.join("lib/w.bin"), [0u8, 1, 2, 3]).unwrap();
    let mut e = engine(&s);
    let a = approve(&mut e).unwrap();
    std::fs::write(s.project.join("lib/w.bin"), [0u8, 9, 9]).unwrap();
    let c = e.code_change(&a).unwrap().unwrap();
    assert_eq!(c.changed, ["lib/w.bin"]);
    assert!(
        c.diff
            .contains("Binary or large files approved/lib/w.bin and current/lib/w.bin differ"),
        "{}",
        c.diff
    );
}

#[test]
fn code_that_cannot_be_pinned_fails_the_approval_and_records_nothing() {
    // A declared file that does not exist.
    let s = setup("[train.py, missing.py]");
    let mut e = engine(&s);
    assert_eq!(refusal(approve(&mut e).unwrap_err()), "code_missing");
    assert!(
        e.ledger
            .latest_approval(&e.project.root_str())
            .unwrap()
            .is_none()
    );

    // A symlink that leaves the project.
    let s = setup("[train.py, lib]");
    let outside = s.project.parent().unwrap().join("outside.py");
    std::fs::write(&outside, "x").unwrap();
    std::os::unix::fs::symlink(&outside, s.project.join("lib/escape.py")).unwrap();
    let mut e = engine(&s);
    let err = approve(&mut e).unwrap_err();
    assert!(
        err.to_string()
            .contains("lib/escape.py` leads outside the project"),
        "{err}"
    );
    assert_eq!(refusal(err), "code_outside_project");

    // A symlink inside the project is followed: its content is pinned under its own name.
    let s = setup("[train.py, lib]");
    std::fs::write(s.project.join("shared.py"), "S = 1\n").unwrap();
    std::os::unix::fs::symlink("../shared.py", s.project.join("lib/shared.py")).unwrap();
    let mut e = engine(&s);
    let a = approve(&mut e).unwrap();
    let m = e.ledger.pinned_code(&a).unwrap().unwrap();
    let snap = s.state.join("code").join(m["sha256"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(snap.join("lib/shared.py")).unwrap(),
        "S = 1\n"
    );

    // A directory loop.
    let s = setup("[train.py, lib]");
    std::os::unix::fs::symlink(".", s.project.join("lib/again")).unwrap();
    let mut e = engine(&s);
    assert!(
        approve(&mut e)
            .unwrap_err()
            .to_string()
            .contains("symlink loop")
    );

    // A state dir inside a declared directory.
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("proj");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(
        project.join("program.md"),
        PROGRAM
            .replace("CODE", "[src]")
            .replace("{code}/train.py", "{code}/src/t.py"),
    )
    .unwrap();
    std::fs::write(project.join("src/t.py"), "").unwrap();
    let cfg = EngineConfig {
        state_dir: project.join("src/state"),
        exe: PathBuf::from("/nonexistent/mlres"),
        parent_env: Default::default(),
        hf: None,
        bwrap: None,
        keep_attempts: mlres_engine::DEFAULT_KEEP_ATTEMPTS,
        local_gpus: Vec::new(),
        slurm: None,
    };
    let mut e = Engine::open(cfg, &project).unwrap();
    assert_eq!(refusal(approve(&mut e).unwrap_err()), "code_in_state_dir");

    // A symlink to runs/.
    let s = setup("[train.py, lib]");
    std::fs::create_dir_all(s.project.join("runs")).unwrap();
    std::os::unix::fs::symlink("../runs", s.project.join("lib/runs")).unwrap();
    let mut e = engine(&s);
    assert_eq!(refusal(approve(&mut e).unwrap_err()), "code_in_runs");
}

#[test]
fn a_checkpoint_pinned_as_code_is_refused_naming_it() {
    let s = setup("[train.py, lib]");
    let f = std::fs::File::create(s.project.join("lib/model.safetensors")).unwrap();
    f.set_len(65 << 20).unwrap();
    let mut e = engine(&s);
    let err = approve(&mut e).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("over the 64MiB"), "{msg}");
    assert!(msg.contains("lib/model.safetensors (65.0 MiB)"), "{msg}");
    assert_eq!(refusal(err), "code_too_large");
    assert!(
        !s.state.join("code").exists()
            || std::fs::read_dir(s.state.join("code")).unwrap().count() == 0
    );
}

#[test]
fn a_damaged_snapshot_refuses_and_a_new_approval_rebuilds_it() {
    let s = setup("[train.py]");
    let mut e = engine(&s);
    let a = approve(&mut e).unwrap();
    let sha = e.ledger.pinned_code(&a).unwrap().unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let snap = s.state.join("code").join(&sha);
    std::fs::set_permissions(&snap, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        snap.join("train.py"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::write(snap.join("train.py"), "print('score=99')\n").unwrap();
    assert_eq!(
        refusal(submit(&mut e).unwrap_err()),
        "code_snapshot_damaged"
    );
    approve(&mut e).unwrap();
    assert_eq!(
        std::fs::read_to_string(snap.join("train.py")).unwrap(),
        "print('score=1')\n"
    );
}
