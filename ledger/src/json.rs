//! Strict JSON reading: the one way JSON enters Auditex and its verifiers.
//!
//! RFC 8259 leaves duplicate member names to the reader, and common readers disagree (serde_json
//! keeps the last value, others the first). A signed document that two readers understand
//! differently lets an attacker choose the reading, so every JSON text the service ingests and
//! every JSON document a verifier reads goes through [`check`] first, which rejects (I-JSON,
//! RFC 7493):
//! - a member name that occurs twice in one object, at any depth;
//! - a number that does not fit an IEEE 754 double (`1e400`), which serde_json refuses as well,
//!   but here with the pointer of the member that holds it;
//! - anything serde_json itself rejects (syntax, invalid UTF-8, lone surrogates, trailing data).
//!
//! The check walks the text once with serde_json's own parser and a visitor that keeps nothing
//! but the member names of the objects it is inside, so the typed parse that follows sees exactly
//! the text the check accepted, read by the same tokenizer. Errors carry the RFC 6901 JSON
//! Pointer of the offending member.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::canonical::push_pointer_token;

/// Nesting deeper than this is refused (serde_json's own recursion limit is 128).
pub const DEPTH_MAX: usize = 128;

/// Why a JSON text was refused, with the JSON Pointer of the place it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// RFC 6901 pointer of the member or element at fault (`""` for the whole document).
    pub pointer: String,
    /// What is wrong there.
    pub problem: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "{}: {}", self.pointer, self.problem)
        }
    }
}

impl std::error::Error for JsonError {}

/// Checks that `text` is one strict JSON value (see the module documentation).
///
/// # Errors
/// [`JsonError`] naming the pointer of the first duplicate member, out-of-range number or syntax
/// error found.
pub fn check(text: &str) -> Result<(), JsonError> {
    let failure = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = Node {
        at: &Step::Root,
        depth: 0,
        failure: &failure,
    };
    let result = seed.deserialize(&mut de).and_then(|()| de.end());
    match result {
        Ok(()) => Ok(()),
        Err(e) => Err(failure.into_inner().unwrap_or_else(|| JsonError {
            pointer: String::new(),
            problem: describe(&e),
        })),
    }
}

/// Checks `text` strictly, then deserializes it into `T`.
///
/// # Errors
/// [`JsonError`] from [`check`], or from `T`'s own deserialization (pointer `""`).
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, JsonError> {
    check(text)?;
    serde_json::from_str(text).map_err(|e| JsonError {
        pointer: String::new(),
        problem: describe(&e),
    })
}

/// As [`from_str`] for bytes, which must be UTF-8.
///
/// # Errors
/// [`JsonError`] for bytes that are not UTF-8, otherwise as [`from_str`].
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|e| JsonError {
        pointer: String::new(),
        problem: format!("not valid UTF-8: {e}"),
    })?;
    from_str(text)
}

/// The message of a serde_json error (it includes line and column).
fn describe(e: &serde_json::Error) -> String {
    e.to_string()
}

/// Where a value sits in the document: a chain of steps from the root, kept on the stack while
/// the walk is beneath it. The RFC 6901 pointer is written out only for a failure, so that a
/// document that passes (every request body) costs no string per member or element.
enum Step<'a> {
    Root,
    Member(&'a str, &'a Step<'a>),
    Element(usize, &'a Step<'a>),
}

impl Step<'_> {
    /// The RFC 6901 pointer of this place.
    fn pointer(&self) -> String {
        let mut out = String::new();
        self.push_to(&mut out);
        out
    }

    /// Writes the pointer of this place to `out`: its parent's first, then its own token (a
    /// member name escaped as RFC 6901 requires). At most [`DEPTH_MAX`] steps deep.
    fn push_to(&self, out: &mut String) {
        match self {
            Step::Root => {}
            Step::Member(name, parent) => {
                parent.push_to(out);
                out.push('/');
                push_pointer_token(out, name);
            }
            Step::Element(index, parent) => {
                parent.push_to(out);
                out.push('/');
                out.push_str(&index.to_string());
            }
        }
    }
}

/// One value at `at`; records the first failure beneath it in `failure`.
struct Node<'a> {
    at: &'a Step<'a>,
    depth: usize,
    failure: &'a RefCell<Option<JsonError>>,
}

impl<'a> Node<'a> {
    fn fail<E: de::Error>(&self, problem: String) -> E {
        let mut slot = self.failure.borrow_mut();
        if slot.is_none() {
            *slot = Some(JsonError {
                pointer: self.at.pointer(),
                problem: problem.clone(),
            });
        }
        E::custom(problem)
    }

    /// Attributes an error from beneath this node to `at` unless a deeper node already did.
    fn attribute<E: de::Error>(&self, at: &Step<'_>, e: E) -> E {
        let mut slot = self.failure.borrow_mut();
        if slot.is_none() {
            *slot = Some(JsonError {
                pointer: at.pointer(),
                problem: number_or_syntax(&e.to_string()),
            });
        }
        e
    }

    fn child<'b>(&self, at: &'b Step<'b>) -> Node<'b>
    where
        'a: 'b,
    {
        Node {
            at,
            depth: self.depth + 1,
            failure: self.failure,
        }
    }
}

/// A member name, borrowed from the text when it holds no escape (serde_json then hands out
/// the text's own bytes), so that reading it allocates nothing.
struct Name;

impl<'de> DeserializeSeed<'de> for Name {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Name {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// serde_json reports `1e400` as "number out of range"; say what the format requires.
fn number_or_syntax(message: &str) -> String {
    if message.starts_with("number out of range") {
        format!("{message}: a number must fit an IEEE 754 double (I-JSON, RFC 7493)")
    } else {
        message.to_owned()
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.depth > DEPTH_MAX {
            return Err(self.fail(format!("nested deeper than {DEPTH_MAX} levels")));
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        if v.is_finite() {
            Ok(())
        } else {
            Err(self.fail("a number must fit an IEEE 754 double (I-JSON, RFC 7493)".into()))
        }
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        loop {
            let at = Step::Element(index, self.at);
            match seq.next_element_seed(self.child(&at)) {
                Ok(Some(())) => index += 1,
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.attribute(&at, e)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // A B-tree, not a hash set: an object of many thousands of names (a hostile body) costs
        // a logarithmic look-up per name, and no hash seed is needed.
        let mut seen = BTreeSet::new();
        loop {
            let name = match map.next_key_seed(Name) {
                Ok(Some(name)) => name,
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.attribute(self.at, e)),
            };
            let at = Step::Member(&name, self.at);
            if seen.contains(&name) {
                return Err(self.child(&at).fail(
                    "duplicate member name (I-JSON, RFC 7493: names in an object must be unique)"
                        .into(),
                ));
            }
            if let Err(e) = map.next_value_seed(self.child(&at)) {
                return Err(self.attribute(&at, e));
            }
            seen.insert(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointer(text: &str) -> String {
        match check(text) {
            Ok(()) => panic!("{text} was accepted"),
            Err(e) => e.pointer,
        }
    }

    #[test]
    fn a_duplicate_member_is_rejected_with_its_pointer_at_any_depth() {
        assert_eq!(pointer(r#"{"a":1,"a":2}"#), "/a");
        assert_eq!(pointer(r#"{"p":{"x":[{"k":1,"k":1}]}}"#), "/p/x/0/k");
        assert_eq!(pointer(r#"{"a/b~":{"c":1,"c":2}}"#), "/a~1b~0/c");
        // Escapes are decoded before comparing: "\u0061" is "a".
        assert_eq!(pointer(r#"{"a":1,"\u0061":2}"#), "/a");
        // Arrays within arrays, and a name with an escape on the path above the duplicate.
        assert_eq!(
            pointer(r#"[[1,[2,{"a":1,"a":1}]]]"#),
            "/0/1/1/a",
            "elements count from zero at every level"
        );
        assert_eq!(
            pointer(r#"{"x\/y":[0,{"z~":{"q":1,"q":2}}]}"#),
            "/x~1y/1/z~0/q"
        );
        // Siblings before the duplicate leave no trace in its pointer.
        assert_eq!(
            pointer(r#"{"a":[1,2],"b":{"c":{}},"d":{"e":1,"e":1}}"#),
            "/d/e"
        );
    }

    #[test]
    fn an_out_of_range_number_names_its_member() {
        assert_eq!(pointer(r#"{"payload":{"score":1e400}}"#), "/payload/score");
        assert_eq!(pointer(r#"{"a":[1,-1e999]}"#), "/a/1");
        let e = check(r#"{"score":1e400}"#).err();
        assert!(e.is_some_and(|e| e.problem.contains("IEEE 754")));
    }

    #[test]
    fn unique_names_in_sibling_objects_and_valid_documents_pass() {
        for ok in [
            r#"{"a":{"x":1},"b":{"x":1}}"#,
            r#"[{"a":1},{"a":1}]"#,
            r#"{"n":1.5e300,"z":-0,"s":"\ud83d\ude00","t":true,"u":null}"#,
            "  {}  ",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn syntax_errors_and_trailing_data_are_rejected() {
        for bad in [
            "",
            "{",
            r#"{"a":1}x"#,
            r#"{"a":1} {}"#,
            "[1,]",
            r#"{"a":"\ud800"}"#,
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deep_nesting_is_rejected_without_overflowing_the_stack() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(check(&deep).is_err());
    }
}
