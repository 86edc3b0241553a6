//! The hf-jobs backend in the engine: the live catalog price and a money reservation before
//! a submit, the attempt files and credentials of the hf supervisor, settlement in money,
//! 402 handling, and reconciliation of the namespace's jobs against the ledger (unknown and
//! foreign jobs are cancelled and reported; jobs over their reservation are cancelled).
//!
//! The token only ever travels in memory and in the supervisor's environment
//! ([`SUPERVISOR_TOKEN_ENV`]); it is never written to an attempt file, the ledger or an event.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlres_backends::{HfJobFile, LocalJobSpec, NetworkPolicy};
use mlres_hf::{Endpoint, HfClient, HfError, JobInfo, JobStage, ListFilter, RequestBudget, Token};
use mlres_ledger::{Campaign, Experiment, FinishRecord, RemoteJob};
use mlres_policy::{Backend, JobTemplate};
use serde::Serialize;
use serde_json::{Value, json};

use crate::EngineError;
use crate::run::{Engine, LoopEvent};
use crate::time::parse_iso8601_ms;

/// Environment variable of the supervisor process that carries the API token.
pub const SUPERVISOR_TOKEN_ENV: &str = "MLRES_HF_SUPERVISOR_TOKEN";
/// Environment variable of the supervisor process that carries the job's secret values (JSON).
pub const SUPERVISOR_SECRETS_ENV: &str = "MLRES_HF_SUPERVISOR_SECRETS";
/// Label keys mlres puts on every job.
pub const LABEL_CAMPAIGN: &str = "mlres-campaign";
/// Experiment id label.
pub const LABEL_EXP: &str = "mlres-exp";
/// Attempt label.
pub const LABEL_ATTEMPT: &str = "mlres-attempt";

/// Names that carry a Hugging Face token: only the token rule may set them in a job.
const TOKEN_NAMES: &[&str] = &["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_API_TOKEN"];

/// What the binary resolved for the hf-jobs backend.
#[derive(Debug, Clone)]
pub struct HfSettings {
    /// `HF_ENDPOINT`.
    pub endpoint: Endpoint,
    /// The user token (resolved like `huggingface_hub`).
    pub token: Option<Token>,
    /// A job-scoped token (`MLRES_HF_JOB_TOKEN`): what jobs get as `HF_TOKEN`.
    pub job_token: Option<Token>,
    /// Least time between two listings of the namespace's jobs while a campaign runs.
    pub reconcile_interval: Duration,
    /// Longest interval between two status polls of the supervisor, ms.
    pub poll_ms: u64,
    /// API requests per minute the loop and its supervisors may make together (a token
    /// bucket in the state dir; see [`mlres_hf::budget`]).
    pub requests_per_minute: u32,
}

impl HfSettings {
    /// Settings with the default intervals (reconcile every 10 s, poll every 2 s at most).
    pub fn new(endpoint: Endpoint, token: Option<Token>) -> HfSettings {
        HfSettings {
            endpoint,
            token,
            job_token: None,
            reconcile_interval: Duration::from_secs(10),
            poll_ms: 2000,
            requests_per_minute: mlres_hf::DEFAULT_REQUESTS_PER_MINUTE,
        }
    }
}

/// Per-engine hf state (caches, rate limit, what was reported).
#[derive(Default)]
pub(crate) struct HfState {
    client: Option<Arc<HfClient>>,
    last_sweep: Option<Instant>,
    /// Pages the last sweep's listing took (it spaces sweeps so they use at most a quarter
    /// of the request budget).
    last_sweep_pages: u32,
    /// Sweeps so far: every [`FULL_SWEEP_EVERY`]th lists every stage.
    sweeps: u64,
    reported: HashSet<String>,
    recorded: HashSet<String>,
    /// Set when a job was refused with 402: the loop stops with this reason.
    pub(crate) billing_stop: Option<String>,
}

/// A job of the namespace as `mlres jobs list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteJobView {
    pub id: String,
    pub stage: String,
    pub flavor: Option<String>,
    pub image: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub created_at: Option<String>,
    pub running_secs: Option<f64>,
    pub message: Option<String>,
    /// The ledger's experiment for this job, if mlres knows it.
    pub known: Option<KnownJob>,
}

/// How mlres knows a job.
#[derive(Debug, Clone, Serialize)]
pub struct KnownJob {
    pub campaign: String,
    pub exp: i64,
    pub attempt: u32,
    pub state: String,
}

pub(crate) fn refused(code: &str, message: impl Into<String>) -> EngineError {
    EngineError::Refused {
        code: code.into(),
        message: message.into(),
    }
}

/// API errors as engine errors: 402 is a refusal (`billing`) that explains what to do.
pub(crate) fn hf_err(e: HfError) -> EngineError {
    match e {
        e @ HfError::PaymentRequired { .. } => refused(
            "billing",
            format!(
                "{e}. The loop stops: add credits to the namespace, then resume with `mlres loop run`"
            ),
        ),
        e => EngineError::Hf(e),
    }
}

/// Cost of a finished hf-jobs attempt: the catalog price × the API's billed running time
/// (rounded up to the second, then to the micro-dollar).
pub fn settled_cost_micro(r: &mlres_backends::RemoteStatus) -> u64 {
    let secs = r
        .running_secs
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|s| s.ceil() as u64)
        .unwrap_or(0);
    mlres_policy::job_cost_micro(r.micro_usd_per_minute, secs)
}

enum Verdict {
    Keep,
    Cancel {
        reason: String,
        dir: Option<PathBuf>,
    },
}

impl Engine {
    pub(crate) fn uses_hf(&self) -> bool {
        self.project
            .program
            .job
            .as_ref()
            .is_some_and(|j| j.backend == Backend::HfJobs)
    }

    fn hf_settings(&self) -> Result<&HfSettings, EngineError> {
        self.cfg.hf.as_ref().ok_or_else(|| {
            refused(
                "no_hf",
                "the hf-jobs backend is unavailable: HF_ENDPOINT is not a usable http(s) URL \
                 (or this front end has no Hugging Face settings); nothing was submitted",
            )
        })
    }

    /// The API client (with the user token); refused without a token.
    pub fn hf_client(&mut self) -> Result<Arc<HfClient>, EngineError> {
        if let Some(c) = &self.hf_state.client {
            return Ok(c.clone());
        }
        let s = self.hf_settings()?;
        let token = s.token.clone().ok_or_else(|| {
            refused(
                "no_token",
                "hf-jobs needs a Hugging Face token: set HF_TOKEN (or log in so that \
                 ~/.cache/huggingface/token exists); nothing was submitted",
            )
        })?;
        let budget = Arc::new(RequestBudget::new(
            s.requests_per_minute,
            Some(budget_file(&self.cfg.state_dir)),
        ));
        let c =
            Arc::new(HfClient::new(s.endpoint.clone(), Some(token)).with_request_budget(budget));
        self.hf_state.client = Some(c.clone());
        Ok(c)
    }

    /// The envelope's namespace (required for hf-jobs by the parser).
    pub fn hf_namespace(&self) -> Result<String, EngineError> {
        self.project.program.envelope.namespace.clone().ok_or_else(|| {
            refused(
                "namespace",
                "the envelope names no namespace; hf-jobs needs `namespace:` in the budget envelope",
            )
        })
    }

    /// The live catalog price of `flavor` (micro-USD per minute; `None`: listed without a
    /// price). A flavor the catalog does not list is refused (`flavor`).
    pub(crate) fn hf_price(&mut self, flavor: &str) -> Result<Option<u64>, EngineError> {
        let client = self.hf_client()?;
        let hw = client.hardware().map_err(hf_err)?;
        match hw.iter().find(|h| h.name == flavor) {
            Some(h) => Ok(h.micro_usd_per_minute()),
            None => Err(refused(
                "flavor",
                format!(
                    "flavor `{flavor}` is not in the live hardware catalog of {} ({} flavors listed); \
                     choose a listed flavor (that needs a new approval); nothing was submitted",
                    client.endpoint().as_str(),
                    hw.len()
                ),
            )),
        }
    }

    /// Before a reservation: the flavor against the envelope and the live catalog, and the
    /// worst-case cost (price × timeout). Returns (cost, price). Refusals are recorded in the
    /// ledger as `spend_refused` with nothing reserved.
    pub(crate) fn hf_preflight(
        &mut self,
        campaign: Option<&str>,
        flavor: &str,
        timeout_secs: u64,
    ) -> Result<(u64, u64), EngineError> {
        let r = (|| {
            let env = &self.project.program.envelope;
            if !env.allowed_flavors.iter().any(|f| f == flavor) {
                return Err(refused(
                    "flavor",
                    format!(
                        "flavor `{flavor}` is not allowed by the approved envelope (allowed: {}); nothing was submitted",
                        env.allowed_flavors.join(", ")
                    ),
                ));
            }
            let price = self.hf_price(flavor)?;
            let cost = mlres_policy::priced_cost_micro(flavor, price, timeout_secs)
                .map_err(|r| refused(r.code, r.message))?;
            Ok((cost, price.unwrap_or(0)))
        })();
        if let Err(EngineError::Refused { code, message }) = &r {
            self.ledger.append_event(
                campaign,
                "spend_refused",
                &json!({"code": code, "message": message, "backend": "hf-jobs", "flavor": flavor}),
            )?;
        }
        r
    }

    /// The secrets a job gets (names and values). Template `secrets` come from the parent
    /// environment, except token names; `HF_TOKEN` follows the token rule: the job-scoped
    /// token if configured, else the user token only if the envelope says
    /// `user_token_in_jobs: true`, else none.
    fn hf_job_secrets(&self, job: &JobTemplate) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for name in &job.secrets {
            if TOKEN_NAMES.contains(&name.as_str()) {
                continue;
            }
            if let Some(v) = self.cfg.parent_env.get(name) {
                out.insert(name.clone(), v.clone());
            }
        }
        if let Some(s) = &self.cfg.hf {
            let token = match (&s.job_token, &s.token) {
                (Some(t), _) => Some(t),
                (None, Some(t)) if self.project.program.envelope.user_token_in_jobs => Some(t),
                _ => None,
            };
            if let Some(t) = token {
                out.insert("HF_TOKEN".into(), t.expose().to_string());
            }
        }
        out
    }

    /// Marks the attempt submitted, writes `hfjob.json` + `spec.json` and starts the detached
    /// hf supervisor with the token in its environment only. With `code`, the snapshot's one
    /// script is shipped in the job's environment the way `hf jobs uv run` ships a local
    /// script (see [`mlres_hf::ship_local_files`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn launch_hf(
        &mut self,
        campaign: &Campaign,
        exp: &Experiment,
        attempt: u32,
        dir: &Path,
        argv: Vec<String>,
        price: Option<u64>,
        code: Option<&crate::code::PinnedCode>,
    ) -> Result<(), EngineError> {
        let job = self
            .project
            .program
            .job
            .clone()
            .ok_or(EngineError::MissingSection("Job"))?;
        let client = self.hf_client()?;
        let token = self
            .hf_settings()?
            .token
            .clone()
            .ok_or_else(|| refused("no_token", "hf-jobs needs a Hugging Face token"))?;
        let price = match price {
            Some(p) => p,
            None => {
                let p = self.hf_price(&exp.flavor)?;
                mlres_policy::priced_cost_micro(&exp.flavor, p, exp.timeout_secs)
                    .map_err(|r| refused(r.code, r.message))?;
                p.unwrap_or(0)
            }
        };
        let namespace = self.hf_namespace()?;
        let image = job.image.clone().ok_or_else(|| {
            refused(
                "image",
                "a job with `backend: hf-jobs` needs an approved `image`",
            )
        })?;
        let mut env = job.env.clone();
        env.insert("PYTHONUNBUFFERED".into(), "1".into());
        env.insert("MLRES_CAMPAIGN".into(), campaign.id.clone());
        env.insert("MLRES_EXP_ID".into(), exp.id.to_string());
        env.insert("MLRES_ITER".into(), exp.iter.to_string());
        let argv = match code {
            None => argv,
            Some(c) => {
                let (name, bytes) = shipped_code(c)?;
                let (command, value) =
                    mlres_hf::ship_local_files(&[(name.as_str(), &bytes)], &argv)
                        .map_err(|m| refused("code_not_shippable", m))?;
                env.insert(mlres_hf::LOCAL_FILES_ENV.into(), value);
                command
            }
        };
        let secrets = self.hf_job_secrets(&job);
        let labels: BTreeMap<String, String> = [
            (LABEL_CAMPAIGN.to_string(), campaign.id.clone()),
            (LABEL_EXP.to_string(), exp.id.to_string()),
            (LABEL_ATTEMPT.to_string(), attempt.to_string()),
        ]
        .into_iter()
        .collect();
        let settings = self.hf_settings()?;
        let hf = HfJobFile {
            endpoint: client.endpoint().as_str().to_string(),
            namespace,
            flavor: exp.flavor.clone(),
            image,
            command: argv.clone(),
            environment: env.clone(),
            secret_names: secrets.keys().cloned().collect(),
            labels,
            timeout_secs: exp.timeout_secs,
            micro_usd_per_minute: price,
            log_cap_bytes: job.limits.log_bytes,
            poll_ms: settings.poll_ms,
            requests_per_minute: Some(settings.requests_per_minute),
            budget_file: Some(budget_file(&self.cfg.state_dir)),
        };
        let spec = LocalJobSpec {
            argv,
            env,
            timeout_secs: exp.timeout_secs,
            kill_grace_secs: 5,
            limits: mlres_backends::Limits::default(),
            log_cap_bytes: job.limits.log_bytes,
            network: NetworkPolicy::Host,
            read_only: Vec::new(),
            masked: Vec::new(),
            gpus: None,
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
        mlres_backends::prepare_hf_attempt(dir, &spec, &hf)?;
        let secrets_json = serde_json::to_string(&secrets).unwrap_or_else(|_| "{}".into());
        let mut cmd = std::process::Command::new(&self.cfg.exe);
        cmd.arg("__supervise")
            .arg(dir)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env(SUPERVISOR_TOKEN_ENV, token.expose())
            .env(SUPERVISOR_SECRETS_ENV, secrets_json);
        mlres_backends::launch(dir, &cmd)?;
        self.launched_here.insert((exp.id, attempt));
        Ok(())
    }

    /// Records the remote job of a running hf attempt in the ledger (once).
    pub(crate) fn hf_note_remote(
        &mut self,
        exp: &Experiment,
        dir: &Path,
    ) -> Result<(), EngineError> {
        let key = format!("{}:{}", exp.id, exp.attempt);
        if self.hf_state.recorded.contains(&key) || !mlres_backends::is_hf_attempt(dir) {
            return Ok(());
        }
        if let Some(r) = mlres_backends::read_remote_job(dir)? {
            self.ledger
                .record_remote_job(exp.id, exp.attempt, &r.namespace, &r.id)?;
            self.hf_state.recorded.insert(key);
        }
        Ok(())
    }

    /// After `mark_finished` of an hf attempt: records its job and handles a 402.
    pub(crate) fn hf_after_finish(
        &mut self,
        exp: &Experiment,
        r: &mlres_backends::RemoteStatus,
        on_event: &mut dyn FnMut(LoopEvent),
    ) -> Result<(), EngineError> {
        if let Some(id) = &r.job_id {
            self.ledger
                .record_remote_job(exp.id, exp.attempt, &r.namespace, id)?;
        }
        if r.error_code.as_deref() == Some("payment_required") {
            let reason = format!(
                "402 Payment Required: namespace {} has no credits left; nothing more is \
                 submitted. Add credits (https://huggingface.co/settings/billing), then resume \
                 with `mlres loop run`",
                r.namespace
            );
            match self.ledger.request_stop(&exp.campaign, &reason) {
                // An ended campaign spends nothing more anyway.
                Ok(()) | Err(mlres_ledger::LedgerError::InvalidCampaignTransition { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            on_event(LoopEvent::Refused {
                code: "billing".into(),
                message: reason.clone(),
            });
            self.hf_state.billing_stop = Some(reason);
        }
        Ok(())
    }

    /// An hf attempt whose supervisor died: find its job (recorded id, else by labels),
    /// cancel it if it still runs, settle it as `lost` at its billed running time.
    pub(crate) fn hf_settle_lost(
        &mut self,
        exp: &Experiment,
        dir: &Path,
        on_event: &mut dyn FnMut(LoopEvent),
    ) -> Result<(), EngineError> {
        let hf = mlres_backends::read_hf_job(dir)?;
        let mut detail = "the hf-jobs supervisor died without recording an outcome".to_string();
        let mut running = None;
        if let Ok(client) = self.hf_client() {
            let found = match mlres_backends::read_remote_job(dir)? {
                Some(r) => client.get_job(&r.namespace, &r.id).map(Some),
                None => client
                    .list_jobs(
                        &hf.namespace,
                        &ListFilter {
                            labels: hf.labels.clone(),
                            stages: vec![],
                        },
                    )
                    .map(|v| v.into_iter().next()),
            };
            // A job that cannot be looked up is not "no job": say so (the sweep cancels it
            // later if it still runs, since its experiment is over).
            let job = found.unwrap_or_else(|e| {
                detail.push_str(&format!("; its job could not be looked up ({e})"));
                None
            });
            if let Some(info) = job {
                if !info.is_terminal() {
                    let _ = client.cancel_job(&hf.namespace, &info.id);
                    detail.push_str(&format!("; its job {} was cancelled", info.id));
                } else {
                    detail.push_str(&format!("; its job {} ended {}", info.id, info.stage));
                }
                let _ = self
                    .ledger
                    .record_remote_job(exp.id, exp.attempt, &hf.namespace, &info.id);
                running = info.durations.running_secs;
            }
        }
        let r = mlres_backends::RemoteStatus {
            running_secs: running,
            micro_usd_per_minute: hf.micro_usd_per_minute,
            ..Default::default()
        };
        let fin = FinishRecord {
            status: "lost".into(),
            exit_code: None,
            duration_ms: running
                .map(|s| (s.max(0.0) * 1000.0).ceil() as u64)
                .unwrap_or(0),
            spent_cost_micro: settled_cost_micro(&r),
            error: Some(detail),
        };
        if self.ledger.mark_finished(exp.id, &fin)? {
            on_event(LoopEvent::Finished {
                exp: exp.id,
                status: "lost".into(),
            });
        }
        self.evaluate(exp.id, on_event)?;
        Ok(())
    }

    /// Lists the namespace's jobs (at most once per `reconcile_interval` unless `force`) and
    /// cancels what must not run: jobs labelled with this campaign that the ledger does not
    /// know (or whose experiment is over), jobs with a foreign or no mlres label created after
    /// the campaign started (unless labelled with another active campaign of this ledger),
    /// and jobs running past their reservation. Each is reported (event + ledger).
    ///
    /// A sweep that cannot see the namespace (no client, a listing that fails or does not
    /// decode) checked nothing: it is reported as [`LoopEvent::ReconcileFailed`] and returned
    /// as `Some(why)`, never taken for an empty namespace. The loop retries it at the next
    /// interval; `mlres loop stop` reports it as an error.
    pub(crate) fn hf_sweep(
        &mut self,
        campaign: &Campaign,
        force: bool,
        on_event: &mut dyn FnMut(LoopEvent),
    ) -> Result<Option<String>, EngineError> {
        if !self.uses_hf() || self.cfg.hf.is_none() {
            return Ok(None);
        }
        let settings = self.hf_settings()?;
        let interval = sweep_interval(
            settings.reconcile_interval,
            self.hf_state.last_sweep_pages,
            settings.requests_per_minute,
        );
        if !force
            && self
                .hf_state
                .last_sweep
                .is_some_and(|t| t.elapsed() < interval)
        {
            return Ok(None);
        }
        self.hf_state.last_sweep = Some(Instant::now());
        let ns = self.hf_namespace()?;
        // A failed listing is retried at the next interval; it must not stop the campaign,
        // and it must not pass for a namespace with nothing to cancel.
        // Only jobs that still run can be cancelled, so sweeps ask for those stages; every
        // FULL_SWEEP_EVERYth sweep (and `loop stop`'s) lists every stage, so a job in a stage
        // this client does not know yet is still seen (fail closed).
        let full = force || self.hf_state.sweeps.is_multiple_of(FULL_SWEEP_EVERY);
        self.hf_state.sweeps += 1;
        let filter = if full {
            ListFilter::default()
        } else {
            ListFilter {
                stages: LIVE_STAGES.to_vec(),
                ..ListFilter::default()
            }
        };
        let listed = self.hf_client().and_then(|client| {
            let (jobs, pages) = client.list_jobs_paged(&ns, &filter).map_err(hf_err)?;
            Ok((client, jobs, pages))
        });
        let (client, jobs) = match listed {
            Ok((client, jobs, pages)) => {
                self.hf_state.last_sweep_pages = pages;
                (client, jobs)
            }
            Err(e) => {
                let error = e.to_string();
                on_event(LoopEvent::ReconcileFailed {
                    namespace: ns,
                    error: error.clone(),
                });
                return Ok(Some(error));
            }
        };
        let exps = self.ledger.experiments(&campaign.id)?;
        let recorded = self.ledger.remote_jobs(&campaign.id)?;
        for info in jobs.iter().filter(|j| !j.is_terminal()) {
            if self.hf_state.reported.contains(&info.id) {
                continue;
            }
            let Verdict::Cancel { reason, dir } =
                self.classify(campaign, info, &exps, &recorded)?
            else {
                continue;
            };
            if let Some(d) = &dir {
                let _ = mlres_backends::cancel(d);
            }
            let action = match client.cancel_job(&ns, &info.id) {
                Ok(()) => "cancelled".to_string(),
                Err(e) => format!("cancel failed: {e}"),
            };
            self.ledger.append_event(
                Some(&campaign.id),
                "remote_job_cancelled",
                &json!({"job_id": info.id, "namespace": ns, "labels": info.labels,
                        "reason": reason, "result": action}),
            )?;
            on_event(LoopEvent::RemoteJob {
                job_id: info.id.clone(),
                action,
                reason,
                labels: info.labels.clone(),
            });
            self.hf_state.reported.insert(info.id.clone());
        }
        Ok(None)
    }

    fn classify(
        &self,
        campaign: &Campaign,
        info: &JobInfo,
        exps: &[Experiment],
        recorded: &[RemoteJob],
    ) -> Result<Verdict, EngineError> {
        let cancel = |reason: String| Verdict::Cancel { reason, dir: None };
        match info.labels.get(LABEL_CAMPAIGN) {
            Some(c) if *c == campaign.id => {
                let exp_id = info
                    .labels
                    .get(LABEL_EXP)
                    .and_then(|v| v.parse::<i64>().ok());
                let attempt = info
                    .labels
                    .get(LABEL_ATTEMPT)
                    .and_then(|v| v.parse::<u32>().ok());
                let (Some(exp_id), Some(attempt)) = (exp_id, attempt) else {
                    return Ok(cancel(format!(
                        "labelled with campaign {} but without a valid experiment/attempt label",
                        campaign.id
                    )));
                };
                let Some(e) = exps.iter().find(|e| e.id == exp_id) else {
                    return Ok(cancel(format!(
                        "labelled with campaign {} but experiment {exp_id} is unknown to the ledger",
                        campaign.id
                    )));
                };
                let known = recorded
                    .iter()
                    .any(|r| r.job_id == info.id && r.exp_id == exp_id)
                    || e.attempt == attempt;
                if !known {
                    return Ok(cancel(format!(
                        "labelled as attempt {attempt} of experiment {exp_id}, which the ledger does not know (current attempt {})",
                        e.attempt
                    )));
                }
                if e.state != "submitted" || e.attempt != attempt {
                    return Ok(cancel(format!(
                        "experiment {exp_id} attempt {attempt} is over in the ledger ({}) but its job still runs",
                        e.state
                    )));
                }
                // Known and in flight: within its reservation?
                let dir = e.handle.as_ref().map(PathBuf::from);
                if let (Some(d), Some(secs)) = (&dir, info.durations.running_secs)
                    && let Ok(hf) = mlres_backends::read_hf_job(d)
                {
                    let now = mlres_policy::job_cost_micro(
                        hf.micro_usd_per_minute,
                        secs.max(0.0).ceil() as u64,
                    );
                    if now > e.reserved_cost_micro || secs > e.timeout_secs as f64 + 60.0 {
                        return Ok(Verdict::Cancel {
                            reason: format!(
                                "envelope breach: experiment {exp_id} has run {secs:.0} s (cost {} micro-USD) against a reservation of {} s / {} micro-USD",
                                now, e.timeout_secs, e.reserved_cost_micro
                            ),
                            dir: dir.clone(),
                        });
                    }
                }
                Ok(Verdict::Keep)
            }
            other => {
                if let Some(c) = other
                    && let Some(oc) = self.ledger.campaign(c)?
                    && oc.status == "active"
                {
                    return Ok(Verdict::Keep);
                }
                let created = info.created_at.as_deref().and_then(parse_iso8601_ms);
                // Jobs from before this campaign are not its business.
                if created.is_none_or(|t| t < campaign.created_ms) {
                    return Ok(Verdict::Keep);
                }
                Ok(cancel(match other {
                    Some(c) => format!(
                        "labelled with campaign {c}, which is not an active campaign of this ledger, and created after campaign {} started",
                        campaign.id
                    ),
                    None => format!(
                        "no mlres label, created in namespace {} after campaign {} started",
                        info.owner.name, campaign.id
                    ),
                }))
            }
        }
    }

    /// The namespace's jobs, each with what the ledger knows of it.
    pub fn hf_list_jobs(&mut self) -> Result<Vec<RemoteJobView>, EngineError> {
        let client = self.hf_client()?;
        let ns = self.hf_namespace()?;
        let jobs = client
            .list_jobs(&ns, &ListFilter::default())
            .map_err(hf_err)?;
        let mut out = Vec::new();
        for j in jobs {
            let known = self.known_job(&j)?;
            out.push(view(j, known));
        }
        Ok(out)
    }

    fn known_job(&self, j: &JobInfo) -> Result<Option<KnownJob>, EngineError> {
        let rec = self.ledger.find_remote_job(&j.id)?;
        let (exp_id, attempt) = match rec {
            Some(r) => (r.exp_id, r.attempt),
            None => {
                let (Some(c), Some(e), Some(a)) = (
                    j.labels.get(LABEL_CAMPAIGN),
                    j.labels.get(LABEL_EXP).and_then(|v| v.parse::<i64>().ok()),
                    j.labels
                        .get(LABEL_ATTEMPT)
                        .and_then(|v| v.parse::<u32>().ok()),
                ) else {
                    return Ok(None);
                };
                match self.ledger.experiment(e)? {
                    Some(x) if x.campaign == *c && x.attempt == a => (e, a),
                    _ => return Ok(None),
                }
            }
        };
        Ok(self.ledger.experiment(exp_id)?.map(|x| KnownJob {
            campaign: x.campaign,
            exp: exp_id,
            attempt,
            state: x.state,
        }))
    }

    /// Resolves `target` (a job id, or an experiment id of this project) to (job id, the
    /// experiment if known).
    pub fn hf_resolve(
        &mut self,
        target: &str,
    ) -> Result<(String, Option<Experiment>), EngineError> {
        if let Ok(exp_id) = target.parse::<i64>()
            && let Some(exp) = self.ledger.experiment(exp_id)?
        {
            let dir = exp.handle.as_ref().map(PathBuf::from);
            let remote = match &dir {
                Some(d) => mlres_backends::read_remote_job(d).ok().flatten(),
                None => None,
            };
            let id = match remote {
                Some(r) => r.id,
                None => self
                    .ledger
                    .remote_jobs(&exp.campaign)?
                    .into_iter()
                    .rev()
                    .find(|r| r.exp_id == exp_id)
                    .map(|r| r.job_id)
                    .ok_or_else(|| {
                        refused(
                            "no_job",
                            format!("experiment {exp_id} has no Hugging Face job (yet)"),
                        )
                    })?,
            };
            return Ok((id, Some(exp)));
        }
        let exp = match self.ledger.find_remote_job(target)? {
            Some(r) => self.ledger.experiment(r.exp_id)?,
            None => None,
        };
        Ok((target.to_string(), exp))
    }

    /// One job from the API, with what the ledger knows of it.
    pub fn hf_job_status(&mut self, target: &str) -> Result<RemoteJobView, EngineError> {
        let (id, _) = self.hf_resolve(target)?;
        let client = self.hf_client()?;
        let ns = self.hf_namespace()?;
        let info = client.get_job(&ns, &id).map_err(hf_err)?;
        let known = self.known_job(&info)?;
        Ok(view(info, known))
    }

    /// A job's logs: the attempt's captured `stdout.log` when mlres ran it, else the API's
    /// (secret values redacted either way).
    pub fn hf_job_logs(&mut self, target: &str) -> Result<String, EngineError> {
        let (id, exp) = self.hf_resolve(target)?;
        if let Some(exp) = &exp
            && let Some(h) = &exp.handle
        {
            let dir = Path::new(h);
            let p = mlres_backends::log_paths(dir);
            if let Ok(b) = std::fs::read(&p.stdout) {
                return Ok(self.hf_redact(&String::from_utf8_lossy(&b)));
            }
        }
        let client = self.hf_client()?;
        let ns = self.hf_namespace()?;
        let mut out = String::new();
        client
            .stream_logs(&ns, &id, 0, &mut |l| {
                out.push_str(&l.text);
                out.push('\n');
                std::ops::ControlFlow::Continue(())
            })
            .map_err(hf_err)?;
        Ok(self.hf_redact(&out))
    }

    fn hf_redact(&self, s: &str) -> String {
        let mut out = s.to_string();
        if let Some(h) = &self.cfg.hf {
            for t in [&h.token, &h.job_token].into_iter().flatten() {
                if t.expose().len() >= 6 {
                    out = out.replace(t.expose(), "[REDACTED:HF_TOKEN]");
                }
            }
        }
        out
    }

    /// Cancels a job: through its attempt when mlres runs it (the supervisor records the
    /// outcome), and on the API in any case. Returns the job id.
    pub fn hf_cancel(&mut self, target: &str) -> Result<String, EngineError> {
        let (id, exp) = self.hf_resolve(target)?;
        if let Some(exp) = &exp
            && exp.state == "submitted"
            && let Some(h) = &exp.handle
        {
            let _ = mlres_backends::cancel(Path::new(h));
        }
        let client = self.hf_client()?;
        let ns = self.hf_namespace()?;
        client.cancel_job(&ns, &id).map_err(hf_err)?;
        if let Some(exp) = &exp {
            self.ledger.append_event(
                Some(&exp.campaign),
                "remote_job_cancel_requested",
                &json!({"job_id": id, "exp_id": exp.id}),
            )?;
        }
        Ok(id)
    }

    /// Waits (up to `timeout`) until the supervisor of `exp` has created its job or ended;
    /// returns the job id if there is one.
    pub fn hf_wait_created(
        &mut self,
        exp: &Experiment,
        timeout: Duration,
    ) -> Result<Option<String>, EngineError> {
        let Some(h) = &exp.handle else {
            return Ok(None);
        };
        let dir = PathBuf::from(h);
        let start = Instant::now();
        loop {
            if let Some(r) = mlres_backends::read_remote_job(&dir)? {
                return Ok(Some(r.id));
            }
            if mlres_backends::read_status(&dir)?.is_some() || start.elapsed() > timeout {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn view(j: JobInfo, known: Option<KnownJob>) -> RemoteJobView {
    RemoteJobView {
        id: j.id,
        stage: j.stage.as_str().to_string(),
        flavor: j.flavor,
        image: j.docker_image,
        labels: j.labels,
        created_at: j.created_at,
        running_secs: j.durations.running_secs,
        message: j.message,
        known,
    }
}

/// JSON of a view (for `--json`).
pub fn remote_job_json(v: &RemoteJobView) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The one script of an approved snapshot that an hf job ships, read from the (verified)
/// snapshot: `hf jobs uv run` ships single files by name, so the code must be one file at the
/// top of the project, small enough for one environment variable.
pub(crate) fn shipped_code(
    code: &crate::code::PinnedCode,
) -> Result<(String, Vec<u8>), EngineError> {
    let files = &code.manifest.files;
    let [f] = files.as_slice() else {
        let names: Vec<&str> = files.iter().take(5).map(|f| f.path.as_str()).collect();
        return Err(refused(
            "code_not_shippable",
            format!(
                "hf-jobs ships one script for now, and the job's code has {} files ({}{}); \
                 run it on the local backend or put it in one script",
                files.len(),
                names.join(", "),
                if files.len() > 5 { ", …" } else { "" }
            ),
        ));
    };
    let path = code.dir.join(&f.path);
    let bytes = std::fs::read(&path).map_err(EngineError::io(format!(
        "cannot read the code snapshot {}",
        path.display()
    )))?;
    mlres_hf::ship_local_files(&[(f.path.as_str(), &bytes)], &["true".to_string()])
        .map_err(|m| refused("code_not_shippable", m))?;
    Ok((f.path.clone(), bytes))
}

/// Every how many sweeps one lists every stage instead of the live ones.
const FULL_SWEEP_EVERY: u64 = 10;

/// The stages a job can still be cancelled in.
const LIVE_STAGES: &[JobStage] = &[JobStage::Scheduling, JobStage::Running, JobStage::Updating];

/// The request-budget file (in the state dir) shared by its loop and supervisors.
pub const HF_BUDGET_FILE: &str = "hf-api-budget";

pub(crate) fn budget_file(state_dir: &Path) -> PathBuf {
    state_dir.join(HF_BUDGET_FILE)
}

/// The least time between two sweeps: the configured interval, or longer when the last
/// listing took so many pages that sweeping that often would spend more than a quarter of
/// the request budget.
pub fn sweep_interval(configured: Duration, last_pages: u32, requests_per_minute: u32) -> Duration {
    let quarter = f64::from(requests_per_minute.max(4)) / 4.0;
    let needed = Duration::from_secs_f64(f64::from(last_pages) * 60.0 / quarter);
    configured.max(needed)
}
