//! What the portal reads from a request: form bodies and query strings, decoded strictly and
//! checked in one place before any handler sees them.
//!
//! Axum's own `Form` and `Query` decode leniently (bytes that are not UTF-8 silently become
//! U+FFFD, a repeated field keeps whichever value the handler reads first) and refuse what they
//! cannot read with a plain-text or JSON answer. The portal's extractors here refuse instead,
//! with the portal's HTML error page naming the field or parameter:
//!
//! - a value or name that is not UTF-8 once percent-decoded;
//! - a field or parameter given more than once (only the erase form's checkboxes, [`REPEATABLE`],
//!   may repeat), because a form whose fields disagree is not one anybody filled in, and on an
//!   irreversible action no value may be picked for the person;
//! - in a query string, U+0000 and any parameter the page does not take (the query structs are
//!   `#[serde(deny_unknown_fields)]`), so that a page never shows its normal answer to a request
//!   it did not understand.
//!
//! Whether a text may hold other control characters depends on the field (a reason may span
//! lines, an email or a label may not), so that is checked where the field is read, with
//! [`has_control`].

use axum::extract::{FromRequest, FromRequestParts, RawForm, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::PortalError;

/// Field names a form may give more than once: the erase form's checkboxes (`field`).
pub const REPEATABLE: &[&str] = &["field"];

/// Where the text came from, for the words of a refusal.
#[derive(Clone, Copy)]
enum Source {
    Form,
    Query,
}

impl Source {
    fn noun(self) -> &'static str {
        match self {
            Source::Form => "field",
            Source::Query => "parameter",
        }
    }
}

/// Whether `text` holds a control character (C0, DEL or C1: tab, line breaks, NUL, escape…).
pub fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// Percent-decodes one name or value of `application/x-www-form-urlencoded` text (`+` is a
/// space; a `%` not followed by two hex digits stands for itself, as browsers and the URL
/// standard have it). The bytes are checked to be UTF-8 by the caller.
fn percent_decode(raw: &[u8]) -> Vec<u8> {
    // `+` first: a `%2B` decodes to a `+` that stays one.
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_encoding::percent_decode(&spaced).collect()
}

/// The name–value pairs of form-encoded `text`, in order, each checked to be UTF-8.
fn decode(text: &[u8], source: Source) -> Result<Vec<(String, String)>, PortalError> {
    let noun = source.noun();
    let mut pairs = Vec::new();
    for segment in text.split(|&b| b == b'&').filter(|s| !s.is_empty()) {
        let (name, value) = match segment.iter().position(|&b| b == b'=') {
            Some(at) => (&segment[..at], &segment[at + 1..]),
            None => (segment, &segment[segment.len()..]),
        };
        let name = String::from_utf8(percent_decode(name)).map_err(|_| {
            PortalError::BadRequest(format!("The name of a {noun} is not UTF-8 text."))
        })?;
        let value = String::from_utf8(percent_decode(value)).map_err(|_| {
            PortalError::BadRequest(format!("The {noun} {} is not UTF-8 text.", shown(&name)))
        })?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// A name as a refusal quotes it: control characters escaped, at most 64 characters.
fn shown(name: &str) -> String {
    name.chars()
        .take(64)
        .flat_map(|c| {
            if c.is_control() {
                c.escape_unicode().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Refuses a name given more than once, unless it is one of `repeatable`.
fn once(
    pairs: &[(String, String)],
    repeatable: &[&str],
    source: Source,
) -> Result<(), PortalError> {
    let mut seen = std::collections::BTreeSet::new();
    for (name, _) in pairs {
        if !seen.insert(name.as_str()) && !repeatable.contains(&name.as_str()) {
            let noun = source.noun();
            return Err(PortalError::BadRequest(match source {
                Source::Form => format!(
                    "The {noun} {} is given more than once: send the form as the page shows it. Nothing was done.",
                    shown(name)
                ),
                Source::Query => format!("The {noun} {} is given more than once.", shown(name)),
            }));
        }
    }
    Ok(())
}

/// Deserializes `T` from single-valued pairs (every value a string), naming the field or
/// parameter that is missing or not taken.
fn from_pairs<T: DeserializeOwned>(
    pairs: Vec<(String, String)>,
    source: Source,
) -> Result<T, PortalError> {
    let object: serde_json::Map<String, serde_json::Value> = pairs
        .into_iter()
        .map(|(n, v)| (n, serde_json::Value::String(v)))
        .collect();
    serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| {
        let noun = source.noun();
        let text = e.to_string();
        // serde's own words: "unknown field `x`, expected …" and "missing field `x`".
        let named = |prefix: &str| {
            text.strip_prefix(prefix)
                .and_then(|rest| rest.split('`').next())
                .map(shown)
        };
        let message = if let Some(name) = named("unknown field `") {
            format!("The {noun} {name} is not one this page takes.")
        } else if let Some(name) = named("missing field `") {
            format!("The {noun} {name} is missing.")
        } else {
            format!("The {noun}s could not be read: {text}.")
        };
        PortalError::BadRequest(message)
    })
}

/// An optional number parameter: `None` when absent or empty, else a number of type `N`.
///
/// # Errors
/// [`PortalError::BadRequest`] naming `name` when the text is not such a number.
pub fn number<N: std::str::FromStr>(
    name: &str,
    value: Option<&str>,
) -> Result<Option<N>, PortalError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            PortalError::BadRequest(format!(
                "The parameter {name} must be a whole number of at least 0."
            ))
        }),
    }
}

/// A page's query parameters, decoded strictly into `T` (see the module's documentation);
/// an absent query is an empty one.
#[derive(Debug)]
pub struct PortalQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for PortalQuery<T> {
    type Rejection = PortalError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let pairs = decode(query.as_bytes(), Source::Query)?;
        // The service's edge refuses a NUL in the API's query strings and in every path; the
        // pages' query strings are refused here, with a page naming the parameter.
        if let Some((name, _)) = pairs
            .iter()
            .find(|(n, v)| n.contains('\0') || v.contains('\0'))
        {
            return Err(PortalError::BadRequest(format!(
                "The parameter {} must not contain U+0000.",
                shown(name)
            )));
        }
        once(&pairs, &[], Source::Query)?;
        from_pairs(pairs, Source::Query).map(PortalQuery)
    }
}

/// The query of a page that takes no parameters.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoQuery {}

/// Reads the form body: axum's checks of the content type and size, then strict decoding.
async fn form_pairs<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Vec<(String, String)>, PortalError> {
    let RawForm(bytes) = RawForm::from_request(request, state)
        .await
        .map_err(|rejection| PortalError::Refused {
            status: rejection.status(),
            title: "Bad request",
            message: format!("The form could not be read: {}.", rejection.body_text()),
            retry_after: None,
        })?;
    decode(&bytes, Source::Form)
}

/// A form body whose single-valued fields deserialize into `T`; no field may repeat.
#[derive(Debug)]
pub struct PortalForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for PortalForm<T> {
    type Rejection = PortalError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let pairs = form_pairs(request, state).await?;
        once(&pairs, &[], Source::Form)?;
        from_pairs(pairs, Source::Form).map(PortalForm)
    }
}

/// A form body read as its fields, for forms with a repeated field or read field by field;
/// only the names of [`REPEATABLE`] may repeat.
#[derive(Debug, Default)]
pub struct FormFields {
    pairs: Vec<(String, String)>,
}

impl FormFields {
    /// The value of single-valued field `name`; empty when the form does not have it.
    pub fn get(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of field `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl<S: Send + Sync> FromRequest<S> for FormFields {
    type Rejection = PortalError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let pairs = form_pairs(request, state).await?;
        once(&pairs, REPEATABLE, Source::Form)?;
        Ok(FormFields { pairs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: PortalError) -> String {
        match e {
            PortalError::BadRequest(m) => m,
            other => panic!("not a bad request: {other:?}"),
        }
    }

    #[test]
    fn decoding_is_strict_about_utf8_and_keeps_what_browsers_send() {
        assert_eq!(
            decode(b"a=x+y%21&b=&c&a%C3%A9=%E2%82%AC&d=50%&e=%zz", Source::Form).expect("decodes"),
            [
                ("a".to_owned(), "x y!".to_owned()),
                ("b".to_owned(), String::new()),
                ("c".to_owned(), String::new()),
                ("aé".to_owned(), "€".to_owned()),
                ("d".to_owned(), "50%".to_owned()),
                ("e".to_owned(), "%zz".to_owned()),
            ]
        );
        assert_eq!(
            message(decode(b"label=a%ff%fe", Source::Form).expect_err("not UTF-8")),
            "The field label is not UTF-8 text."
        );
        assert_eq!(
            message(decode(b"x%ff=1", Source::Query).expect_err("not UTF-8")),
            "The name of a parameter is not UTF-8 text."
        );
        assert_eq!(
            decode(b"n=%00", Source::Query).expect("decodes")[0].1,
            "\0",
            "a NUL decodes; the query extractor refuses it"
        );
    }

    #[test]
    fn a_repeated_name_is_refused_unless_it_may_repeat() {
        let pairs = decode(b"field=a&field=b&subject_ref=x", Source::Form).expect("decodes");
        assert!(once(&pairs, REPEATABLE, Source::Form).is_ok());
        let pairs = decode(b"subject_ref=x&field=a&subject_ref=y", Source::Form).expect("decodes");
        assert!(
            message(once(&pairs, REPEATABLE, Source::Form).expect_err("twice"))
                .starts_with("The field subject_ref is given more than once")
        );
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Q {
        #[allow(dead_code)]
        needed: String,
        #[allow(dead_code)]
        after: Option<String>,
    }

    #[test]
    fn unknown_and_missing_parameters_are_named() {
        let pairs = |text: &[u8]| decode(text, Source::Query).expect("decodes");
        assert_eq!(
            message(from_pairs::<Q>(pairs(b"needed=1&cursor=zzz"), Source::Query).expect_err("")),
            "The parameter cursor is not one this page takes."
        );
        assert_eq!(
            message(from_pairs::<Q>(pairs(b"after=1"), Source::Query).expect_err("")),
            "The parameter needed is missing."
        );
        assert!(from_pairs::<Q>(pairs(b"needed=1&after=2"), Source::Query).is_ok());
        assert_eq!(
            number::<u64>("after", Some("7")).expect("a number"),
            Some(7)
        );
        assert_eq!(number::<u64>("after", Some("")).expect("empty"), None);
        assert!(
            message(number::<u64>("after", Some("-1")).expect_err("negative"))
                .starts_with("The parameter after must be")
        );
    }

    #[test]
    fn control_characters_are_found_wherever_they_are() {
        for text in ["a\0b", "a\tb", "a\nb", "\u{1b}[31m", "a\u{7f}", "a\u{85}"] {
            assert!(has_control(text), "{text:?}");
        }
        assert!(!has_control("Zürich pipeline — 2"));
    }
}
