//! Limited-memory BFGS with a backtracking (Armijo) line search, for smooth convex losses such as
//! regularised logistic and ridge regression. Same stopping rule as scikit-learn's `lbfgs`
//! solver: the largest gradient component falls to `tol`, or `max_iter` iterations.

/// Solver settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lbfgs {
    /// Most iterations (scikit-learn's `max_iter`, default 100).
    pub max_iter: usize,
    /// Stop when `max |∇loss| ≤ tol` (scikit-learn's `tol`, default 1e-4).
    pub tol: f64,
    /// Correction pairs kept (scikit-learn / SciPy use 10).
    pub memory: usize,
}

impl Default for Lbfgs {
    fn default() -> Self {
        Lbfgs {
            max_iter: 100,
            tol: 1e-4,
            memory: 10,
        }
    }
}

/// Where the solver stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct Minimum {
    pub x: Vec<f64>,
    pub loss: f64,
    pub iterations: usize,
    /// Whether the gradient criterion was met (false: stopped by `max_iter` or a failed search).
    pub converged: bool,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_abs(g: &[f64]) -> f64 {
    g.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// Curvature pairs (s, y, 1/(s·y)), oldest first.
type Pairs = std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)>;

/// The two-loop recursion: `d = −H·g`, H the inverse Hessian the pairs approximate.
fn direction(pairs: &Pairs, g: &[f64], d: &mut [f64]) {
    d.iter_mut().zip(g).for_each(|(d, g)| *d = -g);
    let mut alphas = Vec::with_capacity(pairs.len());
    for (s, y, rho) in pairs.iter().rev() {
        let a = rho * dot(s, d);
        d.iter_mut().zip(y).for_each(|(d, y)| *d -= a * y);
        alphas.push(a);
    }
    let gamma = match pairs.back() {
        Some((s, y, _)) => dot(s, y) / dot(y, y),
        None => 1.0 / dot(g, g).sqrt().max(1.0),
    };
    d.iter_mut().for_each(|d| *d *= gamma);
    for ((s, y, rho), a) in pairs.iter().zip(alphas.iter().rev()) {
        let b = rho * dot(y, d);
        d.iter_mut().zip(s).for_each(|(d, s)| *d += (a - b) * s);
    }
}

/// Halve the step from 1 until the loss at `x + step·d` meets the Armijo condition (at most 50
/// times); the accepted loss, with `x_new` and `g_new` at that point.
fn backtrack(
    loss: &mut impl FnMut(&[f64], &mut [f64]) -> f64,
    (x, fx, d, slope): (&[f64], f64, &[f64], f64),
    x_new: &mut [f64],
    g_new: &mut [f64],
) -> Option<f64> {
    let mut step = 1.0;
    for _ in 0..50 {
        x_new
            .iter_mut()
            .zip(x)
            .zip(d)
            .for_each(|((n, x), d)| *n = x + step * d);
        let f = loss(x_new, g_new);
        if f.is_finite() && f <= fx + 1e-4 * step * slope {
            return Some(f);
        }
        step *= 0.5;
    }
    None
}

/// Minimise `loss` from `x0`. `loss(x, grad)` returns the loss at `x` and writes its gradient;
/// `on_iter(iteration, loss)` is called after each iteration (for progress reports).
pub fn lbfgs(
    x0: Vec<f64>,
    opts: Lbfgs,
    mut loss: impl FnMut(&[f64], &mut [f64]) -> f64,
    mut on_iter: impl FnMut(usize, f64),
) -> Minimum {
    let dim = x0.len();
    let mut x = x0;
    let mut g = vec![0.0; dim];
    let mut fx = loss(&x, &mut g);
    let mut pairs: Pairs = Default::default();
    let (mut x_new, mut g_new, mut d) = (vec![0.0; dim], vec![0.0; dim], vec![0.0; dim]);
    let mut iterations = 0;
    while iterations < opts.max_iter {
        if max_abs(&g) <= opts.tol {
            return Minimum {
                x,
                loss: fx,
                iterations,
                converged: true,
            };
        }
        direction(&pairs, &g, &mut d);
        let mut slope = dot(&g, &d);
        if slope >= 0.0 {
            // Not a descent direction (numerical trouble): restart from steepest descent.
            pairs.clear();
            d.iter_mut().zip(&g).for_each(|(d, g)| *d = -g);
            slope = -dot(&g, &g);
        }
        // Backtracking until the Armijo condition holds.
        let accepted = backtrack(&mut loss, (&x, fx, &d, slope), &mut x_new, &mut g_new);
        let Some(f) = accepted else {
            return Minimum {
                x,
                loss: fx,
                iterations,
                converged: false,
            };
        };
        let s: Vec<f64> = x_new.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 {
            if pairs.len() == opts.memory {
                pairs.pop_front();
            }
            pairs.push_back((s, y, 1.0 / sy));
        }
        std::mem::swap(&mut x, &mut x_new);
        std::mem::swap(&mut g, &mut g_new);
        let change = (fx - f).abs();
        fx = f;
        iterations += 1;
        on_iter(iterations, fx);
        if change <= f64::EPSILON * fx.abs().max(1.0) {
            break;
        }
    }
    let converged = max_abs(&g) <= opts.tol;
    Minimum {
        x,
        loss: fx,
        iterations,
        converged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimises_a_badly_scaled_quadratic() {
        // f(x) = Σ cᵢ (xᵢ − i)², minimum at xᵢ = i.
        let c = [1.0, 100.0, 0.01, 5.0];
        let f = |x: &[f64], g: &mut [f64]| {
            let mut v = 0.0;
            for i in 0..4 {
                let r = x[i] - i as f64;
                v += c[i] * r * r;
                g[i] = 2.0 * c[i] * r;
            }
            v
        };
        let opts = Lbfgs {
            tol: 1e-8,
            ..Default::default()
        };
        let mut seen = 0;
        let m = lbfgs(vec![10.0; 4], opts, f, |i, _| seen = i);
        assert!(m.converged, "{m:?}");
        assert_eq!(seen, m.iterations);
        for i in 0..4 {
            assert!((m.x[i] - i as f64).abs() < 1e-6, "{m:?}");
        }
    }

    #[test]
    fn minimises_rosenbrock() {
        let f = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        };
        let opts = Lbfgs {
            max_iter: 500,
            tol: 1e-8,
            memory: 10,
        };
        let m = lbfgs(vec![-1.2, 1.0], opts, f, |_, _| {});
        assert!(m.converged, "{m:?}");
        assert!(
            (m.x[0] - 1.0).abs() < 1e-5 && (m.x[1] - 1.0).abs() < 1e-5,
            "{m:?}"
        );
    }

    #[test]
    fn stops_at_max_iter() {
        let f = |x: &[f64], g: &mut [f64]| {
            g[0] = 2.0 * x[0];
            x[0] * x[0]
        };
        let opts = Lbfgs {
            max_iter: 0,
            ..Default::default()
        };
        let m = lbfgs(vec![3.0], opts, f, |_, _| {});
        assert!(!m.converged);
        assert_eq!((m.x[0], m.iterations), (3.0, 0));
    }
}
