//! `mlres-testkit`: test-only helpers shared by the integration tests of every crate that
//! handles secrets. Its [`SweptDir`] is a temporary directory that, when dropped at the end of
//! a test, reads every file written into it (ledgers, WAL files, attempt logs, status files,
//! exports, reports, and the stdout/stderr the test recorded with [`SweptDir::record`]) and
//! fails the test if any known canary secret appears outside the paths the test declared as
//! its own inputs with [`SweptDir::allow`]. Every test that uses it therefore also checks that
//! nothing it made mlres write leaked a canary. It is a dev-dependency only; no shipped crate
//! may depend on it, and it knows nothing of mlres itself.

pub mod slurm;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Substrings that mark a canary secret in the test suite. Every canary value the tests use
/// as a token, password or parent-environment secret contains one of these.
pub const CANARY_MARKERS: &[&str] = &[
    "mlresCANARY",
    "hf_canaryCANARY",
    "hf_CANARY",
    "canary-7f3a9c1e",
];

/// Files larger than this are read only up to this many bytes.
const MAX_SCAN_BYTES: u64 = 256 << 20;

/// A canary found where it must not be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    pub path: PathBuf,
    pub marker: &'static str,
}

/// What a sweep looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    pub files: u64,
    pub bytes: u64,
    pub leaks: Vec<Leak>,
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Reads every regular file below `root` (symlinks are not followed) and reports each file
/// that contains a canary marker and is not under one of `allowed`.
pub fn sweep(root: &Path, allowed: &[PathBuf]) -> std::io::Result<Sweep> {
    let mut out = Sweep::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            // A job may leave a directory we cannot list (e.g. mode 000); say so loudly.
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("cannot sweep {}: {e}", dir.display()),
                ));
            }
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let ty = entry.file_type()?;
            if ty.is_dir() {
                stack.push(path);
                continue;
            }
            if !ty.is_file() {
                continue;
            }
            use std::io::Read;
            let mut buf = Vec::new();
            match std::fs::File::open(&path) {
                Ok(f) => {
                    f.take(MAX_SCAN_BYTES).read_to_end(&mut buf)?;
                }
                // Sockets, files removed while we walk: nothing to read.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!("cannot sweep {}: {e}", path.display()),
                    ));
                }
            }
            out.files += 1;
            out.bytes += buf.len() as u64;
            if allowed.iter().any(|a| path.starts_with(a)) {
                continue;
            }
            for m in CANARY_MARKERS {
                if find(&buf, m.as_bytes()) {
                    out.leaks.push(Leak {
                        path: path.clone(),
                        marker: m,
                    });
                }
            }
        }
    }
    out.leaks.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// A temporary directory swept for canaries when dropped (see the crate docs).
pub struct SweptDir {
    dir: Option<tempfile::TempDir>,
    allowed: Mutex<Vec<PathBuf>>,
    outputs: AtomicU64,
}

impl SweptDir {
    /// A new directory under `base` (use `env!("CARGO_TARGET_TMPDIR")` in integration tests).
    pub fn new_in(base: impl AsRef<Path>) -> SweptDir {
        std::fs::create_dir_all(base.as_ref()).expect("create the temp base");
        let dir = tempfile::Builder::new()
            .prefix("swept-")
            .tempdir_in(base)
            .expect("tempdir");
        SweptDir {
            dir: Some(dir),
            allowed: Mutex::new(Vec::new()),
            outputs: AtomicU64::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("live dir").path()
    }

    /// Declares `path` (a file or directory) a test input that may hold a canary, such as
    /// a token file planted in a fake home or a negative control's capture.
    pub fn allow(&self, path: impl AsRef<Path>) {
        self.allowed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(path.as_ref().to_path_buf());
    }

    /// Saves output the test captured (a command's stdout or stderr) so the sweep covers it.
    pub fn record(&self, label: &str, bytes: &[u8]) {
        let n = self.outputs.fetch_add(1, Ordering::Relaxed);
        let dir = self.path().join(".outputs");
        std::fs::create_dir_all(&dir).expect("outputs dir");
        let safe: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(60)
            .collect();
        std::fs::write(dir.join(format!("{n:05}-{safe}")), bytes).expect("record output");
    }

    /// Sweeps now (the drop does the same and panics on a leak).
    pub fn sweep(&self) -> std::io::Result<Sweep> {
        let allowed = self
            .allowed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        sweep(self.path(), &allowed)
    }
}

impl Drop for SweptDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let result = self.sweep();
        let dir = self.dir.take();
        match result {
            Ok(s) if s.leaks.is_empty() => drop(dir),
            Ok(s) => {
                let kept = dir.map(|d| d.keep());
                panic!(
                    "canary secret leaked into {} file(s) (kept at {:?} for inspection):\n{}",
                    s.leaks.len(),
                    kept,
                    s.leaks
                        .iter()
                        .map(|l| format!("  {} ({})", l.path.display(), l.marker))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            Err(e) => panic!("canary sweep failed: {e}"),
        }
    }
}
