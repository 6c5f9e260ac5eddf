//! Arrow IPC stream encoding and the [`Table`] type plugins work on.
//!
//! Every tabular value crosses the WIT boundary as one Arrow IPC *stream* (`arrow-stream`): a
//! schema message, any number of record batches and the end-of-stream marker. [`ipc::decode`]
//! turns such bytes into a schema plus batches and [`ipc::encode`] writes them back; [`Table`]
//! bundles the two so a plugin keeps the schema even when there are no rows (an empty stream still
//! has columns, and an output must too).
//!
//! Decoding takes the bytes by value and is zero-copy: arrow's `StreamDecoder` slices the record
//! batches out of the one input buffer, so a large input is held once in guest memory, not twice.
//! Decoded data is validated, since it comes from outside the plugin.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{Schema, SchemaRef};

use crate::error::{Error, Result};

/// Arrow IPC stream helpers.
pub mod ipc {
    use super::*;

    /// Decode an Arrow IPC stream into its schema and record batches.
    ///
    /// Errors are [`Error::InvalidInput`]: empty bytes, a truncated or corrupt stream, or a
    /// stream without a schema message.
    pub fn decode(bytes: impl Into<Vec<u8>>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let bytes: Vec<u8> = bytes.into();
        if bytes.is_empty() {
            return Err(Error::invalid_input(
                "empty Arrow IPC stream (expected at least a schema message)",
            ));
        }
        let mut buffer = Buffer::from_vec(bytes);
        let mut decoder = StreamDecoder::new();
        let mut batches = Vec::new();
        while !buffer.is_empty() {
            if let Some(batch) = decoder
                .decode(&mut buffer)
                .map_err(|e| Error::invalid_input(format!("bad Arrow IPC stream: {e}")))?
            {
                batches.push(batch);
            }
        }
        decoder
            .finish()
            .map_err(|e| Error::invalid_input(format!("bad Arrow IPC stream: {e}")))?;
        let schema = decoder
            .schema()
            .ok_or_else(|| Error::invalid_input("Arrow IPC stream has no schema message"))?;
        Ok((schema, batches))
    }

    /// Encode a schema and record batches as an Arrow IPC stream (with the end-of-stream marker).
    ///
    /// Every batch must have `schema`'s fields; a failure here is the plugin's own fault, so it
    /// is an [`Error::Internal`].
    pub fn encode(schema: &Schema, batches: &[RecordBatch]) -> Result<Vec<u8>> {
        let internal = |e: arrow_schema::ArrowError| {
            Error::internal(format!("cannot encode Arrow IPC stream: {e}"))
        };
        let capacity = batches
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum::<usize>()
            + 1024;
        let mut writer =
            StreamWriter::try_new(Vec::with_capacity(capacity), schema).map_err(internal)?;
        for batch in batches {
            writer.write(batch).map_err(internal)?;
        }
        writer.into_inner().map_err(internal)
    }
}

/// A schema plus record batches: what a collector produces and what cleaners and transforms get
/// and return.
#[derive(Debug, Clone)]
pub struct Table {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

impl Table {
    /// A table from a schema and batches that all have that schema's fields.
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        Self { schema, batches }
    }

    /// A table of one batch.
    pub fn from_batch(batch: RecordBatch) -> Self {
        Self {
            schema: batch.schema(),
            batches: vec![batch],
        }
    }

    /// A table with columns but no rows.
    pub fn empty(schema: SchemaRef) -> Self {
        Self {
            schema,
            batches: Vec::new(),
        }
    }

    /// Decode an Arrow IPC stream (see [`ipc::decode`]).
    pub fn from_ipc(bytes: impl Into<Vec<u8>>) -> Result<Self> {
        let (schema, batches) = ipc::decode(bytes)?;
        Ok(Self { schema, batches })
    }

    /// Encode as an Arrow IPC stream (see [`ipc::encode`]).
    pub fn to_ipc(&self) -> Result<Vec<u8>> {
        ipc::encode(&self.schema, &self.batches)
    }

    /// The schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The record batches (possibly none).
    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }

    /// Split into schema and batches.
    pub fn into_parts(self) -> (SchemaRef, Vec<RecordBatch>) {
        (self.schema, self.batches)
    }

    /// Total number of rows over all batches.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Number of columns.
    pub fn num_columns(&self) -> usize {
        self.schema.fields().len()
    }

    /// All rows as one batch (an empty batch when there are none), e.g. for whole-column
    /// statistics. Copies the data.
    pub fn concat(&self) -> Result<RecordBatch> {
        arrow_select::concat::concat_batches(&self.schema, &self.batches).map_err(Error::from)
    }
}

impl From<RecordBatch> for Table {
    fn from(batch: RecordBatch) -> Self {
        Self::from_batch(batch)
    }
}

impl From<(SchemaRef, Vec<RecordBatch>)> for Table {
    fn from((schema, batches): (SchemaRef, Vec<RecordBatch>)) -> Self {
        Self::new(schema, batches)
    }
}

impl From<Schema> for Table {
    fn from(schema: Schema) -> Self {
        Self::empty(Arc::new(schema))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Float64Array, Int64Array, StringArray};
    use arrow_schema::{DataType, Field};

    fn sample() -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
        ]));
        let b1 = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a"), None])),
                Arc::new(Float64Array::from(vec![Some(0.5), Some(1.5)])),
            ],
        )
        .unwrap();
        let b2 = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![3])),
                Arc::new(StringArray::from(vec![Some("c")])),
                Arc::new(Float64Array::from(vec![None])),
            ],
        )
        .unwrap();
        (schema, vec![b1, b2])
    }

    #[test]
    fn ipc_round_trip_keeps_schema_and_batches() {
        let (schema, batches) = sample();
        let bytes = ipc::encode(&schema, &batches).unwrap();
        let (schema2, batches2) = ipc::decode(bytes).unwrap();
        assert_eq!(schema2, schema);
        assert_eq!(batches2, batches);
    }

    #[test]
    fn table_round_trip_and_concat() {
        let (schema, batches) = sample();
        let table = Table::new(schema.clone(), batches);
        assert_eq!(table.num_rows(), 3);
        assert_eq!(table.num_columns(), 3);
        let back = Table::from_ipc(table.to_ipc().unwrap()).unwrap();
        assert_eq!(back.schema(), &schema);
        assert_eq!(back.batches().len(), 2);
        let one = back.concat().unwrap();
        assert_eq!(one.num_rows(), 3);
        let ids = one.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(ids.values(), &[1, 2, 3]);
        assert_eq!(one.column(2).null_count(), 1);
    }

    #[test]
    fn empty_table_keeps_columns() {
        let (schema, _) = sample();
        let bytes = Table::empty(schema.clone()).to_ipc().unwrap();
        let back = Table::from_ipc(bytes).unwrap();
        assert_eq!(back.schema(), &schema);
        assert_eq!(back.num_rows(), 0);
        assert_eq!(back.concat().unwrap().num_rows(), 0);
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(matches!(
            ipc::decode(Vec::new()),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            ipc::decode(b"not arrow at all".to_vec()),
            Err(Error::InvalidInput(_))
        ));
        // A truncated stream is an error, not a silently shorter table.
        let (schema, batches) = sample();
        let bytes = ipc::encode(&schema, &batches).unwrap();
        let cut = bytes[..bytes.len() / 2].to_vec();
        assert!(matches!(ipc::decode(cut), Err(Error::InvalidInput(_))));
    }
}
