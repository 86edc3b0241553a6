//! `inspect`: schema, splits, row counts, per-column statistics, sample rows and whether the
//! data fits SFT, DPO or GRPO, in one streaming pass with bounded memory per column.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::Record;
use crate::read::{self, Format, ReadError, RowError};

/// Knobs for [`Inspector`].
#[derive(Debug, Clone)]
pub struct InspectOptions {
    /// Sample rows kept (from the first split).
    pub sample_rows: usize,
    /// Strings in samples are cut to this many characters.
    pub sample_chars: usize,
    /// Distinct values are counted exactly up to this many, then estimated.
    pub exact_distinct: usize,
    /// Columns with at most this many distinct short values get a value balance.
    pub balance_values: usize,
    /// Row errors kept per split (all are counted).
    pub errors_kept: usize,
}

impl Default for InspectOptions {
    fn default() -> Self {
        InspectOptions {
            sample_rows: 3,
            sample_chars: 160,
            exact_distinct: 100_000,
            balance_values: 20,
            errors_kept: 5,
        }
    }
}

/// A skipped row, located.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedRow {
    pub file: String,
    pub row: u64,
    pub message: String,
}

/// One data file of a split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileInfo {
    pub path: String,
    pub format: Option<Format>,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitReport {
    pub name: String,
    pub files: Vec<FileInfo>,
    pub rows: u64,
    pub skipped: u64,
    pub errors: Vec<SkippedRow>,
}

/// Statistics of one column over all splits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnStats {
    pub name: String,
    /// JSON type name → rows with that type (`null` included).
    pub types: BTreeMap<String, u64>,
    /// Rows where the column is absent or null.
    pub nulls: u64,
    /// String length (characters) over string values.
    pub min_len: Option<u64>,
    pub max_len: Option<u64>,
    pub mean_len: Option<f64>,
    /// Range over numeric values.
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    /// Distinct non-null values (exact when `distinct_exact`).
    pub distinct: u64,
    pub distinct_exact: bool,
    /// Value → count for low-cardinality columns (labels), most frequent first.
    pub balance: Vec<(String, u64)>,
}

/// Whether the data fits one training task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub fits: bool,
    /// The column layout used (e.g. `messages`, `prompt+completion`).
    pub layout: Option<String>,
    /// What is wrong, with row counts and a first example row (`file:line`).
    pub problems: Vec<String>,
    /// Rows read, and how many of them fit this layout (every row counts: a row without
    /// the layout's columns does not fit).
    pub rows: u64,
    pub fitting_rows: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fitness {
    pub sft: Verdict,
    pub dpo: Verdict,
    pub grpo: Verdict,
    /// A text classification set (`text` and `label`, or similar names): not a training
    /// template of its own, said so that such data is not mistaken for SFT data.
    pub classification: Verdict,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InspectReport {
    pub source: String,
    /// True when only part of the data was read (e.g. a viewer sample).
    pub sampled: bool,
    pub rows: u64,
    pub skipped: u64,
    pub splits: Vec<SplitReport>,
    pub columns: Vec<ColumnStats>,
    pub fitness: Fitness,
    pub samples: Vec<Record>,
    /// Distinct column names seen past [`MAX_COLUMNS`] (no statistics for them).
    pub untracked_columns: u64,
}

// ------------------------------------------------------------------ accumulation

#[derive(Default)]
struct ColumnAcc {
    types: BTreeMap<String, u64>,
    present: u64,
    nulls: u64,
    str_n: u64,
    str_sum: u64,
    min_len: Option<u64>,
    max_len: Option<u64>,
    num_n: u64,
    num_sum: f64,
    min: Option<f64>,
    max: Option<f64>,
    exact: Option<HashSet<u64>>,
    /// The smallest hashes seen (K-minimum-values sketch), for estimating past the cap.
    kmv: BTreeSet<u64>,
    balance: Option<HashMap<String, u64>>,
}

const KMV_K: usize = 1024;

/// Exact distinct-value hashes kept over all columns together: a wide table gets a smaller
/// exact cap per column (then the KMV estimate), so memory stays bounded however many
/// columns the rows carry.
const EXACT_BUDGET: usize = 4_000_000;

/// Columns tracked; further column names are counted in
/// [`InspectReport::untracked_columns`] but get no statistics (bounded memory on rows with
/// arbitrary keys).
pub const MAX_COLUMNS: usize = 1_000;

fn value_hash(v: &Value) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match v {
        Value::String(s) => s.hash(&mut h),
        other => other.to_string().hash(&mut h),
    }
    // Mix so the KMV sketch sees uniform values.
    let mut x = h.finish();
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "int",
        Value::Number(_) => "float",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

impl ColumnAcc {
    /// Exact distinct set and balance on (the derived `Default` has both off).
    fn start() -> ColumnAcc {
        ColumnAcc {
            exact: Some(HashSet::new()),
            balance: Some(HashMap::new()),
            ..Default::default()
        }
    }

    fn push(&mut self, v: &Value, opts: &InspectOptions, exact_cap: usize) {
        self.present += 1;
        *self.types.entry(type_name(v).to_string()).or_default() += 1;
        match v {
            Value::Null => {
                self.nulls += 1;
                return;
            }
            Value::String(s) => {
                let n = s.chars().count() as u64;
                self.str_n += 1;
                self.str_sum += n;
                self.min_len = Some(self.min_len.map_or(n, |m| m.min(n)));
                self.max_len = Some(self.max_len.map_or(n, |m| m.max(n)));
            }
            Value::Number(num) => {
                if let Some(x) = num.as_f64() {
                    self.num_n += 1;
                    self.num_sum += x;
                    self.min = Some(self.min.map_or(x, |m| m.min(x)));
                    self.max = Some(self.max.map_or(x, |m| m.max(x)));
                }
            }
            _ => {}
        }
        let h = value_hash(v);
        if let Some(set) = &mut self.exact {
            set.insert(h);
            if set.len() > exact_cap {
                self.exact = None;
            }
        }
        if self.kmv.len() < KMV_K {
            self.kmv.insert(h);
        } else if let Some(&largest) = self.kmv.last()
            && h < largest
            && self.kmv.insert(h)
        {
            self.kmv.pop_last();
        }
        if let Some(b) = &mut self.balance {
            let key = match v {
                Value::String(s) if s.chars().count() <= 64 => Some(s.clone()),
                Value::Bool(_) | Value::Number(_) => Some(v.to_string()),
                _ => None,
            };
            match key {
                Some(k) => {
                    *b.entry(k).or_default() += 1;
                    if b.len() > opts.balance_values {
                        self.balance = None;
                    }
                }
                None => self.balance = None,
            }
        }
    }

    fn finish(self, name: String, rows: u64) -> ColumnStats {
        let (distinct, distinct_exact) = match &self.exact {
            Some(s) => (s.len() as u64, true),
            None => {
                let kth = *self.kmv.last().unwrap_or(&u64::MAX) as f64;
                let est = (KMV_K as f64 - 1.0) / (kth / u64::MAX as f64);
                (est.round() as u64, false)
            }
        };
        let mut balance: Vec<(String, u64)> = self
            .balance
            .map(|b| b.into_iter().collect())
            .unwrap_or_default();
        balance.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ColumnStats {
            name,
            types: self.types,
            nulls: self.nulls + rows.saturating_sub(self.present),
            min_len: self.min_len,
            max_len: self.max_len,
            mean_len: (self.str_n > 0).then(|| self.str_sum as f64 / self.str_n as f64),
            min: self.min,
            max: self.max,
            mean: (self.num_n > 0).then(|| self.num_sum / self.num_n as f64),
            distinct,
            distinct_exact,
            balance,
        }
    }
}

/// Counts rows failing one fitness check, keeping the first example.
/// Where a row is: `file:line` for a local file, `row N` otherwise.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub file: Option<&'a str>,
    pub row: u64,
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.file {
            Some(file) => write!(f, "{file}:{}", self.row),
            None => write!(f, "row {}", self.row),
        }
    }
}

/// The problems of one layout: each with its count and first row, and how many rows have any.
#[derive(Default)]
struct Problems {
    by: BTreeMap<&'static str, (u64, String)>,
    bad_rows: u64,
    last_seq: u64,
}

impl Problems {
    /// `seq` numbers the rows of the whole inspection (1, 2, …) so a row with two problems
    /// is one bad row.
    fn add(&mut self, what: &'static str, seq: u64, at: At) {
        self.by.entry(what).or_insert_with(|| (0, at.to_string())).0 += 1;
        if self.last_seq != seq {
            self.last_seq = seq;
            self.bad_rows += 1;
        }
    }

    fn lines(&self) -> Vec<String> {
        self.by
            .iter()
            .map(|(what, (n, first))| {
                format!(
                    "{n} row{} with {what} (first: {first})",
                    if *n == 1 { "" } else { "s" }
                )
            })
            .collect()
    }
}

#[derive(Default)]
struct FitAcc {
    rows: u64,
    sft_messages: Problems,
    sft_text: Problems,
    sft_pc: Problems,
    dpo: Problems,
    grpo: Problems,
    class: Problems,
}

/// Columns a classification set keeps its input text in, and its label in.
const CLASS_TEXT: &[&str] = &["text", "sentence", "content", "review", "document"];
const CLASS_LABEL: &[&str] = &["label", "labels", "class", "category", "target"];

const ROLES: &[&str] = &["system", "user", "assistant", "tool", "developer"];

fn non_empty_text(v: Option<&Value>) -> bool {
    match v {
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        _ => false,
    }
}

fn check_messages(v: Option<&Value>, seq: u64, at: At, p: &mut Problems) {
    let Some(Value::Array(msgs)) = v else {
        p.add("`messages` that is not a list", seq, at);
        return;
    };
    if msgs.is_empty() {
        p.add("an empty `messages` list", seq, at);
        return;
    }
    let mut assistant = false;
    for m in msgs {
        let Some(obj) = m.as_object() else {
            p.add("a message that is not an object", seq, at);
            return;
        };
        match obj.get("role").and_then(Value::as_str) {
            Some(r) if ROLES.contains(&r) => assistant |= r == "assistant",
            Some(_) => {
                p.add(
                    "a role other than system/user/assistant/tool/developer",
                    seq,
                    at,
                );
                return;
            }
            None => {
                p.add("a message without a string `role`", seq, at);
                return;
            }
        }
        match obj.get("content") {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            Some(Value::Array(a)) if !a.is_empty() => {}
            _ => {
                p.add("a message with empty or missing `content`", seq, at);
                return;
            }
        }
    }
    if !assistant {
        p.add("no assistant message to learn from", seq, at);
    }
}

impl FitAcc {
    fn push(&mut self, r: &Record, at: At) {
        self.rows += 1;
        let seq = self.rows;
        match r.get("messages") {
            None => self.sft_messages.add("no `messages`", seq, at),
            v => check_messages(v, seq, at, &mut self.sft_messages),
        }
        // SFT on raw text needs a string (a list is not text to train on).
        match r.get("text") {
            None => self.sft_text.add("no `text`", seq, at),
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            Some(_) => self.sft_text.add("an empty or non-string `text`", seq, at),
        }
        if !non_empty_text(r.get("prompt")) {
            self.sft_pc.add("an empty or missing `prompt`", seq, at);
        }
        if !non_empty_text(r.get("completion")) {
            self.sft_pc.add("an empty or missing `completion`", seq, at);
        }
        for (k, what) in [
            ("prompt", "an empty or missing `prompt`"),
            ("chosen", "an empty or missing `chosen`"),
            ("rejected", "an empty or missing `rejected`"),
        ] {
            if !non_empty_text(r.get(k)) {
                self.dpo.add(what, seq, at);
            }
        }
        if r.get("chosen").is_some() && r.get("chosen") == r.get("rejected") {
            self.dpo.add("identical `chosen` and `rejected`", seq, at);
        }
        match r.get("prompt") {
            None => self.grpo.add("no `prompt`", seq, at),
            v if !non_empty_text(v) => self.grpo.add("an empty or non-text `prompt`", seq, at),
            _ => {}
        }
        let text = CLASS_TEXT.iter().find_map(|c| r.get(*c));
        if !matches!(text, Some(Value::String(s)) if !s.trim().is_empty()) {
            self.class.add("an empty or missing text", seq, at);
        }
        match CLASS_LABEL.iter().find_map(|c| r.get(*c)) {
            None | Some(Value::Null) => self.class.add("no label", seq, at),
            Some(Value::String(s)) if s.trim().is_empty() => self.class.add("no label", seq, at),
            _ => {}
        }
    }

    fn finish(self, columns: &BTreeSet<String>) -> Fitness {
        let has = |c: &str| columns.contains(c);
        let rows = self.rows;
        let found = || {
            if columns.is_empty() {
                "no columns".to_string()
            } else {
                format!(
                    "found: {}",
                    columns.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            }
        };
        let verdict = |layout: &str, p: &Problems| Verdict {
            fits: rows > 0 && p.bad_rows == 0,
            layout: Some(layout.to_string()),
            problems: p.lines(),
            rows,
            fitting_rows: rows - p.bad_rows,
        };
        let none = |problem: String| Verdict {
            fits: false,
            layout: None,
            problems: vec![problem],
            rows,
            fitting_rows: 0,
        };
        let text_col = CLASS_TEXT.iter().copied().find(|c| has(c));
        let label_col = CLASS_LABEL.iter().copied().find(|c| has(c));
        // The SFT layout that fits the most rows (ties: messages, text, prompt+completion).
        let mut candidates: Vec<(&str, &Problems)> = Vec::new();
        if has("messages") {
            candidates.push(("messages", &self.sft_messages));
        }
        if has("text") {
            candidates.push(("text", &self.sft_text));
        }
        if has("prompt") && has("completion") {
            candidates.push(("prompt+completion", &self.sft_pc));
        }
        let best = candidates
            .iter()
            .min_by_key(|(_, p)| p.bad_rows)
            .map(|(l, p)| verdict(l, p));
        let sft = match best {
            Some(mut v) => {
                if v.layout.as_deref() == Some("text")
                    && let Some(label) = label_col
                {
                    // Training on `text` alone would throw the labels away.
                    v.fits = false;
                    v.problems.push(format!(
                        "a `{label}` column: this is a classification set (text → {label}), \
                         not SFT data"
                    ));
                }
                v
            }
            None => none(format!(
                "needs a `messages` column (list of {{role, content}}), a `text` column, or \
                 `prompt` and `completion` ({})",
                found()
            )),
        };
        let dpo = if has("prompt") && has("chosen") && has("rejected") {
            verdict("prompt+chosen+rejected", &self.dpo)
        } else {
            let missing: Vec<&str> = ["prompt", "chosen", "rejected"]
                .into_iter()
                .filter(|c| !has(c))
                .collect();
            none(format!(
                "needs `prompt`, `chosen` and `rejected`; missing {} ({})",
                missing.join(", "),
                found()
            ))
        };
        let grpo = if has("prompt") {
            verdict("prompt", &self.grpo)
        } else {
            none(format!("needs a `prompt` column ({})", found()))
        };
        let classification = match (text_col, label_col) {
            (Some(t), Some(l)) => verdict(&format!("{t}+{l}"), &self.class),
            _ => none(format!(
                "needs a text column ({}) and a label column ({}) ({})",
                CLASS_TEXT.join("/"),
                CLASS_LABEL.join("/"),
                found()
            )),
        };
        Fitness {
            sft,
            dpo,
            grpo,
            classification,
        }
    }
}

pub struct Inspector {
    opts: InspectOptions,
    source: String,
    sampled: bool,
    splits: Vec<SplitReport>,
    order: Vec<String>,
    columns: HashMap<String, ColumnAcc>,
    fit: FitAcc,
    samples: Vec<Record>,
    rows: u64,
    scanner: Option<crate::audit::secrets::Scanner>,
    /// Hashes of column names past [`MAX_COLUMNS`] (exact up to a cap, then only counted).
    untracked: HashSet<u64>,
}

/// A sample value as shown: secrets and personal data redacted, long strings cut.
fn truncate_value(v: &Value, chars: usize, scanner: &crate::audit::secrets::Scanner) -> Value {
    match v {
        Value::String(s) => {
            let s = scanner.redact_all(s);
            let n = s.chars().count();
            if n > chars {
                let cut: String = s.chars().take(chars).collect();
                Value::String(format!("{cut}… ({n} chars)"))
            } else {
                Value::String(s)
            }
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| truncate_value(x, chars, scanner))
                .collect(),
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), truncate_value(x, chars, scanner)))
                .collect(),
        ),
        other => other.clone(),
    }
}

impl Inspector {
    pub fn new(source: impl Into<String>, opts: InspectOptions) -> Inspector {
        Inspector {
            opts,
            source: source.into(),
            sampled: false,
            splits: Vec::new(),
            order: Vec::new(),
            columns: HashMap::new(),
            fit: FitAcc::default(),
            samples: Vec::new(),
            rows: 0,
            scanner: None,
            untracked: HashSet::new(),
        }
    }

    /// Marks the report as covering a sample only.
    pub fn set_sampled(&mut self, sampled: bool) {
        self.sampled = sampled;
    }

    fn split(&mut self, name: &str) -> &mut SplitReport {
        if let Some(i) = self.splits.iter().position(|s| s.name == name) {
            return &mut self.splits[i];
        }
        self.splits.push(SplitReport {
            name: name.to_string(),
            files: Vec::new(),
            rows: 0,
            skipped: 0,
            errors: Vec::new(),
        });
        self.splits.last_mut().expect("just pushed")
    }

    pub fn add_file(&mut self, split: &str, file: FileInfo) {
        self.split(split).files.push(file);
    }

    /// Adds one row of `split`; `row` is its number in its file.
    /// Adds a row known by its number only (e.g. a viewer row): problems name it `row N`.
    pub fn push(&mut self, split: &str, row: u64, r: &Record) {
        self.push_at(split, At { file: None, row }, r);
    }

    /// Adds a row with its location, which problems name (`file:line`).
    pub fn push_at(&mut self, split: &str, at: At, r: &Record) {
        self.rows += 1;
        self.split(split).rows += 1;
        let opts = &self.opts;
        for (k, v) in r {
            let acc = match self.columns.get_mut(k) {
                Some(a) => a,
                None if self.order.len() < MAX_COLUMNS => {
                    self.order.push(k.clone());
                    self.columns
                        .entry(k.clone())
                        .or_insert_with(ColumnAcc::start)
                }
                None => {
                    if self.untracked.len() < EXACT_BUDGET / 4 {
                        let mut h = std::collections::hash_map::DefaultHasher::new();
                        k.hash(&mut h);
                        self.untracked.insert(h.finish());
                    }
                    continue;
                }
            };
            let cap = opts
                .exact_distinct
                .min(EXACT_BUDGET / self.order.len().max(1));
            acc.push(v, opts, cap);
        }
        self.fit.push(r, at);
        if self.samples.len() < self.opts.sample_rows {
            let chars = self.opts.sample_chars;
            let scanner = self
                .scanner
                .get_or_insert_with(crate::audit::secrets::Scanner::new);
            self.samples.push(
                r.iter()
                    .map(|(k, v)| (k.clone(), truncate_value(v, chars, scanner)))
                    .collect(),
            );
        }
    }

    /// Counts a skipped row of `split`.
    pub fn skip(&mut self, split: &str, file: &str, e: RowError) {
        let keep = self.opts.errors_kept;
        let s = self.split(split);
        s.skipped += 1;
        if s.errors.len() < keep {
            s.errors.push(SkippedRow {
                file: file.to_string(),
                row: e.row,
                message: e.message,
            });
        }
    }

    pub fn finish(mut self) -> InspectReport {
        let names: BTreeSet<String> = self.order.iter().cloned().collect();
        let rows = self.rows;
        let columns = self
            .order
            .iter()
            .filter_map(|n| self.columns.remove(n).map(|c| c.finish(n.clone(), rows)))
            .collect();
        InspectReport {
            source: self.source,
            sampled: self.sampled,
            rows,
            skipped: self.splits.iter().map(|s| s.skipped).sum(),
            splits: self.splits,
            columns,
            fitness: self.fit.finish(&names),
            samples: self.samples,
            untracked_columns: self.untracked.len() as u64,
        }
    }
}

/// Inspects a local file or dataset directory. A file none of whose rows can be read is an
/// error ([`ReadError::Invalid`], naming the file, its row count and first error); an empty
/// file is not. `progress` gets the total bytes of the source
/// once at the start (as `rows = 0`), then rows and bytes read so far about every 10 000 rows
/// (bytes within a text file as it is scanned; a parquet file's bytes when it is done) and
/// after each file.
pub fn inspect_path(
    path: &Path,
    opts: InspectOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<InspectReport, ReadError> {
    let splits = read::resolve(path)?;
    let mut ins = Inspector::new(path.display().to_string(), opts);
    let total: u64 = splits
        .iter()
        .flat_map(|s| &s.files)
        .filter_map(|f| std::fs::metadata(f).ok().map(|m| m.len()))
        .sum();
    progress(Progress {
        rows: 0,
        files_done: 0,
        total_bytes: total,
        bytes_done: 0,
    });
    let mut done_bytes = 0u64;
    let mut files_done = 0u64;
    let reading = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    for s in &splits {
        for f in &s.files {
            let bytes = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
            let shown = f
                .strip_prefix(path)
                .ok()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(f)
                .display()
                .to_string();
            ins.add_file(
                &s.split,
                FileInfo {
                    path: shown.clone(),
                    format: Format::from_path(f),
                    bytes,
                },
            );
            reading.store(0, std::sync::atomic::Ordering::Relaxed);
            let mut seen = 0u64;
            // Rows are named `file:line`, the file relative to the directory inspected (or
            // its name, when the source is that file).
            let label = if f.as_path() == path {
                f.file_name()
                    .map_or(shown.clone(), |n| n.to_string_lossy().into_owned())
            } else {
                shown.clone()
            };
            let mut rows = read::open_with_progress(f, reading.clone())?;
            let mut broken = 0u64;
            let mut first_error: Option<String> = None;
            while let Some(row) = rows.next() {
                seen += 1;
                match row {
                    Ok(r) => {
                        let at = At {
                            file: Some(&label),
                            row: rows.last_row(),
                        };
                        ins.push_at(&s.split, at, &r);
                    }
                    Err(e) => {
                        broken += 1;
                        if first_error.is_none() {
                            first_error = Some(format!("line {}: {}", e.row, e.message));
                        }
                        ins.skip(&s.split, &label, e);
                    }
                }
                if seen.is_multiple_of(10_000) {
                    let within = reading.load(std::sync::atomic::Ordering::Relaxed);
                    progress(Progress {
                        rows: ins.rows,
                        files_done,
                        total_bytes: total,
                        bytes_done: done_bytes + within.min(bytes),
                    });
                }
            }
            // A file nothing could be read from is not data with a few broken rows: the file
            // is not what its name says (the audit fails on it the same way).
            if seen > 0 && broken == seen {
                return Err(ReadError::Invalid {
                    path: f.clone(),
                    message: format!(
                        "no readable row: all {seen} rows are broken (first, {}); is this the format its name says?",
                        first_error.as_deref().unwrap_or("?")
                    ),
                });
            }
            done_bytes += bytes;
            files_done += 1;
            progress(Progress {
                rows: ins.rows,
                files_done,
                total_bytes: total,
                bytes_done: done_bytes,
            });
        }
    }
    Ok(ins.finish())
}

/// Progress of a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub rows: u64,
    pub files_done: u64,
    pub total_bytes: u64,
    /// Bytes read so far (finished files plus the part of the current file read).
    pub bytes_done: u64,
}
