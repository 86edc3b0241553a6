//! cgroup limits of local jobs: memory is what a job uses (not address space it reserves),
//! processes are counted by the pids controller, a CPU quota holds, and the cgroups are gone
//! when the job is. Tests run as root here and in CI, where the cgroup path must be available
//! and enforced: they cannot pass by skipping it.

use mlres_backends::{LimitEnforcement, Outcome, cgroup_limits, doctor, log_paths};

use crate::*;

fn root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Reserve 16 GiB of address space the way CUDA does (PROT_NONE, MAP_NORESERVE) and touch
/// none of it.
const RESERVE_16_GIB: &str = r#"
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
# PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
p = libc.mmap(None, 16 << 30, 0, 0x22 | 0x4000, -1, 0)
if p is None or p == ctypes.c_void_p(-1).value:
    print("reserve failed: errno", ctypes.get_errno())
    sys.exit(1)
print("reserved 16 GiB")
"#;

/// The limits mlres gives a job whose template sets none (`JobLimits::default()`).
fn default_limits(s: &mut LocalJobSpec) {
    s.limits.memory_bytes = Some(2 << 30);
    s.limits.file_size_bytes = Some(1 << 30);
    s.limits.processes = Some(256);
    s.limits.open_files = Some(1024);
}

/// The one thing CUDA and `import torch` need: address space far beyond the memory limit,
/// reserved and never touched. Under the old RLIMIT_AS of 2 GiB this failed with ENOMEM.
#[test]
fn reserving_address_space_it_never_touches_does_not_fail_a_job() {
    let (_t, dir) = attempt_dir();
    let py = python3();
    let mut s = spec(&[&py, "-c", RESERVE_16_GIB]);
    default_limits(&mut s);
    let st = run(&dir, &s);
    let out = read(&log_paths(&dir).stdout);
    assert_eq!(st.outcome, Outcome::Completed, "{} / {out}", st.detail);
    assert!(out.contains("reserved 16 GiB"), "{out}");
}

/// `address_space` is still there for whoever asks for it: then the same reservation fails.
#[test]
fn an_explicit_address_space_limit_is_an_rlimit() {
    let (_t, dir) = attempt_dir();
    let py = python3();
    let mut s = spec(&[&py, "-c", RESERVE_16_GIB]);
    default_limits(&mut s);
    s.limits.address_space_bytes = Some(4 << 30);
    let st = run(&dir, &s);
    let out = read(&log_paths(&dir).stdout);
    assert_eq!(st.outcome, Outcome::Failed, "{} / {out}", st.detail);
    assert!(out.contains("reserve failed: errno 12"), "{out}");
    // And none by default.
    let (_t, dir) = attempt_dir();
    let mut s = sh("ulimit -v");
    default_limits(&mut s);
    let st = run(&dir, &s);
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    assert_eq!(read(&log_paths(&dir).stdout), "unlimited\n");
}

/// A job that touches more memory than its limit is killed by the kernel and its status says
/// which limit, enforced how.
#[test]
fn touching_more_memory_than_the_limit_is_killed_and_named() {
    let limits = cgroup_limits();
    let (_t, dir) = attempt_dir();
    let py = python3();
    // bytes multiplication writes every page: 512 MiB really used.
    let mut s = spec(&[
        &py,
        "-c",
        "x = b'a' * (512 << 20); print('survived', len(x))",
    ]);
    default_limits(&mut s);
    s.limits.memory_bytes = Some(128 << 20);
    let st = run(&dir, &s);
    let out = read(&log_paths(&dir).stdout);
    let doc = doctor(None);
    let entry = doc.iter().find(|p| p.name == "cgroup_limits").unwrap();
    if root() || limits.memory.is_enforced() {
        // Root here and in CI: the cgroup must be there, or the test fails (no silent skip).
        let LimitEnforcement::Enforced(how) = &limits.memory else {
            panic!("memory limit not enforced: {:?}", limits.memory)
        };
        assert!(how.starts_with("cgroup v"), "{how}");
        assert_eq!(st.outcome, Outcome::MemoryExceeded, "{st:?}");
        assert!(!out.contains("survived"), "{out}");
        assert_eq!(st.signal, Some(libc::SIGKILL), "{st:?}");
        assert!(
            st.detail
                .starts_with("killed: memory limit 128 MiB exceeded (cgroup v"),
            "{}",
            st.detail
        );
        assert!(st.detail.contains("OOM killer"), "{}", st.detail);
        assert!(
            st.notes
                .iter()
                .any(|n| n.contains("memory 128 MiB (cgroup v")),
            "{:?}",
            st.notes
        );
        assert!(entry.detail.contains("limits.memory enforced"), "{entry:?}");
    } else {
        // Not root and no cgroup of our own: nothing enforces it, and everything says so.
        assert!(
            entry.detail.contains("limits.memory NOT enforced"),
            "{entry:?}"
        );
        assert!(!entry.active, "{entry:?}");
        assert!(
            st.notes
                .iter()
                .any(|n| n.contains("memory 128 MiB NOT enforced")),
            "{:?}",
            st.notes
        );
    }
}

/// `processes` is a pids cgroup limit: a process that forks as fast as it can gets exactly
/// the tasks the template allows (itself included), even as root, where RLIMIT_NPROC is not
/// enforced. The forks are bounded (200), so a missing limit fails the test, not the machine.
#[test]
fn processes_are_a_pids_limit_that_contains_a_fork_bomb() {
    let (_t, dir) = attempt_dir();
    let py = python3();
    let m = marker();
    let script = format!(
        r#"
import os, sys, time
n = 0
for i in range(200):
    try:
        pid = os.fork()
    except OSError as e:
        print("fork refused", e.errno)
        break
    if pid == 0:
        try:
            os.execv("/bin/sleep", ["sleep", "{m}"])
        finally:
            os._exit(1)
    n += 1
print("forked", n)
sys.stdout.flush()
"#
    );
    let mut s = spec(&[&py, "-c", &script]);
    default_limits(&mut s);
    s.limits.processes = Some(16);
    let st = run(&dir, &s);
    let out = read(&log_paths(&dir).stdout);
    assert_eq!(st.outcome, Outcome::Completed, "{} / {out}", st.detail);
    assert!(out.contains("fork refused 11"), "{out}");
    let forked: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("forked "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    if root() || cgroup_limits().processes.is_enforced() {
        // 16 tasks: the job's process and 15 children (the sandbox's own are not counted).
        assert_eq!(forked, 15, "{out}");
        assert!(
            st.notes
                .iter()
                .any(|n| n.contains("processes 16 (cgroup v")),
            "{:?}",
            st.notes
        );
    } else {
        assert!(forked < 16, "{out}");
    }
    // The children it left were killed with it.
    assert!(marked_gone(&m), "{:?}", marked_alive(&m));
}

/// `cpus` is a CPU quota: a busy loop gets about that share of one CPU.
#[test]
fn a_cpu_quota_holds() {
    if !root() && !cgroup_limits().cpus.is_enforced() {
        eprintln!("no cpu cgroup here; doctor says so (checked in doctor_says_how)");
        return;
    }
    let (_t, dir) = attempt_dir();
    let py = python3();
    let mut s = spec(&[
        &py,
        "-c",
        "import time\nw = time.time()\nwhile time.time() - w < 2: pass\nprint('share', time.process_time() / (time.time() - w))",
    ]);
    default_limits(&mut s);
    s.limits.cpu_millis = Some(200);
    let st = run(&dir, &s);
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    let out = read(&log_paths(&dir).stdout);
    let share: f64 = out
        .trim()
        .strip_prefix("share ")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    // 0.2 CPU; without the quota a busy loop gets close to 1.
    assert!(share < 0.5, "{out}");
    assert!(
        st.notes.iter().any(|n| n.contains("cpus 0.2 (cgroup v")),
        "{:?}",
        st.notes
    );
}

/// The job's cgroups exist while it runs, hold all of it, and are removed when it ends.
#[test]
fn the_job_cgroups_are_removed_with_the_job() {
    let (_t, dir) = attempt_dir();
    let m = marker();
    let mut s = sh(&format!("sleep {m} & echo started; wait"));
    default_limits(&mut s);
    s.timeout_secs = 2;
    let st = run(&dir, &s);
    assert_eq!(st.outcome, Outcome::TimedOut, "{}", st.detail);
    assert!(marked_gone(&m));
    let listed = read(&dir.join("cgroups"));
    if root() {
        assert!(!listed.is_empty(), "no cgroups recorded");
    }
    for p in listed.lines() {
        assert!(
            p.contains("/mlres-attempt-"),
            "cgroup named after the attempt: {p}"
        );
        assert!(!std::path::Path::new(p).exists(), "{p} left behind");
    }
}

/// doctor's entry says what holds here, found by creating a cgroup for real; as an
/// unprivileged user without a cgroup of its own, nothing is reported as on.
#[test]
fn doctor_says_how_cgroup_limits_are_enforced() {
    let report = doctor(None);
    assert!(
        !report.iter().any(|p| p.name == "cgroup_v2"),
        "the report-only entry is replaced"
    );
    let e = report.iter().find(|p| p.name == "cgroup_limits").unwrap();
    let l = cgroup_limits();
    assert_eq!(
        e.active,
        l.memory.is_enforced() && l.processes.is_enforced() && l.cpus.is_enforced(),
        "{e:?}"
    );
    if root() {
        // This machine and CI: a hybrid hierarchy with writable v1 memory, pids and cpu.
        assert!(e.active, "{e:?}");
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        for (key, controller) in [
            ("limits.memory", "memory"),
            ("limits.processes", "pids"),
            ("limits.cpus", "cpu"),
        ] {
            let v1 = own.lines().any(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|c| c.split(',').any(|c| c == controller))
            });
            let want = format!("{key} enforced (cgroup {}", if v1 { "v1" } else { "v2" });
            assert!(e.detail.contains(&want), "{want}: {e:?}");
        }
    }
    // The same probe as an unprivileged user: it cannot create a cgroup below root's, so
    // every limit is reported off, with the reason.
    if root() {
        use std::os::unix::process::CommandExt;
        let out = std::process::Command::new(SUP)
            .arg("cgroup-limits")
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        for key in ["memory", "processes", "cpus"] {
            assert!(
                text.lines().any(|l| l.starts_with(&format!("{key} off "))),
                "{key}: {text}"
            );
        }
        assert!(text.contains("Permission denied"), "{text}");
    }
}

/// A lost attempt (its supervisor SIGKILLed) under the fallback, where nothing but the
/// supervisor ties the job together: a descendant that left the process group with `setsid`
/// survives it, and `kill_lost` finds and kills it through the job's cgroups, then removes them.
#[test]
fn kill_lost_kills_through_the_cgroups_what_left_the_group() {
    if !root() && !cgroup_limits().processes.is_enforced() {
        eprintln!("no pids cgroup here; doctor says so");
        return;
    }
    let (_t, dir) = attempt_dir();
    let m = marker();
    let mut s = sh(&format!(
        "/usr/bin/setsid /bin/sleep {m} & echo started > started; /bin/sleep {m}"
    ));
    default_limits(&mut s);
    prepare_attempt(&dir, &s).unwrap();
    let mut sup = supervise_cmd(&dir)
        .args(["--bwrap", "/nonexistent/mlres-test/bwrap"])
        .spawn()
        .unwrap();
    assert!(wait_for_file(&dir.join("work/started")));
    let start = Instant::now();
    while marked_alive(&m).len() < 2 && start.elapsed() < LONG {
        std::thread::sleep(Duration::from_millis(20));
    }
    sup.kill().unwrap();
    sup.wait().unwrap();
    assert_eq!(poll(&dir).unwrap(), AttemptState::Lost);
    // The job's main process dies with its supervisor; the setsid one does not.
    std::thread::sleep(Duration::from_millis(200));
    assert!(!marked_alive(&m).is_empty(), "nothing survived to find");
    assert!(mlres_backends::kill_lost(&dir).unwrap() >= 1);
    assert!(marked_gone(&m), "survivors: {:?}", marked_alive(&m));
    for p in read(&dir.join("cgroups")).lines() {
        assert!(!std::path::Path::new(p).exists(), "{p} left behind");
    }
}
