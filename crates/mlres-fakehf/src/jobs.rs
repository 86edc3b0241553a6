//! Jobs API: hardware, create (strictly validated, really run as a subprocess), get, list
//! (filters, `Link` pagination), cancel, labels, SSE logs; scheduled jobs (counted).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::http::{self, Request, Response};
use crate::state::{Job, State, can_write, iso};
use crate::{Reply, require_caller};

pub(crate) fn route(req: &Request, state: &Arc<State>, rest: &[&str]) -> Reply {
    let r = match (req.method.as_str(), rest) {
        ("GET", ["hardware"]) => hardware(state),
        ("POST", [ns]) => create(req, state, ns),
        ("GET", [ns]) => list(req, state, ns),
        ("GET", [ns, id]) => with_job(req, state, ns, id, false, |j| {
            Response::json(200, &job_json(j))
        }),
        ("POST", [ns, id, "cancel"]) => cancel(req, state, ns, id),
        ("PUT", [ns, id, "labels"]) => labels(req, state, ns, id),
        ("GET", [ns, id, "logs"]) => {
            let check = with_job(req, state, ns, id, false, |_| {
                Response::json(200, &serde_json::json!({}))
            });
            if check.status != 200 {
                return Reply::Full(check);
            }
            return Reply::Sse {
                namespace: (*ns).into(),
                id: (*id).into(),
                tail: req.query_one("tail").and_then(|t| t.parse().ok()),
            };
        }
        _ => Response::error(404, None, "no such jobs route"),
    };
    Reply::Full(r)
}

/// The accelerator of a flavor, derived from its name as the catalog describes them
/// (`a10g-largex2`: two Nvidia A10G with 24 GB each).
fn accelerator(name: &str) -> Option<serde_json::Value> {
    const GPUS: &[(&str, &str, &str)] = &[
        ("t4-", "T4", "16 GB"),
        ("a10g-", "A10G", "24 GB"),
        ("a100", "A100", "80 GB"),
        ("h200", "H200", "141 GB"),
        ("l40s", "L40S", "48 GB"),
        ("l4x", "L4", "24 GB"),
        ("rtx-pro-6000", "RTX PRO 6000", "96 GB"),
    ];
    let (_, model, vram) = GPUS.iter().find(|(p, _, _)| name.starts_with(p))?;
    let quantity = name
        .rsplit_once('x')
        .and_then(|(_, n)| n.parse::<u32>().ok())
        .unwrap_or(1);
    Some(serde_json::json!({
        "type": "gpu", "model": model, "quantity": quantity.to_string(), "vram": vram,
        "manufacturer": "Nvidia",
    }))
}

/// `GET /api/jobs/hardware`: every field `huggingface_hub`'s `JobHardwareInfo` requires
/// (`unitCostMicroUSD`, `unitCostUSD` and `unitLabel` included) on every entry; a flavor
/// without a price has them `null`.
fn hardware(state: &State) -> Response {
    let items: Vec<serde_json::Value> = state
        .flavors
        .iter()
        .map(|f| {
            let p = f.micro_usd_per_minute;
            serde_json::json!({
                "name": f.name, "prettyName": f.name, "cpu": f.cpu, "ram": f.ram,
                "ephemeralStorage": "50 GB", "accelerator": accelerator(&f.name),
                "unitCostMicroUSD": p,
                "unitCostUSD": p.map(|p| p as f64 / 1e6),
                "unitLabel": "minute",
            })
        })
        .collect();
    Response::json(200, &serde_json::Value::Array(items))
}

pub(crate) fn job_json(j: &Job) -> serde_json::Value {
    let (s, r, t) = j.durations();
    serde_json::json!({
        "id": j.id,
        "createdAt": iso(j.created.1),
        "startedAt": j.started.map(|s| iso(s.1)),
        "finishedAt": j.finished.map(|s| iso(s.1)),
        "dockerImage": j.docker_image, "spaceId": null,
        "command": j.command, "arguments": [],
        "environment": j.environment,
        "secrets": j.secret_names.iter().map(|n| (n.clone(), serde_json::Value::Null)).collect::<serde_json::Map<_, _>>(),
        "flavor": j.flavor, "labels": j.labels, "volumes": null,
        "timeoutSeconds": j.timeout_seconds,
        "status": {"stage": j.stage, "message": j.message},
        "durations": {"schedulingSecs": s.round() as u64, "runningSecs": r, "totalSecs": t},
        "owner": {"id": &crate::sha256_hex(j.namespace.as_bytes())[..24], "name": j.namespace, "type": if j.namespace == j.initiator { "user" } else { "org" }},
        "initiator": {"type": "user", "id": &crate::sha256_hex(j.initiator.as_bytes())[..24], "name": j.initiator},
    })
}

fn with_job(
    req: &Request,
    state: &State,
    ns: &str,
    id: &str,
    write: bool,
    f: impl FnOnce(&mut Job) -> Response,
) -> Response {
    let t = match require_caller(req, state) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let allowed = if write {
        can_write(&t, ns, None, "job")
    } else {
        crate::can_read(&t, ns)
    };
    if !allowed {
        return Response::error(
            403,
            None,
            &format!("You don't have access to jobs in namespace {ns}"),
        );
    }
    let mut g = state.lock();
    match g.jobs.iter_mut().find(|j| j.id == id && j.namespace == ns) {
        Some(j) => f(j),
        None => Response::error(
            404,
            Some("JobNotFound"),
            &format!("Job {id} not found in {ns}"),
        ),
    }
}

/// Label keys and values as `huggingface_hub` documents them (`update_job_labels`): at most
/// 100 characters, only alphanumerics, dashes and underscores.
fn label_ok(s: &str) -> bool {
    s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// `environment` is `dict[str, Any]` in `huggingface_hub`'s `run_job`, sent as given: other
/// clients put numbers, booleans and nulls there, and the API reports them back as sent.
fn scalar_map(
    v: &serde_json::Value,
    field: &str,
) -> Result<BTreeMap<String, serde_json::Value>, String> {
    match v {
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::Array(_) | serde_json::Value::Object(_) => Err(format!(
                    "{field}.{k} must be a string, number, boolean or null"
                )),
                v => Ok((k.clone(), v.clone())),
            })
            .collect(),
        _ => Err(format!("{field} must be an object")),
    }
}

/// What a process sees for an `environment` value: a string as it is, a number or boolean as
/// its JSON text; `null` is not set.
fn env_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn string_map(v: &serde_json::Value, field: &str) -> Result<BTreeMap<String, String>, String> {
    match v {
        serde_json::Value::Null => Ok(BTreeMap::new()),
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some(s) => Ok((k.clone(), s.to_string())),
                None => Err(format!("{field}.{k} must be a string")),
            })
            .collect(),
        _ => Err(format!("{field} must be an object of strings")),
    }
}

struct Validated {
    command: Vec<String>,
    environment: BTreeMap<String, serde_json::Value>,
    secrets: BTreeMap<String, String>,
    flavor: String,
    image: String,
    timeout: u64,
    labels: BTreeMap<String, String>,
}

fn validate(state: &State, body: &[u8]) -> Result<Validated, Response> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Response::error(400, None, &format!("Invalid JSON body: {e}")))?;
    let bad = |m: String| Response::error(422, None, &m);
    let obj = v
        .as_object()
        .ok_or_else(|| bad("body must be an object".into()))?;
    const KNOWN: &[&str] = &[
        "command",
        "arguments",
        "environment",
        "secrets",
        "flavor",
        "dockerImage",
        "spaceId",
        "timeoutSeconds",
        "labels",
        "arch",
    ];
    if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(bad(format!("unknown field {k:?}")));
    }
    let command: Vec<String> = match obj.get("command") {
        Some(serde_json::Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("command must be an array of strings".into()))?,
        _ => {
            return Err(bad(
                "command is required and must be a non-empty array of strings".into(),
            ));
        }
    };
    if let Some(a) = obj.get("arguments")
        && !a
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x.is_string()))
    {
        return Err(bad("arguments must be an array of strings".into()));
    }
    let environment = match obj.get("environment") {
        Some(e) if e.is_object() => scalar_map(e, "environment").map_err(bad)?,
        _ => return Err(bad("environment is required (an object)".into())),
    };
    let secrets = string_map(
        obj.get("secrets").unwrap_or(&serde_json::Value::Null),
        "secrets",
    )
    .map_err(bad)?;
    let flavor = obj
        .get("flavor")
        .and_then(|f| f.as_str())
        .ok_or_else(|| bad("flavor is required".into()))?;
    if !state.flavors.iter().any(|f| f.name == flavor) {
        return Err(bad(format!("unknown flavor {flavor:?}")));
    }
    let image = match (obj.get("dockerImage"), obj.get("spaceId")) {
        (Some(serde_json::Value::String(i)), None) if !i.is_empty() => i.clone(),
        (None, Some(serde_json::Value::String(s))) if !s.is_empty() => format!("space:{s}"),
        _ => {
            return Err(bad(
                "exactly one of dockerImage and spaceId must be a non-empty string".into(),
            ));
        }
    };
    let timeout = match obj.get("timeoutSeconds") {
        None => 1800,
        Some(t) => match t.as_u64() {
            Some(n) if n > 0 && t.is_u64() => n,
            _ => {
                return Err(bad(format!(
                    "timeoutSeconds must be a positive integer, got {t}"
                )));
            }
        },
    };
    let labels = string_map(
        obj.get("labels").unwrap_or(&serde_json::Value::Null),
        "labels",
    )
    .map_err(bad)?;
    if let Some((k, val)) = labels
        .iter()
        .find(|(k, v)| k.is_empty() || !label_ok(k) || !label_ok(v))
    {
        return Err(bad(format!(
            "invalid label {k:?}={val:?}: at most 100 of [A-Za-z0-9_-]"
        )));
    }
    Ok(Validated {
        command,
        environment,
        secrets,
        flavor: flavor.into(),
        image,
        timeout,
        labels,
    })
}

fn create(req: &Request, state: &Arc<State>, ns: &str) -> Response {
    let t = match require_caller(req, state) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if !can_write(&t, ns, None, "job") {
        return Response::error(
            403,
            None,
            &format!("You don't have write access to namespace {ns}"),
        );
    }
    let v = match validate(state, &req.body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let price = state
        .flavors
        .iter()
        .find(|f| f.name == v.flavor)
        .and_then(|f| f.micro_usd_per_minute)
        .unwrap_or(0);
    let mut g = state.lock();
    if let Some(balance) = g.credits.get(ns).copied() {
        let spent: u64 = g
            .jobs
            .iter()
            .filter(|j| j.namespace == ns)
            .map(Job::cost_micro_usd)
            .sum();
        if balance - spent as i64 <= 0 {
            return Response::error(
                402,
                None,
                &format!(
                    "Insufficient credits on namespace {ns}. Add credits at https://huggingface.co/settings/billing"
                ),
            );
        }
    }
    let n = g.next_job;
    g.next_job += 1;
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let id = format!("{:08x}{:016x}", secs as u32, n);
    let job = Job {
        id: id.clone(),
        namespace: ns.into(),
        initiator: t.user.clone(),
        command: v.command.clone(),
        environment: v.environment.clone(),
        secret_names: v.secrets.keys().cloned().collect(),
        flavor: v.flavor,
        docker_image: v.image,
        timeout_seconds: v.timeout,
        labels: v.labels,
        stage: "SCHEDULING".into(),
        message: None,
        created: (Instant::now(), now),
        started: None,
        finished: None,
        log: Vec::new(),
        cancel_requested: false,
        exit_code: None,
        micro_usd_per_minute: price,
    };
    let body = job_json(&job);
    g.jobs.push(job);
    drop(g);
    let mut env: BTreeMap<String, String> = v
        .environment
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), env_text(v)?)))
        .collect();
    env.extend(v.secrets);
    let st = state.clone();
    let jid = id.clone();
    std::thread::spawn(move || run_job(&st, &jid, v.command, env, v.timeout));
    Response::json(200, &body)
}

fn update(state: &State, id: &str, f: impl FnOnce(&mut Job)) {
    {
        let mut g = state.lock();
        if let Some(j) = g.jobs.iter_mut().find(|j| j.id == id) {
            f(j);
        }
    }
    state.changed.notify_all();
}

fn push_line(state: &State, id: &str, line: String) {
    update(state, id, |j| j.log.push((line, iso(SystemTime::now()))));
}

fn finish(state: &State, id: &str, stage: &str, message: Option<String>, code: Option<i32>) {
    update(state, id, |j| {
        if j.is_terminal() {
            return;
        }
        j.stage = stage.into();
        j.message = message;
        j.exit_code = code;
        let now = (Instant::now(), SystemTime::now());
        if j.started.is_none() {
            j.started = Some(now);
        }
        j.finished = Some(now);
    });
}

/// Where the fake keeps the programs a job image would provide (see [`install_uv_shim`]).
fn shim_dir(work_root: &std::path::Path) -> std::path::PathBuf {
    work_root.join(".fake-image-bin")
}

/// A job's `PATH`: the image stand-ins first, then the host's system directories.
fn job_path(work_root: &std::path::Path) -> String {
    format!(
        "{}:/usr/local/bin:/usr/bin:/bin",
        shim_dir(work_root).display()
    )
}

/// The fake runs jobs on the host, not in their image. `hf jobs uv run` jobs use an image
/// with `uv` (`ghcr.io/astral-sh/uv:python3.12-bookworm`), so the fake provides a stand-in:
/// `uv run [--with DEP]... [--python VERSION] SCRIPT ARGS...` runs SCRIPT with the host's
/// `python3`. Dependencies (`--with`, PEP 723 blocks) are not installed.
pub(crate) fn install_uv_shim(work_root: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = shim_dir(work_root);
    std::fs::create_dir_all(&dir)?;
    let uv = dir.join("uv");
    std::fs::write(
        &uv,
        "#!/bin/sh\n\
         # mlres-fakehf stand-in for uv: `uv run [--with D]... [--python V] SCRIPT ARGS` runs\n\
         # SCRIPT with python3; dependencies are not installed.\n\
         [ \"$1\" = run ] || { echo \"fake uv: only 'uv run' is supported\" >&2; exit 2; }\n\
         shift\n\
         while [ $# -gt 0 ]; do\n\
         \x20 case \"$1\" in --with|--python|-p) shift 2 ;; *) break ;; esac\n\
         done\n\
         exec python3 \"$@\"\n",
    )?;
    std::fs::set_permissions(&uv, std::fs::Permissions::from_mode(0o755))
}

fn run_job(
    state: &Arc<State>,
    id: &str,
    command: Vec<String>,
    env: BTreeMap<String, String>,
    timeout: u64,
) {
    std::thread::sleep(state.scheduling_delay);
    let canceled = |st: &State| {
        st.lock()
            .jobs
            .iter()
            .any(|j| j.id == id && j.cancel_requested)
    };
    if canceled(state) {
        finish(state, id, "CANCELED", Some("Canceled by user".into()), None);
        return;
    }
    let dir = state.work_root.join(id);
    if std::fs::create_dir_all(&dir).is_err() {
        finish(
            state,
            id,
            "ERROR",
            Some("could not create work dir".into()),
            None,
        );
        return;
    }
    update(state, id, |j| {
        j.stage = "RUNNING".into();
        let now = SystemTime::now();
        j.started = Some((Instant::now(), now));
        j.log
            .push((format!("===== Job started at {} =====", iso(now)), iso(now)));
    });
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .env_clear()
        .env("PATH", job_path(&state.work_root))
        .env("HOME", &dir)
        .envs(&env)
        .current_dir(&dir)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            push_line(state, id, format!("exec {:?} failed: {e}", command[0]));
            finish(
                state,
                id,
                "ERROR",
                Some(format!("could not start the command: {e}")),
                None,
            );
            return;
        }
    };
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        let (st, jid) = (state.clone(), id.to_string());
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                push_line(&st, &jid, line);
            }
        }));
    }
    if let Some(err) = child.stderr.take() {
        let (st, jid) = (state.clone(), id.to_string());
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                push_line(&st, &jid, line);
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let outcome = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) => {}
            Err(e) => break Err(format!("wait failed: {e}")),
        }
        if canceled(state) {
            kill_group(&mut child);
            break Err("CANCELED".into());
        }
        if Instant::now() >= deadline {
            kill_group(&mut child);
            break Err(format!("Job timed out after {timeout} seconds"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    for r in readers {
        let _ = r.join();
    }
    match outcome {
        Ok(status) if status.success() => finish(state, id, "COMPLETED", None, Some(0)),
        Ok(status) => {
            let code = status.code();
            finish(
                state,
                id,
                "ERROR",
                Some(format!("Job failed with exit code: {}", code.unwrap_or(-1))),
                code,
            );
        }
        Err(m) if m == "CANCELED" => {
            finish(state, id, "CANCELED", Some("Canceled by user".into()), None)
        }
        Err(m) => finish(state, id, "ERROR", Some(m), None),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Kill the job's whole process group (its children hold the log pipes open).
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

fn list(req: &Request, state: &State, ns: &str) -> Response {
    let t = match require_caller(req, state) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if !crate::can_read(&t, ns) {
        return Response::error(
            403,
            None,
            &format!("You don't have access to jobs in namespace {ns}"),
        );
    }
    let stages: Vec<&str> = req.query_all("stage");
    let labels: Vec<(&str, &str)> = req
        .query_all("label")
        .into_iter()
        .map(|l| l.split_once('=').unwrap_or((l, "")))
        .collect();
    let g = state.lock();
    let all: Vec<serde_json::Value> = g
        .jobs
        .iter()
        .filter(|j| j.namespace == ns)
        .filter(|j| stages.is_empty() || stages.contains(&j.stage.as_str()))
        .filter(|j| {
            labels
                .iter()
                .all(|(k, v)| j.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|j| {
            let mut v = job_json(j);
            if let (Some(o), Some(fields)) = (v.as_object_mut(), g.job_list_overrides.get(&j.id)) {
                o.extend(fields.clone());
            }
            v
        })
        .collect();
    let page = g.jobs_page_size;
    drop(g);
    if page == 0 {
        return Response::json(200, &serde_json::Value::Array(all));
    }
    let start: usize = req
        .query_one("cursor")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let end = (start + page).min(all.len());
    let items = all.get(start..end).unwrap_or(&[]).to_vec();
    let mut r = Response::json(200, &serde_json::Value::Array(items));
    if end < all.len() {
        let mut q: Vec<String> = req
            .query
            .iter()
            .filter(|(k, _)| k != "cursor")
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        q.push(format!("cursor={end}"));
        r = r.with_header(
            "Link",
            &format!(
                "<{}{}?{}>; rel=\"next\"",
                req.base_url(),
                req.path,
                q.join("&")
            ),
        );
    }
    r
}

pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn cancel(req: &Request, state: &State, ns: &str, id: &str) -> Response {
    let r = with_job(req, state, ns, id, true, |j| {
        j.cancel_requested = true;
        Response::json(200, &serde_json::json!({}))
    });
    state.changed.notify_all();
    r
}

fn labels(req: &Request, state: &State, ns: &str, id: &str) -> Response {
    let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
    let labels = match string_map(&v["labels"], "labels") {
        Ok(l) if l.iter().all(|(k, v)| label_ok(k) && label_ok(v)) => l,
        _ => {
            return Response::error(
                422,
                None,
                "labels must be an object of [A-Za-z0-9_-]{0,100} strings",
            );
        }
    };
    with_job(req, state, ns, id, true, |j| {
        j.labels = labels;
        Response::json(200, &job_json(j))
    })
}

pub(crate) fn scheduled(req: &Request, state: &State) -> Response {
    state.lock().scheduled_calls += 1;
    if let Err(r) = require_caller(req, state) {
        return r;
    }
    match req.method.as_str() {
        "GET" if req.segments().len() == 3 => Response::json(200, &serde_json::json!([])),
        _ => Response::error(404, Some("ScheduledJobNotFound"), "scheduled job not found"),
    }
}

/// Serve `GET /api/jobs/{ns}/{id}/logs` as SSE until the job ends (or a drop is injected).
pub(crate) fn stream_logs(
    stream: &mut TcpStream,
    state: &State,
    ns: &str,
    id: &str,
    tail: Option<usize>,
) {
    if http::write_stream_head(stream, "text/event-stream").is_err() {
        return;
    }
    let drop_after = state.lock().sse_drops.pop_front();
    let mut sent_on_conn = 0usize;
    let mut cursor: Option<usize> = None;
    let mut g = state.lock();
    loop {
        let keepalive = g.keepalive;
        let Some(job) = g.jobs.iter().find(|j| j.id == id && j.namespace == ns) else {
            break;
        };
        let start = *cursor.get_or_insert_with(|| match tail {
            Some(n) => job.log.len().saturating_sub(n),
            None => 0,
        });
        let pending: Vec<(String, String)> = job.log[start.min(job.log.len())..].to_vec();
        let terminal = job.is_terminal();
        drop(g);
        for (line, ts) in &pending {
            if drop_after == Some(sent_on_conn) {
                let _ = stream.shutdown(std::net::Shutdown::Both);
                return;
            }
            let ev = serde_json::json!({"data": line, "timestamp": ts});
            if http::write_chunk(stream, format!("data: {ev}\n\n").as_bytes()).is_err() {
                return;
            }
            sent_on_conn += 1;
        }
        cursor = Some(start + pending.len());
        if terminal {
            if drop_after == Some(sent_on_conn) {
                let _ = stream.shutdown(std::net::Shutdown::Both);
                return;
            }
            let _ = http::write_last_chunk(stream);
            return;
        }
        g = state.lock();
        let unchanged = |g: &crate::Inner| {
            g.jobs
                .iter()
                .find(|j| j.id == id)
                .is_some_and(|j| j.log.len() == start + pending.len() && !j.is_terminal())
        };
        if unchanged(&g) {
            let (ng, res) = state
                .changed
                .wait_timeout_while(g, keepalive, |g| unchanged(g))
                .unwrap_or_else(|e| e.into_inner());
            g = ng;
            if res.timed_out() {
                drop(g);
                if http::write_chunk(stream, b": keep-alive\n\n").is_err() {
                    return;
                }
                g = state.lock();
            }
        }
    }
    drop(g);
    let _ = http::write_last_chunk(stream);
}

/// Create a job as another client would (`POST /api/jobs/{ns}` with `token` and this raw
/// body, through the same validation), e.g. a foreign job whose `environment` holds numbers:
/// the job's JSON on success, `(status, body)` on refusal.
pub fn create_job_as(
    state: &Arc<State>,
    token: &str,
    ns: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, (u16, String)> {
    let req = Request {
        method: "POST".into(),
        path: format!("/api/jobs/{ns}"),
        query: Vec::new(),
        headers: vec![
            ("authorization".into(), format!("Bearer {token}")),
            ("content-type".into(), "application/json".into()),
        ],
        body: serde_json::to_vec(body).unwrap_or_default(),
    };
    let r = create(&req, state, ns);
    if r.status == 200 {
        serde_json::from_slice(&r.body).map_err(|e| (r.status, e.to_string()))
    } else {
        Err((r.status, String::from_utf8_lossy(&r.body).into_owned()))
    }
}
