//! The supervisor: claim, lock, spawn the sandboxed job, watch it, clean up, record status.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::attempt::{
    CANCEL, CGROUPS, CLAIM, GPUS, JOB_PID, JOB_START, LOCK, SPEC, STATUS, SUPERVISOR_PID, WORK,
    create_exclusive, io_err, read_opt, read_spec, validate_spec, write_atomic,
};
use crate::cgroup::{self, JobCgroup, Version};
use crate::logcap::{self, Captured};
use crate::sandbox::{ChildReport, ChildSetup, NetPrep, errno_text, parse_report, rlimit_settings};
use crate::{BackendError, LocalJobSpec, NetworkPolicy, Outcome, Status, log_paths, procs};
use crate::{gpu, jail};

/// Set by SIGTERM/SIGINT/SIGUSR1: cancellation requested.
static CANCEL_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_cancel_signal(_sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    CANCEL_REQUESTED.store(true, Ordering::SeqCst);
}

pub(crate) fn install_signal_handlers() {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGUSR1] {
        // SAFETY: `sa` is zero-initialised (a valid sigaction), then filled with a handler that
        // only performs an atomic store; sigemptyset and sigaction get valid pointers.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_cancel_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub(crate) fn supervise(
    dir: &Path,
    bwrap: Option<&Path>,
    chosen: Option<Result<(), String>>,
) -> Result<Status, BackendError> {
    let dir = std::path::absolute(dir).map_err(io_err("resolve", dir))?;
    if !dir.join(SPEC).is_file() {
        return Err(BackendError::NotAnAttempt(dir));
    }
    if crate::hfjobs::is_hf_attempt(&dir) {
        // Never run a remote job's command on this machine.
        return Err(BackendError::InvalidSpec(
            "this is an hf-jobs attempt; it needs the hf-jobs supervisor".into(),
        ));
    }
    if crate::slurm::is_slurm_attempt(&dir) {
        return Err(BackendError::InvalidSpec(
            "this is a slurm attempt; it needs the slurm supervisor".into(),
        ));
    }
    // Handlers first: a cancel() that sees supervisor.pid must not kill us by default action.
    install_signal_handlers();
    // Lock first, then claim: a claimed attempt whose lock is free has a dead supervisor.
    let lock_path = dir.join(LOCK);
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io_err("open", &lock_path))?;
    lock.lock().map_err(io_err("lock", &lock_path))?;
    let me = std::process::id();
    let claim_path = dir.join(CLAIM);
    if !create_exclusive(&claim_path, format!("started {me}\n").as_bytes())? {
        let claim = read_opt(&claim_path)?.unwrap_or_default();
        return Err(BackendError::AlreadyClaimed {
            claim: String::from_utf8_lossy(&claim).trim().to_string(),
        });
    }
    write_atomic(&dir.join(SUPERVISOR_PID), format!("{me}\n").as_bytes())?;
    // SAFETY: prctl with integer arguments has no memory-safety preconditions.
    let subreaper = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } == 0;

    let mut status = run(&dir, subreaper, bwrap, chosen);
    if !subreaper {
        status
            .notes
            .push("PR_SET_CHILD_SUBREAPER failed, escaped descendants may survive".into());
    }
    let json = serde_json::to_vec_pretty(&status).map_err(|source| BackendError::Json {
        path: dir.join(STATUS),
        source,
    })?;
    write_atomic(&dir.join(STATUS), &json)?;
    drop(lock);
    Ok(status)
}

fn empty_status(outcome: Outcome, detail: String) -> Status {
    let t = now_ms();
    Status {
        outcome,
        exit_code: None,
        signal: None,
        started_at_ms: t,
        ended_at_ms: t,
        duration_ms: 0,
        cpu_ms: None,
        max_rss_kb: None,
        stdout_truncated: false,
        stderr_truncated: false,
        stdout_bytes: None,
        stderr_bytes: None,
        network_isolated: false,
        detail,
        notes: Vec::new(),
        remote: None,
    }
}

pub(crate) fn cancel_requested(dir: &Path) -> bool {
    CANCEL_REQUESTED.load(Ordering::SeqCst) || dir.join(CANCEL).exists()
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Resolve argv[0] the way the job would see it: paths relative to `work`, bare names through
/// the job's own PATH (not the supervisor's).
fn resolve_program(
    argv0: &str,
    env: &BTreeMap<String, String>,
    work: &Path,
) -> Result<PathBuf, String> {
    if argv0.contains('/') {
        let p = work.join(argv0); // absolute argv0 replaces `work`
        if !p.exists() {
            return Err(format!("argv[0] {argv0:?} does not exist"));
        }
        if !is_executable(&p) {
            return Err(format!("argv[0] {argv0:?} is not an executable file"));
        }
        return Ok(p);
    }
    let Some(path) = env.get("PATH") else {
        return Err(format!(
            "argv[0] {argv0:?} is not a path and the job environment has no PATH"
        ));
    };
    for d in path.split(':') {
        let d = if d.is_empty() { "." } else { d };
        let candidate = work.join(d).join(argv0);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(format!(
        "argv[0] {argv0:?} not found in the job's PATH ({path})"
    ))
}

/// Tracks the job's main process while all children are reaped.
struct JobWait {
    pid: i32,
    status: Option<i32>,
}

impl JobWait {
    fn reap(&mut self) {
        for r in procs::reap_all() {
            if r.pid == self.pid {
                self.status = Some(r.status);
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum KillReason {
    Timeout,
    Cancel,
}

/// TERM the group and every descendant, wait up to `grace` for all of them, then KILL what is
/// left until nothing remains. Returns how many processes other than the job's main process
/// had to be signalled (leftovers).
fn terminate_tree(me: i32, job: &mut JobWait, grace: Duration) -> usize {
    job.reap();
    let live = procs::live_descendants(me);
    if job.status.is_some() && live.is_empty() {
        return 0;
    }
    let mut signalled: std::collections::HashSet<i32> = live.iter().copied().collect();
    procs::kill_group(job.pid, libc::SIGTERM);
    procs::kill_each(&live, libc::SIGTERM);
    let until = Instant::now().checked_add(grace);
    loop {
        job.reap();
        if job.status.is_some() && procs::live_descendants(me).is_empty() {
            signalled.remove(&job.pid);
            return signalled.len();
        }
        if until.is_none_or(|u| Instant::now() >= u) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..1000 {
        let live = procs::live_descendants(me);
        if live.is_empty() && job.status.is_some() {
            break;
        }
        procs::kill_group(job.pid, libc::SIGKILL);
        procs::kill_each(&live, libc::SIGKILL);
        signalled.extend(live);
        std::thread::sleep(Duration::from_millis(10));
        job.reap();
    }
    job.reap();
    signalled.remove(&job.pid);
    signalled.len()
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => "signal",
    }
}

/// Processes the sandbox itself adds to the job's pids cgroup under bubblewrap: bubblewrap's
/// monitor outside the namespaces and `__jail`, PID 1 inside them.
const SANDBOX_TASKS: u64 = 2;

/// Strings in the stderr tail that show an allocation failure.
const MEMORY_EVIDENCE: &[&str] = &[
    "memoryerror",
    "memory allocation of",
    "cannot allocate memory",
    "std::bad_alloc",
    "cannot allocate",
    "out of memory",
];

fn memory_evidence(stderr_tail: &[u8]) -> Option<&'static str> {
    let text = String::from_utf8_lossy(stderr_tail).to_lowercase();
    MEMORY_EVIDENCE.iter().copied().find(|e| text.contains(e))
}

fn rusage_children() -> (Option<u64>, Option<u64>) {
    // SAFETY: zeroed rusage is valid; getrusage writes into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid out-pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return (None, None);
    }
    let ms = |t: libc::timeval| {
        u64::try_from(t.tv_sec).unwrap_or(0) * 1000 + u64::try_from(t.tv_usec).unwrap_or(0) / 1000
    };
    (
        Some(ms(ru.ru_utime) + ms(ru.ru_stime)),
        u64::try_from(ru.ru_maxrss).ok(),
    )
}

fn open_log(path: &Path) -> Result<File, String> {
    File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// Which outer layer runs `__jail`.
pub(crate) enum Launcher {
    /// bubblewrap at this path, whose namespaces were just seen to work.
    Bwrap(PathBuf),
    /// No bubblewrap (the reason why): `__jail` runs directly under the supervisor, Landlock
    /// and seccomp confine the job, and an unshare in the launcher gives it its own network
    /// namespace when it has no network.
    Fallback(String),
}

impl Launcher {
    /// Bubblewrap if it is there and can create the jobs' namespaces, else the fallback.
    pub(crate) fn choose(bwrap: Option<&Path>, network: bool) -> Self {
        match jail::find_bwrap(bwrap) {
            Ok(b) => match jail::probe_bwrap(&b, network) {
                Ok(_) => Launcher::Bwrap(b),
                Err(e) => Launcher::Fallback(e),
            },
            Err(e) => Launcher::Fallback(e),
        }
    }

    fn describe(&self) -> String {
        match self {
            Launcher::Bwrap(b) => format!("bubblewrap {}", b.display()),
            Launcher::Fallback(_) => "__jail (fallback without bubblewrap)".into(),
        }
    }
}

/// Run the job and produce its status. Never fails: problems become `StartFailed` or notes.
fn run(
    dir: &Path,
    _subreaper: bool,
    bwrap: Option<&Path>,
    chosen: Option<Result<(), String>>,
) -> Status {
    let mut spec = match read_spec(dir) {
        Ok(s) => s,
        Err(e) => return empty_status(Outcome::StartFailed, format!("cannot read spec: {e}")),
    };
    if let Err(e) = validate_spec(&spec) {
        return empty_status(Outcome::StartFailed, e.to_string());
    }
    if cancel_requested(dir) {
        return empty_status(
            Outcome::Cancelled,
            "cancelled before the job started; it was not run".into(),
        );
    }
    let work = dir.join(WORK);
    if let Err(e) = fs::create_dir_all(work.join("tmp")) {
        return empty_status(
            Outcome::StartFailed,
            format!("cannot create {}: {e}", work.display()),
        );
    }
    let program = match resolve_program(&spec.argv[0], &spec.env, &work) {
        Ok(p) => p,
        Err(e) => return empty_status(Outcome::StartFailed, e),
    };
    // GPUs before anything else of the job: it waits for busy ones, never runs without.
    let gpu_lease = match &spec.gpus {
        None => None,
        Some(g) if g.count == 0 => {
            spec.env.insert(gpu::VISIBLE.into(), String::new());
            None
        }
        Some(g) => {
            let deadline = Instant::now() + Duration::from_secs(spec.timeout_secs);
            match gpu::acquire(g, deadline, &|| cancel_requested(dir)) {
                Ok(lease) => {
                    spec.env.insert(gpu::VISIBLE.into(), lease.ids.join(","));
                    let _ = write_atomic(
                        &dir.join(GPUS),
                        format!("{}\n", lease.ids.join(",")).as_bytes(),
                    );
                    Some(lease)
                }
                Err(gpu::Refusal::Cancelled) => {
                    return empty_status(
                        Outcome::Cancelled,
                        "cancelled while waiting for its GPUs; the job was not run".into(),
                    );
                }
                Err(gpu::Refusal::Impossible(why)) => {
                    return empty_status(
                        Outcome::StartFailed,
                        format!("cannot give the job its GPUs: {why}; the job was not run"),
                    );
                }
                Err(gpu::Refusal::Busy(why)) => {
                    return empty_status(
                        Outcome::StartFailed,
                        format!(
                            "the job waited its whole timeout ({} s) for {} GPU(s) and did not get them ({why}); the job was not run",
                            spec.timeout_secs, g.count
                        ),
                    );
                }
            }
        }
    };
    let gpu_devices = gpu_lease
        .as_ref()
        .map(|l| gpu::device_files(&l.ids))
        .unwrap_or_default();
    let logs = log_paths(dir);
    let (out_file, err_file) = match (open_log(&logs.stdout), open_log(&logs.stderr)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return empty_status(Outcome::StartFailed, e),
    };
    let (report_read, report_write) = match report_pipe() {
        Ok(p) => p,
        Err(e) => {
            return empty_status(
                Outcome::StartFailed,
                format!("cannot create report pipe: {e}"),
            );
        }
    };
    let report_fd = std::os::fd::AsRawFd::as_raw_fd(&report_write);
    let network = spec.network == NetworkPolicy::Host;
    let launcher = match chosen {
        None => Launcher::choose(bwrap, network),
        Some(Err(reason)) => Launcher::Fallback(reason),
        // Chosen by the caller's probe: bubblewrap at the same place (its absence now is a
        // start failure, never a silent switch).
        Some(Ok(())) => match jail::find_bwrap(bwrap) {
            Ok(b) => Launcher::Bwrap(b),
            Err(e) => Launcher::Fallback(e),
        },
    };
    if let Launcher::Fallback(why) = &launcher {
        match jail::landlock_abi() {
            Ok(abi) if abi >= 1 => {}
            other => {
                return empty_status(
                    Outcome::StartFailed,
                    format!(
                        "{}; the job was not run",
                        jail::no_sandbox_reason(why, other.err())
                    ),
                );
            }
        }
    }
    let mut cmd = match build_command(&spec, &program, &work, report_fd, &launcher, &gpu_devices) {
        Ok(c) => c,
        Err(e) => return empty_status(Outcome::StartFailed, e),
    };
    let net = match &launcher {
        Launcher::Fallback(_) if spec.network != NetworkPolicy::Host => Some(NetPrep::new()),
        _ => None,
    };
    // The job's cgroups, before anything of it exists: the child moves itself in before it
    // execs bubblewrap or `__jail`.
    let sandbox_tasks = match &launcher {
        Launcher::Bwrap(_) => SANDBOX_TASKS,
        Launcher::Fallback(_) => 0,
    };
    let mut cg = JobCgroup::create(
        &cgroup::name_for(dir, std::process::id()),
        cgroup::Request {
            memory_bytes: spec.limits.memory_bytes,
            pids: spec.limits.processes,
            pids_extra: sandbox_tasks,
            cpu_millis: spec.limits.cpu_millis,
        },
    );
    let cg_list: String = cg
        .paths()
        .iter()
        .map(|p| format!("{}\n", p.display()))
        .collect();
    if !cg_list.is_empty()
        && let Err(e) = write_atomic(&dir.join(CGROUPS), cg_list.as_bytes())
    {
        return empty_status(
            Outcome::StartFailed,
            format!("cannot record the job's cgroups: {e}; the job was not run"),
        );
    }
    let setup = ChildSetup::new(report_fd, net, cg.procs_files());
    // SAFETY: `ChildSetup::apply` runs between fork and exec and is async-signal-safe: it only
    // makes raw system calls (close_range, fcntl, prctl, getppid, signal, unshare, and
    // open/write/close on C strings and buffers `NetPrep` built before the fork) on data owned
    // by the closure; it does not allocate, take locks or touch stdio. Its error is a raw-OS
    // `io::Error`, which does not allocate.
    unsafe {
        cmd.pre_exec(move || setup.apply());
    }

    let started_at_ms = now_ms();
    let start = Instant::now();
    let spawned = cmd.spawn();
    drop(cmd); // drops the closure (and nothing of the child's)
    drop(report_write);
    // bubblewrap and `__jail` keep the pipe open until the job ends: read it on a thread.
    let (report_tx, report_rx) = mpsc::channel::<String>();
    let report_reader = std::thread::Builder::new()
        .name("mlres-report".into())
        .spawn(move || {
            let mut text = String::new();
            let _ = File::from(report_read).read_to_string(&mut text);
            let _ = report_tx.send(text);
        });

    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let text = report_rx
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_default();
            let report = parse_report(&text);
            let detail = match &report.failure {
                Some((stage, _, msg)) if !msg.is_empty() => {
                    format!("sandbox setup failed at {stage}: {msg}; the job was not run")
                }
                Some((stage, _, _)) => format!("sandbox setup failed at {stage}: {e}"),
                None => format!(
                    "cannot start the job's sandbox ({}): {e}",
                    launcher.describe()
                ),
            };
            let mut s = empty_status(Outcome::StartFailed, detail);
            s.started_at_ms = started_at_ms;
            s.ended_at_ms = now_ms();
            return s;
        }
    };
    drop(report_reader);
    let job_pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    if let Some(t) = procs::start_time(job_pid) {
        let _ = write_atomic(&dir.join(JOB_START), format!("{t}\n").as_bytes());
    }
    let _ = write_atomic(&dir.join(JOB_PID), format!("{job_pid}\n").as_bytes());

    // Drain both pipes on threads.
    let (tx, rx) = mpsc::channel::<(usize, Captured)>();
    let cap = spec.log_cap_bytes;
    let streams: [(Option<Box<dyn Read + Send>>, File); 2] = [
        (
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            out_file,
        ),
        (
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            err_file,
        ),
    ];
    let mut readers = 0;
    for (i, (pipe, file)) in streams.into_iter().enumerate() {
        let Some(pipe) = pipe else { continue };
        let tx = tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("mlres-log-{i}"))
            .spawn(move || {
                // Unbuffered: each chunk read from the pipe is written at once, so the log
                // grows while the job runs (`exp logs`, the dashboard's live curves); one
                // write per read, which the read already costs.
                let c = logcap::capture(pipe, &file, cap);
                let _ = file.sync_data();
                let _ = tx.send((i, c));
            });
        if spawned.is_ok() {
            readers += 1;
        }
    }
    drop(tx);
    // The Child handle is not used for waiting: all children are reaped with waitpid(-1).
    drop(child);

    // Watch: exit, cancel, timeout.
    let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    let mut job = JobWait {
        pid: job_pid,
        status: None,
    };
    let deadline = start.checked_add(Duration::from_secs(spec.timeout_secs));
    let mut reason = None;
    let mut poll = Duration::from_millis(1);
    loop {
        job.reap();
        if job.status.is_some() {
            break;
        }
        if cancel_requested(dir) {
            reason = Some(KillReason::Cancel);
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            reason = Some(KillReason::Timeout);
            break;
        }
        // Short jobs are noticed within a millisecond or two; long ones cost a wake-up every 20 ms.
        std::thread::sleep(poll);
        poll = (poll * 2).min(Duration::from_millis(20));
    }
    let mut leftovers = terminate_tree(me, &mut job, Duration::from_secs(spec.kill_grace_secs));
    // Whatever escaped the group and the subreaper is still in the job's cgroups.
    let oom_kills = cg.oom_kills();
    leftovers += cg.kill_all(&mut || job.reap());
    let cg_note = cg.describe();
    let cg_problems = cg.remove();
    let ended_at_ms = now_ms();
    let duration_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);

    // Collect the logs (the pipes close once every holder is gone).
    let mut captured: [Option<Captured>; 2] = [None, None];
    let collect_deadline = Instant::now() + Duration::from_secs(10);
    for _ in 0..readers {
        let left = collect_deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, c)) => captured[i] = Some(c),
            Err(_) => break,
        }
    }
    let mut notes: Vec<String> = Vec::new();
    for (i, (c, tail_path)) in captured
        .iter()
        .zip([&logs.stdout_tail, &logs.stderr_tail])
        .enumerate()
    {
        let name = ["stdout", "stderr"][i];
        match c {
            Some(c) => {
                if let Err(e) = write_atomic(tail_path, c.tail.contents()) {
                    notes.push(format!("{name} tail not written: {e}"));
                }
                if let Some(e) = &c.write_error {
                    notes.push(format!("{name}.log write error: {e}"));
                }
            }
            None => notes.push(format!(
                "{name} reader did not finish; log may be incomplete"
            )),
        }
    }
    let stdout_truncated = captured[0].as_ref().is_some_and(|c| c.truncated);
    let stderr_truncated = captured[1].as_ref().is_some_and(|c| c.truncated);
    let stderr_tail: &[u8] = captured[1].as_ref().map_or(&[], |c| c.tail.contents());

    let (cpu_ms, max_rss_kb) = rusage_children();
    let text = report_rx
        .recv_timeout(collect_deadline.saturating_duration_since(Instant::now()))
        .unwrap_or_default();
    let report = parse_report(&text);
    let network_isolated = report.ready
        && spec.network != NetworkPolicy::Host
        && (matches!(launcher, Launcher::Bwrap(_)) || report.net.is_some());
    if !report.ready && reason != Some(KillReason::Cancel) {
        // The job never ran: the sandbox could not be set up. Fail closed, with the reason.
        let detail = match &report.failure {
            Some((stage, errno, msg)) => {
                let why = if msg.is_empty() {
                    errno_text(*errno)
                } else {
                    msg.clone()
                };
                format!(
                    "the job's sandbox could not be set up ({stage}: {why}); the job was not run"
                )
            }
            None => {
                let err = String::from_utf8_lossy(stderr_tail);
                let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                format!(
                    "the job's sandbox could not be set up ({}: {}); the job was not run",
                    launcher.describe(),
                    if first.is_empty() {
                        "exited without starting it"
                    } else {
                        first
                    }
                )
            }
        };
        let mut st = empty_status(Outcome::StartFailed, detail);
        st.started_at_ms = started_at_ms;
        st.ended_at_ms = ended_at_ms;
        st.notes = notes;
        return st;
    }
    // PID 1 of the job's namespace saw the real wait status; bubblewrap's own would turn a
    // signal into an exit code. Without it (PID 1 was killed too), bubblewrap's is the truth.
    let ws = report
        .exit_status
        .or(job.status)
        .map(std::process::ExitStatus::from_raw);
    let exit_code = ws.and_then(|s| s.code());
    let signal = ws.and_then(|s| s.signal());
    let grace = spec.kill_grace_secs;

    let (outcome, detail) = match reason {
        Some(KillReason::Cancel) => (
            Outcome::Cancelled,
            if report.ready {
                format!("cancelled; job process group sent SIGTERM (grace {grace} s), then SIGKILL")
            } else {
                "cancelled while the sandbox was being set up; the job was not run".into()
            },
        ),
        Some(KillReason::Timeout) => (
            Outcome::TimedOut,
            format!(
                "wall-clock timeout of {} s exceeded; job process group sent SIGTERM (grace {grace} s), then SIGKILL",
                spec.timeout_secs
            ),
        ),
        None => classify(
            &spec,
            exit_code,
            signal,
            stderr_tail,
            cpu_ms,
            &MemoryFacts {
                enforced: cg.memory_version(),
                oom_kills,
            },
        ),
    };
    // An OOM kill the job survived, or one before a timeout or cancel, is still worth saying.
    let oom_note = match (outcome, oom_kills, spec.limits.memory_bytes) {
        (Outcome::MemoryExceeded, _, _) => None,
        (_, Some((n, true)), Some(limit)) if n > 0 => Some(format!(
            "the kernel's OOM killer ended {n} process(es) of the job at its memory limit of {}",
            cgroup::human_size(limit)
        )),
        _ => None,
    };
    let mut sandbox_notes = Vec::new();
    match report.leftovers {
        // Counted by PID 1 of the job's namespace when the main process ended.
        Some(n) if n > 0 => {
            sandbox_notes.push(format!("{n} other process(es) of the job terminated"))
        }
        Some(_) => {}
        // PID 1 itself was killed (the job outlived SIGTERM and the grace period).
        None if report.pidns && leftovers > 0 => sandbox_notes.push(
            "the job did not end after SIGTERM: its whole PID namespace was killed with SIGKILL"
                .into(),
        ),
        None if leftovers > 0 => {
            sandbox_notes.push(format!(
                "{leftovers} other process(es) of the job terminated"
            ));
        }
        None => {}
    }
    sandbox_notes.push(match &launcher {
        Launcher::Bwrap(_) => sandbox_note(&report, spec.network),
        Launcher::Fallback(why) => fallback_note(&report, why),
    });
    sandbox_notes.push(match (&spec.gpus, &gpu_lease) {
        (_, Some(l)) => format!(
            "GPUs: {} ({}; CUDA_VISIBLE_DEVICES={}; device files: {})",
            l.ids.join(","),
            if spec.gpus.as_ref().is_some_and(|g| g.share) {
                "shared with other jobs that share"
            } else {
                "exclusive"
            },
            l.ids.join(","),
            if gpu_devices.is_empty() {
                "none found".to_string()
            } else {
                gpu_devices
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        ),
        (Some(_), None) => "GPUs: none (CUDA_VISIBLE_DEVICES is empty)".into(),
        (None, None) => String::new(),
    });
    sandbox_notes.retain(|n| !n.is_empty());
    sandbox_notes.extend(cg_note);
    sandbox_notes.extend(oom_note);
    sandbox_notes.extend(cg_problems);
    sandbox_notes.extend(notes);
    Status {
        outcome,
        exit_code,
        signal,
        started_at_ms,
        ended_at_ms,
        duration_ms,
        cpu_ms,
        max_rss_kb,
        stdout_truncated,
        stderr_truncated,
        stdout_bytes: captured[0].as_ref().map(|c| c.total),
        stderr_bytes: captured[1].as_ref().map(|c| c.total),
        network_isolated,
        detail,
        notes: sandbox_notes,
        remote: None,
    }
}

/// One note saying exactly which layers confined the job.
fn sandbox_note(report: &ChildReport, network: NetworkPolicy) -> String {
    let mut layers = vec![if report.pidns {
        "bubblewrap: user, mount, PID and IPC namespaces (only the work dir writable)".to_string()
    } else {
        "bubblewrap: user, mount and IPC namespaces (only the work dir writable)".to_string()
    }];
    if network != NetworkPolicy::Host {
        layers.push("own network namespace".into());
    }
    layers.push(match report.landlock {
        Some(Ok(abi)) => format!("Landlock ABI {abi}"),
        Some(Err(e)) => format!("no Landlock ({})", errno_text(e)),
        None => "Landlock unknown".into(),
    });
    layers.push(if report.seccomp {
        if network == NetworkPolicy::Host {
            "seccomp".into()
        } else {
            "seccomp (no AF_UNIX sockets)".into()
        }
    } else {
        "no seccomp".into()
    });
    format!("sandbox: {}", layers.join("; "))
}

/// The note for a job run without bubblewrap: which layers there were, why bubblewrap was
/// not used, and what the job could still see.
fn fallback_note(report: &ChildReport, why: &str) -> String {
    let abi = match report.landlock {
        Some(Ok(abi)) => abi,
        _ => 0,
    };
    let mut layers = vec![if abi > 0 {
        format!("Landlock ABI {abi}")
    } else {
        "Landlock unknown".into()
    }];
    // The fallback's filter denies AF_UNIX sockets whatever the network policy.
    layers.push(if report.seccomp {
        "seccomp (no AF_UNIX sockets)".into()
    } else {
        "no seccomp".into()
    });
    match report.net.as_deref() {
        Some("netns") => layers.push("own network namespace".into()),
        Some(_) => layers.push("own network namespace (in a user namespace)".into()),
        None => {}
    }
    if report.caps_dropped {
        layers.push("all capabilities dropped".into());
    }
    format!(
        "sandbox: {} (fallback: {why}; {})",
        layers.join(" + "),
        jail::fallback_gaps(abi)
    )
}

/// What the job's memory cgroup saw.
struct MemoryFacts {
    /// Where the memory limit was enforced (`None`: not at all).
    enforced: Option<Version>,
    /// OOM kills in the job's memory cgroup, and whether the count is exact (see
    /// [`JobCgroup::oom_kills`]).
    oom_kills: Option<(u64, bool)>,
}

fn classify(
    spec: &LocalJobSpec,
    exit_code: Option<i32>,
    signal: Option<i32>,
    stderr_tail: &[u8],
    cpu_ms: Option<u64>,
    mem: &MemoryFacts,
) -> (Outcome, String) {
    if exit_code == Some(0) {
        return (Outcome::Completed, "exited with code 0".into());
    }
    let how = match (exit_code, signal) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(s)) => format!("killed by signal {s} ({})", signal_name(s)),
        (None, None) => "ended with an unknown status".into(),
    };
    let limit = spec.limits.memory_bytes;
    if let (Some(limit), Some(version), Some((n, exact))) = (limit, mem.enforced, mem.oom_kills)
        && n > 0
        && (exact || signal == Some(libc::SIGKILL))
    {
        let size = cgroup::human_size(limit);
        let evidence = if exact {
            format!("the kernel's OOM killer ended {n} process(es) of the job")
        } else {
            format!("memory.failcnt {n} and SIGKILL")
        };
        let reason = format!(
            "memory limit {size} exceeded ({}: {evidence})",
            version.label()
        );
        return (
            Outcome::MemoryExceeded,
            if signal == Some(libc::SIGKILL) {
                format!("killed: {reason}")
            } else {
                format!("{how}: {reason}")
            },
        );
    }
    if let Some(ev) = memory_evidence(stderr_tail) {
        let lim = match (limit, mem.enforced) {
            (Some(m), Some(v)) => {
                format!(" (memory limit {}, {})", cgroup::human_size(m), v.label())
            }
            (Some(m), None) => format!(
                " (its memory limit of {} is not enforced here)",
                cgroup::human_size(m)
            ),
            (None, _) => String::new(),
        };
        return (
            Outcome::MemoryExceeded,
            format!("{how}; out of memory{lim}: stderr shows {ev:?}"),
        );
    }
    let mut detail = how;
    if let Some(cpu) = spec.limits.cpu_secs
        && (signal == Some(libc::SIGXCPU)
            || (signal == Some(libc::SIGKILL)
                && cpu_ms.is_some_and(|c| c >= cpu.saturating_mul(1000))))
    {
        detail.push_str(&format!("; CPU time limit of {cpu} s exceeded"));
    }
    if signal == Some(libc::SIGXFSZ) {
        detail.push_str("; file size limit exceeded");
    }
    (Outcome::Failed, detail)
}

fn report_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Paths outside the system directories that the job must read to start at all: its program
/// (and, for a virtualenv's interpreter, the whole virtualenv) and `__jail`'s executable.
fn program_paths(program: &Path, exe: &Path) -> Vec<PathBuf> {
    let mut out = vec![exe.to_path_buf(), program.to_path_buf()];
    // <venv>/bin/python: the interpreter finds its site-packages through <venv>/pyvenv.cfg.
    if let Some(venv) = program.parent().and_then(Path::parent)
        && venv.join("pyvenv.cfg").is_file()
    {
        out.push(venv.to_path_buf());
    }
    out
}

/// The job's command: bubblewrap with the job's mount layout, then `<exe> __jail <config>
/// <program> <argv...>`; in the fallback, `<exe> __jail ...` directly.
fn build_command(
    spec: &LocalJobSpec,
    program: &Path,
    work: &Path,
    report_fd: i32,
    launcher: &Launcher,
    devices: &[PathBuf],
) -> Result<Command, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot locate the supervisor's own executable: {e}"))?;
    if !exe.is_file() {
        return Err(format!(
            "the supervisor's executable {} is gone (replaced while it ran?); the job was not run",
            exe.display()
        ));
    }
    let mut read_only = spec.read_only.clone();
    read_only.extend(program_paths(program, &exe));
    let rlimits = rlimit_settings(&spec.limits, spec.kill_grace_secs)
        .into_iter()
        .map(|r| jail::JailRlimit {
            resource: i64::from(r.resource),
            name: r.name.to_string(),
            soft: r.soft,
            hard: r.hard,
        })
        .collect();
    let network = spec.network == NetworkPolicy::Host;
    let mut cmd = match launcher {
        Launcher::Bwrap(bwrap) => {
            let layout = jail::layout(
                work,
                &read_only,
                &spec.masked,
                devices,
                network,
                rlimits,
                report_fd,
            );
            let config = serde_json::to_string(&layout.jail).map_err(|e| e.to_string())?;
            let mut cmd = Command::new(bwrap);
            cmd.args(&layout.bwrap_args)
                .arg("--")
                .arg(&exe)
                .arg("__jail")
                .arg(config);
            cmd
        }
        Launcher::Fallback(_) => {
            let cfg = jail::fallback_config(
                work,
                &read_only,
                &spec.masked,
                devices,
                network,
                rlimits,
                report_fd,
            )
            .map_err(|e| {
                format!("the job's sandbox could not be set up ({e}); the job was not run")
            })?;
            let config = serde_json::to_string(&cfg).map_err(|e| e.to_string())?;
            let mut cmd = Command::new(&exe);
            cmd.arg("__jail").arg(config);
            cmd
        }
    };
    cmd.arg(program)
        .args(&spec.argv)
        .env_clear()
        .envs(&spec.env)
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let defaults = [
        ("HOME", work.to_path_buf()),
        ("TMPDIR", work.join("tmp")),
        ("PWD", work.to_path_buf()),
    ];
    for (k, v) in defaults {
        if !spec.env.contains_key(k) {
            cmd.env(k, v);
        }
    }
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_uses_job_path_only() {
        let mut env = BTreeMap::new();
        let work = Path::new("/");
        assert!(resolve_program("sh", &env, work).is_err());
        env.insert("PATH".into(), "/nonexistent:/bin:/usr/bin".into());
        let p = resolve_program("sh", &env, work).expect("sh in /bin or /usr/bin");
        assert!(p.ends_with("sh"));
        let e = resolve_program("no-such-prog-xyz", &env, work).unwrap_err();
        assert!(e.contains("not found in the job's PATH"), "{e}");
        let e = resolve_program("/no/such/prog", &env, work).unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
        let t = std::env::temp_dir().join(format!("mlres-noexec-{}", std::process::id()));
        std::fs::write(&t, "data").unwrap();
        std::fs::set_permissions(&t, fs::Permissions::from_mode(0o644)).unwrap();
        let e = resolve_program(t.to_str().unwrap(), &env, work).unwrap_err();
        let _ = std::fs::remove_file(&t);
        assert!(e.contains("not an executable"), "{e}");
    }

    #[test]
    fn memory_evidence_matches_known_messages() {
        assert_eq!(
            memory_evidence(b"Traceback...\nMemoryError\n"),
            Some("memoryerror")
        );
        assert_eq!(
            memory_evidence(b"memory allocation of 1024 bytes failed"),
            Some("memory allocation of")
        );
        assert_eq!(
            memory_evidence(b"terminate called after throwing an instance of 'std::bad_alloc'"),
            Some("std::bad_alloc")
        );
        assert_eq!(memory_evidence(b"ValueError: bad\n"), None);
    }

    fn spec_with_mem(mem: Option<u64>) -> LocalJobSpec {
        LocalJobSpec {
            argv: vec!["x".into()],
            env: BTreeMap::new(),
            timeout_secs: 1,
            kill_grace_secs: 1,
            limits: crate::Limits {
                memory_bytes: mem,
                ..Default::default()
            },
            log_cap_bytes: 1,
            network: crate::NetworkPolicy::Host,
            read_only: Vec::new(),
            masked: Vec::new(),
            gpus: None,
            code_sha256: None,
        }
    }

    #[test]
    fn classify_outcomes() {
        let s = spec_with_mem(Some(1 << 30));
        let none = MemoryFacts {
            enforced: None,
            oom_kills: None,
        };
        let v1 = |n, exact| MemoryFacts {
            enforced: Some(Version::V1),
            oom_kills: Some((n, exact)),
        };
        assert_eq!(
            classify(&s, Some(0), None, b"MemoryError", None, &v1(1, true)).0,
            Outcome::Completed
        );
        assert_eq!(
            classify(&s, Some(1), None, b"oops", None, &none).0,
            Outcome::Failed
        );
        let (o, d) = classify(&s, Some(1), None, b"MemoryError", None, &none);
        assert_eq!(o, Outcome::MemoryExceeded);
        assert!(d.contains("not enforced here"), "{d}");
        // The cgroup's OOM kill decides; a SIGKILL alone (even near the limit) does not.
        let (o, d) = classify(&s, None, Some(libc::SIGKILL), b"", None, &v1(1, true));
        assert_eq!(o, Outcome::MemoryExceeded);
        assert_eq!(
            d,
            "killed: memory limit 1 GiB exceeded (cgroup v1: the kernel's OOM killer ended 1 process(es) of the job)"
        );
        let (o, d) = classify(&s, Some(137), None, b"", None, &v1(2, true));
        assert_eq!(o, Outcome::MemoryExceeded);
        assert!(
            d.starts_with("exited with code 137: memory limit 1 GiB exceeded"),
            "{d}"
        );
        assert_eq!(
            classify(&s, None, Some(libc::SIGKILL), b"", None, &v1(0, true)).0,
            Outcome::Failed
        );
        assert_eq!(
            classify(&s, None, Some(libc::SIGKILL), b"", None, &none).0,
            Outcome::Failed
        );
        // Without an oom_kill counter, failcnt counts only together with SIGKILL.
        assert_eq!(
            classify(&s, None, Some(libc::SIGKILL), b"", None, &v1(3, false)).0,
            Outcome::MemoryExceeded
        );
        assert_eq!(
            classify(&s, Some(1), None, b"", None, &v1(3, false)).0,
            Outcome::Failed
        );
        let no_limit = spec_with_mem(None);
        assert_eq!(
            classify(
                &no_limit,
                None,
                Some(libc::SIGKILL),
                b"",
                None,
                &v1(1, true)
            )
            .0,
            Outcome::Failed
        );
    }
}
