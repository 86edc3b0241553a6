//! Dataset-viewer routes (`/is-valid`, `/splits`, `/info`, `/first-rows`, `/rows`, `/size`)
//! in the shapes of `research/api-contracts.md` §5, served on the same port as the Hub (so a
//! test's viewer base URL is [`crate::FakeHf::url`]). Returning `None` passes the request on
//! to the Hub/Jobs router.
//!
//! Datasets: the built-ins ([`SFT_DATASET`], [`DPO_DATASET`], [`GATED_DATASET`],
//! [`NOT_READY_DATASET`]) plus any a test adds with [`add_dataset`] (stored as a
//! `.fake-viewer.json` file in the Hub dataset repo, so it overrides a built-in of that name).
//! Access follows the real viewer: an unknown or gated dataset answers 401
//! `ExternalUnauthenticatedError` to an anonymous caller and 404 `ExternalAuthenticatedError`
//! to a token without access; an unknown token gets 401.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{Request, Response, State};

/// A public SFT-style dataset: one `messages` column (user/assistant turns); splits `train`
/// (250 rows) and `test` (20 rows) of config `default`.
pub const SFT_DATASET: &str = "mlres-fake/sft-chat";
/// A public DPO-style dataset: `prompt`, `chosen`, `rejected`; split `train` (30 rows) of
/// config `default`. Row 3's `chosen` is 5000 characters (cut by `/first-rows`).
pub const DPO_DATASET: &str = "mlres-fake/dpo-pairs";
/// A gated dataset readable only by user `alice` (the canary token's user): `text`, `label`.
pub const GATED_DATASET: &str = "mlres-fake/gated-sft";
/// A dataset the viewer has not processed: `/is-valid` is all false, everything else answers
/// 500 `ResponseNotReady`.
pub const NOT_READY_DATASET: &str = "mlres-fake/not-ready";

/// Where [`add_dataset`] stores a dataset inside its Hub repo.
pub const VIEWER_FILE: &str = ".fake-viewer.json";

/// `/first-rows` cuts string cells longer than this many characters.
pub const FIRST_ROWS_CELL_CHARS: usize = 1000;

/// One split's rows.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SplitData {
    /// Split name.
    pub name: String,
    /// Rows (objects); features are inferred from them.
    pub rows: Vec<Map<String, Value>>,
}

/// One config (subset).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ConfigData {
    /// Config name.
    pub name: String,
    /// Splits in order.
    pub splits: Vec<SplitData>,
}

/// A dataset as the fake viewer serves it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ViewerDataset {
    /// Needs a token whose user (or one of its orgs) is in `granted`.
    pub gated: bool,
    /// Users or orgs with access to a gated dataset (empty: any known token).
    pub granted: Vec<String>,
    /// Not processed yet.
    pub not_ready: bool,
    /// When set, every 200 answer has this raw body instead (to test decoding errors).
    pub broken_body: Option<String>,
    /// Configs in order.
    pub configs: Vec<ConfigData>,
}

impl ViewerDataset {
    /// A public dataset with one config `default` and the given splits.
    pub fn public(splits: Vec<(&str, Vec<Value>)>) -> ViewerDataset {
        ViewerDataset {
            configs: vec![ConfigData {
                name: "default".into(),
                splits: splits
                    .into_iter()
                    .map(|(name, rows)| SplitData {
                        name: name.into(),
                        rows: rows
                            .into_iter()
                            .map(|r| match r {
                                Value::Object(m) => m,
                                other => {
                                    let mut m = Map::new();
                                    m.insert("value".into(), other);
                                    m
                                }
                            })
                            .collect(),
                    })
                    .collect(),
            }],
            ..ViewerDataset::default()
        }
    }

    fn split(&self, config: &str, split: &str) -> Option<&SplitData> {
        self.configs
            .iter()
            .find(|c| c.name == config)?
            .splits
            .iter()
            .find(|s| s.name == split)
    }
}

/// Add (or replace) a dataset the fake viewer serves as `name` (`namespace/name`).
pub fn add_dataset(state: &State, name: &str, ds: &ViewerDataset) {
    let bytes = serde_json::to_vec(ds).unwrap_or_default();
    state.seed_file("datasets", name, VIEWER_FILE, &bytes);
}

/// A built-in dataset by name.
pub fn builtin(name: &str) -> Option<ViewerDataset> {
    match name {
        SFT_DATASET => {
            let row = |i: usize| {
                json!({"messages": [
                    {"role": "user", "content": format!("Question {i}: what is {i} plus {i}?")},
                    {"role": "assistant", "content": format!("{i} plus {i} is {}.", 2 * i)},
                ]})
            };
            Some(ViewerDataset::public(vec![
                ("train", (0..250).map(row).collect()),
                ("test", (1000..1020).map(row).collect()),
            ]))
        }
        DPO_DATASET => Some(ViewerDataset::public(vec![(
            "train",
            (0..30)
                .map(|i| {
                    let chosen = if i == 3 {
                        "a".repeat(5000)
                    } else {
                        format!("A helpful answer to prompt {i}.")
                    };
                    json!({"prompt": format!("Prompt {i}"), "chosen": chosen,
                        "rejected": format!("An unhelpful answer to prompt {i}.")})
                })
                .collect(),
        )])),
        GATED_DATASET => Some(ViewerDataset {
            gated: true,
            granted: vec!["alice".into()],
            ..ViewerDataset::public(vec![(
                "train",
                (0..5)
                    .map(|i| json!({"text": format!("gated text {i}"), "label": i % 2}))
                    .collect(),
            )])
        }),
        NOT_READY_DATASET => Some(ViewerDataset {
            not_ready: true,
            ..ViewerDataset::public(vec![("train", vec![json!({"text": "x"})])])
        }),
        _ => None,
    }
}

fn lookup(state: &State, name: &str) -> Option<ViewerDataset> {
    let stored = {
        let g = state.lock();
        g.repos
            .get(&("datasets".to_string(), name.to_string()))
            .and_then(|r| r.files.get(VIEWER_FILE))
            .map(|f| f.bytes.clone())
    };
    match stored {
        Some(b) => serde_json::from_slice(&b).ok(),
        None => builtin(name),
    }
}

/// A viewer error: `{"error": msg}` with `X-Error-Code`, `Cache-Control` and CORS headers
/// (no `X-Error-Message`: the viewer does not send one).
fn error(status: u16, code: &str, msg: &str) -> Response {
    let cache = if status == 500 {
        "no-cache"
    } else {
        "max-age=120"
    };
    Response::json(status, &json!({ "error": msg }))
        .with_header("X-Error-Code", code)
        .with_header("Cache-Control", cache)
        .with_header("Access-Control-Allow-Origin", "*")
}

fn unauthenticated() -> Response {
    error(
        401,
        "ExternalUnauthenticatedError",
        "The dataset does not exist, or is not accessible without authentication (private or gated). Please check the spelling of the dataset name or retry with authentication.",
    )
}

fn authenticated_no_access() -> Response {
    error(
        404,
        "ExternalAuthenticatedError",
        "The dataset does not exist, or is not accessible with the current credentials (private or gated). Please check the spelling of the dataset name or retry with other authentication credentials.",
    )
}

fn not_found() -> Response {
    error(404, "ResponseNotFound", "Not found.")
}

fn ok(v: Value) -> Response {
    Response::json(200, &v).with_header("Access-Control-Allow-Origin", "*")
}

/// Answer a dataset-viewer request, or `None` if `req` is not one.
pub fn handle(req: &Request, state: &State) -> Option<Response> {
    let endpoint = match req.path.as_str() {
        p @ ("/is-valid" | "/splits" | "/info" | "/first-rows" | "/rows" | "/size") => p,
        _ => return None,
    };
    if req.method != "GET" {
        return Some(error(405, "MethodNotAllowed", "Only GET is supported"));
    }
    Some(answer(req, state, endpoint))
}

fn answer(req: &Request, state: &State, endpoint: &str) -> Response {
    let Some(name) = req.query_one("dataset").filter(|d| !d.is_empty()) else {
        return error(
            422,
            "MissingRequiredParameter",
            "Parameter 'dataset' is required",
        );
    };
    let caller = match req.bearer() {
        None => None,
        Some(t) => match state.token(t) {
            Some(c) => Some(c),
            None => return unauthenticated(),
        },
    };
    let Some(ds) = lookup(state, name) else {
        return match caller {
            None => unauthenticated(),
            Some(_) => authenticated_no_access(),
        };
    };
    if ds.gated {
        match &caller {
            None => return unauthenticated(),
            Some(c)
                if !ds.granted.is_empty()
                    && !ds
                        .granted
                        .iter()
                        .any(|g| g == &c.user || c.orgs.contains(g)) =>
            {
                return authenticated_no_access();
            }
            Some(_) => {}
        }
    }
    if ds.not_ready {
        if endpoint == "/is-valid" {
            return ok(json!({"preview": false, "viewer": false, "search": false,
                "filter": false, "statistics": false}));
        }
        return error(
            500,
            "ResponseNotReady",
            "The server is busier than usual and the response is not ready yet. Please retry later.",
        );
    }
    if let Some(body) = &ds.broken_body {
        return Response {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.clone().into_bytes(),
        };
    }
    let config = req.query_one("config");
    let split = req.query_one("split");
    match endpoint {
        "/is-valid" => ok(json!({"preview": true, "viewer": true, "search": true,
            "filter": true, "statistics": true})),
        "/splits" => {
            let splits: Vec<Value> = ds
                .configs
                .iter()
                .filter(|c| config.is_none_or(|want| want == c.name))
                .flat_map(|c| {
                    c.splits
                        .iter()
                        .map(move |s| json!({"dataset": name, "config": c.name, "split": s.name}))
                })
                .collect();
            if config.is_some() && splits.is_empty() {
                return not_found();
            }
            ok(json!({"splits": splits, "pending": [], "failed": []}))
        }
        "/info" => info(name, &ds, config),
        "/size" => size(name, &ds, config),
        "/first-rows" | "/rows" => {
            let (Some(config), Some(split)) = (config, split) else {
                return error(
                    422,
                    "MissingRequiredParameter",
                    "Parameters 'dataset', 'config' and 'split' are required",
                );
            };
            let Some(data) = ds.split(config, split) else {
                return not_found();
            };
            if endpoint == "/first-rows" {
                first_rows(name, config, data)
            } else {
                rows(req, data)
            }
        }
        _ => not_found(),
    }
}

/// Feature type of one value, in the `datasets` JSON form.
fn infer(v: &Value) -> Value {
    match v {
        Value::String(_) => json!({"dtype": "string", "_type": "Value"}),
        Value::Bool(_) => json!({"dtype": "bool", "_type": "Value"}),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({"dtype": "int64", "_type": "Value"}),
        Value::Number(_) => json!({"dtype": "float64", "_type": "Value"}),
        Value::Array(a) => json!({
            "feature": a.first().map(infer).unwrap_or(json!({"dtype": "null", "_type": "Value"})),
            "_type": "List"
        }),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), infer(v))).collect()),
        Value::Null => json!({"dtype": "null", "_type": "Value"}),
    }
}

/// Column name → type, columns in first-seen order, type from the first non-null value.
fn feature_map(rows: &[Map<String, Value>]) -> Map<String, Value> {
    let mut out = Map::new();
    for r in rows {
        for (k, v) in r {
            let known = out.get(k).is_some_and(|t: &Value| t["dtype"] != "null");
            if !known {
                out.insert(k.clone(), infer(v));
            }
        }
    }
    out
}

fn features(rows: &[Map<String, Value>]) -> Vec<Value> {
    feature_map(rows)
        .into_iter()
        .enumerate()
        .map(|(i, (name, t))| json!({"feature_idx": i, "name": name, "type": t}))
        .collect()
}

fn first_rows(name: &str, config: &str, data: &SplitData) -> Response {
    let rows: Vec<Value> = data
        .rows
        .iter()
        .take(100)
        .enumerate()
        .map(|(i, r)| {
            let mut cut = Vec::new();
            let row: Map<String, Value> = r
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) if s.chars().count() > FIRST_ROWS_CELL_CHARS => {
                        cut.push(k.clone());
                        (
                            k.clone(),
                            Value::String(s.chars().take(FIRST_ROWS_CELL_CHARS).collect()),
                        )
                    }
                    _ => (k.clone(), v.clone()),
                })
                .collect();
            json!({"row_idx": i, "row": row, "truncated_cells": cut})
        })
        .collect();
    ok(json!({
        "dataset": name, "config": config, "split": data.name,
        "features": features(&data.rows), "rows": rows, "truncated": false,
    }))
}

fn rows(req: &Request, data: &SplitData) -> Response {
    let int = |key: &str, default: i64| -> Result<i64, Response> {
        match req.query_one(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                error(
                    422,
                    "InvalidParameter",
                    &format!("Parameter '{key}' must be an integer"),
                )
            }),
        }
    };
    let (offset, length) = match (int("offset", 0), int("length", 100)) {
        (Ok(o), Ok(l)) => (o, l),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if offset < 0 {
        return error(
            422,
            "InvalidParameter",
            "Parameter 'offset' must be positive",
        );
    }
    if length < 0 {
        return error(
            422,
            "InvalidParameter",
            "Parameter 'length' must be positive",
        );
    }
    if length > 100 {
        return error(
            422,
            "InvalidParameter",
            "Parameter 'length' must not be greater than 100",
        );
    }
    let rows: Vec<Value> = data
        .rows
        .iter()
        .enumerate()
        .skip(offset as usize)
        .take(length as usize)
        .map(|(i, r)| json!({"row_idx": i, "row": r, "truncated_cells": []}))
        .collect();
    ok(json!({
        "features": features(&data.rows), "rows": rows,
        "num_rows_total": data.rows.len(), "num_rows_per_page": length, "partial": false,
    }))
}

fn rows_bytes(rows: &[Map<String, Value>]) -> u64 {
    rows.iter()
        .map(|r| {
            serde_json::to_vec(r)
                .map(|b| b.len() as u64 + 1)
                .unwrap_or(0)
        })
        .sum()
}

fn config_info(name: &str, c: &ConfigData) -> Value {
    let all: Vec<Map<String, Value>> = c.splits.iter().flat_map(|s| s.rows.clone()).collect();
    let splits: Map<String, Value> = c
        .splits
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                json!({"name": s.name, "num_bytes": rows_bytes(&s.rows) * 2,
                    "num_examples": s.rows.len(), "dataset_name": name}),
            )
        })
        .collect();
    let bytes: u64 = c.splits.iter().map(|s| rows_bytes(&s.rows)).sum();
    json!({
        "description": "", "citation": "", "homepage": "", "license": "",
        "features": feature_map(&all), "builder_name": "json",
        "dataset_name": name.rsplit('/').next().unwrap_or(name), "config_name": c.name,
        "version": {"version_str": "0.0.0", "major": 0, "minor": 0, "patch": 0},
        "splits": splits, "download_size": bytes, "dataset_size": bytes * 2,
    })
}

fn info(name: &str, ds: &ViewerDataset, config: Option<&str>) -> Response {
    match config {
        Some(want) => match ds.configs.iter().find(|c| c.name == want) {
            Some(c) => ok(json!({"dataset_info": config_info(name, c), "partial": false})),
            None => not_found(),
        },
        None => {
            let all: Map<String, Value> = ds
                .configs
                .iter()
                .map(|c| (c.name.clone(), config_info(name, c)))
                .collect();
            ok(json!({"dataset_info": all, "pending": [], "failed": [], "partial": false}))
        }
    }
}

fn size(name: &str, ds: &ViewerDataset, config: Option<&str>) -> Response {
    let configs: Vec<&ConfigData> = ds
        .configs
        .iter()
        .filter(|c| config.is_none_or(|w| w == c.name))
        .collect();
    if configs.is_empty() {
        return not_found();
    }
    let mut splits = Vec::new();
    let mut config_entries = Vec::new();
    let (mut rows_total, mut bytes_total) = (0u64, 0u64);
    for c in &configs {
        let (mut c_rows, mut c_bytes) = (0u64, 0u64);
        for s in &c.splits {
            let b = rows_bytes(&s.rows);
            let n = s.rows.len() as u64;
            let cols = feature_map(&s.rows).len();
            splits.push(json!({"dataset": name, "config": c.name, "split": s.name,
                "num_bytes_parquet_files": b, "num_bytes_memory": b * 2, "num_rows": n,
                "num_columns": cols, "estimated_num_rows": null}));
            c_rows += n;
            c_bytes += b;
        }
        config_entries.push(json!({"dataset": name, "config": c.name,
            "num_bytes_original_files": c_bytes, "num_bytes_parquet_files": c_bytes,
            "num_bytes_memory": c_bytes * 2, "num_rows": c_rows, "num_columns": null,
            "estimated_num_rows": null}));
        rows_total += c_rows;
        bytes_total += c_bytes;
    }
    ok(json!({
        "size": {
            "dataset": {"dataset": name, "num_bytes_original_files": bytes_total,
                "num_bytes_parquet_files": bytes_total, "num_bytes_memory": bytes_total * 2,
                "num_rows": rows_total, "estimated_num_rows": null},
            "configs": config_entries, "splits": splits,
        },
        "pending": [], "failed": [], "partial": false,
    }))
}
