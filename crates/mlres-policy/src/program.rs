//! `program.md`: types and the strict parser.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::ProgramError;
use crate::markdown::{self, Fence, MdSection};
use crate::units::{Money, parse_duration, parse_size};
use crate::yaml::{self, Kind, Node, Plain, classify};

/// A parsed `program.md`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Program {
    /// Text of the first level-1 heading.
    pub title: Option<String>,
    /// Every level-1 and level-2 heading with its body, in file order (text before the
    /// first heading, if any, is a section with an empty heading).
    pub sections: Vec<Section>,
    /// The budget envelope (`## Budget envelope`).
    pub envelope: Envelope,
    /// `## Objective`, if present.
    pub objective: Option<Objective>,
    /// `## Job`, if present.
    pub job: Option<JobTemplate>,
    /// `## Search space`, if present.
    pub search_space: Option<SearchSpace>,
    /// Things that parse but are probably mistakes (e.g. a parameter the job never receives),
    /// in file order. `mlres check` and `mlres approve` show them before anything is approved.
    #[serde(default)]
    pub warnings: Vec<ProgramWarning>,
}

/// A problem in `program.md` that does not stop it from running, located like a
/// [`ProgramError`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramWarning {
    /// 1-based line in `program.md`.
    pub line: usize,
    /// 1-based column (in characters) in `program.md`.
    pub column: usize,
    /// What is probably wrong, and its consequence.
    pub message: String,
    /// How to fix it, when we can tell.
    pub help: Option<String>,
}

impl std::fmt::Display for ProgramWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )?;
        if let Some(h) = &self.help {
            write!(f, "\n  help: {h}")?;
        }
        Ok(())
    }
}

/// A heading and the Markdown under it (up to the next level-1 or level-2 heading).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// Heading text as written (trimmed, without `#`s).
    pub heading: String,
    /// 1-based line of the heading.
    pub line: usize,
    /// Body text with leading and trailing blank lines removed.
    pub body: String,
}

impl Program {
    /// The first section whose heading equals `heading`, ignoring case and surrounding space.
    pub fn section(&self, heading: &str) -> Option<&Section> {
        let want = heading.trim().to_lowercase();
        self.sections
            .iter()
            .find(|s| s.heading.trim().to_lowercase() == want)
    }

    /// Body of `## Scope`, or `""`.
    pub fn scope_text(&self) -> &str {
        self.section("scope").map_or("", |s| s.body.as_str())
    }
}

/// What a human authorised to be spent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Maximum number of experiments (jobs) in the campaign.
    pub max_jobs: u32,
    /// Maximum summed walltime (reserved timeouts, then actual durations), seconds.
    pub max_walltime_secs: u64,
    /// Flavors a job may use; never empty.
    pub allowed_flavors: Vec<String>,
    /// Maximum timeout of one job, seconds.
    pub max_timeout_secs: u64,
    /// Whether repository deletes are allowed (default false).
    pub allow_deletes: bool,
    /// Repository globs that may be written; empty means no repository may be written.
    pub output_repos: Vec<String>,
    /// Maximum spend in dollars, if set.
    pub max_cost_usd: Option<Money>,
    /// Maximum experiments in flight at once (default 1).
    pub max_concurrent: u32,
    /// Namespace (user or org) that may be billed, if set.
    pub namespace: Option<String>,
    /// Container images allowed; empty means none beyond the backend default.
    pub images: Vec<String>,
    /// Datasets in scope; empty means none declared.
    pub datasets: Vec<String>,
    /// Models in scope; empty means none declared.
    pub models: Vec<String>,
    /// Backends allowed (default `[local]`); never empty.
    pub backends: Vec<Backend>,
    /// Walltime kept back at the end of a campaign (`final_reserve`, default 0): the
    /// loop stops proposing when it would eat into it.
    pub final_reserve_secs: u64,
    /// What to do with a token broader than the envelope needs (`token_scope`, default warn).
    pub token_scope: TokenScope,
    /// Whether repositories may be created public (`public_repos`, default false).
    pub public_repos: bool,
    /// Whether the user's own token may be injected into hf-jobs when no job-scoped token is
    /// configured (`user_token_in_jobs`, default false: such jobs are refused).
    pub user_token_in_jobs: bool,
    /// Slurm partitions jobs may be submitted to (`partitions`); empty: the cluster's default
    /// partition only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<String>,
    /// Most GPUs one Slurm job may request (`max_gpus_per_job`); `None`: no limit of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_gpus_per_job: Option<u32>,
    /// GPU budget of the campaign in GPU-seconds (`max_gpu_hours`, written in hours): each
    /// Slurm job reserves GPUs × time limit and is settled to GPUs × Slurm's elapsed time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_gpu_secs: Option<u64>,
}

/// `token_scope`: how a token broader than the envelope needs is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    /// Refuse to use it.
    Strict,
    /// Report it and go on (the default).
    Warn,
}

impl TokenScope {
    /// The YAML name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Strict => "strict",
            TokenScope::Warn => "warn",
        }
    }
}

/// Where jobs run. Only implemented backends are variants, so no backend name can be
/// parsed into something that would silently run elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// The embedded local sandbox (`local`).
    Local,
    /// Hugging Face Jobs (`hf-jobs`).
    HfJobs,
    /// A Slurm cluster, through `sbatch`/`squeue`/`sacct`/`scontrol`/`scancel` (`slurm`).
    Slurm,
}

impl Backend {
    /// All implemented backends.
    pub const ALL: [Backend; 3] = [Backend::Local, Backend::HfJobs, Backend::Slurm];

    /// Backend names that are planned but not implemented: a program that names one is
    /// refused with that reason rather than as an unknown name.
    pub const NOT_IMPLEMENTED: &'static [&'static str] = &[];

    /// The YAML name: `local`, `hf-jobs`, `slurm`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::HfJobs => "hf-jobs",
            Backend::Slurm => "slurm",
        }
    }

    /// Parses the name of an implemented backend.
    pub fn from_name(s: &str) -> Option<Backend> {
        Backend::ALL.into_iter().find(|b| b.as_str() == s)
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the loop optimises and when it stops on its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// Metric key as printed by the job (e.g. `eval_accuracy`).
    pub metric: String,
    /// Direction.
    pub goal: Goal,
    /// Stop once the best metric reaches this.
    pub target: Option<f64>,
    /// Stop after this many evaluated experiments without improvement.
    pub patience: Option<u32>,
    /// Circuit breaker: stop after this many consecutive failures (default 3).
    pub max_consecutive_failures: u32,
    /// `range:`: values of the metric outside it are refused (anomalous) with the reason.
    #[serde(default)]
    pub range: Option<crate::keep::MetricRange>,
    /// `noise:`: keep only improvements that clear the noise (see [`crate::keep`]).
    #[serde(default)]
    pub noise: Option<crate::keep::NoiseModel>,
    /// `early_stop:`: prune jobs by their intermediate metric lines (off when absent).
    #[serde(default)]
    pub early_stop: Option<crate::early_stop::EarlyStop>,
}

/// Direction of optimisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    /// Larger is better.
    Maximize,
    /// Smaller is better.
    Minimize,
}

/// The approved shape of every job of the campaign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTemplate {
    /// Backend (default `local`).
    pub backend: Backend,
    /// argv template with `{placeholder}`s; never run through a shell.
    pub command: Vec<String>,
    /// Flavor (default `cpu-basic`).
    pub flavor: String,
    /// Per-job timeout, seconds.
    pub timeout_secs: u64,
    /// Literal environment variables.
    pub env: BTreeMap<String, String>,
    /// Names of parent environment variables allowed through.
    pub pass_env: Vec<String>,
    /// Names of secrets granted to the job.
    pub secrets: Vec<String>,
    /// Resource limits.
    pub limits: JobLimits,
    /// Network access (default false: isolated).
    pub network: bool,
    /// Container image (`image`): required for `hf-jobs` and must be listed in the
    /// envelope's `images`; unused by `local`.
    pub image: Option<String>,
    /// `gpus`: how many of the machine's GPUs a local job gets (default 0: none, and
    /// `CUDA_VISIBLE_DEVICES` is empty). An hf-jobs job's GPUs come from its flavor.
    #[serde(default)]
    pub gpus: u32,
    /// `share_gpus`: the job's GPUs may be shared with other jobs that say so too (default
    /// false: a GPU belongs to one job at a time).
    #[serde(default)]
    pub share_gpus: bool,
    /// The code the job runs (`code:`): project-relative files and directories, normalised
    /// (no `.`, `..`, leading `/` or trailing `/`), none inside another. Hashed and
    /// snapshotted at approval; `{code}` names the snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub code: Vec<String>,
    /// What the job leaves behind for the project (`outputs:`): files and directories relative
    /// to its work dir, normalised like `code` (no `.`, `..`, leading or trailing `/`), none
    /// inside another. Only these come back (`mlres exp artifacts`, `mlres hub push`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
    /// Where a `backend: slurm` job runs on the cluster (`slurm:`); `None` for other backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmJob>,
}

/// The `slurm:` map of a job template: what `sbatch` is asked for besides the GPUs (`gpus`),
/// the memory (`limits.memory`) and the time limit (`timeout`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmJob {
    /// `partition`: one of the envelope's `partitions` (default: the first listed, else the
    /// cluster's default partition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// `account` to charge (default: the user's default account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `qos` (default: the association's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<String>,
    /// `cpus`: CPUs per task (default 1).
    #[serde(default = "one")]
    pub cpus: u32,
}

fn one() -> u32 {
    1
}

/// Is `s` usable as a Slurm partition, account or QoS name (letters, digits, `-`, `_`, `.`;
/// 1 to 64 characters)? Nothing else reaches an `sbatch` argument.
pub fn is_slurm_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !s.starts_with('-')
}

/// Resource limits of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLimits {
    /// `memory` (default 2 GiB): memory the job may actually use (resident, page cache and
    /// swap), not address space it reserves.
    pub memory_bytes: u64,
    /// `cpu_time`, if set.
    pub cpu_secs: Option<u64>,
    /// `file_size`: largest file the job may write (default 1 GiB).
    pub file_size_bytes: u64,
    /// `processes` (default 256): processes and threads of the job.
    pub processes: u64,
    /// `log_size`: captured log cap (default 8 MiB).
    pub log_bytes: u64,
    /// `address_space`: an explicit cap on the address space of each process
    /// (`RLIMIT_AS`); unset by default, because CUDA and PyTorch reserve far more address
    /// space than they use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_space_bytes: Option<u64>,
    /// `cpus`: how many CPUs' worth of time the job may use, in thousandths of a CPU
    /// (`cpus: 1.5` is 1500); unset by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_millis: Option<u64>,
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits {
            memory_bytes: 2 << 30,
            cpu_secs: None,
            file_size_bytes: 1 << 30,
            processes: 256,
            log_bytes: 8 << 20,
            address_space_bytes: None,
            cpu_millis: None,
        }
    }
}

/// The approved search space (W&B sweep syntax).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchSpace {
    /// Proposal method.
    pub method: Method,
    /// Parameters by name; never empty.
    pub parameters: BTreeMap<String, Param>,
    /// Seed of the random proposer (default 0).
    pub seed: u64,
    /// `method: command`: the executable that proposes each configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<ProposerCommand>,
}

/// `method: command`: an executable (argv, no shell) that reads the campaign state as JSON on
/// stdin and prints `{"hypothesis": "...", "config": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposerCommand {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// How long one proposal may take before it is killed and refused (default 10m).
    pub timeout_secs: u64,
}

/// Proposal method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Cartesian product of `value`/`values`.
    Grid,
    /// Independent random draws.
    Random,
    /// Tree-structured Parzen estimator: a model of good versus other configurations,
    /// fitted to the campaign's history (see [`crate::tpe`]).
    Tpe,
    /// Bayesian optimisation with a Gaussian process fitted to the campaign's history (see
    /// [`crate::gp`]).
    Bayes,
    /// An executable proposes each configuration (an LLM such as `claude -p`, or a script).
    Command,
}

impl Method {
    /// The name written in `program.md`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Grid => "grid",
            Method::Random => "random",
            Method::Tpe => "tpe",
            Method::Bayes => "bayes",
            Method::Command => "command",
        }
    }
}

/// One parameter's domain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Param {
    /// `{value: x}` or `{distribution: constant, value: x}`.
    Value(Scalar),
    /// `{values: [...]}` or `{distribution: categorical, values: [...]}`.
    Values(Vec<Scalar>),
    /// `{distribution: uniform, min, max}`.
    Uniform {
        /// Lower bound (inclusive).
        min: f64,
        /// Upper bound (inclusive).
        max: f64,
    },
    /// `{distribution: int_uniform, min, max}`, inclusive.
    IntUniform {
        /// Lower bound (inclusive).
        min: i64,
        /// Upper bound (inclusive).
        max: i64,
    },
    /// `{distribution: log_uniform_values, min, max}` with `0 < min < max`.
    LogUniformValues {
        /// Lower bound (inclusive).
        min: f64,
        /// Upper bound (inclusive).
        max: f64,
    },
    /// `{distribution: q_uniform, min, max, q}`: multiples of `q` in `[min, max]`.
    QUniform {
        /// Lower bound (inclusive).
        min: f64,
        /// Upper bound (inclusive).
        max: f64,
        /// Step (default 1).
        q: f64,
    },
    /// `{distribution: int_uniform, min, max, log: true}`: integers in `[min, max]`
    /// (`min >= 1`) with evenly distributed logarithms.
    IntLogUniform {
        /// Lower bound (inclusive).
        min: i64,
        /// Upper bound (inclusive).
        max: i64,
    },
    /// The quantised and shaped W&B distributions, drawn as `round(X / q) * q` where `X`
    /// follows [`Dist`]; see there for each one's meaning of its keys.
    Shaped {
        /// The underlying distribution and its parameters, as written.
        dist: Dist,
        /// Quantisation step, `None` for the unquantised distributions.
        q: Option<f64>,
        /// Values are integers: `q` was written as an integer or left at its default 1.
        int: bool,
    },
}

/// The W&B distributions beyond uniform/int/log-uniform-values/q-uniform, with W&B's
/// semantics (`wandb/sweeps`): `*_log_uniform` without `_values` take natural-log
/// exponents as `min`/`max`, the `_values` forms take the values themselves.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dist {
    /// `q_log_uniform`: `X = exp(U(min, max))` (exponents).
    LogUniform {
        /// Lower exponent.
        min: f64,
        /// Upper exponent.
        max: f64,
    },
    /// `q_log_uniform_values`: `log X ~ U(log min, log max)` (values, `0 < min`).
    LogUniformValues {
        /// Lower value.
        min: f64,
        /// Upper value.
        max: f64,
    },
    /// `inv_log_uniform`: `X = exp(-U(min, max))`, so `X` lies in `[e^-max, e^-min]`.
    InvLogUniform {
        /// Lower exponent of `1/X`.
        min: f64,
        /// Upper exponent of `1/X`.
        max: f64,
    },
    /// `inv_log_uniform_values`: `1/X` log-uniform in `[1/max, 1/min]`, so `X` lies in
    /// `[min, max]`.
    InvLogUniformValues {
        /// Lower value.
        min: f64,
        /// Upper value.
        max: f64,
    },
    /// `normal` / `q_normal`: `N(mu, sigma)` (defaults 0, 1).
    Normal {
        /// Mean.
        mu: f64,
        /// Standard deviation (> 0).
        sigma: f64,
    },
    /// `log_normal` / `q_log_normal`: `exp(N(mu, sigma))`.
    LogNormal {
        /// Mean of the logarithm.
        mu: f64,
        /// Standard deviation of the logarithm (> 0).
        sigma: f64,
    },
    /// `beta` / `q_beta`: `Beta(a, b)` on `[0, 1]` (defaults 1, 1).
    Beta {
        /// First shape (> 0).
        a: f64,
        /// Second shape (> 0).
        b: f64,
    },
}

impl Dist {
    /// The `distribution:` name this was written with, given whether it is quantised.
    pub fn wandb_name(&self, quantised: bool) -> &'static str {
        match (self, quantised) {
            (Dist::LogUniform { .. }, false) => "log_uniform",
            (Dist::LogUniform { .. }, true) => "q_log_uniform",
            (Dist::LogUniformValues { .. }, _) => "q_log_uniform_values",
            (Dist::InvLogUniform { .. }, _) => "inv_log_uniform",
            (Dist::InvLogUniformValues { .. }, _) => "inv_log_uniform_values",
            (Dist::Normal { .. }, false) => "normal",
            (Dist::Normal { .. }, true) => "q_normal",
            (Dist::LogNormal { .. }, false) => "log_normal",
            (Dist::LogNormal { .. }, true) => "q_log_normal",
            (Dist::Beta { .. }, false) => "beta",
            (Dist::Beta { .. }, true) => "q_beta",
        }
    }

    /// The bounds of the unquantised values, `None` where a side is unbounded.
    pub fn bounds(&self) -> (Option<f64>, Option<f64>) {
        match *self {
            Dist::LogUniform { min, max } => (Some(min.exp()), Some(max.exp())),
            Dist::LogUniformValues { min, max } | Dist::InvLogUniformValues { min, max } => {
                (Some(min), Some(max))
            }
            Dist::InvLogUniform { min, max } => (Some((-max).exp()), Some((-min).exp())),
            Dist::Normal { .. } => (None, None),
            Dist::LogNormal { .. } => (Some(0.0), None),
            Dist::Beta { .. } => (Some(0.0), Some(1.0)),
        }
    }
}

/// A literal value of a parameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// An integer.
    Int(i64),
    /// A finite float.
    Float(f64),
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
}

impl Scalar {
    /// The JSON value of this scalar.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Scalar::Int(i) => serde_json::Value::from(*i),
            Scalar::Float(f) => serde_json::Number::from_f64(*f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Scalar::Str(s) => serde_json::Value::String(s.clone()),
            Scalar::Bool(b) => serde_json::Value::Bool(*b),
        }
    }

    /// Equality with numbers compared numerically (`1 == 1.0`).
    pub fn same_value(&self, other: &Scalar) -> bool {
        match (self.as_f64(), other.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => self == other,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            #[allow(clippy::cast_precision_loss)]
            Scalar::Int(i) => Some(*i as f64),
            Scalar::Float(f) => Some(*f),
            _ => None,
        }
    }
}

/// Placeholders every job command may use besides search-space parameters.
/// `{project}` is the absolute project directory (the one holding `program.md`); a job's
/// working directory is its attempt's `{workdir}`, so files in the project are named through it.
/// `{code}` is the root of the read-only snapshot of the job's `code:` taken at approval (only
/// with a `code:` list).
pub const BUILTIN_PLACEHOLDERS: &[&str] = &[
    "mlres", "exp_id", "iter", "workdir", "seed", "project", "code",
];

/// The project directory mlres writes its exports to: never code.
pub const RUNS_DIR: &str = "runs";

const ENVELOPE_KEYS: &[&str] = &[
    "max_jobs",
    "max_walltime",
    "allowed_flavors",
    "max_timeout",
    "allow_deletes",
    "output_repos",
    "max_cost_usd",
    "max_concurrent",
    "namespace",
    "images",
    "datasets",
    "models",
    "backends",
    "final_reserve",
    "token_scope",
    "public_repos",
    "user_token_in_jobs",
    "partitions",
    "max_gpus_per_job",
    "max_gpu_hours",
];
const ENVELOPE_MARKERS: &[&str] = &["max_jobs", "max_walltime", "allowed_flavors", "max_timeout"];
const OBJECTIVE_KEYS: &[&str] = &[
    "metric",
    "goal",
    "target",
    "patience",
    "max_consecutive_failures",
    "range",
    "noise",
    "early_stop",
];
const NOISE_KEYS: &[&str] = &["sd", "repeats", "confidence"];
const RANGE_KEYS: &[&str] = &["min", "max"];
const EARLY_STOP_KEYS: &[&str] = &[
    "method",
    "step",
    "min_step",
    "max_step",
    "reduction_factor",
    "startup",
];
const JOB_KEYS: &[&str] = &[
    "backend",
    "command",
    "flavor",
    "timeout",
    "env",
    "pass_env",
    "secrets",
    "limits",
    "network",
    "image",
    "gpus",
    "share_gpus",
    "code",
    "outputs",
    "slurm",
];
const SLURM_KEYS: &[&str] = &["partition", "account", "qos", "cpus"];
/// The variable `gpus` decides for local jobs; a template cannot set or pass it.
const GPU_ENV: &str = "CUDA_VISIBLE_DEVICES";
const LIMIT_KEYS: &[&str] = &[
    "memory",
    "cpu_time",
    "file_size",
    "processes",
    "log_size",
    "address_space",
    "cpus",
];
/// Smallest `cpus`: the kernel's smallest CPU quota is 1 ms per 100 ms period.
const MIN_CPU_MILLIS: u64 = 10;
/// Largest `cpus` (a bound against typos, far above any machine mlres runs on).
const MAX_CPU_MILLIS: u64 = 4096 * 1000;
const SEARCH_KEYS: &[&str] = &["method", "parameters", "seed", "command", "timeout"];
const PARAM_KEYS: &[&str] = &[
    "value",
    "values",
    "distribution",
    "min",
    "max",
    "q",
    "log",
    "mu",
    "sigma",
    "a",
    "b",
];
const DISTRIBUTIONS: &[&str] = &[
    "constant",
    "categorical",
    "uniform",
    "int_uniform",
    "log_uniform_values",
    "q_uniform",
    "q_log_uniform",
    "q_log_uniform_values",
    "inv_log_uniform",
    "inv_log_uniform_values",
    "normal",
    "q_normal",
    "log_normal",
    "q_log_normal",
    "beta",
    "q_beta",
];
const METHODS: &[&str] = &["grid", "random", "tpe", "bayes", "command"];

// ---------------------------------------------------------------------------
// Small helpers

/// Levenshtein distance over chars.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest candidate, if close enough to be a plausible typo.
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&lower, c), *c))
        .filter(|(d, c)| *d <= (c.chars().count() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn suggestion(word: &str, candidates: &[&str], noun: &str) -> String {
    match closest(word, candidates) {
        Some(c) => format!("did you mean `{c}`?"),
        None => format!("valid {noun}: {}", candidates.join(", ")),
    }
}

fn err(node: &Node, msg: impl Into<String>) -> ProgramError {
    ProgramError::new(node.line, node.col, msg)
}

/// Is `s` a valid environment variable / secret name `[A-Z_][A-Z0-9_]*`?
pub fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Is `s` a valid metric key `[A-Za-z_][A-Za-z0-9_./-]*`?
pub fn is_metric_key(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
}

/// Is `s` a valid parameter / placeholder name `[A-Za-z_][A-Za-z0-9_]*`?
pub fn is_param_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

struct MapView<'a> {
    node: &'a Node,
    entries: &'a [(Node, Node)],
    what: &'a str,
}

impl<'a> MapView<'a> {
    fn new(node: &'a Node, what: &'a str) -> Result<Self, ProgramError> {
        match &node.kind {
            Kind::Map(entries) => Ok(MapView {
                node,
                entries,
                what,
            }),
            _ => Err(err(
                node,
                format!(
                    "{what} must be a mapping of `key: value` lines, found {}",
                    node.describe()
                ),
            )),
        }
    }

    fn check_keys(&self, allowed: &[&str]) -> Result<(), ProgramError> {
        for (k, _) in self.entries {
            let name = key_text(k);
            if !allowed.contains(&name) {
                return Err(err(k, format!("unknown key `{name}` in {}", self.what))
                    .with_help(suggestion(name, allowed, "keys")));
            }
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| key_text(k) == key)
            .map(|(_, v)| v)
    }

    fn get_key(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| key_text(k) == key)
            .map(|(k, _)| k)
    }

    fn require(&self, key: &str) -> Result<&'a Node, ProgramError> {
        self.get(key).ok_or_else(|| {
            err(
                self.node,
                format!("missing required key `{key}` in {}", self.what),
            )
        })
    }
}

fn key_text(node: &Node) -> &str {
    match &node.kind {
        Kind::Scalar { value, .. } => value,
        _ => "",
    }
}

fn plain_class(node: &Node) -> Option<(Plain, &str)> {
    match &node.kind {
        Kind::Scalar { value, plain: true } => Some((classify(value), value)),
        _ => None,
    }
}

fn get_u64(node: &Node, key: &str) -> Result<u64, ProgramError> {
    if let Some((Plain::Int, v)) = plain_class(node)
        && !v.starts_with('-')
    {
        return v
            .parse::<u64>()
            .map_err(|_| err(node, format!("`{key}` is too large")));
    }
    let mut e = err(
        node,
        format!(
            "`{key}` must be a non-negative integer, found {}",
            node.describe()
        ),
    );
    match (&node.kind, plain_class(node)) {
        (
            Kind::Scalar {
                value,
                plain: false,
            },
            _,
        ) if classify(value) == Plain::Int => {
            e = e.with_help("remove the quotes: a quoted number is a string");
        }
        (_, Some((Plain::Float, _))) => {
            e = e.with_help("write a whole number such as 12 (no decimal point or exponent)");
        }
        (_, Some((Plain::BadNumber, _))) => {
            e = e.with_help(
                "write digits only, without sign, `_`, leading zeros or a base prefix, e.g. 1000",
            );
        }
        (_, Some((Plain::Int, _))) => e = e.with_help("the value must be 0 or more"),
        _ => {}
    }
    Err(e)
}

fn get_u32(node: &Node, key: &str) -> Result<u32, ProgramError> {
    let v = get_u64(node, key)?;
    u32::try_from(v).map_err(|_| err(node, format!("`{key}` is too large (at most {})", u32::MAX)))
}

fn get_i64(node: &Node, key: &str) -> Result<i64, ProgramError> {
    if let Some((Plain::Int, v)) = plain_class(node) {
        return v
            .parse::<i64>()
            .map_err(|_| err(node, format!("`{key}` is out of range")));
    }
    let e = err(
        node,
        format!("`{key}` must be an integer, found {}", node.describe()),
    );
    Err(number_help(node, e))
}

fn number_help(node: &Node, e: ProgramError) -> ProgramError {
    match (&node.kind, plain_class(node)) {
        (Kind::Scalar { value, plain: false }, _)
            if matches!(classify(value), Plain::Int | Plain::Float) =>
        {
            e.with_help("remove the quotes: a quoted number is a string")
        }
        (_, Some((Plain::BadNumber, _))) => {
            e.with_help("write numbers like 3, -2, 0.5 or 1e-4 (no `+`, `_`, leading `.`, leading zeros, hex, inf or nan)")
        }
        _ => e,
    }
}

fn get_f64(node: &Node, key: &str) -> Result<f64, ProgramError> {
    if let Some((Plain::Int | Plain::Float, v)) = plain_class(node) {
        let f: f64 = v
            .parse()
            .map_err(|_| err(node, format!("`{key}` is not a number")))?;
        if !f.is_finite() {
            return Err(err(node, format!("`{key}` is out of range (not finite)")));
        }
        return Ok(f);
    }
    let e = err(
        node,
        format!("`{key}` must be a number, found {}", node.describe()),
    );
    Err(number_help(node, e))
}

fn get_bool(node: &Node, key: &str) -> Result<bool, ProgramError> {
    if let Some((Plain::Bool(b), _)) = plain_class(node) {
        return Ok(b);
    }
    let e = err(
        node,
        format!("`{key}` must be true or false, found {}", node.describe()),
    );
    Err(match &node.kind {
        Kind::Scalar { value, plain: true }
            if matches!(
                value.to_lowercase().as_str(),
                "yes" | "no" | "on" | "off" | "y" | "n"
            ) =>
        {
            e.with_help("YAML 1.2 booleans are only `true` and `false`")
        }
        Kind::Scalar {
            value,
            plain: false,
        } if matches!(classify(value), Plain::Bool(_)) => {
            e.with_help("remove the quotes: a quoted `true` is a string")
        }
        _ => e,
    })
}

fn get_str(node: &Node, key: &str) -> Result<String, ProgramError> {
    let s = match &node.kind {
        Kind::Scalar {
            value,
            plain: false,
        } => value.clone(),
        Kind::Scalar { value, plain: true } if classify(value) == Plain::Str => value.clone(),
        _ => {
            return Err(err(
                node,
                format!("`{key}` must be a string, found {}", node.describe()),
            )
            .with_help("quote it if you mean the text"));
        }
    };
    if s.trim().is_empty() {
        return Err(err(node, format!("`{key}` must not be empty")));
    }
    Ok(s)
}

/// The literal text of any non-null scalar (env values, command words).
fn get_text(node: &Node, key: &str) -> Result<String, ProgramError> {
    match &node.kind {
        Kind::Scalar { value, plain } if !(*plain && classify(value) == Plain::Null) => {
            Ok(value.clone())
        }
        _ => Err(err(
            node,
            format!("`{key}` must be a string, found {}", node.describe()),
        )),
    }
}

fn get_list<'a>(node: &'a Node, key: &str) -> Result<&'a [Node], ProgramError> {
    match &node.kind {
        Kind::Seq(items) => Ok(items),
        _ => Err(err(
            node,
            format!("`{key}` must be a list, found {}", node.describe()),
        )
        .with_help(format!("write `{key}: [a, b]` or one `- item` per line"))),
    }
}

fn get_str_list(node: &Node, key: &str) -> Result<Vec<String>, ProgramError> {
    let items = get_list(node, key)?;
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let s = get_str(item, &format!("{key} entry"))?;
        if out.contains(&s) {
            return Err(err(item, format!("`{s}` is listed twice in `{key}`")));
        }
        out.push(s);
    }
    Ok(out)
}

fn get_name_list(node: &Node, key: &str) -> Result<Vec<String>, ProgramError> {
    let names = get_str_list(node, key)?;
    if let Kind::Seq(items) = &node.kind {
        for (name, item) in names.iter().zip(items) {
            if !is_env_name(name) {
                return Err(
                    err(item, format!("`{name}` in `{key}` is not a variable name"))
                        .with_help("names are upper case letters, digits and `_`, e.g. HF_TOKEN"),
                );
            }
        }
    }
    Ok(names)
}

fn get_duration(node: &Node, key: &str) -> Result<u64, ProgramError> {
    let text = match &node.kind {
        Kind::Scalar { value, plain }
            if !*plain || !matches!(classify(value), Plain::Null | Plain::Bool(_)) =>
        {
            value
        }
        _ => {
            return Err(err(
                node,
                format!(
                    "`{key}` must be a duration such as `30m`, found {}",
                    node.describe()
                ),
            ));
        }
    };
    parse_duration(text).map_err(|e| err(node, format!("`{key}`: {e}")))
}

fn get_size(node: &Node, key: &str) -> Result<u64, ProgramError> {
    let text = match &node.kind {
        Kind::Scalar { value, plain }
            if !*plain || !matches!(classify(value), Plain::Null | Plain::Bool(_)) =>
        {
            value
        }
        _ => {
            return Err(err(
                node,
                format!(
                    "`{key}` must be a size such as `2GiB`, found {}",
                    node.describe()
                ),
            ));
        }
    };
    parse_size(text).map_err(|e| err(node, format!("`{key}`: {e}")))
}

fn get_money(node: &Node, key: &str) -> Result<Money, ProgramError> {
    match plain_class(node) {
        Some((Plain::Int | Plain::Float | Plain::BadNumber, v)) => {
            Money::parse(v).map_err(|e| err(node, format!("`{key}`: {e}")))
        }
        _ => {
            let e = err(
                node,
                format!(
                    "`{key}` must be a number of dollars such as 12.50, found {}",
                    node.describe()
                ),
            );
            Err(number_help(node, e))
        }
    }
}

fn get_backend(node: &Node, key: &str) -> Result<Backend, ProgramError> {
    let s = get_str(node, key)?;
    let names: Vec<&str> = Backend::ALL.iter().map(|b| b.as_str()).collect();
    if Backend::NOT_IMPLEMENTED.contains(&s.as_str()) {
        return Err(err(
            node,
            format!("backend `{s}` is not implemented yet (in `{key}`)"),
        )
        .with_help(format!(
            "implemented backends: {}; mlres never runs a job on another backend than the one approved",
            names.join(", ")
        )));
    }
    Backend::from_name(&s).ok_or_else(|| {
        err(node, format!("unknown backend `{s}` in `{key}`"))
            .with_help(suggestion(&s, &names, "backends"))
    })
}

// ---------------------------------------------------------------------------
// Command template

/// A piece of a command argument template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    Lit(String),
    Var(String),
}

/// Splits an argument into literal text and `{name}` placeholders (`{{`/`}}` escape).
pub(crate) fn parse_placeholders(arg: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = arg.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                lit.push('}');
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for n in chars.by_ref() {
                    if n == '}' {
                        closed = true;
                        break;
                    }
                    name.push(n);
                }
                if !closed {
                    return Err(format!(
                        "unclosed `{{` in `{arg}`; write `{{{{` for a literal brace"
                    ));
                }
                if !is_param_name(&name) {
                    return Err(format!(
                        "`{{{name}}}` in `{arg}` is not a valid placeholder; write `{{{{` for a literal brace"
                    ));
                }
                if !lit.is_empty() {
                    out.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                out.push(Piece::Var(name));
            }
            '}' => {
                return Err(format!(
                    "stray `}}` in `{arg}`; write `}}}}` for a literal brace"
                ));
            }
            _ => lit.push(c),
        }
    }
    if !lit.is_empty() {
        out.push(Piece::Lit(lit));
    }
    Ok(out)
}

/// Whether any word of `command` uses the placeholder `{name}` (escaped braces do not count).
pub fn uses_placeholder(command: &[String], name: &str) -> bool {
    command.iter().any(|w| {
        parse_placeholders(w)
            .is_ok_and(|ps| ps.iter().any(|p| matches!(p, Piece::Var(v) if v == name)))
    })
}

/// Splits a one-line command into words: whitespace separates, `'…'` and `"…"` quote
/// (no escapes), adjacent parts join. No shell: operators and `$` are refused unquoted.
pub fn split_command(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                let mut closed = false;
                for n in chars.by_ref() {
                    if n == c {
                        closed = true;
                        break;
                    }
                    cur.push(n);
                }
                if !closed {
                    return Err(format!("unclosed {c} quote in the command"));
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '|' | '&' | ';' | '<' | '>' | '`' | '$' | '\\' => {
                return Err(format!(
                    "`{c}` in the command: commands are not run through a shell (no pipes, redirects, `&&`, variables or escapes)"
                ));
            }
            _ => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

// ---------------------------------------------------------------------------
// Sections

struct JobPos {
    backend: Option<Node>,
    image: Option<Node>,
    pass_env: Option<Node>,
    flavor: Option<Node>,
    timeout: Node,
    /// One node per command word (the whole string node when the command was a string).
    command: Vec<Node>,
    /// The `code:` list.
    code: Option<Node>,
    /// The `outputs:` list.
    outputs: Option<Node>,
    /// The `slurm:` map.
    slurm: Option<Node>,
    at: Node,
}

fn parse_envelope(root: &Node) -> Result<Envelope, ProgramError> {
    let m = MapView::new(root, "the budget envelope")?;
    m.check_keys(ENVELOPE_KEYS)?;
    let max_jobs = get_u32(m.require("max_jobs")?, "max_jobs")?;
    let max_walltime_secs = get_duration(m.require("max_walltime")?, "max_walltime")?;
    let flavors_node = m.require("allowed_flavors")?;
    let allowed_flavors = get_str_list(flavors_node, "allowed_flavors")?;
    if allowed_flavors.is_empty() {
        return Err(err(flavors_node, "`allowed_flavors` is empty").with_help(
            "list the flavors jobs may use, e.g. [cpu-basic, t4-small]; an empty list does not mean \"any flavor\"",
        ));
    }
    let max_timeout_secs = get_duration(m.require("max_timeout")?, "max_timeout")?;
    let allow_deletes = m
        .get("allow_deletes")
        .map(|n| get_bool(n, "allow_deletes"))
        .transpose()?
        .unwrap_or(false);
    let list = |key: &str| -> Result<Vec<String>, ProgramError> {
        m.get(key)
            .map(|n| get_str_list(n, key))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    let output_repos = list("output_repos")?;
    let images = list("images")?;
    let datasets = list("datasets")?;
    let models = list("models")?;
    let max_cost_usd = m
        .get("max_cost_usd")
        .map(|n| get_money(n, "max_cost_usd"))
        .transpose()?;
    let max_concurrent = match m.get("max_concurrent") {
        Some(n) => {
            let v = get_u32(n, "max_concurrent")?;
            if v == 0 {
                return Err(err(n, "`max_concurrent` must be at least 1"));
            }
            v
        }
        None => 1,
    };
    let namespace = m
        .get("namespace")
        .map(|n| get_str(n, "namespace"))
        .transpose()?;
    let backends = match m.get("backends") {
        Some(n) => {
            let items = get_list(n, "backends")?;
            if items.is_empty() {
                return Err(err(n, "`backends` is empty").with_help(
                    "list the backends jobs may use, e.g. [local]; an empty list does not mean \"any backend\"",
                ));
            }
            let mut out = Vec::new();
            for item in items {
                let b = get_backend(item, "backends")?;
                if out.contains(&b) {
                    return Err(err(item, format!("`{b}` is listed twice in `backends`")));
                }
                out.push(b);
            }
            out
        }
        None => vec![Backend::Local],
    };
    let final_reserve_secs = match m.get("final_reserve") {
        Some(n) => {
            let v = get_duration(n, "final_reserve")?;
            if v > max_walltime_secs {
                return Err(err(n, "`final_reserve` is larger than `max_walltime`"));
            }
            v
        }
        None => 0,
    };
    let flag = |key: &str| -> Result<bool, ProgramError> {
        m.get(key)
            .map(|n| get_bool(n, key))
            .transpose()
            .map(|v| v.unwrap_or(false))
    };
    let public_repos = flag("public_repos")?;
    let user_token_in_jobs = flag("user_token_in_jobs")?;
    let token_scope = match m.get("token_scope") {
        Some(n) => {
            let s = get_str(n, "token_scope")?;
            match s.as_str() {
                "strict" => TokenScope::Strict,
                "warn" => TokenScope::Warn,
                other => {
                    return Err(err(
                        n,
                        format!("`token_scope` must be strict or warn, found `{other}`"),
                    )
                    .with_help(suggestion(
                        other,
                        &["strict", "warn"],
                        "values",
                    )));
                }
            }
        }
        None => TokenScope::Warn,
    };
    let partitions = list("partitions")?;
    for (i, p) in partitions.iter().enumerate() {
        if !is_slurm_name(p) {
            let n = m.get("partitions").unwrap_or(root);
            return Err(err(n, format!("`{p}` is not a Slurm partition name"))
                .with_help("partition names are letters, digits, `-`, `_` and `.`"));
        }
        if partitions[..i].contains(p) {
            let n = m.get("partitions").unwrap_or(root);
            return Err(err(n, format!("`{p}` is listed twice in `partitions`")));
        }
    }
    let max_gpus_per_job = m
        .get("max_gpus_per_job")
        .map(|n| get_u32(n, "max_gpus_per_job"))
        .transpose()?;
    let max_gpu_secs = match m.get("max_gpu_hours") {
        Some(n) => {
            let h = get_f64(n, "max_gpu_hours")?;
            if !h.is_finite() || !(0.0..=1.0e9).contains(&h) {
                return Err(err(
                    n,
                    "`max_gpu_hours` must be a number of GPU-hours from 0 up, e.g. 2.5",
                ));
            }
            Some((h * 3600.0).round() as u64)
        }
        None => None,
    };
    Ok(Envelope {
        partitions,
        max_gpus_per_job,
        max_gpu_secs,
        token_scope,
        public_repos,
        user_token_in_jobs,
        max_jobs,
        max_walltime_secs,
        allowed_flavors,
        max_timeout_secs,
        allow_deletes,
        output_repos,
        max_cost_usd,
        max_concurrent,
        namespace,
        images,
        datasets,
        models,
        backends,
        final_reserve_secs,
    })
}

fn parse_objective(root: &Node) -> Result<Objective, ProgramError> {
    let m = MapView::new(root, "the objective")?;
    m.check_keys(OBJECTIVE_KEYS)?;
    let metric_node = m.require("metric")?;
    let metric = get_str(metric_node, "metric")?;
    if !is_metric_key(&metric) {
        return Err(err(metric_node, format!("`{metric}` is not a metric name mlres can read from job output"))
            .with_help("metric names are letters, digits and `_./-`, starting with a letter or `_`, e.g. eval_accuracy"));
    }
    let goal_node = m.require("goal")?;
    let goal_s = get_str(goal_node, "goal")?;
    let goal = match goal_s.as_str() {
        "maximize" => Goal::Maximize,
        "minimize" => Goal::Minimize,
        other => {
            return Err(err(
                goal_node,
                format!("`goal` must be maximize or minimize, found `{other}`"),
            )
            .with_help(suggestion(other, &["maximize", "minimize"], "goals")));
        }
    };
    let target = m.get("target").map(|n| get_f64(n, "target")).transpose()?;
    let patience = match m.get("patience") {
        Some(n) => {
            let v = get_u32(n, "patience")?;
            if v == 0 {
                return Err(err(n, "`patience` must be at least 1 (omit it to disable)"));
            }
            Some(v)
        }
        None => None,
    };
    let max_consecutive_failures = match m.get("max_consecutive_failures") {
        Some(n) => {
            let v = get_u32(n, "max_consecutive_failures")?;
            if v == 0 {
                return Err(err(n, "`max_consecutive_failures` must be at least 1"));
            }
            v
        }
        None => 3,
    };
    let range = m.get("range").map(parse_range).transpose()?;
    if let (Some(r), Some(t), Some(n)) = (range, target, m.get("target"))
        && !r.contains(t)
    {
        return Err(err(
            n,
            format!("`target` {t} is outside the declared `range` {r}: it can never be reached"),
        ));
    }
    let noise = m.get("noise").map(parse_noise).transpose()?;
    let early_stop = m.get("early_stop").map(parse_early_stop).transpose()?;
    Ok(Objective {
        metric,
        goal,
        target,
        patience,
        max_consecutive_failures,
        range,
        noise,
        early_stop,
    })
}

fn parse_range(node: &Node) -> Result<crate::keep::MetricRange, ProgramError> {
    let bound = |n: &Node, key: &str| match &n.kind {
        Kind::Scalar { value, plain: true } if value == "null" || value == "~" => Ok(None),
        _ => get_f64(n, key).map(Some),
    };
    let (min, max) = match &node.kind {
        Kind::Seq(items) if items.len() == 2 => {
            (bound(&items[0], "range")?, bound(&items[1], "range")?)
        }
        Kind::Map(_) => {
            let m = MapView::new(node, "`range`")?;
            m.check_keys(RANGE_KEYS)?;
            (
                m.get("min").map(|n| get_f64(n, "min")).transpose()?,
                m.get("max").map(|n| get_f64(n, "max")).transpose()?,
            )
        }
        _ => {
            return Err(err(
                node,
                format!(
                    "`range` must be `[low, high]` or `{{min: low, max: high}}`, found {}",
                    node.describe()
                ),
            )
            .with_help("e.g. `range: [0, 1]`, or `range: [0, 100]` for a percentage"));
        }
    };
    if min.is_none() && max.is_none() {
        return Err(err(node, "`range` needs at least one bound"));
    }
    if let (Some(lo), Some(hi)) = (min, max)
        && lo >= hi
    {
        return Err(err(
            node,
            format!("`range` must have low < high, found [{lo}, {hi}]"),
        ));
    }
    Ok(crate::keep::MetricRange { min, max })
}

fn parse_noise(node: &Node) -> Result<crate::keep::NoiseModel, ProgramError> {
    let m = MapView::new(node, "`noise`")?;
    m.check_keys(NOISE_KEYS)?;
    let sd = match m.get("sd") {
        Some(n) => {
            let v = get_f64(n, "sd")?;
            if v <= 0.0 {
                return Err(err(n, "`sd` must be greater than 0"));
            }
            Some(v)
        }
        None => None,
    };
    let repeats = match m.get("repeats") {
        Some(n) => {
            let v = get_u32(n, "repeats")?;
            if !(2..=100).contains(&v) {
                return Err(err(
                    n,
                    format!("`repeats` must be from 2 to 100 (runs of each incumbent's configuration), found {v}"),
                )
                .with_help("2 runs give the first noise estimate; 3 to 5 is typical"));
            }
            Some(v)
        }
        None => None,
    };
    if sd.is_none() && repeats.is_none() {
        return Err(err(
            node,
            "`noise` needs `sd` (the stated noise of one run) or `repeats` (runs of the incumbent to measure it)",
        )
        .with_help("e.g. `noise: {repeats: 3}` or `noise: {sd: 0.002}`"));
    }
    let confidence = match m.get("confidence") {
        Some(n) => {
            let v = get_f64(n, "confidence")?;
            if !(0.5..1.0).contains(&v) {
                return Err(err(
                    n,
                    format!("`confidence` must be at least 0.5 and below 1, found {v}"),
                )
                .with_help("e.g. 0.95"));
            }
            v
        }
        None => crate::keep::DEFAULT_CONFIDENCE,
    };
    Ok(crate::keep::NoiseModel {
        sd,
        repeats,
        confidence,
    })
}

fn parse_early_stop(node: &Node) -> Result<crate::early_stop::EarlyStop, ProgramError> {
    let m = MapView::new(node, "`early_stop`")?;
    m.check_keys(EARLY_STOP_KEYS)?;
    if let Some(n) = m.get("method") {
        let method = get_str(n, "method")?;
        if method != "asha" {
            return Err(err(n, format!("`method` must be asha, found `{method}`")));
        }
    }
    let step_key = match m.get("step") {
        Some(n) => {
            let s = get_str(n, "step")?;
            if !is_metric_key(&s) {
                return Err(err(
                    n,
                    format!("`{s}` is not a key mlres can read from metric lines"),
                ));
            }
            s
        }
        None => "step".into(),
    };
    let positive = |key: &str| -> Result<Option<f64>, ProgramError> {
        match m.get(key) {
            Some(n) => {
                let v = get_f64(n, key)?;
                if v <= 0.0 {
                    return Err(err(n, format!("`{key}` must be greater than 0")));
                }
                Ok(Some(v))
            }
            None => Ok(None),
        }
    };
    let min_step = positive("min_step")?.unwrap_or(1.0);
    let max_step = positive("max_step")?;
    if let (Some(max), Some(n)) = (max_step, m.get("max_step"))
        && max <= min_step
    {
        return Err(err(
            n,
            format!("`max_step` {max} must be above `min_step` {min_step}"),
        ));
    }
    let reduction_factor = match m.get("reduction_factor") {
        Some(n) => {
            let v = get_u32(n, "reduction_factor")?;
            if !(2..=100).contains(&v) {
                return Err(err(
                    n,
                    format!("`reduction_factor` must be from 2 to 100, found {v}"),
                ));
            }
            v
        }
        None => 3,
    };
    let startup = m
        .get("startup")
        .map(|n| get_u32(n, "startup"))
        .transpose()?
        .unwrap_or(3);
    Ok(crate::early_stop::EarlyStop {
        step_key,
        min_step,
        max_step,
        reduction_factor,
        startup,
    })
}

fn parse_limits(node: &Node) -> Result<JobLimits, ProgramError> {
    let m = MapView::new(node, "`limits`")?;
    m.check_keys(LIMIT_KEYS)?;
    let mut limits = JobLimits::default();
    let positive = |n: &Node, key: &str, v: u64| {
        if v == 0 {
            Err(err(n, format!("`{key}` must be greater than 0")))
        } else {
            Ok(v)
        }
    };
    if let Some(n) = m.get("memory") {
        limits.memory_bytes = positive(n, "memory", get_size(n, "memory")?)?;
    }
    if let Some(n) = m.get("cpu_time") {
        limits.cpu_secs = Some(positive(n, "cpu_time", get_duration(n, "cpu_time")?)?);
    }
    if let Some(n) = m.get("file_size") {
        limits.file_size_bytes = positive(n, "file_size", get_size(n, "file_size")?)?;
    }
    if let Some(n) = m.get("processes") {
        limits.processes = positive(n, "processes", get_u64(n, "processes")?)?;
    }
    if let Some(n) = m.get("log_size") {
        limits.log_bytes = positive(n, "log_size", get_size(n, "log_size")?)?;
    }
    if let Some(n) = m.get("address_space") {
        limits.address_space_bytes =
            Some(positive(n, "address_space", get_size(n, "address_space")?)?);
    }
    if let Some(n) = m.get("cpus") {
        limits.cpu_millis = Some(get_cpus(n)?);
    }
    Ok(limits)
}

/// `cpus`: a plain positive decimal with at most three decimals (`2`, `0.5`, `1.25`), from
/// 0.01 to 4096, kept exactly as thousandths of a CPU.
fn get_cpus(node: &Node) -> Result<u64, ProgramError> {
    const KEY: &str = "cpus";
    let Some((Plain::Int | Plain::Float, v)) = plain_class(node) else {
        let e = err(
            node,
            format!(
                "`{KEY}` must be a number of CPUs such as `2` or `0.5`, found {}",
                node.describe()
            ),
        );
        return Err(number_help(node, e));
    };
    if v.starts_with('-') || v.starts_with('+') {
        return Err(err(node, format!("`{KEY}` must be greater than 0")));
    }
    let millis = crate::units::exact_decimal(v, 1000).map_err(|e| match e {
        crate::units::ExactError::NotWhole => err(
            node,
            format!("`{KEY}` has more than three decimals (`{v}`)"),
        ),
        crate::units::ExactError::Overflow => err(node, format!("`{KEY}` is too large")),
        crate::units::ExactError::Syntax => err(
            node,
            format!("`{KEY}` must be a plain decimal such as `2` or `0.5`, found `{v}`"),
        ),
    })?;
    if millis == 0 {
        return Err(err(node, format!("`{KEY}` must be greater than 0")));
    }
    if millis < MIN_CPU_MILLIS {
        return Err(err(
            node,
            format!("`{KEY}` must be at least 0.01 (the kernel's smallest CPU quota)"),
        ));
    }
    if millis > MAX_CPU_MILLIS {
        return Err(err(node, format!("`{KEY}` must be at most 4096")));
    }
    Ok(millis)
}

/// `cpus` as written back: `2`, `0.5`, `1.25`.
pub fn format_cpus(millis: u64) -> String {
    let whole = millis / 1000;
    let frac = millis % 1000;
    if frac == 0 {
        return whole.to_string();
    }
    let f = format!("{frac:03}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

fn parse_job(root: &Node) -> Result<(JobTemplate, JobPos), ProgramError> {
    let m = MapView::new(root, "the job")?;
    m.check_keys(JOB_KEYS)?;
    let backend_node = m.get("backend");
    let backend = backend_node
        .map(|n| get_backend(n, "backend"))
        .transpose()?
        .unwrap_or(Backend::Local);
    let cmd_node = m.require("command")?;
    let (command, command_pos) = match &cmd_node.kind {
        Kind::Seq(items) => {
            let mut words = Vec::new();
            for item in items {
                words.push(get_text(item, "command word")?);
            }
            (words, items.clone())
        }
        Kind::Scalar { plain, value } if !(*plain && classify(value) == Plain::Null) => {
            let words = split_command(value).map_err(|e| {
                err(cmd_node, e).with_help(
                    "write the command as a list of words, e.g. [python, train.py, --lr, \"{lr}\"]",
                )
            })?;
            let pos = vec![cmd_node.clone(); words.len()];
            (words, pos)
        }
        _ => {
            return Err(err(
                cmd_node,
                format!(
                    "`command` must be a list of words or one line, found {}",
                    cmd_node.describe()
                ),
            ));
        }
    };
    if command.is_empty() || command[0].is_empty() {
        return Err(err(cmd_node, "`command` is empty"));
    }
    let flavor_node = m.get("flavor");
    let flavor = flavor_node
        .map(|n| get_str(n, "flavor"))
        .transpose()?
        .unwrap_or_else(|| "cpu-basic".to_string());
    let timeout_node = m.require("timeout")?;
    let timeout_secs = get_duration(timeout_node, "timeout")?;
    if timeout_secs == 0 {
        return Err(err(timeout_node, "`timeout` must be greater than 0"));
    }
    let mut env = BTreeMap::new();
    if let Some(n) = m.get("env") {
        let em = MapView::new(n, "`env`")?;
        for (k, v) in em.entries {
            let name = key_text(k);
            if !is_env_name(name) {
                return Err(
                    err(k, format!("`{name}` is not a variable name")).with_help(
                        "names are upper case letters, digits and `_`, e.g. OMP_NUM_THREADS",
                    ),
                );
            }
            env.insert(name.to_string(), get_text(v, name)?);
        }
    }
    let pass_env = m
        .get("pass_env")
        .map(|n| get_name_list(n, "pass_env"))
        .transpose()?
        .unwrap_or_default();
    let secrets = m
        .get("secrets")
        .map(|n| get_name_list(n, "secrets"))
        .transpose()?
        .unwrap_or_default();
    let limits = m
        .get("limits")
        .map(parse_limits)
        .transpose()?
        .unwrap_or_default();
    let network = m
        .get("network")
        .map(|n| get_bool(n, "network"))
        .transpose()?
        .unwrap_or(false);
    let image_node = m.get("image");
    let image = image_node.map(|n| get_str(n, "image")).transpose()?;
    let gpus_node = m.get("gpus");
    let gpus = gpus_node
        .map(|n| get_u32(n, "gpus"))
        .transpose()?
        .unwrap_or(0);
    let share_node = m.get("share_gpus");
    let share_gpus = share_node
        .map(|n| get_bool(n, "share_gpus"))
        .transpose()?
        .unwrap_or(false);
    if let Some(n) = gpus_node
        && backend == Backend::HfJobs
    {
        return Err(err(
            n,
            "`gpus` is for local jobs; an hf-jobs job gets the GPUs of its flavor",
        )
        .with_help("remove `gpus` and choose a GPU flavor, e.g. `flavor: t4-small`"));
    }
    if let Some(n) = share_node
        && share_gpus
        && gpus == 0
    {
        return Err(err(n, "`share_gpus: true` needs `gpus` of at least 1")
            .with_help("set `gpus: 1` or remove `share_gpus`"));
    }
    if backend == Backend::Local {
        let set = m
            .get("env")
            .and_then(|n| match &n.kind {
                Kind::Map(entries) => entries
                    .iter()
                    .find(|(k, _)| key_text(k) == GPU_ENV)
                    .map(|(k, _)| k.clone()),
                _ => None,
            })
            .or_else(|| match m.get("pass_env").map(|n| &n.kind) {
                Some(Kind::Seq(items)) => items
                    .iter()
                    .find(|i| matches!(&i.kind, Kind::Scalar { value, .. } if value == GPU_ENV))
                    .cloned(),
                _ => None,
            });
        if let Some(n) = set {
            return Err(err(
                &n,
                format!("`{GPU_ENV}` is decided by `gpus` for local jobs"),
            )
            .with_help("write `gpus: 1` (or how many GPUs the job needs) instead"));
        }
    }
    let code_node = m.get("code");
    let code = code_node.map(parse_code).transpose()?.unwrap_or_default();
    let outputs_node = m.get("outputs");
    let outputs = outputs_node
        .map(parse_outputs)
        .transpose()?
        .unwrap_or_default();
    let slurm_node = m.get("slurm");
    let slurm = match slurm_node {
        Some(n) => {
            if backend != Backend::Slurm {
                return Err(err(
                    n,
                    format!("`slurm` is for `backend: slurm` jobs, not `{backend}`"),
                )
                .with_help("remove `slurm:`, or set `backend: slurm`"));
            }
            Some(parse_slurm(n)?)
        }
        None if backend == Backend::Slurm => Some(SlurmJob {
            cpus: 1,
            ..SlurmJob::default()
        }),
        None => None,
    };
    if backend == Backend::Slurm
        && let Some(n) = share_node
        && share_gpus
    {
        return Err(err(
            n,
            "`share_gpus` is for local jobs: Slurm gives each job its own GPUs",
        )
        .with_help("remove `share_gpus`"));
    }
    let pos = JobPos {
        slurm: slurm_node.cloned(),
        backend: backend_node.cloned(),
        image: image_node.cloned(),
        pass_env: m.get("pass_env").cloned(),
        flavor: flavor_node.cloned(),
        timeout: timeout_node.clone(),
        command: command_pos,
        code: code_node.cloned(),
        outputs: outputs_node.cloned(),
        at: root.clone(),
    };
    Ok((
        JobTemplate {
            backend,
            command,
            flavor,
            timeout_secs,
            env,
            pass_env,
            secrets,
            limits,
            network,
            image,
            gpus,
            share_gpus,
            code,
            outputs,
            slurm,
        },
        pos,
    ))
}

fn parse_slurm(root: &Node) -> Result<SlurmJob, ProgramError> {
    let m = MapView::new(root, "`slurm`")?;
    m.check_keys(SLURM_KEYS)?;
    let name = |key: &str| -> Result<Option<String>, ProgramError> {
        match m.get(key) {
            None => Ok(None),
            Some(n) => {
                let v = get_str(n, key)?;
                if !is_slurm_name(&v) {
                    return Err(err(n, format!("`{v}` is not a usable Slurm {key} name"))
                        .with_help("names are letters, digits, `-`, `_` and `.`"));
                }
                Ok(Some(v))
            }
        }
    };
    let cpus = match m.get("cpus") {
        Some(n) => {
            let v = get_u32(n, "cpus")?;
            if v == 0 || v > 4096 {
                return Err(err(n, "`cpus` must be from 1 to 4096"));
            }
            v
        }
        None => 1,
    };
    Ok(SlurmJob {
        partition: name("partition")?,
        account: name("account")?,
        qos: name("qos")?,
        cpus,
    })
}

/// One `code:` entry, normalised: a project-relative path of plain components (`./` and a
/// trailing `/` dropped). Absolute paths, `~`, `..`, the whole project and `runs/` are refused;
/// whether the path exists, stays in the project through symlinks and avoids the state
/// directory is checked by the engine when it hashes the files.
pub fn normalize_code_path(entry: &str) -> Result<String, (String, String)> {
    let relative_help = "name it relative to the project (the directory holding program.md), \
                         e.g. `train.py` or `src`";
    if entry.contains('\0') {
        return Err((
            format!("`code` entry {entry:?} contains a NUL character"),
            relative_help.into(),
        ));
    }
    if entry.starts_with('/') {
        return Err((
            format!("`code` entry `{entry}` is an absolute path"),
            relative_help.into(),
        ));
    }
    if entry.starts_with('~') {
        return Err((
            format!("`code` entry `{entry}` starts with `~`, which is not expanded"),
            relative_help.into(),
        ));
    }
    let trimmed = entry.trim_end_matches('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in trimmed.split('/') {
        match part {
            "." => {}
            "" => {
                return Err((
                    format!("`code` entry `{entry}` has an empty path component (`//`)"),
                    "write single `/` between directory names".into(),
                ));
            }
            ".." => {
                return Err((
                    format!("`code` entry `{entry}` uses `..`: code must be inside the project"),
                    "move or copy the code into the project, next to program.md".into(),
                ));
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err((
            format!("`code` entry `{entry}` is the whole project"),
            "list the files and directories the job runs (e.g. `train.py`, `src`): the whole \
             project would pin its data, checkpoints and `.git` as code"
                .into(),
        ));
    }
    if parts[0] == RUNS_DIR {
        return Err((
            format!(
                "`code` entry `{entry}` is inside `{RUNS_DIR}/`, where mlres writes its exports"
            ),
            "name the job's own files; mlres regenerates `runs/` and never reads it back".into(),
        ));
    }
    Ok(parts.join("/"))
}

fn parse_code(node: &Node) -> Result<Vec<String>, ProgramError> {
    parse_path_list(
        node,
        "code",
        normalize_code_path,
        "list the files and directories the job runs, e.g. `code: [train.py]`, or remove `code`",
    )
}

/// One `outputs:` entry, normalised: a path relative to the job's work dir (`{workdir}`) of
/// plain components (`./` and a trailing `/` dropped). Absolute paths, `~`, `..` and the whole
/// work dir are refused; whether the path exists and stays in the work dir through symlinks
/// is checked by the engine when it copies the outputs.
pub fn normalize_output_path(entry: &str) -> Result<String, (String, String)> {
    let relative_help = "name it relative to the job's work dir (`{workdir}`, where the job runs), \
                         e.g. `checkpoint/` or `eval_results.json`";
    if entry.contains('\0') {
        return Err((
            format!("`outputs` entry {entry:?} contains a NUL character"),
            relative_help.into(),
        ));
    }
    if entry.starts_with('/') {
        return Err((
            format!("`outputs` entry `{entry}` is an absolute path"),
            relative_help.into(),
        ));
    }
    if entry.starts_with('~') {
        return Err((
            format!("`outputs` entry `{entry}` starts with `~`, which is not expanded"),
            relative_help.into(),
        ));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in entry.trim_end_matches('/').split('/') {
        match part {
            "." => {}
            "" => {
                return Err((
                    format!("`outputs` entry `{entry}` has an empty path component (`//`)"),
                    "write single `/` between directory names".into(),
                ));
            }
            ".." => {
                return Err((
                    format!(
                        "`outputs` entry `{entry}` uses `..`: outputs must be inside the job's work dir"
                    ),
                    "have the job write what it keeps below its work dir, e.g. \
                     `--output_dir checkpoint`"
                        .into(),
                ));
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err((
            format!("`outputs` entry `{entry}` is the whole work dir"),
            "list what the job keeps (e.g. `checkpoint/`, `eval_results.json`): the whole work \
             dir would bring back its caches and temporary files"
                .into(),
        ));
    }
    Ok(parts.join("/"))
}

fn parse_outputs(node: &Node) -> Result<Vec<String>, ProgramError> {
    parse_path_list(
        node,
        "outputs",
        normalize_output_path,
        "list what the job keeps, e.g. `outputs: [checkpoint/, eval_results.json]`, or remove \
         `outputs`",
    )
}

/// A non-empty list of relative paths under `key` (`code`, `outputs`), each normalised by
/// `normalize`, none listed twice and none inside another.
fn parse_path_list(
    node: &Node,
    key: &str,
    normalize: fn(&str) -> Result<String, (String, String)>,
    empty_help: &str,
) -> Result<Vec<String>, ProgramError> {
    let items = get_list(node, key)?;
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let raw = get_str(item, &format!("{key} entry"))?;
        let path = normalize(&raw).map_err(|(msg, help)| err(item, msg).with_help(help))?;
        for prev in &out {
            if *prev == path {
                return Err(err(item, format!("`{path}` is listed twice in `{key}`")));
            }
            let (outer, inner) = if path.len() > prev.len() {
                (prev, &path)
            } else {
                (&path, prev)
            };
            if inner.starts_with(&format!("{outer}/")) {
                return Err(err(
                    item,
                    format!("`{inner}` is inside `{outer}`: both are listed in `{key}`"),
                )
                .with_help(format!("keep only `{outer}`")));
            }
        }
        out.push(path);
    }
    if out.is_empty() {
        return Err(err(node, format!("`{key}` is empty")).with_help(empty_help));
    }
    Ok(out)
}

/// The hf-jobs rules of a job template: an image from the envelope's `images`, a namespace
/// in the envelope, no `pass_env` (a remote job gets no local environment, only literal `env`
/// values and granted `secrets`), and no `{workdir}`/`{mlres}` placeholders (they name local
/// paths that do not exist in the job's container).
fn check_hf_job(job: &JobTemplate, pos: &JobPos, env: &Envelope) -> Result<(), ProgramError> {
    let Some(image) = &job.image else {
        return Err(
            err(&pos.at, "a job with `backend: hf-jobs` needs an `image`")
                .with_help("add e.g. `image: python:3.12` and list it in the envelope's `images`"),
        );
    };
    if !env.images.contains(image) {
        let at = pos.image.as_ref().unwrap_or(&pos.at);
        return Err(err(
            at,
            format!(
                "job image `{image}` is not in the envelope's images [{}]",
                env.images.join(", ")
            ),
        )
        .with_help(
            "use an image the envelope lists, or add it there (which needs a new approval)",
        ));
    }
    if env.namespace.is_none() {
        return Err(err(
            &pos.at,
            "a job with `backend: hf-jobs` needs a `namespace` in the budget envelope",
        )
        .with_help("add `namespace: <your user or org>` to the envelope: it names who is billed"));
    }
    if !job.pass_env.is_empty() {
        let at = pos.pass_env.as_ref().unwrap_or(&pos.at);
        return Err(err(at, "`pass_env` is not allowed for hf-jobs: a remote job gets only literal `env` values and granted `secrets`")
            .with_help("write the values under `env`, or grant a secret under `secrets`"));
    }
    // A remote job's work dir is in its container, which mlres never copies back.
    if let Some(at) = &pos.outputs {
        return Err(err(
            at,
            "`outputs` is for local jobs: an hf-jobs job's files stay in its container, and mlres \
             does not bring them back",
        )
        .with_help(
            "remove `outputs`; have the job upload what it keeps to a repo in the envelope's \
             `output_repos` itself",
        ));
    }
    // The snapshot travels as `hf jobs uv run` ships a local script: one file, decoded into the
    // job's working directory under its name (so `{code}` is `.` there).
    if let Some(at) = &pos.code
        && (job.code.len() != 1 || job.code[0].contains('/'))
    {
        return Err(err(
            at,
            "hf-jobs ships one script for now: `code` must list a single file at the top of the \
             project",
        )
        .with_help(
            "put the job's code in one script beside program.md (e.g. `code: [train.py]`, with \
             PEP 723 `# /// script` dependencies for `uv run`), run it locally, or bake the rest \
             into the image",
        ));
    }
    Ok(())
}

/// The Slurm rules of a job template: its partition among the envelope's `partitions`, and
/// at most `max_gpus_per_job` GPUs.
fn check_slurm_job(job: &JobTemplate, pos: &JobPos, env: &Envelope) -> Result<(), ProgramError> {
    let at = pos.slurm.as_ref().unwrap_or(&pos.at);
    if let Some(p) = job.slurm.as_ref().and_then(|s| s.partition.as_ref())
        && !env.partitions.contains(p)
    {
        return Err(err(
            at,
            format!(
                "Slurm partition `{p}` is not in the envelope's partitions [{}]",
                env.partitions.join(", ")
            ),
        )
        .with_help(
            "use a partition the envelope lists, or add it there (which needs a new approval)",
        ));
    }
    if let Some(max) = env.max_gpus_per_job
        && job.gpus > max
    {
        return Err(err(
            &pos.at,
            format!(
                "the job asks for {} GPUs and the envelope allows {max} per job (max_gpus_per_job)",
                job.gpus
            ),
        ));
    }
    if job.gpus > 0 && env.max_gpu_secs == Some(0) {
        return Err(err(
            &pos.at,
            "the job asks for GPUs and the envelope's `max_gpu_hours` is 0",
        ));
    }
    Ok(())
}

fn to_scalar(node: &Node) -> Result<Scalar, ProgramError> {
    match &node.kind {
        Kind::Scalar {
            value,
            plain: false,
        } => Ok(Scalar::Str(value.clone())),
        Kind::Scalar { value, plain: true } => match classify(value) {
            Plain::Null => Err(err(node, "null is not allowed as a parameter value")),
            Plain::Bool(b) => Ok(Scalar::Bool(b)),
            Plain::Int => value
                .parse::<i64>()
                .map(Scalar::Int)
                .map_err(|_| err(node, format!("integer `{value}` is out of range"))),
            Plain::Float => match value.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Scalar::Float(f)),
                _ => Err(err(node, format!("float `{value}` is out of range"))),
            },
            Plain::BadNumber => Err(err(
                node,
                format!("`{value}` is not a number in the accepted format"),
            )
            .with_help(
                "write numbers like 3, -2, 0.5 or 1e-4, or quote the value to make it a string",
            )),
            Plain::Str => Ok(Scalar::Str(value.clone())),
        },
        _ => Err(err(
            node,
            format!(
                "parameter values must be single values, found {}",
                node.describe()
            ),
        )),
    }
}

fn parse_param(name: &str, key: &Node, node: &Node) -> Result<Param, ProgramError> {
    let what = format!("parameter `{name}`");
    let m = MapView::new(node, &what).map_err(|e| {
        e.with_help("write e.g. `{values: [1, 2]}`, `{value: 3}` or `{distribution: uniform, min: 0, max: 1}`")
    })?;
    m.check_keys(PARAM_KEYS)?;
    let dist_node = m.get("distribution");
    let dist = dist_node.map(|n| get_str(n, "distribution")).transpose()?;
    let has = |k: &str| m.get(k).is_some();
    let forbid = |keys: &[&str], d: &str| -> Result<(), ProgramError> {
        for k in keys {
            if let Some(kn) = m.get_key(k) {
                return Err(err(
                    kn,
                    format!("`{k}` is not used with {d} (parameter `{name}`)"),
                ));
            }
        }
        Ok(())
    };
    let values = || -> Result<Vec<Scalar>, ProgramError> {
        let vn = m.require("values")?;
        let items = get_list(vn, "values")?;
        if items.is_empty() {
            return Err(err(vn, format!("`values` of parameter `{name}` is empty")));
        }
        let mut out: Vec<Scalar> = Vec::new();
        for item in items {
            let s = to_scalar(item)?;
            if out.iter().any(|o| o.same_value(&s)) {
                return Err(err(
                    item,
                    format!("this value is listed twice in parameter `{name}`"),
                ));
            }
            out.push(s);
        }
        Ok(out)
    };
    let min_max_f = || -> Result<(f64, f64), ProgramError> {
        let min_n = m.require("min")?;
        let max_n = m.require("max")?;
        let (min, max) = (get_f64(min_n, "min")?, get_f64(max_n, "max")?);
        if min >= max {
            return Err(err(
                min_n,
                format!("`min` ({min}) must be less than `max` ({max}) in parameter `{name}`"),
            ));
        }
        Ok((min, max))
    };
    let Some(dist) = dist else {
        return match (has("value"), has("values")) {
            (true, false) => {
                forbid(&["min", "max", "q"], "`value`")?;
                Ok(Param::Value(to_scalar(m.require("value")?)?))
            }
            (false, true) => {
                forbid(&["min", "max", "q"], "`values`")?;
                Ok(Param::Values(values()?))
            }
            (true, true) => Err(err(
                key,
                format!("parameter `{name}` has both `value` and `values`"),
            )),
            (false, false) if has("min") || has("max") => Err(err(
                key,
                format!("parameter `{name}` has `min`/`max` but no `distribution`"),
            )
            .with_help(
                "add e.g. `distribution: uniform` (or int_uniform, log_uniform_values, q_uniform)",
            )),
            (false, false) => Err(err(
                key,
                format!("parameter `{name}` needs `value`, `values` or `distribution`"),
            )),
        };
    };
    let dist_node = dist_node.unwrap_or(node);
    // Every distribution names the keys it uses; any other key is refused by name.
    let only = |keys: &[&str]| -> Result<(), ProgramError> {
        for (k, _) in m.entries {
            let k_text = key_text(k);
            if k_text != "distribution" && !keys.contains(&k_text) {
                return Err(err(
                    k,
                    format!("`{k_text}` is not used with distribution {dist} (parameter `{name}`)"),
                )
                .with_help(format!(
                    "{dist} takes {}",
                    if keys.is_empty() {
                        "no other keys".to_string()
                    } else {
                        keys.iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                )));
            }
        }
        Ok(())
    };
    // `q` for the quantised distributions: (step, integers?). An integer step (or the
    // default 1) gives integer values, as W&B does for an integer `q`.
    let quant = || -> Result<(f64, bool), ProgramError> {
        match m.get("q") {
            Some(qn) => {
                let q = get_f64(qn, "q")?;
                if q <= 0.0 {
                    return Err(err(
                        qn,
                        format!("`q` must be greater than 0 (parameter `{name}`)"),
                    ));
                }
                let int = matches!(plain_class(qn), Some((Plain::Int, _)));
                Ok((q, int))
            }
            None => Ok((1.0, true)),
        }
    };
    let positive = |key: &str, default: f64| -> Result<f64, ProgramError> {
        match m.get(key) {
            Some(n) => {
                let v = get_f64(n, key)?;
                if v <= 0.0 {
                    return Err(err(
                        n,
                        format!("`{key}` must be greater than 0 (parameter `{name}`)"),
                    ));
                }
                Ok(v)
            }
            None => Ok(default),
        }
    };
    let any_f = |key: &str, default: f64| -> Result<f64, ProgramError> {
        m.get(key).map_or(Ok(default), |n| get_f64(n, key))
    };
    let positive_min = |min: f64| -> Result<(), ProgramError> {
        if min <= 0.0 {
            return Err(err(
                m.require("min")?,
                format!("`min` must be greater than 0 for {dist} (parameter `{name}`)"),
            ));
        }
        Ok(())
    };
    // Exponent bounds: the values must stay finite and exact as integers (below 2^53), and a
    // bound written as a value (`max: 512`) is almost surely a mix-up with `*_values`.
    let exponents = |min: f64, max: f64, inverse: bool| -> Result<(), ProgramError> {
        let top = if inverse { -min } else { max };
        if top > 36.0 || min.abs() > 700.0 || max.abs() > 700.0 {
            return Err(err(
                m.require(if inverse { "min" } else { "max" })?,
                format!(
                    "{dist} takes natural-log exponents as `min`/`max`: values would reach \
                     e^{top} (parameter `{name}`)"
                ),
            )
            .with_help(format!(
                "for bounds written as values use `{dist}_values`, e.g. min: 16, max: 512"
            )));
        }
        // Bounds such as 0.0001..0.1 are learning rates written as values: as exponents they
        // would draw every value from [1.0001, 1.105]. Refused rather than silently searched.
        if !inverse && min > 0.0 && max <= 1.0 && max >= 10.0 * min {
            return Err(err(
                m.require("min")?,
                format!(
                    "{dist} takes natural-log exponents as `min`/`max`: min: {min}, max: {max} \
                     would draw values between e^{min} and e^{max}, all within [1, e] \
                     (parameter `{name}`)"
                ),
            )
            .with_help(format!(
                "for bounds written as values use `{dist}_values`, e.g. min: {min}, max: {max}"
            )));
        }
        Ok(())
    };
    let shaped = |d: Dist, q: Option<(f64, bool)>| -> Result<Param, ProgramError> {
        let p = Param::Shaped {
            dist: d,
            q: q.map(|(q, _)| q),
            int: q.is_some_and(|(_, i)| i),
        };
        if let (Some((q, _)), (Some(lo), Some(hi))) = (q, d.bounds())
            && crate::search::q_range(lo, hi, q).is_none()
        {
            return Err(err(
                key,
                format!("parameter `{name}`: no multiple of q = {q} lies in [{lo}, {hi}]"),
            ));
        }
        Ok(p)
    };
    match dist.as_str() {
        "constant" => {
            forbid(&["values", "min", "max", "q"], "distribution constant")?;
            only(&["value"])?;
            Ok(Param::Value(to_scalar(m.require("value")?)?))
        }
        "categorical" => {
            forbid(&["value", "min", "max", "q"], "distribution categorical")?;
            only(&["values"])?;
            Ok(Param::Values(values()?))
        }
        "uniform" => {
            forbid(&["value", "values", "q"], "distribution uniform")?;
            only(&["min", "max"])?;
            let (min, max) = min_max_f()?;
            Ok(Param::Uniform { min, max })
        }
        "log_uniform_values" => {
            forbid(&["value", "values", "q"], "distribution log_uniform_values")?;
            only(&["min", "max"])?;
            let (min, max) = min_max_f()?;
            if min <= 0.0 {
                return Err(err(
                    m.require("min")?,
                    format!(
                        "`min` must be greater than 0 for log_uniform_values (parameter `{name}`)"
                    ),
                ));
            }
            Ok(Param::LogUniformValues { min, max })
        }
        "int_uniform" => {
            forbid(&["value", "values", "q"], "distribution int_uniform")?;
            only(&["min", "max", "log"])?;
            let min_n = m.require("min")?;
            let max_n = m.require("max")?;
            let (min, max) = (get_i64(min_n, "min")?, get_i64(max_n, "max")?);
            if min >= max {
                return Err(err(
                    min_n,
                    format!("`min` ({min}) must be less than `max` ({max}) in parameter `{name}`"),
                ));
            }
            let log = m.get("log").map(|n| get_bool(n, "log")).transpose()?;
            if log == Some(true) {
                if min < 1 {
                    return Err(err(
                        min_n,
                        format!(
                            "`min` must be at least 1 for a log-scaled int_uniform (parameter \
                             `{name}`)"
                        ),
                    ));
                }
                return Ok(Param::IntLogUniform { min, max });
            }
            Ok(Param::IntUniform { min, max })
        }
        "q_uniform" => {
            forbid(&["value", "values"], "distribution q_uniform")?;
            only(&["min", "max", "q"])?;
            let (min, max) = min_max_f()?;
            let q = match m.get("q") {
                Some(qn) => {
                    let q = get_f64(qn, "q")?;
                    if q <= 0.0 {
                        return Err(err(
                            qn,
                            format!("`q` must be greater than 0 (parameter `{name}`)"),
                        ));
                    }
                    q
                }
                None => 1.0,
            };
            if crate::search::q_range(min, max, q).is_none() {
                return Err(err(
                    key,
                    format!("parameter `{name}`: no multiple of q = {q} lies in [{min}, {max}]"),
                ));
            }
            Ok(Param::QUniform { min, max, q })
        }
        "q_log_uniform" => {
            only(&["min", "max", "q"])?;
            let (min, max) = min_max_f()?;
            exponents(min, max, false)?;
            shaped(Dist::LogUniform { min, max }, Some(quant()?))
        }
        "q_log_uniform_values" => {
            only(&["min", "max", "q"])?;
            let (min, max) = min_max_f()?;
            positive_min(min)?;
            shaped(Dist::LogUniformValues { min, max }, Some(quant()?))
        }
        "inv_log_uniform" => {
            only(&["min", "max"])?;
            let (min, max) = min_max_f()?;
            exponents(min, max, true)?;
            shaped(Dist::InvLogUniform { min, max }, None)
        }
        "inv_log_uniform_values" => {
            only(&["min", "max"])?;
            let (min, max) = min_max_f()?;
            positive_min(min)?;
            shaped(Dist::InvLogUniformValues { min, max }, None)
        }
        "normal" | "q_normal" | "log_normal" | "q_log_normal" => {
            let quantised = dist.starts_with("q_");
            only(if quantised {
                &["mu", "sigma", "q"]
            } else {
                &["mu", "sigma"]
            })?;
            let (mu, sigma) = (any_f("mu", 0.0)?, positive("sigma", 1.0)?);
            let d = if dist.contains("log") {
                if mu.abs() > 700.0 || sigma > 100.0 {
                    return Err(err(
                        dist_node,
                        format!(
                            "{dist} with mu = {mu}, sigma = {sigma} overflows (parameter `{name}`)"
                        ),
                    ));
                }
                Dist::LogNormal { mu, sigma }
            } else {
                Dist::Normal { mu, sigma }
            };
            shaped(d, quantised.then(quant).transpose()?)
        }
        "beta" | "q_beta" => {
            let quantised = dist == "q_beta";
            only(if quantised {
                &["a", "b", "q"]
            } else {
                &["a", "b"]
            })?;
            let (a, b) = (positive("a", 1.0)?, positive("b", 1.0)?);
            shaped(Dist::Beta { a, b }, quantised.then(quant).transpose()?)
        }
        "log_uniform" => {
            only(&["min", "max"])?;
            let (min, max) = min_max_f()?;
            exponents(min, max, false)?;
            shaped(Dist::LogUniform { min, max }, None)
        }
        other => {
            let e = err(
                dist_node,
                format!("unknown distribution `{other}` in parameter `{name}`"),
            );
            Err(match closest(other, DISTRIBUTIONS) {
                Some(c) => e.with_help(format!(
                    "did you mean `{c}`? supported: {}",
                    DISTRIBUTIONS.join(", ")
                )),
                None => e.with_help(format!("supported: {}", DISTRIBUTIONS.join(", "))),
            })
        }
    }
}

fn parse_search_space(root: &Node) -> Result<SearchSpace, ProgramError> {
    let m = MapView::new(root, "the search space")?;
    m.check_keys(SEARCH_KEYS)?;
    let method_node = m.require("method")?;
    let method_s = get_str(method_node, "method")?;
    let method = match method_s.as_str() {
        "grid" => Method::Grid,
        "random" => Method::Random,
        "tpe" => Method::Tpe,
        "bayes" => Method::Bayes,
        "command" => Method::Command,
        other => {
            let e = err(method_node, format!("unknown search method `{other}`"));
            return Err(match closest(other, METHODS) {
                Some(c) => e.with_help(format!("did you mean `{c}`?")),
                None => e.with_help(format!("supported methods: {}", METHODS.join(", "))),
            });
        }
    };
    let seed = m
        .get("seed")
        .map(|n| get_u64(n, "seed"))
        .transpose()?
        .unwrap_or(0);
    let command = if method == Method::Command {
        let Some(cn) = m.get("command") else {
            return Err(err(method_node, "`method: command` needs `command`").with_help(
                "add e.g. `command: [python3, propose.py]`: it reads the campaign state as JSON \
                 on stdin and prints {\"hypothesis\": ..., \"config\": {...}}",
            ));
        };
        let argv = get_str_list(cn, "command")?;
        if argv.is_empty() || argv[0].trim().is_empty() {
            return Err(err(cn, "`command` is empty").with_help(
                "give the proposer as an argv list, e.g. command: [python3, propose.py]",
            ));
        }
        let timeout_secs = m
            .get("timeout")
            .map(|n| get_duration(n, "timeout"))
            .transpose()?
            .unwrap_or(600);
        if timeout_secs == 0 {
            return Err(err(
                m.require("timeout")?,
                "`timeout` of the proposer command must be more than 0",
            ));
        }
        Some(ProposerCommand { argv, timeout_secs })
    } else {
        if let Some(k) = m.get_key("command").or_else(|| m.get_key("timeout")) {
            return Err(err(
                k,
                format!("`{}` is only used with `method: command`", key_text(k)),
            ));
        }
        None
    };
    let params_node = m.require("parameters")?;
    let pm = MapView::new(params_node, "`parameters`")?;
    if pm.entries.is_empty() {
        return Err(err(params_node, "`parameters` is empty"));
    }
    let mut parameters = BTreeMap::new();
    for (k, v) in pm.entries {
        let name = key_text(k);
        if !is_param_name(name) {
            return Err(err(k, format!("`{name}` is not a valid parameter name"))
                .with_help("use letters, digits and `_`, starting with a letter or `_`"));
        }
        if BUILTIN_PLACEHOLDERS.contains(&name) {
            return Err(err(
                k,
                format!("parameter `{name}` has the name of a builtin placeholder `{{{name}}}`"),
            )
            .with_help(format!("rename it, e.g. `train_{name}`")));
        }
        let p = parse_param(name, k, v)?;
        if method == Method::Grid && !matches!(p, Param::Value(_) | Param::Values(_)) {
            return Err(err(k, format!("grid search needs `value` or `values` for every parameter, but `{name}` has a distribution"))
                .with_help("list the values to try, or use `method: random`"));
        }
        parameters.insert(name.to_string(), p);
    }
    let space = SearchSpace {
        method,
        parameters,
        seed,
        command,
    };
    if method == Method::Grid && crate::search::grid_size(&space).is_none() {
        return Err(err(params_node, "the grid has too many points to count"));
    }
    Ok(space)
}

// ---------------------------------------------------------------------------
// The whole file

const YAML_SECTIONS: [&str; 4] = ["budget envelope", "objective", "job", "search space"];

fn is_yaml(f: &Fence) -> bool {
    f.lang == "yaml" || f.lang == "yml"
}

fn pick_block(sec: &MdSection) -> Result<&Fence, ProgramError> {
    let blocks: Vec<&Fence> = sec.fences.iter().filter(|f| is_yaml(f)).collect();
    match blocks.as_slice() {
        [] => Err(ProgramError::new(
            sec.line,
            1,
            format!("the `## {}` section has no ```yaml block", sec.heading),
        )
        .with_help("add exactly one fenced ```yaml block under the heading")),
        [one] => Ok(one),
        [first, second, ..] => Err(ProgramError::new(
            second.line,
            1,
            format!(
                "a second ```yaml block in the `## {}` section (the first is on line {})",
                sec.heading, first.line
            ),
        )
        .with_help("keep exactly one ```yaml block per section")),
    }
}

fn block_root(fence: &Fence, sec: &MdSection) -> Result<Node, ProgramError> {
    yaml::parse(&fence.content, fence.line)?.ok_or_else(|| {
        ProgramError::new(
            fence.line,
            1,
            format!("the ```yaml block of `## {}` is empty", sec.heading),
        )
    })
}

/// Parses `program.md` strictly. See the crate documentation for the format.
pub fn parse_program(src: &str) -> Result<Program, ProgramError> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let (md, headings) = markdown::scan(src)?;
    for (level, text, line) in &headings {
        if *level != 2 && text.trim().to_lowercase() == "budget envelope" {
            return Err(ProgramError::new(
                *line,
                1,
                format!("`{} {text}` must be a level-2 heading", "#".repeat(*level)),
            )
            .with_help("write `## Budget envelope`"));
        }
    }
    let mut title = None;
    let mut known: HashMap<&'static str, usize> = HashMap::new();
    for (i, sec) in md.iter().enumerate() {
        if sec.level == 1 && title.is_none() {
            title = Some(sec.heading.clone());
        }
        let key = sec.heading.trim().to_lowercase();
        if sec.level != 2 {
            continue;
        }
        if let Some(name) = markdown::KNOWN_HEADINGS.iter().find(|k| **k == key) {
            if let Some(first) = known.get(name) {
                return Err(ProgramError::new(
                    sec.line,
                    1,
                    format!(
                        "the `## {}` heading appears twice (first on line {})",
                        sec.heading, md[*first].line
                    ),
                )
                .with_help("keep exactly one section per known heading"));
            }
            known.insert(name, i);
        }
    }
    let mut blocks: [Option<(&MdSection, &Fence)>; 4] = [None; 4];
    for (slot, name) in blocks.iter_mut().zip(YAML_SECTIONS) {
        if let Some(&i) = known.get(name) {
            *slot = Some((&md[i], pick_block(&md[i])?));
        }
    }
    // Any other YAML-ish block that looks like an envelope is an error: humans and
    // mlres must read the same limits.
    for sec in &md {
        for fence in &sec.fences {
            let chosen = blocks
                .iter()
                .flatten()
                .any(|(_, f)| std::ptr::eq(*f, fence));
            if chosen || !(is_yaml(fence) || fence.lang.is_empty()) {
                continue;
            }
            if ENVELOPE_MARKERS.iter().any(|k| fence.content.contains(k)) {
                return Err(ProgramError::new(
                    fence.line,
                    1,
                    "a code block with budget-envelope keys outside the one ```yaml block of `## Budget envelope`",
                )
                .with_help("mlres reads the envelope from exactly one place; remove this copy so the human and mlres read the same limits"));
            }
        }
    }
    let [env_b, obj_b, job_b, search_b] = blocks;
    let Some((env_sec, env_fence)) = env_b else {
        return Err(ProgramError::new(1, 1, "no `## Budget envelope` section")
            .with_help("add a level-2 heading `## Budget envelope` followed by one ```yaml block with max_jobs, max_walltime, allowed_flavors and max_timeout"));
    };
    let env_root = block_root(env_fence, env_sec)?;
    let envelope = parse_envelope(&env_root)?;
    let objective = obj_b
        .map(|(s, f)| block_root(f, s).and_then(|r| parse_objective(&r)))
        .transpose()?;
    let job = job_b
        .map(|(s, f)| block_root(f, s).and_then(|r| parse_job(&r)))
        .transpose()?;
    let search = search_b
        .map(|(s, f)| block_root(f, s).and_then(|r| Ok((parse_search_space(&r)?, r))))
        .transpose()?;
    let (search_space, search_root) = search.unzip();

    let mut warnings = Vec::new();
    let job = match (job, job_b) {
        (Some((job, pos)), Some((job_sec, _))) => {
            check_job(&job, &pos, &envelope, search_space.as_ref())?;
            let sections = Runnable {
                job_heading_line: job_sec.line,
                env_root: &env_root,
                objective: objective.as_ref(),
                space: search_space.as_ref(),
            };
            check_runnable(&job, &pos, &envelope, &sections)?;
            if objective.as_ref().is_some_and(|o| o.early_stop.is_some())
                && job.backend != Backend::Local
            {
                return Err(ProgramError::new(
                    job_sec.line,
                    1,
                    format!(
                        "`early_stop` in the objective needs a backend that can stop a job on \
                         its intermediate metrics; the `{}` backend cannot, and mlres does not \
                         ignore it silently",
                        job.backend
                    ),
                )
                .with_help("use `backend: local`, or remove `early_stop` from the objective"));
            }
            if let (Some(space), Some(root)) = (&search_space, &search_root) {
                warnings.extend(unused_parameters(&job, space, root));
            }
            warnings.extend(unpinned_project_code(&job, &pos));
            Some(job)
        }
        _ => {
            warnings.push(ProgramWarning {
                line: env_sec.line,
                column: 1,
                message: "no `## Job` section: nothing can run; an approval of this program \
                          only covers Hub writes within the envelope"
                    .into(),
                help: Some(
                    "to run experiments add `## Objective`, `## Job` and `## Search space` \
                     sections (`mlres init` writes a complete example)"
                        .into(),
                ),
            });
            None
        }
    };
    let sections = md
        .iter()
        .map(|s| Section {
            heading: s.heading.clone(),
            line: s.line,
            body: s.body.clone(),
        })
        .collect();
    Ok(Program {
        title,
        sections,
        envelope,
        objective,
        job,
        search_space,
        warnings,
    })
}

/// What [`check_runnable`] needs besides the job and the envelope.
struct Runnable<'a> {
    job_heading_line: usize,
    env_root: &'a Node,
    objective: Option<&'a Objective>,
    space: Option<&'a SearchSpace>,
}

/// A program with a `## Job` must be able to run at least one experiment and decide on it;
/// otherwise approving it would only burn the approval (the loop would finish with 0
/// experiments). Each refusal names the limit and the line to change.
fn check_runnable(
    job: &JobTemplate,
    pos: &JobPos,
    env: &Envelope,
    r: &Runnable<'_>,
) -> Result<(), ProgramError> {
    let at_job = |msg: String| ProgramError::new(r.job_heading_line, 1, msg);
    if r.objective.is_none() {
        return Err(at_job(
            "the program has a `## Job` but no `## Objective` section: there is no metric to \
             decide on (keep/discard, target, patience)"
                .into(),
        )
        .with_help(
            "add `## Objective` with one ```yaml block, e.g. `metric: eval_accuracy` and \
             `goal: maximize`; the metric is the key mlres reads from the job's output",
        ));
    }
    if r.space.is_none() {
        return Err(at_job(
            "the program has a `## Job` but no `## Search space` section: there is no \
             configuration to run"
                .into(),
        )
        .with_help(
            "add `## Search space` with `method: grid` and the parameters the command uses, \
             e.g. `lr: {values: [0.001]}`",
        ));
    }
    let env_map = MapView::new(r.env_root, "the budget envelope")?;
    let env_node = |key: &str| env_map.get(key).unwrap_or(r.env_root);
    if env.max_jobs == 0 {
        return Err(err(
            env_node("max_jobs"),
            "`max_jobs` is 0: no experiment could ever be reserved",
        )
        .with_help("set max_jobs to the number of experiments you intend to run"));
    }
    let timeout = crate::format_duration(job.timeout_secs);
    let walltime = crate::format_duration(env.max_walltime_secs);
    if job.timeout_secs > env.max_walltime_secs {
        return Err(err(
            &pos.timeout,
            format!(
                "job timeout {timeout} is over max_walltime {walltime}: no experiment could ever \
                 be reserved (each job reserves its whole timeout)"
            ),
        )
        .with_help("lower the job timeout or raise max_walltime"));
    }
    let usable = env.max_walltime_secs - env.final_reserve_secs.min(env.max_walltime_secs);
    if job.timeout_secs > usable {
        return Err(err(
            &pos.timeout,
            format!(
                "job timeout {timeout} is over the {} that max_walltime {walltime} leaves after \
                 final_reserve {}: the loop would never propose an experiment",
                crate::format_duration(usable),
                crate::format_duration(env.final_reserve_secs)
            ),
        )
        .with_help("lower the job timeout or final_reserve, or raise max_walltime"));
    }
    if env.max_cost_usd.is_some_and(|m| m.micro_usd == 0) {
        return Err(err(
            env_node("max_cost_usd"),
            "`max_cost_usd` is 0: the loop stops before its first experiment and every priced \
             job is refused",
        )
        .with_help(
            "remove max_cost_usd (local jobs cost nothing), or set the most you are willing to spend",
        ));
    }
    Ok(())
}

/// Search-space parameters that no `{name}` placeholder of the job command uses. Configs reach
/// a job only through its command (mlres writes no config file and no per-parameter
/// environment), so every value of such a parameter runs the same command.
fn unused_parameters(job: &JobTemplate, space: &SearchSpace, root: &Node) -> Vec<ProgramWarning> {
    let used: Vec<String> = job
        .command
        .iter()
        .filter_map(|w| parse_placeholders(w).ok())
        .flatten()
        .filter_map(|p| match p {
            Piece::Var(v) => Some(v),
            Piece::Lit(_) => None,
        })
        .collect();
    let keys: Vec<&Node> = MapView::new(root, "the search space")
        .ok()
        .and_then(|m| m.get("parameters"))
        .and_then(|n| MapView::new(n, "`parameters`").ok())
        .map(|m| m.entries.iter().map(|(k, _)| k).collect())
        .unwrap_or_default();
    space
        .parameters
        .keys()
        .filter(|name| !used.iter().any(|u| u == *name))
        .map(|name| {
            let at = keys
                .iter()
                .find(|k| key_text(k) == name)
                .copied()
                .unwrap_or(root);
            ProgramWarning {
                line: at.line,
                column: at.col,
                message: format!(
                    "search-space parameter `{name}` is not used by the job command: configs reach \
                     the job only through `{{placeholders}}`, so every value of `{name}` runs the \
                     same command"
                ),
                help: Some(format!(
                    "pass it to the job, e.g. `--{}={{{name}}}`, or remove `{name}` from the search space",
                    name.replace('_', "-")
                )),
            }
        })
        .collect()
}

/// A command that runs files from `{project}` without a `code:` list runs whatever those files
/// hold at the time: the approval pins the command, not the code behind it.
fn unpinned_project_code(job: &JobTemplate, pos: &JobPos) -> Option<ProgramWarning> {
    if !job.code.is_empty() {
        return None;
    }
    let (_, at) = job.command.iter().zip(&pos.command).find(|(w, _)| {
        parse_placeholders(w).is_ok_and(|ps| ps.iter().any(|p| *p == Piece::Var("project".into())))
    })?;
    Some(ProgramWarning {
        line: at.line,
        column: at.col,
        message: "the command runs files from `{project}` but the job declares no `code`: the \
                  approval does not pin them, so they can change after approval"
            .into(),
        help: Some(
            "list them in the job, e.g. `code: [train.py]`, and run `{code}/train.py`: mlres \
             then hashes and snapshots them at approval and refuses to spend if they change"
                .into(),
        ),
    })
}

fn check_job(
    job: &JobTemplate,
    pos: &JobPos,
    env: &Envelope,
    space: Option<&SearchSpace>,
) -> Result<(), ProgramError> {
    if job.timeout_secs > env.max_timeout_secs {
        return Err(err(
            &pos.timeout,
            format!(
                "job timeout {} is over the envelope's max_timeout {}",
                crate::format_duration(job.timeout_secs),
                crate::format_duration(env.max_timeout_secs)
            ),
        )
        .with_help("lower the job timeout or raise max_timeout (which needs a new approval)"));
    }
    if !env.allowed_flavors.contains(&job.flavor) {
        let at = pos.flavor.as_ref().unwrap_or(&pos.at);
        let default = if pos.flavor.is_none() {
            " (the default)"
        } else {
            ""
        };
        return Err(err(
            at,
            format!(
                "job flavor `{}`{default} is not in allowed_flavors [{}]",
                job.flavor,
                env.allowed_flavors.join(", ")
            ),
        ));
    }
    if !env.backends.contains(&job.backend) {
        let at = pos.backend.as_ref().unwrap_or(&pos.at);
        let names: Vec<&str> = env.backends.iter().map(|b| b.as_str()).collect();
        return Err(err(
            at,
            format!(
                "job backend `{}` is not in the envelope's backends [{}]",
                job.backend,
                names.join(", ")
            ),
        ));
    }
    if job.backend == Backend::Slurm {
        check_slurm_job(job, pos, env)?;
    }
    if job.backend == Backend::HfJobs {
        check_hf_job(job, pos, env)?;
    } else if let Some(n) = &pos.image {
        return Err(err(
            n,
            format!(
                "`image` is only used by the hf-jobs backend, not `{}`",
                job.backend
            ),
        )
        .with_help("remove `image`, or set `backend: hf-jobs`"));
    }
    let mut names: Vec<&str> = BUILTIN_PLACEHOLDERS.to_vec();
    if let Some(s) = space {
        names.extend(s.parameters.keys().map(String::as_str));
    }
    for (word, node) in job.command.iter().zip(&pos.command) {
        let pieces = parse_placeholders(word).map_err(|e| err(node, e))?;
        for p in pieces {
            let Piece::Var(v) = p else { continue };
            if !names.contains(&v.as_str()) {
                let mut e = err(
                    node,
                    format!("unknown placeholder `{{{v}}}` in the job command"),
                );
                let known = format!(
                    "placeholders are search-space parameters and the builtins {}",
                    BUILTIN_PLACEHOLDERS.join(", ")
                );
                e = match closest(&v, &names) {
                    Some(c) => e.with_help(format!("did you mean `{{{c}}}`? {known}")),
                    None => e.with_help(known),
                };
                return Err(e);
            }
            if v == "code" && job.code.is_empty() {
                return Err(err(
                    node,
                    "`{code}` names the approved snapshot of the job's `code`, but the job \
                     declares no `code`",
                )
                .with_help(
                    "list the files the job runs, e.g. `code: [train.py]`, and run \
                     `{code}/train.py`",
                ));
            }
        }
    }
    Ok(())
}
