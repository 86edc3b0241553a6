//! Integration tests of mlres-train.

mod checkpoint;
mod config;
mod data;
mod gradcheck;
mod loss;
mod training;

use mlres_train::{DataSource, SftConfig};

/// A small, fast config on 1-digit addition (for tests that only need a few steps).
pub fn small_cfg(steps: usize) -> SftConfig {
    SftConfig {
        lr: 3e-3,
        d_model: 16,
        n_layers: 1,
        n_heads: 2,
        d_ff: None,
        steps,
        warmup: steps / 10,
        batch_size: 16,
        weight_decay: 0.1,
        grad_clip: 1.0,
        seed: 1,
        log_every: 10,
        max_seq_len: 16,
        data: DataSource::Arithmetic {
            digits: 1,
            ops: vec!['+'],
            train_size: 80,
            eval_size: 20,
            data_seed: 5,
        },
    }
}

/// Parses a `k=v k=v` line into pairs of key and float value (panics if a value is not a float).
pub fn parse_kv(line: &str) -> Vec<(String, f64)> {
    line.split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("key=value");
            (k.to_string(), v.parse::<f64>().expect("float value"))
        })
        .collect()
}
