//! `GET /events`: the engine's events as a stream of JSON lines, replayed from `since`, live
//! until `until` (or until the client goes), filtered like Docker's.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use berth_core::filters::Filters;

use crate::query::{timestamp_param, Query};
use crate::{ApiError, SharedBackend};

/// What the events endpoint needs from the engine.
pub trait EventBackend {
    /// Events after sequence number `seq` (every kept one for 0) and the newest number.
    fn events_after(&self, seq: u64) -> (Vec<Event>, u64);
}

/// One event in Docker's wire form. Not bollard's `EventMessage`: container events also carry
/// the older `status`, `id` and `from` fields, which docker clients still read.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: EventActor,
    pub scope: String,
    /// Seconds since the epoch.
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// What an event is about: its ID and attributes (name, image, labels…).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EventActor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// The keys `GET /events` accepts.
const KEYS: &[&str] = &[
    "type",
    "event",
    "container",
    "image",
    "label",
    "scope",
    "daemon",
    "network",
    "volume",
];

fn matches(e: &Event, filters: &Filters) -> bool {
    let attrs = &e.actor.attributes;
    let attr = |k: &str| attrs.get(k).map(String::as_str).unwrap_or("");
    let id = e.actor.id.as_str();
    let kind = e.kind.as_str();
    let action = e.action.as_str();
    filters.exact_match("type", kind)
        && filters.any("event", |v| {
            action == v || action.split(':').next() == Some(v)
        })
        && filters.any("container", |v| {
            kind == "container" && (id.starts_with(v) || attr("name") == v)
        })
        && filters.any("image", |v| {
            attr("image") == v || (kind == "image" && (id == v || attr("name") == v))
        })
        && filters.match_kv_list("label", attrs)
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
    let filters = Filters::from_query(&q)?;
    filters.validate(KEYS)?;
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
                    let t = e.time_nano;
                    if since.is_some_and(|s| t < s) || until.is_some_and(|u| t > u) {
                        continue;
                    }
                    if matches(e, &filters) {
                        body.extend_from_slice(&serde_json::to_vec(e).unwrap_or_default());
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
        let e: Event = serde_json::from_value(serde_json::json!({"Type": "container",
            "Action": "exec_start: sh -c true", "scope": "local", "time": 1, "timeNano": 1,
            "Actor": {"ID": "abcdef", "Attributes": {"name": "web", "image": "bb", "tier": "x"}}}))
        .unwrap();
        let f = |k: &str, v: &str| {
            let mut f = Filters::new();
            f.add(k, v);
            f
        };
        assert!(matches(&e, &f("container", "web")));
        assert!(matches(&e, &f("container", "abc")));
        assert!(!matches(&e, &f("container", "db")));
        assert!(matches(&e, &f("event", "exec_start")));
        assert!(matches(&e, &f("label", "tier=x")));
        assert!(!matches(&e, &f("type", "image")));
        assert!(matches(&e, &f("image", "bb")));
        assert!(!matches(&e, &f("label", "tier=y")));
        assert!(!matches(&e, &f("label", "absent=")));
        let mut both = f("label", "tier=x");
        both.add("label", "name");
        assert!(matches(&e, &both));
    }
}
