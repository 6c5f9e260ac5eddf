//! TreeEnsembleClassifier and TreeEnsembleRegressor attributes, checked and laid out.
//!
//! Every tree is rebuilt in depth-first order into one node array (see [`Forest`]); building it
//! checks what a hostile file could get wrong: arrays of mismatched lengths, duplicate node
//! ids, children that do not exist or belong to another tree, branches that loop or join,
//! leaf weights on branches or targets out of range.

use super::{Cmp, Forest, LEAF, MISSING_TRUE, Node};
use crate::attrs::{Attrs, MAX_LEN, indices};
use std::collections::HashMap;
use tract_onnx::tract_hir::internal::*;

/// The per-node and per-leaf arrays of a TreeEnsemble node.
struct Arrays<'a> {
    a: &'a Attrs<'a>,
    tree: &'a [i64],
    id: &'a [i64],
    feature: &'a [i64],
    modes: Vec<String>,
    value: Vec<f32>,
    yes: &'a [i64],
    no: &'a [i64],
    missing_true: Vec<bool>,
    leaf_tree: &'a [i64],
    leaf_node: &'a [i64],
    leaf_target: &'a [i64],
    leaf_weight: Vec<f32>,
}

impl<'a> Arrays<'a> {
    /// `prefix` is `class` for classifiers and `target` for regressors.
    fn read(a: &'a Attrs<'a>, prefix: &str) -> TractResult<Self> {
        let tree = a.required("nodes_treeids", a.ints("nodes_treeids"))?;
        let n = tree.len();
        let ints = |name: &str| -> TractResult<&'a [i64]> {
            let v = a.required(name, a.ints(name))?;
            a.expect_len(name, v.len(), n)?;
            Ok(v)
        };
        let (id, feature, yes, no) = (
            ints("nodes_nodeids")?,
            ints("nodes_featureids")?,
            ints("nodes_truenodeids")?,
            ints("nodes_falsenodeids")?,
        );
        let modes = a.required("nodes_modes", a.strings("nodes_modes"))?;
        a.expect_len("nodes_modes", modes.len(), n)?;
        let value = a.required("nodes_values", a.floats("nodes_values"))?;
        a.expect_len("nodes_values", value.len(), n)?;
        let missing_true = match a.ints("nodes_missing_value_tracks_true")? {
            Some(m) if !m.is_empty() => {
                a.expect_len("nodes_missing_value_tracks_true", m.len(), n)?;
                m.iter().map(|&v| v == 1).collect()
            }
            _ => vec![false; n],
        };
        let leaf = |name: &str| format!("{prefix}_{name}");
        let leaf_target = a.required(&leaf("ids"), a.ints(&leaf("ids")))?;
        let m = leaf_target.len();
        let leaf_ints = |name: &str| -> TractResult<&'a [i64]> {
            let v = a.required(name, a.ints(name))?;
            a.expect_len(name, v.len(), m)?;
            Ok(v)
        };
        let (leaf_tree, leaf_node) = (leaf_ints(&leaf("treeids"))?, leaf_ints(&leaf("nodeids"))?);
        let leaf_weight = a.required(&leaf("weights"), a.floats(&leaf("weights")))?;
        a.expect_len(&leaf("weights"), leaf_weight.len(), m)?;
        Ok(Arrays {
            a,
            tree,
            id,
            feature,
            modes,
            value,
            yes,
            no,
            missing_true,
            leaf_tree,
            leaf_node,
            leaf_target,
            leaf_weight,
        })
    }
}

fn mode(a: &Attrs, s: &str) -> TractResult<Option<Cmp>> {
    Ok(Some(match s {
        "BRANCH_LEQ" => Cmp::Leq,
        "BRANCH_LT" => Cmp::Lt,
        "BRANCH_GTE" => Cmp::Gte,
        "BRANCH_GT" => Cmp::Gt,
        "BRANCH_EQ" => Cmp::Eq,
        "BRANCH_NEQ" => Cmp::Neq,
        "LEAF" => return Ok(None),
        other => return Err(a.error("nodes_modes", format!("unknown mode {other:?}"))),
    }))
}

/// Reads and lays out the trees; `targets` is the number of classes or regression targets.
pub fn forest(a: &Attrs, prefix: &str, targets: usize) -> TractResult<Forest> {
    let arr = Arrays::read(a, prefix)?;
    let n = arr.tree.len();
    if n == 0 {
        return Err(a.error("nodes_treeids", "no nodes"));
    }
    // (tree, node id) -> index in the arrays; roots are each tree's first node, as onnxruntime
    // takes them.
    let mut at: HashMap<(i64, i64), usize> = HashMap::with_capacity(n);
    let mut roots: Vec<usize> = Vec::new();
    for i in 0..n {
        if at.insert((arr.tree[i], arr.id[i]), i).is_some() {
            return Err(a.error(
                "nodes_nodeids",
                format!("node {} of tree {} is repeated", arr.id[i], arr.tree[i]),
            ));
        }
        if i == 0 || arr.tree[i] != arr.tree[i - 1] {
            roots.push(i);
        }
    }
    let mut weights: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
    let target_ids = indices(a, &format!("{prefix}_ids"), arr.leaf_target, targets)?;
    for (j, &target) in target_ids.iter().enumerate() {
        let Some(&i) = at.get(&(arr.leaf_tree[j], arr.leaf_node[j])) else {
            return Err(a.error(
                &format!("{prefix}_nodeids"),
                format!(
                    "node {} of tree {} does not exist",
                    arr.leaf_node[j], arr.leaf_tree[j]
                ),
            ));
        };
        weights[i].push((target as u32, arr.leaf_weight[j]));
    }
    let modes: Vec<Option<Cmp>> = arr
        .modes
        .iter()
        .map(|m| mode(a, m))
        .collect::<TractResult<_>>()?;
    let mut out = Forest {
        nodes: Vec::with_capacity(n),
        roots: Vec::new(),
        weights: Vec::new(),
        modes: Vec::new(),
        mode: None,
        missing: false,
        features: 0,
    };
    let mut seen = vec![false; n];
    for &root in &roots {
        out.roots.push(out.nodes.len() as u32);
        lay_out(&arr, &at, &modes, &weights, root, &mut seen, &mut out)?;
    }
    let branch_modes: Vec<Cmp> = modes.iter().flatten().copied().collect();
    out.mode = match branch_modes.first() {
        Some(&m) if branch_modes.iter().all(|&b| b == m) => Some(m),
        Some(_) => None,
        None => Some(Cmp::Leq),
    };
    Ok(out)
}

/// Appends the tree under `root` in depth-first order (true child right after its parent),
/// iteratively, so a deep tree cannot overflow the stack.
fn lay_out(
    arr: &Arrays,
    at: &HashMap<(i64, i64), usize>,
    modes: &[Option<Cmp>],
    weights: &[Vec<(u32, f32)>],
    root: usize,
    seen: &mut [bool],
    out: &mut Forest,
) -> TractResult<()> {
    let a = arr.a;
    // (array index, slot of the parent's `no` to patch once this node is placed)
    let mut stack: Vec<(usize, Option<usize>)> = vec![(root, None)];
    while let Some((i, patch)) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            return Err(a.error(
                "nodes_truenodeids",
                format!(
                    "node {} of tree {} is reached twice: branches loop or join",
                    arr.id[i], arr.tree[i]
                ),
            ));
        }
        let here = out.nodes.len();
        if let Some(parent) = patch {
            out.nodes[parent].no = here as u32;
        }
        if out.nodes.len() >= MAX_LEN {
            return Err(a.error("nodes_treeids", "too many nodes"));
        }
        match modes[i] {
            None => {
                let start = out.weights.len() as u32;
                out.weights.extend_from_slice(&weights[i]);
                out.nodes.push(Node {
                    threshold: 0.0,
                    feature: LEAF,
                    yes: start,
                    no: weights[i].len() as u32,
                });
                out.modes.push(Cmp::Leq);
            }
            Some(cmp) => {
                if !weights[i].is_empty() {
                    return Err(a.error(
                        "nodes_modes",
                        format!(
                            "branch {} of tree {} has leaf weights",
                            arr.id[i], arr.tree[i]
                        ),
                    ));
                }
                let feature = u32::try_from(arr.feature[i])
                    .ok()
                    .filter(|&f| f < MISSING_TRUE)
                    .ok_or_else(|| {
                        a.error(
                            "nodes_featureids",
                            format!("{} is out of range", arr.feature[i]),
                        )
                    })?;
                out.features = out.features.max(feature as usize + 1);
                let child = |ids: &[i64], name: &str| -> TractResult<usize> {
                    at.get(&(arr.tree[i], ids[i])).copied().ok_or_else(|| {
                        a.error(
                            name,
                            format!("node {} of tree {} does not exist", ids[i], arr.tree[i]),
                        )
                    })
                };
                let (yes, no) = (
                    child(arr.yes, "nodes_truenodeids")?,
                    child(arr.no, "nodes_falsenodeids")?,
                );
                let flag = if arr.missing_true[i] {
                    out.missing = true;
                    MISSING_TRUE
                } else {
                    0
                };
                out.nodes.push(Node {
                    threshold: arr.value[i],
                    feature: feature | flag,
                    yes: here as u32 + 1,
                    no: 0,
                });
                out.modes.push(cmp);
                stack.push((no, Some(here)));
                stack.push((yes, None));
            }
        }
    }
    Ok(())
}
