//! `mlres demo`: the main job on a fresh machine (local backend, built-in trainer, no network).

use anyhow::{Context, anyhow};
use mlres_engine::{ApprovalStatus, Engine, LoopOptions};
use serde_json::json;

use crate::cli::{Cli, DemoArgs};
use crate::print::{self, Progress};
use crate::{Failure, engine_config, exit, fail};

/// The demo campaign. `mlres init` writes the same file as a starting point.
pub const PROGRAM: &str = include_str!("demo_program.md");

pub fn run(cli: &Cli, a: &DemoArgs) -> Result<u8, Failure> {
    let dir = &a.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("program.md");
    match std::fs::read_to_string(&path) {
        Ok(existing) if existing == PROGRAM => {}
        Ok(_) => {
            return Err(fail(
                exit::REFUSED,
                anyhow!(
                    "{} differs from the built-in demo campaign, so `mlres demo` will not approve it for you.\n\
                     For your own campaign run `{me} -C {d} approve` (as a human) and `{me} -C {d} loop run`; \
                     or delete the file to get the demo back.",
                    path.display(),
                    me = crate::invocation(),
                    d = crate::shell_word(&dir.to_string_lossy()),
                ),
            ));
        }
        Err(_) => std::fs::write(&path, PROGRAM)
            .with_context(|| format!("cannot write {}", path.display()))?,
    }
    let cfg = engine_config(cli)?;
    let state_dir = cfg.state_dir.clone();
    let mut engine = Engine::open(cfg, dir)?;
    // The person who typed `mlres demo` approves the built-in demo envelope (checked above to be
    // byte-identical to the one compiled into this binary).
    let status = mlres_engine::approval_status(&engine.ledger, &engine.project)?;
    let current = engine.current_campaign()?;
    let active = current
        .as_ref()
        .map(|c| c.status == "active")
        .unwrap_or(false);
    let needs_approval = match &status {
        ApprovalStatus::Approved(prev) => {
            a.fresh
                || match &current {
                    Some(c) if !active => !engine.approved_after(prev, c)?,
                    _ => false,
                }
        }
        _ => true,
    };
    if needs_approval && crate::broker::served().is_some() {
        return Err(fail(
            exit::REFUSED,
            anyhow!(
                "in broker mode the demo is approved like any campaign, by a human with the approval secret: \
                 `mlres -C {d} approve`, then `mlres -C {d} loop run` (program.md is the demo's)",
                d = crate::shell_word(&engine.project.root.to_string_lossy())
            ),
        ));
    }
    if needs_approval {
        engine.approve_builtin_demo(&crate::user_name(), PROGRAM)?;
    }
    eprintln!(
        "mlres demo: project {}  state {}",
        engine.project.root.display(),
        state_dir.display()
    );
    eprintln!(
        "mlres demo: sweeping the built-in trainer on 2-digit addition (local backend, no network)"
    );
    let max_jobs = engine.project.program.envelope.max_jobs;
    let mut progress = Progress::new(max_jobs as u64, a.json);
    let summary = engine.run_loop(
        &LoopOptions {
            fresh: a.fresh,
            ..Default::default()
        },
        &mut |e| progress.event(&e),
    );
    progress.finish();
    let summary = summary?;
    // Measured, not assumed: the same model, initialised but not trained, on the same held-out set.
    let untrained = untrained_accuracy().map_err(|e| fail(exit::ERROR, anyhow!(e)))?;
    if a.json {
        print::json(&json!({"summary": summary, "untrained_eval_accuracy": untrained}));
    } else {
        print::loop_summary(&summary, Some("eval_accuracy"));
        println!(
            "An untrained model scores eval_accuracy {untrained:.4} on the same held-out problems."
        );
        let me = crate::invocation();
        println!(
            "Run `{me} demo` again to start a fresh campaign; `{me} -C {} loop status` shows this one.",
            crate::shell_word(&a.dir.to_string_lossy())
        );
    }
    Ok(exit::OK)
}

/// Held-out exact-match accuracy of the demo's model before any training step.
fn untrained_accuracy() -> Result<f64, mlres_train::TrainError> {
    let cfg = mlres_train::SftConfig::default();
    let data = mlres_train::load_dataset(&cfg.data)?;
    let model = mlres_train::Model::init(cfg.model_config(), cfg.seed, mlres_train::INIT_STD);
    Ok(mlres_train::evaluate(&model, &data.eval).accuracy)
}
