//! Parquet encoding of dataset parts (Snappy-compressed, the common default; pure Rust).

use anyhow::{Context, Result};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

/// Rows per record batch when reading parts back.
const READ_BATCH_ROWS: usize = 64 * 1024;

/// A column type Parquet cannot hold, if the schema has one: the parquet crate panics on union
/// types (ARROW-8817) instead of returning an error, so they are refused before writing.
pub fn unstorable(schema: &arrow_schema::Schema) -> Option<arrow_schema::DataType> {
    use arrow_schema::DataType as T;
    fn find(t: &T) -> Option<T> {
        match t {
            T::Union(..) => Some(t.clone()),
            T::List(f)
            | T::LargeList(f)
            | T::ListView(f)
            | T::LargeListView(f)
            | T::FixedSizeList(f, _)
            | T::Map(f, _) => find(f.data_type()),
            T::Struct(fields) => fields.iter().find_map(|f| find(f.data_type())),
            T::Dictionary(_, v) => find(v),
            T::RunEndEncoded(_, v) => find(v.data_type()),
            _ => None,
        }
    }
    schema.fields().iter().find_map(|f| find(f.data_type()))
}

pub fn encode(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema.clone(), Some(props))
        .context("starting a Parquet part")?;
    for b in batches {
        w.write(b).context("writing a Parquet part")?;
    }
    w.close().context("finishing a Parquet part")?;
    Ok(buf)
}

pub fn decode(bytes: Bytes) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .context("not a readable Parquet file")?
        .with_batch_size(READ_BATCH_ROWS);
    let schema = builder.schema().clone();
    let batches = builder
        .build()?
        .collect::<Result<Vec<_>, _>>()
        .context("reading a Parquet part")?;
    Ok((schema, batches))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    #[test]
    fn union_columns_are_refused_before_the_writer_panics_on_them() {
        use arrow_schema::{UnionFields, UnionMode};
        let union = DataType::Union(
            UnionFields::try_new(vec![0], vec![Field::new("a", DataType::Int32, true)]).unwrap(),
            UnionMode::Sparse,
        );
        let nested = Schema::new(vec![
            Field::new("ok", DataType::Utf8, true),
            Field::new_list("l", Field::new_list_field(union.clone(), true), true),
        ]);
        assert_eq!(unstorable(&nested), Some(union));
        let plain = Schema::new(vec![Field::new("ok", DataType::Utf8, true)]);
        assert_eq!(unstorable(&plain), None);
    }
    use std::sync::Arc;

    #[test]
    fn round_trip() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
            ],
        )
        .unwrap();
        let bytes = encode(&schema, std::slice::from_ref(&batch)).unwrap();
        let (s, batches) = decode(Bytes::from(bytes)).unwrap();
        assert_eq!(s.fields(), schema.fields());
        assert_eq!(batches, vec![batch]);
        assert!(decode(Bytes::from_static(b"not parquet")).is_err());
    }
}
