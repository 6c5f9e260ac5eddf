//! The plugin traits: one per WIT world, over the SDK's friendly types.
//!
//! A plugin implements one of these on a unit struct and names it in the matching export macro
//! ([`export_collector!`](crate::export_collector), [`export_cleaner!`](crate::export_cleaner),
//! [`export_raw_cleaner!`](crate::export_raw_cleaner),
//! [`export_transform!`](crate::export_transform), [`export_trainer!`](crate::export_trainer)).
//! The macro does the WIT plumbing: it decodes the Arrow IPC input into a [`Table`], wraps the
//! config in [`Config`], calls the trait, encodes the result and maps [`Error`] to the WIT
//! `plugin-error`. The trait methods are associated functions (no `self`) like the WIT exports:
//! a component instance keeps no state between calls that a plugin could rely on.
//!
//! Because the traits take plain Rust types, a plugin's logic is unit-tested natively by calling
//! the trait (or the functions behind it) with real `RecordBatch`es.

use std::cell::Cell;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::table::{Table, ipc};

/// Raw input to a collector: bytes plus what they are (the WIT `source` record).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    /// Media type of `data`, possibly with parameters (`text/csv; charset=utf-8`).
    pub content_type: String,
    /// Where the bytes came from, if known (an object key or URL path). Never opened.
    pub name: Option<String>,
    /// The bytes themselves.
    pub data: Vec<u8>,
}

impl Source {
    /// A source with no name.
    pub fn new(content_type: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        Self {
            content_type: content_type.into(),
            name: None,
            data: data.into(),
        }
    }

    /// The media type without parameters, trimmed and lower-cased: `"Text/CSV; header=present"`
    /// gives `"text/csv"`.
    pub fn media_type(&self) -> String {
        self.content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }
}

/// A trained model (the WIT `model` record).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    /// ONNX `ModelProto` bytes.
    pub onnx: Vec<u8>,
    /// Free-form metadata stored with the model version.
    pub metadata: Vec<(String, String)>,
}

/// `collector` world: raw bytes with a content type → Arrow.
pub trait Collector {
    /// Parse `input` into a table.
    fn collect(input: Source, config: &Config) -> Result<Table>;
}

/// `cleaner` world: Arrow in, Arrow out.
pub trait Cleaner {
    /// Clean `input`; the output may have other rows and columns.
    fn clean(input: Table, config: &Config) -> Result<Table>;
}

/// `cleaner` world without Arrow decoding: the IPC bytes in, bytes out. For pass-through and
/// test plugins that must not pay for (or must not depend on) decoding.
pub trait RawCleaner {
    /// Clean the Arrow IPC stream `input`, returning an Arrow IPC stream.
    fn clean_raw(input: Vec<u8>, config: &Config) -> Result<Vec<u8>>;
}

/// `transform` world: a feature transform with a fitted state.
pub trait Transform {
    /// Learn the parameters from `data`; the returned bytes are stored by the host as-is and
    /// handed back to [`Transform::apply`].
    fn fit(data: Table, config: &Config) -> Result<Vec<u8>>;

    /// Apply a fitted transform. A `state` that cannot be read is an invalid-input error.
    fn apply(input: Table, state: &[u8], config: &Config) -> Result<Table>;
}

/// `trainer` world: train a model over a dataset read batch by batch.
pub trait Trainer {
    /// Train on the rows `data` yields; `config` carries label, features, hyperparameters, seed.
    fn train(data: &Dataset<'_>, config: &Config) -> Result<Model>;
}

/// The raw operations of the WIT `dataset.reader` resource, implemented by the export macro for
/// the generated resource handle, and by [`MemoryDataset`] for native tests.
pub trait DatasetSource {
    /// The schema as an IPC stream with no batches.
    fn schema_ipc(&self) -> Vec<u8>;
    /// Total number of rows.
    fn row_count(&self) -> u64;
    /// The next batch as an IPC stream, or `None` at the end of an epoch.
    fn next_batch_ipc(&self) -> Option<Vec<u8>>;
    /// Back to the first batch.
    fn rewind(&self);
}

/// A host-owned dataset a trainer reads batch by batch, decoded to Arrow.
pub struct Dataset<'a> {
    source: &'a dyn DatasetSource,
}

impl<'a> Dataset<'a> {
    /// Wrap a raw source.
    pub fn new(source: &'a dyn DatasetSource) -> Self {
        Self { source }
    }

    /// The dataset's schema.
    pub fn schema(&self) -> Result<SchemaRef> {
        Ok(ipc::decode(self.source.schema_ipc())?.0)
    }

    /// Total number of rows across all batches.
    pub fn row_count(&self) -> u64 {
        self.source.row_count()
    }

    /// The next batch, or `None` at the end of the epoch.
    pub fn next_batch(&self) -> Result<Option<RecordBatch>> {
        let Some(bytes) = self.source.next_batch_ipc() else {
            return Ok(None);
        };
        let (schema, mut batches) = ipc::decode(bytes)?;
        Ok(Some(match batches.len() {
            0 => RecordBatch::new_empty(schema),
            1 => batches.pop().expect("one batch"),
            _ => arrow_select::concat::concat_batches(&schema, &batches).map_err(Error::from)?,
        }))
    }

    /// Go back to the first batch, to start another epoch.
    pub fn rewind(&self) {
        self.source.rewind();
    }
}

/// An in-memory [`DatasetSource`], to unit-test a [`Trainer`] natively.
pub struct MemoryDataset {
    table: Table,
    position: Cell<usize>,
}

impl MemoryDataset {
    /// A dataset yielding `table`'s batches in order.
    pub fn new(table: Table) -> Self {
        Self {
            table,
            position: Cell::new(0),
        }
    }
}

impl DatasetSource for MemoryDataset {
    fn schema_ipc(&self) -> Vec<u8> {
        ipc::encode(self.table.schema(), &[]).expect("encode schema")
    }

    fn row_count(&self) -> u64 {
        self.table.num_rows() as u64
    }

    fn next_batch_ipc(&self) -> Option<Vec<u8>> {
        let i = self.position.get();
        let batch = self.table.batches().get(i)?;
        self.position.set(i + 1);
        Some(ipc::encode(self.table.schema(), std::slice::from_ref(batch)).expect("encode batch"))
    }

    fn rewind(&self) {
        self.position.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int32Array;
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn media_type_strips_parameters() {
        let s = Source::new(" Text/CSV ; charset=utf-8", b"a".to_vec());
        assert_eq!(s.media_type(), "text/csv");
        assert_eq!(Source::new("", Vec::new()).media_type(), "");
    }

    #[test]
    fn memory_dataset_epochs() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
        let b = |v: Vec<i32>| {
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int32Array::from(v))]).unwrap()
        };
        let source =
            MemoryDataset::new(Table::new(schema.clone(), vec![b(vec![1, 2]), b(vec![3])]));
        let data = Dataset::new(&source);
        assert_eq!(data.schema().unwrap(), schema);
        assert_eq!(data.row_count(), 3);
        assert_eq!(data.next_batch().unwrap().unwrap().num_rows(), 2);
        assert_eq!(data.next_batch().unwrap().unwrap().num_rows(), 1);
        assert!(data.next_batch().unwrap().is_none());
        data.rewind();
        assert_eq!(data.next_batch().unwrap().unwrap().num_rows(), 2);
    }
}
