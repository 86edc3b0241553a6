//! Campaigns, approvals and experiments: state derived transactionally alongside the events.

use rusqlite::{Connection, OptionalExtension, Row};
use serde_json::{Value, json};

use crate::crypto::{self, KEY_LEN, TAG_APPROVAL_MAC};
use crate::integrity::{self, TAG_CAMPAIGN_ROW_MAC, TAG_EXP_ROW_MAC};
use crate::types::state::{EVALUATED, FINISHED, RELEASED, RESERVED, SUBMITTED};
use crate::types::{DECISIONS, FINISH_STATUSES, SOURCES};
use crate::{
    Approval, ApprovalPins, Campaign, EvalRecord, Experiment, FinishRecord, Ledger, LedgerError,
    ReserveRequest, Usage, Writer,
};

/// The campaign's own columns (the first 8 of the sealed ones), then the rest of the sealed
/// columns and the MAC.
const SEALED_CAMPAIGN_SELECT: &str = "id, project_root, program_hash, created_ms, status, \
    stop_requested, stop_reason, generation, approval_id, tally, last_seq, events, mac";

fn campaign_from_row(r: &Row<'_>) -> rusqlite::Result<Campaign> {
    Ok(Campaign {
        id: r.get(0)?,
        project_root: r.get(1)?,
        program_hash: r.get(2)?,
        created_ms: r.get(3)?,
        status: r.get(4)?,
        stop_requested: r.get::<_, i64>(5)? != 0,
        stop_reason: r.get(6)?,
        generation: r.get(7)?,
    })
}

/// A campaign row with its seal checked (see `integrity.rs`).
fn sealed_campaign_from_row(
    key: &[u8; KEY_LEN],
    r: &Row<'_>,
) -> rusqlite::Result<(Campaign, bool)> {
    let ok = integrity::row_mac_ok(key, TAG_CAMPAIGN_ROW_MAC, r, integrity::CAMPAIGN_SEALED_N)?;
    Ok((campaign_from_row(r)?, ok))
}

fn unsealed(row: Option<(Campaign, bool)>) -> Result<Option<Campaign>, LedgerError> {
    match row {
        Some((c, false)) => Err(LedgerError::Tampered(format!(
            "campaign {}: its row does not match its MAC (edited outside mlres)",
            c.id
        ))),
        Some((c, true)) => Ok(Some(c)),
        None => Ok(None),
    }
}

pub(crate) fn get_campaign(
    conn: &Connection,
    key: &[u8; KEY_LEN],
    id: &str,
) -> Result<Option<Campaign>, LedgerError> {
    unsealed(
        conn.query_row(
            &format!("SELECT {SEALED_CAMPAIGN_SELECT} FROM campaigns WHERE id = ?1"),
            [id],
            |r| sealed_campaign_from_row(key, r),
        )
        .optional()?,
    )
}

pub(crate) fn require_campaign(
    conn: &Connection,
    key: &[u8; KEY_LEN],
    id: &str,
) -> Result<Campaign, LedgerError> {
    get_campaign(conn, key, id)?.ok_or_else(|| LedgerError::NotFound(format!("campaign {id}")))
}

/// In a write transaction: the campaign, after checking its seal (and remembering it, so the
/// transaction re-seals it when it commits).
pub(crate) fn write_campaign(w: &mut Writer<'_>, id: &str) -> Result<Campaign, LedgerError> {
    if !w.check_campaign(id)? {
        return Err(LedgerError::NotFound(format!("campaign {id}")));
    }
    require_campaign(w.conn, w.key(), id)
}

const EXP_COLS: &str = "id, campaign, iter, state, hypothesis, config, source, proposal_index, \
    backend, flavor, timeout_secs, reserved_cost_micro, attempt, handle, status, exit_code, \
    duration_ms, spent_walltime_secs, spent_cost_micro, metric, metric_nan, metrics, decision, \
    decision_reason, best_so_far, best_so_far_nan, error, created_ms, submitted_ms, finished_ms, \
    evaluated_ms";

fn float_from(value: Option<f64>, nan: i64) -> Option<f64> {
    if nan != 0 { Some(f64::NAN) } else { value }
}

/// Raw row with JSON columns still as text (parsed outside the rusqlite closure so that a
/// JSON error surfaces as `LedgerError::Json`).
struct ExpRow {
    mac_ok: bool,
    exp: Experiment,
    config: String,
    metrics: Option<String>,
}

fn exp_from_row(key: &[u8; KEY_LEN], r: &Row<'_>) -> rusqlite::Result<ExpRow> {
    Ok(ExpRow {
        mac_ok: integrity::row_mac_ok(key, TAG_EXP_ROW_MAC, r, integrity::EXP_SEALED_N)?,
        config: r.get(5)?,
        metrics: r.get(21)?,
        exp: Experiment {
            id: r.get(0)?,
            campaign: r.get(1)?,
            iter: r.get(2)?,
            state: r.get(3)?,
            hypothesis: r.get(4)?,
            config: Value::Null,
            source: r.get(6)?,
            proposal_index: r.get(7)?,
            backend: r.get(8)?,
            flavor: r.get(9)?,
            timeout_secs: r.get(10)?,
            reserved_cost_micro: r.get(11)?,
            attempt: r.get(12)?,
            handle: r.get(13)?,
            status: r.get(14)?,
            exit_code: r.get(15)?,
            duration_ms: r.get(16)?,
            spent_walltime_secs: r.get(17)?,
            spent_cost_micro: r.get(18)?,
            metric: float_from(r.get(19)?, r.get(20)?),
            metrics: None,
            decision: r.get(22)?,
            decision_reason: r.get(23)?,
            best_so_far: float_from(r.get(24)?, r.get(25)?),
            error: r.get(26)?,
            created_ms: r.get(27)?,
            submitted_ms: r.get(28)?,
            finished_ms: r.get(29)?,
            evaluated_ms: r.get(30)?,
        },
    })
}

fn finish_exp(row: ExpRow) -> Result<Experiment, LedgerError> {
    if !row.mac_ok {
        return Err(LedgerError::Tampered(format!(
            "experiment {}: its row does not match its MAC (edited outside mlres)",
            row.exp.id
        )));
    }
    let mut exp = row.exp;
    exp.config = serde_json::from_str(&row.config)?;
    exp.metrics = row
        .metrics
        .as_deref()
        .map(serde_json::from_str)
        .transpose()?;
    Ok(exp)
}

fn get_exp(
    conn: &Connection,
    key: &[u8; KEY_LEN],
    id: i64,
) -> Result<Option<Experiment>, LedgerError> {
    conn.query_row(
        &format!("SELECT {EXP_COLS}, mac FROM experiments WHERE id = ?1"),
        [id],
        |r| exp_from_row(key, r),
    )
    .optional()?
    .map(finish_exp)
    .transpose()
}

/// In a write transaction: the experiment about to change, after checking its own seal and
/// its campaign's.
fn write_exp(w: &mut Writer<'_>, id: i64) -> Result<Experiment, LedgerError> {
    // A row this transaction already changed is not sealed yet (sealing happens at commit);
    // its seal was checked before the first change.
    let changed = w.changed_exp(id);
    let row = w
        .conn
        .query_row(
            &format!("SELECT {EXP_COLS}, mac FROM experiments WHERE id = ?1"),
            [id],
            |r| exp_from_row(w.key(), r),
        )
        .optional()?
        .ok_or_else(|| LedgerError::NotFound(format!("experiment {id}")))?;
    let exp = finish_exp(ExpRow {
        mac_ok: row.mac_ok || changed,
        ..row
    })?;
    w.will_change_exp(id)?;
    Ok(exp)
}

/// A float for an event payload: finite numbers as numbers, others as strings.
fn float_json(v: Option<f64>) -> Value {
    match v {
        None => Value::Null,
        Some(x) if x.is_nan() => json!("NaN"),
        Some(x) if x == f64::INFINITY => json!("inf"),
        Some(x) if x == f64::NEG_INFINITY => json!("-inf"),
        Some(x) => json!(x),
    }
}

/// (REAL value, NaN flag) for storage.
fn float_sql(v: Option<f64>) -> (Option<f64>, i64) {
    match v {
        Some(x) if x.is_nan() => (None, 1),
        other => (other, 0),
    }
}

fn one_of(what: &str, value: &str, allowed: &[&str]) -> Result<(), LedgerError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(LedgerError::Invalid(format!(
            "{what} {value:?} is not one of {}",
            allowed.join(", ")
        )))
    }
}

fn non_empty(what: &str, value: &str) -> Result<(), LedgerError> {
    if value.is_empty() {
        Err(LedgerError::Invalid(format!("{what} must not be empty")))
    } else {
        Ok(())
    }
}

fn i64_range(what: &str, value: u64) -> Result<(), LedgerError> {
    if i64::try_from(value).is_err() {
        return Err(LedgerError::Invalid(format!("{what} {value} is too large")));
    }
    Ok(())
}

fn approval_mac_input(
    project_root: &str,
    hash: &str,
    document: &str,
    approver: &str,
    created_ms: u64,
) -> Vec<u8> {
    let mut buf = Vec::new();
    crypto::put_lp(&mut buf, project_root.as_bytes());
    crypto::put_lp(&mut buf, hash.as_bytes());
    crypto::put_lp(&mut buf, document.as_bytes());
    crypto::put_lp(&mut buf, approver.as_bytes());
    buf.extend_from_slice(&created_ms.to_be_bytes());
    buf
}

fn transition(exp: &Experiment, to: &str) -> LedgerError {
    LedgerError::InvalidTransition {
        exp_id: exp.id,
        from: exp.state.clone(),
        to: to.to_string(),
    }
}

fn check_finish(fin: &FinishRecord) -> Result<(), LedgerError> {
    one_of("finish status", &fin.status, FINISH_STATUSES)?;
    i64_range("duration_ms", fin.duration_ms)?;
    i64_range("spent_cost_micro", fin.spent_cost_micro)
}

/// `submitted` -> `finished` inside a write; `false` if already finished or evaluated.
fn finish_in(w: &mut Writer<'_>, exp_id: i64, fin: &FinishRecord) -> Result<bool, LedgerError> {
    let walltime = fin.duration_ms.div_ceil(1000);
    let exp = write_exp(w, exp_id)?;
    match exp.state.as_str() {
        SUBMITTED => {}
        FINISHED | EVALUATED => return Ok(false),
        _ => return Err(transition(&exp, FINISHED)),
    }
    w.conn.execute(
        "UPDATE experiments SET state = 'finished', status = ?2, exit_code = ?3,
                    duration_ms = ?4, spent_walltime_secs = ?5, spent_cost_micro = ?6,
                    error = ?7, finished_ms = ?8
             WHERE id = ?1",
        rusqlite::params![
            exp_id,
            fin.status,
            fin.exit_code,
            fin.duration_ms,
            walltime,
            fin.spent_cost_micro,
            fin.error,
            w.now,
        ],
    )?;
    w.append(
        Some(&exp.campaign),
        "finished",
        &json!({
            "exp_id": exp_id,
            "attempt": exp.attempt,
            "handle": exp.handle,
            "status": fin.status,
            "exit_code": fin.exit_code,
            "duration_ms": fin.duration_ms,
            "spent_walltime_secs": walltime,
            "spent_cost_micro": fin.spent_cost_micro,
            "error": fin.error,
        }),
    )?;
    Ok(true)
}

/// `finished` -> `evaluated` inside a write; `false` if already evaluated.
fn evaluate_in(w: &mut Writer<'_>, exp_id: i64, ev: &EvalRecord) -> Result<bool, LedgerError> {
    let metrics = serde_json::to_string(&ev.metrics)?;
    let (metric, metric_nan) = float_sql(ev.metric);
    let (best, best_nan) = float_sql(ev.best_so_far);
    let exp = write_exp(w, exp_id)?;
    match exp.state.as_str() {
        FINISHED => {}
        EVALUATED => return Ok(false),
        _ => return Err(transition(&exp, EVALUATED)),
    }
    w.conn.execute(
        "UPDATE experiments SET state = 'evaluated', metric = ?2, metric_nan = ?3,
                    metrics = ?4, decision = ?5, decision_reason = ?6, best_so_far = ?7,
                    best_so_far_nan = ?8, evaluated_ms = ?9
             WHERE id = ?1",
        rusqlite::params![
            exp_id,
            metric,
            metric_nan,
            metrics,
            ev.decision,
            ev.reason,
            best,
            best_nan,
            w.now,
        ],
    )?;
    let mut payload = json!({
        "exp_id": exp_id,
        "metric": float_json(ev.metric),
        "metrics": ev.metrics,
        "decision": ev.decision,
        "reason": ev.reason,
        "best_so_far": float_json(ev.best_so_far),
    });
    if let Some(e) = &ev.evidence {
        payload["evidence"] = e.clone();
    }
    w.append(Some(&exp.campaign), "evaluated", &payload)?;
    Ok(true)
}

/// How [`Ledger::open_campaign`] found or made the campaign.
#[derive(Debug, Clone, PartialEq)]
pub enum Opened {
    /// The active campaign, resumed.
    Resumed(Campaign),
    /// A new campaign, opened by the approval; `previous` is the campaign before it (as it is
    /// now: a superseded active one has just been stopped).
    Created {
        /// The new campaign.
        campaign: Campaign,
        /// The latest campaign before it, if any.
        previous: Option<Campaign>,
    },
    /// The latest campaign has ended (or, asked for a fresh one, is still active) and the
    /// approval was not given after it: a human must approve again. Nothing was recorded.
    NeedsApproval(Campaign),
}

fn latest_campaign(
    conn: &Connection,
    key: &[u8; KEY_LEN],
    project_root: &str,
) -> Result<Option<Campaign>, LedgerError> {
    unsealed(
        conn.query_row(
            &format!(
                "SELECT {SEALED_CAMPAIGN_SELECT} FROM campaigns WHERE project_root = ?1
                 ORDER BY generation DESC LIMIT 1"
            ),
            [project_root],
            |r| sealed_campaign_from_row(key, r),
        )
        .optional()?,
    )
}

fn insert_campaign(
    w: &mut Writer<'_>,
    project_root: &str,
    program_hash: &str,
    approval_id: Option<i64>,
) -> Result<Campaign, LedgerError> {
    // After an acknowledged reset, generations continue after the previous ledger's, so a
    // campaign id never names two different campaigns.
    let generation: u32 = w.conn.query_row(
        "SELECT MAX(
            (SELECT COALESCE(MAX(generation), 0) FROM campaigns WHERE project_root = ?1),
            (SELECT COALESCE(MAX(json_extract(payload, '$.previous_generation')), 0) FROM events
              WHERE kind = 'ledger_reset_acknowledged' AND json_valid(payload)
                AND json_extract(payload, '$.project_root') = ?1)
         ) + 1",
        [project_root],
        |r| r.get(0),
    )?;
    let root_hash = crypto::sha256_hex(project_root.as_bytes());
    let id = format!("c-{}-{generation}", &root_hash[..8]);
    w.conn.execute(
        "INSERT INTO campaigns (id, project_root, program_hash, created_ms, status,
                                stop_requested, stop_reason, generation, approval_id)
         VALUES (?1, ?2, ?3, ?4, 'active', 0, NULL, ?5, ?6)",
        (
            &id,
            project_root,
            program_hash,
            w.now,
            generation,
            approval_id,
        ),
    )?;
    w.created_campaign(&id);
    w.append(
        Some(&id),
        "campaign_created",
        &json!({
            "campaign": id,
            "project_root": project_root,
            "program_hash": program_hash,
            "generation": generation,
            "approval_id": approval_id,
        }),
    )?;
    // Seal now so that reading it back checks out; the commit re-seals with the final span.
    let tally = integrity::Tally::default();
    integrity::seal_campaign(w.conn, w.key(), &id, &tally)?;
    require_campaign(w.conn, w.key(), &id)
}

fn approved_after_in(
    conn: &Connection,
    approval: &Approval,
    campaign: &Campaign,
) -> Result<bool, LedgerError> {
    let approval_seq: Option<i64> = conn.query_row(
        "SELECT MAX(seq) FROM events WHERE kind = 'approval_recorded'
               AND json_valid(payload) AND json_extract(payload, '$.approval_id') = ?1
               AND json_extract(payload, '$.project_root') = ?2",
        (approval.id, &approval.project_root),
        |r| r.get(0),
    )?;
    let kind = if campaign.status == "active" {
        "campaign_created"
    } else {
        "campaign_finished"
    };
    let campaign_seq: Option<i64> = conn.query_row(
        "SELECT MAX(seq) FROM events WHERE kind = ?2 AND campaign = ?1",
        (&campaign.id, kind),
        |r| r.get(0),
    )?;
    match (approval_seq, campaign_seq) {
        (Some(a), Some(c)) => Ok(a > c),
        (None, _) => Err(LedgerError::Tampered(format!(
            "approval {} is not in the event chain",
            approval.id
        ))),
        (_, None) => Err(LedgerError::Tampered(format!(
            "campaign {} is {} but the chain holds no {kind} event for it",
            campaign.id, campaign.status
        ))),
    }
}

/// Ends an active campaign.
fn end_campaign(
    w: &mut Writer<'_>,
    campaign: &str,
    status: &str,
    reason: &str,
) -> Result<(), LedgerError> {
    let c = write_campaign(w, campaign)?;
    if c.status != "active" {
        return Err(LedgerError::InvalidCampaignTransition {
            campaign: campaign.to_string(),
            from: c.status,
            to: status.to_string(),
        });
    }
    let usage = w.sealed_usage(campaign).unwrap_or_default();
    w.conn.execute(
        "UPDATE campaigns SET status = ?2, stop_reason = ?3 WHERE id = ?1",
        (campaign, status, reason),
    )?;
    w.append(
        Some(campaign),
        "campaign_finished",
        &json!({"status": status, "reason": reason, "usage": usage}),
    )?;
    Ok(())
}

/// The body of [`Ledger::open_campaign`], inside the caller's transaction.
fn open_in(
    w: &mut Writer<'_>,
    approval: &Approval,
    program_hash: &str,
    fresh: bool,
) -> Result<Opened, LedgerError> {
    let root = approval.project_root.as_str();
    let current = latest_campaign(w.conn, w.key(), root)?;
    let previous = match current {
        Some(c) if c.status == "active" && !fresh => {
            write_campaign(w, &c.id)?;
            return Ok(Opened::Resumed(c));
        }
        Some(c) => {
            write_campaign(w, &c.id)?;
            if !approved_after_in(w.conn, approval, &c)? {
                return Ok(Opened::NeedsApproval(c));
            }
            if c.status == "active" {
                end_campaign(w, &c.id, "stopped", "superseded by a fresh campaign")?;
            }
            Some(require_campaign(w.conn, w.key(), &c.id)?)
        }
        None => None,
    };
    let campaign = insert_campaign(w, root, program_hash, Some(approval.id))?;
    Ok(Opened::Created { campaign, previous })
}

/// Checks a reservation request's fields; returns its config as JSON text.
fn validate_reserve(req: &ReserveRequest) -> Result<String, LedgerError> {
    one_of("source", &req.source, SOURCES)?;
    i64_range("timeout_secs", req.timeout_secs)?;
    i64_range("cost_micro", req.cost_micro)?;
    if let Some(p) = req.proposal_index {
        i64_range("proposal_index", p)?;
    }
    Ok(serde_json::to_string(&req.config)?)
}

/// The body of a reservation, inside the caller's transaction. The outer error aborts the
/// transaction; the inner one (a refusal) commits its `spend_refused` event.
fn reserve_in<F, H>(
    w: &mut Writer<'_>,
    campaign: &str,
    req: &ReserveRequest,
    config: &str,
    check: F,
    handle_for: Option<H>,
) -> Result<Result<Experiment, LedgerError>, LedgerError>
where
    F: FnOnce(&Usage) -> Result<(), (String, String)>,
    H: FnOnce(i64) -> String,
{
    // The full check before spending: the campaign's seal, and its rows against it.
    if !w.check_campaign_rows(campaign)? {
        return Err(LedgerError::NotFound(format!("campaign {campaign}")));
    }
    let c = require_campaign(w.conn, w.key(), campaign)?;
    if let Some(p) = req.proposal_index {
        let existing: Option<i64> = w
            .conn
            .query_row(
                "SELECT id FROM experiments WHERE campaign = ?1 AND proposal_index = ?2",
                (campaign, p),
                |r| r.get(0),
            )
            .optional()?;
        if let Some(existing) = existing {
            return Err(LedgerError::DuplicateProposal { existing });
        }
    }
    let usage = w.sealed_usage(campaign).unwrap_or_default();
    let verdict = if c.status != "active" {
        Err((
            "campaign_not_active".to_string(),
            format!("campaign {campaign} is {}", c.status),
        ))
    } else if c.stop_requested {
        Err((
            "stop_requested".to_string(),
            format!(
                "a stop was requested for campaign {campaign}: {}",
                c.stop_reason.as_deref().unwrap_or("")
            ),
        ))
    } else {
        check(&usage)
    };
    if let Err((code, message)) = verdict {
        w.append(
            Some(campaign),
            "spend_refused",
            &json!({"code": code, "message": message, "request": req, "usage": usage}),
        )?;
        return Ok(Err(LedgerError::Refused { code, message }));
    }
    w.conn.execute(
        "INSERT INTO experiments (campaign, iter, state, hypothesis, config, source,
            proposal_index, backend, flavor, timeout_secs, reserved_cost_micro, attempt,
            created_ms)
         VALUES (?1, ?2, 'reserved', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?11)",
        rusqlite::params![
            campaign,
            usage.next_iter,
            req.hypothesis,
            config,
            req.source,
            req.proposal_index,
            req.backend,
            req.flavor,
            req.timeout_secs,
            req.cost_micro,
            w.now,
        ],
    )?;
    let id = w.conn.last_insert_rowid();
    w.inserted_exp(id);
    w.append(
        Some(campaign),
        "reserved",
        &json!({"exp_id": id, "iter": usage.next_iter, "request": req, "usage_before": usage}),
    )?;
    if let Some(handle_for) = handle_for {
        let handle = handle_for(id);
        non_empty("handle", &handle)?;
        w.conn.execute(
            "UPDATE experiments SET state = 'submitted', attempt = 1, handle = ?2,
                    submitted_ms = ?3 WHERE id = ?1",
            (id, &handle, w.now),
        )?;
        w.append(
            Some(campaign),
            "submitted",
            &submitted_payload(id, 1, &handle, req.code_sha256.as_deref()),
        )?;
    }
    integrity::seal_exp(w.conn, w.key(), id)?;
    Ok(Ok(get_exp(w.conn, w.key(), id)?.ok_or_else(|| {
        LedgerError::NotFound(format!("experiment {id}"))
    })?))
}

impl Ledger {
    // ---------------------------------------------------------------- campaigns

    /// Starts a new campaign for `project_root` with generation = previous max + 1 and id
    /// `c-<first 8 hex of sha256(project_root)>-<generation>`, tied to no approval. Older
    /// campaigns are left as they are (finishing them is the caller's decision). Front ends
    /// open campaigns with [`Ledger::open_campaign`], which is atomic and needs an approval.
    pub fn create_campaign(
        &mut self,
        project_root: &str,
        program_hash: &str,
    ) -> Result<Campaign, LedgerError> {
        non_empty("project_root", project_root)?;
        self.write(|w| Ok(Ok(insert_campaign(w, project_root, program_hash, None)?)))
    }

    /// The campaign spending for `approval.project_root` goes to, found or opened in ONE
    /// transaction, so concurrent first submits all land in the same campaign:
    /// - the latest campaign, if it is active (and `fresh` is false): [`Opened::Resumed`];
    /// - otherwise, if `approval` was given after the latest campaign last changed status
    ///   (see [`Ledger::approved_after`]), a new campaign tied to `approval` (an active latest
    ///   campaign is first stopped as superseded): [`Opened::Created`]. A unique index allows
    ///   at most one campaign per approval;
    /// - otherwise [`Opened::NeedsApproval`]: an agent never refills a budget.
    pub fn open_campaign(
        &mut self,
        approval: &Approval,
        program_hash: &str,
        fresh: bool,
    ) -> Result<Opened, LedgerError> {
        non_empty("project_root", &approval.project_root)?;
        self.write(|w| Ok(Ok(open_in(w, approval, program_hash, fresh)?)))
    }

    /// The latest-generation campaign of `project_root`, whatever its status.
    pub fn current_campaign(&self, project_root: &str) -> Result<Option<Campaign>, LedgerError> {
        latest_campaign(&self.conn, &self.key, project_root)
    }

    /// Every campaign of `project_root`, oldest generation first (each row's seal checked).
    pub fn campaigns(&self, project_root: &str) -> Result<Vec<Campaign>, LedgerError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM campaigns WHERE project_root = ?1 ORDER BY generation",
        )?;
        let ids = stmt
            .query_map([project_root], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(require_campaign(&self.conn, &self.key, &id)?);
        }
        Ok(out)
    }

    /// One campaign by id.
    pub fn campaign(&self, id: &str) -> Result<Option<Campaign>, LedgerError> {
        get_campaign(&self.conn, &self.key, id)
    }

    /// Asks the campaign to stop: from now on [`Ledger::reserve`] refuses with code
    /// `stop_requested`. Repeating it on an active campaign records another event and updates
    /// the reason. A campaign that has ended keeps the reason it ended with: asking it to stop
    /// is [`LedgerError::InvalidCampaignTransition`] and changes nothing.
    pub fn request_stop(&mut self, campaign: &str, reason: &str) -> Result<(), LedgerError> {
        self.write(|w| {
            let c = write_campaign(w, campaign)?;
            if c.status != "active" {
                return Err(LedgerError::InvalidCampaignTransition {
                    campaign: campaign.to_string(),
                    from: c.status,
                    to: "stop_requested".to_string(),
                });
            }
            w.conn.execute(
                "UPDATE campaigns SET stop_requested = 1, stop_reason = ?2 WHERE id = ?1",
                (campaign, reason),
            )?;
            w.append(
                Some(campaign),
                "stop_requested",
                &json!({"reason": reason, "status": c.status}),
            )?;
            Ok(Ok(()))
        })
    }

    /// Ends an active campaign with status `finished` or `stopped`; `reason` becomes its
    /// `stop_reason`.
    pub fn finish_campaign(
        &mut self,
        campaign: &str,
        status: &str,
        reason: &str,
    ) -> Result<(), LedgerError> {
        one_of("campaign status", status, &["finished", "stopped"])?;
        self.write(|w| {
            end_campaign(w, campaign, status, reason)?;
            Ok(Ok(()))
        })
    }

    // ---------------------------------------------------------------- resets

    /// Records that a human acknowledged that `project_root`'s history was written by another
    /// ledger (`previous_ledger`, whose latest campaign had `previous_generation`), which this
    /// one replaces: the state directory was deleted, moved or replaced.
    pub fn acknowledge_reset(
        &mut self,
        project_root: &str,
        previous_ledger: &str,
        previous_campaign: &str,
        previous_generation: u32,
        approver: &str,
    ) -> Result<(), LedgerError> {
        non_empty("project_root", project_root)?;
        non_empty("previous ledger", previous_ledger)?;
        self.write(|w| {
            w.append(
                None,
                "ledger_reset_acknowledged",
                &json!({
                    "project_root": project_root,
                    "previous_ledger": previous_ledger,
                    "previous_campaign": previous_campaign,
                    "previous_generation": previous_generation,
                    "approver": approver,
                }),
            )?;
            Ok(Ok(()))
        })
    }

    /// Whether a human acknowledged that this ledger replaces `previous_ledger` for
    /// `project_root` (see [`Ledger::acknowledge_reset`]).
    pub fn reset_acknowledged(
        &self,
        project_root: &str,
        previous_ledger: &str,
    ) -> Result<bool, LedgerError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM events WHERE kind = 'ledger_reset_acknowledged'
               AND json_valid(payload) AND json_extract(payload, '$.project_root') = ?1
               AND json_extract(payload, '$.previous_ledger') = ?2",
            (project_root, previous_ledger),
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    // ---------------------------------------------------------------- approvals

    /// Records a human approval of `document` (pinned by `hash`) for `project_root`.
    pub fn record_approval(
        &mut self,
        project_root: &str,
        hash: &str,
        document: &str,
        approver: &str,
    ) -> Result<Approval, LedgerError> {
        self.record_approval_pinned(project_root, hash, document, approver, None)
    }

    /// [`Ledger::record_approval`] that also pins `datasets` (a content manifest) in a
    /// `dataset_manifest` event in the same transaction: an approval never exists without the
    /// manifest it was granted for.
    pub fn record_approval_pinned(
        &mut self,
        project_root: &str,
        hash: &str,
        document: &str,
        approver: &str,
        datasets: Option<&serde_json::Value>,
    ) -> Result<Approval, LedgerError> {
        let pins = ApprovalPins {
            datasets,
            code: None,
            context: None,
        };
        self.record_approval_with(project_root, hash, document, approver, &pins)
    }

    /// [`Ledger::record_approval`] with everything the approval pins besides the document:
    /// the datasets' manifest (`dataset_manifest` event) and the job's code manifest
    /// (`code_manifest` event), all in the approval's transaction.
    pub fn record_approval_with(
        &mut self,
        project_root: &str,
        hash: &str,
        document: &str,
        approver: &str,
        pins: &ApprovalPins<'_>,
    ) -> Result<Approval, LedgerError> {
        let datasets = pins.datasets;
        non_empty("project_root", project_root)?;
        non_empty("approval hash", hash)?;
        self.write(|w| {
            let mac = crypto::mac_hex(
                w.key(),
                TAG_APPROVAL_MAC,
                &approval_mac_input(project_root, hash, document, approver, w.now),
            );
            w.conn.execute(
                "INSERT INTO approvals (project_root, hash, mac, document, approver, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                (project_root, hash, &mac, document, approver, w.now),
            )?;
            let id = w.conn.last_insert_rowid();
            w.append(
                None,
                "approval_recorded",
                &json!({
                    "approval_id": id,
                    "project_root": project_root,
                    "hash": hash,
                    "approver": approver,
                    "document_sha256": crypto::sha256_hex(document.as_bytes()),
                }),
            )?;
            if let Some(m) = datasets {
                w.append(
                    None,
                    "dataset_manifest",
                    &json!({
                        "approval_id": id,
                        "project_root": project_root,
                        "approval_hash": hash,
                        "approval_created_ms": w.now,
                        "manifest": m,
                    }),
                )?;
            }
            if let Some(c) = pins.context {
                let mut c = c.clone();
                if let Some(o) = c.as_object_mut() {
                    o.insert("approval_id".into(), json!(id));
                }
                w.append(None, "approval_context", &c)?;
            }
            if let Some(m) = pins.code {
                w.append(
                    None,
                    "code_manifest",
                    &json!({
                        "approval_id": id,
                        "project_root": project_root,
                        "approval_hash": hash,
                        "approval_created_ms": w.now,
                        "sha256": m["sha256"],
                        "manifest": m,
                    }),
                )?;
            }
            Ok(Ok(Approval {
                id,
                project_root: project_root.to_string(),
                hash: hash.to_string(),
                document: document.to_string(),
                approver: approver.to_string(),
                created_ms: w.now,
            }))
        })
    }

    /// The manifest pinned with `approval` (see [`Ledger::record_approval_pinned`]), if any.
    /// Matched by approval id, so a later approval never inherits an earlier one's pin, and two
    /// approvals recorded in the same millisecond never share one.
    pub fn pinned_datasets(&self, approval: &Approval) -> Result<Option<Value>, LedgerError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT payload FROM events WHERE kind = 'dataset_manifest'
               AND json_valid(payload) AND json_extract(payload, '$.approval_id') = ?1
             ORDER BY seq DESC",
        )?;
        let rows = stmt.query_map([approval.id], |r| r.get::<_, String>(0))?;
        for row in rows {
            let payload: Value = serde_json::from_str(&row?)?;
            if payload["approval_id"] == approval.id
                && payload["project_root"] == approval.project_root.as_str()
            {
                return Ok(Some(payload["manifest"].clone()));
            }
        }
        Ok(None)
    }

    /// The code manifest pinned with `approval` (see [`Ledger::record_approval_with`]), if
    /// any; matched by approval id like [`Ledger::pinned_datasets`].
    pub fn pinned_code(&self, approval: &Approval) -> Result<Option<Value>, LedgerError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT payload FROM events WHERE kind = 'code_manifest'
               AND json_valid(payload) AND json_extract(payload, '$.approval_id') = ?1
             ORDER BY seq DESC",
        )?;
        let rows = stmt.query_map([approval.id], |r| r.get::<_, String>(0))?;
        for row in rows {
            let payload: Value = serde_json::from_str(&row?)?;
            if payload["approval_id"] == approval.id
                && payload["project_root"] == approval.project_root.as_str()
                && payload["approval_hash"] == approval.hash.as_str()
            {
                return Ok(Some(payload["manifest"].clone()));
            }
        }
        Ok(None)
    }

    /// Whether `approval` was given after `campaign` last changed status (its creation while it
    /// is active, its end once it has finished), by their places in the event chain, never by
    /// clock time, which two writes can share. Only such an approval may open the next campaign:
    /// one given while the previous campaign was still running did not see how it ended, so it
    /// cannot refill the budget. An approval or campaign event the chain does not hold is
    /// [`LedgerError::Tampered`].
    pub fn approved_after(
        &self,
        approval: &Approval,
        campaign: &Campaign,
    ) -> Result<bool, LedgerError> {
        approved_after_in(&self.conn, approval, campaign)
    }

    /// The latest approval of `project_root`, after re-verifying its MAC (over project root,
    /// hash, document, approver and time) and that it is the one the latest
    /// `approval_recorded` event names (so deleting the newest approval row to fall back to
    /// an older one is caught too). Any mismatch is [`LedgerError::Tampered`].
    pub fn latest_approval(&self, project_root: &str) -> Result<Option<Approval>, LedgerError> {
        let tx = self.conn.unchecked_transaction()?;
        let row: Option<(i64, String, String, String, String, u64)> = tx
            .query_row(
                "SELECT id, hash, mac, document, approver, created_ms FROM approvals
                 WHERE project_root = ?1 ORDER BY id DESC LIMIT 1",
                [project_root],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .optional()?;
        let event: Option<(Option<i64>, Option<String>)> = tx
            .query_row(
                "SELECT json_extract(payload, '$.approval_id'), json_extract(payload, '$.hash')
                 FROM events
                 WHERE kind = 'approval_recorded'
                   AND json_valid(payload)
                   AND json_extract(payload, '$.project_root') = ?1
                 ORDER BY seq DESC LIMIT 1",
                [project_root],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        tx.finish()?;
        let Some((id, hash, mac, document, approver, created_ms)) = row else {
            return match event {
                None => Ok(None),
                Some(_) => Err(LedgerError::Tampered(format!(
                    "the approval of {project_root} recorded in the event chain is missing"
                ))),
            };
        };
        let input = approval_mac_input(project_root, &hash, &document, &approver, created_ms);
        if !crypto::mac_ok(&self.key, TAG_APPROVAL_MAC, &input, mac.as_bytes()) {
            return Err(LedgerError::Tampered(format!(
                "approval {id} of {project_root} does not match its MAC"
            )));
        }
        if event != Some((Some(id), Some(hash.clone()))) {
            return Err(LedgerError::Tampered(format!(
                "approval {id} of {project_root} is not the latest approval in the event chain"
            )));
        }
        Ok(Some(Approval {
            id,
            project_root: project_root.to_string(),
            hash,
            document,
            approver,
            created_ms,
        }))
    }

    /// The approval a campaign was opened under (the `approval_id` its row holds), after
    /// re-verifying the approval's MAC; `None` for a campaign opened without one (older
    /// ledgers) or an unknown campaign. A row that no longer matches its MAC is
    /// [`LedgerError::Tampered`]. For read-only views (reports, the dashboard).
    pub fn campaign_approval(&self, campaign: &str) -> Result<Option<Approval>, LedgerError> {
        let row: Option<(i64, String, String, String, String, String, u64)> = self
            .conn
            .query_row(
                "SELECT a.id, a.project_root, a.hash, a.mac, a.document, a.approver, a.created_ms
                 FROM campaigns c JOIN approvals a ON a.id = c.approval_id WHERE c.id = ?1",
                [campaign],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )
            .optional()?;
        let Some((id, project_root, hash, mac, document, approver, created_ms)) = row else {
            return Ok(None);
        };
        let input = approval_mac_input(&project_root, &hash, &document, &approver, created_ms);
        if !crypto::mac_ok(&self.key, TAG_APPROVAL_MAC, &input, mac.as_bytes()) {
            return Err(LedgerError::Tampered(format!(
                "approval {id} of {project_root} does not match its MAC"
            )));
        }
        Ok(Some(Approval {
            id,
            project_root,
            hash,
            document,
            approver,
            created_ms,
        }))
    }

    // ---------------------------------------------------------------- experiments

    /// Reserves budget for one experiment in one `BEGIN IMMEDIATE` transaction: computes the
    /// campaign's [`Usage`], calls `check`, and either inserts the experiment (state
    /// `reserved`, attempt 0, next iter) with a `reserved` event, or commits a
    /// `spend_refused` event and returns [`LedgerError::Refused`].
    ///
    /// Before `check`: an unknown campaign is `NotFound`; a proposal index already used in
    /// the campaign is `DuplicateProposal` (nothing recorded); a campaign that is not active
    /// or has a stop request is refused (recorded) with code `campaign_not_active` or
    /// `stop_requested`.
    ///
    /// `check` runs while the database write lock is held: keep it fast and free of I/O.
    /// `req.config` is stored with the caller's key order; the event payload is canonical.
    pub fn reserve<F>(
        &mut self,
        campaign: &str,
        req: &ReserveRequest,
        check: F,
    ) -> Result<Experiment, LedgerError>
    where
        F: FnOnce(&Usage) -> Result<(), (String, String)>,
    {
        self.reserve_inner(campaign, req, check, None::<fn(i64) -> String>)
    }

    /// [`Ledger::reserve`] and [`Ledger::mark_submitted`] (attempt 1, handle `handle_for(id)`)
    /// in ONE transaction: one commit (and its fsyncs) fewer per experiment. A crash after the
    /// commit leaves a submitted experiment whose attempt never started, which a reconciler
    /// voids and relaunches exactly as after a crash between the two calls.
    pub fn reserve_submitted<F, H>(
        &mut self,
        campaign: &str,
        req: &ReserveRequest,
        check: F,
        handle_for: H,
    ) -> Result<Experiment, LedgerError>
    where
        F: FnOnce(&Usage) -> Result<(), (String, String)>,
        H: FnOnce(i64) -> String,
    {
        self.reserve_inner(campaign, req, check, Some(handle_for))
    }

    fn reserve_inner<F, H>(
        &mut self,
        campaign: &str,
        req: &ReserveRequest,
        check: F,
        handle_for: Option<H>,
    ) -> Result<Experiment, LedgerError>
    where
        F: FnOnce(&Usage) -> Result<(), (String, String)>,
        H: FnOnce(i64) -> String,
    {
        let config = validate_reserve(req)?;
        self.write(|w| reserve_in(w, campaign, req, &config, check, handle_for))
    }

    /// The campaign spending goes to, found or opened exactly as by [`Ledger::open_campaign`]
    /// (`fresh` = false), AND the first reservation in it, marked submitted with
    /// `handle_for(campaign, id)`, all in ONE transaction: concurrent first submits cannot
    /// each open a campaign, and a campaign never exists without the check that opened it
    /// having reserved under its budget. [`Opened::NeedsApproval`] reserves nothing and
    /// records nothing; a refused reservation still records the campaign it opened (and the
    /// refusal).
    pub fn open_and_reserve_submitted<F, H>(
        &mut self,
        approval: &Approval,
        program_hash: &str,
        req: &ReserveRequest,
        check: F,
        handle_for: H,
    ) -> Result<(Opened, Result<Experiment, LedgerError>), LedgerError>
    where
        F: FnOnce(&Usage) -> Result<(), (String, String)>,
        H: FnOnce(&str, i64) -> String,
    {
        non_empty("project_root", &approval.project_root)?;
        let config = validate_reserve(req)?;
        self.write(|w| {
            let opened = open_in(w, approval, program_hash, false)?;
            let campaign = match &opened {
                Opened::NeedsApproval(_) => {
                    return Ok(Ok((
                        opened,
                        Err(LedgerError::NotFound(
                            "an active campaign (a human must approve a new one)".into(),
                        )),
                    )));
                }
                Opened::Resumed(c) | Opened::Created { campaign: c, .. } => c.id.clone(),
            };
            let exp = reserve_in(
                w,
                &campaign,
                req,
                &config,
                check,
                Some(|id| handle_for(&campaign, id)),
            )?;
            Ok(Ok((opened, exp)))
        })
    }

    /// `reserved` -> `submitted` with a job `handle`. `attempt` must be greater than the
    /// experiment's current attempt (1 for the first submission; higher after
    /// [`Ledger::void_attempt`]). Repeating the exact same call on a submitted experiment is
    /// a no-op (no event).
    pub fn mark_submitted(
        &mut self,
        exp_id: i64,
        attempt: u32,
        handle: &str,
    ) -> Result<(), LedgerError> {
        self.mark_submitted_code(exp_id, attempt, handle, None)
    }

    /// [`Ledger::mark_submitted`] whose `submitted` event also records the manifest hash of
    /// the code snapshot the attempt runs.
    pub fn mark_submitted_code(
        &mut self,
        exp_id: i64,
        attempt: u32,
        handle: &str,
        code_sha256: Option<&str>,
    ) -> Result<(), LedgerError> {
        non_empty("handle", handle)?;
        self.write(|w| {
            let exp = write_exp(w, exp_id)?;
            match exp.state.as_str() {
                RESERVED => {}
                SUBMITTED if exp.attempt == attempt && exp.handle.as_deref() == Some(handle) => {
                    return Ok(Ok(()));
                }
                _ => return Err(transition(&exp, SUBMITTED)),
            }
            if attempt <= exp.attempt {
                return Err(LedgerError::StaleAttempt {
                    exp_id,
                    current: exp.attempt,
                    given: attempt,
                });
            }
            w.conn.execute(
                "UPDATE experiments SET state = 'submitted', attempt = ?2, handle = ?3,
                        submitted_ms = ?4 WHERE id = ?1",
                (exp_id, attempt, handle, w.now),
            )?;
            w.append(
                Some(&exp.campaign),
                "submitted",
                &submitted_payload(exp_id, attempt, handle, code_sha256),
            )?;
            Ok(Ok(()))
        })
    }

    /// `submitted` -> `reserved`: the current attempt (which must equal `attempt`) never
    /// started; the budget stays reserved and the next submission needs a higher attempt.
    pub fn void_attempt(
        &mut self,
        exp_id: i64,
        attempt: u32,
        reason: &str,
    ) -> Result<(), LedgerError> {
        self.write(|w| {
            let exp = write_exp(w, exp_id)?;
            if exp.state != SUBMITTED {
                return Err(transition(&exp, RESERVED));
            }
            if exp.attempt != attempt {
                return Err(LedgerError::StaleAttempt {
                    exp_id,
                    current: exp.attempt,
                    given: attempt,
                });
            }
            w.conn.execute(
                "UPDATE experiments SET state = 'reserved', handle = NULL, submitted_ms = NULL
                 WHERE id = ?1",
                [exp_id],
            )?;
            w.append(
                Some(&exp.campaign),
                "attempt_voided",
                &json!({"exp_id": exp_id, "attempt": attempt, "handle": exp.handle, "reason": reason}),
            )?;
            Ok(Ok(()))
        })
    }

    /// `reserved` -> `released`: the reservation is returned and no longer counts as usage.
    pub fn release(&mut self, exp_id: i64, reason: &str) -> Result<(), LedgerError> {
        self.write(|w| {
            let exp = write_exp(w, exp_id)?;
            if exp.state != RESERVED {
                return Err(transition(&exp, RELEASED));
            }
            w.conn.execute(
                "UPDATE experiments SET state = 'released' WHERE id = ?1",
                [exp_id],
            )?;
            w.append(
                Some(&exp.campaign),
                "released",
                &json!({"exp_id": exp_id, "reason": reason}),
            )?;
            Ok(Ok(()))
        })
    }

    /// `submitted` -> `finished`, settling walltime as `ceil(duration_ms / 1000)` seconds and
    /// cost as `fin.spent_cost_micro`. Returns `false` (no change, no event) if the experiment
    /// is already finished or evaluated, so concurrent reconcilers can both call it.
    pub fn mark_finished(&mut self, exp_id: i64, fin: &FinishRecord) -> Result<bool, LedgerError> {
        check_finish(fin)?;
        self.write(|w| Ok(Ok(finish_in(w, exp_id, fin)?)))
    }

    /// `finished` -> `evaluated`. Returns `false` (no change, no event) if already evaluated.
    pub fn mark_evaluated(&mut self, exp_id: i64, ev: &EvalRecord) -> Result<bool, LedgerError> {
        one_of("decision", &ev.decision, DECISIONS)?;
        self.write(|w| Ok(Ok(evaluate_in(w, exp_id, ev)?)))
    }

    /// [`Ledger::mark_finished`] then [`Ledger::mark_evaluated`] in ONE transaction (one commit
    /// fewer per experiment). Returns `false` and changes nothing unless the experiment is
    /// submitted (a concurrent reconciler got there first: settle it the usual way).
    pub fn finish_and_evaluate(
        &mut self,
        exp_id: i64,
        fin: &FinishRecord,
        ev: &EvalRecord,
    ) -> Result<bool, LedgerError> {
        check_finish(fin)?;
        one_of("decision", &ev.decision, DECISIONS)?;
        self.write(|w| {
            if !finish_in(w, exp_id, fin)? {
                return Ok(Ok(false));
            }
            Ok(Ok(evaluate_in(w, exp_id, ev)?))
        })
    }

    /// One experiment by id.
    pub fn experiment(&self, exp_id: i64) -> Result<Option<Experiment>, LedgerError> {
        get_exp(&self.conn, &self.key, exp_id)
    }

    /// Experiments matching `filter` (the SQL after `WHERE`), each checked against its seal.
    fn select_exps(
        &self,
        filter: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<Experiment>, LedgerError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {EXP_COLS}, mac FROM experiments WHERE {filter}"
        ))?;
        let key = self.key;
        let rows = stmt.query_map(params, |r| exp_from_row(&key, r))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(finish_exp(row?)?);
        }
        Ok(out)
    }

    /// All experiments of a campaign, ordered by iter (empty for an unknown campaign).
    pub fn experiments(&self, campaign: &str) -> Result<Vec<Experiment>, LedgerError> {
        self.select_exps("campaign = ?1 ORDER BY iter", [campaign])
    }

    /// A campaign's experiments that are not yet over (reserved, submitted or finished but not
    /// evaluated), ordered by iter: what a reconciler has to look at, without reading the
    /// whole campaign.
    pub fn open_experiments(&self, campaign: &str) -> Result<Vec<Experiment>, LedgerError> {
        self.select_exps(
            "campaign = ?1 AND state IN ('reserved', 'submitted', 'finished') ORDER BY iter",
            [campaign],
        )
    }

    /// Experiments whose attempt directories a retention rule may remove, oldest first, at
    /// most `limit`: evaluated and not kept, or released, with id above `after_id`, and older
    /// than the campaign's `keep` most recent such experiments. Kept experiments and anything
    /// still in flight are never candidates.
    pub fn retention_candidates(
        &self,
        campaign: &str,
        after_id: i64,
        keep: usize,
        limit: usize,
    ) -> Result<Vec<Experiment>, LedgerError> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.select_exps(
            "campaign = ?1 AND id > ?2 AND state IN ('evaluated', 'released')
               AND decision IS NOT 'keep'
               AND id < (SELECT COALESCE(MIN(id), 0) FROM (
                   SELECT id FROM experiments
                    WHERE campaign = ?1 AND state IN ('evaluated', 'released')
                    ORDER BY id DESC LIMIT ?3))
             ORDER BY id LIMIT ?4",
            (campaign, after_id, keep, limit),
        )
    }

    /// The smallest id of a campaign's experiments still in flight (reserved, submitted, or
    /// finished but not yet evaluated).
    pub fn oldest_open_experiment(&self, campaign: &str) -> Result<Option<i64>, LedgerError> {
        Ok(self.conn.query_row(
            "SELECT MIN(id) FROM experiments
              WHERE campaign = ?1 AND state IN ('reserved', 'submitted', 'finished')",
            [campaign],
            |r| r.get(0),
        )?)
    }

    /// A campaign's kept experiments (usually few: each one improved on the best), ordered by
    /// iter.
    pub fn kept_experiments(&self, campaign: &str) -> Result<Vec<Experiment>, LedgerError> {
        self.select_exps(
            "campaign = ?1 AND decision = 'keep' ORDER BY iter",
            [campaign],
        )
    }

    /// One page of a campaign's experiments, newest first by iter: at most `limit` with iter
    /// below `before_iter` (all when `None`), returned oldest first; and how many the campaign
    /// holds in all. A bounded view for status screens and agents.
    pub fn experiments_page(
        &self,
        campaign: &str,
        limit: usize,
        before_iter: Option<u32>,
    ) -> Result<(Vec<Experiment>, u64), LedgerError> {
        let before = i64::from(before_iter.unwrap_or(u32::MAX));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut out = self.select_exps(
            "campaign = ?1 AND iter < ?2 ORDER BY iter DESC LIMIT ?3",
            (campaign, before, limit),
        )?;
        out.reverse();
        let total: u64 = self.conn.query_row(
            "SELECT COUNT(*) FROM experiments WHERE campaign = ?1",
            [campaign],
            |r| r.get(0),
        )?;
        Ok((out, total))
    }

    /// The highest proposal index used in a campaign (an index lookup).
    pub fn max_proposal_index(&self, campaign: &str) -> Result<Option<u64>, LedgerError> {
        Ok(self.conn.query_row(
            "SELECT MAX(proposal_index) FROM experiments WHERE campaign = ?1",
            [campaign],
            |r| r.get(0),
        )?)
    }

    /// A campaign's evaluations recorded after chain position `after_seq`, in chain order, as
    /// (seq of the `evaluated` event, the experiment). An index range scan: a caller that
    /// remembers the last seq it saw pays only for what is new.
    pub fn evaluations_after(
        &self,
        campaign: &str,
        after_seq: u64,
    ) -> Result<Vec<(u64, Experiment)>, LedgerError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, json_extract(payload, '$.exp_id') FROM events
             WHERE campaign = ?1 AND seq > ?2 AND kind = 'evaluated' AND json_valid(payload)
             ORDER BY seq",
        )?;
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        let ids: Vec<(u64, Option<i64>)> = stmt
            .query_map((campaign, after), |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for (seq, id) in ids {
            let Some(id) = id else { continue };
            let exp = get_exp(&self.conn, &self.key, id)?.ok_or_else(|| {
                LedgerError::Tampered(format!(
                    "experiment {id} was evaluated in the chain but its row is missing"
                ))
            })?;
            out.push((seq, exp));
        }
        Ok(out)
    }

    /// Ids of a campaign's evaluated experiments in the order they were evaluated (their
    /// `evaluated` events' places in the chain; clock time can tie).
    pub fn evaluation_order(&self, campaign: &str) -> Result<Vec<i64>, LedgerError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT json_extract(payload, '$.exp_id') FROM events
             WHERE campaign = ?1 AND kind = 'evaluated' AND json_valid(payload) ORDER BY seq",
        )?;
        let rows = stmt.query_map([campaign], |r| r.get::<_, Option<i64>>(0))?;
        let mut out = Vec::new();
        for row in rows {
            if let Some(id) = row? {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Current usage of a campaign (see [`Usage`]).
    pub fn usage(&self, campaign: &str) -> Result<Usage, LedgerError> {
        let seal = integrity::checked_campaign_seal(&self.conn, &self.key, campaign, false)?
            .ok_or_else(|| LedgerError::NotFound(format!("campaign {campaign}")))?;
        Ok(seal.tally.usage())
    }
}

/// The payload of a `submitted` event; `code_sha256` only when the job runs a code snapshot.
fn submitted_payload(exp_id: i64, attempt: u32, handle: &str, code_sha256: Option<&str>) -> Value {
    let mut p = json!({"exp_id": exp_id, "attempt": attempt, "handle": handle});
    if let Some(c) = code_sha256 {
        p["code_sha256"] = json!(c);
    }
    p
}
