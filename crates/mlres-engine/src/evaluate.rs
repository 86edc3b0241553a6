//! Reading a finished job's own logs and turning them into a keep/discard decision.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use mlres_policy::{Decision, MetricScan, Objective};

/// The metrics mlres parsed itself from a job's output, and the decision taken on them.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub metric: Option<f64>,
    pub metrics: BTreeMap<String, f64>,
    pub decision: Decision,
    pub reason: String,
    /// Number of lines (ended by `\n` or `\r`) that carried at least one metric.
    pub metric_lines: usize,
    /// What the keep/discard decision rested on (absent for failed jobs and anomalies).
    pub evidence: Option<mlres_policy::Evidence>,
}

/// Longest line read for metrics; a longer one cannot be a metric line and is skipped
/// whole, so memory stays bounded whatever a job writes.
const MAX_LINE: usize = 65_536;

/// Scans log files (missing files are skipped) in order; later values win.
pub fn scan_logs(paths: &[&Path]) -> MetricScan {
    let mut scan = MetricScan::default();
    for p in paths {
        let Ok(f) = std::fs::File::open(p) else {
            continue;
        };
        scan_lines(BufReader::new(f), &mut scan);
    }
    scan
}

/// Feeds `scan` every line of `reader`, where both `\n` and `\r` end a line, as on a
/// terminal. tqdm redraws its bar with `\r` only, so in a job log the dict Transformers
/// prints after a stretch of training shares its `\n` line with every redraw since the
/// last newline, over 64 KiB once a thousand or so steps pass between two logs
/// (`logging_strategy="epoch"`, a large `logging_steps`). Split at `\r`, the dict is a
/// short line of its own.
fn scan_lines(mut reader: impl BufRead, scan: &mut MetricScan) {
    let mut line = Vec::new();
    let mut oversized = false;
    loop {
        let buf = match reader.fill_buf() {
            Ok([]) => break,
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let end = buf.iter().position(|&b| b == b'\n' || b == b'\r');
        let part = &buf[..end.unwrap_or(buf.len())];
        if line.len() + part.len() > MAX_LINE {
            oversized = true;
            line.clear();
        } else if !oversized {
            line.extend_from_slice(part);
        }
        let used = end.map_or(buf.len(), |i| i + 1);
        reader.consume(used);
        if end.is_some() {
            if !oversized {
                scan.push_line(&String::from_utf8_lossy(&line));
            }
            line.clear();
            oversized = false;
        }
    }
    if !oversized && !line.is_empty() {
        scan.push_line(&String::from_utf8_lossy(&line));
    }
}

/// What a keep/discard decision is taken against: the campaign's results so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeepContext {
    /// The best kept metric.
    pub best: Option<f64>,
    /// This experiment's configuration ([`mlres_policy::config_key`]).
    pub config: String,
    /// The latest kept run.
    pub incumbent: Option<mlres_policy::Run>,
    /// Earlier completed runs with a usable metric (not this one).
    pub runs: Vec<mlres_policy::Run>,
}

/// Decides on a finished job. `completed` is false for failed, timed-out or cancelled jobs.
/// Compares with `best` only (no noise model, no incumbent); see [`evaluate_logs_with`].
pub fn evaluate_logs(
    objective: &Objective,
    completed: bool,
    failure: &str,
    scan: &MetricScan,
    best: Option<f64>,
) -> Evaluation {
    let ctx = KeepContext {
        best,
        ..KeepContext::default()
    };
    evaluate_logs_with(objective, completed, failure, scan, &ctx)
}

/// Decides on a finished job against the campaign's results (`ctx`): a value outside the
/// objective's declared `range` is anomalous; a value that only looks odd for its metric's
/// name is kept or discarded as usual with a note in the reason; with `noise:` a result is
/// kept only when it clears the noise ([`mlres_policy::decide_noisy`]).
pub fn evaluate_logs_with(
    objective: &Objective,
    completed: bool,
    failure: &str,
    scan: &MetricScan,
    ctx: &KeepContext,
) -> Evaluation {
    let metrics = scan.all();
    let metric = scan.last(&objective.metric);
    let metric_lines = scan.metric_lines() as usize;
    if !completed {
        return Evaluation {
            metric: metric.filter(|m| m.is_finite()),
            metrics,
            decision: Decision::Discard,
            reason: format!("job did not complete: {failure}"),
            metric_lines,
            evidence: None,
        };
    }
    if let Some(m) = metric
        && let Some(why) = mlres_policy::out_of_range(objective, m)
    {
        return Evaluation {
            metric: None,
            metrics,
            decision: Decision::Anomalous,
            reason: why,
            metric_lines,
            evidence: None,
        };
    }
    let Some(m) = metric.filter(|m| m.is_finite()) else {
        // No metric, NaN or infinite: policy::decide says which.
        let (decision, reason) = mlres_policy::decide(objective, metric, ctx.best);
        return Evaluation {
            metric: None,
            metrics,
            decision,
            reason,
            metric_lines,
            evidence: None,
        };
    };
    let v = mlres_policy::decide_noisy(
        objective,
        &ctx.config,
        m,
        ctx.incumbent.as_ref(),
        ctx.best,
        &ctx.runs,
    );
    let mut reason = v.reason;
    if let Some(hint) = mlres_policy::range_hint(objective, m) {
        reason.push_str("; ");
        reason.push_str(&hint);
    }
    Evaluation {
        metric: Some(m),
        metrics,
        decision: v.decision,
        reason,
        metric_lines,
        evidence: Some(v.evidence),
    }
}

/// How many of a failed job's last stderr lines its failure reason quotes.
pub const FAILURE_LINES: usize = 10;
/// Longest quoted stderr line, in characters (longer lines are cut, marked with `…`).
pub const FAILURE_LINE_CHARS: usize = 300;

/// The end of a job's stderr: the last [`mlres_backends::TAIL_BYTES`] of
/// the first of `paths` that exists and is not empty, lossily decoded. `whole` is false when
/// the text may start in the middle of a line (the stream was longer than what was read).
pub fn read_log_end(paths: &[&Path]) -> Option<(String, bool)> {
    use std::io::{Read, Seek, SeekFrom};
    let window = mlres_backends::TAIL_BYTES as u64;
    for p in paths {
        let Ok(mut f) = std::fs::File::open(p) else {
            continue;
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len == 0 {
            continue;
        }
        let start = len.saturating_sub(window);
        if f.seek(SeekFrom::Start(start)).is_err() {
            continue;
        }
        let mut buf = Vec::new();
        if f.take(window).read_to_end(&mut buf).is_err() {
            continue;
        }
        // A ring-buffer tail file that is full may have lost the start of its first line.
        let whole = start == 0 && len < window;
        return Some((String::from_utf8_lossy(&buf).into_owned(), whole));
    }
    None
}

/// The last `FAILURE_LINES` non-blank lines of `text`, each cut to `FAILURE_LINE_CHARS`
/// characters. Control characters become spaces. When `whole` is false the first line is
/// dropped: it may be the cut-off end of a longer one.
pub fn last_lines(text: &str, whole: bool) -> Vec<String> {
    let mut lines: Vec<&str> = text.lines().collect();
    if !whole && !lines.is_empty() {
        lines.remove(0);
    }
    let mut out: Vec<String> = lines
        .iter()
        .rev()
        .map(|l| l.trim_end())
        .filter(|l| !l.trim().is_empty())
        .take(FAILURE_LINES)
        .map(|l| {
            let mut s: String = l
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(FAILURE_LINE_CHARS)
                .collect();
            if l.chars().count() > FAILURE_LINE_CHARS {
                s.push('…');
            }
            s
        })
        .collect();
    out.reverse();
    out
}

/// A failure as one line, for decision reasons and progress lines: the first line of a
/// recorded job error and, when it quotes stderr, the last stderr line.
pub fn failure_summary(error: &str) -> String {
    let mut lines = error.lines();
    let first = lines.next().unwrap_or_default().trim();
    if !error.contains(STDERR_HEADING) {
        return first.to_string();
    }
    match error.lines().last().map(str::trim) {
        Some(last) if !last.is_empty() && !last.starts_with(STDERR_HEADING) => {
            format!("{first}: {last}")
        }
        _ => first.to_string(),
    }
}

/// Introduces the quoted stderr lines in a recorded job error.
pub(crate) const STDERR_HEADING: &str = "last lines of stderr:";
