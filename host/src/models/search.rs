//! Hyperparameter search: which configs a training job tries.
//!
//! Values are given per hyperparameter as a list (`"c": [0.1, 1, 10]`), a single value, or —
//! for random search — a range `{"min": 0.001, "max": 10, "log": true}` (`"int": true` rounds).
//! Grid search tries every combination of the lists, in order; random search draws `trials`
//! configs from a seeded generator, a value from each list or range per trial. Values reach the
//! trainer as strings, like every config value.

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// How to search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Search {
    #[default]
    Grid,
    Random {
        trials: usize,
        #[serde(default)]
        seed: u64,
    },
}

/// Most candidates one job may try.
pub const MAX_CANDIDATES: usize = 256;

fn scalar(key: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!(
            "hyperparameter `{key}`: {v} is not a string, number or boolean"
        )),
    }
}

/// A range to draw from.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    min: f64,
    max: f64,
    #[serde(default)]
    log: bool,
    #[serde(default)]
    int: bool,
}

enum Axis {
    Values(Vec<String>),
    Range(Range),
}

fn axis(key: &str, v: &Value) -> Result<Axis, String> {
    match v {
        Value::Array(items) if items.is_empty() => {
            Err(format!("hyperparameter `{key}` has no values"))
        }
        Value::Array(items) => Ok(Axis::Values(
            items
                .iter()
                .map(|i| scalar(key, i))
                .collect::<Result<_, _>>()?,
        )),
        Value::Object(_) => {
            let r: Range = serde_json::from_value(v.clone())
                .map_err(|e| format!("hyperparameter `{key}`: a range is {{\"min\", \"max\", \"log\"?, \"int\"?}}: {e}"))?;
            if !(r.min.is_finite() && r.max.is_finite() && r.min <= r.max)
                || (r.log && r.min <= 0.0)
            {
                return Err(format!(
                    "hyperparameter `{key}`: bad range {} .. {}",
                    r.min, r.max
                ));
            }
            Ok(Axis::Range(r))
        }
        other => Ok(Axis::Values(vec![scalar(key, other)?])),
    }
}

/// The configs to try, each a sorted map of hyperparameter → value.
pub fn candidates(
    space: &BTreeMap<String, Value>,
    search: &Search,
) -> Result<Vec<BTreeMap<String, String>>, String> {
    let axes: Vec<(String, Axis)> = space
        .iter()
        .map(|(k, v)| Ok((k.clone(), axis(k, v)?)))
        .collect::<Result<_, String>>()?;
    match search {
        Search::Grid => {
            let mut out = vec![BTreeMap::new()];
            for (k, a) in &axes {
                let Axis::Values(values) = a else {
                    return Err(format!(
                        "hyperparameter `{k}` is a range: ranges need random search"
                    ));
                };
                if out.len() * values.len() > MAX_CANDIDATES {
                    return Err(format!("the grid has more than {MAX_CANDIDATES} points"));
                }
                out = out
                    .into_iter()
                    .flat_map(|c| {
                        values.iter().map(move |v| {
                            let mut c = c.clone();
                            c.insert(k.clone(), v.clone());
                            c
                        })
                    })
                    .collect();
            }
            Ok(out)
        }
        Search::Random { trials, seed } => {
            if *trials == 0 || *trials > MAX_CANDIDATES {
                return Err(format!("search.trials must be 1..={MAX_CANDIDATES}"));
            }
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(*seed);
            Ok((0..*trials)
                .map(|_| {
                    axes.iter()
                        .map(|(k, a)| {
                            let v = match a {
                                Axis::Values(v) => v[rng.random_range(0..v.len())].clone(),
                                Axis::Range(r) => {
                                    let x = if r.log {
                                        (r.min.ln()
                                            + rng.random::<f64>() * (r.max.ln() - r.min.ln()))
                                        .exp()
                                    } else {
                                        r.min + rng.random::<f64>() * (r.max - r.min)
                                    };
                                    if r.int {
                                        (x.round() as i64).to_string()
                                    } else {
                                        format!("{x}")
                                    }
                                }
                            };
                            (k.clone(), v)
                        })
                        .collect()
                })
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn space(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn grid_is_every_combination() {
        let c = candidates(
            &space(json!({"c": [0.1, 1], "max_iter": 50, "solver": ["a", "b", "c"]})),
            &Search::Grid,
        )
        .unwrap();
        assert_eq!(c.len(), 6);
        assert_eq!(
            c[0],
            BTreeMap::from([
                ("c".into(), "0.1".into()),
                ("max_iter".into(), "50".into()),
                ("solver".into(), "a".into())
            ])
        );
        assert_eq!(c[5]["c"], "1");
        assert_eq!(
            candidates(&BTreeMap::new(), &Search::Grid).unwrap(),
            vec![BTreeMap::new()]
        );
    }

    #[test]
    fn random_search_is_seeded_and_in_range() {
        let s = space(
            json!({"c": {"min": 0.001, "max": 100, "log": true}, "hidden": {"min": 4, "max": 64, "int": true}, "act": ["relu", "tanh"]}),
        );
        let search = Search::Random {
            trials: 20,
            seed: 3,
        };
        let a = candidates(&s, &search).unwrap();
        assert_eq!(a, candidates(&s, &search).unwrap());
        assert_eq!(a.len(), 20);
        for c in &a {
            let v: f64 = c["c"].parse().unwrap();
            assert!((0.001..=100.0).contains(&v));
            let h: i64 = c["hidden"].parse().unwrap();
            assert!((4..=64).contains(&h));
            assert!(c["act"] == "relu" || c["act"] == "tanh");
        }
    }

    #[test]
    fn bad_spaces_are_named() {
        let err = |v: Value, s: Search| candidates(&space(v), &s).unwrap_err();
        assert!(err(json!({"c": []}), Search::Grid).contains("`c` has no values"));
        assert!(
            err(json!({"c": {"min": 1, "max": 2}}), Search::Grid).contains("need random search")
        );
        assert!(
            err(
                json!({"c": {"min": 0, "max": 2, "log": true}}),
                Search::Random { trials: 2, seed: 0 }
            )
            .contains("bad range")
        );
        assert!(err(json!({"c": [[1]]}), Search::Grid).contains("not a string"));
        assert!(err(json!({"c": [1]}), Search::Random { trials: 0, seed: 0 }).contains("trials"));
    }
}
