//! Seeded train / validation / test splits, stratified by class for classification, so every
//! split keeps the label's class proportions (scikit-learn's `train_test_split(stratify=y)`).
//!
//! The same seed and the same rows always give the same split, on any machine: the shuffle is a
//! Fisher–Yates driven by ChaCha8 seeded from the job's seed.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// Fractions of the rows held out for validation (model selection) and test (final metrics).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitSpec {
    pub validation: f64,
    pub test: f64,
    pub seed: u64,
    /// Keep class proportions in every split (classification only).
    pub stratify: bool,
}

impl Default for SplitSpec {
    fn default() -> Self {
        SplitSpec {
            validation: 0.2,
            test: 0.2,
            seed: 42,
            stratify: true,
        }
    }
}

impl SplitSpec {
    pub fn validate(&self) -> Result<(), String> {
        let ok = |f: f64| (0.0..1.0).contains(&f);
        if !ok(self.validation) || !ok(self.test) || self.validation + self.test >= 1.0 {
            return Err(format!(
                "split fractions must be in [0, 1) and leave rows to train on (validation {}, test {})",
                self.validation, self.test
            ));
        }
        if self.test == 0.0 {
            return Err(
                "split.test must be above 0: the model is evaluated on the test split".into(),
            );
        }
        Ok(())
    }
}

/// Row indices of each split, each sorted ascending (so the splits keep the data's row order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Split {
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
}

/// Split `n` rows. `strata` gives each row's class when stratifying (`None`: one group).
pub fn split(n: usize, strata: Option<&[i64]>, spec: &SplitSpec) -> Split {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(spec.seed);
    let mut groups: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
    match strata {
        Some(classes) => classes
            .iter()
            .enumerate()
            .for_each(|(i, c)| groups.entry(*c).or_default().push(i)),
        None => {
            groups.insert(0, (0..n).collect());
        }
    }
    let mut out = Split::default();
    for rows in groups.values_mut() {
        rows.shuffle(&mut rng);
        let m = rows.len();
        let test = ((m as f64 * spec.test).round() as usize).min(m);
        let validation = ((m as f64 * spec.validation).round() as usize).min(m - test);
        out.test.extend_from_slice(&rows[..test]);
        out.validation
            .extend_from_slice(&rows[test..test + validation]);
        out.train.extend_from_slice(&rows[test + validation..]);
    }
    out.train.sort_unstable();
    out.validation.sort_unstable();
    out.test.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_split_keeps_proportions_and_partitions_rows() {
        let classes: Vec<i64> = (0..1000).map(|i| if i % 10 < 3 { 1 } else { 0 }).collect();
        let spec = SplitSpec {
            validation: 0.1,
            test: 0.2,
            seed: 7,
            stratify: true,
        };
        let s = split(1000, Some(&classes), &spec);
        assert_eq!(
            (s.train.len(), s.validation.len(), s.test.len()),
            (700, 100, 200)
        );
        let ones = |rows: &[usize]| rows.iter().filter(|&&r| classes[r] == 1).count();
        assert_eq!(
            (ones(&s.train), ones(&s.validation), ones(&s.test)),
            (210, 30, 60)
        );
        let mut all: Vec<usize> = [s.train.clone(), s.validation.clone(), s.test.clone()].concat();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        // Same seed, same split; another seed, another.
        assert_eq!(split(1000, Some(&classes), &spec), s);
        let other = split(1000, Some(&classes), &SplitSpec { seed: 8, ..spec });
        assert_ne!(other.test, s.test);
    }

    #[test]
    fn unstratified_split_and_bad_specs() {
        let s = split(
            10,
            None,
            &SplitSpec {
                validation: 0.0,
                test: 0.3,
                seed: 1,
                stratify: false,
            },
        );
        assert_eq!((s.train.len(), s.validation.len(), s.test.len()), (7, 0, 3));
        let bad = |v, t| {
            SplitSpec {
                validation: v,
                test: t,
                ..Default::default()
            }
            .validate()
            .is_err()
        };
        assert!(bad(0.5, 0.5) && bad(-0.1, 0.2) && bad(0.2, 0.0) && !bad(0.0, 0.25));
    }
}
