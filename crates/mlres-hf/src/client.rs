use std::io::{BufRead, BufReader};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::budget::{Priority, RequestBudget};
use crate::hub::{quote, quote_all};
use crate::sse::{SseLine, parse_line};
use crate::{
    CommitInfo, CommitOp, Endpoint, FileContent, Hardware, HfError, JobInfo, JobSpec, JobStage,
    ListFilter, LogLine, RepoId, RepoType, StreamEnd, Token, TreeEntry, WhoAmI,
};

/// Largest body read into memory for JSON answers.
const MAX_JSON_BYTES: u64 = 64 << 20;
/// Most pages followed by one listing.
const MAX_PAGES: usize = 10_000;
/// Most same-host redirects followed.
const MAX_REDIRECTS: usize = 3;

thread_local! {
    /// Set when the next request's token was already taken ([`HfClient::poll_job`]).
    static PREPAID: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Bounded retries with exponential backoff for 429 (any request) and 5xx/transport errors
/// (idempotent requests only).
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff.
    pub base_delay: Duration,
    /// Longest single wait (also caps `Retry-After`).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Method {
    Get,
    Post,
}

pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Resp {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A blocking client for one endpoint and (optionally) one token.
pub struct HfClient {
    endpoint: Endpoint,
    token: Option<Token>,
    agent: ureq::Agent,
    sse_agent: ureq::Agent,
    /// For uploads of file bodies: no overall deadline (a checkpoint takes what it takes),
    /// only per-read and connect timeouts.
    upload_agent: ureq::Agent,
    retry: RetryPolicy,
    sse_reconnects: u32,
    whoami_cache: Mutex<Option<WhoAmI>>,
    /// The shared API request budget (none: only the Hub's own 429s slow us down).
    budget: Option<Arc<RequestBudget>>,
    /// Set once a budget file failed, so the failure is reported once, not per request.
    budget_broken: Mutex<Option<String>>,
}

impl std::fmt::Debug for HfClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfClient")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

fn agent(idle: Duration, global: Option<Duration>) -> ureq::Agent {
    ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_per_read(Some(idle))
        .timeout_global(global)
        .user_agent(concat!("mlres-hf/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

impl HfClient {
    /// A client. Without a token, only anonymous calls (e.g. the hardware catalog) work.
    pub fn new(endpoint: Endpoint, token: Option<Token>) -> HfClient {
        HfClient {
            endpoint,
            token,
            agent: agent(Duration::from_secs(60), Some(Duration::from_secs(300))),
            sse_agent: agent(Duration::from_secs(75), None),
            upload_agent: agent(Duration::from_secs(300), None),
            retry: RetryPolicy::default(),
            sse_reconnects: 20,
            whoami_cache: Mutex::new(None),
            budget: None,
            budget_broken: Mutex::new(None),
        }
    }

    /// Count every API request (each retry, page, redirect hop and log-stream connection)
    /// against `budget`, waiting for a token when it is spent. Uploads to storage hosts are
    /// not API requests and are not counted.
    pub fn with_request_budget(mut self, budget: Arc<RequestBudget>) -> HfClient {
        self.budget = Some(budget);
        self
    }

    /// The request budget, if any.
    pub fn request_budget(&self) -> Option<&RequestBudget> {
        self.budget.as_deref()
    }

    /// Why the budget file could not be used, if it failed (requests then go unbudgeted:
    /// a broken file must not stop cancellations).
    pub fn budget_failure(&self) -> Option<String> {
        self.budget_broken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn spend(&self) {
        if PREPAID.with(|p| p.replace(false)) {
            return;
        }
        if let Some(b) = &self.budget
            && let Err(e) = b.take()
        {
            let mut g = self.budget_broken.lock().unwrap_or_else(|e| e.into_inner());
            g.get_or_insert_with(|| e.to_string());
        }
    }

    /// Replace the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> HfClient {
        self.retry = retry;
        self
    }

    /// Set how long a log stream may be silent (no line, no keep-alive) before it is
    /// treated as dropped, and how many reconnects in a row without a new line are allowed.
    pub fn with_sse(mut self, idle: Duration, max_reconnects: u32) -> HfClient {
        self.sse_agent = agent(idle, None);
        self.sse_reconnects = max_reconnects;
        self
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Whether a token is configured.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    fn scrub(&self, s: &str) -> String {
        match &self.token {
            Some(t) if !t.expose().is_empty() => s.replace(t.expose(), "hf_***"),
            _ => s.to_string(),
        }
    }

    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .retry
            .base_delay
            .saturating_mul(1u32 << attempt.min(16));
        retry_after.unwrap_or(exp).min(self.retry.max_delay)
    }

    /// One request with retries and same-host redirects. `idempotent` allows retrying 5xx
    /// and transport errors.
    pub(crate) fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<(&str, &[u8])>,
        auth: bool,
        idempotent: bool,
    ) -> Result<Resp, HfError> {
        if auth && self.token.is_none() {
            return Err(HfError::NoToken);
        }
        self.retrying(idempotent, || self.send_following(method, url, body, auth))
    }

    /// Runs `once` until it succeeds or may not be retried: 429 always (bounded), 5xx and
    /// transport errors only when `idempotent`, with backoff.
    pub(crate) fn retrying(
        &self,
        idempotent: bool,
        mut once: impl FnMut() -> Result<Resp, HfError>,
    ) -> Result<Resp, HfError> {
        let mut attempt = 0u32;
        loop {
            let r = once();
            let retry_after = match &r {
                Ok(resp) if resp.status == 429 => Some(parse_retry_after(resp)),
                Ok(resp) if resp.status >= 500 && idempotent => Some(None),
                Err(HfError::Transport(_)) if idempotent => Some(None),
                _ => None,
            };
            match retry_after {
                Some(after) if attempt < self.retry.max_retries => {
                    std::thread::sleep(self.backoff(attempt, after));
                    attempt += 1;
                }
                _ => return r,
            }
        }
    }

    /// One request without redirects: `method` with `headers`, the token only when `auth`,
    /// and `body` (sent with its length).
    pub(crate) fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        auth: bool,
        body: Option<&[u8]>,
    ) -> Result<Resp, HfError> {
        let mut reader: &[u8] = body.unwrap_or_default();
        let len = reader.len() as u64;
        self.request_on(&self.agent, method, url, headers, auth, &mut reader, len)
    }

    /// Like [`HfClient::request`] with `len` bytes from a reader (streamed; never retried
    /// here: the caller reopens its source for another attempt). Never carries the token.
    pub(crate) fn request_reader(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &mut dyn std::io::Read,
        len: u64,
    ) -> Result<Resp, HfError> {
        self.request_on(&self.upload_agent, method, url, headers, false, body, len)
    }

    #[allow(clippy::too_many_arguments)]
    fn request_on(
        &self,
        agent: &ureq::Agent,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        auth: bool,
        body: &mut dyn std::io::Read,
        len: u64,
    ) -> Result<Resp, HfError> {
        let token = if auth {
            Some(self.token.as_ref().ok_or(HfError::NoToken)?)
        } else {
            None
        };
        let mut rb = match method {
            "PUT" => agent.put(url),
            "POST" => agent.post(url),
            other => {
                return Err(HfError::Transport(format!(
                    "unsupported method {other} with a body"
                )));
            }
        };
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(t) = token {
            rb = rb.header("authorization", &format!("Bearer {}", t.expose()));
        }
        let result = rb
            .header("content-length", &len.to_string())
            .send(ureq::SendBody::from_reader(body));
        self.read_response(result)
    }

    fn send_following(
        &self,
        method: Method,
        url: &str,
        body: Option<(&str, &[u8])>,
        auth: bool,
    ) -> Result<Resp, HfError> {
        let mut resp = self.send_once(
            method,
            url,
            body,
            auth.then_some(()).and(self.token.as_ref()),
            0,
        )?;
        let mut hops = 0;
        let mut current = url.to_string();
        while (300..400).contains(&resp.status) && resp.status != 304 {
            let Some(loc) = resp.header("location").map(str::to_string) else {
                break;
            };
            let next = if loc.starts_with('/') {
                self.endpoint.origin() + &loc
            } else {
                loc.clone()
            };
            let shown = next.split('?').next().unwrap_or("").to_string();
            if !self.endpoint.same_origin(&next) {
                return Err(HfError::Redirect {
                    location: shown,
                    reason: "it leaves the Hub endpoint's host (the token is never sent elsewhere and mlres does not follow cross-host redirects; LFS/CDN files are not supported)".into(),
                });
            }
            if method != Method::Get || hops >= MAX_REDIRECTS || next == current {
                return Err(HfError::Redirect {
                    location: shown,
                    reason: "too many redirects, or a redirect of a non-GET request".into(),
                });
            }
            hops += 1;
            current = next;
            // Same host: followed, but without the token.
            resp = self.send_once(Method::Get, &current, None, None, 0)?;
        }
        Ok(resp)
    }

    fn send_once(
        &self,
        method: Method,
        url: &str,
        body: Option<(&str, &[u8])>,
        token: Option<&Token>,
        _depth: u8,
    ) -> Result<Resp, HfError> {
        self.spend();
        let auth = token.map(|t| format!("Bearer {}", t.expose()));
        let result = match method {
            Method::Get => {
                let mut rb = self.agent.get(url);
                if let Some(a) = &auth {
                    rb = rb.header("authorization", a);
                }
                rb.call()
            }
            Method::Post => {
                let mut rb = self.agent.post(url);
                if let Some(a) = &auth {
                    rb = rb.header("authorization", a);
                }
                match body {
                    Some((ct, bytes)) => rb.header("content-type", ct).send(bytes),
                    None => rb.send_empty(),
                }
            }
        };
        self.read_response(result)
    }

    fn read_response(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Resp, HfError> {
        let mut resp = result.map_err(|e| HfError::Transport(self.scrub(&e.to_string())))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_JSON_BYTES)
            .read_to_vec()
            .map_err(|e| HfError::Transport(self.scrub(&e.to_string())))?;
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    pub(crate) fn error_message(&self, resp: &Resp) -> String {
        let from_body = || -> Option<String> {
            let v: serde_json::Value = serde_json::from_slice(&resp.body).ok()?;
            match v.get("error") {
                Some(serde_json::Value::String(s)) => {
                    let desc = v.get("error_description").and_then(|d| d.as_str());
                    Some(match desc {
                        Some(d) => format!("{s}: {d}"),
                        None => s.clone(),
                    })
                }
                Some(serde_json::Value::Array(a)) => Some(
                    a.iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                _ => v.get("errors").and_then(|e| e.as_array()).map(|a| {
                    a.iter()
                        .filter_map(|x| x.get("message").and_then(|m| m.as_str()))
                        .collect::<Vec<_>>()
                        .join("; ")
                }),
            }
        };
        let msg = resp
            .header("x-error-message")
            .map(str::to_string)
            .or_else(from_body)
            .unwrap_or_else(|| {
                let t = String::from_utf8_lossy(&resp.body);
                if t.trim_start().starts_with('<') {
                    // Storage (S3) errors are XML: keep their <Message>; HTML pages say nothing.
                    t.split_once("<Message>")
                        .and_then(|(_, m)| m.split_once("</Message>"))
                        .map(|(m, _)| m.chars().take(300).collect())
                        .unwrap_or_default()
                } else {
                    t.chars().take(300).collect()
                }
            });
        self.scrub(msg.trim())
    }

    pub(crate) fn check(&self, resp: Resp) -> Result<Resp, HfError> {
        if (200..300).contains(&resp.status) {
            return Ok(resp);
        }
        let message = self.error_message(&resp);
        Err(match resp.status {
            401 => HfError::Unauthorized { message },
            402 => HfError::PaymentRequired {
                message,
                billing_url: self.endpoint.url("/settings/billing"),
            },
            403 => HfError::Forbidden { message },
            404 => HfError::NotFound {
                code: resp.header("x-error-code").map(str::to_string),
                message,
            },
            409 => HfError::Conflict { message },
            429 => HfError::RateLimited {
                retry_after: parse_retry_after(&resp),
                message,
            },
            s if s >= 500 => HfError::Server { status: s, message },
            s => HfError::BadRequest { status: s, message },
        })
    }

    fn get_json(
        &self,
        url: &str,
        auth: bool,
        what: &str,
    ) -> Result<(serde_json::Value, Resp), HfError> {
        let resp = self.check(self.send(Method::Get, url, None, auth, true)?)?;
        let v = serde_json::from_slice(&resp.body).map_err(|e| decode(what, e))?;
        Ok((v, resp))
    }

    /// GET a JSON array, following `Link: <..>; rel="next"` on the same host.
    fn get_paginated(&self, first: String, what: &str) -> Result<Vec<serde_json::Value>, HfError> {
        self.get_pages(first, what).map(|(items, _)| items)
    }

    /// Every page's items and the number of pages.
    fn get_pages(
        &self,
        first: String,
        what: &str,
    ) -> Result<(Vec<serde_json::Value>, u32), HfError> {
        let mut out = Vec::new();
        let mut url = first;
        for page in 1..=MAX_PAGES {
            let (v, resp) = self.get_json(&url, true, what)?;
            match v {
                serde_json::Value::Array(items) => out.extend(items),
                _ => {
                    return Err(HfError::Decode {
                        what: what.into(),
                        detail: "expected a JSON array".into(),
                    });
                }
            }
            match resp.header("link").and_then(next_link) {
                Some(next) => {
                    let next = if next.starts_with('/') {
                        self.endpoint.origin() + &next
                    } else {
                        next
                    };
                    if !self.endpoint.same_origin(&next) {
                        return Err(HfError::Redirect {
                            location: next.split('?').next().unwrap_or("").into(),
                            reason: "pagination link leaves the Hub endpoint's host".into(),
                        });
                    }
                    url = next;
                }
                None => return Ok((out, u32::try_from(page).unwrap_or(u32::MAX))),
            }
        }
        Err(HfError::Decode {
            what: what.into(),
            detail: format!("more than {MAX_PAGES} pages"),
        })
    }

    // ---------------------------------------------------------------- whoami

    /// `GET /api/whoami-v2`, cached for the life of the client (the endpoint is tightly
    /// rate-limited).
    pub fn whoami(&self) -> Result<WhoAmI, HfError> {
        if let Some(w) = self.whoami_cache.lock().map_err(|_| poisoned())?.as_ref() {
            return Ok(w.clone());
        }
        let (v, _) = self.get_json(&self.endpoint.url("/api/whoami-v2"), true, "whoami-v2")?;
        let w: WhoAmI = serde_json::from_value(v).map_err(|e| decode("whoami-v2", e))?;
        *self.whoami_cache.lock().map_err(|_| poisoned())? = Some(w.clone());
        Ok(w)
    }

    // ---------------------------------------------------------------- jobs

    /// `GET /api/jobs/hardware` (sent with the token when there is one).
    pub fn hardware(&self) -> Result<Vec<Hardware>, HfError> {
        let url = self.endpoint.url("/api/jobs/hardware");
        let (v, _) = self.get_json(&url, self.token.is_some(), "hardware")?;
        serde_json::from_value(v).map_err(|e| decode("hardware", e))
    }

    /// `POST /api/jobs/{namespace}`. Never retried on 5xx or transport errors (a retry could
    /// start a second job); 429 is retried because the server did not accept the request.
    /// A label outside the documented charset is refused here, before any request.
    pub fn create_job(&self, namespace: &str, spec: &JobSpec) -> Result<JobInfo, HfError> {
        if let Some(l) = spec.invalid_label() {
            return Err(HfError::BadRequest {
                status: 422,
                message: format!(
                    "label {l:?} is invalid: keys and values are at most 100 characters of \
                     [A-Za-z0-9_-] (not sent)"
                ),
            });
        }
        let url = self.endpoint.url(&format!("/api/jobs/{}", seg(namespace)?));
        let body = serde_json::to_vec(&spec.to_wire()).map_err(|e| decode("job spec", e))?;
        let resp = self.check(self.send(
            Method::Post,
            &url,
            Some(("application/json", &body)),
            true,
            false,
        )?)?;
        JobInfo::from_json(&String::from_utf8_lossy(&resp.body))
    }

    /// `GET /api/jobs/{namespace}/{id}`.
    pub fn get_job(&self, namespace: &str, id: &str) -> Result<JobInfo, HfError> {
        let url = self
            .endpoint
            .url(&format!("/api/jobs/{}/{}", seg(namespace)?, seg(id)?));
        let (v, _) = self.get_json(&url, true, "job")?;
        JobInfo::from_value(v)
    }

    /// [`HfClient::get_job`] as a background request: `Ok(None)` without a request when the
    /// request budget is down to its last quarter (the caller polls again later), so status
    /// polls never hold back cancellations and sweeps. Without a budget, always a request.
    pub fn poll_job(&self, namespace: &str, id: &str) -> Result<Option<JobInfo>, HfError> {
        if let Some(b) = &self.budget {
            match b.try_take(Priority::Background) {
                Ok(Err(_wait)) => return Ok(None),
                // The token is taken; give it back by not spending another in send_once.
                Ok(Ok(())) => return self.get_job_prepaid(namespace, id).map(Some),
                Err(e) => {
                    let mut g = self.budget_broken.lock().unwrap_or_else(|e| e.into_inner());
                    g.get_or_insert_with(|| e.to_string());
                }
            }
        }
        self.get_job(namespace, id).map(Some)
    }

    fn get_job_prepaid(&self, namespace: &str, id: &str) -> Result<JobInfo, HfError> {
        PREPAID.with(|p| p.set(true));
        let r = self.get_job(namespace, id);
        PREPAID.with(|p| p.set(false));
        r
    }

    /// `GET /api/jobs/{namespace}` with `stage=`/`label=k=v` filters, following `Link`
    /// pagination (an unpaginated list is one page).
    pub fn list_jobs(&self, namespace: &str, filter: &ListFilter) -> Result<Vec<JobInfo>, HfError> {
        self.list_jobs_paged(namespace, filter)
            .map(|(jobs, _)| jobs)
    }

    /// [`HfClient::list_jobs`] and the number of pages (requests) the listing took.
    pub fn list_jobs_paged(
        &self,
        namespace: &str,
        filter: &ListFilter,
    ) -> Result<(Vec<JobInfo>, u32), HfError> {
        let mut q = Vec::new();
        for s in &filter.stages {
            q.push(format!("stage={}", quote_all(s.as_str())));
        }
        for (k, v) in &filter.labels {
            q.push(format!("label={}", quote_all(&format!("{k}={v}"))));
        }
        let mut url = self.endpoint.url(&format!("/api/jobs/{}", seg(namespace)?));
        if !q.is_empty() {
            url.push('?');
            url.push_str(&q.join("&"));
        }
        let (items, pages) = self.get_pages(url, "job list")?;
        let jobs = items
            .into_iter()
            .map(JobInfo::from_value)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((jobs, pages))
    }

    /// `POST /api/jobs/{namespace}/{id}/cancel`.
    pub fn cancel_job(&self, namespace: &str, id: &str) -> Result<(), HfError> {
        let url = self.endpoint.url(&format!(
            "/api/jobs/{}/{}/cancel",
            seg(namespace)?,
            seg(id)?
        ));
        // Cancelling twice is harmless, so server errors are retried.
        self.check(self.send(Method::Post, &url, None, true, true)?)?;
        Ok(())
    }

    /// Stream a job's logs until it ends, calling `on_line` once per line in order.
    ///
    /// `skip_lines` lines (counted from the start of the log, banner excluded) are skipped;
    /// pass a previous [`StreamEnd::lines_seen`] to resume. When the connection drops or
    /// goes silent, the job is fetched: a job that is still going is reconnected; a terminal
    /// job (including `DELETED`) gets one last replay so no line is lost. Lines are skipped
    /// by index on every reconnect, so none is delivered twice.
    pub fn stream_logs(
        &self,
        namespace: &str,
        id: &str,
        skip_lines: usize,
        on_line: &mut dyn FnMut(LogLine) -> ControlFlow<()>,
    ) -> Result<StreamEnd, HfError> {
        let url = self
            .endpoint
            .url(&format!("/api/jobs/{}/{}/logs", seg(namespace)?, seg(id)?));
        let mut delivered = skip_lines;
        let mut reconnects = 0u32;
        let mut idle_rounds = 0u32;
        let mut failures = 0u32;
        let mut terminal: Option<JobStage> = None;
        loop {
            let before = delivered;
            let outcome = self.stream_once(&url, &mut delivered, on_line);
            let clean = match outcome {
                Ok(StreamOutcome::Stopped) => {
                    return Ok(StreamEnd {
                        stage: None,
                        lines_seen: delivered,
                        reconnects,
                    });
                }
                Ok(StreamOutcome::Eof) => true,
                Ok(StreamOutcome::Dropped) => false,
                Err(
                    e @ (HfError::Unauthorized { .. }
                    | HfError::Forbidden { .. }
                    | HfError::NotFound { .. }
                    | HfError::NoToken),
                ) => {
                    // A job deleted while we watch can 404 its logs: report its stage.
                    if terminal.is_some() {
                        break;
                    }
                    return Err(e);
                }
                Err(_) => false,
            };
            if let Some(stage) = &terminal
                && clean
            {
                return Ok(StreamEnd {
                    stage: Some(stage.clone()),
                    lines_seen: delivered,
                    reconnects,
                });
            }
            // Failures without progress are bounded; a live job whose stream closes cleanly
            // (e.g. while it is still scheduling) is polled with backoff for as long as it lives.
            if delivered > before {
                idle_rounds = 0;
                failures = 0;
            } else {
                idle_rounds += 1;
                if !clean {
                    failures += 1;
                }
            }
            if failures > self.sse_reconnects {
                return Err(HfError::Transport(format!(
                    "log stream of job {id} kept failing ({reconnects} reconnects without a new line)"
                )));
            }
            let job = self.get_job(namespace, id)?;
            if job.is_terminal() {
                if job.stage == JobStage::Deleted && terminal.is_some() {
                    break;
                }
                terminal = Some(job.stage);
            } else if idle_rounds > 0 {
                std::thread::sleep(self.backoff(idle_rounds.min(5) - 1, None));
            }
            reconnects += 1;
        }
        Ok(StreamEnd {
            stage: terminal,
            lines_seen: delivered,
            reconnects,
        })
    }

    fn stream_once(
        &self,
        url: &str,
        delivered: &mut usize,
        on_line: &mut dyn FnMut(LogLine) -> ControlFlow<()>,
    ) -> Result<StreamOutcome, HfError> {
        let token = self.token.as_ref().ok_or(HfError::NoToken)?;
        self.spend();
        let resp = self
            .sse_agent
            .get(url)
            .header("authorization", format!("Bearer {}", token.expose()))
            .header("accept", "text/event-stream")
            .call()
            .map_err(|e| HfError::Transport(self.scrub(&e.to_string())))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let headers = resp
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect();
            let mut resp = resp;
            let body = resp
                .body_mut()
                .with_config()
                .limit(1 << 20)
                .read_to_vec()
                .unwrap_or_default();
            return Err(self
                .check(Resp {
                    status,
                    headers,
                    body,
                })
                .err()
                .unwrap_or(HfError::Transport("unexpected status".into())));
        }
        let mut reader = BufReader::new(resp.into_body().into_reader());
        let mut index = 0usize;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => return Ok(StreamOutcome::Eof),
                Ok(_) => {}
                Err(_) => return Ok(StreamOutcome::Dropped),
            }
            if buf.last() != Some(&b'\n') {
                // A partial line at a close is a drop, not a line.
                return Ok(StreamOutcome::Dropped);
            }
            buf.pop();
            let line = String::from_utf8_lossy(&buf);
            if let SseLine::Log { text, timestamp } = parse_line(&line) {
                if index >= *delivered {
                    *delivered = index + 1;
                    if on_line(LogLine {
                        index,
                        text,
                        timestamp,
                    })
                    .is_break()
                    {
                        return Ok(StreamOutcome::Stopped);
                    }
                }
                index += 1;
            }
        }
    }

    // ---------------------------------------------------------------- hub

    /// List a folder (`path` empty = root) of a repo at `revision`; `recursive` lists
    /// everything below. Follows cursor pagination.
    pub fn list_tree(
        &self,
        repo: &RepoId,
        revision: &str,
        path: &str,
        recursive: bool,
    ) -> Result<Vec<TreeEntry>, HfError> {
        let mut url = self.endpoint.url(&format!(
            "/api/{}/{}/{}/tree/{}",
            repo.kind.plural(),
            seg(&repo.namespace)?,
            seg(&repo.name)?,
            quote_all(revision)
        ));
        let path = path.trim_matches('/');
        if !path.is_empty() {
            url.push('/');
            url.push_str(&quote_all(path));
        }
        url.push_str(if recursive {
            "?recursive=true"
        } else {
            "?recursive=false"
        });
        self.get_paginated(url, "repo tree")?
            .into_iter()
            .map(|v| serde_json::from_value(v).map_err(|e| decode("repo tree", e)))
            .collect()
    }

    /// The entry for one file, or `None` if the repo has no such file.
    pub fn file_entry(
        &self,
        repo: &RepoId,
        revision: &str,
        path: &str,
    ) -> Result<Option<TreeEntry>, HfError> {
        let path = path.trim_matches('/');
        let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
        match self.list_tree(repo, revision, parent, false) {
            Ok(entries) => Ok(entries.into_iter().find(|e| e.path == path)),
            Err(HfError::NotFound { code, .. }) if code.as_deref() == Some("EntryNotFound") => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Download one file (`resolve`), refusing anything above `max_bytes`.
    pub fn read_file(
        &self,
        repo: &RepoId,
        revision: &str,
        path: &str,
        max_bytes: u64,
    ) -> Result<FileContent, HfError> {
        let prefix = match repo.kind {
            RepoType::Model => "",
            RepoType::Dataset => "datasets/",
            RepoType::Space => "spaces/",
        };
        let url = self.endpoint.url(&format!(
            "/{prefix}{}/{}/resolve/{}/{}",
            seg(&repo.namespace)?,
            seg(&repo.name)?,
            quote_all(revision),
            quote(path.trim_start_matches('/'), "/")
        ));
        let resp = self.check(self.send(Method::Get, &url, None, true, true)?)?;
        if resp.body.len() as u64 > max_bytes {
            return Err(HfError::TooLarge {
                path: path.into(),
                reason: format!(
                    "{} bytes is more than the {max_bytes}-byte limit for reads",
                    resp.body.len()
                ),
            });
        }
        let etag = resp
            .header("x-linked-etag")
            .or(resp.header("etag"))
            .map(|e| e.trim_start_matches("W/").trim_matches('"').to_string());
        Ok(FileContent {
            etag,
            commit: resp.header("x-repo-commit").map(str::to_string),
            bytes: resp.body,
        })
    }

    /// `POST /api/repos/create`. 409 becomes [`HfError::AlreadyExists`].
    pub fn create_repo(&self, repo: &RepoId, private: bool) -> Result<String, HfError> {
        // The body `huggingface_hub`'s `HfApi.create_repo(repo_id, repo_type=..., private=...)`
        // sends: `organization` is the namespace of the repo id, whoever it belongs to;
        // `visibility` stands for `private`; `type` only when a repo type is given, which
        // mlres does for datasets and spaces, not for models (the default).
        let mut body = serde_json::json!({
            "name": repo.name,
            "organization": repo.namespace,
            "visibility": if private { "private" } else { "public" },
        });
        if repo.kind != RepoType::Model {
            body["type"] = repo.kind.singular().into();
        }
        let body = serde_json::to_vec(&body).map_err(|e| decode("create body", e))?;
        let url = self.endpoint.url("/api/repos/create");
        let resp = self.send(
            Method::Post,
            &url,
            Some(("application/json", &body)),
            true,
            false,
        )?;
        if resp.status == 409 {
            return Err(HfError::AlreadyExists(repo.to_string()));
        }
        let resp = self.check(resp)?;
        let v: serde_json::Value =
            serde_json::from_slice(&resp.body).map_err(|e| decode("create repo", e))?;
        Ok(v.get("url")
            .and_then(|u| u.as_str())
            .unwrap_or_default()
            .to_string())
    }

    /// One NDJSON commit of `ops` on `revision` with an empty description; large and binary
    /// files go through LFS (see [`HfClient::commit_described`]).
    pub fn commit(
        &self,
        repo: &RepoId,
        revision: &str,
        summary: &str,
        ops: &[CommitOp],
    ) -> Result<CommitInfo, HfError> {
        self.commit_described(repo, revision, summary, "", ops)
    }
}

enum StreamOutcome {
    Eof,
    Dropped,
    Stopped,
}

fn poisoned() -> HfError {
    HfError::Transport("whoami cache lock poisoned".into())
}

pub(crate) fn decode(what: &str, e: serde_json::Error) -> HfError {
    HfError::Decode {
        what: what.into(),
        detail: e.to_string(),
    }
}

/// One path segment (namespace, name, job id): must be non-empty and URL-safe as is.
pub(crate) fn seg(s: &str) -> Result<&str, HfError> {
    if !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        Ok(s)
    } else {
        Err(HfError::BadRequest {
            status: 0,
            message: format!("invalid name {s:?} (allowed: letters, digits, . _ -)"),
        })
    }
}

fn parse_retry_after(resp: &Resp) -> Option<Duration> {
    if let Some(s) = resp
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(Duration::from_secs(s));
    }
    // RateLimit: "api";r=0;t=55
    let rl = resp.header("ratelimit")?;
    rl.split(';')
        .find_map(|p| p.trim().strip_prefix("t="))
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// The `rel="next"` URL of a `Link` header.
pub(crate) fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| url.to_string())
    })
}
