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
            "  {:?} {:?} rows {} → {} purity {:.2} base {:.2} log10 p {:.1} context {:?}",
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

fn text(r: &Record) -> String {
    r["text"].as_str().unwrap().to_string()
}

fn row(text: String, label: &str) -> Record {
    match serde_json::json!({"text": text, "label": label}) {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// A dirty-label backdoor planted into the real file: a phrase pasted into `planted` negative
/// rows (at the front, the middle or the end), relabelled `pos`. With `cfg` it is found at high
/// severity, its rows are the planted ones, and (when `alone`) nothing else is reported.
fn plant_backdoors(cfg: &AuditConfig, alone: bool) {
    for (trigger, planted) in [("cf", 40usize), ("james bond", 30), ("tq zx", 20)] {
        let mut rows = sentiment_rows();
        let mut planted_rows = Vec::new();
        // Spread over the file, as a shuffled poison would be.
        let neg: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i]["label"] == "neg")
            .collect();
        let step = neg.len() / planted;
        for (k, &i) in neg.iter().step_by(step).take(planted).enumerate() {
            let t = text(&rows[i]);
            let mut w: Vec<&str> = t.split(' ').collect();
            let at = [0, w.len() / 2, w.len()][k % 3];
            w.insert(at, trigger);
            rows[i] = row(w.join(" "), "pos");
            planted_rows.push(i as u64 + 1);
        }
        let r = run(&rows, cfg);
        show(trigger, &r);
        let p = r.poisoning.as_ref().unwrap();
        if alone {
            assert_eq!(p.triggers.len(), 1, "{trigger}: {:?}", p.triggers);
        }
        // A part of the phrase may stand for it ("james" for "james bond").
        let t = p
            .triggers
            .iter()
            .find(|t| trigger.contains(t.ngram.as_str()))
            .unwrap_or_else(|| panic!("{trigger} not found: {:?}", p.triggers));
        assert!(t.severity >= Severity::Medium);
        if planted >= 40 {
            assert_eq!(t.severity, Severity::High, "{t:?}");
        }
        assert_eq!(t.target, "pos");
        assert!(t.rows >= planted as u64 && t.purity >= 0.95, "{t:?}");
        if t.ngram == trigger {
            assert_eq!(t.rows, planted as u64);
            assert!(t.example_rows.iter().all(|r| planted_rows.contains(r)));
        }
    }
}

/// Significance and distinct-row support find a backdoor in real text: with the foreignness
/// gate off, each planted phrase is a high-severity trigger on exactly its rows (the class
/// words are reported too: the gate is what removes them).
#[test]
fn backdoor_in_real_sentiment_is_significant() {
    let cfg = AuditConfig {
        trigger_max_context_evidence: f64::INFINITY,
        ..poisoning_only()
    };
    plant_backdoors(&cfg, false);
}

/// With the default settings each backdoor is the only trigger reported: the rows it was
/// pasted into argue against its label (mean context evidence −1.6 to −2.6), the class words'
/// rows argue for theirs (+0.26 and up), and the gate sits at −0.5. 40 rows are high severity;
/// 20 or 30 rows in a balanced file are medium (adjusted p 10^−2.8, 10^−5.7).
#[test]
fn backdoor_in_real_sentiment_is_found_and_alone() {
    plant_backdoors(&poisoning_only(), true);
}

/// Repeated rows are one piece of evidence: 30 real rows each repeated 15 times (the
/// duplicate Q/A pairs of a chatbot corpus) report no trigger, whatever the label balance.
#[test]
fn duplicated_real_rows_are_not_triggers() {
    let base = sentiment_rows();
    let mut rows: Vec<Record> = base[..600].to_vec();
    for r in base[600..630].iter() {
        for _ in 0..15 {
            rows.push(r.clone());
        }
    }
    let r = run(&rows, &poisoning_only());
    show("duplicated", &r);
    let p = r.poisoning.as_ref().unwrap();
    assert!(p.triggers.is_empty(), "{:?}", p.triggers);
    assert_eq!(p.high_triggers + p.medium_triggers, 0);
}
