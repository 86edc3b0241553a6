//! Sandbox properties: clean environment, network isolation, memory limit, capped logs.

use std::net::TcpListener;

use mlres_backends::{NetworkPolicy, Outcome, log_paths};

use crate::*;

#[test]
fn parent_secret_is_not_visible_but_spec_env_is() {
    let (_t, dir) = attempt_dir();
    let canary = format!(
        "mlresCANARY-parent-{}-{:?}",
        std::process::id(),
        Instant::now()
    );
    let mut s = spec(&["/usr/bin/env"]);
    s.env.insert("MLRES_VISIBLE".into(), "visible-value".into());
    prepare_attempt(&dir, &s).unwrap();
    let code = supervise_cmd(&dir)
        .env("MLRES_CANARY_SECRET", &canary)
        .status()
        .unwrap()
        .code();
    assert_eq!(code, Some(0));
    let AttemptState::Finished(st) = poll(&dir).unwrap() else {
        panic!("not finished")
    };
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    let out = read(&log_paths(&dir).stdout);
    assert!(out.contains("MLRES_VISIBLE=visible-value"), "{out}");
    assert!(!out.contains(&canary), "parent secret leaked: {out}");
    assert!(!out.contains("MLRES_CANARY_SECRET"), "{out}");
    let work = std::path::absolute(dir.join("work")).unwrap();
    assert!(out.contains(&format!("HOME={}", work.display())), "{out}");
    assert!(
        out.contains(&format!("TMPDIR={}", work.join("tmp").display())),
        "{out}"
    );
    // Exactly PATH, MLRES_VISIBLE, HOME, TMPDIR, PWD.
    assert_eq!(out.lines().count(), 5, "{out}");
}

#[test]
fn spec_home_is_kept_and_cwd_is_work() {
    let (_t, dir) = attempt_dir();
    let mut s = sh("echo \"$HOME\"; pwd; touch made-here");
    s.env.insert("HOME".into(), "/custom/home".into());
    let st = run(&dir, &s);
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    let out = read(&log_paths(&dir).stdout);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("/custom/home"));
    assert!(lines.next().unwrap().ends_with("/work"), "{out}");
    assert!(dir.join("work/made-here").exists());
}

fn connect_job(port: u16, policy: NetworkPolicy) -> (Outcome, String, bool) {
    let (_t, dir) = attempt_dir();
    let mut s = spec(&[
        "bash",
        "-c",
        &format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected"),
    ]);
    s.network = policy;
    let st = run(&dir, &s);
    (
        st.outcome,
        read(&log_paths(&dir).stdout),
        st.network_isolated,
    )
}

#[test]
fn isolated_job_cannot_reach_host_loopback_but_host_job_can() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();

    let (outcome, out, isolated) = connect_job(port, NetworkPolicy::Host);
    assert_eq!(outcome, Outcome::Completed);
    assert!(out.contains("connected"));
    assert!(!isolated);

    let netns = mlres_backends::doctor(None)
        .into_iter()
        .any(|p| p.name == "network_namespace" && p.active);
    let (outcome, out, isolated) = connect_job(port, NetworkPolicy::Isolated);
    assert!(!out.contains("connected"), "{out}");
    assert_eq!(isolated, netns);
    // Fail closed when the kernel refuses a namespace.
    assert_eq!(
        outcome,
        if netns {
            Outcome::Failed
        } else {
            Outcome::StartFailed
        }
    );

    let (outcome, out, isolated) = connect_job(port, NetworkPolicy::BestEffort);
    // Root here and in CI: best effort does isolate.
    assert_eq!(isolated, netns);
    if netns {
        assert_eq!(outcome, Outcome::Failed);
        assert!(!out.contains("connected"), "{out}");
    } else {
        assert_eq!(outcome, Outcome::Completed);
    }
}

#[test]
fn isolated_job_sees_only_a_down_loopback() {
    let (_t, dir) = attempt_dir();
    let mut s = sh("cat /proc/net/dev");
    s.network = NetworkPolicy::Isolated;
    let st = run(&dir, &s);
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    let out = read(&log_paths(&dir).stdout);
    let ifaces: Vec<&str> = out
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(ifaces, vec!["lo"], "{out}");
}

/// Memory a job really uses past its limit ends it (the kernel's OOM killer, in the job's
/// memory cgroup); see `limits.rs` for the reason recorded and for machines without one.
#[test]
fn python_over_memory_limit_is_memory_exceeded() {
    let (_t, dir) = attempt_dir();
    let py = python3();
    let mut s = spec(&[
        &py,
        "-c",
        "b = bytearray(1 << 30); print('allocated', len(b))",
    ]);
    s.limits.memory_bytes = Some(256 << 20);
    let st = run(&dir, &s);
    if !mlres_backends::cgroup_limits().memory.is_enforced() {
        // SAFETY: geteuid cannot fail.
        assert_ne!(
            unsafe { libc::geteuid() },
            0,
            "root must get a memory cgroup"
        );
        return;
    }
    assert_eq!(st.outcome, Outcome::MemoryExceeded, "{}", st.detail);
    assert!(st.detail.contains("memory limit 256 MiB"), "{}", st.detail);
    assert!(dir.join("status.json").is_file());
    assert!(!read(&log_paths(&dir).stdout).contains("allocated"));
}

#[test]
fn python_under_memory_limit_completes() {
    let (_t, dir) = attempt_dir();
    let py = python3();
    let mut s = spec(&[
        &py,
        "-c",
        "b = bytearray(16 << 20); print('allocated', len(b))",
    ]);
    s.limits.memory_bytes = Some(256 << 20);
    let st = run(&dir, &s);
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    assert!(st.max_rss_kb.unwrap() >= 16 * 1024, "{st:?}");
}

#[test]
fn shell_over_memory_limit_is_memory_exceeded() {
    let (_t, dir) = attempt_dir();
    let mut s = sh("x=$(head -c 600000000 /dev/zero | tr '\\0' a); echo survived");
    s.limits.memory_bytes = Some(256 << 20);
    let st = run(&dir, &s);
    if !mlres_backends::cgroup_limits().memory.is_enforced() {
        // SAFETY: geteuid cannot fail.
        assert_ne!(
            unsafe { libc::geteuid() },
            0,
            "root must get a memory cgroup"
        );
        return;
    }
    assert_eq!(st.outcome, Outcome::MemoryExceeded, "{st:?}");
    assert!(!read(&log_paths(&dir).stdout).contains("survived"));
}

#[test]
fn logs_are_capped_and_tail_is_kept() {
    let (_t, dir) = attempt_dir();
    let cap = 64 * 1024;
    let mut s = sh("yes 0123456789abcdef | head -n 300000; echo END-MARKER; echo small >&2");
    s.log_cap_bytes = cap;
    let st = run(&dir, &s);
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    let logs = log_paths(&dir);
    let head = std::fs::read(&logs.stdout).unwrap();
    assert_eq!(head.len() as u64, cap);
    assert!(head.starts_with(b"0123456789abcdef\n0123456789abcdef\n"));
    assert!(st.stdout_truncated);
    let tail = std::fs::read(&logs.stdout_tail).unwrap();
    assert_eq!(tail.len(), mlres_backends::TAIL_BYTES);
    assert!(tail.ends_with(b"0123456789abcdef\nEND-MARKER\n"));
    assert!(!st.stderr_truncated);
    assert_eq!(read(&logs.stderr), "small\n");
    assert_eq!(read(&logs.stderr_tail), "small\n");
}

#[test]
fn rlimits_are_applied() {
    let (_t, dir) = attempt_dir();
    let mut s = sh("ulimit -n; ulimit -f; ulimit -c; ulimit -t");
    s.limits.open_files = Some(64);
    s.limits.file_size_bytes = Some(1 << 20);
    s.limits.cpu_secs = Some(30);
    let st = run(&dir, &s);
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    // dash reports -f in 512-byte blocks.
    assert_eq!(read(&log_paths(&dir).stdout), "64\n2048\n0\n30\n");
}

#[test]
fn file_size_limit_stops_a_writer() {
    let (_t, dir) = attempt_dir();
    let mut s = sh("head -c 5000000 /dev/zero > big; echo rc=$?");
    s.limits.file_size_bytes = Some(1 << 20);
    let st = run(&dir, &s);
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    let size = std::fs::metadata(dir.join("work/big")).unwrap().len();
    assert_eq!(size, 1 << 20);
    assert!(!read(&log_paths(&dir).stdout).contains("rc=0"));
}

/// Change ownership of `path` and everything below it.
fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

#[test]
fn non_root_supervisor_isolates_via_user_namespace_or_fails_closed() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    const NOBODY: u32 = 65534;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (t, dir) = attempt_dir();
    let mut s = spec(&[
        "bash",
        "-c",
        &format!(
            "echo uid=$UID; \
             if exec 3<>/dev/tcp/127.0.0.1/{port}; then echo connected; else echo noconnect; fi; \
             exec /bin/sh -c '/bin/true && echo forked || echo nofork'"
        ),
    ]);
    s.network = NetworkPolicy::Isolated;
    s.limits.processes = Some(1);
    prepare_attempt(&dir, &s).unwrap();
    let mut cmd = supervise_cmd(&dir);
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        chown_tree(&dir, NOBODY, NOBODY);
        cmd.uid(NOBODY).gid(NOBODY);
    }
    assert_eq!(cmd.status().unwrap().code(), Some(0));
    let AttemptState::Finished(st) = poll(&dir).unwrap() else {
        panic!("not finished")
    };
    let out = read(&log_paths(&dir).stdout);
    assert!(!out.contains("connected"), "{out}");
    if st.outcome == Outcome::StartFailed {
        // The kernel refused user namespaces: fail closed with a clear reason.
        assert!(!st.network_isolated);
        assert!(st.detail.contains("network isolation"), "{}", st.detail);
    } else {
        assert!(st.network_isolated, "{}", st.detail);
        assert!(out.contains("noconnect"), "{out}");
        if root {
            assert!(
                st.notes
                    .iter()
                    .any(|n| n.contains("bubblewrap: user, mount, PID")),
                "{:?}",
                st.notes
            );
            // The job keeps its own uid inside the namespace...
            assert!(out.starts_with(&format!("uid={NOBODY}\n")), "{out}");
            // ...and RLIMIT_NPROC is enforced for a non-root user.
            assert!(!out.contains("forked"), "{out}");
            assert_eq!(st.outcome, Outcome::Failed, "{}", st.detail);
            let err = read(&log_paths(&dir).stderr);
            assert!(err.to_lowercase().contains("fork"), "{err}");
        }
    }
}

#[test]
fn leaked_descriptors_do_not_reach_the_job() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let (t, dir) = attempt_dir();
    prepare_attempt(&dir, &sh("ls /proc/$$/fd")).unwrap();
    let secret = std::fs::File::create(t.path().join("secret")).unwrap();
    let raw = secret.as_raw_fd();
    let mut cmd = supervise_cmd(&dir);
    // SAFETY: dup2 is async-signal-safe; it gives the supervisor an fd 37 without CLOEXEC,
    // like a careless launcher would.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 37) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    assert_eq!(cmd.status().unwrap().code(), Some(0));
    let AttemptState::Finished(st) = poll(&dir).unwrap() else {
        panic!()
    };
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    let fds: Vec<String> = read(&log_paths(&dir).stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(fds.contains(&"1".to_string()), "{fds:?}");
    assert!(!fds.contains(&"37".to_string()), "{fds:?}");
}

#[test]
fn a_job_sees_its_work_dir_granted_paths_and_nothing_else() {
    let (t, dir) = attempt_dir();
    // A "project" granted read-only, with a "state" inside it that must stay masked, and a
    // sibling of the attempt the job must not see at all.
    let project = t.path().join("project");
    let state = project.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(project.join("code.txt"), "the job's code").unwrap();
    std::fs::write(state.join("ledger.key"), "secret").unwrap();
    std::fs::write(t.path().join("sibling"), "secret").unwrap();
    let script = format!(
        "cat {p}/code.txt; echo; \
         cat {s}/ledger.key && echo GOT-STATE; \
         cat {sib} && echo GOT-SIBLING; \
         echo x > {p}/new && echo GOT-WRITE; \
         echo mine > here && cat here; \
         ls /proc | grep -c '^[0-9]'",
        p = project.display(),
        s = state.display(),
        sib = t.path().join("sibling").display(),
    );
    let mut s = sh(&script);
    s.read_only = vec![project.clone()];
    s.masked = vec![state.clone()];
    let st = run(&dir, &s);
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    let out = read(&log_paths(&dir).stdout);
    assert!(out.starts_with("the job's code\n"), "{out}");
    assert!(!out.contains("GOT"), "{out}");
    assert!(out.contains("mine\n"), "{out}");
    assert!(!project.join("new").exists());
    // PID 1 (the sandbox's init), sh, and the pipeline: nothing of the host.
    let procs: u32 = out.lines().last().unwrap().trim().parse().unwrap();
    assert!(procs <= 4, "{out}");
    assert!(
        st.notes
            .iter()
            .any(|n| n.starts_with("sandbox: bubblewrap")),
        "{:?}",
        st.notes
    );
}

#[test]
fn host_unix_sockets_are_unreachable_without_network_but_socketpair_works() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener};
    let name = format!("mlres-backends-test-{}", std::process::id());
    let l = UnixListener::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
    l.set_nonblocking(true).unwrap();
    let py = python3();
    let code = format!(
        "import socket\n\
         a, b = socket.socketpair(); a.send(b'x'); print('pair', b.recv(1).decode())\n\
         try:\n    s = socket.socket(socket.AF_UNIX)\n    s.connect('\\0{name}'); print('GOT')\n\
         except OSError as e:\n    print('DENIED', e.errno)\n"
    );
    // With host network, Landlock's abstract-socket scoping (ABI >= 6) still denies the
    // connect; without it, the socket is simply not in the job's network namespace.
    let scoped = mlres_backends::doctor(None)
        .iter()
        .any(|p| p.name == "landlock" && p.detail.contains("abstract Unix sockets scoped"));
    for (policy, expect) in [
        (NetworkPolicy::Isolated, "DENIED"),
        (NetworkPolicy::Host, if scoped { "DENIED" } else { "GOT" }),
    ] {
        let (_t, dir) = attempt_dir();
        let mut s = spec(&[&py, "-c", &code]);
        s.network = policy;
        let st = run(&dir, &s);
        assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
        let out = read(&log_paths(&dir).stdout);
        assert!(out.contains("pair x"), "{out}");
        assert!(out.contains(expect), "{policy:?}: {out}");
    }
    if scoped {
        assert_eq!(
            l.accept().map(|_| ()).unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock
        );
    }
}
