//! Small dense linear algebra on row-major `Vec<f64>`: the systems here are tiny (the ARMA
//! autocovariance equations, at most ~60 unknowns, and Hessians of ≤ 15 parameters), so
//! Gaussian elimination with partial pivoting is accurate and faster than pulling in a BLAS.

/// Solves `A x = b` in place (`a` is `n × n` row-major, overwritten; `b` becomes `x`).
/// Returns `false` when the matrix is numerically singular.
pub(crate) fn solve(a: &mut [f64], b: &mut [f64], n: usize) -> bool {
    // Pivots below this fraction of the largest entry are treated as zero: with entries of order
    // one, 1e-13 is a few hundred ulps, beyond which the solution is noise.
    let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if !(scale.is_finite() && scale > 0.0) {
        return false;
    }
    let tiny = scale * 1e-13;
    for col in 0..n {
        let mut piv = col;
        let mut best = a[col * n + col].abs();
        for row in col + 1..n {
            let v = a[row * n + col].abs();
            if v > best {
                best = v;
                piv = row;
            }
        }
        if best <= tiny {
            return false;
        }
        if piv != col {
            for k in 0..n {
                a.swap(col * n + k, piv * n + k);
            }
            b.swap(col, piv);
        }
        let d = a[col * n + col];
        for row in col + 1..n {
            let f = a[row * n + col] / d;
            if f == 0.0 {
                continue;
            }
            for k in col..n {
                a[row * n + k] -= f * a[col * n + k];
            }
            b[row] -= f * b[col];
        }
    }
    for col in (0..n).rev() {
        let mut s = b[col];
        for k in col + 1..n {
            s -= a[col * n + k] * b[k];
        }
        b[col] = s / a[col * n + col];
    }
    b.iter().all(|v| v.is_finite())
}

/// Inverse of an `n × n` matrix, or `None` when singular.
pub(crate) fn invert(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut out = vec![0.0; n * n];
    for j in 0..n {
        let mut m = a.to_vec();
        let mut e = vec![0.0; n];
        e[j] = 1.0;
        if !solve(&mut m, &mut e, n) {
            return None;
        }
        for i in 0..n {
            out[i * n + j] = e[i];
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_and_inverts() {
        let a = [4.0, 1.0, 2.0, 1.0, 3.0, 0.5, 2.0, 0.5, 5.0];
        let mut m = a.to_vec();
        let mut b = vec![1.0, 2.0, 3.0];
        assert!(solve(&mut m, &mut b, 3));
        for i in 0..3 {
            let ax: f64 = (0..3).map(|k| a[i * 3 + k] * b[k]).sum();
            assert!((ax - [1.0, 2.0, 3.0][i]).abs() < 1e-12);
        }
        let inv = invert(&a, 3).expect("invertible");
        for i in 0..3 {
            for j in 0..3 {
                let v: f64 = (0..3).map(|k| a[i * 3 + k] * inv[k * 3 + j]).sum();
                assert!((v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        assert!(invert(&[1.0, 2.0, 2.0, 4.0], 2).is_none());
    }
}
