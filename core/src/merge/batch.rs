//! The body of an event envelope: one operation, or a batch of stamped operations.
//!
//! - **One operation** (the operation's JSON, `{"type":"created",…}`): it carries the
//!   stamp of the envelope's inner header.
//! - **A batch** (`{"type":"batch","ops":[{"wall":W,"counter":C,"op":{…}},…]}`): one to
//!   many operations, each with its own stamp (`wall`, `counter`; the device is the inner
//!   header's). Every replica applies a batch in one step: all of it or, when any
//!   operation in it is invalid, none of it.
//!
//! A transaction is one batch; the changes of one task are packed into as few batches as
//! the frame limit allows.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::op::{Op, StampedOp};
use crate::error::{Error, Result};
use crate::hlc::Hlc;

/// The bytes around a batch's items: `{"type":"batch","ops":[` and `]}`.
pub const BATCH_OVERHEAD: usize = BATCH_HEAD.len() + BATCH_TAIL.len();

const BATCH_HEAD: &[u8] = br#"{"type":"batch","ops":["#;
const BATCH_TAIL: &[u8] = b"]}";

/// One operation with its stamp, as it goes into a batch: the JSON is written once, when
/// the operation is made, so packing can count bytes without serialising again.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchItem {
    /// The operation with its raw stamp.
    pub stamped: StampedOp,
    /// `{"wall":W,"counter":C,"op":{…}}`.
    pub json: Vec<u8>,
}

impl BatchItem {
    /// Writes the item's JSON for `stamped`.
    #[must_use]
    pub fn new(stamped: StampedOp) -> Self {
        let mut json = format!(
            r#"{{"wall":{},"counter":{},"op":"#,
            stamped.hlc.raw.wall, stamped.hlc.raw.counter
        )
        .into_bytes();
        json.extend_from_slice(&stamped.op.to_json());
        json.push(b'}');
        Self { stamped, json }
    }
}

/// The body length of a batch of items whose JSON lengths add up to `items_len`, `count`
/// of them (commas included).
#[must_use]
pub const fn batch_len(items_len: usize, count: usize) -> usize {
    BATCH_OVERHEAD + items_len + count.saturating_sub(1)
}

/// The body for `items`: the bare operation when there is one (it takes the envelope's
/// stamp, which must then be that item's), a batch otherwise. Returns the body and the
/// stamp the envelope is sealed with (the highest in the batch).
///
/// # Panics
/// Never; an empty `items` gives an empty batch, which [`decode_event_body`] refuses, so
/// callers pass at least one item.
#[must_use]
pub fn encode_event_body(items: &[BatchItem]) -> (Vec<u8>, Hlc) {
    let stamp = items
        .iter()
        .map(|i| i.stamped.hlc.raw)
        .max()
        .unwrap_or_default();
    if let [one] = items {
        return (one.stamped.op.to_json(), stamp);
    }
    let len = batch_len(items.iter().map(|i| i.json.len()).sum(), items.len());
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(BATCH_HEAD);
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&item.json);
    }
    body.extend_from_slice(BATCH_TAIL);
    (body, stamp)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireItem<'a> {
    wall: u64,
    counter: u32,
    #[serde(borrow)]
    op: &'a RawValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireBatch<'a> {
    #[serde(rename = "type")]
    _type: serde::de::IgnoredAny,
    #[serde(borrow)]
    ops: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct TypeOnly<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
}

fn invalid(reason: String) -> Error {
    Error::InvalidOperation { reason }
}

/// Parses one batch item; only its object form (serde would also take an array).
fn item(raw: &RawValue) -> Result<WireItem<'_>> {
    if !raw.get().trim_start().starts_with('{') {
        return Err(invalid("a batch item is not an object".into()));
    }
    serde_json::from_str(raw.get()).map_err(|e| invalid(format!("not a batch item: {e}")))
}

/// Decodes an event body sealed with `stamp` (the inner header's clock) into its stamped
/// operations, validating every one.
///
/// # Errors
/// [`Error::InvalidOperation`] when the body is not an operation or a batch, the batch is
/// empty, or any operation in it is invalid (then nothing of it is applied).
pub fn decode_event_body(body: &[u8], stamp: Hlc) -> Result<Vec<StampedOp>> {
    let kind: TypeOnly<'_> = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("not an operation's JSON: {e}")))?;
    if kind.kind.as_deref() != Some("batch") {
        let op = Op::from_json(body)?;
        return Ok(alloc::vec![StampedOp {
            hlc: stamp.into(),
            op
        }]);
    }
    let batch: WireBatch<'_> =
        serde_json::from_slice(body).map_err(|e| invalid(format!("not a batch's JSON: {e}")))?;
    if batch.ops.is_empty() {
        return Err(invalid("a batch holds no operation".into()));
    }
    batch
        .ops
        .iter()
        .map(|raw| {
            let item = item(raw)?;
            Ok(StampedOp {
                hlc: Hlc {
                    wall: item.wall,
                    counter: item.counter,
                    device: stamp.device,
                }
                .into(),
                op: Op::from_json(item.op.get().as_bytes())?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::DeviceId;
    use serde_json::{json, Map};

    const DEVICE: DeviceId = DeviceId([7; 16]);

    fn stamp_for(device: DeviceId, wall: u64, counter: u32) -> Hlc {
        Hlc {
            wall,
            counter,
            device,
        }
    }

    fn created(id: &str, hlc: Hlc) -> BatchItem {
        let mut fields = Map::new();
        fields.insert("title".into(), json!(id));
        BatchItem::new(StampedOp {
            hlc: hlc.into(),
            op: Op::Created {
                collection: "tasks".into(),
                id: id.into(),
                fields,
            },
        })
    }

    #[test]
    fn one_item_is_the_bare_operation_with_the_envelope_stamp() {
        let hlc = stamp_for(DEVICE, 5, 1);
        let (body, stamp) = encode_event_body(&[created("a", hlc)]);
        assert_eq!(stamp, hlc);
        assert!(body.starts_with(br#"{"type":"created""#));
        let ops = decode_event_body(&body, stamp).unwrap();
        assert_eq!(ops, [created("a", hlc).stamped]);
    }

    #[test]
    fn a_batch_keeps_every_stamp_and_its_length_is_known_in_advance() {
        let items = [
            created("a", stamp_for(DEVICE, 5, 0)),
            created("b", stamp_for(DEVICE, 5, 1)),
            created("c", stamp_for(DEVICE, 9, 0)),
        ];
        let (body, stamp) = encode_event_body(&items);
        assert_eq!(
            body.len(),
            batch_len(items.iter().map(|i| i.json.len()).sum(), 3)
        );
        assert_eq!(stamp, stamp_for(DEVICE, 9, 0));
        let ops = decode_event_body(&body, stamp).unwrap();
        let want: Vec<StampedOp> = items.iter().map(|i| i.stamped.clone()).collect();
        assert_eq!(ops, want);
    }

    #[test]
    fn an_escaped_type_still_reads() {
        let body = br#"{"type":"d\u0065leted","collection":"c","id":"x"}"#;
        assert_eq!(decode_event_body(body, Hlc::default()).unwrap().len(), 1);
    }

    #[test]
    fn one_bad_operation_refuses_the_whole_batch() {
        let cases: [(&[u8], &str); 6] = [
            (
                br#"{"type":"batch","ops":[[1,0,{"type":"deleted","collection":"c","id":"x"}]]}"#,
                "not an object",
            ),
            (br#"{"type":"batch","ops":[]}"#, "no operation"),
            (br#"{"type":"batch"}"#, "missing field `ops`"),
            (
                br#"{"type":"batch","ops":[{"wall":1,"counter":0,"op":{"type":"deleted","collection":"c","id":"x"}},{"wall":1,"counter":1,"op":{"type":"deleted","collection":"","id":"x"}}]}"#,
                "1 to 64",
            ),
            (
                br#"{"type":"batch","ops":[{"wall":1,"op":{"type":"deleted","collection":"c","id":"x"}}]}"#,
                "missing field `counter`",
            ),
            (
                br#"{"type":"batch","ops":[{"wall":1,"counter":0,"extra":1,"op":{"type":"deleted","collection":"c","id":"x"}}]}"#,
                "unknown field",
            ),
        ];
        for (body, want) in cases {
            match decode_event_body(body, Hlc::default()) {
                Err(Error::InvalidOperation { reason }) => {
                    assert!(
                        reason.contains(want),
                        "{}: {reason}",
                        String::from_utf8_lossy(body)
                    );
                }
                other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
            }
        }
    }
}
