//! Replays the attack and everyday corpora through `decide`.

use mlres_guard::{Verdict, decide};

use crate::ctx;

fn lines(src: &str) -> Vec<(String, serde_json::Value)> {
    src.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("corpus line is JSON");
            (l.to_string(), v)
        })
        .collect()
}

const ATTACKS: &str = include_str!("../corpus/attacks.jsonl");
const BENIGN: &str = include_str!("../corpus/benign.jsonl");
const HELDOUT: &str = include_str!("../corpus/heldout.jsonl");

#[test]
fn corpus_sizes_meet_the_brief() {
    assert!(lines(ATTACKS).len() >= 80);
    assert!(lines(BENIGN).len() >= 60);
    assert!(lines(HELDOUT).len() >= 20);
}

#[test]
fn every_attack_is_denied() {
    let mut slipped = Vec::new();
    for (raw, v) in lines(ATTACKS).into_iter().chain(lines(HELDOUT)) {
        match decide(&raw, &ctx()) {
            Verdict::Deny { reason } => {
                assert!(!reason.trim().is_empty(), "empty reason for {}", v["note"]);
            }
            other => slipped.push(format!("{} -> {other:?}", v["note"])),
        }
    }
    assert!(
        slipped.is_empty(),
        "attacks not denied:\n{}",
        slipped.join("\n")
    );
}

#[test]
fn no_everyday_command_is_denied() {
    let mut blocked = Vec::new();
    for (raw, v) in lines(BENIGN) {
        if let Verdict::Deny { reason } = decide(&raw, &ctx()) {
            blocked.push(format!("{} -> {reason}", v["note"]));
        }
    }
    assert!(
        blocked.is_empty(),
        "everyday commands denied:\n{}",
        blocked.join("\n")
    );
}

#[test]
fn every_attack_line_has_a_class_and_note() {
    for (_, v) in lines(ATTACKS).into_iter().chain(lines(HELDOUT)) {
        assert!(v["class"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
        assert!(v["note"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    }
}

#[test]
fn spend_denials_name_the_sanctioned_way() {
    for (raw, v) in lines(ATTACKS) {
        let class = v["class"].as_str().unwrap_or("");
        let cmd = v["tool_input"]["command"].as_str().unwrap_or("");
        let plain_cli = cmd.starts_with("hf jobs")
            || cmd.starts_with("hf upload")
            || cmd.starts_with("huggingface-cli upload");
        if class == "spend" && plain_cli {
            let Verdict::Deny { reason } = decide(&raw, &ctx()) else {
                panic!("{v}")
            };
            assert!(reason.contains("mlres "), "no sanctioned way in: {reason}");
        }
    }
}
