//! The job's code is pinned with the approval: `code:` files are hashed and snapshotted by
//! `mlres approve`, jobs run the read-only snapshot through `{code}`, and a changed, added or
//! deleted file makes every spending command refuse (exit 3) with the difference, spending
//! nothing, until a human approves again.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{Env, code, stderr};

fn program(command: &str, code: &str) -> String {
    format!(
        r#"# Code pinning

## Scope
A script that prints its score.

## Budget envelope
```yaml
max_jobs: 10
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
command: {command}
timeout: 1m
code: {code}
```

## Search space
```yaml
method: grid
parameters:
  x: {{values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}}
```
"#
    )
}

const TRAIN: &str =
    "import sys\nfrom util import scale\nprint(f\"score={scale(int(sys.argv[1]))}\")\n";

fn setup() -> Env {
    let env = Env::new();
    std::fs::create_dir_all(env.project.join("lib")).unwrap();
    std::fs::write(env.project.join("train.py"), TRAIN).unwrap();
    std::fs::write(
        env.project.join("lib/util.py"),
        "def scale(x):\n    return x\n",
    )
    .unwrap();
    env.write_program(&program(
        r#"["/usr/bin/env", "PYTHONPATH={code}/lib", "python3", "{code}/train.py", "{x}"]"#,
        "[train.py, lib]",
    ));
    env
}

fn submit(env: &Env, x: u32, json: bool) -> std::process::Output {
    let config = format!("x={x}");
    let mut args = vec![
        "exp",
        "submit",
        "--config",
        &config,
        "--hypothesis",
        "code pinning",
    ];
    if json {
        args.push("--json");
    }
    env.run(&args)
}

/// Submits and waits; returns the experiment as JSON.
fn run(env: &Env, x: u32) -> Value {
    let out = submit(env, x, true);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"].to_string();
    env.json(&["exp", "wait", &id, "--timeout", "2m", "--json"])
}

fn experiments(env: &Env) -> usize {
    env.json(&["loop", "status", "--json"])["experiments"]
        .as_array()
        .map_or(0, Vec::len)
}

/// Attempt directories under the state dir.
fn attempt_dirs(env: &Env) -> Vec<PathBuf> {
    let jobs = env.state.join("jobs");
    let Ok(campaigns) = std::fs::read_dir(&jobs) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for c in campaigns {
        for a in std::fs::read_dir(c.unwrap().path()).unwrap() {
            out.push(a.unwrap().path());
        }
    }
    out.sort();
    out
}

/// Asserts the next submit is refused for changed code, spending nothing; returns stderr.
#[track_caller]
fn assert_refused(env: &Env, x: u32) -> String {
    let exps = experiments(env);
    let attempts = attempt_dirs(env);
    let out = submit(env, x, false);
    let err = stderr(&out);
    assert_eq!(code(&out), 3, "{err}");
    assert!(err.contains("refused (code_changed)"), "{err}");
    assert!(err.contains("nothing was spent"), "{err}");
    assert!(err.contains("`mlres approve` again"), "{err}");
    assert_eq!(experiments(env), exps, "no experiment was reserved");
    assert_eq!(
        attempt_dirs(env),
        attempts,
        "no attempt directory was created"
    );
    err
}

fn snapshot_of(env: &Env, exp: &Value) -> (String, PathBuf) {
    let events = env.json(&["ledger", "events", "--json", "--limit", "1000"]);
    let submitted = events
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["kind"] == "submitted" && e["payload"]["exp_id"] == exp["id"])
        .expect("a submitted event");
    let sha = submitted["payload"]["code_sha256"]
        .as_str()
        .expect("the submitted event names the code")
        .to_string();
    (sha.clone(), env.state.join("code").join(sha))
}

#[test]
fn jobs_run_the_approved_code_and_any_change_is_refused_until_reapproved() {
    let env = setup();
    env.approve();
    let e1 = run(&env, 3);
    assert_eq!(e1["status"], "completed", "{e1}");
    assert_eq!(e1["metric"], 3.0, "{e1}");
    // The submit event and the job's spec name the code it ran; it ran from the snapshot.
    let (sha, snap) = snapshot_of(&env, &e1);
    assert_eq!(sha.len(), 64);
    assert_eq!(
        std::fs::read_to_string(snap.join("train.py")).unwrap(),
        TRAIN
    );
    let dirs = attempt_dirs(&env);
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(dirs[0].join("spec.json")).unwrap()).unwrap();
    assert_eq!(spec["code_sha256"], sha.as_str());
    assert_eq!(spec["argv"][3], format!("{}/train.py", snap.display()));

    // The agent games the evaluation after approval: refused, with the diff, nothing spent.
    std::fs::write(
        env.project.join("train.py"),
        TRAIN.replace("scale(int(sys.argv[1]))", "100"),
    )
    .unwrap();
    let err = assert_refused(&env, 4);
    assert!(err.contains("  changed: train.py"), "{err}");
    assert!(err.contains("--- approved/train.py"), "{err}");
    assert!(err.contains("+++ current/train.py"), "{err}");
    assert!(
        err.contains("-print(f\"score={scale(int(sys.argv[1]))}\")"),
        "{err}"
    );
    assert!(err.contains("+print(f\"score={100}\")"), "{err}");
    // The same structurally with --json (and the same exit code).
    let out = submit(&env, 4, true);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["refused"], "code_changed");
    assert_eq!(v["code_change"]["changed"], serde_json::json!(["train.py"]));
    assert_eq!(v["code_change"]["approved_sha256"], sha.as_str());
    assert!(
        v["code_change"]["diff"]
            .as_str()
            .unwrap()
            .contains("+print(f\"score={100}\")")
    );
    // `loop run` refuses the same way, before a campaign runs anything.
    let exps = experiments(&env);
    let out = env.run(&["loop", "run"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("refused (code_changed)"));
    assert_eq!(experiments(&env), exps);
    let out = env.run(&["loop", "run", "--json"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["code_change"]["changed"], serde_json::json!(["train.py"]));

    // A human reviews and approves the new code: submits work again, and run it.
    let approve = env.approve_args(&[]);
    assert_eq!(code(&approve), 0, "{}", stderr(&approve));
    let shown = stderr(&approve);
    assert!(
        shown.contains("Code changes since the last approval"),
        "{shown}"
    );
    assert!(shown.contains("+print(f\"score={100}\")"), "{shown}");
    let e2 = run(&env, 4);
    assert_eq!(e2["metric"], 100.0, "{e2}");
    let (sha2, _) = snapshot_of(&env, &e2);
    assert_ne!(sha2, sha);

    // A file added to a declared directory is a change.
    std::fs::write(env.project.join("lib/extra.py"), "EXTRA = 1\n").unwrap();
    let err = assert_refused(&env, 5);
    assert!(err.contains("  added: lib/extra.py"), "{err}");
    assert!(err.contains("+++ current/lib/extra.py"), "{err}");
    assert!(err.contains("+EXTRA = 1"), "{err}");
    env.approve();
    assert_eq!(run(&env, 5)["status"], "completed");

    // So is a deleted one.
    std::fs::remove_file(env.project.join("lib/extra.py")).unwrap();
    let err = assert_refused(&env, 6);
    assert!(err.contains("  removed: lib/extra.py"), "{err}");
    assert!(err.contains("--- approved/lib/extra.py"), "{err}");
    env.approve();
    assert_eq!(run(&env, 6)["status"], "completed");

    // An approval with unchanged code and program is a no-op.
    let out = String::from_utf8_lossy(&env.approve_args(&[]).stdout).into_owned();
    assert!(out.contains("Already approved"), "{out}");
}

const WRITER: &str = r##"import os, sys
code = os.path.dirname(os.path.abspath(__file__))
for target in (os.path.join(code, "train.py"), os.path.join(code, "new.py")):
    try:
        with open(target, "a") as f:
            f.write("# tampered\n")
        print("WROTE", target)
    except OSError as e:
        print("denied", os.path.basename(target), e.errno)
print("project visible:", os.path.exists(sys.argv[2] + "/program.md"))
print("score=" + sys.argv[1])
"##;

/// A project whose code tries to write into its own snapshot; `command` gets the project dir.
fn writer_env(command: impl Fn(&Path) -> String) -> Env {
    let env = Env::new();
    std::fs::write(env.project.join("train.py"), WRITER).unwrap();
    env.write_program(&program(&command(&env.project), "[train.py]"));
    env.approve();
    env
}

fn logs(env: &Env, exp: &Value) -> String {
    env.ok(&["exp", "logs", &exp["id"].to_string()])
}

#[track_caller]
fn assert_snapshot_untouched(env: &Env, exp: &Value) {
    let (_, snap) = snapshot_of(env, exp);
    assert_eq!(
        std::fs::read_to_string(snap.join("train.py")).unwrap(),
        WRITER
    );
    assert!(!snap.join("new.py").exists());
}

#[test]
fn a_job_cannot_write_into_its_code_snapshot() {
    // The command does not name `{project}`: the job sees the snapshot, not the project
    // (its path is passed literally, to look for it).
    let env = writer_env(|p| {
        format!(
            r#"["python3", "{{code}}/train.py", "{{x}}", "{}"]"#,
            p.display()
        )
    });
    let e = run(&env, 1);
    let out = logs(&env, &e);
    assert!(!out.contains("WROTE"), "{out}");
    assert!(out.contains("denied train.py"), "{out}");
    assert!(out.contains("denied new.py"), "{out}");
    assert!(out.contains("project visible: False"), "{out}");
    assert_eq!(e["metric"], 1.0, "{e}");
    assert_snapshot_untouched(&env, &e);
    // Still the approved code: the next submit is accepted.
    let out = submit(&env, 2, false);
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    // Named through `{project}`, the project is readable (and still not writable).
    let env = writer_env(|_| r#"["python3", "{code}/train.py", "{x}", "{project}"]"#.into());
    let e = run(&env, 1);
    let out = logs(&env, &e);
    assert!(out.contains("project visible: True"), "{out}");
    assert!(!out.contains("WROTE"), "{out}");
    assert_snapshot_untouched(&env, &e);
}

#[test]
fn without_bubblewrap_the_snapshot_stays_read_only_too() {
    let env = writer_env(|_| r#"["python3", "{code}/train.py", "{x}", "{project}"]"#.into());
    // A bubblewrap path that does not exist forces the Landlock fallback.
    let args = [
        "exp",
        "submit",
        "--config",
        "x=1",
        "--hypothesis",
        "h",
        "--json",
    ];
    let out = env
        .cmd()
        .env("MLRES_BWRAP", env.path().join("no-bwrap"))
        .args(args)
        .output()
        .unwrap();
    env.record(&args, &out);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"].to_string();
    let e = env.json(&["exp", "wait", &id, "--timeout", "2m", "--json"]);
    let status = env.json(&["exp", "status", &id, "--json"]);
    if !status["sandbox"].to_string().contains("fallback") {
        // No Landlock on this kernel: the job did not run at all (fail closed).
        assert_ne!(e["status"], "completed", "{status}");
        return;
    }
    let out = logs(&env, &e);
    assert!(!out.contains("WROTE"), "{out}");
    assert!(out.contains("denied train.py"), "{out}");
    assert!(out.contains("denied new.py"), "{out}");
    assert_snapshot_untouched(&env, &e);
    // Whatever the job did to the snapshot's modes, the next submit verifies it and runs.
    let out = submit(&env, 2, false);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn the_code_placeholder_without_a_code_list_is_refused_by_check() {
    let env = Env::new();
    env.write_program(
        &program(r#"["python3", "{code}/train.py", "{x}"]"#, "[train.py]")
            .replace("code: [train.py]\n", ""),
    );
    let out = env.run(&["check"]);
    assert_ne!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("`{code}` names the approved snapshot"),
        "{err}"
    );
    assert!(err.contains("code: [train.py]"), "{err}");
}

#[test]
fn code_that_cannot_be_pinned_is_not_approved() {
    let env = Env::new();
    env.write_program(&program(
        r#"["python3", "{code}/train.py", "{x}"]"#,
        "[train.py]",
    ));
    let out = env.approve_args(&[]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("code `train.py` does not exist"),
        "{}",
        stderr(&out)
    );
    let outside = env.path().join("elsewhere.py");
    std::fs::write(&outside, "print('score=1')\n").unwrap();
    std::os::unix::fs::symlink(&outside, env.project.join("train.py")).unwrap();
    let out = env.approve_args(&[]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("leads outside the project"),
        "{}",
        stderr(&out)
    );
    let out = submit(&env, 1, false);
    assert_eq!(code(&out), 3);
    assert!(
        stderr(&out).contains("never been approved"),
        "{}",
        stderr(&out)
    );
}
