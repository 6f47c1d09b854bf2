//! Who is online, sealed: every member announces its session's profile (any JSON the
//! application chooses: a name, a colour, an avatar) in ephemeral envelopes sealed with the
//! room key on the room tag ([`crate::client::ROOM_TAG`]). The relay relays them like any
//! ephemeral frame: it learns nothing it did not know (a count, socket ids, session ids in
//! envelope headers), and a member frame is indistinguishable from another ephemeral frame
//! of the same padded size.
//!
//! The rules (PROTOCOL.md, "Members"): a client that goes live announces itself and asks
//! the others to announce themselves; it announces again every
//! [`MEMBER_ANNOUNCE_EVERY_MS`] and when its profile changes, and says it leaves when it
//! leaves. A member not heard from for [`MEMBER_EXPIRES_AFTER_MS`] is dropped (its tab was
//! closed without a word, or its connection is gone). The sender of a frame is the session
//! in its envelope header, which the AEAD authenticates.
//!
//! [`Roster`] is the bookkeeping; [`crate::client::Client`] drives it (when to send, the
//! timer, the `Members` event).

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::ids::{Millis, SessionId};

/// How often a live client announces itself (and so how fresh the others' lists stay).
pub const MEMBER_ANNOUNCE_EVERY_MS: u64 = 30_000;

/// The shortest time between two announcements of one client (answers to several
/// arrivals at once are one announcement).
pub const MEMBER_MIN_INTERVAL_MS: u64 = 1_000;

/// A member not heard from for this long is dropped from the list: two announcements
/// missed, plus a margin for a slow network.
pub const MEMBER_EXPIRES_AFTER_MS: u64 = 75_000;

/// The longest profile, in bytes of JSON.
pub const MAX_PROFILE_LEN: usize = 4_096;

/// The most other members one client lists; announcements from further sessions are
/// ignored until some expire (a key holder cannot grow a client's memory by inventing
/// sessions).
pub const MAX_MEMBERS: usize = 1_000;

/// The body of a member frame (UTF-8 JSON). Decoded by [`MemberFrame::decode`] only: the
/// tag first, then the variant's fields (as [`crate::merge::Op::from_json`] does, for the
/// same reason).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum MemberFrame {
    /// `{"type":"here","profile":…,"ask":bool}`: the sender is online with this profile;
    /// with `ask`, it has just arrived and asks everyone to announce themselves.
    Here {
        /// The sender's profile (`null` when it set none).
        #[serde(default)]
        profile: Value,
        /// Answer with a `here` of your own.
        #[serde(default)]
        ask: bool,
    },
    /// `{"type":"left"}`: the sender leaves the room.
    Left,
    /// `{"type":"key","epoch":N,"secret":"…"}`: the sender is about to rotate the room's key
    /// to epoch `epoch` and hands the new key (a room secret, base64url) to the members
    /// online; sent only when the rotating application asks for it (PROTOCOL.md, "Key
    /// rotation"). Not part of the member list.
    Key {
        /// The epoch the rotation moves the room to.
        epoch: u32,
        /// The new room key in its secret form.
        secret: String,
    },
}

impl MemberFrame {
    /// The frame's JSON body.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a member frame's body.
    ///
    /// # Errors
    /// [`Error::InvalidMember`] when it is not a member frame or its profile is too long.
    pub fn decode(body: &[u8]) -> Result<Self> {
        if body.len() > MAX_PROFILE_LEN + 64 {
            return Err(invalid("the member frame is over the profile limit"));
        }
        #[derive(Deserialize)]
        struct Tag<'a> {
            #[serde(rename = "type", borrow)]
            kind: Cow<'a, str>,
        }
        #[derive(Deserialize)]
        struct Key {
            epoch: u32,
            secret: String,
        }
        #[derive(Deserialize)]
        struct Here {
            #[serde(default)]
            profile: Value,
            #[serde(default)]
            ask: bool,
        }
        // Only the object form: serde would also read a struct from an array.
        if body.trim_ascii_start().first() != Some(&b'{') {
            return Err(invalid("a member frame is an object"));
        }
        let parse_error = |e: serde_json::Error| invalid(&e.to_string());
        let tag: Tag<'_> = serde_json::from_slice(body).map_err(parse_error)?;
        match &*tag.kind {
            "here" => {
                let Here { profile, ask } = serde_json::from_slice(body).map_err(parse_error)?;
                Ok(Self::Here { profile, ask })
            }
            "left" => Ok(Self::Left),
            "key" => {
                let Key { epoch, secret } = serde_json::from_slice(body).map_err(parse_error)?;
                Ok(Self::Key { epoch, secret })
            }
            other => Err(invalid(&format!(
                "unknown variant `{other}`, expected `here`, `left` or `key`"
            ))),
        }
    }
}

fn invalid(reason: &str) -> Error {
    Error::InvalidMember {
        reason: reason.into(),
    }
}

/// One member online, as the application sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    /// The member's session id (a tab or process; one person may have several).
    pub session: String,
    /// The profile it announced (`null` when it set none).
    pub profile: Value,
    /// This client's own entry.
    #[serde(rename = "isSelf")]
    pub is_self: bool,
}

/// What a received member frame asks of this client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    /// The list changed: tell the application.
    pub changed: bool,
    /// The sender asked everyone to announce themselves.
    pub asked: bool,
}

/// The other members heard from, and this client's own profile.
#[derive(Debug, Default)]
pub struct Roster {
    profile: Value,
    /// `(session, profile, heard at)`, sorted by session (at most [`MAX_MEMBERS`]: a
    /// sorted list, not a map, to keep a map's code out of the browser's wasm).
    others: Vec<(SessionId, Value, Millis)>,
}

impl Roster {
    /// Sets this client's profile.
    ///
    /// # Errors
    /// [`Error::InvalidMember`] when its JSON is over [`MAX_PROFILE_LEN`] bytes.
    pub fn set_profile(&mut self, profile: Value) -> Result<()> {
        let len = serde_json::to_vec(&profile).map_or(usize::MAX, |v| v.len());
        if len > MAX_PROFILE_LEN {
            return Err(invalid(&alloc::format!(
                "a profile is at most {MAX_PROFILE_LEN} bytes of JSON ({len} given)"
            )));
        }
        self.profile = profile;
        Ok(())
    }

    /// This client's announcement.
    #[must_use]
    pub fn here(&self, ask: bool) -> MemberFrame {
        MemberFrame::Here {
            profile: self.profile.clone(),
            ask,
        }
    }

    /// A member frame from `session` arrived at `now`.
    pub fn heard(&mut self, now: Millis, session: SessionId, frame: MemberFrame) -> Heard {
        match frame {
            MemberFrame::Here { profile, ask } => {
                let full = self.others.len() >= MAX_MEMBERS;
                let changed = match self.others.binary_search_by_key(&session, |m| m.0) {
                    Ok(i) => {
                        let entry = &mut self.others[i];
                        let changed = entry.1 != profile;
                        entry.1 = profile;
                        entry.2 = now;
                        changed
                    }
                    Err(i) if !full => {
                        self.others.insert(i, (session, profile, now));
                        true
                    }
                    Err(_) => false,
                };
                Heard {
                    changed,
                    asked: ask,
                }
            }
            MemberFrame::Left => Heard {
                changed: match self.others.binary_search_by_key(&session, |m| m.0) {
                    Ok(i) => {
                        self.others.remove(i);
                        true
                    }
                    Err(_) => false,
                },
                asked: false,
            },
            MemberFrame::Key { .. } => Heard {
                changed: false,
                asked: false,
            },
        }
    }

    /// Drops the members not heard from for [`MEMBER_EXPIRES_AFTER_MS`]; whether any was.
    pub fn expire(&mut self, now: Millis) -> bool {
        let before = self.others.len();
        self.others
            .retain(|(_, _, heard)| now.since(*heard) < MEMBER_EXPIRES_AFTER_MS);
        self.others.len() != before
    }

    /// Forgets every other member (this client left, or stopped); whether there was any.
    pub fn clear(&mut self) -> bool {
        let had = !self.others.is_empty();
        self.others.clear();
        had
    }

    /// When the next member expires, if any.
    #[must_use]
    pub fn next_expiry(&self) -> Option<Millis> {
        self.others
            .iter()
            .map(|(_, _, heard)| heard.plus(MEMBER_EXPIRES_AFTER_MS))
            .min()
    }

    /// The list: this client first (when `own` is given: it is live), then the others by
    /// session id.
    #[must_use]
    pub fn list(&self, own: Option<SessionId>) -> Vec<Member> {
        let mine = own.map(|session| Member {
            session: session.to_string(),
            profile: self.profile.clone(),
            is_self: true,
        });
        mine.into_iter()
            .chain(self.others.iter().map(|(session, profile, _)| Member {
                session: session.to_string(),
                profile: profile.clone(),
                is_self: false,
            }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;
    use serde_json::json;

    #[test]
    fn frames_have_the_documented_json() {
        let here = MemberFrame::Here {
            profile: json!({"name": "Ada"}),
            ask: true,
        };
        assert_eq!(
            here.encode(),
            br#"{"type":"here","profile":{"name":"Ada"},"ask":true}"#
        );
        assert_eq!(MemberFrame::Left.encode(), br#"{"type":"left"}"#);
        assert_eq!(MemberFrame::decode(&here.encode()).unwrap(), here);
        assert_eq!(
            MemberFrame::decode(br#"{"type":"here"}"#).unwrap(),
            MemberFrame::Here {
                profile: Value::Null,
                ask: false
            }
        );
        for bad in [
            &br#"{"type":"gone"}"#[..],
            b"[1]",
            br#"["here"]"#,
            b"not json",
            br#"{"type":"here","ask":"yes"}"#,
        ] {
            assert_eq!(
                MemberFrame::decode(bad).unwrap_err().code(),
                "INVALID_MEMBER"
            );
        }
    }

    #[test]
    fn members_come_change_leave_and_expire_and_the_list_is_bounded() {
        let mut m = Roster::default();
        let a = SessionId([1; 16]);
        let here = |name: &str, ask| MemberFrame::Here {
            profile: json!({ "name": name }),
            ask,
        };
        let heard = m.heard(Millis(0), a, here("Ada", true));
        assert_eq!(
            heard,
            Heard {
                changed: true,
                asked: true
            }
        );
        assert!(!m.heard(Millis(10), a, here("Ada", false)).changed);
        assert!(m.heard(Millis(20), a, here("Ada L.", false)).changed);
        assert_eq!(m.next_expiry(), Some(Millis(20 + MEMBER_EXPIRES_AFTER_MS)));
        assert!(!m.expire(Millis(20 + MEMBER_EXPIRES_AFTER_MS - 1)));
        assert!(m.expire(Millis(20 + MEMBER_EXPIRES_AFTER_MS)));
        assert!(m.list(None).is_empty());

        m.heard(Millis(0), a, here("Ada", false));
        assert!(m.heard(Millis(1), a, MemberFrame::Left).changed);
        assert!(!m.heard(Millis(2), a, MemberFrame::Left).changed);

        for i in 0..=MAX_MEMBERS {
            let mut id = [0; 16];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            m.heard(Millis(3), SessionId(id), here("x", false));
        }
        assert_eq!(m.list(None).len(), MAX_MEMBERS);

        m.set_profile(json!({"name": "me"})).unwrap();
        let list = m.list(Some(SessionId([9; 16])));
        assert!(list[0].is_self);
        assert_eq!(list[0].profile, json!({"name": "me"}));
        let long = "x".repeat(MAX_PROFILE_LEN);
        assert_eq!(
            m.set_profile(json!({ "name": long })).unwrap_err().code(),
            "INVALID_MEMBER"
        );
    }
}
