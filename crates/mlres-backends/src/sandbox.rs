//! Sandbox setup that runs in the forked child before it execs bubblewrap, the rlimit table
//! `__jail` applies, and the parser of the report pipe (see [`crate::jail`] for the layers).
//!
//! Everything called from [`ChildSetup::apply`] must be async-signal-safe: the child of a multi-threaded process may only make raw system calls
//! (no allocation, no locks, no stdio). All buffers and C strings are prepared in the parent.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

use crate::Limits;

#[cfg(target_env = "gnu")]
pub(crate) type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
pub(crate) type Resource = libc::c_int;

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Paths and contents for a network namespace made with `unshare` (the fallback without
/// bubblewrap), prepared before the fork.
pub(crate) struct NetPrep {
    setgroups_path: CString,
    uid_map_path: CString,
    gid_map_path: CString,
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
}

impl NetPrep {
    pub(crate) fn new() -> Self {
        // SAFETY: getuid/getgid cannot fail and have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let c = |s: &str| CString::new(s).unwrap_or_default();
        Self {
            setgroups_path: c("/proc/self/setgroups"),
            uid_map_path: c("/proc/self/uid_map"),
            gid_map_path: c("/proc/self/gid_map"),
            // Map our own ids to themselves: the job keeps its identity inside the namespace.
            uid_map: format!("{uid} {uid} 1\n").into_bytes(),
            gid_map: format!("{gid} {gid} 1\n").into_bytes(),
        }
    }
}

/// How (or whether) the calling process got its own network namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NetResult {
    /// `unshare(CLONE_NEWNET)` worked (root or CAP_SYS_ADMIN).
    NetNs,
    /// `unshare(CLONE_NEWUSER | CLONE_NEWNET)` worked; `maps_ok` tells whether the id maps
    /// could be written.
    UserNs { maps_ok: bool },
    /// Both attempts failed with these errnos.
    Refused { netns_errno: i32, userns_errno: i32 },
}

/// Write `data` to the file at `path` (async-signal-safe).
fn write_file(path: &CString, data: &[u8]) -> bool {
    // SAFETY: `path` is a valid NUL-terminated string; open/write/close are async-signal-safe
    // and `data` is a valid buffer of `data.len()` bytes.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        libc::close(fd);
        usize::try_from(n).is_ok_and(|n| n == data.len())
    }
}

/// Move the calling (single-threaded) process into a new network namespace. Async-signal-safe.
pub(crate) fn enter_isolated_netns(prep: &NetPrep) -> NetResult {
    // SAFETY: unshare has no memory-safety preconditions; the caller is single-threaded (a
    // freshly forked child), as CLONE_NEWUSER requires.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0 {
        return NetResult::NetNs;
    }
    let netns_errno = errno();
    // SAFETY: as above.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) } == 0 {
        let maps_ok = write_file(&prep.setgroups_path, b"deny")
            & write_file(&prep.uid_map_path, &prep.uid_map)
            & write_file(&prep.gid_map_path, &prep.gid_map);
        return NetResult::UserNs { maps_ok };
    }
    NetResult::Refused {
        netns_errno,
        userns_errno: errno(),
    }
}

/// A fixed-size line buffer for reporting from the child without allocating.
struct Line {
    buf: [u8; 160],
    len: usize,
}

impl Line {
    fn new() -> Self {
        Self {
            buf: [0; 160],
            len: 0,
        }
    }
    fn s(&mut self, b: &[u8]) -> &mut Self {
        let n = b.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
        self
    }
    fn n(&mut self, v: i64) -> &mut Self {
        if v < 0 {
            self.s(b"-");
        }
        let mut v = v.unsigned_abs();
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.s(&digits[i..])
    }
    fn send(&mut self, fd: RawFd) {
        self.s(b"\n");
        // SAFETY: the buffer is valid for `len` bytes; write is async-signal-safe. A failed
        // report only loses diagnostics.
        unsafe { libc::write(fd, self.buf.as_ptr().cast(), self.len) };
    }
}

/// Mark every file descriptor from 3 up close-on-exec, so nothing the caller leaked without
/// `O_CLOEXEC` (a database handle, a lock) crosses `exec`. Async-signal-safe; ignored on kernels
/// without `close_range` (before 5.11).
pub(crate) fn cloexec_from_3() {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on descriptors; it takes no
    // pointers. The raw syscall wrapper is async-signal-safe.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
}

/// One rlimit to apply: resource, its name for messages, soft and hard values.
pub(crate) struct RlimitSetting {
    pub(crate) resource: Resource,
    pub(crate) name: &'static str,
    pub(crate) soft: libc::rlim_t,
    pub(crate) hard: libc::rlim_t,
}

/// Current hard limit of `resource` (infinity if unknown).
fn current_hard(resource: Resource) -> libc::rlim_t {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid out-pointer.
    if unsafe { libc::getrlimit(resource, &mut r) } == 0 {
        r.rlim_max
    } else {
        libc::RLIM_INFINITY
    }
}

/// The rlimits for `limits`, clamped to the current hard limits (lowering is always allowed;
/// a request above the current hard limit is already enforced by the stricter hard limit).
pub(crate) fn rlimit_settings(limits: &Limits, kill_grace_secs: u64) -> Vec<RlimitSetting> {
    let mut out = Vec::new();
    let mut add = |resource: Resource, name, soft: u64, hard: u64| {
        let cap = current_hard(resource);
        out.push(RlimitSetting {
            resource,
            name,
            soft: soft.min(cap),
            hard: hard.min(cap),
        });
    };
    // Memory is a cgroup limit; address space only on explicit request.
    if let Some(v) = limits.address_space_bytes {
        add(libc::RLIMIT_AS, "RLIMIT_AS", v, v);
    }
    if let Some(v) = limits.cpu_secs {
        add(
            libc::RLIMIT_CPU,
            "RLIMIT_CPU",
            v,
            v.saturating_add(kill_grace_secs.max(1)),
        );
    }
    if let Some(v) = limits.file_size_bytes {
        add(libc::RLIMIT_FSIZE, "RLIMIT_FSIZE", v, v);
    }
    if let Some(v) = limits.processes {
        add(libc::RLIMIT_NPROC, "RLIMIT_NPROC", v, v);
    }
    if let Some(v) = limits.open_files {
        add(libc::RLIMIT_NOFILE, "RLIMIT_NOFILE", v, v);
    }
    add(libc::RLIMIT_CORE, "RLIMIT_CORE", 0, 0);
    out
}

/// Everything the child does between fork and `exec` of bubblewrap (or, in the fallback
/// without bubblewrap, of `__jail` itself), prepared in the parent. Namespaces, Landlock,
/// seccomp and rlimits come later, from bubblewrap and `__jail` (see [`crate::jail`]);
/// rlimits in particular must not bind bubblewrap's own forks. The one exception is the
/// fallback's network namespace, which only an unshare here can give.
pub(crate) struct ChildSetup {
    /// Write end of the report pipe (CLOEXEC in the parent; inherited by bubblewrap and
    /// `__jail`, which makes it close-on-exec again before the job runs).
    pub(crate) report_fd: RawFd,
    /// Pid of the supervisor, to detect that it died before PDEATHSIG was armed.
    pub(crate) parent: libc::pid_t,
    /// Fallback without network: the network namespace to enter (required: fail if refused).
    pub(crate) net: Option<NetPrep>,
    /// `cgroup.procs` of each of the job's cgroups: the child moves itself in before it
    /// execs anything, so the whole job tree is inside (required: fail if refused).
    pub(crate) cgroup_procs: Vec<CString>,
}

impl ChildSetup {
    pub(crate) fn new(report_fd: RawFd, net: Option<NetPrep>, cgroup_procs: Vec<CString>) -> Self {
        Self {
            net,
            cgroup_procs,
            report_fd,
            // SAFETY: getpid cannot fail.
            parent: unsafe { libc::getpid() },
        }
    }

    fn fail(&self, stage: &[u8], err: i32) -> io::Error {
        Line::new()
            .s(b"fail ")
            .s(stage)
            .s(b" ")
            .n(i64::from(err))
            .send(self.report_fd);
        io::Error::from_raw_os_error(err)
    }

    /// Runs in the child after fork, before exec. Async-signal-safe: only raw system calls on
    /// data prepared by the parent; failures go to `report_fd` as `fail <stage> <errno>`.
    pub(crate) fn apply(&self) -> io::Result<()> {
        // 0. Nothing inherited without O_CLOEXEC reaches the sandbox, except the report pipe.
        cloexec_from_3();
        // SAFETY: fcntl on an integer descriptor takes no pointers.
        if unsafe { libc::fcntl(self.report_fd, libc::F_SETFD, 0) } != 0 {
            return Err(self.fail(b"report-fd", errno()));
        }
        // 0b. Into the job's cgroups (writing 0 moves the writer), before anything runs.
        for procs in &self.cgroup_procs {
            if !write_file(procs, b"0") {
                let e = errno();
                Line::new()
                    .s(b"fail cgroup ")
                    .n(i64::from(e))
                    .s(b" cannot move the job into its cgroup")
                    .send(self.report_fd);
                return Err(io::Error::from_raw_os_error(e));
            }
        }
        // 1. Parent-death signal: bubblewrap (and with it, through --die-with-parent, the whole
        //    PID namespace of the job) dies with the supervisor.
        // SAFETY: prctl with these integer arguments has no memory-safety preconditions.
        if unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            )
        } != 0
        {
            return Err(self.fail(b"pdeathsig", errno()));
        }
        // SAFETY: getppid cannot fail.
        if unsafe { libc::getppid() } != self.parent {
            return Err(self.fail(b"parent-died", libc::ESRCH));
        }
        // 2. bubblewrap and `__jail` ignore SIGTERM/SIGINT, so a timeout's SIGTERM to the
        //    process group reaches the job (which `__jail` gives default dispositions) and the
        //    grace period means something; SIGKILL still ends everything.
        for sig in [libc::SIGTERM, libc::SIGINT] {
            // SAFETY: setting SIG_IGN installs no handler code; async-signal-safe.
            if unsafe { libc::signal(sig, libc::SIG_IGN) } == libc::SIG_ERR {
                return Err(self.fail(b"signals", errno()));
            }
        }
        // 3. Fallback without network: a network namespace of its own, or no job at all.
        if let Some(prep) = &self.net {
            match enter_isolated_netns(prep) {
                NetResult::NetNs => Line::new().s(b"net netns").send(self.report_fd),
                NetResult::UserNs { maps_ok } => Line::new()
                    .s(b"net userns ")
                    .n(i64::from(maps_ok))
                    .send(self.report_fd),
                NetResult::Refused {
                    netns_errno,
                    userns_errno,
                } => {
                    Line::new()
                        .s(b"fail netns ")
                        .n(i64::from(netns_errno))
                        .s(b" unshare refused a network namespace: CLONE_NEWNET errno ")
                        .n(i64::from(netns_errno))
                        .s(b", CLONE_NEWUSER|CLONE_NEWNET errno ")
                        .n(i64::from(userns_errno))
                        .send(self.report_fd);
                    return Err(io::Error::from_raw_os_error(netns_errno));
                }
            }
        }
        Ok(())
    }
}

/// Parsed reports from the child, bubblewrap's `__jail` and the job's PID 1.
#[derive(Debug, Default)]
pub(crate) struct ChildReport {
    /// `__jail` is about to exec the job: every layer below is in place.
    pub(crate) ready: bool,
    /// Landlock ABI enforced, or the errno saying why the kernel has none.
    pub(crate) landlock: Option<Result<i32, i32>>,
    pub(crate) seccomp: bool,
    pub(crate) pidns: bool,
    /// Fallback: the network namespace the launcher's unshare made (`netns` or `userns`).
    pub(crate) net: Option<String>,
    /// Fallback: `__jail` dropped the capabilities it had (a root supervisor).
    pub(crate) caps_dropped: bool,
    /// The job's main process's raw wait status, as seen by PID 1 of its namespace.
    pub(crate) exit_status: Option<i32>,
    /// Processes the job left behind when its main process ended (killed by PID 1).
    pub(crate) leftovers: Option<usize>,
    /// Stage, errno and optional message of a setup failure.
    pub(crate) failure: Option<(String, i32, String)>,
}

pub(crate) fn parse_report(text: &str) -> ChildReport {
    let mut r = ChildReport::default();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_ascii_whitespace().collect();
        match parts.as_slice() {
            ["ready"] => r.ready = true,
            ["seccomp"] => r.seccomp = true,
            ["pidns"] => r.pidns = true,
            ["caps"] => r.caps_dropped = true,
            ["net", kind, ..] => r.net = Some((*kind).to_string()),
            ["landlock", "none", e] => r.landlock = Some(Err(e.parse().unwrap_or(0))),
            ["landlock", abi] => r.landlock = abi.parse().ok().map(Ok),
            ["exit", s] => r.exit_status = s.parse().ok(),
            ["leftovers", n] => r.leftovers = n.parse().ok(),
            ["fail", stage, e, msg @ ..] if r.failure.is_none() => {
                r.failure = Some(((*stage).to_string(), e.parse().unwrap_or(0), msg.join(" ")));
            }
            _ => {}
        }
    }
    r
}

pub(crate) fn errno_text(e: i32) -> String {
    io::Error::from_raw_os_error(e).to_string()
}
