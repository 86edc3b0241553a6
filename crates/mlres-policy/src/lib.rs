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
mod dims;
mod early_stop;
mod error;
mod gp;
mod hub;
mod keep;
mod markdown;
mod metrics;
mod program;
mod search;
mod special;
mod tpe;
mod units;
mod yaml;

pub use approval::{
    approval_document, approval_hash, diff_documents, format_size, search_space_json, unified_diff,
};
pub use budget::{
    Decision, LoopFacts, Refusal, SpendRequest, StopReason, Usage, check_gpu_spend, check_spend,
    decide, glob_match, gpu_secs, job_cost_micro, priced_cost_micro, repo_allowed, stop_reason,
};
pub use code::{
    CODE_MANIFEST_FORMAT, CodeChanges, CodeFile, CodeManifest, MAX_CODE_BYTES, MAX_CODE_FILES,
    check_code_size, code_changes, human_size, sha256_hex,
};
pub use early_stop::{EarlyStop, MAX_RUNGS, Prune, asha_prune};
pub use error::{DurationError, ProgramError, SizeError};
pub use gp::{BayesTuning, suggest_bayes, suggest_bayes_with};
pub use hub::{
    HubRefusal, TokenScopes, check_create, check_delete, check_repo_scope, check_upload,
    check_upload_source, contains_hf_token, credential_reason, token_breadth,
};
pub use keep::{
    DEFAULT_CONFIDENCE, Evidence, MeanBest, MetricRange, NoiseModel, Run, Streaks, Verdict,
    config_key, decide_noisy, incumbent_mean, normal_sf, out_of_range, pooled_sd, range_hint,
    repeats_needed, student_t_sf,
};
pub use metrics::{MAX_METRIC_KEYS, MetricScan, curve_point, parse_metric_line};
pub use program::{
    BUILTIN_PLACEHOLDERS, Backend, Dist, Envelope, Goal, JobLimits, JobTemplate, Method, Objective,
    Param, Program, ProgramWarning, ProposerCommand, RUNS_DIR, Scalar, SearchSpace, Section,
    SlurmJob, TokenScope, format_cpus, is_env_name, is_metric_key, is_param_name, is_slurm_name,
    normalize_code_path, normalize_output_path, parse_program, split_command, uses_placeholder,
};
pub use search::{
    Config, ConfigArgError, MAX_HYPOTHESIS_CHARS, PROPOSER_ATTEMPTS, grid_size, param_size,
    parse_config_args, parse_proposal, propose, propose_next, render_command, validate_config,
};
pub use tpe::{Observation, Outcome, Tuning, suggest, suggest_with};
pub use units::{Money, format_duration, format_duration_exact, parse_duration, parse_size};
