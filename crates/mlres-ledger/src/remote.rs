//! Remote jobs (hf-jobs): which backend job ids belong to which experiment attempt. Recorded
//! as `remote_job` events (no schema change), at most once per job id and campaign. And Hub
//! pushes: which experiment's outputs went to which repo (`hub_push` events).

use serde::Serialize;
use serde_json::json;

use crate::domain::require_campaign;
use crate::{Ledger, LedgerError};

/// One remote job mlres created for an experiment attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteJob {
    /// Campaign.
    pub campaign: String,
    /// Experiment id.
    pub exp_id: i64,
    /// Attempt number.
    pub attempt: u32,
    /// Namespace the job runs in.
    pub namespace: String,
    /// Backend job id.
    pub job_id: String,
}

/// An experiment's outputs pushed to a Hub repo (a `hub_push` event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HubPush {
    /// Experiment id.
    pub exp_id: i64,
    /// Repo as written (`ns/name`, `datasets/ns/name`).
    pub repo: String,
    /// The repo's web URL.
    pub url: String,
    /// The commit made.
    pub commit: String,
}

impl Ledger {
    /// Records that experiment `exp_id`'s outputs were pushed to `repo` (web `url`) in
    /// `commit`, with `details` (files, sizes, hashes) merged into the `hub_push` event, in the
    /// experiment's campaign. Returns the event's seq.
    pub fn record_hub_push(
        &mut self,
        exp_id: i64,
        repo: &str,
        url: &str,
        commit: &str,
        details: &serde_json::Value,
    ) -> Result<u64, LedgerError> {
        if repo.is_empty() || commit.is_empty() {
            return Err(LedgerError::Invalid(
                "a Hub push needs a repo and a commit".into(),
            ));
        }
        let mut payload = match details {
            serde_json::Value::Object(m) => m.clone(),
            serde_json::Value::Null => serde_json::Map::new(),
            _ => {
                return Err(LedgerError::Invalid(
                    "Hub push details must be an object".into(),
                ));
            }
        };
        payload.insert("exp_id".into(), exp_id.into());
        payload.insert("repo".into(), repo.into());
        payload.insert("url".into(), url.into());
        payload.insert("commit".into(), commit.into());
        let payload = serde_json::Value::Object(payload);
        self.write(|w| {
            let campaign: Option<String> =
                rusqlite::OptionalExtension::optional(w.conn.query_row(
                    "SELECT campaign FROM experiments WHERE id = ?1",
                    [exp_id],
                    |r| r.get(0),
                ))?;
            let Some(campaign) = campaign else {
                return Err(LedgerError::NotFound(format!("experiment {exp_id}")));
            };
            crate::domain::write_campaign(w, &campaign)?;
            Ok(Ok(w.append(Some(&campaign), "hub_push", &payload)?))
        })
    }

    /// The Hub pushes recorded for a campaign, oldest first.
    pub fn hub_pushes(&self, campaign: &str) -> Result<Vec<HubPush>, LedgerError> {
        require_campaign(&self.conn, &self.key, campaign)?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT json_extract(payload, '$.exp_id'), json_extract(payload, '$.repo'),
                    json_extract(payload, '$.url'), json_extract(payload, '$.commit')
             FROM events WHERE kind = 'hub_push' AND campaign = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([campaign], |r| {
            Ok(HubPush {
                exp_id: r.get(0)?,
                repo: r.get(1)?,
                url: r.get(2)?,
                commit: r.get(3)?,
            })
        })?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }

    /// Records that experiment `exp_id`'s attempt `attempt` is the remote job `job_id`.
    /// Returns `false` (nothing recorded) when this job id is already recorded for the
    /// experiment's campaign; errors if the experiment is unknown.
    pub fn record_remote_job(
        &mut self,
        exp_id: i64,
        attempt: u32,
        namespace: &str,
        job_id: &str,
    ) -> Result<bool, LedgerError> {
        if job_id.is_empty() || namespace.is_empty() {
            return Err(LedgerError::Invalid(
                "remote job id and namespace must not be empty".into(),
            ));
        }
        self.write(|w| {
            let campaign: Option<String> = rusqlite::OptionalExtension::optional(
                w.conn.query_row(
                    "SELECT campaign FROM experiments WHERE id = ?1",
                    [exp_id],
                    |r| r.get(0),
                ),
            )?;
            let Some(campaign) = campaign else {
                return Err(LedgerError::NotFound(format!("experiment {exp_id}")));
            };
            let seen: i64 = w.conn.query_row(
                "SELECT COUNT(*) FROM events WHERE kind = 'remote_job' AND campaign = ?1
                   AND json_extract(payload, '$.job_id') = ?2",
                (&campaign, job_id),
                |r| r.get(0),
            )?;
            if seen > 0 {
                return Ok(Ok(false));
            }
            w.append(
                Some(&campaign),
                "remote_job",
                &json!({"exp_id": exp_id, "attempt": attempt, "namespace": namespace, "job_id": job_id}),
            )?;
            Ok(Ok(true))
        })
    }

    /// The remote jobs recorded for a campaign, oldest first.
    pub fn remote_jobs(&self, campaign: &str) -> Result<Vec<RemoteJob>, LedgerError> {
        require_campaign(&self.conn, &self.key, campaign)?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT json_extract(payload, '$.exp_id'), json_extract(payload, '$.attempt'),
                    json_extract(payload, '$.namespace'), json_extract(payload, '$.job_id')
             FROM events WHERE kind = 'remote_job' AND campaign = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([campaign], |r| {
            Ok(RemoteJob {
                campaign: campaign.to_string(),
                exp_id: r.get(0)?,
                attempt: r.get(1)?,
                namespace: r.get(2)?,
                job_id: r.get(3)?,
            })
        })?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }

    /// Which recorded remote job `job_id` is, in any campaign of this ledger.
    pub fn find_remote_job(&self, job_id: &str) -> Result<Option<RemoteJob>, LedgerError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT campaign, json_extract(payload, '$.exp_id'), json_extract(payload, '$.attempt'),
                    json_extract(payload, '$.namespace')
             FROM events WHERE kind = 'remote_job' AND json_extract(payload, '$.job_id') = ?1
             ORDER BY seq LIMIT 1",
        )?;
        let mut rows = stmt.query_map([job_id], |r| {
            Ok(RemoteJob {
                campaign: r.get(0)?,
                exp_id: r.get(1)?,
                attempt: r.get(2)?,
                namespace: r.get(3)?,
                job_id: job_id.to_string(),
            })
        })?;
        Ok(rows.next().transpose()?)
    }
}
