//! Keep/discard that noise cannot fool, and the metric range an objective declares.
//!
//! One job run gives one draw of a noisy metric. Without a noise model mlres keeps any value
//! that beats the best so far (and says in the evidence that no noise model was given). With
//! `noise:` in the objective, a result is kept only when its improvement over the incumbent
//! (the latest kept experiment) clears the noise at the stated confidence:
//!
//! - the incumbent's value is the mean of all runs of its configuration (its own run plus the
//!   repeats mlres ran with other seeds, `noise: {repeats: k}`, or an agent submitted);
//! - the noise is the stated `sd` when given (a one-sided z test), else the pooled standard
//!   deviation of every configuration run more than once in the campaign (a one-sided pooled
//!   two-sample t test with Σ(nᵢ − 1) degrees of freedom). A single candidate run has no
//!   variance of its own, so Welch's test is not possible: the pooled test assumes every
//!   configuration has the same seed noise, which is what repeating one configuration measures;
//! - keep when the one-sided p-value of "the candidate is better" is below `1 − confidence`.
//!
//! A run of the incumbent's own configuration is a repeat, never an improvement.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::budget::Decision;
use crate::program::{Goal, Objective};

/// `range:` of an objective: values outside are impossible for this metric.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricRange {
    /// Lowest possible value, if bounded below.
    pub min: Option<f64>,
    /// Highest possible value, if bounded above.
    pub max: Option<f64>,
}

impl MetricRange {
    /// Whether `v` lies inside the range (bounds included).
    pub fn contains(&self, v: f64) -> bool {
        self.min.is_none_or(|lo| v >= lo) && self.max.is_none_or(|hi| v <= hi)
    }
}

impl std::fmt::Display for MetricRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = |v: Option<f64>, inf: &str| v.map_or(inf.to_string(), |v| v.to_string());
        write!(f, "[{}, {}]", b(self.min, "-inf"), b(self.max, "inf"))
    }
}

/// `noise:` of an objective.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoiseModel {
    /// Stated standard deviation of one run's metric (seed noise).
    pub sd: Option<f64>,
    /// Runs of each incumbent's configuration the loop makes (its own plus repeats with other
    /// seeds); at least 2 when given.
    pub repeats: Option<u32>,
    /// Confidence that a kept improvement is real (default 0.95).
    pub confidence: f64,
}

/// Default confidence of [`NoiseModel`].
pub const DEFAULT_CONFIDENCE: f64 = 0.95;

/// Why a metric value cannot be used, from the objective's declared range. Name-based
/// expectations are only a [`range_hint`].
pub fn out_of_range(objective: &Objective, value: f64) -> Option<String> {
    let r = objective.range?;
    if !value.is_finite() || r.contains(value) {
        return None;
    }
    Some(format!(
        "`{}` = {value} is outside the objective's declared range {r}",
        objective.metric
    ))
}

/// A warning (never a reason to discard) when a value looks odd for a metric of this name and
/// the objective declares no range: `*accuracy`/`*acc`/`*f1`/… outside [0, 1] (a job may
/// report percent), a negative `*loss`.
pub fn range_hint(objective: &Objective, value: f64) -> Option<String> {
    if objective.range.is_some() || !value.is_finite() {
        return None;
    }
    let name = &objective.metric;
    let lower = name.to_ascii_lowercase();
    let bounded = [
        "accuracy",
        "acc",
        "f1",
        "precision",
        "recall",
        "exact_match",
        "em",
    ]
    .iter()
    .any(|k| lower.ends_with(k));
    if bounded && !(0.0..=1.0).contains(&value) {
        return Some(format!(
            "note: `{name}` = {value} is outside [0, 1], which its name suggests; kept as \
             reported (declare `range:` in the objective, e.g. `range: [0, 100]` for percent, \
             to have impossible values refused)"
        ));
    }
    if lower.ends_with("loss") && value < 0.0 {
        return Some(format!(
            "note: `{name}` = {value} is negative, unusual for a loss; kept as reported \
             (declare `range:` in the objective to have impossible values refused)"
        ));
    }
    None
}

/// One completed run with a usable metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// Experiment id.
    pub id: i64,
    /// Canonical configuration ([`config_key`]).
    pub config: String,
    /// Objective metric.
    pub value: f64,
}

/// A configuration as a canonical string (object keys sorted at every level), so that two
/// runs of the same configuration compare equal whatever order their keys were written in.
pub fn config_key(config: &Value) -> String {
    fn canon(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), canon(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(canon).collect()),
            other => other.clone(),
        }
    }
    canon(config).to_string()
}

/// What a keep/discard decision rested on; recorded with the decision in the ledger.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// `none` (no `noise:`), `stated_sd` or `measured`.
    pub noise_model: String,
    /// The test used, e.g. `one-sided z test` (absent when no test was run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
    /// The experiment compared against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incumbent: Option<i64>,
    /// The incumbent's value: the mean of its configuration's runs (with `noise:`), else
    /// the best value so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incumbent_value: Option<f64>,
    /// Runs of the incumbent's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incumbent_n: Option<u32>,
    /// Improvement in the goal's direction (positive is better).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<f64>,
    /// Noise standard deviation of one run used by the test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sd: Option<f64>,
    /// Degrees of freedom of a measured noise estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub df: Option<u32>,
    /// Standard error of `delta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub se: Option<f64>,
    /// One-sided p-value of "the candidate is better".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// Confidence required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Set when the run repeated this experiment's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_of: Option<i64>,
    /// With `noise:`, after this decision: how many runs the recorded best so far (the
    /// incumbent's mean, [`MeanBest`]) is the mean of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_runs: Option<u32>,
    /// With `noise:`, after this decision: the best single kept value, which selection biases
    /// upwards (the winner's curse); kept so that nothing is lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_single: Option<f64>,
}

impl Evidence {
    /// One line for people: `delta +0.004, sd 0.002 (measured, df 4), n 3, p 0.031 < 0.05`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(d) = self.delta {
            parts.push(format!("delta {d:+.4}"));
        }
        if let Some(sd) = self.sd {
            match self.df {
                Some(df) => parts.push(format!("sd {sd:.4} (measured, df {df})")),
                None => parts.push(format!("sd {sd:.4} (stated)")),
            }
        }
        if let Some(n) = self.incumbent_n {
            parts.push(format!("incumbent n {n}"));
        }
        if let (Some(p), Some(c)) = (self.p_value, self.confidence) {
            parts.push(format!("p {p:.3} vs {:.3}", 1.0 - c));
        }
        if self.noise_model == "none" {
            parts.push("no noise model".into());
        }
        parts.join(", ")
    }
}

/// A keep/discard decision with its reason and evidence.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// Keep or discard.
    pub decision: Decision,
    /// Why, for people.
    pub reason: String,
    /// What it rested on.
    pub evidence: Evidence,
}

/// Decides on a finite metric `value` of a completed run with configuration `config` (a
/// [`config_key`]). `incumbent` is the latest kept run, `best` the best kept value, and `runs`
/// every earlier completed run with a usable metric (the incumbent's included, this one not).
pub fn decide_noisy(
    objective: &Objective,
    config: &str,
    value: f64,
    incumbent: Option<&Run>,
    best: Option<f64>,
    runs: &[Run],
) -> Verdict {
    let name = &objective.metric;
    let sign = match objective.goal {
        Goal::Maximize => 1.0,
        Goal::Minimize => -1.0,
    };
    let Some(noise) = objective.noise else {
        // Today's rule: strictly better than the best so far.
        let (decision, mut reason) = crate::budget::decide(objective, Some(value), best);
        let same = incumbent.is_some_and(|i| i.config == config);
        if same && let Some(i) = incumbent {
            reason.push_str(&format!(
                " (same configuration as the incumbent, experiment {}: the difference may be \
                 seed noise; declare `noise:` in the objective to tell)",
                i.id
            ));
        }
        return Verdict {
            decision,
            reason,
            evidence: Evidence {
                noise_model: "none".into(),
                incumbent: incumbent.map(|i| i.id),
                incumbent_value: best,
                delta: best.map(|b| sign * (value - b)),
                repeat_of: incumbent.filter(|_| same).map(|i| i.id),
                ..Evidence::default()
            },
        };
    };
    let model = if noise.sd.is_some() {
        "stated_sd"
    } else {
        "measured"
    };
    let Some(inc) = incumbent else {
        return Verdict {
            decision: Decision::Keep,
            reason: format!("first result: `{name}` = {value}"),
            evidence: Evidence {
                noise_model: model.into(),
                confidence: Some(noise.confidence),
                ..Evidence::default()
            },
        };
    };
    let MeanBest {
        mean: mean_b,
        runs: n_b,
    } = incumbent_mean(inc, runs);
    let delta = sign * (value - mean_b);
    let mut ev = Evidence {
        noise_model: model.into(),
        incumbent: Some(inc.id),
        incumbent_value: Some(mean_b),
        incumbent_n: Some(n_b),
        delta: Some(delta),
        confidence: Some(noise.confidence),
        ..Evidence::default()
    };
    if config == inc.config {
        ev.repeat_of = Some(inc.id);
        return Verdict {
            decision: Decision::Discard,
            reason: format!(
                "`{name}` = {value} repeats the incumbent's configuration (experiment {}) with \
                 another seed: not a change, so not an improvement; it adds to the noise estimate",
                inc.id
            ),
            evidence: ev,
        };
    }
    let (sd, df) = match noise.sd {
        Some(sd) => (sd, None),
        None => match pooled_sd(runs) {
            Some((sd, df)) => (sd, Some(df)),
            None => {
                return Verdict {
                    decision: Decision::Discard,
                    reason: format!(
                        "`{name}` = {value} cannot be told apart from noise yet: no \
                         configuration has been run twice, so the noise is unmeasured \
                         (noise.repeats re-runs the incumbent first)"
                    ),
                    evidence: ev,
                };
            }
        },
    };
    let se = sd * (1.0 + 1.0 / f64::from(n_b)).sqrt();
    let p = if se > 0.0 {
        let stat = delta / se;
        match df {
            None => normal_sf(stat),
            Some(df) => student_t_sf(stat, f64::from(df)),
        }
    } else if delta > 0.0 {
        0.0
    } else {
        1.0
    };
    ev.test = Some(match df {
        None => "one-sided z test (stated sd)".into(),
        Some(_) => "one-sided pooled t test (sd measured from repeated configurations)".into(),
    });
    ev.sd = Some(sd);
    ev.df = df;
    ev.se = Some(se);
    ev.p_value = Some(p);
    let alpha = 1.0 - noise.confidence;
    let what = format!(
        "`{name}` = {value} against the incumbent (experiment {}) mean {mean_b:.6} of {n_b} run{}",
        inc.id,
        if n_b == 1 { "" } else { "s" }
    );
    if p < alpha {
        Verdict {
            decision: Decision::Keep,
            reason: format!(
                "{what}: improvement {delta:+.6} clears the noise at {:.0}% confidence \
                 ({})",
                noise.confidence * 100.0,
                ev.summary()
            ),
            evidence: ev,
        }
    } else {
        Verdict {
            decision: Decision::Discard,
            reason: format!(
                "{what}: {} {delta:+.6} is within the noise at {:.0}% confidence ({})",
                if delta > 0.0 {
                    "improvement"
                } else {
                    "difference"
                },
                noise.confidence * 100.0,
                ev.summary()
            ),
            evidence: ev,
        }
    }
}

/// The campaign's best under `noise:`: the incumbent's mean over every run of its
/// configuration (its own and its repeats), not the best single value, which is biased
/// upwards by selection (the winner's curse).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeanBest {
    /// Mean of the runs.
    pub mean: f64,
    /// How many runs it is the mean of (at least 1).
    pub runs: u32,
}

/// The mean of the runs of `incumbent`'s configuration in `runs` (the incumbent's own value
/// alone when `runs` holds none of them).
pub fn incumbent_mean(incumbent: &Run, runs: &[Run]) -> MeanBest {
    let group: Vec<f64> = runs
        .iter()
        .filter(|r| r.config == incumbent.config)
        .map(|r| r.value)
        .collect();
    if group.is_empty() {
        return MeanBest {
            mean: incumbent.value,
            runs: 1,
        };
    }
    MeanBest {
        mean: group.iter().sum::<f64>() / group.len() as f64,
        runs: group.len() as u32,
    }
}

/// The loop's streaks for its stop rules, folded over evaluations in chain order with
/// [`Streaks::observe`].
///
/// What a run of the incumbent's own configuration advances under `noise:` (a repeat, run to
/// measure seed noise, not a new hypothesis):
/// - `since_improvement` (`patience`): no;
/// - `consecutive_failures` (`max_consecutive_failures`): yes, as any job (a failed repeat is
///   a failure, a completed one shows the job works);
/// - the budget (`max_jobs`, walltime, cost, GPU-hours): yes, always (not counted here);
/// - a proposer's index: no (a repeat carries none).
///
/// Without `noise:` every evaluation counts as before.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Streaks {
    /// Evaluations since the last keep, repeats of the incumbent left out under `noise:`.
    pub since_improvement: u32,
    /// Consecutive failed (or anomalous) evaluations; a pruned job is not a failure.
    pub consecutive_failures: u32,
    /// The configuration ([`config_key`]) of the latest kept experiment.
    pub incumbent_config: Option<String>,
}

impl Streaks {
    /// One evaluation, in chain order: its configuration ([`config_key`]), decision and
    /// outcome. Returns whether it was a repeat of the incumbent under `noise:`.
    pub fn observe(
        &mut self,
        objective: &Objective,
        config: &str,
        decision: Option<&str>,
        status: Option<&str>,
    ) -> bool {
        let failed =
            !matches!(status, Some("completed" | "pruned")) || decision == Some("anomalous");
        if failed {
            self.consecutive_failures += 1;
        } else {
            self.consecutive_failures = 0;
        }
        if decision == Some("keep") {
            self.since_improvement = 0;
            self.incumbent_config = Some(config.to_string());
            return false;
        }
        let repeat = objective.noise.is_some() && self.incumbent_config.as_deref() == Some(config);
        if !repeat {
            self.since_improvement += 1;
        }
        repeat
    }
}

/// The pooled standard deviation of the configurations run more than once, with its degrees
/// of freedom Σ(nᵢ − 1); `None` when no configuration was.
pub fn pooled_sd(runs: &[Run]) -> Option<(f64, u32)> {
    let mut groups: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for r in runs {
        groups.entry(r.config.as_str()).or_default().push(r.value);
    }
    let (mut ss, mut df) = (0.0f64, 0u32);
    for g in groups.values().filter(|g| g.len() > 1) {
        let m = g.iter().sum::<f64>() / g.len() as f64;
        ss += g.iter().map(|x| (x - m) * (x - m)).sum::<f64>();
        df += g.len() as u32 - 1;
    }
    (df > 0).then(|| ((ss / f64::from(df)).sqrt(), df))
}

/// How many more runs of the incumbent's configuration `noise.repeats` asks for, given
/// `have` runs of it (finished or in flight).
pub fn repeats_needed(objective: &Objective, have: u32) -> u32 {
    objective
        .noise
        .and_then(|n| n.repeats)
        .map_or(0, |k| k.saturating_sub(have))
}

/// P(Z > z) for a standard normal Z.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * crate::special::erfc(z / std::f64::consts::SQRT_2)
}

/// P(T > t) for Student's t with `df` degrees of freedom.
pub fn student_t_sf(t: f64, df: f64) -> f64 {
    if t.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if t.is_infinite() {
        return if t > 0.0 { 0.0 } else { 1.0 };
    }
    let x = df / (df + t * t);
    let tail = 0.5 * crate::special::reg_inc_beta(x, 0.5 * df, 0.5);
    if t >= 0.0 { tail } else { 1.0 - tail }
}
