//! Fast 64-bit hashing, shingling, MinHash signatures and LSH banding.
//!
//! Shingles are hashed once to 64 bits; each permutation is then a multiply-shift hash of
//! that value, `((h ^ a_i) * b_i) >> 32` with an odd `b_i`, so a signature costs one xor,
//! one multiply and one compare per shingle and permutation.

use serde::{Deserialize, Serialize};

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// A finaliser with good avalanche (a variant of the splitmix64 mixer).
pub fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A fast, seeded 64-bit hash of a byte string (not cryptographic).
pub fn hash_bytes(b: &[u8], seed: u64) -> u64 {
    let mut h = seed ^ K ^ (b.len() as u64).wrapping_mul(K);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(29);
    }
    let rem = chunks.remainder();
    if !rem.is_empty() {
        let mut w = [0u8; 8];
        w[..rem.len()].copy_from_slice(rem);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(29);
    }
    mix(h)
}

/// How row text is cut into shingles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shingle {
    /// Word n-grams (words are lowercased runs of letters and digits).
    Words(usize),
    /// Character n-grams over the whitespace-collapsed lowercased text.
    Chars(usize),
}

impl Default for Shingle {
    fn default() -> Self {
        Shingle::Words(3)
    }
}

/// Lowercased alphanumeric words of `text`.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// Distinct 64-bit shingle hashes of `text` (sorted). `text` should already be lowercased.
pub fn shingles(text: &str, kind: Shingle, out: &mut Vec<u64>) {
    out.clear();
    match kind {
        Shingle::Words(n) => {
            let n = n.max(1);
            let hs: Vec<u64> = words(text).map(|w| hash_bytes(w.as_bytes(), 0)).collect();
            if hs.len() < n {
                if !hs.is_empty() {
                    out.push(combine(&hs));
                }
            } else {
                for win in hs.windows(n) {
                    out.push(combine(win));
                }
            }
        }
        Shingle::Chars(n) => {
            let n = n.max(1);
            let mut norm = String::with_capacity(text.len());
            let mut space = false;
            for c in text.chars() {
                if c.is_whitespace() {
                    if !space && !norm.is_empty() {
                        norm.push(' ');
                    }
                    space = true;
                } else {
                    norm.push(c);
                    space = false;
                }
            }
            let bounds: Vec<usize> = norm
                .char_indices()
                .map(|(i, _)| i)
                .chain(std::iter::once(norm.len()))
                .collect();
            let chars = bounds.len() - 1;
            if chars == 0 {
                return;
            }
            if chars < n {
                out.push(hash_bytes(norm.as_bytes(), 1));
            } else {
                for i in 0..=chars - n {
                    out.push(hash_bytes(&norm.as_bytes()[bounds[i]..bounds[i + n]], 1));
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup();
}

/// Order-sensitive combination of word hashes into one n-gram hash.
pub fn combine(hs: &[u64]) -> u64 {
    let mut h = K;
    for &w in hs {
        h = (h.rotate_left(23) ^ w).wrapping_mul(K);
    }
    mix(h)
}

/// The permutation family for one seed.
#[derive(Debug, Clone)]
pub struct MinHasher {
    a: Vec<u64>,
    b: Vec<u64>,
}

impl MinHasher {
    pub fn new(num_perm: usize, seed: u64) -> Self {
        let mut s = mix(seed ^ 0x5EED);
        let mut next = || {
            s = s.wrapping_add(K);
            mix(s)
        };
        let mut a = Vec::with_capacity(num_perm);
        let mut b = Vec::with_capacity(num_perm);
        for _ in 0..num_perm {
            a.push(next());
            b.push(next() | 1);
        }
        MinHasher { a, b }
    }

    pub fn num_perm(&self) -> usize {
        self.a.len()
    }

    /// Writes the signature of a shingle set into `sig` (length `num_perm`). An empty set
    /// gives all `u32::MAX`.
    pub fn signature(&self, shingles: &[u64], sig: &mut [u32]) {
        // Permutation-major: each slot is an independent min-reduction over the shingles,
        // which the compiler unrolls (no store/load chain through `sig`). One multiply
        // serves two slots: the product's high half, and its low half mixed with the high
        // half (the low half alone only depends on the shingle's low bits).
        let n = sig.len().min(self.a.len());
        let (pairs, rest) = sig[..n].split_at_mut(n / 2 * 2);
        for ((pair, &a), &b) in pairs.chunks_exact_mut(2).zip(&self.a).zip(&self.b) {
            let (mut x, mut y) = (u32::MAX, u32::MAX);
            for &h in shingles {
                let p = (h ^ a).wrapping_mul(b);
                let hi = (p >> 32) as u32;
                x = x.min(hi);
                y = y.min((p as u32) ^ hi.rotate_left(16));
            }
            pair[0] = x;
            pair[1] = y;
        }
        if let Some(last) = rest.first_mut() {
            let (a, b) = (self.a[n - 1], self.b[n - 1]);
            *last = shingles
                .iter()
                .map(|&h| ((h ^ a).wrapping_mul(b) >> 32) as u32)
                .fold(u32::MAX, u32::min);
        }
    }
}

/// Fraction of positions where two signatures agree (the Jaccard estimate).
pub fn agreement(x: &[u32], y: &[u32]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    let same = x.iter().zip(y).filter(|(a, b)| a == b).count();
    same as f64 / x.len() as f64
}

/// A shingle set in 32 bits a hash (sorted, distinct), to keep every row's set in memory for
/// exact verification; two shingles of one pair collide with odds about n²/2³³, which moves
/// the Jaccard of rows of a few hundred shingles by far less than one shingle.
pub fn shingle_set32(shingles: &[u64]) -> Vec<u32> {
    let mut v: Vec<u32> = shingles.iter().map(|&h| (h ^ (h >> 32)) as u32).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Exact Jaccard similarity of two sorted, deduplicated sets of 32-bit hashes.
pub fn jaccard32(x: &[u32], y: &[u32]) -> f64 {
    sorted_jaccard(x, y)
}

/// Exact Jaccard similarity of two sorted, deduplicated sets.
pub fn jaccard(x: &[u64], y: &[u64]) -> f64 {
    sorted_jaccard(x, y)
}

/// |x ∩ y| / |x ∪ y| by one merge pass over two sorted, deduplicated slices (1 when both
/// are empty).
fn sorted_jaccard<T: Ord>(x: &[T], y: &[T]) -> f64 {
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < x.len() && j < y.len() {
        match x[i].cmp(&y[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = x.len() + y.len() - inter;
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

/// Bands and rows per band for a threshold: the `(b, r)` with `b * r <= num_perm` that
/// minimises the (equally weighted) integrated false-positive and false-negative
/// probability of the banding curve `1 - (1 - s^r)^b` around `threshold` (the choice
/// datasketch's `MinHashLSH` makes by default).
pub fn lsh_params(threshold: f64, num_perm: usize) -> (usize, usize) {
    lsh_params_weighted(threshold, num_perm, 0.5)
}

/// As [`lsh_params`], with false positives weighted `fp_weight` and false negatives
/// `1 - fp_weight`. The audit verifies every candidate pair on its shingle sets, so it
/// can afford extra candidates and uses a weight of [`VERIFIED_FP_WEIGHT`] (better recall
/// just above the threshold).
pub fn lsh_params_weighted(threshold: f64, num_perm: usize, fp_weight: f64) -> (usize, usize) {
    let w = fp_weight.clamp(0.0, 1.0);
    let t = threshold.clamp(0.01, 0.99);
    let p = |s: f64, b: usize, r: usize| 1.0 - (1.0 - s.powi(r as i32)).powi(b as i32);
    let integrate = |lo: f64, hi: f64, f: &dyn Fn(f64) -> f64| {
        let steps = 200;
        let dx = (hi - lo) / steps as f64;
        (0..steps)
            .map(|i| f(lo + (i as f64 + 0.5) * dx) * dx)
            .sum::<f64>()
    };
    let mut best = (1usize, num_perm.max(1), f64::INFINITY);
    for b in 1..=num_perm.max(1) {
        for r in 1..=num_perm.max(1) / b {
            let fp = integrate(0.0, t, &|s| p(s, b, r));
            let fn_ = integrate(t, 1.0, &|s| 1.0 - p(s, b, r));
            let err = w * fp + (1.0 - w) * fn_;
            if err < best.2 {
                best = (b, r, err);
            }
        }
    }
    (best.0, best.1)
}

/// The false-positive weight the audit uses when it picks bands (candidates are verified).
pub const VERIFIED_FP_WEIGHT: f64 = 0.1;

/// The hash of band `band` of a signature.
pub fn band_hash(sig: &[u32], band: usize, rows: usize) -> u64 {
    let mut h = mix(band as u64 ^ K);
    for &v in &sig[band * rows..(band + 1) * rows] {
        h = (h ^ u64::from(v)).wrapping_mul(K).rotate_left(27);
    }
    mix(h)
}

/// Union-find over row indices.
#[derive(Debug, Default)]
pub struct Dsu {
    parent: Vec<u32>,
}

impl Dsu {
    pub fn push(&mut self) -> u32 {
        let i = self.parent.len() as u32;
        self.parent.push(i);
        i
    }
    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = p;
        }
        x
    }
    /// Joins two sets; the smaller index stays the root (the earliest row).
    pub fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi as usize] = lo;
        }
    }
}
