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
