//! Reading the body of an outbound HTTP response (the tiles verifier's, the witness client's)
//! with a ceiling: a hostile or broken server that sends no `Content-Length`, or a false one,
//! still cannot make the client hold more than the ceiling.

/// The body of `response`, or `None` when it is longer than `max` bytes (reading stops there).
///
/// # Errors
/// The transport's error while reading.
pub async fn body_at_most(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > max {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}
