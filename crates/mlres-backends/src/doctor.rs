//! `doctor`: which protections the local backend can apply on this machine.

use std::fs;

use std::path::Path;
use std::process::{Command, Stdio};

use crate::jail;
use crate::sandbox::{NetPrep, NetResult, Resource, enter_isolated_netns};

/// One protection and whether it is active here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protection {
    /// Short name (`job_sandbox` (what local jobs get here, first), `bubblewrap`,
    /// `network_namespace`, `landlock`, `seccomp`, `supervisor_env`, `rlimits`,
    /// `process_groups`, `rlimit_nproc`, `child_subreaper`, `parent_death_signal`,
    /// `cgroup_limits`).
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

/// Probe (async-signal-safe; `filter` is built before the fork): install the jobs' seccomp
/// filter without network, then AF_UNIX sockets must be refused while socketpair works.
fn probe_seccomp(filter: &[libc::sock_filter]) -> i32 {
    if jail::set_no_new_privs().is_err() {
        return 1;
    }
    if jail::install_seccomp(filter).is_err() {
        return 2;
    }
    // SAFETY: socket/socketpair/close are raw system calls; `fds` is a valid out-array.
    unsafe {
        let s = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
        if s >= 0 {
            return 3;
        }
        let mut fds = [0 as libc::c_int; 2];
        if libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) != 0 {
            return 4;
        }
        libc::close(fds[0]);
        libc::close(fds[1]);
        if libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0) != -1 {
            return 5;
        }
    }
    0
}

/// Launch `env` exactly as a supervisor is launched and check it received only what was set.
fn probe_supervisor_env() -> Result<(), String> {
    let env = ["/usr/bin/env", "/bin/env"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .ok_or("no env(1) to probe with")?;
    let mut want = Command::new(env);
    want.env("PATH", "/usr/bin:/bin");
    let out = crate::attempt::supervisor_command(&want)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let got = String::from_utf8_lossy(&out.stdout);
    if got.trim() == "PATH=/usr/bin:/bin" {
        Ok(())
    } else {
        Err(format!(
            "{} variable(s) besides PATH were inherited",
            got.lines().count().saturating_sub(1)
        ))
    }
}

pub(crate) fn doctor(bwrap: Option<&Path>) -> Vec<Protection> {
    let mut out = Vec::new();
    let landlock = jail::landlock_abi();
    let landlock_ok = matches!(landlock, Ok(abi) if abi >= 1);
    let bwrap_probe = jail::find_bwrap(bwrap).and_then(|b| {
        let ok = jail::probe_bwrap(&b, true)?;
        Ok((b, ok))
    });

    // What local jobs get on this machine, first: the same choice the supervisor makes.
    out.push(match (&bwrap_probe, landlock) {
        (Ok((_, b)), _) => p(
            "job_sandbox",
            true,
            format!(
                "full sandbox: bubblewrap {b} + {} + seccomp",
                match landlock {
                    Ok(abi) if abi >= 1 => format!("Landlock ABI {abi}"),
                    _ => "no Landlock".into(),
                }
            ),
        ),
        (Err(why), Ok(abi)) if abi >= 1 => p(
            "job_sandbox",
            true,
            format!(
                "Landlock ABI {abi} + seccomp (fallback: {why}; {}); install bubblewrap \
                 (`sudo apt-get install bubblewrap`) for the full sandbox",
                jail::fallback_gaps(abi)
            ),
        ),
        (Err(why), other) => p(
            "job_sandbox",
            false,
            format!(
                "local jobs do not run (fail closed): {}",
                jail::no_sandbox_reason(why, other.err())
            ),
        ),
    });
    out.push(match &bwrap_probe {
        Ok((_, b)) => p(
            "bubblewrap",
            true,
            format!(
                "{b}: jobs run in their own user, mount, PID and IPC namespaces and see only system directories, granted read-only paths and their work dir"
            ),
        ),
        Err(e) if landlock_ok => p(
            "bubblewrap",
            false,
            format!("{e}; local jobs run under the fallback (Landlock + seccomp, no mount or PID namespace)"),
        ),
        Err(e) => p("bubblewrap", false, format!("{e}; local jobs fail to start (fail closed)")),
    });
    out.push(match &bwrap_probe {
        Ok((b, _)) => match jail::probe_bwrap(b, false) {
            Ok(_) => p(
                "network_namespace",
                true,
                "bubblewrap --unshare-net works: jobs with network: false get a namespace with only loopback",
            ),
            Err(e) => p(
                "network_namespace",
                false,
                format!("{e}; jobs with network: false fail to start (fail closed)"),
            ),
        },
        Err(_) => {
            let prep = NetPrep::new();
            let code = in_child(&|| match enter_isolated_netns(&prep) {
                NetResult::NetNs => 0,
                NetResult::UserNs { .. } => 1,
                NetResult::Refused { .. } => 2,
            });
            match code {
                Some(0) => p(
                    "network_namespace",
                    true,
                    "no bubblewrap: jobs with network: false get their own network namespace through unshare(CLONE_NEWNET)",
                ),
                Some(1) => p(
                    "network_namespace",
                    true,
                    "no bubblewrap: jobs with network: false get their own network namespace through unshare(CLONE_NEWUSER|CLONE_NEWNET)",
                ),
                _ => p(
                    "network_namespace",
                    false,
                    "no bubblewrap, and unshare refuses a network namespace: jobs with network: false fail to start (fail closed)",
                ),
            }
        }
    });
    let without = if bwrap_probe.is_ok() {
        "jobs rely on the mount namespace alone"
    } else {
        "and there is no bubblewrap: local jobs do not run"
    };
    out.push(match landlock {
        Ok(abi) if abi >= 6 => p(
            "landlock",
            true,
            format!("Landlock ABI {abi}: file access limited to the job's paths, TCP denied without network, signals and abstract Unix sockets scoped to the job"),
        ),
        Ok(abi) if abi >= 4 => p(
            "landlock",
            true,
            format!("Landlock ABI {abi}: file access limited to the job's paths, TCP denied without network; no signal/abstract-socket scoping (needs ABI 6)"),
        ),
        Ok(abi) if abi >= 1 => p(
            "landlock",
            true,
            format!("Landlock ABI {abi}: file access limited to the job's paths; no TCP rules (ABI 4) or scoping (ABI 6)"),
        ),
        Ok(abi) => p("landlock", false, format!("Landlock reports ABI {abi}; {without}")),
        Err(e) => p(
            "landlock",
            false,
            format!("Landlock unavailable ({}); {without}", errno_text(e)),
        ),
    });
    let filter = jail::seccomp_filter(false);
    let sc = in_child(&|| probe_seccomp(&filter));
    out.push(match sc {
        Some(0) => p(
            "seccomp",
            true,
            "seccomp filter works: keyrings, ptrace, io_uring, bpf, mounts and namespace changes denied; AF_UNIX sockets denied without network (socketpair allowed)",
        ),
        Some(c) => p(
            "seccomp",
            false,
            format!("the jobs' seccomp filter failed its probe (stage {c}); local jobs fail to start (fail closed)"),
        ),
        None => p("seccomp", false, "probe could not run (fork failed)"),
    });
    out.push(match probe_supervisor_env() {
        Ok(()) => p(
            "supervisor_env",
            true,
            "local supervisors start with an empty environment (mlres sets only PATH and LANG): no token is in any process a job can look at",
        ),
        Err(e) => p("supervisor_env", false, format!("supervisor environment probe failed: {e}")),
    });

    // rlimits: lowering limits must work (it always should).
    let rl = in_child(&probe_rlimits);
    out.push(p(
        "rlimits",
        rl == Some(0),
        if rl == Some(0) {
            "setrlimit works (CPU, FSIZE, NPROC, NOFILE, CORE=0 applied per job; AS only with limits.address_space)"
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
            "running as root: the kernel does NOT enforce RLIMIT_NPROC for root (limits.processes holds only through the pids cgroup; see cgroup_limits)",
        )
    } else if privileged_caps {
        p(
            "rlimit_nproc",
            false,
            "CAP_SYS_ADMIN or CAP_SYS_RESOURCE is effective: the kernel does NOT enforce RLIMIT_NPROC (limits.processes holds only through the pids cgroup; see cgroup_limits)",
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

    // cgroup limits: memory, processes, cpus (probed with a real cgroup).
    out.push(cgroup_entry(&crate::cgroup_limits()));
    out
}

/// The `cgroup_limits` entry: on only when memory, processes and cpus are all enforced; the
/// detail says for each whether and how.
pub(crate) fn cgroup_entry(l: &crate::CgroupLimits) -> Protection {
    use crate::LimitEnforcement::{Enforced, NotEnforced};
    let all = l.memory.is_enforced() && l.processes.is_enforced() && l.cpus.is_enforced();
    let parts: Vec<String> = [
        ("limits.memory", &l.memory),
        ("limits.processes", &l.processes),
        ("limits.cpus", &l.cpus),
    ]
    .into_iter()
    .map(|(what, e)| match e {
        Enforced(how) => format!("{what} enforced ({how})"),
        NotEnforced(why) => format!("{what} NOT enforced ({why})"),
    })
    .collect();
    let mut detail = parts.join("; ");
    if !l.memory.is_enforced() {
        detail.push_str(
            "; without a memory cgroup a job can use all the memory of the machine (jobs still run; no address-space cap replaces it)",
        );
    }
    p("cgroup_limits", all, detail)
}
