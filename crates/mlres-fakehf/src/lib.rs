//! A local fake of the Hugging Face Hub and Jobs API for mlres's tests: whoami-v2 with
//! configurable tokens (roles and fine-grained scopes), the Jobs API (jobs really run as
//! local subprocesses, with SSE logs, billing against a credit balance and the hardware
//! catalog), the scheduled-jobs API (counted, so tests can prove mlres never calls it), and
//! the Hub tree/resolve/create/preupload/NDJSON-commit endpoints. Test controls live under
//! `/_fake/` (no auth): inject failures, drop SSE connections, set credits, read the state.
//!
//! One process, plain `std::net`, a thread per connection, hand-written HTTP/1.1 so tests
//! control keep-alives and dropped connections. It never writes a token value anywhere: the
//! request log keeps only a sha256 of the `Authorization` header.

mod http;
mod hub;
mod jobs;
mod lfs;
pub mod research_code;
pub mod research_papers;
mod state;
pub mod viewer;

use std::io::BufReader;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Deserialize;

pub use http::{Request, Response, percent_decode};
pub use jobs::create_job_as;
pub use lfs::{LfsObject, PendingUpload};
pub use state::{
    Flavor, Injection, Inner, Job, LoggedRequest, Repo, RepoFile, State, TokenConfig, can_read,
    can_write, default_flavors, iso, sha256_hex,
};

/// The canary token the test suite uses.
pub const CANARY_TOKEN: &str = "hf_mlresCANARYtoken0123456789abcdefXYZ";

/// How to start a fake.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct FakeConfig {
    /// Accepted tokens.
    pub tokens: Vec<TokenConfig>,
    /// Page size of `GET /api/jobs/{ns}` (0: no pagination, the old unpaginated list).
    pub jobs_page_size: usize,
    /// Page size of tree listings.
    pub tree_page_size: usize,
    /// SSE keep-alive interval in milliseconds.
    pub keepalive_ms: u64,
    /// Delay between SCHEDULING and RUNNING in milliseconds.
    pub scheduling_delay_ms: u64,
    /// A flavor listed with `null` prices (to test the "no price" refusal); none by default,
    /// since every flavor of the real catalog has a price.
    pub unpriced_flavor: Option<String>,
    /// Where job work dirs are created (default: the system temp dir).
    pub work_root: Option<PathBuf>,
    /// Port (0: any free port).
    pub port: u16,
    /// Preupload answers `lfs` for files of at least this many bytes (the Hub: 10 MB), as
    /// well as for binary samples and the default `.gitattributes` patterns (`*.bin`,
    /// `*.safetensors`, …).
    pub lfs_threshold: u64,
    /// The LFS batch answers multipart, when the client offers it, for objects of at least
    /// this many bytes.
    pub lfs_multipart_threshold: u64,
    /// Multipart chunk size (`chunk_size` in the upload action's header).
    pub lfs_chunk_size: u64,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            tokens: vec![TokenConfig {
                token: CANARY_TOKEN.into(),
                user: "alice".into(),
                orgs: vec!["acme-ml".into()],
                role: "write".into(),
                fine_grained: None,
                display_name: "laptop".into(),
            }],
            jobs_page_size: 50,
            tree_page_size: 1000,
            keepalive_ms: 30_000,
            scheduling_delay_ms: 20,
            unpriced_flavor: None,
            work_root: None,
            port: 0,
            lfs_threshold: 10_000_000,
            lfs_multipart_threshold: 64 << 20,
            lfs_chunk_size: 16 << 20,
        }
    }
}

/// A running fake; it stops (and kills its jobs) when dropped.
pub struct FakeHf {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for FakeHf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHf").field("addr", &self.addr).finish()
    }
}

impl FakeHf {
    /// Bind 127.0.0.1 and start serving.
    pub fn start(config: FakeConfig) -> std::io::Result<FakeHf> {
        let listener = TcpListener::bind(("127.0.0.1", config.port))?;
        let addr = listener.local_addr()?;
        let mut flavors = default_flavors();
        if let Some(name) = &config.unpriced_flavor {
            flavors.push(Flavor {
                name: name.clone(),
                micro_usd_per_minute: None,
                cpu: "2 vCPU".into(),
                ram: "16 GB".into(),
            });
        }
        let inner = Inner {
            tokens: config.tokens.clone(),
            jobs_page_size: config.jobs_page_size,
            tree_page_size: config.tree_page_size.max(1),
            keepalive: Duration::from_millis(config.keepalive_ms.max(1)),
            next_job: 1,
            lfs_threshold: config.lfs_threshold,
            lfs_multipart_threshold: config.lfs_multipart_threshold,
            lfs_chunk_size: config.lfs_chunk_size.max(1),
            ..Inner::default()
        };
        let work_root = config
            .work_root
            .clone()
            .unwrap_or_else(std::env::temp_dir)
            .join(format!(
                "mlres-fakehf-{}-{}",
                std::process::id(),
                addr.port()
            ));
        std::fs::create_dir_all(&work_root)?;
        jobs::install_uv_shim(&work_root)?;
        let state = Arc::new(State::new(
            inner,
            flavors,
            work_root,
            Duration::from_millis(config.scheduling_delay_ms),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || serve_connection(conn, &st));
            }
        });
        Ok(FakeHf {
            addr,
            state,
            stop,
            accept: Some(accept),
        })
    }

    /// `http://127.0.0.1:PORT` (use as `HF_ENDPOINT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The state, for assertions and controls.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Stop accepting and cancel every running job.
    pub fn shutdown(&mut self) {
        if self.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        {
            let mut g = self.state.lock();
            for j in g.jobs.iter_mut() {
                j.cancel_requested = true;
            }
        }
        self.state.changed.notify_all();
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

impl Drop for FakeHf {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve_connection(conn: TcpStream, state: &Arc<State>) {
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut stream = conn;
    loop {
        let req = match http::read_request(&mut reader) {
            Ok(Some(r)) => r,
            _ => return,
        };
        let head = req.method == "HEAD";
        match route(&req, state) {
            Reply::Full(resp) => {
                log_request(state, &req, resp.status);
                if http::write_response(&mut stream, &resp, head).is_err() {
                    return;
                }
                if req
                    .header("connection")
                    .is_some_and(|c| c.eq_ignore_ascii_case("close"))
                {
                    return;
                }
            }
            Reply::Sse {
                namespace,
                id,
                tail,
            } => {
                log_request(state, &req, 200);
                jobs::stream_logs(&mut stream, state, &namespace, &id, tail);
                return;
            }
        }
    }
}

fn log_request(state: &State, req: &Request, status: u16) {
    let auth = req.header("authorization");
    let mut path = req.path.clone();
    if !req.query.is_empty() {
        path.push('?');
        path.push_str(
            &req.query
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&"),
        );
    }
    let content_type = req.header("content-type").map(str::to_string);
    let textual = content_type.as_deref().is_some_and(|c| {
        c.starts_with("application/json")
            || c.starts_with("application/x-ndjson")
            || c.starts_with(lfs::LFS_MEDIA)
    });
    let body = (textual && req.body.len() <= 1 << 20)
        .then(|| String::from_utf8_lossy(&req.body).into_owned());
    state.lock().requests.push(LoggedRequest {
        method: req.method.clone(),
        path,
        auth: auth.is_some(),
        auth_sha256: auth.map(|a| sha256_hex(a.as_bytes())),
        status,
        content_type,
        accept: req.header("accept").map(str::to_string),
        body,
        body_len: req.body.len(),
        body_sha256: (!req.body.is_empty()).then(|| sha256_hex(&req.body)),
    });
}

pub(crate) enum Reply {
    Full(Response),
    Sse {
        namespace: String,
        id: String,
        tail: Option<usize>,
    },
}

/// Who made the request: `Ok(None)` anonymous, `Err` 401 for an unknown token.
pub(crate) fn caller(req: &Request, state: &State) -> Result<Option<TokenConfig>, Response> {
    match req.bearer() {
        None => Ok(None),
        Some(t) => state.token(t).map(Some).ok_or_else(|| {
            Response::error(401, None, "Invalid credentials in Authorization header")
        }),
    }
}

/// The caller, required.
pub(crate) fn require_caller(req: &Request, state: &State) -> Result<TokenConfig, Response> {
    caller(req, state)?
        .ok_or_else(|| Response::error(401, None, "Authorization header is required"))
}

fn injected(req: &Request, state: &State) -> Option<Response> {
    let mut g = state.lock();
    let pos = g.injections.iter().position(|i| {
        (i.method.is_empty() || i.method.eq_ignore_ascii_case(&req.method))
            && req.path.starts_with(&i.path_prefix)
            && i.count > 0
    })?;
    let inj = g.injections[pos].clone();
    g.injections[pos].count -= 1;
    if g.injections[pos].count == 0 {
        g.injections.remove(pos);
    }
    drop(g);
    let msg = inj.message.clone().unwrap_or_else(|| match inj.status {
        401 => "Invalid credentials in Authorization header".into(),
        402 => "Insufficient credits on namespace. Add credits at https://huggingface.co/settings/billing".into(),
        403 => "You don't have the rights to do this".into(),
        404 => "Not found".into(),
        429 => "You have been rate-limited".into(),
        _ => "Injected failure".into(),
    });
    let mut r = if (300..400).contains(&inj.status) {
        Response {
            status: inj.status,
            headers: vec![],
            body: vec![],
        }
        .with_header("Location", inj.location.as_deref().unwrap_or("/"))
    } else {
        Response::error(inj.status, None, &msg)
    };
    if inj.status == 429 {
        r = r
            .with_header("RateLimit", "\"api\";r=0;t=1")
            .with_header("RateLimit-Policy", "\"fixed window\";\"api\";q=500;w=300")
            .with_header("Retry-After", "0");
    }
    if inj.status == 404 && req.path.contains("/api/jobs/") {
        r = r.with_header("X-Error-Code", "JobNotFound");
    }
    Some(r)
}

fn route(req: &Request, state: &Arc<State>) -> Reply {
    if req.path.starts_with("/_fake/") {
        return Reply::Full(control(req, state));
    }
    if let Some(r) = injected(req, state) {
        return Reply::Full(r);
    }
    if let Some(r) = research_papers::handle(req, state) {
        return Reply::Full(r);
    }
    if let Some(r) = viewer::handle(req, state) {
        return Reply::Full(r);
    }
    if let Some(r) = research_code::handle(req, state) {
        return Reply::Full(r);
    }
    let seg = req.segments();
    let s: Vec<&str> = seg.iter().map(String::as_str).collect();
    let m = req.method.as_str();
    let r = match (m, s.as_slice()) {
        ("GET", ["api", "whoami-v2"]) => whoami(req, state),
        (_, ["api", "jobs", ..]) => return jobs::route(req, state, &s[2..]),
        (_, ["api", "scheduled-jobs", ..]) => jobs::scheduled(req, state),
        ("POST", ["api", "repos", "create"]) => hub::create_repo(req, state),
        (
            _,
            [
                "api",
                kind @ ("models" | "datasets" | "spaces"),
                ns,
                name,
                rest @ ..,
            ],
        ) => hub::api(req, state, kind, ns, name, rest),
        (
            "POST",
            [
                kind @ ("datasets" | "spaces"),
                ns,
                repo,
                "info",
                "lfs",
                "objects",
                what,
            ],
        ) if repo.ends_with(".git") => {
            lfs::objects(req, state, kind, ns, repo.trim_end_matches(".git"), what)
        }
        ("POST", [ns, repo, "info", "lfs", "objects", what]) if repo.ends_with(".git") => {
            lfs::objects(
                req,
                state,
                "models",
                ns,
                repo.trim_end_matches(".git"),
                what,
            )
        }
        (_, ["lfs-store", rest @ ..]) => lfs::store(req, state, rest),
        ("GET" | "HEAD", ["datasets" | "spaces", ns, name, "resolve", rest @ ..]) => {
            hub::resolve(req, state, s[0], ns, name, rest)
        }
        ("GET" | "HEAD", [ns, name, "resolve", rest @ ..]) => {
            hub::resolve(req, state, "models", ns, name, rest)
        }
        _ => Response::error(404, None, &format!("no route for {m} {}", req.path)),
    };
    Reply::Full(r)
}

fn whoami(req: &Request, state: &State) -> Response {
    state.lock().whoami_calls += 1;
    let t = match require_caller(req, state) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut access = serde_json::json!({
        "displayName": t.display_name, "role": t.role, "createdAt": "2026-01-01T00:00:00.000Z",
    });
    if let Some(fg) = &t.fine_grained {
        access["fineGrained"] = fg.clone();
    }
    let orgs: Vec<serde_json::Value> = t
        .orgs
        .iter()
        .map(|o| {
            serde_json::json!({"type": "org", "id": sha256_hex(o.as_bytes())[..24], "name": o,
                "fullname": o, "email": null, "canPay": true, "periodEnd": null, "plan": "team",
                "roleInOrg": "write"})
        })
        .collect();
    Response::json(
        200,
        &serde_json::json!({
            "type": "user", "id": &sha256_hex(t.user.as_bytes())[..24], "name": t.user,
            "fullname": t.user, "email": format!("{}@example.com", t.user), "emailVerified": true,
            "canPay": true, "isPro": false, "periodEnd": null, "orgs": orgs,
            "auth": {"type": "access_token", "accessToken": access},
        }),
    )
}

fn control(req: &Request, state: &State) -> Response {
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
    let bad = |e: String| Response::error(400, None, &e);
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/_fake/state") => Response::json(200, &state.snapshot()),
        ("POST", "/_fake/inject") => match serde_json::from_value::<Injection>(body) {
            Ok(i) => {
                state.inject(i);
                Response::json(200, &serde_json::json!({"ok": true}))
            }
            Err(e) => bad(e.to_string()),
        },
        ("POST", "/_fake/sse-drop") => {
            let points: Vec<usize> = body["after_lines"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_u64().map(|n| n as usize))
                .collect();
            state.drop_sse_after(&points);
            Response::json(200, &serde_json::json!({"ok": true}))
        }
        ("POST", "/_fake/credits") => {
            match (body["namespace"].as_str(), body["micro_usd"].as_i64()) {
                (Some(ns), Some(m)) => {
                    state.set_credits(ns, m);
                    Response::json(200, &serde_json::json!({"ok": true}))
                }
                _ => bad("need namespace and micro_usd".into()),
            }
        }
        ("POST", "/_fake/tokens") => match serde_json::from_value::<TokenConfig>(body) {
            Ok(t) => {
                state.add_token(t);
                Response::json(200, &serde_json::json!({"ok": true}))
            }
            Err(e) => bad(e.to_string()),
        },
        ("POST", "/_fake/seed") => {
            let (Some(kind), Some(repo), Some(path)) = (
                body["type"].as_str(),
                body["repo"].as_str(),
                body["path"].as_str(),
            ) else {
                return bad("need type, repo, path, content".into());
            };
            state.seed_file(
                kind,
                repo,
                path,
                body["content"].as_str().unwrap_or("").as_bytes(),
            );
            Response::json(200, &serde_json::json!({"ok": true}))
        }
        _ => Response::error(404, None, "unknown control"),
    }
}
