//! Replays the attack and everyday corpora through `decide_with`, each line with the files
//! and processes it describes (`files`, `broker_pids`; see [`crate::MapMachine`]).
//!
//! * `attacks.jsonl`: every line must be denied (`class` names what it attacks).
//! * `benign.jsonl`: everyday commands; none may be denied (`topic` groups the newer ones).
//! * `heldout.jsonl`: lines kept out of tuning. Attacks (with a `class`) must be denied and
//!   lines marked `"benign": true` must not be, except the ones listed in
//!   [`HELDOUT_KNOWN_MISSES`], which record what the rules got wrong when the held-out lines
//!   were first run against them.

use mlres_guard::{Verdict, decide_with};

use crate::{MapMachine, ctx};

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

/// Notes of held-out lines the rules decided wrongly when first run against them (attacks
/// let through, everyday lines denied). Kept as found, not fixed by tuning on them.
const HELDOUT_KNOWN_MISSES: &[&str] = &[];

fn decide_line(raw: &str, v: &serde_json::Value) -> Verdict {
    decide_with(raw, &ctx(), &MapMachine::from_line(v))
}

fn is_benign(v: &serde_json::Value) -> bool {
    v["benign"] == true
}

#[test]
fn corpus_sizes_meet_the_brief() {
    assert!(lines(ATTACKS).len() >= 80);
    assert!(lines(BENIGN).len() >= 60);
    assert!(lines(HELDOUT).len() >= 20);
}

#[test]
fn every_attack_is_denied() {
    let mut slipped = Vec::new();
    for (raw, v) in lines(ATTACKS) {
        match decide_line(&raw, &v) {
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
        if let Verdict::Deny { reason } = decide_line(&raw, &v) {
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
fn heldout_lines_are_decided_as_expected() {
    let mut wrong = Vec::new();
    let (mut attacks, mut caught, mut everyday, mut denied) = (0, 0, 0, 0);
    for (raw, v) in lines(HELDOUT) {
        let verdict = decide_line(&raw, &v);
        let note = v["note"].as_str().unwrap_or("");
        let ok = if is_benign(&v) {
            everyday += 1;
            denied += usize::from(verdict.is_deny());
            !verdict.is_deny()
        } else {
            attacks += 1;
            caught += usize::from(verdict.is_deny());
            verdict.is_deny()
        };
        if !ok && !HELDOUT_KNOWN_MISSES.contains(&note) {
            wrong.push(format!("{note} -> {verdict:?}"));
        }
        if ok && HELDOUT_KNOWN_MISSES.contains(&note) {
            wrong.push(format!(
                "{note}: listed as a known miss but now decided right"
            ));
        }
    }
    eprintln!(
        "held-out: {caught}/{attacks} attacks denied, {denied}/{everyday} everyday lines denied"
    );
    assert!(wrong.is_empty(), "held-out lines:\n{}", wrong.join("\n"));
}

#[test]
fn every_attack_line_has_a_class_and_note() {
    for (_, v) in lines(ATTACKS)
        .into_iter()
        .chain(lines(HELDOUT).into_iter().filter(|(_, v)| !is_benign(v)))
    {
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
            let Verdict::Deny { reason } = decide_line(&raw, &v) else {
                panic!("{v}")
            };
            assert!(reason.contains("mlres "), "no sanctioned way in: {reason}");
        }
    }
}
