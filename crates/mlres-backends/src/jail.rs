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
//! # Fallback without bubblewrap
//!
//! ```text
//! supervisor ── fork: [unshare(NEWNET | NEWUSER+NEWNET) if no network] ──▶ __jail
//!     __jail: no_new_privs → drop capabilities → Landlock (required) → seccomp → rlimits → exec job
//! ```
//!
//! When bubblewrap is missing, or cannot create its namespaces (user namespaces switched off),
//! the supervisor runs `__jail` itself. There is no mount or PID namespace: Landlock alone
//! decides what the job can open (system directories, granted paths with masked ones carved
//! out entry by entry, `/proc`, its work dir and a few device files; no host `/tmp` or
//! `/dev/shm`), Landlock's ptrace rules keep it from reading other processes' `/proc/<pid>/environ`
//! (and at ABI ≥ 6 from signalling them), seccomp denies `socket(AF_UNIX)` whatever the
//! network policy (every host socket path is visible), a network namespace from `unshare`
//! cuts its network when it has none (fail closed if `unshare` is refused), and a root supervisor's
//! job loses every capability. The supervisor's process group and child-subreaper cleanup
//! kill whatever the job leaves behind and count it.
//!
//! Fail closed: a failing bubblewrap whose namespaces did work in the probe, no Landlock
//! without bubblewrap, a Landlock ruleset the kernel supports but refuses, or a seccomp filter
//! that cannot be installed stops the job before it runs ([`crate::Outcome::StartFailed`]). A
//! kernel without Landlock runs the job under bubblewrap and seccomp only, and says so in the
//! notes and in `doctor`.

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

/// Device files a job may read and write when there is no bubblewrap `/dev` of its own.
const FALLBACK_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

/// Most Landlock rules the fallback adds for granted paths it has to list entry by entry
/// (a masked state directory inside a granted project); past it the job is not run.
const MAX_FALLBACK_RULES: usize = 4096;

/// The bubblewrap executable: exactly `over` when the caller configured one (a path that does
/// not exist means "no bubblewrap", which is how tests force the fallback), else the first of
/// [`BWRAP_PATHS`]. `Err` says why there is none.
pub(crate) fn find_bwrap(over: Option<&Path>) -> Result<PathBuf, String> {
    match over {
        Some(p) if p.is_file() => Ok(p.to_path_buf()),
        Some(p) => Err(format!(
            "bubblewrap not found at the configured path {}",
            p.display()
        )),
        None => BWRAP_PATHS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or_else(|| {
                format!(
                    "bubblewrap not found (looked for {})",
                    BWRAP_PATHS.join(", ")
                )
            }),
    }
}

/// Run `bwrap` with the jobs' namespaces (and, without `network`, its own network namespace)
/// around a shell that checks it is PID 1 and, without network, sees only loopback. `Ok` is
/// `<path> (<version>)`; `Err` says why bubblewrap cannot sandbox a job here (for example user
/// namespaces switched off).
pub(crate) fn probe_bwrap(bwrap: &Path, network: bool) -> Result<String, String> {
    use std::process::{Command, Stdio};
    let version = Command::new(bwrap)
        .arg("--version")
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let layout = layout(Path::new("/tmp"), &[], &[], &[], network, Vec::new(), -1);
    let script = if network {
        "test $$ = 1"
    } else {
        "test $$ = 1 && test \"$(grep -c : /proc/net/dev)\" = 1"
    };
    let out = Command::new(bwrap)
        .args(&layout.bwrap_args)
        .args(["--", "/bin/sh", "-c", script])
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bwrap.display()))?;
    if out.status.success() {
        Ok(format!("{} ({version})", bwrap.display()))
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "{} ({version}) cannot create the jobs' namespaces: {}",
            bwrap.display(),
            err.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("the probe did not pass")
        ))
    }
}

/// What the fallback (no bubblewrap) leaves out, for `status.json` notes and `doctor`.
pub(crate) fn fallback_gaps(landlock_abi: i32) -> String {
    let mut s = String::from(
        "no mount or PID namespace: the job can list other processes but not read their environment",
    );
    if landlock_abi < 6 {
        s.push_str("; it can signal other processes of this user (Landlock ABI 6 scopes signals)");
    }
    s
}

/// The reason a job cannot run at all: no bubblewrap sandbox and no Landlock either.
pub(crate) fn no_sandbox_reason(why_no_bwrap: &str, landlock_errno: Option<i32>) -> String {
    let ll = match landlock_errno {
        Some(e) => format!(
            "this kernel has no Landlock ({})",
            io::Error::from_raw_os_error(e)
        ),
        None => "this kernel has no usable Landlock".into(),
    };
    format!(
        "no sandbox is possible here: {why_no_bwrap}, and {ll}; install bubblewrap \
         (`sudo apt-get install bubblewrap`) and check `mlres doctor`"
    )
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
    /// No bubblewrap around `__jail` (the fallback): Landlock is required, not optional, and
    /// every capability is dropped before the job runs (a root supervisor's job would
    /// otherwise keep them: there is no user namespace to take them away).
    #[serde(default)]
    pub(crate) fallback: bool,
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
    devices: &[PathBuf],
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
    let mut bound: Vec<PathBuf> = Vec::new();
    for p in &extra {
        // A path inside one already bound is visible through it. Binding it again fails when
        // it is a symlink in a read-only bind (a virtualenv's `bin/python` inside the granted
        // virtualenv or project: bubblewrap "Can't create file at …"); one under a masked
        // path is bound again below.
        if !is_under(p, &bound) {
            push(&["--ro-bind-try".as_ref(), p.as_os_str(), p.as_os_str()]);
            bound.push(p.clone());
        }
        ro.push(p.clone());
    }
    for m in masked {
        // Only a masked path inside a granted one would be visible at all.
        if is_under(m, &ro) {
            push(&["--tmpfs".as_ref(), m.as_os_str()]);
        }
    }
    // A path granted on its own inside a masked one (the job's code snapshot in a state
    // directory that lives in the project) is bound again on top of the mask.
    for p in extra.iter().filter(|p| is_under(p, masked)) {
        push(&["--ro-bind-try".as_ref(), p.as_os_str(), p.as_os_str()]);
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
    ]);
    // The device files of the job's GPUs, on top of bubblewrap's minimal /dev.
    for d in devices {
        push(&["--dev-bind-try".as_ref(), d.as_os_str(), d.as_os_str()]);
    }
    push(&["--chdir".as_ref(), work.as_os_str()]);
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
            fallback: false,
        },
    }
}

/// `path`, resolved; `None` if it does not exist.
fn resolved(path: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(path).ok()
}

/// Grant `p` read-only unless a masked path is inside it: then grant its entries one by one
/// (recursing towards the masked path), so the masked path itself is never in the Landlock
/// domain. Without a mount namespace this is the only way to hide a state directory that lives
/// inside a granted project. Symlinks are followed (Landlock grants their target), and a link
/// that leads into or around a masked path is left out.
fn grant_except(p: &Path, masked: &[PathBuf], out: &mut Vec<PathBuf>) -> Result<(), String> {
    let Some(real) = resolved(p) else {
        return Ok(());
    };
    if masked.iter().any(|m| real.starts_with(m)) {
        return Ok(());
    }
    if !masked.iter().any(|m| m.starts_with(&real)) {
        if out.len() >= MAX_FALLBACK_RULES {
            return Err(format!(
                "more than {MAX_FALLBACK_RULES} paths to grant one by one around the hidden \
                 state directory; move the state directory out of the project"
            ));
        }
        out.push(real);
        return Ok(());
    }
    let entries =
        std::fs::read_dir(&real).map_err(|e| format!("cannot list {}: {e}", real.display()))?;
    for e in entries {
        let e = e.map_err(|e| format!("cannot list {}: {e}", real.display()))?;
        grant_except(&e.path(), masked, out)?;
    }
    Ok(())
}

/// The `__jail` configuration when there is no bubblewrap: the host's filesystem as it is,
/// confined by Landlock alone. Readable: system directories, the granted paths (minus masked
/// ones, see [`grant_except`]) and `/proc` (processes outside the job's Landlock domain cannot
/// be inspected through it); writable: the work dir and a few harmless device files. No host
/// `/tmp` or `/dev/shm` (other users' and processes' files): the job's `TMPDIR` is in its work
/// dir.
pub(crate) fn fallback_config(
    work: &Path,
    extra_ro: &[PathBuf],
    masked: &[PathBuf],
    devices: &[PathBuf],
    network: bool,
    rlimits: Vec<JailRlimit>,
    report_fd: i32,
) -> Result<JailConfig, String> {
    let masked: Vec<PathBuf> = masked
        .iter()
        .map(|m| resolved(m).unwrap_or_else(|| m.clone()))
        .collect();
    let mut ro: Vec<PathBuf> = Vec::new();
    for d in SYSTEM_DIRS {
        grant_except(Path::new(d), &masked, &mut ro)?;
    }
    for p in extra_ro {
        match resolved(p) {
            // Granted on its own inside a masked path (a code snapshot in a state directory
            // that lives in the project): that path alone, not the masked one around it.
            Some(real) if masked.iter().any(|m| real.starts_with(m)) => ro.push(real),
            _ => grant_except(p, &masked, &mut ro)?,
        }
    }
    ro.push(PathBuf::from("/proc"));
    ro.sort();
    ro.dedup();
    let mut rw = vec![resolved(work).unwrap_or_else(|| work.to_path_buf())];
    rw.extend(
        FALLBACK_DEVICES
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.exists()),
    );
    // The job's GPUs' device files.
    rw.extend(devices.iter().filter(|p| p.exists()).cloned());
    Ok(JailConfig {
        read_only: ro,
        read_write: rw,
        network,
        rlimits,
        report_fd,
        fallback: true,
    })
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
// Capabilities (fallback only: bubblewrap's user namespace and `--cap-drop ALL` do this).

/// `struct __user_cap_header_struct` for capget/capset.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`; version 3 uses two of them (capabilities 0-31, 32-63).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Drop every capability of this process, its bounding set (so a root job gains none when it
/// execs) and its ambient set. `Ok(false)`: nothing to drop (not root, no capabilities).
fn drop_capabilities() -> Result<bool, i32> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two `CapData` (version 3) into `data` and may update `hdr`; both
    // are valid, properly laid out (#[repr(C)]) and live for the call.
    if unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            data.as_mut_ptr(),
        )
    } != 0
    {
        return Err(last_errno());
    }
    let any = data
        .iter()
        .any(|d| d.effective | d.permitted | d.inheritable != 0);
    // SAFETY: geteuid cannot fail.
    if !any && unsafe { libc::geteuid() } != 0 {
        return Ok(false);
    }
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments has no memory-safety preconditions.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
        if r < 0 {
            break; // EINVAL: past the kernel's last capability
        }
        // SAFETY: as above.
        if r == 1
            && unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0
        {
            return Err(last_errno());
        }
    }
    // SAFETY: as above. Kernels before 4.3 have no ambient set (EINVAL): nothing to clear.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let zero = [CapData::default(); 2];
    // SAFETY: capset reads the header and two `CapData` from valid, live memory.
    if unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, zero.as_ptr()) } != 0 {
        return Err(last_errno());
    }
    Ok(true)
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
        .add_rules(path_beneath_rules(
            &cfg.read_write,
            // No device nodes: a job never needs one, and a root job without a user
            // namespace could otherwise make one for a raw disk.
            AccessFs::from_all(abi) & !(AccessFs::MakeChar | AccessFs::MakeBlock),
        ))
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
    if cfg.fallback {
        match drop_capabilities() {
            Ok(true) => say(fd, "caps"),
            Ok(false) => {}
            Err(e) => {
                say(fd, &format!("fail capabilities {e}"));
                return 125;
            }
        }
    }
    match apply_landlock(cfg) {
        Ok(LandlockResult::Enforced(abi)) => say(fd, &format!("landlock {abi}")),
        // Without bubblewrap, Landlock is the only wall between the job and the host's files.
        Ok(LandlockResult::Unsupported(e)) if cfg.fallback => {
            say(
                fd,
                &format!(
                    "fail landlock {e} {}",
                    no_sandbox_reason("bubblewrap is not used", Some(e))
                ),
            );
            return 125;
        }
        Ok(LandlockResult::Unsupported(e)) => say(fd, &format!("landlock none {e}")),
        Err(msg) => {
            say(fd, &format!("fail landlock 0 {msg}"));
            return 125;
        }
    }
    // Without a mount namespace every host socket path (a Docker daemon, an ssh-agent) is
    // visible, and Landlock does not check connect(): the fallback denies AF_UNIX sockets to
    // jobs with network too (socketpair keeps working).
    if let Err(e) = install_seccomp(&seccomp_filter(cfg.network && !cfg.fallback)) {
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
    fn a_path_inside_a_granted_one_is_not_bound_again() {
        // A virtualenv's interpreter (a symlink) and the virtualenv itself, both granted.
        let l = layout(
            Path::new("/w"),
            &[
                PathBuf::from("/v/bin/python"),
                PathBuf::from("/v"),
                PathBuf::from("/p"),
                PathBuf::from("/p/state/code/abc"),
            ],
            &[PathBuf::from("/p/state")],
            &[],
            false,
            Vec::new(),
            9,
        );
        let args: Vec<String> = l
            .bwrap_args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let count = |s: &str| args.iter().filter(|a| *a == s).count();
        assert_eq!(count("/v"), 2, "{args:?}");
        assert_eq!(count("/v/bin/python"), 0, "{args:?}");
        // Under the masked state dir: bound once, on top of the mask.
        assert_eq!(count("/p/state/code/abc"), 2, "{args:?}");
        let pos = |s: &str| args.iter().position(|a| a == s).unwrap();
        assert!(pos("/p/state") < pos("/p/state/code/abc"));
        assert!(l.jail.read_only.contains(&PathBuf::from("/v/bin/python")));
    }

    #[test]
    fn layout_binds_work_last_and_masks_nested_state() {
        let l = layout(
            Path::new("/p/state/jobs/c/e1-a0/work"),
            &[PathBuf::from("/p"), PathBuf::from("/usr/bin/python3")],
            &[PathBuf::from("/p/state")],
            &[PathBuf::from("/dev/nvidia3")],
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
        // A GPU's device file comes after bubblewrap's own /dev.
        assert_eq!(args[pos("/dev/nvidia3") - 1], "--dev-bind-try");
        assert!(pos("--dev") < pos("/dev/nvidia3"));
        let host = layout(Path::new("/w"), &[], &[], &[], true, Vec::new(), 9);
        assert!(!host.bwrap_args.iter().any(|a| a == "--unshare-net"));
        assert!(!host.bwrap_args.iter().any(|a| a == "--dev-bind-try"));
    }

    #[test]
    fn a_code_snapshot_in_a_masked_state_dir_is_bound_again_over_the_mask() {
        let snap = PathBuf::from("/p/state/code/abc");
        let l = layout(
            Path::new("/p/state/jobs/c/e1-a1/work"),
            &[PathBuf::from("/p"), snap.clone()],
            &[PathBuf::from("/p/state")],
            &[],
            false,
            Vec::new(),
            9,
        );
        let args: Vec<String> = l
            .bwrap_args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let tmpfs = args
            .windows(2)
            .position(|w| w[0] == "--tmpfs" && w[1] == "/p/state")
            .unwrap();
        let binds: Vec<usize> = args
            .windows(3)
            .enumerate()
            .filter(|(_, w)| w[0] == "--ro-bind-try" && w[1] == "/p/state/code/abc")
            .map(|(i, _)| i)
            .collect();
        assert!(binds.iter().any(|&b| b > tmpfs), "{args:?}");
        assert!(l.jail.read_only.contains(&snap));
    }

    #[test]
    fn fallback_grants_a_code_snapshot_inside_a_masked_state_dir_alone() {
        let t = std::env::temp_dir().join(format!("mlres-fallback-code-{}", std::process::id()));
        let project = t.join("project");
        let snap = project.join("state/code/abc");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(project.join("state/jobs")).unwrap();
        std::fs::write(project.join("train.py"), "").unwrap();
        let work = t.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let cfg = fallback_config(
            &work,
            &[project.clone(), snap.clone()],
            &[project.join("state")],
            &[],
            false,
            Vec::new(),
            9,
        )
        .unwrap();
        let p = std::fs::canonicalize(&project).unwrap();
        let _ = std::fs::remove_dir_all(&t);
        assert!(cfg.read_only.contains(&p.join("state/code/abc")), "{cfg:?}");
        let state: Vec<&PathBuf> = cfg
            .read_only
            .iter()
            .filter(|r| r.starts_with(p.join("state")))
            .collect();
        assert_eq!(
            state,
            [&p.join("state/code/abc")],
            "nothing else of the state dir"
        );
    }

    #[test]
    fn fallback_grants_around_a_masked_state_dir_and_never_the_host_tmp() {
        let t = std::env::temp_dir().join(format!("mlres-fallback-unit-{}", std::process::id()));
        let project = t.join("project");
        std::fs::create_dir_all(project.join("state/jobs")).unwrap();
        std::fs::create_dir_all(project.join("data")).unwrap();
        std::fs::write(project.join("train.py"), "").unwrap();
        std::os::unix::fs::symlink(project.join("state"), project.join("link")).unwrap();
        let work = t.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let cfg = fallback_config(
            &work,
            &[project.clone(), t.join("missing")],
            &[project.join("state")],
            &[],
            false,
            Vec::new(),
            9,
        )
        .unwrap();
        let p = std::fs::canonicalize(&project).unwrap();
        let _ = std::fs::remove_dir_all(&t);
        assert!(cfg.fallback);
        assert!(cfg.read_only.contains(&p.join("train.py")), "{cfg:?}");
        assert!(cfg.read_only.contains(&p.join("data")), "{cfg:?}");
        // Neither the project as a whole, the state dir, nor a link into it.
        assert!(!cfg.read_only.contains(&p), "{cfg:?}");
        assert!(
            !cfg.read_only.iter().any(|r| r.starts_with(p.join("state"))),
            "{cfg:?}"
        );
        assert!(!cfg.read_only.contains(&p.join("link")), "{cfg:?}");
        assert!(cfg.read_only.contains(&PathBuf::from("/proc")));
        assert!(
            !cfg.read_write
                .iter()
                .any(|w| w == Path::new("/tmp") || w == Path::new("/dev"))
        );
        assert!(cfg.read_write.contains(&PathBuf::from("/dev/null")));
    }

    #[test]
    fn no_sandbox_reason_names_the_package() {
        let r = no_sandbox_reason("bubblewrap not found (looked for /usr/bin/bwrap)", Some(38));
        assert!(r.contains("bubblewrap not found"), "{r}");
        assert!(r.contains("no Landlock"), "{r}");
        assert!(r.contains("`sudo apt-get install bubblewrap`"), "{r}");
        assert!(fallback_gaps(5).contains("signal other processes"));
        assert!(!fallback_gaps(6).contains("signal"));
    }

    #[test]
    fn filter_has_the_expected_shape() {
        let with = seccomp_filter(true);
        let without = seccomp_filter(false);
        assert_eq!(without.len(), with.len() + 4);
        assert_eq!(with.last().map(|i| i.k), Some(libc::SECCOMP_RET_ALLOW));
    }
}
