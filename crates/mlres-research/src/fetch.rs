//! One way out to the network for every research source: per-source credentials that are
//! attached only on their own host (redirects are followed by hand, and a hop to another host
//! loses the credential), size caps, retries that honour `Retry-After` with backoff and jitter,
//! a minimum interval per host, and a disk cache that answers offline and says how old its
//! answer is.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cache::{Cache, Cached};
use crate::{Endpoints, ResearchError, Secrets};

/// Which credential a request may carry (and so which host it may go to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Credential {
    /// None.
    None,
    /// The Hugging Face token, as `Authorization: Bearer`, only to the HF endpoint's host.
    Hf,
    /// The GitHub token, as `Authorization: Bearer`, only to the GitHub API's host.
    GitHub,
    /// The Semantic Scholar key, as `x-api-key`, only to the S2 API's host.
    S2,
}

impl Credential {
    fn tag(self) -> &'static str {
        match self {
            Credential::None => "none",
            Credential::Hf => "hf",
            Credential::GitHub => "github",
            Credential::S2 => "s2",
        }
    }
}

/// One request.
#[derive(Debug, Clone)]
pub struct Request {
    pub url: String,
    /// `None`: GET. `Some(body)`: POST with a JSON body.
    pub json_body: Option<Vec<u8>>,
    pub accept: Option<&'static str>,
    pub credential: Credential,
    /// How long a cached answer stays fresh (zero: never cached).
    pub ttl: Duration,
    /// Most bytes read from the body; more is an error, never a silent cut.
    pub max_bytes: usize,
}

impl Request {
    pub fn get(url: impl Into<String>) -> Request {
        Request {
            url: url.into(),
            json_body: None,
            accept: None,
            credential: Credential::None,
            ttl: Duration::from_secs(3600),
            max_bytes: 8 << 20,
        }
    }
    pub fn post_json(url: impl Into<String>, body: &serde_json::Value) -> Request {
        Request {
            json_body: Some(serde_json::to_vec(body).unwrap_or_default()),
            ..Request::get(url)
        }
    }
    pub fn with(mut self, c: Credential) -> Request {
        self.credential = c;
        self
    }
    pub fn ttl(mut self, ttl: Duration) -> Request {
        self.ttl = ttl;
        self
    }
    pub fn accept(mut self, a: &'static str) -> Request {
        self.accept = Some(a);
        self
    }
    pub fn max_bytes(mut self, n: usize) -> Request {
        self.max_bytes = n;
        self
    }
}

/// An answer, live or from the cache.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    /// The URL that answered (after redirects).
    pub url: String,
    /// `Some(age)` when the cache answered.
    pub cache_age: Option<Duration>,
    /// True when the network was not reachable (or offline was asked for) and a stale cache
    /// entry answered.
    pub stale: bool,
    /// Response headers, names lowercased (empty when the cache answered).
    pub headers: Vec<(String, String)>,
}

impl Response {
    /// A header's value (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Result<serde_json::Value, ResearchError> {
        serde_json::from_slice(&self.body).map_err(|e| ResearchError::Decode {
            url: self.url.clone(),
            message: e.to_string(),
        })
    }
}

/// Waits; a test replaces it to record instead of sleeping.
pub trait Sleeper: Send + Sync {
    fn sleep(&self, d: Duration);
}

struct RealSleep;
impl Sleeper for RealSleep {
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
}

/// Retry and pacing policy.
#[derive(Debug, Clone)]
pub struct Pacing {
    /// Retries of a 429, 5xx or transport error (GET, and POSTs to idempotent lookups).
    pub retries: u32,
    /// First backoff; doubled per retry, with up to 50 % jitter added.
    pub backoff: Duration,
    /// A `Retry-After` longer than this is not waited for: the error says when to come back.
    pub max_wait: Duration,
    /// Minimum time between two requests to the same host (arXiv asks for 3 s).
    pub per_host: BTreeMap<String, Duration>,
    pub timeout: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            retries: 3,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(60),
            per_host: BTreeMap::new(),
            timeout: Duration::from_secs(20),
        }
    }
}

/// The fetcher. Cheap to share (`&Fetcher` across threads).
pub struct Fetcher {
    agent: ureq::Agent,
    endpoints: Endpoints,
    secrets: Secrets,
    cache: Option<Cache>,
    offline: bool,
    pacing: Pacing,
    last: Mutex<BTreeMap<String, Instant>>,
    sleeper: Box<dyn Sleeper>,
    jitter: Mutex<u64>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("endpoints", &self.endpoints)
            .field("offline", &self.offline)
            .finish_non_exhaustive()
    }
}

/// The host part of a URL (`https://a.b:8080/x` → `a.b:8080`), lowercased.
pub fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let host = rest.split(['/', '?', '#']).next()?;
    let host = host.rsplit('@').next()?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// `base` joined with a `Location` value (absolute, scheme-relative or path-absolute).
fn resolve(base: &str, loc: &str) -> String {
    if loc.contains("://") {
        return loc.to_string();
    }
    let scheme = base.split_once("://").map(|(s, _)| s).unwrap_or("https");
    if let Some(rest) = loc.strip_prefix("//") {
        return format!("{scheme}://{rest}");
    }
    let host = host_of(base).unwrap_or_default();
    if loc.starts_with('/') {
        format!("{scheme}://{host}{loc}")
    } else {
        let dir = base.rsplit_once('/').map(|(d, _)| d).unwrap_or(base);
        format!("{dir}/{loc}")
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Fetcher {
    pub fn new(endpoints: Endpoints, secrets: Secrets, cache: Option<Cache>) -> Fetcher {
        let pacing = Pacing {
            per_host: endpoints.default_pacing(),
            ..Pacing::default()
        };
        Fetcher::with_pacing(endpoints, secrets, cache, pacing)
    }

    pub fn with_pacing(
        endpoints: Endpoints,
        secrets: Secrets,
        cache: Option<Cache>,
        pacing: Pacing,
    ) -> Fetcher {
        let agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(pacing.timeout))
            .user_agent(concat!("mlres-research/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Fetcher {
            agent,
            endpoints,
            secrets,
            cache,
            offline: false,
            pacing,
            last: Mutex::new(BTreeMap::new()),
            sleeper: Box::new(RealSleep),
            jitter: Mutex::new(now_secs() | 1),
        }
    }

    /// Answer from the cache only (any age), never the network.
    pub fn offline(mut self, yes: bool) -> Fetcher {
        self.offline = yes;
        self
    }

    pub fn sleeper(mut self, s: Box<dyn Sleeper>) -> Fetcher {
        self.sleeper = s;
        self
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    pub fn has_credential(&self, c: Credential) -> bool {
        self.credential_value(c).is_some()
    }

    fn credential_value(&self, c: Credential) -> Option<&str> {
        match c {
            Credential::None => None,
            Credential::Hf => self.secrets.hf_token.as_deref(),
            Credential::GitHub => self.secrets.github_token.as_deref(),
            Credential::S2 => self.secrets.s2_key.as_deref(),
        }
    }

    /// The one host a credential may be sent to.
    fn credential_host(&self, c: Credential) -> Option<String> {
        match c {
            Credential::None => None,
            Credential::Hf => host_of(&self.endpoints.hf),
            Credential::GitHub => host_of(&self.endpoints.github),
            Credential::S2 => host_of(&self.endpoints.s2),
        }
    }

    /// Every secret value this fetcher holds (for redaction of what comes back).
    pub fn secret_values(&self) -> Vec<&str> {
        [
            self.secrets.hf_token.as_deref(),
            self.secrets.github_token.as_deref(),
            self.secrets.s2_key.as_deref(),
        ]
        .into_iter()
        .flatten()
        .filter(|s| s.len() >= 8)
        .collect()
    }

    fn cache_key(req: &Request) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(req.url.as_bytes());
        h.update([0]);
        h.update(req.json_body.as_deref().unwrap_or_default());
        h.update([0]);
        h.update(req.accept.unwrap_or("").as_bytes());
        h.update([0]);
        h.update(req.credential.tag().as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Fetches `req`: fresh cache, else the network (with retries), else a stale cache entry
    /// when the network cannot be reached. Non-2xx answers are returned, not errors (callers
    /// map each source's error bodies); only transport failures without a cache entry are.
    pub fn fetch(&self, req: &Request) -> Result<Response, ResearchError> {
        let key = Self::cache_key(req);
        let cached = self.cache.as_ref().and_then(|c| c.get(&key));
        if let Some(c) = &cached {
            let age = Duration::from_secs(now_secs().saturating_sub(c.fetched_at));
            let fresh = age < req.ttl;
            if self.offline || fresh {
                return Ok(c.response(age, !fresh));
            }
        }
        if self.offline {
            return Err(ResearchError::Offline {
                url: req.url.clone(),
            });
        }
        match self.fetch_live(req) {
            Ok(resp) => {
                if resp.ok()
                    && !req.ttl.is_zero()
                    && let Some(c) = &self.cache
                {
                    c.put(
                        &key,
                        &Cached {
                            url: resp.url.clone(),
                            status: resp.status,
                            content_type: resp.content_type.clone(),
                            fetched_at: now_secs(),
                            body: resp.body.clone(),
                        },
                    );
                }
                Ok(resp)
            }
            Err(e @ ResearchError::Transport { .. }) => match cached {
                Some(c) => {
                    let age = Duration::from_secs(now_secs().saturating_sub(c.fetched_at));
                    Ok(c.response(age, true))
                }
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    fn pace(&self, host: &str) {
        let Some(min) = self.pacing.per_host.get(host).copied() else {
            return;
        };
        let wait = {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let wait = last
                .get(host)
                .map(|t| min.saturating_sub(now.duration_since(*t)))
                .unwrap_or_default();
            last.insert(host.to_string(), now + wait);
            wait
        };
        if !wait.is_zero() {
            self.sleeper.sleep(wait);
        }
    }

    fn jittered(&self, base: Duration) -> Duration {
        let mut s = self.jitter.lock().unwrap_or_else(|e| e.into_inner());
        // xorshift64: jitter need not be cryptographic, only spread.
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        let frac = (*s % 1000) as u32;
        base + base * frac / 2000
    }

    fn fetch_live(&self, req: &Request) -> Result<Response, ResearchError> {
        let mut attempt = 0u32;
        loop {
            let resp = self.follow(req);
            let retry_after = match &resp {
                Ok((r, ra)) if r.status == 429 || (500..600).contains(&r.status) => *ra,
                Err(ResearchError::Transport { .. }) => None,
                _ => return resp.map(|(r, _)| r),
            };
            if attempt >= self.pacing.retries {
                return match resp {
                    Ok((r, ra)) if r.status == 429 => Err(ResearchError::RateLimited {
                        host: host_of(&req.url).unwrap_or_default(),
                        retry_after: ra,
                    }),
                    other => other.map(|(r, _)| r),
                };
            }
            let wait = match retry_after {
                Some(ra) if ra > self.pacing.max_wait => {
                    return Err(ResearchError::RateLimited {
                        host: host_of(&req.url).unwrap_or_default(),
                        retry_after: Some(ra),
                    });
                }
                Some(ra) => ra,
                None => self.jittered(self.pacing.backoff * 2u32.pow(attempt)),
            };
            self.sleeper.sleep(wait);
            attempt += 1;
        }
    }

    /// One request, following up to 5 redirects by hand; the credential goes only to its host.
    fn follow(&self, req: &Request) -> Result<(Response, Option<Duration>), ResearchError> {
        let mut url = req.url.clone();
        let mut body = req.json_body.clone();
        for _ in 0..6 {
            let host = host_of(&url).ok_or_else(|| ResearchError::BadUrl(url.clone()))?;
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ResearchError::BadUrl(url));
            }
            self.pace(&host);
            let cred = self
                .credential_value(req.credential)
                .filter(|_| self.credential_host(req.credential).as_deref() == Some(host.as_str()));
            let result = match &body {
                None => {
                    let mut rb = self.agent.get(&url);
                    if let Some(a) = req.accept {
                        rb = rb.header("accept", a);
                    }
                    match (req.credential, cred) {
                        (Credential::S2, Some(k)) => rb = rb.header("x-api-key", k),
                        (_, Some(t)) => rb = rb.header("authorization", &format!("Bearer {t}")),
                        _ => {}
                    }
                    if req.credential == Credential::GitHub {
                        rb = rb.header("x-github-api-version", "2022-11-28");
                    }
                    rb.call()
                }
                Some(b) => {
                    let mut rb = self
                        .agent
                        .post(&url)
                        .header("content-type", "application/json");
                    if let Some(a) = req.accept {
                        rb = rb.header("accept", a);
                    }
                    match (req.credential, cred) {
                        (Credential::S2, Some(k)) => rb = rb.header("x-api-key", k),
                        (_, Some(t)) => rb = rb.header("authorization", &format!("Bearer {t}")),
                        _ => {}
                    }
                    rb.send(&b[..])
                }
            };
            let mut resp = result.map_err(|e| ResearchError::Transport {
                url: url.clone(),
                message: self.scrub(&e.to_string()),
            })?;
            let status = resp.status().as_u16();
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            if (300..400).contains(&status)
                && let Some(loc) = header("location")
            {
                url = resolve(&url, &loc);
                // A 303 (and, as browsers do, 301/302 after a POST) turns into a GET.
                if status == 303 || status == 301 || status == 302 {
                    body = None;
                }
                continue;
            }
            // `Retry-After`, else GitHub's exhausted quota (`x-ratelimit-remaining: 0` with
            // `x-ratelimit-reset`, epoch seconds).
            let retry_after = header("retry-after")
                .and_then(|v| parse_retry_after(&v))
                .or_else(|| {
                    let exhausted =
                        header("x-ratelimit-remaining").is_some_and(|v| v.trim() == "0");
                    let reset: u64 = header("x-ratelimit-reset")?.trim().parse().ok()?;
                    exhausted.then(|| Duration::from_secs(reset.saturating_sub(now_secs())))
                });
            let content_type = header("content-type");
            let headers: Vec<(String, String)> = resp
                .headers()
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        k.as_str().to_ascii_lowercase(),
                        v.to_str().ok()?.to_string(),
                    ))
                })
                .collect();
            let mut buf = Vec::new();
            let limit = req.max_bytes as u64 + 1;
            resp.body_mut()
                .as_reader()
                .take(limit)
                .read_to_end(&mut buf)
                .map_err(|e| ResearchError::Transport {
                    url: url.clone(),
                    message: self.scrub(&e.to_string()),
                })?;
            if buf.len() > req.max_bytes {
                return Err(ResearchError::TooLarge {
                    url,
                    limit: req.max_bytes,
                });
            }
            return Ok((
                Response {
                    status,
                    body: buf,
                    content_type,
                    url,
                    cache_age: None,
                    stale: false,
                    headers,
                },
                retry_after,
            ));
        }
        Err(ResearchError::Transport {
            url,
            message: "too many redirects".into(),
        })
    }

    /// `s` with every secret this fetcher holds replaced.
    pub fn scrub(&self, s: &str) -> String {
        let mut out = s.to_string();
        for v in self.secret_values() {
            out = out.replace(v, "[REDACTED]");
        }
        out
    }
}

/// `Retry-After`: seconds, or an HTTP date (then relative to now).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(n) = v.parse::<u64>() {
        return Some(Duration::from_secs(n));
    }
    // IMF-fixdate: "Wed, 21 Oct 2015 07:28:00 GMT".
    let parts: Vec<&str> = v.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: u64 = parts[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as u64
        + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<u64> = parts[4].split(':').filter_map(|x| x.parse().ok()).collect();
    if hms.len() != 3 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let at = days * 86400 + (hms[0] * 3600 + hms[1] * 60 + hms[2]) as i64;
    let now = now_secs() as i64;
    Some(Duration::from_secs(at.saturating_sub(now).max(0) as u64))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u64, d: u64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_redirect_targets() {
        assert_eq!(
            host_of("https://Api.GitHub.com/x?y").as_deref(),
            Some("api.github.com")
        );
        assert_eq!(
            host_of("http://127.0.0.1:9/a").as_deref(),
            Some("127.0.0.1:9")
        );
        assert_eq!(
            host_of("https://u:p@h.example/").as_deref(),
            Some("h.example")
        );
        assert_eq!(host_of("nonsense"), None);
        assert_eq!(resolve("https://a.b/x/y", "/z"), "https://a.b/z");
        assert_eq!(resolve("https://a.b/x/y", "//c.d/z"), "https://c.d/z");
        assert_eq!(resolve("https://a.b/x/y", "z"), "https://a.b/x/z");
        assert_eq!(resolve("https://a.b/x", "http://e.f/"), "http://e.f/");
    }

    #[test]
    fn retry_after_in_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
    }
}
