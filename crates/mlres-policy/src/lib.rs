//! `mlres-policy`: the pure policy core of mlres.
//!
//! It parses `program.md` strictly (budget envelope, objective, job template, search
//! space) with exact line/column errors; renders the canonical approval document and
//! its hash; proposes and validates search configurations; reads metric lines from job
//! output; and decides budget refusals, keep/discard and stop conditions.
//!
//! This crate must not know about IO of any kind: no files, environment, clock,
//! network, processes, database or terminal. Everything takes strings or values and
//! returns values, so every rule is testable as a plain function. It does not know how
//! jobs run, where state is stored, or who calls it.
//!
//! `program.md` format, in short: level-2 headings `## Budget envelope` (required),
//! `## Objective`, `## Job`, `## Search space`, each followed by exactly one fenced
//! ```` ```yaml ```` block; other headings are prose kept as [`Section`]s. YAML is
//! parsed into a strict typed tree: no anchors, aliases, tags, merge keys, duplicate
//! or unknown keys; integers are `0|[1-9][0-9]*` (with `-` where signed); quoted
//! numbers are strings; booleans are `true`/`false`; durations have one exact parser,
//! [`parse_duration`]. Policy inside an HTML comment is an error.

mod approval;
mod budget;
mod code;
mod error;
mod hub;
mod markdown;
mod metrics;
mod program;
mod search;
mod units;
mod yaml;

pub use approval::{approval_document, approval_hash, diff_documents, format_size, unified_diff};
pub use budget::{
    Decision, LoopFacts, Refusal, SpendRequest, StopReason, Usage, check_gpu_spend, check_spend,
    decide, glob_match, gpu_secs, job_cost_micro, priced_cost_micro, repo_allowed, stop_reason,
};
pub use code::{
    CODE_MANIFEST_FORMAT, CodeChanges, CodeFile, CodeManifest, MAX_CODE_BYTES, MAX_CODE_FILES,
    check_code_size, code_changes, human_size, sha256_hex,
};
pub use error::{DurationError, ProgramError, SizeError};
pub use hub::{
    HubRefusal, TokenScopes, check_create, check_delete, check_repo_scope, check_upload,
    check_upload_source, contains_hf_token, credential_reason, token_breadth,
};
pub use metrics::{MAX_METRIC_KEYS, MetricScan, parse_metric_line};
pub use program::{
    BUILTIN_PLACEHOLDERS, Backend, Envelope, Goal, JobLimits, JobTemplate, Method, Objective,
    Param, Program, ProgramWarning, RUNS_DIR, Scalar, SearchSpace, Section, SlurmJob, TokenScope,
    format_cpus, is_env_name, is_metric_key, is_param_name, is_slurm_name, normalize_code_path,
    normalize_output_path, parse_program, split_command, uses_placeholder,
};
pub use search::{
    Config, ConfigArgError, grid_size, param_size, parse_config_args, propose, render_command,
    validate_config,
};
pub use units::{Money, format_duration, format_duration_exact, parse_duration, parse_size};
