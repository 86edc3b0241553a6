//! The `slurm` backend: the same attempt directory, claim and status protocol as the local
//! and hf-jobs backends, but the job runs on a Slurm cluster. The supervisor writes a job
//! script from typed values only (`slurmjob.json`: the approved argv, quoted word by word),
//! submits it with `sbatch --parsable` and an explicit `--export` list (the job gets exactly
//! the variables mlres granted, never the loop's environment), records the job id in
//! `remote_job.json`, follows the job through `squeue`, and reads its end from `sacct` (or
//! `scontrol show job` when accounting is off). The job's output files are streamed into the
//! attempt's capped, redacted `stdout.log`/`stderr.log` and removed at the end. A cancel
//! request becomes `scancel`. A requeued job is the same attempt and is followed; a supervisor
//! that died is replaced by one that re-attaches to the job by its id ([`supervise_slurm`]
//! with `reattach`).
//!
//! Every Slurm command is run with a cleared environment: only `PATH` and, when configured,
//! `SLURM_CONF` (plus, for `sbatch`, the job's granted variables).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::attempt::{
    CLAIM, LOCK, SPEC, STATUS, SUPERVISOR_PID, create_exclusive, io_err, read_opt, write_atomic,
};
use crate::hfjobs::{REMOTE_JOB, RemoteJobRef, RemoteStatus};
use crate::logcap::TailRing;
use crate::{BackendError, Outcome, Status, TAIL_BYTES, log_paths};

/// File of a slurm attempt: what to submit.
pub(crate) const SLURM_JOB: &str = "slurmjob.json";
/// Directory of the attempt that holds the job script and Slurm's raw output files.
const RAW_DIR: &str = "slurm";
/// Where the supervisor keeps how far it has read the raw output (for a re-attach).
const OFFSETS: &str = "slurm/offsets.json";
/// Namespace recorded with the job id in `remote_job.json` and the ledger.
pub const SLURM_NAMESPACE: &str = "slurm";
/// Prefix of the `--comment` mlres puts on every job.
pub const COMMENT_PREFIX: &str = "mlres:";
/// Prefix of the `--job-name`.
pub const NAME_PREFIX: &str = "mlres.";

/// Where the Slurm commands are and which cluster they talk to.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SlurmTools {
    /// `sbatch`.
    pub sbatch: PathBuf,
    /// `squeue`.
    pub squeue: PathBuf,
    /// `sacct`.
    pub sacct: PathBuf,
    /// `scontrol`.
    pub scontrol: PathBuf,
    /// `scancel`.
    pub scancel: PathBuf,
    /// `sinfo`.
    pub sinfo: PathBuf,
    /// `SLURM_CONF` for every command (`None`: Slurm's default configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_conf: Option<PathBuf>,
    /// slurmrestd to submit, follow and cancel through instead of `sbatch`/`scontrol`/`scancel`
    /// (`None`: the commands). The token is not here: it comes in [`SlurmCredentials`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest: Option<crate::slurmrest::SlurmRest>,
}

impl SlurmTools {
    /// The commands in `dir` (e.g. `/usr/bin`).
    pub fn in_dir(dir: &Path, slurm_conf: Option<PathBuf>) -> SlurmTools {
        SlurmTools {
            sbatch: dir.join("sbatch"),
            squeue: dir.join("squeue"),
            sacct: dir.join("sacct"),
            scontrol: dir.join("scontrol"),
            scancel: dir.join("scancel"),
            sinfo: dir.join("sinfo"),
            slurm_conf,
            rest: None,
        }
    }

    /// Each command looked up in the directories of `path` (a `PATH` value); `None` when
    /// `sbatch` is not found. The other commands are taken from `sbatch`'s directory when they
    /// are not on `path` themselves.
    pub fn from_path(path: &str, slurm_conf: Option<PathBuf>) -> Option<SlurmTools> {
        let find = |name: &str| {
            std::env::split_paths(path)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        };
        let sbatch = find("sbatch")?;
        let dir = sbatch.parent()?.to_path_buf();
        let or = |name: &str| find(name).unwrap_or_else(|| dir.join(name));
        Some(SlurmTools {
            squeue: or("squeue"),
            sacct: or("sacct"),
            scontrol: or("scontrol"),
            scancel: or("scancel"),
            sinfo: or("sinfo"),
            sbatch,
            slurm_conf,
            rest: None,
        })
    }

    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C")
            .stdin(Stdio::null());
        if let Some(conf) = &self.slurm_conf {
            c.env("SLURM_CONF", conf);
        }
        c
    }

    fn run(&self, program: &Path, args: &[&str]) -> Result<String, SlurmCmdError> {
        let out = self
            .command(program)
            .args(args)
            .output()
            .map_err(|e| SlurmCmdError {
                command: program.display().to_string(),
                message: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(SlurmCmdError {
                command: format!("{} {}", program.display(), args.join(" ")),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// A Slurm command that could not be run or failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{command}` failed: {message}")]
pub struct SlurmCmdError {
    /// The command line (no secret is ever on it).
    pub command: String,
    /// Its stderr, or why it could not start.
    pub message: String,
}

/// The mlres markers of a job (from its comment).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmMarker {
    /// Campaign id.
    pub campaign: String,
    /// Experiment id.
    pub exp: i64,
    /// Attempt.
    pub attempt: u32,
}

impl SlurmMarker {
    /// The `--comment` value: `mlres:campaign=<c>,exp=<e>,attempt=<a>`.
    pub fn comment(&self) -> String {
        format!(
            "{COMMENT_PREFIX}campaign={},exp={},attempt={}",
            self.campaign, self.exp, self.attempt
        )
    }

    /// The `--job-name` value: `mlres.<campaign>.e<exp>.a<attempt>`.
    pub fn job_name(&self) -> String {
        format!(
            "{NAME_PREFIX}{}.e{}.a{}",
            self.campaign, self.exp, self.attempt
        )
    }

    /// Parses a comment written by [`SlurmMarker::comment`]. A comment that starts with the
    /// prefix but does not parse gives `Some(Err(campaign if any))`.
    pub fn parse(comment: &str) -> Option<Result<SlurmMarker, Option<String>>> {
        let rest = comment.trim().strip_prefix(COMMENT_PREFIX)?;
        let mut campaign = None;
        let mut exp = None;
        let mut attempt = None;
        for kv in rest.split(',') {
            match kv.split_once('=') {
                Some(("campaign", v)) => campaign = Some(v.to_string()),
                Some(("exp", v)) => exp = v.parse::<i64>().ok(),
                Some(("attempt", v)) => attempt = v.parse::<u32>().ok(),
                _ => {}
            }
        }
        Some(match (campaign, exp, attempt) {
            (Some(campaign), Some(exp), Some(attempt)) => Ok(SlurmMarker {
                campaign,
                exp,
                attempt,
            }),
            (c, _, _) => Err(c),
        })
    }
}

/// What the supervisor submits (the content of `slurmjob.json`). Holds no secret value: only
/// the names of the variables whose values the supervisor gets in memory.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SlurmJobFile {
    /// Commands and cluster.
    pub tools: SlurmTools,
    /// Campaign, experiment, attempt.
    pub marker: SlurmMarker,
    /// argv (from the approved template), run with `exec` from the job script.
    pub command: Vec<String>,
    /// Literal environment variables (template `env`, `PATH`, `MLRES_*`).
    pub environment: BTreeMap<String, String>,
    /// Names of the variables whose values come from [`SlurmCredentials::values`].
    pub secret_names: Vec<String>,
    /// `--partition` (`None`: the cluster's default).
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--qos`.
    pub qos: Option<String>,
    /// `--cpus-per-task`.
    pub cpus: u32,
    /// `--mem`, MiB.
    pub mem_mib: u64,
    /// `--gres=gpu:N` when > 0.
    pub gpus: u32,
    /// `--time`, whole minutes.
    pub time_limit_mins: u64,
    /// Cap of `stdout.log` in bytes.
    pub log_cap_bytes: u64,
    /// Longest interval between two polls, milliseconds.
    pub poll_ms: u64,
}

/// Values of the job's granted variables (secrets and `pass_env`). Handed over in memory;
/// never written by mlres.
#[derive(Clone, Default)]
pub struct SlurmCredentials {
    /// By name.
    pub values: BTreeMap<String, String>,
    /// The slurmrestd token, when the job goes through slurmrestd.
    pub rest_token: Option<crate::slurmrest::SlurmToken>,
}

impl std::fmt::Debug for SlurmCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlurmCredentials")
            .field("values", &self.values.keys().collect::<Vec<_>>())
            .field("rest_token", &self.rest_token)
            .finish()
    }
}

/// Whether `dir` is a slurm attempt (has `slurmjob.json`).
pub fn is_slurm_attempt(dir: &Path) -> bool {
    dir.join(SLURM_JOB).is_file()
}

/// Read `slurmjob.json`.
pub fn read_slurm_job(dir: &Path) -> Result<SlurmJobFile, BackendError> {
    let path = dir.join(SLURM_JOB);
    let bytes = read_opt(&path)?.ok_or_else(|| BackendError::NotAnAttempt(dir.to_path_buf()))?;
    serde_json::from_slice(&bytes).map_err(|source| BackendError::Json { path, source })
}

fn validate(job: &SlurmJobFile) -> Result<(), BackendError> {
    let bad = |m: String| Err(BackendError::InvalidSpec(m));
    if job.command.is_empty() || job.command[0].is_empty() {
        return bad("command is empty".into());
    }
    if job.command.iter().any(|a| a.contains('\0')) {
        return bad("an argument contains a NUL byte".into());
    }
    if job.time_limit_mins == 0 {
        return bad("the time limit must be at least one minute".into());
    }
    if job.cpus == 0 {
        return bad("cpus must be at least 1".into());
    }
    for n in [&job.partition, &job.account, &job.qos]
        .into_iter()
        .flatten()
    {
        if !is_slurm_name(n) {
            return bad(format!("`{n}` is not a usable Slurm name"));
        }
    }
    for (k, v) in &job.environment {
        if !is_var_name(k) || v.contains('\0') {
            return bad(format!("invalid environment variable {k:?}"));
        }
    }
    for k in &job.secret_names {
        if !is_var_name(k) {
            return bad(format!("invalid variable name {k:?}"));
        }
    }
    Ok(())
}

/// Same rule as the policy's: letters, digits, `-`, `_`, `.`, not starting with `-`.
fn is_slurm_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn is_var_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Create a slurm attempt in `dir`: `slurmjob.json`, then the usual layout with `spec` as
/// `spec.json` (never run locally: the local supervisor refuses a slurm attempt).
pub fn prepare_slurm_attempt(
    dir: &Path,
    spec: &crate::LocalJobSpec,
    job: &SlurmJobFile,
) -> Result<(), BackendError> {
    validate(job)?;
    let json = serde_json::to_vec_pretty(job).map_err(|source| BackendError::Json {
        path: dir.join(SLURM_JOB),
        source,
    })?;
    crate::attempt::prepare_attempt_with(dir, spec, &[(SLURM_JOB, json)])
}

/// One word for `/bin/sh`, single-quoted: nothing in it is expanded.
pub fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// The job script: `exec` of the argv, every word quoted. Nothing else (no `#SBATCH` lines:
/// every option is an `sbatch` argument).
pub fn job_script(argv: &[String]) -> String {
    let words: Vec<String> = argv.iter().map(|w| sh_quote(w)).collect();
    format!(
        "#!/bin/sh\n# Written by mlres from the approved job template.\nexec {}\n",
        words.join(" ")
    )
}

/// The `sbatch` arguments of a job (without the script path). No value of a variable is on
/// it: `--export` lists names only.
pub fn sbatch_args(job: &SlurmJobFile, dir: &Path) -> Vec<String> {
    let raw = dir.join(RAW_DIR);
    // `%` starts a Slurm file name pattern; `%%` is a literal one.
    let lit = |p: PathBuf| p.display().to_string().replace('%', "%%");
    let mut a = vec![
        "--parsable".to_string(),
        format!("--job-name={}", job.marker.job_name()),
        format!("--comment={}", job.marker.comment()),
        format!("--chdir={}", dir.join(crate::attempt::WORK).display()),
        format!("--output={}", lit(raw.join("out.log"))),
        format!("--error={}", lit(raw.join("err.log"))),
        "--open-mode=append".to_string(),
        "--nodes=1".to_string(),
        "--ntasks=1".to_string(),
        format!("--cpus-per-task={}", job.cpus),
        format!("--mem={}M", job.mem_mib.max(1)),
        format!("--time={}", job.time_limit_mins),
        "--requeue".to_string(),
    ];
    if let Some(p) = &job.partition {
        a.push(format!("--partition={p}"));
    }
    if let Some(x) = &job.account {
        a.push(format!("--account={x}"));
    }
    if let Some(q) = &job.qos {
        a.push(format!("--qos={q}"));
    }
    if job.gpus > 0 {
        a.push(format!("--gres=gpu:{}", job.gpus));
    }
    let names = export_names(job);
    a.push(if names.is_empty() {
        "--export=NONE".to_string()
    } else {
        format!("--export={}", names.join(","))
    });
    a
}

fn export_names(job: &SlurmJobFile) -> Vec<String> {
    let mut names: Vec<String> = job
        .environment
        .keys()
        .chain(job.secret_names.iter())
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Submits the job: writes the script into the attempt and runs `sbatch` with exactly the
/// job's variables in its environment. Returns the job id.
pub fn submit(
    job: &SlurmJobFile,
    dir: &Path,
    creds: &SlurmCredentials,
) -> Result<String, SlurmCmdError> {
    let fail = |m: String| SlurmCmdError {
        command: "sbatch".into(),
        message: m,
    };
    let raw = dir.join(RAW_DIR);
    std::fs::create_dir_all(&raw).map_err(|e| fail(format!("{}: {e}", raw.display())))?;
    std::fs::create_dir_all(dir.join(crate::attempt::WORK))
        .map_err(|e| fail(format!("work dir: {e}")))?;
    let script = raw.join("job.sh");
    write_atomic(&script, job_script(&job.command).as_bytes()).map_err(|e| fail(e.to_string()))?;
    let mut c = job.tools.command(&job.tools.sbatch);
    for (k, v) in &job.environment {
        c.env(k, v);
    }
    for n in &job.secret_names {
        if let Some(v) = creds.values.get(n) {
            c.env(n, v);
        }
    }
    // PATH is the job's (it is in `environment`); sbatch itself is called by absolute path.
    let out = c
        .args(sbatch_args(job, dir))
        .arg(&script)
        .output()
        .map_err(|e| fail(format!("{}: {e}", job.tools.sbatch.display())))?;
    if !out.status.success() {
        return Err(fail(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text
        .trim()
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(fail(format!("unexpected sbatch output {:?}", text.trim())));
    }
    Ok(id)
}

/// Submits the job through slurmrestd: checks the token with a ping first (a refused token
/// submits nothing), then posts the same script and options as [`submit`].
fn submit_rest(
    job: &SlurmJobFile,
    dir: &Path,
    creds: &SlurmCredentials,
    rest: crate::slurmrest::SlurmRest,
    token: crate::slurmrest::SlurmToken,
) -> Result<String, crate::slurmrest::SlurmRestError> {
    let client = crate::slurmrest::SlurmRestClient::new(rest, token);
    client.ping()?;
    let malformed = |m: String| crate::slurmrest::SlurmRestError::Malformed(m);
    let raw = dir.join(RAW_DIR);
    std::fs::create_dir_all(&raw).map_err(|e| malformed(format!("{}: {e}", raw.display())))?;
    std::fs::create_dir_all(dir.join(crate::attempt::WORK))
        .map_err(|e| malformed(format!("work dir: {e}")))?;
    let script = job_script(&job.command);
    // Kept next to the raw output, as on the sbatch path (it holds no value).
    let _ = write_atomic(&raw.join("job.sh"), script.as_bytes());
    client.submit(job, dir, &script, creds)
}

/// A job as Slurm reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmJobInfo {
    /// Job id.
    pub id: String,
    /// `JobState` (`PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `TIMEOUT`, ...), without any
    /// `by <uid>` suffix.
    pub state: String,
    /// `Reason` (why pending, or why it ended).
    pub reason: String,
    /// Exit code of the batch script, when known.
    pub exit_code: Option<i32>,
    /// Signal that ended it, when known.
    pub signal: Option<i32>,
    /// Elapsed (run) time, seconds.
    pub elapsed_secs: u64,
    /// Time limit, seconds (when known).
    pub time_limit_secs: Option<u64>,
    /// Times the job was requeued.
    pub restarts: u32,
    /// Job name.
    pub name: String,
    /// Comment.
    pub comment: String,
    /// Partition.
    pub partition: String,
}

impl SlurmJobInfo {
    /// The job is over (and will not run again by itself).
    pub fn is_terminal(&self) -> bool {
        is_terminal_state(&self.state)
    }
}

/// Terminal Slurm job states.
pub fn is_terminal_state(state: &str) -> bool {
    matches!(
        state,
        "COMPLETED"
            | "FAILED"
            | "CANCELLED"
            | "TIMEOUT"
            | "NODE_FAIL"
            | "PREEMPTED"
            | "OUT_OF_MEMORY"
            | "BOOT_FAIL"
            | "DEADLINE"
            | "REVOKED"
            | "SPECIAL_EXIT"
    )
}

/// `[DD-]HH:MM:SS`, `MM:SS` or `UNLIMITED`/`INVALID` (None) as seconds.
pub fn parse_slurm_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (d.parse::<u64>().ok()?, r),
        None => (0, s),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let nums: Option<Vec<u64>> = parts.iter().map(|p| p.parse::<u64>().ok()).collect();
    let nums = nums?;
    let secs = match nums.as_slice() {
        [h, m, s] => h * 3600 + m * 60 + s,
        [m, s] => m * 60 + s,
        [m] if days == 0 => m * 60,
        _ => return None,
    };
    Some(days * 86400 + secs)
}

fn parse_exit(v: &str) -> (Option<i32>, Option<i32>) {
    match v.split_once(':') {
        Some((c, s)) => (c.parse().ok(), s.parse().ok().filter(|s: &i32| *s != 0)),
        None => (v.parse().ok(), None),
    }
}

fn base_state(s: &str) -> String {
    s.split_whitespace().next().unwrap_or("").to_string()
}

/// Parses one line of `scontrol -o show job` (`Key=Value` pairs separated by spaces; values
/// of the free-text keys we read never contain `=` in mlres' own jobs).
pub fn parse_scontrol_line(line: &str) -> Option<SlurmJobInfo> {
    let mut kv: BTreeMap<&str, String> = BTreeMap::new();
    let mut last: Option<&str> = None;
    for tok in line.split(' ') {
        match tok.split_once('=') {
            Some((k, v))
                if !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == ':' || c == '/') =>
            {
                kv.insert(k, v.to_string());
                last = Some(k);
            }
            _ => {
                // A value with a space (e.g. a Reason or Comment): belongs to the last key.
                if let Some(k) = last
                    && let Some(v) = kv.get_mut(k)
                    && !tok.is_empty()
                {
                    v.push(' ');
                    v.push_str(tok);
                }
            }
        }
    }
    let id = kv.get("JobId")?.clone();
    let (exit_code, signal) = kv
        .get("ExitCode")
        .map(|v| parse_exit(v))
        .unwrap_or((None, None));
    Some(SlurmJobInfo {
        id,
        state: base_state(kv.get("JobState").map(String::as_str).unwrap_or("")),
        reason: kv.get("Reason").cloned().unwrap_or_default(),
        exit_code,
        signal,
        elapsed_secs: kv
            .get("RunTime")
            .and_then(|v| parse_slurm_duration(v))
            .unwrap_or(0),
        time_limit_secs: kv.get("TimeLimit").and_then(|v| parse_slurm_duration(v)),
        restarts: kv.get("Restarts").and_then(|v| v.parse().ok()).unwrap_or(0),
        name: kv.get("JobName").cloned().unwrap_or_default(),
        comment: kv.get("Comment").cloned().unwrap_or_default(),
        partition: kv.get("Partition").cloned().unwrap_or_default(),
    })
}

/// The squeue format mlres reads: fields separated by `|`, the comment last (it may contain
/// `|` for jobs that are not mlres').
const SQUEUE_FORMAT: &str = "%i|%T|%r|%M|%l|%P|%j|%k";

/// Parses one line of `squeue -h -o` [`SQUEUE_FORMAT`].
pub fn parse_squeue_line(line: &str) -> Option<SlurmJobInfo> {
    let f: Vec<&str> = line.splitn(8, '|').collect();
    if f.len() < 8 || f[0].trim().is_empty() {
        return None;
    }
    let comment = f[7].trim();
    Some(SlurmJobInfo {
        id: f[0].trim().to_string(),
        state: base_state(f[1]),
        reason: f[2].trim().to_string(),
        exit_code: None,
        signal: None,
        elapsed_secs: parse_slurm_duration(f[3]).unwrap_or(0),
        time_limit_secs: parse_slurm_duration(f[4]),
        restarts: 0,
        partition: f[5].trim().to_string(),
        name: f[6].trim().to_string(),
        comment: if comment == "(null)" {
            String::new()
        } else {
            comment.to_string()
        },
    })
}

/// Parses the `sacct -X -n -P -o JobID,State,ExitCode,ElapsedRaw` line of `id`.
pub fn parse_sacct(out: &str, id: &str) -> Option<SlurmJobInfo> {
    // Several lines for a requeued job: the last one is the current run.
    out.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split('|').collect();
        (f.len() >= 4 && f[0].trim() == id).then(|| {
            let (exit_code, signal) = parse_exit(f[2].trim());
            SlurmJobInfo {
                id: id.to_string(),
                state: base_state(f[1]),
                exit_code,
                signal,
                elapsed_secs: f[3].trim().parse().unwrap_or(0),
                ..SlurmJobInfo::default()
            }
        })
    })
}

/// Slurm as seen from this machine.
pub struct SlurmClient {
    tools: SlurmTools,
    accounting: Option<bool>,
    rest: Option<crate::slurmrest::SlurmRestClient>,
}

impl SlurmClient {
    /// A client for `tools`.
    pub fn new(tools: SlurmTools) -> SlurmClient {
        SlurmClient {
            tools,
            accounting: None,
            rest: None,
        }
    }

    /// The same client, but following and cancelling jobs through slurmrestd (finished jobs
    /// the controller has forgotten are still read from accounting with `sacct`).
    pub fn with_rest(mut self, rest: crate::slurmrest::SlurmRestClient) -> SlurmClient {
        self.rest = Some(rest);
        self
    }

    /// The commands.
    pub fn tools(&self) -> &SlurmTools {
        &self.tools
    }

    /// Jobs in the controller (all users, all partitions, every state it still holds).
    pub fn list(&self) -> Result<Vec<SlurmJobInfo>, SlurmCmdError> {
        let out = self.tools.run(
            &self.tools.squeue,
            &["-h", "-a", "-t", "all", "-o", SQUEUE_FORMAT],
        )?;
        Ok(out.lines().filter_map(parse_squeue_line).collect())
    }

    /// One job from the controller (`scontrol -o show job`); `Ok(None)` when it does not know
    /// the id (any more).
    pub fn show(&self, id: &str) -> Result<Option<SlurmJobInfo>, SlurmCmdError> {
        match self
            .tools
            .run(&self.tools.scontrol, &["-o", "show", "job", id])
        {
            Ok(out) => Ok(out.lines().find_map(parse_scontrol_line)),
            Err(e) if e.message.contains("Invalid job id") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether the cluster keeps accounting (`AccountingStorageType` is not `none`), asked
    /// once.
    pub fn accounting(&mut self) -> Result<bool, SlurmCmdError> {
        if let Some(a) = self.accounting {
            return Ok(a);
        }
        let out = self.tools.run(&self.tools.scontrol, &["show", "config"])?;
        let a = config_value(&out, "AccountingStorageType")
            .is_some_and(|v| !v.is_empty() && !v.ends_with("/none"));
        self.accounting = Some(a);
        Ok(a)
    }

    /// A finished job from accounting (`sacct`, or `sacct -c` from the job completion log
    /// when accounting is off); `Ok(None)` when it has no record.
    pub fn accounted(&mut self, id: &str) -> Result<Option<SlurmJobInfo>, SlurmCmdError> {
        let fields = "JobID,State,ExitCode,ElapsedRaw";
        let args: Vec<&str> = if self.accounting()? {
            vec!["-X", "-n", "-P", "-j", id, "-o", fields]
        } else {
            vec!["-c", "-X", "-n", "-P", "-j", id, "-o", fields]
        };
        let out = self.tools.run(&self.tools.sacct, &args)?;
        Ok(parse_sacct(&out, id))
    }

    /// The job's current state: the controller's view, else accounting's.
    pub fn state(&mut self, id: &str) -> Result<Option<SlurmJobInfo>, SlurmCmdError> {
        if let Some(r) = &self.rest {
            match r.job(id) {
                Ok(Some(j)) => return Ok(Some(j)),
                Ok(None) => return self.accounted(id).or(Ok(None)),
                Err(e) => {
                    return Err(SlurmCmdError {
                        command: "slurmrestd".into(),
                        message: e.to_string(),
                    });
                }
            }
        }
        if let Some(j) = self.show(id)? {
            return Ok(Some(j));
        }
        self.accounted(id).or(Ok(None))
    }

    /// `scancel <id>`.
    pub fn cancel(&self, id: &str) -> Result<(), SlurmCmdError> {
        if let Some(r) = &self.rest {
            return r.cancel(id).map_err(|e| SlurmCmdError {
                command: "slurmrestd".into(),
                message: e.to_string(),
            });
        }
        self.tools.run(&self.tools.scancel, &[id]).map(|_| ())
    }

    /// What `mlres doctor` shows.
    pub fn info(&mut self) -> Result<SlurmInfo, SlurmCmdError> {
        let version = self
            .tools
            .run(&self.tools.sinfo, &["--version"])?
            .trim()
            .to_string();
        let parts = self
            .tools
            .run(&self.tools.sinfo, &["-h", "-o", "%R|%a|%D|%T"])?;
        let mut partitions: Vec<SlurmPartition> = Vec::new();
        for l in parts.lines() {
            let f: Vec<&str> = l.split('|').collect();
            if f.len() < 4 {
                continue;
            }
            let name = f[0].trim().to_string();
            match partitions.iter_mut().find(|p| p.name == name) {
                Some(p) => p.node_states.push(f[3].trim().to_string()),
                None => partitions.push(SlurmPartition {
                    name,
                    up: f[1].trim() == "up",
                    node_states: vec![f[3].trim().to_string()],
                }),
            }
        }
        let config = self.tools.run(&self.tools.scontrol, &["show", "config"])?;
        let storage = config_value(&config, "AccountingStorageType").unwrap_or_default();
        let jobcomp = config_value(&config, "JobCompType").unwrap_or_default();
        let accounting = !storage.is_empty() && !storage.ends_with("/none");
        self.accounting = Some(accounting);
        Ok(SlurmInfo {
            version,
            cluster: config_value(&config, "ClusterName").unwrap_or_default(),
            partitions,
            accounting,
            accounting_storage: storage,
            job_completion: jobcomp,
        })
    }
}

fn config_value(config: &str, key: &str) -> Option<String> {
    config.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

/// A partition as `mlres doctor` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SlurmPartition {
    /// Name.
    pub name: String,
    /// Its state is `up`.
    pub up: bool,
    /// States of its node groups (`idle`, `mixed`, `down`, ...).
    pub node_states: Vec<String>,
}

/// The cluster as `mlres doctor` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SlurmInfo {
    /// `sinfo --version` (e.g. `slurm-wlm 22.05.8`).
    pub version: String,
    /// `ClusterName`.
    pub cluster: String,
    /// Partitions this user sees.
    pub partitions: Vec<SlurmPartition>,
    /// Accounting storage is configured (`sacct` works without `-c`).
    pub accounting: bool,
    /// `AccountingStorageType`.
    pub accounting_storage: String,
    /// `JobCompType` (`jobcomp/filetxt` lets `sacct -c` read finished jobs).
    pub job_completion: String,
}

/// The outcome of a terminal job.
pub fn outcome_of(info: &SlurmJobInfo, cancel_sent: bool) -> (Outcome, String) {
    let id = &info.id;
    let code = match (info.exit_code, info.signal) {
        (_, Some(s)) => format!(" (signal {s})"),
        (Some(c), None) => format!(" (exit code {c})"),
        _ => String::new(),
    };
    match info.state.as_str() {
        "COMPLETED" if info.exit_code.unwrap_or(0) == 0 => {
            (Outcome::Completed, format!("Slurm job {id} completed"))
        }
        "TIMEOUT" => (
            Outcome::TimedOut,
            format!("Slurm job {id} was killed by its time limit{code}"),
        ),
        "CANCELLED" => (
            Outcome::Cancelled,
            if cancel_sent {
                format!("Slurm job {id} was cancelled by mlres")
            } else {
                format!("Slurm job {id} was cancelled outside mlres{code}")
            },
        ),
        "OUT_OF_MEMORY" => (
            Outcome::MemoryExceeded,
            format!("Slurm job {id} ran out of memory{code}"),
        ),
        "PREEMPTED" => (
            Outcome::Failed,
            format!("Slurm job {id} was preempted{code}"),
        ),
        "NODE_FAIL" | "BOOT_FAIL" => (
            Outcome::Failed,
            format!("Slurm job {id} failed with its node ({}){code}", info.state),
        ),
        other => (
            Outcome::Failed,
            format!("Slurm job {id} ended {other}{code}"),
        ),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Replaces granted values in a log line.
struct Redactor(Vec<(String, String)>);

impl Redactor {
    fn new(creds: &SlurmCredentials) -> Redactor {
        let mut v: Vec<(String, String)> = creds
            .values
            .iter()
            .filter(|(_, v)| v.len() >= 6)
            .map(|(k, v)| (v.clone(), format!("[REDACTED:{k}]")))
            .collect();
        if let Some(t) = creds.rest_token.as_ref().filter(|t| t.expose().len() >= 6) {
            v.push((t.expose().to_string(), "[REDACTED:slurmrestd token]".into()));
        }
        v.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        Redactor(v)
    }

    fn apply(&self, line: &str) -> String {
        let mut out = line.to_string();
        for (s, r) in &self.0 {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), r);
            }
        }
        out
    }
}

/// How far the raw output has been copied (persisted for a re-attach).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Offsets {
    out: u64,
    err: u64,
    out_written: u64,
    err_written: u64,
    out_truncated: bool,
    err_truncated: bool,
}

/// Copies complete lines of one raw output file into a capped, redacted log.
struct Stream {
    raw: PathBuf,
    file: File,
    offset: u64,
    written: u64,
    cap: u64,
    truncated: bool,
    tail: TailRing,
}

impl Stream {
    fn open(
        raw: PathBuf,
        log: &Path,
        offset: u64,
        written: u64,
        truncated: bool,
        cap: u64,
    ) -> std::io::Result<Stream> {
        let mut file = OpenOptions::new().create(true).append(true).open(log)?;
        // A re-attach keeps what was written; the file is cut back to what the offsets say.
        file.set_len(written)?;
        file.seek(SeekFrom::End(0))?;
        let mut tail = TailRing::new(TAIL_BYTES);
        if written > 0
            && let Ok(mut f) = File::open(log)
        {
            let _ = f.seek(SeekFrom::Start(written.saturating_sub(TAIL_BYTES as u64)));
            let mut b = Vec::new();
            let _ = f.read_to_end(&mut b);
            tail.push(&b);
        }
        Ok(Stream {
            raw,
            file,
            offset,
            written,
            cap,
            truncated,
            tail,
        })
    }

    fn push(&mut self, line: &str) {
        let mut b = line.as_bytes().to_vec();
        b.push(b'\n');
        self.tail.push(&b);
        if self.truncated {
            return;
        }
        let room = self.cap.saturating_sub(self.written);
        let n = (b.len() as u64).min(room) as usize;
        if n > 0 && self.file.write_all(&b[..n]).is_ok() {
            self.written += n as u64;
        }
        if n < b.len() {
            self.truncated = true;
        }
    }

    /// Copies new complete lines (all of it when `last`).
    fn pump(&mut self, redact: &Redactor, last: bool) {
        let Ok(mut f) = File::open(&self.raw) else {
            return;
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            // Cut back by someone: start over.
            self.offset = 0;
        }
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if f.take(8 << 20).read_to_end(&mut buf).is_err() || buf.is_empty() {
            return;
        }
        let end = if last {
            buf.len()
        } else {
            match buf.iter().rposition(|b| *b == b'\n') {
                Some(i) => i + 1,
                None => return,
            }
        };
        self.offset += end as u64;
        let text = String::from_utf8_lossy(&buf[..end]);
        for l in text.lines() {
            self.push(&redact.apply(l));
        }
    }
}

fn status(outcome: Outcome, detail: String, started: u64, remote: RemoteStatus) -> Status {
    let duration_ms = remote
        .running_secs
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| (s * 1000.0).ceil() as u64)
        .unwrap_or(0);
    Status {
        outcome,
        exit_code: None,
        signal: None,
        started_at_ms: started,
        ended_at_ms: now_ms(),
        duration_ms,
        cpu_ms: None,
        max_rss_kb: None,
        stdout_truncated: false,
        stderr_truncated: false,
        stdout_bytes: None,
        stderr_bytes: None,
        network_isolated: false,
        detail,
        notes: Vec::new(),
        remote: Some(Box::new(remote)),
    }
}

/// The supervisor of a slurm attempt: lock, claim, submit, follow, write `status.json`. Same
/// claim protocol as [`crate::supervise`]: returns [`BackendError::AlreadyClaimed`] without
/// submitting anything when the attempt was claimed (or voided) first.
///
/// With `reattach`, the attempt must already be claimed by a supervisor that died after it
/// submitted the job (`remote_job.json` exists, no `status.json`): this supervisor takes the
/// lock and follows that job by its id instead of submitting a new one.
pub fn supervise_slurm(
    dir: &Path,
    creds: &SlurmCredentials,
    reattach: bool,
) -> Result<Status, BackendError> {
    let dir = std::path::absolute(dir).map_err(io_err("resolve", dir))?;
    if !dir.join(SPEC).is_file() || !is_slurm_attempt(&dir) {
        return Err(BackendError::NotAnAttempt(dir));
    }
    crate::supervisor::install_signal_handlers();
    let lock_path = dir.join(LOCK);
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io_err("open", &lock_path))?;
    lock.lock().map_err(io_err("lock", &lock_path))?;
    let me = std::process::id();
    let claim_path = dir.join(CLAIM);
    let remote = crate::hfjobs::read_remote_job(&dir)?;
    let existing = if reattach {
        let claim = read_opt(&claim_path)?.unwrap_or_default();
        let claim = String::from_utf8_lossy(&claim).trim().to_string();
        match &remote {
            Some(r) if claim.starts_with("started") && !dir.join(STATUS).exists() => {
                Some(r.id.clone())
            }
            _ => return Err(BackendError::AlreadyClaimed { claim }),
        }
    } else {
        if !create_exclusive(&claim_path, format!("started {me}\n").as_bytes())? {
            let claim = read_opt(&claim_path)?.unwrap_or_default();
            return Err(BackendError::AlreadyClaimed {
                claim: String::from_utf8_lossy(&claim).trim().to_string(),
            });
        }
        None
    };
    write_atomic(&dir.join(SUPERVISOR_PID), format!("{me}\n").as_bytes())?;
    let status = run(&dir, creds, existing);
    let json = serde_json::to_vec_pretty(&status).map_err(|source| BackendError::Json {
        path: dir.join(STATUS),
        source,
    })?;
    write_atomic(&dir.join(STATUS), &json)?;
    drop(lock);
    Ok(status)
}

fn run(dir: &Path, creds: &SlurmCredentials, existing: Option<String>) -> Status {
    let started = now_ms();
    let job = match read_slurm_job(dir) {
        Ok(j) => j,
        Err(e) => {
            return status(
                Outcome::StartFailed,
                format!("cannot read {SLURM_JOB}: {e}"),
                started,
                RemoteStatus::default(),
            );
        }
    };
    let mut remote = RemoteStatus {
        namespace: SLURM_NAMESPACE.into(),
        ..RemoteStatus::default()
    };
    if let Err(e) = validate(&job) {
        return status(Outcome::StartFailed, e.to_string(), started, remote);
    }
    let reattached = existing.is_some();
    let id = match existing {
        Some(id) => id,
        None => {
            if crate::supervisor::cancel_requested(dir) {
                return status(
                    Outcome::Cancelled,
                    "cancelled before the job was submitted; nothing was started".into(),
                    started,
                    remote,
                );
            }
            let submitted = match (&job.tools.rest, &creds.rest_token) {
                (None, _) => submit(&job, dir, creds),
                (Some(_), None) => Err(SlurmCmdError {
                    command: "slurmrestd".into(),
                    message: "slurmrestd is configured but no token was given (MLRES_SLURM_JWT \
                              or MLRES_SLURM_JWT_FILE); nothing was submitted"
                        .into(),
                }),
                (Some(r), Some(t)) => {
                    submit_rest(&job, dir, creds, r.clone(), t.clone()).map_err(|e| SlurmCmdError {
                        command: "slurmrestd".into(),
                        message: e.to_string(),
                    })
                }
            };
            match submitted {
                Ok(id) => {
                    let rec = RemoteJobRef {
                        namespace: SLURM_NAMESPACE.into(),
                        id: id.clone(),
                    };
                    if let Ok(b) = serde_json::to_vec(&rec) {
                        let _ = write_atomic(&dir.join(REMOTE_JOB), &b);
                    }
                    id
                }
                Err(e) => {
                    remote.error_code = Some(if e.command == "slurmrestd" {
                        "slurmrestd".into()
                    } else {
                        "sbatch".into()
                    });
                    return status(
                        Outcome::StartFailed,
                        format!("Slurm refused the job: {}", e.message),
                        started,
                        remote,
                    );
                }
            }
        }
    };
    remote.job_id = Some(id.clone());
    let mut client = SlurmClient::new(job.tools.clone());
    if let (Some(r), Some(t)) = (&job.tools.rest, &creds.rest_token) {
        client = client.with_rest(crate::slurmrest::SlurmRestClient::new(r.clone(), t.clone()));
    }
    let logs = log_paths(dir);
    let offsets: Offsets = if reattached {
        read_opt(&dir.join(OFFSETS))
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    } else {
        Offsets::default()
    };
    let raw = dir.join(RAW_DIR);
    let open = |name: &str, log: &Path, off: u64, w: u64, t: bool| {
        Stream::open(raw.join(name), log, off, w, t, job.log_cap_bytes)
    };
    let (mut out, mut err) = match (
        open(
            "out.log",
            &logs.stdout,
            offsets.out,
            offsets.out_written,
            offsets.out_truncated,
        ),
        open(
            "err.log",
            &logs.stderr,
            offsets.err,
            offsets.err_written,
            offsets.err_truncated,
        ),
    ) {
        (Ok(o), Ok(e)) => (o, e),
        (Err(e), _) | (_, Err(e)) => {
            let _ = client.cancel(&id);
            return status(
                Outcome::StartFailed,
                format!("cannot create the attempt's logs: {e}; job {id} was cancelled"),
                started,
                remote,
            );
        }
    };
    let redact = Redactor::new(creds);
    let mut notes: Vec<String> = Vec::new();
    if reattached {
        notes.push(format!(
            "re-attached to Slurm job {id} after its first supervisor died"
        ));
    }
    let max_poll = Duration::from_millis(job.poll_ms.max(20));
    let mut poll = Duration::from_millis(50);
    let mut cancel_sent = false;
    let mut last: Option<SlurmJobInfo> = None;
    let mut failures = 0u32;
    let mut missing = 0u32;
    let mut restarts = 0u32;
    // Since when the job has been pending for a reason that means Slurm cannot run it as asked.
    let mut stuck_since: Option<std::time::Instant> = None;
    let mut stuck: Option<String> = None;
    // Far past its limit with no answer from Slurm: stop watching.
    let give_up =
        std::time::Instant::now() + Duration::from_secs(job.time_limit_mins * 60 * 4 + 3600);
    loop {
        if !cancel_sent && crate::supervisor::cancel_requested(dir) {
            match client.cancel(&id) {
                Ok(()) => cancel_sent = true,
                Err(e) => notes.push(format!("scancel failed (retrying): {e}")),
            }
        }
        out.pump(&redact, false);
        err.pump(&redact, false);
        save_offsets(dir, &out, &err);
        match client.state(&id) {
            Ok(Some(info)) => {
                failures = 0;
                missing = 0;
                if info.restarts > restarts {
                    for _ in restarts..info.restarts {
                        out.push(&format!(
                            "[mlres] Slurm requeued job {id}; it runs again under the same attempt"
                        ));
                    }
                    notes.push(format!(
                        "Slurm requeued job {id} ({} time(s))",
                        info.restarts
                    ));
                    restarts = info.restarts;
                }
                let done = info.is_terminal();
                let never = info.state == "PENDING" && cannot_run(&info.reason);
                last = Some(info);
                if done {
                    break;
                }
                if !never {
                    stuck_since = None;
                } else if stuck_since
                    .get_or_insert_with(std::time::Instant::now)
                    .elapsed()
                    >= STUCK_GRACE
                {
                    // It would wait forever (holding its reservation): cancel it.
                    let reason = last.as_ref().map(|i| i.reason.clone()).unwrap_or_default();
                    let _ = client.cancel(&id);
                    stuck = Some(reason);
                    break;
                }
            }
            Ok(None) => {
                missing += 1;
                if missing >= 30 {
                    notes.push(format!(
                        "Slurm no longer knows job {id} and accounting has no record of it"
                    ));
                    break;
                }
            }
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(20) {
                    notes.push(format!("status poll failed: {e}"));
                }
            }
        }
        if std::time::Instant::now() >= give_up {
            let _ = client.cancel(&id);
            notes.push("job still not finished long after its time limit; scancel sent".into());
            break;
        }
        std::thread::sleep(poll);
        poll = (poll * 2).min(max_poll);
    }
    // Slurm writes the last output before the job is marked done; read it all.
    out.pump(&redact, true);
    err.pump(&redact, true);
    let _ = out.file.sync_data();
    let _ = err.file.sync_data();
    let _ = write_atomic(&logs.stdout_tail, out.tail.contents());
    let _ = write_atomic(&logs.stderr_tail, err.tail.contents());
    // The raw files may hold granted values unredacted: they go once copied.
    let _ = std::fs::remove_file(raw.join("out.log"));
    let _ = std::fs::remove_file(raw.join("err.log"));
    let _ = std::fs::remove_file(dir.join(OFFSETS));
    remote.requeues = restarts;
    remote.gpus = job.gpus;
    let (outcome, mut detail, exit_code, signal) = match &last {
        _ if stuck.is_some() => (
            Outcome::StartFailed,
            format!(
                "Slurm cannot run job {id} as requested (pending: {}); it was cancelled",
                stuck.clone().unwrap_or_default()
            ),
            None,
            None,
        ),
        Some(info) if info.is_terminal() => {
            remote.stage = Some(info.state.clone());
            remote.message = Some(info.reason.clone()).filter(|r| !r.is_empty() && r != "None");
            remote.running_secs = Some(info.elapsed_secs as f64);
            let (o, d) = outcome_of(info, cancel_sent);
            (o, d, info.exit_code, info.signal)
        }
        Some(info) => {
            remote.stage = Some(info.state.clone());
            remote.running_secs = Some(info.elapsed_secs as f64);
            (
                Outcome::Failed,
                format!(
                    "Slurm job {id} was still {} when mlres stopped watching",
                    info.state
                ),
                None,
                None,
            )
        }
        None => (
            Outcome::Failed,
            format!("Slurm job {id} could not be followed"),
            None,
            None,
        ),
    };
    for n in notes {
        detail.push_str("; ");
        detail.push_str(&n);
    }
    let mut s = status(outcome, detail, started, remote);
    s.exit_code = exit_code;
    s.signal = signal;
    s.stdout_truncated = out.truncated;
    s.stderr_truncated = err.truncated;
    s
}

/// How long a job may stay pending for a reason that means Slurm cannot run it as asked
/// before it is cancelled (an operator may fix the partition meanwhile).
const STUCK_GRACE: Duration = Duration::from_secs(30);

/// Pending reasons that do not pass by themselves: the request does not fit the partition or
/// the association (`PartitionConfig`: more CPUs, memory or GPUs than any node has).
pub fn cannot_run(reason: &str) -> bool {
    matches!(
        reason.trim(),
        "PartitionConfig"
            | "PartitionNodeLimit"
            | "PartitionTimeLimit"
            | "BadConstraints"
            | "InvalidAccount"
            | "InvalidQOS"
    )
}

fn save_offsets(dir: &Path, out: &Stream, err: &Stream) {
    let o = Offsets {
        out: out.offset,
        err: err.offset,
        out_written: out.written,
        err_written: err.written,
        out_truncated: out.truncated,
        err_truncated: err.truncated,
    };
    if let Ok(b) = serde_json::to_vec(&o) {
        let _ = write_atomic(&dir.join(OFFSETS), &b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_leaves_nothing_to_the_shell() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        let s = job_script(&["echo".into(), "$(rm -rf /)".into(), "`x`;y".into()]);
        assert!(s.contains("exec 'echo' '$(rm -rf /)' '`x`;y'"), "{s}");
    }

    #[test]
    fn scontrol_and_squeue_lines_parse() {
        let l = "JobId=12 JobName=mlres.c1.e3.a1 UserId=root(0) JobState=FAILED Reason=NonZeroExitCode Dependency=(null) Requeue=1 Restarts=2 BatchFlag=1 ExitCode=3:0 RunTime=00:01:05 TimeLimit=00:02:00 Partition=debug Comment=mlres:campaign=c1,exp=3,attempt=1";
        let j = parse_scontrol_line(l).unwrap();
        assert_eq!(j.id, "12");
        assert_eq!(j.state, "FAILED");
        assert_eq!(j.exit_code, Some(3));
        assert_eq!(j.signal, None);
        assert_eq!(j.elapsed_secs, 65);
        assert_eq!(j.time_limit_secs, Some(120));
        assert_eq!(j.restarts, 2);
        assert_eq!(
            SlurmMarker::parse(&j.comment),
            Some(Ok(SlurmMarker {
                campaign: "c1".into(),
                exp: 3,
                attempt: 1
            }))
        );
        let q = parse_squeue_line("7|RUNNING|None|1-02:03:04|UNLIMITED|debug|n|a|b|c").unwrap();
        assert_eq!(q.elapsed_secs, 86400 + 2 * 3600 + 3 * 60 + 4);
        assert_eq!(q.time_limit_secs, None);
        assert_eq!(q.comment, "a|b|c");
        assert_eq!(
            parse_sacct("9|TIMEOUT|0:15|61\n", "9").map(|j| (j.state, j.signal, j.elapsed_secs)),
            Some(("TIMEOUT".into(), Some(15), 61))
        );
        assert_eq!(
            parse_scontrol_line("JobId=5 JobState=CANCELLED by 0 Reason=None")
                .unwrap()
                .state,
            "CANCELLED"
        );
    }

    #[test]
    fn markers_round_trip_and_bad_ones_are_seen() {
        let m = SlurmMarker {
            campaign: "c-9".into(),
            exp: 4,
            attempt: 2,
        };
        assert_eq!(SlurmMarker::parse(&m.comment()), Some(Ok(m)));
        assert_eq!(SlurmMarker::parse("other"), None);
        assert_eq!(
            SlurmMarker::parse("mlres:campaign=c-9,exp=x"),
            Some(Err(Some("c-9".into())))
        );
    }

    #[test]
    fn outcomes() {
        let j = |state: &str, code: Option<i32>| SlurmJobInfo {
            id: "1".into(),
            state: state.into(),
            exit_code: code,
            ..SlurmJobInfo::default()
        };
        assert_eq!(
            outcome_of(&j("COMPLETED", Some(0)), false).0,
            Outcome::Completed
        );
        assert_eq!(outcome_of(&j("FAILED", Some(3)), false).0, Outcome::Failed);
        assert_eq!(outcome_of(&j("TIMEOUT", None), false).0, Outcome::TimedOut);
        assert_eq!(outcome_of(&j("PREEMPTED", None), false).0, Outcome::Failed);
        assert!(
            outcome_of(&j("PREEMPTED", None), false)
                .1
                .contains("preempted")
        );
        assert_eq!(
            outcome_of(&j("CANCELLED", None), true).0,
            Outcome::Cancelled
        );
    }
}
