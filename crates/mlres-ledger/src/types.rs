//! Plain data types passed in and out of the ledger.

use serde::{Deserialize, Serialize};

/// Experiment states.
pub mod state {
    /// Budget reserved, job not (yet) started.
    pub const RESERVED: &str = "reserved";
    /// Job submitted to a backend (has a handle).
    pub const SUBMITTED: &str = "submitted";
    /// Job ended; spend settled.
    pub const FINISHED: &str = "finished";
    /// Metric parsed and keep/discard decided.
    pub const EVALUATED: &str = "evaluated";
    /// Reservation returned; the job never ran.
    pub const RELEASED: &str = "released";
}

/// Allowed `FinishRecord::status` values.
pub const FINISH_STATUSES: &[&str] = &[
    "completed",
    "failed",
    "timed_out",
    "cancelled",
    "memory_exceeded",
    "lost",
    "start_failed",
    "pruned",
];

/// Allowed `EvalRecord::decision` values.
pub const DECISIONS: &[&str] = &["keep", "discard", "anomalous"];

/// Allowed `ReserveRequest::source` values.
pub const SOURCES: &[&str] = &["loop", "agent"];

/// What a caller asks to reserve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReserveRequest {
    /// Why this experiment is worth running.
    pub hypothesis: String,
    /// The experiment's configuration (stored as JSON).
    pub config: serde_json::Value,
    /// `loop` or `agent`.
    pub source: String,
    /// Index of the proposal in the loop's proposal stream; unique per campaign when set.
    pub proposal_index: Option<u64>,
    /// Backend name.
    pub backend: String,
    /// Hardware flavor.
    pub flavor: String,
    /// Hard wall-clock limit; reserved as walltime until the job finishes.
    pub timeout_secs: u64,
    /// Worst-case cost in micro-units; reserved until the job finishes.
    pub cost_micro: u64,
    /// Manifest hash of the approved code snapshot the job runs (recorded in the `reserved`
    /// and `submitted` events), when the job template declares `code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_sha256: Option<String>,
}

/// What an approval pins besides its document (see [`crate::Ledger::record_approval_with`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApprovalPins<'a> {
    /// The declared datasets' content manifest.
    pub datasets: Option<&'a serde_json::Value>,
    /// The job's code manifest (an object with `sha256` and `files`).
    pub code: Option<&'a serde_json::Value>,
    /// How the approval was given (who, how, uid, the diff approved): recorded as an
    /// `approval_context` event in the approval's transaction, with its `approval_id`.
    pub context: Option<&'a serde_json::Value>,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinishRecord {
    /// One of [`FINISH_STATUSES`].
    pub status: String,
    /// Process exit code, if any.
    pub exit_code: Option<i32>,
    /// Measured wall-clock duration; settled as `ceil(duration_ms / 1000)` seconds.
    pub duration_ms: u64,
    /// Actual cost in micro-units.
    pub spent_cost_micro: u64,
    /// Error text, if any.
    pub error: Option<String>,
}

/// The evaluation of a finished job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Objective metric; NaN and infinities are stored faithfully (see the crate docs).
    pub metric: Option<f64>,
    /// All parsed metrics.
    pub metrics: serde_json::Value,
    /// One of [`DECISIONS`].
    pub decision: String,
    /// Why.
    pub reason: String,
    /// Best metric of the campaign after this decision.
    pub best_so_far: Option<f64>,
    /// What the decision rested on (noise model, delta, sd, n, p), recorded in the
    /// `evaluated` event when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<serde_json::Value>,
}

/// Budget usage of a campaign, as seen inside the reserving transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Experiments not released.
    pub jobs: u32,
    /// Settled walltime of finished jobs plus the timeouts of reserved/submitted ones.
    pub walltime_secs: u64,
    /// Settled cost of finished jobs plus the reserved cost of reserved/submitted ones.
    pub cost_micro: u64,
    /// Experiments reserved or submitted.
    pub in_flight: u32,
    /// The `iter` the next reservation will get (1-based).
    pub next_iter: u32,
}

/// One experiment row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Experiment {
    /// Ledger-wide id.
    pub id: i64,
    /// Campaign id.
    pub campaign: String,
    /// 1-based position within the campaign.
    pub iter: u32,
    /// One of the [`state`] constants.
    pub state: String,
    /// Hypothesis text.
    pub hypothesis: String,
    /// Configuration.
    pub config: serde_json::Value,
    /// `loop` or `agent`.
    pub source: String,
    /// Proposal index, if the loop proposed it.
    pub proposal_index: Option<u64>,
    /// Backend name.
    pub backend: String,
    /// Hardware flavor.
    pub flavor: String,
    /// Timeout in seconds.
    pub timeout_secs: u64,
    /// Reserved worst-case cost.
    pub reserved_cost_micro: u64,
    /// Current attempt (0 until first submitted).
    pub attempt: u32,
    /// Backend job handle of the current attempt.
    pub handle: Option<String>,
    /// How the job ended (one of [`FINISH_STATUSES`]).
    pub status: Option<String>,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// Measured duration.
    pub duration_ms: Option<u64>,
    /// Settled walltime.
    pub spent_walltime_secs: Option<u64>,
    /// Settled cost.
    pub spent_cost_micro: Option<u64>,
    /// Objective metric (may be NaN or infinite; serialises as `null` then).
    pub metric: Option<f64>,
    /// All parsed metrics.
    pub metrics: Option<serde_json::Value>,
    /// keep / discard / anomalous.
    pub decision: Option<String>,
    /// Why.
    pub decision_reason: Option<String>,
    /// Best metric so far after this decision.
    pub best_so_far: Option<f64>,
    /// Error text.
    pub error: Option<String>,
    /// When reserved.
    pub created_ms: u64,
    /// When the current attempt was submitted.
    pub submitted_ms: Option<u64>,
    /// When finished.
    pub finished_ms: Option<u64>,
    /// When evaluated.
    pub evaluated_ms: Option<u64>,
}

/// One campaign row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Campaign {
    /// `c-<8 hex of sha256(project_root)>-<generation>`.
    pub id: String,
    /// Project root it belongs to.
    pub project_root: String,
    /// Hash of the approved program/envelope.
    pub program_hash: String,
    /// Creation time.
    pub created_ms: u64,
    /// `active`, `finished` or `stopped`.
    pub status: String,
    /// An operator asked it to stop.
    pub stop_requested: bool,
    /// Why it stopped / was asked to stop.
    pub stop_reason: Option<String>,
    /// 1-based generation per project root.
    pub generation: u32,
}

/// One human approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    /// Row id: the identity of an approval (two approvals can share a millisecond, never an id).
    pub id: i64,
    /// Project root.
    pub project_root: String,
    /// Pinned hash.
    pub hash: String,
    /// The approved document.
    pub document: String,
    /// Who approved.
    pub approver: String,
    /// When.
    pub created_ms: u64,
}

/// One event of the chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// 1-based, contiguous.
    pub seq: u64,
    /// Time of the transaction that appended it.
    pub ts_ms: u64,
    /// Campaign, if the event belongs to one.
    pub campaign: Option<String>,
    /// Event kind (`reserved`, `spend_refused`, ...).
    pub kind: String,
    /// Payload.
    pub payload: serde_json::Value,
    /// Chain hash.
    pub hash: String,
}

/// What [`crate::Ledger::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Number of event rows.
    pub events: u64,
    /// Highest seq present (0 when empty).
    pub head_seq: u64,
    /// Problems found; empty means the ledger is intact.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// No problems.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Whether any problem of this kind was found.
    pub fn has(&self, kind: ProblemKind) -> bool {
        self.problems.iter().any(|p| p.kind == kind)
    }
}

/// One problem found by `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The event concerned, if any.
    pub seq: Option<u64>,
    /// Classification.
    pub kind: ProblemKind,
    /// Explanation.
    pub detail: String,
}

/// Classification of a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A column of an event does not match its hash (or has the wrong type).
    Edited,
    /// One or more seq numbers are missing (a gap); `seq` is the first missing one.
    Deleted,
    /// An event links to an event that is not its predecessor.
    Reordered,
    /// The tail of the chain is missing (the head says there were more events).
    Truncated,
    /// A MAC does not verify (wrong key, or a forged/edited row).
    BadMac,
    /// The head (meta row or head file) is missing or inconsistent with the chain.
    HeadMismatch,
    /// Events beyond the recorded head, or with impossible seq numbers.
    Inserted,
    /// A campaign or experiment row (or the usage it implies) disagrees with what the events
    /// imply, or with its campaign's seal: the tables were edited outside mlres.
    TableMismatch,
}
