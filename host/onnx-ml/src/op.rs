//! One adapter turns an ONNX-ML [`Kernel`] into a tract operator.
//!
//! tract analyses a model in two stages: inference (types and shapes solved from rules) and
//! typed (facts computed forward), then optimises and runs typed ops. A kernel states its
//! outputs once, as a function of its inputs' types and shapes ([`Kernel::output_facts`]); the
//! adapter answers both stages from it ([`Inferred`] is the inference op, [`Typed`] the typed one
//! it wires), so every operator type-checks, keeps a symbolic batch dimension and runs in an
//! optimised plan like tract's own.

use tract_onnx::tract_hir::internal::*;

/// What an ONNX-ML operator computes.
pub trait Kernel: std::fmt::Debug + Clone + PartialEq + Send + Sync + 'static {
    /// The operator's name in plans and messages.
    const NAME: &'static str;

    /// How many inputs it takes (the first is the data; further ones are constants).
    fn inputs(&self) -> usize {
        1
    }

    /// How many outputs it produces.
    fn outputs(&self) -> usize {
        1
    }

    /// The outputs' element types and shapes, given the inputs'.
    fn output_facts(&self, inputs: &[(DatumType, &[TDim])]) -> TractResult<Vec<Fact>>;

    /// Computes the outputs.
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>>;
}

/// An output's element type and shape.
pub type Fact = (DatumType, TVec<TDim>);

/// The inference-stage operator for `K`.
#[derive(Debug, Clone)]
pub struct Inferred<K>(pub K);

/// Boxes `kernel` for tract-onnx's op register.
pub fn op<K: Kernel>(kernel: K) -> Box<dyn InferenceOp> {
    expand(Inferred(kernel))
}

impl<K: Kernel> Expansion for Inferred<K> {
    fn name(&self) -> StaticName {
        K::NAME.into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(self.0.outputs())
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, self.0.inputs())?;
        check_output_arity(outputs, self.0.outputs())?;
        s.given_2(
            &inputs[0].datum_type,
            &inputs[0].shape,
            move |s, dt, shape| {
                if inputs.len() == 1 {
                    return self.solve(s, outputs, &[(dt, &shape)]);
                }
                s.given_2(
                    &inputs[1].datum_type,
                    &inputs[1].shape,
                    move |s, dt1, shape1| self.solve(s, outputs, &[(dt, &shape), (dt1, &shape1)]),
                )
            },
        )
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, Typed(self.0.clone()), inputs)
    }
}

impl<K: Kernel> Inferred<K> {
    fn solve<'r>(
        &self,
        s: &mut Solver<'r>,
        outputs: &'r [TensorProxy],
        inputs: &[(DatumType, &[TDim])],
    ) -> InferenceResult {
        for ((dt, shape), proxy) in self.0.output_facts(inputs)?.into_iter().zip(outputs) {
            s.equals(&proxy.datum_type, dt)?;
            s.equals(&proxy.shape, ShapeFactoid::from(shape))?;
        }
        Ok(())
    }
}

/// The typed operator for `K`.
#[derive(Debug, Clone, PartialEq)]
pub struct Typed<K>(pub K);

// Kernels hold float attributes, so they cannot derive `Eq`; tract only compares ops to merge
// identical nodes, and a NaN attribute at worst keeps two nodes apart.
impl<K: Kernel> Eq for Typed<K> {}

impl<K: Kernel> Op for Typed<K> {
    fn name(&self) -> StaticName {
        K::NAME.into()
    }

    op_as_typed_op!();
}

impl<K: Kernel> EvalOp for Typed<K> {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        self.0.eval(inputs)
    }
}

impl<K: Kernel> TypedOp for Typed<K> {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let inputs: Vec<(DatumType, &[TDim])> = inputs
            .iter()
            .map(|f| (f.datum_type, f.shape.dims()))
            .collect();
        Ok(self
            .0
            .output_facts(&inputs)?
            .into_iter()
            .map(|(dt, shape)| dt.fact(shape))
            .collect())
    }

    as_op!();
}

/// The number of rows of a `[N, ...]` input (1 for a vector, as onnxruntime reads one).
pub fn rows(shape: &[TDim]) -> TDim {
    if shape.len() < 2 {
        1.into()
    } else {
        shape[0].clone()
    }
}

/// The input as a `[rows, columns]` f32 matrix (onnxruntime's ML kernels read any numeric
/// input as float).
pub fn matrix(input: &TValue) -> TractResult<(Tensor, usize, usize)> {
    let t = input.cast_to::<f32>()?.into_owned();
    let (n, c) = match *t.shape() {
        [c] => (1, c),
        [n, c] => (n, c),
        ref s => bail!("expected a [rows, columns] input, got shape {s:?}"),
    };
    Ok((t, n, c))
}

/// The elements of `t`, in order.
pub fn slice<T: Datum>(t: &Tensor) -> TractResult<&[T]> {
    t.try_as_plain_ram()?.as_slice::<T>()
}

/// A `[rows, columns]`-shaped tensor from `values`.
pub fn tensor<T: Datum + Copy>(shape: &[usize], values: &[T]) -> TractResult<TValue> {
    Ok(Tensor::from_shape(shape, values)?.into_tvalue())
}

/// Checks a per-column attribute of `len` values (1, or one per column) against the input's
/// column count when it is known.
pub fn check_columns(op: &str, what: &str, len: usize, shape: &[TDim]) -> TractResult<()> {
    if let Some(c) = shape.last().and_then(|d| d.to_usize().ok())
        && len != 1
        && len != c
    {
        bail!("{op}: {what} has {len} values for an input of {c} columns");
    }
    Ok(())
}

/// Checks that an input's column count, when known, is the model's `features`.
pub fn check_features(op: &str, features: usize, shape: &[TDim]) -> TractResult<()> {
    if let Some(c) = shape.last().and_then(|d| d.to_usize().ok())
        && c != features
    {
        bail!("{op}: the model has {features} features, the input {c} columns");
    }
    Ok(())
}
