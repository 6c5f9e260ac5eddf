//! Tree ensembles (TreeEnsembleClassifier, TreeEnsembleRegressor): decision trees, random
//! forests, extra trees, gradient boosting, HistGradientBoosting, XGBoost and LightGBM.
//!
//! Layout for speed: every tree is one run of a single node array in depth-first order, so a
//! node's true child is the next node and only the false child is stored; a node is 16 bytes
//! (threshold, feature, true child, false child). Rows are scored in blocks: each tree runs over
//! every row of a block before the next tree, so the tree stays in cache while the rows stream
//! past. The comparison (all scikit-learn trees use one mode) and whether any node sends missing
//! values down its true branch are fixed per ensemble, so the inner loop is a compare and a
//! conditional move. Results follow onnxruntime's, including its binary-classifier conventions
//! ([`finalize`]).

pub(crate) mod finalize;
mod parse;

use crate::attrs::Attrs;
use crate::op::{self, Fact, Kernel};
use finalize::{Labels, Transform};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

/// `Node::feature` of a leaf.
const LEAF: u32 = u32::MAX;
/// The bit of `Node::feature` set when missing values (NaN) take the true branch.
const MISSING_TRUE: u32 = 1 << 31;
/// Rows scored together, tree by tree.
const BLOCK: usize = 64;

/// One node: a branch compares `x[feature]` with `threshold` and goes to the next node (true)
/// or to `no`; a leaf's weights are `weights[yes..yes + no]`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
struct Node {
    threshold: f32,
    feature: u32,
    yes: u32,
    no: u32,
}

/// A branch's comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
}

impl Cmp {
    #[inline(always)]
    fn test(self, v: f32, t: f32) -> bool {
        match self {
            Cmp::Leq => v <= t,
            Cmp::Lt => v < t,
            Cmp::Gte => v >= t,
            Cmp::Gt => v > t,
            Cmp::Eq => v == t,
            Cmp::Neq => v != t,
        }
    }
}

/// How the trees' leaf values combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

/// The trees, laid out.
#[derive(Debug, Clone, PartialEq)]
struct Forest {
    nodes: Vec<Node>,
    /// Each node's comparison, read only when the trees mix them.
    modes: Vec<Cmp>,
    /// The one comparison every branch uses, if they agree.
    mode: Option<Cmp>,
    roots: Vec<u32>,
    weights: Vec<(u32, f32)>,
    /// Whether any branch sends missing values down its true branch.
    missing: bool,
    /// Columns the trees read (the highest feature id + 1).
    features: usize,
}

/// Per row and target: the aggregated score and whether any leaf contributed.
struct Scores {
    targets: usize,
    value: Vec<f32>,
    has: Vec<bool>,
}

impl Forest {
    /// The leaf that row `x` reaches from `root`.
    #[inline(always)]
    fn leaf<const MISSING: bool>(&self, mode: Option<Cmp>, root: u32, x: &[f32]) -> usize {
        let mut i = root as usize;
        loop {
            let n = self.nodes[i];
            if n.feature == LEAF {
                return i;
            }
            let v = x[(n.feature & !MISSING_TRUE) as usize];
            let cmp = mode.unwrap_or_else(|| self.modes[i]);
            let yes = cmp.test(v, n.threshold)
                || (MISSING && n.feature & MISSING_TRUE != 0 && v.is_nan());
            i = if yes { i + 1 } else { n.no as usize };
        }
    }

    /// Scores `rows` rows of `columns` values, `targets` scores each.
    fn scores(
        &self,
        x: &[f32],
        rows: usize,
        columns: usize,
        targets: usize,
        agg: Aggregate,
    ) -> Scores {
        let mut s = Scores {
            targets,
            value: vec![0.0; rows * targets],
            has: vec![false; rows * targets],
        };
        for start in (0..rows).step_by(BLOCK) {
            let end = (start + BLOCK).min(rows);
            match (self.missing, self.mode) {
                (true, mode) => self.block::<true>(mode, x, columns, start..end, agg, &mut s),
                (false, Some(Cmp::Leq)) => {
                    self.block::<false>(Some(Cmp::Leq), x, columns, start..end, agg, &mut s)
                }
                (false, Some(Cmp::Lt)) => {
                    self.block::<false>(Some(Cmp::Lt), x, columns, start..end, agg, &mut s)
                }
                (false, mode) => self.block::<false>(mode, x, columns, start..end, agg, &mut s),
            }
        }
        s
    }

    #[inline(always)]
    fn block<const MISSING: bool>(
        &self,
        mode: Option<Cmp>,
        x: &[f32],
        columns: usize,
        rows: std::ops::Range<usize>,
        agg: Aggregate,
        s: &mut Scores,
    ) {
        for &root in &self.roots {
            for r in rows.clone() {
                let leaf = self.nodes
                    [self.leaf::<MISSING>(mode, root, &x[r * columns..(r + 1) * columns])];
                let weights = &self.weights[leaf.yes as usize..(leaf.yes + leaf.no) as usize];
                for &(t, w) in weights {
                    let k = r * s.targets + t as usize;
                    let v = &mut s.value[k];
                    *v = match agg {
                        Aggregate::Sum | Aggregate::Average => *v + w,
                        Aggregate::Min if s.has[k] => v.min(w),
                        Aggregate::Max if s.has[k] => v.max(w),
                        Aggregate::Min | Aggregate::Max => w,
                    };
                    s.has[k] = true;
                }
            }
        }
    }
}

/// The input as `[rows, columns]` floats, checked to have every column the trees read.
fn input(forest: &Forest, x: &TValue) -> TractResult<(Tensor, usize, usize)> {
    let (t, rows, columns) = op::matrix(x)?;
    if columns < forest.features {
        bail!(
            "the trees read column {} of an input with {columns} columns",
            forest.features - 1
        );
    }
    Ok((t, rows, columns))
}

fn check_columns(forest: &Forest, shape: &[TDim]) -> TractResult<()> {
    if let Some(c) = shape.last().and_then(|d| d.to_usize().ok())
        && c < forest.features
    {
        bail!(
            "the trees read column {} of an input with {c} columns",
            forest.features - 1
        );
    }
    Ok(())
}

/// TreeEnsembleClassifier: `label` `[N]` and class scores `[N, classes]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Classifier {
    forest: Forest,
    labels: Labels,
    base: Vec<f32>,
    transform: Transform,
    /// Two classes and every leaf weight for one of them (onnxruntime's binary case).
    binary: bool,
    all_positive: bool,
}

impl Classifier {
    pub fn parse(node: &NodeProto) -> TractResult<Self> {
        let a = Attrs::new(node);
        let labels = Labels::parse(&a, "classlabels_int64s")?;
        let forest = parse::forest(&a, "class", labels.len())?;
        let base = a.floats("base_values")?.unwrap_or_default();
        if base.len() > labels.len() {
            return Err(a.error(
                "base_values",
                format!("{} values for {} classes", base.len(), labels.len()),
            ));
        }
        let classes: std::collections::BTreeSet<u32> = forest.weights.iter().map(|w| w.0).collect();
        Ok(Classifier {
            binary: labels.len() == 2 && classes.len() == 1,
            all_positive: forest.weights.iter().all(|w| w.1 >= 0.0),
            transform: Transform::parse(&a)?,
            forest,
            labels,
            base,
        })
    }
}

impl Kernel for Classifier {
    const NAME: &'static str = "TreeEnsembleClassifier";

    fn outputs(&self) -> usize {
        2
    }

    fn output_facts(&self, inputs: &[(DatumType, &[TDim])]) -> TractResult<Vec<Fact>> {
        let shape = inputs[0].1;
        check_columns(&self.forest, shape)?;
        let n = op::rows(shape);
        Ok(vec![
            (self.labels.datum_type(), tvec![n.clone()]),
            (f32::datum_type(), tvec![n, self.labels.len().into()]),
        ])
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, rows, columns) = input(&self.forest, &inputs[0])?;
        let classes = self.labels.len();
        let s = self.forest.scores(
            op::slice::<f32>(&x)?,
            rows,
            columns,
            classes,
            Aggregate::Sum,
        );
        let mut picks = Vec::with_capacity(rows);
        let mut out = vec![0f32; rows * classes];
        for r in 0..rows {
            let row = r * classes..(r + 1) * classes;
            let pick = finalize::classify(
                self,
                &s.value[row.clone()],
                &s.has[row.clone()],
                &mut out[row],
            );
            picks.push(pick);
        }
        Ok(tvec!(
            self.labels.pick(&picks)?,
            op::tensor(&[rows, classes], &out)?
        ))
    }
}

/// TreeEnsembleRegressor: `[N, targets]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Regressor {
    forest: Forest,
    targets: usize,
    aggregate: Aggregate,
    base: Vec<f32>,
    transform: Transform,
}

impl Regressor {
    pub fn parse(node: &NodeProto) -> TractResult<Self> {
        let a = Attrs::new(node);
        let targets = a.int("n_targets").unwrap_or(1);
        let targets = usize::try_from(targets)
            .ok()
            .filter(|&t| (1..=1 << 16).contains(&t))
            .ok_or_else(|| a.error("n_targets", format!("{targets} is out of range 1..65536")))?;
        let aggregate = match a.string_or("aggregate_function", "SUM")?.as_str() {
            "SUM" => Aggregate::Sum,
            "AVERAGE" => Aggregate::Average,
            "MIN" => Aggregate::Min,
            "MAX" => Aggregate::Max,
            other => {
                return Err(a.error("aggregate_function", format!("unknown function {other:?}")));
            }
        };
        let base = a.floats("base_values")?.unwrap_or_default();
        if base.len() > targets {
            return Err(a.error(
                "base_values",
                format!("{} values for {targets} targets", base.len()),
            ));
        }
        Ok(Regressor {
            forest: parse::forest(&a, "target", targets)?,
            targets,
            aggregate,
            base,
            transform: Transform::parse(&a)?,
        })
    }
}

impl Kernel for Regressor {
    const NAME: &'static str = "TreeEnsembleRegressor";

    fn output_facts(&self, inputs: &[(DatumType, &[TDim])]) -> TractResult<Vec<Fact>> {
        let shape = inputs[0].1;
        check_columns(&self.forest, shape)?;
        Ok(vec![(
            f32::datum_type(),
            tvec![op::rows(shape), self.targets.into()],
        )])
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, rows, columns) = input(&self.forest, &inputs[0])?;
        let s = self.forest.scores(
            op::slice::<f32>(&x)?,
            rows,
            columns,
            self.targets,
            self.aggregate,
        );
        let mut out = vec![0f32; rows * self.targets];
        for r in 0..rows {
            let row = r * self.targets..(r + 1) * self.targets;
            finalize::regress(
                self,
                &s.value[row.clone()],
                &s.has[row.clone()],
                &mut out[row],
            );
        }
        Ok(tvec!(op::tensor(&[rows, self.targets], &out)?))
    }
}

pub fn register(reg: &mut tract_onnx::model::OnnxOpRegister) {
    reg.insert("TreeEnsembleClassifier", |_, node| {
        Ok((op::op(Classifier::parse(node)?), vec![]))
    });
    reg.insert("TreeEnsembleRegressor", |_, node| {
        Ok((op::op(Regressor::parse(node)?), vec![]))
    });
}
