//! Parsing S3 bucket notifications into [`Event`]s.
//!
//! Accepted shapes: AWS S3's `{"Records": [...]}` (directly, or as delivered by an SNS/SQS
//! forwarder that posts the inner message) and MinIO's webhook variant of it, which keeps the
//! `s3:` prefix on `eventName`, escapes `/` in keys as `%2F` and adds a top-level `Key`. Keys are
//! decoded as `application/x-www-form-urlencoded` (`+` first, then `%XX`), which handles both AWS's `+` for space and
//! MinIO's `%2F`. The `s3:TestEvent` sent when a notification is configured is acknowledged and
//! ignored, as are event types other than object created/removed.

use super::{Event, EventKind, Source};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Notification {
    #[serde(rename = "Records", default)]
    records: Option<Vec<Record>>,
    #[serde(rename = "Event", default)]
    event: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    event_name: String,
    s3: S3Entity,
}

#[derive(Debug, Deserialize)]
struct S3Entity {
    bucket: Bucket,
    object: Object,
}

#[derive(Debug, Deserialize)]
struct Bucket {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Object {
    key: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default, rename = "eTag")]
    etag: Option<String>,
    #[serde(default)]
    version_id: Option<String>,
    #[serde(default)]
    sequencer: Option<String>,
}

/// What a notification body contained.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Object created/removed events, with the bucket each names.
    pub events: Vec<(String, Event)>,
    /// Records or messages acknowledged without effect (test events, other event types).
    pub ignored: usize,
}

/// Parse a notification body. `Err` is a malformed body (400).
pub fn parse(body: &[u8]) -> Result<Parsed, String> {
    let n: Notification =
        serde_json::from_slice(body).map_err(|e| format!("not an S3 notification: {e}"))?;
    let mut out = Parsed::default();
    let Some(records) = n.records else {
        return match n.event.as_deref() {
            Some("s3:TestEvent") => {
                out.ignored = 1;
                Ok(out)
            }
            _ => Err("not an S3 notification: no Records array and no s3:TestEvent".into()),
        };
    };
    for r in records {
        let name = r.event_name.strip_prefix("s3:").unwrap_or(&r.event_name);
        let kind = if name.starts_with("ObjectCreated:") {
            EventKind::Created
        } else if name.starts_with("ObjectRemoved:") {
            EventKind::Deleted
        } else {
            out.ignored += 1;
            continue;
        };
        // A key that does not decode cannot name an object here; skip it rather than make the
        // sender retry the whole batch forever.
        let Some(key) = decode_key(&r.s3.object.key)
            .ok()
            .filter(|k| crate::platform::storage::path(k).is_ok())
        else {
            tracing::warn!(
                key = r.s3.object.key,
                "ignoring a notification with an undecodable key"
            );
            out.ignored += 1;
            continue;
        };
        let bucket = r.s3.bucket.name;
        let o = r.s3.object;
        let ev = Event::object(
            &format!("s3://{bucket}"),
            &key,
            kind,
            o.size,
            o.etag.filter(|e| !e.is_empty()),
            o.version_id.filter(|v| !v.is_empty()),
            o.sequencer,
            Source::S3,
        );
        out.events.push((bucket, ev));
    }
    Ok(out)
}

/// Decode a notification key (`+` is space, `%XX` is a byte); the result must be UTF-8.
pub fn decode_key(raw: &str) -> Result<String, String> {
    let spaced = raw.replace('+', " ");
    let key = percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map_err(|_| format!("key {raw:?} is not UTF-8 once decoded"))?
        .into_owned();
    if key.is_empty() {
        return Err("empty object key".into());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_aws_and_minio_keys() {
        assert_eq!(decode_key("raw/my+file.csv").unwrap(), "raw/my file.csv");
        assert_eq!(decode_key("raw%2Fa%2Bb.csv").unwrap(), "raw/a+b.csv");
        assert_eq!(decode_key("raw/%C3%A9t%C3%A9.csv").unwrap(), "raw/été.csv");
        assert!(decode_key("raw/%FF.csv").is_err());
    }

    #[test]
    fn test_event_and_other_types_are_ignored() {
        let p = parse(br#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#).unwrap();
        assert_eq!((p.events.len(), p.ignored), (0, 1));
        let p = parse(br#"{"Records":[{"eventName":"s3:ObjectRestore:Post","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}"#).unwrap();
        assert_eq!((p.events.len(), p.ignored), (0, 1));
        assert!(parse(b"{}").is_err());
        assert!(parse(b"[").is_err());
    }

    #[test]
    fn keys_the_store_cannot_name_are_ignored() {
        let body = br#"{"Records":[
            {"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"raw//a.csv"}}},
            {"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"raw/%FF"}}},
            {"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"%2Fauth%2Fx"}}}]}"#;
        let p = parse(body).unwrap();
        assert_eq!((p.events.len(), p.ignored), (0, 3));
    }
}
