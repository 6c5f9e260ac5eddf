//! `mlp` — an aimass trainer: a multi-layer perceptron with one or two Relu hidden layers, for
//! classification (softmax, cross-entropy) or regression (squared error), trained with Adam on
//! shuffled mini-batches and exported as ONNX.
//!
//! # Config
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `label`, `features` | | as every trainer (see `aimass_plugin_sdk::learn::read_xy`) |
//! | `task` | `classification` | set by the host: `classification` or `regression` |
//! | `hidden` | `64` | hidden layer sizes, one or two: `64` or `64,32` |
//! | `epochs` | `200` | passes over the data |
//! | `batch_size` | `min(200, rows)` | rows per Adam step |
//! | `learning_rate` | `0.001` | Adam step size |
//! | `alpha` | `0.0001` | L2 penalty on weights, as scikit-learn's `MLPClassifier(alpha)` |
//! | `seed` | `0` | weight initialisation and shuffling: same seed, same model |
//!
//! Features are standardised for training and the scaling folded into the first layer; for
//! regression the target is standardised too and folded into the output layer, so the model takes
//! raw features and predicts raw targets. Initialisation is He-uniform for hidden layers and
//! Glorot-uniform for the output layer.
//!
//! The ONNX graph is `(MatMul → Add → Relu)×L → MatMul → Add`, then the classifier head of
//! `aimass_plugin_sdk::learn::export` (`probabilities` and `label`; a Sigmoid pair for two
//! classes, Softmax/ArgMax for more) or `prediction` `[N]` for regressors.

use aimass_plugin_sdk::learn::export::{Dense, mlp_classifier, mlp_regressor};
use aimass_plugin_sdk::learn::{self, COMMON_KEYS, Classes, Rng, Scaling, Xy, read_xy};
use aimass_plugin_sdk::{Config, Dataset, Error, Model, Result, Trainer, export_trainer, progress};

pub struct Mlp;

impl Trainer for Mlp {
    fn train(data: &Dataset<'_>, config: &Config) -> Result<Model> {
        let settings = Settings::from_config(config)?;
        let xy = read_xy(data, config)?;
        train(xy, &settings, |e, n, loss| {
            progress(e, n, format!("epoch {e}/{n}, loss {loss:.5}"))
        })
    }
}

export_trainer!(Mlp);

#[derive(Debug, Clone)]
pub struct Settings {
    pub classification: bool,
    pub hidden: Vec<usize>,
    pub epochs: u64,
    pub batch_size: Option<usize>,
    pub learning_rate: f64,
    pub alpha: f64,
    pub seed: u64,
}

impl Settings {
    pub fn from_config(config: &Config) -> Result<Settings> {
        let mut keys = COMMON_KEYS.to_vec();
        keys.extend(["hidden", "epochs", "batch_size", "learning_rate", "alpha"]);
        config.check_keys(&keys)?;
        let hidden = match config.list("hidden") {
            None => vec![64],
            Some(list) => list
                .iter()
                .map(|s| s.parse::<usize>().ok().filter(|n| (1..=4096).contains(n)))
                .collect::<Option<Vec<_>>>()
                .filter(|v| (1..=2).contains(&v.len()))
                .ok_or_else(|| {
                    Error::invalid_config(
                        "`hidden` must be one or two sizes in 1..=4096, e.g. 64 or 64,32",
                    )
                })?,
        };
        let positive = |key: &str, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(v)
            } else {
                Err(Error::invalid_config(format!("`{key}` must be positive")))
            }
        };
        let alpha: f64 = config.parse_or("alpha", 1e-4)?;
        if !(alpha >= 0.0 && alpha.is_finite()) {
            return Err(Error::invalid_config("`alpha` must be ≥ 0"));
        }
        Ok(Settings {
            classification: learn::task(config, "classification")? == "classification",
            hidden,
            epochs: positive("epochs", config.parse_or("epochs", 200u64)? as f64)? as u64,
            batch_size: config.parse::<usize>("batch_size")?.map(|b| b.max(1)),
            learning_rate: positive("learning_rate", config.parse_or("learning_rate", 1e-3)?)?,
            alpha,
            seed: config.parse_or("seed", 0)?,
        })
    }
}

/// A layer with its Adam moments.
struct Layer {
    d: Dense,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl Layer {
    fn new(inputs: usize, outputs: usize, limit: f64, rng: &mut Rng) -> Layer {
        let n = inputs * outputs + outputs;
        Layer {
            d: Dense {
                w: (0..inputs * outputs)
                    .map(|_| rng.symmetric(limit))
                    .collect(),
                b: vec![0.0; outputs],
                inputs,
                outputs,
            },
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    /// `out = x · w + b` for `rows` rows.
    fn forward(&self, x: &[f64], rows: usize, out: &mut Vec<f64>) {
        let (i, o) = (self.d.inputs, self.d.outputs);
        out.clear();
        for r in 0..rows {
            out.extend_from_slice(&self.d.b);
            let y = &mut out[r * o..(r + 1) * o];
            for (xv, wr) in x[r * i..(r + 1) * i].iter().zip(self.d.w.chunks_exact(o)) {
                y.iter_mut().zip(wr).for_each(|(y, w)| *y += xv * w);
            }
        }
    }
}

/// What the network learns to output: one-hot classes, or the standardized target.
struct Targets {
    classes: Option<Classes>,
    /// Row-major `n × k`.
    t: Vec<f64>,
    k: usize,
    y_mean: f64,
    y_std: f64,
}

impl Targets {
    fn new(xy: &Xy, classification: bool) -> Result<Targets> {
        let n = xy.n;
        if classification {
            let (classes, index) = Classes::encode(&xy.y, &xy.label)?;
            let k = classes.len();
            let mut t = vec![0.0; n * k];
            index
                .iter()
                .enumerate()
                .for_each(|(r, &c)| t[r * k + c] = 1.0);
            return Ok(Targets {
                classes: Some(classes),
                t,
                k,
                y_mean: 0.0,
                y_std: 1.0,
            });
        }
        let mean = xy.y.iter().sum::<f64>() / n as f64;
        let sd = (xy.y.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64)
            .sqrt()
            .max(1e-12);
        Ok(Targets {
            classes: None,
            t: xy.y.iter().map(|v| (v - mean) / sd).collect(),
            k: 1,
            y_mean: mean,
            y_std: sd,
        })
    }
}

/// The network with its Adam state and the buffers one batch reuses.
struct Net {
    layers: Vec<Layer>,
    acts: Vec<Vec<f64>>,
    delta: Vec<f64>,
    prev: Vec<f64>,
    grads: Vec<Vec<f64>>,
    step: i32,
}

impl Net {
    /// ReLU hidden layers of `hidden` sizes between `f` inputs and `k` outputs.
    fn new(f: usize, hidden: &[usize], k: usize, rng: &mut Rng) -> Net {
        let mut sizes = vec![f];
        sizes.extend(hidden);
        let mut layers: Vec<Layer> = sizes
            .windows(2)
            .map(|w| Layer::new(w[0], w[1], (6.0 / w[0] as f64).sqrt(), rng))
            .collect();
        let h = *sizes.last().unwrap();
        layers.push(Layer::new(h, k, (6.0 / (h + k) as f64).sqrt(), rng));
        Net {
            acts: vec![Vec::new(); layers.len() + 1],
            grads: layers.iter().map(|l| vec![0.0; l.m.len()]).collect(),
            layers,
            delta: Vec::new(),
            prev: Vec::new(),
            step: 0,
        }
    }

    /// Activations of every layer for the rows of `chunk`.
    fn forward(&mut self, xy: &Xy, chunk: &[usize]) {
        let m = chunk.len();
        self.acts[0].clear();
        chunk
            .iter()
            .for_each(|&r| self.acts[0].extend_from_slice(xy.row(r)));
        for (li, layer) in self.layers.iter().enumerate() {
            let (done, rest) = self.acts.split_at_mut(li + 1);
            layer.forward(&done[li], m, &mut rest[0]);
            if li + 1 < self.layers.len() {
                rest[0].iter_mut().for_each(|v| *v = v.max(0.0));
            }
        }
    }

    /// δ = ∂loss/∂output (mean over the batch); returns the batch's summed loss.
    fn output_delta(&mut self, chunk: &[usize], targets: &Targets, classification: bool) -> f64 {
        let (m, k) = (chunk.len(), targets.k);
        let out = &self.acts[self.layers.len()];
        let mut loss = 0.0;
        self.delta.clear();
        for (r, &row) in chunk.iter().enumerate() {
            let o = &out[r * k..(r + 1) * k];
            let t = &targets.t[row * k..(row + 1) * k];
            if classification {
                let max = o.iter().fold(f64::NEG_INFINITY, |a, v| a.max(*v));
                let sum: f64 = o.iter().map(|v| (v - max).exp()).sum();
                for (v, t) in o.iter().zip(t) {
                    let p = (v - max).exp() / sum;
                    if *t > 0.0 {
                        loss -= p.max(1e-300).ln();
                    }
                    self.delta.push((p - t) / m as f64);
                }
            } else {
                loss += 0.5 * (o[0] - t[0]) * (o[0] - t[0]);
                self.delta.push((o[0] - t[0]) / m as f64);
            }
        }
        loss
    }

    /// Gradients of every layer, from the output's δ back to the first layer.
    fn backward(&mut self, m: usize, alpha: f64) {
        for li in (0..self.layers.len()).rev() {
            let l = &self.layers[li].d;
            let (i, o) = (l.inputs, l.outputs);
            let a = &self.acts[li];
            let g = &mut self.grads[li];
            g.iter_mut().for_each(|v| *v = 0.0);
            let (gw, gb) = g.split_at_mut(i * o);
            for r in 0..m {
                let d = &self.delta[r * o..(r + 1) * o];
                for (av, gr) in a[r * i..(r + 1) * i].iter().zip(gw.chunks_exact_mut(o)) {
                    gr.iter_mut().zip(d).for_each(|(g, d)| *g += av * d);
                }
                gb.iter_mut().zip(d).for_each(|(g, d)| *g += d);
            }
            gw.iter_mut()
                .zip(&l.w)
                .for_each(|(g, w)| *g += alpha * w / m as f64);
            if li > 0 {
                self.prev.clear();
                for r in 0..m {
                    let d = &self.delta[r * o..(r + 1) * o];
                    for (c, wr) in l.w.chunks_exact(o).enumerate() {
                        let v: f64 = wr.iter().zip(d).map(|(w, d)| w * d).sum();
                        self.prev.push(if a[r * i + c] > 0.0 { v } else { 0.0 });
                    }
                }
                std::mem::swap(&mut self.delta, &mut self.prev);
            }
        }
    }

    /// One Adam step over every weight and bias.
    fn adam_step(&mut self, learning_rate: f64) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        self.step += 1;
        let lr = learning_rate * (1.0 - b2.powi(self.step)).sqrt() / (1.0 - b1.powi(self.step));
        for (layer, g) in self.layers.iter_mut().zip(&self.grads) {
            let wn = layer.d.w.len();
            for (j, g) in g.iter().enumerate() {
                layer.m[j] = b1 * layer.m[j] + (1.0 - b1) * g;
                layer.v[j] = b2 * layer.v[j] + (1.0 - b2) * g * g;
                let upd = lr * layer.m[j] / (layer.v[j].sqrt() + eps);
                if j < wn {
                    layer.d.w[j] -= upd
                } else {
                    layer.d.b[j - wn] -= upd
                }
            }
        }
    }
}

/// Train and export.
pub fn train(mut xy: Xy, s: &Settings, mut report: impl FnMut(u64, u64, f64)) -> Result<Model> {
    let scaling = Scaling::fit(&xy);
    scaling.apply(&mut xy.x);
    let n = xy.n;
    let targets = Targets::new(&xy, s.classification)?;
    let mut rng = Rng::new(s.seed);
    let mut net = Net::new(xy.f, &s.hidden, targets.k, &mut rng);
    let batch = s.batch_size.unwrap_or(200).min(n);
    let mut order: Vec<usize> = (0..n).collect();
    for epoch in 1..=s.epochs {
        rng.shuffle(&mut order);
        let mut epoch_loss = 0.0;
        for chunk in order.chunks(batch) {
            net.forward(&xy, chunk);
            epoch_loss += net.output_delta(chunk, &targets, s.classification);
            net.backward(chunk.len(), s.alpha);
            net.adam_step(s.learning_rate);
        }
        let loss = epoch_loss / n as f64;
        if !loss.is_finite() {
            return Err(Error::internal(format!(
                "training diverged at epoch {epoch}; lower learning_rate"
            )));
        }
        report(epoch, s.epochs, loss);
    }
    Ok(export(net.layers, &scaling, &xy, s, &targets))
}

/// The trained network as ONNX, the input scaling folded into its first layer (and the target's
/// scaling into the output of a regressor), with its metadata.
fn export(
    layers: Vec<Layer>,
    scaling: &Scaling,
    xy: &Xy,
    s: &Settings,
    targets: &Targets,
) -> Model {
    let mut dense: Vec<Dense> = layers.into_iter().map(|l| l.d).collect();
    let mut out = dense.pop().expect("output layer");
    let first = &mut dense[0];
    scaling.unfold(&mut first.w, &mut first.b);
    let g = match &targets.classes {
        Some(c) => mlp_classifier("mlp", &xy.features, &xy.label, c, &dense, &out),
        None => {
            out.w.iter_mut().for_each(|w| *w *= targets.y_std);
            out.b[0] = out.b[0] * targets.y_std + targets.y_mean;
            mlp_regressor("mlp", &xy.features, &xy.label, &dense, &out)
        }
    };
    let task = if s.classification {
        "classification"
    } else {
        "regression"
    };
    let hidden: Vec<String> = s.hidden.iter().map(usize::to_string).collect();
    let mut metadata = vec![
        ("task".to_string(), task.to_string()),
        ("features".to_string(), xy.features.join(",")),
        ("label".to_string(), xy.label.clone()),
        ("hidden".to_string(), hidden.join(",")),
    ];
    if let Some(c) = &targets.classes {
        metadata.push(("classes".to_string(), c.to_csv()));
    }
    Model {
        onnx: g.build(),
        metadata,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(classification: bool, hidden: Vec<usize>) -> Settings {
        Settings {
            classification,
            hidden,
            epochs: 300,
            batch_size: Some(16),
            learning_rate: 0.01,
            alpha: 1e-4,
            seed: 3,
        }
    }

    #[test]
    fn learns_xor_which_no_linear_model_can() {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..200 {
            let (a, b) = ((i % 2) as f64, ((i / 2) % 2) as f64);
            x.extend([a * 10.0 + 100.0, b]); // badly scaled on purpose
            y.push(((a as i64) ^ (b as i64)) as f64);
        }
        let mut losses = Vec::new();
        let m = train(Xy::new(x, y, 2), &settings(true, vec![8]), |_, _, l| {
            losses.push(l)
        })
        .unwrap();
        assert!(
            losses.last().unwrap() < &0.05,
            "final loss {:?}",
            losses.last()
        );
        assert!(m.metadata.contains(&("classes".into(), "0,1".into())));
        // Same seed, same model.
        let (mut x2, mut y2) = (Vec::new(), Vec::new());
        for i in 0..200 {
            let (a, b) = ((i % 2) as f64, ((i / 2) % 2) as f64);
            x2.extend([a * 10.0 + 100.0, b]);
            y2.push(((a as i64) ^ (b as i64)) as f64);
        }
        assert_eq!(
            train(Xy::new(x2, y2, 2), &settings(true, vec![8]), |_, _, _| {}).unwrap(),
            m
        );
    }

    #[test]
    fn regresses_a_curve_with_two_layers() {
        let x: Vec<f64> = (0..200).map(|i| i as f64 / 20.0).collect();
        let y: Vec<f64> = x.iter().map(|v| 1000.0 + 50.0 * v.sin()).collect();
        let mut last = f64::MAX;
        train(
            Xy::new(x, y, 1),
            &settings(false, vec![16, 16]),
            |_, _, l| last = l,
        )
        .unwrap();
        // Loss is on the standardised target: well under the 0.5 of predicting the mean.
        assert!(last < 0.05, "{last}");
    }

    #[test]
    fn bad_config_is_named() {
        let err = |pairs: &[(&str, &str)]| {
            Settings::from_config(&Config::from_pairs(pairs.iter().copied()))
                .unwrap_err()
                .message()
                .to_string()
        };
        assert!(err(&[("hidden", "1,2,3")]).contains("`hidden`"));
        assert!(err(&[("hidden", "0")]).contains("`hidden`"));
        assert!(err(&[("learning_rate", "0")]).contains("`learning_rate`"));
        assert!(err(&[("task", "ranking")]).contains("task"));
    }
}
