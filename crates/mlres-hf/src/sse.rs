//! Parsing of the Jobs log stream (server-sent events, one `data: {json}` line per log line).

use serde::Deserialize;

/// What one SSE line of the log stream means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SseLine {
    /// A log line (`data: {"data": ..., "timestamp": ...}`).
    Log {
        /// The text.
        text: String,
        /// Server timestamp.
        timestamp: Option<String>,
    },
    /// The `===== Job started ...` banner the API puts first.
    Banner,
    /// Anything else: keep-alive comments, blank separators, `event:` lines, empty or
    /// malformed `data:` lines.
    Ignored,
}

#[derive(Deserialize)]
struct Event {
    data: String,
    #[serde(default)]
    timestamp: Option<String>,
}

/// Classify one line (without its line terminator). Only lines starting exactly with
/// `data: {` and holding `{"data": string}` are log lines, as in `huggingface_hub`.
pub fn parse_line(line: &str) -> SseLine {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let Some(json) = line.strip_prefix("data: ") else {
        return SseLine::Ignored;
    };
    if !json.starts_with('{') {
        return SseLine::Ignored;
    }
    match serde_json::from_str::<Event>(json) {
        Ok(e) if e.data.starts_with("===== Job started") => SseLine::Banner,
        Ok(e) => SseLine::Log {
            text: e.data,
            timestamp: e.timestamp,
        },
        Err(_) => SseLine::Ignored,
    }
}
