//! Streaming readers: one file at a time, one row at a time, bounded memory.
//!
//! The entry point is [`open`], which yields [`Row`]s: a parsed [`Record`] or a counted,
//! located [`RowError`] (a broken row is skipped and reported, never a panic). [`resolve`]
//! turns a file or a dataset directory into splits of data files.
//!
//! Compressed files (`.gz`, `.zst`, `.bz2`, or those magic bytes under any name) are
//! decompressed as they are read, by pure-Rust decoders, up to [`decompressed_cap`]. A FIFO,
//! socket or device is refused from its metadata, never opened.
//!
//! Memory: JSON Lines and JSON arrays hold one row at a time (at most [`MAX_ROW_BYTES`]; a
//! longer row is skipped and counted while the reader scans past it), CSV holds one record,
//! parquet one row group's decoding state.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Record;

/// Longest row (bytes) the text readers accept; longer rows are skipped and counted.
pub const MAX_ROW_BYTES: usize = 64 << 20;
/// Kept for callers of the first version of this API.
pub const MAX_LINE_BYTES: usize = MAX_ROW_BYTES;

/// File formats mlres reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jsonl,
    Json,
    Csv,
    Parquet,
}

impl Format {
    /// The format a path's extension names, if any; a compression extension is looked
    /// through (`train.jsonl.gz` is JSON Lines).
    pub fn from_path(path: &Path) -> Option<Format> {
        let mut ext = path.extension()?.to_str()?.to_ascii_lowercase();
        if Compression::from_extension(&ext).is_some() {
            let stem = Path::new(path.file_stem()?);
            ext = stem.extension()?.to_str()?.to_ascii_lowercase();
        }
        match ext.as_str() {
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }
}

/// How a data file is compressed (streams are decompressed as they are read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    Zstd,
    Bzip2,
}

impl Compression {
    /// The compression an extension (without the dot, any case) names.
    pub fn from_extension(ext: &str) -> Option<Compression> {
        match ext.to_ascii_lowercase().as_str() {
            "gz" | "gzip" => Some(Compression::Gzip),
            "zst" | "zstd" => Some(Compression::Zstd),
            "bz2" => Some(Compression::Bzip2),
            _ => None,
        }
    }

    /// The compression a file's first bytes announce.
    pub fn from_magic(head: &[u8]) -> Option<Compression> {
        match head {
            [0x1f, 0x8b, ..] => Some(Compression::Gzip),
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Compression::Zstd),
            [b'B', b'Z', b'h', b'1'..=b'9', ..] => Some(Compression::Bzip2),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
        }
    }
}

/// The most a compressed file may decompress to: [`MAX_DECOMPRESSED_RATIO`] times its size,
/// at least [`MIN_DECOMPRESSED_CAP`] and at most [`MAX_DECOMPRESSED_BYTES`]. Past it the file
/// fails with a clear error (a decompression bomb is read no further).
pub const MAX_DECOMPRESSED_BYTES: u64 = 64 << 30;
/// See [`MAX_DECOMPRESSED_BYTES`].
pub const MIN_DECOMPRESSED_CAP: u64 = 4 << 30;
/// See [`MAX_DECOMPRESSED_BYTES`].
pub const MAX_DECOMPRESSED_RATIO: u64 = 200;

/// The decompressed-size cap for a compressed file of `compressed` bytes.
pub fn decompressed_cap(compressed: u64) -> u64 {
    compressed
        .saturating_mul(MAX_DECOMPRESSED_RATIO)
        .clamp(MIN_DECOMPRESSED_CAP, MAX_DECOMPRESSED_BYTES)
}

/// What a path that is neither a regular file nor a directory is, for messages.
pub fn special_kind(meta: &std::fs::Metadata) -> Option<&'static str> {
    let ty = meta.file_type();
    if ty.is_file() || ty.is_dir() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ty.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if ty.is_socket() {
            return Some("a socket");
        }
        if ty.is_char_device() {
            return Some("a character device");
        }
        if ty.is_block_device() {
            return Some("a block device");
        }
    }
    Some("not a regular file")
}

/// The error for a path [`special_kind`] names (checked on metadata, so nothing is opened and
/// a FIFO never blocks).
pub fn not_regular(path: &Path, kind: &str) -> ReadError {
    ReadError::Invalid {
        path: path.to_path_buf(),
        message: format!(
            "is {kind}, not a regular file: datasets are read from regular files (copy the data to a file first)"
        ),
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
    #[error(
        "{path}: unknown format (expected .jsonl, .json, .csv or .parquet, optionally compressed as .gz, .zst or .bz2)"
    )]
    UnknownFormat { path: PathBuf },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: no .jsonl, .json, .csv or .parquet files found")]
    Empty { path: PathBuf },
}

/// One row that could not be parsed; readers skip it and go on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowError {
    /// 1-based row number in the file (the line for JSON Lines and CSV, the element for a
    /// JSON array, the row for parquet).
    pub row: u64,
    /// What was wrong, without the row's content.
    pub message: String,
}

/// What a reader yields for each row.
pub type Row = Result<Record, RowError>;

/// A row stream that knows where its rows are in the file.
pub trait RowSource: Iterator<Item = Row> + Send {
    /// The 1-based number (the line for JSON Lines and CSV, the element for a JSON array, the
    /// row for parquet) of the row `next` last returned; 0 before the first.
    fn last_row(&self) -> u64;

    /// The file (as it should be shown) the row `next` last returned came from, when the
    /// stream spans files or knows its name.
    fn file(&self) -> Option<&str> {
        None
    }
}

/// Files read one after another as one stream; each row keeps its file and line.
pub struct Chain {
    files: std::collections::VecDeque<(String, Rows)>,
}

impl Chain {
    /// `files`: each file's label (how rows are named: `label:line`) and its rows.
    pub fn new(files: Vec<(String, Rows)>) -> Chain {
        Chain {
            files: files.into(),
        }
    }
}

impl Iterator for Chain {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        loop {
            let r = self.files.front_mut()?.1.next();
            match r {
                Some(r) => return Some(r),
                None if self.files.len() > 1 => {
                    self.files.pop_front();
                }
                None => return None,
            }
        }
    }
}

impl RowSource for Chain {
    fn last_row(&self) -> u64 {
        self.files.front().map_or(0, |f| f.1.last_row())
    }

    fn file(&self) -> Option<&str> {
        self.files.front().map(|f| f.0.as_str())
    }
}

/// How a data file is named in row locations: its path relative to the dataset directory
/// `root`, or its file name when `root` is the file itself.
pub fn label(root: &Path, file: &Path) -> String {
    match file.strip_prefix(root) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
        _ => file.file_name().map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
    }
}

/// A boxed row stream.
pub type Rows = Box<dyn RowSource>;

/// Any row iterator as a [`RowSource`] that numbers its rows 1, 2, … in order.
pub struct Numbered<I> {
    rows: I,
    n: u64,
}

impl<I> Numbered<I> {
    pub fn new(rows: I) -> Self {
        Numbered { rows, n: 0 }
    }
}

impl<I: Iterator<Item = Row>> Iterator for Numbered<I> {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        let r = self.rows.next()?;
        self.n += 1;
        Some(r)
    }
}

impl<I: Iterator<Item = Row> + Send> RowSource for Numbered<I> {
    fn last_row(&self) -> u64 {
        self.n
    }
}

/// Opens `path` as a stream of rows in the format its extension names.
pub fn open(path: &Path) -> Result<Rows, ReadError> {
    let format = Format::from_path(path).ok_or_else(|| ReadError::UnknownFormat {
        path: path.to_path_buf(),
    })?;
    open_as(path, format)
}

/// Opens `path` as `format`.
pub fn open_as(path: &Path, format: Format) -> Result<Rows, ReadError> {
    open_counted(path, format, None)
}

/// Like [`open`], adding the bytes read so far to `counter` as rows are read (text formats
/// as they are scanned; parquet, whose pages are read by row group, when the file is done),
/// so a caller can show progress within one large file.
pub fn open_with_progress(path: &Path, counter: Arc<AtomicU64>) -> Result<Rows, ReadError> {
    let format = Format::from_path(path).ok_or_else(|| ReadError::UnknownFormat {
        path: path.to_path_buf(),
    })?;
    open_counted(path, format, Some(counter))
}

/// A reader that adds the bytes it reads to a shared counter.
struct Counting<R> {
    inner: R,
    counter: Option<Arc<AtomicU64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(c) = &self.counter {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }
}

/// Adds a parquet file's size to the counter once its rows are done.
struct CountAtEnd {
    rows: Rows,
    bytes: u64,
    counter: Option<Arc<AtomicU64>>,
}

impl RowSource for CountAtEnd {
    fn last_row(&self) -> u64 {
        self.rows.last_row()
    }
}

impl Iterator for CountAtEnd {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        let r = self.rows.next();
        if r.is_none()
            && let Some(c) = self.counter.take()
        {
            c.fetch_add(self.bytes, Ordering::Relaxed);
        }
        r
    }
}

/// Like [`open`] with a decompressed-size cap of `cap` bytes for a compressed file instead of
/// [`decompressed_cap`].
pub fn open_capped(path: &Path, cap: u64) -> Result<Rows, ReadError> {
    let format = Format::from_path(path).ok_or_else(|| ReadError::UnknownFormat {
        path: path.to_path_buf(),
    })?;
    open_inner(path, format, None, Some(cap))
}

fn open_counted(
    path: &Path,
    format: Format,
    counter: Option<Arc<AtomicU64>>,
) -> Result<Rows, ReadError> {
    open_inner(path, format, counter, None)
}

/// Reads a decompressed stream, failing once past `cap` bytes; after any error it reports
/// end of stream, so a reader that retries does not loop on a broken stream.
struct Capped<R> {
    inner: R,
    read: u64,
    cap: u64,
    what: String,
    failed: bool,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.failed || buf.is_empty() {
            return Ok(0);
        }
        let room = (self.cap - self.read).min(buf.len() as u64) as usize;
        // At the cap, read one byte more to tell "exactly the cap" from "past it".
        let want = room.max(1);
        let n = match self.inner.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                self.failed = true;
                return Err(std::io::Error::other(format!(
                    "{} data is corrupt: {e}",
                    self.what
                )));
            }
        };
        if room == 0 && n > 0 {
            self.failed = true;
            return Err(std::io::Error::other(format!(
                "{} data decompresses to more than {} bytes, the limit for this file (a decompression bomb?); decompress it yourself if it is genuine",
                self.what, self.cap
            )));
        }
        self.read += n as u64;
        Ok(n)
    }
}

fn open_inner(
    path: &Path,
    format: Format,
    counter: Option<Arc<AtomicU64>>,
    cap: Option<u64>,
) -> Result<Rows, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let invalid = |message: String| ReadError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    // Metadata first: a FIFO or a device is never opened (opening a FIFO blocks).
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(invalid(
            "is a directory (use `resolve` for dataset directories)".into(),
        ));
    }
    if let Some(kind) = special_kind(&meta) {
        return Err(not_regular(path, kind));
    }
    let mut file = File::open(path).map_err(io)?;
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0)).map_err(io)?;
    let by_ext = path
        .extension()
        .and_then(|e| e.to_str())
        .and_then(Compression::from_extension);
    let compression = match (Compression::from_magic(&head[..got]), by_ext) {
        (Some(c), _) => Some(c),
        (None, Some(c)) if got > 0 => {
            return Err(invalid(format!(
                "named as {} data but is not (its first bytes are not a {} header)",
                c.name(),
                c.name()
            )));
        }
        _ => None,
    };
    let Some(compression) = compression else {
        return plain_rows(path, format, file, meta.len(), counter);
    };
    if format == Format::Parquet {
        return Err(invalid(format!(
            "a {}-compressed parquet file is not read (parquet needs random access and compresses its pages itself): decompress it first",
            compression.name()
        )));
    }
    let raw = BufReader::new(Counting {
        inner: file,
        counter,
    });
    let decoder: Box<dyn Read + Send> = match compression {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(raw)),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(raw)),
        Compression::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(raw)
                .map_err(|e| invalid(format!("zstd data is corrupt: {e}")))?,
        ),
    };
    let capped = Capped {
        inner: decoder,
        read: 0,
        cap: cap.unwrap_or_else(|| decompressed_cap(meta.len())),
        what: compression.name().to_string(),
        failed: false,
    };
    match format {
        Format::Jsonl => Ok(Box::new(JsonLines::new(BufReader::new(capped)))),
        Format::Json => json_rows(path, BufReader::new(capped)),
        Format::Csv => Ok(Box::new(CsvRows::new(capped))),
        Format::Parquet => unreachable!("refused above"),
    }
}

fn plain_rows(
    path: &Path,
    format: Format,
    file: File,
    bytes: u64,
    counter: Option<Arc<AtomicU64>>,
) -> Result<Rows, ReadError> {
    match format {
        Format::Jsonl => Ok(Box::new(JsonLines::new(BufReader::new(Counting {
            inner: file,
            counter,
        })))),
        Format::Json => json_rows(
            path,
            BufReader::new(Counting {
                inner: file,
                counter,
            }),
        ),
        Format::Csv => Ok(Box::new(CsvRows::new(Counting {
            inner: file,
            counter,
        }))),
        Format::Parquet => Ok(Box::new(CountAtEnd {
            rows: parquet_rows(path, file)?,
            bytes,
            counter,
        })),
    }
}

// ------------------------------------------------------------------ JSON Lines

/// JSON Lines: one object per line; blank lines are ignored.
pub struct JsonLines<R> {
    reader: R,
    line: u64,
    buf: Vec<u8>,
    /// A read failed: the stream ends there (a broken stream would fail every time).
    failed: bool,
}

impl<R: BufRead> JsonLines<R> {
    pub fn new(reader: R) -> Self {
        JsonLines {
            reader,
            line: 0,
            buf: Vec::new(),
            failed: false,
        }
    }
}

fn parse_object(bytes: &[u8], row: u64) -> Row {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t.trim(),
        Err(e) => {
            return Err(RowError {
                row,
                message: format!("not UTF-8 (at byte {})", e.valid_up_to()),
            });
        }
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(v) => Err(RowError {
            row,
            message: format!("not a JSON object (found {})", kind(&v)),
        }),
        Err(e) if e.to_string().starts_with("recursion limit exceeded") => Err(RowError {
            row,
            message: format!(
                "JSON nested deeper than {MAX_JSON_DEPTH} levels (the parser's limit), at column {}",
                e.column()
            ),
        }),
        Err(e) => Err(RowError {
            row,
            message: format!("invalid JSON ({}, column {})", category(&e), e.column()),
        }),
    }
}

/// How deep JSON may nest (serde_json's recursion limit); a deeper row is a broken row.
pub const MAX_JSON_DEPTH: usize = 128;

fn category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "ends early",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "bad value",
        serde_json::error::Category::Io => "read error",
    }
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

impl<R: BufRead + Send> RowSource for JsonLines<R> {
    fn last_row(&self) -> u64 {
        self.line
    }
}

impl<R: BufRead> Iterator for JsonLines<R> {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        if self.failed {
            return None;
        }
        loop {
            self.buf.clear();
            self.line += 1;
            let mut too_long = false;
            // Read one line without holding more than MAX_ROW_BYTES of it.
            loop {
                let chunk = match self.reader.fill_buf() {
                    Ok(c) => c,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.failed = true;
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
                if !too_long && self.buf.len() + take <= MAX_ROW_BYTES + 1 {
                    self.buf.extend_from_slice(&chunk[..take]);
                } else {
                    too_long = true;
                    self.buf = Vec::new();
                }
                self.reader.consume(take);
                if done {
                    break;
                }
            }
            if too_long {
                return Some(Err(RowError {
                    row: self.line,
                    message: format!("line longer than {} MiB, skipped", MAX_ROW_BYTES >> 20),
                }));
            }
            if self.buf.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            return Some(parse_object(&self.buf, self.line));
        }
    }
}

// ------------------------------------------------------------------ JSON

fn json_rows<R: BufRead + Send + 'static>(path: &Path, mut r: R) -> Result<Rows, ReadError> {
    // Find the first non-whitespace byte without consuming it.
    let first = loop {
        let buf = r.fill_buf().map_err(|source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if buf.is_empty() {
            break None;
        }
        let skip = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
        if skip < buf.len() {
            break Some(buf[skip]);
        }
        let n = buf.len();
        r.consume(n);
    };
    match first {
        None => Ok(Box::new(Numbered::new(std::iter::empty()))),
        Some(b'[') => Ok(Box::new(JsonArray::new(r))),
        // Objects one after another (JSON Lines saved as .json, or a single object).
        Some(b'{') => Ok(Box::new(JsonLines::new(r))),
        Some(_) => Err(ReadError::Invalid {
            path: path.to_path_buf(),
            message: "a .json dataset must be an array of objects or objects one per line".into(),
        }),
    }
}

/// Streams the elements of a top-level JSON array, one element in memory at a time.
pub struct JsonArray<R> {
    reader: R,
    started: bool,
    finished: bool,
    index: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> JsonArray<R> {
    pub fn new(reader: R) -> Self {
        JsonArray {
            reader,
            started: false,
            finished: false,
            index: 0,
            buf: Vec::new(),
        }
    }

    fn byte(&mut self) -> Result<Option<u8>, std::io::Error> {
        loop {
            match self.reader.fill_buf() {
                Ok([]) => return Ok(None),
                Ok(b) => {
                    let c = b[0];
                    self.reader.consume(1);
                    return Ok(Some(c));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn fail(&mut self, message: impl Into<String>) -> Option<Row> {
        self.finished = true;
        Some(Err(RowError {
            row: self.index.max(1),
            message: message.into(),
        }))
    }
}

impl<R: BufRead + Send> RowSource for JsonArray<R> {
    fn last_row(&self) -> u64 {
        self.index
    }
}

impl<R: BufRead> Iterator for JsonArray<R> {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        if self.finished {
            return None;
        }
        // Skip whitespace and the opening bracket or the separating comma.
        loop {
            let c = match self.byte() {
                Ok(c) => c,
                Err(e) => return self.fail(format!("read failed: {e}")),
            };
            match c {
                None => return self.fail("the JSON array is not closed (file truncated?)"),
                Some(b) if b.is_ascii_whitespace() => continue,
                Some(b'[') if !self.started => {
                    self.started = true;
                }
                Some(b']') if self.started => {
                    self.finished = true;
                    return None;
                }
                Some(b',') if self.started && self.index > 0 => {}
                Some(b) if self.started => {
                    self.buf.clear();
                    self.buf.push(b);
                    break;
                }
                Some(_) => return self.fail("expected a JSON array"),
            }
        }
        self.index += 1;
        // Scan one element: track nesting and strings; stop at the top-level `,` or `]`.
        let mut depth: i64 = match self.buf[0] {
            b'{' | b'[' => 1,
            _ => 0,
        };
        let mut in_str = self.buf[0] == b'"';
        let mut esc = false;
        let mut too_long = false;
        // A buffered chunk at a time: scan it, copy the element's part of it, consume.
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok([]) => return self.fail("the JSON array ends inside an element (truncated?)"),
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return self.fail(format!("read failed: {e}")),
            };
            let mut end = None;
            for (i, &c) in chunk.iter().enumerate() {
                if in_str {
                    if esc {
                        esc = false;
                    } else if c == b'\\' {
                        esc = true;
                    } else if c == b'"' {
                        in_str = false;
                    }
                    continue;
                }
                match c {
                    b'"' => in_str = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth > 0 => depth -= 1,
                    b',' | b']' if depth == 0 => {
                        end = Some((i, c));
                        break;
                    }
                    _ => {}
                }
            }
            let take = end.map_or(chunk.len(), |(i, _)| i);
            if !too_long {
                if self.buf.len() + take > MAX_ROW_BYTES {
                    too_long = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.extend_from_slice(&chunk[..take]);
                }
            }
            match end {
                Some((i, c)) => {
                    // The separating comma is consumed here; `]` ends the array.
                    self.reader.consume(i + 1);
                    self.finished = c == b']';
                    break;
                }
                None => self.reader.consume(take),
            }
        }
        if too_long {
            return Some(Err(RowError {
                row: self.index,
                message: format!("element longer than {} MiB, skipped", MAX_ROW_BYTES >> 20),
            }));
        }
        Some(parse_object(&self.buf, self.index))
    }
}

// ------------------------------------------------------------------ CSV

/// CSV with a header row; every cell is a string, an empty cell is null.
struct CsvRows<R> {
    reader: csv::Reader<R>,
    headers: Option<Vec<String>>,
    header_error: Option<String>,
    record: csv::ByteRecord,
    row: u64,
    done: bool,
}

impl<R: Read> CsvRows<R> {
    fn new(file: R) -> CsvRows<R> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .from_reader(file);
        let (headers, header_error) = match reader.byte_headers() {
            Ok(h) => {
                let mut names = Vec::new();
                let mut err = None;
                for (i, f) in h.iter().enumerate() {
                    match std::str::from_utf8(f) {
                        Ok(s) => names.push(s.trim_start_matches('\u{feff}').to_string()),
                        Err(_) => {
                            err = Some(format!("header column {} is not UTF-8", i + 1));
                            names.push(format!("column_{}", i + 1));
                        }
                    }
                }
                (Some(names), err)
            }
            Err(e) => (None, Some(format!("cannot read the header row: {e}"))),
        };
        CsvRows {
            reader,
            headers,
            header_error,
            record: csv::ByteRecord::new(),
            row: 1,
            done: false,
        }
    }
}

impl<R: Read + Send> RowSource for CsvRows<R> {
    fn last_row(&self) -> u64 {
        self.row
    }
}

impl<R: Read> Iterator for CsvRows<R> {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        if self.done {
            return None;
        }
        if let Some(e) = self.header_error.take() {
            if self.headers.is_none() {
                self.done = true;
            }
            return Some(Err(RowError { row: 1, message: e }));
        }
        let headers = self.headers.as_ref()?;
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => {
                self.done = true;
                None
            }
            Ok(true) => {
                self.row = self
                    .record
                    .position()
                    .map_or(self.row + 1, |p| p.line().max(1));
                if self.record.len() != headers.len() {
                    return Some(Err(RowError {
                        row: self.row,
                        message: format!(
                            "{} fields where the header has {} (ragged row)",
                            self.record.len(),
                            headers.len()
                        ),
                    }));
                }
                let mut m = Record::new();
                for (i, (name, cell)) in headers.iter().zip(self.record.iter()).enumerate() {
                    let v = match std::str::from_utf8(cell) {
                        Ok("") => serde_json::Value::Null,
                        Ok(s) => serde_json::Value::String(s.to_string()),
                        Err(_) => {
                            return Some(Err(RowError {
                                row: self.row,
                                message: format!("column {} ({name}) is not UTF-8", i + 1),
                            }));
                        }
                    };
                    m.insert(name.clone(), v);
                }
                Some(Ok(m))
            }
            Err(e) => {
                let row = e.position().map_or(self.row + 1, |p| p.line().max(1));
                self.row = row;
                let fatal = matches!(e.kind(), csv::ErrorKind::Io(_));
                if fatal {
                    self.done = true;
                }
                Some(Err(RowError {
                    row,
                    message: match e.kind() {
                        csv::ErrorKind::Io(io) => format!("read failed: {io}"),
                        _ => "malformed CSV record".into(),
                    },
                }))
            }
        }
    }
}

// ------------------------------------------------------------------ parquet

fn parquet_rows(path: &Path, file: File) -> Result<Rows, ReadError> {
    use parquet::file::reader::SerializedFileReader;
    let invalid = |message: String| ReadError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        SerializedFileReader::try_from(file)
    }));
    let reader = match opened {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return Err(invalid(format!(
                "not a readable parquet file (truncated or corrupt): {e}"
            )));
        }
        Err(_) => return Err(invalid("corrupt parquet metadata".into())),
    };
    Ok(Box::new(ParquetRows {
        rows: Some(reader.into_iter()),
        row: 0,
    }))
}

struct ParquetRows {
    rows: Option<parquet::record::reader::RowIter<'static>>,
    row: u64,
}

impl RowSource for ParquetRows {
    fn last_row(&self) -> u64 {
        self.row
    }
}

impl Iterator for ParquetRows {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        let it = self.rows.as_mut()?;
        self.row += 1;
        // A corrupt page must end this file's stream with a counted error, never a panic.
        let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| it.next()));
        match next {
            Ok(None) => {
                self.rows = None;
                None
            }
            Ok(Some(Ok(r))) => match r.to_json_value() {
                serde_json::Value::Object(m) => Some(Ok(m)),
                _ => Some(Err(RowError {
                    row: self.row,
                    message: "parquet row is not a record".into(),
                })),
            },
            Ok(Some(Err(e))) => {
                self.rows = None;
                Some(Err(RowError {
                    row: self.row,
                    message: format!("corrupt parquet data, rest of file skipped: {e}"),
                }))
            }
            Err(_) => {
                self.rows = None;
                Some(Err(RowError {
                    row: self.row,
                    message: "corrupt parquet data, rest of file skipped".into(),
                }))
            }
        }
    }
}

// ------------------------------------------------------------------ sources and splits

/// The data files of one split.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SplitFiles {
    pub split: String,
    pub files: Vec<PathBuf>,
}

/// The split a data file belongs to, from Hugging Face naming conventions
/// (`train.jsonl`, `data/train-00000-of-00002.parquet`, `validation/part-0.csv`).
pub fn split_name(path: &Path) -> String {
    let norm = |s: &str| -> Option<&'static str> {
        let s = s.to_ascii_lowercase();
        let head = s.split(['-', '_', '.']).next().unwrap_or("");
        match head {
            "train" | "training" => Some("train"),
            "validation" | "valid" | "val" | "dev" | "eval" => Some("validation"),
            "test" | "testing" => Some("test"),
            _ => None,
        }
    };
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if let Some(s) = norm(stem) {
        return s.to_string();
    }
    if let Some(parent) = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|s| s.to_str())
        && let Some(s) = norm(parent)
    {
        return s.to_string();
    }
    stem.to_string()
}

/// A file, or a directory walked for data files (hidden entries skipped), grouped into splits
/// (train, validation, test first, then others by name; files sorted within a split).
pub fn resolve(path: &Path) -> Result<Vec<SplitFiles>, ReadError> {
    let meta = std::fs::metadata(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if let Some(kind) = special_kind(&meta) {
        return Err(not_regular(path, kind));
    }
    if meta.is_file() {
        if Format::from_path(path).is_none() {
            return Err(ReadError::UnknownFormat {
                path: path.to_path_buf(),
            });
        }
        return Ok(vec![SplitFiles {
            split: split_name(path),
            files: vec![path.to_path_buf()],
        }]);
    }
    let mut files = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    // Directories already walked (canonical), so a symlink loop is walked once.
    let mut seen = std::collections::HashSet::new();
    while let Some(dir) = stack.pop() {
        if let Ok(c) = std::fs::canonicalize(&dir)
            && !seen.insert(c)
        {
            continue;
        }
        let entries = std::fs::read_dir(&dir).map_err(|source| ReadError::Io {
            path: dir.clone(),
            source,
        })?;
        for e in entries {
            let e = e.map_err(|source| ReadError::Io {
                path: dir.clone(),
                source,
            })?;
            let p = e.path();
            if p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
            {
                continue;
            }
            let ty = e.file_type().map_err(|source| ReadError::Io {
                path: p.clone(),
                source,
            })?;
            // Symlinks are followed (a dangling one is skipped); `seen` stops loops.
            let is_dir = if ty.is_symlink() {
                std::fs::metadata(&p).is_ok_and(|m| m.is_dir())
            } else {
                ty.is_dir()
            };
            if is_dir {
                stack.push(p);
            } else if Format::from_path(&p).is_some() && std::fs::metadata(&p).is_ok() {
                files.push(p);
            }
        }
    }
    if files.is_empty() {
        return Err(ReadError::Empty {
            path: path.to_path_buf(),
        });
    }
    files.sort();
    let mut splits: Vec<SplitFiles> = Vec::new();
    for f in files {
        let s = split_name(&f);
        match splits.iter_mut().find(|x| x.split == s) {
            Some(x) => x.files.push(f),
            None => splits.push(SplitFiles {
                split: s,
                files: vec![f],
            }),
        }
    }
    let rank = |s: &str| match s {
        "train" => 0,
        "validation" => 1,
        "test" => 2,
        _ => 3,
    };
    splits.sort_by(|a, b| (rank(&a.split), &a.split).cmp(&(rank(&b.split), &b.split)));
    Ok(splits)
}

/// Reads everything from `r` into a JSON Lines stream (for tests and fuzzing).
pub fn jsonl_from_bytes(bytes: Vec<u8>) -> impl RowSource {
    JsonLines::new(std::io::Cursor::new(bytes))
}

/// Streams a JSON array from bytes (for tests and fuzzing).
pub fn json_array_from_bytes(bytes: Vec<u8>) -> impl RowSource {
    JsonArray::new(std::io::Cursor::new(bytes))
}
