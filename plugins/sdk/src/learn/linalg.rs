//! Dense symmetric positive-definite solves (the normal equations of ridge regression).

/// Solve `a · x = b` for a symmetric positive-definite `n × n` matrix `a` (row-major) by
/// Cholesky decomposition; `None` if `a` is not positive definite.
pub fn cholesky_solve(a: &[f64], b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    assert_eq!(a.len(), n * n, "a is n × n");
    // a = L·Lᵀ, L lower-triangular.
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let d = a[i * n + i] - s;
                if d <= 0.0 || !d.is_finite() {
                    return None;
                }
                l[i * n + i] = d.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - s) / l[j * n + j];
            }
        }
    }
    // L·y = b, then Lᵀ·x = y.
    let mut y = vec![0.0; n];
    for i in 0..n {
        let s: f64 = (0..i).map(|k| l[i * n + k] * y[k]).sum();
        y[i] = (b[i] - s) / l[i * n + i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[k * n + i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i * n + i];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_a_known_system() {
        // [[4, 2], [2, 3]] · [1, -2] = [0, -4]
        let x = cholesky_solve(&[4.0, 2.0, 2.0, 3.0], &[0.0, -4.0]).unwrap();
        assert!(
            (x[0] - 1.0).abs() < 1e-12 && (x[1] + 2.0).abs() < 1e-12,
            "{x:?}"
        );
        assert!(
            cholesky_solve(&[1.0, 2.0, 2.0, 1.0], &[1.0, 1.0]).is_none(),
            "indefinite"
        );
    }
}
