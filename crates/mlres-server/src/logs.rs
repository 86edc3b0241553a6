//! Reading the end of a job's captured output for `exp_logs`.
//!
//! The supervisor keeps, per stream, a capped head (`stdout.log`) that grows while the job
//! runs and, once the job has ended, its last 64 KiB (`stdout.tail.log`). When the whole stream
//! fitted in the head, the tail is a suffix of it; otherwise the middle was not kept.

use std::io::Read;
use std::path::Path;

use schemars::JsonSchema;
use serde::Deserialize;

/// Bytes of log returned when the caller does not say.
pub const DEFAULT_TAIL_BYTES: u64 = 16 * 1024;
/// The most log bytes one `exp_logs` call returns.
pub const MAX_TAIL_BYTES: u64 = 256 * 1024;

/// Which captured stream of a job to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// The job's standard output (where metric lines usually are).
    #[default]
    Stdout,
    /// The job's standard error (tracebacks, warnings).
    Stderr,
}

impl LogStream {
    /// `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// The end of one captured stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogTail {
    /// The bytes shown (at most the requested number, plus a gap marker if one was inserted).
    pub bytes: Vec<u8>,
    /// Bytes of captured output that exist for this stream (head plus any separate tail).
    pub captured: u64,
    /// Whether earlier captured output was left out.
    pub truncated: bool,
}

/// Put between the head and the tail when the middle of a long stream was not kept.
pub(crate) const GAP_MARKER: &[u8] =
    b"\n[mlres: the middle of this stream was not kept; what follows is its last part]\n";

/// Reads at most `max` bytes from the end of `path` (missing file: empty).
fn read_end(path: &Path, max: u64) -> std::io::Result<(Vec<u8>, u64)> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let start = len.saturating_sub(max);
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf)?;
    Ok((buf, len))
}

/// The last `max` bytes of `stream` in the attempt directory `dir`.
pub(crate) fn read_tail(dir: &Path, stream: LogStream, max: u64) -> std::io::Result<LogTail> {
    let paths = mlres_backends::log_paths(dir);
    let (head_path, tail_path) = match stream {
        LogStream::Stdout => (paths.stdout, paths.stdout_tail),
        LogStream::Stderr => (paths.stderr, paths.stderr_tail),
    };
    // The tail file is small (64 KiB) and only exists once the job has ended.
    let (tail, tail_len) = read_end(&tail_path, MAX_TAIL_BYTES)?;
    let (head, head_len) = read_end(&head_path, max.saturating_add(tail_len))?;
    let whole_in_head = tail.is_empty() || head.ends_with(&tail);
    if whole_in_head {
        let keep = head.len().min(usize::try_from(max).unwrap_or(usize::MAX));
        let bytes = head[head.len() - keep..].to_vec();
        return Ok(LogTail {
            truncated: (keep as u64) < head_len,
            bytes,
            captured: head_len,
        });
    }
    let max_us = usize::try_from(max).unwrap_or(usize::MAX);
    if tail.len() >= max_us {
        return Ok(LogTail {
            bytes: tail[tail.len() - max_us..].to_vec(),
            captured: head_len + tail_len,
            truncated: true,
        });
    }
    let from_head = (max_us - tail.len()).min(head.len());
    let mut bytes = head[head.len() - from_head..].to_vec();
    bytes.extend_from_slice(GAP_MARKER);
    bytes.extend_from_slice(&tail);
    Ok(LogTail {
        bytes,
        captured: head_len + tail_len,
        truncated: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(head: &[u8], tail: Option<&[u8]>) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("stdout.log"), head).unwrap();
        if let Some(t) = tail {
            std::fs::write(d.path().join("stdout.tail.log"), t).unwrap();
        }
        d
    }

    #[test]
    fn running_job_shows_the_end_of_the_head() {
        let d = dir_with(b"0123456789", None);
        let t = read_tail(d.path(), LogStream::Stdout, 4).unwrap();
        assert_eq!(t.bytes, b"6789");
        assert!(t.truncated);
        assert_eq!(t.captured, 10);
        let t = read_tail(d.path(), LogStream::Stdout, 100).unwrap();
        assert_eq!(t.bytes, b"0123456789");
        assert!(!t.truncated);
    }

    #[test]
    fn finished_short_job_is_not_duplicated() {
        let d = dir_with(b"hello\nscore=3\n", Some(b"score=3\n"));
        let t = read_tail(d.path(), LogStream::Stdout, 1000).unwrap();
        assert_eq!(t.bytes, b"hello\nscore=3\n");
        assert!(!t.truncated);
    }

    #[test]
    fn long_job_gets_a_gap_marker() {
        let d = dir_with(b"HEADHEAD", Some(b"TAIL"));
        let t = read_tail(d.path(), LogStream::Stdout, 6).unwrap();
        let mut want = b"AD".to_vec();
        want.extend_from_slice(GAP_MARKER);
        want.extend_from_slice(b"TAIL");
        assert_eq!(t.bytes, want);
        assert!(t.truncated);
        let t = read_tail(d.path(), LogStream::Stdout, 3).unwrap();
        assert_eq!(t.bytes, b"AIL");
    }

    #[test]
    fn missing_files_are_empty_and_stderr_is_separate() {
        let d = dir_with(b"out", None);
        let t = read_tail(d.path(), LogStream::Stderr, 10).unwrap();
        assert!(t.bytes.is_empty());
        assert_eq!(t.captured, 0);
        assert!(!t.truncated);
    }
}
