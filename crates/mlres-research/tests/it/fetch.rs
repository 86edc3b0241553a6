use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mlres_research::fetch::Sleeper;
use mlres_research::{Cache, Credential, Endpoints, Fetcher, Pacing, Request, Secrets};

const HF: &str = "hf_CANARYresearch8Hj2Kl4Mn6Pq8Rs0";
const GH: &str = "ghp_CANARYresearch1Ab2Cd3Ef4Gh5Ij6Kl7";

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: BTreeMap<String, String>,
}

type Handler = dyn Fn(&str, usize) -> (u16, Vec<(String, String)>, String) + Send + Sync;

/// A scripted HTTP/1.1 server on 127.0.0.1: `handler(path, nth call of that path)`.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn start(handler: Arc<Handler>) -> Server {
        Server::start_n(handler, usize::MAX)
    }

    /// Serves `limit` connections, then closes its socket (the host is then unreachable).
    fn start_n(handler: Arc<Handler>, limit: usize) -> Server {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        std::thread::spawn(move || {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for conn in l.incoming().take(limit) {
                let Ok(mut conn) = conn else { continue };
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let mut headers = BTreeMap::new();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                }
                if let Some(n) = headers
                    .get("content-length")
                    .and_then(|v| v.parse::<usize>().ok())
                {
                    let mut b = vec![0; n];
                    let _ = r.read_exact(&mut b);
                }
                let n = counts.entry(path.clone()).or_default();
                let (status, extra, body) = handler(&path, *n);
                *n += 1;
                s2.lock().unwrap().push(Seen {
                    path: path.clone(),
                    headers,
                });
                let mut resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                    body.len()
                );
                for (k, v) in extra {
                    resp.push_str(&format!("{k}: {v}\r\n"));
                }
                resp.push_str("\r\n");
                resp.push_str(&body);
                let _ = conn.write_all(resp.as_bytes());
            }
        });
        Server { port, seen }
    }
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Duration>>>);
impl Sleeper for Recorder {
    fn sleep(&self, d: Duration) {
        self.0.lock().unwrap().push(d);
    }
}

fn secrets() -> Secrets {
    Secrets {
        hf_token: Some(HF.into()),
        github_token: Some(GH.into()),
        s2_key: None,
    }
}

#[test]
fn a_credential_goes_only_to_its_host_and_never_across_a_redirect() {
    // Two servers: "hf" and "elsewhere". hf redirects to elsewhere.
    let other = Server::start(Arc::new(|_, _| (200, vec![], "elsewhere".into())));
    let target = other.url("/landing");
    let hf = Server::start(Arc::new(move |p, _| match p {
        "/go" => (
            302,
            vec![("location".into(), target.clone())],
            String::new(),
        ),
        "/local" => (
            301,
            vec![("location".into(), "/final".into())],
            String::new(),
        ),
        _ => (200, vec![], "hf".into()),
    }));
    let endpoints = Endpoints {
        hf: hf.url(""),
        github: other.url(""),
        ..Endpoints::default()
    };
    let f = Fetcher::new(endpoints, secrets(), None);
    let r = f
        .fetch(&Request::get(hf.url("/go")).with(Credential::Hf))
        .unwrap();
    assert_eq!(r.text(), "elsewhere");
    let r = f
        .fetch(&Request::get(hf.url("/local")).with(Credential::Hf))
        .unwrap();
    assert_eq!(r.text(), "hf");
    // The HF token went to hf only (both hops on hf), never to the other host.
    for s in hf.seen() {
        assert_eq!(
            s.headers.get("authorization").map(String::as_str),
            Some(&*format!("Bearer {HF}")),
            "{s:?}"
        );
    }
    for s in other.seen() {
        assert!(
            !format!("{s:?}").contains(HF),
            "the HF token crossed the redirect: {s:?}"
        );
    }
    // A request that names the GitHub credential sends the GitHub token to the GitHub host
    // only; to the HF host it sends nothing.
    let _ = f
        .fetch(&Request::get(other.url("/repos/x/y")).with(Credential::GitHub))
        .unwrap();
    let _ = f
        .fetch(&Request::get(hf.url("/x")).with(Credential::GitHub))
        .unwrap();
    let gh_seen = other.seen();
    let last = gh_seen.last().unwrap();
    assert_eq!(
        last.headers.get("authorization").map(String::as_str),
        Some(&*format!("Bearer {GH}"))
    );
    let hf_last = hf.seen().last().cloned().unwrap();
    assert!(
        !hf_last.headers.contains_key("authorization"),
        "{hf_last:?}"
    );
}

#[test]
fn retries_honour_retry_after_and_give_up_with_a_typed_error() {
    let s = Server::start(Arc::new(|p, n| match (p, n) {
        ("/flaky", 0) => (
            429,
            vec![("retry-after".into(), "2".into())],
            "slow down".into(),
        ),
        ("/flaky", 1) => (503, vec![], "busy".into()),
        ("/flaky", _) => (200, vec![], "ok".into()),
        ("/far", _) => (
            429,
            vec![("retry-after".into(), "3600".into())],
            "{}".into(),
        ),
        _ => (500, vec![], "down".into()),
    }));
    let rec = Recorder::default();
    let f = Fetcher::with_pacing(
        Endpoints::default(),
        Secrets::default(),
        None,
        Pacing::default(),
    )
    .sleeper(Box::new(rec.clone()));
    let r = f.fetch(&Request::get(s.url("/flaky"))).unwrap();
    assert_eq!(r.text(), "ok");
    let waits = rec.0.lock().unwrap().clone();
    assert_eq!(
        waits[0],
        Duration::from_secs(2),
        "Retry-After honoured: {waits:?}"
    );
    assert!(
        waits[1] >= Duration::from_millis(1000) && waits[1] <= Duration::from_millis(1500),
        "backoff with jitter: {waits:?}"
    );
    // An hour-long Retry-After is not waited for.
    let e = f.fetch(&Request::get(s.url("/far"))).unwrap_err();
    assert!(e.to_string().contains("retry after 3600 s"), "{e}");
    // A server that stays down: the last answer comes back after the retries.
    let r = f.fetch(&Request::get(s.url("/down"))).unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(s.seen().iter().filter(|x| x.path == "/down").count(), 4);
}

#[test]
fn the_cache_answers_fresh_then_offline_with_its_age_and_never_stores_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(Arc::new(|_, n| (200, vec![], format!("answer {n}"))));
    let endpoints = Endpoints {
        hf: s.url(""),
        ..Endpoints::default()
    };
    let f = Fetcher::new(endpoints.clone(), secrets(), Some(Cache::new(dir.path())));
    let req = Request::get(s.url("/api/papers/1")).with(Credential::Hf);
    let a = f.fetch(&req).unwrap();
    assert_eq!((a.text().as_str(), a.cache_age), ("answer 0", None));
    let b = f.fetch(&req).unwrap();
    assert_eq!(b.text(), "answer 0");
    assert!(b.cache_age.is_some() && !b.stale);
    assert_eq!(
        s.seen().len(),
        1,
        "the second call was answered from the cache"
    );
    // A zero TTL goes to the network.
    let c = f.fetch(&req.clone().ttl(Duration::ZERO)).unwrap();
    assert_eq!(c.text(), "answer 1");
    // Offline: the cache answers whatever its age; what is not cached is a typed error.
    let off = Fetcher::new(endpoints, secrets(), Some(Cache::new(dir.path()))).offline(true);
    let d = off.fetch(&req.clone().ttl(Duration::ZERO)).unwrap();
    assert!(d.cache_age.is_some() && d.stale, "{d:?}");
    let e = off.fetch(&Request::get(s.url("/never"))).unwrap_err();
    assert!(e.to_string().contains("offline and nothing cached"), "{e}");
    // The token is in no cache file.
    for e in walk(dir.path()) {
        let t = std::fs::read_to_string(&e).unwrap_or_default();
        assert!(!t.contains(HF), "{}", e.display());
    }
}

#[test]
fn an_unreachable_host_falls_back_to_a_stale_entry_and_oversized_bodies_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = Server::start(Arc::new(|_, _| (200, vec![], "x".repeat(5000))));
    let f = Fetcher::new(
        Endpoints::default(),
        Secrets::default(),
        Some(Cache::new(dir.path())),
    );
    let e = f
        .fetch(&Request::get(big.url("/big")).max_bytes(1000))
        .unwrap_err();
    assert!(e.to_string().contains("more than 1000 bytes"), "{e}");
    // One answer, then the host goes away.
    let s = Server::start_n(Arc::new(|_, _| (200, vec![], "cached".into())), 1);
    let url = s.url("/p");
    let pacing = Pacing {
        retries: 0,
        ..Pacing::default()
    };
    let g = Fetcher::with_pacing(
        Endpoints::default(),
        Secrets::default(),
        Some(Cache::new(dir.path())),
        pacing,
    );
    assert_eq!(g.fetch(&Request::get(&url)).unwrap().text(), "cached");
    std::thread::sleep(Duration::from_millis(100));
    // Expired (TTL zero) and unreachable: the stale answer, marked stale, with its age.
    let r = g.fetch(&Request::get(&url).ttl(Duration::ZERO)).unwrap();
    assert_eq!(r.text(), "cached");
    assert!(r.stale && r.cache_age.is_some(), "{r:?}");
    // Unreachable and never cached: a transport error.
    let e = g.fetch(&Request::get(s.url("/other"))).unwrap_err();
    assert!(e.to_string().contains("cannot reach"), "{e}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
