//! `mlres-backends`: the `local` backend of mlres, a sandboxed, crash-safe, detached job
//! supervisor for experiments that run as local processes. It knows how to prepare an attempt
//! directory, launch a detached supervisor process (with an empty environment: no token in
//! the job's ancestry), run one job inside a sandbox (bubblewrap user/mount/PID/IPC and
//! optional network namespaces showing only system directories, granted read-only paths and
//! its own work directory; Landlock; seccomp; clean environment; own process group; cgroup
//! memory, pids and CPU limits where a cgroup can be created (the `cgroup` module); rlimits;
//! wall-clock timeout with TERM then KILL; capped logs; see the `jail` module; without
//! bubblewrap, a fallback of Landlock, seccomp and an `unshare`d network namespace) and record the outcome on disk so that a
//! resumed loop can re-attach. It must NOT know about campaigns, budgets, the ledger, metric
//! parsing or the CLI: it only sees a [`LocalJobSpec`] and an attempt directory.
//!
//! # Attempt directory layout
//!
//! Every file below lives directly in the attempt directory given to the functions here:
//!
//! | path | written by | meaning |
//! |---|---|---|
//! | `spec.json` | [`prepare_attempt`] | the [`LocalJobSpec`] (JSON) |
//! | `work/` | [`prepare_attempt`] | fresh working directory of the job (the only place it can write); also its `HOME` and `PWD` |
//! | `work/tmp/` | [`prepare_attempt`] | the job's `TMPDIR` |
//! | `lock` | [`prepare_attempt`] | the supervisor holds an exclusive `flock` on it for its whole life |
//! | `claim` | supervisor or [`claim_void`] | created exclusively (atomic hard link of a complete temp file); `started <supervisor pid>` or `void` |
//! | `supervisor.pid` | supervisor | pid of the supervisor process |
//! | `supervisor.log` | [`launch`] | stdout/stderr of the supervisor process itself |
//! | `job.pid` | supervisor | pid (= process group id) of the job's sandbox (bubblewrap), once spawned |
//! | `job.start` | supervisor | start time of the job process (clock ticks since boot, /proc field 22), to detect pid reuse |
//! | `gpus` | supervisor | the GPUs the job was given (its `CUDA_VISIBLE_DEVICES`) |
//! | `cgroups` | supervisor | the job's cgroup directories, one per line, written before the job starts (they are removed when it ends) |
//! | `stdout.log`, `stderr.log` | supervisor | the job's output, each capped at `log_cap_bytes` (the head is kept) |
//! | `stdout.tail.log`, `stderr.tail.log` | supervisor | the last 64 KiB of each stream, written when the job ends |
//! | `cancel` | [`cancel`] | cancellation request (the supervisor also gets SIGTERM) |
//! | `status.json` | supervisor | the final [`Status`], written atomically (temp file, fsync, rename, fsync dir) |
//!
//! The claim protocol decides, exactly once, whether the job runs: a supervisor that finds
//! `claim` already present exits without running the job ([`BackendError::AlreadyClaimed`]), so a
//! resuming engine that wins the claim with [`claim_void`] knows the job never ran and never will.
//! A supervisor takes the lock *before* claiming and releases it only after `status.json` is
//! durable, so "claimed by a supervisor, lock free, no status" means the supervisor died
//! ([`AttemptState::Lost`]).
//!
//! Linux only.

#![cfg(target_os = "linux")]

mod attempt;
mod cgroup;
mod doctor;
mod gpu;
mod hfjobs;
mod jail;
mod logcap;
mod procs;
mod sandbox;
mod slurm;
mod slurmrest;
mod supervisor;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use attempt::{read_spec, read_status};
pub use doctor::Protection;
pub use hfjobs::{
    HfCredentials, HfJobFile, RemoteJobRef, RemoteStatus, error_code as hf_error_code,
    is_hf_attempt, prepare_hf_attempt, read_hf_job, read_remote_job, supervise_hf,
};
pub use jail::jail_main;
pub use logcap::{TAIL_BYTES, assemble_log};
pub use slurm::{
    COMMENT_PREFIX as SLURM_COMMENT_PREFIX, SLURM_NAMESPACE, SlurmClient, SlurmCmdError,
    SlurmCredentials, SlurmInfo, SlurmJobFile, SlurmJobInfo, SlurmMarker, SlurmPartition,
    SlurmTools, is_slurm_attempt, is_terminal_state as is_terminal_slurm_state, job_script,
    parse_slurm_duration, prepare_slurm_attempt, read_slurm_job, sbatch_args, sh_quote,
    supervise_slurm,
};
pub use slurmrest::{
    SlurmRest, SlurmRestClient, SlurmRestError, SlurmToken, job_info as slurm_rest_job_info,
};

/// What to run and under which restrictions.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LocalJobSpec {
    /// Program and arguments. `argv[0]` is an absolute path, a path containing `/` (relative to
    /// `work/`), or a bare name looked up in the `PATH` given in [`LocalJobSpec::env`].
    pub argv: Vec<String>,
    /// The COMPLETE environment of the job (the caller already applied its allowlist). Only
    /// `HOME`, `TMPDIR` and `PWD` are added (pointing into `work/`) when absent.
    pub env: BTreeMap<String, String>,
    /// Wall-clock limit in seconds, counted from job start. Must be > 0.
    pub timeout_secs: u64,
    /// After SIGTERM to the process group, wait this long before SIGKILL.
    pub kill_grace_secs: u64,
    /// Resource limits (rlimits) applied to the job.
    pub limits: Limits,
    /// Per-stream cap of `stdout.log` / `stderr.log`; output beyond it is drained and only its
    /// last [`TAIL_BYTES`] are kept (in the `*.tail.log` files).
    pub log_cap_bytes: u64,
    /// Network access of the job.
    pub network: NetworkPolicy,
    /// Paths the job may read (bound read-only at the same place) besides the system
    /// directories, its program and `work/`: e.g. the project holding its code and data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_only: Vec<PathBuf>,
    /// Paths inside `read_only` ones the job must not see (covered by an empty tmpfs), e.g. a
    /// state directory that lives inside the project. A `read_only` path inside a masked one
    /// (a code snapshot in that state directory) stays visible.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masked: Vec<PathBuf>,
    /// The job's GPUs. `Some` decides `CUDA_VISIBLE_DEVICES` (empty for a count of 0);
    /// `None` (spec files written before GPUs) leaves `env` as it is and gives no GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<GpuRequest>,
    /// Manifest hash of the approved code snapshot the job runs (among `read_only`), for the
    /// record: the spec says which code produced the job's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_sha256: Option<String>,
}

/// GPUs a local job needs, from the machine's pool. The supervisor holds a lock per GPU
/// (`flock` on `<lock_dir>/gpu-<id>.lock`, exclusive unless `share`) for the job's whole
/// life, waits up to the job's timeout for busy ones, and never runs the job without them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GpuRequest {
    /// How many GPUs (0: none, and `CUDA_VISIBLE_DEVICES` is empty).
    pub count: u32,
    /// The GPUs may be shared with other jobs whose request shares too (a shared lock).
    #[serde(default)]
    pub share: bool,
    /// The machine's GPUs local jobs may use, as `CUDA_VISIBLE_DEVICES` names them
    /// (indices such as `0`, or UUIDs).
    pub host: Vec<String>,
    /// Where the per-GPU lock files are: every supervisor handing out the same GPUs must
    /// use the same directory.
    pub lock_dir: PathBuf,
}

/// Resource limits of a job. Memory, processes and the CPU quota are cgroup limits where a
/// cgroup can be created (see [`cgroup_limits`]); the others are rlimits (soft = hard) that
/// `__jail` sets right before it execs the job. `None` leaves a limit off.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Limits {
    /// Memory the job's processes may use together, page cache included and no swap
    /// (cgroup v2 `memory.max` + `memory.swap.max`, v1 `memory.limit_in_bytes` +
    /// `memory.memsw.limit_in_bytes`). The kernel OOM-kills the job past it
    /// ([`Outcome::MemoryExceeded`]). NOT enforced where no cgroup can be created: the job
    /// still runs, and its notes say so. Address space the job only reserves never counts.
    pub memory_bytes: Option<u64>,
    /// CPU time limit (`RLIMIT_CPU`) in seconds; the hard limit is `kill_grace_secs` (min 1) later.
    pub cpu_secs: Option<u64>,
    /// Largest file the job may write (`RLIMIT_FSIZE`) in bytes.
    pub file_size_bytes: Option<u64>,
    /// Processes and threads of the job: cgroup `pids.max` (plus the sandbox's own two
    /// processes under bubblewrap), and `RLIMIT_NPROC`, which the kernel does not enforce for
    /// root and which counts all processes of the user.
    pub processes: Option<u64>,
    /// Open file descriptors (`RLIMIT_NOFILE`).
    pub open_files: Option<u64>,
    /// Address space of each process (`RLIMIT_AS`), only when asked for explicitly: CUDA
    /// and PyTorch reserve far more address space than they use.
    pub address_space_bytes: Option<u64>,
    /// CPU quota in thousandths of a CPU (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` per
    /// 100 ms `cpu.cfs_period_us`).
    pub cpu_millis: Option<u64>,
}

/// Network policy of the job.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NetworkPolicy {
    /// Share the host network.
    Host,
    /// New network namespace with only a loopback interface (bubblewrap `--unshare-net`, or
    /// `unshare` in the fallback without bubblewrap), Landlock denying TCP bind/connect
    /// (ABI ≥ 4) and seccomp denying `socket(AF_UNIX)`; if the namespace cannot be created
    /// the job fails to start ([`Outcome::StartFailed`]).
    Isolated,
    /// Kept for `spec.json` files written before the sandbox: the job runs in bubblewrap's
    /// namespaces either way, so this is the same as [`NetworkPolicy::Isolated`] (it fails
    /// closed too); [`Status::network_isolated`] records what happened.
    BestEffort,
}

/// Final outcome of an attempt.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The job exited with code 0.
    Completed,
    /// The job exited non-zero or was killed by a signal (see `detail`).
    Failed,
    /// The wall-clock timeout fired and the job was killed.
    TimedOut,
    /// [`cancel`] was requested and the job was killed (or never started).
    Cancelled,
    /// The job failed with evidence of hitting its memory limit.
    MemoryExceeded,
    /// The job could not be started (bad argv[0], sandbox refused, ...); see `detail`.
    StartFailed,
}

/// The content of `status.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// Classification of the run.
    pub outcome: Outcome,
    /// Exit code if the job exited normally.
    pub exit_code: Option<i32>,
    /// Terminating signal if the job was killed by one.
    pub signal: Option<i32>,
    /// Job start, milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// Job end, milliseconds since the Unix epoch.
    pub ended_at_ms: u64,
    /// Wall-clock duration of the job in milliseconds.
    pub duration_ms: u64,
    /// User + system CPU time of the job and all its reaped descendants.
    pub cpu_ms: Option<u64>,
    /// Largest resident set size among the job and its descendants, in KiB.
    pub max_rss_kb: Option<u64>,
    /// `stdout.log` hit `log_cap_bytes`.
    pub stdout_truncated: bool,
    /// `stderr.log` hit `log_cap_bytes`.
    pub stderr_truncated: bool,
    /// Bytes the job wrote to stdout in all (head, omitted middle and tail), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_bytes: Option<u64>,
    /// Bytes the job wrote to stderr in all, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_bytes: Option<u64>,
    /// The job ran in its own network namespace.
    pub network_isolated: bool,
    /// Why the job ended as it did (exit code or signal, start failure, limits hit). This is
    /// the reason shown to people; the sandbox's own notes are in [`Status::notes`].
    pub detail: String,
    /// How the sandbox ran the job (network namespace or not, leftover processes terminated,
    /// log write problems): details, never the reason the job failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// hf-jobs attempts: the remote job, its final stage and billed running time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<Box<RemoteStatus>>,
}

/// What a (possibly resumed) engine sees when it looks at an attempt directory.
#[derive(Clone, Debug, PartialEq)]
pub enum AttemptState {
    /// Nobody has claimed the attempt yet (the supervisor has not started).
    NotClaimed,
    /// [`claim_void`] won: the job never ran and never will.
    Voided,
    /// A live supervisor holds the lock; `pid` is the job's pid (= process group) once spawned.
    Running {
        /// Job pid, `None` until the job is spawned.
        pid: Option<u32>,
    },
    /// `status.json` exists.
    Finished(Status),
    /// Claimed by a supervisor, no `status.json`, and the lock is free: the supervisor died.
    Lost,
}

/// Paths of the log files of an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogPaths {
    /// `stdout.log` (head, capped).
    pub stdout: PathBuf,
    /// `stderr.log` (head, capped).
    pub stderr: PathBuf,
    /// `stdout.tail.log` (last 64 KiB).
    pub stdout_tail: PathBuf,
    /// `stderr.tail.log` (last 64 KiB).
    pub stderr_tail: PathBuf,
}

/// Errors of the local backend.
#[derive(thiserror::Error, Debug)]
pub enum BackendError {
    /// An I/O operation on a path failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file could not be read or written.
    #[error("JSON in {}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// The job spec is unusable.
    #[error("invalid job spec: {0}")]
    InvalidSpec(String),
    /// [`prepare_attempt`] was given a directory that is not empty.
    #[error("attempt directory {} exists and is not empty", .0.display())]
    NotEmpty(PathBuf),
    /// The directory is not a prepared attempt directory (no `spec.json`).
    #[error("{} is not an attempt directory (no spec.json)", .0.display())]
    NotAnAttempt(PathBuf),
    /// A supervisor found the attempt already claimed and did not run the job.
    #[error("attempt already claimed ({claim}); the job was not run")]
    AlreadyClaimed {
        /// Content of the existing `claim` file.
        claim: String,
    },
    /// A file of the attempt has unexpected content.
    #[error("corrupt attempt file {}: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The supervisor process could not be launched.
    #[error("cannot launch supervisor: {0}")]
    Launch(String),
}

/// Create the attempt layout (`work/`, `work/tmp/`, `lock`, `spec.json`) in `dir`, which must
/// not exist or be empty. Validates the spec (non-empty argv, no NUL bytes, timeout > 0).
pub fn prepare_attempt(dir: &Path, spec: &LocalJobSpec) -> Result<(), BackendError> {
    attempt::prepare_attempt(dir, spec)
}

/// Spawn `supervisor` (e.g. `mlres __supervise <dir>`) DETACHED: double fork so the caller
/// keeps no child (the intermediate process is reaped before returning), new session
/// (`setsid`), stdin from `/dev/null`, stdout/stderr appended to `supervisor.log` in `dir`.
/// The program, arguments, explicitly set environment variables and current directory of
/// `supervisor` are used; nothing else of the caller's environment is inherited (the
/// supervisor starts with only the variables set on `supervisor`, so a token in the caller's
/// environment is not in any process a job can look at); its stdio settings are ignored. Errors if `dir` has no `spec.json`
/// or the program cannot be executed.
pub fn launch(dir: &Path, supervisor: &std::process::Command) -> Result<(), BackendError> {
    attempt::launch(dir, supervisor)
}

/// The body of the hidden supervisor subcommand: claim, lock, run the job in the sandbox, wait
/// for exit/timeout/cancel, kill every leftover descendant, write `status.json`. Returns the
/// written status, or [`BackendError::AlreadyClaimed`] without running anything.
///
/// Process-global side effects (this is meant to own its process): installs handlers for
/// SIGTERM/SIGINT/SIGUSR1 (they request cancellation), becomes a child subreaper and reaps all
/// children of the process. Call it from a thread that lives until it returns (the job's
/// parent-death signal is tied to the spawning thread).
///
/// `bwrap`: where bubblewrap is (`None`: `/usr/bin`, `/usr/local/bin`, `/bin`). Without a
/// working bubblewrap the job runs under the fallback (Landlock + seccomp, and its own network
/// namespace through `unshare` when it has no network); without Landlock either, it does not
/// run. A path that does not exist forces the fallback.
pub fn supervise(dir: &Path, bwrap: Option<&Path>) -> Result<Status, BackendError> {
    supervisor::supervise(dir, bwrap, None)
}

/// [`supervise`] with the outer layer already chosen by [`choose_sandbox`] (a long-running
/// caller probes bubblewrap once instead of once per job): `Ok(())` runs the job under
/// bubblewrap (it still fails closed if bubblewrap then fails), `Err(reason)` under the
/// fallback, with `reason` in its notes.
pub fn supervise_chosen(
    dir: &Path,
    bwrap: Option<&Path>,
    chosen: Result<(), String>,
) -> Result<Status, BackendError> {
    supervisor::supervise(dir, bwrap, Some(chosen))
}

/// Whether bubblewrap (at `bwrap`, or the standard places) is there and can create the
/// namespaces a job with or without `network` needs: `Ok(())`, or why not (jobs then run under
/// the fallback). Runs bubblewrap once; callers may reuse the answer for many jobs.
pub fn choose_sandbox(bwrap: Option<&Path>, network: bool) -> Result<(), String> {
    match supervisor::Launcher::choose(bwrap, network) {
        supervisor::Launcher::Bwrap(_) => Ok(()),
        supervisor::Launcher::Fallback(reason) => Err(reason),
    }
}

/// Resume path: try to create `claim` as `void`. `Ok(true)`: we won, the job never ran and a
/// late supervisor will not run it. `Ok(false)`: a claim already exists (a supervisor started,
/// or the attempt was already voided: check with [`poll`]).
pub fn claim_void(dir: &Path) -> Result<bool, BackendError> {
    attempt::claim_void(dir)
}

/// Look at an attempt directory without side effects (it briefly takes a shared lock on
/// `lock` to tell a live supervisor from a dead one).
pub fn poll(dir: &Path) -> Result<AttemptState, BackendError> {
    attempt::poll(dir)
}

/// Request cancellation: create `cancel` and SIGTERM the supervisor if it is alive. The
/// supervisor then kills the job group (TERM, grace, KILL) and records [`Outcome::Cancelled`]; a
/// supervisor that has not started yet records `Cancelled` without running the job. Idempotent;
/// fine if the attempt already finished.
pub fn cancel(dir: &Path) -> Result<(), BackendError> {
    attempt::cancel(dir)
}

/// [`poll`] with a backoff (5 ms doubling up to 100 ms) until the state is `Finished`, `Lost`
/// or `Voided`, or `timeout` elapses; returns the last state seen.
pub fn wait(dir: &Path, timeout: Duration) -> Result<AttemptState, BackendError> {
    attempt::wait(dir, timeout)
}

/// Resume path for a [`AttemptState::Lost`] attempt: SIGKILL what is left of the job's process
/// group (the job's main process dies with its supervisor through `PR_SET_PDEATHSIG`, but its
/// children would survive) and of its cgroups (listed in the attempt's `cgroups` file; they
/// hold descendants that left the group with `setsid` too), then remove the cgroups. Returns
/// how many processes were signalled; `Ok(0)` if the attempt is not `Lost` or the job never
/// started. Without cgroups, descendants that left the group cannot be found once the
/// supervisor is gone.
pub fn kill_lost(dir: &Path) -> Result<usize, BackendError> {
    attempt::kill_lost(dir)
}

/// Paths of the four log files of an attempt (they may not exist yet).
pub fn log_paths(dir: &Path) -> LogPaths {
    LogPaths {
        stdout: dir.join("stdout.log"),
        stderr: dir.join("stderr.log"),
        stdout_tail: dir.join("stdout.tail.log"),
        stderr_tail: dir.join("stderr.tail.log"),
    }
}

/// One stream of an attempt as the user should read it: the capped head, and, only when the
/// stream outgrew the cap, a marker and the part of the tail the head does not already hold.
/// Missing files read as empty (a job that has not written yet, or is still running: its tail
/// is only written at the end).
pub fn read_log(dir: &Path, stderr: bool) -> Result<Vec<u8>, BackendError> {
    let p = log_paths(dir);
    let (head, tail) = if stderr {
        (p.stderr, p.stderr_tail)
    } else {
        (p.stdout, p.stdout_tail)
    };
    let read = |path: &Path| -> Result<Option<Vec<u8>>, BackendError> {
        match std::fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(BackendError::Io {
                op: "read",
                path: path.to_path_buf(),
                source,
            }),
        }
    };
    let head_bytes = read(&head)?.unwrap_or_default();
    let status = read_status(dir).ok().flatten();
    let (truncated, total) = match &status {
        Some(s) if stderr => (s.stderr_truncated, s.stderr_bytes),
        Some(s) => (s.stdout_truncated, s.stdout_bytes),
        None => (false, None),
    };
    if !truncated {
        return Ok(head_bytes);
    }
    let tail_bytes = read(&tail)?.unwrap_or_default();
    Ok(assemble_log(&head_bytes, &tail_bytes, total))
}

/// Whether one cgroup limit of local jobs is enforced on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitEnforcement {
    /// Enforced, and how (e.g. `cgroup v1: memory.limit_in_bytes + memory.memsw.limit_in_bytes (no swap)`).
    Enforced(String),
    /// NOT enforced, and why (no controller, no permission, ...).
    NotEnforced(String),
}

impl LimitEnforcement {
    /// Whether the limit holds.
    pub fn is_enforced(&self) -> bool {
        matches!(self, LimitEnforcement::Enforced(_))
    }
}

/// The cgroup limits of local jobs on this machine: `limits.memory`, `limits.processes` and
/// `limits.cpus`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupLimits {
    /// `limits.memory`.
    pub memory: LimitEnforcement,
    /// `limits.processes` (pids).
    pub processes: LimitEnforcement,
    /// `limits.cpus`.
    pub cpus: LimitEnforcement,
}

/// Probe, for real, whether local jobs started by this process would get their cgroup
/// limits: a short-lived cgroup is created below this process's own with every limit, a
/// forked child moves itself into it, and it is removed again. Where it cannot be, the
/// limits are NOT enforced (jobs still run).
pub fn cgroup_limits() -> CgroupLimits {
    let cg = cgroup::probe();
    let map = |s: &cgroup::LimitState| match s {
        cgroup::LimitState::Enforced { how, .. } => LimitEnforcement::Enforced(how.clone()),
        cgroup::LimitState::NotEnforced(why) => LimitEnforcement::NotEnforced(why.clone()),
        cgroup::LimitState::NotRequested => LimitEnforcement::NotEnforced("not probed".into()),
    };
    CgroupLimits {
        memory: map(&cg.memory),
        processes: map(&cg.pids),
        cpus: map(&cg.cpu),
    }
}

/// Report which protections the local backend can apply on this machine, first
/// (`job_sandbox`) the sandbox local jobs get: bubblewrap's, the fallback, or none. `bwrap`
/// is what [`supervise`] is given. Every probe that changes process state runs in a
/// short-lived forked child, never in the caller.
pub fn doctor(bwrap: Option<&Path>) -> Vec<Protection> {
    doctor::doctor(bwrap)
}
