//! Dense f32 kernels. Loops are written in i-k-j order over contiguous slices so that the
//! compiler vectorises them; matrix products use a 4×16 register-blocked tile. On x86-64 CPUs
//! with AVX2+FMA the same code is compiled a second time with those features (fused
//! multiply-add in the products) and selected at run time. Results are deterministic on a given
//! machine; the FMA and portable paths may differ in the last bits.

#[inline(always)]
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * *xi;
    }
}

const TR: usize = 4;
const TC: usize = 16;

/// Register-blocked C (rows×m) (+)= A (rows×inner) · B (inner×m), where `a(r, p)` reads A.
/// Each C element accumulates over `p` in increasing order, starting from its old value when
/// `acc` (else from 0), so the result does not depend on the blocking.
#[inline(always)]
fn gemm<const FMA: bool>(
    a: impl Fn(usize, usize) -> f32,
    rows: usize,
    inner: usize,
    b: &[f32],
    m: usize,
    c: &mut [f32],
    acc: bool,
) {
    let b = &b[..inner * m];
    let c = &mut c[..rows * m];
    let mut r0 = 0;
    while r0 + TR <= rows {
        tile_rows::<TR, FMA>(&a, r0, inner, b, m, c, acc);
        r0 += TR;
    }
    while r0 < rows {
        tile_rows::<1, FMA>(&a, r0, inner, b, m, c, acc);
        r0 += 1;
    }
}

#[inline(always)]
fn tile_rows<const R: usize, const FMA: bool>(
    a: &impl Fn(usize, usize) -> f32,
    r0: usize,
    inner: usize,
    b: &[f32],
    m: usize,
    c: &mut [f32],
    acc: bool,
) {
    let mut j0 = 0;
    while j0 + TC <= m {
        let mut t = [[0f32; TC]; R];
        if acc {
            for (r, tr) in t.iter_mut().enumerate() {
                tr.copy_from_slice(&c[(r0 + r) * m + j0..][..TC]);
            }
        }
        for p in 0..inner {
            let br: &[f32; TC] = b[p * m + j0..][..TC].try_into().unwrap_or(&[0.0; TC]);
            for (r, tr) in t.iter_mut().enumerate() {
                let av = a(r0 + r, p);
                for (tc, bc) in tr.iter_mut().zip(br) {
                    *tc = madd::<FMA>(av, *bc, *tc);
                }
            }
        }
        for (r, tr) in t.iter().enumerate() {
            c[(r0 + r) * m + j0..][..TC].copy_from_slice(tr);
        }
        j0 += TC;
    }
    if j0 < m {
        let w = m - j0;
        for r in 0..R {
            let cr = &mut c[(r0 + r) * m + j0..][..w];
            if !acc {
                cr.fill(0.0);
            }
            for p in 0..inner {
                let av = a(r0 + r, p);
                for (cc, bc) in cr.iter_mut().zip(&b[p * m + j0..][..w]) {
                    *cc = madd::<FMA>(av, *bc, *cc);
                }
            }
        }
    }
}

/// `a·b + c`, fused (one rounding) when `FMA`; only instantiate `FMA = true` inside functions
/// compiled with the `fma` target feature (otherwise it becomes a slow libm call).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// y (n×m) (+)= x (n×k) · w (k×m).
#[inline(always)]
fn matmul_gen<const FMA: bool>(
    x: &[f32],
    w: &[f32],
    y: &mut [f32],
    n: usize,
    k: usize,
    m: usize,
    acc: bool,
) {
    let x = &x[..n * k];
    gemm::<FMA>(|r, p| x[r * k + p], n, k, w, m, y, acc);
}

/// dw (k×m) += x^T (k×n) · dy (n×m).
#[inline(always)]
fn matmul_at_gen<const FMA: bool>(
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    n: usize,
    k: usize,
    m: usize,
) {
    let x = &x[..n * k];
    gemm::<FMA>(|r, p| x[p * k + r], k, n, dy, m, dw, true);
}

fn matmul_impl(x: &[f32], w: &[f32], y: &mut [f32], n: usize, k: usize, m: usize, acc: bool) {
    matmul_gen::<false>(x, w, y, n, k, m, acc)
}

fn matmul_at_impl(x: &[f32], dy: &[f32], dw: &mut [f32], n: usize, k: usize, m: usize) {
    matmul_at_gen::<false>(x, dy, dw, n, k, m)
}

macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident => $imp:ident ( $($arg:ident : $ty:ty),* )) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: `avx2::$name` only requires the AVX2 and FMA target features,
                    // whose presence on this CPU was verified at run time just above.
                    unsafe { avx2::$name($($arg),*) };
                    return;
                }
            }
            $imp($($arg),*)
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn matmul(
        x: &[f32],
        w: &[f32],
        y: &mut [f32],
        n: usize,
        k: usize,
        m: usize,
        acc: bool,
    ) {
        super::matmul_gen::<true>(x, w, y, n, k, m, acc)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn matmul_at(x: &[f32], dy: &[f32], dw: &mut [f32], n: usize, k: usize, m: usize) {
        super::matmul_at_gen::<true>(x, dy, dw, n, k, m)
    }
}

dispatch!(
    /// `y = x·w` (or `y += x·w` when `acc`), x: n×k, w: k×m, y: n×m, all row-major.
    matmul => matmul_impl(x: &[f32], w: &[f32], y: &mut [f32], n: usize, k: usize, m: usize, acc: bool)
);
dispatch!(
    /// `dw += xᵀ·dy`, x: n×k, dy: n×m, dw: k×m.
    matmul_at => matmul_at_impl(x: &[f32], dy: &[f32], dw: &mut [f32], n: usize, k: usize, m: usize)
);

/// Transposes a k×m row-major matrix into `out` (m×k).
pub fn transpose(w: &[f32], k: usize, m: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(k * m, 0.0);
    for i in 0..k {
        for j in 0..m {
            out[j * k + i] = w[i * m + j];
        }
    }
}

/// `dx (+)= dy·wᵀ`, dy: n×m, w: k×m, dx: n×k. `scratch` holds the transpose.
#[allow(clippy::too_many_arguments)]
pub fn matmul_bt(
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
    n: usize,
    k: usize,
    m: usize,
    acc: bool,
    scratch: &mut Vec<f32>,
) {
    transpose(w, k, m, scratch);
    matmul(dy, scratch, dx, n, m, k, acc);
}

/// Plain dot product (sequential order).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        s += x * y;
    }
    s
}

/// `y += a·x`.
#[inline]
pub fn add_scaled(a: f32, x: &[f32], y: &mut [f32]) {
    axpy(a, x, y)
}

/// exp(x) for f32 without libm (Cody-Waite range reduction + degree-6 polynomial, relative
/// error ~2e-7); branch-free so loops over it vectorise.
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let k = (x * LOG2E + MAGIC) - MAGIC;
    let r = x - k * LN2_HI - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits(((k as i32 + 127) as u32) << 23);
    p * scale
}

/// tanh via [`fast_exp`].
#[inline(always)]
pub fn fast_tanh(y: f32) -> f32 {
    let y = y.clamp(-9.0, 9.0);
    let e = fast_exp(2.0 * y);
    (e - 1.0) / (e + 1.0)
}

const GELU_C: f32 = 0.797_884_6; // sqrt(2/pi)

/// GELU (tanh form): `g = 0.5·z·(1 + t)` with `t = tanh(c·(z + 0.044715·z³))`, saved in `t`.
#[inline(always)]
fn gelu_fwd_impl(z: &[f32], g: &mut [f32], t: &mut [f32]) {
    for ((zi, gi), ti) in z.iter().zip(g.iter_mut()).zip(t.iter_mut()) {
        let x = *zi;
        let th = fast_tanh(GELU_C * (x + 0.044715 * x * x * x));
        *ti = th;
        *gi = 0.5 * x * (1.0 + th);
    }
}

/// `dz *= gelu'(z)` using the saved `t`.
#[inline(always)]
fn gelu_bwd_impl(z: &[f32], t: &[f32], dz: &mut [f32]) {
    for ((zi, ti), di) in z.iter().zip(t).zip(dz.iter_mut()) {
        let (x, th) = (*zi, *ti);
        let gp =
            0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * GELU_C * (1.0 + 3.0 * 0.044715 * x * x);
        *di *= gp;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2_elem {
    #[target_feature(enable = "avx2")]
    pub(super) fn gelu_fwd(z: &[f32], g: &mut [f32], t: &mut [f32]) {
        super::gelu_fwd_impl(z, g, t)
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn gelu_bwd(z: &[f32], t: &[f32], dz: &mut [f32]) {
        super::gelu_bwd_impl(z, t, dz)
    }
}

/// GELU forward (see [`gelu_fwd_impl`]).
pub fn gelu_fwd(z: &[f32], g: &mut [f32], t: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: requires only AVX2, verified at run time just above.
            unsafe { avx2_elem::gelu_fwd(z, g, t) };
            return;
        }
    }
    gelu_fwd_impl(z, g, t)
}

/// GELU backward: `dz *= gelu'(z)`.
pub fn gelu_bwd(z: &[f32], t: &[f32], dz: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: requires only AVX2, verified at run time just above.
            unsafe { avx2_elem::gelu_bwd(z, t, dz) };
            return;
        }
    }
    gelu_bwd_impl(z, t, dz)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], w: &[f32], n: usize, k: usize, m: usize) -> Vec<f64> {
        let mut y = vec![0.0f64; n * m];
        for i in 0..n {
            for j in 0..m {
                for p in 0..k {
                    y[i * m + j] += x[i * k + p] as f64 * w[p * m + j] as f64;
                }
            }
        }
        y
    }

    fn data(len: usize, seed: u64) -> Vec<f32> {
        let mut r = crate::rng::Rng::new(seed);
        (0..len).map(|_| r.normal() as f32).collect()
    }

    #[test]
    fn matmuls_match_naive_including_ragged_tiles() {
        for &(n, k, m) in &[(7, 5, 259), (4, 16, 16), (9, 33, 17), (1, 3, 2)] {
            let x = data(n * k, 1);
            let w = data(k * m, 2);
            let want = naive(&x, &w, n, k, m);
            for (path, y) in [
                ("dispatch", {
                    let mut y = vec![1.0; n * m];
                    matmul(&x, &w, &mut y, n, k, m, false);
                    y
                }),
                ("portable", {
                    let mut y = vec![1.0; n * m];
                    matmul_impl(&x, &w, &mut y, n, k, m, false);
                    y
                }),
            ] {
                for (a, b) in y.iter().zip(&want) {
                    assert!(
                        (*a as f64 - b).abs() < 1e-4,
                        "{path} {n}x{k}x{m}: {a} vs {b}"
                    );
                }
            }
            // Accumulating form adds to the old contents.
            let mut y = vec![2.0; n * m];
            matmul(&x, &w, &mut y, n, k, m, true);
            for (a, b) in y.iter().zip(&want) {
                assert!((*a as f64 - (b + 2.0)).abs() < 1e-4);
            }
            // dw += xᵀ·dy with x: k'×... reuse: treat x as (n×k), dy as (n×m).
            let dy = data(n * m, 3);
            let mut dw = vec![0.5; k * m];
            matmul_at(&x, &dy, &mut dw, n, k, m);
            for p in 0..k {
                for j in 0..m {
                    let mut s = 0.5f64;
                    for i in 0..n {
                        s += x[i * k + p] as f64 * dy[i * m + j] as f64;
                    }
                    assert!((dw[p * m + j] as f64 - s).abs() < 1e-4);
                }
            }
            // dx = dy·wᵀ.
            let mut dx = vec![0.0; n * k];
            let mut scratch = Vec::new();
            matmul_bt(&dy, &w, &mut dx, n, k, m, false, &mut scratch);
            for i in 0..n {
                for p in 0..k {
                    let s: f64 = (0..m)
                        .map(|j| dy[i * m + j] as f64 * w[p * m + j] as f64)
                        .sum();
                    assert!((dx[i * k + p] as f64 - s).abs() < 1e-3);
                }
            }
        }
    }

    #[test]
    fn fast_exp_and_tanh_are_accurate() {
        let mut x = -80.0f32;
        while x < 80.0 {
            let want = (x as f64).exp();
            let got = fast_exp(x) as f64;
            assert!(
                ((got - want) / want).abs() < 1e-6,
                "exp({x}) = {got}, want {want}"
            );
            let tw = (x as f64 * 0.1).tanh();
            let tg = fast_tanh(x * 0.1) as f64;
            assert!(
                (tg - tw).abs() < 1e-6,
                "tanh({}) = {tg}, want {tw}",
                x * 0.1
            );
            x += 0.137;
        }
    }

    #[test]
    fn gelu_matches_formula_and_derivative() {
        let z: Vec<f32> = (-60..60).map(|i| i as f32 * 0.1).collect();
        let mut g = vec![0.0; z.len()];
        let mut t = vec![0.0; z.len()];
        gelu_fwd(&z, &mut g, &mut t);
        let mut d = vec![1.0; z.len()];
        gelu_bwd(&z, &t, &mut d);
        let f = |x: f64| 0.5 * x * (1.0 + (0.797_884_560_8 * (x + 0.044715 * x * x * x)).tanh());
        for i in 0..z.len() {
            let x = z[i] as f64;
            assert!((g[i] as f64 - f(x)).abs() < 1e-5);
            let num = (f(x + 1e-5) - f(x - 1e-5)) / 2e-5;
            assert!((d[i] as f64 - num).abs() < 1e-4, "gelu'({x})");
        }
    }
}
