//! `mlres jobs`: Hugging Face Jobs through the broker. `run` submits one experiment of the
//! approved template (the same checks, live-catalog price and atomic reservation as the
//! loop); `status`, `logs` and `cancel` take a job id or an experiment id; `list` shows the
//! namespace's jobs and which ones mlres knows. Scheduled jobs are refused. This module also
//! resolves the hf-jobs settings from the environment for the engine and runs the hf
//! supervisor (`mlres __supervise` on an hf attempt), which gets its token from its own
//! environment only.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use mlres_engine::{
    Engine, HfSettings, LoopEvent, RemoteJobView, SUPERVISOR_SECRETS_ENV, SUPERVISOR_TOKEN_ENV,
    SubmitOverrides, SubmitRequest,
};
use mlres_hf::{Endpoint, Token};
use serde_json::{Value, json};

use crate::cli::Cli;
use crate::commands::open_engine;
use crate::{Failure, exit, fail, print};

#[derive(Subcommand, Debug)]
pub enum JobsCmd {
    /// Submit one experiment of the approved hf-jobs template (checked, priced and reserved
    /// like the loop's); prints its experiment and job ids.
    Run(RunArgs),
    /// A job's stage, flavor, billed running time and experiment (job id or experiment id).
    Status(TargetArgs),
    /// A job's logs (the captured log when mlres ran it).
    Logs(TargetArgs),
    /// Cancel a job (job id or experiment id).
    Cancel(TargetArgs),
    /// The namespace's jobs, and which ones mlres knows.
    List(ListArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Search-space parameters as NAME=VALUE (repeatable; values are typed as the search space
    /// lists them) or as one JSON object; parameters not given take the first grid value.
    #[arg(long = "config", value_name = "NAME=VALUE|JSON")]
    pub config: Vec<String>,
    /// Why this experiment is worth running.
    #[arg(long)]
    pub hypothesis: Option<String>,
    /// Another flavor (must be allowed by the envelope and listed in the live catalog).
    #[arg(long)]
    pub flavor: Option<String>,
    /// Another timeout, e.g. `5m` (at most the envelope's max_timeout).
    #[arg(long)]
    pub timeout: Option<String>,
    /// The namespace you expect (refused unless it is the envelope's).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Always refused: mlres never creates scheduled jobs.
    #[arg(long, value_name = "CRON")]
    pub schedule: Option<String>,
    /// Wait for the job to finish and be evaluated.
    #[arg(long)]
    pub wait: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct TargetArgs {
    /// A job id, or an experiment id.
    pub target: String,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// The hf-jobs settings from the environment: `HF_ENDPOINT`, the user token (resolved like
/// `huggingface_hub`), `MLRES_HF_JOB_TOKEN` (a job-scoped token for jobs), and the intervals
/// `MLRES_HF_RECONCILE_SECS` and `MLRES_HF_POLL_MS`, and the API request budget
/// `MLRES_HF_REQUESTS_PER_MINUTE`.
pub fn hf_settings(env: &BTreeMap<String, String>) -> Option<HfSettings> {
    let endpoint = Endpoint::from_env(env).ok()?;
    let token = mlres_hf::resolve_token(env, &|p| std::fs::read_to_string(p).ok()).map(|(t, _)| t);
    let mut s = HfSettings::new(endpoint, token);
    s.job_token = env.get("MLRES_HF_JOB_TOKEN").and_then(|v| Token::new(v));
    if let Some(secs) = env
        .get("MLRES_HF_RECONCILE_SECS")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
    {
        s.reconcile_interval = Duration::from_secs_f64(secs);
    }
    if let Some(ms) = env.get("MLRES_HF_POLL_MS").and_then(|v| v.parse().ok()) {
        s.poll_ms = ms;
    }
    if let Some(rpm) = requests_per_minute(env) {
        s.requests_per_minute = rpm;
    }
    Some(s)
}

/// Most requests per minute `MLRES_HF_REQUESTS_PER_MINUTE` may allow (accounts on paid plans
/// get more than the documented default; `mlres doctor` warns above that).
pub const MAX_REQUESTS_PER_MINUTE: u32 = 10_000;

/// The Hub's documented average: 500 requests per 5 minutes.
pub const HUB_REQUESTS_PER_MINUTE: u32 =
    mlres_hf::budget::HUB_API_LIMIT * 60 / mlres_hf::budget::HUB_API_WINDOW_SECS;

/// `MLRES_HF_REQUESTS_PER_MINUTE`, clamped to 1..=[`MAX_REQUESTS_PER_MINUTE`] (`mlres doctor`
/// shows the value in force).
pub fn requests_per_minute(env: &BTreeMap<String, String>) -> Option<u32> {
    env.get("MLRES_HF_REQUESTS_PER_MINUTE")
        .and_then(|v| v.trim().parse::<u32>().ok())
        .map(|v| v.clamp(1, MAX_REQUESTS_PER_MINUTE))
}

/// `mlres __supervise` on an hf-jobs attempt: credentials from this process's environment.
pub fn supervise_hf(dir: &Path) -> Result<mlres_backends::Status, mlres_backends::BackendError> {
    let token = std::env::var(SUPERVISOR_TOKEN_ENV)
        .ok()
        .and_then(|t| Token::new(&t))
        .ok_or_else(|| {
            mlres_backends::BackendError::InvalidSpec(format!(
                "the hf-jobs supervisor needs {SUPERVISOR_TOKEN_ENV}"
            ))
        })?;
    let secrets: BTreeMap<String, String> = std::env::var(SUPERVISOR_SECRETS_ENV)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let creds = mlres_backends::HfCredentials { token, secrets };
    mlres_backends::supervise_hf(dir, &creds)
}

/// One line for a reconciliation event (stderr).
pub fn print_remote_event(e: &LoopEvent) {
    if let LoopEvent::RemoteJob {
        job_id,
        action,
        reason,
        ..
    } = e
    {
        eprintln!("mlres: hf job {job_id}: {action}: {reason}");
    } else if let LoopEvent::ReconcileFailed { namespace, error } = e {
        eprintln!("mlres: hf-jobs namespace {namespace} could not be checked: {error}");
    }
}

pub fn run(cli: &Cli, cmd: &JobsCmd) -> Result<u8, Failure> {
    match cmd {
        JobsCmd::Run(a) => run_one(cli, a),
        JobsCmd::Status(a) => status(cli, a),
        JobsCmd::Logs(a) => logs(cli, a),
        JobsCmd::Cancel(a) => cancel(cli, a),
        JobsCmd::List(a) => list(cli, a),
    }
}

fn refused(msg: impl std::fmt::Display) -> Failure {
    fail(exit::REFUSED, anyhow!("refused: {msg}"))
}

fn hf_engine(cli: &Cli) -> Result<Engine, Failure> {
    let engine = open_engine(cli)?;
    match &engine.project.program.job {
        Some(j) if j.backend == mlres_policy::Backend::HfJobs => Ok(engine),
        Some(j) => Err(refused(format!(
            "the approved job template uses backend `{}`; `mlres jobs` runs hf-jobs templates only (use `mlres exp submit`)",
            j.backend
        ))),
        None => Err(refused("program.md has no `## Job` section")),
    }
}

fn run_one(cli: &Cli, a: &RunArgs) -> Result<u8, Failure> {
    if let Some(s) = &a.schedule {
        return Err(refused(format!(
            "scheduled jobs are never created by mlres (asked for schedule {s:?}): every job must \
             pass the envelope when it starts; run `mlres jobs run` (or the loop) when you need it"
        )));
    }
    let timeout_secs = match &a.timeout {
        Some(t) => Some(
            mlres_policy::parse_duration(t)
                .map_err(|e| fail(exit::USAGE, anyhow!("--timeout {t:?}: {e}")))?,
        ),
        None => None,
    };
    let mut engine = hf_engine(cli)?;
    let space = engine
        .project
        .program
        .search_space
        .clone()
        .ok_or_else(|| refused("program.md has no `## Search space` section"))?;
    let given = mlres_policy::parse_config_args(&space, &a.config).map_err(|e| match e {
        mlres_policy::ConfigArgError::Usage(m) => fail(exit::USAGE, anyhow!(m)),
        mlres_policy::ConfigArgError::Invalid(m) => refused(m),
    })?;
    let mut config = mlres_policy::propose(&space, 0).unwrap_or_default();
    let mut settings = Vec::new();
    for (k, v) in given {
        settings.push(format!("{k}={v}"));
        config.insert(k, v);
    }
    let config = Value::Object(config);
    let hypothesis = a.hypothesis.clone().unwrap_or_else(|| {
        if settings.is_empty() {
            "one hf-jobs run of the approved template".into()
        } else {
            format!("one hf-jobs run with {}", settings.join(", "))
        }
    });
    let overrides = SubmitOverrides {
        flavor: a.flavor.clone(),
        timeout_secs,
        namespace: a.namespace.clone(),
    };
    let exp = engine.submit_agent(
        SubmitRequest {
            config,
            hypothesis,
            source: "agent",
            proposal_index: None,
        },
        &overrides,
    )?;
    let job_id = engine.hf_wait_created(&exp, Duration::from_secs(120))?;
    let exp = if a.wait {
        engine.wait(exp.id, Duration::from_secs(exp.timeout_secs + 900))?
    } else {
        engine.experiment_status(exp.id)?
    };
    if job_id.is_none()
        && let Some(err) = &exp.error
    {
        let code = if err.contains("402") {
            exit::REFUSED
        } else {
            exit::JOB_FAILED
        };
        let msg = if err.contains("402") {
            format!(
                "experiment {}: {err}\nThe namespace has no credits: add credits at \
                 https://huggingface.co/settings/billing; nothing ran and nothing was spent",
                exp.id
            )
        } else {
            format!("experiment {}: the job could not be created: {err}", exp.id)
        };
        if a.json {
            print::json(
                &json!({"experiment": print::exp_json(&exp), "job_id": null, "error": msg}),
            );
        }
        return Err(fail(code, anyhow!(msg)));
    }
    if a.json {
        print::json(&json!({"experiment": print::exp_json(&exp), "job_id": job_id}));
    } else {
        println!(
            "Submitted experiment {} (iter {}, campaign {}) as Hugging Face job {}.",
            exp.id,
            exp.iter,
            exp.campaign,
            job_id.as_deref().unwrap_or("?")
        );
        if a.wait {
            println!(
                "It ended {}; metric {}.",
                exp.status.as_deref().unwrap_or("?"),
                exp.metric
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "-".into())
            );
        } else {
            println!(
                "Next: `mlres jobs status {}` or `mlres exp wait {}`",
                exp.id, exp.id
            );
        }
    }
    Ok(match exp.status.as_deref() {
        None | Some("completed") => exit::OK,
        Some(_) => exit::JOB_FAILED,
    })
}

fn line(v: &RemoteJobView) -> String {
    let known = match &v.known {
        Some(k) => format!("exp {} attempt {} ({})", k.exp, k.attempt, k.state),
        None => "not known to mlres".into(),
    };
    format!(
        "{}  {:<10} {:<14} {:>8}  {}",
        v.id,
        v.stage,
        v.flavor.as_deref().unwrap_or("-"),
        v.running_secs
            .map(|s| format!("{s:.1}s"))
            .unwrap_or_else(|| "-".into()),
        known
    )
}

fn status(cli: &Cli, a: &TargetArgs) -> Result<u8, Failure> {
    let mut engine = hf_engine(cli)?;
    let v = engine.hf_job_status(&a.target)?;
    if a.json {
        print::json(&v);
    } else {
        println!("{}", line(&v));
        if let Some(m) = &v.message {
            println!("  {m}");
        }
    }
    Ok(exit::OK)
}

fn logs(cli: &Cli, a: &TargetArgs) -> Result<u8, Failure> {
    let mut engine = hf_engine(cli)?;
    let text = engine.hf_job_logs(&a.target)?;
    if a.json {
        print::json(&json!({"target": a.target, "log": text}));
    } else {
        print!("{text}");
    }
    Ok(exit::OK)
}

fn cancel(cli: &Cli, a: &TargetArgs) -> Result<u8, Failure> {
    let mut engine = hf_engine(cli)?;
    let id = engine.hf_cancel(&a.target)?;
    if a.json {
        print::json(&json!({"job_id": id, "cancel_requested": true}));
    } else {
        println!("Cancel requested for Hugging Face job {id}.");
    }
    Ok(exit::OK)
}

fn list(cli: &Cli, a: &ListArgs) -> Result<u8, Failure> {
    let mut engine = hf_engine(cli)?;
    let jobs = engine.hf_list_jobs()?;
    if a.json {
        print::json(&json!({"namespace": engine.hf_namespace()?, "jobs": jobs}));
    } else {
        println!("Jobs in namespace {}:", engine.hf_namespace()?);
        if jobs.is_empty() {
            println!("  (none)");
        }
        for j in &jobs {
            println!("  {}", line(j));
        }
    }
    Ok(exit::OK)
}
