//! Tamper evidence: every mutation of the stored chain is reported by `verify`.

use std::fs;
use std::path::PathBuf;

use mlres_ledger::{GENESIS_HASH, Ledger, LedgerError, ProblemKind, VerifyReport, event_hash};
use proptest::prelude::*;
use rusqlite::Connection;
use tempfile::TempDir;

use crate::common::{allow, raw, req};

/// One API call that appends exactly one event.
#[derive(Debug, Clone)]
enum Op {
    Append {
        kind: String,
        text: String,
        campaign: bool,
    },
    Reserve,
    Approve(String),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => ("[a-z_]{1,8}", "[ -~]{0,16}", any::<bool>())
            .prop_map(|(kind, text, campaign)| Op::Append { kind, text, campaign }),
        1 => Just(Op::Reserve),
        1 => "[a-z ]{0,10}".prop_map(Op::Approve),
    ]
}

type MetaRow = (i64, String, i64, String);

struct Built {
    _tmp: TempDir,
    dir: PathBuf,
    ledger: Ledger,
    /// Meta row after each call (index = number of events at that point).
    metas: Vec<(u64, MetaRow)>,
}

fn meta(c: &Connection) -> MetaRow {
    c.query_row(
        "SELECT head_seq, head_hash, head_count, mac FROM meta WHERE id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
    .unwrap()
}

fn build(ops: &[Op]) -> Built {
    let tmp = crate::common::tmp_dir();
    let dir = tmp.path().join("state");
    let mut l = Ledger::open(&dir).unwrap();
    let c = raw(&l);
    let mut metas = vec![(0, meta(&c))];
    let cid = l.create_campaign("/p", "ph").unwrap().id;
    metas.push((1, meta(&c)));
    for op in ops {
        match op {
            Op::Append {
                kind,
                text,
                campaign,
            } => {
                let camp = campaign.then_some(cid.as_str());
                l.append_event(camp, kind, &serde_json::json!({"text": text}))
                    .unwrap();
            }
            Op::Reserve => {
                l.reserve(&cid, &req(None), allow).unwrap();
            }
            Op::Approve(doc) => {
                l.record_approval("/p", "h", doc, "alice").unwrap();
            }
        }
        metas.push((l.event_count().unwrap(), meta(&c)));
    }
    assert_eq!(l.event_count().unwrap(), 1 + ops.len() as u64);
    Built {
        _tmp: tmp,
        dir,
        ledger: l,
        metas,
    }
}

#[derive(Debug, Clone, Copy)]
enum Col {
    Ts,
    Campaign,
    Kind,
    Payload,
    PrevHash,
    Hash,
    Mac,
}

#[derive(Debug, Clone)]
enum Mutation {
    Edit {
        at: usize,
        col: Col,
        salt: usize,
    },
    Delete {
        at: usize,
    },
    SwapContents {
        a: usize,
        b: usize,
    },
    SwapSeqs {
        a: usize,
        b: usize,
    },
    Truncate {
        to: usize,
        rollback_meta: bool,
    },
    Forge {
        copy_mac: Option<usize>,
        update_meta: bool,
    },
    HeadFile {
        variant: u8,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let col = prop_oneof![
        Just(Col::Ts),
        Just(Col::Campaign),
        Just(Col::Kind),
        Just(Col::Payload),
        Just(Col::PrevHash),
        Just(Col::Hash),
        Just(Col::Mac),
    ];
    prop_oneof![
        4 => (any::<usize>(), col, any::<usize>())
            .prop_map(|(at, col, salt)| Mutation::Edit { at, col, salt }),
        2 => any::<usize>().prop_map(|at| Mutation::Delete { at }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapContents { a, b }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapSeqs { a, b }),
        2 => (any::<usize>(), any::<bool>())
            .prop_map(|(to, rollback_meta)| Mutation::Truncate { to, rollback_meta }),
        1 => (proptest::option::of(any::<usize>()), any::<bool>())
            .prop_map(|(copy_mac, update_meta)| Mutation::Forge { copy_mac, update_meta }),
        1 => (0u8..3).prop_map(|variant| Mutation::HeadFile { variant }),
    ]
}

/// Changes one character of `s` at a position chosen by `salt` (stays valid UTF-8/hex).
fn flip(s: &str, salt: usize) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return "x".into();
    }
    let i = salt % chars.len();
    chars[i] = match chars[i] {
        '0' => '1',
        c if c.is_ascii_hexdigit() => '0',
        'x' => 'y',
        _ => 'x',
    };
    chars.into_iter().collect()
}

const COLS: &str = "ts_ms, campaign, kind, payload, prev_hash, hash, mac";

fn apply(b: &Built, m: &Mutation) {
    let c = raw(&b.ledger);
    let n = b.ledger.event_count().unwrap() as usize;
    let seq = |i: &usize| (i % n + 1) as i64;
    let distinct = |a: &usize, bb: &usize| {
        let x = a % n;
        let mut y = bb % n;
        if x == y {
            y = (y + 1) % n;
        }
        ((x + 1) as i64, (y + 1) as i64)
    };
    match m {
        Mutation::Edit { at, col, salt } => {
            let s = seq(at);
            let column = match col {
                Col::Ts => "ts_ms",
                Col::Campaign => "campaign",
                Col::Kind => "kind",
                Col::Payload => "payload",
                Col::PrevHash => "prev_hash",
                Col::Hash => "hash",
                Col::Mac => "mac",
            };
            match col {
                Col::Ts => {
                    c.execute(
                        "UPDATE events SET ts_ms = ts_ms + ?2 WHERE seq = ?1",
                        (s, 1 + (*salt % 1000) as i64),
                    )
                    .unwrap();
                }
                Col::Campaign => {
                    let cur: Option<String> = c
                        .query_row("SELECT campaign FROM events WHERE seq = ?1", [s], |r| {
                            r.get(0)
                        })
                        .unwrap();
                    let new = match (cur, salt % 2) {
                        (None, _) => Some("c-forged".to_string()),
                        (Some(_), 0) => None,
                        (Some(v), _) => Some(flip(&v, *salt)),
                    };
                    c.execute("UPDATE events SET campaign = ?2 WHERE seq = ?1", (s, new))
                        .unwrap();
                }
                _ => {
                    let cur: String = c
                        .query_row(
                            &format!("SELECT {column} FROM events WHERE seq = ?1"),
                            [s],
                            |r| r.get(0),
                        )
                        .unwrap();
                    c.execute(
                        &format!("UPDATE events SET {column} = ?2 WHERE seq = ?1"),
                        (s, flip(&cur, *salt)),
                    )
                    .unwrap();
                }
            }
        }
        Mutation::Delete { at } => {
            c.execute("DELETE FROM events WHERE seq = ?1", [seq(at)])
                .unwrap();
        }
        Mutation::SwapContents { a, b: bb } => {
            let (x, y) = distinct(a, bb);
            // Rotate every column except seq through a spare row.
            c.execute_batch(&format!(
                "CREATE TEMP TABLE t AS SELECT * FROM events WHERE seq IN ({x}, {y});
                 UPDATE events SET ({COLS}) = (SELECT {COLS} FROM t WHERE seq = {y}) WHERE seq = {x};
                 UPDATE events SET ({COLS}) = (SELECT {COLS} FROM t WHERE seq = {x}) WHERE seq = {y};
                 DROP TABLE t;"
            ))
            .unwrap();
        }
        Mutation::SwapSeqs { a, b: bb } => {
            let (x, y) = distinct(a, bb);
            c.execute_batch(&format!(
                "UPDATE events SET seq = -1 WHERE seq = {x};
                 UPDATE events SET seq = {x} WHERE seq = {y};
                 UPDATE events SET seq = {y} WHERE seq = -1;"
            ))
            .unwrap();
        }
        Mutation::Truncate { to, rollback_meta } => {
            // Cut back to a state the ledger really had (after some earlier call).
            let points = &b.metas[..b.metas.len() - 1];
            let (keep, saved) = &points[to % points.len()];
            c.execute("DELETE FROM events WHERE seq > ?1", [*keep as i64])
                .unwrap();
            if *rollback_meta {
                c.execute(
                    "UPDATE meta SET head_seq = ?1, head_hash = ?2, head_count = ?3, mac = ?4",
                    (saved.0, &saved.1, saved.2, &saved.3),
                )
                .unwrap();
            }
        }
        Mutation::Forge {
            copy_mac,
            update_meta,
        } => {
            let (last, last_hash): (i64, String) = c
                .query_row(
                    "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            let s = last + 1;
            let payload = r#"{"forged":true}"#;
            let hash = event_hash(s as u64, 1, None, "reserved", payload, &last_hash);
            let mac: String = match copy_mac {
                Some(i) => c
                    .query_row("SELECT mac FROM events WHERE seq = ?1", [seq(i)], |r| {
                        r.get(0)
                    })
                    .unwrap(),
                None => "ab".repeat(32),
            };
            c.execute(
                "INSERT INTO events (seq, ts_ms, campaign, kind, payload, prev_hash, hash, mac)
                 VALUES (?1, 1, NULL, 'reserved', ?2, ?3, ?4, ?5)",
                (s, payload, &last_hash, &hash, &mac),
            )
            .unwrap();
            if *update_meta {
                c.execute(
                    "UPDATE meta SET head_seq = ?1, head_hash = ?2, head_count = head_count + 1",
                    (s, &hash),
                )
                .unwrap();
            }
        }
        Mutation::HeadFile { variant } => {
            let p = b.dir.join("ledger.head");
            match variant {
                0 => fs::remove_file(&p).unwrap(),
                1 => fs::write(&p, b"garbage").unwrap(),
                _ => {
                    let mut v: serde_json::Value =
                        serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
                    v["seq"] = serde_json::json!(v["seq"].as_u64().unwrap() - 1);
                    v["count"] = v["seq"].clone();
                    fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
                }
            }
        }
    }
}

/// 128 cases by default (each builds a ledger with up to 41 fsynced commits); override with
/// `PROPTEST_CASES`.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_single_mutation_is_detected(
        ops in proptest::collection::vec(op(), 2..40),
        m in mutation(),
    ) {
        let b = build(&ops);
        let clean = b.ledger.verify().unwrap();
        prop_assert!(clean.is_ok(), "clean ledger did not verify: {:?}", clean);
        prop_assert_eq!(clean.events, ops.len() as u64 + 1);
        apply(&b, &m);
        let r = b.ledger.verify().unwrap();
        prop_assert!(!r.is_ok(), "mutation {:?} not detected", m);
    }
}

fn built(n: usize) -> Built {
    let ops: Vec<Op> = (0..n)
        .map(|i| Op::Append {
            kind: "note".into(),
            text: format!("event {i}"),
            campaign: i % 2 == 0,
        })
        .collect();
    build(&ops)
}

fn verify_after(n: usize, m: Mutation) -> VerifyReport {
    let b = built(n);
    assert!(b.ledger.verify().unwrap().is_ok());
    apply(&b, &m);
    b.ledger.verify().unwrap()
}

#[test]
fn deleting_first_middle_and_last_events_is_classified() {
    for at in [0usize, 3, 5] {
        let r = verify_after(5, Mutation::Delete { at });
        assert!(!r.is_ok());
        if at == 5 {
            assert!(r.has(ProblemKind::Truncated), "{r:?}");
        } else {
            let p = r
                .problems
                .iter()
                .find(|p| p.kind == ProblemKind::Deleted)
                .unwrap();
            assert_eq!(p.seq, Some(at as u64 + 1), "{r:?}");
        }
    }
}

#[test]
fn edits_are_classified() {
    let r = verify_after(
        5,
        Mutation::Edit {
            at: 2,
            col: Col::Payload,
            salt: 3,
        },
    );
    assert_eq!(r.problems[0].kind, ProblemKind::Edited, "{r:?}");
    assert_eq!(r.problems[0].seq, Some(3));
    let r = verify_after(
        5,
        Mutation::Edit {
            at: 2,
            col: Col::Mac,
            salt: 3,
        },
    );
    assert_eq!(r.problems.len(), 1, "{r:?}");
    assert_eq!(r.problems[0].kind, ProblemKind::BadMac);
    let r = verify_after(5, Mutation::SwapSeqs { a: 1, b: 3 });
    assert!(
        r.has(ProblemKind::Edited) || r.has(ProblemKind::Reordered),
        "{r:?}"
    );
}

#[test]
fn truncation_with_rolled_back_meta_is_caught_by_the_head_file() {
    let b = built(6);
    let saved = b.metas[3].clone();
    apply(
        &b,
        &Mutation::Truncate {
            to: 3,
            rollback_meta: true,
        },
    );
    let r = b.ledger.verify().unwrap();
    assert_eq!(r.head_seq, saved.0);
    // The meta row is a genuine old head: the head file tells, and so does the campaign's
    // sealed row, which counted the removed events.
    assert!(r.has(ProblemKind::Truncated), "{r:?}");
    assert!(
        r.problems
            .iter()
            .all(|p| matches!(p.kind, ProblemKind::Truncated | ProblemKind::TableMismatch)),
        "{r:?}"
    );
    // And the ledger refuses to build on the truncated chain.
    let mut l = b.ledger;
    assert!(matches!(
        l.append_event(None, "x", &serde_json::json!({})),
        Err(LedgerError::Tampered(_))
    ));
}

#[test]
fn forged_appended_event_is_caught() {
    let r = verify_after(
        4,
        Mutation::Forge {
            copy_mac: Some(1),
            update_meta: false,
        },
    );
    assert!(r.has(ProblemKind::BadMac), "{r:?}");
    assert!(r.has(ProblemKind::Inserted), "{r:?}");
    assert!(!r.has(ProblemKind::Edited), "{r:?}");
}

#[test]
fn swapped_contents_are_reported() {
    let r = verify_after(6, Mutation::SwapContents { a: 2, b: 4 });
    assert!(!r.is_ok());
    assert!(r.problems.iter().any(|p| p.seq == Some(3)), "{r:?}");
    assert!(r.problems.iter().any(|p| p.seq == Some(5)), "{r:?}");
    // Event 3 now carries event 5's link to event 4.
    assert!(
        r.problems
            .iter()
            .any(|p| p.seq == Some(3) && p.kind == ProblemKind::Reordered),
        "{r:?}"
    );
}

#[test]
fn deleting_everything_is_caught() {
    let b = built(3);
    let c = raw(&b.ledger);
    c.execute("DELETE FROM events", []).unwrap();
    c.execute(
        "UPDATE meta SET head_seq = 0, head_hash = ?1, head_count = 0",
        [GENESIS_HASH],
    )
    .unwrap();
    let r = b.ledger.verify().unwrap();
    assert_eq!(r.events, 0);
    assert!(r.has(ProblemKind::Truncated), "{r:?}");
}
