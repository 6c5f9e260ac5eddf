//! Parquet encoding of dataset parts (Snappy-compressed, the common default; pure Rust).

use anyhow::{Context, Result, bail};
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

/// Most memory the decoded batches of one part may take. Parquet compresses well (a column of
/// one repeated string takes a few bytes per million rows), so a small file can decode to many
/// gigabytes; past this, decoding stops with an error instead.
pub const MAX_DECODED_BYTES: usize = 512 << 20;

/// Decode a whole part, at most [`MAX_DECODED_BYTES`] of it.
pub fn decode(bytes: Bytes) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    decode_rows(bytes, 0, usize::MAX)
}

/// Decode `limit` rows of a part from row `offset` (only those: the rest is skipped, not
/// decoded), at most [`MAX_DECODED_BYTES`] of them.
pub fn decode_rows(
    bytes: Bytes,
    offset: usize,
    limit: usize,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .context("not a readable Parquet file")?
        .with_batch_size(READ_BATCH_ROWS)
        .with_offset(offset);
    if limit != usize::MAX {
        builder = builder.with_limit(limit);
    }
    decode_within(builder, MAX_DECODED_BYTES)
}

fn decode_within(
    builder: ParquetRecordBatchReaderBuilder<Bytes>,
    max_bytes: usize,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let schema = builder.schema().clone();
    let mut batches = Vec::new();
    let mut decoded = 0usize;
    for batch in builder.build()? {
        let batch = batch.context("reading a Parquet part")?;
        decoded += batch.get_array_memory_size();
        if decoded > max_bytes {
            bail!(
                "the part decodes to more than {} MiB; split it into smaller parts",
                max_bytes >> 20
            );
        }
        batches.push(batch);
    }
    Ok((schema, batches))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;

    /// `rows` rows of an id and one long string repeated: a few KB of Parquet.
    fn repetitive(rows: usize) -> Bytes {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("s", DataType::Utf8, false),
        ]));
        let long = "x".repeat(1000);
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(0..rows as i64)),
                Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                    &long, rows,
                ))),
            ],
        )
        .unwrap();
        encode(&schema, &[batch]).unwrap().into()
    }

    #[test]
    fn only_the_rows_asked_for_are_decoded() {
        let (_, batches) = decode_rows(repetitive(100_000), 70_000, 5).unwrap();
        let ids: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                a.values().to_vec()
            })
            .collect();
        assert_eq!(ids, [70_000, 70_001, 70_002, 70_003, 70_004]);
    }

    #[test]
    fn a_part_that_decodes_past_the_cap_is_refused() {
        let bytes = repetitive(20_000);
        assert!(bytes.len() < 1 << 20, "{} bytes of Parquet", bytes.len());
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).unwrap();
        let e = decode_within(builder, 10 << 20).unwrap_err().to_string();
        assert!(e.contains("more than 10 MiB"), "{e}");
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        assert!(decode_within(builder, 64 << 20).is_ok());
    }

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
