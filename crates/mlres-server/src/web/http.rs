//! `mlres serve`: the live dashboard over HTTP, on 127.0.0.1 only, behind a random token.
//!
//! Routes (every one needs the token; the first visit brings it in the query, like Jupyter,
//! and gets it back as an `HttpOnly`, `SameSite=Strict` cookie):
//!
//! | method | path | what |
//! | --- | --- | --- |
//! | GET | `/` | the dashboard page (`?campaign=ID` picks a campaign; default the latest) |
//! | GET | `/assets/view.js`, `/assets/dash.js`, `/assets/view.css` | its script and style |
//! | GET | `/api/campaigns` | the project's campaigns, oldest first |
//! | GET | `/api/campaigns/{id}/report` | a campaign's report data (`mlres_engine::report::ReportData`) |
//! | GET | `/api/campaigns/{id}/events` | Server-Sent Events: `snapshot` (the report data), then `patch`es |
//! | GET | `/api/experiments/{id}/log?stream=stdout\|stderr` | the end of a job's output, secrets redacted |
//! | POST | `/api/campaigns/{id}/stop` | `loop stop` (only with `--allow-stop`; needs the page's CSRF header) |
//!
//! Nothing here approves, submits or edits: the only action is stop, and only when the
//! operator started the server with it. A request whose `Host` is not this server's loopback
//! address is refused (DNS rebinding), and a token is compared in constant time.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use mlres_engine::report::{Reader, Watch};
use mlres_engine::{Engine, EngineConfig, EngineError};
use serde::Deserialize;
use serde_json::json;

use crate::LogStream;
use crate::logs::read_tail;

/// What the binary hands the dashboard.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    pub engine: EngineConfig,
    pub project: PathBuf,
    /// Offer `loop stop` (POST `/api/campaigns/{id}/stop`); otherwise read-only.
    pub allow_stop: bool,
    /// Must be 127.0.0.1.
    pub ip: IpAddr,
    /// 0: any free port.
    pub port: u16,
    /// How often the live view looks for new events and log lines.
    pub poll: Duration,
}

/// Why the dashboard could not start or stopped.
#[derive(thiserror::Error, Debug)]
pub enum ServeError {
    #[error(
        "refusing to listen on {0}: the dashboard listens on the loopback address 127.0.0.1 only \
         (reach it from elsewhere through an SSH tunnel: ssh -L PORT:127.0.0.1:PORT host)"
    )]
    NotLoopback(IpAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read random bytes for the access token: {0}")]
    Random(std::io::Error),
    #[error("the dashboard failed: {0}")]
    Io(#[from] std::io::Error),
}

struct App {
    cfg: DashboardConfig,
    token: String,
    csrf: String,
    port: u16,
}

/// A dashboard bound to its port, not yet serving.
pub struct Dashboard {
    listener: std::net::TcpListener,
    app: Arc<App>,
}

fn random_hex(bytes: usize) -> Result<String, ServeError> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(ServeError::Random)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Binds the dashboard's port (127.0.0.1 only) and draws its token.
pub fn bind(cfg: DashboardConfig) -> Result<Dashboard, ServeError> {
    if cfg.ip != IpAddr::V4(Ipv4Addr::LOCALHOST) {
        return Err(ServeError::NotLoopback(cfg.ip));
    }
    let addr = SocketAddr::new(cfg.ip, cfg.port);
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let app = Arc::new(App {
        token: random_hex(32)?,
        csrf: random_hex(16)?,
        port,
        cfg,
    });
    Ok(Dashboard { listener, app })
}

impl Dashboard {
    /// The URL to open, token included.
    pub fn url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/?token={}",
            self.app.port, self.app.token
        )
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        SocketAddr::new(self.app.cfg.ip, self.app.port)
    }

    /// Serves until the process ends.
    pub fn run(self) -> Result<(), ServeError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(self.listener)?;
            axum::serve(listener, router(self.app)).await
        })?;
        Ok(())
    }
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/view.js", get(|| async { js(super::VIEW_JS) }))
        .route("/assets/dash.js", get(|| async { js(super::DASH_JS) }))
        .route(
            "/assets/view.css",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
                    super::VIEW_CSS,
                )
            }),
        )
        .route("/api/campaigns", get(campaigns))
        .route("/api/campaigns/{id}/report", get(report))
        .route("/api/campaigns/{id}/events", get(events))
        .route("/api/campaigns/{id}/stop", post(stop))
        .route("/api/experiments/{id}/log", get(log))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

fn js(body: &'static str) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        body,
    )
}

/// Equal, in time that depends only on the lengths.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut d = 0u8;
    for (x, y) in a.iter().zip(b) {
        d |= x ^ y;
    }
    std::hint::black_box(d) == 0
}

fn cookie_name(port: u16) -> String {
    format!("mlres_token_{port}")
}

fn presented_token(h: &HeaderMap, port: u16) -> Option<String> {
    if let Some(v) = h.get("x-mlres-token").and_then(|v| v.to_str().ok()) {
        return Some(v.to_string());
    }
    if let Some(v) = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(v.to_string());
    }
    let name = cookie_name(port);
    for c in h.get_all(header::COOKIE) {
        let Ok(c) = c.to_str() else { continue };
        for part in c.split(';') {
            if let Some((k, v)) = part.trim().split_once('=')
                && k == name
            {
                return Some(v.to_string());
            }
        }
    }
    None
}

fn refuse(status: StatusCode, msg: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{msg}\n"),
    )
        .into_response()
}

/// Host check, token check, and the headers every response carries.
async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if host != format!("127.0.0.1:{}", app.port) && host != format!("localhost:{}", app.port) {
        return refuse(
            StatusCode::FORBIDDEN,
            "this dashboard answers only to http://127.0.0.1 on its own port",
        );
    }
    let query_token = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .map(String::from)
    });
    let mut resp = if let Some(t) = query_token {
        if !ct_eq(t.as_bytes(), app.token.as_bytes()) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "wrong token: open the URL `mlres serve` printed",
            );
        }
        // Trade the token in the URL for a cookie, and drop it from the address bar.
        let rest: Vec<&str> = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|kv| !kv.starts_with("token=") && !kv.is_empty())
            .collect();
        let to = if rest.is_empty() {
            req.uri().path().to_string()
        } else {
            format!("{}?{}", req.uri().path(), rest.join("&"))
        };
        let cookie = format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict",
            cookie_name(app.port),
            app.token
        );
        let mut r = StatusCode::SEE_OTHER.into_response();
        if let (Ok(loc), Ok(c)) = (HeaderValue::from_str(&to), HeaderValue::from_str(&cookie)) {
            r.headers_mut().insert(header::LOCATION, loc);
            r.headers_mut().insert(header::SET_COOKIE, c);
        }
        r
    } else {
        match presented_token(req.headers(), app.port) {
            Some(t) if ct_eq(t.as_bytes(), app.token.as_bytes()) => next.run(req).await,
            Some(_) => {
                return refuse(
                    StatusCode::UNAUTHORIZED,
                    "wrong token: open the URL `mlres serve` printed",
                );
            }
            None => {
                return refuse(
                    StatusCode::UNAUTHORIZED,
                    "this dashboard needs its token: open the URL `mlres serve` printed",
                );
            }
        }
    };
    let h = resp.headers_mut();
    for (k, v) in [
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        (
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    resp
}

async fn index(State(app): State<Arc<App>>) -> Html<String> {
    Html(super::dashboard_html(&app.csrf, app.cfg.allow_stop))
}

fn engine_status(e: &EngineError) -> StatusCode {
    match e {
        EngineError::UnknownExperiment(_) => StatusCode::NOT_FOUND,
        EngineError::Refused { code, .. } if code == "unknown_campaign" => StatusCode::NOT_FOUND,
        EngineError::Refused { .. } => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Runs `f` with a fresh read-only [`Reader`] on the blocking pool.
async fn with_reader<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&Reader) -> Result<T, EngineError> + Send + 'static,
) -> Result<T, Response> {
    let app = app.clone();
    let r = tokio::task::spawn_blocking(move || {
        let reader = Reader::open(&app.cfg.engine.state_dir, &app.cfg.project)?;
        f(&reader)
    })
    .await;
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(refuse(engine_status(&e), &e.to_string())),
        Err(e) => Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
    }
}

async fn campaigns(State(app): State<Arc<App>>) -> Response {
    match with_reader(&app, |r| r.campaigns()).await {
        Ok(list) => axum::Json(
            list.iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "status": c.status,
                        "generation": c.generation,
                        "stop_requested": c.stop_requested,
                        "created": mlres_engine::time::iso8601(c.created_ms),
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(r) => r,
    }
}

async fn report(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    match with_reader(&app, move |r| r.collect(&id)).await {
        Ok(d) => axum::Json(d).into_response(),
        Err(r) => r,
    }
}

async fn events(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(16);
    let poll = app.cfg.poll;
    let state_dir = app.cfg.engine.state_dir.clone();
    let project = app.cfg.project.clone();
    // Check the campaign before answering, so an unknown one is a 404, not an empty stream.
    let first = {
        let id = id.clone();
        with_reader(&app, move |r| r.collect(&id)).await
    };
    let data = match first {
        Ok(d) => d,
        Err(r) => return r,
    };
    tokio::task::spawn_blocking(move || {
        // `Event::data` refuses a carriage return; JSON never holds a raw one, messages might.
        let send = |name: &str, body: String| {
            tx.blocking_send(Event::default().event(name).data(body.replace('\r', " ")))
        };
        let mut watch = Watch::new(&data);
        if send("snapshot", serde_json::to_string(&data).unwrap_or_default()).is_err() {
            return;
        }
        drop(data);
        let reader = match Reader::open(&state_dir, &project) {
            Ok(r) => r,
            Err(e) => {
                let _ = send("failure", e.to_string());
                return;
            }
        };
        while !tx.is_closed() {
            std::thread::sleep(poll);
            match watch.poll(&reader.ledger) {
                Ok(Some(p)) => {
                    if send("patch", serde_json::to_string(&p).unwrap_or_default()).is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = send("failure", e.to_string());
                    return;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|ev| (Ok::<Event, Infallible>(ev), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[derive(Deserialize)]
struct LogQuery {
    stream: Option<String>,
}

async fn log(
    State(app): State<Arc<App>>,
    Path(id): Path<i64>,
    Query(q): Query<LogQuery>,
) -> Response {
    let stream = match q.stream.as_deref() {
        None | Some("stdout") => LogStream::Stdout,
        Some("stderr") => LogStream::Stderr,
        Some(_) => return refuse(StatusCode::BAD_REQUEST, "stream is stdout or stderr"),
    };
    let env: BTreeMap<String, String> = app.cfg.engine.parent_env.clone();
    let r = with_reader(&app, move |r| {
        let e = r.experiment(id)?;
        let Some(h) = e.handle.clone() else {
            return Ok(format!(
                "experiment {id} has not started yet (state {}); it has no logs",
                e.state
            ));
        };
        let tail =
            read_tail(FsPath::new(&h), stream, crate::DEFAULT_TAIL_BYTES).map_err(|source| {
                EngineError::Io {
                    context: format!("cannot read the logs of experiment {id}"),
                    source,
                }
            })?;
        let text = String::from_utf8_lossy(&tail.bytes);
        let mut out = r.redact_job_text(&e, &env, &text)?;
        if tail.truncated {
            out.insert_str(0, "[earlier output omitted]\n");
        }
        Ok(out)
    })
    .await;
    match r {
        Ok(t) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], t).into_response(),
        Err(r) => r,
    }
}

async fn stop(State(app): State<Arc<App>>, Path(id): Path<String>, h: HeaderMap) -> Response {
    if !app.cfg.allow_stop {
        return refuse(
            StatusCode::FORBIDDEN,
            "this dashboard is read-only; start it with `mlres serve --allow-stop` to stop campaigns",
        );
    }
    let csrf_ok = h
        .get("x-mlres-csrf")
        .is_some_and(|v| ct_eq(v.as_bytes(), app.csrf.as_bytes()));
    let origin_ok = h.get(header::ORIGIN).is_none_or(|o| {
        o.to_str().is_ok_and(|o| {
            o == format!("http://127.0.0.1:{}", app.port)
                || o == format!("http://localhost:{}", app.port)
        })
    });
    if !csrf_ok || !origin_ok {
        return refuse(
            StatusCode::FORBIDDEN,
            "stop needs the dashboard page's CSRF header, from its own origin",
        );
    }
    let app2 = app.clone();
    let r = tokio::task::spawn_blocking(move || -> Result<_, EngineError> {
        let mut engine = Engine::open(app2.cfg.engine.clone(), &app2.cfg.project)?;
        match engine.current_campaign()? {
            Some(c) if c.id == id => {}
            _ => {
                return Err(EngineError::Refused {
                    code: "not_current".into(),
                    message: format!("{id} is not this project's current campaign"),
                });
            }
        }
        engine.stop_reporting("stopped from the dashboard", false, &mut |_| {})
    })
    .await;
    match r {
        Ok(Ok(o)) => axum::Json(json!({
            "campaign": o.campaign.id,
            "status": o.campaign.status,
            "already_ended": o.already_ended,
            "cancelled": o.cancelled,
        }))
        .into_response(),
        Ok(Err(e)) => refuse(engine_status(&e), &e.to_string()),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"", b"a"));
    }

    #[test]
    fn the_token_is_read_from_header_bearer_or_this_ports_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; mlres_token_80=t1"),
        );
        assert_eq!(presented_token(&h, 80).as_deref(), Some("t1"));
        assert_eq!(presented_token(&h, 81), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t2"));
        assert_eq!(presented_token(&h, 80).as_deref(), Some("t2"));
        h.insert("x-mlres-token", HeaderValue::from_static("t3"));
        assert_eq!(presented_token(&h, 80).as_deref(), Some("t3"));
    }
}
