//! `audit`: one streaming, parallel pass over a dataset that finds exact and near duplicates
//! (MinHash LSH), train/eval contamination (word n-gram overlap, exact and normalised matches of short eval rows), PII and secrets,
//! prompt-injection strings and poisoning signals (trigger n-grams tied to one label or
//! response, identical DPO pairs, label flips among duplicates, length outliers).
//!
//! Rows are read in batches; each batch is turned into small per-row features on worker
//! threads ([`std::thread::scope`]) and merged in order. What is kept after a row is merged:
//!
//! * per row: a 64-bit text hash, a length, a label/target id and a ≤72-character redacted
//!   excerpt (about 120 bytes), plus, for the first row of each distinct text, its MinHash
//!   signature (`4 × num_perm` bytes: 512 bytes at the default 128) and its shingle set (4
//!   bytes a distinct shingle, up to [`MAX_KEPT_SHINGLES`] in all), so LSH candidates are
//!   verified on their true Jaccard similarity, not the signature's estimate. Memory is
//!   therefore `rows × (≈120 + 4 × num_perm + 4 × shingles)` bytes;
//! * the eval set's n-gram hashes (`--against`), 12 bytes per distinct eval n-gram;
//! * the poisoning n-gram table, capped at [`AuditConfig::ngram_table_cap`] entries (lossy
//!   counting: when full, entries seen at most `level` times are dropped and `level` rises,
//!   so a pruned n-gram is undercounted by at most `level`), a word table (rows and per-label
//!   rows per word) capped at the same number of words, and an 8-byte hash per distinct
//!   (input, target) pair, over which trigger support is counted.
//!
//! Row numbers are 1-based positions in the stream (broken rows count, files follow one
//! another); [`AuditReport::locations`] names every row the report cites as `file:line`.
//! Excerpts of secrets and PII never hold the whole value: every excerpt is passed through
//! [`secrets::Scanner::redact_all`] on the full row text before it is cut.

pub mod inject;
pub mod minhash;
pub mod pii;
pub mod secrets;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::Record;
use crate::read::{self, ReadError, RowError, RowSource};
use minhash::{MinHasher, Shingle};

/// How serious a finding is; the CLI fails at or above a chosen level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

/// The detectors; each can be switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Detector {
    ExactDup,
    NearDup,
    Contamination,
    Pii,
    Secrets,
    Injection,
    Poisoning,
    /// Rows that could not be parsed. Always on (not in [`Detector::ALL`]): a row nobody
    /// could read was checked by no detector.
    BrokenRows,
}

impl Detector {
    pub const ALL: [Detector; 7] = [
        Detector::ExactDup,
        Detector::NearDup,
        Detector::Contamination,
        Detector::Pii,
        Detector::Secrets,
        Detector::Injection,
        Detector::Poisoning,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Detector::ExactDup => "exact-dup",
            Detector::NearDup => "near-dup",
            Detector::Contamination => "contamination",
            Detector::Pii => "pii",
            Detector::Secrets => "secrets",
            Detector::Injection => "injection",
            Detector::Poisoning => "poisoning",
            Detector::BrokenRows => "broken-rows",
        }
    }

    pub fn parse(s: &str) -> Option<Detector> {
        Detector::ALL.into_iter().find(|d| d.name() == s)
    }
}

/// Shingle hashes kept for exact verification of near-duplicate candidates (4 bytes each:
/// 1 GiB). Rows past it are verified by their signatures (counted in
/// [`NearDupReport::estimated_pairs`]).
pub const MAX_KEPT_SHINGLES: usize = 1 << 28;

/// In an LSH bucket, each row is verified against at most this many earlier rows not yet in
/// its group, looking back at most [`NEAR_SCAN`] rows (bounded work in a huge bucket).
pub const NEAR_VERIFY: usize = 8;
/// See [`NEAR_VERIFY`].
pub const NEAR_SCAN: usize = 32;

/// Near-duplicate (MinHash LSH) parameters.
#[derive(Debug, Clone, Serialize)]
pub struct NearDupConfig {
    /// Jaccard similarity of two rows' shingle sets at or above which they are near
    /// duplicates (checked exactly on every LSH candidate pair).
    pub threshold: f64,
    /// Signature length (number of hash permutations).
    pub num_perm: usize,
    /// LSH bands; `None` picks the `(bands, rows)` minimising the error around `threshold`
    /// with false negatives weighted 9:1 (candidates are verified, so extra ones are cheap).
    pub bands: Option<usize>,
    /// Shingling: word n-grams (default 3) or character n-grams.
    pub shingle: Shingle,
    /// Seed of the permutation family.
    pub seed: u64,
}

impl Default for NearDupConfig {
    fn default() -> Self {
        NearDupConfig {
            threshold: 0.8,
            num_perm: 128,
            bands: None,
            shingle: Shingle::Words(3),
            seed: 1,
        }
    }
}

/// Knobs of an audit.
#[derive(Debug, Clone, Serialize)]
pub struct AuditConfig {
    pub detectors: Vec<Detector>,
    pub near_dup: NearDupConfig,
    /// Word n-gram length for contamination; `None` chooses it from the eval rows' lengths
    /// (see [`adaptive_ngram`]). Eval rows shorter than it are matched whole (exact and
    /// normalised text), so no eval row goes unchecked for being short.
    pub contamination_ngram: Option<usize>,
    /// A train row is contaminated when it holds at least this fraction of one eval row's
    /// n-grams.
    pub contamination_threshold: f64,
    /// Poisoning: a trigger n-gram must occur in at least this many rows …
    pub trigger_min_rows: u64,
    /// … and in at most this fraction of rows (it is rare) …
    pub trigger_max_fraction: f64,
    /// … with at least this share of its rows mapped to one label/response …
    pub trigger_min_purity: f64,
    /// … which is at least this many times that target's base rate …
    pub trigger_min_lift: f64,
    /// … and significant: the one-sided binomial tail of its purity against the target's
    /// base rate, times the number of n-grams tested (Bonferroni), is at most this.
    pub trigger_alpha: f64,
    /// High severity needs an adjusted p-value at most `10^trigger_high_log10_p` …
    pub trigger_high_log10_p: f64,
    /// … With labels, it must also be foreign to its rows: the mean evidence their other
    /// words give for the label (log-odds, see `context_evidence`), plus one standard error,
    /// must be at most this. A dirty-label backdoor pastes it into rows of other classes
    /// (evidence below zero); the rows of a class or topic word point to its label (above
    /// zero) and are counted in `label_consistent_ngrams` instead.
    pub trigger_max_context_evidence: f64,
    /// Longest n-gram (words) considered as a trigger.
    pub trigger_max_words: usize,
    /// Entries of the trigger n-gram table before lossy pruning.
    pub ngram_table_cap: usize,
    /// Length outliers: |ln(1+chars) − median| > k × 1.4826 × MAD.
    pub length_mad_k: f64,
    /// Examples (row lists, groups) kept per detector; all are counted.
    pub max_examples: usize,
    /// Worker threads; 0 uses the available parallelism.
    pub threads: usize,
    /// Rows per batch handed to the workers.
    pub batch_rows: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            detectors: Detector::ALL.to_vec(),
            near_dup: NearDupConfig::default(),
            contamination_ngram: None,
            contamination_threshold: 0.5,
            trigger_min_rows: 10,
            trigger_max_fraction: 0.1,
            trigger_min_purity: 0.95,
            trigger_min_lift: 1.0,
            trigger_alpha: 0.01,
            trigger_high_log10_p: -6.0,
            trigger_max_context_evidence: -0.5,
            trigger_max_words: 3,
            ngram_table_cap: 400_000,
            length_mad_k: 6.0,
            max_examples: 10,
            threads: 0,
            batch_rows: 4096,
        }
    }
}

impl AuditConfig {
    pub fn enabled(&self, d: Detector) -> bool {
        self.detectors.contains(&d)
    }
}

/// A configuration that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("invalid audit setting: {0}")]
    Config(String),
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The source holds no row that could be read: nothing was audited.
    #[error("{0}")]
    NoReadableRows(String),
}

/// How serious broken rows are, by their share of all rows: a tenth or more is high (the
/// file is probably not what its name says), a hundredth or more medium, fewer low.
pub fn broken_severity(broken: u64, rows: u64) -> Severity {
    let share = broken as f64 / rows.max(1) as f64;
    if share >= 0.1 {
        Severity::High
    } else if share >= 0.01 {
        Severity::Medium
    } else {
        Severity::Low
    }
}

/// `first`: the first broken row, located (`file:line: what`).
fn no_readable_rows(rows: u64, first: Option<String>) -> AuditError {
    AuditError::NoReadableRows(match first {
        _ if rows == 0 => "no rows to audit (the source is empty)".to_string(),
        None => format!("no readable row: all {rows} rows are broken"),
        Some(e) => format!(
            "no readable row: all {rows} rows are broken (first: {e}); is this the format its name says?"
        ),
    })
}

/// Rows and broken rows per file of a stream, to name the files nothing could be read from.
#[derive(Default)]
struct FileTally {
    name: Option<String>,
    rows: u64,
    broken: u64,
    first: Option<String>,
    /// Files whose every row was broken: `name (…)`.
    unreadable: Vec<String>,
}

impl FileTally {
    /// Counts a row of `file`; `broken`: its line and what was wrong.
    fn row(&mut self, file: Option<&str>, broken: Option<(u64, &str)>) {
        if self.name.as_deref() != file {
            self.close();
            self.name = file.map(str::to_string);
        }
        self.rows += 1;
        if let Some((line, what)) = broken {
            self.broken += 1;
            if self.first.is_none() {
                self.first = Some(format!("line {line}: {what}"));
            }
        }
    }

    fn close(&mut self) {
        if let Some(name) = &self.name
            && self.rows > 0
            && self.rows == self.broken
        {
            self.unreadable.push(format!(
                "{name} (all {} rows broken; first, {})",
                self.rows,
                self.first.as_deref().unwrap_or("?")
            ));
        }
        self.rows = 0;
        self.broken = 0;
        self.first = None;
    }
}

/// Where the rows of a stream are: runs of rows from one file whose line is their stream
/// position plus a constant (a new run starts at a new file, a blank line or a multi-line
/// record), so memory grows with the number of such breaks, not with the rows.
#[derive(Debug, Default, Clone)]
struct RowMap {
    files: Vec<String>,
    /// (first position, file index or `u32::MAX` for none, line − position).
    runs: Vec<(u64, u32, i64)>,
}

impl RowMap {
    fn note(&mut self, pos: u64, file: Option<&str>, line: u64) {
        let f = match file {
            None => u32::MAX,
            Some(name) => match self.files.last() {
                Some(last) if last == name => (self.files.len() - 1) as u32,
                _ => {
                    self.files.push(name.to_string());
                    (self.files.len() - 1) as u32
                }
            },
        };
        let delta = line as i64 - pos as i64;
        if !matches!(self.runs.last(), Some(&(_, lf, ld)) if lf == f && ld == delta) {
            self.runs.push((pos, f, delta));
        }
    }

    /// `file:line` (or `row N` for a stream without file names) of a stream position.
    fn label(&self, pos: u64) -> String {
        let i = self.runs.partition_point(|r| r.0 <= pos);
        match i.checked_sub(1).map(|i| self.runs[i]) {
            None => format!("row {pos}"),
            Some((_, f, delta)) => {
                let line = (pos as i64 + delta).max(0);
                match self.files.get(f as usize) {
                    Some(name) => format!("{name}:{line}"),
                    None => format!("row {line}"),
                }
            }
        }
    }
}

// ------------------------------------------------------------------ report

/// Everything an audit found.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub rows: u64,
    pub broken_rows: u64,
    pub broken_examples: Vec<RowError>,
    pub eval_rows: Option<u64>,
    pub config: AuditConfig,
    /// One line per detector that found something, with its severity.
    pub summary: Vec<SummaryLine>,
    pub exact_duplicates: Option<DupReport>,
    pub near_duplicates: Option<NearDupReport>,
    pub contamination: Option<ContaminationReport>,
    pub pii: Option<SensitiveReport>,
    pub secrets: Option<SensitiveReport>,
    pub injection: Option<InjectionReport>,
    pub poisoning: Option<PoisoningReport>,
    /// Row numbers in this report are positions in the audited stream (1-based, broken rows
    /// included, across files); this names each one the report cites as `file:line` (the
    /// file relative to the directory audited, or its name), or `row N` for a stream
    /// without file names.
    pub locations: BTreeMap<u64, String>,
    /// The same for the eval rows cited (`eval_row`).
    pub eval_locations: BTreeMap<u64, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SummaryLine {
    pub detector: Detector,
    pub finding: &'static str,
    pub severity: Severity,
    pub count: u64,
}

impl AuditReport {
    /// Where a row this report cites is: `file:line`.
    pub fn at(&self, row: u64) -> String {
        self.locations
            .get(&row)
            .cloned()
            .unwrap_or_else(|| format!("row {row}"))
    }

    /// Where an eval row this report cites is: `file:line`.
    pub fn eval_at(&self, row: u64) -> String {
        self.eval_locations
            .get(&row)
            .cloned()
            .unwrap_or_else(|| format!("eval row {row}"))
    }

    /// Every row number the report cites.
    fn cited_rows(&self) -> std::collections::BTreeSet<u64> {
        let mut out = std::collections::BTreeSet::new();
        out.extend(self.broken_examples.iter().map(|e| e.row));
        if let Some(d) = &self.exact_duplicates {
            out.extend(d.examples.iter().flat_map(|g| g.rows.iter().copied()));
        }
        if let Some(d) = &self.near_duplicates {
            out.extend(d.examples.iter().flat_map(|g| g.rows.iter().copied()));
        }
        if let Some(c) = &self.contamination {
            out.extend(c.examples.iter().map(|x| x.row));
        }
        for s in [&self.pii, &self.secrets].into_iter().flatten() {
            out.extend(s.examples.iter().map(|h| h.row));
        }
        if let Some(i) = &self.injection {
            out.extend(i.examples.iter().map(|h| h.row));
        }
        if let Some(p) = &self.poisoning {
            out.extend(
                p.triggers
                    .iter()
                    .flat_map(|t| t.example_rows.iter().copied()),
            );
            out.extend(p.label_flips.iter().flat_map(|f| f.rows.iter().copied()));
            out.extend(p.identical_chosen_rejected_rows.iter().copied());
            out.extend(p.length_outlier_rows.iter().map(|o| o.row));
        }
        out
    }

    /// The most severe finding, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.summary
            .iter()
            .filter(|s| s.count > 0)
            .map(|s| s.severity)
            .max()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// Total rows in the group.
    pub size: u64,
    /// Its first rows (up to `max_examples`).
    pub rows: Vec<u64>,
    /// Redacted excerpt of the first row.
    pub excerpt: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DupReport {
    /// Rows that repeat an earlier row's normalised text.
    pub duplicate_rows: u64,
    pub groups: u64,
    pub examples: Vec<Group>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NearGroup {
    pub size: u64,
    pub rows: Vec<u64>,
    /// Lowest Jaccard similarity (of the shingle sets) of the verified pairs that joined the
    /// group.
    pub min_similarity: f64,
    pub excerpt: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NearDupReport {
    pub bands: usize,
    pub rows_per_band: usize,
    pub candidate_pairs: u64,
    /// Candidate pairs at or above the threshold.
    pub verified_pairs: u64,
    /// Candidate pairs judged by their signatures' agreement (an estimate) because a row's
    /// shingle set was past [`MAX_KEPT_SHINGLES`]; every other pair is judged exactly.
    pub estimated_pairs: u64,
    /// Rows in a near-duplicate group beyond its first row.
    pub near_duplicate_rows: u64,
    pub groups: u64,
    pub examples: Vec<NearGroup>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Contaminated {
    pub row: u64,
    pub eval_row: u64,
    /// How the match was found: `exact` (the same text), `normalised` (a short eval row's
    /// normalised words, whole or inside the train row) or `ngram` (n-gram overlap).
    pub method: &'static str,
    /// Fraction of the eval row's n-grams found in the train row (1 for whole-row matches).
    pub overlap: f64,
    pub excerpt: String,
}

/// How many eval rows each contamination method could check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EvalCoverage {
    /// Eval rows with at least `ngram` words, checked by n-gram overlap (and exact match).
    pub by_ngram: u64,
    /// Shorter eval rows with at least [`MIN_CONTAINED_WORDS`] words: checked by exact match
    /// and by their normalised words appearing anywhere in a train row.
    pub by_contained_words: u64,
    /// Eval rows of fewer words: checked by exact and normalised whole-row equality.
    pub by_whole_row: u64,
    /// Eval rows that could not be checked: broken, or without a word.
    pub unchecked: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContaminationReport {
    /// The n-gram length used.
    pub ngram: usize,
    /// Whether `ngram` was chosen from the eval rows (`false`: set by the caller).
    pub ngram_adaptive: bool,
    pub eval_ngrams: u64,
    pub coverage: EvalCoverage,
    pub rows: u64,
    pub examples: Vec<Contaminated>,
}

/// Shortest eval row (words) matched inside a longer train row; shorter ones ("yes", "Paris")
/// would occur by chance in ordinary text, so they only match a train row that is the same text.
pub const MIN_CONTAINED_WORDS: usize = 4;
/// Bounds of the adaptive contamination n-gram length (words).
pub const ADAPTIVE_NGRAM: (usize, usize) = (8, 13);

/// The n-gram length for an eval set: 13 words (the usual choice for long documents) unless
/// a tenth of the eval rows are shorter, then the 10th percentile of the row lengths, but never
/// below 8 words (shorter n-grams are common phrases). Rows shorter than the chosen length
/// are matched whole, so the choice trades n-gram specificity against whole-row matching.
pub fn adaptive_ngram(word_counts: &[usize]) -> usize {
    let (lo, hi) = ADAPTIVE_NGRAM;
    let mut v: Vec<usize> = word_counts.iter().copied().filter(|&n| n > 0).collect();
    if v.is_empty() {
        return hi;
    }
    v.sort_unstable();
    v[(v.len() - 1) / 10].clamp(lo, hi)
}

#[derive(Debug, Clone, Serialize)]
pub struct SensitiveHit {
    pub row: u64,
    pub field: String,
    pub kind: &'static str,
    /// The matched value, redacted (never the whole value).
    pub excerpt: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SensitiveReport {
    pub matches: u64,
    pub rows: u64,
    pub by_kind: BTreeMap<&'static str, u64>,
    pub examples: Vec<SensitiveHit>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InjectionHit {
    pub row: u64,
    pub field: String,
    pub kind: &'static str,
    pub excerpt: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct InjectionReport {
    pub rows: u64,
    pub by_kind: BTreeMap<&'static str, u64>,
    pub examples: Vec<InjectionHit>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Trigger {
    /// The n-gram (normalised words, secrets redacted).
    pub ngram: String,
    /// Distinct (input, target) rows holding it: repeated rows count once.
    pub rows: u64,
    /// High when the evidence is overwhelming, medium when only significant.
    pub severity: Severity,
    /// log10 of the Bonferroni-adjusted one-sided binomial p-value (capped at 0).
    pub log10_p: f64,
    /// Mean evidence the rows' other words give for the label (natural-log odds ratio);
    /// at or below zero for a phrase foreign to its rows. `None` for response targets, or
    /// when too few of its rows came after the warm-up to measure it.
    pub context_evidence: Option<f64>,
    /// Its standard error over the measured rows.
    pub context_evidence_se: Option<f64>,
    /// The label, or a redacted excerpt of the response, the rows map to.
    pub target: String,
    pub purity: f64,
    pub base_rate: f64,
    pub lift: f64,
    pub example_rows: Vec<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LabelFlip {
    pub rows: Vec<u64>,
    pub labels: Vec<String>,
    pub excerpt: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LengthOutlier {
    pub row: u64,
    pub chars: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PoisoningReport {
    /// What the trigger search mapped rows to: `label`, `response` or `none`.
    pub target_kind: &'static str,
    /// Triggers found (all counted; examples up to `max_examples`), strongest first.
    pub triggers: Vec<Trigger>,
    pub high_triggers: u64,
    pub medium_triggers: u64,
    /// N-grams that passed the significance test but are not foreign to their rows (their
    /// other words do not argue against the label): class or topic words, or a clean-label
    /// trigger, which this statistic cannot tell apart. Not reported as triggers.
    pub label_consistent_ngrams: u64,
    pub identical_chosen_rejected: u64,
    pub identical_chosen_rejected_rows: Vec<u64>,
    pub label_flip_groups: u64,
    pub label_flips: Vec<LabelFlip>,
    pub median_chars: f64,
    pub length_outliers: u64,
    pub length_outlier_rows: Vec<LengthOutlier>,
}

// ------------------------------------------------------------------ row views

const LABEL_FIELDS: &[&str] = &["label", "labels", "class", "category", "target"];
const RESPONSE_FIELDS: &[&str] = &[
    "completion",
    "response",
    "output",
    "answer",
    "chosen",
    "solution",
    "assistant",
];

/// The texts of a row as the detectors see them.
#[derive(Debug, Default)]
pub struct RowView {
    /// Prompt-side text (everything but labels and responses).
    pub input: String,
    /// Response-side text (`completion`, `chosen`, assistant messages, …).
    pub response: String,
    /// The label, when a label field is present.
    pub label: Option<String>,
    /// DPO: chosen and rejected texts.
    pub chosen: Option<String>,
    pub rejected: Option<String>,
    /// Every string value with its field path (for PII, secrets and injection).
    pub fields: Vec<(String, String)>,
}

fn flatten(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(flatten).collect::<Vec<_>>().join("\n"),
        Value::Object(m) => match m.get("content") {
            Some(c) => flatten(c),
            None => m.values().map(flatten).collect::<Vec<_>>().join("\n"),
        },
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn collect_strings(path: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => out.push((path.to_string(), s.clone())),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect_strings(&format!("{path}[{i}]"), x, out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                collect_strings(&format!("{path}.{k}"), x, out);
            }
        }
        _ => {}
    }
}

fn push_text(s: &mut String, t: &str) {
    if t.is_empty() {
        return;
    }
    if !s.is_empty() {
        s.push('\n');
    }
    s.push_str(t);
}

impl RowView {
    pub fn of(r: &Record) -> RowView {
        RowView::with_fields(r, true)
    }

    /// As [`RowView::of`]; `fields` stays empty unless `want_fields`.
    pub fn with_fields(r: &Record, want_fields: bool) -> RowView {
        let mut v = RowView::default();
        for (k, val) in r {
            if want_fields {
                collect_strings(k, val, &mut v.fields);
            }
            let key = k.to_ascii_lowercase();
            if LABEL_FIELDS.contains(&key.as_str()) {
                if !val.is_null() {
                    v.label = Some(match val {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    });
                }
                continue;
            }
            if key == "rejected" {
                v.rejected = Some(flatten(val));
                continue;
            }
            if key == "messages" || key == "conversations" {
                if let Value::Array(msgs) = val {
                    for m in msgs {
                        let role = m
                            .get("role")
                            .or_else(|| m.get("from"))
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        let content = m
                            .get("content")
                            .or_else(|| m.get("value"))
                            .map(flatten)
                            .unwrap_or_default();
                        if role == "assistant" || role == "gpt" {
                            push_text(&mut v.response, &content);
                        } else {
                            push_text(&mut v.input, &content);
                        }
                    }
                } else {
                    push_text(&mut v.input, &flatten(val));
                }
                continue;
            }
            let text = flatten(val);
            if RESPONSE_FIELDS.contains(&key.as_str()) {
                if key == "chosen" {
                    v.chosen = Some(text.clone());
                }
                push_text(&mut v.response, &text);
            } else if matches!(val, Value::String(_) | Value::Array(_) | Value::Object(_)) {
                push_text(&mut v.input, &text);
            }
        }
        v
    }

    /// The text the duplicate detectors compare: input, response and rejected.
    pub fn dedup_text(&self) -> String {
        let mut s = self.input.clone();
        push_text(&mut s, &self.response);
        if let Some(r) = &self.rejected {
            push_text(&mut s, r);
        }
        s
    }
}

/// Lowercased alphanumeric words joined by single spaces.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for w in minhash::words(text) {
        if !out.is_empty() {
            out.push(' ');
        }
        if w.is_ascii() {
            let start = out.len();
            out.push_str(w);
            out[start..].make_ascii_lowercase();
        } else {
            for c in w.chars() {
                out.extend(c.to_lowercase());
            }
        }
    }
    out
}

/// A redacted excerpt: secrets and PII redacted, then cut to `chars` characters.
///
/// Only a window of the text is scanned (the first [`EXCERPT_WINDOW`] bytes, extended to the
/// end of the token it would cut, so no secret is split at the window's edge); a token that
/// is still cut (longer than 4 KiB) is dropped. Every value that ends in the excerpt was
/// therefore seen whole by the scanner.
pub fn excerpt(scanner: &secrets::Scanner, text: &str, chars: usize) -> String {
    let text = text.trim_start();
    let mut end = text.len().min(EXCERPT_WINDOW.max(chars * 4));
    while !text.is_char_boundary(end) {
        end += 1;
    }
    let mut cut = false;
    if end < text.len() {
        let rest = &text[end..];
        let tok = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if tok <= 4096 {
            end += tok;
        } else {
            end = text[..end].rfind(char::is_whitespace).unwrap_or(0);
        }
        cut = end < text.len();
    }
    let flat: String = text[..end].split_whitespace().collect::<Vec<_>>().join(" ");
    let red = scanner.redact_all(&flat);
    let mut out: String = red.chars().take(chars).collect();
    if cut || red.chars().count() > chars {
        out.push('…');
    }
    out
}

/// Bytes of a row's text scanned for its excerpt (see [`excerpt`]).
pub const EXCERPT_WINDOW: usize = 320;

// ------------------------------------------------------------------ per-row features

struct Feat {
    row: u64,
    text_hash: u64,
    empty: bool,
    chars: u64,
    sig: Vec<u32>,
    /// The row's shingle set (32-bit hashes, sorted, distinct), for exact verification.
    shingle_set: Vec<u32>,
    label: Option<String>,
    target: Option<u64>,
    target_text: Option<String>,
    excerpt: String,
    /// Trigger candidates: (hash, text, first word position, words).
    ngrams: Vec<(u64, String, u32, u32)>,
    /// Unigram hashes of the input, by position (trigger context evidence; label targets).
    words: Vec<u64>,
    /// Hash of the normalised input and target: trigger support counts distinct pairs.
    trigger_key: u64,
    contamination: Option<(u32, &'static str, f64)>,
    pii: Vec<SensitiveHit>,
    secrets: Vec<SensitiveHit>,
    injection: Vec<InjectionHit>,
    identical_pair: bool,
}

struct Shared<'a> {
    cfg: &'a AuditConfig,
    hasher: MinHasher,
    scanner: secrets::Scanner,
    inject: inject::Detector,
    eval: Option<EvalIndex>,
    target_kind: TargetKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetKind {
    Undecided,
    Label,
    Response,
}

struct EvalIndex {
    n: usize,
    adaptive: bool,
    /// Where each eval row is.
    map: RowMap,
    ngrams: HashMap<u64, u32>,
    counts: Vec<u32>,
    /// Hash of each eval row's raw text (trimmed) → first eval row with it.
    exact: HashMap<u64, u32>,
    /// Hash of each short eval row's normalised words → first eval row with them.
    short: HashMap<u64, u32>,
    /// The distinct word counts (≥ [`MIN_CONTAINED_WORDS`]) of short eval rows.
    short_lens: Vec<usize>,
    coverage: EvalCoverage,
}

fn word_hashes(norm: &str) -> Vec<u64> {
    norm.split(' ')
        .filter(|w| !w.is_empty())
        .map(|w| minhash::hash_bytes(w.as_bytes(), 7))
        .collect()
}

fn ngrams_of(hs: &[u64], n: usize) -> Vec<u64> {
    let mut out: Vec<u64> = if hs.len() < n {
        Vec::new()
    } else {
        hs.windows(n).map(minhash::combine).collect()
    };
    out.sort_unstable();
    out.dedup();
    out
}

fn raw_hash(text: &str) -> u64 {
    minhash::hash_bytes(text.trim().as_bytes(), 17)
}

impl EvalIndex {
    fn build(rows: &mut dyn RowSource, n: Option<usize>) -> (EvalIndex, u64) {
        // The eval set is read once and kept as word hashes (8 bytes a word, as the n-gram
        // index is) so the n-gram length can be chosen from its row lengths.
        let mut kept: Vec<Option<(u64, Vec<u64>)>> = Vec::new();
        let mut map = RowMap::default();
        while let Some(r) = rows.next() {
            map.note(kept.len() as u64 + 1, rows.file(), rows.last_row());
            kept.push(r.ok().map(|rec| {
                let text = RowView::of(&rec).dedup_text();
                (raw_hash(&text), word_hashes(&normalise(&text)))
            }));
        }
        let lens: Vec<usize> = kept.iter().flatten().map(|(_, h)| h.len()).collect();
        let adaptive = n.is_none();
        let n = n.unwrap_or_else(|| adaptive_ngram(&lens));
        let mut idx = EvalIndex {
            n,
            adaptive,
            map,
            ngrams: HashMap::new(),
            counts: Vec::with_capacity(kept.len()),
            exact: HashMap::new(),
            short: HashMap::new(),
            short_lens: Vec::new(),
            coverage: EvalCoverage::default(),
        };
        let total = kept.len() as u64;
        for (id, row) in kept.into_iter().enumerate() {
            let id = id as u32;
            let Some((raw, hs)) = row.filter(|(_, hs)| !hs.is_empty()) else {
                idx.coverage.unchecked += 1;
                idx.counts.push(0);
                continue;
            };
            idx.exact.entry(raw).or_insert(id);
            if hs.len() >= n {
                idx.coverage.by_ngram += 1;
                let grams = ngrams_of(&hs, n);
                idx.counts.push(grams.len() as u32);
                for g in grams {
                    idx.ngrams.entry(g).or_insert(id);
                }
            } else {
                idx.counts.push(0);
                idx.short.entry(minhash::combine(&hs)).or_insert(id);
                if hs.len() >= MIN_CONTAINED_WORDS {
                    idx.coverage.by_contained_words += 1;
                    if !idx.short_lens.contains(&hs.len()) {
                        idx.short_lens.push(hs.len());
                    }
                } else {
                    idx.coverage.by_whole_row += 1;
                }
            }
        }
        idx.short_lens.sort_unstable();
        (idx, total)
    }

    /// The eval row a train row copies, the method and the overlap, if any.
    fn check(&self, text: &str, norm: &str, threshold: f64) -> Option<(u32, &'static str, f64)> {
        if let Some(&e) = self.exact.get(&raw_hash(text)) {
            return Some((e, "exact", 1.0));
        }
        let hs = word_hashes(norm);
        let mut hits: HashMap<u32, u32> = HashMap::new();
        for g in ngrams_of(&hs, self.n) {
            if let Some(&e) = self.ngrams.get(&g) {
                *hits.entry(e).or_default() += 1;
            }
        }
        let best = hits
            .into_iter()
            .map(|(e, c)| (e, f64::from(c) / f64::from(self.counts[e as usize].max(1))))
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
        if let Some((e, overlap)) = best
            && overlap >= threshold
        {
            return Some((e, "ngram", overlap));
        }
        if self.short.is_empty() || hs.is_empty() {
            return None;
        }
        if let Some(&e) = self.short.get(&minhash::combine(&hs)) {
            return Some((e, "normalised", 1.0));
        }
        self.short_lens
            .iter()
            .filter(|&&k| k < hs.len())
            .flat_map(|&k| hs.windows(k))
            .filter_map(|w| self.short.get(&minhash::combine(w)))
            .min()
            .map(|&e| (e, "normalised", 1.0))
    }
}

fn features(sh: &Shared, row: u64, rec: &Record) -> Feat {
    let cfg = sh.cfg;
    let view = RowView::with_fields(
        rec,
        cfg.enabled(Detector::Pii)
            || cfg.enabled(Detector::Secrets)
            || cfg.enabled(Detector::Injection),
    );
    let text = view.dedup_text();
    let norm = normalise(&text);
    let text_hash = minhash::hash_bytes(norm.as_bytes(), 3);
    let mut f = Feat {
        row,
        text_hash,
        empty: norm.is_empty(),
        chars: text.chars().count() as u64,
        sig: Vec::new(),
        shingle_set: Vec::new(),
        label: view.label.clone(),
        target: None,
        target_text: None,
        excerpt: excerpt(&sh.scanner, &text, 72),
        ngrams: Vec::new(),
        words: Vec::new(),
        trigger_key: 0,
        contamination: None,
        pii: Vec::new(),
        secrets: Vec::new(),
        injection: Vec::new(),
        identical_pair: false,
    };
    if cfg.enabled(Detector::NearDup) && !f.empty {
        let mut sh_buf = Vec::new();
        minhash::shingles(&norm, cfg.near_dup.shingle, &mut sh_buf);
        f.sig = vec![0; sh.hasher.num_perm()];
        sh.hasher.signature(&sh_buf, &mut f.sig);
        f.shingle_set = minhash::shingle_set32(&sh_buf);
    }
    if cfg.enabled(Detector::Contamination)
        && let Some(ev) = &sh.eval
    {
        f.contamination = ev.check(&text, &norm, cfg.contamination_threshold);
    }
    if cfg.enabled(Detector::Pii) || cfg.enabled(Detector::Secrets) {
        for (field, s) in &view.fields {
            for h in sh.scanner.scan(s) {
                let hit = SensitiveHit {
                    row,
                    field: field.clone(),
                    kind: h.kind,
                    excerpt: secrets::redact(&s[h.start..h.end]),
                };
                match h.class {
                    secrets::Class::Pii if cfg.enabled(Detector::Pii) => f.pii.push(hit),
                    secrets::Class::Secret if cfg.enabled(Detector::Secrets) => f.secrets.push(hit),
                    _ => {}
                }
            }
        }
    }
    if cfg.enabled(Detector::Injection) {
        for (field, s) in &view.fields {
            for h in sh.inject.scan(s) {
                f.injection.push(InjectionHit {
                    row,
                    field: field.clone(),
                    kind: h.kind,
                    excerpt: excerpt(&sh.scanner, &h.matched, 80),
                });
            }
        }
    }
    if cfg.enabled(Detector::Poisoning) {
        if let (Some(c), Some(r)) = (&view.chosen, &view.rejected) {
            let (c, r) = (normalise(c), normalise(r));
            f.identical_pair = !c.is_empty() && c == r;
        }
        let target = match sh.target_kind {
            TargetKind::Label => view.label.clone().map(|l| (l.clone(), l)),
            TargetKind::Response if !view.response.trim().is_empty() => Some((
                normalise(&view.response),
                excerpt(&sh.scanner, &view.response, 48),
            )),
            _ => None,
        };
        if let Some((key, shown)) = target {
            let t = minhash::hash_bytes(key.as_bytes(), 11);
            f.target = Some(t);
            f.target_text = Some(shown);
            let input = normalise(&view.input);
            f.trigger_key = minhash::hash_bytes(input.as_bytes(), 17) ^ t.rotate_left(29);
            let words: Vec<&str> = input.split(' ').filter(|w| !w.is_empty()).collect();
            if sh.target_kind == TargetKind::Label {
                f.words = words
                    .iter()
                    .map(|w| minhash::hash_bytes(w.as_bytes(), 14))
                    .collect();
            }
            let mut seen = std::collections::HashSet::new();
            for n in 1..=cfg.trigger_max_words.max(1) {
                for (pos, win) in words.windows(n).enumerate() {
                    let g = win.join(" ");
                    let h = minhash::hash_bytes(g.as_bytes(), 13 + n as u64);
                    if seen.insert(h) {
                        f.ngrams.push((h, g, pos as u32, n as u32));
                    }
                }
            }
        }
    }
    f
}

// ------------------------------------------------------------------ the audit

#[derive(Default)]
struct NgramStat {
    count: u32,
    t1: u64,
    c1: u32,
    t2: u64,
    c2: u32,
    /// Summed context evidence (see [`context_evidence`]) of the `t1` and `t2` rows.
    e1: f64,
    e2: f64,
    /// Sums of squares of the same, for a standard error.
    q1: f64,
    q2: f64,
    /// Rows of `t1`/`t2` whose evidence was measured (after the warm-up).
    n1: u32,
    n2: u32,
    text: Box<str>,
    rows: Vec<u64>,
}

/// Per word (label targets only): rows holding it, and how many of them map to each label.
#[derive(Default)]
struct WordStat {
    rows: u32,
    by_target: Vec<(u64, u32)>,
}

struct Acc {
    rows: u64,
    broken: u64,
    broken_examples: Vec<RowError>,
    // per row (index = ordinal among parsed rows)
    row_no: Vec<u64>,
    chars: Vec<u64>,
    label: Vec<u32>,
    excerpts: Vec<Box<str>>,
    labels: Vec<String>,
    label_ids: HashMap<String, u32>,
    exact: HashMap<u64, u32>,
    exact_dup_of: Vec<u32>,
    // near dups, over the first row of each distinct text
    sig_rows: Vec<u32>,
    sigs: Vec<u32>,
    /// Shingle sets of the `sig_rows`, back to back (`shingle_at[i]` is row i's start and
    /// length; a length of `u32::MAX` means not kept: past the memory budget).
    shingle_sets: Vec<u32>,
    shingle_at: Vec<(u64, u32)>,
    contaminated: Vec<Contaminated>,
    contaminated_rows: u64,
    pii: Vec<SensitiveHit>,
    pii_matches: u64,
    pii_rows: u64,
    pii_kinds: BTreeMap<&'static str, u64>,
    secrets: Vec<SensitiveHit>,
    secret_matches: u64,
    secret_rows: u64,
    secret_kinds: BTreeMap<&'static str, u64>,
    injection: Vec<InjectionHit>,
    injection_rows: u64,
    injection_kinds: BTreeMap<&'static str, u64>,
    identical: u64,
    identical_rows: Vec<u64>,
    ngrams: HashMap<u64, NgramStat>,
    prune_level: u32,
    target_counts: HashMap<u64, u64>,
    target_texts: HashMap<u64, String>,
    target_rows: u64,
    /// Trigger support is counted over distinct (input, target) pairs.
    trigger_seen: std::collections::HashSet<u64>,
    /// Targets are labels (a few classes), not responses: per-word label counts are kept.
    label_targets: bool,
    words: HashMap<u64, WordStat>,
}

/// Audits `rows` (optionally against `eval`), calling `progress` with the rows processed.
pub fn audit(
    rows: &mut dyn RowSource,
    eval: Option<&mut dyn RowSource>,
    cfg: &AuditConfig,
    progress: &mut dyn FnMut(u64),
) -> Result<AuditReport, AuditError> {
    let nd = &cfg.near_dup;
    if !(nd.threshold > 0.0 && nd.threshold <= 1.0) {
        return Err(AuditError::Config(format!(
            "near-dup threshold must be in (0, 1], got {}",
            nd.threshold
        )));
    }
    if nd.num_perm == 0 || nd.num_perm > 4096 {
        return Err(AuditError::Config(format!(
            "num_perm must be in 1..=4096, got {}",
            nd.num_perm
        )));
    }
    let shingle_n = match nd.shingle {
        Shingle::Words(n) | Shingle::Chars(n) => n,
    };
    if shingle_n == 0 || shingle_n > 64 {
        return Err(AuditError::Config(format!(
            "shingle size must be in 1..=64, got {shingle_n}"
        )));
    }
    let (bands, rows_per_band) = match nd.bands {
        Some(b) if b == 0 || b > nd.num_perm => {
            return Err(AuditError::Config(format!(
                "bands must be in 1..={}, got {b}",
                nd.num_perm
            )));
        }
        Some(b) => (b, nd.num_perm / b),
        None => {
            minhash::lsh_params_weighted(nd.threshold, nd.num_perm, minhash::VERIFIED_FP_WEIGHT)
        }
    };
    if cfg.contamination_ngram == Some(0) {
        return Err(AuditError::Config(
            "contamination n-gram must be ≥ 1".into(),
        ));
    }
    let (eval_index, eval_rows) = match eval {
        Some(e) if cfg.enabled(Detector::Contamination) => {
            let (i, n) = EvalIndex::build(e, cfg.contamination_ngram);
            (Some(i), Some(n))
        }
        Some(e) => (None, Some(e.count() as u64)),
        None => (None, None),
    };
    let eval_ngrams = eval_index.as_ref().map_or(0, |e| e.ngrams.len() as u64);
    let mut shared = Shared {
        cfg,
        hasher: MinHasher::new(nd.num_perm, nd.seed),
        scanner: secrets::Scanner::new(),
        inject: inject::Detector::new(),
        eval: eval_index,
        target_kind: TargetKind::Undecided,
    };
    let threads = if cfg.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        cfg.threads
    };
    let mut acc = Acc {
        rows: 0,
        broken: 0,
        broken_examples: Vec::new(),
        row_no: Vec::new(),
        chars: Vec::new(),
        label: Vec::new(),
        excerpts: Vec::new(),
        labels: Vec::new(),
        label_ids: HashMap::new(),
        exact: HashMap::new(),
        exact_dup_of: Vec::new(),
        sig_rows: Vec::new(),
        sigs: Vec::new(),
        shingle_sets: Vec::new(),
        shingle_at: Vec::new(),
        contaminated: Vec::new(),
        contaminated_rows: 0,
        pii: Vec::new(),
        pii_matches: 0,
        pii_rows: 0,
        pii_kinds: BTreeMap::new(),
        secrets: Vec::new(),
        secret_matches: 0,
        secret_rows: 0,
        secret_kinds: BTreeMap::new(),
        injection: Vec::new(),
        injection_rows: 0,
        injection_kinds: BTreeMap::new(),
        identical: 0,
        identical_rows: Vec::new(),
        ngrams: HashMap::new(),
        prune_level: 0,
        target_counts: HashMap::new(),
        target_texts: HashMap::new(),
        target_rows: 0,
        trigger_seen: std::collections::HashSet::new(),
        label_targets: false,
        words: HashMap::new(),
    };
    let batch = cfg.batch_rows.max(1);
    let mut pos = 0u64;
    let mut map = RowMap::default();
    let mut tally = FileTally::default();
    loop {
        let mut recs: Vec<(u64, Record)> = Vec::with_capacity(batch);
        while let Some(r) = rows.next() {
            pos += 1;
            acc.rows += 1;
            map.note(pos, rows.file(), rows.last_row());
            let broken = r.as_ref().err().map(|e| (e.row, e.message.as_str()));
            tally.row(rows.file(), broken);
            match r {
                Ok(rec) => recs.push((pos, rec)),
                Err(mut e) => {
                    acc.broken += 1;
                    if acc.broken_examples.len() < cfg.max_examples {
                        // Numbered like every other row of the report (see `locations`).
                        e.row = pos;
                        acc.broken_examples.push(e);
                    }
                }
            }
            if recs.len() >= batch {
                break;
            }
        }
        if recs.is_empty() {
            break;
        }
        if shared.target_kind == TargetKind::Undecided {
            // The first batch decides what trigger n-grams are tied to.
            let labelled = recs
                .iter()
                .filter(|(_, r)| {
                    r.keys()
                        .any(|k| LABEL_FIELDS.contains(&k.to_ascii_lowercase().as_str()))
                })
                .count();
            shared.target_kind = if labelled * 2 >= recs.len() {
                TargetKind::Label
            } else {
                TargetKind::Response
            };
        }
        acc.label_targets = shared.target_kind == TargetKind::Label;
        let feats = compute(&shared, &recs, threads);
        drop(recs);
        for f in feats {
            merge(&mut acc, cfg, f);
        }
        progress(acc.rows);
    }
    progress(acc.rows);
    if acc.rows == acc.broken {
        let first = acc
            .broken_examples
            .first()
            .map(|e| format!("{}: {}", map.label(e.row), e.message));
        return Err(no_readable_rows(acc.rows, first));
    }
    // A file of a dataset that nobody could read is not a finding among others: the dataset
    // is not what its files say.
    tally.close();
    if !tally.unreadable.is_empty() {
        return Err(AuditError::NoReadableRows(format!(
            "no readable row in {}; is each file the format its name says?",
            tally.unreadable.join(", ")
        )));
    }
    let mut report = finish(
        acc,
        cfg,
        &shared,
        bands,
        rows_per_band,
        eval_rows,
        eval_ngrams,
    );
    report.locations = report
        .cited_rows()
        .into_iter()
        .map(|r| (r, map.label(r)))
        .collect();
    if let (Some(ev), Some(c)) = (&shared.eval, &report.contamination) {
        report.eval_locations = c
            .examples
            .iter()
            .map(|x| (x.eval_row, ev.map.label(x.eval_row)))
            .collect();
    }
    Ok(report)
}

fn compute(sh: &Shared, recs: &[(u64, Record)], threads: usize) -> Vec<Feat> {
    if threads <= 1 || recs.len() < 64 {
        return recs.iter().map(|(n, r)| features(sh, *n, r)).collect();
    }
    let chunk = recs.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = recs
            .chunks(chunk)
            .map(|c| {
                s.spawn(move || {
                    c.iter()
                        .map(|(n, r)| features(sh, *n, r))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(recs.len());
        for h in handles {
            match h.join() {
                Ok(v) => out.extend(v),
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        out
    })
}

fn merge(acc: &mut Acc, cfg: &AuditConfig, f: Feat) {
    let idx = acc.row_no.len() as u32;
    let max = cfg.max_examples;
    acc.row_no.push(f.row);
    acc.chars.push(f.chars);
    let lid = match &f.label {
        Some(l) => match acc.label_ids.get(l) {
            Some(&i) => i,
            None => {
                let i = acc.labels.len() as u32;
                acc.labels.push(l.clone());
                acc.label_ids.insert(l.clone(), i);
                i
            }
        },
        None => u32::MAX,
    };
    acc.label.push(lid);
    acc.excerpts.push(f.excerpt.into_boxed_str());
    let first = if f.empty {
        None
    } else {
        Some(*acc.exact.entry(f.text_hash).or_insert(idx))
    };
    acc.exact_dup_of.push(first.unwrap_or(idx));
    if first == Some(idx) && !f.sig.is_empty() {
        acc.sig_rows.push(idx);
        acc.sigs.extend_from_slice(&f.sig);
        let start = acc.shingle_sets.len() as u64;
        if acc.shingle_sets.len() + f.shingle_set.len() <= MAX_KEPT_SHINGLES {
            acc.shingle_sets.extend_from_slice(&f.shingle_set);
            acc.shingle_at.push((start, f.shingle_set.len() as u32));
        } else {
            acc.shingle_at.push((start, u32::MAX));
        }
    }
    if let Some((e, method, overlap)) = f.contamination {
        acc.contaminated_rows += 1;
        if acc.contaminated.len() < max {
            acc.contaminated.push(Contaminated {
                row: f.row,
                eval_row: u64::from(e) + 1,
                method,
                overlap,
                excerpt: acc.excerpts[idx as usize].to_string(),
            });
        }
    }
    if !f.pii.is_empty() {
        acc.pii_rows += 1;
        for h in f.pii {
            acc.pii_matches += 1;
            *acc.pii_kinds.entry(h.kind).or_default() += 1;
            if acc.pii.len() < max {
                acc.pii.push(h);
            }
        }
    }
    if !f.secrets.is_empty() {
        acc.secret_rows += 1;
        for h in f.secrets {
            acc.secret_matches += 1;
            *acc.secret_kinds.entry(h.kind).or_default() += 1;
            if acc.secrets.len() < max {
                acc.secrets.push(h);
            }
        }
    }
    if !f.injection.is_empty() {
        acc.injection_rows += 1;
        for h in f.injection {
            *acc.injection_kinds.entry(h.kind).or_default() += 1;
            if acc.injection.len() < max {
                acc.injection.push(h);
            }
        }
    }
    if f.identical_pair {
        acc.identical += 1;
        if acc.identical_rows.len() < max {
            acc.identical_rows.push(f.row);
        }
    }
    if let Some(t) = f.target
        && acc.trigger_seen.insert(f.trigger_key)
    {
        let evidence = if acc.label_targets && acc.target_rows >= CONTEXT_WARMUP_ROWS {
            context_evidence(acc, t, &f.words)
        } else {
            None
        };
        acc.target_rows += 1;
        let c = acc.target_counts.entry(t).or_default();
        *c += 1;
        if *c == 2
            && let Some(txt) = f.target_text
        {
            acc.target_texts.insert(t, txt);
        }
        for (h, g, pos, n) in f.ngrams {
            // Evidence for the row's target from the words outside this n-gram.
            let rest = match &evidence {
                Some((total, per)) => {
                    let span = &f.words[pos as usize..(pos + n) as usize];
                    let mut own = 0.0;
                    for (k, w) in span.iter().enumerate() {
                        if !span[..k].contains(w) {
                            own += per.get(w).copied().unwrap_or(0.0);
                        }
                    }
                    Some(total - own)
                }
                None => None,
            };
            let (rest, measured) = (rest.unwrap_or(0.0), u32::from(rest.is_some()));
            let s = acc.ngrams.entry(h).or_insert_with(|| NgramStat {
                text: g.into_boxed_str(),
                ..NgramStat::default()
            });
            s.count += 1;
            if s.c1 == 0 || s.t1 == t {
                s.t1 = t;
                s.c1 += 1;
                s.e1 += rest;
                s.q1 += rest * rest;
                s.n1 += measured;
            } else if s.c2 == 0 || s.t2 == t {
                s.t2 = t;
                s.c2 += 1;
                s.e2 += rest;
                s.q2 += rest * rest;
                s.n2 += measured;
                if s.c2 > s.c1 {
                    std::mem::swap(&mut s.t1, &mut s.t2);
                    std::mem::swap(&mut s.c1, &mut s.c2);
                    std::mem::swap(&mut s.e1, &mut s.e2);
                    std::mem::swap(&mut s.q1, &mut s.q2);
                    std::mem::swap(&mut s.n1, &mut s.n2);
                }
            }
            if s.rows.len() < 3 {
                s.rows.push(f.row);
            }
        }
        if !f.words.is_empty() {
            let cap = cfg.ngram_table_cap.max(1024);
            let mut distinct = f.words.clone();
            distinct.sort_unstable();
            distinct.dedup();
            for w in distinct {
                if acc.words.len() >= cap && !acc.words.contains_key(&w) {
                    continue;
                }
                let ws = acc.words.entry(w).or_default();
                ws.rows += 1;
                match ws.by_target.iter_mut().find(|e| e.0 == t) {
                    Some(e) => e.1 += 1,
                    None => ws.by_target.push((t, 1)),
                }
            }
        }
        if acc.ngrams.len() > cfg.ngram_table_cap.max(1024) {
            while acc.ngrams.len() > cfg.ngram_table_cap.max(1024) / 2 {
                acc.prune_level += 1;
                let level = acc.prune_level;
                acc.ngrams.retain(|_, s| s.count > level);
            }
        }
    }
}

/// How strongly a row's own words already point to its label, from the rows merged before it:
/// the sum over its distinct words `w` of `logit P(label | w) − logit P(label)` (naive-Bayes
/// log-odds; each `P(label | w)` shrunk towards the base rate by [`CONTEXT_PRIOR_ROWS`]
/// pseudo-rows). Returned with each
/// word's term, so an n-gram's own words can be taken out. A backdoor trigger is foreign to
/// its rows: without it the row says nothing about (or the opposite of) the label. A class
/// word ("wretched" in negative reviews) sits among other words of its class.
fn context_evidence(acc: &Acc, t: u64, words: &[u64]) -> Option<(f64, HashMap<u64, f64>)> {
    if words.is_empty() {
        return None;
    }
    let base = (acc.target_counts.get(&t).copied().unwrap_or(0) as f64 + 1.0)
        / (acc.target_rows as f64 + 2.0);
    let mut per = HashMap::with_capacity(words.len());
    let mut total = 0.0;
    for &w in words {
        if per.contains_key(&w) {
            continue;
        }
        let e = match acc.words.get(&w) {
            Some(ws) => {
                let with = ws
                    .by_target
                    .iter()
                    .find(|e| e.0 == t)
                    .map_or(0.0, |e| f64::from(e.1));
                let p =
                    (with + CONTEXT_PRIOR_ROWS * base) / (f64::from(ws.rows) + CONTEXT_PRIOR_ROWS);
                // Log-odds, not log-ratio: the shrinkage bias of ln P(label | w) is shared by
                // both sides of the odds and cancels.
                (p / (1.0 - p)).ln() - (base / (1.0 - base)).ln()
            }
            None => 0.0,
        };
        per.insert(w, e);
        total += e;
    }
    Some((total, per))
}

/// Context evidence is measured only once this many rows have been merged (word label counts
/// from fewer rows say little) …
const CONTEXT_WARMUP_ROWS: u64 = 128;
/// … and judged only for an n-gram with at least this many measured rows.
const CONTEXT_MIN_ROWS: u32 = 5;

/// Pseudo-rows at the base rate added to every word's label counts.
const CONTEXT_PRIOR_ROWS: f64 = 2.0;

fn finish(
    mut acc: Acc,
    cfg: &AuditConfig,
    sh: &Shared,
    bands: usize,
    rows_per_band: usize,
    eval_rows: Option<u64>,
    eval_ngrams: u64,
) -> AuditReport {
    let max = cfg.max_examples;
    let n = acc.row_no.len();
    let mut dsu = minhash::Dsu::default();
    for _ in 0..n {
        dsu.push();
    }
    // Exact duplicates.
    let mut exact_groups: HashMap<u32, Vec<u32>> = HashMap::new();
    for (i, &first) in acc.exact_dup_of.iter().enumerate() {
        if first as usize != i {
            exact_groups.entry(first).or_default().push(i as u32);
            dsu.union(first, i as u32);
        }
    }
    let exact_duplicates = cfg.enabled(Detector::ExactDup).then(|| {
        let mut groups: Vec<(u32, Vec<u32>)> =
            exact_groups.iter().map(|(k, v)| (*k, v.clone())).collect();
        groups.sort_by_key(|g| g.0);
        DupReport {
            duplicate_rows: groups.iter().map(|g| g.1.len() as u64).sum(),
            groups: groups.len() as u64,
            examples: groups
                .iter()
                .take(max)
                .map(|(first, rest)| Group {
                    size: rest.len() as u64 + 1,
                    rows: std::iter::once(first)
                        .chain(rest.iter())
                        .take(max)
                        .map(|&i| acc.row_no[i as usize])
                        .collect(),
                    excerpt: acc.excerpts[*first as usize].to_string(),
                })
                .collect(),
        }
    });
    // Near duplicates: band buckets, candidates verified by the exact Jaccard similarity of
    // their shingle sets (by signature agreement only for rows past the memory budget).
    let near_duplicates = cfg.enabled(Detector::NearDup).then(|| {
        let np = sh.hasher.num_perm();
        let m = acc.sig_rows.len();
        let sig = |i: usize| &acc.sigs[i * np..(i + 1) * np];
        let set = |i: usize| -> Option<&[u32]> {
            let (start, len) = acc.shingle_at[i];
            (len != u32::MAX)
                .then(|| &acc.shingle_sets[start as usize..start as usize + len as usize])
        };
        let mut estimated = 0u64;
        let mut near = minhash::Dsu::default();
        for _ in 0..m {
            near.push();
        }
        let mut min_sim: HashMap<u32, f64> = HashMap::new();
        let mut candidates = 0u64;
        let mut verified = 0u64;
        let mut checked: std::collections::HashSet<(u32, u32)> = std::collections::HashSet::new();
        let mut keyed: Vec<(u64, u32)> = Vec::with_capacity(m);
        for b in 0..bands {
            // Band buckets as runs of a sorted (band hash, row) list: no allocation per bucket.
            keyed.clear();
            keyed.extend((0..m).map(|i| (minhash::band_hash(sig(i), b, rows_per_band), i as u32)));
            keyed.sort_unstable();
            let mut start = 0;
            while start < keyed.len() {
                let mut end = start + 1;
                while end < keyed.len() && keyed[end].0 == keyed[start].0 {
                    end += 1;
                }
                let members = &keyed[start..end];
                start = end;
                if members.len() < 2 {
                    continue;
                }
                for (k, &(_, x)) in members.iter().enumerate().skip(1) {
                    // Compare with the nearest earlier members not yet in x's group (up to
                    // NEAR_VERIFY of them, looking back at most NEAR_SCAN). Neither a member
                    // already in the group nor a verified match ends the scan: an earlier row
                    // may be near only x, and no later row compares back to it.
                    let mut tried = 0;
                    for &(_, y) in members[..k].iter().rev().take(NEAR_SCAN) {
                        if tried == NEAR_VERIFY {
                            break;
                        }
                        if near.find(x) == near.find(y) || !checked.insert((y, x)) {
                            continue;
                        }
                        tried += 1;
                        candidates += 1;
                        let s = match (set(x as usize), set(y as usize)) {
                            (Some(a), Some(b)) => minhash::jaccard32(a, b),
                            _ => {
                                estimated += 1;
                                minhash::agreement(sig(x as usize), sig(y as usize))
                            }
                        };
                        if s >= cfg.near_dup.threshold {
                            verified += 1;
                            near.union(x, y);
                            let e = min_sim.entry(x).or_insert(1.0);
                            *e = e.min(s);
                        }
                    }
                }
            }
        }
        let mut groups: BTreeMap<u32, (Vec<u32>, f64)> = BTreeMap::new();
        for i in 0..m as u32 {
            let root = near.find(i);
            let g = groups.entry(root).or_insert((Vec::new(), 1.0));
            g.0.push(i);
            if let Some(s) = min_sim.get(&i) {
                g.1 = g.1.min(*s);
            }
        }
        let mut out = Vec::new();
        let mut near_rows = 0u64;
        let mut count = 0u64;
        for (_, (members, s)) in groups.into_iter().filter(|g| g.1.0.len() > 1) {
            count += 1;
            near_rows += members.len() as u64 - 1;
            let rows: Vec<u32> = members.iter().map(|&i| acc.sig_rows[i as usize]).collect();
            for w in rows.windows(2) {
                dsu.union(w[0], w[1]);
            }
            if out.len() < max {
                out.push(NearGroup {
                    size: rows.len() as u64,
                    rows: rows
                        .iter()
                        .take(max)
                        .map(|&r| acc.row_no[r as usize])
                        .collect(),
                    min_similarity: s,
                    excerpt: acc.excerpts[rows[0] as usize].to_string(),
                });
            }
        }
        NearDupReport {
            bands,
            rows_per_band,
            candidate_pairs: candidates,
            verified_pairs: verified,
            estimated_pairs: estimated,
            near_duplicate_rows: near_rows,
            groups: count,
            examples: out,
        }
    });
    let contamination = sh
        .eval
        .as_ref()
        .filter(|_| cfg.enabled(Detector::Contamination))
        .map(|ev| ContaminationReport {
            ngram: ev.n,
            ngram_adaptive: ev.adaptive,
            eval_ngrams,
            coverage: ev.coverage.clone(),
            rows: acc.contaminated_rows,
            examples: std::mem::take(&mut acc.contaminated),
        });
    let pii = cfg.enabled(Detector::Pii).then(|| SensitiveReport {
        matches: acc.pii_matches,
        rows: acc.pii_rows,
        by_kind: std::mem::take(&mut acc.pii_kinds),
        examples: std::mem::take(&mut acc.pii),
    });
    let secrets = cfg.enabled(Detector::Secrets).then(|| SensitiveReport {
        matches: acc.secret_matches,
        rows: acc.secret_rows,
        by_kind: std::mem::take(&mut acc.secret_kinds),
        examples: std::mem::take(&mut acc.secrets),
    });
    let injection = cfg.enabled(Detector::Injection).then(|| InjectionReport {
        rows: acc.injection_rows,
        by_kind: std::mem::take(&mut acc.injection_kinds),
        examples: std::mem::take(&mut acc.injection),
    });
    let poisoning = cfg
        .enabled(Detector::Poisoning)
        .then(|| poisoning(&mut acc, cfg, sh, &mut dsu));
    let mut summary = Vec::new();
    let mut line = |detector, finding, severity, count: u64| {
        if count > 0 {
            summary.push(SummaryLine {
                detector,
                finding,
                severity,
                count,
            });
        }
    };
    line(
        Detector::BrokenRows,
        "broken rows (skipped, not audited)",
        broken_severity(acc.broken, acc.rows),
        acc.broken,
    );
    if let Some(d) = &exact_duplicates {
        line(
            Detector::ExactDup,
            "duplicate rows",
            Severity::Low,
            d.duplicate_rows,
        );
    }
    if let Some(d) = &near_duplicates {
        line(
            Detector::NearDup,
            "near-duplicate rows",
            Severity::Low,
            d.near_duplicate_rows,
        );
    }
    if let Some(c) = &contamination {
        line(
            Detector::Contamination,
            "rows overlapping the eval set",
            Severity::High,
            c.rows,
        );
    }
    if let Some(s) = &secrets {
        line(
            Detector::Secrets,
            "rows with secrets",
            Severity::High,
            s.rows,
        );
    }
    if let Some(p) = &pii {
        line(Detector::Pii, "rows with PII", Severity::Medium, p.rows);
    }
    if let Some(i) = &injection {
        line(
            Detector::Injection,
            "rows with injection strings",
            Severity::Medium,
            i.rows,
        );
    }
    if let Some(p) = &poisoning {
        line(
            Detector::Poisoning,
            "trigger n-grams",
            Severity::High,
            p.high_triggers,
        );
        line(
            Detector::Poisoning,
            "possible trigger n-grams",
            Severity::Medium,
            p.medium_triggers,
        );
        line(
            Detector::Poisoning,
            "label flips among duplicates",
            Severity::Medium,
            p.label_flip_groups,
        );
        line(
            Detector::Poisoning,
            "identical chosen and rejected",
            Severity::Medium,
            p.identical_chosen_rejected,
        );
        line(
            Detector::Poisoning,
            "length outliers",
            Severity::Low,
            p.length_outliers,
        );
    }
    AuditReport {
        rows: acc.rows,
        broken_rows: acc.broken,
        broken_examples: acc.broken_examples,
        eval_rows,
        config: cfg.clone(),
        summary,
        exact_duplicates,
        near_duplicates,
        contamination,
        pii,
        secrets,
        injection,
        poisoning,
        locations: BTreeMap::new(),
        eval_locations: BTreeMap::new(),
    }
}

fn poisoning(
    acc: &mut Acc,
    cfg: &AuditConfig,
    sh: &Shared,
    dsu: &mut minhash::Dsu,
) -> PoisoningReport {
    let max = cfg.max_examples;
    let n = acc.row_no.len();
    // Trigger n-grams: rare, nearly pure, significant against the base rate, foreign to
    // their rows. Counts are over distinct (input, target) rows.
    let mut triggers: Vec<Trigger> = Vec::new();
    let mut consistent = 0u64;
    let total = acc.target_rows.max(1) as f64;
    let min_rows = cfg.trigger_min_rows.max(1);
    let tested = acc
        .ngrams
        .values()
        .filter(|s| u64::from(s.count) >= min_rows)
        .count()
        .max(1);
    let mut cands: Vec<&NgramStat> = acc
        .ngrams
        .values()
        .filter(|s| {
            u64::from(s.count) >= min_rows
                && f64::from(s.count) <= cfg.trigger_max_fraction * total
                && f64::from(s.c1) >= cfg.trigger_min_purity * f64::from(s.count)
        })
        .collect();
    // Longest first: a phrase's words (with about its rows) are then dropped as parts of it.
    cands.sort_by(|a, b| {
        b.text
            .split(' ')
            .count()
            .cmp(&a.text.split(' ').count())
            .then(b.count.cmp(&a.count))
            .then(a.text.cmp(&b.text))
    });
    let ln_fact = ln_factorials(cands.iter().map(|s| s.count as usize).max().unwrap_or(0));
    let mut kept: Vec<(&str, u32)> = Vec::new();
    for s in cands {
        let purity = f64::from(s.c1) / f64::from(s.count);
        let base = acc.target_counts.get(&s.t1).copied().unwrap_or(0) as f64 / total;
        let lift = if base > 0.0 { purity / base } else { 0.0 };
        if lift < cfg.trigger_min_lift {
            continue;
        }
        let ln_p = binomial_upper_tail_ln(&ln_fact, s.count, s.c1, base);
        let log10_p = ((ln_p + (tested as f64).ln()) / std::f64::consts::LN_10).min(0.0);
        if log10_p > cfg.trigger_alpha.log10() {
            continue;
        }
        // One trigger phrase yields several n-grams with about the same rows: keep the longest.
        let dup = kept.iter().any(|&(t, rows)| {
            let same_rows = (f64::from(rows) - f64::from(s.count)).abs() <= 0.1 * f64::from(rows);
            same_rows && (t.contains(&*s.text) || s.text.contains(t))
        });
        if dup {
            continue;
        }
        kept.push((&s.text, s.count));
        let context = (acc.label_targets && s.n1 >= CONTEXT_MIN_ROWS).then(|| {
            let n = f64::from(s.n1);
            let mean = s.e1 / n;
            let var = ((s.q1 / n - mean * mean) * n / (n - 1.0)).max(0.0);
            (mean, (var / n).sqrt())
        });
        // Foreign only when the mean plus one standard error is at most the gate.
        if context.is_some_and(|(m, se)| m + se > cfg.trigger_max_context_evidence) {
            consistent += 1;
            continue;
        }
        // With labels, high severity needs rows shown to be foreign; unmeasured stays medium.
        let severity =
            if log10_p <= cfg.trigger_high_log10_p && (context.is_some() || !acc.label_targets) {
                Severity::High
            } else {
                Severity::Medium
            };
        triggers.push(Trigger {
            ngram: excerpt(&sh.scanner, &s.text, 60),
            rows: u64::from(s.count),
            severity,
            log10_p,
            context_evidence: context.map(|c| c.0),
            context_evidence_se: context.map(|c| c.1),
            target: acc
                .target_texts
                .get(&s.t1)
                .cloned()
                .unwrap_or_else(|| "…".into()),
            purity,
            base_rate: base,
            lift,
            example_rows: s.rows.clone(),
        });
    }
    triggers.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.log10_p.total_cmp(&b.log10_p))
            .then(a.ngram.cmp(&b.ngram))
    });
    let high_triggers = triggers
        .iter()
        .filter(|t| t.severity == Severity::High)
        .count() as u64;
    let medium_triggers = triggers.len() as u64 - high_triggers;
    // Label flips among exact and near duplicates.
    let mut groups: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for i in 0..n as u32 {
        groups.entry(dsu.find(i)).or_default().push(i);
    }
    let mut flips = Vec::new();
    let mut flip_groups = 0u64;
    for members in groups.values().filter(|g| g.len() > 1) {
        let mut labels: Vec<u32> = members
            .iter()
            .map(|&i| acc.label[i as usize])
            .filter(|&l| l != u32::MAX)
            .collect();
        labels.sort_unstable();
        labels.dedup();
        if labels.len() > 1 {
            flip_groups += 1;
            if flips.len() < max {
                flips.push(LabelFlip {
                    rows: members
                        .iter()
                        .take(max)
                        .map(|&i| acc.row_no[i as usize])
                        .collect(),
                    labels: labels
                        .iter()
                        .map(|&l| acc.labels[l as usize].clone())
                        .collect(),
                    excerpt: acc.excerpts[members[0] as usize].to_string(),
                });
            }
        }
    }
    // Length outliers on ln(1 + chars): median ± k × 1.4826 × MAD.
    let logs: Vec<f64> = acc.chars.iter().map(|&c| (1.0 + c as f64).ln()).collect();
    let med = median(logs.clone());
    let mad = median(logs.iter().map(|x| (x - med).abs()).collect());
    let spread = (1.4826 * mad).max(0.05);
    let mut outliers = Vec::new();
    let mut outlier_count = 0u64;
    if n >= 20 {
        for (i, x) in logs.iter().enumerate() {
            if (x - med).abs() > cfg.length_mad_k * spread {
                outlier_count += 1;
                if outliers.len() < max {
                    outliers.push(LengthOutlier {
                        row: acc.row_no[i],
                        chars: acc.chars[i],
                    });
                }
            }
        }
    }
    PoisoningReport {
        target_kind: match sh.target_kind {
            TargetKind::Label => "label",
            TargetKind::Response => "response",
            TargetKind::Undecided => "none",
        },
        triggers: triggers.into_iter().take(max).collect(),
        high_triggers,
        medium_triggers,
        label_consistent_ngrams: consistent,
        identical_chosen_rejected: acc.identical,
        identical_chosen_rejected_rows: std::mem::take(&mut acc.identical_rows),
        label_flip_groups: flip_groups,
        label_flips: flips,
        median_chars: med.exp() - 1.0,
        length_outliers: outlier_count,
        length_outlier_rows: outliers,
    }
}

/// `ln k!` for `k` in `0..=n`.
fn ln_factorials(n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n + 1);
    let mut acc = 0.0;
    out.push(0.0);
    for k in 1..=n {
        acc += (k as f64).ln();
        out.push(acc);
    }
    out
}

/// `ln P(X ≥ k)` for `X ~ Binomial(n, p)`, summed in log space; `ln_fact` covers `0..=n`.
fn binomial_upper_tail_ln(ln_fact: &[f64], n: u32, k: u32, p: f64) -> f64 {
    if k == 0 || p >= 1.0 {
        return 0.0;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    let (lp, lq) = (p.ln(), (-p).ln_1p());
    let n_us = n as usize;
    let terms: Vec<f64> = (k..=n)
        .map(|i| {
            let i_us = i as usize;
            ln_fact[n_us] - ln_fact[i_us] - ln_fact[n_us - i_us]
                + f64::from(i) * lp
                + f64::from(n - i) * lq
        })
        .collect();
    let m = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = terms.iter().map(|t| (t - m).exp()).sum();
    (m + sum.ln()).min(0.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Audits a file or dataset directory (every split's files, in order) against an optional
/// eval file or directory.
pub fn audit_path(
    path: &Path,
    eval: Option<&Path>,
    cfg: &AuditConfig,
    progress: &mut dyn FnMut(u64),
) -> Result<AuditReport, AuditError> {
    let mut rows = open_all(path)?;
    match eval {
        Some(e) => {
            let mut ev = open_all(e)?;
            audit(&mut rows, Some(&mut ev), cfg, progress)
        }
        None => audit(&mut rows, None, cfg, progress),
    }
}

fn open_all(path: &Path) -> Result<read::Chain, ReadError> {
    let files: Vec<_> = read::resolve(path)?
        .into_iter()
        .flat_map(|s| s.files)
        .collect();
    // Open every file first so an unreadable one fails before any work.
    let mut streams = Vec::with_capacity(files.len());
    for f in &files {
        streams.push((read::label(path, f), read::open(f)?));
    }
    Ok(read::Chain::new(streams))
}
