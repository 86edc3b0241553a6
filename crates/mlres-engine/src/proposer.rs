//! `method: command`: runs the approved proposer executable (argv, no shell) with the campaign
//! state as JSON on stdin and returns what it printed. The child gets a minimal environment
//! (no tokens, no user secrets: only the names in [`PASSED_ENV`]), runs in the project
//! directory, and is killed with its process group at the timeout.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mlres_policy::ProposerCommand;

/// The only environment variables a proposer inherits (none of them holds a secret).
pub const PASSED_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "TERM",
];

/// Most output read from a proposer, per stream.
const MAX_OUTPUT: u64 = 1 << 20;

fn read_capped(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut r).take(MAX_OUTPUT).read_to_end(&mut buf);
        // Drain the rest so the child never blocks on a full pipe.
        let _ = std::io::copy(&mut r, &mut std::io::sink());
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn tail(s: &str, n: usize) -> String {
    let t = s.trim();
    let count = t.chars().count();
    if count <= n {
        t.to_string()
    } else {
        let cut: String = t.chars().skip(count - n).collect();
        format!("...{cut}")
    }
}

/// Runs the proposer once. `Ok(stdout)` when it exited 0 within its timeout; otherwise why
/// not, in words a proposer (or a person) can act on.
pub fn run(
    cmd: &ProposerCommand,
    cwd: &Path,
    parent_env: &BTreeMap<String, String>,
    input: &str,
) -> Result<String, String> {
    let mut c = Command::new(&cmd.argv[0]);
    c.args(&cmd.argv[1..])
        .current_dir(cwd)
        .env_clear()
        .envs(
            parent_env
                .iter()
                .filter(|(k, _)| PASSED_ENV.contains(&k.as_str())),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        c.process_group(0);
    }
    let mut child = c
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", cmd.argv[0]))?;
    let stdin = child.stdin.take();
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        if let Some(mut s) = stdin {
            // A proposer that does not read its input is fine: ignore a broken pipe.
            let _ = s.write_all(input.as_bytes());
        }
    });
    let out = read_capped(child.stdout.take().expect("piped stdout"));
    let err = read_capped(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + Duration::from_secs(cmd.timeout_secs);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                // The whole group: a wrapper script's children go too.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .stderr(Stdio::null())
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Err(e) => return Err(format!("cannot wait for the proposer: {e}")),
        }
    };
    let _ = writer.join();
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        None => Err(format!(
            "timed out after {}s and was killed",
            cmd.timeout_secs
        )),
        Some(s) if s.success() => Ok(stdout),
        Some(s) => Err(format!(
            "exited with {s}{}",
            if stderr.trim().is_empty() {
                String::new()
            } else {
                format!("; stderr: {}", tail(&stderr, 400))
            }
        )),
    }
}
