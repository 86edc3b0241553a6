//! Benchmark helper (bench/report.sh): seeds a synthetic campaign through the real ledger API,
//! as `mlres loop run` would have left it: a human approval of the project's program.md, one
//! campaign, N evaluated experiments whose attempt directories hold captured logs with P
//! metric lines each (`step=… loss=… accuracy=…`), and, with `--running`, one more experiment
//! still in flight whose `stdout.log` the benchmark appends to.
//!
//! Usage: seed_campaign STATE_DIR PROJECT_DIR N P [--running]

use std::io::Write;
use std::path::Path;

use mlres_ledger::{EvalRecord, FinishRecord, Ledger, ReserveRequest};
use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: seed_campaign STATE_DIR PROJECT_DIR N P [--running]");
        std::process::exit(2);
    }
    let state = Path::new(&args[1]);
    let project = Path::new(&args[2]).canonicalize().expect("project dir");
    let n: u32 = args[3].parse().expect("N");
    let p: u32 = args[4].parse().expect("P");
    let running = args.get(5).is_some_and(|a| a == "--running");
    let src = std::fs::read_to_string(project.join("program.md")).expect("program.md");
    let program = mlres_policy::parse_program(&src).expect("valid program.md");
    let doc = mlres_policy::approval_document(&program);
    let hash = mlres_policy::approval_hash(&doc);
    let root = project.to_string_lossy().into_owned();
    let mut ledger = Ledger::open(state).expect("ledger");
    let approval = ledger
        .record_approval(&root, &hash, &doc, "bench (seed_campaign)")
        .expect("approval");
    let campaign = match ledger
        .open_campaign(&approval, &hash, false)
        .expect("campaign")
    {
        mlres_ledger::Opened::Created { campaign, .. }
        | mlres_ledger::Opened::Resumed(campaign) => campaign,
        other => panic!("no campaign: {other:?}"),
    };
    let jobs = state.join("jobs").join(&campaign.id);
    let mut best: Option<f64> = None;
    let total = n + u32::from(running);
    for i in 0..total {
        let lr = 1e-4 * f64::from(1 + (i * 7919) % 100);
        let layers = 1 + (i * 31) % 6;
        let req = ReserveRequest {
            hypothesis: format!("random sample #{}: lr={lr:.4}, layers={layers}", i + 1),
            config: json!({"lr": lr, "layers": layers}),
            source: "loop".into(),
            proposal_index: Some(u64::from(i)),
            backend: "local".into(),
            flavor: "cpu-basic".into(),
            timeout_secs: 60,
            cost_micro: 0,
            code_sha256: None,
        };
        let e = ledger
            .reserve(&campaign.id, &req, |_| Ok(()))
            .expect("reserve");
        let dir = jobs.join(format!("e{}-a1", e.id));
        std::fs::create_dir_all(&dir).unwrap();
        let mut log = std::fs::File::create(dir.join("stdout.log")).unwrap();
        ledger
            .mark_submitted(e.id, 1, &dir.to_string_lossy())
            .expect("submit");
        if i == n {
            break; // the running one: the benchmark writes its lines
        }
        let quality = 1.0 - ((lr.ln() - 3e-3f64.ln()).powi(2) / 20.0) - 0.01 * f64::from(layers);
        let mut acc = 0.0;
        for s in 1..=p {
            let t = f64::from(s) / f64::from(p);
            let loss = 2.5 * (-3.0 * t * quality.max(0.05)).exp() + 0.1;
            acc = quality * (1.0 - (-4.0 * t).exp());
            writeln!(log, "step={s} loss={loss:.5} accuracy={acc:.5}").unwrap();
        }
        let keep = best.is_none_or(|b| acc > b);
        if keep {
            best = Some(acc);
        }
        let fin = FinishRecord {
            status: "completed".into(),
            exit_code: Some(0),
            duration_ms: 1000 + u64::from(i % 50) * 20,
            spent_cost_micro: 0,
            error: None,
        };
        let ev = EvalRecord {
            metric: Some(acc),
            metrics: json!({"accuracy": acc}),
            decision: if keep { "keep" } else { "discard" }.into(),
            reason: if keep {
                format!("`accuracy` = {acc:.4} improves on the best")
            } else {
                format!("`accuracy` = {acc:.4} does not beat the best")
            },
            best_so_far: best,
            evidence: None,
        };
        ledger.finish_and_evaluate(e.id, &fin, &ev).expect("finish");
    }
    println!("{}", campaign.id);
}
