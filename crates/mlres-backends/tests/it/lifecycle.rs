//! Lifecycle: timeout and cleanup, cancel, claim protocol, detached launch, poll states.

use std::fs::File;

use mlres_backends::{Outcome, cancel, claim_void, doctor, launch, log_paths, wait};

use crate::*;

/// Starts a background grandchild in the job's group and one that escapes into its own
/// session, records their (namespace) pids in work/, then sleeps. Every process of the tree
/// carries the marker `M` in its command line.
fn spawn_tree(m: &str) -> String {
    format!(
        r#"
sleep {m} & echo $! > child.pid
setsid sh -c 'read -r a b c d e sid rest < /proc/$$/stat; echo $sid > esc.sid.tmp; mv esc.sid.tmp esc.sid; echo $$ > esc.pid; exec sleep {m}' &
while [ ! -s esc.pid ]; do sleep 0.05; done
echo $$ > main.pid
sleep {m}
"#
    )
}

fn assert_tree_dead(work: &Path, m: &str) {
    let main = read_pid(&work.join("main.pid"));
    let esc = read_pid(&work.join("esc.pid"));
    // The escapee really left the job's session.
    assert_eq!(read_pid(&work.join("esc.sid")), esc);
    assert_ne!(esc, main);
    assert!(marked_gone(m), "survivors: {:?}", marked_alive(m));
}

#[test]
fn timeout_kills_job_and_all_descendants() {
    let (_t, dir) = attempt_dir();
    let m = marker();
    let mut s = sh(&spawn_tree(&m));
    s.timeout_secs = 5;
    let st = run(&dir, &s);
    assert_eq!(st.outcome, Outcome::TimedOut, "{}", st.detail);
    assert!(st.detail.contains("timeout"), "{}", st.detail);
    assert_eq!(st.signal, Some(libc::SIGTERM));
    assert_tree_dead(&dir.join("work"), &m);
}

#[test]
fn job_ignoring_sigterm_is_killed_after_grace() {
    let (_t, dir) = attempt_dir();
    let m = marker();
    let mut s = sh(&format!(
        "trap '' TERM; echo $$ > main.pid; while :; do sleep 1; done # {m}"
    ));
    s.timeout_secs = 1;
    s.kill_grace_secs = 1;
    let st = run(&dir, &s);
    assert_eq!(st.outcome, Outcome::TimedOut, "{}", st.detail);
    assert_eq!(st.signal, Some(libc::SIGKILL));
    assert!(dir.join("work/main.pid").exists());
    assert!(marked_gone(&m), "survivors: {:?}", marked_alive(&m));
    // The job's PID 1 was killed with it, so no count: the note says what happened.
    assert!(
        st.notes
            .iter()
            .any(|n| n.contains("PID namespace was killed")),
        "{:?}",
        st.notes
    );
}

#[test]
fn leftover_background_processes_are_killed_after_normal_exit() {
    let (_t, dir) = attempt_dir();
    let m = marker();
    let st = run(
        &dir,
        &sh(&format!("sleep {m} & echo $! > child.pid; echo done")),
    );
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    assert_eq!(st.exit_code, Some(0));
    // A sandbox note, not the reason: the job itself succeeded.
    assert!(
        st.notes.iter().any(|n| n.contains("1 other process(es)")),
        "{:?}",
        st.notes
    );
    assert!(!st.detail.contains("other process"), "{}", st.detail);
    assert!(dir.join("work/child.pid").exists());
    assert!(marked_gone(&m), "survivors: {:?}", marked_alive(&m));
    assert_eq!(read(&log_paths(&dir).stdout), "done\n");
}

#[test]
fn exit_code_and_failure_are_recorded() {
    let (_t, dir) = attempt_dir();
    let st = run(&dir, &sh("echo oops >&2; exit 7"));
    assert_eq!(st.outcome, Outcome::Failed);
    assert_eq!(st.exit_code, Some(7));
    assert_eq!(st.signal, None);
    assert!(st.detail.contains("code 7"), "{}", st.detail);
    assert!(st.ended_at_ms >= st.started_at_ms);
    assert!(st.cpu_ms.is_some() && st.max_rss_kb.is_some());
    assert_eq!(read(&log_paths(&dir).stderr), "oops\n");
}

#[test]
fn cancel_of_running_job_kills_group() {
    let (_t, dir) = attempt_dir();
    let m = marker();
    prepare_attempt(&dir, &sh(&spawn_tree(&m))).unwrap();
    launch(&dir, &supervise_cmd(&dir)).unwrap();
    assert!(
        wait_for_file(&dir.join("work/main.pid")),
        "job did not start"
    );
    assert!(wait_for_file(&dir.join("job.pid")));
    let AttemptState::Running { pid: Some(pid) } = poll(&dir).unwrap() else {
        panic!("expected Running with pid")
    };
    // The recorded pid is the host pid of the job's process group (its sandbox's outermost
    // process); the job's own processes are in that group.
    assert_eq!(pid as i32, read_pid(&dir.join("job.pid")));
    assert!(pid_alive(pid as i32));
    assert!(marked_alive(&m).len() >= 3, "{:?}", marked_alive(&m));
    cancel(&dir).unwrap();
    cancel(&dir).unwrap(); // idempotent
    let AttemptState::Finished(st) = wait(&dir, LONG).unwrap() else {
        panic!("not finished")
    };
    assert_eq!(st.outcome, Outcome::Cancelled, "{}", st.detail);
    assert_tree_dead(&dir.join("work"), &m);
    cancel(&dir).unwrap(); // fine after finishing
    assert_eq!(poll(&dir).unwrap(), AttemptState::Finished(st));
}

#[test]
fn cancel_before_start_never_runs_the_job() {
    let (_t, dir) = attempt_dir();
    prepare_attempt(&dir, &sh("touch ran")).unwrap();
    cancel(&dir).unwrap();
    assert_eq!(supervise_sync(&dir), 0);
    let AttemptState::Finished(st) = poll(&dir).unwrap() else {
        panic!()
    };
    assert_eq!(st.outcome, Outcome::Cancelled);
    assert!(!dir.join("work/ran").exists());
}

#[test]
fn claim_void_prevents_a_late_supervisor() {
    let (_t, dir) = attempt_dir();
    prepare_attempt(&dir, &sh("touch ran")).unwrap();
    assert!(claim_void(&dir).unwrap());
    assert_eq!(poll(&dir).unwrap(), AttemptState::Voided);
    assert!(!claim_void(&dir).unwrap(), "second void loses");
    assert_eq!(supervise_sync(&dir), 3, "already claimed");
    assert!(!dir.join("work/ran").exists());
    assert!(!dir.join("status.json").exists());
    assert_eq!(poll(&dir).unwrap(), AttemptState::Voided);
    assert_eq!(wait(&dir, LONG).unwrap(), AttemptState::Voided);
}

#[test]
fn claim_void_after_supervisor_claimed_returns_false() {
    let (_t, dir) = attempt_dir();
    let st = run(&dir, &sh("touch ran"));
    assert_eq!(st.outcome, Outcome::Completed);
    assert!(!claim_void(&dir).unwrap());
    assert!(dir.join("work/ran").exists());
    assert!(read(&dir.join("claim")).starts_with("started "));
    // A second supervisor does not run the job again.
    std::fs::remove_file(dir.join("work/ran")).unwrap();
    assert_eq!(supervise_sync(&dir), 3);
    assert!(!dir.join("work/ran").exists());
}

#[test]
fn launch_detaches_into_a_new_session() {
    let (_t, dir) = attempt_dir();
    // The job marks that it printed: inside the sandbox it starts some time after `job.pid`
    // appears, and a cancel before its `echo` would leave nothing to capture.
    prepare_attempt(&dir, &sh("echo hello; echo 1 > printed; sleep 1000")).unwrap();
    launch(&dir, &supervise_cmd(&dir)).unwrap();
    assert!(wait_for_file(&dir.join("job.pid")));
    assert!(
        wait_for_file(&dir.join("work/printed")),
        "the job never ran"
    );
    let sup = read_pid(&dir.join("supervisor.pid"));
    let me = std::process::id() as i32;
    let sid = session_of(sup).expect("supervisor alive");
    assert_eq!(sid, sup, "supervisor leads its own session");
    assert_ne!(Some(sid), session_of(me));
    // Not our child: the intermediate process was reaped and the supervisor reparented.
    let stat = read(Path::new(&format!("/proc/{sup}/stat")));
    let ppid: i32 = stat[stat.rfind(')').unwrap() + 1..]
        .split_ascii_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(ppid, me);
    cancel(&dir).unwrap();
    let AttemptState::Finished(st) = wait(&dir, LONG).unwrap() else {
        panic!()
    };
    assert_eq!(st.outcome, Outcome::Cancelled);
    assert_eq!(read(&log_paths(&dir).stdout), "hello\n");
}

#[test]
fn supervisor_survives_its_launcher_being_killed() {
    let (_t, dir) = attempt_dir();
    prepare_attempt(&dir, &sh("sleep 1; echo finished")).unwrap();
    let status = Command::new(SUP)
        .arg("launch-and-die")
        .arg(&dir)
        .status()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "launcher died");
    let AttemptState::Finished(st) = wait(&dir, LONG).unwrap() else {
        panic!()
    };
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    assert_eq!(read(&log_paths(&dir).stdout), "finished\n");
}

#[test]
fn poll_reports_lost_running_and_not_claimed() {
    let (_t, dir) = attempt_dir();
    prepare_attempt(&dir, &sh("true")).unwrap();
    assert_eq!(poll(&dir).unwrap(), AttemptState::NotClaimed);
    std::fs::write(dir.join("claim"), "started 999999\n").unwrap();
    assert_eq!(poll(&dir).unwrap(), AttemptState::Lost);
    assert_eq!(wait(&dir, LONG).unwrap(), AttemptState::Lost);
    // While someone holds the lock, the attempt is running.
    let lock = File::options()
        .read(true)
        .write(true)
        .open(dir.join("lock"))
        .unwrap();
    lock.lock().unwrap();
    assert_eq!(poll(&dir).unwrap(), AttemptState::Running { pid: None });
    std::fs::write(dir.join("job.pid"), "4242\n").unwrap();
    assert_eq!(
        poll(&dir).unwrap(),
        AttemptState::Running { pid: Some(4242) }
    );
    // wait() returns the last state at its timeout.
    assert_eq!(
        wait(&dir, Duration::from_millis(30)).unwrap(),
        AttemptState::Running { pid: Some(4242) }
    );
    drop(lock);
    assert_eq!(poll(&dir).unwrap(), AttemptState::Lost);
}

#[test]
fn killed_supervisor_is_lost_and_job_dies_with_it() {
    let (_t, dir) = attempt_dir();
    let m = marker();
    prepare_attempt(
        &dir,
        &sh(&format!(
            "sleep {m} & echo $! > child.pid; echo $$ > main.pid; sleep {m}"
        )),
    )
    .unwrap();
    let mut sup = supervise_cmd(&dir).spawn().unwrap();
    assert!(wait_for_file(&dir.join("work/main.pid")));
    assert!(wait_for_file(&dir.join("job.pid")));
    assert!(marked_alive(&m).len() >= 2, "{:?}", marked_alive(&m));
    sup.kill().unwrap();
    sup.wait().unwrap();
    assert_eq!(poll(&dir).unwrap(), AttemptState::Lost);
    // PDEATHSIG kills the sandbox's outermost process, and with it (--die-with-parent) PID 1
    // of the job's namespace, which takes every process of the job along: the background
    // child too, which used to survive until kill_lost.
    assert!(marked_gone(&m), "survivors: {:?}", marked_alive(&m));
    let start = Instant::now();
    while mlres_backends::kill_lost(&dir).unwrap() != 0 && start.elapsed() < LONG {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(mlres_backends::kill_lost(&dir).unwrap(), 0);
}

#[test]
fn kill_lost_ignores_attempts_that_are_not_lost() {
    let (_t, dir) = attempt_dir();
    prepare_attempt(&dir, &sh("true")).unwrap();
    assert_eq!(mlres_backends::kill_lost(&dir).unwrap(), 0);
    let (_t2, dir) = attempt_dir();
    let st = run(&dir, &sh("true"));
    assert_eq!(st.outcome, Outcome::Completed);
    assert_eq!(mlres_backends::kill_lost(&dir).unwrap(), 0);
}

#[test]
fn status_json_round_trips() {
    let (_t, dir) = attempt_dir();
    let st = run(&dir, &sh("exit 0"));
    let text = read(&dir.join("status.json"));
    assert!(text.contains("\"outcome\": \"completed\""), "{text}");
    assert_eq!(mlres_backends::read_status(&dir).unwrap(), Some(st));
}

#[test]
fn doctor_reports_the_protections() {
    let report = doctor(None);
    let names: Vec<&str> = report.iter().map(|p| p.name.as_str()).collect();
    for n in [
        "bubblewrap",
        "network_namespace",
        "landlock",
        "seccomp",
        "supervisor_env",
        "rlimits",
        "process_groups",
        "rlimit_nproc",
        "child_subreaper",
        "parent_death_signal",
        "cgroup_limits",
    ] {
        assert!(names.contains(&n), "missing {n}: {names:?}");
    }
    let get = |n: &str| report.iter().find(|p| p.name == n).unwrap();
    assert!(get("rlimits").active);
    assert!(get("process_groups").active);
    assert!(get("child_subreaper").active);
    // The protections the sandbox is built on are probed for real; bubblewrap is installed
    // here and by .ci/run, and the launcher never passes its environment on.
    assert!(get("bubblewrap").active, "{:?}", get("bubblewrap"));
    assert!(get("seccomp").active, "{:?}", get("seccomp"));
    assert!(get("supervisor_env").active, "{:?}", get("supervisor_env"));
    let landlock = get("landlock");
    assert_eq!(
        landlock.active,
        landlock.detail.starts_with("Landlock ABI"),
        "{landlock:?}"
    );
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        assert!(!get("rlimit_nproc").active);
        assert!(get("rlimit_nproc").detail.contains("root"));
        // Root can always create namespaces here and in CI.
        assert!(
            get("network_namespace").active,
            "{:?}",
            get("network_namespace")
        );
    }
    // Probes ran in children: this process is still in its original network namespace and
    // is not a subreaper.
    let mut v: libc::c_int = 0;
    // SAFETY: `v` is a valid out-pointer for PR_GET_CHILD_SUBREAPER.
    unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut v as *mut libc::c_int) };
    assert_eq!(v, 0);
}
