//! The `mlres` binary: the only place that reads the environment, talks to the terminal and
//! chooses exit codes. Everything else is delegated to the engine (`mlres-engine`), the pure
//! policy (`mlres-policy`), the ledger (`mlres-ledger`), the backends (`mlres-backends`) and the
//! built-in trainer (`mlres-train`). It must not contain budget rules or SQL.

mod broker;
mod cli;
mod commands;
mod data;
mod data_audit;
mod data_hf;
mod demo;
mod guard;
mod hub;
mod jobs;
mod mcp;
mod print;
mod research;
mod secret;
mod setup;
mod signals;
mod templates;
mod train;
mod view;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use mlres_engine::{EngineConfig, EngineError};

pub use cli::Cli;

/// Exit codes (documented in `mlres --help`).
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const REFUSED: u8 = 3;
    pub const TAMPERED: u8 = 4;
    pub const JOB_FAILED: u8 = 5;
    pub const FINDINGS: u8 = 6;
}

/// An error that already knows its exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let error: anyhow::Error = e.into();
        let code = match error.downcast_ref::<EngineError>() {
            Some(e) if e.is_refusal() => exit::REFUSED,
            Some(e) if e.is_tampered() => exit::TAMPERED,
            _ => match error.downcast_ref::<mlres_ledger::LedgerError>() {
                Some(mlres_ledger::LedgerError::Tampered(_)) => exit::TAMPERED,
                _ => exit::ERROR,
            },
        };
        Failure { code, error }
    }
}

pub(crate) fn fail(code: u8, error: anyhow::Error) -> Failure {
    Failure { code, error }
}

/// Entry point used by `main`.
pub fn run() -> ExitCode {
    // The job sandbox's inner stage (started by bubblewrap inside the job's namespaces, see
    // mlres_backends::jail_main): before clap, so nothing else runs in front of the job.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "__jail") {
        return jail(&args[2..]);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    if !matches!(cli.command, cli::Command::Supervise { .. }) {
        default_sigpipe();
    }
    if !broker::runs_locally(&cli.command) {
        match broker::configured_socket() {
            Ok(Some(socket)) => {
                return match broker::client::forward(&socket, &args, &cli.command) {
                    Ok(code) => ExitCode::from(code),
                    Err(f) => {
                        eprintln!("error: {:#}", f.error);
                        ExitCode::from(f.code)
                    }
                };
            }
            Ok(None) => {}
            Err(f) => {
                eprintln!("error: {:#}", f.error);
                return ExitCode::from(f.code);
            }
        }
    }
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

/// The process environment as text, decided per variable: a variable whose name or value is not
/// UTF-8 cannot be meant for mlres (nor passed on as text), so it is left out, unless mlres or
/// Hugging Face tooling would read it (`MLRES_*`, `HF_*`, `HUGGING_FACE_*`): then silently
/// ignoring it could change what is spent or which token is used, so it is an error naming it.
pub(crate) fn utf8_env() -> Result<BTreeMap<String, String>, Failure> {
    utf8_env_from(std::env::vars_os())
}

fn utf8_env_from(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<BTreeMap<String, String>, Failure> {
    let mut out = BTreeMap::new();
    for (k, v) in vars {
        match (k.into_string(), v.into_string()) {
            (Ok(k), Ok(v)) => {
                out.insert(k, v);
            }
            (Ok(k), Err(_))
                if ["MLRES_", "HF_", "HUGGING_FACE_"]
                    .iter()
                    .any(|p| k.starts_with(p)) =>
            {
                return Err(fail(
                    exit::USAGE,
                    anyhow::anyhow!("environment variable {k} is not valid UTF-8; fix or unset it"),
                ));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Restores the default action of SIGPIPE, which the Rust runtime sets to "ignore": a command
/// whose reader goes away (`mlres ledger events | head`) then ends quietly, like any Unix
/// filter, instead of panicking in `println!` with "failed printing to stdout". Safe for mlres:
/// nothing here writes to a child's stdin, sockets are written with MSG_NOSIGNAL by std, and the
/// ledger is crash-safe (a SIGPIPE mid-command is no worse than a SIGKILL). The detached job
/// supervisor keeps ignoring it: its stdio is not a terminal a user reads.
fn default_sigpipe() {
    // SAFETY: `signal` with SIG_DFL installs no handler code, so no async-signal-safety
    // requirement arises; it is called on the main thread before any other thread is started
    // by mlres, and changing a signal disposition has no memory-safety effect.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Resolves the state directory: `--state-dir`, `$MLRES_STATE_DIR`, `$XDG_STATE_HOME/mlres`,
/// `~/.local/state/mlres`.
pub(crate) fn state_dir(flag: &Option<PathBuf>) -> Result<PathBuf, Failure> {
    if let Some(p) = flag {
        return Ok(p.clone());
    }
    if let Some(p) = std::env::var_os("MLRES_STATE_DIR").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p).join("mlres"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".local/state/mlres")),
        None => Err(fail(
            exit::ERROR,
            anyhow::anyhow!("cannot find a state directory: set MLRES_STATE_DIR or HOME"),
        )),
    }
}

pub(crate) fn engine_config(cli: &Cli) -> Result<EngineConfig, Failure> {
    let exe = std::env::current_exe().map_err(|e| {
        fail(
            exit::ERROR,
            anyhow::anyhow!("cannot locate the mlres executable: {e}"),
        )
    })?;
    let parent_env = utf8_env()?;
    let hf = jobs::hf_settings(&parent_env);
    let mut slurm = slurm_settings(&parent_env);
    if let Some(s) = slurm.as_mut() {
        let rest = slurm_rest(&parent_env).map_err(|e| fail(exit::USAGE, anyhow::anyhow!(e)))?;
        if let Some((r, t)) = rest {
            s.tools.rest = Some(r);
            s.rest_token = Some(t);
        }
    }
    let bwrap = bwrap_override(&parent_env);
    let keep_attempts = keep_attempts(&parent_env)?;
    let local_gpus = local_gpus(&parent_env).map_err(|e| fail(exit::USAGE, anyhow::anyhow!(e)))?;
    Ok(EngineConfig {
        state_dir: state_dir(&cli.state_dir)?,
        exe,
        parent_env,
        hf,
        bwrap,
        keep_attempts,
        local_gpus,
        slurm,
    })
}

/// The slurm settings from the environment: the commands on `PATH` (or in
/// `MLRES_SLURM_BIN_DIR`), `SLURM_CONF` (passed to every Slurm command, which otherwise get a
/// cleared environment), and the intervals `MLRES_SLURM_RECONCILE_SECS`,
/// `MLRES_SLURM_POLL_MS` and `MLRES_SLURM_OVERRUN_GRACE_SECS`. `None` without `sbatch`.
pub(crate) fn slurm_settings(
    env: &BTreeMap<String, String>,
) -> Option<mlres_engine::SlurmSettings> {
    let conf = env
        .get("SLURM_CONF")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let tools = match env.get("MLRES_SLURM_BIN_DIR").filter(|v| !v.is_empty()) {
        Some(d) => {
            let t = mlres_backends::SlurmTools::in_dir(Path::new(d), conf);
            t.sbatch.is_file().then_some(t)?
        }
        None => mlres_backends::SlurmTools::from_path(
            env.get("PATH").map(String::as_str).unwrap_or(""),
            conf,
        )?,
    };
    let mut s = mlres_engine::SlurmSettings::new(tools);
    let num = |k: &str| {
        env.get(k)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    if let Some(v) = num("MLRES_SLURM_RECONCILE_SECS") {
        s.reconcile_interval = std::time::Duration::from_secs_f64(v);
    }
    if let Some(v) = num("MLRES_SLURM_POLL_MS") {
        s.poll_ms = v as u64;
    }
    if let Some(v) = num("MLRES_SLURM_OVERRUN_GRACE_SECS") {
        s.overrun_grace_secs = v as u64;
    }
    Some(s)
}

/// The optional slurmrestd path: `MLRES_SLURM_REST_URL` (`http://127.0.0.1:PORT`, loopback
/// only), `MLRES_SLURM_USER` (`X-SLURM-USER-NAME`; default `USER`, else `root`) and the token
/// from `MLRES_SLURM_JWT`, else `SLURM_JWT` (what `scontrol token` prints), else the file named
/// by `MLRES_SLURM_JWT_FILE`. `Ok(None)` without a URL (the commands are used); an error when
/// the URL is bad or no token is given. Error messages never contain the token.
pub(crate) fn slurm_rest(
    env: &BTreeMap<String, String>,
) -> Result<Option<(mlres_backends::SlurmRest, mlres_backends::SlurmToken)>, String> {
    let Some(url) = env
        .get("MLRES_SLURM_REST_URL")
        .filter(|v| !v.trim().is_empty())
    else {
        return Ok(None);
    };
    let url = mlres_backends::SlurmRest::parse_url(url)
        .map_err(|e| format!("MLRES_SLURM_REST_URL={e}"))?;
    let nonempty = |k: &str| env.get(k).filter(|v| !v.trim().is_empty()).cloned();
    let token = match nonempty("MLRES_SLURM_JWT").or_else(|| nonempty("SLURM_JWT")) {
        Some(t) => t,
        None => match nonempty("MLRES_SLURM_JWT_FILE") {
            Some(f) => std::fs::read_to_string(&f).map_err(|e| {
                format!(
                    "MLRES_SLURM_JWT_FILE={f}: cannot read the token: {}",
                    e.kind()
                )
            })?,
            None => {
                return Err(
                    "MLRES_SLURM_REST_URL is set but no token is: set MLRES_SLURM_JWT (or \
                            SLURM_JWT) or MLRES_SLURM_JWT_FILE (from `scontrol token`)"
                        .into(),
                );
            }
        },
    };
    let token = mlres_backends::SlurmToken::new(&token);
    if token.expose().is_empty()
        || token
            .expose()
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err("the slurmrestd token is empty or not one word".into());
    }
    let user = nonempty("MLRES_SLURM_USER")
        .or_else(|| nonempty("USER"))
        .unwrap_or_else(|| "root".into());
    Ok(Some((mlres_backends::SlurmRest { url, user }, token)))
}

/// `MLRES_KEEP_ATTEMPTS`: how many settled, not-kept experiments per campaign keep their
/// attempt directories (logs, work dir); default 100, at least 10.
pub(crate) fn keep_attempts(env: &BTreeMap<String, String>) -> Result<usize, Failure> {
    let Some(v) = env.get("MLRES_KEEP_ATTEMPTS").filter(|v| !v.is_empty()) else {
        return Ok(mlres_engine::DEFAULT_KEEP_ATTEMPTS);
    };
    match v.trim().parse::<usize>() {
        Ok(n) if n >= mlres_engine::MIN_KEEP_ATTEMPTS => Ok(n),
        _ => Err(fail(
            exit::USAGE,
            anyhow::anyhow!(
                "MLRES_KEEP_ATTEMPTS={v:?}: expected a whole number of at least {} (default {})",
                mlres_engine::MIN_KEEP_ATTEMPTS,
                mlres_engine::DEFAULT_KEEP_ATTEMPTS
            ),
        )),
    }
}

/// `MLRES_LOCAL_GPUS`: the GPUs local jobs may be given, comma-separated as
/// `CUDA_VISIBLE_DEVICES` names them (`0,1`, or UUIDs). Unset or empty: none, and local jobs
/// get an empty `CUDA_VISIBLE_DEVICES`. Only a human sets it (the guard refuses an agent).
pub(crate) fn local_gpus(env: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
    let Some(v) = env.get("MLRES_LOCAL_GPUS").filter(|v| !v.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    let ids: Vec<String> = v.split(',').map(|s| s.trim().to_string()).collect();
    if let Some(bad) = ids.iter().find(|i| {
        i.is_empty()
            || !i
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':' || c == '.')
    }) {
        return Err(format!(
            "MLRES_LOCAL_GPUS={v:?}: {bad:?} is not a GPU id; write e.g. MLRES_LOCAL_GPUS=0,1"
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = ids.iter().find(|i| !seen.insert(i.as_str())) {
        return Err(format!("MLRES_LOCAL_GPUS={v:?}: GPU {dup} is listed twice"));
    }
    Ok(ids)
}

/// `MLRES_BWRAP`: use bubblewrap only at this path instead of looking in /usr/bin,
/// /usr/local/bin and /bin. A path that does not exist makes local jobs run under the
/// fallback sandbox (Landlock + seccomp), which is how the tests exercise it.
pub(crate) fn bwrap_override(env: &BTreeMap<String, String>) -> Option<std::path::PathBuf> {
    env.get("MLRES_BWRAP")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
}

/// How to tell the user to run mlres again, as they can type it from the directory they are in:
/// `mlres` when that name on `$PATH` is this very executable; `cargo run --release --` (or
/// `cargo run --`) when cargo started us (`cargo run` sets `$CARGO` for the program it runs);
/// otherwise this executable's path.
pub(crate) fn invocation() -> String {
    // After the binary is replaced on disk (an upgrade, a rebuild) Linux reports the running
    // one as "<path> (deleted)"; the path is still what to type.
    let exe = std::env::current_exe().ok().map(|p| {
        let s = p.to_string_lossy();
        match s.strip_suffix(" (deleted)") {
            Some(live) => std::path::PathBuf::from(live),
            None => p,
        }
    });
    let canon = |p: &std::path::Path| std::fs::canonicalize(p).ok();
    let me = exe.as_deref().and_then(canon);
    if let (Some(me), Some(path)) = (&me, std::env::var_os("PATH")) {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("mlres");
            if candidate.is_file() {
                // The first `mlres` on PATH is what the shell would run.
                if canon(&candidate).as_ref() == Some(me) {
                    return "mlres".into();
                }
                break;
            }
        }
    }
    if let Some(exe) = &exe {
        let under_cargo =
            std::env::var_os("CARGO").is_some() && std::env::var_os("CARGO_MANIFEST_DIR").is_some();
        if under_cargo {
            let release = exe
                .parent()
                .and_then(|d| d.file_name())
                .is_some_and(|n| n == "release");
            return if release {
                "cargo run --release --".into()
            } else {
                "cargo run --".into()
            };
        }
        return shell_word(&exe.to_string_lossy());
    }
    "mlres".into()
}

/// `s` quoted for a POSIX shell when it needs quoting.
pub(crate) fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

pub(crate) fn user_name() -> String {
    if let Some(s) = broker::served() {
        return s.peer_name.clone();
    }
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", uid_from_proc()))
}

fn uid_from_proc() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_else(|| "?".into())
}

fn jail(args: &[std::ffi::OsString]) -> ExitCode {
    match mlres_backends::jail_main(args) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(125)),
        Err(e) => {
            eprintln!("mlres __jail: {e}");
            ExitCode::from(125)
        }
    }
}

fn dispatch(cli: Cli) -> Result<u8, Failure> {
    use cli::{Command, ExpCmd, LedgerCmd, LoopCmd, TrainCmd};
    match &cli.command {
        Command::Supervise {
            dir,
            bwrap,
            bwrap_ok,
            sandbox_fallback,
            reattach,
        } => {
            let chosen = match (bwrap_ok, sandbox_fallback) {
                (true, _) => Some(Ok(())),
                (false, Some(reason)) => Some(Err(reason.clone())),
                (false, None) => None,
            };
            commands::supervise(dir, bwrap.as_deref(), chosen, *reattach)
        }
        Command::Train(TrainCmd::Sft(a)) => train::sft(a),
        Command::Doctor(a) => commands::doctor(&cli, a.json),
        Command::Data(d) => data::run(&cli, d),
        Command::Hub(h) => hub::run(&cli, h),
        Command::Jobs(j) => jobs::run(&cli, j),
        Command::Docs(d) => research::docs(d),
        Command::Papers(p) => research::papers(p),
        Command::Github(g) => research::github(g),
        Command::Mcp => mcp::run(&cli),
        Command::Report(a) => view::report(&cli, a),
        Command::Serve(a) => view::serve(&cli, a),
        Command::Guard(a) => Ok(guard::run(&cli, a)),
        Command::Setup(cli::SetupCmd::Claude(a)) => setup::claude(&cli, a),
        Command::Setup(cli::SetupCmd::Approver(a)) => commands::setup_approver(&cli, a),
        Command::Setup(cli::SetupCmd::Broker(a)) => broker::setup::setup(&cli, a),
        Command::Broker(cli::BrokerCmd::Serve(a)) => broker::serve::run(&cli, a),
        Command::Broker(cli::BrokerCmd::Login(a)) => broker::setup::login(a),
        Command::Broker(cli::BrokerCmd::Status(a)) => broker::setup::status(a.json),
        Command::Demo(a) => demo::run(&cli, a),
        Command::Init(a) => match a.template {
            None => commands::init(&cli, a.force),
            Some(template) => templates::init(
                &cli,
                &templates::Request {
                    template,
                    lora: a.lora,
                    dataset: a.dataset.as_deref(),
                    model: &a.model,
                    python: &a.python,
                    gpus: a.gpus.unwrap_or(0),
                    force: a.force,
                },
            ),
        },
        Command::Check(a) => commands::check(&cli, a.json),
        Command::Approve(a) => commands::approve(&cli, a),
        Command::Loop(LoopCmd::Run(a)) => commands::loop_run(&cli, a),
        Command::Loop(LoopCmd::Status(a)) => commands::loop_status(&cli, a),
        Command::Loop(LoopCmd::Stop(a)) => commands::loop_stop(&cli, a),
        Command::Exp(ExpCmd::Suggest(a)) => commands::exp_suggest(&cli, a),
        Command::Exp(ExpCmd::Submit(a)) => commands::exp_submit(&cli, a),
        Command::Exp(ExpCmd::Status(a)) => commands::exp_status(&cli, a.id, a.json),
        Command::Exp(ExpCmd::Wait(a)) => commands::exp_wait(&cli, a),
        Command::Exp(ExpCmd::Evaluate(a)) => commands::exp_evaluate(&cli, a.id, a.json),
        Command::Exp(ExpCmd::Logs(a)) => commands::exp_logs(&cli, a),
        Command::Exp(ExpCmd::Artifacts(a)) => commands::exp_artifacts(&cli, a),
        Command::Ledger(LedgerCmd::Verify(a)) => commands::ledger_verify(&cli, a.json),
        Command::Ledger(LedgerCmd::Events(a)) => commands::ledger_events(&cli, a),
        Command::Ledger(LedgerCmd::Export(a)) => commands::ledger_export(&cli, a.json),
    }
}
