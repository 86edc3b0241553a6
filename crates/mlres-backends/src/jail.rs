//! The job's confinement: what it can see (a bubblewrap mount layout) and what it can do
//! (Landlock, seccomp, `no_new_privs`, rlimits), applied by a hidden stage of the supervisor's
//! own binary (`__jail`) that bubblewrap starts as PID 1 of the job's PID namespace.
//!
//! # Layering, and why
//!
//! ```text
//! supervisor ── bwrap (user+mount+pid+ipc[+net] namespaces, mount layout) ──▶ __jail (PID 1)
//!     __jail: no_new_privs → Landlock → seccomp → fork ─▶ rlimits, default signals → exec job
//!             waits, reports the job's real wait status and how many processes it left, exits
//! ```
//!
//! - **bubblewrap** builds the filesystem view with namespaces: the job sees system
//!   directories and the paths it was granted read-only, its own work directory read-write,
//!   a fresh `/tmp`, `/dev` and `/proc`, and nothing else (not the state directory, other
//!   attempts, `$HOME` or credential files). Unprivileged users get this through user
//!   namespaces; root gets the same (it is not setuid here). Writing a correct mount setup by
//!   hand is exactly what bubblewrap is audited for, so mlres does not.
//! - **Landlock** is the second, independent wall: the same paths as an allowlist enforced by
//!   the kernel on every open, TCP bind/connect denied without network (ABI ≥ 4), and (ABI ≥ 6)
//!   signals and abstract Unix sockets scoped to the job. bubblewrap cannot apply it (it
//!   execs the job), hence the re-exec into `__jail`.
//! - **seccomp** denies system calls a training job never needs and that cross isolation
//!   boundaries (kernel keyrings, ptrace, io_uring, bpf, mount, namespace changes, ...) and,
//!   without network, `socket(AF_UNIX, ...)` (`socketpair` keeps working).
//! - `__jail` is PID 1 of the namespace: when the job's main process ends it counts and kills
//!   what the job left behind and reports both the real wait status (bubblewrap would turn a
//!   signal into an exit code) and that count, so `status.json` stays truthful.
//!
//! Fail closed: a missing or failing bubblewrap, a Landlock ruleset the kernel supports but
//! refuses, or a seccomp filter that cannot be installed stops the job before it runs
//! ([`crate::Outcome::StartFailed`]). A kernel without Landlock runs the job under
//! bubblewrap and seccomp only, and says so in the notes and in `doctor`.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    Scope, path_beneath_rules,
};
use serde::{Deserialize, Serialize};

use crate::BackendError;
use crate::sandbox::Resource;

/// Where bubblewrap is looked for (never through the job's or the user's `PATH`).
pub(crate) const BWRAP_PATHS: &[&str] = &["/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap"];

/// System directories every job may read (those that exist; symlinks such as `/bin -> usr/bin`
/// are recreated as symlinks).
pub(crate) const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt",
];

/// The first bubblewrap executable found, if any.
pub(crate) fn bwrap_path() -> Option<PathBuf> {
    BWRAP_PATHS.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// One rlimit for the job, applied by `__jail` right before it execs the job.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct JailRlimit {
    pub(crate) resource: i64,
    pub(crate) name: String,
    pub(crate) soft: u64,
    pub(crate) hard: u64,
}

/// What `__jail` applies. Passed as one JSON argument (it holds no secrets: the job can read
/// its own command line).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct JailConfig {
    /// Readable (and executable) paths.
    pub(crate) read_only: Vec<PathBuf>,
    /// Readable and writable paths.
    pub(crate) read_write: Vec<PathBuf>,
    /// The job may use the host network (no TCP/AF_UNIX restrictions from Landlock/seccomp).
    pub(crate) network: bool,
    pub(crate) rlimits: Vec<JailRlimit>,
    /// Report pipe to the supervisor (made close-on-exec so the job never holds it).
    pub(crate) report_fd: i32,
}

/// The mount layout and the `__jail` configuration of one job.
pub(crate) struct Layout {
    /// bubblewrap's arguments up to (not including) the `--` before the command.
    pub(crate) bwrap_args: Vec<OsString>,
    pub(crate) jail: JailConfig,
}

fn is_under(p: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|r| p.starts_with(r))
}

/// Build the layout: system directories and `extra_ro` read-only, `masked` covered by empty
/// tmpfs, `work` read-write, fresh `/tmp`, `/dev/shm`, `/dev`, `/proc`.
pub(crate) fn layout(
    work: &Path,
    extra_ro: &[PathBuf],
    masked: &[PathBuf],
    network: bool,
    rlimits: Vec<JailRlimit>,
    report_fd: i32,
) -> Layout {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |xs: &[&OsStr]| a.extend(xs.iter().map(|s| s.to_os_string()));
    push(&[
        "--unshare-user".as_ref(),
        "--unshare-pid".as_ref(),
        "--unshare-ipc".as_ref(),
        "--unshare-uts".as_ref(),
        "--unshare-cgroup-try".as_ref(),
    ]);
    if !network {
        push(&["--unshare-net".as_ref()]);
    }
    push(&[
        "--die-with-parent".as_ref(),
        "--as-pid-1".as_ref(),
        "--cap-drop".as_ref(),
        "ALL".as_ref(),
        // First: later mounts below /tmp (a work dir under /tmp) must land on top of it.
        "--tmpfs".as_ref(),
        "/tmp".as_ref(),
    ]);
    let mut ro: Vec<PathBuf> = Vec::new();
    for d in SYSTEM_DIRS {
        let p = Path::new(d);
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(p) {
                    push(&["--symlink".as_ref(), target.as_os_str(), p.as_os_str()]);
                }
            }
            Ok(m) if m.is_dir() => {
                push(&["--ro-bind".as_ref(), p.as_os_str(), p.as_os_str()]);
                ro.push(p.to_path_buf());
            }
            _ => {}
        }
    }
    // Parents before children, so a granted path inside another stays visible.
    let mut extra: Vec<PathBuf> = extra_ro
        .iter()
        .filter(|p| !is_under(p, &ro))
        .cloned()
        .collect();
    extra.sort_by_key(|p| p.components().count());
    extra.dedup();
    for p in extra {
        push(&["--ro-bind-try".as_ref(), p.as_os_str(), p.as_os_str()]);
        ro.push(p);
    }
    for m in masked {
        // Only a masked path inside a granted one would be visible at all.
        if is_under(m, &ro) {
            push(&["--tmpfs".as_ref(), m.as_os_str()]);
        }
    }
    push(&[
        "--bind".as_ref(),
        work.as_os_str(),
        work.as_os_str(),
        "--proc".as_ref(),
        "/proc".as_ref(),
        "--dev".as_ref(),
        "/dev".as_ref(),
        "--tmpfs".as_ref(),
        "/dev/shm".as_ref(),
        "--chdir".as_ref(),
        work.as_os_str(),
    ]);
    ro.push(PathBuf::from("/proc"));
    Layout {
        bwrap_args: a,
        jail: JailConfig {
            read_only: ro,
            read_write: vec![
                work.to_path_buf(),
                PathBuf::from("/tmp"),
                PathBuf::from("/dev"),
            ],
            network,
            rlimits,
            report_fd,
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Probes shared with `doctor`.

/// The Landlock ABI of the running kernel, or the errno that says why there is none.
pub(crate) fn landlock_abi() -> Result<i32, i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: landlock_create_ruleset with a NULL attribute, size 0 and the VERSION flag only
    // returns the ABI version; it reads and writes no memory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(i32::try_from(r).unwrap_or(i32::MAX))
    }
}

// ---------------------------------------------------------------------------------------------
// seccomp: a small hand-built classic-BPF filter (no dependency; the program is 2 + 2n + 5
// instructions and easy to audit).

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("the seccomp filter knows the syscall ABI of x86_64 and aarch64 only");
#[cfg(not(target_endian = "little"))]
compile_error!("the seccomp filter reads the low 32 bits of args[0] at offset 16 (little endian)");

/// System calls a job never needs, denied with `EPERM`: kernel keyrings (other users'
/// secrets), tracing and cross-process memory, io_uring (its socket operations bypass
/// seccomp), bpf, userfaultfd, perf, module/kexec/reboot/swap, mounts and namespace changes,
/// and file-handle opens (which bypass path checks).
fn denied_syscalls() -> Vec<libc::c_long> {
    let mut v = vec![
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_bpf,
        libc::SYS_userfaultfd,
        libc::SYS_perf_event_open,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_open_tree,
        libc::SYS_move_mount,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_setns,
        libc::SYS_unshare,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([libc::SYS_iopl, libc::SYS_ioperm]);
    v
}

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The filter. Without network, `socket(AF_UNIX, ...)` fails with `EACCES`.
pub(crate) fn seccomp_filter(network: bool) -> Vec<libc::sock_filter> {
    use libc::{
        BPF_ABS, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W, SECCOMP_RET_ALLOW,
        SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS,
    };
    const NR: u32 = 0; // offsetof(struct seccomp_data, nr)
    const ARCH: u32 = 4; // offsetof(struct seccomp_data, arch)
    const ARG0: u32 = 16; // offsetof(struct seccomp_data, args[0]), low half on little endian
    let errno = |e: i32| SECCOMP_RET_ERRNO | (e as u32 & 0xffff);
    let mut f = vec![
        stmt(BPF_LD | BPF_W | BPF_ABS, ARCH),
        jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH, 1, 0),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_LD | BPF_W | BPF_ABS, NR),
    ];
    // x32 system calls (numbers with bit 30 set) would dodge every number check below.
    #[cfg(target_arch = "x86_64")]
    {
        f.push(jump(BPF_JMP | BPF_JGE | BPF_K, 0x4000_0000, 0, 1));
        f.push(stmt(BPF_RET | BPF_K, errno(libc::ENOSYS)));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = BPF_JGE;
    for nr in denied_syscalls() {
        f.push(jump(BPF_JMP | BPF_JEQ | BPF_K, nr as u32, 0, 1));
        f.push(stmt(BPF_RET | BPF_K, errno(libc::EPERM)));
    }
    if !network {
        f.push(jump(
            BPF_JMP | BPF_JEQ | BPF_K,
            libc::SYS_socket as u32,
            0,
            3,
        ));
        f.push(stmt(BPF_LD | BPF_W | BPF_ABS, ARG0));
        f.push(jump(BPF_JMP | BPF_JEQ | BPF_K, libc::AF_UNIX as u32, 0, 1));
        f.push(stmt(BPF_RET | BPF_K, errno(libc::EACCES)));
    }
    f.push(stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    f
}

/// Install `filter` on the calling thread. Needs `no_new_privs` (or CAP_SYS_ADMIN).
/// Async-signal-safe (doctor runs it in a forked child): one prctl on prepared memory.
pub(crate) fn install_seccomp(filter: &[libc::sock_filter]) -> Result<(), i32> {
    let prog = libc::sock_fprog {
        len: u16::try_from(filter.len()).map_err(|_| libc::E2BIG)?,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `filter`, which outlives the call; the kernel copies the
    // program during prctl and keeps no pointer to our memory.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &prog as *const libc::sock_fprog as libc::c_ulong,
            0,
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// `PR_SET_NO_NEW_PRIVS`: nothing the job execs can gain privileges (setuid, file caps).
/// Async-signal-safe.
pub(crate) fn set_no_new_privs() -> Result<(), i32> {
    // SAFETY: prctl with integer arguments has no memory-safety preconditions.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

// ---------------------------------------------------------------------------------------------
// The `__jail` stage.

/// Report one line to the supervisor (best effort: a lost line only loses diagnostics, and
/// the supervisor treats a missing `ready` as a failed start).
fn say(fd: i32, line: &str) {
    let mut b = line.as_bytes().to_vec();
    b.push(b'\n');
    // SAFETY: `b` is a valid buffer of `b.len()` bytes; write takes no other pointers.
    unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
}

/// What Landlock did.
enum LandlockResult {
    Enforced(i32),
    Unsupported(i32),
}

fn apply_landlock(cfg: &JailConfig) -> Result<LandlockResult, String> {
    let raw = match landlock_abi() {
        Ok(v) if v >= 1 => v,
        Ok(_) => return Ok(LandlockResult::Unsupported(libc::EOPNOTSUPP)),
        Err(e) => return Ok(LandlockResult::Unsupported(e)),
    };
    let abi = ABI::from(raw);
    let err = |e: landlock::RulesetError| e.to_string();
    let mut rs = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .map_err(err)?;
    if !cfg.network && raw >= 4 {
        // Handled and never allowed: no TCP bind or connect at all.
        rs = rs.handle_access(AccessNet::from_all(abi)).map_err(err)?;
    }
    if raw >= 6 {
        rs = rs.scope(Scope::from_all(abi)).map_err(err)?;
    }
    let status = rs
        .create()
        .map_err(err)?
        .add_rules(path_beneath_rules(&cfg.read_only, AccessFs::from_read(abi)))
        .map_err(err)?
        .add_rules(path_beneath_rules(&cfg.read_write, AccessFs::from_all(abi)))
        .map_err(err)?
        .restrict_self()
        .map_err(err)?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(LandlockResult::Enforced(raw)),
        other => Err(format!("ruleset only {other:?} on Landlock ABI {raw}")),
    }
}

/// Restore default dispositions and an empty signal mask (the supervisor's launcher makes
/// bubblewrap and `__jail` ignore SIGTERM/SIGINT so a timeout TERMs the job, not them).
fn default_signals() {
    for sig in 1..32 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: resetting a disposition to SIG_DFL installs no handler code.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: `set` is a valid sigset_t, emptied before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// In the job's process (after fork, or instead of it): rlimits, default signals, exec.
fn exec_job(cfg: &JailConfig, program: &OsStr, argv: &[OsString]) -> i32 {
    for r in &cfg.rlimits {
        let lim = libc::rlimit {
            rlim_cur: r.soft as libc::rlim_t,
            rlim_max: r.hard as libc::rlim_t,
        };
        let Ok(res) = Resource::try_from(r.resource) else {
            say(cfg.report_fd, &format!("fail {} {}", r.name, libc::EINVAL));
            return 125;
        };
        // SAFETY: `lim` is a valid rlimit for the duration of the call.
        if unsafe { libc::setrlimit(res, &lim) } != 0 {
            let e = io::Error::last_os_error().raw_os_error().unwrap_or(0);
            say(cfg.report_fd, &format!("fail {} {e}", r.name));
            return 125;
        }
    }
    default_signals();
    say(cfg.report_fd, "ready");
    let mut cmd = std::process::Command::new(program);
    if let Some((a0, rest)) = argv.split_first() {
        cmd.arg0(a0).args(rest);
    }
    let e = cmd.exec();
    say(
        cfg.report_fd,
        &format!("fail exec {}", e.raw_os_error().unwrap_or(0)),
    );
    127
}

/// Live processes in this PID namespace other than PID 1 (ourselves).
fn others_alive() -> usize {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0;
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| p != 1)
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                s.rfind(')')
                    .and_then(|i| s[i + 1..].split_ascii_whitespace().next())
                    .is_some_and(|st| st != "Z" && st != "X")
            })
        })
        .count()
}

/// The `__jail` stage: `args` are `<config JSON> <program> <argv...>`. Returns an exit code
/// only on failure or, as PID 1, when the job has ended; otherwise it becomes the job.
/// Failures after the arguments parse are reported on the report pipe, not returned.
pub fn jail_main(args: &[OsString]) -> Result<i32, BackendError> {
    let (Some(cfg), Some(program)) = (args.first(), args.get(1)) else {
        return Err(BackendError::InvalidSpec(
            "usage: __jail <config> <program> <argv...>".into(),
        ));
    };
    let cfg: JailConfig = serde_json::from_slice(cfg.as_bytes())
        .map_err(|e| BackendError::InvalidSpec(format!("__jail configuration: {e}")))?;
    Ok(jail(&cfg, program, &args[2..]))
}

fn jail(cfg: &JailConfig, program: &OsStr, argv: &[OsString]) -> i32 {
    let fd = cfg.report_fd;
    // SAFETY: fcntl on an integer descriptor; on a closed fd it fails harmlessly.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    if let Err(e) = set_no_new_privs() {
        say(fd, &format!("fail no_new_privs {e}"));
        return 125;
    }
    match apply_landlock(cfg) {
        Ok(LandlockResult::Enforced(abi)) => say(fd, &format!("landlock {abi}")),
        Ok(LandlockResult::Unsupported(e)) => say(fd, &format!("landlock none {e}")),
        Err(msg) => {
            say(fd, &format!("fail landlock 0 {msg}"));
            return 125;
        }
    }
    if let Err(e) = install_seccomp(&seccomp_filter(cfg.network)) {
        say(fd, &format!("fail seccomp {e}"));
        return 125;
    }
    say(fd, "seccomp");
    // SAFETY: getpid cannot fail.
    if unsafe { libc::getpid() } != 1 {
        return exec_job(cfg, program, argv);
    }
    say(fd, "pidns");
    // SAFETY: this process is single-threaded (nothing here spawns threads), so the child may
    // run arbitrary code, as exec_job does, before it execs or exits.
    let child = unsafe { libc::fork() };
    if child < 0 {
        say(
            fd,
            &format!(
                "fail fork {}",
                io::Error::last_os_error().raw_os_error().unwrap_or(0)
            ),
        );
        return 125;
    }
    if child == 0 {
        let code = exec_job(cfg, program, argv);
        // SAFETY: _exit ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    // PID 1: reap everything until the job's main process is gone.
    let mut status = 0;
    loop {
        let mut st = 0;
        // SAFETY: `st` is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut st, 0) };
        if pid == child {
            status = st;
            break;
        }
        if pid < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    let left = others_alive();
    // SAFETY: kill(-1) from PID 1 of a PID namespace signals every other process of the
    // namespace, which are all the job's.
    unsafe { libc::kill(-1, libc::SIGKILL) };
    // SAFETY: `st` is a valid out-pointer; reaps until no child is left.
    while unsafe {
        let mut st = 0;
        libc::waitpid(-1, &mut st, 0)
    } > 0
    {}
    say(fd, &format!("exit {status}"));
    say(fd, &format!("leftovers {left}"));
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_binds_work_last_and_masks_nested_state() {
        let l = layout(
            Path::new("/p/state/jobs/c/e1-a0/work"),
            &[PathBuf::from("/p"), PathBuf::from("/usr/bin/python3")],
            &[PathBuf::from("/p/state")],
            false,
            Vec::new(),
            9,
        );
        let args: Vec<String> = l
            .bwrap_args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let pos = |s: &str| args.iter().position(|a| a == s).unwrap();
        assert!(args.contains(&"--unshare-net".into()));
        assert!(
            !l.jail
                .read_only
                .contains(&PathBuf::from("/usr/bin/python3"))
        );
        assert!(pos("/p") < pos("/p/state"));
        assert!(pos("/p/state") < pos("/p/state/jobs/c/e1-a0/work"));
        assert!(
            l.jail
                .read_write
                .contains(&PathBuf::from("/p/state/jobs/c/e1-a0/work"))
        );
        let host = layout(Path::new("/w"), &[], &[], true, Vec::new(), 9);
        assert!(!host.bwrap_args.iter().any(|a| a == "--unshare-net"));
    }

    #[test]
    fn filter_has_the_expected_shape() {
        let with = seccomp_filter(true);
        let without = seccomp_filter(false);
        assert_eq!(without.len(), with.len() + 4);
        assert_eq!(with.last().map(|i| i.k), Some(libc::SECCOMP_RET_ALLOW));
    }
}
