//! The evidence behind keep/discard decisions and the early-stopping record, as events (no
//! schema change): the `evidence` of an `evaluated` event, `rung` events (a running job's
//! metric value when it reached a rung of successive halving) and `pruned` events (a job
//! stopped early, with why).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::{Ledger, LedgerError};

/// A running job's metric when it reached a rung (a `rung` event).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RungValue {
    /// Experiment id.
    pub exp_id: i64,
    /// Attempt number.
    pub attempt: u32,
    /// Rung index.
    pub rung: u32,
    /// The step the job reported.
    pub step: f64,
    /// The metric at that step (NaN when it diverged).
    pub value: f64,
}

fn num(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or_else(|| Value::from(v.to_string()), Value::Number)
}

fn read_num(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse::<f64>().ok()))
}

impl Ledger {
    /// Per experiment, the evidence recorded with its latest evaluation (only experiments
    /// whose evaluation carried evidence).
    pub fn evidence_of(&self, campaign: &str) -> Result<BTreeMap<i64, Value>, LedgerError> {
        self.evidence_from(campaign, i64::MIN)
    }

    /// [`Ledger::evidence_of`] for experiments with id `from_id` or above only (a status page
    /// decodes the evidence it shows, not the whole campaign's).
    pub fn evidence_from(
        &self,
        campaign: &str,
        from_id: i64,
    ) -> Result<BTreeMap<i64, Value>, LedgerError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT json_extract(payload, '$.exp_id') AS id, json_extract(payload, '$.evidence')
             FROM events WHERE campaign = ?1 AND kind = 'evaluated' AND json_valid(payload)
               AND id >= ?2 AND json_extract(payload, '$.evidence') IS NOT NULL
             ORDER BY seq",
        )?;
        let rows = stmt.query_map(rusqlite::params![campaign, from_id], |r| {
            Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<String>>(1)?))
        })?;
        let mut out = BTreeMap::new();
        for row in rows {
            if let (Some(id), Some(ev)) = row? {
                out.insert(id, serde_json::from_str(&ev)?);
            }
        }
        Ok(out)
    }

    /// The evidence recorded with experiment `exp_id`'s evaluation, if any.
    pub fn evidence(&self, exp_id: i64) -> Result<Option<Value>, LedgerError> {
        let Some(e) = self.experiment(exp_id)? else {
            return Ok(None);
        };
        Ok(self.evidence_from(&e.campaign, exp_id)?.remove(&exp_id))
    }

    /// Records that attempt `attempt` of experiment `exp_id` reported `value` at `step`, its
    /// value at rung `rung`. Returns `false` (nothing recorded) when that rung is already
    /// recorded for the attempt.
    pub fn record_rung(
        &mut self,
        exp_id: i64,
        attempt: u32,
        rung: u32,
        step: f64,
        value: f64,
    ) -> Result<bool, LedgerError> {
        let exp = self
            .experiment(exp_id)?
            .ok_or_else(|| LedgerError::NotFound(format!("experiment {exp_id}")))?;
        self.write(|w| {
            crate::domain::write_campaign(w, &exp.campaign)?;
            let seen: i64 = w.conn.query_row(
                "SELECT COUNT(*) FROM events WHERE campaign = ?1 AND kind = 'rung'
                   AND json_extract(payload, '$.exp_id') = ?2
                   AND json_extract(payload, '$.attempt') = ?3
                   AND json_extract(payload, '$.rung') = ?4",
                rusqlite::params![exp.campaign, exp_id, attempt, rung],
                |r| r.get(0),
            )?;
            if seen > 0 {
                return Ok(Ok(false));
            }
            w.append(
                Some(&exp.campaign),
                "rung",
                &json!({"exp_id": exp_id, "attempt": attempt, "rung": rung,
                        "step": num(step), "value": num(value)}),
            )?;
            Ok(Ok(true))
        })
    }

    /// Every rung value recorded in a campaign, in chain order.
    pub fn rung_values(&self, campaign: &str) -> Result<Vec<RungValue>, LedgerError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT payload FROM events WHERE campaign = ?1 AND kind = 'rung' ORDER BY seq",
        )?;
        let rows = stmt.query_map([campaign], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            let p: Value = serde_json::from_str(&row?)?;
            let (Some(exp_id), Some(attempt), Some(rung), Some(step), Some(value)) = (
                p["exp_id"].as_i64(),
                p["attempt"].as_u64(),
                p["rung"].as_u64(),
                read_num(&p["step"]),
                read_num(&p["value"]),
            ) else {
                continue;
            };
            out.push(RungValue {
                exp_id,
                attempt: attempt as u32,
                rung: rung as u32,
                step,
                value,
            });
        }
        Ok(out)
    }

    /// Records that attempt `attempt` of experiment `exp_id` was pruned, `details` (rung,
    /// rank, reason) merged into the `pruned` event. Returns `false` when already recorded.
    pub fn record_pruned(
        &mut self,
        exp_id: i64,
        attempt: u32,
        details: &Value,
    ) -> Result<bool, LedgerError> {
        let exp = self
            .experiment(exp_id)?
            .ok_or_else(|| LedgerError::NotFound(format!("experiment {exp_id}")))?;
        let mut payload = details.as_object().cloned().unwrap_or_default();
        payload.insert("exp_id".into(), exp_id.into());
        payload.insert("attempt".into(), attempt.into());
        self.write(|w| {
            crate::domain::write_campaign(w, &exp.campaign)?;
            let seen: i64 = w.conn.query_row(
                "SELECT COUNT(*) FROM events WHERE campaign = ?1 AND kind = 'pruned'
                   AND json_extract(payload, '$.exp_id') = ?2
                   AND json_extract(payload, '$.attempt') = ?3",
                rusqlite::params![exp.campaign, exp_id, attempt],
                |r| r.get(0),
            )?;
            if seen > 0 {
                return Ok(Ok(false));
            }
            w.append(Some(&exp.campaign), "pruned", &Value::Object(payload))?;
            Ok(Ok(true))
        })
    }

    /// The `pruned` event of attempt `attempt` of experiment `exp_id`, if it was pruned.
    pub fn pruned(&self, exp_id: i64, attempt: u32) -> Result<Option<Value>, LedgerError> {
        let Some(exp) = self.experiment(exp_id)? else {
            return Ok(None);
        };
        let payload: Option<String> = rusqlite::OptionalExtension::optional(self.conn.query_row(
            "SELECT payload FROM events WHERE campaign = ?1 AND kind = 'pruned'
               AND json_extract(payload, '$.exp_id') = ?2
               AND json_extract(payload, '$.attempt') = ?3
             ORDER BY seq DESC LIMIT 1",
            rusqlite::params![exp.campaign, exp_id, attempt],
            |r| r.get(0),
        ))?;
        payload
            .map(|p| serde_json::from_str(&p).map_err(LedgerError::from))
            .transpose()
    }
}
