//! Timing harness: `cargo run -p mlres-train --example speed --release -- [lr] [d_model] [steps] [batch] [warmup] [layers]`.
use mlres_train::{SftConfig, run_sft};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cfg = SftConfig::default();
    let get = |i: usize| args.get(i).map(String::as_str);
    if let Some(v) = get(0) {
        cfg.lr = v.parse().expect("lr");
    }
    if let Some(v) = get(1) {
        cfg.d_model = v.parse().expect("d_model");
    }
    if let Some(v) = get(2) {
        cfg.steps = v.parse().expect("steps");
    }
    if let Some(v) = get(3) {
        cfg.batch_size = v.parse().expect("batch");
    }
    if let Some(v) = get(4) {
        cfg.warmup = v.parse().expect("warmup");
    }
    if let Some(v) = get(5) {
        cfg.n_layers = v.parse().expect("layers");
    }
    if let Ok(v) = std::env::var("SEED") {
        cfg.seed = v.parse().expect("seed");
    }
    let t = Instant::now();
    let mut out = std::io::stdout();
    let r = run_sft(&cfg, &mut out, None).expect("run");
    let s = t.elapsed().as_secs_f64();
    println!(
        "RESULT lr={} d={} steps={} batch={} warmup={} layers={} acc={:.3} eval_loss={:.4} secs={:.1} steps_per_s={:.1}",
        cfg.lr,
        cfg.d_model,
        cfg.steps,
        cfg.batch_size,
        cfg.warmup,
        cfg.n_layers,
        r.eval_accuracy,
        r.eval_loss,
        s,
        r.steps as f64 / s
    );
}
