//! End-to-end training behaviour: learning, determinism, metric lines, divergence.

use crate::{parse_kv, small_cfg};
use mlres_train::{
    INIT_STD, Model, SftConfig, eval_loss, exact_match_accuracy, load_dataset, run_sft,
};

fn run(cfg: &SftConfig) -> (mlres_train::SftReport, String) {
    let mut out = Vec::new();
    let r = run_sft(cfg, &mut out, None).unwrap();
    (r, String::from_utf8(out).unwrap())
}

#[test]
fn short_run_beats_untrained_eval_loss() {
    let cfg = small_cfg(300);
    let data = load_dataset(&cfg.data).unwrap();
    let untrained = Model::init(cfg.model_config(), cfg.seed, INIT_STD);
    let base = eval_loss(&untrained, &data.eval);
    assert!(base > 4.0, "untrained loss ~ln(259): {base}");
    let (r, _) = run(&cfg);
    assert!(!r.diverged);
    assert!(
        r.eval_loss < 0.5 * base,
        "eval_loss {} vs untrained {base}",
        r.eval_loss
    );
    assert!(r.train_loss < 0.5 * base);
}

#[test]
fn default_config_learns_two_digit_addition() {
    let cfg = SftConfig::default();
    let data = load_dataset(&cfg.data).unwrap();
    let untrained = Model::init(cfg.model_config(), cfg.seed, INIT_STD);
    let base_acc = exact_match_accuracy(&untrained, &data.eval);
    assert!(base_acc < 0.05, "untrained accuracy {base_acc}");
    let (r, out) = run(&cfg);
    assert!(!r.diverged);
    assert_eq!(r.steps, cfg.steps);
    assert!(
        r.eval_accuracy >= 0.6,
        "eval_accuracy {}\n{out}",
        r.eval_accuracy
    );
}

#[test]
fn same_seed_same_report_different_seed_different_losses() {
    let cfg = small_cfg(40);
    let (a, out_a) = run(&cfg);
    let (b, out_b) = run(&cfg);
    assert_eq!(a, b);
    assert_eq!(out_a, out_b);
    let (c, _) = run(&SftConfig { seed: 2, ..cfg });
    assert_ne!(a.train_loss, c.train_loss);
    assert_ne!(a.eval_loss, c.eval_loss);
}

#[test]
fn metric_lines_follow_the_cadence_and_parse() {
    let cfg = SftConfig {
        log_every: 7,
        ..small_cfg(30)
    };
    let (r, out) = run(&cfg);
    let lines: Vec<&str> = out.lines().collect();
    let steps: Vec<f64> = lines
        .iter()
        .filter(|l| l.starts_with("step="))
        .map(|l| {
            let kv = parse_kv(l);
            let keys: Vec<&str> = kv.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, ["step", "loss", "lr"], "{l}");
            assert!(kv[1].1.is_finite() && kv[2].1 > 0.0);
            kv[0].1
        })
        .collect();
    assert_eq!(steps, [7.0, 14.0, 21.0, 28.0]);
    let last = lines.last().unwrap();
    let kv = parse_kv(last);
    let keys: Vec<&str> = kv.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "eval_loss",
            "eval_accuracy",
            "train_loss",
            "steps",
            "params"
        ]
    );
    assert!((kv[0].1 - r.eval_loss).abs() < 1e-4);
    assert!((kv[1].1 - r.eval_accuracy).abs() < 1e-4);
    assert_eq!(kv[3].1, 30.0);
    assert_eq!(kv[4].1, r.params as f64);
    assert_eq!(lines.len(), 5);
}

#[test]
fn divergence_stops_training_and_still_reports() {
    let cfg = SftConfig {
        lr: 1e38,
        warmup: 0,
        ..small_cfg(50)
    };
    let (r, out) = run(&cfg);
    assert!(r.diverged, "{out}");
    assert!(r.steps < 50);
    assert_eq!(r.eval_accuracy, 0.0);
    let div = out
        .lines()
        .find(|l| l.starts_with("diverged="))
        .expect("diverged line");
    let kv = parse_kv(div);
    assert_eq!(kv[0], ("diverged".to_string(), 1.0));
    assert_eq!(kv[1].1, (r.steps + 1) as f64);
    let last = parse_kv(out.lines().last().unwrap());
    assert_eq!(last[0].0, "eval_loss");
    assert_eq!(last[1], ("eval_accuracy".to_string(), 0.0));
}

#[test]
fn jsonl_training_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.jsonl");
    let mut body = String::new();
    for i in 0..40 {
        body.push_str(&format!(
            "{{\"prompt\": \"say {}\", \"completion\": \"{}\"}}\n",
            i % 4,
            ["zero", "one", "two", "three"][i % 4]
        ));
    }
    std::fs::write(&p, body).unwrap();
    let cfg = SftConfig {
        data: mlres_train::DataSource::Jsonl {
            train: p,
            eval: None,
        },
        ..small_cfg(150)
    };
    let (r, _) = run(&cfg);
    assert!(r.eval_loss < 1.0, "{}", r.eval_loss);
    assert!(r.eval_accuracy > 0.5, "{}", r.eval_accuracy);
}
