//! The plugin's hook wrapper: it must fail closed even when mlres itself cannot be found.

use std::io::Write;
use std::process::{Command, Stdio};

fn wrapper() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugin/hooks/mlres-guard.sh")
}

fn run(path_env: &str, input: &str) -> std::process::Output {
    let mut child = Command::new(wrapper())
        .env("PATH", path_env)
        .env(
            "MLRES_STATE_DIR",
            std::env::temp_dir().join("mlres-plugin-test-state"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The wrapper may exit before reading its input (that is the deny path): ignore EPIPE.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    child.wait_with_output().unwrap()
}

const SPEND: &str = r#"{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"hf jobs run python:3.12 python -c 1"}}"#;
const BENIGN: &str =
    r#"{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"git status"}}"#;

#[test]
fn the_hook_wrapper_denies_everything_when_mlres_is_not_on_path() {
    for input in [SPEND, BENIGN] {
        let out = run("/usr/bin:/bin", input);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("not on PATH"));
    }
}

#[test]
fn the_hook_wrapper_runs_the_guard_when_mlres_is_on_path() {
    let bin_dir = std::path::Path::new(crate::support::BIN).parent().unwrap();
    let path = format!("{}:/usr/bin:/bin", bin_dir.display());
    let out = run(&path, SPEND);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hookSpecificOutput"]["permissionDecision"], "deny");
    let out = run(&path, BENIGN);
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("\"deny\""));
}
