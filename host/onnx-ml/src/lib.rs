//! ONNX-ML operators for tract: what scikit-learn, XGBoost and LightGBM models exported to ONNX
//! use and tract lacks or gets wrong, written as tract ops and registered through tract-onnx's
//! public op register, so they type-check, optimise and batch like tract's own.
//!
//! [`onnx`] is `tract_onnx::onnx()` with these registered; [`register`] adds them to any
//! register. Operators tract implements as onnxruntime does (LinearRegressor, CategoryMapper)
//! stay tract's.

pub mod attrs;
mod encoders;
mod linear;
pub mod op;
mod preprocess;
mod svm;
mod trees;

use tract_onnx::model::OnnxOpRegister;

/// Registers every operator of this crate, replacing tract's where both exist.
pub fn register(reg: &mut OnnxOpRegister) {
    preprocess::register(reg);
    encoders::register(reg);
    trees::register(reg);
    svm::register(reg);
    linear::register(reg);
}

/// tract-onnx's framework with this crate's operators registered.
pub fn onnx() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    register(&mut onnx.op_register);
    onnx
}

/// Casts every model output that tract typed as a symbolic dimension (`TDim`: an integer
/// computed from shapes, as kNN and naive Bayes graphs end) to `i64`, the type the file
/// declares and the Open Inference Protocol can carry.
pub fn cast_dim_outputs(
    model: &mut tract_onnx::prelude::TypedModel,
) -> tract_onnx::prelude::TractResult<()> {
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::ops::cast::cast;
    let outputs = model.output_outlets()?.to_vec();
    let mut changed = false;
    let mut new_outputs = Vec::with_capacity(outputs.len());
    for outlet in outputs {
        if model.outlet_fact(outlet)?.datum_type != TDim::datum_type() {
            new_outputs.push(outlet);
            continue;
        }
        let label = model.outlet_label(outlet).map(str::to_string);
        let name = format!("{}.as_i64", model.node(outlet.node).name);
        let cast = model.wire_node(name, cast(i64::datum_type()), &[outlet])?[0];
        if let Some(label) = label {
            model.set_outlet_label(cast, label)?;
        }
        new_outputs.push(cast);
        changed = true;
    }
    if changed {
        model.select_output_outlets(&new_outputs)?;
    }
    Ok(())
}
