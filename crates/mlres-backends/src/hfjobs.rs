//! The `hf-jobs` backend: the same attempt directory and detached supervisor as the local
//! backend, but the job runs on Hugging Face Jobs. The supervisor builds the typed
//! [`mlres_hf::JobSpec`] from `hfjob.json` (never scheduled; no environment beyond what the
//! file lists; secret values only from [`HfCredentials`], never from a file), creates the job,
//! records its id in `remote_job.json`, streams its SSE logs into `stdout.log` (lossless
//! across reconnects, secret values redacted), forwards a cancel request to the API, treats
//! every terminal stage (including `DELETED`) as the end and writes `status.json` with the
//! API's `durations.runningSecs` in [`Status::remote`].

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mlres_hf::{Endpoint, HfClient, HfError, JobInfo, JobSpec, JobStage, RequestBudget, Token};
use serde::{Deserialize, Serialize};

use crate::attempt::{
    CLAIM, LOCK, SPEC, STATUS, SUPERVISOR_PID, create_exclusive, io_err, read_opt, write_atomic,
};
use crate::logcap::TailRing;
use crate::{BackendError, Outcome, Status, TAIL_BYTES, log_paths};

/// File of an hf-jobs attempt: what to create on the Jobs API.
pub(crate) const HF_JOB: &str = "hfjob.json";
/// File written by the supervisor once the remote job exists.
pub(crate) const REMOTE_JOB: &str = "remote_job.json";

/// What the supervisor asks the Jobs API to run (the content of `hfjob.json`). Holds no
/// secret values: only the names of the secrets the job gets.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct HfJobFile {
    /// Hub base URL (`HF_ENDPOINT`).
    pub endpoint: String,
    /// Namespace billed (from the envelope).
    pub namespace: String,
    /// Hardware flavor.
    pub flavor: String,
    /// Docker image (from the envelope's `images`).
    pub image: String,
    /// argv.
    pub command: Vec<String>,
    /// Literal environment variables.
    pub environment: BTreeMap<String, String>,
    /// Names of the secrets the job gets; their values come from [`HfCredentials::secrets`].
    pub secret_names: Vec<String>,
    /// Labels (campaign, experiment, attempt).
    pub labels: BTreeMap<String, String>,
    /// Hard timeout, seconds (sent as integer `timeoutSeconds`).
    pub timeout_secs: u64,
    /// Catalog price at submission, micro-USD per minute.
    pub micro_usd_per_minute: u64,
    /// Cap of `stdout.log` in bytes (the tail is kept in `stdout.tail.log`).
    pub log_cap_bytes: u64,
    /// Longest interval between two status polls, milliseconds.
    pub poll_ms: u64,
    /// API requests per minute shared with the loop (absent in files of older versions:
    /// no budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// The token-bucket file shared with the loop and the other supervisors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_file: Option<PathBuf>,
}

/// Credentials of the supervisor process: the API token and the secret values the job gets.
/// Handed over in memory (the binary reads them from its own environment); never written.
#[derive(Clone)]
pub struct HfCredentials {
    /// The token the supervisor talks to the API with.
    pub token: Token,
    /// Secret values by name (only names listed in `hfjob.json` are sent).
    pub secrets: BTreeMap<String, String>,
}

impl std::fmt::Debug for HfCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfCredentials")
            .field("token", &self.token)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// `remote_job.json`: the job the supervisor created.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemoteJobRef {
    /// Namespace.
    pub namespace: String,
    /// Job id.
    pub id: String,
}

/// The remote part of an hf-jobs attempt's [`Status`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct RemoteStatus {
    /// The job, if one was created.
    pub job_id: Option<String>,
    /// Namespace.
    pub namespace: String,
    /// Last stage seen (`COMPLETED`, `ERROR`, `CANCELED`, `DELETED`, ...).
    pub stage: Option<String>,
    /// `status.message` of the job.
    pub message: Option<String>,
    /// `durations.runningSecs` from the API (what is billed).
    pub running_secs: Option<f64>,
    /// Why the job could not be created: `payment_required` (402), `unauthorized`,
    /// `forbidden`, `not_found`, `bad_request`, `rate_limited`, `server`, `transport`, ...
    pub error_code: Option<String>,
    /// Catalog price used for settlement, micro-USD per minute.
    pub micro_usd_per_minute: u64,
    /// Log lines written to `stdout.log`.
    pub log_lines: usize,
    /// Reconnects of the log stream.
    pub log_reconnects: u32,
    /// slurm: times Slurm requeued the job (the same attempt ran again).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub requeues: u32,
    /// slurm: GPUs the job held (GPU-hours are settled as GPUs × `running_secs`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gpus: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Whether `dir` is an hf-jobs attempt (has `hfjob.json`).
pub fn is_hf_attempt(dir: &Path) -> bool {
    dir.join(HF_JOB).is_file()
}

/// Read `hfjob.json`.
pub fn read_hf_job(dir: &Path) -> Result<HfJobFile, BackendError> {
    let path = dir.join(HF_JOB);
    let bytes = read_opt(&path)?.ok_or_else(|| BackendError::NotAnAttempt(dir.to_path_buf()))?;
    serde_json::from_slice(&bytes).map_err(|source| BackendError::Json { path, source })
}

/// Read `remote_job.json` (`None` until the supervisor created the job).
pub fn read_remote_job(dir: &Path) -> Result<Option<RemoteJobRef>, BackendError> {
    let path = dir.join(REMOTE_JOB);
    match read_opt(&path)? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|source| BackendError::Json { path, source }),
    }
}

fn validate(job: &HfJobFile) -> Result<(), BackendError> {
    let bad = |m: String| Err(BackendError::InvalidSpec(m));
    if job.command.is_empty() || job.command[0].is_empty() {
        return bad("command is empty".into());
    }
    if job.timeout_secs == 0 {
        return bad("timeout_secs must be > 0".into());
    }
    if job.namespace.is_empty() || job.image.is_empty() || job.flavor.is_empty() {
        return bad("namespace, image and flavor are required".into());
    }
    Endpoint::parse(Some(&job.endpoint)).map_err(|e| BackendError::InvalidSpec(e.to_string()))?;
    Ok(())
}

/// Create an hf-jobs attempt in `dir` (must not exist or be empty): `hfjob.json` first, then
/// the usual layout with `spec` as `spec.json` (it carries the argv and timeout for tools that
/// read attempts; the supervisor never runs it locally because `hfjob.json` exists).
pub fn prepare_hf_attempt(
    dir: &Path,
    spec: &crate::LocalJobSpec,
    job: &HfJobFile,
) -> Result<(), BackendError> {
    validate(job)?;
    crate::attempt::prepare_attempt_with(dir, spec, &[(HF_JOB, job_json(dir, job)?)])
}

fn job_json(dir: &Path, job: &HfJobFile) -> Result<Vec<u8>, BackendError> {
    serde_json::to_vec_pretty(job).map_err(|source| BackendError::Json {
        path: dir.join(HF_JOB),
        source,
    })
}

/// The machine-readable class of an API error (see [`RemoteStatus::error_code`]).
pub fn error_code(e: &HfError) -> &'static str {
    match e {
        HfError::PaymentRequired { .. } => "payment_required",
        HfError::Unauthorized { .. } | HfError::NoToken => "unauthorized",
        HfError::Forbidden { .. } => "forbidden",
        HfError::NotFound { .. } => "not_found",
        HfError::BadRequest { .. } | HfError::Conflict { .. } | HfError::AlreadyExists(_) => {
            "bad_request"
        }
        HfError::RateLimited { .. } => "rate_limited",
        HfError::Server { .. } => "server",
        HfError::Transport(_) => "transport",
        _ => "other",
    }
}

/// The supervisor of an hf-jobs attempt: lock, claim, create the job, stream its logs, wait
/// for a terminal stage (forwarding a cancel), write `status.json`. Same claim protocol as
/// [`crate::supervise`]: returns [`BackendError::AlreadyClaimed`] without creating anything
/// when the attempt was claimed (or voided) first.
pub fn supervise_hf(dir: &Path, creds: &HfCredentials) -> Result<Status, BackendError> {
    let dir = std::path::absolute(dir).map_err(io_err("resolve", dir))?;
    if !dir.join(SPEC).is_file() || !is_hf_attempt(&dir) {
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
    if !create_exclusive(&claim_path, format!("started {me}\n").as_bytes())? {
        let claim = read_opt(&claim_path)?.unwrap_or_default();
        return Err(BackendError::AlreadyClaimed {
            claim: String::from_utf8_lossy(&claim).trim().to_string(),
        });
    }
    write_atomic(&dir.join(SUPERVISOR_PID), format!("{me}\n").as_bytes())?;
    let status = run(&dir, creds);
    let json = serde_json::to_vec_pretty(&status).map_err(|source| BackendError::Json {
        path: dir.join(STATUS),
        source,
    })?;
    write_atomic(&dir.join(STATUS), &json)?;
    drop(lock);
    Ok(status)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn status(outcome: Outcome, detail: String, started: u64, remote: RemoteStatus) -> Status {
    let ended = now_ms();
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
        ended_at_ms: ended,
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

/// Replaces secret values (and the API token) in a log line.
struct Redactor(Vec<(String, String)>);

impl Redactor {
    fn new(creds: &HfCredentials) -> Redactor {
        let mut v: Vec<(String, String)> = creds
            .secrets
            .iter()
            .filter(|(_, v)| v.len() >= 6)
            .map(|(k, v)| (v.clone(), format!("[REDACTED:{k}]")))
            .collect();
        v.push((
            creds.token.expose().to_string(),
            "[REDACTED:HF_TOKEN]".into(),
        ));
        v.retain(|(s, _)| s.len() >= 6);
        // Longest first so a value containing another is replaced whole.
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

/// Writes lines to `stdout.log` up to a cap; keeps the tail.
struct LogSink {
    file: File,
    cap: u64,
    written: u64,
    truncated: bool,
    tail: TailRing,
    lines: usize,
}

impl LogSink {
    fn push(&mut self, line: &str) {
        let mut b = line.as_bytes().to_vec();
        b.push(b'\n');
        self.tail.push(&b);
        self.lines += 1;
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
}

fn outcome_of(info: &JobInfo) -> (Outcome, String) {
    let msg = info.message.clone().unwrap_or_default();
    let with = |s: &str| {
        if msg.is_empty() {
            format!("job {} {s}", info.id)
        } else {
            format!("job {} {s}: {msg}", info.id)
        }
    };
    match &info.stage {
        JobStage::Completed => (Outcome::Completed, with("completed")),
        JobStage::Canceled => (Outcome::Cancelled, with("was canceled")),
        JobStage::Deleted => (Outcome::Failed, with("was deleted")),
        JobStage::Error => {
            let lower = msg.to_lowercase();
            if lower.contains("timed out") || lower.contains("timeout") {
                (Outcome::TimedOut, with("timed out"))
            } else {
                (Outcome::Failed, with("failed"))
            }
        }
        other => (Outcome::Failed, with(&format!("ended in stage {other}"))),
    }
}

fn exit_code_of(info: &JobInfo) -> Option<i32> {
    match info.stage {
        JobStage::Completed => Some(0),
        _ => {
            let m = info.message.as_deref()?;
            let (_, rest) = m.rsplit_once("exit code")?;
            rest.trim_start_matches([':', ' '])
                .split(|c: char| !c.is_ascii_digit() && c != '-')
                .next()?
                .parse()
                .ok()
        }
    }
}

fn run(dir: &Path, creds: &HfCredentials) -> Status {
    let started = now_ms();
    let job = match read_hf_job(dir) {
        Ok(j) => j,
        Err(e) => {
            return status(
                Outcome::StartFailed,
                format!("cannot read {HF_JOB}: {e}"),
                started,
                RemoteStatus::default(),
            );
        }
    };
    let mut remote = RemoteStatus {
        namespace: job.namespace.clone(),
        micro_usd_per_minute: job.micro_usd_per_minute,
        ..RemoteStatus::default()
    };
    if let Err(e) = validate(&job) {
        return status(Outcome::StartFailed, e.to_string(), started, remote);
    }
    if crate::supervisor::cancel_requested(dir) {
        return status(
            Outcome::Cancelled,
            "cancelled before the job was created; nothing was started".into(),
            started,
            remote,
        );
    }
    let endpoint = match Endpoint::parse(Some(&job.endpoint)) {
        Ok(e) => e,
        Err(e) => return status(Outcome::StartFailed, e.to_string(), started, remote),
    };
    let mut client =
        HfClient::new(endpoint, Some(creds.token.clone())).with_sse(Duration::from_secs(90), 30);
    if let Some(rpm) = job.requests_per_minute {
        client =
            client.with_request_budget(Arc::new(RequestBudget::new(rpm, job.budget_file.clone())));
    }
    let client = Arc::new(client);
    let logs = log_paths(dir);
    let out = match File::create(&logs.stdout) {
        Ok(f) => f,
        Err(e) => {
            return status(
                Outcome::StartFailed,
                format!("cannot create {}: {e}", logs.stdout.display()),
                started,
                remote,
            );
        }
    };
    let _ = File::create(&logs.stderr);
    let secrets: BTreeMap<String, String> = job
        .secret_names
        .iter()
        .filter_map(|n| creds.secrets.get(n).map(|v| (n.clone(), v.clone())))
        .collect();
    let spec = JobSpec {
        command: job.command.clone(),
        environment: job.environment.clone(),
        secrets,
        flavor: job.flavor.clone(),
        docker_image: job.image.clone(),
        timeout_seconds: job.timeout_secs,
        labels: job.labels.clone(),
    };
    let created = match client.create_job(&job.namespace, &spec) {
        Ok(info) => info,
        Err(e) => {
            remote.error_code = Some(error_code(&e).into());
            return status(
                Outcome::StartFailed,
                format!("the Jobs API refused the job: {e}"),
                started,
                remote,
            );
        }
    };
    let id = created.id.clone();
    remote.job_id = Some(id.clone());
    let rec = RemoteJobRef {
        namespace: job.namespace.clone(),
        id: id.clone(),
    };
    if let Ok(b) = serde_json::to_vec(&rec) {
        let _ = write_atomic(&dir.join(REMOTE_JOB), &b);
    }

    // Logs on a thread; the main thread watches the stage and forwards a cancel.
    let (tx, rx) = mpsc::channel();
    {
        let client = client.clone();
        let ns = job.namespace.clone();
        let id = id.clone();
        let redact = Redactor::new(creds);
        let mut sink = LogSink {
            file: out,
            cap: job.log_cap_bytes,
            written: 0,
            truncated: false,
            tail: TailRing::new(TAIL_BYTES),
            lines: 0,
        };
        let spawned = std::thread::Builder::new()
            .name("mlres-hf-logs".into())
            .spawn(move || {
                let r = client.stream_logs(&ns, &id, 0, &mut |l| {
                    sink.push(&redact.apply(&l.text));
                    ControlFlow::Continue(())
                });
                let _ = sink.file.sync_data();
                let _ = tx.send((r, sink));
            });
        if spawned.is_err() {
            // No log thread: the job still runs and is watched; its logs stay on the Hub.
        }
    }

    let deadline = Instant::now() + Duration::from_secs(job.timeout_secs.saturating_add(600));
    let max_poll = Duration::from_millis(job.poll_ms.max(20));
    let mut poll = Duration::from_millis(20);
    let mut cancel_sent = false;
    let mut last: JobInfo = created;
    let mut notes: Vec<String> = Vec::new();
    let mut failures = 0u32;
    loop {
        if !cancel_sent && crate::supervisor::cancel_requested(dir) {
            match client.cancel_job(&job.namespace, &id) {
                Ok(()) => cancel_sent = true,
                Err(e) => notes.push(format!("cancel failed (retrying): {e}")),
            }
        }
        // A background poll: skipped while the request budget is low (the log stream still
        // runs, and cancels and sweeps go first).
        match client.poll_job(&job.namespace, &id) {
            Ok(None) => {}
            Ok(Some(info)) => {
                failures = 0;
                let done = info.is_terminal();
                last = info;
                if done {
                    break;
                }
            }
            Err(e) if e.is_not_found() => {
                // Gone from the API: as final as DELETED.
                last.stage = JobStage::Deleted;
                notes.push(format!("job no longer found: {e}"));
                break;
            }
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(20) {
                    notes.push(format!("status poll failed: {e}"));
                }
            }
        }
        if Instant::now() >= deadline {
            // Far past its timeout: make sure it stops, then give up watching.
            let _ = client.cancel_job(&job.namespace, &id);
            notes.push("job still not finished long after its timeout; cancel sent".into());
            break;
        }
        std::thread::sleep(poll);
        poll = (poll * 2).min(max_poll);
    }

    // The stream replays the end of a terminal job once; give it a bounded time.
    let mut log_lines = 0;
    let mut stdout_truncated = false;
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok((r, sink)) => {
            log_lines = sink.lines;
            stdout_truncated = sink.truncated;
            let _ = write_atomic(&logs.stdout_tail, sink.tail.contents());
            match r {
                Ok(end) => remote.log_reconnects = end.reconnects,
                Err(e) => notes.push(format!("log stream ended with an error: {e}")),
            }
        }
        Err(_) => {
            notes.push("log stream did not finish; stdout.log may be incomplete".into());
            let _ = write_atomic(&logs.stdout_tail, &tail_of(&logs.stdout));
        }
    }
    let _ = write_atomic(&logs.stderr_tail, b"");
    remote.log_lines = log_lines;
    remote.stage = Some(last.stage.as_str().to_string());
    remote.message = last.message.clone();
    remote.running_secs = last.durations.running_secs;
    let (mut outcome, mut detail) = outcome_of(&last);
    if !last.is_terminal() {
        outcome = Outcome::Failed;
        detail = format!(
            "job {id} was still {} when mlres stopped watching",
            last.stage
        );
    } else if cancel_sent && outcome != Outcome::Completed {
        outcome = Outcome::Cancelled;
    }
    for n in notes {
        detail.push_str("; ");
        detail.push_str(&n);
    }
    let mut s = status(outcome, detail, started, remote);
    s.exit_code = exit_code_of(&last);
    s.stdout_truncated = stdout_truncated;
    s
}

fn tail_of(path: &Path) -> Vec<u8> {
    let Ok(mut f) = File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES as u64)));
    let mut b = Vec::new();
    let _ = f.read_to_end(&mut b);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(stage: &str, msg: Option<&str>) -> JobInfo {
        JobInfo::from_value(serde_json::json!({
            "id": "j1", "status": {"stage": stage, "message": msg},
            "owner": {"name": "alice"},
        }))
        .unwrap()
    }

    #[test]
    fn stages_map_to_outcomes() {
        assert_eq!(outcome_of(&info("COMPLETED", None)).0, Outcome::Completed);
        assert_eq!(outcome_of(&info("CANCELED", None)).0, Outcome::Cancelled);
        assert_eq!(outcome_of(&info("DELETED", None)).0, Outcome::Failed);
        assert!(outcome_of(&info("DELETED", None)).1.contains("deleted"));
        assert_eq!(
            outcome_of(&info("ERROR", Some("Job timed out after 5 seconds"))).0,
            Outcome::TimedOut
        );
        assert_eq!(
            outcome_of(&info("ERROR", Some("Job failed with exit code: 3"))).0,
            Outcome::Failed
        );
        assert_eq!(
            exit_code_of(&info("ERROR", Some("Job failed with exit code: 3"))),
            Some(3)
        );
        assert_eq!(exit_code_of(&info("COMPLETED", None)), Some(0));
        assert_eq!(exit_code_of(&info("ERROR", Some("infra"))), None);
    }

    #[test]
    fn redactor_hides_token_and_secrets() {
        let creds = HfCredentials {
            token: Token::new("hf_abcdefghijklmnop").unwrap(),
            secrets: [("HF_TOKEN".to_string(), "hf_jobscopedtoken123".to_string())]
                .into_iter()
                .collect(),
        };
        let r = Redactor::new(&creds);
        let out = r.apply("a hf_abcdefghijklmnop b hf_jobscopedtoken123 c");
        assert!(!out.contains("hf_abc"), "{out}");
        assert!(!out.contains("jobscoped"), "{out}");
        assert!(out.contains("[REDACTED:HF_TOKEN]"), "{out}");
        assert!(!format!("{creds:?}").contains("jobscoped"));
    }

    #[test]
    fn log_sink_caps_and_keeps_tail() {
        let dir = std::env::temp_dir().join(format!("mlres-hf-sink-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let p = dir.join("out.log");
        let mut s = LogSink {
            file: File::create(&p).unwrap(),
            cap: 10,
            written: 0,
            truncated: false,
            tail: TailRing::new(TAIL_BYTES),
            lines: 0,
        };
        for i in 0..5 {
            s.push(&format!("line{i}"));
        }
        assert!(s.truncated);
        assert_eq!(s.lines, 5);
        assert_eq!(std::fs::read(&p).unwrap().len(), 10);
        assert!(String::from_utf8_lossy(s.tail.contents()).ends_with("line4\n"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
