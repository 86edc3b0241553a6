//! Budget checks, keep/discard decisions and stop conditions. All pure.

use serde::{Deserialize, Serialize};

use crate::program::{Backend, Envelope, Goal, Objective};
use crate::units::{Money, format_duration};

/// What the campaign has consumed so far (computed from the ledger by the caller).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Experiments that reserved budget, including finished ones.
    pub jobs: u32,
    /// Seconds spent by finished experiments plus reserved timeouts of in-flight ones.
    pub walltime_secs: u64,
    /// Dollars spent or reserved, in micro-dollars.
    pub cost_micro_usd: u64,
    /// Experiments currently in flight.
    pub in_flight: u32,
}

/// One request to spend: a job about to be reserved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendRequest {
    /// Backend the job runs on.
    pub backend: Backend,
    /// Flavor (hardware) of the job.
    pub flavor: String,
    /// Timeout of the job, seconds (reserved in full).
    pub timeout_secs: u64,
    /// Worst-case cost of the job, micro-dollars.
    pub cost_micro_usd: u64,
}

/// Why a spend was refused. `code` is one of `max_jobs`, `max_walltime`, `max_timeout`,
/// `flavor`, `backend`, `max_cost`, `max_concurrent`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human message with the used/limit numbers and the sanctioned next action.
    pub message: String,
}

fn refuse(code: &'static str, message: String) -> Result<(), Refusal> {
    Err(Refusal { code, message })
}

fn usd(micro: u64) -> String {
    format!("${}", Money { micro_usd: micro })
}

/// Checks one spend against the envelope. Exactly at a limit is allowed; one over is
/// refused. The final reserve is not applied here (it only limits the loop's own
/// proposals, see [`stop_reason`]).
pub fn check_spend(env: &Envelope, usage: &Usage, req: &SpendRequest) -> Result<(), Refusal> {
    if !env.backends.contains(&req.backend) {
        let allowed: Vec<&str> = env.backends.iter().map(|b| b.as_str()).collect();
        return refuse(
            "backend",
            format!(
                "backend `{}` is not allowed by the approved envelope (allowed: {}); use an allowed backend or ask the operator to approve a new envelope",
                req.backend,
                allowed.join(", ")
            ),
        );
    }
    if !env.allowed_flavors.contains(&req.flavor) {
        return refuse(
            "flavor",
            format!(
                "flavor `{}` is not allowed by the approved envelope (allowed: {}); choose an allowed flavor or ask the operator to approve a new envelope",
                req.flavor,
                env.allowed_flavors.join(", ")
            ),
        );
    }
    if req.timeout_secs > env.max_timeout_secs {
        return refuse(
            "max_timeout",
            format!(
                "timeout {} is over max_timeout {}; submit with a timeout of at most {}",
                format_duration(req.timeout_secs),
                format_duration(env.max_timeout_secs),
                format_duration(env.max_timeout_secs)
            ),
        );
    }
    if usage.in_flight >= env.max_concurrent {
        return refuse(
            "max_concurrent",
            format!(
                "{} of {} concurrent experiments already in flight (max_concurrent); wait for one to finish",
                usage.in_flight, env.max_concurrent
            ),
        );
    }
    if usage.jobs >= env.max_jobs {
        return refuse(
            "max_jobs",
            format!(
                "job budget exhausted: {} of {} jobs used (max_jobs); stop the loop and report to the operator",
                usage.jobs, env.max_jobs
            ),
        );
    }
    let walltime = usage.walltime_secs.saturating_add(req.timeout_secs);
    if walltime > env.max_walltime_secs {
        let left = env.max_walltime_secs.saturating_sub(usage.walltime_secs);
        return refuse(
            "max_walltime",
            format!(
                "walltime budget: {} used + {} requested is over max_walltime {} ({} left); use a timeout of at most {} or stop and report to the operator",
                format_duration(usage.walltime_secs),
                format_duration(req.timeout_secs),
                format_duration(env.max_walltime_secs),
                format_duration(left),
                format_duration(left)
            ),
        );
    }
    if let Some(max) = env.max_cost_usd {
        let cost = usage.cost_micro_usd.saturating_add(req.cost_micro_usd);
        if cost > max.micro_usd {
            return refuse(
                "max_cost",
                format!(
                    "cost budget: {} used + {} requested is over max_cost_usd {}; use a cheaper flavor or shorter timeout, or stop and report to the operator",
                    usd(usage.cost_micro_usd),
                    usd(req.cost_micro_usd),
                    usd(max.micro_usd)
                ),
            );
        }
    }
    Ok(())
}

/// GPU-seconds of `gpus` GPUs held for `secs` seconds (saturating).
pub fn gpu_secs(gpus: u32, secs: u64) -> u64 {
    u64::from(gpus).saturating_mul(secs)
}

fn gpu_hours(gpu_secs: u64) -> String {
    format!("{:.3}", gpu_secs as f64 / 3600.0)
}

/// Checks one Slurm job against the envelope's GPU rules, on top of [`check_spend`]:
/// `max_gpus_per_job`, then `max_gpu_hours` with the job reserving `gpus × time_limit_secs`
/// on top of `used_gpu_secs` (finished jobs at GPUs × Slurm's elapsed time, jobs in flight at
/// their reservation). Exactly at the limit is allowed.
pub fn check_gpu_spend(
    env: &Envelope,
    used_gpu_secs: u64,
    gpus: u32,
    time_limit_secs: u64,
) -> Result<(), Refusal> {
    if let Some(max) = env.max_gpus_per_job
        && gpus > max
    {
        return refuse(
            "max_gpus_per_job",
            format!(
                "the job asks for {gpus} GPUs and the envelope allows {max} per job (max_gpus_per_job); ask the operator to approve a new envelope"
            ),
        );
    }
    if let Some(max) = env.max_gpu_secs {
        let want = gpu_secs(gpus, time_limit_secs);
        if want > 0 && used_gpu_secs.saturating_add(want) > max {
            return refuse(
                "max_gpu_hours",
                format!(
                    "GPU budget: {} GPU-hours used + {} requested ({gpus} GPU(s) × {}) is over max_gpu_hours {} ({} left); use a shorter timeout or fewer GPUs, or stop and report to the operator",
                    gpu_hours(used_gpu_secs),
                    gpu_hours(want),
                    format_duration(time_limit_secs),
                    gpu_hours(max),
                    gpu_hours(max.saturating_sub(used_gpu_secs))
                ),
            );
        }
    }
    Ok(())
}

/// Cost of `secs` seconds at `micro_usd_per_minute`, in micro-dollars, rounded UP to the next
/// micro-dollar; exact integer arithmetic (saturating at `u64::MAX`, never wrapping).
pub fn job_cost_micro(micro_usd_per_minute: u64, secs: u64) -> u64 {
    let prod = u128::from(micro_usd_per_minute) * u128::from(secs);
    u64::try_from(prod.div_ceil(60)).unwrap_or(u64::MAX)
}

/// The worst-case cost of one hf-jobs job (price × full timeout) from the live catalog price
/// of its flavor; a flavor without a price is refused (code `no_price`) before anything is
/// submitted.
pub fn priced_cost_micro(
    flavor: &str,
    micro_usd_per_minute: Option<u64>,
    timeout_secs: u64,
) -> Result<u64, Refusal> {
    match micro_usd_per_minute {
        Some(p) => Ok(job_cost_micro(p, timeout_secs)),
        None => Err(Refusal {
            code: "no_price",
            message: format!(
                "no price for flavor {flavor} in the hardware catalog; nothing was submitted"
            ),
        }),
    }
}

/// Outcome of evaluating one experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Strictly better than the best so far (or the first result).
    Keep,
    /// Not better.
    Discard,
    /// No usable metric.
    Anomalous,
}

/// Keep, discard or flag one result. `best` is the best metric kept so far.
pub fn decide(objective: &Objective, metric: Option<f64>, best: Option<f64>) -> (Decision, String) {
    let name = &objective.metric;
    let Some(m) = metric else {
        return (
            Decision::Anomalous,
            format!("no metric: `{name}` was not found in the job output"),
        );
    };
    if m.is_nan() {
        return (
            Decision::Anomalous,
            format!("metric is NaN: `{name}` = nan"),
        );
    }
    if m.is_infinite() {
        return (
            Decision::Anomalous,
            format!("metric is infinite: `{name}` = {m}"),
        );
    }
    let Some(b) = best.filter(|b| b.is_finite()) else {
        return (Decision::Keep, format!("first result: `{name}` = {m}"));
    };
    let better = match objective.goal {
        Goal::Maximize => m > b,
        Goal::Minimize => m < b,
    };
    if better {
        (
            Decision::Keep,
            format!("`{name}` = {m} improves on the best {b}"),
        )
    } else {
        (
            Decision::Discard,
            format!("`{name}` = {m} does not beat the best {b}"),
        )
    }
}

/// What the loop knows when deciding whether to continue.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoopFacts {
    /// Budget consumed.
    pub usage: Usage,
    /// Best kept metric; with `noise:` the incumbent's mean over its runs.
    pub best: Option<f64>,
    /// With `noise:`: how many runs `best` is the mean of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_runs: Option<u32>,
    /// Evaluated experiments since the last improvement.
    pub since_improvement: u32,
    /// Consecutive failed experiments.
    pub consecutive_failures: u32,
    /// The operator asked to stop.
    pub stop_requested: bool,
    /// The proposer has nothing left (grid done).
    pub proposals_exhausted: bool,
    /// Timeout the next proposal would reserve, seconds.
    pub next_timeout_secs: u64,
}

/// Why the loop stops.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum StopReason {
    /// The best metric reached the target.
    TargetReached {
        /// Best metric (with `noise:`, the incumbent's mean).
        best: f64,
        /// Target.
        target: f64,
        /// With `noise:`: how many runs `best` is the mean of.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        runs: Option<u32>,
    },
    /// A budget limit leaves no room for another experiment.
    BudgetExhausted {
        /// Which limit: `max_jobs`, `max_walltime` or `max_cost`.
        limit: String,
        /// Human description of used vs limit.
        detail: String,
    },
    /// Too many experiments without improvement.
    Patience {
        /// Experiments since the last improvement.
        since_improvement: u32,
        /// Configured patience.
        patience: u32,
    },
    /// Too many consecutive failures.
    CircuitBreaker {
        /// Consecutive failures.
        consecutive_failures: u32,
        /// Configured maximum.
        max: u32,
    },
    /// The operator asked to stop.
    OperatorStop,
    /// The proposer has no more configurations.
    SearchExhausted,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::TargetReached {
                best,
                target,
                runs: None,
            } => write!(f, "target reached: best {best} meets the target {target}"),
            StopReason::TargetReached {
                best,
                target,
                runs: Some(n),
            } => write!(
                f,
                "target reached: the incumbent's mean {} over {n} run{} meets the target \
                 {target}",
                // A mean carries rounding noise (0.9499999999999998): 12 digits say it.
                format!("{best:.12}").parse::<f64>().unwrap_or(*best),
                if *n == 1 { "" } else { "s" }
            ),
            StopReason::BudgetExhausted { limit, detail } => {
                write!(f, "budget exhausted ({limit}): {detail}")
            }
            StopReason::Patience {
                since_improvement,
                patience,
            } => write!(
                f,
                "no improvement in the last {since_improvement} experiments (patience {patience})"
            ),
            StopReason::CircuitBreaker {
                consecutive_failures,
                max,
            } => write!(
                f,
                "circuit breaker: {consecutive_failures} consecutive failures (max_consecutive_failures {max}); check the job before resuming"
            ),
            StopReason::OperatorStop => write!(f, "stopped by the operator"),
            StopReason::SearchExhausted => write!(
                f,
                "the search space is exhausted: every configuration was tried"
            ),
        }
    }
}

/// Whether the loop must stop, and why. Checked in this order: operator stop, target
/// reached, circuit breaker, budget (jobs; walltime including the next timeout and the
/// final reserve; cost), patience, search exhausted.
pub fn stop_reason(objective: &Objective, env: &Envelope, facts: &LoopFacts) -> Option<StopReason> {
    if facts.stop_requested {
        return Some(StopReason::OperatorStop);
    }
    if let (Some(target), Some(best)) = (objective.target, facts.best.filter(|b| b.is_finite())) {
        let reached = match objective.goal {
            Goal::Maximize => best >= target,
            Goal::Minimize => best <= target,
        };
        // With `noise:` `best` is the incumbent's mean, and it counts once the incumbent has
        // all the runs `repeats` asks for: one lucky seed does not end the campaign.
        let runs = objective.noise.map(|_| facts.best_runs.unwrap_or(1));
        let enough = match (objective.noise, runs) {
            (Some(n), Some(have)) => have >= n.repeats.unwrap_or(1),
            _ => true,
        };
        if reached && enough {
            return Some(StopReason::TargetReached { best, target, runs });
        }
    }
    if facts.consecutive_failures >= objective.max_consecutive_failures {
        return Some(StopReason::CircuitBreaker {
            consecutive_failures: facts.consecutive_failures,
            max: objective.max_consecutive_failures,
        });
    }
    let u = &facts.usage;
    if u.jobs >= env.max_jobs {
        return Some(StopReason::BudgetExhausted {
            limit: "max_jobs".into(),
            detail: format!("{} of {} jobs used", u.jobs, env.max_jobs),
        });
    }
    let usable = env.max_walltime_secs.saturating_sub(env.final_reserve_secs);
    if u.walltime_secs.saturating_add(facts.next_timeout_secs) > usable {
        return Some(StopReason::BudgetExhausted {
            limit: "max_walltime".into(),
            detail: format!(
                "{} used + {} for the next experiment is over {} ({} max_walltime minus {} final reserve)",
                format_duration(u.walltime_secs),
                format_duration(facts.next_timeout_secs),
                format_duration(usable),
                format_duration(env.max_walltime_secs),
                format_duration(env.final_reserve_secs)
            ),
        });
    }
    if let Some(max) = env.max_cost_usd
        && u.cost_micro_usd >= max.micro_usd
    {
        return Some(StopReason::BudgetExhausted {
            limit: "max_cost".into(),
            detail: format!("{} of {} spent", usd(u.cost_micro_usd), usd(max.micro_usd)),
        });
    }
    if let Some(p) = objective.patience
        && facts.since_improvement >= p
    {
        return Some(StopReason::Patience {
            since_improvement: facts.since_improvement,
            patience: p,
        });
    }
    if facts.proposals_exhausted {
        return Some(StopReason::SearchExhausted);
    }
    None
}

/// Shell-style glob match (`*` any run of characters, `?` one character), as used by
/// `output_repos`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether the envelope allows writing to `repo` (an empty `output_repos` allows none).
pub fn repo_allowed(env: &Envelope, repo: &str) -> bool {
    env.output_repos.iter().any(|g| glob_match(g, repo))
}
