//! A request budget for the Hub API, shared by every process that opens the same file.
//!
//! The Hub documents its API limit as 500 requests per 5 minutes per token (the
//! `RateLimit-Policy: "fixed window";"api";q=500;w=300` header). A campaign talks to the API
//! from several processes at once: the loop (submissions, namespace sweeps) and one
//! supervisor per running job (status polls, log streams, cancels). A limit per process would
//! let eight supervisors spend eight budgets, so the budget is a token bucket kept in one
//! small file under the state dir and updated under an exclusive lock.
//!
//! The bucket holds at most `per_minute` tokens and refills at `per_minute` tokens a minute,
//! so any window of `w` seconds admits at most `per_minute * (1 + w / 60)` requests: 360 per
//! 5 minutes at the default of 60, well under the documented 500. [`Priority::Background`]
//! requests (a supervisor's status poll, which the log stream makes redundant) only take a
//! token while more than a quarter of the bucket is left, so cancellations and sweeps never
//! queue behind polls.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The Hub's documented API limit: requests per window.
pub const HUB_API_LIMIT: u32 = 500;
/// The Hub's documented API window, seconds.
pub const HUB_API_WINDOW_SECS: u32 = 300;
/// Requests per minute mlres allows itself by default (with a full bucket at the start of a
/// window, at most 360 per 5 minutes).
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 60;

/// How much a request may wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Waits for a token (submissions, cancels, sweeps, log streams).
    Normal,
    /// Only taken while the bucket is more than a quarter full; otherwise skipped by the
    /// caller (status polls).
    Background,
}

/// The bucket's state: tokens left, in thousandths, at a time in milliseconds since the epoch.
/// Pure: [`Bucket::admit`] decides from the state and the clock it is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// Tokens left × 1000.
    pub milli_tokens: u64,
    /// When `milli_tokens` was computed, ms since the epoch.
    pub at_ms: u64,
}

impl Bucket {
    /// A full bucket at `now_ms`.
    pub fn full(per_minute: u32, now_ms: u64) -> Bucket {
        Bucket {
            milli_tokens: u64::from(per_minute) * 1000,
            at_ms: now_ms,
        }
    }

    /// Refill up to `now_ms` (a clock that went back refills nothing), then take one token if
    /// `priority` allows: `Ok(())`, or `Err(wait)` with how long until it would.
    pub fn admit(
        &mut self,
        per_minute: u32,
        now_ms: u64,
        priority: Priority,
    ) -> Result<(), Duration> {
        let cap = u64::from(per_minute.max(1)) * 1000;
        // per_minute tokens per 60_000 ms = per_minute/60 milli-tokens per ms.
        let elapsed = now_ms.saturating_sub(self.at_ms);
        let refill = elapsed.saturating_mul(u64::from(per_minute.max(1))) / 60;
        self.milli_tokens = self.milli_tokens.saturating_add(refill).min(cap);
        if now_ms > self.at_ms {
            self.at_ms = now_ms;
        }
        let floor = match priority {
            Priority::Normal => 0,
            Priority::Background => cap / 4,
        };
        let need = floor + 1000;
        if self.milli_tokens >= need {
            self.milli_tokens -= 1000;
            return Ok(());
        }
        let missing = need - self.milli_tokens;
        // ms until `missing` milli-tokens have been refilled, rounded up.
        let ms = (missing * 60).div_ceil(u64::from(per_minute.max(1)));
        Err(Duration::from_millis(ms.max(1)))
    }

    fn encode(&self) -> String {
        format!("{} {}\n", self.milli_tokens, self.at_ms)
    }

    fn decode(s: &str) -> Option<Bucket> {
        let mut it = s.split_ascii_whitespace();
        let milli_tokens = it.next()?.parse().ok()?;
        let at_ms = it.next()?.parse().ok()?;
        Some(Bucket {
            milli_tokens,
            at_ms,
        })
    }
}

/// Errors of the budget file (the client treats them as "no budget", never as a refusal).
#[derive(Debug, thiserror::Error)]
#[error("request budget file {path}: {source}")]
pub struct BudgetError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// A request budget: `per_minute` requests a minute, shared through `file` by every process
/// that uses the same path (or, without a file, by the users of this value only).
#[derive(Debug)]
pub struct RequestBudget {
    per_minute: u32,
    file: Option<PathBuf>,
    memory: Mutex<Option<Bucket>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl RequestBudget {
    /// A budget of `per_minute` requests a minute (at least 1), shared through `file`.
    pub fn new(per_minute: u32, file: Option<PathBuf>) -> RequestBudget {
        RequestBudget {
            per_minute: per_minute.max(1),
            file,
            memory: Mutex::new(None),
        }
    }

    /// Requests per minute.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// The shared file, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Take one token now if `priority` allows, or say how long until one is free.
    pub fn try_take(&self, priority: Priority) -> Result<Result<(), Duration>, BudgetError> {
        self.with_bucket(|b| b.admit(self.per_minute, now_ms(), priority))
    }

    /// Take one token, sleeping until one is free. Returns the time waited. A budget file
    /// that cannot be used is reported once by the caller and does not block requests.
    pub fn take(&self) -> Result<Duration, BudgetError> {
        let mut waited = Duration::ZERO;
        loop {
            match self.try_take(Priority::Normal)? {
                Ok(()) => return Ok(waited),
                Err(wait) => {
                    let wait = wait.min(Duration::from_secs(5));
                    std::thread::sleep(wait);
                    waited += wait;
                }
            }
        }
    }

    /// Tokens left now (whole requests), without taking one.
    pub fn available(&self) -> Result<u32, BudgetError> {
        self.with_bucket(|b| {
            let mut probe = *b;
            let left = match probe.admit(self.per_minute, now_ms(), Priority::Normal) {
                Ok(()) => probe.milli_tokens / 1000 + 1,
                Err(_) => probe.milli_tokens / 1000,
            };
            u32::try_from(left).unwrap_or(u32::MAX)
        })
    }

    fn with_bucket<T>(&self, f: impl FnOnce(&mut Bucket) -> T) -> Result<T, BudgetError> {
        let Some(path) = &self.file else {
            let mut g = self.memory.lock().unwrap_or_else(|e| e.into_inner());
            let b = g.get_or_insert_with(|| Bucket::full(self.per_minute, now_ms()));
            return Ok(f(b));
        };
        let err = |source| BudgetError {
            path: path.clone(),
            source,
        };
        let mut file: File = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(err)?;
        file.lock().map_err(err)?;
        let mut text = String::new();
        // A torn or foreign file is a full bucket (the Hub's own limit still applies).
        let _ = file.read_to_string(&mut text);
        let mut bucket =
            Bucket::decode(&text).unwrap_or_else(|| Bucket::full(self.per_minute, now_ms()));
        let out = f(&mut bucket);
        let write = (|| {
            file.seek(SeekFrom::Start(0))?;
            file.set_len(0)?;
            file.write_all(bucket.encode().as_bytes())
        })();
        let _ = file.unlock();
        write.map_err(err)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_admits_per_minute_then_waits_for_the_refill() {
        let mut b = Bucket::full(60, 1_000_000);
        for _ in 0..60 {
            assert_eq!(b.admit(60, 1_000_000, Priority::Normal), Ok(()));
        }
        assert_eq!(
            b.admit(60, 1_000_000, Priority::Normal),
            Err(Duration::from_millis(1000))
        );
        assert_eq!(b.admit(60, 1_001_000, Priority::Normal), Ok(()));
    }

    #[test]
    fn background_requests_leave_a_quarter_of_the_bucket() {
        let mut b = Bucket::full(40, 0);
        let mut taken = 0;
        while b.admit(40, 0, Priority::Background).is_ok() {
            taken += 1;
        }
        assert_eq!(taken, 30);
        // Normal requests still get the rest.
        for _ in 0..10 {
            assert_eq!(b.admit(40, 0, Priority::Normal), Ok(()));
        }
        assert!(b.admit(40, 0, Priority::Normal).is_err());
    }

    #[test]
    fn a_clock_that_goes_back_refills_nothing() {
        let mut b = Bucket::full(10, 100_000);
        for _ in 0..10 {
            b.admit(10, 100_000, Priority::Normal).unwrap();
        }
        assert!(b.admit(10, 50_000, Priority::Normal).is_err());
        assert!(b.admit(10, 99_999, Priority::Normal).is_err());
    }

    #[test]
    fn the_file_is_shared_between_budgets() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bucket");
        let a = RequestBudget::new(5, Some(p.clone()));
        let b = RequestBudget::new(5, Some(p));
        for _ in 0..3 {
            assert_eq!(a.try_take(Priority::Normal).unwrap(), Ok(()));
        }
        for _ in 0..2 {
            assert_eq!(b.try_take(Priority::Normal).unwrap(), Ok(()));
        }
        assert!(a.try_take(Priority::Normal).unwrap().is_err());
        assert!(b.try_take(Priority::Normal).unwrap().is_err());
    }

    proptest::proptest! {
        /// Whatever the arrival pattern, no window of `w` ms admits more than
        /// `per_minute * (1 + w / 60 s)` requests (plus one for rounding).
        #[test]
        fn no_window_admits_more_than_the_bucket_allows(
            per_minute in 1u32..200,
            gaps in proptest::collection::vec(0u64..3000, 1..600),
            window_s in 1u64..400,
        ) {
            let mut b = Bucket::full(per_minute, 0);
            let mut now = 0u64;
            let mut admitted = Vec::new();
            for g in gaps {
                now += g;
                if b.admit(per_minute, now, Priority::Normal).is_ok() {
                    admitted.push(now);
                }
            }
            let w = window_s * 1000;
            let bound = u64::from(per_minute) + u64::from(per_minute) * w / 60_000 + 1;
            for (i, start) in admitted.iter().enumerate() {
                let n = admitted[i..].iter().take_while(|t| **t < start + w).count() as u64;
                proptest::prop_assert!(n <= bound, "{n} requests in {w} ms (bound {bound})");
            }
        }
    }
}
