//! Row seals: the tables the budget reads are bound to the key and to the event chain.
//!
//! The event chain is tamper-evident, but the `campaigns` and `experiments` tables are what
//! every budget check reads. Without this module one `UPDATE experiments SET state =
//! 'released'` refunded a campaign's budget and `verify` still passed. Now:
//!
//! - every experiment row carries `mac` = HMAC(key, every column of the row);
//! - every campaign row carries a [`Tally`] of its experiments (per-state counts and sums of
//!   every budget-relevant column), the seq of its last event and its number of events, and a
//!   `mac` over all of that and its own columns;
//! - a write transaction checks the seal of every row it reads before it changes anything
//!   ([`Writer::campaign`], [`Writer::exp`]) and re-seals every row it changed before it
//!   commits; a reservation also recomputes the tally from the rows, so a deleted, inserted or
//!   edited experiment is refused before anything is spent;
//! - `verify` replays the events and compares (see `replay.rs`).
//!
//! Usage for budget checks comes from the sealed tally, never from a bare `SUM` over rows.

use std::collections::BTreeMap;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};

use crate::crypto::{self, KEY_LEN};
use crate::{LedgerError, Usage, Writer};

pub(crate) const TAG_EXP_ROW_MAC: &[u8] = b"mlres-ledger/experiment-row-mac/v1\0";
pub(crate) const TAG_CAMPAIGN_ROW_MAC: &[u8] = b"mlres-ledger/campaign-row-mac/v1\0";

/// Columns of an experiment row covered by its MAC (every column but `mac`).
pub(crate) const EXP_SEALED_COLS: &str = "id, campaign, iter, state, hypothesis, config, source, \
    proposal_index, backend, flavor, timeout_secs, reserved_cost_micro, attempt, handle, status, \
    exit_code, duration_ms, spent_walltime_secs, spent_cost_micro, metric, metric_nan, metrics, \
    decision, decision_reason, best_so_far, best_so_far_nan, error, created_ms, submitted_ms, \
    finished_ms, evaluated_ms";
pub(crate) const EXP_SEALED_N: usize = 31;

/// Columns of a campaign row covered by its MAC (every column but `mac`).
pub(crate) const CAMPAIGN_SEALED_COLS: &str = "id, project_root, program_hash, created_ms, \
    status, stop_requested, stop_reason, generation, approval_id, tally, last_seq, events";
pub(crate) const CAMPAIGN_SEALED_N: usize = 12;

/// Encodes SQL values unambiguously (type tag + length-prefixed bytes) for a MAC.
pub(crate) fn encode_values<'a>(values: impl IntoIterator<Item = ValueRef<'a>>) -> Vec<u8> {
    let mut buf = Vec::with_capacity(512);
    for v in values {
        match v {
            ValueRef::Null => buf.push(b'n'),
            ValueRef::Integer(i) => {
                buf.push(b'i');
                buf.extend_from_slice(&i.to_be_bytes());
            }
            ValueRef::Real(f) => {
                buf.push(b'r');
                buf.extend_from_slice(&f.to_bits().to_be_bytes());
            }
            ValueRef::Text(t) => {
                buf.push(b't');
                crypto::put_lp(&mut buf, t);
            }
            ValueRef::Blob(b) => {
                buf.push(b'b');
                crypto::put_lp(&mut buf, b);
            }
        }
    }
    buf
}

/// MAC of the first `n` columns of `row` under `tag`.
pub(crate) fn row_mac(
    key: &[u8; KEY_LEN],
    tag: &[u8],
    row: &rusqlite::Row<'_>,
    n: usize,
) -> rusqlite::Result<String> {
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        values.push(row.get_ref(i)?);
    }
    Ok(crypto::mac_hex(key, tag, &encode_values(values)))
}

/// Whether the MAC stored in column `n` of `row` matches the first `n` columns.
pub(crate) fn row_mac_ok(
    key: &[u8; KEY_LEN],
    tag: &[u8],
    row: &rusqlite::Row<'_>,
    n: usize,
) -> rusqlite::Result<bool> {
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        values.push(row.get_ref(i)?);
    }
    let stored = match row.get_ref(n)? {
        ValueRef::Text(t) => t,
        _ => return Ok(false),
    };
    Ok(crypto::mac_ok(key, tag, &encode_values(values), stored))
}

/// Per-campaign sums over its experiment rows: enough that any single edit of a
/// budget-relevant column (state, durations, costs, attempts), a deleted row or an inserted one
/// changes it. Usage is derived from it ([`Tally::usage`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub rows: i64,
    pub reserved: i64,
    pub submitted: i64,
    pub finished: i64,
    pub evaluated: i64,
    pub released: i64,
    /// Settled walltime of finished jobs plus the timeout of jobs in flight.
    pub walltime: i64,
    /// Settled cost of finished jobs plus the reserved cost of jobs in flight.
    pub cost: i64,
    pub max_iter: i64,
    pub sum_timeout: i64,
    pub sum_reserved_cost: i64,
    pub sum_duration_ms: i64,
    pub sum_spent_walltime: i64,
    pub sum_spent_cost: i64,
    pub sum_attempt: i64,
    pub sum_id: i64,
    pub sum_iter: i64,
}

/// The tally-relevant columns of one experiment row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TallyRow {
    pub id: i64,
    pub iter: i64,
    pub state: String,
    pub timeout_secs: i64,
    pub reserved_cost: i64,
    pub attempt: i64,
    pub duration_ms: Option<i64>,
    pub spent_walltime: Option<i64>,
    pub spent_cost: Option<i64>,
}

pub(crate) const TALLY_COLS: &str = "id, iter, state, timeout_secs, reserved_cost_micro, attempt, \
    duration_ms, spent_walltime_secs, spent_cost_micro";

fn tally_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TallyRow> {
    Ok(TallyRow {
        id: r.get(0)?,
        iter: r.get(1)?,
        state: r.get(2)?,
        timeout_secs: r.get(3)?,
        reserved_cost: r.get(4)?,
        attempt: r.get(5)?,
        duration_ms: r.get(6)?,
        spent_walltime: r.get(7)?,
        spent_cost: r.get(8)?,
    })
}

impl Tally {
    /// Adds (`sign` = 1) or removes (`sign` = -1) one row's contribution. Sums wrap: they are
    /// fingerprints, and an attacker's huge values must not make the check panic.
    pub(crate) fn apply(&mut self, r: &TallyRow, sign: i64) {
        let add = |x: &mut i64, v: i64| *x = x.wrapping_add(sign.wrapping_mul(v));
        add(&mut self.rows, 1);
        let in_flight = matches!(r.state.as_str(), "reserved" | "submitted");
        let settled = matches!(r.state.as_str(), "finished" | "evaluated");
        match r.state.as_str() {
            "reserved" => add(&mut self.reserved, 1),
            "submitted" => add(&mut self.submitted, 1),
            "finished" => add(&mut self.finished, 1),
            "evaluated" => add(&mut self.evaluated, 1),
            "released" => add(&mut self.released, 1),
            // The schema's CHECK forbids other states; count them somewhere visible anyway.
            _ => add(&mut self.rows, 1 << 32),
        }
        if in_flight {
            add(&mut self.walltime, r.timeout_secs);
            add(&mut self.cost, r.reserved_cost);
        } else if settled {
            add(&mut self.walltime, r.spent_walltime.unwrap_or(0));
            add(&mut self.cost, r.spent_cost.unwrap_or(0));
        }
        add(&mut self.sum_timeout, r.timeout_secs);
        add(&mut self.sum_reserved_cost, r.reserved_cost);
        // NULL and 0 must differ: a NULL adds a marker bit.
        let opt = |v: Option<i64>| v.map_or(1 << 40, |v| v.wrapping_mul(2));
        add(&mut self.sum_duration_ms, opt(r.duration_ms));
        add(&mut self.sum_spent_walltime, opt(r.spent_walltime));
        add(&mut self.sum_spent_cost, opt(r.spent_cost));
        add(&mut self.sum_attempt, r.attempt);
        add(&mut self.sum_id, r.id);
        add(&mut self.sum_iter, r.iter);
        if sign > 0 {
            self.max_iter = self.max_iter.max(r.iter);
        }
    }

    /// The budget usage this tally implies.
    pub(crate) fn usage(&self) -> Usage {
        let u = |v: i64| u64::try_from(v).unwrap_or(u64::MAX);
        Usage {
            jobs: u32::try_from(self.rows - self.released).unwrap_or(u32::MAX),
            walltime_secs: u(self.walltime),
            cost_micro: u(self.cost),
            in_flight: u32::try_from(self.reserved + self.submitted).unwrap_or(u32::MAX),
            next_iter: u32::try_from(self.max_iter + 1).unwrap_or(u32::MAX),
        }
    }

    pub(crate) fn encode(&self) -> String {
        [
            self.rows,
            self.reserved,
            self.submitted,
            self.finished,
            self.evaluated,
            self.released,
            self.walltime,
            self.cost,
            self.max_iter,
            self.sum_timeout,
            self.sum_reserved_cost,
            self.sum_duration_ms,
            self.sum_spent_walltime,
            self.sum_spent_cost,
            self.sum_attempt,
            self.sum_id,
            self.sum_iter,
        ]
        .map(|v| v.to_string())
        .join(",")
    }

    pub(crate) fn decode(s: &str) -> Option<Tally> {
        let v: Vec<i64> = s
            .split(',')
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        let [
            rows,
            reserved,
            submitted,
            finished,
            evaluated,
            released,
            walltime,
            cost,
            max_iter,
            sum_timeout,
            sum_reserved_cost,
            sum_duration_ms,
            sum_spent_walltime,
            sum_spent_cost,
            sum_attempt,
            sum_id,
            sum_iter,
        ] = v.try_into().ok()?;
        Some(Tally {
            rows,
            reserved,
            submitted,
            finished,
            evaluated,
            released,
            walltime,
            cost,
            max_iter,
            sum_timeout,
            sum_reserved_cost,
            sum_duration_ms,
            sum_spent_walltime,
            sum_spent_cost,
            sum_attempt,
            sum_id,
            sum_iter,
        })
    }
}

/// The tally recomputed from a campaign's rows (O(rows)).
pub(crate) fn tally_from_rows(conn: &Connection, campaign: &str) -> Result<Tally, LedgerError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TALLY_COLS} FROM experiments WHERE campaign = ?1"
    ))?;
    let mut t = Tally::default();
    for r in stmt.query_map([campaign], tally_row)? {
        t.apply(&r?, 1);
    }
    Ok(t)
}

fn tally_row_of(conn: &Connection, id: i64) -> Result<Option<(String, TallyRow)>, LedgerError> {
    Ok(conn
        .query_row(
            &format!("SELECT campaign, {TALLY_COLS} FROM experiments WHERE id = ?1"),
            [id],
            |r| {
                let campaign: String = r.get(0)?;
                Ok((
                    campaign,
                    TallyRow {
                        id: r.get(1)?,
                        iter: r.get(2)?,
                        state: r.get(3)?,
                        timeout_secs: r.get(4)?,
                        reserved_cost: r.get(5)?,
                        attempt: r.get(6)?,
                        duration_ms: r.get(7)?,
                        spent_walltime: r.get(8)?,
                        spent_cost: r.get(9)?,
                    },
                ))
            },
        )
        .optional()?)
}

/// Seq of a campaign's last event and its number of events.
pub(crate) fn campaign_event_span(
    conn: &Connection,
    campaign: &str,
) -> Result<(i64, i64), LedgerError> {
    Ok(conn.query_row(
        "SELECT COALESCE(MAX(seq), 0), COUNT(*) FROM events WHERE campaign = ?1",
        [campaign],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// A campaign's seal as stored, after its MAC was checked.
#[derive(Clone, Debug)]
pub(crate) struct CampaignSeal {
    pub tally: Tally,
}

/// Reads and checks a campaign row's seal: its MAC, and that its recorded last event is the
/// chain's (an index lookup); with `count`, also its number of events (a scan of the
/// campaign's events, made before spending). `Ok(None)` for an unknown campaign.
pub(crate) fn checked_campaign_seal(
    conn: &Connection,
    key: &[u8; KEY_LEN],
    campaign: &str,
    count: bool,
) -> Result<Option<CampaignSeal>, LedgerError> {
    let row = conn
        .query_row(
            &format!("SELECT {CAMPAIGN_SEALED_COLS}, mac FROM campaigns WHERE id = ?1"),
            [campaign],
            |r| {
                let ok = row_mac_ok(key, TAG_CAMPAIGN_ROW_MAC, r, CAMPAIGN_SEALED_N)?;
                let tally: String = r.get(9)?;
                Ok((ok, tally, r.get::<_, i64>(10)?, r.get::<_, i64>(11)?))
            },
        )
        .optional()?;
    let Some((ok, tally, last_seq, events)) = row else {
        return Ok(None);
    };
    if !ok {
        return Err(LedgerError::Tampered(format!(
            "campaign {campaign}: its row does not match its MAC (edited outside mlres)"
        )));
    }
    let tally = Tally::decode(&tally).ok_or_else(|| {
        LedgerError::Tampered(format!("campaign {campaign}: its tally is unreadable"))
    })?;
    let (max_seq, count) = if count {
        campaign_event_span(conn, campaign)?
    } else {
        let max: i64 = conn.query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM events WHERE campaign = ?1",
            [campaign],
            |r| r.get(0),
        )?;
        (max, events)
    };
    if (max_seq, count) != (last_seq, events) {
        return Err(LedgerError::Tampered(format!(
            "campaign {campaign}: the chain holds {count} of its events up to seq {max_seq}, \
             its sealed row says {events} up to seq {last_seq} (events were removed, added or \
             moved)"
        )));
    }
    Ok(Some(CampaignSeal { tally }))
}

/// Checks that a campaign's rows add up to its sealed tally.
pub(crate) fn check_rows_match_tally(
    conn: &Connection,
    campaign: &str,
    seal: &CampaignSeal,
) -> Result<(), LedgerError> {
    let now = tally_from_rows(conn, campaign)?;
    if now != seal.tally {
        return Err(LedgerError::Tampered(format!(
            "campaign {campaign}: its experiment rows do not add up to its sealed usage \
             (rows were edited, deleted or inserted outside mlres; sealed {}, found {})",
            describe(&seal.tally),
            describe(&now)
        )));
    }
    Ok(())
}

fn describe(t: &Tally) -> String {
    format!(
        "{} rows: {} reserved, {} submitted, {} finished, {} evaluated, {} released; walltime {} s, cost {}",
        t.rows, t.reserved, t.submitted, t.finished, t.evaluated, t.released, t.walltime, t.cost
    )
}

/// Writes a campaign row's seal: tally, event span, MAC.
pub(crate) fn seal_campaign(
    conn: &Connection,
    key: &[u8; KEY_LEN],
    campaign: &str,
    tally: &Tally,
) -> Result<(), LedgerError> {
    let (last_seq, events) = campaign_event_span(conn, campaign)?;
    conn.execute(
        "UPDATE campaigns SET tally = ?2, last_seq = ?3, events = ?4 WHERE id = ?1",
        (campaign, tally.encode(), last_seq, events),
    )?;
    let mac: String = conn.query_row(
        &format!("SELECT {CAMPAIGN_SEALED_COLS} FROM campaigns WHERE id = ?1"),
        [campaign],
        |r| row_mac(key, TAG_CAMPAIGN_ROW_MAC, r, CAMPAIGN_SEALED_N),
    )?;
    conn.execute(
        "UPDATE campaigns SET mac = ?2 WHERE id = ?1",
        (campaign, mac),
    )?;
    Ok(())
}

/// Writes an experiment row's MAC.
pub(crate) fn seal_exp(conn: &Connection, key: &[u8; KEY_LEN], id: i64) -> Result<(), LedgerError> {
    let mac: Option<String> = conn
        .query_row(
            &format!("SELECT {EXP_SEALED_COLS} FROM experiments WHERE id = ?1"),
            [id],
            |r| row_mac(key, TAG_EXP_ROW_MAC, r, EXP_SEALED_N),
        )
        .optional()?;
    if let Some(mac) = mac {
        conn.execute("UPDATE experiments SET mac = ?2 WHERE id = ?1", (id, mac))?;
    }
    Ok(())
}

/// Seals every row from scratch (schema migration: the rows are trusted as they are, and
/// `verify` still replays the chain against them).
pub(crate) fn seal_all(conn: &Connection, key: &[u8; KEY_LEN]) -> Result<(), LedgerError> {
    let ids: Vec<i64> = conn
        .prepare("SELECT id FROM experiments")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in ids {
        seal_exp(conn, key, id)?;
    }
    let campaigns: Vec<String> = conn
        .prepare("SELECT id FROM campaigns")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for c in campaigns {
        let t = tally_from_rows(conn, &c)?;
        seal_campaign(conn, key, &c, &t)?;
    }
    Ok(())
}

/// What one write transaction has checked and changed, so that it re-seals exactly that.
#[derive(Default)]
pub(crate) struct Touched {
    /// Campaigns whose seal was checked in this transaction, with their tally as it evolves.
    pub campaigns: BTreeMap<String, Tally>,
    /// Experiments changed in this transaction, with their tally row before the change
    /// (`None` for a row inserted in this transaction).
    pub exps: BTreeMap<i64, Option<TallyRow>>,
}

impl Writer<'_> {
    /// Checks a campaign's seal once per transaction (MAC and event span) and remembers its
    /// tally so the transaction can re-seal it. `Ok(false)` for an unknown campaign.
    pub(crate) fn check_campaign(&mut self, campaign: &str) -> Result<bool, LedgerError> {
        if self.touched.campaigns.contains_key(campaign) {
            return Ok(true);
        }
        let Some(seal) = checked_campaign_seal(self.conn, self.key(), campaign, false)? else {
            return Ok(false);
        };
        self.touched
            .campaigns
            .insert(campaign.to_string(), seal.tally);
        Ok(true)
    }

    /// A new campaign row (inserted in this transaction) starts with an empty tally.
    pub(crate) fn created_campaign(&mut self, campaign: &str) {
        self.touched
            .campaigns
            .insert(campaign.to_string(), Tally::default());
    }

    /// Like [`Writer::check_campaign`], and also recomputes the tally from the rows: the
    /// full check a reservation makes before it spends.
    pub(crate) fn check_campaign_rows(&mut self, campaign: &str) -> Result<bool, LedgerError> {
        if !self.check_campaign(campaign)? {
            return Ok(false);
        }
        // The event count too: a scan, made once per spend.
        checked_campaign_seal(self.conn, self.key(), campaign, true)?;
        let tally = self.touched.campaigns[campaign];
        let seal = CampaignSeal { tally };
        check_rows_match_tally(self.conn, campaign, &seal)?;
        Ok(true)
    }

    /// The sealed usage of a campaign checked in this transaction.
    pub(crate) fn sealed_usage(&self, campaign: &str) -> Option<Usage> {
        self.touched.campaigns.get(campaign).map(Tally::usage)
    }

    /// Records that experiment `id` is about to change (call before the UPDATE).
    pub(crate) fn will_change_exp(&mut self, id: i64) -> Result<(), LedgerError> {
        if self.touched.exps.contains_key(&id) {
            return Ok(());
        }
        let before = tally_row_of(self.conn, id)?;
        if let Some((campaign, _)) = &before
            && !self.check_campaign(campaign)?
        {
            return Err(LedgerError::NotFound(format!("campaign {campaign}")));
        }
        self.touched.exps.insert(id, before.map(|(_, r)| r));
        Ok(())
    }

    /// Whether experiment `id` was changed (or inserted) in this transaction.
    pub(crate) fn changed_exp(&self, id: i64) -> bool {
        self.touched.exps.contains_key(&id)
    }

    /// Records that experiment `id` was inserted in this transaction.
    pub(crate) fn inserted_exp(&mut self, id: i64) {
        self.touched.exps.insert(id, None);
    }

    /// Re-seals everything this transaction changed (called by `Ledger::write` before commit).
    pub(crate) fn seal_touched(&mut self) -> Result<(), LedgerError> {
        let exps = std::mem::take(&mut self.touched.exps);
        for (id, before) in exps {
            let after = tally_row_of(self.conn, id)?;
            let campaign = match &after {
                Some((c, _)) => c.clone(),
                None => continue,
            };
            let tally = self.touched.campaigns.get_mut(&campaign).ok_or_else(|| {
                LedgerError::Invalid(format!(
                    "internal: experiment {id} changed in campaign {campaign}, whose seal was not checked"
                ))
            })?;
            if let Some(b) = &before {
                tally.apply(b, -1);
            }
            if let Some((_, a)) = &after {
                tally.apply(a, 1);
            }
            seal_exp(self.conn, self.key(), id)?;
        }
        let campaigns = std::mem::take(&mut self.touched.campaigns);
        for (c, tally) in &campaigns {
            seal_campaign(self.conn, self.key(), c, tally)?;
        }
        Ok(())
    }
}
