//! Shared helpers: a temp project + state dir and a way to run the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_mlres");

/// The approval secret the tests' human uses.
pub const SECRET: &str = "tests-approval-secret-0451";

/// A temp project + state dir. It is a [`mlres_testkit::SweptDir`]: when the test ends, every
/// file mlres wrote there (ledger, job dirs, logs, exports) and every output `run` captured is
/// swept for the suite's canary secrets, and a leak fails the test.
pub struct Env {
    pub tmp: mlres_testkit::SweptDir,
    pub project: PathBuf,
    pub state: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let tmp = mlres_testkit::SweptDir::new_in(env!("CARGO_TARGET_TMPDIR"));
        let project = tmp.path().join("proj");
        let state = tmp.path().join("state");
        std::fs::create_dir_all(&project).unwrap();
        Env {
            tmp,
            project,
            state,
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn write_program(&self, text: &str) {
        std::fs::write(self.project.join("program.md"), text).unwrap();
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env("MLRES_STATE_DIR", &self.state)
            .env("HOME", self.tmp.path())
            .env_remove("XDG_STATE_HOME")
            .arg("-C")
            .arg(&self.project);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd().args(args).output().expect("run mlres");
        self.record(args, &out);
        out
    }

    /// Keeps a command's stdout and stderr in the swept dir (use after `cmd().output()`).
    pub fn record(&self, args: &[&str], out: &Output) {
        let label = args.iter().take(3).copied().collect::<Vec<_>>().join(" ");
        self.tmp.record(&format!("{label} stdout"), &out.stdout);
        self.tmp.record(&format!("{label} stderr"), &out.stderr);
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "mlres {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let s = self.ok(args);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("mlres {args:?}: not JSON ({e}): {s}"))
    }

    /// The human's approval secret file (0600, in the temp dir, outside project and state).
    pub fn secret_file(&self) -> String {
        let p = self.tmp.path().join("approver-secret");
        if !p.exists() {
            std::fs::write(&p, SECRET).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
        }
        p.to_string_lossy().into_owned()
    }

    /// A human sets the approval secret of this env's state dir (once; again after the state
    /// dir was replaced).
    pub fn set_secret(&self) {
        if !self.state.join("approver.phc").exists() {
            let f = self.secret_file();
            self.ok(&["setup", "approver", "--secret-file", &f]);
        }
    }

    /// `approve` as the human: the secret set up, then given from its file; `extra` args
    /// follow.
    pub fn approve_args(&self, extra: &[&str]) -> Output {
        self.set_secret();
        let f = self.secret_file();
        let mut args = vec!["approve", "--secret-file", &f];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    pub fn approve(&self) {
        let out = self.approve_args(&[]);
        assert!(
            out.status.success(),
            "approve failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A campaign whose jobs are shell one-liners that print `score=<x>` quickly.
pub struct Fast<'a> {
    pub max_jobs: u32,
    pub max_concurrent: u32,
    pub max_walltime: &'a str,
    pub timeout: &'a str,
    pub values: &'a str,
    pub script: &'a str,
    pub method: &'a str,
    pub extra_job: &'a str,
    pub extra_objective: &'a str,
    pub extra_space: &'a str,
}

impl Default for Fast<'_> {
    fn default() -> Self {
        Fast {
            max_jobs: 6,
            max_concurrent: 1,
            max_walltime: "1h",
            timeout: "1m",
            values: "[1, 2, 3, 4, 5, 6]",
            script: "echo score={x}",
            method: "grid",
            extra_job: "",
            extra_objective: "",
            extra_space: "",
        }
    }
}

impl Fast<'_> {
    pub fn program(&self) -> String {
        format!(
            r#"# Fast test campaign

## Goal
Maximise score.

## Scope
Shell jobs only.

## Budget envelope
```yaml
max_jobs: {max_jobs}
max_walltime: {max_walltime}
allowed_flavors: [cpu-basic]
max_timeout: 10m
allow_deletes: false
output_repos: []
max_concurrent: {max_concurrent}
backends: [local]
```

## Objective
```yaml
metric: score
goal: maximize
{extra_objective}
```

## Job
```yaml
backend: local
command: ["/bin/sh", "-c", "{script}"]
flavor: cpu-basic
timeout: {timeout}
{extra_job}
```

## Search space
```yaml
method: {method}
{extra_space}
parameters:
  x:
    values: {values}
```
"#,
            max_jobs = self.max_jobs,
            max_walltime = self.max_walltime,
            max_concurrent = self.max_concurrent,
            script = self.script,
            timeout = self.timeout,
            extra_job = self.extra_job,
            method = self.method,
            values = self.values,
            extra_objective = self.extra_objective,
            extra_space = self.extra_space,
        )
    }
}

/// Process setup the approval tests need: no controlling terminal, and a file on fd 3.
pub trait CommandExt2 {
    /// Runs the child in a new session, so it has no controlling terminal (`/dev/tty` fails)
    /// even when the tests themselves run in one.
    fn setsid_if_possible(&mut self) -> &mut Self;
    /// Opens `path` and hands it to the child as file descriptor 3.
    fn fd3_from(&mut self, path: &Path) -> &mut Self;
}

impl CommandExt2 for Command {
    fn setsid_if_possible(&mut self) -> &mut Self {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent; between
        // fork and exec nothing else runs in the child.
        unsafe {
            self.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        self
    }

    fn fd3_from(&mut self, path: &Path) -> &mut Self {
        use std::os::fd::IntoRawFd;
        use std::os::unix::process::CommandExt;
        // Leaked on purpose: the descriptor must stay open until the child is spawned; the
        // test process ends soon after.
        let fd = std::fs::File::open(path).unwrap().into_raw_fd();
        // SAFETY: dup2 and fcntl are async-signal-safe; `fd` is open in the parent (never closed, see
        // above) and so in the forked child.
        unsafe {
            self.pre_exec(move || {
                // dup2 onto itself keeps close-on-exec set: clear it instead.
                let r = if fd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, 3)
                };
                if r < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.setsid_if_possible()
    }
}
