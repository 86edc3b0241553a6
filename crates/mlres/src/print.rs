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

/// Whether this machine enforces a local job's cgroup limits (memory, processes, cpus),
/// probed for real: one line each, starting `on this machine:`. A limit that is not
/// enforced says so; it is never shown as on.
pub fn limits_here(job: &mlres_policy::JobTemplate) -> Vec<String> {
    use mlres_backends::LimitEnforcement::{Enforced, NotEnforced};
    let here = mlres_backends::cgroup_limits();
    let l = &job.limits;
    let mut rows = vec![
        (
            format!("memory {}", mlres_policy::format_size(l.memory_bytes)),
            &here.memory,
        ),
        (format!("processes {}", l.processes), &here.processes),
    ];
    if let Some(c) = l.cpu_millis {
        rows.push((format!("cpus {}", mlres_policy::format_cpus(c)), &here.cpus));
    }
    rows.into_iter()
        .map(|(what, e)| match e {
            Enforced(how) => format!("on this machine: {what} enforced by {how}"),
            NotEnforced(why) if what.starts_with("processes") => format!(
                "on this machine: {what} NOT enforced per job ({why}); only RLIMIT_NPROC, \
                 which counts every process of the user and does not bind root"
            ),
            NotEnforced(why) => format!("on this machine: {what} NOT enforced ({why})"),
        })
        .collect()
}

/// `mlres check` for a human: what the program authorises, in words, with its warnings.
pub fn program_summary(project: &mlres_engine::Project) {
    use mlres_policy::{Backend, Goal, Method, Param, format_duration as dur};
    let p = &project.program;
    let e = &p.envelope;
    println!("{} is valid.", project.program_path.display());
    println!(
        "sha256 {}: what `mlres approve` pins (the envelope, scope, objective, job and search space)",
        &project.hash[..16]
    );
    println!();
    if let Some(t) = &p.title {
        println!("Campaign   {t}");
    }
    for (i, line) in p.scope_text().lines().enumerate() {
        println!("{:<11}{line}", if i == 0 { "Scope" } else { "" });
    }
    let backends: Vec<&str> = e.backends.iter().map(|b| b.as_str()).collect();
    println!("Backends   {}", backends.join(", "));
    println!(
        "Budget     at most {} experiment(s), {} at a time",
        e.max_jobs, e.max_concurrent
    );
    let reserve = if e.final_reserve_secs > 0 {
        format!(", {} of it kept back at the end", dur(e.final_reserve_secs))
    } else {
        String::new()
    };
    println!(
        "           {} of job time in total{reserve}; each job at most {} (a job reserves its whole timeout)",
        dur(e.max_walltime_secs),
        dur(e.max_timeout_secs)
    );
    match e.max_cost_usd {
        Some(m) => println!(
            "           at most ${m} in total{}",
            e.namespace
                .as_ref()
                .map(|n| format!(", billed to {n}"))
                .unwrap_or_default()
        ),
        None if e.backends.contains(&Backend::HfJobs) => {
            println!("           no dollar cap (paid jobs are limited by time only)")
        }
        None if e.backends.contains(&Backend::Slurm) => {
            println!("           no dollar cap (Slurm jobs are limited by time and GPU-hours)")
        }
        None => println!("           no dollar cap (local jobs cost nothing)"),
    }
    println!("           flavors: {}", e.allowed_flavors.join(", "));
    if e.backends.contains(&Backend::Slurm) {
        let parts = if e.partitions.is_empty() {
            "the cluster's default".to_string()
        } else {
            e.partitions.join(", ")
        };
        let gpus = e
            .max_gpus_per_job
            .map(|g| format!(", at most {g} GPU(s) per job"))
            .unwrap_or_default();
        let hours = e
            .max_gpu_secs
            .map(|s| format!(", at most {} GPU-hours in total", format_gpu_hours(s)))
            .unwrap_or_default();
        println!("           Slurm partitions: {parts}{gpus}{hours}");
    }
    if e.output_repos.is_empty() {
        println!("           Hub writes: none");
    } else {
        println!(
            "           Hub writes: {} ({}, {})",
            e.output_repos.join(", "),
            if e.allow_deletes {
                "deletes allowed"
            } else {
                "no deletes"
            },
            if e.public_repos {
                "public repos allowed"
            } else {
                "private repos only"
            }
        );
    }
    for (what, list) in [
        ("datasets", &e.datasets),
        ("models", &e.models),
        ("images", &e.images),
    ] {
        if !list.is_empty() {
            println!("           {what}: {}", list.join(", "));
        }
    }
    match &p.objective {
        Some(o) => {
            let goal = match o.goal {
                Goal::Maximize => "maximize",
                Goal::Minimize => "minimize",
            };
            let mut stops = Vec::new();
            if let Some(t) = o.target {
                stops.push(format!("when it reaches {t}"));
            }
            if let Some(n) = o.patience {
                stops.push(format!("after {n} experiment(s) without improvement"));
            }
            stops.push(format!(
                "after {} consecutive failure(s)",
                o.max_consecutive_failures
            ));
            println!(
                "Objective  {goal} `{}` (read from the job's output)",
                o.metric
            );
            println!("           stop {}", stops.join(", or "));
        }
        None => println!("Objective  none"),
    }
    match &p.job {
        Some(j) => {
            let words: Vec<String> = j.command.iter().map(|w| shell_word(w)).collect();
            println!("Job        {}", words.join(" "));
            let mut facts = vec![
                format!("backend {}", j.backend),
                format!("timeout {}", dur(j.timeout_secs)),
                format!("flavor {}", j.flavor),
            ];
            match j.backend {
                // The sandbox limits apply to local jobs; a remote job runs in its image.
                Backend::Local => {
                    facts.push(format!("network {}", if j.network { "on" } else { "off" }));
                    facts.push(format!(
                        "memory {}",
                        mlres_policy::format_size(j.limits.memory_bytes)
                    ));
                    if let Some(c) = j.limits.cpu_secs {
                        facts.push(format!("cpu time {}", dur(c)));
                    }
                    if let Some(c) = j.limits.cpu_millis {
                        facts.push(format!("cpus {}", mlres_policy::format_cpus(c)));
                    }
                    if j.gpus > 0 {
                        facts.push(format!(
                            "gpus {}{}",
                            j.gpus,
                            if j.share_gpus { " (shared)" } else { "" }
                        ));
                    }
                    if let Some(a) = j.limits.address_space_bytes {
                        facts.push(format!("address space {}", mlres_policy::format_size(a)));
                    }
                }
                Backend::HfJobs => {
                    if let Some(i) = &j.image {
                        facts.push(format!("image {i}"));
                    }
                }
                Backend::Slurm => {
                    let s = j.slurm.clone().unwrap_or_default();
                    let part = s
                        .partition
                        .or_else(|| p.envelope.partitions.first().cloned())
                        .unwrap_or_else(|| "the cluster's default".into());
                    facts.push(format!("partition {part}"));
                    if let Some(a) = &s.account {
                        facts.push(format!("account {a}"));
                    }
                    if let Some(q) = &s.qos {
                        facts.push(format!("qos {q}"));
                    }
                    facts.push(format!("cpus {}", s.cpus.max(1)));
                    let limit = mlres_engine::slurm_time_limit_secs(j.timeout_secs);
                    if limit != j.timeout_secs {
                        facts.push(format!("Slurm time limit {} (whole minutes)", dur(limit)));
                    }
                    facts.push(format!(
                        "memory {}",
                        mlres_policy::format_size(j.limits.memory_bytes)
                    ));
                    if j.gpus > 0 {
                        facts.push(format!("gpus {}", j.gpus));
                    }
                }
            }
            println!("           {}", facts.join(", "));
            if j.backend == Backend::Local {
                for line in limits_here(j) {
                    println!("           {line}");
                }
            }
            let env: Vec<String> = j.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if !j.code.is_empty() {
                println!(
                    "           code: {} (hashed and snapshotted at approval; jobs run the snapshot)",
                    j.code.join(", ")
                );
            }
            if !j.outputs.is_empty() {
                println!(
                    "           outputs: {} (in the job's work dir; `mlres exp artifacts <id>` copies them into the project)",
                    j.outputs.join(", ")
                );
            }
            for (what, list) in [
                ("env", &env),
                ("pass_env", &j.pass_env),
                ("secrets", &j.secrets),
            ] {
                if !list.is_empty() {
                    println!("           {what}: {}", list.join(", "));
                }
            }
        }
        None => println!("Job        none: nothing can run"),
    }
    if let Some(s) = &p.search_space {
        let n = s.parameters.len();
        match (s.method, mlres_policy::grid_size(s)) {
            (Method::Grid, Some(size)) => {
                let cover = if size > u64::from(e.max_jobs) {
                    format!(" (max_jobs {} covers {} of them)", e.max_jobs, e.max_jobs)
                } else {
                    String::new()
                };
                println!("Search     grid over {n} parameter(s): {size} configuration(s){cover}")
            }
            (Method::Grid, None) => println!("Search     grid over {n} parameter(s)"),
            (Method::Random, _) => println!(
                "Search     random over {n} parameter(s), seed {}: max_jobs bounds the draws",
                s.seed
            ),
            (Method::Command, _) => println!(
                "Search     by a command over {n} parameter(s): `{}` proposes each config \
                 (checked against this space; 3 attempts each)",
                s.command
                    .as_ref()
                    .map(|c| c.argv.join(" "))
                    .unwrap_or_default()
            ),
            (Method::Bayes, _) => println!(
                "Search     bayes (Gaussian process) over {n} parameter(s), seed {}: max_jobs \
                 bounds the trials",
                s.seed
            ),
            (Method::Tpe, _) => println!(
                "Search     tpe (model-based) over {n} parameter(s), seed {}: max_jobs bounds the \
                 trials",
                s.seed
            ),
        }
        for (name, param) in &s.parameters {
            let size = mlres_policy::param_size(param);
            let what = match param {
                Param::Value(v) => format!("fixed at {}", v.to_json()),
                Param::Values(vs) => {
                    let list: Vec<String> = vs.iter().map(|v| v.to_json().to_string()).collect();
                    format!("{} value(s) [{}]", vs.len(), list.join(", "))
                }
                Param::Uniform { min, max } => format!("uniform in [{min}, {max}]"),
                Param::LogUniformValues { min, max } => format!("log-uniform in [{min}, {max}]"),
                Param::IntUniform { min, max } => format!(
                    "integers in [{min}, {max}]{}",
                    size.map(|n| format!(" ({n} values)")).unwrap_or_default()
                ),
                Param::QUniform { min, max, q } => format!(
                    "multiples of {q} in [{min}, {max}]{}",
                    size.map(|n| format!(" ({n} values)")).unwrap_or_default()
                ),
                Param::IntLogUniform { min, max } => format!(
                    "integers in [{min}, {max}], log-scaled{}",
                    size.map(|n| format!(" ({n} values)")).unwrap_or_default()
                ),
                Param::Shaped { dist, q, int } => {
                    let name = dist.wandb_name(q.is_some());
                    let range = match dist.bounds() {
                        (Some(lo), Some(hi)) => format!(" in [{lo:.6}, {hi:.6}]"),
                        (Some(lo), None) => format!(" above {lo}"),
                        _ => String::new(),
                    };
                    let step = match (q, int) {
                        (Some(q), true) => format!(", integer multiples of {q}"),
                        (Some(q), false) => format!(", multiples of {q}"),
                        (None, _) => String::new(),
                    };
                    format!(
                        "{name}{range}{step}{}",
                        size.map(|n| format!(" ({n} values)")).unwrap_or_default()
                    )
                }
            };
            println!("             {name}: {what}");
        }
    }
    warnings(&p.warnings, &mut std::io::stdout());
    println!(
        "\nNext: a human runs `mlres approve`. `mlres check --json` prints the resolved campaign for scripts."
    );
}

/// The program's warnings, if any, as a block (stdout for `check`, stderr for `approve`).
pub fn warnings(list: &[mlres_policy::ProgramWarning], out: &mut dyn std::io::Write) {
    if list.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nWarnings ({}):", list.len());
    for w in list {
        let _ = writeln!(out, "  line {}, column {}: {}", w.line, w.column, w.message);
        if let Some(h) = &w.help {
            let _ = writeln!(out, "    help: {h}");
        }
    }
}

/// A command word as a reader would type it: quoted when it has spaces or quotes.
fn shell_word(w: &str) -> String {
    if !w.is_empty()
        && !w
            .chars()
            .any(|c| c.is_whitespace() || "'\"$`\\|&;<>()*?".contains(c))
    {
        w.to_string()
    } else if !w.contains('\'') {
        format!("'{w}'")
    } else {
        format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""))
    }
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

/// The evidence of a noise-aware decision in one line (none for decisions without a noise
/// model: their reason says it all).
pub fn evidence_line(ev: Option<&Value>) -> Option<String> {
    let ev: mlres_policy::Evidence = serde_json::from_value(ev?.clone()).ok()?;
    if ev.noise_model == "none" {
        return None;
    }
    let mut s = ev.summary();
    if let Some(t) = &ev.test {
        s.push_str(&format!("; {t}"));
    }
    Some(s)
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
    if let Some(g) = b.get("gpu_hours") {
        println!(
            "gpu-hours: {:.3}/{} ({} GPU(s) per job; jobs in flight count at their time limit)",
            g["used"].as_f64().unwrap_or(0.0),
            g["max"]
                .as_f64()
                .map_or("no limit".to_string(), |m| format!("{m}")),
            g["gpus_per_job"]
        );
    }
    if let Some(best) = &r.best {
        println!(
            "best:      experiment {} {} = {:.4}{} {}",
            best.id,
            r.metric.clone().unwrap_or_default(),
            best.metric,
            mean_note(best),
            best.config
        );
    }
    if let Some(s) = &r.stop_reason {
        println!("stop:      {s}");
    }
    if let Some(k) = &r.keep_rule {
        println!("keep rule: {k}");
    }
    if !r.experiments.is_empty() {
        if (r.experiments.len() as u64) < r.page.total {
            println!(
                "\nshowing {} of {} experiments{} (older: `mlres loop status --before-iter {}`)",
                r.experiments.len(),
                r.page.total,
                r.page
                    .before_iter
                    .map(|b| format!(" before iter {b}"))
                    .unwrap_or_default(),
                r.page.next_before_iter.unwrap_or(1)
            );
        }
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
            if let Some(ev) = evidence_line(e.evidence.as_ref()) {
                println!("{:>16}evidence: {ev}", "");
            }
        }
    }
}

/// With `noise:`: that the best is the incumbent's mean, over how many runs, and the best
/// single run beside it. Empty without `noise:`.
fn mean_note(b: &mlres_engine::BestExperiment) -> String {
    let Some(n) = b.runs else {
        return String::new();
    };
    let mut s = format!(
        " (mean of {n} run{} of its configuration",
        if n == 1 { "" } else { "s" }
    );
    if let Some(one) = &b.best_single {
        s.push_str(&format!(
            "; best single run: experiment {} = {:.4}",
            one.id, one.metric
        ));
    }
    s.push(')');
    s
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
            println!("Best {metric}: {:.4}{}", b.metric, mean_note(b));
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
                best_runs,
            } => {
                self.done += 1;
                if let Some(b) = &self.bar {
                    b.set_position(self.done);
                }
                self.line(format!(
                    "  exp {exp} (iter {iter}) {decision}: metric {} ({reason}); best {}{}",
                    fmt_metric(*metric),
                    fmt_metric(*best),
                    best_runs
                        .map(|n| format!(" (mean of {n} run{})", if n == 1 { "" } else { "s" }))
                        .unwrap_or_default()
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
            LoopEvent::ReconcileFailed { namespace, error } => self.line(format!(
                "  hf-jobs namespace {namespace} could not be checked (retried at the next sweep): {error}"
            )),
            LoopEvent::Pruned { exp, reason, .. } => self.line(format!("  exp {exp} {reason}")),
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

fn format_gpu_hours(secs: u64) -> String {
    let h = secs as f64 / 3600.0;
    let t = format!("{h:.3}");
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}
