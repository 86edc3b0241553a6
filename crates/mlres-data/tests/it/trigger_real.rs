//! The trigger detector on clean real text (tests/fixtures/sentiment_shakespeare.jsonl, built
//! by tests/fixtures/make_sentiment.py from Shakespeare and the VADER lexicon): every trigger
//! it reports there is a false positive.

use std::path::PathBuf;

use mlres_data::Record;
use mlres_data::audit::{self, AuditConfig, AuditReport, Detector, Severity};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn sentiment_rows() -> Vec<Record> {
    std::fs::read_to_string(fixture("sentiment_shakespeare.jsonl"))
        .unwrap()
        .lines()
        .map(|l| match serde_json::from_str::<Value>(l).unwrap() {
            Value::Object(m) => m,
            _ => unreachable!(),
        })
        .collect()
}

fn poisoning_only() -> AuditConfig {
    AuditConfig {
        detectors: vec![Detector::Poisoning],
        max_examples: usize::MAX,
        batch_rows: 512,
        ..AuditConfig::default()
    }
}

fn run(rows: &[Record], cfg: &AuditConfig) -> AuditReport {
    let mut it = rows.iter().cloned().map(Ok);
    audit::audit(&mut it, None, cfg, &mut |_| {}).unwrap()
}

fn show(name: &str, r: &AuditReport) {
    let p = r.poisoning.as_ref().unwrap();
    println!(
        "{name}: {} rows, {} high + {} medium triggers, {} label-consistent n-grams discounted",
        r.rows, p.high_triggers, p.medium_triggers, p.label_consistent_ngrams
    );
    for t in p.triggers.iter().take(10) {
        println!(
            "  {:?} {:?} rows {} → {} purity {:.2} base {:.2} log10 p {:.1} context {:.2}",
            t.severity,
            t.ngram,
            t.rows,
            t.target,
            t.purity,
            t.base_rate,
            t.log10_p,
            t.context_evidence
        );
    }
}

/// A balanced two-class sentiment file from real text: its class words are pure and frequent,
/// which is not a backdoor. No high-severity trigger, and at most 2 medium ones.
#[test]
fn clean_real_sentiment_has_no_high_trigger() {
    let rows = sentiment_rows();
    assert_eq!(rows.len(), 4000);
    let r = run(&rows, &poisoning_only());
    show("sentiment", &r);
    let p = r.poisoning.as_ref().unwrap();
    assert_eq!(p.target_kind, "label");
    assert_eq!(p.high_triggers, 0, "{:?}", p.triggers);
    assert!(p.medium_triggers <= 2, "{:?}", p.triggers);
    assert!(
        r.summary
            .iter()
            .all(|s| !(s.detector == Detector::Poisoning && s.severity == Severity::High)),
        "{:?}",
        r.summary
    );
}
