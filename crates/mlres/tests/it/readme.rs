//! The README's two commands, exactly as written, from a fresh copy of the repository: what a
//! newcomer types first must work, and the README cannot drift from what CI runs.
//!
//! "Fresh" means: a `git clone` of this repository with the working tree's tracked and
//! not-ignored files laid over it (so uncommitted work is what gets tested), no `target/`, no
//! `mlres` on `PATH`, and an empty `HOME` (so the state dir is the default, empty one). The only
//! thing shared with the rest of the suite is cargo's output directory (`CARGO_TARGET_DIR`, kept
//! under this crate's test tmp dir), so the release build is paid once per machine instead of
//! once per run; the command string itself is run verbatim by `sh -c`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The first line of each fenced `sh` block of the README, in order.
fn readme_commands() -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim() == "```sh" {
            let first = lines.next().expect("a command after ```sh").trim();
            out.push(first.to_string());
        }
    }
    out
}

#[test]
fn the_readme_opens_with_the_demo_and_the_test_command_and_ci_runs_that_test_command() {
    let cmds = readme_commands();
    assert!(
        cmds.len() >= 2,
        "README needs two sh blocks first: {cmds:?}"
    );
    // The first two blocks are the two commands, and they come before any other prose section.
    let text = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let head = text.split("\n---").next().unwrap();
    assert!(head.contains(&cmds[0]) && head.contains(&cmds[1]), "{head}");
    assert!(
        cmds[0].contains("demo"),
        "first command runs the demo: {}",
        cmds[0]
    );
    assert!(
        cmds[1].starts_with("cargo test"),
        "second is the test command: {}",
        cmds[1]
    );
    let ci = std::fs::read_to_string(repo_root().join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == cmds[1]),
        ".ci/run must run the README's test command `{}` verbatim",
        cmds[1]
    );
}

fn git(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A fresh clone of the repository carrying the working tree's current files.
fn fresh_clone(into: &Path) -> PathBuf {
    let root = repo_root();
    let clone = into.join("mlres");
    let status = Command::new("git")
        .args(["clone", "--quiet", "--no-hardlinks"])
        .arg(&root)
        .arg(&clone)
        .status()
        .unwrap();
    assert!(status.success(), "git clone failed");
    let listed = git(
        &root,
        &[
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
    );
    for rel in listed.stdout.split(|&b| b == 0).filter(|p| !p.is_empty()) {
        let rel = Path::new(std::str::from_utf8(rel).unwrap());
        let src = root.join(rel);
        let dst = clone.join(rel);
        if src.is_file() {
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            std::fs::copy(&src, &dst).unwrap();
        } else if !src.exists() {
            let _ = std::fs::remove_file(&dst); // deleted in the working tree
        }
    }
    assert!(!clone.join("target").exists());
    clone
}

/// `sh -c <command>` in `dir` with a newcomer's environment: no mlres on PATH, an empty HOME,
/// no mlres state settings. cargo and rustup keep their own homes (the toolchain is installed).
fn newcomer(dir: &Path, home: &Path, command: &str) -> Output {
    let real_home = PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| real_home.join(".cargo"));
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| real_home.join(".rustup"));
    let path: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .filter(|d| !d.join("mlres").exists())
        .collect();
    let mut c = Command::new("sh");
    c.arg("-c").arg(command).current_dir(dir).env_clear();
    for keep in ["TERM", "LANG", "USER", "LOGNAME", "TMPDIR"] {
        if let Some(v) = std::env::var_os(keep) {
            c.env(keep, v);
        }
    }
    c.env("PATH", std::env::join_paths(path).unwrap())
        .env("HOME", home)
        .env("CARGO_HOME", cargo_home)
        .env("RUSTUP_HOME", rustup_home)
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme-target"),
        );
    c.output().expect("run sh")
}

#[test]
fn the_readme_first_command_runs_the_demo_verbatim_from_a_fresh_clone() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let clone = fresh_clone(tmp.path());
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let first = &readme_commands()[0];

    let out = newcomer(&clone, &home, first);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "`{first}` failed ({:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    assert!(stdout.contains("eval_accuracy"), "{stdout}");
    // The state went to the default place under the (empty) HOME, not somewhere shared.
    assert!(home.join(".local/state/mlres").is_dir());
    assert!(clone.join("mlres-demo/runs/summary.md").is_file());

    // Every command the demo tells the user to type next works as printed, from the same place.
    let suggested: Vec<&str> = stdout
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.contains(" loop status"))
        .collect();
    assert!(
        !suggested.is_empty(),
        "the demo suggests how to see the campaign: {stdout}"
    );
    for cmd in suggested {
        assert!(
            !cmd.starts_with("mlres "),
            "`mlres` is not on a newcomer's PATH after `{first}`: {cmd}"
        );
        let out = newcomer(&clone, &home, cmd);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "suggested `{cmd}` failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("finished"),
            "`{cmd}` shows the campaign: {text}"
        );
    }
}
