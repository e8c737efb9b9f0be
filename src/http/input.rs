//! One check of every request's URI before any handler sees it: text that no backend can store
//! or compare (U+0000) is refused as a 400 problem naming the parameter.
//!
//! Query parameters and path segments reach SQL as bound text. PostgreSQL `text` cannot hold
//! NUL, so a `%00` there used to fail inside the database and answer 503 "database
//! unavailable"; SQLite would have compared it. Refusing it here, in every path and in the
//! API's query strings, gives both backends the same answer and leaves handlers' extractors
//! (`ApiQuery<T>`, `ApiPath<T>`) with only text the ledger accepts (see `ledger::payload`). The
//! portal's pages refuse it in their query strings themselves, with a page of their own
//! (`portal::input`).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ledger::payload::FORBIDDEN_CHAR;

use crate::http::error::ApiError;

/// Refuses a request whose path or query holds a percent-encoded NUL; passes every other one.
pub async fn refuse_unusable_input(request: Request, next: Next) -> Response {
    if let Err(e) = check_uri(request.uri()) {
        return e.into_response();
    }
    next.run(request).await
}

/// The URI's problem, if any: the first query parameter (by name) or the path holding NUL.
fn check_uri(uri: &axum::http::Uri) -> Result<(), ApiError> {
    // A URI cannot carry a raw NUL byte, only its percent-encoding (hex digits have no case
    // here: `%00`).
    if uri.path().contains("%00") {
        return Err(ApiError::BadParameter(
            "the path must not contain U+0000 (%00)".into(),
        ));
    }
    // The portal's pages read their query strings strictly themselves and refuse U+0000 with
    // an HTML page naming the parameter; other paths outside the API (health, metrics, tiles)
    // read none.
    if !uri.path().starts_with("/v1/") {
        return Ok(());
    }
    let Some(query) = uri.query() else {
        return Ok(());
    };
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if name.contains(FORBIDDEN_CHAR) {
            return Err(ApiError::BadParameter(format!(
                "query parameter name {:?} must not contain U+0000 (%00)",
                name.replace(FORBIDDEN_CHAR, "\\u0000")
            )));
        }
        if value.contains(FORBIDDEN_CHAR) {
            return Err(ApiError::BadParameter(format!(
                "query parameter `{name}` must not contain U+0000 (%00)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(uri: &str) -> Option<String> {
        let uri: axum::http::Uri = uri.parse().expect("test URIs parse");
        check_uri(&uri).err().map(|e| e.to_string())
    }

    #[test]
    fn a_nul_in_a_query_value_names_the_parameter() {
        assert_eq!(
            problem("/v1/decisions?model_id=ok&outcome=a%00b").as_deref(),
            Some("query parameter `outcome` must not contain U+0000 (%00)")
        );
    }

    #[test]
    fn the_portals_queries_are_left_to_the_portal_but_not_its_paths() {
        assert_eq!(problem("/subjects?subject_ref=%00"), None);
        assert!(problem("/subjects/x%00y").is_some_and(|p| p.contains("path")));
    }

    #[test]
    fn a_nul_in_a_parameter_name_or_the_path_is_refused_and_clean_uris_pass() {
        assert!(problem("/v1/decisions?a%00=1").is_some_and(|p| p.contains("name")));
        assert!(problem("/v1/subjects/x%00y").is_some_and(|p| p.contains("path")));
        assert_eq!(problem("/v1/decisions?outcome=a%2500b&x=%01"), None);
        assert_eq!(problem("/v1/decisions"), None);
    }
}
