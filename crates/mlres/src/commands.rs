//! One function per subcommand: parse flags into engine calls, print results, pick exit codes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow};
use mlres_engine::{
    ApprovalStatus, Engine, EngineError, LoopOptions, SubmitOverrides, SubmitRequest,
};
use serde_json::json;

use crate::cli::{
    ApproveArgs, Cli, ExpArtifactsArgs, ExpLogsArgs, ExpSubmitArgs, ExpSuggestArgs, ExpWaitArgs,
    LedgerEventsArgs, LoopRunArgs, LoopStatusArgs, LoopStopArgs,
};
use crate::print::{self, Progress};
use crate::{Failure, engine_config, exit, fail};

/// With `--json`, a refusal because the job's code changed is also printed to stdout as JSON
/// (`refused`, `message`, and `code_change`: hashes, files added/removed/changed, the diff); the
/// exit code and the message on stderr are the same as without it.
fn json_refusal<T>(json_out: bool, r: Result<T, EngineError>) -> Result<T, Failure> {
    if json_out && let Err(EngineError::CodeChanged(c)) = &r {
        print::json(&json!({
            "refused": "code_changed",
            "message": "the job's code changed since it was approved; nothing was spent. A human \
                        must run `mlres approve` again before anything more is spent.",
            "code_change": c,
        }));
    }
    Ok(r?)
}

pub fn open_engine(cli: &Cli) -> Result<Engine, Failure> {
    let cfg = engine_config(cli)?;
    Ok(Engine::open(cfg, &cli.project)?)
}

pub fn supervise(
    dir: &Path,
    bwrap: Option<&Path>,
    chosen: Option<Result<(), String>>,
    reattach: bool,
) -> Result<u8, Failure> {
    let result = if mlres_backends::is_hf_attempt(dir) {
        crate::jobs::supervise_hf(dir)
    } else if mlres_backends::is_slurm_attempt(dir) {
        // The granted values arrive in this process's environment, never in a file.
        let values: BTreeMap<String, String> = std::env::var(mlres_engine::SUPERVISOR_VALUES_ENV)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        let rest_token = std::env::var(mlres_engine::SUPERVISOR_JWT_ENV)
            .ok()
            .filter(|t| !t.is_empty())
            .map(|t| mlres_backends::SlurmToken::new(&t));
        let creds = mlres_backends::SlurmCredentials { values, rest_token };
        mlres_backends::supervise_slurm(dir, &creds, reattach)
    } else if reattach {
        Err(mlres_backends::BackendError::InvalidSpec(
            "--reattach is for slurm attempts".into(),
        ))
    } else {
        match chosen {
            Some(c) => mlres_backends::supervise_chosen(dir, bwrap, c),
            None => mlres_backends::supervise(dir, bwrap),
        }
    };
    match result {
        Ok(_) => Ok(exit::OK),
        // Someone else (another supervisor, or a resuming engine that voided the attempt)
        // decided first: the job must not run here.
        Err(e @ mlres_backends::BackendError::AlreadyClaimed { .. }) => {
            Err(fail(exit::REFUSED, anyhow!(e)))
        }
        Err(e) => Err(fail(exit::ERROR, anyhow!(e))),
    }
}

pub fn doctor(cli: &Cli, json_out: bool) -> Result<u8, Failure> {
    let env = crate::utf8_env()?;
    let bwrap = crate::bwrap_override(&env);
    let checks = mlres_backends::doctor(bwrap.as_deref());
    let approvals = approval_protections(cli)?;
    let hf_api = hf_api_lines(cli)?;
    // Slurm: asked only when its commands are there; a cluster that does not answer is
    // reported, not an error of the doctor.
    let slurm = crate::slurm_settings(&env).map(|s| {
        mlres_backends::SlurmClient::new(s.tools)
            .info()
            .map_err(|e| {
                // Slurm prints a chain of errors; the last line says what failed.
                let last = e.message.lines().rev().find(|l| !l.trim().is_empty());
                format!(
                    "{} ({}); is SLURM_CONF set to the cluster's slurm.conf?",
                    last.unwrap_or("no answer").trim(),
                    e.command
                )
            })
    });
    // Which path submits: the commands, or slurmrestd (pinged with the token).
    let slurm_path: (String, Option<bool>, Option<String>) = match crate::slurm_rest(&env) {
        Ok(None) => (
            "commands (sbatch/squeue/scontrol/scancel)".into(),
            None,
            None,
        ),
        Ok(Some((r, t))) => {
            let url = r.url.clone();
            match mlres_backends::SlurmRestClient::new(r, t).ping() {
                Ok(()) => (format!("slurmrestd at {url}"), Some(true), None),
                Err(e) => (
                    format!("slurmrestd at {url}"),
                    Some(false),
                    Some(e.to_string()),
                ),
            }
        }
        Err(e) => ("slurmrestd (misconfigured)".into(), Some(false), Some(e)),
    };
    if json_out {
        let mut slurm_json = match &slurm {
            None => {
                json!({"available": false, "detail": "sbatch not found on PATH or in MLRES_SLURM_BIN_DIR"})
            }
            Some(Err(e)) => json!({"available": false, "detail": e}),
            Some(Ok(i)) => json!({
                "available": true,
                "version": i.version,
                "cluster": i.cluster,
                "accounting": i.accounting,
                "accounting_storage": i.accounting_storage,
                "job_completion": i.job_completion,
                "partitions": i.partitions,
            }),
        };
        let v: Vec<_> = checks
            .iter()
            .map(|p| json!({"name": p.name, "active": p.active, "detail": p.detail}))
            .collect();
        let a: Vec<_> = approvals
            .iter()
            .map(|(name, active, detail)| json!({"name": name, "active": active, "detail": detail}))
            .collect();
        let h: Vec<_> = hf_api
            .iter()
            .map(|(name, detail)| json!({"name": name, "detail": detail}))
            .collect();
        slurm_json["path"] = json!(slurm_path.0);
        if let Some(ok) = slurm_path.1 {
            slurm_json["rest_ping"] = json!(if ok { "ok" } else { "failed" });
        }
        if let Some(e) = &slurm_path.2 {
            slurm_json["rest_error"] = json!(e);
        }
        print::json(&json!({"protections": v, "approvals": a, "hf_api": h, "slurm": slurm_json}));
    } else {
        println!("Local backend protections on this machine:");
        for p in &checks {
            println!(
                "  [{}] {:<28} {}",
                if p.active { "on " } else { "off" },
                p.name,
                p.detail
            );
        }
        println!("Approvals and state:");
        for (name, active, detail) in &approvals {
            println!(
                "  [{}] {:<28} {}",
                if *active { "on " } else { "off" },
                name,
                detail
            );
        }
        println!("Hugging Face Jobs API requests (hf-jobs backend):");
        for (name, detail) in &hf_api {
            println!("  {name:<34} {detail}");
        }
        println!("Slurm backend:");
        match (&slurm_path.1, &slurm_path.2) {
            _ if slurm.is_none() => {}
            (None, _) => println!("  path: {}", slurm_path.0),
            (Some(true), _) => println!("  path: {} (ping ok)", slurm_path.0),
            (Some(false), e) => println!(
                "  path: {} (ping failed: {})",
                slurm_path.0,
                e.as_deref().unwrap_or("no answer")
            ),
        }
        match &slurm {
            None => println!("  [off] sbatch not found on PATH or in MLRES_SLURM_BIN_DIR"),
            Some(Err(e)) => println!("  [off] the cluster does not answer: {e}"),
            Some(Ok(i)) => {
                println!("  [on ] {} (cluster {})", i.version, i.cluster);
                let parts: Vec<String> = i
                    .partitions
                    .iter()
                    .map(|p| {
                        format!(
                            "{} ({}, nodes {})",
                            p.name,
                            if p.up { "up" } else { "down" },
                            p.node_states.join("/")
                        )
                    })
                    .collect();
                println!("        partitions: {}", parts.join(", "));
                println!(
                    "        accounting: {}",
                    if i.accounting {
                        format!("on ({}): sacct reports finished jobs", i.accounting_storage)
                    } else if i.job_completion.ends_with("/filetxt") {
                        "off; finished jobs are read from the job completion log (sacct -c) \
                         and scontrol"
                            .to_string()
                    } else {
                        "off; finished jobs are read from scontrol while the controller keeps \
                         them (MinJobAge)"
                            .to_string()
                    }
                );
            }
        }
    }
    Ok(exit::OK)
}

/// How mlres paces its Jobs API requests: the shared request budget (and what is left of it
/// in this state dir), the sweep and the status polls.
fn hf_api_lines(cli: &Cli) -> Result<Vec<(&'static str, String)>, Failure> {
    let env = crate::utf8_env()?;
    let Some(s) = crate::jobs::hf_settings(&env) else {
        return Ok(vec![(
            "endpoint",
            "HF_ENDPOINT is not a valid http(s) URL: the hf-jobs backend cannot be used".into(),
        )]);
    };
    let rpm = s.requests_per_minute;
    let dir = crate::state_dir(&cli.state_dir)?;
    let file = dir.join(mlres_engine::HF_BUDGET_FILE);
    let left = if file.is_file() {
        match mlres_hf::RequestBudget::new(rpm, Some(file)).available() {
            Ok(n) => format!("{n} left now"),
            Err(e) => format!("budget file unusable: {e}"),
        }
    } else {
        format!("{rpm} left now (unused)")
    };
    let window = mlres_hf::budget::HUB_API_WINDOW_SECS;
    let most = rpm + rpm * window / 60;
    let over = if rpm > crate::jobs::HUB_REQUESTS_PER_MINUTE {
        format!(
            "; WARNING: above the Hub's documented {}/min: only if your plan allows more",
            crate::jobs::HUB_REQUESTS_PER_MINUTE
        )
    } else {
        String::new()
    };
    Ok(vec![
        (
            "request budget",
            format!(
                "{rpm} requests/min for the loop and its job supervisors together, at most {most} per {} min (the Hub documents {} per {} min per token; MLRES_HF_REQUESTS_PER_MINUTE, 1 to {}); {left}{over}",
                window / 60,
                mlres_hf::budget::HUB_API_LIMIT,
                window / 60,
                crate::jobs::MAX_REQUESTS_PER_MINUTE,
            ),
        ),
        (
            "namespace sweep",
            format!(
                "every {:.0} s at least (MLRES_HF_RECONCILE_SECS), listing only SCHEDULING/RUNNING/UPDATING jobs; every stage on every 10th sweep and on `loop stop`; spaced out so sweeps use at most a quarter of the budget",
                s.reconcile_interval.as_secs_f64()
            ),
        ),
        (
            "status polls",
            format!(
                "at most every {:.1} s per job (MLRES_HF_POLL_MS), skipped while less than a quarter of the budget is left",
                s.poll_ms as f64 / 1000.0
            ),
        ),
    ])
}

/// What protects approvals and the state dir, said plainly: the approval secret (set or not),
/// and that in single-user mode an agent running as the same user can read the state.
fn approval_protections(cli: &Cli) -> Result<Vec<(&'static str, bool, String)>, Failure> {
    let dir = crate::state_dir(&cli.state_dir)?;
    let secret = if dir.is_dir() {
        mlres_ledger::Ledger::open(&dir)?.approver_secret()
    } else {
        Ok(None)
    };
    let (set, detail) = match secret {
        Ok(Some(_)) => (
            true,
            "every `mlres approve` needs the approval secret (only its Argon2id hash is kept)"
                .to_string(),
        ),
        Ok(None) if crate::broker::served().is_some() => (
            false,
            "no approval secret is set: nothing can be approved until a human runs `sudo mlres setup broker`"
                .to_string(),
        ),
        Ok(None) => (
            false,
            format!(
                "no approval secret is set: nothing can be approved until a human runs `{} setup approver`",
                crate::invocation()
            ),
        ),
        Err(e) => (false, format!("the approval secret cannot be trusted: {e}")),
    };
    if let Some(s) = crate::broker::served() {
        return Ok(vec![
            ("approval_secret", set, detail),
            (
                "state_isolation",
                true,
                format!(
                    "broker mode: the state in {} belongs to user {} (0700); you ({}, uid {}) reach it only \
                     through the broker's socket, and jobs run in their own user namespace without it",
                    dir.display(),
                    crate::broker::user_of(unsafe_getuid()),
                    s.peer_name,
                    s.peer.uid
                ),
            ),
        ]);
    }
    Ok(vec![
        ("approval_secret", set, detail),
        (
            "state_isolation",
            false,
            format!(
                "single-user mode: the ledger, its key and the approval hash in {} are readable by \
                 every process of user {}, including an agent with a shell; jobs cannot read them \
                 (sandbox), but only a broker under its own user holds against such an agent: \
                 a human sets one up with `sudo mlres setup broker`",
                dir.display(),
                crate::user_name()
            ),
        ),
    ])
}

fn unsafe_getuid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

pub fn init(cli: &Cli, force: bool) -> Result<u8, Failure> {
    let path = cli.project.join("program.md");
    if path.exists() && !force {
        return Err(fail(
            exit::ERROR,
            anyhow!("{} exists; pass --force to overwrite it", path.display()),
        ));
    }
    std::fs::create_dir_all(&cli.project)
        .with_context(|| format!("cannot create {}", cli.project.display()))?;
    std::fs::write(&path, crate::demo::PROGRAM)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "wrote {}\nnext: edit it, run `mlres check`, then a human runs `mlres approve`",
        path.display()
    );
    Ok(exit::OK)
}

pub fn check(cli: &Cli, json_out: bool) -> Result<u8, Failure> {
    let project = mlres_engine::Project::load(&cli.project)?;
    if json_out {
        print::json(&json!({
            "program": project.program_path,
            "hash": project.hash,
            "campaign": serde_json::from_str::<serde_json::Value>(&project.document).unwrap_or(json!(project.document)),
            "grid_size": project.program.search_space.as_ref().and_then(mlres_policy::grid_size),
            "warnings": project.program.warnings,
        }));
    } else {
        print::program_summary(&project);
    }
    Ok(exit::OK)
}

pub fn approve(cli: &Cli, a: &ApproveArgs) -> Result<u8, Failure> {
    if a.operator && a.secret_fd.is_none() && a.secret_file.is_none() {
        return Err(fail(
            exit::REFUSED,
            anyhow!(
                "--operator alone no longer approves anything: an approval needs the approval secret, \
                 typed at the terminal (`mlres approve`) or given with --secret-fd N / --secret-file PATH. \
                 Nothing was approved"
            ),
        ));
    }
    let mut engine = open_engine(cli)?;
    // A replaced ledger is refused before anything is shown or asked.
    if !a.acknowledge_reset {
        mlres_engine::identity::require_own_history(&engine.ledger, &engine.project)?;
    }
    if !engine.approver_secret_is_set()? {
        return Err(fail(
            exit::REFUSED,
            anyhow!(
                "no approval secret is set. A human sets one once with `{} setup approver` (in a \
                 terminal); every approval then needs it. Nothing was approved",
                crate::invocation()
            ),
        ));
    }
    let status = mlres_engine::approval_status(&engine.ledger, &engine.project)?;
    let mut data_changes = Vec::new();
    let mut code_change = None;
    if let ApprovalStatus::Approved(prev) = &status {
        let current = engine.current_campaign()?;
        // A finished campaign needs an approval given after it ended to open the next one.
        let needs_new = match &current {
            Some(c) if c.status != "active" => !engine.approved_after(prev, c)?,
            _ => false,
        };
        data_changes = engine.dataset_changes(prev)?;
        code_change = engine.code_change(prev)?;
        if !needs_new && data_changes.is_empty() && code_change.is_none() {
            if a.json {
                print::json(&json!({
                    "approved": true,
                    "hash": prev.hash,
                    "unchanged": true,
                    "warnings": engine.project.program.warnings,
                }));
            } else {
                println!(
                    "Already approved (sha256 {}); nothing changed.",
                    &prev.hash[..16]
                );
            }
            return Ok(exit::OK);
        }
    }
    let mut err = std::io::stderr();
    let _ = writeln!(
        err,
        "You are authorising this campaign ({}):\n",
        engine.project.program_path.display()
    );
    let _ = writeln!(err, "{}", engine.project.document);
    if let ApprovalStatus::Changed { diff, .. } = &status {
        let _ = writeln!(err, "\nChanges since the last approval:\n{diff}");
    }
    // What the document's limits mean here: a limit this machine cannot enforce is said to
    // be off before anyone approves it.
    if let Some(job) = engine
        .project
        .program
        .job
        .as_ref()
        .filter(|j| j.backend == mlres_policy::Backend::Local)
    {
        let _ = writeln!(err, "\nLocal job limits on this machine:");
        for line in print::limits_here(job) {
            let line = line.trim_start_matches("on this machine: ");
            let _ = writeln!(err, "  {line}");
        }
        if job.gpus > 0 {
            let pool = &engine.cfg.local_gpus;
            let _ = writeln!(
                err,
                "  gpus {}: {}",
                job.gpus,
                if pool.len() >= job.gpus as usize {
                    format!(
                        "this machine gives local jobs {} (MLRES_LOCAL_GPUS)",
                        pool.join(",")
                    )
                } else {
                    format!(
                        "this machine gives local jobs {} GPU(s) (MLRES_LOCAL_GPUS={:?}): these jobs will be refused",
                        pool.len(),
                        pool.join(",")
                    )
                }
            );
        }
    }
    print::warnings(&engine.project.program.warnings, &mut err);
    if !data_changes.is_empty() {
        let _ = writeln!(
            err,
            "\nDataset changes since the last approval (audit them first: `mlres data audit`):"
        );
        for c in &data_changes {
            let _ = writeln!(err, "  {c}");
        }
    }
    // The code this approval pins (hashed now; snapshotted when approved).
    if let Some(m) = engine.current_code()? {
        let _ = writeln!(
            err,
            "\nCode pinned with this approval ({} files, {}, sha256 {}); jobs run this snapshot:",
            m.files.len(),
            mlres_policy::human_size(m.total_bytes()),
            &m.sha256[..16]
        );
        for f in m.files.iter().take(30) {
            let _ = writeln!(
                err,
                "  {} ({}{})",
                f.path,
                mlres_policy::human_size(f.size),
                if f.executable { ", executable" } else { "" }
            );
        }
        if m.files.len() > 30 {
            let _ = writeln!(err, "  … and {} more", m.files.len() - 30);
        }
    }
    if let Some(c) = &code_change {
        let _ = writeln!(err, "\nCode changes since the last approval:\n{c}");
    }
    let from = crate::secret::From::of(a.secret_fd, a.secret_file.as_deref());
    let who = crate::secret::approver(&from)?;
    let approval = engine.approve_with(&who, a.acknowledge_reset)?;
    if a.json {
        print::json(&json!({
            "approved": true,
            "hash": approval.hash,
            "approver": approval.approver,
            "warnings": engine.project.program.warnings,
        }));
    } else {
        println!(
            "Approved by {} (sha256 {}).",
            approval.approver,
            &approval.hash[..16]
        );
    }
    Ok(exit::OK)
}

pub fn loop_run(cli: &Cli, a: &LoopRunArgs) -> Result<u8, Failure> {
    let mut engine = open_engine(cli)?;
    let max_jobs = engine.project.program.envelope.max_jobs;
    let mut progress = Progress::new(max_jobs as u64, a.json);
    // Without the handler a signal would end us silently, leaving detached jobs unexplained.
    let interrupt = crate::signals::catch_interrupts().ok();
    let summary = engine.run_loop(
        &LoopOptions {
            fresh: a.fresh,
            interrupt,
            ..Default::default()
        },
        &mut |e| progress.event(&e),
    );
    progress.finish();
    let summary = match summary {
        Err(mlres_engine::EngineError::Interrupted {
            campaign,
            in_flight,
        }) => return Ok(interrupted(cli, &campaign, &in_flight)),
        other => json_refusal(a.json, other)?,
    };
    if a.json {
        print::json(&summary);
    } else {
        print::loop_summary(
            &summary,
            engine
                .project
                .program
                .objective
                .as_ref()
                .map(|o| o.metric.as_str()),
        );
    }
    // A campaign that ended without one usable metric failed, whatever stopped it.
    Ok(if summary.failed {
        exit::JOB_FAILED
    } else {
        exit::OK
    })
}

/// Tells the user what an interrupted loop leaves behind and how to stop or resume it.
fn interrupted(cli: &Cli, campaign: &str, in_flight: &[i64]) -> u8 {
    let (name, code) = crate::signals::received().unwrap_or(("a signal", 130));
    let mlres = if cli.project == Path::new(".") {
        "mlres".to_string()
    } else {
        format!("mlres -C {}", cli.project.display())
    };
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "mlres: interrupted by {name}; campaign {campaign} is still active."
    );
    if in_flight.is_empty() {
        let _ = writeln!(err, "Nothing is running.");
    } else {
        let ids: Vec<String> = in_flight.iter().map(|i| i.to_string()).collect();
        let _ = writeln!(
            err,
            "Still running: experiment(s) {}. Their supervisors are detached: the jobs keep \
             running and keep their budget reserved.",
            ids.join(", ")
        );
        let _ = writeln!(
            err,
            "  stop them:  {mlres} loop stop   (cancels them; --drain lets them finish)"
        );
    }
    let _ = writeln!(
        err,
        "  resume:     {mlres} loop run    (re-attaches to jobs in flight and continues)"
    );
    code
}

pub fn loop_status(cli: &Cli, a: &LoopStatusArgs) -> Result<u8, Failure> {
    let json_out = a.json;
    let mut engine = open_engine(cli)?;
    let report = engine.status_page(a.limit as usize, a.before_iter)?;
    // Said plainly on every status: what the budget's guarantees rest on in this mode.
    const SINGLE: &str = "single-user: mlres runs as you, so an agent with a shell as you can read \
                          its state dir (ledger, key); jobs cannot. See `mlres doctor`";
    const BROKER: &str = "broker: the state belongs to the broker's own user; you reach it only \
                          through its socket. See `mlres doctor`";
    let (name, detail) = if crate::broker::served().is_some() {
        ("broker", BROKER)
    } else {
        ("single-user", SINGLE)
    };
    if json_out {
        let mut v = serde_json::to_value(&report).map_err(|e| fail(exit::ERROR, anyhow!(e)))?;
        if let Some(o) = v.as_object_mut() {
            o.insert("mode".into(), json!({"name": name, "detail": detail}));
        }
        print::json(&v);
    } else {
        print::status(&report);
        println!("\nMode: {detail}.");
    }
    Ok(exit::OK)
}

pub fn loop_stop(cli: &Cli, a: &LoopStopArgs) -> Result<u8, Failure> {
    let mut engine = open_engine(cli)?;
    let o = engine.stop_reporting(&a.reason, a.drain, &mut |e| {
        // A failed check comes back as the command's error; print only what was done.
        if let mlres_engine::LoopEvent::RemoteJob { .. } = &e {
            crate::jobs::print_remote_event(&e);
        }
    })?;
    let c = &o.campaign;
    let why = c.stop_reason.clone().unwrap_or_default();
    if a.json {
        print::json(&json!({
            "campaign": c.id,
            "stop_requested": !o.already_ended,
            "already_ended": o.already_ended,
            "status": c.status,
            "stop_reason": c.stop_reason,
            "cancelled": o.cancelled,
        }));
    } else if o.already_ended {
        // Nothing runs and nothing is changed: the recorded reason is history. Exit 0, as for
        // any stop that finds its campaign already stopped.
        println!(
            "Campaign {} already finished ({}: {why}); nothing to stop, and its recorded reason stays.",
            c.id, c.status
        );
    } else if a.drain {
        println!("Stop requested for {}; jobs in flight will finish.", c.id);
    } else {
        println!(
            "Stop requested for {}; {} job(s) cancelled.",
            c.id, o.cancelled
        );
    }
    Ok(exit::OK)
}

pub fn exp_suggest(cli: &Cli, a: &ExpSuggestArgs) -> Result<u8, Failure> {
    let engine = open_engine(cli)?;
    let n = usize::try_from(a.n).unwrap_or(1);
    let list = engine.suggest(n)?;
    if a.json {
        print::json(&json!({ "suggestions": list }));
        return Ok(exit::OK);
    }
    if list.is_empty() {
        println!("The search space is exhausted: every configuration has been tried.");
        return Ok(exit::OK);
    }
    for s in &list {
        println!("{}", s.hypothesis);
        let config = serde_json::Value::Object(s.config.clone()).to_string();
        if config.contains('\'') {
            println!("  config: {config}");
        } else {
            println!("  mlres exp submit --config '{config}' --hypothesis '...'");
        }
    }
    Ok(exit::OK)
}

pub fn exp_submit(cli: &Cli, a: &ExpSubmitArgs) -> Result<u8, Failure> {
    let mut engine = open_engine(cli)?;
    // A bad --config is a refusal here (exit 3), as it always was for bad JSON: the config
    // must be exactly the approved search-space parameters.
    let config = match &engine.project.program.search_space {
        Some(space) => mlres_policy::parse_config_args(space, &a.config)
            .map_err(|e| fail(exit::REFUSED, anyhow!("refused (invalid_config): {e}")))?,
        None => serde_json::Map::new(),
    };
    let exp = engine.submit_agent(
        SubmitRequest {
            config: serde_json::Value::Object(config),
            hypothesis: a.hypothesis.clone(),
            source: "agent",
            proposal_index: None,
        },
        &SubmitOverrides::default(),
    );
    let exp = json_refusal(a.json, exp)?;
    if a.json {
        print::json(&print::exp_json(&exp));
    } else {
        println!(
            "Submitted experiment {} (iter {}, campaign {}). Next: `mlres exp wait {}`",
            exp.id, exp.iter, exp.campaign, exp.id
        );
    }
    Ok(exit::OK)
}

fn exp_code(exp: &mlres_ledger::Experiment) -> u8 {
    match exp.status.as_deref() {
        // Early stopping ended a pruned job on purpose: not a failure.
        Some("completed" | "pruned") | None => exit::OK,
        Some(_) => exit::JOB_FAILED,
    }
}

pub fn exp_status(cli: &Cli, id: i64, json_out: bool) -> Result<u8, Failure> {
    let mut engine = open_engine(cli)?;
    let exp = engine.experiment_status(id)?;
    // How the sandbox ran the job: details, kept apart from the reason a job failed.
    let notes = engine.sandbox_notes(&exp);
    let evidence = engine.ledger.evidence(exp.id)?;
    if json_out {
        let mut v = print::exp_json(&exp);
        v["sandbox"] = json!(notes);
        v["evidence"] = evidence.unwrap_or(serde_json::Value::Null);
        print::json(&v);
    } else {
        print::experiment(&exp);
        if let Some(ev) = print::evidence_line(evidence.as_ref()) {
            println!("  evidence:   {ev}");
        }
        if !notes.is_empty() {
            println!("  sandbox:    {}", notes.join("; "));
        }
    }
    Ok(exit::OK)
}

pub fn exp_wait(cli: &Cli, a: &ExpWaitArgs) -> Result<u8, Failure> {
    let secs = mlres_policy::parse_duration(&a.timeout)
        .map_err(|e| fail(exit::USAGE, anyhow!("--timeout: {e}")))?;
    let mut engine = open_engine(cli)?;
    let exp = engine.wait(a.id, Duration::from_secs(secs))?;
    if a.json {
        print::json(&print::exp_json(&exp));
    } else {
        print::experiment(&exp);
    }
    Ok(exp_code(&exp))
}

pub fn exp_evaluate(cli: &Cli, id: i64, json_out: bool) -> Result<u8, Failure> {
    let mut engine = open_engine(cli)?;
    let exp = engine.experiment_status(id)?;
    let exp = engine.evaluate(exp.id, &mut |_| {})?;
    if exp.state != "evaluated" {
        return Err(fail(
            exit::ERROR,
            anyhow!(
                "experiment {} is {}; it can be evaluated once its job has finished (`mlres exp wait {}`)",
                exp.id,
                exp.state,
                exp.id
            ),
        ));
    }
    if json_out {
        print::json(&print::exp_json(&exp));
    } else {
        print::experiment(&exp);
    }
    Ok(exp_code(&exp))
}

pub fn exp_logs(cli: &Cli, a: &ExpLogsArgs) -> Result<u8, Failure> {
    let mut engine = open_engine(cli)?;
    let exp = engine.experiment_status(a.id)?;
    let Some(h) = &exp.handle else {
        return Err(fail(
            exit::ERROR,
            anyhow!("experiment {} has not started", a.id),
        ));
    };
    if !Path::new(h).exists() && (exp.state == "evaluated" || exp.state == "released") {
        return Err(fail(
            exit::ERROR,
            anyhow!(
                "the logs of experiment {} were removed by the retention rule (the {} most recent \
                 settled experiments and every kept one keep theirs; set MLRES_KEEP_ATTEMPTS to \
                 keep more). Its metric, decision and error are still in the ledger: `mlres exp \
                 status {}`",
                a.id,
                engine.cfg.keep_attempts,
                a.id
            ),
        ));
    }
    let bytes = mlres_backends::read_log(Path::new(h), a.stderr)
        .map_err(|e| fail(exit::ERROR, anyhow!(e)))?;
    let text = engine.redact_secrets(Path::new(h), &String::from_utf8_lossy(&bytes));
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(exit::OK)
}

/// `--max-size` of the commands that copy or upload outputs.
pub(crate) fn max_size(s: &str) -> Result<u64, Failure> {
    mlres_policy::parse_size(s).map_err(|e| fail(exit::USAGE, anyhow!("--max-size: {e}")))
}

pub fn exp_artifacts(cli: &Cli, a: &ExpArtifactsArgs) -> Result<u8, Failure> {
    let max = max_size(&a.max_size)?;
    let to =
        a.to.as_deref()
            .map(std::path::absolute)
            .transpose()
            .context("--to")?;
    let mut engine = open_engine(cli)?;
    let r = engine.copy_artifacts(a.id, to.as_deref(), a.force, max)?;
    if a.json {
        print::json(&r);
        return Ok(exit::OK);
    }
    let shown = r
        .dest
        .strip_prefix(&engine.project.root)
        .unwrap_or(&r.dest)
        .display()
        .to_string();
    println!(
        "Copied {} file(s) ({}) of experiment {} ({}{}) to {shown}:",
        r.files.len(),
        mlres_policy::human_size(r.bytes),
        r.exp_id,
        r.status.as_deref().unwrap_or("finished"),
        r.decision
            .as_deref()
            .map(|d| format!(", {d}"))
            .unwrap_or_default(),
    );
    for f in &r.files {
        let mut note = String::new();
        if !f.redacted.is_empty() {
            let mut kinds = f.redacted.clone();
            kinds.dedup();
            note.push_str(&format!(
                "  ({} redacted: {})",
                f.redacted.len(),
                kinds.join(", ")
            ));
        }
        if f.replaced {
            note.push_str("  (replaced)");
        }
        println!(
            "  {:<40} {:>10}  sha256 {}{note}",
            f.path,
            mlres_policy::human_size(f.bytes),
            &f.sha256[..12]
        );
    }
    for s in &r.skipped {
        println!("  skipped {}: {}", s.path, s.reason);
    }
    Ok(exit::OK)
}

pub fn ledger_verify(cli: &Cli, json_out: bool) -> Result<u8, Failure> {
    let dir = crate::state_dir(&cli.state_dir)?;
    let ledger = mlres_ledger::Ledger::open(&dir)?;
    let report = ledger.verify()?;
    if json_out {
        print::json(&report);
    } else if report.is_ok() {
        println!(
            "ledger OK: {} events, hash chain and HMACs verified ({})",
            report.events,
            ledger.db_path().display()
        );
    } else {
        println!(
            "ledger TAMPERED: {} problem(s) in {}",
            report.problems.len(),
            ledger.db_path().display()
        );
        for p in &report.problems {
            let at = p
                .seq
                .map(|s| format!("event {s}"))
                .unwrap_or_else(|| "ledger".into());
            println!("  {at}: {:?}: {}", p.kind, p.detail);
        }
    }
    Ok(if report.is_ok() {
        exit::OK
    } else {
        exit::TAMPERED
    })
}

pub fn ledger_events(cli: &Cli, a: &LedgerEventsArgs) -> Result<u8, Failure> {
    let dir = crate::state_dir(&cli.state_dir)?;
    let ledger = mlres_ledger::Ledger::open(&dir)?;
    let total = ledger.event_count()?;
    let after = total.saturating_sub(a.limit as u64);
    let events = ledger.events(None, after, a.limit)?;
    if a.json {
        print::json(&events);
    } else {
        for e in &events {
            println!(
                "{:>6}  {}  {:<18} {:<14} {}",
                e.seq,
                mlres_engine::time::iso8601(e.ts_ms),
                e.kind,
                e.campaign.clone().unwrap_or_default(),
                e.payload
            );
        }
    }
    Ok(exit::OK)
}

pub fn ledger_export(cli: &Cli, json_out: bool) -> Result<u8, Failure> {
    let engine = open_engine(cli)?;
    let c = engine.current_campaign()?.ok_or_else(|| {
        fail(
            exit::ERROR,
            anyhow!("no campaign yet in {}", engine.project.root.display()),
        )
    })?;
    let paths = mlres_engine::export(&engine.ledger, &engine.project, &c.id)?;
    if json_out {
        print::json(&paths);
    } else {
        println!(
            "wrote {} and {}",
            paths.ledger_jsonl.display(),
            paths.summary_md.display()
        );
    }
    Ok(exit::OK)
}

pub fn setup_approver(cli: &Cli, a: &crate::cli::SetupApproverArgs) -> Result<u8, Failure> {
    let dir = crate::state_dir(&cli.state_dir)?;
    let ledger = mlres_ledger::Ledger::open(&dir)?;
    let existing = ledger.approver_secret()?.is_some();
    drop(ledger);
    if !existing && crate::broker::served().is_some() {
        return Err(fail(
            exit::REFUSED,
            anyhow!(
                "this broker has no approval secret; only `sudo mlres setup broker` sets the first one \
                 (a client of the broker could be an agent)"
            ),
        ));
    }
    let current = if existing {
        let from = crate::secret::From::of(a.current_secret_fd, a.current_secret_file.as_deref());
        Some(crate::secret::read(&from, "Current approval secret: ")?.0)
    } else {
        None
    };
    let from = crate::secret::From::of(a.secret_fd, a.secret_file.as_deref());
    let (new, source) =
        crate::secret::read(&from, "New approval secret (at least 8 characters): ")?;
    if source == mlres_engine::SecretSource::Terminal {
        let (again, _) = crate::secret::read(&from, "Again: ")?;
        if again != new {
            return Err(fail(
                exit::REFUSED,
                anyhow!("the two entries differ; nothing was changed"),
            ));
        }
    }
    let set_by = format!("{} (uid {})", crate::user_name(), crate::secret::uid());
    let mut ledger = mlres_ledger::Ledger::open(&dir)?;
    mlres_engine::set_approver_secret(&mut ledger, &new, current.as_deref(), &set_by)?;
    if a.json {
        print::json(
            &json!({"approver_secret": if existing { "changed" } else { "set" }, "by": set_by}),
        );
    } else {
        println!(
            "Approval secret {} (only its Argon2id hash is kept in {}). Every `mlres approve` now needs it.\n\
             In single-user mode an agent running as you can read the state dir; a broker under its own user is what holds against that.",
            if existing { "changed" } else { "set" },
            dir.display()
        );
    }
    Ok(exit::OK)
}
