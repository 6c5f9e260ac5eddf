//! `logistic-regression` — an aimass trainer: L2-regularised logistic regression, binary or
//! multinomial, fitted with L-BFGS and exported as ONNX.
//!
//! # Config
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `label` | required | integer class column |
//! | `features` | every numeric column but the label | comma-separated feature columns |
//! | `c` | `1.0` | inverse regularisation strength, as scikit-learn's `C` |
//! | `max_iter` | `100` | L-BFGS iterations at most |
//! | `tol` | `1e-4` | stop when the largest gradient component is this small |
//! | `seed` | — | accepted and unused: the fit is deterministic |
//! | `task` | `classification` | set by the host; `regression` is an invalid-config error |
//!
//! # Model
//!
//! The objective is scikit-learn's: `mean(cross-entropy) + ‖W‖² / (2·C·n)` (the intercept is not
//! penalised), two classes with one weight vector (sigmoid), more with one per class (softmax).
//! Unlike scikit-learn it is minimised over standardised features, which makes L-BFGS converge
//! in a few dozen iterations on raw, badly scaled data; the scaling is folded back into the
//! exported weights, so the model takes raw features and the penalty applies to the weights of
//! standardised features.
//!
//! The ONNX graph is `MatMul → Add` over the FP32 input `features` `[N, F]`, then for three or
//! more classes `Softmax` (`probabilities`, FP32 `[N, K]`) and `ArgMax → Gather` (`label`, INT64
//! `[N]`), and for two classes the same outputs as a `Sigmoid` pair and `Greater → Cast → Gather`
//! (tract runs those several times faster); see `aimass_plugin_sdk::learn::export`. Metadata: `task`, `features`, `label`, `classes`,
//! `iterations`, `converged`, `train_loss`.

use aimass_plugin_sdk::learn::{self, COMMON_KEYS, Classes, Lbfgs, Scaling, Xy, read_xy};
use aimass_plugin_sdk::{Config, Dataset, Error, Model, Result, Trainer, export_trainer, progress};

pub struct LogisticRegression;

impl Trainer for LogisticRegression {
    fn train(data: &Dataset<'_>, config: &Config) -> Result<Model> {
        let settings = Settings::from_config(config)?;
        learn::require_task(config, "classification")?;
        let xy = read_xy(data, config)?;
        let fit = fit(xy, &settings)?;
        Ok(fit.model())
    }
}

export_trainer!(LogisticRegression);

/// The hyperparameters.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub c: f64,
    pub solver: Lbfgs,
}

impl Settings {
    pub fn from_config(config: &Config) -> Result<Settings> {
        let mut keys = COMMON_KEYS.to_vec();
        keys.extend(["c", "max_iter", "tol"]);
        config.check_keys(&keys)?;
        let c: f64 = config.parse_or("c", 1.0)?;
        if !(c > 0.0 && c.is_finite()) {
            return Err(Error::invalid_config(format!(
                "`c` must be a positive number, got {c}"
            )));
        }
        let tol: f64 = config.parse_or("tol", 1e-4)?;
        if tol.is_nan() || tol <= 0.0 {
            return Err(Error::invalid_config(format!(
                "`tol` must be positive, got {tol}"
            )));
        }
        let solver = Lbfgs {
            max_iter: config.parse_or("max_iter", 100)?,
            tol,
            ..Lbfgs::default()
        };
        Ok(Settings { c, solver })
    }
}

/// A fitted model over raw features: `w` is `F × K'` row-major, `K' = 1` for binary tasks.
#[derive(Debug, Clone)]
pub struct Fit {
    pub features: Vec<String>,
    pub label: String,
    pub classes: Classes,
    pub w: Vec<f64>,
    pub b: Vec<f64>,
    pub iterations: usize,
    pub converged: bool,
    pub loss: f64,
}

impl Fit {
    pub fn model(&self) -> Model {
        let mut g = learn::export::linear_classifier(
            "logistic-regression",
            &self.features,
            &self.label,
            &self.classes,
            &self.w,
            &self.b,
        );
        let metadata = vec![
            ("task".to_string(), "classification".to_string()),
            ("features".to_string(), self.features.join(",")),
            ("label".to_string(), self.label.clone()),
            ("classes".to_string(), self.classes.to_csv()),
            ("iterations".to_string(), self.iterations.to_string()),
            ("converged".to_string(), self.converged.to_string()),
            ("train_loss".to_string(), format!("{:.6}", self.loss)),
        ];
        for (k, v) in &metadata[4..] {
            g.metadata(k, v);
        }
        Model {
            onnx: g.build(),
            metadata,
        }
    }
}

/// Fit the model to `xy`.
pub fn fit(mut xy: Xy, settings: &Settings) -> Result<Fit> {
    let (classes, target) = Classes::encode(&xy.y, &xy.label)?;
    let scaling = Scaling::fit(&xy);
    scaling.apply(&mut xy.x);
    let (n, f) = (xy.n, xy.f);
    // Binary: one column of weights (the logit of the second class); otherwise one per class.
    let k = if classes.len() == 2 { 1 } else { classes.len() };
    let penalty = 1.0 / (settings.c * n as f64);
    let max_iter = settings.solver.max_iter as u64;
    let loss = |p: &[f64], g: &mut [f64]| objective(&xy.x, &target, (n, f, k), penalty, p, g);
    let min = learn::lbfgs(vec![0.0; (f + 1) * k], settings.solver, loss, |i, l| {
        progress(i as u64, max_iter, format!("iteration {i}, loss {l:.5}"))
    });
    let (w, b) = min.x.split_at(f * k);
    let (mut w, mut b) = (w.to_vec(), b.to_vec());
    scaling.unfold(&mut w, &mut b);
    Ok(Fit {
        features: xy.features,
        label: xy.label,
        classes,
        w,
        b,
        iterations: min.iterations,
        converged: min.converged,
        loss: min.loss,
    })
}

/// The mean log-loss plus the L2 penalty at parameters `p` (`f × k` weights, then `k` biases),
/// with its gradient written to `g`.
fn objective(
    x: &[f64],
    target: &[usize],
    (n, f, k): (usize, usize, usize),
    penalty: f64,
    p: &[f64],
    g: &mut [f64],
) -> f64 {
    let (w, b) = p.split_at(f * k);
    g.iter_mut().for_each(|v| *v = 0.0);
    let mut total = 0.0;
    let mut z = vec![0.0; k];
    for i in 0..n {
        let row = &x[i * f..(i + 1) * f];
        if k == 1 {
            // The binary case is most of the work on large data: a dot product and an axpy
            // per row, in four independent lanes so the loops vectorise.
            let y = target[i] as f64;
            let zi = b[0] + dot(row, w);
            total += softplus(zi) - y * zi;
            let r = sigmoid(zi) - y;
            let (gw, gb) = g.split_at_mut(f);
            axpy(r, row, gw);
            gb[0] += r;
            continue;
        }
        z.copy_from_slice(b);
        for (x, wr) in row.iter().zip(w.chunks_exact(k)) {
            z.iter_mut().zip(wr).for_each(|(z, w)| *z += x * w);
        }
        total += softmax_residual(&mut z, target[i]);
        let (gw, gb) = g.split_at_mut(f * k);
        for (x, gr) in row.iter().zip(gw.chunks_exact_mut(k)) {
            gr.iter_mut().zip(&z).for_each(|(g, r)| *g += x * r);
        }
        gb.iter_mut().zip(&z).for_each(|(g, r)| *g += r);
    }
    let inv_n = 1.0 / n as f64;
    let (gw, gb) = g.split_at_mut(f * k);
    gw.iter_mut()
        .zip(w)
        .for_each(|(g, w)| *g = *g * inv_n + penalty * w);
    gb.iter_mut().for_each(|g| *g *= inv_n);
    total * inv_n + 0.5 * penalty * w.iter().map(|v| v * v).sum::<f64>()
}

/// One row of the multinomial loss: `z` (the row's logits) becomes r = ∂loss/∂z; returns
/// −log pₜ, by log-sum-exp (−log pₜ = log Σ e^(z−max) − (zₜ − max), finite however far apart).
fn softmax_residual(z: &mut [f64], t: usize) -> f64 {
    let max = z.iter().fold(f64::NEG_INFINITY, |m, v| m.max(*v));
    let zt = z[t] - max;
    let sum: f64 = z
        .iter_mut()
        .map(|v| {
            *v = (*v - max).exp();
            *v
        })
        .sum();
    z.iter_mut().for_each(|v| *v /= sum);
    z[t] -= 1.0;
    sum.ln() - zt
}

/// `Σ aᵢ·bᵢ` with four partial sums (a fixed order, so results do not depend on the target).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for j in 0..4 {
            acc[j] += x[j] * y[j];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// `y += a·x`.
fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + eᶻ)` without overflow.
fn softplus(z: f64) -> f64 {
    if z > 30.0 { z } else { z.exp().ln_1p() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(c: f64) -> Settings {
        Settings {
            c,
            solver: Lbfgs {
                max_iter: 500,
                tol: 1e-8,
                memory: 10,
            },
        }
    }

    /// Probability of class 1 under a binary fit.
    fn p1(fit: &Fit, row: &[f64]) -> f64 {
        sigmoid(fit.b[0] + row.iter().zip(&fit.w).map(|(x, w)| x * w).sum::<f64>())
    }

    #[test]
    fn gradient_vanishes_at_the_optimum_of_raw_badly_scaled_data() {
        // Overlapping classes on features of very different scales: a unique optimum exists.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..200 {
            let t = i as f64 / 200.0;
            x.extend([t * 1000.0, (i % 7) as f64 * 0.001]);
            y.push(if (t + 0.3 * ((i * 37 % 11) as f64 / 11.0 - 0.5)) > 0.5 {
                1.0
            } else {
                0.0
            });
        }
        let fit = fit(Xy::new(x.clone(), y.clone(), 2), &settings(10.0)).unwrap();
        assert!(fit.converged, "{fit:?}");
        assert_eq!(fit.classes.0, [0, 1]);
        // Stationarity on the standardised problem ⇒ Σ(p − y) = 0 on the raw data too.
        let residual: f64 = (0..200)
            .map(|i| p1(&fit, &x[2 * i..2 * i + 2]) - y[i])
            .sum();
        assert!(residual.abs() < 1e-4, "{residual}");
        // The feature that decides carries a positive weight.
        assert!(fit.w[0] > 0.0);
    }

    #[test]
    fn stronger_regularisation_shrinks_weights() {
        let x: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let y: Vec<f64> = (0..100).map(|i| if i >= 50 { 1.0 } else { 0.0 }).collect();
        let loose = fit(Xy::new(x.clone(), y.clone(), 1), &settings(100.0)).unwrap();
        let tight = fit(Xy::new(x, y, 1), &settings(0.01)).unwrap();
        assert!(
            loose.w[0] > tight.w[0] && tight.w[0] > 0.0,
            "{loose:?} {tight:?}"
        );
    }

    #[test]
    fn multinomial_separates_three_clusters() {
        let centres = [(0.0, 0.0), (5.0, 0.0), (0.0, 5.0)];
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for (c, (cx, cy)) in centres.iter().enumerate() {
            for j in 0..30 {
                let d = (j as f64 / 30.0 - 0.5) * 2.0;
                x.extend([cx + d, cy - d * 0.5]);
                y.push(c as f64 * 10.0); // classes 0, 10, 20
            }
        }
        let fit = fit(Xy::new(x.clone(), y.clone(), 2), &settings(1.0)).unwrap();
        assert_eq!(fit.classes.0, [0, 10, 20]);
        assert_eq!(fit.w.len(), 6);
        for i in 0..90 {
            let scores: Vec<f64> = (0..3)
                .map(|k| fit.b[k] + x[2 * i] * fit.w[k] + x[2 * i + 1] * fit.w[3 + k])
                .collect();
            let best = (0..3)
                .max_by(|a, b| scores[*a].total_cmp(&scores[*b]))
                .unwrap();
            assert_eq!(fit.classes.0[best] as f64, y[i], "row {i}");
        }
    }

    #[test]
    fn bad_config_is_named() {
        let err = |pairs: &[(&str, &str)]| {
            Settings::from_config(&Config::from_pairs(pairs.iter().copied()))
                .unwrap_err()
                .message()
                .to_string()
        };
        assert!(err(&[("c", "0")]).contains("`c`"));
        assert!(err(&[("c", "x")]).contains("`c`"));
        assert!(err(&[("tol", "-1")]).contains("`tol`"));
        assert!(err(&[("alpha", "1")]).contains("unknown config key `alpha`"));
    }
}
