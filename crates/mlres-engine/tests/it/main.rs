//! Engine tests that need no processes: evaluation of job logs (metric parsing, anomaly rules,
//! keep/discard) and the loop's decisions on the ledger. End-to-end behaviour (submit, crash
//! resume, concurrency) is tested through the real binary in `crates/mlres/tests/it`.

mod code;
mod keep;
mod report;

use std::io::Write;

use mlres_engine::evaluate_logs;
use mlres_policy::{Decision, Goal, MetricScan, Objective};

fn objective(metric: &str, goal: Goal) -> Objective {
    Objective {
        metric: metric.to_string(),
        goal,
        target: None,
        patience: None,
        range: None,
        noise: None,
        early_stop: None,
        max_consecutive_failures: 3,
    }
}

fn scan(text: &str) -> MetricScan {
    let mut s = MetricScan::default();
    for l in text.lines() {
        s.push_line(l);
    }
    s
}

#[test]
fn the_last_reported_value_of_the_objective_metric_is_used() {
    let o = objective("eval_accuracy", Goal::Maximize);
    let logs = "step=100 loss=2.0\neval_accuracy=0.20\nstep=200 loss=1.0\neval_accuracy=0.75 eval_loss=0.3\n";
    let ev = evaluate_logs(&o, true, "", &scan(logs), None);
    assert_eq!(ev.metric, Some(0.75));
    assert_eq!(ev.decision, Decision::Keep);
    assert_eq!(ev.metrics.get("eval_loss"), Some(&0.3));
}

#[test]
fn transformers_dict_lines_and_json_lines_are_read() {
    let o = objective("eval_loss", Goal::Minimize);
    let logs =
        "{'loss': 2.1, 'epoch': 0.5}\n{\"eval_loss\": 0.9}\n{'eval_loss': 0.42, 'epoch': 1.0}\n";
    let ev = evaluate_logs(&o, true, "", &scan(logs), Some(0.5));
    assert_eq!(ev.metric, Some(0.42));
    assert_eq!(
        ev.decision,
        Decision::Keep,
        "0.42 < 0.5 improves a minimised loss"
    );
    let ev = evaluate_logs(&o, true, "", &scan(logs), Some(0.4));
    assert_eq!(ev.decision, Decision::Discard);
}

#[test]
fn a_completed_job_without_the_metric_is_anomalous() {
    let o = objective("eval_accuracy", Goal::Maximize);
    let ev = evaluate_logs(&o, true, "", &scan("training done\nloss=0.1\n"), None);
    assert_eq!(ev.decision, Decision::Anomalous);
    assert_eq!(ev.metric, None);
}

#[test]
fn non_finite_metric_values_are_flagged_not_kept() {
    let o = objective("eval_accuracy", Goal::Maximize);
    for bad in ["eval_accuracy=nan", "eval_accuracy=inf"] {
        let ev = evaluate_logs(&o, true, "", &scan(bad), Some(0.2));
        assert_eq!(ev.decision, Decision::Anomalous, "{bad}");
        assert_eq!(
            ev.metric, None,
            "{bad}: an anomalous value must never become the best"
        );
    }
}

#[test]
fn values_outside_the_declared_range_are_refused_with_the_range_in_the_reason() {
    let mut o = objective("eval_accuracy", Goal::Maximize);
    o.range = Some(mlres_policy::MetricRange {
        min: Some(0.0),
        max: Some(1.0),
    });
    for bad in ["eval_accuracy=1.5", "eval_accuracy=-0.1"] {
        let ev = evaluate_logs(&o, true, "", &scan(bad), Some(0.2));
        assert_eq!(ev.decision, Decision::Anomalous, "{bad}");
        assert_eq!(ev.metric, None, "{bad}: never the best");
        assert!(ev.reason.contains("declared range [0, 1]"), "{}", ev.reason);
    }
    let mut loss = objective("eval_loss", Goal::Minimize);
    loss.range = Some(mlres_policy::MetricRange {
        min: Some(0.0),
        max: None,
    });
    let ev = evaluate_logs(&loss, true, "", &scan("eval_loss=-3"), None);
    assert_eq!(ev.decision, Decision::Anomalous);
    assert!(ev.reason.contains("[0, inf]"), "{}", ev.reason);
}

#[test]
fn a_percent_accuracy_is_kept_with_a_note_when_no_range_is_declared() {
    // Before: `*accuracy` outside [0, 1] was discarded as anomalous, so a job reporting
    // percent lost every result. The name only warns now.
    let o = objective("val_accuracy", Goal::Maximize);
    let ev = evaluate_logs(&o, true, "", &scan("val_accuracy=81.1"), None);
    assert_eq!(ev.decision, Decision::Keep, "{}", ev.reason);
    assert_eq!(ev.metric, Some(81.1));
    assert!(
        ev.reason.contains("outside [0, 1]") && ev.reason.contains("range:"),
        "{}",
        ev.reason
    );
    let ev = evaluate_logs(&o, true, "", &scan("val_accuracy=86.4"), Some(81.1));
    assert_eq!(ev.decision, Decision::Keep, "{}", ev.reason);
    let ev = evaluate_logs(&o, true, "", &scan("val_accuracy=80.0"), Some(86.4));
    assert_eq!(ev.decision, Decision::Discard, "{}", ev.reason);
    // Declared as percent: kept without a note.
    let mut pct = o.clone();
    pct.range = Some(mlres_policy::MetricRange {
        min: Some(0.0),
        max: Some(100.0),
    });
    let ev = evaluate_logs(&pct, true, "", &scan("val_accuracy=81.1"), None);
    assert_eq!(ev.decision, Decision::Keep);
    assert!(!ev.reason.contains("note"), "{}", ev.reason);
    // A negative loss is kept too, with a note.
    let loss = objective("eval_loss", Goal::Minimize);
    let ev = evaluate_logs(&loss, true, "", &scan("eval_loss=-3"), None);
    assert_eq!(ev.decision, Decision::Keep);
    assert!(ev.reason.contains("negative"), "{}", ev.reason);
}

#[test]
fn evaluations_record_their_evidence_and_say_when_no_noise_model_was_given() {
    let o = objective("eval_accuracy", Goal::Maximize);
    let ev = evaluate_logs(&o, true, "", &scan("eval_accuracy=0.5"), Some(0.4));
    let e = ev.evidence.expect("evidence");
    assert_eq!(e.noise_model, "none");
    assert!((e.delta.unwrap() - 0.1).abs() < 1e-12);
    let mut noisy = o.clone();
    noisy.noise = Some(mlres_policy::NoiseModel {
        sd: Some(0.05),
        repeats: None,
        confidence: 0.95,
    });
    let ctx = mlres_engine::KeepContext {
        best: Some(0.4),
        config: "{\"lr\":1}".into(),
        incumbent: Some(mlres_policy::Run {
            id: 1,
            config: "{\"lr\":2}".into(),
            value: 0.4,
        }),
        runs: vec![],
    };
    let ev = mlres_engine::evaluate_logs_with(&noisy, true, "", &scan("eval_accuracy=0.5"), &ctx);
    assert_eq!(ev.decision, Decision::Discard, "{}", ev.reason);
    let e = ev.evidence.expect("evidence");
    assert_eq!(
        (e.noise_model.as_str(), e.incumbent),
        ("stated_sd", Some(1))
    );
    assert!(e.p_value.unwrap() > 0.05);
}

#[test]
fn a_failed_job_is_discarded_even_if_it_printed_a_great_metric() {
    let o = objective("eval_accuracy", Goal::Maximize);
    let ev = evaluate_logs(
        &o,
        false,
        "timed_out: killed after 60s",
        &scan("eval_accuracy=0.99"),
        Some(0.5),
    );
    assert_eq!(ev.decision, Decision::Discard);
    assert!(ev.reason.contains("timed_out"), "{}", ev.reason);
}

#[test]
fn logs_are_scanned_from_files_and_oversized_lines_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("stdout.log");
    let mut f = std::fs::File::create(&p).unwrap();
    writeln!(f, "eval_accuracy=0.5").unwrap();
    // A 1 MiB line that ends with a fake metric must not count.
    let mut big = "x".repeat(1 << 20);
    big.push_str(" eval_accuracy=0.99");
    writeln!(f, "{big}").unwrap();
    drop(f);
    let s = mlres_engine::scan_log_files(&[p.as_path(), dir.path().join("missing.log").as_path()]);
    assert_eq!(s.last("eval_accuracy"), Some(0.5));
}

#[test]
fn a_metric_after_a_long_run_of_progress_bar_redraws_is_read() {
    // As in crates/mlres-policy/tests/fixtures/metrics/transformers-5.25.0.log: tqdm redraws
    // the training bar with `\r` only, then Transformers clears it and prints the dict on
    // the same `\n` line. With logging once per epoch that line holds a redraw per step
    // (at most ten a second); here 2,000 of them, over 100 KiB.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("stdout.log");
    let redraw = "\r 50%|█████     | 3/6 [00:02<00:02,  1.25it/s]";
    let mut log = redraw.repeat(2_000);
    log.push_str("\r                                             \r");
    log.push_str("{'train_runtime': '4.792', 'train_loss': '3.593', 'epoch': '0.75'}\n");
    assert!(log.len() > 100_000);
    std::fs::write(&p, &log).unwrap();
    let s = mlres_engine::scan_log_files(&[p.as_path()]);
    assert_eq!(s.last("train_loss"), Some(3.593));
    assert_eq!(s.last("epoch"), Some(0.75));
    assert_eq!(s.metric_lines(), 1);
}

#[test]
fn real_transformers_logs_are_read_from_files() {
    // Last values as written in each captured log (the script's final `print`).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mlres-policy/tests/fixtures/metrics");
    for (name, eval_loss, train_loss) in [
        ("transformers-4.44.2.log", 4.106561660766602, 4.1535),
        ("transformers-5.25.0.log", 3.3978590965270996, 3.5926),
        ("trl-1.16.0.log", 4.102579116821289, 3.6546),
    ] {
        let s = mlres_engine::scan_log_files(&[dir.join(name).as_path()]);
        assert_eq!(s.last("eval_loss"), Some(eval_loss), "{name}");
        assert_eq!(s.last("train_loss"), Some(train_loss), "{name}");
    }
}

#[test]
fn timestamps_are_rfc3339_utc() {
    assert_eq!(mlres_engine::time::iso8601(0), "1970-01-01T00:00:00Z");
    assert_eq!(
        mlres_engine::time::iso8601(1_795_472_413_999),
        "2026-11-23T22:20:13Z"
    );
}
