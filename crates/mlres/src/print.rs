//! Terminal rendering: progress bars on a TTY, plain lines otherwise, JSON on request.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mlres_engine::{LoopEvent, LoopSummary, StatusReport};
use mlres_ledger::Experiment;
use serde::Serialize;
use serde_json::Value;

pub fn json<T: Serialize + ?Sized>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot serialise output: {e}"),
    }
}

pub fn exp_json(e: &Experiment) -> Value {
    mlres_engine::experiment_json(e)
}

fn fmt_metric(m: Option<f64>) -> String {
    m.map(|v| format!("{v:.4}")).unwrap_or_else(|| "–".into())
}

pub fn experiment(e: &Experiment) {
    println!(
        "experiment {} (iter {}, campaign {})",
        e.id, e.iter, e.campaign
    );
    println!("  state:      {}", e.state);
    if let Some(s) = &e.status {
        println!("  outcome:    {s}");
    }
    println!("  hypothesis: {}", e.hypothesis);
    println!("  config:     {}", e.config);
    if e.metric.is_some() || e.decision.is_some() {
        println!("  metric:     {}", fmt_metric(e.metric));
        println!(
            "  decision:   {} ({})",
            e.decision.clone().unwrap_or_default(),
            e.decision_reason.clone().unwrap_or_default()
        );
    }
    if let Some(err) = &e.error {
        // A recorded error may quote the job's last stderr lines, one per line.
        println!("  error:      {}", err.replace('\n', "\n              "));
    }
}

pub fn status(r: &StatusReport) {
    println!("project:   {}", r.project.display());
    println!("approval:  {}", r.approval);
    match &r.campaign {
        None => println!("campaign:  none yet (`mlres loop run` or `mlres exp submit` starts one)"),
        Some(c) => println!(
            "campaign:  {} ({}{})",
            c.id,
            c.status,
            c.stop_reason
                .as_ref()
                .map(|s| format!(": {s}"))
                .unwrap_or_default()
        ),
    }
    let b = &r.budget;
    println!(
        "budget:    jobs {}/{}, walltime {}s/{}s, in flight {}/{}",
        b["jobs"]["used"],
        b["jobs"]["max"],
        b["walltime_secs"]["used"],
        b["walltime_secs"]["max"],
        b["in_flight"]["now"],
        b["in_flight"]["max"]
    );
    if let Some(best) = &r.best {
        println!(
            "best:      experiment {} {} = {:.4} {}",
            best.id,
            r.metric.clone().unwrap_or_default(),
            best.metric,
            best.config
        );
    }
    if let Some(s) = &r.stop_reason {
        println!("stop:      {s}");
    }
    if !r.experiments.is_empty() {
        println!(
            "\n{:>4} {:>5} {:<10} {:<16} {:>8} {:<10} config",
            "iter", "exp", "state", "outcome", "metric", "decision"
        );
        for e in &r.experiments {
            println!(
                "{:>4} {:>5} {:<10} {:<16} {:>8} {:<10} {}",
                e.iter,
                e.id,
                e.state,
                e.status.clone().unwrap_or_default(),
                fmt_metric(e.metric),
                e.decision.clone().unwrap_or_default(),
                e.config
            );
        }
    }
}

pub fn loop_summary(s: &LoopSummary, metric: Option<&str>) {
    let metric = metric.unwrap_or("metric");
    let how = if s.failed { "failed" } else { "finished" };
    println!("\nCampaign {} {how}: {}", s.campaign, s.stop_reason);
    println!("Experiments: {}", s.experiments);
    match &s.best {
        Some(b) => {
            println!(
                "Best configuration: {} (experiment {}, iter {})",
                b.config, b.id, b.iter
            );
            println!("Best {metric}: {:.4}", b.metric);
            if let Some(m) = s.median_metric {
                println!("Median {metric} of the sweep: {m:.4}");
            }
            if let Some(cp) = &b.checkpoint {
                println!("Best checkpoint: {}", cp.display());
            }
        }
        None => println!("No experiment produced a usable {metric}."),
    }
    println!("Summary: {}", s.summary_md.display());
    println!(
        "Ledger:  {} (authoritative, hash-chained: {})",
        s.ledger_jsonl.display(),
        s.state_db.display()
    );
}

/// Renders loop events: a progress bar on a terminal, one line per event otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    done: u64,
    latest: BTreeMap<i64, String>,
}

impl Progress {
    pub fn new(total: u64, quiet_stdout: bool) -> Progress {
        let _ = quiet_stdout;
        let bar = if std::io::stderr().is_terminal() {
            let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} experiments  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            Some(b)
        } else {
            None
        };
        Progress {
            bar,
            done: 0,
            latest: BTreeMap::new(),
        }
    }

    fn line(&self, s: String) {
        match &self.bar {
            Some(b) => b.println(s),
            None => eprintln!("{s}"),
        }
    }

    pub fn event(&mut self, e: &LoopEvent) {
        match e {
            LoopEvent::Started {
                campaign,
                start,
                max_jobs,
            } => {
                let how = match start {
                    mlres_engine::CampaignStart::Fresh => "starting a fresh campaign".to_string(),
                    mlres_engine::CampaignStart::Resumed { done, in_flight } => format!(
                        "resuming the unfinished campaign ({done} experiment(s) done, {in_flight} in flight)"
                    ),
                    mlres_engine::CampaignStart::AfterFinished { previous, reason } => format!(
                        "starting a fresh campaign (previous campaign {previous} ended: {reason})"
                    ),
                };
                self.line(format!(
                    "mlres: {campaign}: {how}; up to {max_jobs} experiments"
                ));
            }
            LoopEvent::Voided { exp, attempt } => self.line(format!(
                "  exp {exp}: attempt {attempt} never started; relaunching"
            )),
            LoopEvent::Submitted {
                exp,
                iter,
                hypothesis,
                ..
            } => self.line(format!("  exp {exp} (iter {iter}) submitted: {hypothesis}")),
            LoopEvent::Progress { exp, metrics } => {
                let s: Vec<String> = metrics
                    .iter()
                    .filter(|(k, _)| matches!(k.as_str(), "step" | "loss" | "eval_accuracy"))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                self.latest.insert(*exp, s.join(" "));
                self.refresh_message();
            }
            LoopEvent::Finished { exp, status } => {
                self.latest.remove(exp);
                self.refresh_message();
                if status != "completed" {
                    self.line(format!("  exp {exp} {status}"));
                }
            }
            LoopEvent::Evaluated {
                exp,
                iter,
                metric,
                decision,
                reason,
                best,
            } => {
                self.done += 1;
                if let Some(b) = &self.bar {
                    b.set_position(self.done);
                }
                self.line(format!(
                    "  exp {exp} (iter {iter}) {decision}: metric {} ({reason}); best {}",
                    fmt_metric(*metric),
                    fmt_metric(*best)
                ));
            }
            LoopEvent::Refused { code, message } => {
                self.line(format!("  refused ({code}): {message}"))
            }
            LoopEvent::Stopping { reason } => self.line(format!("mlres: stopping: {reason}")),
            LoopEvent::RemoteJob {
                job_id,
                action,
                reason,
                ..
            } => self.line(format!("  hf job {job_id}: {action}: {reason}")),
        }
    }

    fn refresh_message(&self) {
        if let Some(b) = &self.bar {
            let msg: Vec<String> = self
                .latest
                .iter()
                .map(|(k, v)| format!("#{k} {v}"))
                .collect();
            b.set_message(msg.join(" | "));
        }
    }

    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
