//! The data behind `mlres report` and the dashboard (`mlres serve`), read only from the
//! ledger and the attempt logs the supervisor captured in the state directory: never from
//! `program.md` or `runs/`, which an agent can write. The approved envelope and objective come
//! from the approval document the campaign was opened under.
//!
//! Everything here is data; the HTML view lives in `mlres-server`. Agent-written strings
//! (hypotheses, reasons, stop reasons, event payloads) are carried as they are and must be
//! escaped by whatever renders them.

use std::collections::BTreeMap;
use std::path::Path;

use mlres_ledger::{Campaign, Experiment, Ledger};
use serde::Serialize;
use serde_json::{Value, json};

use crate::EngineError;
use crate::time::iso8601;

/// Version of the report's data shape.
pub const REPORT_FORMAT: &str = "mlres-report/1";
/// Points kept per learning curve (longer ones are thinned evenly, keeping the last point).
pub const MAX_CURVE_POINTS: usize = 1_000;
/// Characters of an event payload shown in the audit trail.
pub const EVENT_SUMMARY_CHARS: usize = 300;
/// Metric keys that are the x axis of a learning curve, not a curve of their own.
pub const STEP_KEYS: [&str; 2] = ["step", "global_step"];

/// Everything a report shows about one campaign.
#[derive(Debug, Clone, Serialize)]
pub struct ReportData {
    pub format: &'static str,
    pub campaign: CampaignView,
    /// The approval the campaign was opened under (its author, time and document).
    pub approval: Option<ApprovalView>,
    /// From the approval document: metric, goal, target.
    pub objective: Objective,
    pub budget: Vec<Gauge>,
    /// Best-so-far after each experiment whose metric counts, in iteration order.
    pub best_so_far: Vec<BestPoint>,
    /// Hyperparameter names seen in the experiments' configs, sorted.
    pub params: Vec<String>,
    pub experiments: Vec<ExperimentView>,
    pub audit: Audit,
    /// The dataset manifest pinned with the approval (null: none declared).
    pub datasets: Value,
    /// The code manifest pinned with the approval (null: none declared).
    pub code: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct CampaignView {
    pub id: String,
    pub status: String,
    pub stop_requested: bool,
    pub stop_reason: Option<String>,
    pub generation: u32,
    pub created: String,
    pub program_hash: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApprovalView {
    pub id: i64,
    pub approver: String,
    pub approved_at: String,
    pub hash: String,
    /// The approved envelope as the human saw it (the approval document's `envelope`).
    pub envelope: Value,
    pub scope: Value,
    pub job: Value,
    pub search_space: Value,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Objective {
    pub metric: Option<String>,
    pub goal: Option<String>,
    pub target: Option<f64>,
    /// The objective declares `noise:`: the best so far is the incumbent's mean over its
    /// runs (as each evaluation recorded it), not the best single value.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub noise: bool,
}

/// One budget: how much is used of how much (`max` null: the envelope sets no cap).
#[derive(Debug, Clone, Serialize)]
pub struct Gauge {
    pub name: &'static str,
    pub unit: &'static str,
    pub used: f64,
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BestPoint {
    pub iter: u32,
    pub exp: i64,
    pub best: f64,
}

/// One experiment as the report's table and charts show it.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentView {
    pub id: i64,
    pub iter: u32,
    pub hypothesis: String,
    pub config: Value,
    pub state: String,
    pub status: Option<String>,
    pub metric: Option<f64>,
    pub decision: Option<String>,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub duration_ms: Option<u64>,
    pub cost_usd: f64,
    pub gpu_hours: f64,
    pub backend: String,
    pub flavor: String,
    /// The backend's job id (hf-jobs) or `local-e<id>-a<attempt>`.
    pub job_id: Option<String>,
    pub hub_url: Option<String>,
    pub best_so_far: Option<f64>,
    /// Per metric key, the `[step, value]` points parsed from the job's captured output.
    /// Empty once retention removed the attempt directory.
    pub curves: BTreeMap<String, Vec<[f64; 2]>>,
    /// Whether the attempt's logs were still there to read.
    pub logs_kept: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    pub verify_ok: bool,
    pub verified_events: u64,
    pub head_seq: u64,
    pub problems: Vec<String>,
    /// The approval's events and the campaign's, in chain order.
    pub events: Vec<EventView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    pub seq: u64,
    pub time: String,
    pub kind: String,
    /// The payload as compact JSON, cut at [`EVENT_SUMMARY_CHARS`].
    pub summary: String,
}

/// The approval document's sections (it is canonical JSON; see `mlres_policy::approval_document`).
fn approval_doc(a: &mlres_ledger::Approval) -> Value {
    serde_json::from_str(&a.document).unwrap_or(Value::Null)
}

/// GPUs one job of this experiment holds: the template's `gpus` for local jobs, the count a
/// Hugging Face flavor name carries (`a100-largex2`: 2; `cpu-*`: 0; otherwise 1).
fn gpus_of(e: &Experiment, job: &Value) -> f64 {
    if e.backend == "local" {
        return job["gpus"].as_f64().unwrap_or(0.0);
    }
    let f = e.flavor.as_str();
    if f.is_empty() || f.starts_with("cpu") {
        return 0.0;
    }
    f.rsplit_once('x')
        .and_then(|(_, n)| n.parse::<f64>().ok())
        .unwrap_or(1.0)
}

/// The campaigns of a project, oldest first.
pub fn campaigns(ledger: &Ledger, project_root: &str) -> Result<Vec<Campaign>, EngineError> {
    Ok(ledger.campaigns(project_root)?)
}

/// Reads a job's learning curves from its attempt directory: every captured line (stderr, then
/// stdout) that carries metrics; the x of a point is the line's `step` (or `global_step`), else
/// the number of metric lines before it. Missing logs give no curves.
pub fn curves(attempt_dir: &Path) -> BTreeMap<String, Vec<[f64; 2]>> {
    let mut out: BTreeMap<String, Vec<[f64; 2]>> = BTreeMap::new();
    let mut n = 0f64;
    for stderr in [true, false] {
        let Ok(bytes) = mlres_backends::read_log(attempt_dir, stderr) else {
            continue;
        };
        for line in bytes.split(|b| *b == b'\n' || *b == b'\r') {
            if line.len() > 65_536 {
                continue;
            }
            let pairs = mlres_policy::parse_metric_line(&String::from_utf8_lossy(line));
            if pairs.is_empty() {
                continue;
            }
            let step = pairs
                .iter()
                .find(|(k, _)| STEP_KEYS.contains(&k.as_str()))
                .map(|(_, v)| *v)
                .filter(|v| v.is_finite());
            let x = step.unwrap_or(n);
            n += 1.0;
            for (k, v) in pairs {
                if STEP_KEYS.contains(&k.as_str()) || !v.is_finite() {
                    continue;
                }
                if out.len() >= 64 && !out.contains_key(&k) {
                    continue;
                }
                out.entry(k).or_default().push([x, v]);
            }
        }
    }
    for pts in out.values_mut() {
        thin(pts, MAX_CURVE_POINTS);
    }
    out
}

fn thin(pts: &mut Vec<[f64; 2]>, max: usize) {
    if pts.len() <= max || max < 2 {
        return;
    }
    let n = pts.len();
    let kept: Vec<[f64; 2]> = (0..max).map(|i| pts[i * (n - 1) / (max - 1)]).collect();
    *pts = kept;
}

/// The experiments of a campaign as rows, with curves read from their logs when `with_curves`.
pub fn experiment_views(
    ledger: &Ledger,
    campaign: &str,
    with_curves: bool,
) -> Result<Vec<ExperimentView>, EngineError> {
    let job = ledger
        .campaign_approval(campaign)?
        .map(|a| approval_doc(&a)["job"].clone())
        .unwrap_or(Value::Null);
    let mut exps = ledger.experiments(campaign)?;
    exps.sort_by_key(|e| (e.iter, e.id));
    let facts = crate::export::row_facts(ledger, campaign, &exps)?;
    let none = crate::export::RowFacts::default();
    Ok(exps
        .iter()
        .map(|e| {
            let f = facts.get(&e.id).unwrap_or(&none);
            let row = crate::export::plugin_row(e, f);
            let dir = e.handle.as_deref().map(Path::new);
            let logs_kept = dir.is_some_and(Path::exists);
            let curves = match dir {
                Some(d) if with_curves && logs_kept => curves(d),
                _ => BTreeMap::new(),
            };
            let secs = e.duration_ms.unwrap_or(0) as f64 / 1000.0;
            ExperimentView {
                id: e.id,
                iter: e.iter,
                hypothesis: e.hypothesis.clone(),
                config: e.config.clone(),
                state: e.state.clone(),
                status: e.status.clone(),
                metric: e.metric.filter(|m| m.is_finite()),
                decision: e.decision.clone(),
                reason: e.decision_reason.clone(),
                error: e.error.clone(),
                duration_ms: e.duration_ms,
                cost_usd: e.spent_cost_micro.unwrap_or(e.reserved_cost_micro) as f64 / 1e6,
                gpu_hours: gpus_of(e, &job) * secs / 3600.0,
                backend: e.backend.clone(),
                flavor: e.flavor.clone(),
                job_id: row["job_id"].as_str().map(String::from),
                hub_url: row["hub_url"].as_str().map(String::from),
                best_so_far: e.best_so_far.filter(|b| b.is_finite()),
                curves,
                logs_kept,
            }
        })
        .collect())
}

/// The budget gauges of a campaign against its approved envelope.
pub fn gauges(
    ledger: &Ledger,
    campaign: &str,
    exps: &[ExperimentView],
) -> Result<Vec<Gauge>, EngineError> {
    let u = ledger.usage(campaign)?;
    let env = ledger
        .campaign_approval(campaign)?
        .map(|a| approval_doc(&a)["envelope"].clone())
        .unwrap_or(Value::Null);
    let num = |v: &Value| v.as_f64();
    Ok(vec![
        Gauge {
            name: "jobs",
            unit: "jobs",
            used: f64::from(u.jobs),
            max: num(&env["max_jobs"]),
        },
        Gauge {
            name: "walltime",
            unit: "s",
            used: u.walltime_secs as f64,
            max: env["max_walltime"]
                .as_str()
                .and_then(|d| mlres_policy::parse_duration(d).ok())
                .map(|s| s as f64),
        },
        Gauge {
            name: "cost",
            unit: "USD",
            used: u.cost_micro as f64 / 1e6,
            max: env["max_cost_usd"].as_str().and_then(|s| s.parse().ok()),
        },
        Gauge {
            name: "gpu_hours",
            unit: "GPU-h",
            used: exps.iter().map(|e| e.gpu_hours).sum(),
            max: None,
        },
    ])
}

/// Best so far after each experiment, in iteration order. With `noise` it is what each
/// evaluation recorded (the incumbent's mean over its runs, which can fall as repeats come
/// in); without it, the best single value among the rows up to there.
pub(crate) fn best_points(
    exps: &[ExperimentView],
    goal: Option<&str>,
    noise: bool,
) -> Vec<BestPoint> {
    let mut out = Vec::new();
    let mut best: Option<f64> = None;
    for e in exps {
        if noise {
            best = e.best_so_far.or(best);
            if let Some(b) = best {
                out.push(BestPoint {
                    iter: e.iter,
                    exp: e.id,
                    best: b,
                });
            }
            continue;
        }
        let counts =
            e.decision.as_deref() != Some("anomalous") && e.status.as_deref() == Some("completed");
        if let (Some(m), true) = (e.metric, counts) {
            best = Some(match (best, goal) {
                (None, _) => m,
                (Some(b), Some("minimize")) => b.min(m),
                (Some(b), _) => b.max(m),
            });
        }
        if let Some(b) = best {
            out.push(BestPoint {
                iter: e.iter,
                exp: e.id,
                best: b,
            });
        }
    }
    out
}

fn summary(payload: &Value) -> String {
    let s = payload.to_string();
    if s.chars().count() <= EVENT_SUMMARY_CHARS {
        return s;
    }
    let mut cut: String = s.chars().take(EVENT_SUMMARY_CHARS).collect();
    cut.push('…');
    cut
}

/// The approval's events (recorded, manifests, context) and the campaign's, with `verify`.
pub fn audit(ledger: &Ledger, campaign: &str, approval: Option<i64>) -> Result<Audit, EngineError> {
    let report = ledger.verify()?;
    let mut events = Vec::new();
    if let Some(id) = approval {
        let mut after = 0;
        loop {
            let page = ledger.events(None, after, 10_000)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            events.extend(
                page.into_iter()
                    .filter(|e| e.campaign.is_none() && e.payload["approval_id"] == json!(id)),
            );
        }
    }
    events.extend(ledger.events(Some(campaign), 0, usize::MAX)?);
    events.sort_by_key(|e| e.seq);
    Ok(Audit {
        verify_ok: report.is_ok(),
        verified_events: report.events,
        head_seq: report.head_seq,
        problems: report
            .problems
            .iter()
            .map(|p| match p.seq {
                Some(s) => format!("event {s}: {:?}: {}", p.kind, p.detail),
                None => format!("{:?}: {}", p.kind, p.detail),
            })
            .collect(),
        events: events
            .iter()
            .map(|e| EventView {
                seq: e.seq,
                time: iso8601(e.ts_ms),
                kind: e.kind.clone(),
                summary: summary(&e.payload),
            })
            .collect(),
    })
}

/// Everything [`ReportData`] holds for `campaign`.
pub fn collect(ledger: &Ledger, campaign: &str) -> Result<ReportData, EngineError> {
    let c = ledger
        .campaign(campaign)?
        .ok_or_else(|| EngineError::Refused {
            code: "unknown_campaign".into(),
            message: format!("no campaign {campaign} in this ledger"),
        })?;
    let approval = ledger.campaign_approval(campaign)?;
    let doc = approval.as_ref().map(approval_doc).unwrap_or(Value::Null);
    let objective = Objective {
        metric: doc["objective"]["metric"].as_str().map(String::from),
        goal: doc["objective"]["goal"].as_str().map(String::from),
        target: doc["objective"]["target"].as_f64(),
        noise: doc["objective"].get("noise").is_some_and(|n| !n.is_null()),
    };
    let experiments = experiment_views(ledger, campaign, true)?;
    let budget = gauges(ledger, campaign, &experiments)?;
    let mut params: Vec<String> = experiments
        .iter()
        .filter_map(|e| e.config.as_object())
        .flat_map(|o| o.keys().cloned())
        .collect();
    params.sort();
    params.dedup();
    let (datasets, code) = match &approval {
        Some(a) => (
            ledger.pinned_datasets(a)?.unwrap_or(Value::Null),
            ledger.pinned_code(a)?.unwrap_or(Value::Null),
        ),
        None => (Value::Null, Value::Null),
    };
    Ok(ReportData {
        format: REPORT_FORMAT,
        best_so_far: best_points(&experiments, objective.goal.as_deref(), objective.noise),
        audit: audit(ledger, campaign, approval.as_ref().map(|a| a.id))?,
        campaign: CampaignView {
            id: c.id.clone(),
            status: c.status.clone(),
            stop_requested: c.stop_requested,
            stop_reason: c.stop_reason.clone(),
            generation: c.generation,
            created: iso8601(c.created_ms),
            program_hash: c.program_hash.clone(),
        },
        approval: approval.map(|a| ApprovalView {
            id: a.id,
            approver: a.approver.clone(),
            approved_at: iso8601(a.created_ms),
            hash: a.hash.clone(),
            envelope: doc["envelope"].clone(),
            scope: doc["scope"].clone(),
            job: doc["job"].clone(),
            search_space: doc["search_space"].clone(),
        }),
        objective,
        budget,
        params,
        experiments,
        datasets,
        code,
    })
}

/// Read-only access to one project's campaigns for the report and the dashboard: the ledger
/// and the attempt logs, never `program.md` (it is not even parsed) or `runs/`.
pub struct Reader {
    pub ledger: Ledger,
    root: String,
}

impl Reader {
    /// Opens the ledger in `state_dir` for the project at `project_root`.
    pub fn open(state_dir: &Path, project_root: &Path) -> Result<Reader, EngineError> {
        let root = project_root
            .canonicalize()
            .map_err(EngineError::io(format!(
                "cannot open project {}",
                project_root.display()
            )))?;
        Ok(Reader {
            ledger: Ledger::open(state_dir)?,
            root: root.to_string_lossy().into_owned(),
        })
    }

    /// The project's campaigns, oldest first.
    pub fn campaigns(&self) -> Result<Vec<Campaign>, EngineError> {
        campaigns(&self.ledger, &self.root)
    }

    /// The project's latest campaign.
    pub fn current(&self) -> Result<Option<Campaign>, EngineError> {
        Ok(self.ledger.current_campaign(&self.root)?)
    }

    /// One of this project's campaigns (another project's is unknown here).
    pub fn campaign(&self, id: &str) -> Result<Campaign, EngineError> {
        match self.ledger.campaign(id)? {
            Some(c) if c.project_root == self.root => Ok(c),
            _ => Err(EngineError::Refused {
                code: "unknown_campaign".into(),
                message: format!("no campaign {id} in this project"),
            }),
        }
    }

    /// The report's data for one of this project's campaigns.
    pub fn collect(&self, id: &str) -> Result<ReportData, EngineError> {
        self.campaign(id)?;
        collect(&self.ledger, id)
    }

    /// One of this project's experiments.
    pub fn experiment(&self, exp_id: i64) -> Result<Experiment, EngineError> {
        let e = self
            .ledger
            .experiment(exp_id)?
            .ok_or(EngineError::UnknownExperiment(exp_id))?;
        self.campaign(&e.campaign)
            .map_err(|_| EngineError::UnknownExperiment(exp_id))?;
        Ok(e)
    }
}

/// Bytes a job has written to its captured logs so far (0: none, or removed).
pub fn log_len(attempt_dir: &Path) -> u64 {
    let p = mlres_backends::log_paths(attempt_dir);
    [p.stdout, p.stderr, p.stdout_tail, p.stderr_tail]
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

/// What changed in a campaign since the last [`Watch::poll`].
#[derive(Debug, Clone, Serialize)]
pub struct Patch {
    pub campaign: CampaignView,
    pub budget: Vec<Gauge>,
    pub best_so_far: Vec<BestPoint>,
    pub params: Vec<String>,
    /// Experiments that are new or changed. Their `curves` are current only for the ids in
    /// `curves_updated`; for the others, keep the curves already shown.
    pub experiments: Vec<ExperimentView>,
    pub curves_updated: Vec<i64>,
    /// New events of the campaign, in chain order.
    pub events: Vec<EventView>,
}

/// Follows a campaign for the live dashboard: reads only new events, re-reads the rows when
/// there are some, and re-reads the curves of an experiment only when its logs grew.
#[derive(Debug, Default)]
pub struct Watch {
    campaign: String,
    last_seq: u64,
    rows: BTreeMap<i64, ExperimentView>,
    log_lens: BTreeMap<i64, u64>,
    goal: Option<String>,
    noise: bool,
}

fn row_key(e: &ExperimentView) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("curves");
    }
    v
}

impl Watch {
    /// Starts after what `data` (a [`collect`] of the same campaign) already shows. The first
    /// poll re-reads the curves of every experiment still in flight.
    pub fn new(data: &ReportData) -> Watch {
        let mut w = Watch {
            campaign: data.campaign.id.clone(),
            last_seq: data.audit.events.iter().map(|e| e.seq).max().unwrap_or(0),
            goal: data.objective.goal.clone(),
            noise: data.objective.noise,
            ..Watch::default()
        };
        for e in &data.experiments {
            let mut row = e.clone();
            row.curves.clear();
            w.rows.insert(e.id, row);
        }
        w
    }

    /// What changed since the last call, or `None`.
    pub fn poll(&mut self, ledger: &Ledger) -> Result<Option<Patch>, EngineError> {
        let events = ledger.events(Some(&self.campaign), self.last_seq, 100_000)?;
        let mut changed: Vec<i64> = Vec::new();
        if let Some(last) = events.last() {
            self.last_seq = last.seq;
            for e in experiment_views(ledger, &self.campaign, false)? {
                let new = self
                    .rows
                    .get(&e.id)
                    .is_none_or(|old| row_key(old) != row_key(&e));
                if new {
                    changed.push(e.id);
                }
                self.rows.insert(e.id, e);
            }
        }
        // Logs grow while a job runs, without any event: look at the unsettled ones.
        let mut curves_updated = Vec::new();
        for e in self.rows.values() {
            let live = matches!(e.state.as_str(), "reserved" | "submitted");
            if !live && !changed.contains(&e.id) {
                continue;
            }
            let Some(h) = ledger.experiment(e.id)?.and_then(|x| x.handle) else {
                continue;
            };
            let len = log_len(Path::new(&h));
            if self.log_lens.get(&e.id) != Some(&len) {
                self.log_lens.insert(e.id, len);
                curves_updated.push(e.id);
            }
        }
        if events.is_empty() && curves_updated.is_empty() {
            return Ok(None);
        }
        let c = ledger
            .campaign(&self.campaign)?
            .ok_or_else(|| EngineError::Refused {
                code: "unknown_campaign".into(),
                message: format!("campaign {} is gone", self.campaign),
            })?;
        let views: Vec<ExperimentView> = self.rows.values().cloned().collect();
        let mut ids: Vec<i64> = changed.clone();
        ids.extend(curves_updated.iter().copied());
        ids.sort_unstable();
        ids.dedup();
        let mut experiments = Vec::new();
        for id in ids {
            let mut v = self.rows[&id].clone();
            if curves_updated.contains(&id)
                && let Some(h) = ledger.experiment(id)?.and_then(|x| x.handle)
            {
                v.curves = curves(Path::new(&h));
            }
            experiments.push(v);
        }
        let mut params: Vec<String> = views
            .iter()
            .filter_map(|e| e.config.as_object())
            .flat_map(|o| o.keys().cloned())
            .collect();
        params.sort();
        params.dedup();
        Ok(Some(Patch {
            campaign: CampaignView {
                id: c.id.clone(),
                status: c.status.clone(),
                stop_requested: c.stop_requested,
                stop_reason: c.stop_reason.clone(),
                generation: c.generation,
                created: iso8601(c.created_ms),
                program_hash: c.program_hash.clone(),
            },
            budget: gauges(ledger, &self.campaign, &views)?,
            best_so_far: best_points(&views, self.goal.as_deref(), self.noise),
            params,
            experiments,
            curves_updated,
            events: events
                .iter()
                .map(|e| EventView {
                    seq: e.seq,
                    time: iso8601(e.ts_ms),
                    kind: e.kind.clone(),
                    summary: summary(&e.payload),
                })
                .collect(),
        }))
    }
}

impl Reader {
    /// Job output as a person may see it: the values of the secrets the campaign's approved
    /// job grants (`secrets:` of the approval document, never `program.md`), as the attempt's
    /// spec and `parent_env` hold them, become `[REDACTED:NAME]`, and anything else shaped
    /// like a credential is redacted by the data audit's scanner.
    pub fn redact_job_text(
        &self,
        exp: &Experiment,
        parent_env: &BTreeMap<String, String>,
        text: &str,
    ) -> Result<String, EngineError> {
        let names: Vec<String> = self
            .ledger
            .campaign_approval(&exp.campaign)?
            .map(|a| approval_doc(&a)["job"]["secrets"].clone())
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let spec_env = exp
            .handle
            .as_deref()
            .and_then(|h| mlres_backends::read_spec(Path::new(h)).ok())
            .map(|s| s.env)
            .unwrap_or_default();
        let mut values: Vec<(String, String)> = Vec::new();
        for n in &names {
            for v in [spec_env.get(n), parent_env.get(n)].into_iter().flatten() {
                if v.len() >= 6 && !values.iter().any(|(_, x)| x == v) {
                    values.push((n.clone(), v.clone()));
                }
            }
        }
        values.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        let mut out = text.to_string();
        for (n, v) in values {
            out = out.replace(v.as_str(), &format!("[REDACTED:{n}]"));
        }
        Ok(mlres_data::audit::secrets::Scanner::new().redact_all(&out))
    }
}
