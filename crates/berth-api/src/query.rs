//! Query strings for the API: `berth_core`'s [`Query`] (repeated keys, `+`, escapes, Docker's
//! booleans), and `since`/`until` parameters refused with Docker's 400.

pub use berth_core::query::Query;

/// A `since`/`until` query parameter (see `berth_core::timestamp`) in nanoseconds since the
/// epoch, or Docker's 400 naming it.
pub fn timestamp_param(
    q: &Query,
    key: &str,
    now_nanos: i64,
) -> Result<Option<i64>, crate::ApiError> {
    match q.get(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => berth_core::timestamp::parse(v, now_nanos)
            .map(Some)
            .ok_or_else(|| {
                crate::ApiError::bad_request(format!(
                    "invalid value for \"{key}\": failed to parse value as time or duration: \"{v}\""
                ))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_times_are_dockers_400() {
        let now = 2_000_000_000 * 1_000_000_000;
        let q = Query::parse(Some("since=10m&until=soon&empty="));
        assert_eq!(
            timestamp_param(&q, "since", now),
            Ok(Some(now - 600_000_000_000))
        );
        assert_eq!(timestamp_param(&q, "empty", now), Ok(None));
        assert_eq!(timestamp_param(&q, "absent", now), Ok(None));
        let e = timestamp_param(&q, "until", now).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert_eq!(
            e.message,
            "invalid value for \"until\": failed to parse value as time or duration: \"soon\""
        );
    }
}
