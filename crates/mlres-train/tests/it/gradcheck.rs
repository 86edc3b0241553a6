//! Analytic gradients vs central finite differences, for every parameter tensor.

use mlres_train::model::{BOS, EOS};
use mlres_train::{Batch, Model, ModelConfig, Seq};

fn tiny(n_layers: usize) -> Model {
    let cfg = ModelConfig {
        vocab_size: mlres_train::model::VOCAB_SIZE,
        d_model: 8,
        n_layers,
        n_heads: 2,
        d_ff: 12,
        max_seq_len: 6,
    };
    // A large init so gradients are well above f32 finite-difference noise.
    let mut m = Model::init(cfg, 7, 0.4);
    // Make LayerNorm gains/biases non-trivial so their gradients are exercised too.
    let mut r = mlres_train::Rng::new(99);
    for s in m.specs().to_vec() {
        if !s.decay {
            for p in &mut m.params[s.offset..s.offset + s.len] {
                *p += (r.normal() * 0.3) as f32;
            }
        }
    }
    m
}

fn batch() -> Batch {
    let a = Seq {
        tokens: vec![BOS, 3, 5, 7, 2, EOS],
        loss_start: 3,
    };
    let b = Seq {
        tokens: vec![BOS, 9, 1, EOS],
        loss_start: 1,
    };
    Batch::from_seqs([&a, &b])
}

fn check(model: &Model, b: &Batch) -> Vec<(String, f64)> {
    let mut grads = vec![0.0f32; model.param_count()];
    model.loss_and_grad(b, &mut grads);
    let mut worst = Vec::new();
    for spec in model.specs() {
        let mut num = Vec::with_capacity(spec.len);
        let mut ana = Vec::with_capacity(spec.len);
        for (i, &g) in grads.iter().enumerate().skip(spec.offset).take(spec.len) {
            let eps = 1e-2f32;
            let mut m = model.clone();
            let orig = m.params[i];
            m.params[i] = orig + eps;
            let lp = m.loss(b);
            m.params[i] = orig - eps;
            let lm = m.loss(b);
            num.push((lp - lm) / (2.0 * eps as f64));
            ana.push(g as f64);
        }
        let diff: f64 = num
            .iter()
            .zip(&ana)
            .map(|(n, a)| (n - a) * (n - a))
            .sum::<f64>()
            .sqrt();
        let scale: f64 = num.iter().map(|n| n * n).sum::<f64>().sqrt()
            + ana.iter().map(|a| a * a).sum::<f64>().sqrt();
        worst.push((spec.name.clone(), diff / scale.max(1e-12)));
    }
    worst
}

#[test]
fn every_parameter_gradient_matches_finite_differences() {
    let m = tiny(1);
    let b = batch();
    let errs = check(&m, &b);
    assert_eq!(errs.len(), m.specs().len());
    for (name, rel) in &errs {
        assert!(*rel < 2e-3, "{name}: relative error {rel}");
    }
}

#[test]
fn two_layer_gradients_match_finite_differences() {
    let m = tiny(2);
    let errs = check(&m, &batch());
    assert_eq!(errs.len(), m.specs().len());
    assert!(errs.iter().any(|(n, _)| n == "blocks.1.attn.wk"));
    for (name, rel) in &errs {
        assert!(*rel < 2e-3, "{name}: relative error {rel}");
    }
}

#[test]
fn gradients_accumulate_into_the_buffer() {
    let m = tiny(1);
    let b = batch();
    let mut g1 = vec![0.0f32; m.param_count()];
    let l1 = m.loss_and_grad(&b, &mut g1);
    let mut g2 = g1.clone();
    let l2 = m.loss_and_grad(&b, &mut g2);
    assert_eq!(l1, l2);
    assert!(g1.iter().any(|&g| g != 0.0));
    for (a, b) in g1.iter().zip(&g2) {
        assert!((2.0 * a - b).abs() <= 1e-6 * (1.0 + a.abs()));
    }
}
