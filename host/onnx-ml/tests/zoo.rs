//! Every model of `tests/data/zoo` (written by `scripts/sklearn-zoo.py`) runs through tract with
//! this crate's operators and gives onnxruntime's outputs: labels exactly, floats within 1e-5
//! (relative, or absolute below 1).

use serde::Deserialize;
use std::path::{Path, PathBuf};
use tract_onnx::prelude::*;

#[derive(Deserialize)]
struct Expected {
    inputs: Vec<Named>,
    outputs: Vec<Named>,
}

#[derive(Deserialize)]
struct Named {
    name: String,
    datatype: String,
    shape: Vec<usize>,
    data: Vec<serde_json::Value>,
}

impl Named {
    fn tensor(&self) -> Tensor {
        let f = |v: &serde_json::Value| v.as_f64().map_or(f32::NAN, |x| x as f32);
        match self.datatype.as_str() {
            "FP32" => tract_ndarray::ArrayD::from_shape_vec(
                self.shape.clone(),
                self.data.iter().map(f).collect(),
            )
            .unwrap()
            .into_tensor(),
            "INT64" => tract_ndarray::ArrayD::from_shape_vec(
                self.shape.clone(),
                self.data.iter().map(|v| v.as_i64().unwrap()).collect(),
            )
            .unwrap()
            .into_tensor(),
            "BYTES" => tract_ndarray::ArrayD::from_shape_vec(
                self.shape.clone(),
                self.data
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect(),
            )
            .unwrap()
            .into_tensor(),
            other => panic!("datatype {other}"),
        }
    }
}

fn zoo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/zoo")
}

/// Runs one model; `Err` says what differs.
fn check(name: &str) -> Result<(), String> {
    let dir = zoo();
    let expected: Expected =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
    let input = expected.inputs[0].tensor();
    let model = aimass_onnx_ml::onnx()
        .model_for_path(dir.join(format!("{name}.onnx")))
        .and_then(|m| {
            m.with_input_fact(
                0,
                InferenceFact::dt_shape(input.datum_type(), input.shape()),
            )
        })
        .and_then(|m| m.into_typed())
        .and_then(|mut m| aimass_onnx_ml::cast_dim_outputs(&mut m).map(|()| m))
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(|e| format!("load: {e:#}"))?;
    let outputs = model
        .run(tvec!(input.into_tvalue()))
        .map_err(|e| format!("run: {e:#}"))?;
    for (want, got) in expected.outputs.iter().zip(outputs.iter()) {
        compare(want, got).map_err(|e| format!("{}: {e}", want.name))?;
    }
    Ok(())
}

fn compare(want: &Named, got: &Tensor) -> Result<(), String> {
    let want_t = want.tensor();
    if want_t.len() != got.len() {
        return Err(format!(
            "shape {:?}, expected {:?}",
            got.shape(),
            want.shape
        ));
    }
    match want.datatype.as_str() {
        "FP32" => {
            let g = got.cast_to::<f32>().map_err(|e| e.to_string())?;
            let (w, g) = (
                want_t
                    .try_as_plain_ram()
                    .unwrap()
                    .as_slice::<f32>()
                    .unwrap()
                    .to_vec(),
                g.try_as_plain_ram()
                    .unwrap()
                    .as_slice::<f32>()
                    .unwrap()
                    .to_vec(),
            );
            for (i, (a, b)) in g.iter().zip(&w).enumerate() {
                // NaN expected: onnxruntime's value was not finite.
                let same = if b.is_nan() {
                    !a.is_finite()
                } else {
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0)
                };
                if !same {
                    return Err(format!("value {i} is {a}, expected {b}"));
                }
            }
        }
        _ => {
            let g = got
                .cast_to_dt(want_t.datum_type())
                .map_err(|e| e.to_string())?;
            if *g != want_t {
                return Err(format!("{g:?}\nexpected {want_t:?}"));
            }
        }
    }
    Ok(())
}

#[test]
fn every_zoo_model_matches_onnxruntime() {
    let mut names: Vec<String> = std::fs::read_dir(zoo())
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()?
                .strip_suffix(".onnx")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 50, "{} models", names.len());
    let failures: Vec<String> = names
        .iter()
        .filter_map(|n| check(n).err().map(|e| format!("{n}: {e}")))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} differ from onnxruntime:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}
