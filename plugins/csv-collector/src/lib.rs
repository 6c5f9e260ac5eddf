//! `csv-collector` — an aimass collector turning CSV or newline-delimited JSON into Arrow.
//!
//! The format is chosen by the source's content type (parameters after `;` are ignored, case is
//! not significant):
//!
//! | content type | parser |
//! | --- | --- |
//! | `text/csv` | arrow-csv; schema inferred from all records with arrow-csv's rules (see `infer.rs`: the same rules without compiling regexes in every instance) |
//! | `application/x-ndjson`, `application/jsonl`, `application/json-lines` | arrow-json; schema inferred from all lines with `infer_json_schema` |
//!
//! Any other content type, an empty (or whitespace-only) input and data the parser rejects
//! (ragged CSV rows, malformed JSON, values that do not fit the inferred type) are invalid-input
//! errors. A leading UTF-8 byte-order mark is skipped.
//!
//! Type inference reads the whole input once before decoding it: CSV columns become `Int64`,
//! `Float64`, `Boolean`, `Date32`, `Timestamp` or `Utf8` (empty fields are nulls); JSON fields
//! also become lists and structs. Columns are nullable. A column with no value at all (every
//! field empty / every JSON value null or absent) would be inferred as Arrow's `Null` type; it is
//! typed `Utf8` instead (all nulls), which every downstream kernel and writer handles. So a CSV
//! with only a header gives a table with its columns, all `Utf8`, and no rows.
//!
//! # Config
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `delimiter` | `,` | CSV field delimiter: one ASCII character, or `\t` / `tab` for a tab |
//! | `header` | `true` | whether the first CSV line holds column names (otherwise `column_1`, `column_2`...) |
//! | `batch_size` | `8192` | rows per output record batch (CSV and JSON), at least 1 |
//! | `url` | none | fetch the data from this `http(s)://` URL instead of the input (see below) |
//!
//! The keys are accepted for every content type (a hook's config may serve several); `delimiter`
//! and `header` only affect CSV.
//!
//! With `url`, the collector GETs the URL through `wasi:http/outgoing-handler` and parses the
//! response body by the response's content type (else the input's). The host denies the request
//! unless the plugin was uploaded with the URL's host in its outbound grant
//! (`?outbound=data.example.com`); a denied request, a non-2xx status or a failed transfer is an
//! invalid-input error naming the URL and the reason.

mod fetch;
mod infer;

use std::io::Cursor;
use std::sync::Arc;

use aimass_plugin_sdk::{Collector, Config, Error, Result, Source, Table, export_collector, log};
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};

/// The plugin type bound to the `collector` world.
pub struct CsvCollector;

impl Collector for CsvCollector {
    fn collect(input: Source, config: &Config) -> Result<Table> {
        match config.get("url") {
            Some(url) => {
                let (content_type, data) = fetch::get(url)?;
                let fetched = Source {
                    content_type: content_type.unwrap_or(input.content_type),
                    name: Some(url.to_string()),
                    data,
                };
                collect(&fetched, config)
            }
            None => collect(&input, config),
        }
    }
}

export_collector!(CsvCollector);

/// Config keys this plugin accepts.
pub const CONFIG_KEYS: &[&str] = &["delimiter", "header", "batch_size", "url"];

/// Content types read as CSV.
pub const CSV_TYPES: &[&str] = &["text/csv"];

/// Content types read as newline-delimited JSON.
pub const NDJSON_TYPES: &[&str] = &[
    "application/x-ndjson",
    "application/jsonl",
    "application/json-lines",
];

/// Default rows per output batch.
pub const DEFAULT_BATCH_SIZE: usize = 8192;

/// Parsed configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub delimiter: u8,
    pub header: bool,
    pub batch_size: usize,
}

impl Options {
    /// Read and validate the config.
    pub fn from_config(config: &Config) -> Result<Self> {
        config.check_keys(CONFIG_KEYS)?;
        let delimiter = match config.get("delimiter") {
            None => b',',
            Some(v) => parse_delimiter(v)?,
        };
        let header = config.flag("header", true)?;
        let batch_size = config.parse_or("batch_size", DEFAULT_BATCH_SIZE)?;
        if batch_size == 0 {
            return Err(Error::invalid_config("`batch_size` must be at least 1"));
        }
        Ok(Self {
            delimiter,
            header,
            batch_size,
        })
    }
}

fn parse_delimiter(value: &str) -> Result<u8> {
    match value {
        "\t" | "\\t" | "tab" => Ok(b'\t'),
        v if v.len() == 1 && v.is_ascii() && v != "\n" && v != "\r" && v != "\"" => {
            Ok(v.as_bytes()[0])
        }
        v => Err(Error::invalid_config(format!(
            "invalid value {v:?} for config key `delimiter`: expected one ASCII character \
             (other than a quote or a line break), or `\\t`"
        ))),
    }
}

/// Parse `source` into a table according to its content type (see the module docs).
pub fn collect(source: &Source, config: &Config) -> Result<Table> {
    let options = Options::from_config(config)?;
    let media_type = source.media_type();
    let mut data = source.data.as_slice();
    if let Some(rest) = data.strip_prefix(b"\xEF\xBB\xBF") {
        data = rest;
    }
    let is_csv = CSV_TYPES.contains(&media_type.as_str());
    let is_ndjson = NDJSON_TYPES.contains(&media_type.as_str());
    if !is_csv && !is_ndjson {
        return Err(Error::invalid_input(format!(
            "unsupported content type `{}` (supported: {}, {})",
            source.content_type,
            CSV_TYPES.join(", "),
            NDJSON_TYPES.join(", ")
        )));
    }
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::invalid_input(format!(
            "empty input: no {} data",
            if is_csv { "CSV" } else { "JSON" }
        )));
    }
    let table = if is_csv {
        read_csv(data, &options)?
    } else {
        read_ndjson(data, &options)?
    };
    log::debug(format!(
        "collected {} rows x {} columns from {}",
        table.num_rows(),
        table.num_columns(),
        source.name.as_deref().unwrap_or("unnamed source")
    ));
    Ok(table)
}

/// Top-level columns inferred as `Null` (no value seen) become nullable `Utf8`.
fn null_columns_as_utf8(schema: Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Null => f
                .as_ref()
                .clone()
                .with_data_type(DataType::Utf8)
                .with_nullable(true),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Read CSV bytes, inferring the schema from every record.
pub fn read_csv(data: &[u8], options: &Options) -> Result<Table> {
    let format = arrow_csv::reader::Format::default()
        .with_header(options.header)
        .with_delimiter(options.delimiter);
    let schema = infer::infer_schema(data, options.header, options.delimiter)
        .map_err(|e| Error::invalid_input(format!("cannot read CSV: {e}")))?;
    let schema = null_columns_as_utf8(schema);
    let reader = arrow_csv::ReaderBuilder::new(schema.clone())
        .with_format(format)
        .with_batch_size(options.batch_size)
        .build(Cursor::new(data))
        .map_err(|e| Error::invalid_input(format!("cannot read CSV: {e}")))?;
    let batches = reader
        .collect::<Result<Vec<RecordBatch>, _>>()
        .map_err(|e| Error::invalid_input(format!("cannot read CSV: {e}")))?;
    Ok(Table::new(schema, batches))
}

/// Read newline-delimited JSON objects, inferring the schema from every line.
pub fn read_ndjson(data: &[u8], options: &Options) -> Result<Table> {
    let (schema, _) = arrow_json::reader::infer_json_schema(data, None)
        .map_err(|e| Error::invalid_input(format!("cannot read NDJSON: {e}")))?;
    let schema = null_columns_as_utf8(schema);
    let reader = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(options.batch_size)
        .build(data)
        .map_err(|e| Error::invalid_input(format!("cannot read NDJSON: {e}")))?;
    let batches = reader
        .collect::<Result<Vec<RecordBatch>, _>>()
        .map_err(|e| Error::invalid_input(format!("cannot read NDJSON: {e}")))?;
    Ok(Table::new(schema, batches))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use arrow_array::{Array, BooleanArray};

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        Config::from_pairs(pairs.iter().copied())
    }

    fn src(content_type: &str, data: &str) -> Source {
        Source::new(content_type, data.as_bytes().to_vec())
    }

    fn types(table: &Table) -> Vec<(String, DataType)> {
        table
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect()
    }

    #[test]
    fn csv_infers_types_and_values() {
        let t = collect(
            &src(
                "text/csv",
                "id,score,name,ok\n1,2.5,x,true\n2,,y,false\n3,4,,true\n",
            ),
            &Config::default(),
        )
        .unwrap();
        assert_eq!(
            types(&t),
            vec![
                ("id".into(), DataType::Int64),
                ("score".into(), DataType::Float64),
                ("name".into(), DataType::Utf8),
                ("ok".into(), DataType::Boolean),
            ]
        );
        let b = t.concat().unwrap();
        assert_eq!(b.column(0).as_primitive::<Int64Type>().values(), &[1, 2, 3]);
        let score = b.column(1).as_primitive::<Float64Type>();
        assert_eq!(
            score.iter().collect::<Vec<_>>(),
            vec![Some(2.5), None, Some(4.0)]
        );
        let name = b.column(2).as_string::<i32>();
        assert_eq!(
            name.iter().collect::<Vec<_>>(),
            vec![Some("x"), Some("y"), None]
        );
        assert_eq!(
            b.column(3).as_boolean(),
            &BooleanArray::from(vec![true, false, true])
        );
    }

    #[test]
    fn csv_content_type_parameters_and_case_are_ignored() {
        let t = collect(
            &src("Text/CSV; charset=utf-8", "a\n1\n"),
            &Config::default(),
        )
        .unwrap();
        assert_eq!(t.num_rows(), 1);
    }

    #[test]
    fn csv_delimiter_header_and_batch_size() {
        let data = "1;a\n2;b\n3;c\n";
        let t = collect(
            &src("text/csv", data),
            &cfg(&[("delimiter", ";"), ("header", "false"), ("batch_size", "2")]),
        )
        .unwrap();
        assert_eq!(
            types(&t),
            vec![
                ("column_1".into(), DataType::Int64),
                ("column_2".into(), DataType::Utf8),
            ]
        );
        assert_eq!(
            t.batches().iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
            vec![2, 1]
        );

        let t = collect(
            &src("text/csv", "a\tb\n1\t2\n"),
            &cfg(&[("delimiter", "\\t")]),
        )
        .unwrap();
        assert_eq!(t.num_columns(), 2);
    }

    #[test]
    fn csv_header_only_gives_columns_without_rows() {
        let t = collect(&src("text/csv", "a,b\n"), &Config::default()).unwrap();
        assert_eq!(t.num_columns(), 2);
        assert_eq!(t.num_rows(), 0);
        assert_eq!(t.schema().field(1).data_type(), &DataType::Utf8);
        // And it still encodes as a valid IPC stream.
        assert_eq!(
            Table::from_ipc(t.to_ipc().unwrap()).unwrap().num_columns(),
            2
        );
    }

    #[test]
    fn csv_bom_is_skipped() {
        let t = collect(&src("text/csv", "\u{feff}id\n1\n"), &Config::default()).unwrap();
        assert_eq!(t.schema().field(0).name(), "id");
    }

    #[test]
    fn csv_ragged_rows_are_invalid_input() {
        let err = collect(&src("text/csv", "a,b\n1,2\n3\n"), &Config::default()).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    }

    #[test]
    fn ndjson_infers_types_for_every_alias() {
        let data = "{\"a\": 1, \"b\": \"x\"}\n{\"a\": 2, \"b\": null, \"c\": true}\n\n{\"a\": 3, \"c\": false}\n";
        for ct in NDJSON_TYPES {
            let t = collect(&src(ct, data), &Config::default()).unwrap();
            let mut ty = types(&t);
            ty.sort_by(|x, y| x.0.cmp(&y.0));
            assert_eq!(
                ty,
                vec![
                    ("a".into(), DataType::Int64),
                    ("b".into(), DataType::Utf8),
                    ("c".into(), DataType::Boolean),
                ]
            );
            let b = t.concat().unwrap();
            let a = b.column_by_name("a").unwrap().as_primitive::<Int64Type>();
            assert_eq!(a.values(), &[1, 2, 3]);
            let bcol = b.column_by_name("b").unwrap();
            assert_eq!(bcol.null_count(), 2);
            let c = b.column_by_name("c").unwrap().as_boolean();
            assert_eq!(
                c.iter().collect::<Vec<_>>(),
                vec![None, Some(true), Some(false)]
            );
        }
    }

    #[test]
    fn all_empty_columns_are_utf8() {
        let t = collect(&src("text/csv", "a,b\n1,\n2,\n"), &Config::default()).unwrap();
        assert_eq!(t.schema().field(1).data_type(), &DataType::Utf8);
        assert_eq!(t.concat().unwrap().column(1).null_count(), 2);
        let t = collect(
            &src("application/x-ndjson", "{\"a\": 1, \"b\": null}\n"),
            &Config::default(),
        )
        .unwrap();
        let b = t.schema().field_with_name("b").unwrap().clone();
        assert_eq!(b.data_type(), &DataType::Utf8);
    }

    #[test]
    fn ndjson_batch_size_and_errors() {
        let t = collect(
            &src(
                "application/x-ndjson; charset=utf-8",
                "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n",
            ),
            &cfg(&[("batch_size", "1")]),
        )
        .unwrap();
        assert_eq!(t.batches().len(), 3);
        let err = collect(
            &src("application/jsonl", "{\"a\": 1}\n{oops\n"),
            &Config::default(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    }

    #[test]
    fn unknown_content_type_is_named() {
        let err = collect(&src("application/pdf", "%PDF"), &Config::default()).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput(m) if m.contains("`application/pdf`")),
            "{err}"
        );
    }

    #[test]
    fn empty_input_is_invalid_input() {
        for ct in ["text/csv", "application/x-ndjson"] {
            let err = collect(&src(ct, ""), &Config::default()).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidInput(m) if m.contains("empty")),
                "{err}"
            );
            let err = collect(&src(ct, " \n\n"), &Config::default()).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)));
        }
    }

    #[test]
    fn bad_config_is_invalid_config() {
        for pairs in [
            [("delimiter", ";;")],
            [("delimiter", "")],
            [("header", "perhaps")],
            [("batch_size", "0")],
            [("batch_size", "-3")],
            [("delimter", ",")],
        ] {
            let err = collect(&src("text/csv", "a\n1\n"), &cfg(&pairs)).unwrap_err();
            assert!(matches!(err, Error::InvalidConfig(_)), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn through_ipc_like_the_host() {
        let bytes = aimass_plugin_sdk::__private::collect::<CsvCollector>(
            src("text/csv", "x\n1\n2\n"),
            vec![],
        )
        .unwrap();
        let t = Table::from_ipc(bytes).unwrap();
        assert_eq!(t.num_rows(), 2);
    }
}
