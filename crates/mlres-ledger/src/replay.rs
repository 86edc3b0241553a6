//! `verify`'s second half: replays the events into the campaign and experiment state they
//! imply, and compares that, the usage it implies and every row seal with the tables.

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde_json::Value;

use crate::crypto::KEY_LEN;
use crate::integrity::{self, Tally, TallyRow};
use crate::{LedgerError, Problem, ProblemKind};

#[derive(Debug, Clone, PartialEq)]
struct CampaignState {
    project_root: String,
    program_hash: String,
    generation: i64,
    status: String,
    stop_requested: bool,
    stop_reason: Option<String>,
    approval_id: Option<i64>,
    seq: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct ExpState {
    campaign: String,
    iter: i64,
    state: String,
    timeout_secs: i64,
    reserved_cost: i64,
    attempt: i64,
    handle: Option<String>,
    status: Option<String>,
    exit_code: Option<i64>,
    duration_ms: Option<i64>,
    spent_walltime: Option<i64>,
    spent_cost: Option<i64>,
    decision: Option<String>,
    seq: u64,
}

fn s(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

fn problem(seq: Option<u64>, detail: String) -> Problem {
    Problem {
        seq,
        kind: ProblemKind::TableMismatch,
        detail,
    }
}

/// Replays every event and compares with the tables. Events whose payload cannot be read were
/// already reported by the chain walk (their hash or MAC fails); they are skipped here.
pub(crate) fn check(
    conn: &Connection,
    key: &[u8; KEY_LEN],
    problems: &mut Vec<Problem>,
) -> Result<(), LedgerError> {
    let mut campaigns: BTreeMap<String, CampaignState> = BTreeMap::new();
    let mut exps: BTreeMap<i64, ExpState> = BTreeMap::new();
    {
        let mut stmt =
            conn.prepare("SELECT seq, campaign, kind, payload FROM events ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (Ok(seq), Ok(campaign), Ok(kind), Ok(payload)) = (
                r.get::<_, i64>(0),
                r.get::<_, Option<String>>(1),
                r.get::<_, String>(2),
                r.get::<_, String>(3),
            ) else {
                continue;
            };
            let seq = u64::try_from(seq).unwrap_or(0);
            let Ok(p) = serde_json::from_str::<Value>(&payload) else {
                continue;
            };
            apply(
                seq,
                campaign,
                &kind,
                &p,
                &mut campaigns,
                &mut exps,
                problems,
            );
        }
    }
    compare_campaigns(conn, key, &campaigns, &exps, problems)?;
    compare_experiments(conn, key, &exps, problems)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn apply(
    seq: u64,
    campaign: Option<String>,
    kind: &str,
    p: &Value,
    campaigns: &mut BTreeMap<String, CampaignState>,
    exps: &mut BTreeMap<i64, ExpState>,
    problems: &mut Vec<Problem>,
) {
    let exp_id = p["exp_id"].as_i64();
    if matches!(
        kind,
        "submitted" | "attempt_voided" | "released" | "finished" | "evaluated"
    ) && let Some(id) = exp_id
        && !exps.contains_key(&id)
    {
        problems.push(problem(
            Some(seq),
            format!("a {kind} event names experiment {id}, which was never reserved"),
        ));
    }
    match kind {
        "campaign_created" => {
            let Some(c) = campaign else { return };
            campaigns.insert(
                c,
                CampaignState {
                    project_root: s(&p["project_root"]).unwrap_or_default(),
                    program_hash: s(&p["program_hash"]).unwrap_or_default(),
                    generation: p["generation"].as_i64().unwrap_or(0),
                    status: "active".into(),
                    stop_requested: false,
                    stop_reason: None,
                    approval_id: p["approval_id"].as_i64(),
                    seq,
                },
            );
        }
        "stop_requested" | "campaign_finished" => {
            let Some(c) = campaign.and_then(|c| campaigns.get_mut(&c)) else {
                return;
            };
            if kind == "stop_requested" {
                c.stop_requested = true;
            } else {
                c.status = s(&p["status"]).unwrap_or_default();
            }
            c.stop_reason = s(&p["reason"]);
            c.seq = seq;
        }
        "reserved" => {
            let (Some(id), Some(c)) = (exp_id, campaign) else {
                return;
            };
            let r = &p["request"];
            exps.insert(
                id,
                ExpState {
                    campaign: c,
                    iter: p["iter"].as_i64().unwrap_or(-1),
                    state: "reserved".into(),
                    timeout_secs: r["timeout_secs"].as_i64().unwrap_or(-1),
                    reserved_cost: r["cost_micro"].as_i64().unwrap_or(-1),
                    attempt: 0,
                    handle: None,
                    status: None,
                    exit_code: None,
                    duration_ms: None,
                    spent_walltime: None,
                    spent_cost: None,
                    decision: None,
                    seq,
                },
            );
        }
        "submitted" => {
            if let Some(e) = exp_id.and_then(|id| exps.get_mut(&id)) {
                e.state = "submitted".into();
                e.attempt = p["attempt"].as_i64().unwrap_or(-1);
                e.handle = s(&p["handle"]);
                e.seq = seq;
            }
        }
        "attempt_voided" => {
            if let Some(e) = exp_id.and_then(|id| exps.get_mut(&id)) {
                e.state = "reserved".into();
                e.handle = None;
                e.seq = seq;
            }
        }
        "released" => {
            if let Some(e) = exp_id.and_then(|id| exps.get_mut(&id)) {
                e.state = "released".into();
                e.seq = seq;
            }
        }
        "finished" => {
            if let Some(e) = exp_id.and_then(|id| exps.get_mut(&id)) {
                e.state = "finished".into();
                e.status = s(&p["status"]);
                e.exit_code = p["exit_code"].as_i64();
                e.duration_ms = p["duration_ms"].as_i64();
                e.spent_walltime = p["spent_walltime_secs"].as_i64();
                e.spent_cost = p["spent_cost_micro"].as_i64();
                e.seq = seq;
            }
        }
        "evaluated" => {
            if let Some(e) = exp_id.and_then(|id| exps.get_mut(&id)) {
                e.state = "evaluated".into();
                e.decision = s(&p["decision"]);
                e.seq = seq;
            }
        }
        _ => {}
    }
}

fn compare_campaigns(
    conn: &Connection,
    key: &[u8; KEY_LEN],
    replayed: &BTreeMap<String, CampaignState>,
    exps: &BTreeMap<i64, ExpState>,
    problems: &mut Vec<Problem>,
) -> Result<(), LedgerError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut stmt = conn.prepare(&format!(
        "SELECT {}, mac FROM campaigns ORDER BY id",
        integrity::CAMPAIGN_SEALED_COLS
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        seen.insert(id.clone());
        if !integrity::row_mac_ok(
            key,
            integrity::TAG_CAMPAIGN_ROW_MAC,
            r,
            integrity::CAMPAIGN_SEALED_N,
        )? {
            problems.push(Problem {
                seq: None,
                kind: ProblemKind::BadMac,
                detail: format!("campaign {id}: its row does not match its MAC"),
            });
        }
        let Some(want) = replayed.get(&id) else {
            problems.push(problem(
                None,
                format!("campaign {id} is in the table but no event created it"),
            ));
            continue;
        };
        let found = CampaignState {
            project_root: r.get(1)?,
            program_hash: r.get(2)?,
            generation: r.get(7)?,
            status: r.get(4)?,
            stop_requested: r.get::<_, i64>(5)? != 0,
            stop_reason: r.get(6)?,
            approval_id: r.get(8)?,
            seq: want.seq,
        };
        if &found != want {
            problems.push(problem(
                Some(want.seq),
                format!(
                    "campaign {id}: the table says {}, the events say {}",
                    show_campaign(&found),
                    show_campaign(want)
                ),
            ));
        }
        // Usage as the events imply it, against the sealed tally and the rows.
        let mut from_events = Tally::default();
        for (eid, e) in exps.iter().filter(|(_, e)| e.campaign == id) {
            from_events.apply(&tally_row(e, *eid), 1);
        }
        let sealed = r.get::<_, String>(9).ok().and_then(|t| Tally::decode(&t));
        let from_rows = integrity::tally_from_rows(conn, &id)?;
        match sealed {
            None => problems.push(problem(
                None,
                format!("campaign {id}: its tally is unreadable"),
            )),
            Some(t) => {
                if t.usage() != from_events.usage() {
                    problems.push(problem(
                        None,
                        format!(
                            "campaign {id}: sealed usage {:?} differs from the usage the events imply {:?}",
                            t.usage(),
                            from_events.usage()
                        ),
                    ));
                }
                if t != from_rows {
                    problems.push(problem(
                        None,
                        format!(
                            "campaign {id}: its experiment rows do not add up to its sealed usage (rows edited, deleted or inserted)"
                        ),
                    ));
                }
            }
        }
        let (max_seq, count) = integrity::campaign_event_span(conn, &id)?;
        let (last_seq, events): (i64, i64) = (r.get(10)?, r.get(11)?);
        if (max_seq, count) != (last_seq, events) {
            problems.push(problem(
                None,
                format!(
                    "campaign {id}: sealed with {events} events up to seq {last_seq}, the chain holds {count} up to seq {max_seq}"
                ),
            ));
        }
    }
    for (id, c) in replayed {
        if !seen.contains(id) {
            problems.push(problem(
                Some(c.seq),
                format!("campaign {id} was created in the chain but its row is missing"),
            ));
        }
    }
    Ok(())
}

fn tally_row(e: &ExpState, id: i64) -> TallyRow {
    TallyRow {
        id,
        iter: e.iter,
        state: e.state.clone(),
        timeout_secs: e.timeout_secs,
        reserved_cost: e.reserved_cost,
        attempt: e.attempt,
        duration_ms: e.duration_ms,
        spent_walltime: e.spent_walltime,
        spent_cost: e.spent_cost,
    }
}

fn show_campaign(c: &CampaignState) -> String {
    format!(
        "status {}{}, generation {}, approval {:?}",
        c.status,
        if c.stop_requested {
            " (stop requested)"
        } else {
            ""
        },
        c.generation,
        c.approval_id
    )
}

fn compare_experiments(
    conn: &Connection,
    key: &[u8; KEY_LEN],
    replayed: &BTreeMap<i64, ExpState>,
    problems: &mut Vec<Problem>,
) -> Result<(), LedgerError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut stmt = conn.prepare(&format!(
        "SELECT {}, mac FROM experiments ORDER BY id",
        integrity::EXP_SEALED_COLS
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        seen.insert(id);
        if !integrity::row_mac_ok(key, integrity::TAG_EXP_ROW_MAC, r, integrity::EXP_SEALED_N)? {
            problems.push(Problem {
                seq: None,
                kind: ProblemKind::BadMac,
                detail: format!("experiment {id}: its row does not match its MAC"),
            });
        }
        let Some(want) = replayed.get(&id) else {
            problems.push(problem(
                None,
                format!("experiment {id} is in the table but was never reserved in the chain"),
            ));
            continue;
        };
        let found = ExpState {
            campaign: r.get(1)?,
            iter: r.get(2)?,
            state: r.get(3)?,
            timeout_secs: r.get(10)?,
            reserved_cost: r.get(11)?,
            attempt: r.get(12)?,
            handle: r.get(13)?,
            status: r.get(14)?,
            exit_code: r.get(15)?,
            duration_ms: r.get(16)?,
            spent_walltime: r.get(17)?,
            spent_cost: r.get(18)?,
            decision: r.get(22)?,
            seq: want.seq,
        };
        if &found != want {
            problems.push(problem(
                Some(want.seq),
                format!(
                    "experiment {id}: the table says {}, the events say {}",
                    show_exp(&found),
                    show_exp(want)
                ),
            ));
        }
    }
    for (id, e) in replayed {
        if !seen.contains(id) {
            problems.push(problem(
                Some(e.seq),
                format!("experiment {id} was reserved in the chain but its row is missing"),
            ));
        }
    }
    Ok(())
}

fn show_exp(e: &ExpState) -> String {
    format!(
        "{} (campaign {}, iter {}, attempt {}, timeout {} s, reserved cost {}, spent {:?} s / {:?}, status {:?}, decision {:?})",
        e.state,
        e.campaign,
        e.iter,
        e.attempt,
        e.timeout_secs,
        e.reserved_cost,
        e.spent_walltime,
        e.spent_cost,
        e.status,
        e.decision
    )
}
