//! Streaming readers: one file at a time, one row at a time, bounded memory.
//!
//! The shared entry point is [`open`], which yields [`Row`]s: a parsed [`Record`] or a
//! counted, located [`RowError`] (a broken line is skipped and reported, never a panic).
//! JSON Lines is implemented here first; the other formats plug in behind the same API.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::Record;

/// Longest line (bytes) the JSON Lines reader accepts; longer lines are skipped and counted.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// File formats mlres reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Json,
    Csv,
    Parquet,
}

impl Format {
    /// The format a path's extension names, if any.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }
}

/// A whole-file failure: the file cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: unknown format (expected .jsonl, .json, .csv or .parquet)")]
    UnknownFormat { path: PathBuf },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// One row that could not be parsed; readers skip it and go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based row (line for JSON Lines / CSV) number in the file.
    pub row: u64,
    /// What was wrong, without the row's content.
    pub message: String,
}

/// What a reader yields for each row.
pub type Row = Result<Record, RowError>;

/// Opens `path` as a stream of rows in the format its extension names.
pub fn open(path: &Path) -> Result<Box<dyn Iterator<Item = Row> + Send>, ReadError> {
    let format = Format::from_path(path).ok_or_else(|| ReadError::UnknownFormat {
        path: path.to_path_buf(),
    })?;
    let file = File::open(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    match format {
        Format::Jsonl => Ok(Box::new(JsonLines::new(BufReader::new(file)))),
        other => Err(ReadError::Invalid {
            path: path.to_path_buf(),
            message: format!("{other:?} reading is not available yet"),
        }),
    }
}

/// JSON Lines: one object per line; blank lines are ignored.
pub struct JsonLines<R> {
    reader: R,
    line: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> JsonLines<R> {
    pub fn new(reader: R) -> Self {
        JsonLines {
            reader,
            line: 0,
            buf: Vec::new(),
        }
    }
}

impl<R: BufRead> Iterator for JsonLines<R> {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        loop {
            self.buf.clear();
            self.line += 1;
            let mut too_long = false;
            // Read one line without holding more than MAX_LINE_BYTES of it.
            loop {
                let chunk = match self.reader.fill_buf() {
                    Ok(c) => c,
                    Err(e) => {
                        return Some(Err(RowError {
                            row: self.line,
                            message: format!("read failed: {e}"),
                        }));
                    }
                };
                if chunk.is_empty() {
                    if self.buf.is_empty() && !too_long {
                        return None;
                    }
                    break;
                }
                let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (chunk.len(), false),
                };
                if !too_long && self.buf.len() + take <= MAX_LINE_BYTES + 1 {
                    self.buf.extend_from_slice(&chunk[..take]);
                } else {
                    too_long = true;
                    self.buf.clear();
                }
                self.reader.consume(take);
                if done {
                    break;
                }
            }
            if too_long {
                return Some(Err(RowError {
                    row: self.line,
                    message: format!("line longer than {MAX_LINE_BYTES} bytes, skipped"),
                }));
            }
            let text = match std::str::from_utf8(&self.buf) {
                Ok(t) => t.trim(),
                Err(e) => {
                    return Some(Err(RowError {
                        row: self.line,
                        message: format!("not UTF-8 (byte {})", e.valid_up_to()),
                    }));
                }
            };
            if text.is_empty() {
                continue;
            }
            return Some(match serde_json::from_str::<serde_json::Value>(text) {
                Ok(serde_json::Value::Object(m)) => Ok(m),
                Ok(_) => Err(RowError {
                    row: self.line,
                    message: "not a JSON object".into(),
                }),
                Err(e) => Err(RowError {
                    row: self.line,
                    message: format!("invalid JSON at column {}", e.column()),
                }),
            });
        }
    }
}
