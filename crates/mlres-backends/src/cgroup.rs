//! cgroup limits of local jobs: memory, processes (the pids controller) and a CPU quota.
//!
//! A supervisor creates one cgroup per attempt below its own (`<own>/mlres-<attempt>-<pid>`),
//! in every hierarchy that has a controller it needs: the cgroup v2 hierarchy for the
//! controllers it offers, the v1 hierarchy of each other controller (hybrid machines mount
//! `memory`, `pids` and `cpu` as v1 hierarchies next to an empty v2 one). The forked child
//! moves itself into them (it writes `0` to each `cgroup.procs`) before it execs bubblewrap,
//! so nothing of the job ever runs outside them. When the job ends the supervisor reads the
//! OOM-kill counter, kills whatever is still in the cgroups and removes them.
//!
//! | limit | cgroup v2 | cgroup v1 |
//! |---|---|---|
//! | memory | `memory.max`, `memory.swap.max` = 0 | `memory.limit_in_bytes`, `memory.memsw.limit_in_bytes` (same value: no swap) |
//! | processes | `pids.max` | `pids.max` |
//! | cpus | `cpu.max` | `cpu.cfs_quota_us` / `cpu.cfs_period_us` |
//! | OOM kill | `memory.events` `oom_kill` | `memory.oom_control` `oom_kill` (else `memory.failcnt` and SIGKILL) |
//!
//! Where a cgroup cannot be created (no controller, no permission, a v2 cgroup that holds
//! processes and so cannot hand controllers to children) the limit is not enforced, and the
//! job's notes, `doctor` and the approval view say so. Nothing here falls back to
//! `RLIMIT_AS`: address space is not memory.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The CFS period mlres writes with a CPU quota (100 ms, the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;

/// cgroup API version of one hierarchy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
}

impl Version {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Version::V1 => "cgroup v1",
            Version::V2 => "cgroup v2",
        }
    }
}

/// The controllers mlres uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Controller {
    Memory,
    Pids,
    Cpu,
}

impl Controller {
    pub(crate) const ALL: [Controller; 3] = [Controller::Memory, Controller::Pids, Controller::Cpu];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
        }
    }
}

/// One mount of a cgroup file system, from `/proc/self/mountinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mount {
    /// The cgroup path of the hierarchy that appears at `mount_point`.
    pub(crate) root: String,
    pub(crate) mount_point: PathBuf,
    pub(crate) version: Version,
    /// v1: the controllers of this hierarchy (from the super options).
    pub(crate) controllers: Vec<String>,
}

/// Undo mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup and cgroup2 mounts listed in `mountinfo` (proc(5) format).
pub(crate) fn parse_mountinfo(mountinfo: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(mp), Some(fstype)) = (l.get(3), l.get(4), r.first()) else {
            continue;
        };
        let version = match *fstype {
            "cgroup" => Version::V1,
            "cgroup2" => Version::V2,
            _ => continue,
        };
        let controllers = match version {
            Version::V1 => r
                .get(2)
                .map(|o| o.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
            Version::V2 => Vec::new(),
        };
        out.push(Mount {
            root: unescape(root),
            mount_point: PathBuf::from(unescape(mp)),
            version,
            controllers,
        });
    }
    out
}

/// One line of `/proc/self/cgroup`: hierarchy id, controllers (v1), path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Membership {
    pub(crate) id: String,
    pub(crate) controllers: Vec<String>,
    pub(crate) path: String,
}

pub(crate) fn parse_proc_cgroup(text: &str) -> Vec<Membership> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let id = it.next()?.to_string();
            let controllers = it
                .next()?
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            let path = it.next()?.to_string();
            Some(Membership {
                id,
                controllers,
                path,
            })
        })
        .collect()
}

/// Where `path` (a cgroup path of the mount's hierarchy) appears below `m`'s mount point;
/// `None` if the mount shows another part of the hierarchy.
fn dir_in(m: &Mount, path: &str) -> Option<PathBuf> {
    let rel = if m.root == "/" {
        path.trim_start_matches('/')
    } else {
        let rest = path.strip_prefix(m.root.as_str())?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        rest.trim_start_matches('/')
    };
    Some(if rel.is_empty() {
        m.mount_point.clone()
    } else {
        m.mount_point.join(rel)
    })
}

/// The supervisor's own cgroup directory for controller `c`: in the v1 hierarchy that has
/// it, else in the v2 hierarchy (whether v2 offers the controller is checked later).
pub(crate) fn locate(
    c: Controller,
    mounts: &[Mount],
    member: &[Membership],
) -> Result<(Version, PathBuf), String> {
    let name = c.name();
    if let Some(m) = member
        .iter()
        .find(|m| m.id != "0" && m.controllers.iter().any(|x| x == name))
    {
        let candidates: Vec<&Mount> = mounts
            .iter()
            .filter(|x| x.version == Version::V1 && x.controllers.iter().any(|x| x == name))
            .collect();
        if candidates.is_empty() {
            return Err(format!(
                "the {name} controller is a cgroup v1 hierarchy that is not mounted here"
            ));
        }
        return candidates
            .iter()
            .find_map(|x| dir_in(x, &m.path).filter(|d| d.is_dir()))
            .map(|d| (Version::V1, d))
            .ok_or_else(|| {
                format!(
                    "this process's {name} cgroup {} is not visible under {}",
                    m.path,
                    candidates[0].mount_point.display()
                )
            });
    }
    let Some(m) = member
        .iter()
        .find(|m| m.id == "0" && m.controllers.is_empty())
    else {
        return Err(format!("no cgroup hierarchy has the {name} controller"));
    };
    mounts
        .iter()
        .filter(|x| x.version == Version::V2)
        .find_map(|x| dir_in(x, &m.path).filter(|d| d.is_dir()))
        .map(|d| (Version::V2, d))
        .ok_or_else(|| {
            format!(
                "no cgroup hierarchy has the {name} controller (the cgroup v2 hierarchy is not mounted here)"
            )
        })
}

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

fn write_file(path: &Path, value: &str) -> Result<(), String> {
    fs::write(path, value).map_err(|e| format!("cannot write {value:?} to {}: {e}", path.display()))
}

/// `bytes` for people: `512 MiB`, `1.5 GiB` when exact, else bytes.
pub(crate) fn human_size(bytes: u64) -> String {
    for (n, u) in [
        (1u64 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ] {
        if bytes >= n {
            if bytes.is_multiple_of(n) {
                return format!("{} {u}", bytes / n);
            }
            if (bytes * 10).is_multiple_of(n) {
                return format!("{}.{} {u}", bytes / n, (bytes * 10 / n) % 10);
            }
        }
    }
    format!("{bytes} bytes")
}

/// `cpus` for people: `2`, `0.5`.
pub(crate) fn human_cpus(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        return (millis / 1000).to_string();
    }
    let f = format!("{:03}", millis % 1000);
    format!("{}.{}", millis / 1000, f.trim_end_matches('0'))
}

/// What a job asks the cgroups to limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) memory_bytes: Option<u64>,
    /// Tasks (processes and threads) of the job.
    pub(crate) pids: Option<u64>,
    /// Tasks the sandbox itself adds to the cgroup (bubblewrap's monitor and `__jail`):
    /// `pids.max` is `pids` plus these.
    pub(crate) pids_extra: u64,
    pub(crate) cpu_millis: Option<u64>,
}

impl Request {
    fn wants(&self, c: Controller) -> bool {
        match c {
            Controller::Memory => self.memory_bytes.is_some(),
            Controller::Pids => self.pids.is_some(),
            Controller::Cpu => self.cpu_millis.is_some(),
        }
    }
}

/// Whether one limit is enforced, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LimitState {
    NotRequested,
    Enforced { version: Version, how: String },
    NotEnforced(String),
}

/// One directory created for the job.
#[derive(Clone, Debug)]
struct Dir {
    path: PathBuf,
    /// The cgroup path of `path` as `/proc/<pid>/cgroup` shows it, with its hierarchy's
    /// `/proc/<pid>/cgroup` selector (`0::` for v2, the controller for v1).
    member_line: (String, String),
    /// The limits set in it.
    controllers: Vec<Controller>,
}

/// The cgroups of one job (or of a doctor probe). Dropping it kills what is left in them and
/// removes them.
pub(crate) struct JobCgroup {
    dirs: Vec<Dir>,
    pub(crate) memory: LimitState,
    pub(crate) pids: LimitState,
    pub(crate) cpu: LimitState,
    /// Where the memory limit is, to read its OOM counters.
    memory_dir: Option<(Version, PathBuf)>,
    request: Request,
}

/// A cgroup directory name for an attempt directory: `mlres-<last component>-<pid>`.
pub(crate) fn name_for(attempt: &Path, pid: u32) -> String {
    let base: String = attempt
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if base.is_empty() || base.starts_with('.') {
        format!("mlres-{pid}")
    } else {
        format!("mlres-{base}-{pid}")
    }
}

/// Read the supervisor's hierarchies. `Err`: why no cgroup can be used at all.
fn read_self() -> Result<(Vec<Mount>, Vec<Membership>), String> {
    let mi = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let cg = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    Ok((parse_mountinfo(&mi), parse_proc_cgroup(&cg)))
}

/// Make controller `c` available to children of the v2 cgroup `own`.
fn enable_v2(own: &Path, c: Controller) -> Result<(), String> {
    let name = c.name();
    let available = fs::read_to_string(own.join("cgroup.controllers")).unwrap_or_default();
    if !available.split_ascii_whitespace().any(|x| x == name) {
        return Err(format!(
            "cgroup v2 offers no {name} controller to {} (cgroup.controllers: {:?})",
            own.display(),
            available.trim()
        ));
    }
    let enabled = fs::read_to_string(own.join("cgroup.subtree_control")).unwrap_or_default();
    if enabled.split_ascii_whitespace().any(|x| x == name) {
        return Ok(());
    }
    let path = own.join("cgroup.subtree_control");
    fs::write(&path, format!("+{name}")).map_err(|e| {
        if errno_of(&e) == libc::EBUSY {
            format!(
                "cannot enable {name} for child cgroups of {} ({e}): that cgroup holds processes; \
                 run mlres from a cgroup delegated to it whose processes live in a leaf",
                own.display()
            )
        } else {
            format!("cannot enable {name} in {}: {e}", path.display())
        }
    })
}

/// Create `dir`; a leftover of a dead supervisor with the same name is emptied and replaced.
fn make_dir(dir: &Path) -> Result<(), String> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            kill_in(&[dir.to_path_buf()], &mut || {});
            remove_dir(dir)?;
            fs::create_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
        }
        Err(e) => Err(format!("cannot create {}: {e}", dir.display())),
    }
}

/// Remove a cgroup directory, retrying while its last tasks finish exiting.
fn remove_dir(dir: &Path) -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if errno_of(&e) == libc::EBUSY && Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(format!("cannot remove cgroup {}: {e}", dir.display())),
        }
    }
}

/// Pids listed in the `cgroup.procs` of `dirs`.
fn pids_in(dirs: &[PathBuf]) -> Vec<i32> {
    let mut out: Vec<i32> = dirs
        .iter()
        .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
                .collect::<Vec<_>>()
        })
        .filter(|&p| p > 1)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// SIGKILL `pid` only if it is still in one of `dirs` once we hold a pidfd on it (so a pid
/// reused after the job's process was reaped is never signalled). Without pidfds (Linux
/// before 5.3) the pid read from `cgroup.procs` is signalled directly.
fn kill_member(pid: i32, dirs: &[PathBuf]) {
    // SAFETY: pidfd_open takes a pid and flags, no pointers.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        if io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            // SAFETY: kill has no memory-safety preconditions; pid > 1.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        return;
    }
    let fd = fd as i32;
    let still = dirs.iter().any(|d| {
        fs::read_to_string(d.join("cgroup.procs"))
            .is_ok_and(|s| s.lines().any(|l| l.trim() == pid.to_string()))
    });
    if still {
        // SAFETY: `fd` is a pidfd we own; the null siginfo pointer is allowed.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd,
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }
    // SAFETY: closing a descriptor we own.
    unsafe { libc::close(fd) };
}

/// SIGKILL everything in `dirs` until they are empty (at most a few seconds); `reap` is
/// called between rounds so the caller can collect its children. Returns how many distinct
/// processes were signalled.
pub(crate) fn kill_in(dirs: &[PathBuf], reap: &mut dyn FnMut()) -> usize {
    let mut seen = std::collections::HashSet::new();
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = pids_in(dirs);
        if pids.is_empty() || Instant::now() >= until {
            return seen.len();
        }
        for d in dirs {
            let kill = d.join("cgroup.kill");
            if kill.exists() {
                let _ = fs::write(&kill, "1");
            }
        }
        for p in pids {
            seen.insert(p);
            kill_member(p, dirs);
        }
        std::thread::sleep(Duration::from_millis(10));
        reap();
    }
}

impl JobCgroup {
    /// Create the cgroups `req` needs under the supervisor's own, named `name`, and write the
    /// limits. Never fails: a limit that cannot be set is [`LimitState::NotEnforced`] with the
    /// reason, and its directory is not created (or removed again).
    pub(crate) fn create(name: &str, req: Request) -> JobCgroup {
        let mut cg = JobCgroup {
            dirs: Vec::new(),
            memory: LimitState::NotRequested,
            pids: LimitState::NotRequested,
            cpu: LimitState::NotRequested,
            memory_dir: None,
            request: req,
        };
        if !Controller::ALL.iter().any(|&c| req.wants(c)) {
            return cg;
        }
        let (mounts, member) = match read_self() {
            Ok(x) => x,
            Err(why) => {
                for c in Controller::ALL.into_iter().filter(|&c| req.wants(c)) {
                    cg.set(c, LimitState::NotEnforced(why.clone()));
                }
                return cg;
            }
        };
        for c in Controller::ALL.into_iter().filter(|&c| req.wants(c)) {
            let state = match locate(c, &mounts, &member) {
                Err(why) => LimitState::NotEnforced(why),
                Ok((version, own)) => match cg.limit(c, version, &own, name, &member) {
                    Ok(how) => LimitState::Enforced { version, how },
                    Err(why) => LimitState::NotEnforced(why),
                },
            };
            cg.set(c, state);
        }
        cg
    }

    fn set(&mut self, c: Controller, s: LimitState) {
        match c {
            Controller::Memory => self.memory = s,
            Controller::Pids => self.pids = s,
            Controller::Cpu => self.cpu = s,
        }
    }

    /// The directory `<own>/<name>` of this hierarchy, created once.
    fn dir(
        &mut self,
        version: Version,
        own: &Path,
        name: &str,
        c: Controller,
        member: &[Membership],
    ) -> Result<PathBuf, String> {
        let path = own.join(name);
        if let Some(d) = self.dirs.iter().find(|d| d.path == path) {
            return Ok(d.path.clone());
        }
        make_dir(&path)?;
        let (selector, own_path) = match version {
            Version::V2 => (
                String::new(),
                member
                    .iter()
                    .find(|m| m.id == "0")
                    .map(|m| m.path.clone())
                    .unwrap_or_default(),
            ),
            Version::V1 => (
                c.name().to_string(),
                member
                    .iter()
                    .find(|m| m.id != "0" && m.controllers.iter().any(|x| x == c.name()))
                    .map(|m| m.path.clone())
                    .unwrap_or_default(),
            ),
        };
        let cg_path = format!("{}/{name}", own_path.trim_end_matches('/'));
        self.dirs.push(Dir {
            path: path.clone(),
            member_line: (selector, cg_path),
            controllers: Vec::new(),
        });
        Ok(path)
    }

    /// Set controller `c`'s limit in `<own>/<name>`; `Ok` says how it is enforced.
    fn limit(
        &mut self,
        c: Controller,
        version: Version,
        own: &Path,
        name: &str,
        member: &[Membership],
    ) -> Result<String, String> {
        if version == Version::V2 {
            enable_v2(own, c)?;
        }
        let dir = self.dir(version, own, name, c, member)?;
        let result = self.write_limit(c, version, &dir);
        let Some(i) = self.dirs.iter().position(|d| d.path == dir) else {
            return result;
        };
        if result.is_ok() {
            self.dirs[i].controllers.push(c);
        } else if self.dirs[i].controllers.is_empty() {
            // Nothing else is limited there: do not leave an empty cgroup behind.
            let _ = remove_dir(&dir);
            self.dirs.remove(i);
        }
        result
    }

    fn write_limit(
        &mut self,
        c: Controller,
        version: Version,
        dir: &Path,
    ) -> Result<String, String> {
        let req = self.request;
        match (c, version) {
            (Controller::Memory, v) => {
                let bytes = req.memory_bytes.unwrap_or(u64::MAX);
                let (limit, swap) = match v {
                    Version::V2 => ("memory.max", "memory.swap.max"),
                    Version::V1 => ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"),
                };
                write_file(&dir.join(limit), &bytes.to_string())?;
                let swap_path = dir.join(swap);
                let no_swap = if swap_path.exists() {
                    let value = if v == Version::V2 {
                        "0".to_string()
                    } else {
                        bytes.to_string()
                    };
                    write_file(&swap_path, &value)?;
                    format!(" + {swap} (no swap)")
                } else {
                    " (no swap accounting on this kernel: swap is not limited)".to_string()
                };
                self.memory_dir = Some((v, dir.to_path_buf()));
                Ok(format!("{}: {limit}{no_swap}", v.label()))
            }
            (Controller::Pids, v) => {
                let n = req.pids.unwrap_or(u64::MAX).saturating_add(req.pids_extra);
                write_file(&dir.join("pids.max"), &n.to_string())?;
                Ok(if req.pids_extra > 0 {
                    format!(
                        "{}: pids.max {n}, {} of them for the sandbox's own processes",
                        v.label(),
                        req.pids_extra
                    )
                } else {
                    format!("{}: pids.max", v.label())
                })
            }
            (Controller::Cpu, Version::V2) => {
                let m = req.cpu_millis.unwrap_or(0);
                let quota = m.saturating_mul(CPU_PERIOD_US) / 1000;
                write_file(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
                Ok("cgroup v2: cpu.max".into())
            }
            (Controller::Cpu, Version::V1) => {
                let m = req.cpu_millis.unwrap_or(0);
                let quota = m.saturating_mul(CPU_PERIOD_US) / 1000;
                write_file(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                write_file(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                Ok("cgroup v1: cpu.cfs_quota_us / cpu.cfs_period_us".into())
            }
        }
    }

    /// The `cgroup.procs` files the job's first process writes itself into.
    pub(crate) fn procs_files(&self) -> Vec<CString> {
        self.dirs
            .iter()
            .filter_map(|d| CString::new(d.path.join("cgroup.procs").as_os_str().as_bytes()).ok())
            .collect()
    }

    /// The directories, one per line (for the attempt's `cgroups` file).
    pub(crate) fn paths(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.path.clone()).collect()
    }

    /// Whether `pid` is in every one of the job's cgroups (read from `/proc/<pid>/cgroup`).
    pub(crate) fn contains(&self, pid: i32) -> bool {
        let Ok(text) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            return false;
        };
        let lines = parse_proc_cgroup(&text);
        self.dirs.iter().all(|d| {
            let (sel, path) = &d.member_line;
            lines.iter().any(|m| {
                let hierarchy = if sel.is_empty() {
                    m.id == "0"
                } else {
                    m.id != "0" && m.controllers.iter().any(|x| x == sel)
                };
                hierarchy && &m.path == path
            })
        })
    }

    /// How many processes the kernel's OOM killer ended in the job's memory cgroup, and
    /// whether the count is exact (`false`: v1 without an `oom_kill` counter, where a failed
    /// charge (`memory.failcnt`) is all there is).
    pub(crate) fn oom_kills(&self) -> Option<(u64, bool)> {
        let (v, dir) = self.memory_dir.as_ref()?;
        let field = |file: &str, key: &str| -> Option<u64> {
            fs::read_to_string(dir.join(file))
                .ok()?
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    (k == key).then(|| v.trim().parse().ok()).flatten()
                })
        };
        match v {
            Version::V2 => field("memory.events", "oom_kill").map(|n| (n, true)),
            Version::V1 => match field("memory.oom_control", "oom_kill") {
                Some(n) => Some((n, true)),
                None => fs::read_to_string(dir.join("memory.failcnt"))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
                    .map(|n| (n, false)),
            },
        }
    }

    /// Where the memory limit is enforced (`cgroup v1`), if it is.
    pub(crate) fn memory_version(&self) -> Option<Version> {
        match &self.memory {
            LimitState::Enforced { version, .. } => Some(*version),
            _ => None,
        }
    }

    /// Kill whatever is left in the cgroups (see [`kill_in`]).
    pub(crate) fn kill_all(&self, reap: &mut dyn FnMut()) -> usize {
        kill_in(&self.paths(), reap)
    }

    /// Kill what is left and remove the directories; returns the problems.
    pub(crate) fn remove(&mut self) -> Vec<String> {
        let paths = self.paths();
        kill_in(&paths, &mut || {
            crate::procs::reap_all();
        });
        let mut problems = Vec::new();
        // Children before parents is not needed (each is a leaf in its own hierarchy).
        for p in paths {
            if let Err(e) = remove_dir(&p) {
                problems.push(e);
            }
        }
        self.dirs.clear();
        problems
    }

    /// The job's notes: which limits hold and which do not.
    pub(crate) fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        let req = self.request;
        for (what, value, state) in [
            ("memory", req.memory_bytes.map(human_size), &self.memory),
            ("processes", req.pids.map(|n| n.to_string()), &self.pids),
            ("cpus", req.cpu_millis.map(human_cpus), &self.cpu),
        ] {
            let Some(value) = value else { continue };
            parts.push(match state {
                LimitState::NotRequested => continue,
                LimitState::Enforced { how, .. } => format!("{what} {value} ({how})"),
                LimitState::NotEnforced(why) => {
                    format!("{what} {value} NOT enforced ({why})")
                }
            });
        }
        (!parts.is_empty()).then(|| format!("cgroup limits: {}", parts.join("; ")))
    }
}

impl Drop for JobCgroup {
    fn drop(&mut self) {
        if !self.dirs.is_empty() {
            let _ = self.remove();
        }
    }
}

/// Kill the processes left in the cgroups listed in an attempt's `cgroups` file and remove
/// them (a supervisor that died could not). Returns how many processes were signalled.
pub(crate) fn kill_listed(list: &str) -> usize {
    let dirs: Vec<PathBuf> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        // Only directories this module names, below a cgroup mount.
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("mlres-"))
                && p.join("cgroup.procs").is_file()
        })
        .collect();
    let n = kill_in(&dirs, &mut || {});
    for d in &dirs {
        let _ = remove_dir(d);
    }
    n
}

/// Whether each limit can be enforced here, found the only reliable way: a short-lived
/// cgroup gets every limit, a forked child moves itself into it, and it is removed again.
pub(crate) fn probe() -> JobCgroup {
    // Unique per call: probes may run on several threads of one process at once.
    static PROBES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("mlres-probe-{}-{n}", std::process::id());
    let req = Request {
        memory_bytes: Some(256 << 20),
        pids: Some(64),
        pids_extra: 0,
        cpu_millis: Some(500),
    };
    let mut cg = JobCgroup::create(&name, req);
    let files = cg.procs_files();
    if files.is_empty() {
        return cg;
    }
    // SAFETY: fork has no memory-safety preconditions. The child only makes raw system
    // calls (open, write, close) on C strings built before the fork, then `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let mut code = 0;
        for f in &files {
            // SAFETY: `f` is a valid NUL-terminated path; open/write/close are raw calls on
            // a buffer of the given length.
            unsafe {
                let fd = libc::open(f.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    code = 1;
                }
                if fd >= 0 {
                    libc::close(fd);
                }
                // Stay until the parent has looked (it kills us).
            }
        }
        // SAFETY: pause and _exit are async-signal-safe; _exit never returns.
        unsafe {
            if code == 0 {
                libc::pause();
            }
            libc::_exit(code)
        };
    }
    let joined = pid > 0 && {
        let until = Instant::now() + Duration::from_secs(5);
        let mut ok = false;
        while Instant::now() < until {
            if cg.contains(pid) {
                ok = true;
                break;
            }
            let mut st = 0;
            // SAFETY: `st` is a valid out-pointer; pid is our own child.
            if unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) } == pid {
                break; // it could not join and exited
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        ok
    };
    if pid > 0 {
        // SAFETY: pid is our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            let mut st = 0;
            libc::waitpid(pid, &mut st, 0);
        }
    }
    if !joined {
        let why = "a process could not move itself into the cgroup (cgroup.procs)".to_string();
        for c in Controller::ALL {
            let s = match c {
                Controller::Memory => &cg.memory,
                Controller::Pids => &cg.pids,
                Controller::Cpu => &cg.cpu,
            };
            if matches!(s, LimitState::Enforced { .. }) {
                cg.set(c, LimitState::NotEnforced(why.clone()));
            }
        }
    }
    let problems = cg.remove();
    if let Some(p) = problems.first() {
        for c in Controller::ALL {
            cg.set(c, LimitState::NotEnforced(p.clone()));
        }
    }
    cg
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
33 24 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
34 33 0:29 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
35 33 0:30 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
38 33 0:33 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory
39 33 0:34 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids
40 33 0:35 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,cpu,cpuacct
";
    const HYBRID_CGROUP: &str = "\
12:pids:/user.slice/user-1000.slice
9:memory:/user.slice/user-1000.slice/session-2.scope
4:cpu,cpuacct:/
1:name=systemd:/user.slice/user-1000.slice/session-2.scope
0::/user.slice/user-1000.slice/session-2.scope
";

    #[test]
    fn parses_mountinfo_and_proc_cgroup() {
        let m = parse_mountinfo(HYBRID_MOUNTINFO);
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].version, Version::V2);
        assert_eq!(m[0].mount_point, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(m[4].controllers, vec!["rw", "cpu", "cpuacct"]);
        let c = parse_proc_cgroup(HYBRID_CGROUP);
        assert_eq!(c.len(), 5);
        assert_eq!(c[3].controllers, vec!["name=systemd"]);
        assert_eq!(c[4].id, "0");
        assert!(c[4].controllers.is_empty());
        assert_eq!(unescape(r"/a\040b"), "/a b");
    }

    #[test]
    fn v1_controllers_are_found_in_their_own_hierarchy() {
        let m = parse_mountinfo(HYBRID_MOUNTINFO);
        let c = parse_proc_cgroup(HYBRID_CGROUP);
        // The directories do not exist on the test machine, so locate refuses them, naming
        // where it looked; the path arithmetic is checked through dir_in.
        let mem = m
            .iter()
            .find(|x| x.controllers.iter().any(|c| c == "memory"))
            .unwrap();
        assert_eq!(
            dir_in(mem, "/user.slice/user-1000.slice/session-2.scope").unwrap(),
            Path::new("/sys/fs/cgroup/memory/user.slice/user-1000.slice/session-2.scope")
        );
        let cpu = m
            .iter()
            .find(|x| x.controllers.iter().any(|c| c == "cpu"))
            .unwrap();
        assert_eq!(
            dir_in(cpu, "/").unwrap(),
            Path::new("/sys/fs/cgroup/cpu,cpuacct")
        );
        // A mount of a sub-tree (a container's view) only shows paths below its root.
        let sub = Mount {
            root: "/docker/abc".into(),
            mount_point: "/sys/fs/cgroup/memory".into(),
            version: Version::V1,
            controllers: vec!["memory".into()],
        };
        assert_eq!(
            dir_in(&sub, "/docker/abc/x").unwrap(),
            Path::new("/sys/fs/cgroup/memory/x")
        );
        assert_eq!(
            dir_in(&sub, "/docker/abc").unwrap(),
            Path::new("/sys/fs/cgroup/memory")
        );
        assert_eq!(dir_in(&sub, "/docker/abcd"), None);
        assert_eq!(dir_in(&sub, "/other"), None);
        let e = locate(Controller::Memory, &m, &c);
        if !Path::new("/sys/fs/cgroup/memory/user.slice/user-1000.slice/session-2.scope").is_dir() {
            assert!(e.unwrap_err().contains("not visible"));
        }
        // No hierarchy with the controller at all.
        let e = locate(Controller::Memory, &[], &parse_proc_cgroup("0::/\n")).unwrap_err();
        assert!(e.contains("not mounted"), "{e}");
        let e = locate(Controller::Pids, &m, &parse_proc_cgroup("9:memory:/\n")).unwrap_err();
        assert!(
            e.contains("no cgroup hierarchy has the pids controller"),
            "{e}"
        );
    }

    #[test]
    fn names_and_sizes() {
        assert_eq!(
            name_for(Path::new("/s/jobs/c1/e3-a0"), 42),
            "mlres-e3-a0-42"
        );
        assert_eq!(
            name_for(Path::new("/s/jobs/c1/we ird/"), 7),
            "mlres-we_ird-7"
        );
        assert_eq!(name_for(Path::new("/"), 7), "mlres-7");
        assert_eq!(human_size(512 << 20), "512 MiB");
        assert_eq!(human_size(3 << 29), "1.5 GiB");
        assert_eq!(human_size(1000), "1000 bytes");
        assert_eq!(human_cpus(1500), "1.5");
        assert_eq!(human_cpus(2000), "2");
        assert_eq!(human_cpus(250), "0.25");
    }
}
