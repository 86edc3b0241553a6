//! `Ledger::verify`: walks the whole chain and cross-checks the head row and the head file.

use std::collections::HashMap;

use rusqlite::types::ValueRef;

use crate::crypto::{self, GENESIS_HASH, TAG_EVENT_MAC};
use crate::files::{self, Head};
use crate::{Ledger, LedgerError, Problem, ProblemKind, VerifyReport};

/// One event row as stored, tolerating wrong column types (an attacker may write anything).
struct RawEvent {
    seq: i64,
    ts_ms: Option<u64>,
    campaign: Option<Option<Vec<u8>>>,
    kind: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    prev_hash: Option<Vec<u8>>,
    hash: Option<Vec<u8>>,
    mac: Option<Vec<u8>>,
}

fn text(v: ValueRef<'_>) -> Option<Vec<u8>> {
    match v {
        ValueRef::Text(t) => Some(t.to_vec()),
        _ => None,
    }
}

fn opt_text(v: ValueRef<'_>) -> Option<Option<Vec<u8>>> {
    match v {
        ValueRef::Null => Some(None),
        ValueRef::Text(t) => Some(Some(t.to_vec())),
        _ => None,
    }
}

fn uint(v: ValueRef<'_>) -> Option<u64> {
    match v {
        ValueRef::Integer(i) => u64::try_from(i).ok(),
        _ => None,
    }
}

fn problem(seq: Option<u64>, kind: ProblemKind, detail: impl Into<String>) -> Problem {
    Problem {
        seq,
        kind,
        detail: detail.into(),
    }
}

impl Ledger {
    /// Walks the whole chain and reports every problem found: edited columns, gaps, broken
    /// links, bad MACs, and disagreement with the `meta` head row and the `ledger.head` file.
    /// `Err` only for I/O-level failures (the database cannot be read at all).
    pub fn verify(&self) -> Result<VerifyReport, LedgerError> {
        // Read the head file BEFORE the database snapshot: it is written only after commits,
        // so whatever it says is then at or before the snapshot's head.
        let file = files::read_head_file(&self.dir);
        let tx = self.conn.unchecked_transaction()?;
        let mut problems = Vec::new();

        let mut stmt = tx.prepare(
            "SELECT seq, ts_ms, campaign, kind, payload, prev_hash, hash, mac
             FROM events ORDER BY seq",
        )?;
        let mut rows = stmt.query([])?;
        // stored hash -> seq, for classifying broken links; seq -> stored hash for the head.
        let mut by_hash: HashMap<Vec<u8>, i64> = HashMap::new();
        let mut hash_at: HashMap<i64, Vec<u8>> = HashMap::new();
        // Links to check after the walk: (seq, prev_hash found, expected prev_hash).
        let mut links: Vec<(i64, Vec<u8>, Vec<u8>)> = Vec::new();
        let mut count: u64 = 0;
        let mut expected: i64 = 1;
        let mut prev_hash: Option<Vec<u8>> = Some(GENESIS_HASH.as_bytes().to_vec());
        let mut last_seq: i64 = 0;

        while let Some(r) = rows.next()? {
            count += 1;
            let ev = RawEvent {
                seq: match r.get_ref(0)? {
                    ValueRef::Integer(i) => i,
                    _ => i64::MIN,
                },
                ts_ms: uint(r.get_ref(1)?),
                campaign: opt_text(r.get_ref(2)?),
                kind: text(r.get_ref(3)?),
                payload: text(r.get_ref(4)?),
                prev_hash: text(r.get_ref(5)?),
                hash: text(r.get_ref(6)?),
                mac: text(r.get_ref(7)?),
            };
            let seq_u = u64::try_from(ev.seq).ok().filter(|s| *s > 0);
            last_seq = ev.seq;

            // Position in the sequence.
            let mut after_gap = false;
            if ev.seq < expected {
                problems.push(problem(
                    seq_u,
                    ProblemKind::Inserted,
                    format!("event with impossible seq {}", ev.seq),
                ));
            } else if ev.seq > expected {
                problems.push(problem(
                    u64::try_from(expected).ok(),
                    ProblemKind::Deleted,
                    format!("events {expected}..={} are missing", ev.seq - 1),
                ));
                after_gap = true;
                expected = ev.seq + 1;
            } else {
                expected += 1;
            }

            // Column types.
            let (Some(ts_ms), Some(campaign), Some(kind), Some(payload), Some(prev), Some(hash)) = (
                ev.ts_ms,
                ev.campaign.as_ref(),
                ev.kind.as_ref(),
                ev.payload.as_ref(),
                ev.prev_hash.as_ref(),
                ev.hash.as_ref(),
            ) else {
                problems.push(problem(
                    seq_u,
                    ProblemKind::Edited,
                    "a column has the wrong type or is NULL",
                ));
                prev_hash = ev.hash.clone();
                continue;
            };

            // Content vs hash.
            if let Some(seq) = seq_u {
                let recomputed =
                    crypto::event_hash_bytes(seq, ts_ms, campaign.as_deref(), kind, payload, prev);
                if recomputed.as_bytes() != hash.as_slice() {
                    problems.push(problem(
                        seq_u,
                        ProblemKind::Edited,
                        "the event's columns do not match its hash",
                    ));
                }
            }

            // Hash vs MAC.
            let mac_ok = ev
                .mac
                .as_ref()
                .is_some_and(|m| crypto::mac_ok(&self.key, TAG_EVENT_MAC, hash, m));
            if !mac_ok {
                problems.push(problem(
                    seq_u,
                    ProblemKind::BadMac,
                    "the event's MAC does not verify (forged or edited, or wrong key)",
                ));
            }

            // Link to the predecessor (a gap was already reported).
            if !after_gap {
                match &prev_hash {
                    Some(p) if p == prev => {}
                    Some(p) => links.push((ev.seq, prev.clone(), p.clone())),
                    None => {}
                }
            }
            by_hash.entry(hash.clone()).or_insert(ev.seq);
            hash_at.insert(ev.seq, hash.clone());
            prev_hash = Some(hash.clone());
        }
        drop(rows);
        drop(stmt);

        for (seq, found, _expected) in links {
            let seq_u = u64::try_from(seq).ok();
            match by_hash.get(&found) {
                Some(other) => problems.push(problem(
                    seq_u,
                    ProblemKind::Reordered,
                    format!("links to event {other}, which is not its predecessor"),
                )),
                None => problems.push(problem(
                    seq_u,
                    ProblemKind::Edited,
                    "prev_hash does not match the previous event's hash",
                )),
            }
        }

        let head_seq = u64::try_from(last_seq).unwrap_or(0);
        let last_hash = hash_at
            .get(&last_seq)
            .cloned()
            .unwrap_or_else(|| GENESIS_HASH.as_bytes().to_vec());

        // The meta head row.
        match crate::read_meta(&tx) {
            Err(e) => problems.push(problem(
                None,
                ProblemKind::HeadMismatch,
                format!("the meta head row is unreadable: {e}"),
            )),
            Ok(None) => problems.push(problem(
                None,
                ProblemKind::HeadMismatch,
                "the meta head row is missing",
            )),
            Ok(Some(meta)) => {
                check_head(
                    "meta head row",
                    &meta,
                    self,
                    head_seq,
                    &last_hash,
                    count,
                    &hash_at,
                    &mut problems,
                    true,
                );
            }
        }
        // The tables the budget reads, against their seals and the replayed events.
        crate::replay::check(&tx, &self.key, &mut problems)?;
        tx.finish()?;

        // The head file.
        match file {
            Err(reason) => problems.push(problem(None, ProblemKind::HeadMismatch, reason)),
            Ok(None) => problems.push(problem(
                None,
                ProblemKind::HeadMismatch,
                "the head file ledger.head is missing",
            )),
            Ok(Some(head)) => {
                check_head(
                    "head file",
                    &head,
                    self,
                    head_seq,
                    &last_hash,
                    count,
                    &hash_at,
                    &mut problems,
                    false,
                );
            }
        }

        Ok(VerifyReport {
            events: count,
            head_seq,
            problems,
        })
    }
}

/// Checks a head record against the walked chain. The meta row must be exact (`exact`); the
/// head file may lag (it is written after the commit) but must be a checkpoint on the chain.
#[allow(clippy::too_many_arguments)]
fn check_head(
    what: &str,
    head: &Head,
    ledger: &Ledger,
    head_seq: u64,
    last_hash: &[u8],
    count: u64,
    hash_at: &HashMap<i64, Vec<u8>>,
    problems: &mut Vec<Problem>,
    exact: bool,
) {
    if !head.mac_ok(&ledger.key) {
        problems.push(problem(
            None,
            ProblemKind::BadMac,
            format!("the {what}'s MAC does not verify"),
        ));
    }
    if head.seq > head_seq || head.count > count {
        problems.push(problem(
            Some(head_seq + 1),
            ProblemKind::Truncated,
            format!(
                "the {what} records {} events up to seq {}, but the chain has {count} up to seq {head_seq}",
                head.count, head.seq
            ),
        ));
        return;
    }
    if exact {
        if head.seq < head_seq {
            problems.push(problem(
                Some(head.seq + 1),
                ProblemKind::Inserted,
                format!(
                    "events after the recorded head (seq {}) up to seq {head_seq}",
                    head.seq
                ),
            ));
        } else if head.hash.as_bytes() != last_hash || head.count != count {
            problems.push(problem(
                Some(head_seq),
                ProblemKind::HeadMismatch,
                format!("the {what} does not match the last event"),
            ));
        }
        return;
    }
    let on_chain = match i64::try_from(head.seq) {
        Ok(0) => head.hash == GENESIS_HASH,
        Ok(s) => hash_at.get(&s).is_some_and(|h| h == head.hash.as_bytes()),
        Err(_) => false,
    };
    if !on_chain || head.count != head.seq {
        problems.push(problem(
            Some(head.seq),
            ProblemKind::HeadMismatch,
            format!(
                "the {what}'s checkpoint at seq {} is not on the chain",
                head.seq
            ),
        ));
    }
}
