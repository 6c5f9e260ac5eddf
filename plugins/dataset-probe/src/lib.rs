//! `dataset-probe` — a test trainer for the host's side of the `trainer` world (the dataset
//! reader resource). It reads the dataset `epochs` times (rewinding in between), checks that every
//! epoch sees the same rows and that they add up to `row-count`, reports progress per epoch, and
//! returns a "model" that is not ONNX but a description of what it read:
//! `onnx` = `b"probe:{rows}"`, metadata `rows`, `batches`, `epochs`, `columns`.
//!
//! Config: `epochs` (default 2); `hang_at_batch` N makes it a hostile trainer that never returns
//! from the N-th batch of the first epoch (it spins in wasm code, so only the host's deadline
//! stops it). The keys a training job adds (`label`, `features`, `seed`, `task`) are accepted and
//! ignored.

use aimass_plugin_sdk::{Config, Dataset, Error, Model, Result, Trainer, export_trainer, progress};

pub struct Probe;

impl Trainer for Probe {
    fn train(data: &Dataset<'_>, config: &Config) -> Result<Model> {
        probe(data, config)
    }
}

export_trainer!(Probe);

/// Walk `data` as described in the module docs.
pub fn probe(data: &Dataset<'_>, config: &Config) -> Result<Model> {
    config.check_keys(&[
        "epochs",
        "hang_at_batch",
        "label",
        "features",
        "seed",
        "task",
    ])?;
    let epochs: u64 = config.parse_or("epochs", 2)?;
    let hang_at: u64 = config.parse_or("hang_at_batch", 0)?;
    let columns = data.schema()?.fields().len();
    let expected = data.row_count();
    let mut per_epoch = Vec::new();
    for epoch in 0..epochs {
        if epoch > 0 {
            data.rewind();
        }
        let (mut rows, mut batches) = (0u64, 0u64);
        while let Some(batch) = data.next_batch()? {
            rows += batch.num_rows() as u64;
            batches += 1;
            if epoch == 0 && batches == hang_at {
                spin();
            }
        }
        if rows != expected {
            return Err(Error::invalid_input(format!(
                "epoch {epoch} read {rows} rows but row-count says {expected}"
            )));
        }
        per_epoch.push(batches);
        progress(epoch + 1, epochs, format!("epoch {}/{epochs}", epoch + 1));
    }
    if per_epoch.windows(2).any(|w| w[0] != w[1]) {
        return Err(Error::internal(format!(
            "epochs saw different batch counts: {per_epoch:?}"
        )));
    }
    Ok(Model {
        onnx: format!("probe:{expected}").into_bytes(),
        metadata: vec![
            ("rows".into(), expected.to_string()),
            (
                "batches".into(),
                per_epoch.first().copied().unwrap_or(0).to_string(),
            ),
            ("epochs".into(), epochs.to_string()),
            ("columns".into(), columns.to_string()),
        ],
    })
}

/// Never return: a loop with no host calls, kept by `black_box`.
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aimass_plugin_sdk::{MemoryDataset, Table};
    use arrow_array::{Int64Array, RecordBatch};
    use std::sync::Arc;

    #[test]
    fn reads_every_epoch() {
        let batch = |v: Vec<i64>| {
            RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(v)) as _)]).unwrap()
        };
        let b1 = batch(vec![1, 2, 3]);
        let table = Table::new(b1.schema(), vec![b1, batch(vec![4, 5])]);
        let source = MemoryDataset::new(table);
        let model = probe(
            &Dataset::new(&source),
            &Config::from_pairs([("epochs", "3")]),
        )
        .unwrap();
        assert_eq!(model.onnx, b"probe:5");
        assert!(model.metadata.contains(&("batches".into(), "2".into())));
        assert!(model.metadata.contains(&("epochs".into(), "3".into())));
    }
}
