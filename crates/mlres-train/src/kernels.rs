//! Dense f32 kernels. Loops are written in i-k-j order over contiguous slices so that the
//! compiler vectorises the inner `y += a * x` loops. On x86-64 CPUs with AVX2 the same code is
//! compiled a second time with AVX2 enabled and selected at run time. No reductions are
//! reordered, so both paths give bit-identical results.

#[inline(always)]
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * *xi;
    }
}

/// y (n×m) (+)= x (n×k) · w (k×m).
#[inline(always)]
fn matmul_impl(x: &[f32], w: &[f32], y: &mut [f32], n: usize, k: usize, m: usize, acc: bool) {
    let x = &x[..n * k];
    let w = &w[..k * m];
    let y = &mut y[..n * m];
    for (xr, yr) in x.chunks_exact(k).zip(y.chunks_exact_mut(m)) {
        if !acc {
            yr.fill(0.0);
        }
        for (a, wr) in xr.iter().zip(w.chunks_exact(m)) {
            axpy(*a, wr, yr);
        }
    }
}

/// dw (k×m) += x^T (k×n) · dy (n×m).
#[inline(always)]
fn matmul_at_impl(x: &[f32], dy: &[f32], dw: &mut [f32], n: usize, k: usize, m: usize) {
    let x = &x[..n * k];
    let dy = &dy[..n * m];
    let dw = &mut dw[..k * m];
    for (xr, dyr) in x.chunks_exact(k).zip(dy.chunks_exact(m)) {
        for (a, dwr) in xr.iter().zip(dw.chunks_exact_mut(m)) {
            axpy(*a, dyr, dwr);
        }
    }
}

macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident => $imp:ident ( $($arg:ident : $ty:ty),* )) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: `avx2::$name` only requires the AVX2 target feature, whose
                    // presence on this CPU was verified at run time just above.
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
    #[target_feature(enable = "avx2")]
    pub(super) fn matmul(
        x: &[f32],
        w: &[f32],
        y: &mut [f32],
        n: usize,
        k: usize,
        m: usize,
        acc: bool,
    ) {
        super::matmul_impl(x, w, y, n, k, m, acc)
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn matmul_at(x: &[f32], dy: &[f32], dw: &mut [f32], n: usize, k: usize, m: usize) {
        super::matmul_at_impl(x, dy, dw, n, k, m)
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
