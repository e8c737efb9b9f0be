//! The API's path and query extractors: axum's `Path` and `Query`, with every rejection turned
//! into the `bad-parameter` problem that names the parameter and says what it must be.
//!
//! Axum refuses a parameter it cannot deserialize with plain text of its own ("Invalid URL:
//! Cannot parse `-1` to a `u64`", "Failed to deserialize query string: limit: invalid digit
//! found in string"): the words of a Rust type, or of serde, and for a path no parameter at all.
//! Handlers read their path parameters with [`ApiPath`] and their query strings with
//! [`ApiQuery`], so that every endpoint refuses such a request with the same problem. Only the
//! shape is checked here; the rules of a value (ranges, cursors, text bounds) stay with the
//! handlers (see `params`).

use std::fmt::Display;

use axum::extract::path::ErrorKind;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, RawPathParams};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// What a parameter naming a record (or a legal hold, by the record that placed it) must be.
pub const SEQUENCE_NUMBER: &str = "a sequence number (0 to 2^53-1)";

/// What a parameter naming a tree size must be.
pub const TREE_SIZE: &str = "a tree size (a whole number, 0 or more)";

/// What a parameter that takes any number must be.
pub const NUMBER: &str = "a number";

/// What a page size must be on an endpoint whose pages hold at most `max` items.
pub fn page_size(max: impl Display) -> String {
    format!("a whole number from 1 to {max}")
}

/// A struct of query parameters, read with [`ApiQuery`].
pub trait QueryParams: DeserializeOwned {
    /// What the parameter `name` must be when it does not deserialize (see [`page_size`],
    /// [`SEQUENCE_NUMBER`]); `None` for a text parameter, which always does.
    fn expected(name: &str) -> Option<String> {
        let _ = name;
        None
    }
}

/// The request's path parameters, deserialized into `T` like axum's `Path`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => {
                // Axum names the parameter only where `T` has named fields; a number or a tuple
                // gets its position, which the route's parameters, in order, turn into a name.
                let names: Vec<String> = RawPathParams::from_request_parts(parts, state)
                    .await
                    .map(|raw| raw.iter().map(|(name, _)| name.to_owned()).collect())
                    .unwrap_or_default();
                Err(path_problem(&rejection, &names))
            }
        }
    }
}

/// The problem for path parameters that did not deserialize; `names` are the route's
/// parameters in order.
fn path_problem(rejection: &PathRejection, names: &[String]) -> ApiError {
    let PathRejection::FailedToDeserializePathParams(e) = rejection else {
        // A handler that reads parameters on a route without any: a bug, not the client's.
        return ApiError::Internal(rejection.body_text());
    };
    let name_at = |index: usize| names.get(index).map_or("a path parameter", String::as_str);
    let must_be = |name: &str, expected_type: &str| {
        ApiError::BadParameter(format!(
            "{name} must be {}",
            path_expected(name, expected_type)
        ))
    };
    match e.kind() {
        ErrorKind::ParseError { expected_type, .. } => must_be(name_at(0), expected_type),
        ErrorKind::ParseErrorAtIndex {
            index,
            expected_type,
            ..
        } => must_be(name_at(*index), expected_type),
        ErrorKind::ParseErrorAtKey {
            key, expected_type, ..
        } => must_be(key, expected_type),
        ErrorKind::InvalidUtf8InPathParam { key } => {
            ApiError::BadParameter(format!("{key} must be UTF-8 text once percent-decoded"))
        }
        ErrorKind::DeserializeError { key, message, .. } => {
            ApiError::BadParameter(format!("{key}: {message}"))
        }
        ErrorKind::Message(message) => {
            ApiError::BadParameter(format!("the path could not be read: {message}"))
        }
        // The handler's type does not fit its route (a wrong number of parameters, a map).
        _ => ApiError::Internal(e.body_text()),
    }
}

/// What the path parameter `name` must be. Every number in the API's paths is a sequence
/// number: a record's (`seq`) or a legal hold's (`hold_seq`, the record that placed it).
fn path_expected(name: &str, expected_type: &str) -> String {
    match name {
        "seq" | "hold_seq" => SEQUENCE_NUMBER.to_owned(),
        _ if expected_type.starts_with('u') => "a whole number, 0 or more".to_owned(),
        _ => format!("a value of type {expected_type}"),
    }
}

/// The query string, deserialized into `T` like axum's `Query` (an absent query is an empty
/// one).
///
/// Handlers take it as `Result<ApiQuery<T>, ApiError>` and look at it only after checking the
/// caller's role, so that a key whose role may not use the endpoint is answered 403 whatever
/// its query.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: QueryParams,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::try_from_uri(&parts.uri) {
            Ok(Query(params)) => Ok(ApiQuery(params)),
            Err(rejection) => Err(query_problem::<T>(
                parts.uri.query().unwrap_or_default(),
                &rejection,
            )),
        }
    }
}

/// The problem for a query string that did not deserialize into `T`, naming the parameter.
///
/// The deserializer's words say which: the parameter's name comes first when it is known
/// ("limit: invalid digit found in string"), and serde's own sentence quotes a name the
/// endpoint does not take, one given twice or one missing ("unknown field `colour`, expected
/// one of `cursor`, `limit`").
fn query_problem<T: QueryParams>(query: &str, rejection: &QueryRejection) -> ApiError {
    // Without axum's preamble ("Failed to deserialize query string: ").
    let reason = std::error::Error::source(rejection)
        .map_or_else(|| rejection.body_text(), ToString::to_string);
    // Only a name the query holds is taken for the parameter at fault.
    let name = url::form_urlencoded::parse(query.as_bytes())
        .map(|(name, _)| name.into_owned())
        .find(|name| reason.starts_with(&format!("{name}: ")));
    let said = name
        .as_ref()
        .map_or(reason.as_str(), |name| &reason[name.len() + 2..]);
    // In serde's sentence the first quoted name is the one at fault; any after it are the names
    // the endpoint takes.
    let quoted = |prefix: &str| {
        said.strip_prefix(prefix)
            .map(|rest| rest.split('`').step_by(2).map(shown).collect::<Vec<_>>())
    };
    let detail = if let Some(names) = quoted("unknown field `") {
        let taken = match names.get(1..) {
            Some(taken) if !taken.is_empty() => format!("it takes {}", taken.join(", ")),
            _ => "it takes none".to_owned(),
        };
        format!(
            "`{}` is not a parameter of this endpoint ({taken})",
            names[0]
        )
    } else if let Some(names) = quoted("duplicate field `") {
        format!("`{}` is given more than once", names[0])
    } else if let Some(names) = quoted("missing field `") {
        format!("`{}` is required", names[0])
    } else if let Some(name) = name {
        match T::expected(&name) {
            Some(what) => format!("{name} must be {what}"),
            None => format!("{name} could not be read: {said}"),
        }
    } else {
        format!("the query string could not be read: {reason}")
    };
    ApiError::BadParameter(detail)
}

/// A parameter's name as a problem quotes it: at most 64 characters (it may be any text the
/// client sent).
fn shown(name: &str) -> String {
    name.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Page {
        #[allow(dead_code)]
        limit: Option<u64>,
        #[allow(dead_code)]
        note: Option<String>,
    }

    impl QueryParams for Page {
        fn expected(name: &str) -> Option<String> {
            (name == "limit").then(|| page_size(10))
        }
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Nothing {}

    impl QueryParams for Nothing {}

    fn problem<T: QueryParams>(query: &str) -> Option<String> {
        let uri: axum::http::Uri = format!("/v1/x?{query}").parse().expect("test URIs parse");
        Query::<T>::try_from_uri(&uri)
            .err()
            .map(|rejection| query_problem::<T>(query, &rejection).to_string())
    }

    #[test]
    fn a_value_that_does_not_parse_is_named_with_what_it_must_be() {
        assert_eq!(
            problem::<Page>("note=x&limit=ten").as_deref(),
            Some("limit must be a whole number from 1 to 10")
        );
        assert_eq!(problem::<Page>("note=x&limit=10"), None);
    }

    #[test]
    fn a_name_not_taken_or_given_twice_is_quoted_with_what_the_endpoint_takes() {
        assert_eq!(
            problem::<Page>("size=1").as_deref(),
            Some("`size` is not a parameter of this endpoint (it takes limit, note)")
        );
        assert_eq!(
            problem::<Nothing>("size=1").as_deref(),
            Some("`size` is not a parameter of this endpoint (it takes none)")
        );
        assert_eq!(
            problem::<Page>("note=a&note=b").as_deref(),
            Some("`note` is given more than once")
        );
        let long = "n".repeat(100);
        assert_eq!(
            problem::<Page>(&format!("{long}=1")),
            Some(format!(
                "`{}` is not a parameter of this endpoint (it takes limit, note)",
                "n".repeat(64)
            ))
        );
    }
}
