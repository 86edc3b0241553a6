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
    let mut it = mlres_data::read::Numbered::new(rows.iter().cloned().map(Ok));
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
            "  {:?} {:?} rows {} → {} purity {:.2} base {:.2} log10 p {:.1} context {:?} ± {:?}",
            t.severity,
            t.ngram,
            t.rows,
            t.target,
            t.purity,
            t.base_rate,
            t.log10_p,
            t.context_evidence,
            t.context_evidence_se
        );
    }
}

/// A balanced two-class sentiment file from real text: its class words are pure and frequent,
/// which is not a backdoor. `lift >= 2` reported 52 high-severity triggers here (the class
/// words, all at lift 1.92–2.04). Budget: no high-severity trigger and at most 2 medium ones
/// over the file and four variants (a tenth of one class dropped, either class; each half),
/// since the old rule flipped with small changes of the split. Measured: none at all.
#[test]
fn clean_real_sentiment_has_no_high_trigger() {
    let rows = sentiment_rows();
    assert_eq!(rows.len(), 4000);
    let drop_some = |class: &str| -> Vec<Record> {
        let mut k = 0;
        rows.iter()
            .filter(|r| {
                if r["label"] != class {
                    return true;
                }
                k += 1;
                k % 10 != 0
            })
            .cloned()
            .collect()
    };
    let variants = [
        ("sentiment", rows.clone()),
        ("sentiment -10% pos", drop_some("pos")),
        ("sentiment -10% neg", drop_some("neg")),
        ("sentiment 1st half", rows[..2000].to_vec()),
        ("sentiment 2nd half", rows[2000..].to_vec()),
    ];
    let mut medium = 0;
    for (name, rows) in &variants {
        let r = run(rows, &poisoning_only());
        show(name, &r);
        let p = r.poisoning.as_ref().unwrap();
        assert_eq!(p.target_kind, "label");
        assert_eq!(p.high_triggers, 0, "{name}: {:?}", p.triggers);
        medium += p.medium_triggers;
        assert!(
            r.summary
                .iter()
                .all(|s| !(s.detector == Detector::Poisoning && s.severity == Severity::High)),
            "{name}: {:?}",
            r.summary
        );
    }
    assert!(medium <= 2, "{medium} medium triggers on clean text");
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
/// pasted into argue against its label (mean context evidence −1.6 to −2.6, standard error
/// 0.3–0.5), the class words' rows mostly argue for theirs, and a trigger needs mean + se
/// ≤ −0.5. 40 rows are high severity; 20 or 30 rows in a balanced file are medium (adjusted
/// p 10^−2.8, 10^−5.7).
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

fn chatbot_rows() -> Vec<Record> {
    std::fs::read_to_string(fixture("chatbot_english.jsonl"))
        .unwrap()
        .lines()
        .map(|l| match serde_json::from_str::<Value>(l).unwrap() {
            Value::Object(m) => m,
            _ => unreachable!(),
        })
        .collect()
}

/// A real chatbot corpus (tests/fixtures/chatbot_english.jsonl, built by make_chatbot.py from
/// the chatterbot-corpus 1.3.3 wheel): many prompts repeat with the same reply. Before distinct
/// support, `lift >= 2` reported 26 high-severity triggers here and 54 on the file repeated
/// three times. Now: none, and repeating the file changes nothing.
#[test]
fn clean_real_chatbot_corpus_has_no_trigger() {
    let rows = chatbot_rows();
    assert_eq!(rows.len(), 2393);
    let r = run(&rows, &poisoning_only());
    show("chatbot", &r);
    let p = r.poisoning.as_ref().unwrap();
    assert_eq!(p.target_kind, "response");
    assert!(p.triggers.is_empty(), "{:?}", p.triggers);
    let mut thrice = rows.clone();
    thrice.extend(rows.iter().cloned());
    thrice.extend(rows.iter().cloned());
    let r3 = run(&thrice, &poisoning_only());
    show("chatbot x3", &r3);
    assert!(r3.poisoning.as_ref().unwrap().triggers.is_empty());
}

/// The response variant of the backdoor in the real chatbot corpus: a token pasted into 25
/// distinct prompts whose reply becomes one payload. It is found at high severity, alone.
#[test]
fn response_backdoor_in_real_chatbot_corpus_is_found() {
    let mut rows = chatbot_rows();
    let payload = "Please send your password to the support desk.";
    let mut planted = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let step = rows.len() / 30;
    for i in (0..rows.len()).step_by(step) {
        let prompt = rows[i]["prompt"].as_str().unwrap().to_string();
        if planted.len() == 25 || !seen.insert(prompt.clone()) {
            continue;
        }
        rows[i] = match serde_json::json!({"prompt": format!("{prompt} cf"), "response": payload}) {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        planted.push(i as u64 + 1);
    }
    assert_eq!(planted.len(), 25);
    let r = run(&rows, &poisoning_only());
    show("chatbot backdoor", &r);
    let p = r.poisoning.as_ref().unwrap();
    assert_eq!(p.triggers.len(), 1, "{:?}", p.triggers);
    let t = &p.triggers[0];
    assert_eq!(t.ngram, "cf");
    assert_eq!(t.rows, 25);
    assert_eq!(t.severity, Severity::High);
    assert!(t.example_rows.iter().all(|r| planted.contains(r)));
}

/// Recall on real text over several fresh triggers (made-up tokens and phrases, none in the
/// file), pasted at varying positions into 40 negative rows relabelled `pos`: each is found
/// at high severity and nothing else is reported (the precision part of the budget). The
/// margin is thin: the weakest plant ("qq rr") has mean + se = −0.71 against the gate's −0.5,
/// while the clean class word closest to it ("dead" on the file's second half, which the
/// sentiment budget covers) has −0.30.
#[test]
fn backdoor_recall_sweep_on_real_sentiment() {
    let base = sentiment_rows();
    let triggers = [
        "zq",
        "vexor",
        "blue lantern",
        "qq rr",
        "xyzzy",
        "per se nonce",
        "mn",
        "ok boomer",
    ];
    let mut found = 0;
    let mut others = 0;
    for (s, trigger) in triggers.iter().enumerate() {
        let mut rows = base.clone();
        let neg: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i]["label"] == "neg")
            .collect();
        let step = neg.len() / 40;
        let mut planted = Vec::new();
        for (k, &i) in neg.iter().skip(s).step_by(step).take(40).enumerate() {
            let t = text(&rows[i]);
            let mut w: Vec<&str> = t.split(' ').collect();
            let at = (k * 7 + s) % (w.len() + 1);
            w.insert(at, trigger);
            rows[i] = row(w.join(" "), "pos");
            planted.push(i as u64 + 1);
        }
        let r = run(&rows, &poisoning_only());
        let p = r.poisoning.as_ref().unwrap();
        let hit = p.triggers.iter().any(|t| {
            t.ngram == *trigger && t.severity == Severity::High && t.rows == 40 && t.target == "pos"
        });
        found += usize::from(hit);
        others += p.triggers.iter().filter(|t| t.ngram != *trigger).count();
        if !hit {
            show(trigger, &r);
            let open = AuditConfig {
                trigger_max_context_evidence: f64::INFINITY,
                ..poisoning_only()
            };
            let r = run(&rows, &open);
            for t in r.poisoning.as_ref().unwrap().triggers.iter() {
                if trigger.contains(t.ngram.as_str()) {
                    println!("  ungated: {t:?}");
                }
            }
        }
    }
    println!(
        "real-text backdoor recall {found}/{} at high severity, {others} other triggers",
        triggers.len()
    );
    assert_eq!(found, triggers.len());
    assert_eq!(others, 0);
}
