//! `linear-regression` — an aimass trainer: ridge regression (least squares with an L2 penalty),
//! solved exactly from the normal equations and exported as ONNX.
//!
//! # Config
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `label` | required | numeric target column |
//! | `features` | every numeric column but the label | comma-separated feature columns |
//! | `alpha` | `1.0` | L2 penalty, as scikit-learn's `Ridge(alpha)`; `0` is ordinary least squares |
//! | `seed` | — | accepted and unused: the fit is exact |
//! | `task` | `regression` | set by the host; `classification` is an invalid-config error |
//!
//! # Model
//!
//! Minimises `‖y − Xw − b‖² + alpha·‖w‖²` over standardised features (the intercept is not
//! penalised): `(ZᵀZ + alpha·I) w = Zᵀ(y − ȳ)`, `b = ȳ`, solved by Cholesky. The scaling is folded
//! back into the weights, so the model takes raw features; the penalty applies to the weights of
//! standardised features (scikit-learn's `Ridge` penalises raw weights: the two agree at
//! `alpha = 0`). A constant feature gets weight 0.
//!
//! The ONNX graph is `MatMul → Add` over the FP32 input `features` `[N, F]`, output `prediction`
//! (FP32 `[N]`). Metadata: `task`, `features`, `label`.

use aimass_plugin_sdk::learn::{self, COMMON_KEYS, Scaling, Xy, read_xy};
use aimass_plugin_sdk::{Config, Dataset, Error, Model, Result, Trainer, export_trainer, progress};

pub struct LinearRegression;

impl Trainer for LinearRegression {
    fn train(data: &Dataset<'_>, config: &Config) -> Result<Model> {
        let mut keys = COMMON_KEYS.to_vec();
        keys.push("alpha");
        config.check_keys(&keys)?;
        learn::require_task(config, "regression")?;
        let alpha: f64 = config.parse_or("alpha", 1.0)?;
        if !(alpha >= 0.0 && alpha.is_finite()) {
            return Err(Error::invalid_config(format!(
                "`alpha` must be a number ≥ 0, got {alpha}"
            )));
        }
        let xy = read_xy(data, config)?;
        let (w, b) = fit(xy.clone(), alpha)?;
        progress(1, 1, "solved");
        let g =
            learn::export::linear_regressor("linear-regression", &xy.features, &xy.label, &w, b);
        Ok(Model {
            onnx: g.build(),
            metadata: vec![
                ("task".into(), "regression".into()),
                ("features".into(), xy.features.join(",")),
                ("label".into(), xy.label.clone()),
                ("alpha".into(), alpha.to_string()),
            ],
        })
    }
}

export_trainer!(LinearRegression);

/// Weights over raw features and the intercept.
pub fn fit(mut xy: Xy, alpha: f64) -> Result<(Vec<f64>, f64)> {
    let scaling = Scaling::fit(&xy);
    scaling.apply(&mut xy.x);
    let (n, f) = (xy.n, xy.f);
    let y_mean = xy.y.iter().sum::<f64>() / n as f64;
    let mut a = vec![0.0; f * f];
    let mut rhs = vec![0.0; f];
    for i in 0..n {
        let row = xy.row(i);
        let r = xy.y[i] - y_mean;
        for (j, xj) in row.iter().enumerate() {
            rhs[j] += xj * r;
            for (k, xk) in row.iter().enumerate().take(j + 1) {
                a[j * f + k] += xj * xk;
            }
        }
    }
    for j in 0..f {
        for k in 0..j {
            a[k * f + j] = a[j * f + k];
        }
        // A constant column is all zeros after standardising: keep the system solvable.
        a[j * f + j] += alpha.max(1e-12 * n as f64);
    }
    let w = learn::cholesky_solve(&a, &rhs).ok_or_else(|| {
        Error::invalid_input("the features are degenerate (the normal equations are singular)")
    })?;
    let mut w = w;
    let mut b = [y_mean];
    scaling.unfold(&mut w, &mut b);
    Ok((w, b[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_an_exact_linear_relation() {
        // y = 3·x0 − 0.5·x1 + 7 on badly scaled features.
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..50 {
            let (a, b) = (i as f64 * 100.0, ((i * 7) % 11) as f64 * 0.01);
            x.extend([a, b]);
            y.push(3.0 * a - 0.5 * b + 7.0);
        }
        let (w, b) = fit(Xy::new(x, y, 2), 0.0).unwrap();
        assert!(
            (w[0] - 3.0).abs() < 1e-6 && (w[1] + 0.5).abs() < 1e-4 && (b - 7.0).abs() < 1e-3,
            "{w:?} {b}"
        );
    }

    #[test]
    fn alpha_shrinks_and_constant_columns_get_zero() {
        let x: Vec<f64> = (0..20).flat_map(|i| [i as f64, 5.0]).collect();
        let y: Vec<f64> = (0..20).map(|i| 2.0 * i as f64).collect();
        let (w0, _) = fit(Xy::new(x.clone(), y.clone(), 2), 0.0).unwrap();
        let (w1, _) = fit(Xy::new(x, y, 2), 50.0).unwrap();
        assert!(
            (w0[0] - 2.0).abs() < 1e-9 && w1[0] < w0[0] && w1[0] > 0.0,
            "{w0:?} {w1:?}"
        );
        assert_eq!(w0[1], 0.0);
    }
}
