//! Config validation.

use crate::small_cfg;
use mlres_train::{DataSource, SftConfig, TrainError, run_sft};

fn rejects(cfg: SftConfig, needle: &str) {
    let mut out = Vec::new();
    match run_sft(&cfg, &mut out, None) {
        Err(TrainError::InvalidConfig(m)) => {
            assert!(
                m.contains(needle),
                "message {m:?} should mention {needle:?}"
            )
        }
        other => panic!("expected InvalidConfig({needle}), got {other:?}"),
    }
    assert!(
        out.is_empty(),
        "nothing is trained or printed for a bad config"
    );
}

#[test]
fn default_config_is_valid() {
    SftConfig::default().validate().unwrap();
    small_cfg(10).validate().unwrap();
}

#[test]
fn invalid_values_are_rejected_with_clear_errors() {
    let base = small_cfg(10);
    rejects(
        SftConfig {
            d_model: 10,
            n_heads: 3,
            ..base.clone()
        },
        "divisible",
    );
    rejects(
        SftConfig {
            steps: 0,
            ..base.clone()
        },
        "steps",
    );
    rejects(
        SftConfig {
            lr: 0.0,
            ..base.clone()
        },
        "lr",
    );
    rejects(
        SftConfig {
            lr: -1e-3,
            ..base.clone()
        },
        "lr",
    );
    rejects(
        SftConfig {
            lr: f64::NAN,
            ..base.clone()
        },
        "lr",
    );
    rejects(
        SftConfig {
            lr: f64::INFINITY,
            ..base.clone()
        },
        "lr",
    );
    rejects(
        SftConfig {
            d_model: 0,
            ..base.clone()
        },
        "d_model",
    );
    rejects(
        SftConfig {
            n_heads: 0,
            ..base.clone()
        },
        "n_heads",
    );
    rejects(
        SftConfig {
            n_layers: 0,
            ..base.clone()
        },
        "n_layers",
    );
    rejects(
        SftConfig {
            d_ff: Some(0),
            ..base.clone()
        },
        "d_ff",
    );
    rejects(
        SftConfig {
            batch_size: 0,
            ..base.clone()
        },
        "batch_size",
    );
    rejects(
        SftConfig {
            log_every: 0,
            ..base.clone()
        },
        "log_every",
    );
    rejects(
        SftConfig {
            max_seq_len: 1,
            ..base.clone()
        },
        "max_seq_len",
    );
    rejects(
        SftConfig {
            weight_decay: -0.1,
            ..base.clone()
        },
        "weight_decay",
    );
    rejects(
        SftConfig {
            grad_clip: 0.0,
            ..base.clone()
        },
        "grad_clip",
    );
    rejects(
        SftConfig {
            grad_clip: f64::NAN,
            ..base.clone()
        },
        "grad_clip",
    );
    rejects(
        SftConfig {
            data: DataSource::Arithmetic {
                digits: 1,
                ops: vec!['+'],
                train_size: 95,
                eval_size: 10,
                data_seed: 1,
            },
            ..base.clone()
        },
        "exceeds",
    );
    rejects(
        SftConfig {
            data: DataSource::Arithmetic {
                digits: 2,
                ops: vec!['%'],
                train_size: 10,
                eval_size: 10,
                data_seed: 1,
            },
            ..base.clone()
        },
        "op",
    );
}

#[test]
fn warmup_longer_than_steps_is_rejected_but_equal_is_allowed() {
    let base = small_cfg(10);
    rejects(
        SftConfig {
            warmup: 11,
            ..base.clone()
        },
        "warmup",
    );
    SftConfig { warmup: 10, ..base }.validate().unwrap();
}

#[test]
fn lr_schedule_warms_up_then_decays_to_a_tenth() {
    let cfg = SftConfig {
        lr: 1.0,
        steps: 110,
        warmup: 10,
        ..small_cfg(10)
    };
    assert!((mlres_train::lr_at(&cfg, 1) - 0.1).abs() < 1e-12);
    assert!((mlres_train::lr_at(&cfg, 10) - 1.0).abs() < 1e-12);
    assert!((mlres_train::lr_at(&cfg, 60) - 0.55).abs() < 1e-12);
    assert!((mlres_train::lr_at(&cfg, 110) - 0.1).abs() < 1e-12);
    let no_warm = SftConfig { warmup: 0, ..cfg };
    assert!((mlres_train::lr_at(&no_warm, 1) - 1.0).abs() < 1e-3);
}
