//! The slurm backend in the engine: the attempt files and granted values of the slurm
//! supervisor, GPU-hours in the budget (reserved as GPUs × time limit, settled to GPUs ×
//! Slurm's elapsed time), re-attaching to a job whose supervisor died, and reconciliation of
//! the cluster's queue against the ledger: jobs carrying this campaign's marker that the
//! ledger does not know, and jobs running past their reservation, are cancelled and recorded.
//! Jobs without an mlres marker are other people's and are never touched.
//!
//! Granted values (secrets, `pass_env`) travel in memory and in the supervisor's environment
//! ([`SUPERVISOR_VALUES_ENV`]) only; `slurmjob.json` names them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mlres_backends::{
    LocalJobSpec, NetworkPolicy, SlurmClient, SlurmJobFile, SlurmMarker, SlurmTools,
};
use mlres_ledger::{Campaign, Experiment, FinishRecord};
use mlres_policy::Backend;
use serde_json::json;

use crate::EngineError;
use crate::run::{Engine, LoopEvent};

/// Environment variable of the slurm supervisor that carries the job's granted values (JSON).
pub const SUPERVISOR_VALUES_ENV: &str = "MLRES_SLURM_SUPERVISOR_VALUES";
/// Environment variable of the slurm supervisor that carries the slurmrestd token (when
/// `tools.rest` is set).
pub const SUPERVISOR_JWT_ENV: &str = "MLRES_SLURM_SUPERVISOR_JWT";

/// What the binary resolved for the slurm backend.
#[derive(Debug, Clone)]
pub struct SlurmSettings {
    /// The Slurm commands and `SLURM_CONF`.
    pub tools: SlurmTools,
    /// Least time between two sweeps of the queue while a campaign runs.
    pub reconcile_interval: Duration,
    /// Longest interval between two status polls of the supervisor, ms.
    pub poll_ms: u64,
    /// How long past its reservation a job may run before it is cancelled, seconds (Slurm
    /// enforces time limits on a periodic check, not to the second).
    pub overrun_grace_secs: u64,
    /// The slurmrestd token when `tools.rest` is set (never written anywhere).
    pub rest_token: Option<mlres_backends::SlurmToken>,
}

impl SlurmSettings {
    /// Settings with the default intervals (sweep every 10 s, poll every 2 s at most, 3 min
    /// of grace past the time limit).
    pub fn new(tools: SlurmTools) -> SlurmSettings {
        SlurmSettings {
            tools,
            reconcile_interval: Duration::from_secs(10),
            poll_ms: 2000,
            overrun_grace_secs: 180,
            rest_token: None,
        }
    }

    /// A client: through slurmrestd when it is configured with a token, else the commands.
    pub fn client(&self) -> SlurmClient {
        let c = SlurmClient::new(self.tools.clone());
        match (&self.tools.rest, &self.rest_token) {
            (Some(r), Some(t)) => {
                c.with_rest(mlres_backends::SlurmRestClient::new(r.clone(), t.clone()))
            }
            _ => c,
        }
    }
}

/// Per-engine slurm state.
#[derive(Default)]
pub(crate) struct SlurmState {
    last_sweep: Option<Instant>,
    reported: HashSet<String>,
    recorded: HashSet<String>,
    reattached: HashMap<(i64, u32), Instant>,
}

fn refused(code: &str, message: impl Into<String>) -> EngineError {
    EngineError::Refused {
        code: code.into(),
        message: message.into(),
    }
}

/// Slurm time limits are whole minutes: the limit (and the reservation) of a timeout.
pub fn slurm_time_limit_secs(timeout_secs: u64) -> u64 {
    timeout_secs.div_ceil(60).max(1).saturating_mul(60)
}

impl Engine {
    pub(crate) fn uses_slurm(&self) -> bool {
        self.project
            .program
            .job
            .as_ref()
            .is_some_and(|j| j.backend == Backend::Slurm)
    }

    fn slurm_settings(&self) -> Result<&SlurmSettings, EngineError> {
        self.cfg.slurm.as_ref().ok_or_else(|| {
            refused(
                "no_slurm",
                "the slurm backend is unavailable: `sbatch` was not found on PATH (or in \
                 MLRES_SLURM_BIN_DIR); nothing was submitted",
            )
        })
    }

    /// A client for the configured cluster.
    pub fn slurm_client(&self) -> Result<SlurmClient, EngineError> {
        Ok(self.slurm_settings()?.client())
    }

    /// The partition a job goes to: the template's, else the envelope's first, else the
    /// cluster's default (`None`).
    pub(crate) fn slurm_partition(&self) -> Option<String> {
        let job = self.project.program.job.as_ref()?;
        job.slurm
            .as_ref()
            .and_then(|s| s.partition.clone())
            .or_else(|| self.project.program.envelope.partitions.first().cloned())
    }

    /// The template's GPUs when the job runs on Slurm.
    pub(crate) fn slurm_gpus_if(&self) -> Option<u32> {
        self.uses_slurm().then(|| self.slurm_gpus())
    }

    /// GPUs of each job of the campaign (the approved template's `gpus`).
    pub(crate) fn slurm_gpus(&self) -> u32 {
        self.project.program.job.as_ref().map_or(0, |j| j.gpus)
    }

    /// Before a reservation: the backend is configured, and the GPU rules. Returns the
    /// reserved time limit (whole minutes, in seconds).
    pub(crate) fn slurm_preflight(
        &mut self,
        campaign: Option<&str>,
        timeout_secs: u64,
    ) -> Result<u64, EngineError> {
        let r = (|| {
            self.slurm_settings()?;
            let limit = slurm_time_limit_secs(timeout_secs);
            let env = &self.project.program.envelope;
            if limit > env.max_timeout_secs {
                return Err(refused(
                    "max_timeout",
                    format!(
                        "timeout {} (Slurm time limits are whole minutes: {}) is over max_timeout {}; nothing was submitted",
                        mlres_policy::format_duration(timeout_secs),
                        mlres_policy::format_duration(limit),
                        mlres_policy::format_duration(env.max_timeout_secs)
                    ),
                ));
            }
            mlres_policy::check_gpu_spend(env, 0, self.slurm_gpus(), limit)
                .map_err(|r| refused(r.code, r.message))?;
            Ok(limit)
        })();
        if let Err(EngineError::Refused { code, message }) = &r {
            self.ledger.append_event(
                campaign,
                "spend_refused",
                &json!({"code": code, "message": message, "backend": "slurm"}),
            )?;
        }
        r
    }

    /// Marks the attempt submitted, writes `slurmjob.json` + `spec.json` and starts the
    /// detached slurm supervisor with the granted values in its environment only.
    pub(crate) fn launch_slurm(
        &mut self,
        campaign: &Campaign,
        exp: &Experiment,
        attempt: u32,
        dir: &Path,
        argv: Vec<String>,
        code: Option<&crate::code::PinnedCode>,
    ) -> Result<(), EngineError> {
        let job = self
            .project
            .program
            .job
            .clone()
            .ok_or(EngineError::MissingSection("Job"))?;
        let settings = self.slurm_settings()?.clone();
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        env.insert("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into());
        env.insert("LANG".into(), "C.UTF-8".into());
        env.insert("PYTHONUNBUFFERED".into(), "1".into());
        for (k, v) in &job.env {
            env.insert(k.clone(), v.clone());
        }
        env.insert("MLRES_CAMPAIGN".into(), campaign.id.clone());
        env.insert("MLRES_EXP_ID".into(), exp.id.to_string());
        env.insert("MLRES_ITER".into(), exp.iter.to_string());
        // Values from this process's environment: only the names the template grants.
        let mut values = BTreeMap::new();
        for name in job.pass_env.iter().chain(job.secrets.iter()) {
            if let Some(v) = self.cfg.parent_env.get(name) {
                env.remove(name);
                values.insert(name.clone(), v.clone());
            }
        }
        let slurm = job.slurm.clone().unwrap_or_default();
        let sj = SlurmJobFile {
            tools: settings.tools.clone(),
            marker: SlurmMarker {
                campaign: campaign.id.clone(),
                exp: exp.id,
                attempt,
            },
            command: argv.clone(),
            environment: env.clone(),
            secret_names: values.keys().cloned().collect(),
            partition: self.slurm_partition(),
            account: slurm.account.clone(),
            qos: slurm.qos.clone(),
            cpus: slurm.cpus.max(1),
            mem_mib: job.limits.memory_bytes.div_ceil(1 << 20),
            gpus: job.gpus,
            time_limit_mins: slurm_time_limit_secs(exp.timeout_secs) / 60,
            log_cap_bytes: job.limits.log_bytes,
            poll_ms: settings.poll_ms,
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
        mlres_backends::prepare_slurm_attempt(dir, &spec, &sj)?;
        self.start_slurm_supervisor(dir, &values, false)?;
        self.launched_here.insert((exp.id, attempt));
        Ok(())
    }

    fn start_slurm_supervisor(
        &self,
        dir: &Path,
        values: &BTreeMap<String, String>,
        reattach: bool,
    ) -> Result<(), EngineError> {
        let json = serde_json::to_string(values).unwrap_or_else(|_| "{}".into());
        let mut cmd = std::process::Command::new(&self.cfg.exe);
        cmd.arg("__supervise");
        if reattach {
            cmd.arg("--reattach");
        }
        cmd.arg(dir)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env(SUPERVISOR_VALUES_ENV, json);
        if let Some(t) = self.cfg.slurm.as_ref().and_then(|s| s.rest_token.as_ref()) {
            cmd.env(SUPERVISOR_JWT_ENV, t.expose());
        }
        mlres_backends::launch(dir, &cmd)?;
        Ok(())
    }

    /// The granted values of a slurm attempt, from this process's environment (for a
    /// re-attached supervisor, which redacts them from the logs).
    fn slurm_values(&self, sj: &SlurmJobFile) -> BTreeMap<String, String> {
        sj.secret_names
            .iter()
            .filter_map(|n| self.cfg.parent_env.get(n).map(|v| (n.clone(), v.clone())))
            .collect()
    }

    /// Records the Slurm job of a running attempt in the ledger (once).
    pub(crate) fn slurm_note_remote(
        &mut self,
        exp: &Experiment,
        dir: &Path,
    ) -> Result<(), EngineError> {
        let key = format!("{}:{}", exp.id, exp.attempt);
        if self.slurm_state.recorded.contains(&key) || !mlres_backends::is_slurm_attempt(dir) {
            return Ok(());
        }
        if let Some(r) = mlres_backends::read_remote_job(dir)? {
            self.ledger
                .record_remote_job(exp.id, exp.attempt, &r.namespace, &r.id)?;
            self.slurm_state.recorded.insert(key);
        }
        Ok(())
    }

    /// A slurm attempt whose supervisor died: a job that Slurm still has (by its recorded
    /// id, else by its marker) gets a new supervisor that re-attaches to it; without one the
    /// attempt is settled as `lost` at the elapsed time Slurm reported.
    pub(crate) fn slurm_lost(
        &mut self,
        exp: &Experiment,
        dir: &Path,
        on_event: &mut dyn FnMut(LoopEvent),
    ) -> Result<(), EngineError> {
        let key = (exp.id, exp.attempt);
        if let Some(t) = self.slurm_state.reattached.get(&key)
            && t.elapsed() < Duration::from_secs(30)
        {
            // A re-attached supervisor is starting.
            return Ok(());
        }
        let sj = mlres_backends::read_slurm_job(dir)?;
        let client = SlurmClient::new(sj.tools.clone());
        let mut id = mlres_backends::read_remote_job(dir)?.map(|r| r.id);
        if id.is_none()
            && let Ok(jobs) = client.list()
            && let Some(j) = jobs.iter().find(|j| {
                SlurmMarker::parse(&j.comment) == Some(Ok(sj.marker.clone())) && !j.is_terminal()
            })
        {
            let rec = mlres_backends::RemoteJobRef {
                namespace: mlres_backends::SLURM_NAMESPACE.into(),
                id: j.id.clone(),
            };
            let path = dir.join("remote_job.json");
            let bytes = serde_json::to_vec(&rec).unwrap_or_default();
            std::fs::write(&path, bytes)
                .map_err(EngineError::io(format!("cannot write {}", path.display())))?;
            id = Some(j.id.clone());
        }
        let mut elapsed = 0;
        let mut detail = "the slurm supervisor died without recording an outcome".to_string();
        if let Some(id) = &id {
            let mut client = client;
            match client.state(id) {
                Ok(Some(_)) => {
                    // Slurm knows it (running, pending or just ended): follow it again.
                    self.start_slurm_supervisor(dir, &self.slurm_values(&sj), true)?;
                    self.slurm_state.reattached.insert(key, Instant::now());
                    self.ledger.append_event(
                        Some(&exp.campaign),
                        "remote_job_reattached",
                        &json!({"exp_id": exp.id, "attempt": exp.attempt, "job_id": id,
                                "backend": "slurm"}),
                    )?;
                    on_event(LoopEvent::RemoteJob {
                        job_id: id.clone(),
                        action: "re-attached".into(),
                        reason: format!(
                            "the supervisor of experiment {} attempt {} died; following job {id} again",
                            exp.id, exp.attempt
                        ),
                        labels: BTreeMap::new(),
                    });
                    return Ok(());
                }
                Ok(None) => detail.push_str(&format!("; Slurm has no record of job {id}")),
                Err(e) => {
                    // Cannot see the cluster now: try again at the next round.
                    detail.push_str(&format!("; job {id} could not be looked up ({e})"));
                    return Ok(());
                }
            }
            let _ = self.ledger.record_remote_job(
                exp.id,
                exp.attempt,
                mlres_backends::SLURM_NAMESPACE,
                id,
            );
            if let Ok(Some(j)) = SlurmClient::new(sj.tools.clone()).accounted(id) {
                elapsed = j.elapsed_secs;
            }
        } else {
            detail.push_str("; no Slurm job was found for it");
        }
        let fin = FinishRecord {
            status: "lost".into(),
            exit_code: None,
            duration_ms: elapsed.saturating_mul(1000),
            spent_cost_micro: 0,
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

    /// Lists the cluster's queue (at most once per `reconcile_interval` unless `force`) and
    /// cancels what must not run: jobs with this campaign's marker that the ledger does not
    /// know (or whose experiment is over), and jobs running past their reservation. Each is
    /// reported (event + ledger). A listing that fails is reported and returned as
    /// `Some(why)`, never taken for an empty queue.
    pub(crate) fn slurm_sweep(
        &mut self,
        campaign: &Campaign,
        force: bool,
        on_event: &mut dyn FnMut(LoopEvent),
    ) -> Result<Option<String>, EngineError> {
        if !self.uses_slurm() || self.cfg.slurm.is_none() {
            return Ok(None);
        }
        let settings = self.slurm_settings()?.clone();
        if !force
            && self
                .slurm_state
                .last_sweep
                .is_some_and(|t| t.elapsed() < settings.reconcile_interval)
        {
            return Ok(None);
        }
        self.slurm_state.last_sweep = Some(Instant::now());
        // Listing is `squeue`; cancels go through slurmrestd when it is configured.
        let client = settings.client();
        let jobs = match client.list() {
            Ok(j) => j,
            Err(e) => {
                let error = e.to_string();
                on_event(LoopEvent::ReconcileFailed {
                    namespace: "slurm".into(),
                    error: error.clone(),
                });
                return Ok(Some(error));
            }
        };
        let exps = self.ledger.experiments(&campaign.id)?;
        for info in jobs.iter().filter(|j| !j.is_terminal()) {
            if self.slurm_state.reported.contains(&info.id) {
                continue;
            }
            let reason = match SlurmMarker::parse(&info.comment) {
                None => continue,
                Some(Err(Some(c))) if c == campaign.id => format!(
                    "carries the marker of campaign {c} without a valid experiment and attempt"
                ),
                Some(Err(_)) => continue,
                Some(Ok(m)) if m.campaign != campaign.id => continue,
                Some(Ok(m)) => match exps.iter().find(|e| e.id == m.exp) {
                    None => format!(
                        "carries the marker of campaign {} but experiment {} is unknown to the ledger",
                        m.campaign, m.exp
                    ),
                    Some(e) if e.attempt != m.attempt => format!(
                        "carries the marker of attempt {} of experiment {}, which the ledger does not know (current attempt {})",
                        m.attempt, m.exp, e.attempt
                    ),
                    Some(e) if e.state != "submitted" => format!(
                        "experiment {} attempt {} is over in the ledger ({}) but its job still runs",
                        m.exp, m.attempt, e.state
                    ),
                    Some(e)
                        if e.handle.as_ref().is_some_and(|h| {
                            mlres_backends::read_remote_job(Path::new(h))
                                .ok()
                                .flatten()
                                .is_some_and(|r| r.id != info.id)
                        }) =>
                    {
                        format!(
                            "carries the marker of experiment {} attempt {}, whose job is another one",
                            m.exp, m.attempt
                        )
                    }
                    Some(e) => {
                        let limit = slurm_time_limit_secs(e.timeout_secs);
                        if info.elapsed_secs > limit + settings.overrun_grace_secs {
                            format!(
                                "envelope breach: experiment {} has run {} s against a reservation of {} s",
                                m.exp, info.elapsed_secs, limit
                            )
                        } else {
                            continue;
                        }
                    }
                },
            };
            // A job of one of our attempts: its supervisor records the outcome.
            if let Some(Ok(m)) = SlurmMarker::parse(&info.comment)
                && let Some(e) = exps
                    .iter()
                    .find(|e| e.id == m.exp && e.attempt == m.attempt)
                && let Some(h) = &e.handle
            {
                let _ = mlres_backends::cancel(&PathBuf::from(h));
            }
            let action = match client.cancel(&info.id) {
                Ok(()) => "cancelled".to_string(),
                Err(e) => format!("cancel failed: {e}"),
            };
            self.ledger.append_event(
                Some(&campaign.id),
                "remote_job_cancelled",
                &json!({"job_id": info.id, "backend": "slurm", "name": info.name,
                        "comment": info.comment, "reason": reason, "result": action}),
            )?;
            let mut labels = BTreeMap::new();
            labels.insert("comment".to_string(), info.comment.clone());
            on_event(LoopEvent::RemoteJob {
                job_id: info.id.clone(),
                action,
                reason,
                labels,
            });
            self.slurm_state.reported.insert(info.id.clone());
        }
        Ok(None)
    }
}

/// GPU-seconds a campaign has used: its GPUs per job × its walltime (finished jobs at
/// Slurm's elapsed time, jobs in flight at their reserved time limit).
pub fn campaign_gpu_secs(gpus: u32, walltime_secs: u64) -> u64 {
    mlres_policy::gpu_secs(gpus, walltime_secs)
}
