//! Attempt directory: preparation, claim protocol, launch, poll, cancel, wait.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, ErrorKind, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{AttemptState, BackendError, LocalJobSpec, Status};

pub(crate) const SPEC: &str = "spec.json";
pub(crate) const WORK: &str = "work";
pub(crate) const CLAIM: &str = "claim";
pub(crate) const LOCK: &str = "lock";
pub(crate) const SUPERVISOR_PID: &str = "supervisor.pid";
pub(crate) const SUPERVISOR_LOG: &str = "supervisor.log";
pub(crate) const JOB_PID: &str = "job.pid";
pub(crate) const JOB_START: &str = "job.start";
pub(crate) const CGROUPS: &str = "cgroups";
pub(crate) const GPUS: &str = "gpus";
pub(crate) const CANCEL: &str = "cancel";
pub(crate) const STATUS: &str = "status.json";

pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BackendError {
    let path = path.to_path_buf();
    move |source| BackendError::Io { op, path, source }
}

/// Check a spec for problems that make it unrunnable regardless of the machine.
pub(crate) fn validate_spec(spec: &LocalJobSpec) -> Result<(), BackendError> {
    let bad = |m: String| Err(BackendError::InvalidSpec(m));
    match spec.argv.first() {
        None => return bad("argv is empty".into()),
        Some(a) if a.is_empty() => return bad("argv[0] is empty".into()),
        Some(_) => {}
    }
    if let Some(a) = spec.argv.iter().find(|a| a.contains('\0')) {
        return bad(format!("argument {a:?} contains a NUL byte"));
    }
    for (k, v) in &spec.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return bad(format!("invalid environment variable name {k:?}"));
        }
        if v.contains('\0') {
            return bad(format!("environment variable {k} contains a NUL byte"));
        }
    }
    if spec.timeout_secs == 0 {
        return bad("timeout_secs must be > 0".into());
    }
    Ok(())
}

pub(crate) fn prepare_attempt(dir: &Path, spec: &LocalJobSpec) -> Result<(), BackendError> {
    prepare_attempt_with(dir, spec, &[])
}

/// [`prepare_attempt`], writing `extra` files (name, content) atomically before `spec.json`,
/// so an attempt with a spec always has them.
pub(crate) fn prepare_attempt_with(
    dir: &Path,
    spec: &LocalJobSpec,
    extra: &[(&str, Vec<u8>)],
) -> Result<(), BackendError> {
    validate_spec(spec)?;
    match fs::read_dir(dir) {
        Ok(mut it) => {
            if it.next().is_some() {
                return Err(BackendError::NotEmpty(dir.to_path_buf()));
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        }
        Err(e) => return Err(io_err("read directory", dir)(e)),
    }
    let tmp = dir.join(WORK).join("tmp");
    fs::create_dir_all(&tmp).map_err(io_err("create directory", &tmp))?;
    let lock = dir.join(LOCK);
    File::create(&lock).map_err(io_err("create", &lock))?;
    for (name, data) in extra {
        write_atomic(&dir.join(name), data)?;
    }
    let json = serde_json::to_vec_pretty(spec).map_err(|source| BackendError::Json {
        path: dir.join(SPEC),
        source,
    })?;
    write_atomic(&dir.join(SPEC), &json)
}

/// Write `path` atomically: temp file in the same directory, fsync, rename, fsync directory.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), BackendError> {
    let tmp = tmp_name(path);
    let res = (|| {
        let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(data).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("fsync", &tmp))?;
        fs::rename(&tmp, path).map_err(io_err("rename into", path))?;
        sync_parent(path);
        Ok(())
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

fn tmp_name(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .unwrap_or(OsStr::new("file"))
        .to_os_string();
    name.push(format!(".tmp.{}", std::process::id()));
    path.with_file_name(name)
}

fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent()
        && let Ok(d) = File::open(parent)
    {
        // Best effort: durability of the rename; some filesystems refuse fsync on directories.
        let _ = d.sync_all();
    }
}

/// Create `path` exclusively with complete content: write a temp file, then hard-link it to
/// `path` (`link` fails with EEXIST if `path` exists), so readers never see a partial file.
/// Returns `Ok(false)` if `path` already exists.
pub(crate) fn create_exclusive(path: &Path, data: &[u8]) -> Result<bool, BackendError> {
    let tmp = tmp_name(path);
    let _ = fs::remove_file(&tmp);
    let res = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        f.write_all(data).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("fsync", &tmp))?;
        match fs::hard_link(&tmp, path) {
            Ok(()) => {
                sync_parent(path);
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_err("link", path)(e)),
        }
    })();
    let _ = fs::remove_file(&tmp);
    res
}

/// Read a whole small file; `Ok(None)` if it does not exist.
pub(crate) fn read_opt(path: &Path) -> Result<Option<Vec<u8>>, BackendError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

fn ensure_attempt(dir: &Path) -> Result<(), BackendError> {
    if dir.join(SPEC).is_file() {
        Ok(())
    } else {
        Err(BackendError::NotAnAttempt(dir.to_path_buf()))
    }
}

/// Read `spec.json` of an attempt.
pub fn read_spec(dir: &Path) -> Result<LocalJobSpec, BackendError> {
    let path = dir.join(SPEC);
    let bytes = read_opt(&path)?.ok_or_else(|| BackendError::NotAnAttempt(dir.to_path_buf()))?;
    serde_json::from_slice(&bytes).map_err(|source| BackendError::Json { path, source })
}

/// Read `status.json` of an attempt; `Ok(None)` if the attempt has not finished.
pub fn read_status(dir: &Path) -> Result<Option<Status>, BackendError> {
    let path = dir.join(STATUS);
    match read_opt(&path)? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|source| BackendError::Json { path, source }),
    }
}

pub(crate) fn claim_void(dir: &Path) -> Result<bool, BackendError> {
    ensure_attempt(dir)?;
    create_exclusive(&dir.join(CLAIM), b"void\n")
}

enum LockState {
    Held,
    Free,
}

/// Is some process holding the supervisor lock? Takes a shared lock for an instant.
fn lock_state(dir: &Path) -> Result<LockState, BackendError> {
    let path = dir.join(LOCK);
    let f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(LockState::Free),
        Err(e) => return Err(io_err("open", &path)(e)),
    };
    match f.try_lock_shared() {
        Ok(()) => Ok(LockState::Free),
        Err(TryLockError::WouldBlock) => Ok(LockState::Held),
        Err(TryLockError::Error(e)) => Err(io_err("lock", &path)(e)),
    }
}

fn read_pid(path: &Path) -> Result<Option<u32>, BackendError> {
    Ok(read_opt(path)?.and_then(|b| String::from_utf8_lossy(&b).trim().parse().ok()))
}

pub(crate) fn poll(dir: &Path) -> Result<AttemptState, BackendError> {
    if let Some(s) = read_status(dir)? {
        return Ok(AttemptState::Finished(s));
    }
    ensure_attempt(dir)?;
    let claim_path = dir.join(CLAIM);
    let Some(claim) = read_opt(&claim_path)? else {
        return Ok(AttemptState::NotClaimed);
    };
    let claim = String::from_utf8_lossy(&claim);
    let claim = claim.trim();
    if claim == "void" {
        return Ok(AttemptState::Voided);
    }
    if !claim.starts_with("started") {
        return Err(BackendError::Corrupt {
            path: claim_path,
            detail: format!("unexpected claim {claim:?}"),
        });
    }
    match lock_state(dir)? {
        LockState::Held => Ok(AttemptState::Running {
            pid: read_pid(&dir.join(JOB_PID))?,
        }),
        // The supervisor writes status.json before releasing the lock: look again.
        LockState::Free => Ok(match read_status(dir)? {
            Some(s) => AttemptState::Finished(s),
            None => AttemptState::Lost,
        }),
    }
}

pub(crate) fn kill_lost(dir: &Path) -> Result<usize, BackendError> {
    if poll(dir)? != AttemptState::Lost {
        return Ok(0);
    }
    let in_group = kill_lost_group(dir)?;
    // The job's cgroups hold everything it started, even what left the group; they are
    // named after this attempt and its supervisor, so nothing else is in them.
    let in_cgroups = read_opt(&dir.join(CGROUPS))?
        .map(|b| crate::cgroup::kill_listed(&String::from_utf8_lossy(&b)))
        .unwrap_or(0);
    Ok(in_group.max(in_cgroups))
}

/// SIGKILL the job's process group, unless its pid was reused.
fn kill_lost_group(dir: &Path) -> Result<usize, BackendError> {
    let Some(pgid) = read_pid(&dir.join(JOB_PID))?.and_then(|p| i32::try_from(p).ok()) else {
        return Ok(0);
    };
    if pgid <= 1 {
        return Ok(0);
    }
    // A pid stays reserved while it names a live process group, so the group is ours unless
    // its leader is alive with a different start time (the pid was reused after the group
    // emptied).
    let recorded = read_opt(&dir.join(JOB_START))?
        .and_then(|b| String::from_utf8_lossy(&b).trim().parse::<u64>().ok());
    if let Some(now) = crate::procs::start_time(pgid)
        && recorded != Some(now)
    {
        return Ok(0);
    }
    let members = crate::procs::group_members(pgid);
    if !members.is_empty() {
        crate::procs::kill_group(pgid, libc::SIGKILL);
    }
    Ok(members.len())
}

pub(crate) fn cancel(dir: &Path) -> Result<(), BackendError> {
    ensure_attempt(dir)?;
    let path = dir.join(CANCEL);
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io_err("create", &path))?;
    if read_status(dir)?.is_some() {
        return Ok(());
    }
    // Only signal a pid while its lock is held: then it is our live supervisor, not a reused pid.
    if let (LockState::Held, Some(pid)) = (lock_state(dir)?, read_pid(&dir.join(SUPERVISOR_PID))?)
        && let Ok(pid) = libc::pid_t::try_from(pid)
        && pid > 0
    {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    Ok(())
}

pub(crate) fn wait(dir: &Path, timeout: Duration) -> Result<AttemptState, BackendError> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(5);
    loop {
        let state = poll(dir)?;
        if matches!(
            state,
            AttemptState::Finished(_) | AttemptState::Lost | AttemptState::Voided
        ) {
            return Ok(state);
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Ok(state);
        }
        std::thread::sleep(delay.min(timeout - elapsed));
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// `supervisor`'s program, arguments, explicitly set variables and directory, with an
/// otherwise EMPTY environment: the caller's (a user's shell, with `HF_TOKEN`) is not inherited.
pub(crate) fn supervisor_command(supervisor: &Command) -> Command {
    let mut cmd = Command::new(supervisor.get_program());
    cmd.args(supervisor.get_args()).env_clear();
    for (k, v) in supervisor.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    if let Some(cwd) = supervisor.get_current_dir() {
        cmd.current_dir(cwd);
    }
    cmd
}

pub(crate) fn launch(dir: &Path, supervisor: &Command) -> Result<(), BackendError> {
    ensure_attempt(dir)?;
    let log_path = dir.join(SUPERVISOR_LOG);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_err("open", &log_path))?;
    let log2 = log.try_clone().map_err(io_err("dup", &log_path))?;

    let mut cmd = supervisor_command(supervisor);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
    // SAFETY: the closure runs in the forked child before exec and only calls fork, _exit,
    // setsid and close_range (raw system calls, async-signal-safe); it allocates nothing and touches no locks. The
    // intermediate process exits at once with _exit (no destructors, no atexit handlers), so
    // only the grandchild returns and goes on to exec. std's CLOEXEC error pipe is inherited
    // by the grandchild, so an exec failure there is still reported by `spawn`.
    unsafe {
        cmd.pre_exec(|| {
            match libc::fork() {
                -1 => return Err(io::Error::last_os_error()),
                0 => {}
                _ => libc::_exit(0),
            }
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            crate::sandbox::cloexec_from_3();
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        BackendError::Launch(format!(
            "{}: {e}",
            String::from_utf8_lossy(supervisor.get_program().as_bytes())
        ))
    })?;
    // The intermediate process exits immediately; reap it so no zombie is left behind.
    child
        .wait()
        .map_err(|e| BackendError::Launch(format!("reaping the intermediate process: {e}")))?;
    Ok(())
}
