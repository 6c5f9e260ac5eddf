//! Tabular wire formats of the API and their conversion to and from the Arrow IPC stream that
//! plugins see.
//!
//! Plugins only ever receive Arrow IPC, so callers may send CSV or NDJSON for convenience: the
//! host parses them with arrow-csv / arrow-json schema inference (the same readers the bundled
//! `csv-collector` uses), and writes results back in the format the caller asks for.

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::SchemaRef;
use std::io::Cursor;
use std::sync::Arc;

/// Rows read to infer a CSV/NDJSON schema.
const INFER_ROWS: usize = 10_000;

/// A tabular format the API speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    ArrowStream,
    Csv,
    Ndjson,
}

pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

impl Format {
    /// The format a `Content-Type`/`Accept` media type names (parameters ignored).
    pub fn from_media_type(media: &str) -> Option<Format> {
        let essence = media
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            ARROW_STREAM => Some(Format::ArrowStream),
            "text/csv" => Some(Format::Csv),
            "application/x-ndjson" | "application/jsonl" | "application/json-lines" => {
                Some(Format::Ndjson)
            }
            _ => None,
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Format::ArrowStream => ARROW_STREAM,
            Format::Csv => "text/csv",
            Format::Ndjson => "application/x-ndjson",
        }
    }
}

/// Pick the response format from an `Accept` header: the first supported media type listed;
/// `*/*`, a missing header or an empty one means `default`. `Err` lists what is supported.
pub fn negotiate(accept: Option<&str>, default: Format) -> Result<Format, String> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(default);
    };
    for part in accept.split(',') {
        let media = part.split(';').next().unwrap_or("").trim();
        if media == "*/*" {
            return Ok(default);
        }
        if let Some(f) = Format::from_media_type(media) {
            return Ok(f);
        }
    }
    Err(format!(
        "cannot produce {accept:?}: supported are {ARROW_STREAM}, text/csv, application/x-ndjson"
    ))
}

/// Decode an Arrow IPC stream, which may come from anyone: malformed input is an error, never a
/// panic (see [`ipc_guard`](super::ipc_guard)).
pub fn decode_ipc(bytes: &[u8]) -> Result<(SchemaRef, Vec<RecordBatch>), String> {
    use super::ipc_guard::{check_framing, guarded};
    check_framing(bytes).map_err(|e| format!("invalid Arrow IPC stream: {e}"))?;
    guarded(|| {
        let reader = StreamReader::try_new(Cursor::new(bytes), None)
            .map_err(|e| format!("invalid Arrow IPC stream: {e}"))?;
        let schema = reader.schema();
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("invalid Arrow IPC stream: {e}"))?;
        Ok((schema, batches))
    })
    .unwrap_or_else(|| Err("invalid Arrow IPC stream: the decoder rejected it".into()))
}

/// Encode batches as one Arrow IPC stream.
pub fn encode_ipc(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut w = StreamWriter::try_new(&mut out, schema).map_err(|e| e.to_string())?;
    for b in batches {
        w.write(b).map_err(|e| e.to_string())?;
    }
    w.finish().map_err(|e| e.to_string())?;
    drop(w);
    Ok(out)
}

/// Parse request data in `format` into an Arrow IPC stream. Errors describe the bad input.
pub fn to_ipc(format: Format, bytes: &[u8]) -> Result<Vec<u8>, String> {
    match format {
        Format::ArrowStream => {
            // Validate before any plugin sees it, so bad input is a 422 from the host.
            decode_ipc(bytes)?;
            Ok(bytes.to_vec())
        }
        Format::Csv => {
            let fmt = arrow_csv::reader::Format::default().with_header(true);
            let (schema, _) = fmt
                .infer_schema(Cursor::new(bytes), Some(INFER_ROWS))
                .map_err(|e| format!("invalid CSV: {e}"))?;
            if schema.fields().is_empty() {
                return Err("invalid CSV: no header row".into());
            }
            let schema = Arc::new(schema);
            let reader = arrow_csv::ReaderBuilder::new(schema.clone())
                .with_format(fmt)
                .build(Cursor::new(bytes))
                .map_err(|e| format!("invalid CSV: {e}"))?;
            let batches = reader
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("invalid CSV: {e}"))?;
            encode_ipc(&schema, &batches)
        }
        Format::Ndjson => {
            let (schema, _) =
                arrow_json::reader::infer_json_schema(Cursor::new(bytes), Some(INFER_ROWS))
                    .map_err(|e| format!("invalid NDJSON: {e}"))?;
            let schema = Arc::new(schema);
            let reader = arrow_json::ReaderBuilder::new(schema.clone())
                .build(Cursor::new(bytes))
                .map_err(|e| format!("invalid NDJSON: {e}"))?;
            let batches = reader
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("invalid NDJSON: {e}"))?;
            encode_ipc(&schema, &batches)
        }
    }
}

/// Write an Arrow IPC stream (from a plugin) in `format`.
pub fn from_ipc(format: Format, ipc: &[u8]) -> Result<Vec<u8>, String> {
    if format == Format::ArrowStream {
        return Ok(ipc.to_vec());
    }
    let (_, batches) = decode_ipc(ipc).map_err(|e| format!("plugin returned {e}"))?;
    let mut out = Vec::new();
    match format {
        Format::Csv => {
            let mut w = arrow_csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            for b in &batches {
                w.write(b).map_err(|e| e.to_string())?;
            }
        }
        Format::Ndjson => {
            let mut w = arrow_json::LineDelimitedWriter::new(&mut out);
            for b in &batches {
                w.write(b).map_err(|e| e.to_string())?;
            }
            w.finish().map_err(|e| e.to_string())?;
        }
        Format::ArrowStream => unreachable!("handled above"),
    }
    Ok(out)
}

/// Rows written out batch by batch, so a response can stream: a JSON array of row objects
/// (`format` `None`), or a table format. The concatenated output equals writing every batch
/// at once.
pub struct RowEncoder {
    format: Option<Format>,
    /// JSON: `[` written; CSV: the header written.
    started: bool,
    ipc: Option<StreamWriter<Vec<u8>>>,
}

impl RowEncoder {
    pub fn new(format: Option<Format>, schema: &SchemaRef) -> Result<RowEncoder, String> {
        let ipc = match format {
            Some(Format::ArrowStream) => {
                Some(StreamWriter::try_new(Vec::new(), schema).map_err(|e| e.to_string())?)
            }
            _ => None,
        };
        Ok(RowEncoder {
            format,
            started: false,
            ipc,
        })
    }

    /// The bytes of one more batch.
    pub fn batch(&mut self, b: &RecordBatch) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let e = |e: arrow_schema::ArrowError| e.to_string();
        match self.format {
            None => {
                let mut w = arrow_json::ArrayWriter::new(Vec::new());
                w.write(b).map_err(e)?;
                w.finish().map_err(e)?;
                let array = w.into_inner();
                // `[row,row]` → `[row,row` first, `,row,row` after; nothing for no rows.
                let rows = array.get(1..array.len().saturating_sub(1));
                if let Some(rows) = rows.filter(|r| !r.is_empty()) {
                    out.push(if self.started { b',' } else { b'[' });
                    out.extend_from_slice(rows);
                    self.started = true;
                }
            }
            Some(Format::Ndjson) => {
                let mut w = arrow_json::LineDelimitedWriter::new(&mut out);
                w.write(b).map_err(e)?;
                w.finish().map_err(e)?;
            }
            Some(Format::Csv) => {
                let mut w = arrow_csv::WriterBuilder::new()
                    .with_header(!self.started)
                    .build(&mut out);
                w.write(b).map_err(e)?;
                self.started = true;
            }
            Some(Format::ArrowStream) => {
                let w = self.ipc.as_mut().expect("made in new");
                w.write(b).map_err(e)?;
                out = std::mem::take(w.get_mut());
            }
        }
        Ok(out)
    }

    /// The closing bytes.
    pub fn finish(mut self) -> Result<Vec<u8>, String> {
        match (self.format, self.ipc.take()) {
            (None, _) if self.started => Ok(b"]".to_vec()),
            (None, _) => Ok(b"[]".to_vec()),
            (Some(Format::ArrowStream), Some(mut w)) => {
                w.finish().map_err(|e| e.to_string())?;
                Ok(std::mem::take(w.get_mut()))
            }
            _ => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_written_batch_by_batch_equal_rows_written_at_once() {
        let ipc = to_ipc(Format::Csv, b"id,name\n1,a\n2,\n3,c\n").unwrap();
        let (schema, batches) = decode_ipc(&ipc).unwrap();
        let whole = &batches[0];
        let parts = [whole.slice(0, 2), whole.slice(2, 0), whole.slice(2, 1)];
        for format in [None, Some(Format::Csv), Some(Format::Ndjson)] {
            let mut e = RowEncoder::new(format, &schema).unwrap();
            let mut out = Vec::new();
            for p in &parts {
                out.extend(e.batch(p).unwrap());
            }
            out.extend(e.finish().unwrap());
            let expected = match format {
                None => br#"[{"id":1,"name":"a"},{"id":2},{"id":3,"name":"c"}]"#.to_vec(),
                Some(f) => from_ipc(f, &ipc).unwrap(),
            };
            assert_eq!(
                String::from_utf8(out).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
        let mut e = RowEncoder::new(Some(Format::ArrowStream), &schema).unwrap();
        let mut out = Vec::new();
        for p in &parts {
            out.extend(e.batch(p).unwrap());
        }
        out.extend(e.finish().unwrap());
        let (_, back) = decode_ipc(&out).unwrap();
        assert_eq!(back.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
        let empty = RowEncoder::new(None, &schema).unwrap();
        assert_eq!(empty.finish().unwrap(), b"[]");
    }

    #[test]
    fn csv_round_trip_with_inference() {
        let csv = b"id,name,score\n1,a,1.5\n2,b,\n";
        let ipc = to_ipc(Format::Csv, csv).unwrap();
        let (schema, batches) = decode_ipc(&ipc).unwrap();
        assert_eq!(schema.field(0).data_type(), &arrow_schema::DataType::Int64);
        assert_eq!(
            schema.field(2).data_type(),
            &arrow_schema::DataType::Float64
        );
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
        let back = from_ipc(Format::Csv, &ipc).unwrap();
        assert_eq!(
            String::from_utf8(back).unwrap(),
            "id,name,score\n1,a,1.5\n2,b,\n"
        );
        let nd = from_ipc(Format::Ndjson, &ipc).unwrap();
        assert_eq!(
            String::from_utf8(nd).unwrap(),
            "{\"id\":1,\"name\":\"a\",\"score\":1.5}\n{\"id\":2,\"name\":\"b\"}\n"
        );
    }

    #[test]
    fn bad_input_is_described() {
        assert!(
            to_ipc(Format::ArrowStream, b"nope")
                .unwrap_err()
                .contains("Arrow IPC")
        );
        assert!(
            to_ipc(Format::Ndjson, b"{not json")
                .unwrap_err()
                .contains("NDJSON")
        );
        assert!(
            to_ipc(Format::Csv, b"a,b\n1,2,3\n")
                .unwrap_err()
                .contains("CSV")
        );
    }

    #[test]
    fn accept_negotiation() {
        assert_eq!(negotiate(None, Format::Csv), Ok(Format::Csv));
        assert_eq!(negotiate(Some("*/*"), Format::Ndjson), Ok(Format::Ndjson));
        assert_eq!(
            negotiate(Some("text/html, application/x-ndjson"), Format::Csv),
            Ok(Format::Ndjson)
        );
        assert!(negotiate(Some("text/html"), Format::Csv).is_err());
        assert_eq!(
            Format::from_media_type("text/csv; charset=utf-8"),
            Some(Format::Csv)
        );
    }
}
