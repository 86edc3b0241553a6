//! Capped log capture: the head of a stream up to a cap goes to a file, the stream is drained
//! to its end, and the last [`TAIL_BYTES`] are kept in a ring buffer.

use std::io::{self, Read, Write};

/// Size of the tail kept for each stream (`stdout.tail.log` / `stderr.tail.log`).
pub const TAIL_BYTES: usize = 64 * 1024;

/// Keeps the last `cap` bytes written to it.
#[derive(Debug)]
pub(crate) struct TailRing {
    cap: usize,
    buf: Vec<u8>,
}

impl TailRing {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            buf: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        if data.len() >= self.cap {
            self.buf.clear();
            self.buf.extend_from_slice(&data[data.len() - self.cap..]);
            return;
        }
        self.buf.extend_from_slice(data);
        // Compact lazily (amortised O(1) per byte): allow up to 2*cap before dropping the front.
        if self.buf.len() > 2 * self.cap {
            let excess = self.buf.len() - self.cap;
            self.buf.drain(..excess);
        }
    }

    /// The last `cap` bytes pushed (fewer if less was pushed).
    pub(crate) fn contents(&self) -> &[u8] {
        &self.buf[self.buf.len().saturating_sub(self.cap)..]
    }
}

/// Result of draining one stream.
#[derive(Debug)]
pub(crate) struct Captured {
    /// Total bytes read from the stream.
    pub(crate) total: u64,
    /// More than the cap was produced.
    pub(crate) truncated: bool,
    /// The last [`TAIL_BYTES`] of the stream.
    pub(crate) tail: TailRing,
    /// First write error on the head file, if any (reading continues regardless).
    pub(crate) write_error: Option<io::Error>,
}

/// Read `input` to EOF; write its first `cap` bytes to `head`, keep the tail in a ring.
pub(crate) fn capture(mut input: impl Read, mut head: impl Write, cap: u64) -> Captured {
    let mut out = Captured {
        total: 0,
        truncated: false,
        tail: TailRing::new(TAIL_BYTES),
        write_error: None,
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let chunk = &buf[..n];
        let room = cap.saturating_sub(out.total);
        let take = usize::try_from(room).unwrap_or(usize::MAX).min(n);
        if take < n {
            out.truncated = true;
        }
        // Flushed per chunk read: what the job printed is in the file while it runs, so
        // progress and early stopping see its metric lines (one write per read at most).
        if take > 0
            && out.write_error.is_none()
            && let Err(e) = head.write_all(&chunk[..take]).and_then(|()| head.flush())
        {
            out.write_error = Some(e);
        }
        out.total += n as u64;
        out.tail.push(chunk);
    }
    if out.write_error.is_none()
        && let Err(e) = head.flush()
    {
        out.write_error = Some(e);
    }
    out
}

/// The whole of a truncated stream as far as it was kept: `head` (the first bytes, up to the
/// cap), a one-line marker saying how much is missing, and `tail` (the last bytes) without the
/// part that `head` already holds. `total` is how many bytes the stream carried; when it is
/// unknown the overlap cannot be removed and the marker says so.
pub fn assemble_log(head: &[u8], tail: &[u8], total: Option<u64>) -> Vec<u8> {
    let head_len = head.len() as u64;
    let tail_len = tail.len() as u64;
    let mut out = head.to_vec();
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    match total {
        Some(total) => {
            // The tail covers [total - tail_len, total); the head covers [0, head_len).
            let tail_start = total.saturating_sub(tail_len);
            let skip = head_len.saturating_sub(tail_start).min(tail_len);
            let omitted = tail_start.saturating_sub(head_len);
            if skip == tail_len {
                return head.to_vec(); // the head already holds everything
            }
            out.extend_from_slice(
                format!(
                    "[mlres: {omitted} bytes of this log were not kept; the last part follows]\n"
                )
                .as_bytes(),
            );
            out.extend_from_slice(&tail[usize::try_from(skip).unwrap_or(tail.len())..]);
        }
        None => {
            out.extend_from_slice(
                b"[mlres: this log outgrew its cap; the middle was not kept and the last part follows (it may repeat some lines above)]\n",
            );
            out.extend_from_slice(tail);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captures `data` with `cap` and reassembles it the way `mlres exp logs` does.
    fn roundtrip(data: &[u8], cap: u64) -> (Captured, Vec<u8>, Vec<u8>) {
        let mut head = Vec::new();
        let c = capture(data, &mut head, cap);
        let shown = if c.truncated {
            assemble_log(&head, c.tail.contents(), Some(c.total))
        } else {
            head.clone()
        };
        (c, head, shown)
    }

    #[test]
    fn a_log_under_the_cap_is_shown_once() {
        let data = b"line 1\nline 2\nscore=0.5\n";
        let (c, _, shown) = roundtrip(data, 1 << 20);
        assert!(!c.truncated);
        assert_eq!(shown, data);
    }

    #[test]
    fn a_log_over_the_cap_shows_head_marker_and_the_rest_of_the_tail_without_repeats() {
        // Over the cap but shorter than cap + tail: the tail overlaps the head.
        let data: Vec<u8> = (0..8_000u32)
            .flat_map(|i| format!("l{i}\n").into_bytes())
            .collect();
        let cap = 1000;
        let (c, head, shown) = roundtrip(&data, cap);
        assert!(c.truncated && (data.len() as u64) < cap + TAIL_BYTES as u64);
        let marker = b"[mlres: 0 bytes of this log were not kept; the last part follows]\n";
        let mut want = head.clone();
        want.extend_from_slice(marker);
        want.extend_from_slice(&data[head.len()..]);
        assert_eq!(shown, want);

        // Much longer than cap + tail: the middle is counted, not repeated.
        let big: Vec<u8> = data.iter().copied().cycle().take(400_000).collect();
        let (c, head, shown) = roundtrip(&big, cap);
        let omitted = big.len() - cap as usize - TAIL_BYTES;
        let mut want = head.clone();
        want.extend_from_slice(
            format!("[mlres: {omitted} bytes of this log were not kept; the last part follows]\n")
                .as_bytes(),
        );
        want.extend_from_slice(&big[big.len() - TAIL_BYTES..]);
        assert!(c.truncated);
        assert_eq!(shown, want);
    }

    /// Reader that returns the data in the given chunk sizes.
    struct Chunked<'a> {
        data: &'a [u8],
        sizes: Vec<usize>,
        i: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.data.is_empty() {
                return Ok(0);
            }
            let want = self.sizes.get(self.i).copied().unwrap_or(7).max(1);
            self.i += 1;
            let n = want.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn ring_keeps_last_bytes() {
        let mut r = TailRing::new(4);
        r.push(b"ab");
        assert_eq!(r.contents(), b"ab");
        r.push(b"cdef");
        assert_eq!(r.contents(), b"cdef");
        r.push(b"g");
        assert_eq!(r.contents(), b"defg");
        r.push(b"0123456789");
        assert_eq!(r.contents(), b"6789");
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(48))]
        #[test]
        fn capture_head_and_tail(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..200_000),
            sizes in proptest::collection::vec(1usize..100_000, 0..20),
            cap in 0u64..200_000,
        ) {
            let mut head = Vec::new();
            let c = capture(Chunked { data: &data, sizes, i: 0 }, &mut head, cap);
            let keep = (cap as usize).min(data.len());
            proptest::prop_assert_eq!(&head[..], &data[..keep]);
            proptest::prop_assert_eq!(c.truncated, data.len() as u64 > cap);
            proptest::prop_assert_eq!(c.total, data.len() as u64);
            let t = data.len().saturating_sub(TAIL_BYTES);
            proptest::prop_assert_eq!(c.tail.contents(), &data[t..]);
        }
    }
}
