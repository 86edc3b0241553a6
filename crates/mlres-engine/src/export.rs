//! Regenerates the human-readable exports in the project's `runs/` directory from the ledger.
//! They are views: mlres never reads them back, so editing them changes nothing.

use std::io::Write;
use std::path::{Path, PathBuf};

use mlres_ledger::{Experiment, Ledger};
use serde_json::{Value, json};

use crate::EngineError;
use crate::project::Project;
use crate::time::iso8601;

#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportPaths {
    pub ledger_jsonl: PathBuf,
    pub summary_md: PathBuf,
}

/// An experiment as agents and scripts see it: `mlres exp … --json` and the MCP tools.
pub fn experiment_json(e: &Experiment) -> Value {
    json!({
        "id": e.id,
        "iter": e.iter,
        "campaign": e.campaign,
        "state": e.state,
        "status": e.status,
        "hypothesis": e.hypothesis,
        "config": e.config,
        "metric": e.metric,
        "metrics": e.metrics,
        "decision": e.decision,
        "reason": e.decision_reason,
        "best_so_far": e.best_so_far,
        "duration_ms": e.duration_ms,
        "error": e.error,
    })
}

/// What the ledger knows of an experiment beyond its row: the backend's job id of its
/// current attempt (hf-jobs), and the Hub repo its outputs were last pushed to.
#[derive(Debug, Clone, Default)]
pub struct RowFacts {
    /// The remote job id (hf-jobs), from the `remote_job` events.
    pub remote_job: Option<String>,
    /// The latest `hub_push` of its outputs.
    pub push: Option<mlres_ledger::HubPush>,
}

/// Per experiment id, what [`plugin_row`] adds from the campaign's events.
pub fn row_facts(
    ledger: &Ledger,
    campaign: &str,
    exps: &[Experiment],
) -> Result<std::collections::BTreeMap<i64, RowFacts>, EngineError> {
    let mut out: std::collections::BTreeMap<i64, RowFacts> = std::collections::BTreeMap::new();
    let remote = ledger.remote_jobs(campaign)?;
    for e in exps {
        // The current attempt's job, else the latest one recorded for the experiment.
        let job = remote
            .iter()
            .rev()
            .find(|r| r.exp_id == e.id && r.attempt == e.attempt)
            .or_else(|| remote.iter().rev().find(|r| r.exp_id == e.id));
        if let Some(j) = job {
            out.entry(e.id).or_default().remote_job = Some(j.job_id.clone());
        }
    }
    for p in ledger.hub_pushes(campaign)? {
        let id = p.exp_id;
        out.entry(id).or_default().push = Some(p);
    }
    Ok(out)
}

/// The plugin's `runs/ledger.jsonl` row, plus mlres' own fields. `job_id` is the backend's:
/// the Hugging Face job id for hf-jobs (null until one was created), `local-e<id>-a<attempt>`
/// for a local attempt; `hub_url` is the repo the experiment's outputs were pushed to.
pub fn plugin_row(e: &Experiment, facts: &RowFacts) -> Value {
    let status = match (e.state.as_str(), e.status.as_deref()) {
        (_, Some("completed")) => "completed",
        // Early stopping cancelled it on purpose: not an error.
        (_, Some("pruned")) => "cancelled",
        (_, Some(_)) => "error",
        ("released", None) => "cancelled",
        _ => "submitted",
    };
    let job_id = match (&facts.remote_job, e.backend.as_str()) {
        (Some(id), _) => Value::from(id.clone()),
        (None, "local") => Value::from(format!("local-e{}-a{}", e.id, e.attempt)),
        (None, _) => Value::Null,
    };
    let mut mlres = json!({
        "experiment_id": e.id,
        "campaign": e.campaign,
        "state": e.state,
        "outcome": e.status,
        "duration_ms": e.duration_ms,
        "reason": e.decision_reason,
        "source": e.source,
        "backend": e.backend,
    });
    if let Some(p) = &facts.push {
        mlres["hub"] = json!({"repo": p.repo, "commit": p.commit});
    }
    json!({
        "iter": e.iter,
        "ts": iso8601(e.created_ms),
        "hypothesis": e.hypothesis,
        "config": e.config,
        "job_id": job_id,
        "status": status,
        "metric": e.metric,
        "hub_url": facts.push.as_ref().map(|p| p.url.clone()),
        "decision": e.decision,
        "best_so_far": e.best_so_far,
        "timeout": mlres_policy::format_duration(e.timeout_secs),
        "mlres": mlres,
    })
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    // A temp name per process and call: concurrent commands export at the same time.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{n}.tmp~", std::process::id()));
    let tmp = path.with_file_name(name);
    let mut f = std::fs::File::create(&tmp)
        .map_err(EngineError::io(format!("cannot write {}", tmp.display())))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(EngineError::io(format!("cannot write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(EngineError::io(format!(
        "cannot replace {}",
        path.display()
    )))
}

/// Writes `runs/ledger.jsonl` and `runs/summary.md` for one campaign.
pub fn export(
    ledger: &Ledger,
    project: &Project,
    campaign: &str,
) -> Result<ExportPaths, EngineError> {
    let runs = project.runs_dir();
    std::fs::create_dir_all(&runs)
        .map_err(EngineError::io(format!("cannot create {}", runs.display())))?;
    let exps = ledger.experiments(campaign)?;
    if let Some(c) = ledger.campaign(campaign)? {
        crate::identity::write_marker(ledger, project, &c)?;
    }
    let facts = row_facts(ledger, campaign, &exps)?;
    let none = RowFacts::default();
    let mut jsonl = String::new();
    for e in &exps {
        jsonl.push_str(&plugin_row(e, facts.get(&e.id).unwrap_or(&none)).to_string());
        jsonl.push('\n');
    }
    let ledger_jsonl = runs.join("ledger.jsonl");
    write_atomic(&ledger_jsonl, jsonl.as_bytes())?;
    let summary_md = runs.join("summary.md");
    let (text, chart) = summary(ledger, project, campaign, &exps, &facts)?;
    let png = runs.join(BEST_PNG);
    match chart {
        Some(bytes) => write_atomic(&png, &bytes)?,
        None => {
            let _ = std::fs::remove_file(&png);
        }
    }
    write_atomic(&summary_md, text.as_bytes())?;
    Ok(ExportPaths {
        ledger_jsonl,
        summary_md,
    })
}

/// The chart of best so far by iteration next to `summary.md`.
pub const BEST_PNG: &str = "best-so-far.png";

fn summary(
    ledger: &Ledger,
    project: &Project,
    campaign: &str,
    exps: &[Experiment],
    facts: &std::collections::BTreeMap<i64, RowFacts>,
) -> Result<(String, Option<Vec<u8>>), EngineError> {
    let c = ledger.campaign(campaign)?;
    let approval = ledger.campaign_approval(campaign)?;
    // The envelope and objective the human approved for this campaign (the approval
    // document), not program.md, which an agent can edit.
    let doc: Value = approval
        .as_ref()
        .and_then(|a| serde_json::from_str(&a.document).ok())
        .unwrap_or(Value::Null);
    let metric = doc["objective"]["metric"]
        .as_str()
        .map(String::from)
        .or_else(|| project.program.objective.as_ref().map(|o| o.metric.clone()))
        .unwrap_or_else(|| "metric".into());
    let goal = match doc["objective"]["goal"].as_str() {
        Some("minimize") => Some(mlres_policy::Goal::Minimize),
        Some(_) => Some(mlres_policy::Goal::Maximize),
        None => project.program.objective.as_ref().map(|o| o.goal),
    };
    let views = crate::report::experiment_views(ledger, campaign, false)?;
    let gauges = crate::report::gauges(ledger, campaign, &views)?;
    let mut s = String::new();
    s.push_str("# Sweep summary\n\n");
    s.push_str(
        "_Generated by mlres from its ledger; edits here are overwritten and never read back._\n\n",
    );
    s.push_str(&format!("- Campaign: `{campaign}`\n"));
    if let Some(c) = &c {
        s.push_str(&format!("- Status: {}", c.status));
        // An agent may write the stop reason (`mlres loop stop --reason`).
        if let Some(r) = &c.stop_reason {
            s.push_str(&format!(" ({})", md_text(r)));
        }
        s.push('\n');
    }
    if let Some(a) = &approval {
        s.push_str(&format!(
            "- Approved by {} at {} (approval {}, sha256 `{}`)\n",
            md_text(&a.approver),
            iso8601(a.created_ms),
            a.id,
            &a.hash[..a.hash.len().min(12)]
        ));
    }
    let used = |name: &str| gauges.iter().find(|g| g.name == name);
    let cap = |g: &crate::report::Gauge, f: &dyn Fn(f64) -> String| match g.max {
        Some(m) => format!("{}/{}", f(g.used), f(m)),
        None => f(g.used),
    };
    let dur = |x: f64| mlres_policy::format_duration(x as u64);
    let mut budget = Vec::new();
    if let Some(g) = used("jobs") {
        budget.push(format!("{} jobs", cap(g, &|x| format!("{x}"))));
    }
    if let Some(g) = used("walltime") {
        budget.push(format!("{} walltime", cap(g, &dur)));
    }
    if let Some(g) = used("cost") {
        budget.push(format!("${} cost", cap(g, &|x| format!("{x:.2}"))));
    }
    if let Some(g) = used("gpu_hours") {
        budget.push(format!("{} GPU-hours", cap(g, &|x| format!("{x:.2}"))));
    }
    s.push_str(&format!("- Budget: {}\n", budget.join(", ")));
    // With `noise:` (as approved) the best is the incumbent's mean over its runs.
    let noise = match doc["objective"].get("noise") {
        Some(n) => !n.is_null(),
        None => {
            doc.is_null()
                && project
                    .program
                    .objective
                    .as_ref()
                    .is_some_and(|o| o.noise.is_some())
        }
    };
    let best = match goal {
        Some(goal) => crate::keep::reported_best(
            ledger,
            campaign,
            noise,
            goal,
            crate::run::best_experiment(exps, goal),
        )?,
        None => None,
    };
    if let Some(b) = best {
        let mean = match (b.runs, &b.best_single) {
            (Some(n), Some(one)) => format!(
                " (the incumbent's mean over {n} run{}; best single run: experiment {} = {:.4})",
                if n == 1 { "" } else { "s" },
                one.id,
                one.metric
            ),
            (Some(n), None) => format!(
                " (the incumbent's mean over {n} run{})",
                if n == 1 { "" } else { "s" }
            ),
            _ => String::new(),
        };
        s.push_str(&format!(
            "- Best: experiment {} (iter {}), {} = {:.4}{mean}, config {}\n",
            b.id,
            b.iter,
            md_text(&metric),
            b.metric,
            md_text(&b.config.to_string())
        ));
        if let Some(p) = facts.get(&b.id).and_then(|f| f.push.as_ref()) {
            s.push_str(&format!(
                "- Best model on the Hub: [{}]({}) (commit `{}`)\n",
                md_text(&p.repo),
                md_url(&p.url),
                md_text(&p.commit.chars().take(12).collect::<String>())
            ));
        }
    }
    if let Some(o) = &project.program.objective {
        s.push_str(&format!("- Keep rule: {}\n", keep_rule(o)));
        if let Some(es) = &o.early_stop {
            s.push_str(&format!(
                "- Early stopping: successive halving on `{}` lines, rungs at {:?}, reduction factor {}\n",
                md_text(&es.step_key),
                es.rungs(),
                es.reduction_factor
            ));
        }
    }
    let evidence = ledger.evidence_of(campaign)?;
    let goal_name = match goal {
        Some(mlres_policy::Goal::Minimize) => Some("minimize"),
        Some(mlres_policy::Goal::Maximize) => Some("maximize"),
        None => None,
    };
    let best = crate::report::best_points(&views, goal_name, noise);
    let chart =
        crate::png::best_so_far_chart(&best.iter().map(|p| (p.iter, p.best)).collect::<Vec<_>>());
    if let (Some(_), Some(first), Some(last)) = (&chart, best.first(), best.last()) {
        s.push_str(&format!(
            "- Best so far by iteration, from {:.4} (iter {}) to {:.4} (iter {}):\n\n  ![best so far by iteration]({BEST_PNG})\n\n",
            first.best, first.iter, last.best, last.iter
        ));
    }
    s.push_str(
        "- Plots: `mlres report` writes `runs/report.html` (learning curves, best so far, \
         hyperparameters against the metric, the audit trail)\n",
    );
    s.push_str(&format!(
        "\n| iter | exp | status | {} | decision | best so far | reason | duration | cost | job id | hub | config | hypothesis |\n|---:|---:|---|---:|---|---:|---|---:|---:|---|---|---|---|\n",
        md_text(&metric)
    ));
    // Rows in iteration order; "best so far" is the best among the rows up to this one, so a
    // row never shows a value from an iteration after it (evaluation order can differ). With
    // `noise:` it is what the row's evaluation recorded: the incumbent's mean over its runs.
    let mut running: Option<f64> = None;
    for e in &views {
        let counts =
            e.decision.as_deref() != Some("anomalous") && e.status.as_deref() == Some("completed");
        if noise {
            running = e.best_so_far.or(running);
        } else if let Some(goal) = goal
            && let Some(m) = e.metric.filter(|_| counts)
        {
            running = Some(match (running, goal) {
                (None, _) => m,
                (Some(b), mlres_policy::Goal::Maximize) => b.max(m),
                (Some(b), mlres_policy::Goal::Minimize) => b.min(m),
            });
        }
        let fmt = |v: Option<f64>| v.map(|m| format!("{m:.4}")).unwrap_or_else(|| "–".into());
        let why = match evidence
            .get(&e.id)
            .and_then(|v| serde_json::from_value::<mlres_policy::Evidence>(v.clone()).ok())
        {
            Some(ev) if ev.noise_model != "none" => ev.summary(),
            _ => e.reason.clone().unwrap_or_else(|| "–".into()),
        };
        let dash = |v: &Option<String>| v.as_deref().map(md_text).unwrap_or_else(|| "–".into());
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | ${:.2} | {} | {} | {} | {} |\n",
            e.iter,
            e.id,
            md_text(&e.status.clone().unwrap_or_else(|| e.state.clone())),
            fmt(e.metric),
            md_text(&e.decision.clone().unwrap_or_else(|| "–".into())),
            fmt(running),
            md_text(&why),
            e.duration_ms
                .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
                .unwrap_or_else(|| "–".into()),
            e.cost_usd,
            dash(&e.job_id),
            e.hub_url
                .as_deref()
                .map(|u| format!("[hub]({})", md_url(u)))
                .unwrap_or_else(|| "–".into()),
            md_text(&e.config.to_string()),
            md_text(&e.hypothesis),
        ));
    }
    Ok((s, chart))
}

/// The keep/discard rule of an objective, in words.
pub fn keep_rule(o: &mlres_policy::Objective) -> String {
    let range = o
        .range
        .map(|r| format!("; values outside {r} are refused"))
        .unwrap_or_default();
    match &o.noise {
        None => format!(
            "keep a result that beats the best so far (no noise model given: a seed change can \
             look like an improvement){range}"
        ),
        Some(n) => {
            let how = match (n.sd, n.repeats) {
                (Some(sd), Some(k)) => format!(
                    "stated noise sd {sd}, one-sided z test; the incumbent is run {k} times"
                ),
                (Some(sd), None) => format!("stated noise sd {sd}, one-sided z test"),
                (None, Some(k)) => format!(
                    "noise measured from repeated configurations (the incumbent is run {k} \
                     times), one-sided pooled t test"
                ),
                (None, None) => String::new(),
            };
            format!(
                "keep only an improvement over the incumbent's mean that clears the noise at \
                 {:.0}% confidence ({how}){range}",
                n.confidence * 100.0
            )
        }
    }
}

/// A URL as a markdown link target: characters that could end the target or the link are
/// percent-encoded (mlres builds these URLs from the endpoint and a validated repo id).
fn md_url(u: &str) -> String {
    let mut out = String::with_capacity(u.len());
    for c in u.chars() {
        match c {
            '(' | ')' | '<' | '>' | '[' | ']' | ' ' | '"' | '`' | '\\' => {
                for b in c.to_string().bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Text from agents or jobs as inline markdown that stays inside its table cell or list line:
/// line breaks and other control characters become spaces, `&`, `<` and `>` become entities
/// (no raw HTML), and the characters that could end a cell or start inline markup
/// (`\\`, `|`, `` ` ``, `*`, `_`, `[`, `]`, `~`) are backslash-escaped.
fn md_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '|' | '`' | '*' | '_' | '[' | ']' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}
