//! The mlres engine: one API used by every front end (CLI, agent-driven commands, MCP).
//!
//! It ties the pure policy (`mlres-policy`), the transactional ledger (`mlres-ledger`) and the
//! job backends (`mlres-backends`) together: load and check `program.md` against the human
//! approval, reserve budget atomically, submit experiments, reconcile finished jobs, parse
//! metrics from the jobs' own logs, keep or discard, decide when to stop, and regenerate the
//! human-readable exports in `runs/`. It emits [`LoopEvent`]s instead of printing, never reads
//! environment variables (the binary hands it a snapshot of what it may pass to jobs) and never
//! chooses exit codes. It must not know SQL, HTTP routes or terminal styling.

mod approver;
mod code;
mod datasets;
mod error;
mod evaluate;
mod export;
mod hfjobs;
pub mod identity;
mod keep;
mod outputs;
pub mod png;
mod project;
mod proposer;
pub mod report;
mod retention;
mod run;
mod slurm;
pub mod time;

pub use approver::{
    HumanApprover, MIN_SECRET_CHARS, SecretSource, hash_secret, set_approver_secret, verify_secret,
};
pub use code::{CodeChange, PinnedCode};
pub use datasets::local_dataset_paths;
pub use error::EngineError;
pub use evaluate::{
    Evaluation, KeepContext, evaluate_logs, evaluate_logs_with, scan_logs as scan_log_files,
};
pub use export::{ExportPaths, experiment_json, export};
pub use hfjobs::{
    HF_BUDGET_FILE, HfSettings, KnownJob, LABEL_ATTEMPT, LABEL_CAMPAIGN, LABEL_EXP, RemoteJobView,
    SUPERVISOR_SECRETS_ENV, SUPERVISOR_TOKEN_ENV, remote_job_json, settled_cost_micro,
    sweep_interval,
};
pub use outputs::{
    ARTIFACTS_DIR, ArtifactsReport, Content, CopiedFile, DEFAULT_MAX_OUTPUT_BYTES,
    MAX_OUTPUT_FILES, OutputFile, Outputs, Prepared, SkippedOutput,
};
pub use project::{ApprovalStatus, Project, approval_status, require_approval};
pub use retention::{DEFAULT_KEEP_ATTEMPTS, MIN_KEEP_ATTEMPTS, Pruned};
pub use run::{
    BestExperiment, BestSingle, CampaignStart, Engine, EngineConfig, LoopEvent, LoopOptions,
    LoopSummary, StatusReport, StopOutcome, SubmitOverrides, SubmitRequest, Suggestion,
    proposal_history, search_history,
};
pub use slurm::{SUPERVISOR_JWT_ENV, SUPERVISOR_VALUES_ENV, SlurmSettings, slurm_time_limit_secs};
