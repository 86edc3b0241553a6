//! `doctor`: which protections the local backend can apply on this machine.

use std::fs;

use crate::sandbox::{NetPrep, NetResult, Resource, enter_isolated_netns};

/// One protection and whether it is active here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protection {
    /// Short name (`network_namespace`, `rlimits`, `process_groups`, `rlimit_nproc`,
    /// `child_subreaper`, `parent_death_signal`, `cgroup_v2`).
    pub name: String,
    /// Whether the protection works (for report-only entries: whether the feature exists).
    pub active: bool,
    /// Explanation.
    pub detail: String,
}

/// Run `probe` in a forked child and return its exit code (`None` if fork/wait failed or the
/// child died of a signal). The probe must be async-signal-safe: raw system calls only.
fn in_child(probe: &dyn Fn() -> i32) -> Option<i32> {
    // SAFETY: fork has no memory-safety preconditions. In the child (which may be the child
    // of a multi-threaded process) only `probe` runs, and every probe passed here makes only
    // raw, async-signal-safe system calls on data prepared before the fork; the child then
    // leaves with `_exit`, running no destructors or atexit handlers.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return None;
    }
    if pid == 0 {
        let code = probe();
        // SAFETY: _exit is async-signal-safe and never returns.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer; `pid` is our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return None;
        }
    }
    if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else {
        None
    }
}

fn p(name: &str, active: bool, detail: impl Into<String>) -> Protection {
    Protection {
        name: name.into(),
        active,
        detail: detail.into(),
    }
}

fn errno_text(code: i32) -> String {
    std::io::Error::from_raw_os_error(code).to_string()
}

/// Effective capability bits of this process (from /proc/self/status).
fn cap_eff() -> Option<u64> {
    let s = fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

/// Probe (async-signal-safe): lower the hard limit of each resource to its soft limit, and set
/// RLIMIT_CORE to 0. Lowering is always allowed, so a failure means rlimits do not work.
fn probe_rlimits() -> i32 {
    let resources: [Resource; 5] = [
        libc::RLIMIT_AS,
        libc::RLIMIT_CPU,
        libc::RLIMIT_FSIZE,
        libc::RLIMIT_NPROC,
        libc::RLIMIT_NOFILE,
    ];
    for res in resources {
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `cur` is a valid out-pointer, then a valid input, for these raw system calls.
        let ok = unsafe {
            libc::getrlimit(res, &mut cur) == 0 && {
                cur.rlim_max = cur.rlim_cur;
                libc::setrlimit(res, &cur) == 0
            }
        };
        if !ok {
            return 1;
        }
    }
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `zero` is valid for the call.
    i32::from(unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) } != 0)
}

pub(crate) fn doctor() -> Vec<Protection> {
    let mut out = Vec::new();

    // Network namespace. Exit codes: 0 = netns, 1 = userns+netns, 2 = userns without maps,
    // 3 = refused (the errno of CLONE_NEWNET is then reported separately).
    let prep = NetPrep::new();
    let net = in_child(&|| match enter_isolated_netns(&prep) {
        NetResult::NetNs => 0,
        NetResult::UserNs { maps_ok: true } => 1,
        NetResult::UserNs { maps_ok: false } => 2,
        NetResult::Refused { netns_errno, .. } => 10 + netns_errno.clamp(0, 200),
    });
    out.push(match net {
        Some(0) => p(
            "network_namespace",
            true,
            "unshare(CLONE_NEWNET) works: policy isolated/best_effort gives the job an empty network namespace (loopback down)",
        ),
        Some(1) => p(
            "network_namespace",
            true,
            "unshare(CLONE_NEWUSER|CLONE_NEWNET) works (unprivileged): the job gets an empty network namespace",
        ),
        Some(2) => p(
            "network_namespace",
            true,
            "user+network namespace works but uid/gid maps could not be written; the job sees itself as nobody",
        ),
        Some(c) if c >= 10 => p(
            "network_namespace",
            false,
            format!(
                "the kernel refuses new network namespaces ({}); policy isolated fails closed, best_effort runs on the host network",
                errno_text(c - 10)
            ),
        ),
        _ => p("network_namespace", false, "probe could not run (fork failed)"),
    });

    // rlimits: lowering limits must work (it always should).
    let rl = in_child(&probe_rlimits);
    out.push(p(
        "rlimits",
        rl == Some(0),
        if rl == Some(0) {
            "setrlimit works (AS, CPU, FSIZE, NPROC, NOFILE, CORE=0 applied per job)"
        } else {
            "setrlimit failed in a probe child: limits may not be applied"
        },
    ));

    // Process groups.
    let pg = in_child(&|| {
        // SAFETY: setpgid is a raw system call with no memory-safety preconditions.
        i32::from(unsafe { libc::setpgid(0, 0) } != 0)
    });
    out.push(p(
        "process_groups",
        pg == Some(0),
        if pg == Some(0) {
            "jobs run in their own process group; timeout/cancel signal the whole group"
        } else {
            "setpgid failed: group-wide kill unavailable"
        },
    ));

    // RLIMIT_NPROC: ignored for root (uid 0) and for CAP_SYS_ADMIN / CAP_SYS_RESOURCE.
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    let caps = cap_eff().unwrap_or(0);
    let privileged_caps = caps & ((1 << 21) | (1 << 24)) != 0;
    out.push(if euid == 0 {
        p(
            "rlimit_nproc",
            false,
            "running as root: the kernel does NOT enforce RLIMIT_NPROC for root, so limits.processes has no effect (fork bombs are only bounded by the timeout)",
        )
    } else if privileged_caps {
        p(
            "rlimit_nproc",
            false,
            "CAP_SYS_ADMIN or CAP_SYS_RESOURCE is effective: the kernel does NOT enforce RLIMIT_NPROC",
        )
    } else {
        p(
            "rlimit_nproc",
            true,
            "RLIMIT_NPROC is enforced (it counts all processes of this user, not only the job's)",
        )
    });

    // Child subreaper.
    let sr = in_child(&|| {
        // SAFETY: prctl with integer arguments is a raw system call.
        i32::from(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0)
    });
    out.push(p(
        "child_subreaper",
        sr == Some(0),
        if sr == Some(0) {
            "PR_SET_CHILD_SUBREAPER works: descendants that leave the job's group stay under the supervisor and are killed"
        } else {
            "PR_SET_CHILD_SUBREAPER failed: descendants that call setsid may escape the cleanup"
        },
    ));

    // Parent-death signal.
    let pd = in_child(&|| {
        // SAFETY: prctl with integer arguments is a raw system call.
        i32::from(
            unsafe {
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                )
            } != 0,
        )
    });
    out.push(p(
        "parent_death_signal",
        pd == Some(0),
        if pd == Some(0) {
            "PR_SET_PDEATHSIG works: the job's main process is killed if its supervisor dies"
        } else {
            "PR_SET_PDEATHSIG failed"
        },
    ));

    // cgroup v2 (report only).
    let unified = [
        "/sys/fs/cgroup/cgroup.controllers",
        "/sys/fs/cgroup/unified/cgroup.controllers",
    ]
    .into_iter()
    .find(|p| fs::metadata(p).is_ok());
    out.push(match unified {
        Some(path) => p(
            "cgroup_v2",
            true,
            format!("cgroup v2 is available ({path}); report only: the local backend uses rlimits, not cgroups"),
        ),
        None => p(
            "cgroup_v2",
            false,
            "cgroup v2 not found; report only: the local backend uses rlimits, not cgroups",
        ),
    });
    out
}
