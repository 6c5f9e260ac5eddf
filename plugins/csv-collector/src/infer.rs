//! CSV schema inference without regular expressions.
//!
//! arrow-csv's `Format::infer_schema` classifies every value with a `RegexSet` that is compiled
//! on first use. A plugin instance is fresh for every call, so that compile (~3.5 ms in Wasm) was
//! most of every call's cost. This module applies the same rules with hand-written matchers; the
//! tests check it against arrow-csv on the same inputs. The one deliberate difference: digits
//! are ASCII only (the regexes' `\d` also takes other Unicode digits, which the CSV decoder then
//! fails to parse; here such values are text).

use arrow_schema::{DataType, Field, Schema, TimeUnit};

/// Bit per class, in arrow-csv's order: 0 boolean, 1 integer, 2 float, 3 date, 4–7 timestamps
/// (s, ms, µs, ns), 8 text.
const UTF8: u16 = 1 << 8;

fn digits(s: &[u8]) -> usize {
    s.iter().take_while(|b| b.is_ascii_digit()).count()
}

/// `[+-]?\d+` as the whole string.
fn is_integer(s: &[u8]) -> bool {
    let s = s
        .strip_prefix(b"+")
        .or_else(|| s.strip_prefix(b"-"))
        .unwrap_or(s);
    !s.is_empty() && digits(s) == s.len()
}

/// `[+-]?((\d*\.\d+|\d+\.\d*)([eE][-+]?\d+)?|\d+([eE][-+]?\d+))` as the whole string.
fn is_decimal(s: &[u8]) -> bool {
    let s = s
        .strip_prefix(b"+")
        .or_else(|| s.strip_prefix(b"-"))
        .unwrap_or(s);
    let int = digits(s);
    let rest = &s[int..];
    let (mantissa_ok, rest) = match rest.strip_prefix(b".") {
        Some(after) => {
            let frac = digits(after);
            (int + frac > 0, &after[frac..])
        }
        None => (false, rest),
    };
    let exponent = |r: &[u8]| -> Option<usize> {
        let r = r.strip_prefix(b"e").or_else(|| r.strip_prefix(b"E"))?;
        let r = r
            .strip_prefix(b"+")
            .or_else(|| r.strip_prefix(b"-"))
            .unwrap_or(r);
        let n = digits(r);
        (n > 0 && n == r.len()).then_some(n)
    };
    if mantissa_ok {
        rest.is_empty() || exponent(rest).is_some()
    } else {
        // No dot: digits followed by a mandatory exponent.
        int > 0 && rest.len() < s.len() && exponent(rest).is_some()
    }
}

/// `\d{4}-\d\d-\d\d`, the prefix of dates and timestamps.
fn is_date(s: &[u8]) -> bool {
    s.len() == 10
        && s.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
}

/// The timestamp class of `s` (4 seconds … 7 nanoseconds), if it is one.
fn timestamp_class(s: &[u8]) -> Option<u32> {
    if s.len() < 19 || !is_date(&s[..10]) || !matches!(s[10], b'T' | b' ') {
        return None;
    }
    let time = &s[11..19];
    let time_ok = time.iter().enumerate().all(|(i, b)| match i {
        2 | 5 => *b == b':',
        _ => b.is_ascii_digit(),
    });
    if !time_ok {
        return None;
    }
    // `.` in the regexes' `(?:[^\d].*)?` does not match a newline.
    let tail_ok = |t: &[u8]| !t.contains(&b'\n');
    let rest = &s[19..];
    match rest.first() {
        None => Some(4),
        Some(b'.') => {
            let frac = digits(&rest[1..]);
            let after = &rest[1 + frac..];
            if !tail_ok(after) {
                return None;
            }
            match frac {
                1..=3 => Some(5),
                4..=6 => Some(6),
                7..=9 => Some(7),
                _ => None,
            }
        }
        Some(b) if !b.is_ascii_digit() => tail_ok(rest).then_some(4),
        Some(_) => None,
    }
}

/// The class bit a non-null value sets (arrow-csv's `InferredDataType::update`).
fn class(value: &str) -> u16 {
    let s = value.as_bytes();
    if value.starts_with('"') {
        return UTF8;
    }
    let m = if value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false") {
        Some(0)
    } else if is_integer(s) {
        Some(1)
    } else if is_decimal(s) {
        Some(2)
    } else if is_date(s) {
        Some(3)
    } else {
        timestamp_class(s)
    };
    match m {
        Some(1) if s.len() >= 19 && value.parse::<i64>().is_err() => UTF8,
        Some(m) => 1 << m,
        None if matches!(value, "NaN" | "nan" | "inf" | "-inf") => 1 << 2,
        None => UTF8,
    }
}

/// The type a column's accumulated class bits mean (arrow-csv's `InferredDataType::get`).
fn data_type(packed: u16) -> DataType {
    match packed {
        0 => DataType::Null,
        1 => DataType::Boolean,
        2 => DataType::Int64,
        4 | 6 => DataType::Float64,
        b if b != 0 && (b & !0b1111_1000) == 0 => match b.leading_zeros() {
            8 => DataType::Timestamp(TimeUnit::Nanosecond, None),
            9 => DataType::Timestamp(TimeUnit::Microsecond, None),
            10 => DataType::Timestamp(TimeUnit::Millisecond, None),
            11 => DataType::Timestamp(TimeUnit::Second, None),
            _ => DataType::Date32,
        },
        _ => DataType::Utf8,
    }
}

/// Infer a CSV schema from every record, as `arrow_csv::reader::Format::infer_schema` does with
/// the default format plus `header` and `delimiter`: empty fields are nulls, columns nullable,
/// headerless columns named `column_1`, `column_2`, ...
pub fn infer_schema(data: &[u8], header: bool, delimiter: u8) -> Result<Schema, csv::Error> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(header)
        .flexible(false)
        .delimiter(delimiter)
        .from_reader(data);
    let names: Vec<String> = if header {
        reader.headers()?.iter().map(str::to_string).collect()
    } else {
        (0..reader.headers()?.len())
            .map(|i| format!("column_{}", i + 1))
            .collect()
    };
    let mut packed = vec![0u16; names.len()];
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record)? {
        for (p, value) in packed.iter_mut().zip(record.iter()) {
            if !value.is_empty() {
                *p |= class(value);
            }
        }
    }
    Ok(Schema::new(
        names
            .iter()
            .zip(packed)
            .map(|(n, p)| Field::new(n, data_type(p), true))
            .collect::<Vec<_>>(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn arrow_csv(data: &str, header: bool) -> Schema {
        arrow_csv::reader::Format::default()
            .with_header(header)
            .with_delimiter(b',')
            .infer_schema(Cursor::new(data.as_bytes()), None)
            .unwrap()
            .0
    }

    #[test]
    fn agrees_with_arrow_csv_value_by_value() {
        let values = [
            "true",
            "FALSE",
            "True",
            "tru",
            "0",
            "-12",
            "+7",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775809",
            "1.5",
            ".5",
            "5.",
            "-.5e3",
            "1e10",
            "1E+3",
            "1e",
            "e5",
            ".",
            "+",
            "-",
            "1.2.3",
            "NaN",
            "nan",
            "inf",
            "-inf",
            "Inf",
            "2024-01-31",
            "2024-1-31",
            "20240131",
            "2024-01-31 12:34:56",
            "2024-01-31T12:34:56",
            "2024-01-31T12:34:56Z",
            "2024-01-31T12:34:56+02:00",
            "2024-01-31T12:34:56.1",
            "2024-01-31T12:34:56.123",
            "2024-01-31T12:34:56.1234",
            "2024-01-31T12:34:56.123456Z",
            "2024-01-31T12:34:56.1234567",
            "2024-01-31T12:34:56.123456789",
            "2024-01-31T12:34:56.1234567890",
            "2024-01-31T12:34:567",
            "2024-01-31T12:34",
            "2024-01-31X12:34:56",
            "2024-01-31T12:34:56.",
            "hello",
            "1 2",
            "\"q\"",
            "-0.0",
        ];
        for v in values {
            let data = format!(
                "c\n{}\n",
                if v.contains('"') {
                    format!("\"{}\"", v.replace('"', "\"\""))
                } else {
                    v.to_string()
                }
            );
            let ours = infer_schema(data.as_bytes(), true, b',').unwrap();
            assert_eq!(ours, arrow_csv(&data, true), "value {v:?}");
        }
    }

    #[test]
    fn agrees_with_arrow_csv_on_mixed_columns() {
        let data = "a,b,c,d,e,f\n1,1.5,true,2024-01-01,2024-01-01 00:00:00,x\n2,3,false,,2024-01-01 00:00:00.123,\n,4e2,,2024-02-02,2024-01-01T00:00:00.5,7\n";
        assert_eq!(
            infer_schema(data.as_bytes(), true, b',').unwrap(),
            arrow_csv(data, true)
        );
        let headerless = "1,a\n2,b\n";
        assert_eq!(
            infer_schema(headerless.as_bytes(), false, b',').unwrap(),
            arrow_csv(headerless, false)
        );
        let only_header = "x,y\n";
        assert_eq!(
            infer_schema(only_header.as_bytes(), true, b',').unwrap(),
            arrow_csv(only_header, true)
        );
        assert!(
            infer_schema(b"a,b\n1\n", true, b',').is_err(),
            "ragged rows are an error"
        );
    }
}
