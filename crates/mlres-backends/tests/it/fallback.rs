//! The fallback sandbox, forced by pointing the supervisor at a bubblewrap that does not exist
//! (`--bwrap`, what `mlres __supervise` gets from `MLRES_BWRAP`): `__jail` runs directly under
//! the supervisor with Landlock, seccomp and, without network, a network namespace from
//! `unshare`. Adversarial probes check that the walls the brief promises hold without
//! bubblewrap; ordinary jobs check that it still runs what it should.

use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::process::Stdio;

use mlres_backends::{NetworkPolicy, Outcome, doctor, log_paths};

use crate::*;

/// A bubblewrap path that does not exist: forces the fallback.
const NO_BWRAP: &str = "/nonexistent/mlres-test/bwrap";

fn fallback_cmd(dir: &Path) -> Command {
    let mut c = supervise_cmd(dir);
    c.args(["--bwrap", NO_BWRAP]);
    c
}

fn finished(dir: &Path) -> Status {
    match poll(dir).expect("poll") {
        AttemptState::Finished(s) => s,
        other => panic!("expected Finished, got {other:?}"),
    }
}

/// Prepare and run under the forced fallback; returns the recorded status.
fn run_fallback(dir: &Path, spec: &LocalJobSpec) -> Status {
    prepare_attempt(dir, spec).expect("prepare");
    assert_eq!(fallback_cmd(dir).status().unwrap().code(), Some(0));
    finished(dir)
}

/// The kernel's Landlock ABI as `doctor` reports it (0: none).
fn landlock_abi() -> i32 {
    doctor(None)
        .into_iter()
        .find(|p| p.name == "landlock" && p.active)
        .and_then(|p| {
            p.detail
                .strip_prefix("Landlock ABI ")?
                .split(':')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// A system python3: the job can read system directories, not a user's pyenv or venv tree
/// (only the interpreter file itself is granted).
fn system_python() -> String {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3".into()
    } else {
        python3()
    }
}

fn sandbox_note(st: &Status) -> String {
    st.notes
        .iter()
        .find(|n| n.starts_with("sandbox:"))
        .cloned()
        .unwrap_or_else(|| panic!("no sandbox note: {:?}", st.notes))
}

/// Without Landlock the fallback cannot run anything: the job must fail closed, naming the
/// package that gives the full sandbox. Returns true when that is what happened (the test has
/// then checked all it can on this kernel).
fn no_landlock_fails_closed(st: &Status) -> bool {
    if landlock_abi() >= 1 {
        return false;
    }
    assert_eq!(st.outcome, Outcome::StartFailed, "{}", st.detail);
    assert!(
        st.detail.contains("sudo apt-get install bubblewrap"),
        "{}",
        st.detail
    );
    true
}

#[test]
fn without_bubblewrap_ordinary_jobs_run_and_say_which_sandbox_they_had() {
    let (_t, dir) = attempt_dir();
    let st = run_fallback(&dir, &sh("echo hello"));
    if no_landlock_fails_closed(&st) {
        return;
    }
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    assert_eq!(read(&log_paths(&dir).stdout), "hello\n");
    let note = sandbox_note(&st);
    let abi = landlock_abi();
    assert!(
        note.starts_with(&format!(
            "sandbox: Landlock ABI {abi} + seccomp (no AF_UNIX sockets)"
        )),
        "{note}"
    );
    assert!(
        note.contains(&format!(
            "(fallback: bubblewrap not found at the configured path {NO_BWRAP}; no mount or PID namespace: the job can list other processes but not read their environment"
        )),
        "{note}"
    );
    assert!(!note.contains("bubblewrap:"), "{note}");
    assert!(!st.network_isolated);

    // A python job without network writes its output in its work dir.
    let (_t, dir) = attempt_dir();
    let mut s = spec(&[
        &system_python(),
        "-c",
        "open('out.txt', 'w').write('written'); print('ok')",
    ]);
    s.network = NetworkPolicy::Isolated;
    let st = run_fallback(&dir, &s);
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    assert_eq!(read(&log_paths(&dir).stdout), "ok\n");
    assert_eq!(read(&dir.join("work/out.txt")), "written");
    assert!(st.network_isolated, "{:?}", st.notes);
    let note = sandbox_note(&st);
    assert!(note.contains("seccomp (no AF_UNIX sockets)"), "{note}");
    assert!(note.contains("own network namespace"), "{note}");

    // With network, host socket paths are still out of reach: nothing hides them without a
    // mount namespace, so the fallback denies AF_UNIX sockets to every job.
    let (_t, dir) = attempt_dir();
    let sock = dir.with_file_name("host.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    let code = format!(
        "import socket\n\
         a, b = socket.socketpair(); a.send(b'x'); print('pair', b.recv(1).decode())\n\
         try:\n    s = socket.socket(socket.AF_UNIX)\n    s.connect({:?}); print('GOT')\n\
         except OSError as e:\n    print('DENIED', e.errno)\n",
        sock.to_str().unwrap()
    );
    let st = run_fallback(&dir, &spec(&[&system_python(), "-c", &code]));
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    assert_eq!(read(&log_paths(&dir).stdout), "pair x\nDENIED 13\n");
    assert!(sandbox_note(&st).contains("seccomp (no AF_UNIX sockets)"));
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        // No user namespace takes a root supervisor's capabilities away: __jail does.
        assert!(note.contains("all capabilities dropped"), "{note}");
    }
}

/// Tries, one by one, what a job must not be able to do; prints `TRY ...` before each attempt
/// and then `DENIED <errno>`, or `GOT`/`LEAK` when it worked.
const PROBE: &str = r#"
import json, os, socket, sys
cfg = json.loads(sys.argv[1])
MARKS = [("mlres" + "CANARY").encode(), ("hf_" + "canary").encode()]

def say(*a):
    print(*a, flush=True)

def read(p):
    say("TRY read", p)
    try:
        with open(p, "rb") as f:
            data = f.read()
    except OSError as e:
        say("DENIED", e.errno)
        return
    say("LEAK" if any(m in data for m in MARKS) else "GOT", p)

def listdir(p):
    say("TRY list", p)
    try:
        os.listdir(p)
    except OSError as e:
        say("DENIED", e.errno)
        return
    say("GOT listing of", p)

def write(p):
    say("TRY write", p)
    try:
        with open(p, "w") as f:
            f.write("pwned\n")
    except OSError as e:
        say("DENIED", e.errno)
        return
    say("GOT written", p)

def environ(pid):
    say("TRY environ", pid)
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            data = f.read()
    except OSError as e:
        say("DENIED", e.errno)
        return
    say("LEAK" if any(m in data for m in MARKS) else "GOT environ of", pid)

def unix(addr):
    say("TRY unix", repr(addr))
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect(addr)
    except OSError as e:
        say("DENIED", e.errno)
        return
    say("GOT connected", repr(addr))

def tcp(port):
    say("TRY tcp", port)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3)
    except OSError as e:
        say("DENIED", e.errno)
        return
    say("GOT connected to", port)

def signal(pid):
    say("TRY signal", pid)
    try:
        os.kill(pid, 0)
    except OSError as e:
        say("DENIED", e.errno)
        return
    say("GOT signal to", pid)

with open(cfg["code"]) as f:
    say("CODE", f.read())
read(cfg["state_key"])
read(cfg["nested_key"])
read(cfg["token"])
read(os.path.join(os.environ["HOME"], ".cache/huggingface/token"))
listdir(cfg["state"])
listdir(cfg["home"])
write(os.path.join(cfg["state"], "pwned"))
write(os.path.join(cfg["project"], "pwned"))
environ(os.getppid())
environ(cfg["bystander"])
unix(cfg["sock"])
unix("\0" + cfg["abstract"])
tcp(cfg["port"])
if cfg["scoped"]:
    signal(cfg["bystander"])
    signal(os.getppid())
pids = [int(d) for d in os.listdir("/proc") if d.isdigit()]
say("SEES_BYSTANDER", cfg["bystander"] in pids)
a, b = socket.socketpair()
a.send(b"x")
say("SOCKETPAIR", b.recv(1).decode())
"#;

#[test]
fn without_bubblewrap_an_adversarial_job_reaches_no_state_token_environment_or_socket() {
    let (t, dir) = attempt_dir();
    let root = t.path();
    // A state directory beside the attempt (the real layout: jobs/ lives in it).
    let state = root.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("ledger.key"), "mlresCANARY-fallback-ledger-key").unwrap();
    t.allow(&state);
    // A project the job may read, with a state directory inside it that must stay hidden.
    let project = root.join("project");
    let nested = project.join("state");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::write(project.join("code.txt"), "the job's code").unwrap();
    std::fs::write(nested.join("ledger.key"), "mlresCANARY-fallback-nested-key").unwrap();
    t.allow(&nested);
    // A fake HOME with a Hugging Face token where huggingface_hub keeps it.
    let home = root.join("home");
    let token = home.join(".cache/huggingface/token");
    std::fs::create_dir_all(token.parent().unwrap()).unwrap();
    std::fs::write(&token, "hf_canaryCANARYfallbacktoken00").unwrap();
    t.allow(&home);
    // A bystander process of the same user with a secret in its environment.
    let bystander_marker = marker();
    let mut bystander = Command::new("sleep")
        .arg(&bystander_marker)
        .env("MLRES_BYSTANDER_SECRET", "mlresCANARY-fallback-bystander")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Host sockets a job without network must not reach.
    let sock = root.join("host.sock");
    let unix_listener = UnixListener::bind(&sock).unwrap();
    unix_listener.set_nonblocking(true).unwrap();
    let abstract_name = format!("mlres-fallback-test-{}", std::process::id());
    let abstract_listener =
        UnixListener::bind_addr(&SocketAddr::from_abstract_name(&abstract_name).unwrap()).unwrap();
    abstract_listener.set_nonblocking(true).unwrap();
    let tcp_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    tcp_listener.set_nonblocking(true).unwrap();
    let abi = landlock_abi();
    let cfg = serde_json::json!({
        "code": project.join("code.txt"),
        "project": project,
        "state": state,
        "state_key": state.join("ledger.key"),
        "nested_key": nested.join("ledger.key"),
        "token": token,
        "home": home,
        "bystander": bystander.id(),
        "sock": sock,
        "abstract": abstract_name,
        "port": tcp_listener.local_addr().unwrap().port(),
        "scoped": abi >= 6,
    });
    let mut s = spec(&[&system_python(), "-c", PROBE, &cfg.to_string()]);
    s.network = NetworkPolicy::Isolated;
    s.read_only = vec![project.clone()];
    s.masked = vec![nested.clone()];
    s.env
        .insert("HOME".into(), home.to_string_lossy().into_owned());
    prepare_attempt(&dir, &s).unwrap();
    // The supervisor holds a secret too: the job is its child.
    let code = fallback_cmd(&dir)
        .env("MLRES_CANARY_SECRET", "mlresCANARY-fallback-supervisor")
        .status()
        .unwrap()
        .code();
    let _ = bystander.kill();
    let _ = bystander.wait();
    assert_eq!(code, Some(0));
    let st = finished(&dir);
    if no_landlock_fails_closed(&st) {
        return;
    }
    let out = read(&log_paths(&dir).stdout);
    assert_eq!(
        st.outcome,
        Outcome::Completed,
        "{}\n{out}\n{}",
        st.detail,
        read(&log_paths(&dir).stderr)
    );
    assert!(
        sandbox_note(&st).contains("fallback: bubblewrap not found"),
        "{:?}",
        st.notes
    );
    assert!(st.network_isolated);
    let lines: Vec<&str> = out.lines().collect();
    // The granted project is readable even though a state directory inside it is hidden.
    assert!(out.starts_with("CODE the job's code\n"), "{out}");
    // Every attempt happened, and each one was denied.
    let expected_tries = 13 + if abi >= 6 { 2 } else { 0 };
    let tries: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("TRY "))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(tries.len(), expected_tries, "{out}");
    for i in tries {
        assert!(
            lines.get(i + 1).is_some_and(|l| l.starts_with("DENIED ")),
            "not denied: {:?}\n{out}",
            lines[i]
        );
    }
    for what in [
        "TRY read",
        "TRY list",
        "TRY write",
        "TRY environ",
        "TRY unix",
        "TRY tcp",
    ] {
        assert!(out.contains(what), "{what}: {out}");
    }
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("GOT") || l.starts_with("LEAK")),
        "the fallback let something through:\n{out}"
    );
    // What the note admits is true: no PID namespace, so the job sees the bystander's pid.
    assert!(out.contains("SEES_BYSTANDER True"), "{out}");
    assert!(out.contains("SOCKETPAIR x"), "{out}");
    // Nobody connected to the host's sockets, and nothing was written outside the work dir.
    assert_eq!(
        unix_listener.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    assert_eq!(
        abstract_listener.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    assert_eq!(
        tcp_listener.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    assert!(!state.join("pwned").exists());
    assert!(!project.join("pwned").exists());
}

#[test]
fn without_bubblewrap_a_timeout_kills_the_whole_tree_and_leftovers_are_counted() {
    // The job's main process ends, leaving a child behind: it is killed and counted.
    let (_t, dir) = attempt_dir();
    let left = marker();
    let st = run_fallback(&dir, &sh(&format!("sleep {left} & echo started")));
    if no_landlock_fails_closed(&st) {
        return;
    }
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    assert!(marked_gone(&left), "left behind: {:?}", marked_alive(&left));
    assert!(
        st.notes
            .iter()
            .any(|n| n == "1 other process(es) of the job terminated"),
        "{:?}",
        st.notes
    );

    // A timeout: the group, and a child that left it (setsid), all die.
    let (_t, dir) = attempt_dir();
    let m = marker();
    let mut s = spec(&[
        &system_python(),
        "-c",
        &format!(
            "import os, subprocess, time\n\
             subprocess.Popen(['sleep', '{m}'])\n\
             subprocess.Popen(['sleep', '{m}'], start_new_session=True)\n\
             print('spawned', flush=True)\n\
             time.sleep(600)\n"
        ),
    ]);
    s.timeout_secs = 2;
    let st = run_fallback(&dir, &s);
    assert_eq!(st.outcome, Outcome::TimedOut, "{}", st.detail);
    assert!(read(&log_paths(&dir).stdout).contains("spawned"));
    assert!(
        marked_gone(&m),
        "survived the timeout: {:?}",
        marked_alive(&m)
    );
    assert!(
        st.notes
            .iter()
            .any(|n| n == "2 other process(es) of the job terminated"),
        "{:?}",
        st.notes
    );
}

#[test]
fn without_bubblewrap_a_non_root_job_gets_a_user_and_network_namespace_or_does_not_run() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    const NOBODY: u32 = 65534;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return; // needs root to become another user; the other tests cover non-root here
    }
    let (t, dir) = attempt_dir();
    let mut s = sh("cat /proc/net/dev; id -u");
    s.network = NetworkPolicy::Isolated;
    prepare_attempt(&dir, &s).unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    fn chown_tree(path: &Path, id: u32) {
        std::os::unix::fs::chown(path, Some(id), Some(id)).unwrap();
        if path.is_dir() {
            for e in std::fs::read_dir(path).unwrap() {
                chown_tree(&e.unwrap().path(), id);
            }
        }
    }
    chown_tree(&dir, NOBODY);
    let mut cmd = fallback_cmd(&dir);
    cmd.uid(NOBODY).gid(NOBODY);
    assert_eq!(cmd.status().unwrap().code(), Some(0));
    let st = finished(&dir);
    if no_landlock_fails_closed(&st) {
        return;
    }
    if st.outcome == Outcome::StartFailed {
        // User namespaces are off for this user: no network namespace, so no job.
        assert!(!st.network_isolated);
        assert!(st.detail.contains("netns"), "{}", st.detail);
        return;
    }
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    assert!(st.network_isolated);
    let out = read(&log_paths(&dir).stdout);
    let ifaces: Vec<&str> = out
        .lines()
        .skip(2)
        .filter(|l| l.contains(':'))
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(ifaces, vec!["lo"], "{out}");
    assert!(out.ends_with(&format!("{NOBODY}\n")), "{out}");
    let note = sandbox_note(&st);
    assert!(
        note.contains("own network namespace (in a user namespace)"),
        "{note}"
    );
    assert!(!note.contains("capabilities"), "{note}");
}

#[test]
fn doctor_reports_the_fallback_as_what_jobs_get_and_a_missing_bubblewrap_as_off() {
    let report = doctor(Some(Path::new(NO_BWRAP)));
    let get = |n: &str| {
        report
            .iter()
            .find(|p| p.name == n)
            .unwrap_or_else(|| panic!("no {n}: {report:?}"))
    };
    assert_eq!(report[0].name, "job_sandbox");
    let bwrap = get("bubblewrap");
    assert!(!bwrap.active, "{bwrap:?}");
    assert!(bwrap.detail.contains(NO_BWRAP), "{bwrap:?}");
    let sandbox = get("job_sandbox");
    let abi = landlock_abi();
    if abi >= 1 {
        assert!(sandbox.active, "{sandbox:?}");
        assert!(
            sandbox.detail.starts_with(&format!(
                "Landlock ABI {abi} + seccomp (fallback: bubblewrap not found at the configured path {NO_BWRAP}; no mount or PID namespace"
            )),
            "{sandbox:?}"
        );
        assert!(bwrap.detail.contains("fallback"), "{bwrap:?}");
    } else {
        assert!(!sandbox.active, "{sandbox:?}");
        assert!(
            sandbox.detail.contains("sudo apt-get install bubblewrap"),
            "{sandbox:?}"
        );
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let net = get("network_namespace");
        assert!(net.active, "{net:?}");
        assert!(net.detail.contains("unshare"), "{net:?}");
    }
    // With bubblewrap where it is looked for (installed here and by .ci/run), jobs get it.
    let normal = doctor(None);
    assert!(
        normal[0].detail.starts_with("full sandbox: bubblewrap"),
        "{:?}",
        normal[0]
    );
}

#[test]
fn a_bubblewrap_that_cannot_create_namespaces_means_the_fallback_not_a_failed_job() {
    use std::os::unix::fs::PermissionsExt;
    let (t, dir) = attempt_dir();
    // What bubblewrap says where user namespaces are switched off.
    let fake = t.path().join("bwrap");
    std::fs::write(
        &fake,
        "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'bubblewrap 0.0'; exit 0; }\n\
         echo 'bwrap: No permissions to create a new namespace' >&2; exit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut s = sh("echo ran");
    s.network = NetworkPolicy::Isolated;
    prepare_attempt(&dir, &s).unwrap();
    let mut cmd = supervise_cmd(&dir);
    cmd.arg("--bwrap").arg(&fake);
    assert_eq!(cmd.status().unwrap().code(), Some(0));
    let st = finished(&dir);
    if no_landlock_fails_closed(&st) {
        return;
    }
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    assert_eq!(read(&log_paths(&dir).stdout), "ran\n");
    assert!(st.network_isolated);
    let note = sandbox_note(&st);
    assert!(
        note.contains("(fallback: ") && note.contains("cannot create the jobs' namespaces: bwrap: No permissions to create a new namespace"),
        "{note}"
    );
    // doctor agrees: bubblewrap is there but not on, and jobs get the fallback.
    let report = doctor(Some(&fake));
    let bwrap = report.iter().find(|p| p.name == "bubblewrap").unwrap();
    assert!(!bwrap.active, "{bwrap:?}");
    assert!(
        report[0].active && report[0].detail.contains("fallback"),
        "{:?}",
        report[0]
    );
}
