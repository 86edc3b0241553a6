//! Typed client for the Hugging Face dataset viewer (datasets-server): `/is-valid`,
//! `/splits`, `/info`, `/first-rows`, `/rows` (pages of at most 100 rows) and `/size`.
//!
//! It reuses [`HfClient`]'s request machinery (bounded retries, no cross-host redirects, the
//! token only ever sent to the configured base URL, token scrubbed from every error) with the
//! viewer's base URL as the endpoint. The token is optional: public datasets are read
//! anonymously; gated and private ones need it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::client::{Method, Resp};
use crate::hub::quote;
use crate::{Endpoint, HfClient, HfError, RetryPolicy, Token};

/// The public dataset viewer (hard-coded in `huggingface_hub` as `DATASETS_SERVER_ENDPOINT`).
pub const DEFAULT_VIEWER_ENDPOINT: &str = "https://datasets-server.huggingface.co";

/// The most rows `/rows` returns per request.
pub const MAX_ROWS_PER_PAGE: usize = 100;

/// Most `/rows` pages one [`ViewerClient::sample_rows`] call requests.
const MAX_SAMPLE_PAGES: usize = 10_000;

/// Parse a viewer base URL; `None` or empty means [`DEFAULT_VIEWER_ENDPOINT`]. The same rules
/// as [`Endpoint::parse`] apply (http/https, no query, no credentials).
pub fn viewer_endpoint(value: Option<&str>) -> Result<Endpoint, HfError> {
    let v = value
        .map(str::trim)
        .filter(|v| !v.trim_end_matches('/').is_empty());
    Endpoint::parse(Some(v.unwrap_or(DEFAULT_VIEWER_ENDPOINT)))
}

/// What the viewer can do with a dataset (`/is-valid`). All flags are false for a dataset
/// the viewer has not processed (yet).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Validity {
    /// `/first-rows` works.
    pub preview: bool,
    /// `/rows` works (the full viewer).
    pub viewer: bool,
    /// `/search` works.
    pub search: bool,
    /// `/filter` works.
    pub filter: bool,
    /// `/statistics` works.
    pub statistics: bool,
}

/// One config/split pair of a dataset.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub struct SplitRef {
    /// Config (subset) name, e.g. `default`.
    pub config: String,
    /// Split name, e.g. `train`.
    pub split: String,
}

/// One column of a rows page.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Feature {
    /// Position.
    #[serde(default)]
    pub feature_idx: usize,
    /// Column name.
    pub name: String,
    /// The `datasets` feature type as sent, e.g. `{"dtype":"string","_type":"Value"}`.
    #[serde(rename = "type", default)]
    pub kind: Value,
}

impl Feature {
    /// A short type name: `string`, `int64`, `class_label[neg,pos]`, `list<struct{content,role}>`...
    pub fn type_name(&self) -> String {
        type_name(&self.kind)
    }
}

/// A short, human type name of a `datasets` feature type.
pub fn type_name(t: &Value) -> String {
    match t {
        Value::Array(items) => format!(
            "list<{}>",
            items.first().map(type_name).unwrap_or_else(|| "?".into())
        ),
        Value::Object(m) => match m.get("_type").and_then(Value::as_str) {
            Some("Value") => m
                .get("dtype")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string(),
            Some("ClassLabel") => {
                let names: Vec<&str> = m
                    .get("names")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                format!("class_label[{}]", names.join(","))
            }
            Some("Sequence" | "List" | "LargeList") => format!(
                "list<{}>",
                m.get("feature")
                    .map(type_name)
                    .unwrap_or_else(|| "?".into())
            ),
            Some(other) => other.to_ascii_lowercase(),
            None => format!(
                "struct{{{}}}",
                m.keys().map(String::as_str).collect::<Vec<_>>().join(",")
            ),
        },
        _ => "?".into(),
    }
}

/// Rows of one split: one `/first-rows` answer, one `/rows` page, or a [`ViewerClient::sample_rows`]
/// concatenation of pages.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RowsPage {
    /// Columns.
    pub features: Vec<Feature>,
    /// The rows (`rows[].row` of the answer), in row order.
    pub rows: Vec<Map<String, Value>>,
    /// `row_idx` of each row (same length as `rows`).
    pub row_indices: Vec<u64>,
    /// Columns with at least one cell the server cut short (`truncated_cells`).
    pub truncated_cells: BTreeSet<String>,
    /// `/first-rows`: the server dropped rows to fit its size limit. `/rows` and samples: the
    /// split has rows after the last one returned.
    pub truncated: bool,
    /// Rows in the split (`num_rows_total`; `/rows` only).
    pub num_rows_total: Option<u64>,
    /// The server computed the answer on part of the dataset only.
    pub partial: bool,
}

/// Info of one config (`/info?dataset&config`). Every field is optional on the wire.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct DatasetInfo {
    /// Description.
    pub description: Option<String>,
    /// Citation.
    pub citation: Option<String>,
    /// Homepage.
    pub homepage: Option<String>,
    /// License.
    pub license: Option<String>,
    /// Column name → `datasets` feature type.
    pub features: Map<String, Value>,
    /// Builder, e.g. `json`, `parquet`.
    pub builder_name: Option<String>,
    /// Dataset name.
    pub dataset_name: Option<String>,
    /// Config name.
    pub config_name: Option<String>,
    /// Version object as sent.
    pub version: Value,
    /// Split name → sizes.
    pub splits: BTreeMap<String, SplitInfo>,
    /// Bytes downloaded to build the dataset.
    pub download_size: Option<u64>,
    /// Bytes of the built dataset.
    pub dataset_size: Option<u64>,
    /// Computed on part of the dataset only.
    #[serde(skip)]
    pub partial: bool,
}

/// One split of [`DatasetInfo::splits`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SplitInfo {
    /// Split name.
    pub name: String,
    /// Bytes.
    pub num_bytes: Option<u64>,
    /// Rows.
    pub num_examples: Option<u64>,
}

/// Size of one split (`/size` `splits[]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SplitSize {
    /// Config.
    pub config: String,
    /// Split.
    pub split: String,
    /// Rows.
    pub num_rows: u64,
    /// Columns.
    pub num_columns: Option<u64>,
    /// Bytes of the parquet export.
    pub num_bytes_parquet_files: Option<u64>,
    /// Bytes in memory once loaded.
    pub num_bytes_memory: Option<u64>,
}

/// `/size` of a whole dataset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatasetSize {
    /// Rows over all configs and splits.
    pub num_rows: u64,
    /// Bytes of the original files, when known.
    pub num_bytes_original_files: Option<u64>,
    /// Bytes of the parquet export.
    pub num_bytes_parquet_files: Option<u64>,
    /// Bytes in memory once loaded.
    pub num_bytes_memory: Option<u64>,
    /// Per split.
    pub splits: Vec<SplitSize>,
    /// Some configs are still being processed or failed: the totals cover the others only.
    pub partial: bool,
}

/// A blocking client of the dataset viewer at one base URL, with an optional token.
#[derive(Debug)]
pub struct ViewerClient {
    hf: HfClient,
}

#[derive(Deserialize)]
struct SplitsBody {
    splits: Vec<SplitRef>,
    #[serde(default)]
    pending: Vec<Value>,
    #[serde(default)]
    failed: Vec<Value>,
}

#[derive(Deserialize)]
struct WireRow {
    #[serde(default)]
    row_idx: Option<u64>,
    row: Map<String, Value>,
    #[serde(default)]
    truncated_cells: Vec<String>,
}

#[derive(Deserialize)]
struct RowsBody {
    features: Vec<Feature>,
    rows: Vec<WireRow>,
    #[serde(default)]
    truncated: bool,
    #[serde(default)]
    num_rows_total: Option<u64>,
    #[serde(default)]
    partial: bool,
}

#[derive(Deserialize)]
struct InfoBody {
    dataset_info: DatasetInfo,
    #[serde(default)]
    partial: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SizeTotals {
    num_rows: u64,
    num_bytes_original_files: Option<u64>,
    num_bytes_parquet_files: Option<u64>,
    num_bytes_memory: Option<u64>,
}

#[derive(Deserialize)]
struct SizeInner {
    dataset: SizeTotals,
    splits: Vec<SplitSize>,
}

#[derive(Deserialize)]
struct SizeBody {
    size: SizeInner,
    #[serde(default)]
    pending: Vec<Value>,
    #[serde(default)]
    failed: Vec<Value>,
    #[serde(default)]
    partial: bool,
}

impl ViewerClient {
    /// A client of the viewer at `base` (see [`viewer_endpoint`]). The token, when given, is
    /// sent to `base`'s host only.
    pub fn new(base: Endpoint, token: Option<Token>) -> ViewerClient {
        ViewerClient {
            hf: HfClient::new(base, token),
        }
    }

    /// [`ViewerClient::new`] from a base URL string (`None`: the public viewer).
    pub fn from_url(base: Option<&str>, token: Option<Token>) -> Result<ViewerClient, HfError> {
        Ok(ViewerClient::new(viewer_endpoint(base)?, token))
    }

    /// Replace the retry policy (429 and 5xx, including "not ready yet", are retried).
    pub fn with_retry(self, retry: RetryPolicy) -> ViewerClient {
        ViewerClient {
            hf: self.hf.with_retry(retry),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &Endpoint {
        self.hf.endpoint()
    }

    /// Whether a token is configured.
    pub fn has_token(&self) -> bool {
        self.hf.has_token()
    }

    /// `GET /is-valid?dataset=`.
    pub fn is_valid(&self, dataset: &str) -> Result<Validity, HfError> {
        let v = self.get(dataset, "/is-valid", &[], "")?;
        decode_as(v, "/is-valid")
    }

    /// `GET /splits?dataset=`: every config/split pair the viewer knows, in server order.
    /// An empty list while configs are pending is [`HfError::ViewerNotReady`].
    pub fn splits(&self, dataset: &str) -> Result<Vec<SplitRef>, HfError> {
        let v = self.get(dataset, "/splits", &[], "")?;
        let body: SplitsBody = decode_as(v, "/splits")?;
        if body.splits.is_empty() && (!body.pending.is_empty() || !body.failed.is_empty()) {
            return Err(HfError::ViewerNotReady {
                dataset: dataset.into(),
                message: format!(
                    "no split is ready: {} config(s) pending, {} failed",
                    body.pending.len(),
                    body.failed.len()
                ),
            });
        }
        Ok(body.splits)
    }

    /// `GET /info?dataset=&config=`.
    pub fn info(&self, dataset: &str, config: &str) -> Result<DatasetInfo, HfError> {
        let what = format!("config {config:?}");
        let v = self.get(dataset, "/info", &[("config", config)], &what)?;
        let body: InfoBody = decode_as(v, "/info")?;
        Ok(DatasetInfo {
            partial: body.partial,
            ..body.dataset_info
        })
    }

    /// `GET /first-rows?dataset=&config=&split=`: up to 100 rows, long cells cut.
    pub fn first_rows(
        &self,
        dataset: &str,
        config: &str,
        split: &str,
    ) -> Result<RowsPage, HfError> {
        let what = format!("config {config:?}, split {split:?}");
        let v = self.get(
            dataset,
            "/first-rows",
            &[("config", config), ("split", split)],
            &what,
        )?;
        let body: RowsBody = decode_as(v, "/first-rows")?;
        Ok(page(body, 0, false))
    }

    /// `GET /rows?dataset=&config=&split=&offset=&length=`: one page of `1..=100` rows.
    pub fn rows(
        &self,
        dataset: &str,
        config: &str,
        split: &str,
        offset: u64,
        length: usize,
    ) -> Result<RowsPage, HfError> {
        if length == 0 || length > MAX_ROWS_PER_PAGE {
            return Err(HfError::BadRequest {
                status: 0,
                message: format!("a rows page holds 1 to {MAX_ROWS_PER_PAGE} rows, not {length}"),
            });
        }
        let what = format!("config {config:?}, split {split:?}");
        let (off, len) = (offset.to_string(), length.to_string());
        let v = self.get(
            dataset,
            "/rows",
            &[
                ("config", config),
                ("split", split),
                ("offset", &off),
                ("length", &len),
            ],
            &what,
        )?;
        let body: RowsBody = decode_as(v, "/rows")?;
        Ok(page(body, offset, true))
    }

    /// Up to `max_rows` rows from the start of a split, paging `/rows` 100 at a time. Stops at
    /// the end of the split (`num_rows_total`) or on an empty page. `truncated` says whether the
    /// split holds rows after the last one returned, also when `max_rows` is 0.
    pub fn sample_rows(
        &self,
        dataset: &str,
        config: &str,
        split: &str,
        max_rows: usize,
    ) -> Result<RowsPage, HfError> {
        if max_rows == 0 {
            // `/rows` needs length >= 1. One row is fetched to learn the columns and whether the
            // split holds anything (so `truncated` is a fact, not a guess), then dropped.
            let p = self.rows(dataset, config, split, 0, 1)?;
            return Ok(RowsPage {
                truncated: p.num_rows_total.map_or(!p.rows.is_empty(), |t| t > 0),
                features: p.features,
                num_rows_total: p.num_rows_total,
                partial: p.partial,
                ..RowsPage::default()
            });
        }
        let mut out = RowsPage::default();
        let mut offset = 0u64;
        for _ in 0..MAX_SAMPLE_PAGES {
            let want = max_rows.saturating_sub(out.rows.len());
            if want == 0 {
                break;
            }
            if out.num_rows_total.is_some_and(|t| offset >= t) {
                break;
            }
            let mut p = self.rows(dataset, config, split, offset, want.min(MAX_ROWS_PER_PAGE))?;
            p.rows.truncate(want);
            p.row_indices.truncate(want);
            let got = p.rows.len();
            if out.features.is_empty() {
                out.features = std::mem::take(&mut p.features);
            }
            out.rows.append(&mut p.rows);
            out.row_indices.append(&mut p.row_indices);
            out.truncated_cells.append(&mut p.truncated_cells);
            out.num_rows_total = p.num_rows_total.or(out.num_rows_total);
            out.partial |= p.partial;
            if got == 0 {
                break;
            }
            offset += got as u64;
        }
        out.truncated = out.num_rows_total.is_some_and(|t| offset < t);
        Ok(out)
    }

    /// `GET /size?dataset=`: rows and bytes per split and in total.
    pub fn size(&self, dataset: &str) -> Result<DatasetSize, HfError> {
        let v = self.get(dataset, "/size", &[], "")?;
        let body: SizeBody = decode_as(v, "/size")?;
        let t = body.size.dataset;
        Ok(DatasetSize {
            num_rows: t.num_rows,
            num_bytes_original_files: t.num_bytes_original_files,
            num_bytes_parquet_files: t.num_bytes_parquet_files,
            num_bytes_memory: t.num_bytes_memory,
            splits: body.size.splits,
            partial: body.partial || !body.pending.is_empty() || !body.failed.is_empty(),
        })
    }

    /// One GET; maps the viewer's error statuses to typed errors naming `dataset`.
    fn get(
        &self,
        dataset: &str,
        path: &str,
        params: &[(&str, &str)],
        what: &str,
    ) -> Result<Value, HfError> {
        check_dataset(dataset)?;
        let mut url = self
            .hf
            .endpoint()
            .url(&format!("{path}?dataset={}", quote(dataset, "/")));
        for (k, v) in params {
            url.push('&');
            url.push_str(k);
            url.push('=');
            url.push_str(&quote(v, ""));
        }
        let resp = self
            .hf
            .send(Method::Get, &url, None, self.hf.has_token(), true)?;
        if (200..300).contains(&resp.status) {
            return serde_json::from_slice(&resp.body).map_err(|e| HfError::Decode {
                what: format!("dataset viewer {path}"),
                detail: e.to_string(),
            });
        }
        Err(self.error(dataset, what, resp))
    }

    fn error(&self, dataset: &str, what: &str, resp: Resp) -> HfError {
        let message = self.hf.error_message(&resp);
        let code = resp.header("x-error-code").unwrap_or("").to_string();
        let dataset = dataset.to_string();
        match (resp.status, code.as_str()) {
            (401, _) if self.hf.has_token() => HfError::Unauthorized {
                message: format!("the dataset viewer rejected the token: {message}"),
            },
            (401, _) => HfError::DatasetInaccessible {
                dataset,
                authenticated: false,
            },
            (404, "ExternalAuthenticatedError") => HfError::DatasetInaccessible {
                dataset,
                authenticated: true,
            },
            (404, "RenamedDatasetError") => HfError::DatasetNotFound {
                dataset,
                what: "the dataset (it was renamed)".into(),
                message,
            },
            (404, _) => HfError::DatasetNotFound {
                dataset,
                what: if what.is_empty() {
                    "the dataset".into()
                } else {
                    what.into()
                },
                message,
            },
            (500, "ResponseNotReady") => HfError::ViewerNotReady { dataset, message },
            (429, _) => HfError::RateLimited {
                retry_after: resp
                    .header("retry-after")
                    .and_then(|v| v.trim().parse().ok())
                    .map(std::time::Duration::from_secs),
                message,
            },
            (403, _) => HfError::Forbidden { message },
            (s, _) if s >= 500 => HfError::Server { status: s, message },
            (s, _) => HfError::BadRequest { status: s, message },
        }
    }
}

fn check_dataset(dataset: &str) -> Result<(), HfError> {
    let ok_part = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    let parts: Vec<&str> = dataset.split('/').collect();
    if (1..=2).contains(&parts.len()) && parts.iter().all(|p| ok_part(p)) {
        Ok(())
    } else {
        Err(HfError::BadRequest {
            status: 0,
            message: format!(
                "invalid dataset name {dataset:?} (expected namespace/name with letters, digits, . _ -)"
            ),
        })
    }
}

fn decode_as<T: serde::de::DeserializeOwned>(v: Value, what: &str) -> Result<T, HfError> {
    serde_json::from_value(v).map_err(|e| HfError::Decode {
        what: format!("dataset viewer {what}"),
        detail: e.to_string(),
    })
}

fn page(body: RowsBody, offset: u64, paged: bool) -> RowsPage {
    let mut out = RowsPage {
        features: body.features,
        num_rows_total: body.num_rows_total,
        partial: body.partial,
        ..RowsPage::default()
    };
    for (i, r) in body.rows.into_iter().enumerate() {
        out.row_indices.push(r.row_idx.unwrap_or(offset + i as u64));
        out.truncated_cells.extend(r.truncated_cells);
        out.rows.push(r.row);
    }
    out.truncated = if paged {
        body.num_rows_total
            .is_some_and(|t| offset + (out.rows.len() as u64) < t)
    } else {
        body.truncated
    };
    out
}
