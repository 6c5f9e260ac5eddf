//! Arrow IPC streams from untrusted sources (API request bodies, plugin outputs) checked before
//! arrow-ipc reads them.
//!
//! arrow-ipc trusts the offsets and lengths inside a stream: a buffer that claims to extend past
//! its message body makes the reader slice out of bounds, which is a panic, not an error (the
//! `invoke_decode` fuzz target found one in a few seconds; upstream: apache/arrow-rs#7124). A
//! panic in a request handler drops the connection without an answer, so [`check_framing`]
//! walks the stream's messages first — every message's metadata and body lie inside the input,
//! every buffer inside its body — and [`guarded`] catches whatever arrow still panics on, so it
//! can be reported as invalid input. [`in_guarded`] lets a panic hook (the fuzz harness's) tell
//! those handled panics from real ones.

use std::cell::Cell;

/// `0xFFFFFFFF`: the continuation marker in front of each message's length since Arrow 0.15.
const CONTINUATION: i32 = -1;

/// Check that every message of the IPC stream in `bytes` lies within it. Errors say where the
/// stream is malformed.
pub fn check_framing(bytes: &[u8]) -> Result<(), String> {
    let mut at = 0usize;
    loop {
        let rest = &bytes[at..];
        if rest.is_empty() {
            return Ok(()); // no end-of-stream marker: the reader stops here too
        }
        let word = |i: usize| -> Result<i32, String> {
            rest.get(i..i + 4)
                .map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")))
                .ok_or_else(|| format!("truncated message length at byte {}", at + i))
        };
        let (mut len, mut head) = (word(0)?, 4);
        if len == CONTINUATION {
            len = word(4)?;
            head = 8;
        }
        if len == 0 {
            return Ok(()); // end-of-stream marker
        }
        let len =
            usize::try_from(len).map_err(|_| format!("negative message length at byte {at}"))?;
        let meta = rest
            .get(head..head + len)
            .ok_or_else(|| format!("message at byte {at} claims {len} bytes of metadata"))?;
        let message =
            arrow_ipc::root_as_message(meta).map_err(|e| format!("message at byte {at}: {e}"))?;
        let body = usize::try_from(message.bodyLength())
            .ok()
            .filter(|b| head + len + b <= rest.len())
            .ok_or_else(|| {
                format!(
                    "message at byte {at} claims a body of {} bytes",
                    message.bodyLength()
                )
            })?;
        let batch = message
            .header_as_record_batch()
            .or_else(|| message.header_as_dictionary_batch().and_then(|d| d.data()));
        if let Some(buffers) = batch.and_then(|b| b.buffers()) {
            for (i, buf) in buffers.iter().enumerate() {
                let end = buf.offset().checked_add(buf.length());
                let inside =
                    buf.offset() >= 0 && buf.length() >= 0 && end.is_some_and(|e| e <= body as i64);
                if !inside {
                    return Err(format!(
                        "buffer {i} of the message at byte {at} lies outside its {body}-byte body"
                    ));
                }
            }
        }
        at += head + len + body;
    }
}

thread_local! {
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

/// Run `f`, turning a panic into `None`.
pub fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    let was = GUARDED.replace(true);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    GUARDED.set(was);
    r.ok()
}

/// Whether this thread is inside [`guarded`] (for panic hooks).
pub fn in_guarded() -> bool {
    GUARDED.get()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::formats::{decode_ipc, encode_ipc};
    use arrow_array::{Int64Array, RecordBatch};
    use std::sync::Arc;

    fn stream() -> Vec<u8> {
        let b = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1, 2, 3])) as _)])
            .unwrap();
        encode_ipc(&b.schema(), &[b]).unwrap()
    }

    #[test]
    fn a_real_stream_passes() {
        check_framing(&stream()).unwrap();
        assert_eq!(decode_ipc(&stream()).unwrap().1[0].num_rows(), 3);
    }

    /// The bytes of the end-of-stream marker (continuation, zero length).
    const EOS: usize = 8;

    #[test]
    fn every_truncation_and_length_corruption_is_an_error_not_a_panic() {
        let s = stream();
        // Cut anywhere: an error, except at a message boundary, which reads as a stream ending
        // there (its end-of-stream marker is optional): after the schema (no batches) or after
        // the batch (whole). Never a batch of another size.
        let mut accepted = Vec::new();
        for cut in 0..s.len() {
            if let Ok((_, batches)) = decode_ipc(&s[..cut]) {
                let rows: Vec<usize> = batches.iter().map(|b| b.num_rows()).collect();
                assert!(rows.is_empty() || rows == [3], "cut at {cut}: {rows:?}");
                accepted.push(cut);
            }
        }
        let before_the_end = accepted.iter().filter(|&&c| c < s.len() - EOS).count();
        assert!(
            before_the_end <= 1 && accepted.len() <= 1 + EOS,
            "cuts read as whole streams: {accepted:?} of {}",
            s.len()
        );
        // Corrupt each byte of the stream in turn, several ways: an error, or (a flipped value
        // or padding) the same shape, never a batch of another size.
        let mut refused = 0;
        for i in 0..s.len() {
            for v in [0x00, 0xFF, 0x7F, 0x80, s[i] ^ 0x40] {
                let mut bad = s.clone();
                bad[i] = v;
                match decode_ipc(&bad) {
                    Err(_) => refused += 1,
                    Ok((_, batches)) => {
                        let rows: Vec<usize> = batches.iter().map(|b| b.num_rows()).collect();
                        assert!(
                            rows == [3] || rows.is_empty(),
                            "byte {i} = {v:#x}: {rows:?}"
                        );
                    }
                }
            }
        }
        assert!(refused > s.len(), "only {refused} corruptions refused");
    }

    #[test]
    fn a_buffer_past_its_body_is_refused() {
        let mut s = stream();
        // Grow the last buffer's length field (little-endian i64s in the metadata) until the
        // framing check names it: find a length value of the record batch and inflate it.
        let mut refused = false;
        for i in 0..s.len().saturating_sub(8) {
            let v = i64::from_le_bytes(s[i..i + 8].try_into().unwrap());
            if v == 24 {
                // 3 x i64 = the data buffer's length
                s[i..i + 8].copy_from_slice(&(1i64 << 24).to_le_bytes());
                let e = check_framing(&s).unwrap_err();
                assert!(e.contains("outside its"), "{e}");
                assert!(decode_ipc(&s).is_err());
                refused = true;
                break;
            }
        }
        assert!(refused, "no buffer length found to corrupt");
    }
}
