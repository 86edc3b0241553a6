//! Broker mode with real, separate uids. CI runs as root, so the test creates a broker user
//! (through `mlres setup broker` itself) and an agent user (`useradd`), starts the broker
//! with `setpriv`, and acts as the agent with `setpriv`: everything an agent with a shell
//! would try against the state must fail, the sanctioned path must work, and a broker
//! killed mid-campaign must resume with nothing lost.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{BIN, CommandExt2, Fast, SECRET, code};

const TOKEN_CANARY: &str = "hf_CANARYbroker9Vb4Nm2Qw8Er6Ty1Ui";

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn ids(name: &str) -> (u32, u32) {
    let t = std::fs::read_to_string("/etc/passwd").unwrap();
    t.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == name).then(|| (f[2].parse().unwrap(), f[3].parse().unwrap()))
        })
        .unwrap_or_else(|| panic!("no user {name}"))
}

/// Runs `cmd`, retrying while /etc/passwd is locked by a parallel useradd/userdel.
fn user_cmd(args: &[&str]) {
    for _ in 0..50 {
        let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
        if out.status.success() {
            return;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        if !err.contains("lock") {
            panic!("{args:?} failed: {err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{args:?}: /etc/passwd stayed locked");
}

/// A broker world: users, a root-installed broker, a project the agent owns.
pub(crate) struct World {
    pub(crate) dir: PathBuf,
    broker_user: String,
    agent_user: String,
    broker: (u32, u32),
    pub(crate) agent: (u32, u32),
    pub(crate) exe: PathBuf,
    config: PathBuf,
    pub(crate) socket: PathBuf,
    pub(crate) state: PathBuf,
    pub(crate) project: PathBuf,
    /// The human's approval secret (root-owned 0600: the agent cannot open it; the human
    /// hands it to a command as fd 3).
    pub(crate) secret: PathBuf,
    server: Option<Child>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.kill_broker();
        // Whatever the broker started (loops, supervisors, jobs) runs as its user.
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.broker_user])
            .status();
        std::thread::sleep(Duration::from_millis(200));
        let _ = Command::new("userdel").arg(&self.agent_user).status();
        let _ = Command::new("userdel").arg(&self.broker_user).status();
        let _ = Command::new("groupdel").arg(&self.broker_user).status();
        let _ = Command::new("groupdel").arg(&self.agent_user).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl World {
    pub(crate) fn new(tag: &str) -> World {
        assert!(
            is_root(),
            "the broker tests create users and switch to them: run them as root (CI does)"
        );
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}{}{n}", tag, std::process::id() % 100_000);
        let dir = PathBuf::from(format!("/tmp/mlres-broker-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let broker_user = format!("mlb{id}");
        let agent_user = format!("mla{id}");
        let agent_home = dir.join("agent-home");
        user_cmd(&[
            "useradd",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            agent_home.to_str().unwrap(),
            "--shell",
            "/bin/sh",
            &agent_user,
        ]);
        let agent = ids(&agent_user);
        std::fs::create_dir_all(&agent_home).unwrap();
        std::os::unix::fs::chown(&agent_home, Some(agent.0), Some(agent.1)).unwrap();
        let secret = dir.join("human-secret");
        std::fs::write(&secret, SECRET).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let state = dir.join("state");
        let socket = dir.join("run/broker.sock");
        let config = dir.join("etc/broker.json");
        let out = Command::new(BIN)
            .args([
                "setup",
                "broker",
                "--user",
                &broker_user,
                "--client",
                &agent_user,
            ])
            .arg("--broker-state-dir")
            .arg(&state)
            .arg("--socket")
            .arg(&socket)
            .arg("--install-dir")
            .arg(dir.join("bin"))
            .arg("--config")
            .arg(&config)
            .arg("--unit-dir")
            .arg(dir.join("unit"))
            .args(["--no-systemd", "--json", "--secret-file"])
            .arg(&secret)
            .env_remove("MLRES_BROKER_SOCKET")
            .env_remove("SUDO_USER")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "setup broker: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let broker = ids(&broker_user);
        let start = report["start"].as_str().unwrap();
        assert!(
            start.contains(&format!("runuser -u {broker_user} --"))
                && start.contains("broker serve"),
            "without systemd, setup prints the one command that starts the broker: {start}"
        );
        // The project: the agent's, readable by the broker's group, runs/ writable by it.
        let project = dir.join("proj");
        std::fs::create_dir_all(project.join("runs")).unwrap();
        for (p, mode) in [(&project, 0o2750), (&project.join("runs"), 0o2770)] {
            std::os::unix::fs::chown(p, Some(agent.0), Some(broker.1)).unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let mut w = World {
            exe: dir.join("bin/mlres"),
            dir,
            broker_user,
            agent_user,
            broker,
            agent,
            config,
            socket,
            state,
            project,
            secret,
            server: None,
        };
        w.start_broker();
        w
    }

    fn start_broker(&mut self) {
        let _ = std::fs::remove_file(self.dir.join("broker.log"));
        let log = std::fs::File::create(self.dir.join("broker.log")).unwrap();
        let child = self
            .as_uid(self.broker, &self.exe)
            .args(["broker", "serve", "--config"])
            .arg(&self.config)
            .env("HOME", &self.state)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.server = Some(child);
        let t = Instant::now();
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the broker did not start: {}",
                std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill_broker(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A command run as `uid`, with a clean environment.
    pub(crate) fn as_uid(&self, (uid, gid): (u32, u32), program: &Path) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg("--clear-groups")
            .arg("--")
            .arg(program)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .current_dir(&self.project);
        c
    }

    /// `mlres` as the agent, in its project, through the broker.
    pub(crate) fn agent(&self) -> Command {
        let mut c = self.as_uid(self.agent, &self.exe);
        c.env("MLRES_BROKER_SOCKET", &self.socket)
            .env("HOME", self.dir.join("agent-home"));
        c.setsid_if_possible();
        c
    }

    /// A shell as the agent.
    fn agent_sh(&self, script: &str) -> Output {
        self.as_uid(self.agent, Path::new("/bin/sh"))
            .env("HOME", self.dir.join("agent-home"))
            .args(["-c", script])
            .output()
            .unwrap()
    }

    pub(crate) fn agent_run(&self, args: &[&str]) -> Output {
        self.agent().args(args).output().unwrap()
    }

    /// The human at the agent's uid, handing the secret in on fd 3 (which the agent's own
    /// processes cannot open).
    pub(crate) fn human_run(&self, args: &[&str]) -> Output {
        self.agent()
            .args(args)
            .fd3_from(&self.secret)
            .output()
            .unwrap()
    }

    pub(crate) fn write_program(&self, text: &str) {
        let p = self.project.join("program.md");
        std::fs::write(&p, text).unwrap();
        std::os::unix::fs::chown(&p, Some(self.agent.0), Some(self.agent.1)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
}

pub(crate) fn out_text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub(crate) fn ok_json(o: &Output) -> Value {
    assert!(o.status.success(), "{}", out_text(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", out_text(o)))
}

#[test]
fn an_agent_with_a_shell_cannot_reach_the_state_and_the_sanctioned_path_works() {
    let mut w = World::new("a");
    let state = w.state.display().to_string();

    // The state is the broker's alone: the agent can neither read nor write any of it.
    let m = std::fs::metadata(&w.state).unwrap();
    assert_eq!(
        (
            std::os::unix::fs::MetadataExt::uid(&m),
            m.permissions().mode() & 0o777
        ),
        (w.broker.0, 0o700)
    );
    for probe in [
        format!("ls {state}"),
        format!("cat {state}/ledger.sqlite3"),
        format!("cat {state}/ledger.key"),
        format!("cat {state}/approver.phc"),
        format!("sqlite3 {state}/ledger.sqlite3 'select 1'"),
        format!("touch {state}/planted"),
        format!("mv {state} {state}.moved"),
        format!("rm -rf {state}"),
        format!("cp -r {state} /tmp/stolen-{}", w.agent.0),
    ] {
        let o = w.agent_sh(&probe);
        assert!(
            !o.status.success(),
            "the agent could run `{probe}`: {}",
            out_text(&o)
        );
    }
    for f in ["ledger.sqlite3", "ledger.key", "approver.phc"] {
        assert!(
            w.state.join(f).is_file(),
            "{f} exists, so its probes mean something"
        );
    }

    // The broker's process: its environment and descriptors are not the agent's to read.
    let pid = w.server.as_ref().unwrap().id();
    for probe in [
        format!("cat /proc/{pid}/environ"),
        format!("ls -l /proc/{pid}/fd/"),
        format!("cat /proc/{pid}/cwd/ledger.key"),
        format!("cat /proc/{pid}/root{state}/ledger.key"),
        format!("kill -TERM {pid}"),
    ] {
        let o = w.agent_sh(&probe);
        assert!(
            !o.status.success(),
            "the agent could run `{probe}`: {}",
            out_text(&o)
        );
    }

    // Another broker: the agent cannot serve the broker's state or take its socket; the
    // broker's own user cannot start a second one either.
    let o = w.agent_run(&["broker", "serve", "--config", w.config.to_str().unwrap()]);
    assert_ne!(code(&o), 0, "{}", out_text(&o));
    let o = w
        .as_uid(w.broker, &w.exe)
        .args(["broker", "serve", "--config", w.config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&o), 3, "{}", out_text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("another broker already serves"));

    // Broker mode is what the agent's CLI is in, and who the broker sees is the kernel's word.
    let s = ok_json(&w.agent_run(&["broker", "status", "--json"]));
    assert_eq!(s["mode"], "broker");
    assert_eq!(s["client"]["uid"], w.agent.0);
    assert_eq!(s["broker"]["uid"], w.broker.0);

    w.write_program(
        &Fast {
            max_jobs: 3,
            max_concurrent: 3,
            script: &format!(
                "cat {state}/ledger.key >/dev/null 2>&1 && echo score=666 || echo score={{x}}"
            ),
            ..Fast::default()
        }
        .program(),
    );

    // Approval without the human: no secret, a wrong one, a faked terminal, --operator.
    let o = w.agent_run(&["approve"]);
    assert_eq!(code(&o), 3, "no terminal, no secret: {}", out_text(&o));
    let wrong = w.dir.join("agent-guess");
    std::fs::write(&wrong, "not-the-secret-123").unwrap();
    std::os::unix::fs::chown(&wrong, Some(w.agent.0), Some(w.agent.1)).unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = w.agent_run(&["approve", "--secret-file", wrong.to_str().unwrap()]);
    assert_eq!(code(&o), 3, "a wrong secret: {}", out_text(&o));
    let o = w
        .agent()
        .args(["approve", "--secret-fd", "3"])
        .fd3_from(&wrong)
        .output()
        .unwrap();
    assert_eq!(
        code(&o),
        3,
        "a wrong secret on a descriptor: {}",
        out_text(&o)
    );
    let o = w.agent_run(&["approve", "--operator"]);
    assert_eq!(code(&o), 3, "--operator: {}", out_text(&o));
    let faked = format!(
        "printf 'not-the-secret-123\\n' | script -qec '{} approve' /dev/null",
        w.exe.display()
    );
    let o = w
        .as_uid(w.agent, Path::new("/bin/sh"))
        .env("MLRES_BROKER_SOCKET", &w.socket)
        .args(["-c", &faked])
        .output()
        .unwrap();
    let st = ok_json(&w.agent_run(&["loop", "status", "--json"]));
    assert_eq!(
        st["approval"],
        "not approved",
        "faked terminal: {}",
        out_text(&o)
    );
    assert_eq!(st["mode"]["name"], "broker");
    // The state-dir overrides: a flag is refused; the environment is the broker's.
    let o = w.agent_run(&["--state-dir", "/tmp/fresh", "loop", "status"]);
    assert_eq!(code(&o), 2, "{}", out_text(&o));
    let o = w
        .agent()
        .env("MLRES_STATE_DIR", "/tmp/fresh-budget")
        .env("XDG_STATE_HOME", "/tmp/fresh-xdg")
        .args(["loop", "status", "--json"])
        .output()
        .unwrap();
    assert_eq!(ok_json(&o)["approval"], "not approved");
    assert!(!Path::new("/tmp/fresh-budget").exists());

    // The human approves (secret on fd 3); the ledger records the client's uid.
    let o = w.human_run(&["approve", "--secret-fd", "3", "--json"]);
    assert!(o.status.success(), "{}", out_text(&o));
    let events = ok_json(&w.agent_run(&["ledger", "events", "--json"]));
    let text = events.to_string();
    assert!(text.matches("approval_refused").count() >= 2, "{text}");
    assert!(text.contains(&format!("uid {}", w.agent.0)), "{text}");

    // The HF token is handed over once and never comes back out.
    let token = w.dir.join("token");
    std::fs::write(&token, TOKEN_CANARY).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = w
        .agent()
        .args([
            "broker",
            "login",
            "--secret-fd",
            "3",
            "--token-fd",
            "4",
            "--json",
        ])
        .fd3_from(&w.secret)
        .fd_from(4, &token)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out_text(&o));
    let o = w.agent_sh(&format!("cat {state}/credentials/hf_token"));
    assert!(!o.status.success());
    let s = ok_json(&w.agent_run(&["broker", "status", "--json"]));
    assert_eq!(s["hf_token"], true);

    // Sanctioned submits run; past the budget is refused; the job saw no state.
    let mut ids = Vec::new();
    for x in 1..=3 {
        let o = w.agent_run(&[
            "exp",
            "submit",
            "--config",
            &format!("x={x}"),
            "--hypothesis",
            "sweep",
            "--json",
        ]);
        assert!(o.status.success(), "submit {x}: {}", out_text(&o));
        ids.push(ok_json(&o)["id"].as_i64().unwrap());
    }
    let o = w.agent_run(&[
        "exp",
        "submit",
        "--config",
        "x=4",
        "--hypothesis",
        "one more",
    ]);
    assert_eq!(code(&o), 3, "past max_jobs: {}", out_text(&o));
    for id in ids {
        let o = w.agent_run(&["exp", "wait", &id.to_string(), "--json"]);
        assert!(o.status.success(), "wait {id}: {}", out_text(&o));
        let v = ok_json(&o);
        let score = v["metrics"]["score"].as_f64().or(v["metric"].as_f64());
        assert_ne!(score, Some(666.0), "a job read the broker's key: {v}");
    }
    let v = ok_json(&w.agent_run(&["ledger", "verify", "--json"]));
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");

    // Nothing printed anywhere, and nothing in the state except the token file itself,
    // carries the token.
    for f in walk(&w.state) {
        if f.ends_with("credentials/hf_token") {
            continue;
        }
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(TOKEN_CANARY),
            "the token leaked into {}",
            f.display()
        );
    }
    w.kill_broker();
}

#[test]
fn a_broker_killed_mid_campaign_resumes_with_nothing_lost() {
    let mut w = World::new("k");
    w.write_program(
        &Fast {
            max_jobs: 4,
            script: "sleep 2; echo score={x}",
            ..Fast::default()
        }
        .program(),
    );
    let o = w.human_run(&["approve", "--secret-fd", "3"]);
    assert!(o.status.success(), "{}", out_text(&o));
    // The loop runs in the broker; kill the broker (SIGKILL) while it does.
    let mut run = w
        .agent()
        .args(["loop", "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    loop {
        // Mid-campaign: one experiment settled and another in flight.
        let st = ok_json(&w.agent_run(&["loop", "status", "--json"]));
        let settled = st["experiments"]
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e["state"] == "evaluated"));
        let flying = st["in_flight"].as_array().is_some_and(|a| !a.is_empty());
        if settled && flying {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "never mid-campaign: {st}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A crash of the broker's whole side: the broker, the loop it forked, the supervisors
    // and the jobs, all SIGKILLed at once (what a reboot or an OOM kill of the unit does).
    w.kill_broker();
    // The broker alone died (as `systemctl restart` with KillMode=process does it): its loop
    // still runs and holds nothing of the broker's, so a new broker starts at once.
    w.start_broker();
    w.kill_broker();
    let _ = Command::new("pkill")
        .args(["-KILL", "-u", &w.broker_user])
        .status();
    // With the broker gone the CLI says so and does not fall back to a state of its own.
    let o = w.agent_run(&["loop", "status"]);
    assert_eq!(code(&o), 1, "{}", out_text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not fall back"));
    let _ = run.kill();
    let _ = run.wait();
    w.start_broker();
    let o = w.agent_run(&["loop", "run"]);
    assert_eq!(
        code(&o),
        0,
        "resume after the broker restart: {}",
        out_text(&o)
    );
    let st = ok_json(&w.agent_run(&["loop", "status", "--json"]));
    let v = ok_json(&w.agent_run(&["ledger", "verify", "--json"]));
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");
    // The whole budget was used, nothing is left in flight, and every experiment is settled.
    assert_eq!(st["page"]["total"], 4, "{st}");
    assert_eq!(st["in_flight"], serde_json::json!([]), "{st}");
    for e in st["experiments"].as_array().unwrap() {
        let state = e["state"].as_str().unwrap_or("");
        assert!(
            !["reserved", "submitted", "running"].contains(&state),
            "an experiment was left {state}: {st}"
        );
    }
    assert!(st["best"].is_object(), "{st}");
    w.kill_broker();
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

trait FdFrom {
    fn fd_from(&mut self, n: i32, path: &Path) -> &mut Self;
}

impl FdFrom for Command {
    fn fd_from(&mut self, n: i32, path: &Path) -> &mut Self {
        use std::os::fd::IntoRawFd;
        use std::os::unix::process::CommandExt;
        // Leaked on purpose: open until the child is spawned.
        let fd = std::fs::File::open(path).unwrap().into_raw_fd();
        // SAFETY: dup2 is async-signal-safe; `fd` is open in the forked child.
        unsafe {
            self.pre_exec(move || {
                if libc::dup2(fd, n) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self
    }
}

/// `mlres mcp` is a broker client: an MCP client speaking to it as the agent reaches the
/// broker's campaign (the state the agent cannot read) through the same tools, and a submit
/// through MCP spends from the same budget.
#[test]
fn mcp_through_the_broker_serves_the_broker_s_campaign() {
    use std::io::{BufRead, BufReader, Write};
    let w = World::new("m");
    w.write_program(
        &Fast {
            max_jobs: 1,
            ..Fast::default()
        }
        .program(),
    );
    let o = w.human_run(&["approve", "--secret-fd", "3"]);
    assert!(o.status.success(), "{}", out_text(&o));
    let mut mcp = w
        .agent()
        .arg("mcp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut tx = mcp.stdin.take().unwrap();
    let mut rx = BufReader::new(mcp.stdout.take().unwrap());
    let mut call = |id: u64, method: &str, params: Value| -> Value {
        let msg =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        writeln!(tx, "{msg}").unwrap();
        tx.flush().unwrap();
        if method == "initialize" {
            let mut line = String::new();
            rx.read_line(&mut line).unwrap();
            writeln!(
                tx,
                "{}",
                serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
            )
            .unwrap();
            return serde_json::from_str(&line).unwrap();
        }
        let mut line = String::new();
        rx.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    let init = call(
        1,
        "initialize",
        serde_json::json!({"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "broker-test", "version": "0"}}),
    );
    assert!(init["result"]["serverInfo"].is_object(), "{init}");
    let tools = call(2, "tools/list", serde_json::json!({}));
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"exp_submit") && !names.iter().any(|n| n.contains("approve")));
    let st = call(
        3,
        "tools/call",
        serde_json::json!({"name": "loop_status", "arguments": {}}),
    );
    let text = st["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        text.contains("\"approved\""),
        "the broker's approval is visible: {st}"
    );
    let sub = call(
        4,
        "tools/call",
        serde_json::json!({"name": "exp_submit",
                           "arguments": {"config": {"x": 1}, "hypothesis": "via mcp"}}),
    );
    assert_ne!(sub["result"]["isError"], true, "{sub}");
    let over = call(
        5,
        "tools/call",
        serde_json::json!({"name": "exp_submit",
                           "arguments": {"config": {"x": 2}, "hypothesis": "over budget"}}),
    );
    assert_eq!(
        over["result"]["isError"], true,
        "past max_jobs through MCP: {over}"
    );
    drop(tx);
    let _ = mcp.wait();
    // The CLI sees the MCP submit: one budget, in the broker.
    let st = ok_json(&w.agent_run(&["loop", "status", "--json"]));
    assert_eq!(st["page"]["total"], 1, "{st}");
}

/// The confused deputy: the broker can read its state dir and the client cannot, so no
/// argument, project, dataset or symlink may make the broker read something for the client
/// that the client could not read itself.
#[test]
fn the_broker_reads_only_what_its_client_could() {
    let w = World::new("d");
    let state = w.state.display().to_string();
    let key = format!("{state}/ledger.key");
    assert!(Path::new(&key).exists());
    let refused = |o: &Output, what: &str| {
        assert_eq!(code(o), 3, "{what}: {}", out_text(o));
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            e.contains("the broker reads and writes only what you could"),
            "{what}: {e}"
        );
    };
    // Path arguments, plain and as --flag=PATH.
    refused(
        &w.agent_run(&["hub", "files", "upload", "me/repo", &key]),
        "upload of the key",
    );
    refused(
        &w.agent_run(&["data", "audit", "hf:a/b", &format!("--against={key}")]),
        "--against=the key",
    );
    refused(
        &w.agent_run(&["-C", &state, "check"]),
        "-C into the state dir",
    );
    // A dataset that is the key, directly or through a symlink in the project.
    let fast = Fast::default().program();
    let with = |ds: &str| fast.replacen("max_jobs:", &format!("datasets: [{ds}]\nmax_jobs:"), 1);
    w.write_program(&with(&key));
    refused(&w.agent_run(&["check"]), "a dataset in the state dir");
    let o = w.agent_sh(&format!("ln -s {key} {}/data.jsonl", w.project.display()));
    assert!(o.status.success(), "{}", out_text(&o));
    w.write_program(&with("data.jsonl"));
    refused(&w.agent_run(&["check"]), "a dataset symlinked to the key");
    // With readable data the same commands work.
    let o = w.agent_sh(&format!(
        "rm {0}/data.jsonl && echo '{{\"text\": \"hi\"}}' > {0}/data.jsonl",
        w.project.display()
    ));
    assert!(o.status.success(), "{}", out_text(&o));
    let o = w.agent_run(&["check"]);
    assert!(o.status.success(), "{}", out_text(&o));
    // The demo approves itself only in single-user mode; in broker mode a human approves.
    let demo = w.dir.join("demo");
    std::fs::create_dir_all(&demo).unwrap();
    std::os::unix::fs::chown(&demo, Some(w.agent.0), Some(w.broker.1)).unwrap();
    std::fs::set_permissions(&demo, std::fs::Permissions::from_mode(0o2770)).unwrap();
    let o = w.agent_run(&["demo", "--dir", &format!("{state}/demo")]);
    refused(&o, "a demo project in the state dir");
    let o = w.agent_run(&["demo", "--dir", demo.to_str().unwrap()]);
    assert_eq!(code(&o), 3, "{}", out_text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("approved like any campaign"));
    let st = ok_json(&w.agent_run(&["-C", demo.to_str().unwrap(), "loop", "status", "--json"]));
    assert_eq!(st["approval"], "not approved", "{st}");
    // `mlres report --out` writes where the client could, never into the state dir or a
    // directory only the broker may write.
    refused(
        &w.agent_run(&["report", "--out", &format!("{state}/report")]),
        "a report into the state dir",
    );
    refused(
        &w.agent_run(&["report", "--out", "/etc/mlres-report"]),
        "a report into a directory the client cannot write",
    );
}

/// Same command, same exit code and the same words in both modes; and a Ctrl-C on the client
/// reaches the command in the broker, which stops the way single-user `loop run` does.
#[test]
fn broker_mode_answers_like_single_user_mode_and_forwards_signals() {
    let w = World::new("p");
    w.write_program(
        &Fast {
            max_jobs: 3,
            script: "sleep 4; echo score={x}",
            ..Fast::default()
        }
        .program(),
    );
    // Single-user mode, as root, on a copy of the same project with its own state dir.
    let single_state = w.dir.join("single-state");
    let single = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .current_dir(&w.project)
            .env_remove("MLRES_BROKER_SOCKET")
            .env("MLRES_STATE_DIR", &single_state)
            .output()
            .unwrap()
    };
    for args in [
        vec!["exp", "submit", "--config", "x=1", "--hypothesis", "h"],
        vec!["exp", "submit", "--config", "nope=1", "--hypothesis", "h"],
        vec!["exp", "status", "99"],
        vec!["loop", "run"],
        vec!["check", "--bogus-flag"],
        vec!["ledger", "events", "--json", "--limit", "x"],
    ] {
        let (b, s) = (w.agent_run(&args), single(&args));
        assert_eq!(
            code(&b),
            code(&s),
            "{args:?}\nbroker: {}\nsingle: {}",
            out_text(&b),
            out_text(&s)
        );
        assert_eq!(
            String::from_utf8_lossy(&b.stderr).lines().next(),
            String::from_utf8_lossy(&s.stderr).lines().next(),
            "{args:?}"
        );
    }
    let (b, s) = (
        w.agent_run(&["check", "--json"]),
        single(&["check", "--json"]),
    );
    assert_eq!(code(&b), 0, "{}", out_text(&b));
    let (mut bj, mut sj): (Value, Value) = (
        serde_json::from_slice(&b.stdout).unwrap(),
        serde_json::from_slice(&s.stdout).unwrap(),
    );
    for v in [&mut bj, &mut sj] {
        if let Some(o) = v.as_object_mut() {
            // Which machine protections apply is probed as each side's user.
            o.remove("limits_here");
            o.remove("approval_protections");
        }
    }
    assert_eq!(bj, sj, "check --json differs between the modes");

    // SIGINT on the client: the broker's loop stops at its next step, exit 130, and says so.
    let o = w.human_run(&["approve", "--secret-fd", "3"]);
    assert!(o.status.success(), "{}", out_text(&o));
    let run = w
        .agent()
        .args(["loop", "run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    loop {
        let st = ok_json(&w.agent_run(&["loop", "status", "--json"]));
        if st["in_flight"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{st}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // setpriv execs mlres in place, so the child's pid is the client's.
    // SAFETY: kill with a valid pid and signal.
    unsafe {
        libc::kill(run.id() as i32, libc::SIGINT);
    }
    let o = run.wait_with_output().unwrap();
    assert_eq!(code(&o), 130, "{}", out_text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("interrupted by SIGINT"),
        "{}",
        out_text(&o)
    );
}
