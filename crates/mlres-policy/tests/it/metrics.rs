//! Metric line parsing.

use mlres_policy::{MetricScan, parse_metric_line};

fn pairs(line: &str) -> Vec<(String, f64)> {
    parse_metric_line(line)
}

fn p(k: &str, v: f64) -> (String, f64) {
    (k.to_string(), v)
}

#[test]
fn key_value_pairs() {
    assert_eq!(
        pairs("eval_accuracy=0.81 step=200"),
        vec![p("eval_accuracy", 0.81), p("step", 200.0)]
    );
    assert_eq!(
        pairs("loss=1.5,lr=3e-4"),
        vec![p("loss", 1.5), p("lr", 3e-4)]
    );
    assert_eq!(
        pairs("epoch 3 done: eval/loss=0.25 note=good"),
        vec![p("eval/loss", 0.25)]
    );
    assert_eq!(
        pairs("100%|██| 10/10 [00:01<00:00, 9.5it/s, loss=0.123]"),
        vec![p("loss", 0.123)]
    );
    assert_eq!(pairs("9x=1 -k=2 a=b=3"), vec![]);
    let nan = pairs("loss=nan acc=inf");
    assert_eq!(nan.len(), 2);
    assert!(nan[0].1.is_nan());
    assert!(nan[1].1.is_infinite());
    assert_eq!(pairs("nothing to see here"), vec![]);
}

#[test]
fn json_lines() {
    assert_eq!(
        pairs(
            r#"{"eval_loss": 1.2, "epoch": 1, "name": "x", "nested": {"a": 1}, "ok": true, "n": null}"#
        ),
        vec![p("eval_loss", 1.2), p("epoch", 1.0)]
    );
    assert_eq!(pairs(r#"{"a": NaN}"#).len(), 1);
}

#[test]
fn python_dict_lines() {
    assert_eq!(
        pairs("{'eval_loss': 1.23, 'eval_runtime': 0.5, 'epoch': 1.0}"),
        vec![
            p("eval_loss", 1.23),
            p("eval_runtime", 0.5),
            p("epoch", 1.0)
        ]
    );
    assert_eq!(
        pairs(
            " 50%|█████     | 5/10 [00:02<00:02,  2.1it/s]{'loss': 0.7, 'grad_norm': 3.5, 'learning_rate': 5e-05, 'epoch': 0.5}"
        ),
        vec![
            p("loss", 0.7),
            p("grad_norm", 3.5),
            p("learning_rate", 5e-05),
            p("epoch", 0.5)
        ]
    );
    assert_eq!(
        pairs(
            "{'train_runtime': 12.3, 'flag': True, 'x': None, 'tags': ['a', 'b'], 'loss': np.float64(0.25)}"
        ),
        vec![p("train_runtime", 12.3), p("loss", 0.25)]
    );
    let r = pairs("{'loss': nan, 'eval_loss': -inf}");
    assert!(r[0].1.is_nan());
    assert_eq!(r[1].1, f64::NEG_INFINITY);
    // A broken dict falls back to key=value reading of the whole line.
    assert_eq!(pairs("{'loss': 0.5, step=3"), vec![p("step", 3.0)]);
}

#[test]
fn scan_keeps_last_values_and_counts_lines() {
    let mut s = MetricScan::new();
    for line in [
        "starting",
        "loss=2.0 step=1",
        "{'loss': 1.0, 'eval_acc': 0.5}",
        "warn: x",
        "eval_acc=0.75",
    ] {
        s.push_line(line);
    }
    assert_eq!(s.last("loss"), Some(1.0));
    assert_eq!(s.last("eval_acc"), Some(0.75));
    assert_eq!(s.last("missing"), None);
    assert_eq!(s.metric_lines(), 3);
    assert_eq!(s.all().len(), 3);
}

#[test]
fn numeric_strings_in_dicts_are_numbers() {
    // Transformers 5 formats every logged float with `.4g` and prints it quoted.
    assert_eq!(
        pairs("{'eval_loss': '5.361', 'learning_rate': '1e-05', 'epoch': '1.0'}"),
        vec![
            p("eval_loss", 5.361),
            p("learning_rate", 1e-5),
            p("epoch", 1.0)
        ]
    );
    assert_eq!(
        pairs(r#"{"eval_accuracy": "0.81", "step": "200"}"#),
        vec![p("eval_accuracy", 0.81), p("step", 200.0)]
    );
    // Same rules as bare numbers: nan/inf are kept (divergence), other strings skipped.
    let r = pairs("{'loss': 'nan', 'grad_norm': 'inf', 'eval_loss': '-inf'}");
    assert_eq!(r.len(), 3);
    assert!(r[0].1.is_nan());
    assert_eq!(r[1].1, f64::INFINITY);
    assert_eq!(r[2].1, f64::NEG_INFINITY);
    assert_eq!(
        pairs(
            "{'train_runtime': '0:00:04.79', 'device': 'cpu', 'n': ' 5', 'x': '5 ', 'y': '', 'loss': '0.5'}"
        ),
        vec![p("loss", 0.5)]
    );
    assert_eq!(
        pairs("{'loss': '0x10', 'a': '1_000', 'b': '5.3.1'}"),
        vec![]
    );
}

#[test]
fn log_metrics_lines() {
    // `Trainer.log_metrics`, as the Transformers example scripts print final metrics.
    assert_eq!(
        pairs("  eval_loss               =     3.3979"),
        vec![p("eval_loss", 3.3979)]
    );
    assert_eq!(pairs("  epoch = 0.75"), vec![p("epoch", 0.75)]);
    assert_eq!(pairs("  train_runtime            = 0:00:04.79"), vec![]);
    assert_eq!(pairs("  total_flos               =        0GF"), vec![]);
    assert_eq!(pairs("***** eval metrics *****"), vec![]);
    assert_eq!(pairs("  a = 1 = 2"), vec![]);
    assert_eq!(pairs("  9x = 1"), vec![]);
}

/// Keys the Trainer fixtures log with numeric values (dicts and `log_metrics`).
const TRAINER_KEYS: &[&str] = &[
    "epoch",
    "eval_accuracy",
    "eval_loss",
    "eval_runtime",
    "eval_samples_per_second",
    "eval_steps_per_second",
    "grad_norm",
    "learning_rate",
    "loss",
    "train_loss",
    "train_runtime",
    "train_samples_per_second",
    "train_steps_per_second",
];

/// TRL's SFTTrainer (0.24 and later) adds token statistics.
const SFT_KEYS: &[&str] = &[
    "entropy",
    "epoch",
    "eval_entropy",
    "eval_loss",
    "eval_mean_token_accuracy",
    "eval_num_tokens",
    "eval_runtime",
    "eval_samples_per_second",
    "eval_steps_per_second",
    "grad_norm",
    "learning_rate",
    "loss",
    "mean_token_accuracy",
    "num_tokens",
    "train_loss",
    "train_runtime",
    "train_samples_per_second",
    "train_steps_per_second",
];

/// `trl-0.10.1` logs no token statistics and has no `compute_metrics`.
const SFT_OLD_KEYS: &[&str] = &[
    "epoch",
    "eval_loss",
    "eval_runtime",
    "eval_samples_per_second",
    "eval_steps_per_second",
    "grad_norm",
    "learning_rate",
    "loss",
    "train_loss",
    "train_runtime",
    "train_samples_per_second",
    "train_steps_per_second",
];

type Series = (&'static str, &'static [f64]);

struct Fixture {
    name: &'static str,
    log: &'static str,
    keys: &'static [&'static str],
    /// Every value of these keys, in log order, as written in the log (dict lines, then
    /// the `log_metrics` block, then the script's `print` of `trainer.evaluate()`).
    series: &'static [Series],
}

macro_rules! fixture {
    ($name:literal, $keys:expr, $series:expr) => {
        Fixture {
            name: $name,
            log: include_str!(concat!("../fixtures/metrics/", $name, ".log")),
            keys: $keys,
            series: $series,
        }
    };
}

const EPOCHS_4X: &[f64] = &[
    0.12, 0.25, 0.25, 0.38, 0.5, 0.5, 0.62, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75,
];
const EPOCHS_5X: &[f64] = &[
    0.125, 0.25, 0.25, 0.375, 0.5, 0.5, 0.625, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75,
];
const LR_4X: &[f64] = &[
    0.001,
    0.0008333333333333334,
    0.0006666666666666666,
    0.0005,
    0.0003333333333333333,
    0.00016666666666666666,
];
const LR_5X: &[f64] = &[0.001, 0.0008333, 0.0006667, 0.0005, 0.0003333, 0.0001667];

fn fixtures() -> Vec<Fixture> {
    vec![
        fixture!(
            "transformers-4.44.2",
            TRAINER_KEYS,
            &[
                ("loss", &[4.1966, 4.1745, 4.1634, 4.1355, 4.1411, 4.1097]),
                (
                    "eval_loss",
                    &[
                        4.129050254821777,
                        4.113447666168213,
                        4.106561660766602,
                        4.1066,
                        4.106561660766602,
                    ],
                ),
                ("eval_accuracy", &[0.0, 0.0, 0.0, 0.0, 0.0]),
                ("train_loss", &[4.153461774190267, 4.1535]),
                (
                    "learning_rate",
                    &[
                        0.0008333333333333334,
                        0.0006666666666666666,
                        0.0005,
                        0.0003333333333333333,
                        0.00016666666666666666,
                        0.0,
                    ],
                ),
                ("epoch", EPOCHS_4X),
            ]
        ),
        fixture!(
            "transformers-4.57.6",
            TRAINER_KEYS,
            &[
                ("loss", &[3.6594, 3.5845, 3.647, 3.5415, 3.6127, 3.5346]),
                (
                    "eval_loss",
                    &[
                        3.4165024757385254,
                        3.4024624824523926,
                        3.3964874744415283,
                        3.3965,
                        3.3964874744415283,
                    ],
                ),
                ("eval_accuracy", &[0.02564102564102564, 0.0, 0.0, 0.0, 0.0]),
                ("train_loss", &[3.5965992212295532, 3.5966]),
                ("learning_rate", LR_4X),
                ("epoch", EPOCHS_4X),
            ]
        ),
        fixture!(
            "transformers-5.0.0",
            TRAINER_KEYS,
            &[
                ("loss", &[3.643, 3.579, 3.637, 3.546, 3.604, 3.53]),
                (
                    "eval_loss",
                    &[3.428, 3.416, 3.411, 3.4108, 3.410837173461914],
                ),
                (
                    "eval_accuracy",
                    &[0.05128, 0.05128, 0.05128, 0.0513, 0.05128205128205128],
                ),
                ("train_loss", &[3.59, 3.5898]),
                ("learning_rate", LR_5X),
                ("epoch", EPOCHS_5X),
            ]
        ),
        fixture!(
            "transformers-5.25.0",
            TRAINER_KEYS,
            &[
                ("loss", &[3.64, 3.587, 3.644, 3.545, 3.61, 3.53]),
                (
                    "eval_loss",
                    &[3.415, 3.403, 3.398, 3.3979, 3.3978590965270996],
                ),
                (
                    "eval_accuracy",
                    &[0.05128, 0.05128, 0.05128, 0.0513, 0.05128205128205128],
                ),
                ("train_loss", &[3.593, 3.5926]),
                ("learning_rate", LR_5X),
                ("epoch", EPOCHS_5X),
            ]
        ),
        fixture!(
            "trl-0.10.1",
            SFT_OLD_KEYS,
            &[
                ("loss", &[4.1751, 4.1685, 4.1612, 4.1338, 4.1418, 4.1183]),
                (
                    "eval_loss",
                    &[
                        4.130192756652832,
                        4.118903160095215,
                        4.112918853759766,
                        4.1129,
                        4.112918853759766,
                    ],
                ),
                ("train_loss", &[4.149781703948975, 4.1498]),
                (
                    "learning_rate",
                    &[
                        0.0008333333333333334,
                        0.0006666666666666666,
                        0.0005,
                        0.0003333333333333333,
                        0.00016666666666666666,
                        0.0,
                    ],
                ),
                ("epoch", EPOCHS_4X),
            ]
        ),
        fixture!(
            "trl-0.24.0",
            SFT_KEYS,
            &[
                ("loss", &[3.706, 3.6482, 3.6953, 3.6179, 3.6672, 3.5934]),
                (
                    "eval_loss",
                    &[
                        3.5216991901397705,
                        3.5075149536132812,
                        3.5007686614990234,
                        3.5008,
                        3.5007686614990234,
                    ],
                ),
                (
                    "eval_mean_token_accuracy",
                    &[
                        0.04304029420018196,
                        0.04304029420018196,
                        0.04304029420018196,
                        0.043,
                        0.04304029420018196,
                    ],
                ),
                ("train_loss", &[3.6546587149302163, 3.6547]),
                ("learning_rate", LR_4X),
                ("epoch", EPOCHS_4X),
            ]
        ),
        fixture!(
            "trl-1.16.0",
            SFT_KEYS,
            &[
                ("loss", &[3.706, 3.648, 3.695, 3.618, 3.667, 3.593]),
                (
                    "eval_loss",
                    &[4.127, 4.111, 4.103, 4.1026, 4.102579116821289],
                ),
                (
                    "eval_mean_token_accuracy",
                    &[0.04304, 0.04304, 0.04304, 0.043, 0.04304029420018196],
                ),
                ("train_loss", &[3.655, 3.6546]),
                ("learning_rate", LR_5X),
                ("epoch", EPOCHS_5X),
            ]
        ),
    ]
}

/// Every value the parser extracts from a fixture, per key, in log order. Lines are
/// split at `\n` only, as mlres reads job logs: tqdm's `\r` segments stay on the line.
fn extracted(log: &str) -> std::collections::BTreeMap<String, Vec<f64>> {
    let mut out = std::collections::BTreeMap::<String, Vec<f64>>::new();
    for line in log.split('\n') {
        for (k, v) in parse_metric_line(line) {
            out.entry(k).or_default().push(v);
        }
    }
    out
}

#[test]
fn real_transformers_and_trl_logs() {
    // Every fixture is checked before failing, so one run names every version misread.
    let mut wrong = Vec::new();
    for f in fixtures() {
        let got = extracted(f.log);
        let keys: Vec<&str> = got.keys().map(String::as_str).collect();
        if keys != f.keys {
            wrong.push(format!("{}: keys read {keys:?}, want {:?}", f.name, f.keys));
        }
        // What the loop decides on: the last value of the objective metric.
        let mut scan = MetricScan::new();
        for line in f.log.split('\n') {
            scan.push_line(line);
        }
        for (key, want) in f.series {
            let values = got.get(*key).map(Vec::as_slice).unwrap_or_default();
            if values != *want {
                wrong.push(format!("{}: {key} read {values:?}, want {want:?}", f.name));
            }
            if scan.last(key) != want.last().copied() {
                wrong.push(format!("{}: last {key} {:?}", f.name, scan.last(key)));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_fixture_log_is_checked() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".log")?.to_string())
        })
        .collect();
    on_disk.sort();
    let mut checked: Vec<String> = fixtures().iter().map(|f| f.name.to_string()).collect();
    checked.sort();
    assert_eq!(on_disk, checked);
}
