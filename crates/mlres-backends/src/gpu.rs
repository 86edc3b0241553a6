//! Local GPUs: which of the machine's GPUs a job gets, held for its whole life.
//!
//! Every GPU of the pool has a lock file (`<lock dir>/gpu-<id>.lock`). A supervisor takes an
//! exclusive `flock` on each GPU it gives a job (a shared one when the job's template allows
//! sharing), all or nothing, and holds them until the job has ended; the kernel releases them
//! if the supervisor dies. Two exclusive jobs, or an exclusive and a sharing one, never hold
//! the same GPU; jobs that both allow sharing may. A job that cannot get its GPUs waits (up
//! to its own timeout, or until it is cancelled) and is then not run; it never runs without
//! them. The job's `CUDA_VISIBLE_DEVICES` names exactly the GPUs it holds (empty without any),
//! and only their device files are in its sandbox.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::GpuRequest;

/// The environment variable CUDA (and PyTorch, JAX, ...) reads.
pub(crate) const VISIBLE: &str = "CUDA_VISIBLE_DEVICES";

/// GPUs held for a job: their ids and the locked files (the locks go with them).
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) ids: Vec<String>,
    _locks: Vec<File>,
}

/// Why a job did not get its GPUs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The pool can never satisfy the request, or a lock file cannot be used.
    Impossible(String),
    /// Cancelled while waiting.
    Cancelled,
    /// Still busy when the wait ended.
    Busy(String),
}

/// A lock file name for a GPU id (`0`, `GPU-8f6c…`, `MIG-…`): anything but
/// `[A-Za-z0-9._-]` becomes `_`.
fn lock_name(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("gpu-{safe}.lock")
}

/// Check a request against its pool (it must be satisfiable at all).
pub(crate) fn check(req: &GpuRequest) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for id in &req.host {
        if id.is_empty() || id.contains(',') || id.chars().any(char::is_whitespace) {
            return Err(format!("GPU id {id:?} in the pool is not usable"));
        }
        if !seen.insert(lock_name(id)) {
            return Err(format!("GPU id {id:?} appears twice in the pool"));
        }
    }
    let want = usize::try_from(req.count).unwrap_or(usize::MAX);
    if want > req.host.len() {
        return Err(if req.host.is_empty() {
            format!(
                "the job needs {} GPU(s) and this machine has none configured for local jobs \
                 (set MLRES_LOCAL_GPUS, e.g. MLRES_LOCAL_GPUS=0,1)",
                req.count
            )
        } else {
            format!(
                "the job needs {} GPU(s) and this machine gives local jobs {} ({})",
                req.count,
                req.host.len(),
                req.host.join(",")
            )
        });
    }
    Ok(())
}

/// One all-or-nothing attempt: `Ok(Some)` with the GPUs, `Ok(None)` if too many are busy
/// (every lock taken on the way is released again), `Err` if a lock file cannot be used.
pub(crate) fn try_take(req: &GpuRequest) -> Result<Option<Lease>, String> {
    std::fs::create_dir_all(&req.lock_dir)
        .map_err(|e| format!("cannot create {}: {e}", req.lock_dir.display()))?;
    let want = usize::try_from(req.count).unwrap_or(usize::MAX);
    let mut ids = Vec::new();
    let mut locks = Vec::new();
    for id in &req.host {
        if ids.len() == want {
            break;
        }
        let path = req.lock_dir.join(lock_name(id));
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let got = if req.share {
            f.try_lock_shared()
        } else {
            f.try_lock()
        };
        match got {
            Ok(()) => {
                ids.push(id.clone());
                locks.push(f);
            }
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", path.display()));
            }
        }
    }
    Ok((ids.len() == want).then_some(Lease { ids, _locks: locks }))
}

/// Take the job's GPUs, waiting (with a backoff up to 1 s) while they are busy, until
/// `deadline` or until `cancelled()`.
pub(crate) fn acquire(
    req: &GpuRequest,
    deadline: Instant,
    cancelled: &dyn Fn() -> bool,
) -> Result<Lease, Refusal> {
    check(req).map_err(Refusal::Impossible)?;
    let mut pause = Duration::from_millis(20);
    loop {
        if let Some(lease) = try_take(req).map_err(Refusal::Impossible)? {
            return Ok(lease);
        }
        if cancelled() {
            return Err(Refusal::Cancelled);
        }
        if Instant::now() >= deadline {
            return Err(Refusal::Busy(format!(
                "{} of the GPUs {} are held by other jobs{}",
                if req.count == 1 {
                    "all".to_string()
                } else {
                    "too many".to_string()
                },
                req.host.join(","),
                if req.share { " that do not share" } else { "" }
            )));
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Device files a job with GPUs `ids` needs (those that exist): the NVIDIA control devices,
/// and `/dev/nvidia<N>` for each numeric id; ids that are not indices (UUIDs) cannot be
/// mapped to a device file, so every `/dev/nvidia<N>` is given and `CUDA_VISIBLE_DEVICES`
/// alone selects.
pub(crate) fn device_files(ids: &[String]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = [
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
        "/dev/nvidia-uvm-tools",
        "/dev/nvidia-modeset",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    if ids.iter().all(|i| i.parse::<u32>().is_ok()) {
        out.extend(ids.iter().map(|i| PathBuf::from(format!("/dev/nvidia{i}"))));
    } else if let Ok(rd) = std::fs::read_dir("/dev") {
        let mut all: Vec<PathBuf> = rd
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix("nvidia"))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
            .map(|e| e.path())
            .collect();
        all.sort();
        out.extend(all);
    }
    out.into_iter().filter(|p| Path::new(p).exists()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(dir: &Path, count: u32, share: bool, host: &[&str]) -> GpuRequest {
        GpuRequest {
            count,
            share,
            host: host.iter().map(|s| s.to_string()).collect(),
            lock_dir: dir.to_path_buf(),
        }
    }

    #[test]
    fn exclusive_and_shared_leases() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let a = try_take(&req(d, 1, false, &["0", "1"])).unwrap().unwrap();
        assert_eq!(a.ids, ["0"]);
        let b = try_take(&req(d, 1, false, &["0", "1"])).unwrap().unwrap();
        assert_eq!(b.ids, ["1"]);
        // Both taken: a third exclusive or sharing job gets nothing, and holds nothing.
        assert!(try_take(&req(d, 1, false, &["0", "1"])).unwrap().is_none());
        assert!(try_take(&req(d, 1, true, &["0", "1"])).unwrap().is_none());
        drop(a);
        // All or nothing: two wanted, one free.
        assert!(try_take(&req(d, 2, false, &["0", "1"])).unwrap().is_none());
        let c = try_take(&req(d, 1, true, &["0", "1"])).unwrap().unwrap();
        let e = try_take(&req(d, 1, true, &["0", "1"])).unwrap().unwrap();
        assert_eq!(
            (c.ids.as_slice(), e.ids.as_slice()),
            (&["0".to_string()][..], &["0".to_string()][..])
        );
        // A sharing holder keeps an exclusive job out.
        assert!(try_take(&req(d, 1, false, &["0"])).unwrap().is_none());
        drop((b, c, e));
        assert_eq!(
            try_take(&req(d, 2, false, &["0", "1"]))
                .unwrap()
                .unwrap()
                .ids,
            ["0", "1"]
        );
    }

    #[test]
    fn impossible_requests_and_waiting() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let never = || false;
        let e = acquire(&req(d, 1, false, &[]), Instant::now(), &never).unwrap_err();
        assert!(
            matches!(&e, Refusal::Impossible(m) if m.contains("MLRES_LOCAL_GPUS")),
            "{e:?}"
        );
        let e = acquire(&req(d, 3, false, &["0", "1"]), Instant::now(), &never).unwrap_err();
        assert!(
            matches!(&e, Refusal::Impossible(m) if m.contains("needs 3 GPU(s)")),
            "{e:?}"
        );
        let e = acquire(&req(d, 1, false, &["0", "0"]), Instant::now(), &never).unwrap_err();
        assert!(
            matches!(&e, Refusal::Impossible(m) if m.contains("twice")),
            "{e:?}"
        );
        let held = try_take(&req(d, 1, false, &["0"])).unwrap().unwrap();
        let start = Instant::now();
        let e = acquire(
            &req(d, 1, false, &["0"]),
            start + Duration::from_millis(200),
            &never,
        )
        .unwrap_err();
        assert!(
            matches!(&e, Refusal::Busy(m) if m.contains("held by other jobs")),
            "{e:?}"
        );
        assert!(start.elapsed() >= Duration::from_millis(200));
        let e = acquire(
            &req(d, 1, false, &["0"]),
            start + Duration::from_secs(60),
            &|| true,
        )
        .unwrap_err();
        assert_eq!(e, Refusal::Cancelled);
        // Freed while waiting: taken.
        let r = req(d, 1, false, &["0"]);
        let waiter = std::thread::spawn(move || {
            acquire(&r, Instant::now() + Duration::from_secs(60), &|| false).map(|l| l.ids)
        });
        std::thread::sleep(Duration::from_millis(100));
        drop(held);
        assert_eq!(waiter.join().unwrap().unwrap(), ["0"]);
    }

    #[test]
    fn lock_names_are_plain_file_names() {
        assert_eq!(lock_name("0"), "gpu-0.lock");
        assert_eq!(lock_name("GPU-8f6c/../x"), "gpu-GPU-8f6c_.._x.lock");
    }
}
