//! The optional slurmrestd path of the slurm backend: submit, state and cancel through
//! slurmrestd's OpenAPI `v0.0.38` with a JWT (`X-SLURM-USER-NAME` / `X-SLURM-USER-TOKEN`),
//! over plain HTTP on a loopback address only. The job is the same typed job as on the
//! command-line path (script, marker, limits, granted variables). The token is a secret: it is
//! held in a [`SlurmToken`], whose `Debug` hides it, and is never written, logged or put in an
//! error message or a job's environment.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::slurm::{SlurmCredentials, SlurmJobFile, SlurmJobInfo};

/// API version the client speaks.
pub const SLURM_REST_API: &str = "v0.0.38";
/// Longest answer read from slurmrestd.
const MAX_BODY: u64 = 4 << 20;

/// Where slurmrestd answers and as whom mlres calls it (no secret: this goes into
/// `slurmjob.json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SlurmRest {
    /// `http://127.0.0.1:PORT` (loopback only, no path).
    pub url: String,
    /// `X-SLURM-USER-NAME`.
    pub user: String,
}

impl SlurmRest {
    /// Checks a URL: `http://` to a loopback address (`127.0.0.1`, `[::1]`, `localhost`) with
    /// a port and nothing after it. Returns the URL without a trailing `/`.
    pub fn parse_url(url: &str) -> Result<String, String> {
        let u = url.trim().trim_end_matches('/');
        let rest = u
            .strip_prefix("http://")
            .ok_or_else(|| format!("{u:?}: expected http://127.0.0.1:PORT (loopback only)"))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("{u:?}: expected http://127.0.0.1:PORT (a port is needed)"))?;
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return Err(format!(
                "{u:?}: slurmrestd must be on a loopback address (127.0.0.1, [::1] or localhost): \
                 the token is sent in clear"
            ));
        }
        if !port.chars().all(|c| c.is_ascii_digit()) || !port.parse::<u16>().is_ok_and(|p| p > 0) {
            return Err(format!("{u:?}: the port must be a number"));
        }
        Ok(u.to_string())
    }
}

/// A slurmrestd JWT. Its `Debug` and `Display` never show the value.
#[derive(Clone)]
pub struct SlurmToken(String);

impl SlurmToken {
    /// Wraps a token (surrounding white space and a `SLURM_JWT=` prefix, as `scontrol token`
    /// prints it, are removed).
    pub fn new(raw: &str) -> SlurmToken {
        let t = raw.trim();
        SlurmToken(t.strip_prefix("SLURM_JWT=").unwrap_or(t).trim().to_string())
    }

    /// The value (to redact it from logs).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SlurmToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlurmToken(<hidden>)")
    }
}

/// What went wrong talking to slurmrestd. No variant carries the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SlurmRestError {
    /// slurmrestd did not answer.
    #[error("slurmrestd at {url} did not answer: {detail}")]
    Unreachable {
        /// URL.
        url: String,
        /// Transport error.
        detail: String,
    },
    /// 401/403, or a 500 whose errors come from the controller refusing the credential.
    #[error(
        "slurmrestd refused the token (HTTP {status}{detail}); get a new one with `scontrol token` and check MLRES_SLURM_USER"
    )]
    Refused {
        /// HTTP status.
        status: u16,
        /// Slurm's error text, if any (prefixed with `: `).
        detail: String,
    },
    /// 500 with error 2017.
    #[error("Slurm does not know job {0}")]
    UnknownJob(String),
    /// Any other non-2xx answer, or errors in the body.
    #[error("slurmrestd answered HTTP {status}: {detail}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Slurm's errors.
        detail: String,
    },
    /// The body is not what v0.0.38 returns.
    #[error("unexpected answer from slurmrestd: {0}")]
    Malformed(String),
}

/// A slurmrestd client.
#[derive(Clone)]
pub struct SlurmRestClient {
    rest: SlurmRest,
    token: SlurmToken,
    agent: ureq::Agent,
}

impl std::fmt::Debug for SlurmRestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlurmRestClient")
            .field("rest", &self.rest)
            .finish_non_exhaustive()
    }
}

fn errors_of(v: &Value) -> Vec<(i64, String)> {
    v.get("errors")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| {
                    let n = e.get("error_number").and_then(Value::as_i64).unwrap_or(0);
                    let d = e
                        .get("description")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .or_else(|| e.get("error").and_then(Value::as_str))
                        .unwrap_or("")
                        .to_string();
                    (n, d)
                })
                .collect()
        })
        .unwrap_or_default()
}

impl SlurmRestClient {
    /// A client for `rest` with `token`.
    pub fn new(rest: SlurmRest, token: SlurmToken) -> SlurmRestClient {
        let agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        SlurmRestClient { rest, token, agent }
    }

    /// The configuration.
    pub fn rest(&self) -> &SlurmRest {
        &self.rest
    }

    fn url(&self, path: &str) -> String {
        format!("{}/slurm/{SLURM_REST_API}/{path}", self.rest.url)
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), SlurmRestError> {
        let url = self.url(path);
        let unreachable = |e: ureq::Error| SlurmRestError::Unreachable {
            url: self.rest.url.clone(),
            detail: e.to_string().replace(self.token.expose(), "[redacted]"),
        };
        let user = self.rest.user.as_str();
        let tok = self.token.expose();
        let result = match (method, body) {
            ("POST", Some(b)) => self
                .agent
                .post(&url)
                .header("X-SLURM-USER-NAME", user)
                .header("X-SLURM-USER-TOKEN", tok)
                .header("Content-Type", "application/json")
                .send(b.to_string()),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("X-SLURM-USER-NAME", user)
                .header("X-SLURM-USER-TOKEN", tok)
                .call(),
            _ => self
                .agent
                .get(&url)
                .header("X-SLURM-USER-NAME", user)
                .header("X-SLURM-USER-TOKEN", tok)
                .call(),
        };
        let mut resp = result.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(unreachable)?;
        if status == 401 || status == 403 {
            return Err(SlurmRestError::Refused {
                status,
                detail: String::new(),
            });
        }
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok((status, v))
    }

    fn api_error(status: u16, v: &Value) -> SlurmRestError {
        let errs = errors_of(v);
        let detail = if errs.is_empty() {
            "no error text".to_string()
        } else {
            errs.iter()
                .map(|(n, d)| {
                    if *n == 0 {
                        d.clone()
                    } else {
                        format!("{d} (error {n})")
                    }
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        SlurmRestError::Api { status, detail }
    }

    /// `GET /ping`: `Ok` when the controller answers `UP`. A 500 here means the controller
    /// would not take the credential (slurmrestd only forwards it), so it is a refusal.
    pub fn ping(&self) -> Result<(), SlurmRestError> {
        let (status, v) = self.call("GET", "ping", None)?;
        let up = v.get("pings").and_then(Value::as_array).is_some_and(|p| {
            p.iter()
                .any(|x| x.get("ping").and_then(Value::as_str) == Some("UP"))
        });
        if (200..300).contains(&status) && up {
            return Ok(());
        }
        if status == 500 {
            let d: Vec<String> = errors_of(&v).into_iter().map(|(_, d)| d).collect();
            return Err(SlurmRestError::Refused {
                status,
                detail: if d.is_empty() {
                    String::new()
                } else {
                    format!(": {}", d.join("; "))
                },
            });
        }
        Err(Self::api_error(status, &v))
    }

    /// `POST /job/submit` of the typed job; returns the job id.
    pub fn submit(
        &self,
        job: &SlurmJobFile,
        dir: &Path,
        script: &str,
        creds: &SlurmCredentials,
    ) -> Result<String, SlurmRestError> {
        let body = submit_body(job, dir, script, creds);
        let (status, v) = self.call("POST", "job/submit", Some(&body))?;
        if !(200..300).contains(&status) || !errors_of(&v).is_empty() {
            return Err(Self::api_error(status, &v));
        }
        match v.get("job_id").and_then(Value::as_u64) {
            Some(id) => Ok(id.to_string()),
            None => Err(SlurmRestError::Malformed(
                "no job_id in the submit answer".into(),
            )),
        }
    }

    /// `GET /job/{id}`; `Ok(None)` when the controller no longer knows it (error 2017).
    pub fn job(&self, id: &str) -> Result<Option<SlurmJobInfo>, SlurmRestError> {
        let (status, v) = self.call("GET", &format!("job/{id}"), None)?;
        if errors_of(&v).iter().any(|(n, _)| *n == 2017) {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            return Err(Self::api_error(status, &v));
        }
        let j = v.get("jobs").and_then(Value::as_array).and_then(|a| {
            a.iter().find(|j| {
                j.get("job_id")
                    .and_then(Value::as_u64)
                    .map(|n| n.to_string())
                    .as_deref()
                    == Some(id)
            })
        });
        Ok(j.map(job_info))
    }

    /// `DELETE /job/{id}`.
    pub fn cancel(&self, id: &str) -> Result<(), SlurmRestError> {
        let (status, v) = self.call("DELETE", &format!("job/{id}"), None)?;
        if errors_of(&v).iter().any(|(n, _)| *n == 2017) {
            return Err(SlurmRestError::UnknownJob(id.to_string()));
        }
        if !(200..300).contains(&status) {
            return Err(Self::api_error(status, &v));
        }
        Ok(())
    }
}

/// The v0.0.38 submit body: the same script, marker, directories, limits and granted
/// variables (a dict, as v0.0.38 requires) as the `sbatch` path.
pub fn submit_body(
    job: &SlurmJobFile,
    dir: &Path,
    script: &str,
    creds: &SlurmCredentials,
) -> Value {
    let raw = dir.join("slurm");
    let lit = |p: std::path::PathBuf| p.display().to_string().replace('%', "%%");
    let mut env: BTreeMap<String, String> = job.environment.clone();
    for n in &job.secret_names {
        if let Some(v) = creds.values.get(n) {
            env.insert(n.clone(), v.clone());
        }
    }
    let mut j = json!({
        "name": job.marker.job_name(),
        "comment": job.marker.comment(),
        "current_working_directory": dir.join(crate::attempt::WORK).display().to_string(),
        "standard_output": lit(raw.join("out.log")),
        "standard_error": lit(raw.join("err.log")),
        "open_mode": "append",
        "nodes": 1,
        "tasks": 1,
        "cpus_per_task": job.cpus,
        "memory_per_node": job.mem_mib.max(1),
        "time_limit": job.time_limit_mins,
        "requeue": true,
        "environment": env,
    });
    if let Some(p) = &job.partition {
        j["partition"] = json!(p);
    }
    if let Some(a) = &job.account {
        j["account"] = json!(a);
    }
    if let Some(q) = &job.qos {
        j["qos"] = json!(q);
    }
    if job.gpus > 0 {
        j["gres"] = json!(format!("gpu:{}", job.gpus));
    }
    json!({"script": script, "job": j})
}

/// A v0.0.38 job object as [`SlurmJobInfo`]. `exit_code` is a raw wait status.
pub fn job_info(j: &Value) -> SlurmJobInfo {
    let s = |k: &str| j.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let n = |k: &str| j.get(k).and_then(Value::as_u64);
    let raw = j.get("exit_code").and_then(Value::as_i64);
    let (exit_code, signal) = match raw {
        Some(w) if w >= 0 => {
            let sig = (w & 0x7f) as i32;
            (
                (sig == 0).then_some(((w >> 8) & 0xff) as i32),
                (sig != 0).then_some(sig),
            )
        }
        _ => (None, None),
    };
    let running = matches!(
        s("job_state").as_str(),
        "RUNNING" | "SUSPENDED" | "COMPLETING"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // While it runs, `end_time` is the projected end (start + limit), not an end.
    let elapsed = match (n("start_time"), n("end_time")) {
        (Some(a), _) if running && a > 0 => now.saturating_sub(a),
        (Some(a), Some(b)) if b >= a && a > 0 => b - a,
        _ => 0,
    };
    SlurmJobInfo {
        id: n("job_id").map(|x| x.to_string()).unwrap_or_default(),
        state: s("job_state"),
        reason: s("state_reason"),
        exit_code,
        signal,
        elapsed_secs: elapsed,
        time_limit_secs: n("time_limit").map(|m| m * 60),
        restarts: n("restart_cnt").unwrap_or(0) as u32,
        name: s("name"),
        comment: s("comment"),
        partition: s("partition"),
    }
}
