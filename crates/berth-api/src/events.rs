//! `GET /events`: the engine's events as a stream of JSON lines, replayed from `since`, live
//! until `until` (or until the client goes), filtered like Docker's.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::query::{timestamp_param, Query};
use crate::{ApiError, SharedBackend};

/// What the events endpoint needs from the engine.
pub trait EventBackend {
    /// Events after sequence number `seq` (every kept one for 0) and the newest number.
    fn events_after(&self, seq: u64) -> (Vec<serde_json::Value>, u64);
}

fn matches(e: &serde_json::Value, filters: &BTreeMap<String, Vec<String>>) -> bool {
    let attr = |k: &str| {
        e["Actor"]["Attributes"][k]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    let id = e["Actor"]["ID"].as_str().unwrap_or("");
    let kind = e["Type"].as_str().unwrap_or("");
    let action = e["Action"].as_str().unwrap_or("");
    filters.iter().all(|(key, values)| {
        values.iter().any(|v| match key.as_str() {
            "type" => kind == v,
            "event" => action == v || action.split(':').next() == Some(v.as_str()),
            "container" => {
                kind == "container" && (id.starts_with(v.as_str()) || attr("name") == *v)
            }
            "image" => attr("image") == *v || (kind == "image" && (id == v || attr("name") == *v)),
            "label" => match v.split_once('=') {
                Some((k, val)) => attr(k) == val,
                None => e["Actor"]["Attributes"].get(v).is_some(),
            },
            _ => true,
        })
    })
}

async fn events(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let since = timestamp_param(&q, "since", now)?;
    let until = timestamp_param(&q, "until", now)?;
    let filters = q.filters()?;
    for key in filters.keys() {
        if !matches!(
            key.as_str(),
            "type"
                | "event"
                | "container"
                | "image"
                | "label"
                | "scope"
                | "daemon"
                | "network"
                | "volume"
        ) {
            return Err(ApiError::bad_request(format!("invalid filter '{key}'")));
        }
    }
    // Without `since`, only what happens from now on.
    let (_, newest) = b.events_after(u64::MAX);
    let start = if since.is_some() { 0 } else { newest };
    let stream = futures_util::stream::unfold((start, false), move |(seq, done)| {
        let (b, filters) = (b.clone(), filters.clone());
        async move {
            if done {
                return None;
            }
            loop {
                let (events, newest) = b.events_after(seq);
                let mut body = Vec::new();
                for e in &events {
                    let t = e["timeNano"].as_i64().unwrap_or(0);
                    if since.is_some_and(|s| t < s) || until.is_some_and(|u| t > u) {
                        continue;
                    }
                    if matches(e, &filters) {
                        body.extend_from_slice(e.to_string().as_bytes());
                        body.push(b'\n');
                    }
                }
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as i64)
                    .unwrap_or(0);
                let finished = until.is_some_and(|u| u <= now);
                if !body.is_empty() || finished {
                    return Some((Ok::<_, std::convert::Infallible>(body), (newest, finished)));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

pub fn routes() -> Router<SharedBackend> {
    Router::new().route("/events", get(events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_like_docker() {
        let e = serde_json::json!({"Type": "container", "Action": "exec_start: sh -c true",
            "Actor": {"ID": "abcdef", "Attributes": {"name": "web", "image": "bb", "tier": "x"}}});
        let f = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), vec![v.to_owned()])]);
        assert!(matches(&e, &f("container", "web")));
        assert!(matches(&e, &f("container", "abc")));
        assert!(!matches(&e, &f("container", "db")));
        assert!(matches(&e, &f("event", "exec_start")));
        assert!(matches(&e, &f("label", "tier=x")));
        assert!(!matches(&e, &f("type", "image")));
        assert!(matches(&e, &f("image", "bb")));
    }
}
