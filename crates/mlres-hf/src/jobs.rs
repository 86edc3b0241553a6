use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// A job's stage. Unknown strings are kept in `Other` (older servers lacked `SCHEDULING`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum JobStage {
    /// Waiting for hardware.
    Scheduling,
    /// Running.
    Running,
    /// Being updated (still running).
    Updating,
    /// Exited 0.
    Completed,
    /// Canceled by a user.
    Canceled,
    /// Failed (non-zero exit, timeout, infrastructure).
    Error,
    /// Deleted.
    Deleted,
    /// A stage this client does not know.
    Other(String),
}

impl JobStage {
    /// Parse a wire string.
    pub fn parse(s: &str) -> JobStage {
        match s {
            "SCHEDULING" => JobStage::Scheduling,
            "RUNNING" => JobStage::Running,
            "UPDATING" => JobStage::Updating,
            "COMPLETED" => JobStage::Completed,
            "CANCELED" => JobStage::Canceled,
            "ERROR" => JobStage::Error,
            "DELETED" => JobStage::Deleted,
            other => JobStage::Other(other.to_string()),
        }
    }

    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            JobStage::Scheduling => "SCHEDULING",
            JobStage::Running => "RUNNING",
            JobStage::Updating => "UPDATING",
            JobStage::Completed => "COMPLETED",
            JobStage::Canceled => "CANCELED",
            JobStage::Error => "ERROR",
            JobStage::Deleted => "DELETED",
            JobStage::Other(s) => s,
        }
    }

    /// `COMPLETED`, `CANCELED`, `ERROR` and `DELETED` are terminal. Unknown stages are not
    /// (the job is polled again rather than forgotten).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobStage::Completed | JobStage::Canceled | JobStage::Error | JobStage::Deleted
        )
    }
}

impl std::fmt::Display for JobStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for JobStage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(JobStage::parse(&s))
    }
}

impl Serialize for JobStage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What mlres asks the Jobs API to run. Built by mlres only; there is no way to express a
/// scheduled job, a Space image, volumes, ports or SSH.
#[derive(Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// argv.
    pub command: Vec<String>,
    /// Plain environment variables (visible in the job's info).
    pub environment: BTreeMap<String, String>,
    /// Secret environment variables (encrypted server-side; never printed by `Debug`).
    pub secrets: BTreeMap<String, String>,
    /// Hardware flavor, e.g. `cpu-basic`.
    pub flavor: String,
    /// Docker image, e.g. `python:3.12`.
    pub docker_image: String,
    /// Hard timeout, sent as integer `timeoutSeconds`.
    pub timeout_seconds: u64,
    /// Labels (campaign and experiment ids).
    pub labels: BTreeMap<String, String>,
}

impl std::fmt::Debug for JobSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobSpec")
            .field("command", &self.command)
            .field("environment", &self.environment)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("flavor", &self.flavor)
            .field("docker_image", &self.docker_image)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("labels", &self.labels)
            .finish()
    }
}

/// Whether `s` is a valid label key or value as `huggingface_hub` documents labels
/// (`HfApi.update_job_labels`): at most 100 characters, only ASCII alphanumerics, dashes and
/// underscores (no dots). A key must also be non-empty.
pub fn label_ok(s: &str) -> bool {
    s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

impl JobSpec {
    /// The first label that the Jobs API would refuse (see [`label_ok`]), as `key=value`.
    pub fn invalid_label(&self) -> Option<String> {
        self.labels
            .iter()
            .find(|(k, v)| k.is_empty() || !label_ok(k) || !label_ok(v))
            .map(|(k, v)| format!("{k}={v}"))
    }

    /// The request body for `POST /api/jobs/{namespace}`.
    pub fn to_wire(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("command".into(), serde_json::json!(self.command));
        m.insert("arguments".into(), serde_json::json!([]));
        m.insert("environment".into(), serde_json::json!(self.environment));
        m.insert("flavor".into(), serde_json::json!(self.flavor));
        m.insert("dockerImage".into(), serde_json::json!(self.docker_image));
        m.insert(
            "timeoutSeconds".into(),
            serde_json::json!(self.timeout_seconds),
        );
        if !self.secrets.is_empty() {
            m.insert("secrets".into(), serde_json::json!(self.secrets));
        }
        if !self.labels.is_empty() {
            m.insert("labels".into(), serde_json::json!(self.labels));
        }
        serde_json::Value::Object(m)
    }
}

/// `durations` of a job, recomputed by the server on every GET.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Durations {
    /// Seconds spent scheduling.
    #[serde(default, alias = "scheduling_secs")]
    pub scheduling_secs: Option<f64>,
    /// Seconds spent running (what is billed).
    #[serde(default, alias = "running_secs")]
    pub running_secs: Option<f64>,
    /// Seconds since creation (or until the end).
    #[serde(default, alias = "total_secs")]
    pub total_secs: Option<f64>,
}

/// The owner of a job.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct JobOwner {
    /// Account id.
    #[serde(default)]
    pub id: String,
    /// Namespace name.
    pub name: String,
    /// `user` or `org`.
    #[serde(rename = "type", default)]
    pub kind: String,
}

#[derive(Deserialize)]
struct WireStatus {
    stage: JobStage,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireJob {
    id: String,
    #[serde(default, alias = "created_at")]
    created_at: Option<String>,
    #[serde(default, alias = "started_at")]
    started_at: Option<String>,
    #[serde(default, alias = "finished_at")]
    finished_at: Option<String>,
    #[serde(default, alias = "docker_image")]
    docker_image: Option<String>,
    #[serde(default, alias = "space_id")]
    space_id: Option<String>,
    #[serde(default)]
    command: Option<Vec<String>>,
    #[serde(default)]
    flavor: Option<String>,
    /// `dict[str, str]` in `huggingface_hub`, which does not check it: a value that is not a
    /// string is kept as its JSON text rather than failing the whole listing.
    #[serde(default, deserialize_with = "lenient_labels")]
    labels: Option<BTreeMap<String, String>>,
    /// `dict[str, Any]` in `huggingface_hub`: other clients send numbers, booleans and nulls.
    /// Only the names are kept, so any value decodes.
    #[serde(default)]
    environment: Option<BTreeMap<String, serde::de::IgnoredAny>>,
    status: WireStatus,
    #[serde(default)]
    durations: Option<Durations>,
    owner: JobOwner,
}

/// A job as the API reports it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct JobInfo {
    /// Job id.
    pub id: String,
    /// Stage.
    pub stage: JobStage,
    /// `status.message`.
    pub message: Option<String>,
    /// Owner (namespace).
    pub owner: JobOwner,
    /// Flavor.
    pub flavor: Option<String>,
    /// Image.
    pub docker_image: Option<String>,
    /// Space image, if the job was started from one (never by mlres).
    pub space_id: Option<String>,
    /// argv.
    pub command: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Names of plain environment variables (values dropped).
    pub environment_names: Vec<String>,
    /// Durations.
    pub durations: Durations,
    /// ISO-8601 times.
    pub created_at: Option<String>,
    /// ISO-8601 start.
    pub started_at: Option<String>,
    /// ISO-8601 end.
    pub finished_at: Option<String>,
}

impl JobInfo {
    /// Whether the job reached a terminal stage.
    pub fn is_terminal(&self) -> bool {
        self.stage.is_terminal()
    }

    /// Decode one JobInfo object (camelCase or snake_case keys).
    pub fn from_json(body: &str) -> Result<JobInfo, crate::HfError> {
        let v: serde_json::Value = serde_json::from_str(body).map_err(|e| decode("job", e))?;
        JobInfo::from_value(v)
    }

    /// Decode from a parsed value.
    pub fn from_value(v: serde_json::Value) -> Result<JobInfo, crate::HfError> {
        let w: WireJob = serde_json::from_value(v).map_err(|e| decode("job", e))?;
        Ok(JobInfo {
            id: w.id,
            stage: w.status.stage,
            message: w.status.message,
            owner: w.owner,
            flavor: w.flavor,
            docker_image: w.docker_image,
            space_id: w.space_id,
            command: w.command.unwrap_or_default(),
            labels: w.labels.unwrap_or_default(),
            environment_names: w
                .environment
                .map(|e| e.into_keys().collect())
                .unwrap_or_default(),
            durations: w.durations.unwrap_or_default(),
            created_at: w.created_at,
            started_at: w.started_at,
            finished_at: w.finished_at,
        })
    }
}

/// Labels as strings: a string stays as it is, `null` is dropped, and any other value (a job
/// created by another client) becomes its JSON text.
fn lenient_labels<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    let m: Option<BTreeMap<String, serde_json::Value>> = Option::deserialize(d)?;
    Ok(m.map(|m| {
        m.into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some((k, s)),
                other => Some((k, other.to_string())),
            })
            .collect()
    }))
}

fn decode(what: &str, e: serde_json::Error) -> crate::HfError {
    crate::HfError::Decode {
        what: what.into(),
        detail: e.to_string(),
    }
}

/// An accelerator in the hardware catalog.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Accelerator {
    /// `gpu`, ...
    #[serde(rename = "type", default)]
    pub kind: String,
    /// e.g. `A10G`.
    #[serde(default)]
    pub model: String,
    /// Count, as a string on the wire.
    #[serde(default)]
    pub quantity: String,
    /// e.g. `24 GB`.
    #[serde(default)]
    pub vram: String,
}

/// One flavor of `GET /api/jobs/hardware`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Hardware {
    /// Flavor name (what a JobSpec's `flavor` names).
    pub name: String,
    /// Display name.
    #[serde(default)]
    pub pretty_name: Option<String>,
    /// e.g. `2 vCPU`.
    #[serde(default)]
    pub cpu: Option<String>,
    /// e.g. `16 GB`.
    #[serde(default)]
    pub ram: Option<String>,
    /// Accelerator, if any.
    #[serde(default)]
    pub accelerator: Option<Accelerator>,
    /// Price per `unit_label` in micro-USD.
    #[serde(default, rename = "unitCostMicroUSD")]
    pub unit_cost_micro_usd: Option<u64>,
    /// Price per `unit_label` in USD.
    #[serde(default, rename = "unitCostUSD")]
    pub unit_cost_usd: Option<f64>,
    /// The billing unit; `minute` on the live API.
    #[serde(default)]
    pub unit_label: Option<String>,
}

impl Hardware {
    /// Price per minute in micro-USD: `unitCostMicroUSD`, else `unitCostUSD × 10⁶` rounded up;
    /// `None` when the flavor has no price or the unit is not `minute`.
    pub fn micro_usd_per_minute(&self) -> Option<u64> {
        match self.unit_label.as_deref() {
            Some("minute") | None => {}
            Some(_) => return None,
        }
        if let Some(m) = self.unit_cost_micro_usd {
            return Some(m);
        }
        let usd = self.unit_cost_usd?;
        (usd.is_finite() && usd >= 0.0).then(|| (usd * 1e6).ceil() as u64)
    }
}

/// Filters for `list_jobs` (sent as repeated `stage=` and `label=k=v`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListFilter {
    /// Only jobs carrying all these labels.
    pub labels: BTreeMap<String, String>,
    /// Only jobs in one of these stages (empty = all).
    pub stages: Vec<JobStage>,
}

/// One log line of a job. `index` counts delivered lines from 0 (the `===== Job started`
/// banner is not a line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// Position in the job's log, stable across reconnects.
    pub index: usize,
    /// The text.
    pub text: String,
    /// Server timestamp.
    pub timestamp: Option<String>,
}

/// How a log stream ended.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamEnd {
    /// The job's stage when the stream ended (`None` when the callback stopped it early).
    pub stage: Option<JobStage>,
    /// Lines delivered in total, including `skip_lines` (pass it back to resume).
    pub lines_seen: usize,
    /// Reconnects made.
    pub reconnects: u32,
}

/// The environment variable that carries shipped local files, as `huggingface_hub`'s
/// `run_uv_job` (releases 1.4 to 1.12, behind `hf jobs uv run <local script>`) sends them:
/// one `<name> <base64 of the bytes>` line per file.
pub const LOCAL_FILES_ENV: &str = "LOCAL_FILES_ENCODED";

/// The shell step `run_uv_job` puts in front of the command: it decodes every shipped file into
/// the job's working directory under its name.
pub const LOCAL_FILES_DECODE: &str =
    "echo $LOCAL_FILES_ENCODED | xargs -n 2 bash -c 'echo \"$1\" | base64 -d > \"$0\"' && ";

/// Most bytes of [`LOCAL_FILES_ENV`]'s value: Linux refuses a single environment string or
/// argument longer than 128 KiB (`MAX_ARG_STRLEN`), and the decode step passes it as both.
pub const MAX_LOCAL_FILES_ENV_BYTES: usize = 128 * 1024 - 1;

/// `arg` in single quotes for `bash -c`, as `run_uv_job` quotes each word.
pub fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// Ships `files` (name, bytes) with a job that runs `argv`, the way `run_uv_job` ships a local
/// script: returns the command (`bash -c` with [`LOCAL_FILES_DECODE`] and then `argv`, each
/// word single-quoted) and the value of [`LOCAL_FILES_ENV`] to add to the job's plain
/// environment. Inline script metadata (PEP 723 `# /// script` blocks) travels inside the bytes,
/// for `uv run` to read in the job. A name must be one path component without whitespace (the
/// decode step splits on it); the whole value must fit [`MAX_LOCAL_FILES_ENV_BYTES`].
pub fn ship_local_files(
    files: &[(&str, &[u8])],
    argv: &[String],
) -> Result<(Vec<String>, String), String> {
    use base64::Engine as _;
    if files.is_empty() {
        return Err("no files to ship".into());
    }
    if argv.is_empty() {
        return Err("the command is empty".into());
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut lines = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        if name.is_empty()
            || *name == "."
            || *name == ".."
            || name.contains('/')
            || name.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "`{name}` cannot be shipped: a shipped file is named by one path component \
                 without whitespace"
            ));
        }
        lines.push(format!("{name} {}", b64.encode(bytes)));
    }
    let value = lines.join("\n");
    if value.len() > MAX_LOCAL_FILES_ENV_BYTES {
        return Err(format!(
            "the shipped files take {} bytes once encoded, over the {MAX_LOCAL_FILES_ENV_BYTES} \
             one environment variable may hold",
            value.len()
        ));
    }
    let words: Vec<String> = argv.iter().map(|w| shell_quote(w)).collect();
    let command = vec![
        "bash".to_string(),
        "-c".to_string(),
        format!("{LOCAL_FILES_DECODE}{}", words.join(" ")),
    ];
    Ok((command, value))
}
