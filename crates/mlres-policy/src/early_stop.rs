//! Multi-fidelity early stopping: asynchronous successive halving (ASHA) on the intermediate
//! metric lines a job prints (`step=3 val_acc=0.71`).
//!
//! Rungs sit at `min_step · reduction_factorᵏ` (below `max_step` when given). When a running
//! job first reports its objective metric at or past a rung's step, that value is its value at
//! the rung. It goes on only if it ranks in the best `max(1, ⌊n / reduction_factor⌋)` of the
//! `n` values recorded at that rung so far (its own included); otherwise it is pruned. Until a
//! rung holds `startup` earlier values nothing is pruned there. The rule only compares values
//! already recorded, so decisions do not depend on timing beyond the order values arrive in.

use serde::{Deserialize, Serialize};

use crate::program::Goal;

/// `early_stop:` of an objective.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStop {
    /// The key of the step (resource) in the job's metric lines (default `step`).
    pub step_key: String,
    /// Step of the first rung (default 1).
    pub min_step: f64,
    /// The job's full budget in steps; no rung at or above it (default: none).
    pub max_step: Option<f64>,
    /// η: each rung keeps the best 1/η (default 3).
    pub reduction_factor: u32,
    /// Values a rung must hold before it prunes (default 3).
    pub startup: u32,
}

/// Most rungs considered.
pub const MAX_RUNGS: usize = 32;

impl EarlyStop {
    /// The rungs' steps, ascending.
    pub fn rungs(&self) -> Vec<f64> {
        let mut out = Vec::new();
        let mut s = self.min_step;
        let eta = f64::from(self.reduction_factor.max(2));
        while out.len() < MAX_RUNGS && s.is_finite() {
            if self.max_step.is_some_and(|m| s >= m) {
                break;
            }
            out.push(s);
            s *= eta;
        }
        out
    }

    /// The highest rung (index) whose step is at or below `step`.
    pub fn rung_at(&self, step: f64) -> Option<usize> {
        self.rungs().iter().rposition(|r| step >= *r)
    }
}

/// Why a job was pruned at a rung.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prune {
    /// Rung index.
    pub rung: usize,
    /// The rung's step.
    pub rung_step: f64,
    /// 0-based rank of the job's value among the values at the rung (0 is best).
    pub rank: usize,
    /// Values at the rung, the job's included.
    pub n: usize,
    /// How many go on from the rung.
    pub keep_top: usize,
}

/// Whether a job whose value at rung `rung` is `value` is pruned, given the values `others`
/// already recorded at that rung by other jobs of the campaign.
pub fn asha_prune(
    es: &EarlyStop,
    goal: Goal,
    rung: usize,
    value: f64,
    others: &[f64],
) -> Option<Prune> {
    let rung_step = *es.rungs().get(rung)?;
    if others.len() < es.startup as usize {
        return None;
    }
    let better = |o: f64| match goal {
        Goal::Maximize => o > value,
        Goal::Minimize => o < value,
    };
    // A non-finite value (diverged) ranks below every finite one.
    let rank = if value.is_finite() {
        others
            .iter()
            .filter(|o| o.is_finite() && better(**o))
            .count()
    } else {
        others.len()
    };
    let n = others.len() + 1;
    let keep_top = (n / es.reduction_factor.max(2) as usize).max(1);
    (rank >= keep_top).then_some(Prune {
        rung,
        rung_step,
        rank,
        n,
        keep_top,
    })
}
