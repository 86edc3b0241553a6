//! Submitting, reconciling and the autonomous loop.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mlres_backends::{AttemptState, LocalJobSpec, NetworkPolicy, Outcome};
use mlres_ledger::{
    Campaign, EvalRecord, Experiment, FinishRecord, Ledger, Opened, ReserveRequest,
};
use mlres_policy::{
    Backend, Decision, Goal, JobTemplate, LoopFacts, Objective, SearchSpace, SpendRequest,
    StopReason,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::evaluate::{evaluate_logs, evaluate_logs_with, scan_logs};
use crate::project::{Project, require_approval};
use crate::time::now_ms;
use crate::{EngineError, export};

/// An attempt that was marked submitted but never claimed by a supervisor is voided after this.
const UNCLAIMED_GRACE_MS: u64 = 15_000;

/// What the binary hands the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The mlres state directory (ledger, key, job attempt directories).
    pub state_dir: PathBuf,
    /// The `mlres` executable: used as the job supervisor and for the `{mlres}` placeholder.
    pub exe: PathBuf,
    /// Snapshot of the parent environment; only names listed in the job's `pass_env` or
    /// `secrets` ever reach a job.
    pub parent_env: BTreeMap<String, String>,
    /// The hf-jobs backend's endpoint and tokens (`None`: hf-jobs is unavailable).
    pub hf: Option<crate::hfjobs::HfSettings>,
    /// Where local supervisors look for bubblewrap (`None`: the standard places). Passed to
    /// each supervisor on its command line (`__supervise --bwrap`), since its environment
    /// is cleared.
    pub bwrap: Option<PathBuf>,
    /// Retention: how many settled, not-kept experiments per campaign keep their attempt
    /// directories (at least [`crate::MIN_KEEP_ATTEMPTS`]; kept and in-flight ones always do).
    pub keep_attempts: usize,
    /// The machine's GPUs local jobs may be given (`MLRES_LOCAL_GPUS`, read by the binary),
    /// as `CUDA_VISIBLE_DEVICES` names them. Empty: local jobs get no GPU, and a template
    /// with `gpus` is refused at submit.
    pub local_gpus: Vec<String>,
    /// The slurm backend's commands and intervals (`None`: slurm is unavailable).
    pub slurm: Option<crate::slurm::SlurmSettings>,
}

/// Everything needed to act on one project.
pub struct Engine {
    pub cfg: EngineConfig,
    pub ledger: Ledger,
    pub project: Project,
    pub(crate) launched_here: HashSet<(i64, u32)>,
    log_offsets: BTreeMap<i64, u64>,
    pub(crate) hf_state: crate::hfjobs::HfState,
    pub(crate) slurm_state: crate::slurm::SlurmState,
    /// Per campaign: evaluation streaks, read incrementally from the chain.
    streaks: BTreeMap<String, Streaks>,
    /// Per network setting: whether bubblewrap works (probed once per process).
    sandbox_choice: BTreeMap<bool, Result<(), String>>,
    /// Early stopping: per (experiment, attempt), the highest rung recorded.
    pub(crate) rungs_seen: BTreeMap<(i64, u32), Option<usize>>,
}

/// Evaluation streaks of a campaign up to chain position `after_seq`.
#[derive(Clone, Debug, Default)]
struct Streaks {
    after_seq: u64,
    streaks: mlres_policy::Streaks,
}

/// An experiment submitted by an agent (or the loop's proposer).
#[derive(Debug, Clone)]
pub struct SubmitRequest {
    pub config: Value,
    pub hypothesis: String,
    pub source: &'static str,
    pub proposal_index: Option<u64>,
}

/// What a single submission may change in the approved template; every override is still
/// checked against the envelope (and, for hf-jobs, the live catalog).
#[derive(Debug, Clone, Default)]
pub struct SubmitOverrides {
    /// Another flavor.
    pub flavor: Option<String>,
    /// Another timeout, seconds.
    pub timeout_secs: Option<u64>,
    /// The namespace the caller expects (must be the envelope's).
    pub namespace: Option<String>,
}

/// Whether a run continued an unfinished campaign or opened a new one.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CampaignStart {
    Fresh,
    Resumed { done: u32, in_flight: u32 },
    AfterFinished { previous: String, reason: String },
}

#[derive(Debug, Clone)]
pub struct LoopOptions {
    /// Start a new campaign generation (needs an approval newer than the current campaign).
    pub fresh: bool,
    /// Poll interval cap while waiting for jobs.
    pub max_poll: Duration,
    /// Set (e.g. by a signal handler) to make the loop return [`EngineError::Interrupted`]
    /// at its next step. Jobs in flight are left running; the campaign stays active and a
    /// later loop resumes it.
    pub interrupt: Option<&'static AtomicBool>,
}

impl Default for LoopOptions {
    fn default() -> Self {
        LoopOptions {
            fresh: false,
            max_poll: Duration::from_millis(200),
            interrupt: None,
        }
    }
}

/// What the loop reports as it goes; front ends render these.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LoopEvent {
    Started {
        campaign: String,
        start: CampaignStart,
        max_jobs: u32,
    },
    Voided {
        exp: i64,
        attempt: u32,
    },
    Submitted {
        exp: i64,
        iter: u32,
        hypothesis: String,
        config: Value,
    },
    Progress {
        exp: i64,
        metrics: BTreeMap<String, f64>,
    },
    Finished {
        exp: i64,
        status: String,
    },
    Evaluated {
        exp: i64,
        iter: u32,
        metric: Option<f64>,
        decision: String,
        reason: String,
        best: Option<f64>,
        /// With `noise:`: `best` is the incumbent's mean over this many runs.
        #[serde(skip_serializing_if = "Option::is_none")]
        best_runs: Option<u32>,
    },
    Refused {
        code: String,
        message: String,
    },
    Stopping {
        reason: String,
    },
    /// A job in the hf-jobs namespace that must not run was cancelled (or could not be).
    RemoteJob {
        job_id: String,
        action: String,
        reason: String,
        labels: BTreeMap<String, String>,
    },
    /// The hf-jobs namespace could not be listed (or its listing did not decode), so jobs
    /// that must not run could not be looked for. Retried at the next sweep.
    ReconcileFailed {
        namespace: String,
        error: String,
    },
    /// Early stopping pruned a running job (it is cancelled and recorded as `pruned`).
    Pruned {
        exp: i64,
        step: f64,
        reason: String,
    },
}

/// The result of `mlres loop stop`.
#[derive(Debug, Clone, Serialize)]
pub struct StopOutcome {
    /// The campaign as it is now.
    pub campaign: Campaign,
    /// Jobs cancelled (or released before they started).
    pub cancelled: u32,
    /// The campaign had already ended: nothing was changed, its stop reason is the one it
    /// ended with.
    pub already_ended: bool,
}

/// The result of `mlres loop run`.
#[derive(Debug, Clone, Serialize)]
pub struct LoopSummary {
    pub campaign: String,
    pub start: CampaignStart,
    pub stop_reason: String,
    /// The campaign ended on its own (circuit breaker, budget, exhausted search, a refusal)
    /// without a single experiment producing a usable metric. An operator stop is not a failure.
    pub failed: bool,
    pub experiments: u32,
    pub best: Option<BestExperiment>,
    pub median_metric: Option<f64>,
    pub ledger_jsonl: PathBuf,
    pub summary_md: PathBuf,
    pub state_db: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct BestExperiment {
    pub id: i64,
    pub iter: u32,
    pub metric: f64,
    pub config: Value,
    pub hypothesis: String,
    pub checkpoint: Option<PathBuf>,
    /// With `noise:`: `metric` is the incumbent's mean over this many runs of its
    /// configuration (its own and its repeats), not a single value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<u32>,
    /// With `noise:`: the best single value, which selection biases upwards (the winner's
    /// curse); what `metric` would be without `noise:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_single: Option<BestSingle>,
}

/// One experiment's single value (see [`BestExperiment::best_single`]).
#[derive(Debug, Clone, Serialize)]
pub struct BestSingle {
    pub id: i64,
    pub iter: u32,
    pub metric: f64,
}

/// `mlres loop status` as data.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub project: PathBuf,
    pub approval: String,
    pub campaign: Option<Campaign>,
    pub metric: Option<String>,
    pub goal: Option<String>,
    pub target: Option<f64>,
    pub budget: Value,
    pub best: Option<BestExperiment>,
    pub in_flight: Vec<i64>,
    /// The most recent experiments (at most the page's limit), oldest first.
    pub experiments: Vec<ExperimentRow>,
    /// How many experiments the campaign holds, and how to fetch the page before this one.
    pub page: StatusPage,
    pub stop_reason: Option<String>,
    /// The objective's keep/discard rule, in words (noise model, range).
    pub keep_rule: Option<String>,
}

/// Which experiments a [`StatusReport`] shows: a bounded view, whatever the campaign's size.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusPage {
    /// Experiments in the campaign.
    pub total: u64,
    /// Most shown at once.
    pub limit: usize,
    /// The page holds experiments with iter below this (none: the newest).
    pub before_iter: Option<u32>,
    /// Pass as `before_iter` for the previous page; `None` when this page reaches the first.
    pub next_before_iter: Option<u32>,
}

/// Experiments a status report shows by default.
pub const STATUS_PAGE_LIMIT: usize = 50;

#[derive(Debug, Clone, Serialize)]
pub struct ExperimentRow {
    pub id: i64,
    pub iter: u32,
    pub state: String,
    pub status: Option<String>,
    pub metric: Option<f64>,
    pub decision: Option<String>,
    pub hypothesis: String,
    pub config: Value,
    /// Why it was kept or discarded.
    pub reason: Option<String>,
    /// What the decision rested on (noise model, delta, sd, n, p), when recorded.
    pub evidence: Option<Value>,
}

impl Engine {
    pub fn open(cfg: EngineConfig, project_root: &Path) -> Result<Engine, EngineError> {
        let project = Project::load(project_root)?;
        let ledger = Ledger::open(&cfg.state_dir)?;
        Ok(Engine {
            cfg,
            ledger,
            project,
            launched_here: HashSet::new(),
            log_offsets: BTreeMap::new(),
            hf_state: Default::default(),
            slurm_state: Default::default(),
            streaks: BTreeMap::new(),
            sandbox_choice: BTreeMap::new(),
            rungs_seen: BTreeMap::new(),
        })
    }

    fn objective(&self) -> Result<&Objective, EngineError> {
        self.project
            .program
            .objective
            .as_ref()
            .ok_or(EngineError::MissingSection("Objective"))
    }

    fn job(&self) -> Result<&JobTemplate, EngineError> {
        self.project
            .program
            .job
            .as_ref()
            .ok_or(EngineError::MissingSection("Job"))
    }

    fn space(&self) -> Result<&SearchSpace, EngineError> {
        self.project
            .program
            .search_space
            .as_ref()
            .ok_or(EngineError::MissingSection("Search space"))
    }

    /// Replaces the values of secrets granted to a job (`secrets:` in `## Job`) with
    /// `[REDACTED:NAME]`, for anything that shows that job's output to a person or an agent.
    /// The values come from the attempt's own spec (what the job was really given) and from
    /// this process's environment.
    pub fn redact_secrets(&self, attempt_dir: &Path, text: &str) -> String {
        let mut out = text.to_string();
        for (name, v) in self.granted_secrets(attempt_dir) {
            out = out.replace(v.as_str(), &format!("[REDACTED:{name}]"));
        }
        out
    }

    /// Records a human approval of the current program, after checking the approver's secret
    /// (see [`crate::approver`]). With `acknowledge_reset`, the human also accepts that the
    /// project's history was written by another ledger that this one replaces (a fresh
    /// budget); without it, such a project is refused ([`EngineError::LedgerReplaced`]).
    /// The approval records who approved, how and from which uid, and what changed since the
    /// previous approval (an `approval_context` event).
    pub fn approve_with(
        &mut self,
        who: &crate::HumanApprover,
        acknowledge_reset: bool,
    ) -> Result<mlres_ledger::Approval, EngineError> {
        if !acknowledge_reset {
            crate::identity::require_own_history(&self.ledger, &self.project)?;
        }
        self.check_approver(who)?;
        let approved_diff = match crate::approval_status(&self.ledger, &self.project)? {
            crate::ApprovalStatus::Changed { diff, .. } => diff,
            crate::ApprovalStatus::Approved(_) => "(unchanged: approved again)".into(),
            crate::ApprovalStatus::Missing => "(first approval: the whole document)".into(),
        };
        let context = json!({
            "user": who.user,
            "uid": who.uid,
            "method": who.source.label(),
            "diff": approved_diff,
        });
        let a = self.record_approval(&who.label(), acknowledge_reset, Some(&context))?;
        Ok(a)
    }

    /// The unattended approval of `mlres demo`: only for the built-in demo program, whose
    /// source the caller passes (`program_src`); any other program.md is refused. The demo's
    /// envelope is fixed, local and small, which is what makes a zero-setup demo safe.
    pub fn approve_builtin_demo(
        &mut self,
        user: &str,
        program_src: &str,
    ) -> Result<mlres_ledger::Approval, EngineError> {
        let demo =
            mlres_policy::parse_program(program_src).map_err(|err| EngineError::Program {
                path: self.project.program_path.clone(),
                err,
            })?;
        let hash = mlres_policy::approval_hash(&mlres_policy::approval_document(&demo));
        if hash != self.project.hash {
            return Err(EngineError::Refused {
                code: "not_the_demo".into(),
                message: format!(
                    "{} is not the built-in demo program; only a human approves it (`mlres approve`)",
                    self.project.program_path.display()
                ),
            });
        }
        crate::identity::require_own_history(&self.ledger, &self.project)?;
        let context =
            json!({"user": user, "method": "demo", "diff": "(the built-in demo program)"});
        self.record_approval(&format!("{user} (mlres demo)"), false, Some(&context))
    }

    fn record_approval(
        &mut self,
        approver: &str,
        acknowledge_reset: bool,
        context: Option<&Value>,
    ) -> Result<mlres_ledger::Approval, EngineError> {
        let root = self.project.root_str();
        let foreign = crate::identity::foreign_history(&self.ledger, &self.project)?;
        if foreign.is_some() && !acknowledge_reset {
            crate::identity::require_own_history(&self.ledger, &self.project)?;
        }
        // Hash the datasets and snapshot the code first: an unreadable dataset or code that
        // cannot be pinned fails the approval with nothing recorded.
        let datasets = crate::datasets::current(&self.project)?;
        let code = crate::code::pin(&self.project, &self.cfg.state_dir)?;
        if let Some(c) = &code
            && self.job()?.backend == Backend::HfJobs
        {
            crate::hfjobs::shipped_code(c)?;
        }
        let code = code
            .map(|c| serde_json::to_value(&c.manifest))
            .transpose()
            .map_err(|e| EngineError::Refused {
                code: "code_unreadable".into(),
                message: format!("the code manifest cannot be recorded: {e}"),
            })?;
        if let Some(prev) = foreign {
            self.ledger.acknowledge_reset(
                &root,
                &prev.ledger_id,
                &prev.campaign,
                prev.generation,
                approver,
            )?;
        }
        let pins = mlres_ledger::ApprovalPins {
            datasets: datasets.as_ref(),
            code: code.as_ref(),
            context,
        };
        let a = self.ledger.record_approval_with(
            &root,
            &self.project.hash,
            &self.project.document,
            approver,
            &pins,
        )?;
        Ok(a)
    }

    pub fn current_campaign(&self) -> Result<Option<Campaign>, EngineError> {
        Ok(self.ledger.current_campaign(&self.project.root_str())?)
    }

    /// The campaign new spending goes to. Opening a new generation needs an approval newer
    /// than the previous campaign: a budget is authorised once, never refilled by an agent.
    /// Finding the active campaign and opening a new one happen in one ledger transaction, so
    /// concurrent first submits share one campaign (and one budget).
    pub fn open_campaign(&mut self, fresh: bool) -> Result<(Campaign, CampaignStart), EngineError> {
        let approval = require_approval(&self.ledger, &self.project)?;
        let opened = self.open_campaign_inner(&approval, fresh)?;
        crate::identity::write_marker(&self.ledger, &self.project, &opened.0)?;
        Ok(opened)
    }

    fn open_campaign_inner(
        &mut self,
        approval: &mlres_ledger::Approval,
        fresh: bool,
    ) -> Result<(Campaign, CampaignStart), EngineError> {
        let approval = approval.clone();
        match self
            .ledger
            .open_campaign(&approval, &self.project.hash, fresh)?
        {
            Opened::Resumed(c) => {
                let u = self.ledger.usage(&c.id)?;
                let done = u.jobs.saturating_sub(u.in_flight);
                Ok((
                    c,
                    CampaignStart::Resumed {
                        done,
                        in_flight: u.in_flight,
                    },
                ))
            }
            Opened::Created {
                campaign,
                previous: Some(p),
            } => Ok((
                campaign,
                CampaignStart::AfterFinished {
                    previous: p.id,
                    reason: p.stop_reason.unwrap_or_else(|| "superseded".into()),
                },
            )),
            Opened::Created {
                campaign,
                previous: None,
            } => Ok((campaign, CampaignStart::Fresh)),
            Opened::NeedsApproval(c) => Err(needs_approval(&c)),
        }
    }

    /// Whether `approval` was given after `campaign` ended (or, while it runs, after it began):
    /// see [`mlres_ledger::Ledger::approved_after`].
    pub fn approved_after(
        &self,
        approval: &mlres_ledger::Approval,
        campaign: &Campaign,
    ) -> Result<bool, EngineError> {
        Ok(self.ledger.approved_after(approval, campaign)?)
    }

    fn attempt_dir(&self, campaign: &str, exp: i64, attempt: u32) -> PathBuf {
        self.cfg
            .state_dir
            .join("jobs")
            .join(campaign)
            .join(format!("e{exp}-a{attempt}"))
    }

    /// Validate, reserve atomically, and launch one experiment.
    pub fn submit(
        &mut self,
        campaign: &Campaign,
        req: SubmitRequest,
    ) -> Result<Experiment, EngineError> {
        self.submit_with(campaign, req, &SubmitOverrides::default())
    }

    /// [`Engine::submit`] with overrides of the template (checked like the template).
    pub fn submit_with(
        &mut self,
        campaign: &Campaign,
        req: SubmitRequest,
        overrides: &SubmitOverrides,
    ) -> Result<Experiment, EngineError> {
        self.submit_to(Some(campaign), req, overrides)
    }

    /// An agent's submit: to the active campaign, or, when there is none, to the campaign the
    /// current approval opens, found or opened in the SAME ledger transaction as the
    /// reservation (see [`mlres_ledger::Ledger::open_and_reserve_submitted`]). N concurrent
    /// first submits therefore share one campaign and one budget, and none of them sees a
    /// campaign that another has opened but not yet reserved in.
    pub fn submit_agent(
        &mut self,
        req: SubmitRequest,
        overrides: &SubmitOverrides,
    ) -> Result<Experiment, EngineError> {
        let root = self.project.root_str();
        match self.ledger.current_campaign(&root)? {
            Some(c) if c.status == "active" => self.submit_to(Some(&c), req, overrides),
            _ => self.submit_to(None, req, overrides),
        }
    }

    fn submit_to(
        &mut self,
        campaign: Option<&Campaign>,
        req: SubmitRequest,
        overrides: &SubmitOverrides,
    ) -> Result<Experiment, EngineError> {
        let approval = require_approval(&self.ledger, &self.project)?;
        self.ledger.check_present()?;
        self.check_datasets(&approval)?;
        self.check_gpus()?;
        let code = self.check_code(&approval)?;
        if let Some(campaign) = campaign
            && let Some(c) = self.ledger.campaign(&campaign.id)?
            && (c.stop_requested || c.status != "active")
        {
            return Err(EngineError::Refused {
                code: "campaign_stopped".into(),
                message: format!(
                    "campaign {} is {}{}; nothing more will be submitted to it",
                    c.id,
                    if c.stop_requested {
                        "stopping"
                    } else {
                        c.status.as_str()
                    },
                    c.stop_reason.map(|r| format!(" ({r})")).unwrap_or_default()
                ),
            });
        }
        let space = self.space()?.clone();
        let job = self.job()?.clone();
        let config = mlres_policy::validate_config(&space, &req.config)
            .map_err(EngineError::InvalidConfig)?;
        // Render once up front so a bad template is refused before anything is reserved.
        let builtins = self.builtins(
            campaign.map_or("new", |c| c.id.as_str()),
            0,
            0,
            code.as_ref(),
        );
        mlres_policy::render_command(&job.command, &config, &builtins)
            .map_err(EngineError::InvalidConfig)?;
        if req.hypothesis.trim().is_empty() {
            return Err(EngineError::InvalidConfig(
                "the hypothesis must not be empty".into(),
            ));
        }
        let envelope = self.project.program.envelope.clone();
        let flavor = overrides
            .flavor
            .clone()
            .unwrap_or_else(|| job.flavor.clone());
        let timeout_secs = overrides.timeout_secs.unwrap_or(job.timeout_secs);
        if let Some(ns) = &overrides.namespace
            && envelope.namespace.as_deref() != Some(ns.as_str())
        {
            return Err(EngineError::Refused {
                code: "namespace".into(),
                message: format!(
                    "namespace `{ns}` is not the envelope's namespace ({}); jobs run and are billed only there",
                    envelope.namespace.as_deref().unwrap_or("none")
                ),
            });
        }
        // hf-jobs: flavor against the envelope and the live catalog, worst-case cost from
        // its price, all before anything is reserved.
        // Local jobs cost nothing. One arm per backend: a new one must say how it is priced.
        let (cost_micro, price) = match job.backend {
            Backend::Local => (0, None),
            Backend::HfJobs => {
                if timeout_secs > envelope.max_timeout_secs || timeout_secs == 0 {
                    return Err(EngineError::Refused {
                        code: "max_timeout".into(),
                        message: format!(
                            "timeout {} is over max_timeout {} (or zero); nothing was submitted",
                            mlres_policy::format_duration(timeout_secs),
                            mlres_policy::format_duration(envelope.max_timeout_secs)
                        ),
                    });
                }
                let (c, p) =
                    self.hf_preflight(campaign.map(|c| c.id.as_str()), &flavor, timeout_secs)?;
                // Code that cannot be shipped is refused before anything is reserved.
                if let Some(code) = &code {
                    crate::hfjobs::shipped_code(code)?;
                }
                (c, Some(p))
            }
            Backend::Slurm => (0, None),
        };
        // Slurm time limits are whole minutes: the reservation is the limit Slurm enforces.
        let timeout_secs = if job.backend == Backend::Slurm {
            self.slurm_preflight(campaign.map(|c| c.id.as_str()), timeout_secs)?
        } else {
            timeout_secs
        };
        let gpus = if job.backend == Backend::Slurm {
            job.gpus
        } else {
            0
        };
        let spend = SpendRequest {
            backend: job.backend,
            flavor: flavor.clone(),
            timeout_secs,
            cost_micro_usd: cost_micro,
        };
        let rr = ReserveRequest {
            hypothesis: req.hypothesis.clone(),
            config: Value::Object(config.clone()),
            source: req.source.to_string(),
            proposal_index: req.proposal_index,
            backend: backend_name(job.backend).to_string(),
            flavor,
            timeout_secs,
            cost_micro,
            code_sha256: code.as_ref().map(|c| c.manifest.sha256.clone()),
        };
        // Reserved and marked submitted (attempt 1) in one transaction; `launch` then finds
        // the experiment already submitted with the same handle.
        let jobs_dir = self.cfg.state_dir.join("jobs");
        let handle_for = |campaign: &str, id: i64| {
            jobs_dir
                .join(campaign)
                .join(format!("e{id}-a1"))
                .to_string_lossy()
                .into_owned()
        };
        let check = |u: &mlres_ledger::Usage| {
            let usage = mlres_policy::Usage {
                jobs: u.jobs,
                walltime_secs: u.walltime_secs,
                cost_micro_usd: u.cost_micro,
                in_flight: u.in_flight,
            };
            mlres_policy::check_spend(&envelope, &usage, &spend)
                .and_then(|()| {
                    // GPU-hours: every job of the campaign holds the template's GPUs.
                    mlres_policy::check_gpu_spend(
                        &envelope,
                        crate::slurm::campaign_gpu_secs(gpus, u.walltime_secs),
                        gpus,
                        timeout_secs,
                    )
                })
                .map_err(|r| (r.code.to_string(), r.message))
        };
        let (campaign, exp) = match campaign {
            Some(c) => {
                let exp = self
                    .ledger
                    .reserve_submitted(&c.id, &rr, check, |id| handle_for(&c.id, id));
                (c.clone(), exp)
            }
            None => {
                let (opened, exp) = self.ledger.open_and_reserve_submitted(
                    &approval,
                    &self.project.hash,
                    &rr,
                    check,
                    handle_for,
                )?;
                let campaign = match opened {
                    Opened::NeedsApproval(c) => return Err(needs_approval(&c)),
                    Opened::Resumed(c) | Opened::Created { campaign: c, .. } => c,
                };
                crate::identity::write_marker(&self.ledger, &self.project, &campaign)?;
                (campaign, exp)
            }
        };
        let exp = match exp {
            Ok(e) => e,
            Err(mlres_ledger::LedgerError::Refused { code, message }) => {
                return Err(EngineError::Refused { code, message });
            }
            Err(e) => return Err(e.into()),
        };
        self.launch(&campaign, &exp, 1, price, code.as_ref())?;
        Ok(self.ledger.experiment(exp.id)?.unwrap_or(exp))
    }

    /// How the declared datasets differ from the manifest pinned with `approval` (empty when
    /// they match or none are declared; a missing pin is one difference).
    pub fn dataset_changes(
        &self,
        approval: &mlres_ledger::Approval,
    ) -> Result<Vec<String>, EngineError> {
        let Some(now) = crate::datasets::current(&self.project)? else {
            return Ok(Vec::new());
        };
        let Some(pinned) = self.ledger.pinned_datasets(approval)? else {
            return Ok(vec![
                "the approval has no dataset manifest (approve again to pin the declared datasets)"
                    .into(),
            ]);
        };
        Ok(crate::datasets::differences(&pinned, &now))
    }

    /// Refuses when a declared dataset no longer matches the manifest pinned at approval.
    fn check_datasets(&self, approval: &mlres_ledger::Approval) -> Result<(), EngineError> {
        if self.project.program.envelope.datasets.is_empty() {
            return Ok(());
        }
        // Fast path: hashes only. The full manifest (rows, schemas) is computed only to
        // explain a difference.
        if let Some(pinned) = self.ledger.pinned_datasets(approval)?
            && crate::datasets::unchanged(&self.project, &pinned)?
        {
            return Ok(());
        }
        let diff = self.dataset_changes(approval)?;
        if diff.is_empty() {
            return Ok(());
        }
        Err(EngineError::Refused {
            code: "dataset_changed".into(),
            message: format!(
                "a dataset changed since approval (review it, e.g. `mlres data audit`, then \
                 `mlres approve` again):\n  {}",
                diff.join("\n  ")
            ),
        })
    }

    /// Refuses, before anything is reserved, a local job that needs more GPUs than this
    /// machine gives local jobs: it could never run.
    fn check_gpus(&self) -> Result<(), EngineError> {
        let job = self.job()?;
        if job.backend != Backend::Local || job.gpus == 0 {
            return Ok(());
        }
        let have = self.cfg.local_gpus.len();
        if usize::try_from(job.gpus).unwrap_or(usize::MAX) <= have {
            return Ok(());
        }
        Err(EngineError::Refused {
            code: "gpus_unavailable".into(),
            message: if have == 0 {
                format!(
                    "the job needs {} GPU(s) and no GPU is configured for local jobs on this \
                     machine; the operator lists them in MLRES_LOCAL_GPUS (e.g. 0,1)",
                    job.gpus
                )
            } else {
                format!(
                    "the job needs {} GPU(s) and this machine gives local jobs {} ({}); \
                     ask the operator for a program with fewer `gpus`",
                    job.gpus,
                    have,
                    self.cfg.local_gpus.join(",")
                )
            },
        })
    }

    /// Where supervisors lock the GPUs they hand out: one directory per state directory.
    pub fn gpu_lock_dir(&self) -> PathBuf {
        self.cfg.state_dir.join("gpus")
    }

    fn builtins(
        &self,
        campaign: &str,
        exp: i64,
        iter: u32,
        code: Option<&crate::code::PinnedCode>,
    ) -> BTreeMap<String, String> {
        let mut b = BTreeMap::new();
        b.insert("mlres".into(), self.cfg.exe.to_string_lossy().into_owned());
        b.insert("exp_id".into(), exp.to_string());
        b.insert("iter".into(), iter.to_string());
        b.insert(
            "workdir".into(),
            self.attempt_dir(campaign, exp, 0)
                .with_file_name("work")
                .to_string_lossy()
                .into_owned(),
        );
        b.insert("seed".into(), (exp.max(0) as u64).to_string());
        // Jobs run in their attempt's work dir; files beside program.md are found through this.
        b.insert("project".into(), self.project.root_str());
        // The approved code snapshot (the policy refuses `{code}` without a `code:` list). A
        // remote job gets it decoded into its working directory.
        if let Some(c) = code {
            let remote = self
                .project
                .program
                .job
                .as_ref()
                .is_some_and(|j| j.backend == Backend::HfJobs);
            let at = if remote {
                ".".to_string()
            } else {
                c.dir.to_string_lossy().into_owned()
            };
            b.insert("code".into(), at);
        }
        b
    }

    /// Refuses (before anything is reserved) unless the project's code is exactly the code
    /// pinned with `approval` and its snapshot is intact; returns the snapshot jobs run.
    /// `None` when the job declares no code.
    fn check_code(
        &self,
        approval: &mlres_ledger::Approval,
    ) -> Result<Option<crate::code::PinnedCode>, EngineError> {
        if !crate::code::declared(&self.project) {
            return Ok(None);
        }
        let Some(v) = self.ledger.pinned_code(approval)? else {
            return Err(EngineError::Refused {
                code: "code_not_pinned".into(),
                message: "the approval has no code manifest; nothing was spent. A human runs \
                          `mlres approve` again to pin the job's code"
                    .into(),
            });
        };
        let pinned = crate::code::parse_pinned(&v)?;
        let now = crate::code::current_lenient(&self.project, &self.cfg.state_dir)?;
        if now.sha256 != pinned.sha256 {
            return Err(EngineError::CodeChanged(Box::new(crate::code::describe(
                &self.project,
                &self.cfg.state_dir,
                &pinned,
                &now,
            ))));
        }
        Ok(Some(crate::code::snapshot(&self.cfg.state_dir, &pinned)?))
    }

    /// How the project's code differs from the code pinned with `approval` (`None` when it
    /// matches or the job declares no code). An approval without a pin differs from any code.
    pub fn code_change(
        &self,
        approval: &mlres_ledger::Approval,
    ) -> Result<Option<crate::code::CodeChange>, EngineError> {
        if !crate::code::declared(&self.project) {
            return Ok(None);
        }
        let now = crate::code::current_lenient(&self.project, &self.cfg.state_dir)?;
        let pinned = match self.ledger.pinned_code(approval)? {
            Some(v) => crate::code::parse_pinned(&v)?,
            None => mlres_policy::CodeManifest {
                sha256: String::new(),
                files: Vec::new(),
            },
        };
        if now.sha256 == pinned.sha256 {
            return Ok(None);
        }
        Ok(Some(crate::code::describe(
            &self.project,
            &self.cfg.state_dir,
            &pinned,
            &now,
        )))
    }

    /// The job's code as it is now, hashed but not pinned (`None` without `code:`): what an
    /// approval would pin.
    pub fn current_code(&self) -> Result<Option<mlres_policy::CodeManifest>, EngineError> {
        crate::code::current(&self.project, &self.cfg.state_dir)
    }

    /// The snapshot a relaunched attempt runs: the one pinned with the latest approval (any
    /// pinned snapshot is code a human approved), verified.
    fn relaunch_code(&self) -> Result<Option<crate::code::PinnedCode>, EngineError> {
        if !crate::code::declared(&self.project) {
            return Ok(None);
        }
        let approval = self
            .ledger
            .latest_approval(&self.project.root_str())?
            .ok_or(EngineError::NotApproved)?;
        let Some(v) = self.ledger.pinned_code(&approval)? else {
            return Err(EngineError::Refused {
                code: "code_not_pinned".into(),
                message: "the approval has no code manifest; a human runs `mlres approve` again"
                    .into(),
            });
        };
        let pinned = crate::code::parse_pinned(&v)?;
        Ok(Some(crate::code::snapshot(&self.cfg.state_dir, &pinned)?))
    }

    /// Marks attempt `attempt` submitted (a compare-and-set in the ledger), prepares its
    /// directory and starts a detached supervisor. A job with `code` runs `code`, the
    /// approved snapshot.
    fn launch(
        &mut self,
        campaign: &Campaign,
        exp: &Experiment,
        attempt: u32,
        price: Option<u64>,
        code: Option<&crate::code::PinnedCode>,
    ) -> Result<(), EngineError> {
        let job = self.job()?.clone();
        let dir = self.attempt_dir(&campaign.id, exp.id, attempt);
        let config = exp.config.as_object().cloned().unwrap_or_default();
        let mut builtins = self.builtins(&campaign.id, exp.id, exp.iter, code);
        builtins.insert(
            "workdir".into(),
            dir.join("work").to_string_lossy().into_owned(),
        );
        let argv = mlres_policy::render_command(&job.command, &config, &builtins)
            .map_err(EngineError::InvalidConfig)?;
        // One arm per backend, no default: a new backend cannot fall through to `local`.
        match job.backend {
            Backend::HfJobs => {
                return self.launch_hf(campaign, exp, attempt, &dir, argv, price, code);
            }
            Backend::Slurm => {
                return self.launch_slurm(campaign, exp, attempt, &dir, argv, code);
            }
            Backend::Local => {}
        }
        let spec = LocalJobSpec {
            argv,
            env: self.job_env(&job, campaign, exp),
            timeout_secs: exp.timeout_secs,
            kill_grace_secs: 5,
            limits: mlres_backends::Limits {
                memory_bytes: Some(job.limits.memory_bytes),
                cpu_secs: job.limits.cpu_secs,
                file_size_bytes: Some(job.limits.file_size_bytes),
                processes: Some(job.limits.processes),
                open_files: Some(1024),
                address_space_bytes: job.limits.address_space_bytes,
                cpu_millis: job.limits.cpu_millis,
            },
            log_cap_bytes: job.limits.log_bytes,
            // Without network the job must not reach anything: fail closed if the sandbox
            // cannot give it its own network namespace.
            network: if job.network {
                NetworkPolicy::Host
            } else {
                NetworkPolicy::Isolated
            },
            // The job's code and data, read-only: the approved code snapshot (`{code}`); the
            // project only when the command asks for it with `{project}` (a literal path does
            // not count: it is not visible), so files beside program.md that the job was never
            // meant to see (`.env`, notes, other checkpoints) stay hidden; the envelope's local
            // datasets. Nothing else of the host but system directories and its work dir is
            // visible.
            read_only: code
                .map(|c| c.dir.clone())
                .into_iter()
                .chain(
                    mlres_policy::uses_placeholder(&job.command, "project")
                        .then(|| self.project.root.clone()),
                )
                .chain(crate::datasets::local_paths(&self.project))
                .collect(),
            // A state directory inside the project (ledger, key, other attempts) stays hidden.
            masked: vec![
                std::fs::canonicalize(&self.cfg.state_dir)
                    .or_else(|_| std::path::absolute(&self.cfg.state_dir))
                    .unwrap_or_else(|_| self.cfg.state_dir.clone()),
            ],
            // Always set: no `gpus` means an empty CUDA_VISIBLE_DEVICES, never the host's.
            gpus: Some(mlres_backends::GpuRequest {
                count: job.gpus,
                share: job.share_gpus,
                host: self.cfg.local_gpus.clone(),
                lock_dir: self.gpu_lock_dir(),
            }),
            code_sha256: code.map(|c| c.manifest.sha256.clone()),
        };
        self.ledger.mark_submitted_code(
            exp.id,
            attempt,
            &dir.to_string_lossy(),
            spec.code_sha256.as_deref(),
        )?;
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(EngineError::io(format!(
                "cannot create {}",
                parent.display()
            )))?;
        }
        mlres_backends::prepare_attempt(&dir, &spec)?;
        let mut cmd = std::process::Command::new(&self.cfg.exe);
        // `launch` passes on only what is set here: the supervisor (and so everything a job
        // could inspect through /proc) holds no token from this process's environment.
        cmd.arg("__supervise")
            .arg(&dir)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8");
        if let Some(b) = &self.cfg.bwrap {
            cmd.arg("--bwrap").arg(b);
        }
        // Bubblewrap is probed once per process and network setting, not once per job.
        let network = job.network;
        let chosen = self
            .sandbox_choice
            .entry(network)
            .or_insert_with(|| mlres_backends::choose_sandbox(self.cfg.bwrap.as_deref(), network))
            .clone();
        match chosen {
            Ok(()) => cmd.arg("--bwrap-ok"),
            Err(reason) => cmd.arg("--sandbox-fallback").arg(reason),
        };
        mlres_backends::launch(&dir, &cmd)?;
        self.launched_here.insert((exp.id, attempt));
        Ok(())
    }

    fn job_env(
        &self,
        job: &JobTemplate,
        campaign: &Campaign,
        exp: &Experiment,
    ) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert(
            "PATH".to_string(),
            "/usr/local/bin:/usr/bin:/bin".to_string(),
        );
        env.insert("LANG".to_string(), "C.UTF-8".to_string());
        env.insert("PYTHONUNBUFFERED".to_string(), "1".to_string());
        for name in job.pass_env.iter().chain(job.secrets.iter()) {
            if let Some(v) = self.cfg.parent_env.get(name) {
                env.insert(name.clone(), v.clone());
            }
        }
        for (k, v) in &job.env {
            env.insert(k.clone(), v.clone());
        }
        env.insert("MLRES_CAMPAIGN".to_string(), campaign.id.clone());
        env.insert("MLRES_EXP_ID".to_string(), exp.id.to_string());
        env.insert("MLRES_ITER".to_string(), exp.iter.to_string());
        env
    }

    /// Brings the ledger up to date with the backends: settles finished jobs, evaluates them,
    /// voids attempts that never started and relaunches reserved experiments.
    /// `resuming` is set by a loop that holds the loop lock, so loop-sourced attempts it did not
    /// launch itself cannot be mid-launch.
    pub fn reconcile(
        &mut self,
        campaign: &Campaign,
        resuming: bool,
        may_launch: bool,
        on_event: &mut dyn FnMut(LoopEvent),
    ) -> Result<(), EngineError> {
        let exps = self.ledger.open_experiments(&campaign.id)?;
        let now = now_ms();
        for exp in exps {
            match exp.state.as_str() {
                "submitted" => {
                    let Some(handle) = exp.handle.clone() else {
                        continue;
                    };
                    let dir = PathBuf::from(&handle);
                    // A crash between "submitted" and preparing the directory leaves no
                    // directory at all: that attempt certainly never started.
                    let state = attempt_state(&dir)?;
                    match state {
                        AttemptState::Finished(status) => {
                            self.finish(&exp, &status, on_event)?;
                        }
                        AttemptState::Lost if mlres_backends::is_hf_attempt(&dir) => {
                            self.hf_settle_lost(&exp, &dir, on_event)?;
                        }
                        AttemptState::Lost if mlres_backends::is_slurm_attempt(&dir) => {
                            self.slurm_lost(&exp, &dir, on_event)?;
                        }
                        AttemptState::Lost => {
                            // Whatever is left of the job's process group must not keep running.
                            let _ = mlres_backends::kill_lost(&dir);
                            let fin = FinishRecord {
                                status: "lost".into(),
                                exit_code: None,
                                duration_ms: 0,
                                spent_cost_micro: 0,
                                error: Some(
                                    "the job supervisor died without recording an outcome".into(),
                                ),
                            };
                            if self.ledger.mark_finished(exp.id, &fin)? {
                                on_event(LoopEvent::Finished {
                                    exp: exp.id,
                                    status: "lost".into(),
                                });
                            }
                            self.evaluate(exp.id, on_event)?;
                        }
                        AttemptState::Voided => {
                            self.ledger
                                .void_attempt(exp.id, exp.attempt, "attempt voided")?;
                        }
                        AttemptState::NotClaimed => {
                            let ours = self.launched_here.contains(&(exp.id, exp.attempt));
                            let old = exp
                                .submitted_ms
                                .map(|t| now.saturating_sub(t) > UNCLAIMED_GRACE_MS)
                                .unwrap_or(true);
                            let safe = !ours && ((resuming && exp.source == "loop") || old);
                            if safe && void_attempt_dir(&dir)? {
                                self.ledger.void_attempt(
                                    exp.id,
                                    exp.attempt,
                                    "never started; will be relaunched",
                                )?;
                                on_event(LoopEvent::Voided {
                                    exp: exp.id,
                                    attempt: exp.attempt,
                                });
                            }
                        }
                        AttemptState::Running { .. } => {
                            self.hf_note_remote(&exp, &dir)?;
                            self.slurm_note_remote(&exp, &dir)?;
                            self.progress(&exp, on_event)?;
                        }
                    }
                }
                "finished" => {
                    self.evaluate(exp.id, on_event)?;
                }
                _ => {}
            }
        }
        if may_launch {
            // Reserved experiments that have no live attempt (crash between reserve and launch,
            // or a voided attempt) are launched again under a new attempt number.
            for exp in self.ledger.open_experiments(&campaign.id)? {
                if exp.state != "reserved" {
                    continue;
                }
                let stale = now.saturating_sub(exp.created_ms) > UNCLAIMED_GRACE_MS;
                if (resuming && exp.source == "loop") || stale || exp.attempt > 0 {
                    let code = self.relaunch_code()?;
                    match self.launch(campaign, &exp, exp.attempt + 1, None, code.as_ref()) {
                        Ok(()) => {}
                        Err(EngineError::Ledger(
                            mlres_ledger::LedgerError::InvalidTransition { .. },
                        )) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        // A failed sweep was reported as an event and is retried at the next interval.
        self.hf_sweep(campaign, false, on_event)?;
        self.slurm_sweep(campaign, false, on_event)?;
        Ok(())
    }

    fn progress(
        &mut self,
        exp: &Experiment,
        on_event: &mut dyn FnMut(LoopEvent),
    ) -> Result<(), EngineError> {
        let Some(handle) = &exp.handle else {
            return Ok(());
        };
        let paths = mlres_backends::log_paths(Path::new(handle));
        let offset = self.log_offsets.get(&exp.id).copied().unwrap_or(0);
        let Ok(mut f) = File::open(&paths.stdout) else {
            return Ok(());
        };
        if f.seek(SeekFrom::Start(offset)).is_err() {
            return Ok(());
        }
        let mut buf = Vec::new();
        if f.take(1 << 20).read_to_end(&mut buf).is_err() {
            return Ok(());
        }
        let Some(last_nl) = buf.iter().rposition(|b| *b == b'\n') else {
            return Ok(());
        };
        self.log_offsets.insert(exp.id, offset + last_nl as u64 + 1);
        let mut scan = mlres_policy::MetricScan::default();
        let text = String::from_utf8_lossy(&buf[..last_nl]);
        let lines: Vec<&str> = text.lines().collect();
        for line in &lines {
            scan.push_line(line);
        }
        let metrics = scan.all();
        if !metrics.is_empty() {
            on_event(LoopEvent::Progress {
                exp: exp.id,
                metrics,
            });
        }
        self.early_stop_lines(exp, &lines, true, on_event)
    }

    fn finish(
        &mut self,
        exp: &Experiment,
        status: &mlres_backends::Status,
        on_event: &mut dyn FnMut(LoopEvent),
    ) -> Result<(), EngineError> {
        let mut name = outcome_name(&status.outcome);
        if status.remote.is_none() && self.early_stopping() {
            // Rungs the job reached after the last look (a fast job may finish between two).
            if let Some(h) = &exp.handle {
                let p = mlres_backends::log_paths(Path::new(h));
                let text = std::fs::read(&p.stdout).unwrap_or_default();
                let text = String::from_utf8_lossy(&text);
                let lines: Vec<&str> = text.lines().collect();
                self.early_stop_lines(exp, &lines, false, on_event)?;
            }
            // A job early stopping cancelled is pruned, not failed.
            if matches!(status.outcome, Outcome::Cancelled) && self.pruned_reason(exp)?.is_some() {
                name = "pruned";
            }
        }
        let fin = FinishRecord {
            status: name.to_string(),
            exit_code: status.exit_code,
            duration_ms: status.duration_ms,
            spent_cost_micro: status
                .remote
                .as_ref()
                .map(|r| crate::hfjobs::settled_cost_micro(r))
                .unwrap_or(0),
            error: if matches!(status.outcome, Outcome::Completed) || name == "pruned" {
                None
            } else {
                Some(self.failure_text(exp, status))
            },
        };
        if status.remote.is_none() && exp.state == "submitted" {
            // A local job: settle and evaluate in one transaction (one commit fewer). The
            // evaluation sees the experiment as the ledger will hold it once finished.
            let mut finished = exp.clone();
            finished.state = "finished".into();
            finished.status = Some(fin.status.clone());
            finished.exit_code = fin.exit_code;
            finished.error = fin.error.clone();
            let (rec, reason) = self.evaluation_record(&finished)?;
            if self.ledger.finish_and_evaluate(exp.id, &fin, &rec)? {
                on_event(LoopEvent::Finished {
                    exp: exp.id,
                    status: name.to_string(),
                });
                on_event(LoopEvent::Evaluated {
                    exp: exp.id,
                    iter: exp.iter,
                    metric: rec.metric,
                    decision: rec.decision.clone(),
                    reason,
                    best: rec.best_so_far,
                    best_runs: best_runs(&rec),
                });
                self.log_offsets.remove(&exp.id);
                return Ok(());
            }
        }
        if self.ledger.mark_finished(exp.id, &fin)? {
            on_event(LoopEvent::Finished {
                exp: exp.id,
                status: name.to_string(),
            });
            if let Some(r) = &status.remote {
                self.hf_after_finish(exp, r, on_event)?;
            }
        }
        self.log_offsets.remove(&exp.id);
        self.evaluate(exp.id, on_event)?;
        Ok(())
    }

    /// Why a job failed, as recorded in the ledger and shown to people and agents: the
    /// backend's reason (exit code, signal, limit) and the last lines of the job's stderr,
    /// secrets redacted. The sandbox's notes are not part of it ([`Engine::sandbox_notes`]).
    fn failure_text(&self, exp: &Experiment, status: &mlres_backends::Status) -> String {
        let mut text = status.detail.clone();
        let Some(handle) = &exp.handle else {
            return text;
        };
        let dir = Path::new(handle);
        let p = mlres_backends::log_paths(dir);
        let Some((tail, whole)) = crate::evaluate::read_log_end(&[&p.stderr_tail, &p.stderr])
        else {
            return text;
        };
        // Redact the whole window before cutting lines, so no cut can split a secret.
        let tail = self.redact_secrets(dir, &tail);
        let lines = crate::evaluate::last_lines(&tail, whole);
        if !lines.is_empty() {
            text.push('\n');
            text.push_str(crate::evaluate::STDERR_HEADING);
            for l in lines {
                text.push_str("\n  ");
                text.push_str(&l);
            }
        }
        text
    }

    /// How the sandbox ran an experiment's latest attempt (network isolation, leftover
    /// processes, log problems), from its status file; empty when there is none.
    pub fn sandbox_notes(&self, exp: &Experiment) -> Vec<String> {
        exp.handle
            .as_ref()
            .and_then(|h| mlres_backends::read_status(Path::new(h)).ok().flatten())
            .map(|s| s.notes)
            .unwrap_or_default()
    }

    fn best_metric(&self, campaign: &str) -> Result<Option<f64>, EngineError> {
        let goal = self.objective()?.goal;
        let mut best: Option<f64> = None;
        for e in self.ledger.kept_experiments(campaign)? {
            if let Some(m) = e.metric {
                best = Some(match (best, goal) {
                    (None, _) => m,
                    (Some(b), Goal::Maximize) => b.max(m),
                    (Some(b), Goal::Minimize) => b.min(m),
                });
            }
        }
        Ok(best)
    }

    /// The evaluation of a finished experiment (`exp` as the ledger holds it once finished):
    /// metrics parsed from the logs its supervisor captured, and keep/discard/anomalous against
    /// the campaign's best. Records nothing.
    fn evaluation_record(&self, exp: &Experiment) -> Result<(EvalRecord, String), EngineError> {
        let objective = self.objective()?.clone();
        let best = self.best_metric(&exp.campaign)?;
        let status = exp.status.clone().unwrap_or_default();
        let ctx = self.keep_context(&objective, exp, best)?;
        let pruned = if status == "pruned" {
            self.pruned_reason(exp)?
        } else {
            None
        };
        let ev = match &exp.handle {
            Some(h) => {
                let p = mlres_backends::log_paths(Path::new(h));
                let scan = scan_logs(&[&p.stderr, &p.stderr_tail, &p.stdout, &p.stdout_tail]);
                let failure = exp
                    .error
                    .as_deref()
                    .map(crate::evaluate::failure_summary)
                    .unwrap_or_else(|| status.clone());
                let mut ev = evaluate_logs_with(
                    &objective,
                    status == "completed",
                    &format!("{status}: {failure}"),
                    &scan,
                    &ctx,
                );
                if let Some(why) = pruned {
                    // A partial-fidelity value is not the objective's value.
                    ev.metric = None;
                    ev.reason = why;
                }
                ev
            }
            None => evaluate_logs(
                &objective,
                false,
                "no job handle",
                &Default::default(),
                best,
            ),
        };
        let new_best = match (ev.decision, ev.metric, best) {
            (Decision::Keep, Some(m), None) => Some(m),
            // With `noise:` a kept value beats the incumbent's mean, not necessarily the best
            // single value: the best so far never gets worse.
            (Decision::Keep, Some(m), Some(b)) => Some(match objective.goal {
                Goal::Maximize => m.max(b),
                Goal::Minimize => m.min(b),
            }),
            _ => best,
        };
        // With `noise:` the best so far recorded is the incumbent's mean after this decision
        // (a keep starts a new incumbent, a repeat adds to its runs), and the evidence says
        // of how many runs, with the best single kept value beside it.
        let mut evidence = ev.evidence.clone();
        let best_so_far = if objective.noise.is_some() {
            let this = ev
                .metric
                .filter(|m| m.is_finite())
                .filter(|_| status == "completed" && ev.decision != Decision::Anomalous)
                .map(|value| mlres_policy::Run {
                    id: exp.id,
                    config: ctx.config.clone(),
                    value,
                });
            let incumbent = match ev.decision {
                Decision::Keep => this.clone(),
                _ => ctx.incumbent.clone(),
            };
            match incumbent {
                Some(inc) => {
                    let mut runs = ctx.runs.clone();
                    runs.extend(this);
                    let m = mlres_policy::incumbent_mean(&inc, &runs);
                    if let Some(e) = evidence.as_mut() {
                        e.best_runs = Some(m.runs);
                        e.best_single = new_best;
                    }
                    Some(m.mean)
                }
                None => new_best,
            }
        } else {
            new_best
        };
        let metrics: serde_json::Map<String, Value> = ev
            .metrics
            .iter()
            .map(|(k, v)| {
                let val = if v.is_finite() {
                    json!(v)
                } else {
                    json!(v.to_string())
                };
                (k.clone(), val)
            })
            .collect();
        let rec = EvalRecord {
            metric: ev.metric,
            metrics: Value::Object(metrics),
            decision: decision_name(ev.decision).to_string(),
            reason: ev.reason.clone(),
            best_so_far,
            evidence: evidence.as_ref().and_then(|e| serde_json::to_value(e).ok()),
        };
        Ok((rec, ev.reason))
    }

    /// Parses the finished job's logs and records keep/discard/anomalous. Idempotent.
    pub fn evaluate(
        &mut self,
        exp_id: i64,
        on_event: &mut dyn FnMut(LoopEvent),
    ) -> Result<Experiment, EngineError> {
        let exp = self
            .ledger
            .experiment(exp_id)?
            .ok_or(EngineError::UnknownExperiment(exp_id))?;
        if exp.state != "finished" {
            return Ok(exp);
        }
        let (rec, reason) = self.evaluation_record(&exp)?;
        if self.ledger.mark_evaluated(exp_id, &rec)? {
            on_event(LoopEvent::Evaluated {
                exp: exp_id,
                iter: exp.iter,
                metric: rec.metric,
                decision: rec.decision.clone(),
                reason,
                best: rec.best_so_far,
                best_runs: best_runs(&rec),
            });
        }
        Ok(self.ledger.experiment(exp_id)?.unwrap_or(exp))
    }

    /// Loop facts for the stop rules, derived from the ledger alone.
    fn facts(&mut self, campaign: &Campaign, exhausted: bool) -> Result<LoopFacts, EngineError> {
        let u = self.ledger.usage(&campaign.id)?;
        let objective = self.objective()?.clone();
        // With `noise:` the best is the incumbent's mean over its runs (the target is reached
        // by that mean), else the best kept value.
        let (best, best_runs) = if objective.noise.is_some() {
            match crate::keep::mean_best(&self.ledger, &campaign.id)? {
                Some(m) => (Some(m.mean), Some(m.runs)),
                None => (None, None),
            }
        } else {
            (self.best_metric(&campaign.id)?, None)
        };
        // Streaks since the last keep and of failures, kept incrementally from the chain (its
        // order; clock time can tie): each call reads only evaluations it has not seen, so the
        // loop's cost does not grow with the campaign. Other processes' evaluations are in the
        // chain too, so the counts stay exact. Under `noise:` a repeat of the incumbent is not
        // a new hypothesis: it does not advance `patience` ([`mlres_policy::Streaks`]).
        let mut st = self.streaks.remove(&campaign.id).unwrap_or_default();
        for (seq, e) in self.ledger.evaluations_after(&campaign.id, st.after_seq)? {
            st.after_seq = seq;
            st.streaks.observe(
                &objective,
                &mlres_policy::config_key(&e.config),
                e.decision.as_deref(),
                e.status.as_deref(),
            );
        }
        let (since_improvement, consecutive_failures) = (
            st.streaks.since_improvement,
            st.streaks.consecutive_failures,
        );
        self.streaks.insert(campaign.id.clone(), st);
        let stop_requested = self
            .ledger
            .campaign(&campaign.id)?
            .map(|c| c.stop_requested)
            .unwrap_or(false);
        Ok(LoopFacts {
            usage: mlres_policy::Usage {
                jobs: u.jobs,
                walltime_secs: u.walltime_secs,
                cost_micro_usd: u.cost_micro,
                in_flight: u.in_flight,
            },
            best,
            best_runs,
            since_improvement,
            consecutive_failures,
            stop_requested,
            proposals_exhausted: exhausted,
            next_timeout_secs: self.job()?.timeout_secs,
        })
    }

    fn next_proposal_index(&self, campaign: &Campaign) -> Result<u64, EngineError> {
        Ok(self
            .ledger
            .max_proposal_index(&campaign.id)?
            .map_or(0, |m| m + 1))
    }

    /// Asks the `method: command` proposer for the next configuration, up to
    /// [`mlres_policy::PROPOSER_ATTEMPTS`] times; each retry's input lists the earlier
    /// attempts' refusals. Returns the hypothesis and the validated config, or every reason.
    fn command_proposal(
        &self,
        space: &SearchSpace,
        objective: &Objective,
        exps: &[Experiment],
        history: &[mlres_policy::Observation],
        usage: &mlres_policy::Usage,
    ) -> Result<(String, mlres_policy::Config), String> {
        let Some(cmd) = &space.command else {
            return Err("no command in the search space".into());
        };
        let env = &self.project.program.envelope;
        let mut rejected: Vec<Value> = Vec::new();
        for attempt in 1..=mlres_policy::PROPOSER_ATTEMPTS {
            let state = json!({
                "format": "mlres-proposer/1",
                "objective": {
                    "metric": objective.metric,
                    "goal": match objective.goal { Goal::Maximize => "maximize", Goal::Minimize => "minimize" },
                    "target": objective.target,
                },
                "space": mlres_policy::search_space_json(space),
                "history": exps.iter()
                    .filter(|e| e.state != mlres_ledger::state::RELEASED)
                    .map(|e| json!({
                        "id": e.id,
                        "config": e.config,
                        "hypothesis": e.hypothesis,
                        "state": e.state,
                        "status": e.status,
                        "metric": e.metric.filter(|m| m.is_finite()),
                        "decision": e.decision,
                    }))
                    .collect::<Vec<_>>(),
                "pending": history.iter()
                    .filter(|o| o.outcome == mlres_policy::Outcome::Pending)
                    .map(|o| Value::Object(o.config.clone()))
                    .collect::<Vec<_>>(),
                "budget": {
                    "max_jobs": env.max_jobs,
                    "jobs_used": usage.jobs,
                    "jobs_left": env.max_jobs.saturating_sub(usage.jobs),
                    "max_walltime_secs": env.max_walltime_secs,
                    "walltime_used_secs": usage.walltime_secs,
                },
                "attempt": attempt,
                "max_attempts": mlres_policy::PROPOSER_ATTEMPTS,
                "rejected": rejected,
                "respond_with": "one JSON object on stdout: {\"hypothesis\": \"<why this config>\", \"config\": {<exactly the parameters of space, each inside its domain>}}; never a config of history or pending",
            });
            let reason = match crate::proposer::run(
                cmd,
                &self.project.root,
                &self.cfg.parent_env,
                &state.to_string(),
            ) {
                Ok(stdout) => match mlres_policy::parse_proposal(space, &stdout, history) {
                    Ok(p) => return Ok(p),
                    Err(why) => why,
                },
                Err(why) => why,
            };
            rejected.push(json!({"attempt": attempt, "reason": reason}));
        }
        Err(rejected
            .iter()
            .map(|r| format!("#{} {}", r["attempt"], r["reason"].as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join("; "))
    }

    /// The proposer's next `n` configurations for the active campaign (or for a campaign not
    /// yet opened: from an empty history), without submitting anything. Each later one
    /// counts the earlier ones as pending, as parallel workers would. Needs the current
    /// program to be approved (suggestions come from the approved search space only).
    pub fn suggest(&self, n: usize) -> Result<Vec<Suggestion>, EngineError> {
        require_approval(&self.ledger, &self.project)?;
        let space = self.space()?.clone();
        let objective = self.objective()?.clone();
        let (mut next, mut history) = match self.current_campaign()? {
            Some(c) if c.status == "active" => (
                self.ledger.max_proposal_index(&c.id)?.map_or(0, |m| m + 1),
                search_history(&self.ledger.experiments(&c.id)?, &objective),
            ),
            _ => (0, Vec::new()),
        };
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let Some((index, config)) = mlres_policy::propose_next(&space, next, &history) else {
                break;
            };
            out.push(Suggestion {
                index,
                method: space.method.name(),
                hypothesis: hypothesis_for(&space, index, &config, &history),
                config: config.clone(),
            });
            history.push(mlres_policy::Observation {
                config,
                outcome: mlres_policy::Outcome::Pending,
            });
            next = index + 1;
        }
        Ok(out)
    }

    /// The standalone autonomous loop. If its state dir vanishes, it stops with
    /// [`mlres_ledger::LedgerError::StateGone`], whatever step noticed first.
    pub fn run_loop(
        &mut self,
        opts: &LoopOptions,
        on_event: &mut dyn FnMut(LoopEvent),
    ) -> Result<LoopSummary, EngineError> {
        self.run_loop_inner(opts, on_event).map_err(|e| {
            // An attempt directory that lost its spec is what a state dir being deleted looks
            // like from inside, before the ledger files go too (a recursive delete takes them
            // in directory order): give the deletion a moment to show before calling it that.
            let vanished = matches!(
                &e,
                EngineError::Backend(mlres_backends::BackendError::NotAnAttempt(_))
            );
            let mut present = self.ledger.check_present();
            if present.is_ok() && vanished {
                std::thread::sleep(Duration::from_millis(300));
                present = self.ledger.check_present();
            }
            match present {
                Err(gone) => gone.into(),
                Ok(()) => e,
            }
        })
    }

    fn run_loop_inner(
        &mut self,
        opts: &LoopOptions,
        on_event: &mut dyn FnMut(LoopEvent),
    ) -> Result<LoopSummary, EngineError> {
        let approval = require_approval(&self.ledger, &self.project)?;
        // Changed code refuses before a campaign is opened or anything is spent.
        self.check_code(&approval)?;
        let objective = self.objective()?.clone();
        let space = self.space()?.clone();
        self.job()?;
        let (campaign, start) = self.open_campaign(opts.fresh)?;
        let _lock = self.loop_lock(&campaign.id)?;
        self.ledger.append_event(
            Some(&campaign.id),
            "loop_started",
            &json!({"start": start, "pid": std::process::id()}),
        )?;
        on_event(LoopEvent::Started {
            campaign: campaign.id.clone(),
            start: start.clone(),
            max_jobs: self.project.program.envelope.max_jobs,
        });
        let envelope = self.project.program.envelope.clone();
        let mut resuming = true;
        let mut exhausted = false;
        let mut stop: Option<StopReason> = None;
        let mut refused_stop: Option<String> = None;
        let mut proposer_failure: Option<String> = None;
        let mut poll = Duration::from_millis(1);
        let mut last_export = Instant::now();
        let mut last_prune = Instant::now();
        loop {
            if opts.interrupt.is_some_and(|i| i.load(Ordering::SeqCst)) {
                return Err(self.interrupted(&campaign)?);
            }
            // A state dir that vanished under the loop ends it with a clear error, never a
            // hang on attempt directories that no longer exist.
            self.ledger.check_present()?;
            self.reconcile(&campaign, resuming, stop.is_none(), on_event)?;
            resuming = false;
            if let Some(reason) = self.hf_state.billing_stop.take()
                && refused_stop.is_none()
            {
                on_event(LoopEvent::Stopping {
                    reason: reason.clone(),
                });
                refused_stop = Some(reason);
                stop = Some(StopReason::OperatorStop);
            }
            let facts = self.facts(&campaign, exhausted)?;
            // Budget that looks exhausted while jobs are in flight may come back when they
            // settle to their actual duration: wait for them instead of stopping.
            let mut blocked = false;
            if stop.is_none()
                && let Some(r) = mlres_policy::stop_reason(&objective, &envelope, &facts)
            {
                if matches!(r, StopReason::BudgetExhausted { .. }) && facts.usage.in_flight > 0 {
                    blocked = true;
                } else {
                    // On an operator stop, `mlres loop stop` has already cancelled the jobs
                    // in flight (or asked to drain them); the loop just waits for them.
                    on_event(LoopEvent::Stopping {
                        reason: r.to_string(),
                    });
                    stop = Some(r);
                }
            }
            let mut progressed = false;
            let may_submit =
                stop.is_none() && !blocked && facts.usage.in_flight < envelope.max_concurrent;
            let mut noise = crate::keep::NoiseStep::Propose;
            if may_submit {
                noise = self.noise_step(&objective, &campaign)?;
            }
            if let crate::keep::NoiseStep::Repeat(req) = &noise {
                match self.submit_repeat(&campaign, req.clone(), facts.usage.in_flight, on_event)? {
                    Some(reason) => {
                        refused_stop = Some(reason);
                        stop = Some(StopReason::OperatorStop);
                    }
                    None => progressed = true,
                }
            }
            if may_submit && matches!(noise, crate::keep::NoiseStep::Propose) {
                let next = self.next_proposal_index(&campaign)?;
                // The history costs a ledger read per proposal: only for the methods that
                // model it, and for random search over a finite space (the only one where two
                // draws can be the same configuration).
                let needs_history = match space.method {
                    mlres_policy::Method::Tpe
                    | mlres_policy::Method::Bayes
                    | mlres_policy::Method::Command => true,
                    mlres_policy::Method::Random => space
                        .parameters
                        .values()
                        .all(|p| mlres_policy::param_size(p).is_some()),
                    mlres_policy::Method::Grid => false,
                };
                let exps = if needs_history {
                    self.ledger.experiments(&campaign.id)?
                } else {
                    Vec::new()
                };
                let history = search_history(&exps, &objective);
                let proposal = if space.method == mlres_policy::Method::Command {
                    match self.command_proposal(&space, &objective, &exps, &history, &facts.usage) {
                        Ok((hypothesis, config)) => Some((next, config, hypothesis)),
                        Err(reasons) => {
                            let message = format!(
                                "the proposer command gave no valid configuration in {} \
                                 attempts: {reasons}",
                                mlres_policy::PROPOSER_ATTEMPTS
                            );
                            on_event(LoopEvent::Refused {
                                code: "proposer_failed".into(),
                                message: message.clone(),
                            });
                            on_event(LoopEvent::Stopping {
                                reason: message.clone(),
                            });
                            refused_stop = Some(message.clone());
                            proposer_failure = Some(message);
                            stop = Some(StopReason::OperatorStop);
                            None
                        }
                    }
                } else {
                    match mlres_policy::propose_next(&space, next, &history) {
                        None => {
                            exhausted = true;
                            None
                        }
                        Some((idx, config)) => {
                            let h = hypothesis_for(&space, idx, &config, &history);
                            Some((idx, config, h))
                        }
                    }
                };
                match proposal {
                    None => {}
                    Some((idx, config, hypothesis)) => {
                        let req = SubmitRequest {
                            config: Value::Object(config.clone()),
                            hypothesis: hypothesis.clone(),
                            source: "loop",
                            proposal_index: Some(idx),
                        };
                        match self.submit(&campaign, req) {
                            Ok(exp) => {
                                progressed = true;
                                on_event(LoopEvent::Submitted {
                                    exp: exp.id,
                                    iter: exp.iter,
                                    hypothesis,
                                    config: Value::Object(config),
                                });
                            }
                            Err(EngineError::Refused { code, message }) => {
                                if facts.usage.in_flight == 0 {
                                    on_event(LoopEvent::Refused {
                                        code,
                                        message: message.clone(),
                                    });
                                    let reason = format!(
                                        "the envelope refused the next experiment: {message}"
                                    );
                                    on_event(LoopEvent::Stopping {
                                        reason: reason.clone(),
                                    });
                                    refused_stop = Some(reason);
                                    stop = Some(StopReason::OperatorStop);
                                }
                            }
                            Err(EngineError::Ledger(
                                mlres_ledger::LedgerError::DuplicateProposal { .. },
                            )) => {
                                progressed = true;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
            let in_flight = self.ledger.usage(&campaign.id)?.in_flight;
            if stop.is_some() && in_flight == 0 {
                // Settle anything finished in the last round, then end.
                self.reconcile(&campaign, false, false, on_event)?;
                if self.ledger.usage(&campaign.id)?.in_flight == 0 {
                    break;
                }
            }
            if last_export.elapsed() > Duration::from_secs(1) {
                export(&self.ledger, &self.project, &campaign.id)?;
                last_export = Instant::now();
            }
            if last_prune.elapsed() > Duration::from_secs(10) {
                self.prune_attempts(&campaign.id)?;
                last_prune = Instant::now();
            }
            if progressed {
                poll = Duration::from_millis(1);
            } else {
                std::thread::sleep(poll);
                poll = (poll * 3 / 2).min(opts.max_poll);
            }
        }
        let status = match (&stop, &refused_stop) {
            (Some(StopReason::OperatorStop), None) => "stopped",
            _ => "finished",
        };
        let reason = match (refused_stop, stop) {
            (Some(r), _) => r,
            // Keep the operator's own words (`mlres loop stop --reason`).
            (None, Some(StopReason::OperatorStop)) => {
                let requested = self
                    .ledger
                    .campaign(&campaign.id)?
                    .and_then(|c| c.stop_reason);
                operator_stop_reason(requested.as_deref())
            }
            (None, Some(r)) => r.to_string(),
            (None, None) => "stopped".into(),
        };
        self.prune_attempts(&campaign.id)?;
        self.ledger.finish_campaign(&campaign.id, status, &reason)?;
        self.ledger.append_event(
            Some(&campaign.id),
            "loop_stopped",
            &json!({"reason": reason}),
        )?;
        let paths = export(&self.ledger, &self.project, &campaign.id)?;
        if let Some(message) = proposer_failure {
            return Err(EngineError::Refused {
                code: "proposer_failed".into(),
                message,
            });
        }
        let exps = self.ledger.experiments(&campaign.id)?;
        let best = crate::keep::reported_best(
            &self.ledger,
            &campaign.id,
            objective.noise.is_some(),
            objective.goal,
            best_experiment(&exps, objective.goal),
        )?;
        Ok(LoopSummary {
            campaign: campaign.id.clone(),
            start,
            stop_reason: reason,
            failed: best.is_none() && status != "stopped",
            experiments: exps.len() as u32,
            best,
            median_metric: median(exps.iter().filter_map(|e| e.metric).collect()),
            ledger_jsonl: paths.ledger_jsonl,
            summary_md: paths.summary_md,
            state_db: self.ledger.db_path(),
        })
    }

    /// The loop was interrupted: records it and says what is left in flight (nothing is
    /// cancelled; the campaign stays active for `mlres loop stop` or a resuming loop).
    fn interrupted(&mut self, campaign: &Campaign) -> Result<EngineError, EngineError> {
        let in_flight: Vec<i64> = self
            .ledger
            .experiments(&campaign.id)?
            .iter()
            .filter(|e| e.state == "reserved" || e.state == "submitted")
            .map(|e| e.id)
            .collect();
        self.ledger.append_event(
            Some(&campaign.id),
            "loop_interrupted",
            &json!({"in_flight": in_flight, "pid": std::process::id()}),
        )?;
        export(&self.ledger, &self.project, &campaign.id)?;
        Ok(EngineError::Interrupted {
            campaign: campaign.id.clone(),
            in_flight,
        })
    }

    fn loop_lock(&self, campaign: &str) -> Result<File, EngineError> {
        let dir = self.cfg.state_dir.join("locks");
        std::fs::create_dir_all(&dir)
            .map_err(EngineError::io("cannot create the locks directory"))?;
        let path = dir.join(format!("{campaign}.loop"));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(EngineError::io(format!("cannot open {}", path.display())))?;
        // A loop killed a moment ago can leave its lock held for a few milliseconds by a
        // child it forked but that has not yet exec'd (flock locks are shared across fork;
        // close-on-exec releases them at exec). So wait a little before calling it busy.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match f.try_lock() {
                Ok(()) => return Ok(f),
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(EngineError::LoopBusy(campaign.to_string()));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(EngineError::Io {
                        context: format!("cannot lock {}", path.display()),
                        source: e,
                    });
                }
            }
        }
    }

    fn cancel_in_flight(&mut self, campaign: &Campaign) -> Result<u32, EngineError> {
        let mut n = 0;
        for e in self.ledger.experiments(&campaign.id)? {
            match e.state.as_str() {
                "submitted" => {
                    if let Some(h) = &e.handle {
                        let dir = Path::new(h);
                        // An attempt nobody claimed yet is voided so it can never start.
                        if void_attempt_dir(dir)? {
                            self.ledger
                                .void_attempt(e.id, e.attempt, "cancelled before start")?;
                            self.ledger.release(e.id, "operator stop")?;
                        } else {
                            mlres_backends::cancel(dir)?;
                        }
                        n += 1;
                    }
                }
                "reserved" => {
                    self.ledger.release(e.id, "operator stop")?;
                    n += 1;
                }
                _ => {}
            }
        }
        Ok(n)
    }

    /// `mlres loop stop`: asks the running loop to stop; unless `drain`, cancels jobs in flight.
    /// A campaign that has already ended is left as it is (its stop reason is history).
    pub fn stop(&mut self, reason: &str, drain: bool) -> Result<StopOutcome, EngineError> {
        self.stop_reporting(reason, drain, &mut |_e| {})
    }

    /// [`Engine::stop`], reporting what reconciliation did (e.g. hf-jobs cancelled because
    /// the ledger does not know them).
    pub fn stop_reporting(
        &mut self,
        reason: &str,
        drain: bool,
        on_event: &mut dyn FnMut(LoopEvent),
    ) -> Result<StopOutcome, EngineError> {
        let c = self
            .current_campaign()?
            .ok_or_else(|| EngineError::NoCampaign(self.project.root.clone()))?;
        let ended = |c: Campaign| StopOutcome {
            campaign: c,
            cancelled: 0,
            already_ended: true,
        };
        if c.status != "active" {
            return Ok(ended(c));
        }
        match self.ledger.request_stop(&c.id, reason) {
            Ok(()) => {}
            // It ended between the read and the request: same answer.
            Err(mlres_ledger::LedgerError::InvalidCampaignTransition { .. }) => {
                let now = self.ledger.campaign(&c.id)?.unwrap_or(c);
                return Ok(ended(now));
            }
            Err(e) => return Err(e.into()),
        }
        let n = if drain { 0 } else { self.cancel_in_flight(&c)? };
        // If no loop is running, settle now so the campaign does not stay active forever.
        self.reconcile(&c, false, false, on_event)?;
        if let Some(error) = self.slurm_sweep(&c, true, on_event)? {
            return Err(EngineError::StopIncomplete {
                campaign: c.id.clone(),
                cancelled: n,
                namespace: "slurm".into(),
                error,
            });
        }
        if let Some(error) = self.hf_sweep(&c, true, on_event)? {
            // Nothing was checked: the campaign stays active with its stop requested, so
            // running `mlres loop stop` again (or a running loop) retries the sweep.
            return Err(EngineError::StopIncomplete {
                campaign: c.id.clone(),
                cancelled: n,
                namespace: self.hf_namespace()?,
                error,
            });
        }
        self.settle_if_stopped(&c.id, true)?;
        Ok(StopOutcome {
            campaign: self.ledger.campaign(&c.id)?.unwrap_or(c),
            cancelled: n,
            already_ended: false,
        })
    }

    /// A campaign whose stop was requested ends once nothing is in flight, unless a loop is
    /// running (the loop ends it itself). An hf-jobs campaign ends only after a sweep of its
    /// namespace succeeded (`swept`: the caller just did one): one that failed leaves it
    /// active, so `mlres loop stop` can retry.
    fn settle_if_stopped(&mut self, campaign: &str, swept: bool) -> Result<(), EngineError> {
        let Some(c) = self.ledger.campaign(campaign)? else {
            return Ok(());
        };
        if c.status != "active" || !c.stop_requested {
            return Ok(());
        }
        if self.ledger.usage(campaign)?.in_flight > 0 {
            return Ok(());
        }
        if let Ok(_lock) = self.loop_lock(campaign) {
            // Cancellations are recorded in the ledger by the sweep itself.
            if !swept && self.hf_sweep(&c, true, &mut |_e| {})?.is_some() {
                return Ok(());
            }
            let reason = operator_stop_reason(c.stop_reason.as_deref());
            self.ledger.finish_campaign(campaign, "stopped", &reason)?;
            export(&self.ledger, &self.project, campaign)?;
        }
        Ok(())
    }

    /// Waits for one experiment to finish and be evaluated.
    pub fn wait(&mut self, exp_id: i64, timeout: Duration) -> Result<Experiment, EngineError> {
        let start = Instant::now();
        let mut poll = Duration::from_millis(1);
        let mut sink = |_e: LoopEvent| {};
        loop {
            self.ledger.check_present()?;
            let exp = self
                .ledger
                .experiment(exp_id)?
                .ok_or(EngineError::UnknownExperiment(exp_id))?;
            if exp.state == "evaluated" || exp.state == "released" {
                return Ok(exp);
            }
            let c = self
                .ledger
                .campaign(&exp.campaign)?
                .ok_or(EngineError::UnknownExperiment(exp_id))?;
            self.reconcile(&c, false, true, &mut sink)?;
            let exp = self
                .ledger
                .experiment(exp_id)?
                .ok_or(EngineError::UnknownExperiment(exp_id))?;
            if exp.state == "evaluated" || exp.state == "released" {
                self.settle_if_stopped(&c.id, false)?;
                let _ = export(&self.ledger, &self.project, &c.id);
                return Ok(exp);
            }
            if start.elapsed() >= timeout {
                return Err(EngineError::WaitTimeout(exp_id));
            }
            std::thread::sleep(poll);
            poll = (poll * 3 / 2).min(Duration::from_millis(200));
        }
    }

    /// One experiment, reconciled first.
    pub fn experiment_status(&mut self, exp_id: i64) -> Result<Experiment, EngineError> {
        let exp = self
            .ledger
            .experiment(exp_id)?
            .ok_or(EngineError::UnknownExperiment(exp_id))?;
        if let Some(c) = self.ledger.campaign(&exp.campaign)? {
            if c.project_root != self.project.root_str() {
                return Err(EngineError::UnknownExperiment(exp_id));
            }
            let mut sink = |_e: LoopEvent| {};
            self.reconcile(&c, false, false, &mut sink)?;
        }
        Ok(self.ledger.experiment(exp_id)?.unwrap_or(exp))
    }

    /// `mlres loop status` as data (reconciles first so numbers are current).
    pub fn status(&mut self) -> Result<StatusReport, EngineError> {
        self.status_page(STATUS_PAGE_LIMIT, None)
    }

    /// [`Engine::status`] showing at most `limit` experiments with iter below `before_iter`.
    /// Counts, budget, best and in-flight always cover the whole campaign.
    pub fn status_page(
        &mut self,
        limit: usize,
        before_iter: Option<u32>,
    ) -> Result<StatusReport, EngineError> {
        let approval = crate::project::approval_status(&self.ledger, &self.project)?;
        let campaign = self.current_campaign()?;
        let env = self.project.program.envelope.clone();
        let env = &env;
        let objective = self.project.program.objective.clone();
        let mut report = StatusReport {
            project: self.project.root.clone(),
            approval: approval.label().to_string(),
            campaign: campaign.clone(),
            metric: objective.as_ref().map(|o| o.metric.clone()),
            goal: objective.as_ref().map(|o| match o.goal {
                Goal::Maximize => "maximize".to_string(),
                Goal::Minimize => "minimize".to_string(),
            }),
            target: objective.as_ref().and_then(|o| o.target),
            budget: json!({}),
            best: None,
            in_flight: vec![],
            experiments: vec![],
            page: StatusPage {
                limit,
                before_iter,
                ..StatusPage::default()
            },
            stop_reason: None,
            keep_rule: objective.as_ref().map(crate::export::keep_rule),
        };
        let Some(c) = campaign else {
            report.budget = budget_json(env, &mlres_ledger::Usage::default(), self.slurm_gpus_if());
            return Ok(report);
        };
        if c.status == "active" {
            let mut sink = |_e: LoopEvent| {};
            self.reconcile(&c, false, false, &mut sink)?;
            self.settle_if_stopped(&c.id, false)?;
        }
        let usage = self.ledger.usage(&c.id)?;
        report.budget = budget_json(env, &usage, self.slurm_gpus_if());
        if let Some(o) = &objective {
            // The best is always a kept experiment (keep = improved on the best so far); with
            // `noise:` the incumbent with its mean over its runs.
            let single = best_experiment(&self.ledger.kept_experiments(&c.id)?, o.goal);
            report.best =
                crate::keep::reported_best(&self.ledger, &c.id, o.noise.is_some(), o.goal, single)?;
        }
        report.in_flight = self
            .ledger
            .open_experiments(&c.id)?
            .iter()
            .filter(|e| e.state == "reserved" || e.state == "submitted")
            .map(|e| e.id)
            .collect();
        let (exps, total) = self.ledger.experiments_page(&c.id, limit, before_iter)?;
        let from = exps.iter().map(|e| e.id).min().unwrap_or(i64::MAX);
        let mut evidence = self.ledger.evidence_from(&c.id, from)?;
        report.page.total = total;
        report.page.next_before_iter = exps.first().map(|e| e.iter).filter(|i| *i > 1);
        report.experiments = exps
            .iter()
            .map(|e| ExperimentRow {
                id: e.id,
                iter: e.iter,
                state: e.state.clone(),
                status: e.status.clone(),
                metric: e.metric,
                decision: e.decision.clone(),
                hypothesis: e.hypothesis.clone(),
                config: e.config.clone(),
                reason: e.decision_reason.clone(),
                evidence: evidence.remove(&e.id),
            })
            .collect();
        let fresh = self.ledger.campaign(&c.id)?.unwrap_or(c);
        report.stop_reason = if fresh.status == "active" {
            match (&objective, self.job()) {
                (Some(o), Ok(_)) => {
                    let facts = self.facts(&fresh, false)?;
                    mlres_policy::stop_reason(o, env, &facts).map(|r| r.to_string())
                }
                _ => None,
            }
        } else {
            fresh.stop_reason.clone()
        };
        // Stopping: the operator's reason, not just the rule that will end it.
        if fresh.status == "active" && fresh.stop_requested {
            report.stop_reason = Some(operator_stop_reason(fresh.stop_reason.as_deref()));
        }
        report.campaign = Some(fresh);
        Ok(report)
    }
}

/// The state of an attempt directory, including the ones a crash left half-prepared (the
/// engine crashed after marking the attempt submitted but before its `spec.json` existed).
fn attempt_state(dir: &Path) -> Result<AttemptState, EngineError> {
    if dir.join("spec.json").exists() {
        return Ok(mlres_backends::poll(dir)?);
    }
    match std::fs::read_to_string(dir.join("claim")) {
        Ok(c) if c.trim() == "void" => Ok(AttemptState::Voided),
        Ok(_) => Ok(mlres_backends::poll(dir)?),
        Err(_) => Ok(AttemptState::NotClaimed),
    }
}

/// Makes sure an attempt can never start: wins its `claim` as "void". `Ok(false)` means a
/// supervisor claimed it first (the job is running or ran).
fn void_attempt_dir(dir: &Path) -> Result<bool, EngineError> {
    if dir.join("spec.json").exists() {
        return Ok(mlres_backends::claim_void(dir)?);
    }
    // Half-prepared (or never created): claim it with the same exclusive, complete-file protocol
    // the supervisor uses (hard link of a fully written temp file), so `prepare_attempt` or a
    // late supervisor can never run it.
    std::fs::create_dir_all(dir)
        .map_err(EngineError::io(format!("cannot create {}", dir.display())))?;
    let tmp = dir.join(format!(".claim.void.{}", std::process::id()));
    std::fs::write(&tmp, b"void\n")
        .map_err(EngineError::io(format!("cannot write {}", tmp.display())))?;
    let won = match std::fs::hard_link(&tmp, dir.join("claim")) {
        Ok(()) => true,
        // Claimed already: by a supervisor (it runs) or by an earlier void (the next reconcile
        // sees `Voided` and settles the ledger).
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(EngineError::Io {
                context: format!("cannot claim {}", dir.display()),
                source: e,
            });
        }
    };
    let _ = std::fs::remove_file(&tmp);
    Ok(won)
}

/// How an operator stop is recorded and shown: the rule's wording plus the operator's reason.
fn operator_stop_reason(requested: Option<&str>) -> String {
    match requested.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => format!("{}: {r}", StopReason::OperatorStop),
        None => StopReason::OperatorStop.to_string(),
    }
}

fn budget_json(
    env: &mlres_policy::Envelope,
    u: &mlres_ledger::Usage,
    slurm_gpus: Option<u32>,
) -> Value {
    let mut v = json!({
        "jobs": {"used": u.jobs, "max": env.max_jobs},
        "walltime_secs": {"used": u.walltime_secs, "max": env.max_walltime_secs, "final_reserve": env.final_reserve_secs},
        "cost_usd": {"used": u.cost_micro as f64 / 1e6, "max": env.max_cost_usd.as_ref().map(|m| m.micro_usd as f64 / 1e6)},
        "in_flight": {"now": u.in_flight, "max": env.max_concurrent},
    });
    // Slurm: GPU-hours, used = GPUs per job × walltime (settled to Slurm's elapsed time).
    if let Some(gpus) = slurm_gpus {
        v["gpu_hours"] = json!({
            "used": crate::slurm::campaign_gpu_secs(gpus, u.walltime_secs) as f64 / 3600.0,
            "max": env.max_gpu_secs.map(|s| s as f64 / 3600.0),
            "gpus_per_job": gpus,
        });
    }
    v
}

/// With `noise:`: how many runs an evaluation's recorded best so far is the mean of.
fn best_runs(rec: &EvalRecord) -> Option<u32> {
    rec.evidence
        .as_ref()
        .and_then(|e| e["best_runs"].as_u64())
        .and_then(|n| u32::try_from(n).ok())
}

/// Whether an experiment's metric may be a campaign's best: a completed job, not anomalous.
pub(crate) fn counts_for_best(e: &Experiment) -> bool {
    e.decision.as_deref() != Some("anomalous") && e.status.as_deref() == Some("completed")
}

pub(crate) fn best_experiment(exps: &[Experiment], goal: Goal) -> Option<BestExperiment> {
    let mut best: Option<&Experiment> = None;
    for e in exps {
        let Some(m) = e.metric else { continue };
        if !counts_for_best(e) {
            continue;
        }
        let better = match best.and_then(|b| b.metric) {
            None => true,
            Some(b) => match goal {
                Goal::Maximize => m > b,
                Goal::Minimize => m < b,
            },
        };
        if better {
            best = Some(e);
        }
    }
    best.map(|e| {
        let checkpoint = e.handle.as_ref().and_then(|h| {
            let dir = Path::new(h).join("work");
            std::fs::read_dir(&dir)
                .ok()?
                .flatten()
                .map(|d| d.path())
                .find(|p| p.extension().and_then(|x| x.to_str()) == Some("safetensors"))
        });
        BestExperiment {
            id: e.id,
            iter: e.iter,
            metric: e.metric.unwrap_or(f64::NAN),
            config: e.config.clone(),
            hypothesis: e.hypothesis.clone(),
            checkpoint,
            runs: None,
            best_single: None,
        }
    })
}

pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// One configuration [`Engine::suggest`] proposes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    /// The proposer's index for it (the loop would record it as the proposal index).
    pub index: u64,
    /// The search method that proposed it.
    pub method: &'static str,
    /// What the loop would record as its hypothesis.
    pub hypothesis: String,
    /// The configuration, valid in the approved search space.
    pub config: mlres_policy::Config,
}

/// The campaign's experiments as the proposer sees them, in ledger order: evaluated ones
/// with a finite metric that was not found anomalous are done (loss = the metric,
/// negated when it is maximised); ones still reserved, submitted or awaiting evaluation are
/// pending; the rest failed. Released reservations never ran and are left out.
pub fn proposal_history(exps: &[Experiment], goal: Goal) -> Vec<mlres_policy::Observation> {
    use mlres_ledger::state;
    use mlres_policy::Outcome;
    exps.iter()
        .filter(|e| e.state != state::RELEASED)
        .filter_map(|e| {
            let config = e.config.as_object()?.clone();
            let outcome = if e.state == state::EVALUATED {
                match e.metric {
                    Some(m) if m.is_finite() && e.decision.as_deref() != Some("anomalous") => {
                        Outcome::Done(if goal == Goal::Maximize { -m } else { m })
                    }
                    _ => Outcome::Failed,
                }
            } else if e.state == state::FINISHED && e.status.as_deref() != Some("completed") {
                Outcome::Failed
            } else {
                Outcome::Pending
            };
            Some(mlres_policy::Observation { config, outcome })
        })
        .collect()
}

/// [`proposal_history`] as the search method sees it. Under `noise:` a configuration run
/// several times (the incumbent and its repeats) is one observation, its runs' mean (pending
/// while none has completed, failed when all failed): repeats of the incumbent measure noise,
/// they are not trials of the search, so they neither count towards a proposer's trials (TPE's
/// startup) nor weigh its model once per seed. Without `noise:` it is [`proposal_history`].
pub fn search_history(
    exps: &[Experiment],
    objective: &Objective,
) -> Vec<mlres_policy::Observation> {
    use mlres_policy::Outcome;
    let history = proposal_history(exps, objective.goal);
    if objective.noise.is_none() {
        return history;
    }
    let mut out: Vec<mlres_policy::Observation> = Vec::with_capacity(history.len());
    let mut done: Vec<Vec<f64>> = Vec::with_capacity(history.len());
    let mut at: BTreeMap<String, usize> = BTreeMap::new();
    for o in history {
        let key = mlres_policy::config_key(&Value::Object(o.config.clone()));
        let i = *at.entry(key).or_insert_with(|| {
            out.push(mlres_policy::Observation {
                config: o.config.clone(),
                outcome: Outcome::Failed,
            });
            done.push(Vec::new());
            out.len() - 1
        });
        match o.outcome {
            Outcome::Done(l) => done[i].push(l),
            Outcome::Pending => out[i].outcome = Outcome::Pending,
            Outcome::Failed => {}
        }
    }
    for (o, d) in out.iter_mut().zip(done) {
        if !d.is_empty() {
            o.outcome = Outcome::Done(d.iter().sum::<f64>() / d.len() as f64);
        }
    }
    out
}

fn hypothesis_for(
    space: &SearchSpace,
    idx: u64,
    config: &mlres_policy::Config,
    history: &[mlres_policy::Observation],
) -> String {
    let settings: Vec<String> = config.iter().map(|(k, v)| format!("{k}={v}")).collect();
    match (space.method, mlres_policy::grid_size(space)) {
        (mlres_policy::Method::Grid, Some(n)) => {
            format!("grid point {}/{}: {}", idx + 1, n, settings.join(", "))
        }
        (
            m @ (mlres_policy::Method::Tpe
            | mlres_policy::Method::Bayes
            | mlres_policy::Method::Command),
            _,
        ) => {
            let done = history
                .iter()
                .filter(|o| matches!(o.outcome, mlres_policy::Outcome::Done(_)))
                .count();
            format!(
                "{} proposal #{} (seed {}, from {} completed): {}",
                if m == mlres_policy::Method::Bayes {
                    "bayes"
                } else {
                    "tpe"
                },
                idx + 1,
                space.seed,
                done,
                settings.join(", ")
            )
        }
        _ => format!(
            "random sample #{} (seed {}): {}",
            idx + 1,
            space.seed,
            settings.join(", ")
        ),
    }
}

pub(crate) fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Local => "local",
        Backend::HfJobs => "hf-jobs",
        Backend::Slurm => "slurm",
    }
}

fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Completed => "completed",
        Outcome::Failed => "failed",
        Outcome::TimedOut => "timed_out",
        Outcome::Cancelled => "cancelled",
        Outcome::MemoryExceeded => "memory_exceeded",
        Outcome::StartFailed => "start_failed",
    }
}

fn decision_name(d: Decision) -> &'static str {
    match d {
        Decision::Keep => "keep",
        Decision::Discard => "discard",
        Decision::Anomalous => "anomalous",
    }
}

/// The refusal when the latest campaign has ended (or a fresh one was asked for) and no human
/// approval has been given since.
fn needs_approval(c: &Campaign) -> EngineError {
    EngineError::Refused {
        code: "campaign_finished".into(),
        message: format!(
            "campaign {} is {} ({}); a new campaign needs a new human approval: run `mlres approve`",
            c.id,
            if c.status == "active" {
                "still active"
            } else {
                c.status.as_str()
            },
            c.stop_reason.clone().unwrap_or_default()
        ),
    }
}
