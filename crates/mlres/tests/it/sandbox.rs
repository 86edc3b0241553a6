//! The local backend's protections, observed end to end through the ledger.

use crate::support::{Env, Fast, code, stderr};

fn submit_and_wait(env: &Env, x: i64) -> (i32, serde_json::Value) {
    let e = env.json(&[
        "exp",
        "submit",
        "--config",
        &format!(r#"{{"x": {x}}}"#),
        "--hypothesis",
        "probe",
        "--json",
    ]);
    let id = e["id"].as_i64().unwrap().to_string();
    let out = env.run(&["exp", "wait", &id, "--json", "--timeout", "3m"]);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)));
    (code(&out), v)
}

fn logs(env: &Env, id: &serde_json::Value) -> String {
    String::from_utf8_lossy(&env.run(&["exp", "logs", &id.to_string()]).stdout).into_owned()
}

#[test]
fn a_job_cannot_see_the_parents_secrets_unless_granted() {
    let env = Env::new();
    env.write_program(
        &Fast {
            script: "env; echo score={x}",
            extra_job: "secrets: [MLRES_GRANTED]\nenv:\n  PLAIN: visible",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let e = env
        .cmd()
        .env("MLRES_TEST_CANARY", "canary-7f3a9c1e-not-granted")
        .env("HF_TOKEN", "hf_canaryCANARYcanary0000")
        .env("MLRES_GRANTED", "granted-value-42")
        .args([
            "exp",
            "submit",
            "--config",
            r#"{"x": 1}"#,
            "--hypothesis",
            "env",
            "--json",
        ])
        .output()
        .unwrap();
    env.record(&["exp", "submit"], &e);
    assert!(e.status.success(), "{}", stderr(&e));
    let v: serde_json::Value = serde_json::from_slice(&e.stdout).unwrap();
    let id = v["id"].as_i64().unwrap().to_string();
    env.ok(&["exp", "wait", &id, "--timeout", "2m"]);
    let out = logs(&env, &v["id"]);
    assert!(out.contains("score=1"), "{out}");
    assert!(out.contains("PLAIN=visible"), "{out}");
    // The job received the granted secret; mlres redacts its value whenever it shows output.
    assert!(
        out.contains("MLRES_GRANTED=[REDACTED:MLRES_GRANTED]"),
        "granted secret missing: {out}"
    );
    assert!(
        !out.contains("granted-value-42"),
        "a granted secret's value was shown: {out}"
    );
    // Nothing mlres wrote anywhere (ledger, job dirs, exports) carries an ungranted secret.
    let mut stack = vec![env.path().to_path_buf()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                files += 1;
                let text = String::from_utf8_lossy(&bytes);
                assert!(
                    !text.contains("canary-7f3a9c1e"),
                    "canary in {}",
                    p.display()
                );
                assert!(
                    !text.contains("hf_canaryCANARY"),
                    "HF token canary in {}",
                    p.display()
                );
            }
        }
    }
    assert!(
        files > 5,
        "the scan must actually see the ledger and job files ({files})"
    );
    assert!(
        !out.contains("canary-7f3a9c1e"),
        "parent canary leaked: {out}"
    );
    assert!(!out.contains("hf_canary"), "HF token leaked: {out}");
}

/// Live host processes whose command line contains `marker` (jobs run in their own PID
/// namespace: the pids they could record are not host pids).
fn marked_alive(marker: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            !std::fs::read_to_string(format!("/proc/{p}/stat"))
                .unwrap_or_default()
                .contains(") Z")
        })
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .collect()
}

fn wait_marked_gone(marker: &str) -> Vec<i32> {
    let start = std::time::Instant::now();
    loop {
        let alive = marked_alive(marker);
        if alive.is_empty() || start.elapsed() > std::time::Duration::from_secs(30) {
            return alive;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_job_past_its_timeout_is_killed_with_its_children_and_recorded() {
    let env = Env::new();
    let marker = format!("1000.{}77", std::process::id());
    let script = format!("sleep {marker} & sleep {marker}; echo score={{x}}");
    env.write_program(
        &Fast {
            script: &script,
            timeout: "2s",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let (c, v) = submit_and_wait(&env, 1);
    assert_eq!(c, 5, "{v}");
    assert_eq!(v["status"], "timed_out", "{v}");
    let alive = wait_marked_gone(&marker);
    assert!(
        alive.is_empty(),
        "the job's processes survived the timeout: {alive:?}"
    );
    let s = env.json(&["loop", "status", "--json"]);
    assert!(s["budget"]["walltime_secs"]["used"].as_u64().unwrap() <= 60);
}

fn root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `mlres doctor --json`'s `cgroup_limits` entry.
fn cgroup_entry(env: &Env) -> serde_json::Value {
    let v = env.json(&["doctor", "--json"]);
    v["protections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "cgroup_limits")
        .cloned()
        .unwrap_or_else(|| panic!("no cgroup_limits: {v}"))
}

/// A job that touches more memory than `limits.memory` is killed, and the ledger's reason
/// names the limit. As root (here and in CI) the cgroup must be there and enforced; as
/// another user without a cgroup of its own, doctor must say it is not.
#[test]
fn a_job_over_its_memory_limit_fails_cleanly_and_is_recorded() {
    let env = Env::new();
    let entry = cgroup_entry(&env);
    let detail = entry["detail"].as_str().unwrap().to_string();
    let enforced = detail.contains("limits.memory enforced (cgroup v");
    if root() {
        assert!(enforced, "root must get a memory cgroup: {entry}");
    } else if !enforced {
        assert!(detail.contains("limits.memory NOT enforced"), "{entry}");
        assert_eq!(entry["active"], false, "{entry}");
        return;
    }
    env.write_program(
        &Fast {
            script: "python3 -c 'x = bytearray(1024 * 1024 * 1024); print(len(x))'; echo score={x}",
            extra_job: "limits:\n  memory: 256MiB",
            ..Default::default()
        }
        .program()
        // the job must fail when python fails
        .replace("'; echo score={x}", "' && echo score={x}"),
    );
    env.approve();
    let (c, v) = submit_and_wait(&env, 1);
    assert_eq!(c, 5, "{v}");
    assert_eq!(v["status"], "memory_exceeded", "{v}");
    assert_eq!(v["decision"], "discard");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("memory limit 256 MiB exceeded (cgroup v"),
        "{v}"
    );
    let v = env.json(&["ledger", "verify", "--json"]);
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0));
}

/// What CUDA and `import torch` do: reserve far more address space than the memory limit and
/// never touch it. Under the default limits (memory 2GiB) this job runs; with the old
/// RLIMIT_AS of 2 GiB its mmap failed.
#[test]
fn a_job_that_reserves_address_space_it_never_touches_runs_under_the_default_limits() {
    let env = Env::new();
    env.write_program(
        &Fast {
            script: "python3 -c 'import ctypes; l = ctypes.CDLL(None); l.mmap.restype = ctypes.c_void_p; l.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]; p = l.mmap(None, 16 << 30, 0, 0x4022, -1, 0); assert p not in (None, 2 ** 64 - 1), p' && echo score={x}",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let (c, v) = submit_and_wait(&env, 1);
    assert_eq!(c, 0, "{v}");
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!(v["metrics"]["score"], 1.0, "{v}");
}

/// `mlres approve` says, before anyone approves, whether this machine enforces the job's
/// limits, and `check` says the same; neither ever shows a missing one as on.
#[test]
fn approve_and_check_say_whether_the_limits_are_enforced_here() {
    let env = Env::new();
    env.write_program(
        &Fast {
            extra_job: "limits:\n  memory: 512MiB\n  processes: 64\n  cpus: 1.5",
            ..Default::default()
        }
        .program(),
    );
    let enforced = cgroup_entry(&env)["active"] == true;
    if root() {
        assert!(enforced, "{}", cgroup_entry(&env));
    }
    let out = env.approve_args(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("Local job limits on this machine:"), "{err}");
    let check = env.ok(&["check"]);
    for what in ["memory 512MiB", "processes 64", "cpus 1.5"] {
        let on = format!("{what} enforced by cgroup v");
        let off = format!("{what} NOT enforced");
        let want = if enforced { &on } else { &off };
        assert!(err.contains(&format!("  {want}")), "{want}: {err}");
        assert!(
            check.contains(&format!("on this machine: {want}")),
            "{want}: {check}"
        );
    }
}

#[test]
fn with_isolation_a_job_cannot_open_a_tcp_connection() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let probe = format!(
        "python3 -c 'import socket; socket.create_connection((\\\"127.0.0.1\\\", {port}), timeout=3); print(\\\"connected\\\")' || echo blocked; echo score={{x}}"
    );
    // network: true is the control: the same probe connects.
    for (network, expect) in [
        ("network: false", "blocked"),
        ("network: true", "connected"),
    ] {
        let env = Env::new();
        env.write_program(
            &Fast {
                script: &probe,
                extra_job: network,
                ..Default::default()
            }
            .program(),
        );
        env.approve();
        let (c, v) = submit_and_wait(&env, 1);
        assert_eq!(c, 0, "{v}");
        let out = logs(&env, &v["id"]);
        assert!(out.contains(expect), "{network}: expected {expect}: {out}");
    }
}

/// The adversarial probe: a python job that tries, one by one, everything issue 10's red team
/// did, printing `TRY ...` before each attempt and then `DENIED`, `CLEAN` (read, but no
/// secret in it), or `GOT`/`LEAK` (it worked).
const PROBE: &str = r#"
import json, os, socket, subprocess, sys
if sys.argv[1] == "1":
    sys.exit(0)
cfg = json.load(open(os.path.join(os.path.dirname(__file__), "probe.json")))
CANARIES = [b"hf_canaryCANARY", b"canary-7f3a9c1e"]

def say(*a):
    print(*a, flush=True)

def read(p):
    say("TRY read", p)
    try:
        with open(p, "rb") as f:
            f.read()
    except OSError as e:
        say("DENIED", e.errno)
        return
    say("GOT", p)

def listdir(p):
    say("TRY list", p)
    try:
        os.listdir(p)
    except OSError as e:
        say("DENIED", e.errno)
        return
    say("GOT listing of", p)

def write(p, mode):
    say("TRY write", p)
    try:
        with open(p, mode) as f:
            f.write("score=0.99\n")
    except OSError as e:
        say("DENIED", e.errno)
        return
    say("GOT written", p)

def environ(p):
    say("TRY environ", p)
    try:
        data = open(p, "rb").read()
    except OSError as e:
        say("DENIED", e.errno)
        return
    say("LEAK" if any(c in data for c in CANARIES) else "CLEAN")

def connect(addr):
    say("TRY connect", repr(addr))
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect(addr)
    except OSError as e:
        say("DENIED", e.errno)
        return
    say("GOT connected", repr(addr))

read(os.path.join(cfg["state"], "ledger.key"))
read(os.path.join(cfg["state"], "ledger.sqlite3"))
read(cfg["token"])
read(cfg["other_log"])
listdir(cfg["state"])
listdir(cfg["home"])
write(os.path.join(cfg["state"], "pwned"), "w")
write(cfg["other_log"], "a")
write(os.path.join(cfg["home"], "pwned"), "w")
environ("/proc/%d/environ" % os.getppid())
for d in os.listdir("/proc"):
    if d.isdigit():
        environ("/proc/%s/environ" % d)
pids = sorted(int(d) for d in os.listdir("/proc") if d.isdigit())
say("PIDS", len(pids))
for p in pids:
    try:
        cmd = open("/proc/%d/cmdline" % p, "rb").read().split(b"\0")[0]
    except OSError:
        cmd = b"?"
    say("PROC", p, os.path.basename(cmd).decode(errors="replace"))
connect(cfg["sock"])
connect("\0" + cfg["abstract"])
a, b = socket.socketpair()
a.send(b"x")
say("SOCKETPAIR", b.recv(1).decode())
subprocess.Popen(["sleep", cfg["marker"]], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", cfg["marker"]])
    os._exit(0)
say("SPAWNED")
"#;

#[test]
fn an_adversarial_job_cannot_reach_state_tokens_other_jobs_processes_or_host_sockets() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener};

    let env = Env::new();
    // A token where huggingface_hub keeps it, in the HOME mlres runs with: a test input.
    let token = env.path().join(".cache/huggingface/token");
    std::fs::create_dir_all(token.parent().unwrap()).unwrap();
    std::fs::write(&token, "hf_canaryCANARYtokenfile0000").unwrap();
    env.tmp.allow(&token);
    let sock = env.path().join("host.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    let abstract_name = format!("mlres-test-{}", std::process::id());
    let abstract_listener =
        UnixListener::bind_addr(&SocketAddr::from_abstract_name(&abstract_name).unwrap()).unwrap();
    abstract_listener.set_nonblocking(true).unwrap();
    std::fs::write(env.project.join("probe.py"), PROBE).unwrap();
    // It names the canary markers it looks for: an input, not a leak.
    env.tmp.allow(env.project.join("probe.py"));
    env.write_program(
        &Fast {
            script: "python3 {project}/probe.py {x} && echo score={x}",
            values: "[1, 2]",
            extra_job: "network: false",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let submit = |x: i64| {
        let args = [
            "exp",
            "submit",
            "--config",
            &format!(r#"{{"x": {x}}}"#),
            "--hypothesis",
            "probe",
            "--json",
        ];
        let out = env
            .cmd()
            .env("HF_TOKEN", "hf_canaryCANARYcanary0000")
            .env("MLRES_TEST_CANARY", "canary-7f3a9c1e-parent")
            .args(args)
            .output()
            .unwrap();
        env.record(&args, &out);
        assert!(out.status.success(), "{}", stderr(&out));
        let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["id"]
            .as_i64()
            .unwrap()
            .to_string();
        let v = env.json(&["exp", "wait", &id, "--json", "--timeout", "3m"]);
        (id, v)
    };
    // A victim experiment first: its log is what the red team rewrote.
    let (victim, v) = submit(1);
    assert_eq!(v["metric"].as_f64(), Some(1.0), "{v}");
    let mut other_log = None;
    let mut stack = vec![env.state.join("jobs")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "stdout.log") {
                other_log = Some(p);
            }
        }
    }
    let other_log = other_log.expect("the victim's stdout.log");
    let marker = format!("1000.{}99", std::process::id());
    let cfg = serde_json::json!({
        "state": env.state,
        "token": token,
        "home": env.path(),
        "other_log": other_log,
        "sock": sock,
        "abstract": abstract_name,
        "marker": marker,
    });
    std::fs::write(env.project.join("probe.json"), cfg.to_string()).unwrap();

    let (probe, v) = submit(2);
    assert_eq!(v["status"], "completed", "{v}");
    let out = logs(&env, &serde_json::json!(probe.parse::<i64>().unwrap()));
    let lines: Vec<&str> = out.lines().collect();
    // Every attempt really happened and failed.
    for (what, n) in [
        ("TRY read", 4),
        ("TRY list", 2),
        ("TRY write", 3),
        ("TRY connect", 2),
    ] {
        assert_eq!(
            lines.iter().filter(|l| l.starts_with(what)).count(),
            n,
            "{what}: {out}"
        );
    }
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("GOT") || l.starts_with("LEAK")),
        "the sandbox let something through:\n{out}"
    );
    let tries = lines.iter().filter(|l| l.starts_with("TRY")).count();
    let verdicts = lines
        .iter()
        .filter(|l| l.starts_with("DENIED") || l.starts_with("CLEAN"))
        .count();
    assert_eq!(tries, verdicts, "every try has a verdict: {out}");
    assert!(
        lines
            .iter()
            .filter(|l| l.starts_with("TRY environ"))
            .count()
            >= 3,
        "{out}"
    );
    // Its own PID namespace: only the job's own processes (PID 1 is its sandbox's init).
    let procs: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("PROC"))
        .collect();
    assert!(procs.len() <= 4, "{procs:?}");
    assert!(
        procs.first().is_some_and(|p| p.starts_with("PROC 1 ")),
        "{procs:?}"
    );
    assert!(
        !procs
            .iter()
            .any(|p| p.contains("cargo") || p.contains("it-")),
        "{procs:?}"
    );
    assert!(
        out.contains("SOCKETPAIR x"),
        "socketpair must keep working: {out}"
    );
    assert!(out.contains("SPAWNED"), "{out}");
    // Nobody connected to the host's sockets.
    for l in [&listener, &abstract_listener] {
        assert_eq!(
            l.accept().map(|_| ()).unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock
        );
    }
    // The background processes it left (one in a new session, one double-forked daemon)
    // died with it.
    let alive = wait_marked_gone(&marker);
    assert!(alive.is_empty(), "the job left processes behind: {alive:?}");
    // The victim's record and log are untouched.
    let v = env.json(&["exp", "status", &victim, "--json"]);
    assert_eq!(v["metric"].as_f64(), Some(1.0), "{v}");
    let victim_log = std::fs::read_to_string(&other_log).unwrap();
    assert!(!victim_log.contains("0.99"), "{victim_log}");
    assert!(!env.state.join("pwned").exists());
    assert!(!env.path().join("pwned").exists());
    let v = env.json(&["ledger", "verify", "--json"]);
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0), "{v}");
    // The canary sweep of every file under the temp dir (state, logs, outputs) runs when
    // `env` drops; the token file itself is the only allowed place.
}

#[test]
fn the_supervisor_of_a_local_job_holds_no_token() {
    let env = Env::new();
    let gate = env.project.join("gate");
    env.write_program(
        &Fast {
            script: "while [ ! -e {project}/gate ]; do sleep 0.05; done; echo score={x}",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let args = [
        "exp",
        "submit",
        "--config",
        r#"{"x": 1}"#,
        "--hypothesis",
        "env",
        "--json",
    ];
    let out = env
        .cmd()
        .env("HF_TOKEN", "hf_canaryCANARYsupervisor00")
        .args(args)
        .output()
        .unwrap();
    env.record(&args, &out);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["id"].to_string();
    // Find the running supervisor and read its environment from the host.
    let start = std::time::Instant::now();
    let pidfile = loop {
        let found = std::fs::read_dir(env.state.join("jobs"))
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|c| std::fs::read_dir(c.path()).into_iter().flatten().flatten())
            .map(|a| a.path().join("job.pid"))
            .find(|p| p.exists());
        if let Some(p) = found {
            break p;
        }
        assert!(start.elapsed().as_secs() < 60, "the job did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let sup: i32 = std::fs::read_to_string(pidfile.with_file_name("supervisor.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let environ = std::fs::read(format!("/proc/{sup}/environ")).unwrap();
    let vars: Vec<String> = environ
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| {
            String::from_utf8_lossy(v)
                .split('=')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    std::fs::write(&gate, "").unwrap();
    assert_eq!(vars, ["LANG", "PATH"], "the supervisor's environment");
    env.json(&["exp", "wait", &id, "--json", "--timeout", "2m"]);
}

/// Every `status.json` under the state directory's job attempts.
fn statuses(env: &Env) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut stack = vec![env.state.join("jobs")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "status.json") {
                out.push(serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap());
            }
        }
    }
    out
}

#[test]
fn without_bubblewrap_jobs_run_under_landlock_and_seccomp_and_doctor_says_so() {
    const NO_BWRAP: &str = "/nonexistent/mlres-it/bwrap";
    let env = Env::new();
    let out = env
        .cmd()
        .env("MLRES_BWRAP", NO_BWRAP)
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    env.record(&["doctor", "--json"], &out);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let get = |n: &str| {
        v["protections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("no {n}: {v}"))
    };
    // A missing bubblewrap is never shown as on; what jobs get is the fallback.
    assert_eq!(get("bubblewrap")["active"], false, "{v}");
    let sandbox = get("job_sandbox");
    let landlock = get("landlock")["active"] == true;
    assert_eq!(sandbox["active"], landlock, "{v}");
    let detail = sandbox["detail"].as_str().unwrap();
    if landlock {
        assert!(
            detail.contains(&format!(
                "+ seccomp (fallback: bubblewrap not found at the configured path {NO_BWRAP}"
            )),
            "{detail}"
        );
    } else {
        assert!(
            detail.contains("sudo apt-get install bubblewrap"),
            "{detail}"
        );
    }

    // A job without network, run through the whole engine with MLRES_BWRAP pointing nowhere.
    env.write_program(
        &Fast {
            script: "echo score={x}",
            extra_job: "network: false",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let args = [
        "exp",
        "submit",
        "--config",
        r#"{"x": 3}"#,
        "--hypothesis",
        "fallback",
        "--json",
    ];
    let out = env
        .cmd()
        .env("MLRES_BWRAP", NO_BWRAP)
        .args(args)
        .output()
        .unwrap();
    env.record(&args, &out);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["id"].to_string();
    let out = env.run(&["exp", "wait", &id, "--json", "--timeout", "2m"]);
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)));
    let st = statuses(&env);
    assert_eq!(st.len(), 1, "{st:?}");
    let notes: Vec<&str> = st[0]["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    if !landlock {
        assert_eq!(v["status"], "start_failed", "{v}");
        return;
    }
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!(v["metric"].as_f64(), Some(3.0), "{v}");
    assert_eq!(st[0]["network_isolated"], true, "{st:?}");
    assert!(
        notes.iter().any(|n| n.starts_with("sandbox: Landlock ABI")
            && n.contains("own network namespace")
            && n.contains(&format!("(fallback: bubblewrap not found at the configured path {NO_BWRAP}; no mount or PID namespace"))),
        "{notes:?}"
    );
}

/// `gpus` decides a local job's `CUDA_VISIBLE_DEVICES` from the GPUs the operator lists in
/// `MLRES_LOCAL_GPUS` (no GPU needed: the test reads the environment the job got); without
/// `gpus` it is empty; more than the machine gives is refused before anything is spent.
#[test]
fn gpus_decide_cuda_visible_devices_from_mlres_local_gpus() {
    let cases = [
        ("", "0,1", "cvd=[] set=1"),
        ("gpus: 0", "0,1", "cvd=[] set=1"),
        ("gpus: 1", "0,1", "cvd=[0] set=1"),
        (
            "gpus: 2\nshare_gpus: true",
            "GPU-aa,GPU-bb",
            "cvd=[GPU-aa,GPU-bb] set=1",
        ),
        ("", "", "cvd=[] set=1"),
    ];
    for (extra, pool, want) in cases {
        let env = Env::new();
        env.write_program(
            &Fast {
                script: "echo cvd=[$CUDA_VISIBLE_DEVICES] set=$(env | grep -c ^CUDA_VISIBLE_DEVICES=) score={x}",
                extra_job: extra,
                ..Default::default()
            }
            .program(),
        );
        env.approve();
        let args = [
            "exp",
            "submit",
            "--config",
            r#"{"x": 1}"#,
            "--hypothesis",
            "gpus",
            "--json",
        ];
        let out = env
            .cmd()
            .env("MLRES_LOCAL_GPUS", pool)
            .env("CUDA_VISIBLE_DEVICES", "7")
            .args(args)
            .output()
            .unwrap();
        env.record(&args, &out);
        assert!(out.status.success(), "{extra}: {}", stderr(&out));
        let id =
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["id"].to_string();
        env.ok(&["exp", "wait", &id, "--timeout", "2m"]);
        let log = logs(&env, &serde_json::Value::from(id.parse::<i64>().unwrap()));
        assert!(log.contains(want), "{extra} / {pool}: {log}");
    }
    // Three GPUs wanted, two given: refused with the reason, nothing reserved.
    let env = Env::new();
    env.write_program(
        &Fast {
            extra_job: "gpus: 3",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let out = env
        .cmd()
        .env("MLRES_LOCAL_GPUS", "0,1")
        .args([
            "exp",
            "submit",
            "--config",
            r#"{"x": 1}"#,
            "--hypothesis",
            "h",
        ])
        .output()
        .unwrap();
    env.record(&["exp", "submit"], &out);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("gpus_unavailable"), "{err}");
    assert!(err.contains("needs 3 GPU(s)"), "{err}");
    let s = env.json(&["loop", "status", "--json"]);
    assert_eq!(s["budget"]["walltime_secs"]["used"], 0, "{s}");
    // A malformed list is a usage error, not a guess.
    let out = env
        .cmd()
        .env("MLRES_LOCAL_GPUS", "0,,1")
        .args([
            "exp",
            "submit",
            "--config",
            r#"{"x": 1}"#,
            "--hypothesis",
            "h",
        ])
        .output()
        .unwrap();
    env.record(&["exp", "submit"], &out);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("MLRES_LOCAL_GPUS"),
        "{}",
        stderr(&out)
    );
}

/// A job sees the project only when its command asks for it: files beside program.md that it
/// was never meant to read (a `.env` with a token) stay hidden otherwise.
#[test]
fn the_project_is_visible_only_to_a_command_that_names_it() {
    let env = Env::new();
    std::fs::write(env.project.join(".env"), "HF_TOKEN=hf_project_dotenv\n").unwrap();
    env.tmp.allow(env.project.join(".env"));
    let extra = format!("env: {{P: \"{}\"}}", env.project.display());
    // The path reaches the job through its environment, not its command.
    env.write_program(
        &Fast {
            max_jobs: 1,
            values: "[1]",
            script: "if cat $P/.env; then echo score=9; else echo hidden; echo score={x}; fi",
            extra_job: &extra,
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let s = env.json(&["loop", "run", "--json"]);
    assert_eq!(s["best"]["metric"].as_f64(), Some(1.0), "{s}");
    let logs = env.ok(&["exp", "logs", &s["best"]["id"].to_string()]);
    assert!(logs.contains("hidden"), "{logs}");
    assert!(!logs.contains("hf_project_dotenv"), "{logs}");

    // Naming {project} grants it (read-only).
    let env2 = Env::new();
    std::fs::write(env2.project.join("data.txt"), "visible\n").unwrap();
    env2.write_program(
        &Fast {
            max_jobs: 1,
            values: "[1]",
            script: "cat {project}/data.txt && echo score={x}",
            ..Default::default()
        }
        .program(),
    );
    env2.approve();
    let s = env2.json(&["loop", "run", "--json"]);
    assert_eq!(s["best"]["metric"].as_f64(), Some(1.0), "{s}");
}
