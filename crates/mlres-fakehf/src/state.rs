//! The fake's state: tokens, jobs, repos, injected failures, billing and the request log.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// A token the fake accepts, and what it may do.
#[derive(Clone, Debug, Deserialize)]
pub struct TokenConfig {
    /// The token value (never printed or stored in `/_fake/state`).
    pub token: String,
    /// The user it belongs to.
    pub user: String,
    /// The user's orgs.
    #[serde(default)]
    pub orgs: Vec<String>,
    /// `read`, `write`, `admin` or `fineGrained`.
    #[serde(default = "default_role")]
    pub role: String,
    /// For `fineGrained`: `{"global": [...], "scoped": [{"entity": {"type","name"}, "permissions": [...]}]}`.
    #[serde(default)]
    pub fine_grained: Option<serde_json::Value>,
    /// Token display name.
    #[serde(default = "default_display")]
    pub display_name: String,
}

fn default_role() -> String {
    "write".into()
}
fn default_display() -> String {
    "fake-token".into()
}

/// One hardware flavor of the fake catalog.
#[derive(Clone, Debug)]
pub struct Flavor {
    /// Name.
    pub name: String,
    /// Price per minute in micro-USD (`None`: the catalog lists no price).
    pub micro_usd_per_minute: Option<u64>,
    /// cpu / ram / accelerator display.
    pub cpu: String,
    /// ram.
    pub ram: String,
}

/// One injected failure: the next `count` requests matching `method` (or any, if empty) and
/// the path prefix get `status`.
#[derive(Clone, Debug, Deserialize)]
pub struct Injection {
    /// Method to match; empty matches all.
    #[serde(default)]
    pub method: String,
    /// Path prefix to match.
    pub path_prefix: String,
    /// Status to answer.
    pub status: u16,
    /// How many requests.
    #[serde(default = "one")]
    pub count: u32,
    /// `Location` for a 3xx.
    #[serde(default)]
    pub location: Option<String>,
    /// Error message.
    #[serde(default)]
    pub message: Option<String>,
}

fn one() -> u32 {
    1
}

/// A job in the fake.
#[derive(Debug)]
pub struct Job {
    /// Id.
    pub id: String,
    /// Namespace.
    pub namespace: String,
    /// Owner user name (the token's user).
    pub initiator: String,
    /// argv.
    pub command: Vec<String>,
    /// Plain env, values as sent (`dict[str, Any]` in `huggingface_hub`).
    pub environment: BTreeMap<String, serde_json::Value>,
    /// Secret names only (values go only into the subprocess).
    pub secret_names: Vec<String>,
    /// Flavor.
    pub flavor: String,
    /// Image (recorded, not used).
    pub docker_image: String,
    /// Timeout.
    pub timeout_seconds: u64,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Stage string.
    pub stage: String,
    /// Status message.
    pub message: Option<String>,
    /// Creation.
    pub created: (Instant, SystemTime),
    /// Start of running.
    pub started: Option<(Instant, SystemTime)>,
    /// End.
    pub finished: Option<(Instant, SystemTime)>,
    /// Append-only log: (line, timestamp).
    pub log: Vec<(String, String)>,
    /// Set by cancel; the runner kills the process.
    pub cancel_requested: bool,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// Price at creation.
    pub micro_usd_per_minute: u64,
}

impl Job {
    /// Whether the stage is terminal.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.stage.as_str(),
            "COMPLETED" | "CANCELED" | "ERROR" | "DELETED"
        )
    }

    /// (scheduling, running, total) seconds, recomputed now.
    pub fn durations(&self) -> (f64, f64, f64) {
        let now = Instant::now();
        let end = self.finished.map(|f| f.0).unwrap_or(now);
        let total = end.duration_since(self.created.0).as_secs_f64();
        match self.started {
            Some((s, _)) => (
                s.duration_since(self.created.0).as_secs_f64(),
                end.duration_since(s).as_secs_f64(),
                total,
            ),
            None => (total, 0.0, total),
        }
    }

    /// Cost so far in micro-USD: runningSecs × price / 60, rounded up.
    pub fn cost_micro_usd(&self) -> u64 {
        let (_, running, _) = self.durations();
        (running * self.micro_usd_per_minute as f64 / 60.0).ceil() as u64
    }
}

/// A file in a fake repo.
#[derive(Clone, Debug)]
pub struct RepoFile {
    /// Bytes.
    pub bytes: Vec<u8>,
    /// Committed as an `lfsFile` (its content went through the LFS store).
    pub lfs: bool,
}

/// A fake repo.
#[derive(Clone, Debug)]
pub struct Repo {
    /// Private flag.
    pub private: bool,
    /// Files by path.
    pub files: BTreeMap<String, RepoFile>,
    /// Current commit id.
    pub commit: String,
    /// Commits made (the create counts as one).
    pub commits: u64,
}

/// One logged request (no token: only whether there was an `Authorization` header and its
/// sha256).
#[derive(Clone, Debug)]
pub struct LoggedRequest {
    /// Method.
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Whether `Authorization` was present.
    pub auth: bool,
    /// sha256 hex of the header value.
    pub auth_sha256: Option<String>,
    /// Status answered.
    pub status: u16,
    /// `Content-Type` of the request.
    pub content_type: Option<String>,
    /// `Accept` of the request.
    pub accept: Option<String>,
    /// The body as text, for JSON, NDJSON and git-lfs requests (at most 1 MiB).
    pub body: Option<String>,
    /// Body length in bytes.
    pub body_len: usize,
    /// sha256 hex of the body (for uploads, whose bytes are not kept in the log).
    pub body_sha256: Option<String>,
}

/// Mutable state behind the lock.
#[derive(Debug, Default)]
pub struct Inner {
    /// Accepted tokens.
    pub tokens: Vec<TokenConfig>,
    /// Jobs in creation order.
    pub jobs: Vec<Job>,
    /// Repos by `(plural type, "ns/name")`.
    pub repos: BTreeMap<(String, String), Repo>,
    /// Pending injected failures.
    pub injections: Vec<Injection>,
    /// Drop points for the next SSE connections (after K data lines).
    pub sse_drops: VecDeque<usize>,
    /// Credit balance per namespace in micro-USD (absent: unlimited).
    pub credits: BTreeMap<String, i64>,
    /// Request log.
    pub requests: Vec<LoggedRequest>,
    /// Calls to `/api/scheduled-jobs`.
    pub scheduled_calls: u64,
    /// Calls to whoami-v2.
    pub whoami_calls: u64,
    /// Page size of job lists.
    pub jobs_page_size: usize,
    /// Fields merged into a job's JSON in the namespace listing, by job id (see
    /// [`State::serve_job_fields`]).
    pub job_list_overrides: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    /// Page size of trees.
    pub tree_page_size: usize,
    /// SSE keep-alive interval.
    pub keepalive: Duration,
    /// Job id counter.
    pub next_job: u64,
    /// Preupload answers `lfs` for files at least this large (besides binary samples and
    /// the default `.gitattributes` patterns).
    pub lfs_threshold: u64,
    /// The LFS batch answers multipart (when offered) for objects at least this large.
    pub lfs_multipart_threshold: u64,
    /// Multipart chunk size.
    pub lfs_chunk_size: u64,
    /// LFS objects by `(plural type, "ns/name", sha256)`.
    pub lfs_objects: BTreeMap<(String, String, String), crate::lfs::LfsObject>,
    /// Uploads handed out by the batch endpoint, by signature.
    pub lfs_pending: BTreeMap<String, crate::lfs::PendingUpload>,
    /// Signatures issued.
    pub lfs_signatures: u64,
}

/// Shared state of one fake server.
#[derive(Debug)]
pub struct State {
    inner: Mutex<Inner>,
    /// Notified whenever a job's log or stage changes.
    pub changed: Condvar,
    /// Hardware catalog.
    pub flavors: Vec<Flavor>,
    /// Where job work dirs are made.
    pub work_root: PathBuf,
    /// Delay between SCHEDULING and RUNNING.
    pub scheduling_delay: Duration,
}

/// `sha256` hex.
pub fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// ISO-8601 UTC with milliseconds and `Z`.
pub fn iso(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm, public domain description).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = if month <= 2 { y + 1 } else { y };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_millis()
    )
}

impl State {
    pub(crate) fn new(
        inner: Inner,
        flavors: Vec<Flavor>,
        work_root: PathBuf,
        scheduling_delay: Duration,
    ) -> State {
        State {
            inner: Mutex::new(inner),
            changed: Condvar::new(),
            flavors,
            work_root,
            scheduling_delay,
        }
    }

    /// Lock the state (a poisoned lock is recovered: the fake keeps serving).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Accept another token.
    pub fn add_token(&self, t: TokenConfig) {
        self.lock().tokens.push(t);
    }

    /// Queue an injected failure.
    pub fn inject(&self, i: Injection) {
        self.lock().injections.push(i);
    }

    /// Drop the next SSE connections after these numbers of data lines (one per connection).
    pub fn drop_sse_after(&self, points: &[usize]) {
        self.lock().sse_drops.extend(points.iter().copied());
    }

    /// Set a namespace's credit balance in micro-USD.
    pub fn set_credits(&self, namespace: &str, micro_usd: i64) {
        self.lock().credits.insert(namespace.into(), micro_usd);
    }

    /// Put a file into a repo (creating it as private if needed), without a request.
    pub fn seed_file(&self, kind_plural: &str, repo: &str, path: &str, bytes: &[u8]) {
        let mut g = self.lock();
        let r = g
            .repos
            .entry((kind_plural.into(), repo.into()))
            .or_insert_with(|| new_repo(repo, true));
        r.files.insert(
            path.into(),
            RepoFile {
                bytes: bytes.to_vec(),
                lfs: false,
            },
        );
        r.commits += 1;
        r.commit = sha256_hex(format!("{}{path}", r.commit).as_bytes())[..40].to_string();
    }

    /// Force a job's stage (e.g. `DELETED`); a running process is killed.
    pub fn set_stage(&self, id: &str, stage: &str) {
        {
            let mut g = self.lock();
            if let Some(j) = g.jobs.iter_mut().find(|j| j.id == id) {
                j.stage = stage.into();
                j.cancel_requested = true;
                if j.finished.is_none() {
                    j.finished = Some((Instant::now(), SystemTime::now()));
                }
            }
        }
        self.changed.notify_all();
    }

    /// From now on, the namespace listing serves job `id` with these top-level fields
    /// replaced: a job as some other client or a newer API might report it (e.g. a field of
    /// another type), to test what a listing that does not decode does to its reader.
    /// Anything but an object (e.g. `null`) serves the job as it is again.
    pub fn serve_job_fields(&self, id: &str, fields: serde_json::Value) {
        let mut g = self.lock();
        match fields {
            serde_json::Value::Object(m) => {
                g.job_list_overrides.insert(id.into(), m);
            }
            _ => {
                g.job_list_overrides.remove(id);
            }
        }
    }

    /// Number of calls to the scheduled-jobs API.
    pub fn scheduled_calls(&self) -> u64 {
        self.lock().scheduled_calls
    }

    /// Number of whoami-v2 calls.
    pub fn whoami_calls(&self) -> u64 {
        self.lock().whoami_calls
    }

    /// What `/_fake/state` returns.
    pub fn snapshot(&self) -> serde_json::Value {
        let g = self.lock();
        let jobs: Vec<serde_json::Value> = g
            .jobs
            .iter()
            .map(|j| {
                let (s, r, t) = j.durations();
                serde_json::json!({
                    "id": j.id, "namespace": j.namespace, "labels": j.labels, "stage": j.stage,
                    "flavor": j.flavor, "dockerImage": j.docker_image, "timeoutSeconds": j.timeout_seconds,
                    "command": j.command,
                    "durations": {"schedulingSecs": s, "runningSecs": r, "totalSecs": t},
                    "costMicroUSD": j.cost_micro_usd(),
                    "environmentNames": j.environment.keys().collect::<Vec<_>>(),
                    "secretNames": j.secret_names, "exitCode": j.exit_code,
                    "logLines": j.log.len(),
                })
            })
            .collect();
        let repos: Vec<serde_json::Value> = g
            .repos
            .iter()
            .map(|((k, id), r)| {
                serde_json::json!({
                    "type": k, "id": id, "private": r.private, "commit": r.commit, "commits": r.commits,
                    "files": r.files.iter().map(|(p, f)| serde_json::json!({"path": p, "size": f.bytes.len(), "sha256": sha256_hex(&f.bytes), "lfs": f.lfs})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let requests: Vec<serde_json::Value> = g
            .requests
            .iter()
            .map(|r| {
                serde_json::json!({"method": r.method, "path": r.path, "auth": r.auth, "authSha256": r.auth_sha256, "status": r.status,
                    "contentType": r.content_type, "accept": r.accept, "body": r.body, "bodyLen": r.body_len, "bodySha256": r.body_sha256})
            })
            .collect();
        let mut spent: BTreeMap<String, u64> = BTreeMap::new();
        for j in &g.jobs {
            *spent.entry(j.namespace.clone()).or_default() += j.cost_micro_usd();
        }
        let lfs: Vec<serde_json::Value> = g
            .lfs_objects
            .iter()
            .map(|((k, id, oid), o)| {
                serde_json::json!({"type": k, "repo": id, "oid": oid, "size": o.bytes.len(), "verified": o.verified})
            })
            .collect();
        serde_json::json!({
            "jobs": jobs, "repos": repos, "requests": requests, "lfsObjects": lfs,
            "credits": g.credits, "spentMicroUSD": spent,
            "scheduledJobCalls": g.scheduled_calls, "whoamiCalls": g.whoami_calls,
        })
    }

    /// The token's config, if the token is known.
    pub fn token(&self, value: &str) -> Option<TokenConfig> {
        self.lock()
            .tokens
            .iter()
            .find(|t| t.token == value)
            .cloned()
    }
}

pub(crate) fn new_repo(id: &str, private: bool) -> Repo {
    Repo {
        private,
        files: BTreeMap::new(),
        commit: sha256_hex(id.as_bytes())[..40].to_string(),
        commits: 1,
    }
}

/// Whether a token may write `what` (`repo` or `job`) in a namespace (`repo` may name a repo
/// `ns/name` for fine-grained repo scopes).
pub fn can_write(t: &TokenConfig, namespace: &str, repo: Option<&str>, what: &str) -> bool {
    let member = t.user == namespace || t.orgs.iter().any(|o| o == namespace);
    match t.role.as_str() {
        "write" | "admin" => member,
        "fineGrained" => {
            let fg = t.fine_grained.clone().unwrap_or_default();
            let wanted = format!("{what}.write");
            let has = |perms: &serde_json::Value| {
                perms
                    .as_array()
                    .is_some_and(|a| a.iter().any(|p| p.as_str() == Some(wanted.as_str())))
            };
            if member && has(&fg["global"]) {
                return true;
            }
            fg["scoped"].as_array().into_iter().flatten().any(|s| {
                let name = s["entity"]["name"].as_str().unwrap_or("");
                (name == namespace || Some(name) == repo) && has(&s["permissions"])
            })
        }
        _ => false,
    }
}

/// Whether a token may read a namespace's private repos.
pub fn can_read(t: &TokenConfig, namespace: &str) -> bool {
    t.user == namespace || t.orgs.iter().any(|o| o == namespace)
}

/// The §3.7 catalog (per-minute prices in micro-USD).
pub fn default_flavors() -> Vec<Flavor> {
    let rows: &[(&str, u64, &str, &str)] = &[
        ("cpu-basic", 200, "2 vCPU", "16 GB"),
        ("cpu-upgrade", 500, "8 vCPU", "32 GB"),
        ("cpu-performance", 31_700, "32 vCPU", "256 GB"),
        ("cpu-xl", 16_700, "16 vCPU", "124 GB"),
        ("t4-small", 6_700, "4 vCPU", "15 GB"),
        ("t4-medium", 10_000, "8 vCPU", "30 GB"),
        ("a10g-small", 16_700, "4 vCPU", "15 GB"),
        ("a10g-large", 25_000, "12 vCPU", "46 GB"),
        ("a10g-largex2", 50_000, "24 vCPU", "92 GB"),
        ("a10g-largex4", 83_300, "48 vCPU", "184 GB"),
        ("a100-large", 41_700, "12 vCPU", "142 GB"),
        ("a100x4", 166_700, "48 vCPU", "568 GB"),
        ("a100x8", 333_300, "96 vCPU", "1136 GB"),
        ("h200", 83_300, "23 vCPU", "256 GB"),
        ("h200x2", 166_700, "46 vCPU", "512 GB"),
        ("h200x4", 333_300, "92 vCPU", "1024 GB"),
        ("h200x8", 666_700, "184 vCPU", "2048 GB"),
        ("rtx-pro-6000", 45_800, "23 vCPU", "256 GB"),
        ("l4x1", 13_300, "8 vCPU", "30 GB"),
        ("l4x4", 63_300, "48 vCPU", "186 GB"),
        ("l40sx1", 30_000, "8 vCPU", "62 GB"),
        ("l40sx4", 138_300, "48 vCPU", "382 GB"),
        ("l40sx8", 391_700, "192 vCPU", "1534 GB"),
    ];
    rows.iter()
        .map(|(n, p, c, r)| Flavor {
            name: (*n).into(),
            micro_usd_per_minute: Some(*p),
            cpu: (*c).into(),
            ram: (*r).into(),
        })
        .collect()
}
