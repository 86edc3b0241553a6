//! Integration tests of the `local` backend. Jobs are `/bin/sh`, `bash` and `python3`
//! programs; the supervisor runs in the test-only binary `mlres-supervise-test`.

mod bad_input;
mod fallback;
mod gpus;
mod hfjobs;
mod lifecycle;
mod limits;
mod sandbox;
mod slurm;
mod slurmrest;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mlres_backends::{
    AttemptState, Limits, LocalJobSpec, NetworkPolicy, Status, poll, prepare_attempt,
};

/// The test supervisor binary.
pub const SUP: &str = env!("CARGO_BIN_EXE_mlres-supervise-test");

/// Generous upper bound for waits (never asserted on; only prevents hanging forever).
pub const LONG: Duration = Duration::from_secs(120);

pub fn base_env() -> BTreeMap<String, String> {
    BTreeMap::from([(
        "PATH".to_string(),
        "/usr/local/bin:/usr/bin:/bin".to_string(),
    )])
}

pub fn spec(argv: &[&str]) -> LocalJobSpec {
    LocalJobSpec {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: base_env(),
        timeout_secs: 120,
        kill_grace_secs: 1,
        limits: Limits::default(),
        log_cap_bytes: 1 << 20,
        network: NetworkPolicy::Host,
        read_only: Vec::new(),
        masked: Vec::new(),
        gpus: None,
        code_sha256: None,
    }
}

pub fn sh(script: &str) -> LocalJobSpec {
    spec(&["/bin/sh", "-c", script])
}

/// A fresh (non-existent) attempt directory inside a temp dir that is swept for canary
/// secrets when the test ends.
pub fn attempt_dir() -> (mlres_testkit::SweptDir, PathBuf) {
    let t = mlres_testkit::SweptDir::new_in(env!("CARGO_TARGET_TMPDIR"));
    let d = t.path().join("attempt");
    (t, d)
}

/// Run the supervisor synchronously; returns its exit code.
pub fn supervise_sync(dir: &Path) -> i32 {
    supervise_cmd(dir)
        .status()
        .expect("run supervisor")
        .code()
        .unwrap_or(-1)
}

pub fn supervise_cmd(dir: &Path) -> Command {
    let mut c = Command::new(SUP);
    c.arg("supervise")
        .arg(dir)
        .stdout(std::process::Stdio::null());
    c
}

/// Prepare and run synchronously; returns the recorded status.
pub fn run(dir: &Path, spec: &LocalJobSpec) -> Status {
    prepare_attempt(dir, spec).expect("prepare");
    assert_eq!(supervise_sync(dir), 0, "supervisor exit code");
    match poll(dir).expect("poll") {
        AttemptState::Finished(s) => s,
        other => panic!("expected Finished, got {other:?}"),
    }
}

pub fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// Is `pid` a live (non-zombie) process?
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(s) => {
            let state = s[s.rfind(')').map_or(0, |i| i + 1)..]
                .split_ascii_whitespace()
                .next()
                .unwrap_or("X")
                .to_string();
            state != "Z" && state != "X"
        }
    }
}

/// A unique `sleep` duration (e.g. `1000.4242000017`): jobs run in their own PID namespace,
/// so the pids they record are not host pids; tests find their processes on the host by this
/// marker in the command line instead.
pub fn marker() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "1000.{}{:04}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Live host processes whose command line contains `marker`.
pub fn marked_alive(marker: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| p != me && pid_alive(p))
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .collect()
}

/// Wait (up to `LONG`) until no process carries `marker`; true if none is left.
pub fn marked_gone(marker: &str) -> bool {
    let start = Instant::now();
    while start.elapsed() < LONG {
        if marked_alive(marker).is_empty() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Session id of a live process.
pub fn session_of(pid: i32) -> Option<i32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 1..]
        .split_ascii_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

pub fn read_pid(path: &Path) -> i32 {
    read(path)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no pid in {}", path.display()))
}

/// Wait until `path` exists and is non-empty, or `LONG` passes.
pub fn wait_for_file(path: &Path) -> bool {
    let start = Instant::now();
    while start.elapsed() < LONG {
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Absolute path of the real python3 interpreter (not a shim).
pub fn python3() -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is required for these tests");
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(p.starts_with('/'), "python3 sys.executable: {p:?}");
    p
}
