//! What a newcomer runs into in the first hour: closed pipes, odd environments, logs, help,
//! and the agent path after a campaign ends.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use crate::support::{BIN, Env, Fast, code, stderr};

fn submit(env: &Env, x: u32) -> i64 {
    let e = env.json(&[
        "exp",
        "submit",
        "--config",
        &format!(r#"{{"x": {x}}}"#),
        "--hypothesis",
        "h",
        "--json",
    ]);
    e["id"].as_i64().unwrap()
}

fn wait(env: &Env, id: i64) -> serde_json::Value {
    env.json(&["exp", "wait", &id.to_string(), "--json", "--timeout", "2m"])
}

/// Runs `mlres args` with its stdout a pipe whose reader is already gone, so the very first
/// write fails: it must end quietly (SIGPIPE or success), never with a panic.
fn closed_pipe(env: &Env, args: &[&str]) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = env
        .cmd()
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        out.status.success() || out.status.signal() == Some(libc_sigpipe()),
        "mlres {args:?} on a closed pipe: {:?} {err}",
        out.status
    );
    assert!(!err.contains("panicked"), "mlres {args:?}: {err}");
    assert!(!err.contains("Broken pipe"), "mlres {args:?}: {err}");
}

fn libc_sigpipe() -> i32 {
    13 // SIGPIPE on Linux
}

#[test]
fn every_printing_command_ends_quietly_on_a_closed_pipe() {
    let env = Env::new();
    env.write_program(&Fast::default().program());
    env.approve();
    let id = submit(&env, 1);
    wait(&env, id);
    let id = id.to_string();
    for args in [
        &["ledger", "events"][..],
        &["ledger", "export"],
        &["ledger", "verify"],
        &["loop", "status"],
        &["loop", "status", "--json"],
        &["exp", "status", &id],
        &["exp", "logs", &id],
        &["check"],
        &["check", "--json"],
        &["--help"],
        &["doctor"],
    ] {
        closed_pipe(&env, args);
    }
    // And the pipe a user really types: `mlres ledger events | head -c 10`.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "set -o pipefail 2>/dev/null; \"{BIN}\" -C \"$P\" ledger events | head -c 10 >/dev/null; echo \"status=$?\" >&2"
        ))
        .env("P", &env.project)
        .env("MLRES_STATE_DIR", &env.state)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("status=101"), "{err}");
}

#[test]
fn a_non_utf8_environment_variable_is_not_a_panic() {
    let env = Env::new();
    env.write_program(&Fast::default().program());
    let bad = std::ffi::OsStr::from_bytes(b"caf\xe9");
    // An unrelated variable: ignored, the command works.
    for args in [
        &["loop", "status"][..],
        &["loop", "status", "--json"],
        &["check"],
    ] {
        let out = env
            .cmd()
            .args(args)
            .env("SOME_LATIN1_VAR", bad)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    // `hub whoami` with no token: a clear "no token" answer, not a panic.
    let out = env
        .cmd()
        .args(["hub", "whoami"])
        .env("SOME_LATIN1_VAR", bad)
        .env_remove("HF_TOKEN")
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert_ne!(code(&out), 101);
    // A variable mlres or Hugging Face tooling reads: refused by name, never silently dropped.
    let out = env
        .cmd()
        .args(["hub", "whoami"])
        .env("HF_TOKEN", bad)
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("HF_TOKEN is not valid UTF-8"),
        "{}",
        stderr(&out)
    );
    let out = env
        .cmd()
        .args(["loop", "status"])
        .env("MLRES_FOO", bad)
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("MLRES_FOO"), "{}", stderr(&out));
}

#[test]
fn exp_logs_prints_each_line_once() {
    let env = Env::new();
    env.write_program(
        &Fast {
            script: "for i in 1 2 3; do echo line-$i; echo err-$i >&2; done; echo score={x}",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let id = submit(&env, 1);
    wait(&env, id);
    let out = env.ok(&["exp", "logs", &id.to_string()]);
    assert_eq!(out, "line-1\nline-2\nline-3\nscore=1\n");
    let err = env.ok(&["exp", "logs", &id.to_string(), "--stderr"]);
    assert_eq!(err, "err-1\nerr-2\nerr-3\n");
}

#[test]
fn help_lists_every_exit_code_and_so_does_the_readme() {
    let env = Env::new();
    let help = env.ok(&["--help"]);
    let section = help
        .split("Exit codes:")
        .nth(1)
        .expect("an exit code section");
    let section = section.split("\n\n").next().unwrap();
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .unwrap();
    let readme = readme.split("## Exit codes").nth(1).unwrap();
    // Codes 0..=6 are the ones `mlres::exit` defines (a new one must be added here too).
    for c in 0..=6 {
        assert!(
            section.contains(&format!("{c} ")),
            "--help lacks exit code {c}: {section}"
        );
        assert!(
            readme.contains(&format!("`{c}`")),
            "README lacks exit code {c}"
        );
    }
    assert!(section.contains("6 `mlres data audit`"), "{section}");
}

/// After a campaign ends, the agent's `exp submit` path continues only through a fresh human
/// approval, given after the end; the agent alone never refills the budget.
#[test]
fn a_fresh_human_approval_opens_a_new_campaign_for_exp_submit() {
    let env = Env::new();
    env.write_program(
        &Fast {
            max_jobs: 1,
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let first = submit(&env, 1);
    wait(&env, first);
    let out = env.run(&["loop", "stop", "--reason", "done for today"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let st = env.json(&["loop", "status", "--json"]);
    let old = st["campaign"]["id"].as_str().unwrap().to_string();

    // The agent alone: refused, and asked for a human.
    let out = env.run(&[
        "exp",
        "submit",
        "--config",
        r#"{"x": 2}"#,
        "--hypothesis",
        "h",
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("mlres approve"), "{}", stderr(&out));
    // `approve` with nothing changed still records a new approval, since the
    // campaign it authorised has ended.
    env.approve();
    let second = submit(&env, 2);
    let done = wait(&env, second);
    assert_eq!(done["metric"].as_f64(), Some(2.0));
    let st = env.json(&["loop", "status", "--json"]);
    let new = st["campaign"]["id"].as_str().unwrap();
    assert_ne!(new, old, "a new campaign");
    assert_eq!(st["budget"]["jobs"]["used"], 1);
    // The new campaign has its own envelope: its one job is spent, the next is refused.
    let out = env.run(&[
        "exp",
        "submit",
        "--config",
        r#"{"x": 3}"#,
        "--hypothesis",
        "h",
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let verify = env.json(&["ledger", "verify", "--json"]);
    assert_eq!(
        verify["problems"].as_array().map(Vec::len),
        Some(0),
        "{verify}"
    );
}

#[test]
fn the_demo_suggests_commands_that_work_from_where_it_was_run() {
    let env = Env::new();
    let dir = env.path().join("my demo");
    // With the binary on PATH, `mlres` is what to type. (A program.md that is not the demo's
    // stops the demo at once, with a suggestion: the cheap way to see what it suggests.)
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("program.md"), Fast::default().program()).unwrap();
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let on_path = env
        .cmd()
        .args(["demo", "--dir"])
        .arg(&dir)
        .env("PATH", bin_dir)
        .env_remove("CARGO")
        .env_remove("CARGO_MANIFEST_DIR")
        .output()
        .unwrap();
    assert_eq!(code(&on_path), 3, "{}", stderr(&on_path));
    let want = format!("`mlres -C '{}' approve`", dir.display());
    assert!(
        stderr(&on_path).contains(&want),
        "{want} in {}",
        stderr(&on_path)
    );
    std::fs::remove_file(dir.join("program.md")).unwrap();

    // Without it, the suggestion is this executable's path, and it works as printed.
    let without = env
        .cmd()
        .args(["demo", "--dir"])
        .arg(&dir)
        .env("PATH", "/usr/bin:/bin")
        .env_remove("CARGO")
        .env_remove("CARGO_MANIFEST_DIR")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&without.stdout).into_owned();
    assert!(without.status.success(), "{}", stderr(&without));
    let cmd = text
        .split('`')
        .skip(1)
        .step_by(2)
        .find(|s| s.ends_with("loop status"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        cmd.starts_with(BIN),
        "an absolute path, since mlres is not on PATH: {cmd}"
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("MLRES_STATE_DIR", &env.state)
        .output()
        .unwrap();
    assert!(out.status.success(), "`{cmd}`: {}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("finished"));
}
