//! Process-tree helpers for the supervisor: find descendants through /proc, signal, reap.

use std::collections::{HashMap, HashSet};
use std::fs;

/// One process read from /proc.
#[derive(Clone, Copy, Debug)]
struct ProcInfo {
    ppid: i32,
    zombie: bool,
}

fn read_proc(pid: i32) -> Option<ProcInfo> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Format: pid (comm) state ppid ...; comm may contain spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some(ProcInfo {
        ppid,
        zombie: state == "Z" || state == "X",
    })
}

/// Fields of /proc/<pid>/stat after the command name: index 0 is the state (field 3), so
/// field N of proc(5) is at index N - 3.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        stat[stat.rfind(')')? + 1..]
            .split_ascii_whitespace()
            .map(str::to_string)
            .collect(),
    )
}

/// Start time of a process (field 22, clock ticks since boot).
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Live members of process group `pgid`.
pub(crate) fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            stat_fields(pid).is_some_and(|f| {
                f.first().is_some_and(|s| s != "Z" && s != "X")
                    && f.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid)
            })
        })
        .collect()
}

/// Live (non-zombie) descendants of `root`, found by following parent links in /proc.
pub(crate) fn live_descendants(root: i32) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut procs: HashMap<i32, ProcInfo> = HashMap::new();
    for e in entries.flatten() {
        if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok())
            && let Some(info) = read_proc(pid)
        {
            procs.insert(pid, info);
        }
    }
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for (&pid, info) in &procs {
        children.entry(info.ppid).or_default().push(pid);
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            if c != root && seen.insert(c) {
                if !procs[&c].zombie {
                    out.push(c);
                }
                stack.push(c);
            }
        }
    }
    out
}

/// Send `sig` to a process group (ignoring errors such as ESRCH).
pub(crate) fn kill_group(pgid: i32, sig: i32) {
    if pgid > 1 {
        // SAFETY: kill has no memory-safety preconditions; pgid > 1 never targets every process.
        unsafe { libc::kill(-pgid, sig) };
    }
}

/// Send `sig` to each pid (ignoring errors).
pub(crate) fn kill_each(pids: &[i32], sig: i32) {
    for &p in pids {
        if p > 1 {
            // SAFETY: kill has no memory-safety preconditions; p > 1 is a single process.
            unsafe { libc::kill(p, sig) };
        }
    }
}

/// A reaped child: pid and raw wait status.
pub(crate) struct Reaped {
    pub(crate) pid: i32,
    pub(crate) status: i32,
}

/// Reap every child that has exited, without blocking.
pub(crate) fn reap_all() -> Vec<Reaped> {
    let mut out = Vec::new();
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer for the duration of the call.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
        out.push(Reaped { pid, status });
    }
    out
}
