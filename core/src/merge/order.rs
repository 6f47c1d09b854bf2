//! Fractional sort keys: strings of base-62 digits (`0-9A-Za-z`, which is also their byte
//! order) read as fractions in `[0, 1)`, so a key fits between any two neighbours without
//! renumbering the others.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{Error, Result};

/// The digits, in ascending byte order.
const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The key of the first item of an empty list: the middle digit.
const FIRST: u8 = b'V';

/// The value (0..62) of a base-62 digit.
fn digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'Z' => Some(b - b'A' + 10),
        b'a'..=b'z' => Some(b - b'a' + 36),
        _ => None,
    }
}

fn check(name: &str, key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidOperation {
            reason: format!("sort key `{name}` is empty; pass None for an open end"),
        });
    }
    if let Some(bad) = key.bytes().find(|b| digit(*b).is_none()) {
        return Err(Error::InvalidOperation {
            reason: format!(
                "sort key `{name}` = {key:?} holds {:?}; keys are base-62 digits 0-9A-Za-z",
                char::from(bad)
            ),
        });
    }
    Ok(())
}

/// A key strictly between `before` and `after` in byte order, made of base-62 digits and
/// never ending in `0` (so another key always fits after it). `None` is an open end:
/// `key_between(None, None)` is the first key of an empty list.
///
/// Appending (`after = None`) and prepending (`before = None`) step one digit, so keys grow
/// by one character per about 60 consecutive appends or prepends; inserting between two
/// neighbours takes their midpoint (about one character per 6 inserts at the same place).
///
/// # Errors
/// [`Error::InvalidOperation`] when a key is empty or holds a character outside
/// `0-9A-Za-z`, when `before >= after`, or when no key fits (e.g. between `"a"` and
/// `"a0"`, or before `"0"`: keys written by other tools may end in `0`).
pub fn key_between(before: Option<&str>, after: Option<&str>) -> Result<String> {
    if let Some(b) = before {
        check("before", b)?;
    }
    if let Some(a) = after {
        check("after", a)?;
    }
    if let (Some(b), Some(a)) = (before, after) {
        if b >= a {
            return Err(Error::InvalidOperation {
                reason: format!("sort key before = {b:?} is not less than after = {a:?}"),
            });
        }
    }
    let lo = before.unwrap_or("").as_bytes();
    if let Some(hi) = after {
        let hi = hi.as_bytes();
        // Nothing fits when `after` is `before` followed only by zeros.
        if hi.starts_with(lo) && hi[lo.len()..].iter().all(|b| *b == b'0') {
            return Err(Error::InvalidOperation {
                reason: format!(
                    "no key fits between {:?} and {:?}; give one of them a new key",
                    before.unwrap_or(""),
                    after.unwrap_or("")
                ),
            });
        }
    }
    let out = match (before, after) {
        (_, None) => increment(lo),
        (None, Some(hi)) => decrement(hi.as_bytes()),
        (Some(_), Some(hi)) => midpoint(lo, hi.as_bytes()),
    };
    // Every byte came from DIGITS, so this never fails.
    String::from_utf8(out).map_err(|_| Error::InvalidOperation {
        reason: format!("internal error: non-ASCII sort key between {before:?} and {after:?}"),
    })
}

/// The digit with value `v` (< 62).
fn ch(v: u8) -> u8 {
    DIGITS[usize::from(v % 62)]
}

/// The shortest-step key above `lo`: bump the first digit below `z` and cut after it;
/// if every digit is `z`, append `1`.
fn increment(lo: &[u8]) -> Vec<u8> {
    if lo.is_empty() {
        return alloc::vec![FIRST];
    }
    match lo.iter().position(|b| *b != b'z') {
        Some(i) => {
            let mut out = lo[..i].to_vec();
            out.push(ch(digit(lo[i]).unwrap_or(0) + 1));
            out
        }
        None => {
            let mut out = lo.to_vec();
            out.push(b'1');
            out
        }
    }
}

/// A key below `hi` (which is not all zeros): lower the first digit above `1` and cut after
/// it; if every digit is `0` or `1`, turn the first `1` into `0z`.
fn decrement(hi: &[u8]) -> Vec<u8> {
    if let Some(i) = hi.iter().position(|b| *b > b'1') {
        let mut out = hi[..i].to_vec();
        out.push(ch(digit(hi[i]).unwrap_or(1) - 1));
        return out;
    }
    let j = hi.iter().position(|b| *b == b'1').unwrap_or(hi.len());
    let mut out = hi[..j].to_vec();
    out.extend_from_slice(b"0z");
    out
}

/// A key strictly between `lo < hi` where `hi` is not `lo` followed by zeros: the shared
/// prefix (reading `lo` as padded with `0`s), then the middle digit, or a longer key.
fn midpoint(lo: &[u8], hi: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let a = lo.get(i).map_or(0, |b| digit(*b).unwrap_or(0));
        let Some(&hb) = hi.get(i) else {
            // Unreachable for valid input (hi would be lo plus zeros); stay above lo.
            out.extend_from_slice(&increment(&lo[i.min(lo.len())..]));
            return out;
        };
        let b = digit(hb).unwrap_or(0);
        if a == b {
            out.push(hb);
            i += 1;
            continue;
        }
        // a < b here: this is the first digit where they differ.
        if b - a > 1 {
            out.push(ch(a + (b - a) / 2 + (b - a) % 2));
            return out;
        }
        if hi.len() > i + 1 {
            // hi's digit alone is above lo (a < b) and below hi (a proper prefix of it).
            out.push(hb);
            return out;
        }
        // Adjacent digits and hi ends here: keep lo's digit and go above lo's tail.
        out.push(ch(a));
        out.extend_from_slice(&increment(lo.get(i + 1..).unwrap_or(&[])));
        return out;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    fn kb(a: Option<&str>, b: Option<&str>) -> String {
        key_between(a, b).unwrap()
    }

    #[test]
    fn first_key_and_neighbours() {
        assert_eq!(kb(None, None), "V");
        assert_eq!(kb(Some("V"), None), "W");
        assert_eq!(kb(None, Some("V")), "U");
        assert_eq!(kb(Some("z"), None), "z1");
        assert_eq!(kb(None, Some("1")), "0z");
        assert_eq!(kb(Some("a"), Some("c")), "b");
        assert_eq!(kb(Some("a"), Some("b")), "aV");
        assert_eq!(kb(Some("a"), Some("a05")), "a03");
    }

    #[test]
    fn appends_and_prepends_stay_short() {
        let mut keys = vec![kb(None, None)];
        for _ in 0..1000 {
            let next = kb(keys.last().map(String::as_str), None);
            assert!(next.as_str() > keys.last().unwrap().as_str());
            keys.push(next);
        }
        assert!(keys.last().unwrap().len() <= 18, "{}", keys.last().unwrap());
        let mut first = kb(None, None);
        for _ in 0..1000 {
            let prev = kb(None, Some(&first));
            assert!(prev < first);
            first = prev;
        }
        assert!(first.len() <= 18, "{first}");
    }

    #[test]
    fn bad_inputs_are_refused_with_reasons() {
        let cases: [(Option<&str>, Option<&str>, &str); 6] = [
            (Some("b"), Some("a"), "not less than"),
            (Some("a"), Some("a"), "not less than"),
            (Some(""), None, "empty"),
            (Some("a-b"), None, "base-62"),
            (Some("a"), Some("a00"), "no key fits"),
            (None, Some("00"), "no key fits"),
        ];
        for (a, b, want) in cases {
            let err = key_between(a, b).unwrap_err();
            assert_eq!(err.code(), "INVALID_OPERATION");
            assert!(alloc::format!("{err}").contains(want), "{a:?} {b:?}: {err}");
        }
    }

    fn key() -> impl Strategy<Value = String> {
        "[0-9A-Za-z]{1,8}"
    }

    proptest! {
        #[test]
        fn between_is_strictly_between(x in key(), y in key()) {
            prop_assume!(x != y);
            let (a, b) = if x < y { (x, y) } else { (y, x) };
            let fits = !(b.starts_with(a.as_str()) && b[a.len()..].bytes().all(|c| c == b'0'));
            match key_between(Some(&a), Some(&b)) {
                Ok(k) => {
                    prop_assert!(fits);
                    prop_assert!(a < k && k < b, "{} < {} < {}", a, k, b);
                    prop_assert!(!k.ends_with('0'));
                    prop_assert!(k.len() <= b.len().max(a.len()) + 1);
                }
                Err(_) => prop_assert!(!fits),
            }
        }

        #[test]
        fn open_ends(x in key()) {
            let up = key_between(Some(&x), None).unwrap();
            prop_assert!(up > x && !up.ends_with('0'));
            match key_between(None, Some(&x)) {
                Ok(down) => prop_assert!(down < x && !down.ends_with('0') && !down.is_empty()),
                Err(_) => prop_assert!(x.bytes().all(|c| c == b'0')),
            }
        }

        #[test]
        fn repeated_inserts_keep_order(picks in proptest::collection::vec(any::<u16>(), 1..200)) {
            let mut keys: Vec<String> = Vec::new();
            for p in picks {
                let at = usize::from(p) % (keys.len() + 1);
                let lo = at.checked_sub(1).map(|i| keys[i].as_str());
                let hi = keys.get(at).map(String::as_str);
                let k = key_between(lo, hi).unwrap();
                keys.insert(at, k);
            }
            for w in keys.windows(2) {
                prop_assert!(w[0] < w[1]);
            }
        }
    }
}
