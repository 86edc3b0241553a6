//! A throwaway one-node Slurm cluster for tests: its own munged (own key and socket),
//! slurmctld and slurmd, on free loopback ports, under a temporary directory, with a unique
//! cluster name, two fake GPUs (`gres.conf` over plain files), a job completion log (`sacct -c`
//! reads finished jobs without a database), and partitions `debug` (default), `other` and
//! `urgent`, whose jobs preempt (cancel) the others'. [`SlurmCluster::start`] waits until
//! the node is `idle`; dropping the cluster cancels its jobs and stops the daemons it started,
//! by their PIDs only, even when the test panicked. [`SlurmCluster::start_with_rest`] also
//! turns on JWT authentication (a key file, `AuthAltTypes=auth/jwt`) and starts slurmrestd
//! (`SLURM_JWT=daemon`, OpenAPI v0.0.38) on a free loopback port; [`SlurmCluster::token`] gets
//! a token with `scontrol token`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where the Slurm and munge programs are expected.
const BIN_DIRS: &[&str] = &["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"];

/// Programs the cluster needs.
const PROGRAMS: &[&str] = &[
    "munged",
    "mungekey",
    "slurmctld",
    "slurmd",
    "sbatch",
    "squeue",
    "scontrol",
    "scancel",
    "sinfo",
    "sacct",
];

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A running throwaway cluster.
pub struct SlurmCluster {
    dir: tempfile::TempDir,
    children: Vec<(&'static str, Child)>,
    /// `ClusterName` (unique per cluster).
    pub name: String,
    /// The directory of `sbatch` & co.
    pub bin_dir: PathBuf,
    /// `NodeName` (the short host name).
    pub node: String,
    /// `http://127.0.0.1:PORT` of slurmrestd, when started with it.
    pub rest_url: Option<String>,
}

fn find(name: &str) -> Option<PathBuf> {
    BIN_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Why the cluster cannot be started here (`None`: every program is installed).
pub fn slurm_missing() -> Option<String> {
    let missing: Vec<&str> = PROGRAMS
        .iter()
        .copied()
        .filter(|p| find(p).is_none())
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "Slurm is not installed here (missing: {}); install it with `apt-get install -y slurm-wlm munge`",
            missing.join(", ")
        )
    })
}

/// Why a cluster with slurmrestd cannot be started here (`None`: it can).
pub fn slurmrestd_missing() -> Option<String> {
    slurm_missing().or_else(|| {
        find("slurmrestd").is_none().then(|| {
            "slurmrestd is not installed here; install it with `apt-get install -y slurmrestd`"
                .to_string()
        })
    })
}

/// `Some(cluster)`, or `None` with a loud message on stderr when Slurm is not installed and
/// this is not CI. Under CI (`CI` set) a missing Slurm fails the test.
pub fn cluster_or_skip(test: &str) -> Option<SlurmCluster> {
    if let Some(why) = slurm_missing() {
        if std::env::var_os("CI").is_some() {
            panic!("{test}: {why} (CI is set, so Slurm must be present)");
        }
        eprintln!("\n!!!!! SKIPPED {test}: {why} !!!!!\n");
        return None;
    }
    Some(SlurmCluster::start().unwrap_or_else(|e| panic!("{test}: {e}")))
}

fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn short_hostname() -> String {
    let out = Command::new("hostname").arg("-s").output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => "localhost".into(),
    }
}

impl SlurmCluster {
    /// Writes the configuration and starts munged, slurmctld and slurmd; returns once the
    /// node is `idle` (or errors after 30 s, with the daemons' logs). A start that fails (a
    /// free port taken by a parallel test in between, say) is retried twice from scratch.
    pub fn start() -> Result<SlurmCluster, String> {
        SlurmCluster::start_inner(false)
    }

    /// Like [`SlurmCluster::start`], plus JWT authentication and slurmrestd (waits until it
    /// answers a ping with a token).
    pub fn start_with_rest() -> Result<SlurmCluster, String> {
        if find("slurmrestd").is_none() {
            return Err("slurmrestd is not installed here; install it with `apt-get install -y slurmrestd slurm-wlm-jwt-plugin`".into());
        }
        SlurmCluster::start_inner(true)
    }

    fn start_inner(rest: bool) -> Result<SlurmCluster, String> {
        let mut last = String::new();
        for _ in 0..3 {
            match SlurmCluster::start_once(rest) {
                Ok(c) => return Ok(c),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn start_once(rest: bool) -> Result<SlurmCluster, String> {
        if let Some(why) = slurm_missing() {
            return Err(why);
        }
        let dir = tempfile::Builder::new()
            .prefix("mlres-slurm-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let d = dir.path().to_path_buf();
        for sub in ["munge", "spool/ctld", "spool/d", "log", "run", "dev"] {
            std::fs::create_dir_all(d.join(sub)).map_err(|e| e.to_string())?;
        }
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(d.join("munge"), std::fs::Permissions::from_mode(0o711));
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755));
        for g in ["gpu0", "gpu1"] {
            std::fs::write(d.join("dev").join(g), b"").map_err(|e| e.to_string())?;
        }
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let name = format!("t{}x{n}", std::process::id());
        let node = short_hostname();
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let ctld_port = free_port().map_err(|e| e.to_string())?;
        let mut d_port = free_port().map_err(|e| e.to_string())?;
        while d_port == ctld_port {
            d_port = free_port().map_err(|e| e.to_string())?;
        }
        let p = |s: &str| d.join(s).display().to_string();
        let jwt = if rest {
            let mut key = [0u8; 32];
            std::io::Read::read_exact(
                &mut std::fs::File::open("/dev/urandom").map_err(|e| e.to_string())?,
                &mut key,
            )
            .map_err(|e| e.to_string())?;
            std::fs::write(d.join("jwt.key"), key).map_err(|e| e.to_string())?;
            let _ =
                std::fs::set_permissions(d.join("jwt.key"), std::fs::Permissions::from_mode(0o600));
            format!(
                "AuthAltTypes=auth/jwt\nAuthAltParameters=jwt_key={}\n",
                p("jwt.key")
            )
        } else {
            String::new()
        };
        let conf = format!(
            "ClusterName={name}\n\
             SlurmctldHost={node}(127.0.0.1)\n\
             SlurmUser=root\n\
             AuthType=auth/munge\n\
             CredType=cred/munge\n\
             AuthInfo=socket={munge_sock}\n\
             {jwt}\
             SlurmctldPort={ctld_port}\n\
             SlurmdPort={d_port}\n\
             StateSaveLocation={ctld_spool}\n\
             SlurmdSpoolDir={d_spool}\n\
             SlurmctldPidFile={ctld_pid}\n\
             SlurmdPidFile={d_pid}\n\
             SlurmctldLogFile={ctld_log}\n\
             SlurmdLogFile={d_log}\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core_Memory\n\
             GresTypes=gpu\n\
             JobCompType=jobcomp/filetxt\n\
             JobCompLoc={jobcomp}\n\
             ReturnToService=2\n\
             SchedulerType=sched/builtin\n\
             PreemptType=preempt/partition_prio\n\
             PreemptMode=CANCEL\n\
             NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=20000 Gres=gpu:2 State=UNKNOWN\n\
             PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP PriorityTier=1\n\
             PartitionName=other Nodes=ALL Default=NO MaxTime=INFINITE State=UP PriorityTier=1\n\
             PartitionName=urgent Nodes=ALL Default=NO MaxTime=INFINITE State=UP PriorityTier=10\n",
            munge_sock = p("munge/munge.sock"),
            ctld_spool = p("spool/ctld"),
            d_spool = p("spool/d"),
            ctld_pid = p("run/slurmctld.pid"),
            d_pid = p("run/slurmd.pid"),
            ctld_log = p("log/slurmctld.log"),
            d_log = p("log/slurmd.log"),
            jobcomp = p("log/jobcomp.txt"),
        );
        std::fs::write(d.join("slurm.conf"), conf).map_err(|e| e.to_string())?;
        std::fs::write(
            d.join("gres.conf"),
            format!("Name=gpu File={}\n", p("dev/gpu[0-1]")),
        )
        .map_err(|e| e.to_string())?;
        let bin_dir = find("sbatch")
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .ok_or("sbatch not found")?;
        let mut cluster = SlurmCluster {
            dir,
            children: Vec::new(),
            name,
            bin_dir,
            node,
            rest_url: None,
        };
        let key = d.join("munge/munge.key");
        let st = Command::new(find("mungekey").ok_or("mungekey")?)
            .arg("--create")
            .arg(format!("--keyfile={}", key.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| e.to_string())?;
        if !st.success() {
            return Err("mungekey --create failed".into());
        }
        cluster.spawn(
            "munged",
            Command::new(find("munged").ok_or("munged")?)
                .arg("-F")
                .arg("--force")
                .arg(format!("--key-file={}", key.display()))
                .arg(format!("--socket={}", p("munge/munge.sock")))
                .arg(format!("--pid-file={}", p("munge/munged.pid")))
                .arg(format!("--log-file={}", p("log/munged.log")))
                .arg(format!("--seed-file={}", p("munge/munged.seed"))),
        )?;
        cluster.wait_for(Duration::from_secs(10), "munged socket", |c| {
            c.path().join("munge/munge.sock").exists()
        })?;
        cluster.spawn(
            "slurmctld",
            Command::new(find("slurmctld").ok_or("slurmctld")?)
                .arg("-D")
                .arg("-i"),
        )?;
        cluster.wait_for(Duration::from_secs(20), "slurmctld answering", |c| {
            c.cmd("scontrol")
                .arg("ping")
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("is UP"))
        })?;
        let node = cluster.node.clone();
        cluster.spawn(
            "slurmd",
            // -N: the node name of the configuration, whatever gethostname says.
            Command::new(find("slurmd").ok_or("slurmd")?)
                .arg("-D")
                .arg("-N")
                .arg(&node),
        )?;
        cluster.wait_for(Duration::from_secs(30), "the node idle", |c| {
            c.cmd("sinfo")
                .args(["-h", "-o", "%T"])
                .output()
                .is_ok_and(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .any(|l| l.trim() == "idle")
                })
        })?;
        if rest {
            let port = free_port().map_err(|e| e.to_string())?;
            let mut c = Command::new(find("slurmrestd").ok_or("slurmrestd")?);
            c.args(["-a", "rest_auth/jwt", "-s", "openapi/v0.0.38"])
                .arg(format!("127.0.0.1:{port}"));
            cluster.spawn_env(
                "slurmrestd",
                &mut c,
                &[
                    ("SLURM_JWT", "daemon"),
                    ("SLURMRESTD_SECURITY", "disable_user_check"),
                ],
            )?;
            let url = format!("http://127.0.0.1:{port}");
            let token = cluster.token();
            cluster.wait_for(Duration::from_secs(20), "slurmrestd answering", |c| {
                c.curl_ping(port, &token)
            })?;
            cluster.rest_url = Some(url);
        }
        Ok(cluster)
    }

    fn spawn(&mut self, what: &'static str, cmd: &mut Command) -> Result<(), String> {
        self.spawn_env(what, cmd, &[])
    }

    fn spawn_env(
        &mut self,
        what: &'static str,
        cmd: &mut Command,
        extra: &[(&str, &str)],
    ) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join(format!("log/{what}.out")))
            .map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = cmd
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("SLURM_CONF", self.conf())
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {what}: {e}"))?;
        self.children.push((what, child));
        Ok(())
    }

    fn wait_for(
        &mut self,
        limit: Duration,
        what: &str,
        ok: impl Fn(&SlurmCluster) -> bool,
    ) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if ok(self) {
                return Ok(());
            }
            let dead = self
                .children
                .iter_mut()
                .find_map(|(name, c)| c.try_wait().ok().flatten().map(|st| (*name, st)));
            if let Some((name, st)) = dead {
                return Err(format!(
                    "{name} exited ({st}) while waiting for {what}:\n{}",
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("timed out waiting for {what}:\n{}", self.logs()))
    }

    /// A fresh slurmrestd token for `root` (`scontrol token`, one hour), without the
    /// `SLURM_JWT=` prefix.
    pub fn token(&self) -> String {
        let out = self.run("scontrol", &["token", "username=root", "lifespan=3600"]);
        out.trim()
            .strip_prefix("SLURM_JWT=")
            .unwrap_or(out.trim())
            .to_string()
    }

    /// Whether slurmrestd on `port` answers `/ping` with this token: a raw HTTP/1.0 request
    /// over a TCP socket (this crate has no HTTP client).
    fn curl_ping(&self, port: u16, token: &str) -> bool {
        use std::io::Read;
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let req = format!(
            "GET /slurm/v0.0.38/ping HTTP/1.0\r\nHost: 127.0.0.1\r\nX-SLURM-USER-NAME: root\r\nX-SLURM-USER-TOKEN: {token}\r\n\r\n"
        );
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf.starts_with("HTTP/1.1 200") || buf.starts_with("HTTP/1.0 200")
    }

    /// The temporary directory of the cluster.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `slurm.conf` (what `SLURM_CONF` must name).
    pub fn conf(&self) -> PathBuf {
        self.path().join("slurm.conf")
    }

    /// A Slurm client command (`sbatch`, `squeue`, ...) for this cluster, with a clean
    /// environment.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin_dir.join(program));
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("SLURM_CONF", self.conf())
            .stdin(Stdio::null());
        c
    }

    /// Runs a client command and returns its stdout (panics with its stderr on failure).
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let o = self
            .cmd(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            o.status.success(),
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Submits a script given as text (a "foreign" job, not mlres'); returns the job id.
    pub fn submit_script(&self, args: &[&str], script: &str) -> String {
        let path = self
            .path()
            .join(format!("foreign-{}.sh", SEQ.fetch_add(1, Ordering::SeqCst)));
        let mut f = std::fs::File::create(&path).expect("script");
        f.write_all(script.as_bytes()).expect("script");
        drop(f);
        let mut a: Vec<String> = vec!["--parsable".into()];
        a.extend(args.iter().map(|s| s.to_string()));
        a.push(format!("--output={}/foreign-%j.out", self.path().display()));
        a.push(path.display().to_string());
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        self.run("sbatch", &refs)
            .trim()
            .split(';')
            .next()
            .unwrap_or("")
            .to_string()
    }

    /// `JobState` of a job from `scontrol show job` (`None` when unknown).
    pub fn job_state(&self, id: &str) -> Option<String> {
        let o = self
            .cmd("scontrol")
            .args(["-o", "show", "job", id])
            .output()
            .ok()?;
        let s = String::from_utf8_lossy(&o.stdout).into_owned();
        s.split_whitespace()
            .find_map(|t| t.strip_prefix("JobState="))
            .map(str::to_string)
    }

    /// The daemons' logs (for failure messages).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for f in [
            "munged.out",
            "slurmctld.out",
            "slurmd.out",
            "slurmctld.log",
            "slurmd.log",
            "slurmrestd.out",
        ] {
            if let Ok(s) = std::fs::read_to_string(self.path().join("log").join(f)) {
                let tail: Vec<&str> = s.lines().rev().take(25).collect();
                out.push_str(&format!("--- {f}\n"));
                for l in tail.into_iter().rev() {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }
}

impl Drop for SlurmCluster {
    fn drop(&mut self) {
        // Jobs first (their steps are not children of ours), then the daemons, by PID.
        let _ = self
            .cmd("scancel")
            .args(["--full", "-u", "root"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            let o = self.cmd("squeue").args(["-h", "-o", "%i"]).output();
            match o {
                Ok(o) if o.status.success() && o.stdout.iter().all(|b| b.is_ascii_whitespace()) => {
                    break;
                }
                Ok(o) if o.status.success() => {}
                _ => break,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for (_, c) in self.children.iter_mut().rev() {
            term(c.id());
        }
        let until = Instant::now() + Duration::from_secs(5);
        for (_, c) in self.children.iter_mut().rev() {
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() < until => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Ok(None) => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                }
            }
        }
    }
}

/// SIGTERM to one PID of ours through `kill(1)` (this crate has no libc dependency).
fn term(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
