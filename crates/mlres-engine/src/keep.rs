//! The engine's side of noise-aware keep/discard and early stopping: what a decision is taken
//! against (incumbent, earlier runs), the repeats of the incumbent `noise: {repeats: k}` asks
//! for, and successive-halving pruning of running local jobs on their intermediate metric lines.
//! The rules themselves are in `mlres_policy` (`decide_noisy`, `asha_prune`).

use std::collections::BTreeMap;
use std::path::Path;

use mlres_ledger::{Campaign, Experiment, Ledger};
use mlres_policy::{Goal, Objective, Run};
use serde_json::{Value, json};

use crate::EngineError;
use crate::evaluate::KeepContext;
use crate::run::{BestExperiment, BestSingle, Engine, LoopEvent, SubmitRequest, best_experiment};

/// What the loop does next under `noise:`.
#[derive(Debug, Clone)]
pub(crate) enum NoiseStep {
    /// Propose as usual.
    Propose,
    /// Submit this repeat of the incumbent.
    Repeat(SubmitRequest),
    /// Wait: the noise must be measured before anything new is proposed.
    Wait,
}

/// A campaign's results as a decision sees them.
struct CampaignRuns {
    /// The latest kept run.
    incumbent: Option<Run>,
    /// Every usable run.
    runs: Vec<Run>,
    /// Every experiment.
    exps: Vec<Experiment>,
}

/// A completed, not anomalous experiment with a finite metric.
fn usable(e: &Experiment) -> Option<Run> {
    let m = e.metric.filter(|m| m.is_finite())?;
    (e.state == "evaluated"
        && e.status.as_deref() == Some("completed")
        && e.decision.as_deref() != Some("anomalous"))
    .then(|| Run {
        id: e.id,
        config: mlres_policy::config_key(&e.config),
        value: m,
    })
}

/// The latest kept experiment (chain order) and every usable run of the campaign.
fn campaign_runs(ledger: &Ledger, campaign: &str) -> Result<CampaignRuns, EngineError> {
    let exps = ledger.experiments(campaign)?;
    let by_id: BTreeMap<i64, &Experiment> = exps.iter().map(|e| (e.id, e)).collect();
    let mut incumbent = None;
    for id in ledger.evaluation_order(campaign)?.into_iter().rev() {
        if let Some(e) = by_id.get(&id)
            && e.decision.as_deref() == Some("keep")
        {
            incumbent = usable(e);
            break;
        }
    }
    let runs = exps.iter().filter_map(usable).collect();
    Ok(CampaignRuns {
        incumbent,
        runs,
        exps,
    })
}

/// Under `noise:`, the incumbent's mean over its runs ([`mlres_policy::incumbent_mean`]);
/// `None` before anything was kept.
pub(crate) fn mean_best(
    ledger: &Ledger,
    campaign: &str,
) -> Result<Option<mlres_policy::MeanBest>, EngineError> {
    let CampaignRuns {
        incumbent, runs, ..
    } = campaign_runs(ledger, campaign)?;
    Ok(incumbent.map(|i| mlres_policy::incumbent_mean(&i, &runs)))
}

/// The campaign's best as status, the loop's summary and `runs/summary.md` report it. Without
/// `noise:` it is `single`, the best single value (as always). With it, it is the incumbent
/// (the latest kept experiment) with its mean over every run of its configuration as `metric`
/// and their number as `runs`; `single` goes into `best_single`, so nothing is lost. The
/// maximum of noisy values is biased upwards by selection (the winner's curse); the mean of
/// the incumbent's repeats is not.
pub(crate) fn reported_best(
    ledger: &Ledger,
    campaign: &str,
    noise: bool,
    goal: Goal,
    single: Option<BestExperiment>,
) -> Result<Option<BestExperiment>, EngineError> {
    if !noise {
        return Ok(single);
    }
    let CampaignRuns {
        incumbent,
        runs,
        exps,
    } = campaign_runs(ledger, campaign)?;
    let Some(inc) = incumbent else {
        return Ok(single);
    };
    let Some(mut best) = exps
        .iter()
        .find(|e| e.id == inc.id)
        .and_then(|e| best_experiment(std::slice::from_ref(e), goal))
    else {
        return Ok(single);
    };
    let m = mlres_policy::incumbent_mean(&inc, &runs);
    best.metric = m.mean;
    best.runs = Some(m.runs);
    best.best_single = single.map(|s| BestSingle {
        id: s.id,
        iter: s.iter,
        metric: s.metric,
    });
    Ok(Some(best))
}

impl Engine {
    /// The latest kept experiment (chain order) and every usable run of the campaign.
    fn incumbent_and_runs(&self, campaign: &str) -> Result<CampaignRuns, EngineError> {
        campaign_runs(&self.ledger, campaign)
    }

    /// What a decision on `exp` is taken against. Without `noise:` only the best kept value
    /// and the kept experiment holding it are read (today's cost); with it, every run.
    pub(crate) fn keep_context(
        &self,
        objective: &Objective,
        exp: &Experiment,
        best: Option<f64>,
    ) -> Result<KeepContext, EngineError> {
        let config = mlres_policy::config_key(&exp.config);
        if objective.noise.is_none() {
            let incumbent = self
                .ledger
                .kept_experiments(&exp.campaign)?
                .iter()
                .filter(|e| e.id != exp.id)
                .filter_map(usable)
                .find(|r| Some(r.value) == best);
            return Ok(KeepContext {
                best,
                config,
                incumbent,
                runs: Vec::new(),
            });
        }
        let CampaignRuns {
            incumbent, runs, ..
        } = self.incumbent_and_runs(&exp.campaign)?;
        Ok(KeepContext {
            best,
            config,
            incumbent: incumbent.filter(|i| i.id != exp.id),
            runs: runs.into_iter().filter(|r| r.id != exp.id).collect(),
        })
    }

    /// Under `noise: {repeats: k}` the incumbent's configuration is run `k` times in all
    /// (other seeds: `{seed}` is the experiment id) before the loop proposes anything new,
    /// and, when the noise is measured (no `sd`), nothing new is proposed until some
    /// configuration has been run twice.
    pub(crate) fn noise_step(
        &self,
        objective: &Objective,
        campaign: &Campaign,
    ) -> Result<NoiseStep, EngineError> {
        let Some(noise) = objective.noise else {
            return Ok(NoiseStep::Propose);
        };
        let CampaignRuns {
            incumbent,
            runs,
            exps,
        } = self.incumbent_and_runs(&campaign.id)?;
        let in_flight =
            |e: &&Experiment| matches!(e.state.as_str(), "reserved" | "submitted" | "finished");
        let Some(inc) = incumbent else {
            // The first result must be in before anything else is decided against it.
            let measured = noise.sd.is_none();
            return Ok(if measured && exps.iter().any(|e| in_flight(&e)) {
                NoiseStep::Wait
            } else {
                NoiseStep::Propose
            });
        };
        let same = |e: &Experiment| mlres_policy::config_key(&e.config) == inc.config;
        let have = runs.iter().filter(|r| r.config == inc.config).count()
            + exps.iter().filter(in_flight).filter(|e| same(e)).count();
        let need = mlres_policy::repeats_needed(objective, have as u32);
        if need > 0 {
            let k = noise.repeats.unwrap_or(0);
            let config = exps
                .iter()
                .find(|e| e.id == inc.id)
                .map(|e| e.config.clone())
                .unwrap_or(Value::Null);
            return Ok(NoiseStep::Repeat(SubmitRequest {
                config,
                hypothesis: format!(
                    "noise: run {} of {k} of the incumbent's configuration (experiment {}) with \
                     another seed, to measure seed noise before deciding on changes",
                    have + 1,
                    inc.id
                ),
                source: "loop",
                proposal_index: None,
            }));
        }
        if noise.sd.is_none() && mlres_policy::pooled_sd(&runs).is_none() {
            return Ok(NoiseStep::Wait);
        }
        Ok(NoiseStep::Propose)
    }

    /// Reads a running (or just finished) local attempt's new metric lines for early stopping:
    /// records the objective metric at each rung the job reached, and when `may_prune`, prunes
    /// it (cancel through the backend, `pruned` event) if it ranks out at its rung.
    pub(crate) fn early_stop_lines(
        &mut self,
        exp: &Experiment,
        lines: &[&str],
        may_prune: bool,
        on_event: &mut dyn FnMut(LoopEvent),
    ) -> Result<(), EngineError> {
        let Some(objective) = self.project.program.objective.clone() else {
            return Ok(());
        };
        let Some(es) = objective.early_stop.clone() else {
            return Ok(());
        };
        let key = (exp.id, exp.attempt);
        if may_prune
            && !self.rungs_seen.contains_key(&key)
            && self.ledger.pruned(exp.id, exp.attempt)?.is_some()
            && let Some(h) = &exp.handle
        {
            // Pruned by a process that stopped before the job did (or before it could cancel
            // it): cancel it now. Cancelling twice is harmless.
            mlres_backends::cancel(Path::new(h))?;
        }
        let mut reached: Option<usize> = match self.rungs_seen.get(&key) {
            Some(r) => *r,
            None => self
                .ledger
                .rung_values(&exp.campaign)?
                .iter()
                .filter(|r| r.exp_id == exp.id && r.attempt == exp.attempt)
                .map(|r| r.rung as usize)
                .max(),
        };
        let mut newest: Option<(usize, f64, f64)> = None;
        for line in lines {
            let Some((step, value)) =
                mlres_policy::curve_point(line, &objective.metric, &es.step_key)
            else {
                continue;
            };
            let Some(rung) = es.rung_at(step) else {
                continue;
            };
            if reached.is_some_and(|r| rung <= r) {
                continue;
            }
            let from = reached.map_or(0, |r| r + 1);
            for r in from..=rung {
                self.ledger
                    .record_rung(exp.id, exp.attempt, r as u32, step, value)?;
            }
            reached = Some(rung);
            newest = Some((rung, step, value));
        }
        self.rungs_seen.insert(key, reached);
        let Some((rung, step, value)) = newest.filter(|_| may_prune) else {
            return Ok(());
        };
        if self.ledger.pruned(exp.id, exp.attempt)?.is_some() {
            return Ok(());
        }
        let others: Vec<f64> = self
            .ledger
            .rung_values(&exp.campaign)?
            .iter()
            .filter(|r| r.rung as usize == rung && r.exp_id != exp.id)
            .map(|r| r.value)
            .collect();
        let Some(p) = mlres_policy::asha_prune(&es, objective.goal, rung, value, &others) else {
            return Ok(());
        };
        let reason = format!(
            "pruned at step {step} (rung {} at step {}): `{}` = {value} ranked {} of {} there; \
             successive halving (reduction factor {}) lets the best {} go on",
            p.rung,
            p.rung_step,
            objective.metric,
            p.rank + 1,
            p.n,
            es.reduction_factor,
            p.keep_top
        );
        let Some(handle) = &exp.handle else {
            return Ok(());
        };
        let details = json!({
            "rung": p.rung, "rung_step": p.rung_step, "step": step,
            "value": serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number),
            "rank": p.rank, "n": p.n, "keep_top": p.keep_top,
            "goal": match objective.goal { Goal::Maximize => "maximize", Goal::Minimize => "minimize" },
            "reason": reason,
        });
        if self.ledger.record_pruned(exp.id, exp.attempt, &details)? {
            mlres_backends::cancel(Path::new(handle))?;
            on_event(LoopEvent::Pruned {
                exp: exp.id,
                step,
                reason,
            });
        }
        Ok(())
    }

    /// Whether the approved objective declares `early_stop`.
    pub(crate) fn early_stopping(&self) -> bool {
        self.project
            .program
            .objective
            .as_ref()
            .is_some_and(|o| o.early_stop.is_some())
    }

    /// Submits a repeat of the incumbent, budgeted like any experiment. A refusal with nothing
    /// in flight ends the loop: returns the reason to stop with.
    pub(crate) fn submit_repeat(
        &mut self,
        campaign: &Campaign,
        req: SubmitRequest,
        in_flight: u32,
        on_event: &mut dyn FnMut(LoopEvent),
    ) -> Result<Option<String>, EngineError> {
        let hypothesis = req.hypothesis.clone();
        let config = req.config.clone();
        match self.submit(campaign, req) {
            Ok(exp) => {
                on_event(LoopEvent::Submitted {
                    exp: exp.id,
                    iter: exp.iter,
                    hypothesis,
                    config,
                });
                Ok(None)
            }
            Err(EngineError::Refused { code, message }) if in_flight == 0 => {
                on_event(LoopEvent::Refused {
                    code,
                    message: message.clone(),
                });
                let reason = format!("the envelope refused the next experiment: {message}");
                on_event(LoopEvent::Stopping {
                    reason: reason.clone(),
                });
                Ok(Some(reason))
            }
            Err(EngineError::Refused { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The `pruned` record of an experiment's current attempt, if it was pruned.
    pub(crate) fn pruned_reason(&self, exp: &Experiment) -> Result<Option<String>, EngineError> {
        Ok(self
            .ledger
            .pruned(exp.id, exp.attempt)?
            .map(|p| p["reason"].as_str().unwrap_or("pruned").to_string()))
    }
}
