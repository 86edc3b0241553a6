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

/// Decides on a finished job. `completed` is false for failed, timed-out or cancelled jobs.
pub fn evaluate_logs(
    objective: &Objective,
    completed: bool,
    failure: &str,
    scan: &MetricScan,
    best: Option<f64>,
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
        };
    }
    if let Some(m) = metric
        && let Some(why) = anomaly(&objective.metric, m)
    {
        return Evaluation {
            metric: None,
            metrics,
            decision: Decision::Anomalous,
            reason: why,
            metric_lines,
        };
    }
    let (decision, reason) = mlres_policy::decide(objective, metric, best);
    Evaluation {
        metric: metric.filter(|m| m.is_finite()),
        metrics,
        decision,
        reason,
        metric_lines,
    }
}

/// Values no honest job can report for a metric of this name.
fn anomaly(name: &str, value: f64) -> Option<String> {
    if !value.is_finite() {
        return None; // policy::decide reports non-finite values itself
    }
    let lower = name.to_ascii_lowercase();
    let bounded = [
        "accuracy",
        "acc",
        "f1",
        "precision",
        "recall",
        "exact_match",
        "em",
    ]
    .iter()
    .any(|k| lower.ends_with(k));
    if bounded && !(0.0..=1.0).contains(&value) {
        return Some(format!("{name}={value} is outside [0, 1]"));
    }
    if lower.ends_with("loss") && value < 0.0 {
        return Some(format!("{name}={value} is negative"));
    }
    None
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
