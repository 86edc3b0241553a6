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

/// Every `mlres <command>` that the plugin's skills and agents, or the README, tell someone to
/// type is a command the binary has: an agent told to run a missing one falls back to
/// unguarded tools.
#[test]
fn every_mlres_command_the_docs_name_exists() {
    let help = Command::new(crate::support::BIN)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let known: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        known.contains(&"loop") && known.contains(&"exp"),
        "{known:?}"
    );
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec![root.join("README.md")];
    let mut dirs = vec![root.join("plugin")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "md" || x == "json") {
                files.push(p);
            }
        }
    }
    let mut missing = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (i, _) in text.match_indices("`mlres ") {
            let word: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect();
            if word.starts_with(|c: char| c.is_ascii_lowercase()) && !known.contains(&word.as_str())
            {
                missing.push(format!("{}: mlres {word}", f.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs name commands mlres lacks: {missing:?}"
    );
}
