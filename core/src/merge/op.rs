//! Operations: the JSON body of an event envelope, and their validation.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The longest collection name, in bytes (`[A-Za-z0-9_-]`).
pub const MAX_COLLECTION_LEN: usize = 64;
/// The longest entity id, in bytes.
pub const MAX_ID_LEN: usize = 128;
/// The longest field name, in bytes.
pub const MAX_FIELD_NAME_LEN: usize = 128;
/// The most fields one `created`/`updated` may carry.
pub const MAX_FIELDS: usize = 256;
/// The most items one `reordered` may carry.
pub const MAX_REORDER_ITEMS: usize = 10_000;
/// The longest sort key, in bytes.
pub const MAX_SORT_KEY_LEN: usize = 1_024;

/// The field holding an entity's sort key in read objects and in `created`/`updated`.
pub const SORT_ORDER: &str = "sortOrder";
/// The claim fields, set together by a `claimed` operation only.
pub const CLAIM_FIELDS: [&str; 3] = ["claimedBy", "claimedByName", "claimedByAvatar"];

/// One change to the replicated state, as front ends write it (camelCase JSON, tagged by
/// `type`). Build one, [`Op::validate`] it (or decode it with [`Op::from_json`], which
/// validates), stamp it with an [`Hlc`] and apply it.
///
/// It serialises with serde; it decodes only through [`Op::from_json`], which reads the
/// tag and then the variant's fields straight from the bytes. (serde's derived decoding of
/// an internally tagged enum buffers the whole object in a generic tree first: slower, and
/// about 29 KB of the SDK's wasm before optimisation.)
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Op {
    /// A new entity with all its fields. The field `id`, if present, must equal `id` and is
    /// not stored; a string `sortOrder` sets the sort key.
    Created {
        /// Collection name.
        collection: String,
        /// Entity id (random, chosen by the creator).
        id: String,
        /// The entity's fields.
        fields: Map<String, Value>,
    },
    /// Some fields of an entity (others are untouched). A `null` value is stored as `null`.
    Updated {
        /// Collection name.
        collection: String,
        /// Entity id.
        id: String,
        /// The fields to set.
        fields: Map<String, Value>,
    },
    /// The entity is gone for good (remove-wins tombstone).
    Deleted {
        /// Collection name.
        collection: String,
        /// Entity id.
        id: String,
    },
    /// New sort keys for some entities of a collection.
    Reordered {
        /// Collection name.
        collection: String,
        /// The entities and their new keys (each id at most once).
        items: Vec<ReorderItem>,
    },
    /// Claim (or, with `claimedBy: null`, release) an entity.
    Claimed {
        /// Collection name.
        collection: String,
        /// Entity id.
        id: String,
        /// Who claims it (a string), or `null` to release.
        claimed_by: Value,
        /// Display name of the claimer (string or `null`).
        #[serde(default)]
        claimed_by_name: Value,
        /// Avatar URL of the claimer (string or `null`).
        #[serde(default)]
        claimed_by_avatar: Value,
    },
}

/// One entity's new position in a [`Op::Reordered`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReorderItem {
    /// Entity id.
    pub id: String,
    /// Its new fractional sort key (compared as bytes; see [`crate::merge::key_between`]).
    pub sort_order: String,
}

/// An operation with the stamp of the event that carried it (the stamp merging uses:
/// see [`crate::hlc::effective`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StampedOp {
    /// The event's effective stamp.
    pub hlc: crate::hlc::Stamp,
    /// The operation.
    pub op: Op,
}

fn invalid(reason: String) -> Error {
    Error::InvalidOperation { reason }
}

/// What [`Op::from_json`] reads: the tag first, then the variant's fields (each body
/// ignores the `type` member, as it ignores any member it does not know).
mod wire {
    use alloc::borrow::Cow;
    use alloc::string::String;
    use alloc::vec::Vec;

    use serde::Deserialize;
    use serde_json::{Map, Value};

    use super::ReorderItem;

    #[derive(Deserialize)]
    pub(super) struct Tag<'a> {
        #[serde(rename = "type", borrow)]
        pub(super) kind: Cow<'a, str>,
    }

    /// `created` and `updated`.
    #[derive(Deserialize)]
    pub(super) struct Fields {
        pub(super) collection: String,
        pub(super) id: String,
        pub(super) fields: Map<String, Value>,
    }

    #[derive(Deserialize)]
    pub(super) struct Deleted {
        pub(super) collection: String,
        pub(super) id: String,
    }

    #[derive(Deserialize)]
    pub(super) struct Reordered {
        pub(super) collection: String,
        pub(super) items: Vec<ReorderItem>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Claimed {
        pub(super) collection: String,
        pub(super) id: String,
        pub(super) claimed_by: Value,
        #[serde(default)]
        pub(super) claimed_by_name: Value,
        #[serde(default)]
        pub(super) claimed_by_avatar: Value,
    }
}

/// Checks a collection name: 1 to 64 bytes of `[A-Za-z0-9_-]`.
///
/// # Errors
/// [`Error::InvalidOperation`] saying what is wrong.
pub fn check_collection(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_COLLECTION_LEN {
        return Err(invalid(format!(
            "collection name {name:?} must be 1 to {MAX_COLLECTION_LEN} characters"
        )));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(invalid(format!(
            "collection name {name:?} may only hold A-Z, a-z, 0-9, '_' and '-'"
        )));
    }
    Ok(())
}

/// Checks an entity id: 1 to 128 bytes.
///
/// # Errors
/// [`Error::InvalidOperation`] saying what is wrong.
pub fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(invalid(format!(
            "entity id {id:?} must be 1 to {MAX_ID_LEN} bytes"
        )));
    }
    Ok(())
}

/// Checks a field name: 1 to 128 bytes, not starting with `$` (reserved).
///
/// # Errors
/// [`Error::InvalidOperation`] saying what is wrong.
pub fn check_field_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_FIELD_NAME_LEN {
        return Err(invalid(format!(
            "field name {name:?} must be 1 to {MAX_FIELD_NAME_LEN} bytes"
        )));
    }
    if name.starts_with('$') {
        return Err(invalid(format!(
            "field name {name:?} starts with '$', which is reserved; rename the field"
        )));
    }
    Ok(())
}

/// Checks a sort key: 1 to 1,024 bytes.
///
/// # Errors
/// [`Error::InvalidOperation`] saying what is wrong.
pub fn check_sort_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_SORT_KEY_LEN {
        return Err(invalid(format!(
            "sortOrder {key:?} must be 1 to {MAX_SORT_KEY_LEN} bytes; use key_between"
        )));
    }
    Ok(())
}

fn check_fields(id: &str, fields: &Map<String, Value>) -> Result<()> {
    if fields.len() > MAX_FIELDS {
        return Err(invalid(format!(
            "{} fields in one operation, over the limit of {MAX_FIELDS}; split it",
            fields.len()
        )));
    }
    for (name, value) in fields {
        check_field_name(name)?;
        if CLAIM_FIELDS.contains(&name.as_str()) {
            return Err(invalid(format!(
                "field {name:?} is set only by a `claimed` operation"
            )));
        }
        if name == "id" && value.as_str() != Some(id) {
            return Err(invalid(format!(
                "field \"id\" is {value} but the operation's id is {id:?}"
            )));
        }
        if name == SORT_ORDER {
            match value.as_str() {
                Some(key) => check_sort_key(key)?,
                None => {
                    return Err(invalid(format!(
                        "field \"sortOrder\" must be a string key, not {value}"
                    )))
                }
            }
        }
    }
    Ok(())
}

fn check_string_or_null(name: &str, value: &Value) -> Result<()> {
    if value.is_string() || value.is_null() {
        Ok(())
    } else {
        Err(invalid(format!(
            "{name} must be a string or null, not {value}"
        )))
    }
}

impl Op {
    /// The collection the operation touches.
    #[must_use]
    pub fn collection(&self) -> &str {
        match self {
            Self::Created { collection, .. }
            | Self::Updated { collection, .. }
            | Self::Deleted { collection, .. }
            | Self::Reordered { collection, .. }
            | Self::Claimed { collection, .. } => collection,
        }
    }

    /// Checks names, ids, limits and reserved fields (see the constants of this module).
    ///
    /// # Errors
    /// [`Error::InvalidOperation`] with what is wrong and how to fix it.
    pub fn validate(&self) -> Result<()> {
        check_collection(self.collection())?;
        match self {
            Self::Created { id, fields, .. } | Self::Updated { id, fields, .. } => {
                check_id(id)?;
                check_fields(id, fields)
            }
            Self::Deleted { id, .. } => check_id(id),
            Self::Reordered { items, .. } => {
                if items.len() > MAX_REORDER_ITEMS {
                    return Err(invalid(format!(
                        "{} items in one reorder, over the limit of {MAX_REORDER_ITEMS}",
                        items.len()
                    )));
                }
                let mut seen = BTreeSet::new();
                for item in items {
                    check_id(&item.id)?;
                    check_sort_key(&item.sort_order)?;
                    if !seen.insert(item.id.as_str()) {
                        return Err(invalid(format!(
                            "entity {:?} appears twice in one reorder",
                            item.id
                        )));
                    }
                }
                Ok(())
            }
            Self::Claimed {
                id,
                claimed_by,
                claimed_by_name,
                claimed_by_avatar,
                ..
            } => {
                check_id(id)?;
                check_string_or_null("claimedBy", claimed_by)?;
                check_string_or_null("claimedByName", claimed_by_name)?;
                check_string_or_null("claimedByAvatar", claimed_by_avatar)
            }
        }
    }

    /// The operation as JSON bytes (the body of an event envelope).
    #[must_use]
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising string-keyed JSON values cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes and validates an operation.
    ///
    /// # Errors
    /// [`Error::InvalidOperation`] when the bytes are not an operation's JSON (the reason
    /// quotes the parser) or the operation fails [`Op::validate`].
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        // Only the object form: serde would also read a struct from an array.
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            return Err(invalid(
                "not an operation's JSON: an operation is an object".into(),
            ));
        }
        fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T> {
            serde_json::from_slice(bytes)
                .map_err(|e| invalid(format!("not an operation's JSON: {e}")))
        }
        let tag: wire::Tag<'_> = parse(bytes)?;
        let op = match &*tag.kind {
            "created" | "updated" => {
                let wire::Fields {
                    collection,
                    id,
                    fields,
                } = parse(bytes)?;
                if tag.kind == "created" {
                    Self::Created {
                        collection,
                        id,
                        fields,
                    }
                } else {
                    Self::Updated {
                        collection,
                        id,
                        fields,
                    }
                }
            }
            "deleted" => {
                let wire::Deleted { collection, id } = parse(bytes)?;
                Self::Deleted { collection, id }
            }
            "reordered" => {
                let wire::Reordered { collection, items } = parse(bytes)?;
                Self::Reordered { collection, items }
            }
            "claimed" => {
                let wire::Claimed {
                    collection,
                    id,
                    claimed_by,
                    claimed_by_name,
                    claimed_by_avatar,
                } = parse(bytes)?;
                Self::Claimed {
                    collection,
                    id,
                    claimed_by,
                    claimed_by_name,
                    claimed_by_avatar,
                }
            }
            other => {
                return Err(invalid(format!(
                    "not an operation's JSON: unknown variant `{other}`, expected one of \
                     `created`, `updated`, `deleted`, `reordered`, `claimed`"
                )))
            }
        };
        op.validate()?;
        Ok(op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use serde_json::json;

    fn reason(bytes: &[u8]) -> String {
        match Op::from_json(bytes) {
            Err(Error::InvalidOperation { reason }) => reason,
            other => panic!("expected InvalidOperation, got {other:?}"),
        }
    }

    #[test]
    fn round_trips_the_front_end_shapes() {
        let shapes = [
            json!({"type":"created","collection":"cards","id":"c1","fields":{"title":"A","sortOrder":"V"}}),
            json!({"type":"updated","collection":"cards","id":"c1","fields":{"title":"B"}}),
            json!({"type":"deleted","collection":"cards","id":"c1"}),
            json!({"type":"reordered","collection":"cards","items":[{"id":"c1","sortOrder":"W"}]}),
            json!({"type":"claimed","collection":"cards","id":"c1","claimedBy":"u1","claimedByName":"Ann","claimedByAvatar":null}),
        ];
        for shape in shapes {
            let bytes = serde_json::to_vec(&shape).unwrap();
            let op = Op::from_json(&bytes).unwrap();
            let back: Value = serde_json::from_slice(&op.to_json()).unwrap();
            assert_eq!(back, shape);
        }
        let release =
            Op::from_json(br#"{"type":"claimed","collection":"c","id":"x","claimedBy":null}"#)
                .unwrap();
        assert!(matches!(
            release,
            Op::Claimed {
                claimed_by: Value::Null,
                ..
            }
        ));
    }

    #[test]
    fn bad_operations_say_what_is_wrong() {
        let cases: [(&[u8], &str); 13] = [
            (b"not json", "not an operation's JSON"),
            (br#"["deleted","c","x"]"#, "is an object"),
            (br#"{"type":"moved","collection":"c","id":"x"}"#, "unknown variant"),
            (br#"{"type":"deleted","collection":"c"}"#, "missing field `id`"),
            (br#"{"type":"deleted","collection":"","id":"x"}"#, "1 to 64"),
            (br#"{"type":"deleted","collection":"a b","id":"x"}"#, "may only hold"),
            (br#"{"type":"deleted","collection":"c","id":""}"#, "1 to 128"),
            (br#"{"type":"updated","collection":"c","id":"x","fields":{"$t":1}}"#, "reserved"),
            (br#"{"type":"updated","collection":"c","id":"x","fields":{"":1}}"#, "1 to 128"),
            (br#"{"type":"updated","collection":"c","id":"x","fields":{"claimedBy":"u"}}"#, "`claimed` operation"),
            (br#"{"type":"created","collection":"c","id":"x","fields":{"id":"y"}}"#, "operation's id"),
            (br#"{"type":"created","collection":"c","id":"x","fields":{"sortOrder":3}}"#, "string key"),
            (br#"{"type":"reordered","collection":"c","items":[{"id":"a","sortOrder":"V"},{"id":"a","sortOrder":"W"}]}"#, "twice"),
        ];
        for (bytes, want) in cases {
            let r = reason(bytes);
            assert!(r.contains(want), "{}: {r}", String::from_utf8_lossy(bytes));
        }
        let claim = br#"{"type":"claimed","collection":"c","id":"x","claimedBy":7}"#;
        assert!(reason(claim).contains("string or null"));
        let mut many = Map::new();
        for i in 0..=MAX_FIELDS {
            many.insert(i.to_string(), Value::Null);
        }
        let op = Op::Updated {
            collection: "c".into(),
            id: "x".into(),
            fields: many,
        };
        assert!(reason(&op.to_json()).contains("over the limit"));
    }
}
