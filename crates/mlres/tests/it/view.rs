//! `mlres report` and `mlres serve` in a real browser: Debian's headless Chromium driven over
//! WebDriver (chromedriver + fantoccini). The report of a finished campaign and the dashboard
//! of a running one must draw the right number of points, show agent-written HTML as text,
//! follow a job's metric lines as they are written, refuse requests without the token, and
//! listen on loopback only. Screenshots are kept in `<target>/screenshots/`.
//!
//! Without chromium and chromedriver these tests say loudly that they were skipped, except
//! in CI (`CI` set), where they fail: `.ci/run` installs both.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

use crate::support::{Env, Fast};

const HOSTILE: &str =
    "<script>window.__pwned=1</script>\"><img src=x onerror=\"window.__pwned=2\"> & <b>bold</b>";

/// A child process killed when the test ends (only the one this test started).
struct Kill(Child);

/// chromedriver in a process group of its own, which it shares with the browsers it starts:
/// the whole group is killed when the test ends, so a failing test leaves no browser behind.
struct KillGroup(Child);
impl Drop for KillGroup {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // SAFETY: kill(2) with a negative pid signals that process group; it touches no
            // memory of ours.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.0.wait();
    }
}
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

/// Chromium and chromedriver, or `None` (skipped, loudly) outside CI.
fn browser_bins() -> Option<(PathBuf, PathBuf)> {
    let chromium = on_path("chromium").or_else(|| on_path("chromium-browser"));
    let driver = on_path("chromedriver");
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but chromium/chromedriver are missing: `.ci/run` must install \
                 `chromium chromium-driver`"
            );
            eprintln!(
                "\n*** SKIPPED: the browser tests need Debian's `chromium` and `chromium-driver` \
                 (apt-get install -y chromium chromium-driver); they run in CI ***\n"
            );
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver on a free port and a headless Chromium session.
async fn browser(chromium: &Path, driver: &Path) -> (KillGroup, Client) {
    use std::os::unix::process::CommandExt;
    let port = free_port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let guard = KillGroup(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,2400", "--hide-scrollbars"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("WebDriver session");
    (guard, client)
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// Polls `script` until it returns `want` (the page renders asynchronously).
async fn wait_js(c: &Client, script: &str, want: Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = js(c, script).await;
        if got == want {
            return;
        }
        if Instant::now() > deadline {
            let live = js(c, "return document.getElementById('live') && document.getElementById('live').textContent").await;
            panic!("{script}: waited for {want}, still {got} (live: {live})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn screenshots() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    let path = screenshots().join(name);
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

fn submit(env: &Env, config: &str, hypothesis: &str) -> String {
    let v = env.json(&[
        "exp",
        "submit",
        "--config",
        config,
        "--hypothesis",
        hypothesis,
        "--json",
    ]);
    v["id"].as_i64().unwrap().to_string()
}

/// A finished campaign of 4 jobs, each printing 5 metric lines with their step.
fn finished_campaign() -> Env {
    let env = Env::new();
    env.write_program(
        &Fast {
            max_jobs: 4,
            values: "[1, 2, 3]",
            script: "for s in 1 2 3 4 5; do echo step=$s loss=$((10 - s - {x})) score=$((s * {x})); done",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    submit(&env, r#"{"x": 2}"#, HOSTILE);
    env.ok(&["loop", "run"]);
    env
}

/// The report data with what differs between runs (times, temp paths, the approver's uid,
/// durations, chain hashes) replaced by placeholders.
fn stable(mut v: Value) -> Value {
    let cid = v["campaign"]["id"].as_str().unwrap().to_string();
    v["campaign"]["created"] = json!("[time]");
    v["campaign"]["id"] = json!("[campaign]");
    v["approval"]["approved_at"] = json!("[time]");
    v["approval"]["approver"] = json!("[approver]");
    for g in v["budget"].as_array_mut().unwrap() {
        if g["name"] == "walltime" {
            g["used"] = json!("[walltime]");
        }
    }
    for e in v["experiments"].as_array_mut().unwrap() {
        e["duration_ms"] = json!("[duration]");
    }
    let kinds: Vec<Value> = v["audit"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].clone())
        .collect();
    v["audit"]["events"] = json!(kinds);
    v["audit"]["verified_events"] = json!("[n]");
    v["audit"]["head_seq"] = json!("[n]");
    let s = serde_json::to_string(&v)
        .unwrap()
        .replace(&cid, "[campaign]");
    serde_json::from_str(&s).unwrap()
}

fn stable_summary(md: &str, campaign: &str) -> String {
    md.lines()
        .map(|l| {
            let l = l.replace(campaign, "[campaign]");
            if l.starts_with("- Approved by") {
                "- Approved by [approver] at [time] (approval 1, sha256 [hash])".to_string()
            } else if let Some(rest) = l.strip_prefix("- Budget: ") {
                // walltime is the jobs' real durations
                let parts: Vec<String> = rest
                    .split(", ")
                    .map(|p| {
                        if p.ends_with(" walltime") {
                            "[used]/1h walltime".to_string()
                        } else {
                            p.to_string()
                        }
                    })
                    .collect();
                format!("- Budget: {}", parts.join(", "))
            } else if l.starts_with("| ") && !l.starts_with("| iter") {
                let mut cells: Vec<String> = l.split(" | ").map(String::from).collect();
                cells[7] = "[duration]".into();
                cells.join(" | ")
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn report_data_and_summary_are_what_the_ledger_and_logs_hold() {
    let env = finished_campaign();
    let out = env.json(&["report", "--json"]);
    let html = std::fs::read_to_string(out["report_html"].as_str().unwrap()).unwrap();
    // The agent's text is inside the data block only, with nothing that could close it.
    assert!(
        !html.contains("<script>window.__pwned"),
        "raw hypothesis in the page"
    );
    assert!(!html.contains("<img"), "raw hypothesis in the page");
    assert!(
        !html.contains("src=\"http"),
        "the report loads nothing from the network"
    );
    let start = html.find("type=\"application/json\">").unwrap() + 24;
    let end = start + html[start..].find("</script>").unwrap();
    let data: Value = serde_json::from_str(&html[start..end]).unwrap();
    assert_eq!(data["experiments"][0]["hypothesis"], HOSTILE);
    let campaign = data["campaign"]["id"].as_str().unwrap().to_string();
    insta::assert_snapshot!(
        "report_data",
        serde_json::to_string_pretty(&stable(data)).unwrap()
    );
    let md = std::fs::read_to_string(env.project.join("runs/summary.md")).unwrap();
    assert!(!md.contains("<script>"), "{md}");
    insta::assert_snapshot!("summary_md", stable_summary(&md, &campaign));
}

#[test]
fn report_refuses_an_unknown_campaign() {
    let env = finished_campaign();
    let out = env.run(&["report", "--campaign", "c-nope-1"]);
    assert_eq!(
        crate::support::code(&out),
        3,
        "{}",
        crate::support::stderr(&out)
    );
    assert!(
        crate::support::stderr(&out).contains("no campaign c-nope-1"),
        "{}",
        crate::support::stderr(&out)
    );
    assert!(!env.project.join("runs/report.html").exists());
}

#[tokio::test(flavor = "current_thread")]
async fn the_report_of_a_finished_campaign_renders_in_chromium() {
    let Some((chromium, driver)) = browser_bins() else {
        return;
    };
    let env = finished_campaign();
    let out = env.json(&["report", "--json"]);
    let html = PathBuf::from(out["report_html"].as_str().unwrap());
    let (_driver, c) = browser(&chromium, &driver).await;
    c.goto(&format!("file://{}", html.display())).await.unwrap();
    wait_js(
        &c,
        "return document.getElementById('app').getAttribute('data-rendered')",
        json!("1"),
    )
    .await;
    // 4 experiments, all completed: a best-so-far point after each.
    assert_eq!(
        js(
            &c,
            "return document.querySelectorAll('#chart-best circle.pt').length"
        )
        .await,
        4
    );
    // One loss curve per experiment, 5 points each (steps 1..5).
    assert_eq!(
        js(&c, "return document.querySelectorAll('svg[data-metric=\"loss\"] polyline[data-exp]').length").await,
        4
    );
    for exp in 1..=4 {
        let n = js(
            &c,
            &format!("return document.querySelector('svg[data-metric=\"loss\"] polyline[data-exp=\"{exp}\"]').getAttribute('points').trim().split(/\\s+/).length"),
        )
        .await;
        assert_eq!(n, 5, "experiment {exp}");
    }
    // The scatter has one point per experiment with a metric.
    assert_eq!(
        js(
            &c,
            "return document.querySelectorAll('svg[data-param=\"x\"] circle.pt').length"
        )
        .await,
        4
    );
    assert_eq!(
        js(
            &c,
            "return document.querySelectorAll('#experiments tbody tr').length"
        )
        .await,
        4
    );
    // The hostile hypothesis is text: no element was made of it, no script of it ran.
    assert_eq!(
        js(&c, "return document.querySelector('#experiments tr[data-exp=\"1\"] td.c-hypothesis').textContent").await,
        HOSTILE
    );
    assert_eq!(
        js(
            &c,
            "return document.querySelectorAll('#app img, #app b').length"
        )
        .await,
        0
    );
    assert_eq!(js(&c, "return typeof window.__pwned").await, "undefined");
    assert_eq!(
        js(&c, "return document.getElementById('verify').className").await,
        "ok"
    );
    screenshot(&c, "report.png").await;
    c.close().await.unwrap();
}

/// `mlres serve` as a child; returns it and the URL it printed.
fn serve(env: &Env, extra: &[&str]) -> (Kill, String) {
    let mut cmd = env.cmd();
    cmd.args(["serve", "--port", "0"]).args(extra);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut url = String::new();
    for _ in 0..3 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        if let Some(u) = line.strip_prefix("Open: ") {
            url = u.trim().to_string();
            break;
        }
    }
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    (Kill(child), url)
}

/// A raw HTTP/1.1 request; returns the status code.
fn http_status(port: u16, request: &str) -> u16 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    head.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0)
}

/// The local addresses of `pid`'s listening TCP sockets, from /proc.
fn listening(pid: u32) -> Vec<String> {
    let mut inodes = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        if let Ok(t) = std::fs::read_link(fd.path()) {
            let t = t.to_string_lossy().to_string();
            if let Some(i) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                inodes.push(i.to_string());
            }
        }
    }
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address, st (0A = LISTEN), inode
            if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
                out.push(f[1].to_string());
            }
        }
    }
    out
}

#[tokio::test(flavor = "current_thread")]
async fn the_dashboard_follows_a_running_job_in_chromium() {
    let Some((chromium, driver)) = browser_bins() else {
        return;
    };
    let env = Env::new();
    // Each step waits for the test's gate file, so the test decides when a line appears.
    env.write_program(
        &Fast {
            max_jobs: 2,
            values: "[1, 2, 3]",
            timeout: "5m",
            script: "echo step=1 loss=9 score=1; while [ ! -e {project}/g1 ]; do sleep 0.05; done; \
                     echo step=2 loss=7 score=2; while [ ! -e {project}/g2 ]; do sleep 0.05; done; \
                     echo step=3 loss=4 score={x}",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let exp = submit(&env, r#"{"x": 3}"#, HOSTILE);
    let (server, url) = serve(&env, &[]);
    let port: u16 = url["http://127.0.0.1:".len()..]
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();

    // Loopback only, whatever its clients do.
    let addrs = listening(server.0.id());
    assert!(
        !addrs.is_empty(),
        "no listening socket found for the server"
    );
    for a in &addrs {
        assert!(a.starts_with("0100007F:"), "listens on {a}, not 127.0.0.1");
    }
    let out = env.run(&["serve", "--bind", "0.0.0.0", "--port", "0"]);
    assert_eq!(crate::support::code(&out), 2);
    assert!(crate::support::stderr(&out).contains("127.0.0.1 only"));

    // Without the token (or with another one, or another Host) nothing is served.
    let token = url.split("token=").nth(1).unwrap().to_string();
    let get = |path: &str, extra: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Connection: close\r\n\r\n")
    };
    assert_eq!(http_status(port, &get("/", "")), 401);
    assert_eq!(http_status(port, &get("/api/campaigns", "")), 401);
    assert_eq!(http_status(port, &get("/?token=0000", "")), 401);
    assert_eq!(
        http_status(port, &get("/api/campaigns", "X-Mlres-Token: 0000\r\n")),
        401
    );
    assert_eq!(
        http_status(
            port,
            &get("/api/campaigns", &format!("X-Mlres-Token: {token}\r\n"))
        ),
        200
    );
    assert_eq!(
        http_status(
            port,
            &format!(
                "GET /api/campaigns HTTP/1.1\r\nHost: attacker.example:{port}\r\nX-Mlres-Token: {token}\r\nConnection: close\r\n\r\n"
            )
        ),
        403
    );
    // Read-only: stop is refused even with the token.
    assert_eq!(
        http_status(
            port,
            &format!(
                "POST /api/campaigns/x/stop HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Mlres-Token: {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        ),
        403
    );

    let (_driver, c) = browser(&chromium, &driver).await;
    c.goto(&url).await.unwrap();
    // The token went into a cookie and out of the address bar.
    let here = c.current_url().await.unwrap();
    assert!(!here.as_str().contains("token"), "{here}");
    let row = format!("#experiments tr[data-exp=\"{exp}\"]");
    let curve = format!("svg[data-metric=\"loss\"] polyline[data-exp=\"{exp}\"]");
    let points = format!(
        "var p = document.querySelector('{curve}'); return p ? p.getAttribute('data-n') : null"
    );
    wait_js(&c, &points, json!("1")).await;
    assert_eq!(
        js(
            &c,
            &format!("return document.querySelector('{row} td.c-status').textContent")
        )
        .await,
        "submitted"
    );
    assert_eq!(
        js(
            &c,
            &format!("return document.querySelector('{row} td.c-hypothesis').textContent")
        )
        .await,
        HOSTILE
    );
    assert_eq!(js(&c, "return typeof window.__pwned").await, "undefined");
    assert_eq!(
        js(
            &c,
            "return document.querySelectorAll('#app img, #app b').length"
        )
        .await,
        0
    );

    // Each metric line the job writes appears without a reload.
    std::fs::write(env.project.join("g1"), "").unwrap();
    wait_js(&c, &points, json!("2")).await;
    screenshot(&c, "dashboard-running.png").await;
    std::fs::write(env.project.join("g2"), "").unwrap();
    wait_js(&c, &points, json!("3")).await;
    // Once evaluated (by the agent's `exp wait`), the row says so.
    env.ok(&["exp", "wait", &exp, "--timeout", "2m"]);
    wait_js(
        &c,
        &format!("return document.querySelector('{row} td.c-decision').textContent"),
        json!("keep"),
    )
    .await;
    assert_eq!(
        js(
            &c,
            &format!("return document.querySelector('{row} td.c-metric').textContent")
        )
        .await,
        "3"
    );
    assert_eq!(
        js(
            &c,
            "return document.querySelectorAll('#chart-best circle.pt').length"
        )
        .await,
        1
    );
    // The log panel shows the job's output as text.
    c.execute(&format!("document.querySelector('{row}').click()"), vec![])
        .await
        .unwrap();
    wait_js(
        &c,
        "return document.getElementById('log-text').textContent.indexOf('step=3 loss=4') >= 0",
        json!(true),
    )
    .await;
    screenshot(&c, "dashboard.png").await;
    c.close().await.unwrap();
    drop(server);
}

/// A raw HTTP/1.1 exchange; returns the status code and the body.
fn http(port: u16, request: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all).to_string();
    let status = text.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (status, body)
}

#[test]
fn allow_stop_stops_the_campaign_only_with_the_pages_csrf_header_and_origin() {
    let env = Env::new();
    env.write_program(
        &Fast {
            max_jobs: 2,
            timeout: "5m",
            script: "while [ ! -e {project}/never ]; do sleep 0.05; done; echo score={x}",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    submit(&env, r#"{"x": 1}"#, "blocked until stopped");
    let (_server, url) = serve(&env, &["--allow-stop"]);
    let port: u16 = url["http://127.0.0.1:".len()..]
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let token = url.split("token=").nth(1).unwrap().to_string();
    let campaign = env.json(&["loop", "status", "--json"])["campaign"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, page) = http(
        port,
        &format!(
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Mlres-Token: {token}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, 200);
    assert!(
        !page.contains(&token),
        "the page must not carry the access token"
    );
    let csrf = page
        .split("name=\"mlres-csrf\" content=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let post = |headers: &str| {
        http(
            port,
            &format!(
                "POST /api/campaigns/{campaign}/stop HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        )
    };
    // The token alone is not enough (a cross-site form could carry the cookie)...
    assert_eq!(post(&format!("X-Mlres-Token: {token}\r\n")).0, 403);
    // ...nor is the CSRF header from another origin, nor either without the token.
    assert_eq!(
        post(&format!(
            "X-Mlres-Token: {token}\r\nX-Mlres-Csrf: {csrf}\r\nOrigin: http://evil.example\r\n"
        ))
        .0,
        403
    );
    assert_eq!(post(&format!("X-Mlres-Csrf: {csrf}\r\n")).0, 401);
    let st = env.json(&["loop", "status", "--json"]);
    assert_eq!(st["campaign"]["stop_requested"], false, "{st}");
    let (status, body) = post(&format!(
        "X-Mlres-Token: {token}\r\nX-Mlres-Csrf: {csrf}\r\nOrigin: http://127.0.0.1:{port}\r\n"
    ));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["cancelled"], 1, "{v}");
    let st = env.json(&["loop", "status", "--json"]);
    assert!(
        st["campaign"]["stop_requested"] == true || st["campaign"]["status"] != "active",
        "{st}"
    );
    assert!(
        st["campaign"]["stop_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("stopped from the dashboard"),
        "{st}"
    );
}

/// The README's "See the campaign" commands, typed as written in a project directory.
#[test]
fn the_readme_see_the_campaign_commands_work_as_written() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let section = readme
        .split("\n## See the campaign\n")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    let mut cmds = Vec::new();
    let mut lines = section.lines();
    while let Some(l) = lines.next() {
        if l.trim() == "```sh" {
            cmds.push(lines.next().unwrap().trim().to_string());
        }
    }
    assert_eq!(cmds, ["mlres report", "mlres serve"]);
    let env = finished_campaign();
    let bin_dir = Path::new(crate::support::BIN)
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let sh = |cmd: &str| {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(cmd)
            .current_dir(&env.project)
            .env("PATH", &path)
            .env("MLRES_STATE_DIR", &env.state)
            .env("HOME", env.path())
            .env_remove("XDG_STATE_HOME");
        c
    };
    let out = sh(&cmds[0]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env.project.join("runs/report.html").is_file());
    assert!(env.project.join("runs/summary.md").is_file());
    assert!(env.project.join("runs/best-so-far.png").is_file());
    let mut child = sh(&format!("exec {}", cmds[1]))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let _guard = Kill(child);
    let mut first = String::new();
    let mut open = String::new();
    out.read_line(&mut first).unwrap();
    out.read_line(&mut open).unwrap();
    assert!(first.starts_with("mlres dashboard (read-only)"), "{first}");
    let url = open
        .strip_prefix("Open: http://127.0.0.1:")
        .unwrap_or_else(|| panic!("{open}"));
    let token = url.trim().split("/?token=").nth(1).unwrap();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
}
