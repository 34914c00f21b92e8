//! `docker ps --filter …`: which containers a list shows.

use berth_core::filters::Filters;

use super::record::{Record, State};
use crate::error::{EngineError, Result};

const STATUSES: [&str; 7] = [
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// The filters of one list request, checked once.
#[derive(Debug, Default)]
pub struct ContainerFilter {
    ids: Vec<String>,
    names: Vec<String>,
    labels: Vec<(String, Option<String>)>,
    statuses: Vec<String>,
    exited: Vec<i64>,
    ancestors: Vec<String>,
    /// Created strictly before / after these times (RFC 3339 as records keep them).
    before: Option<String>,
    since: Option<String>,
}

fn find<'a>(recs: &'a [std::sync::Arc<Record>], key: &str) -> Option<&'a Record> {
    let key = key.strip_prefix('/').unwrap_or(key);
    recs.iter()
        .find(|r| r.id == key || r.name == key)
        .or_else(|| recs.iter().find(|r| r.id.starts_with(key)))
        .map(|r| &**r)
}

impl ContainerFilter {
    pub fn new(filters: &Filters, recs: &[std::sync::Arc<Record>]) -> Result<ContainerFilter> {
        filters
            .validate(&[
                "id", "name", "label", "status", "exited", "ancestor", "before", "since", "health",
                "network", "volume", "publish", "expose", "is-task",
            ])
            .map_err(|e| EngineError::invalid(e.to_string()))?;
        let mut f = ContainerFilter::default();
        for (key, values) in filters.iter() {
            for v in values {
                match key {
                    "id" => f.ids.push(v.clone()),
                    "name" => f.names.push(v.trim_start_matches('/').to_owned()),
                    "label" => f.labels.push(match v.split_once('=') {
                        Some((k, val)) => (k.to_owned(), Some(val.to_owned())),
                        None => (v.clone(), None),
                    }),
                    "status" => {
                        if !STATUSES.contains(&v.as_str()) {
                            return Err(EngineError::invalid(format!(
                                "invalid filter 'status={v}'"
                            )));
                        }
                        f.statuses.push(v.clone());
                    }
                    "exited" => f.exited.push(v.parse().map_err(|_| {
                        EngineError::invalid(format!("invalid filter 'exited={v}'"))
                    })?),
                    "ancestor" => f.ancestors.push(v.clone()),
                    "before" | "since" => {
                        let r = find(recs, v).ok_or_else(|| {
                            EngineError::not_found(format!("No such container: {v}"))
                        })?;
                        if key == "before" {
                            f.before = Some(r.created.clone());
                        } else {
                            f.since = Some(r.created.clone());
                        }
                    }
                    // Accepted for compatibility; not applied yet.
                    _ => {}
                }
            }
        }
        Ok(f)
    }

    /// Filters that select stopped containers imply `--all`, as in Docker.
    pub fn wants_stopped(&self) -> bool {
        !self.exited.is_empty() || self.statuses.iter().any(|s| s != "running")
    }

    fn status_of(st: &State) -> &str {
        if st.running() && st.paused {
            "paused"
        } else {
            st.status.as_str()
        }
    }

    pub fn matches(&self, rec: &Record, st: &State) -> bool {
        let any = |list: &[String], f: &dyn Fn(&str) -> bool| {
            list.is_empty() || list.iter().any(|v| f(v))
        };
        any(&self.ids, &|v| rec.id.starts_with(v))
            && any(&self.names, &|v| rec.name.contains(v))
            && any(&self.statuses, &|v| Self::status_of(st) == v)
            && (self.exited.is_empty()
                || (st.status == super::Status::Exited && self.exited.contains(&st.exit_code)))
            && any(&self.ancestors, &|v| {
                rec.image == v
                    || rec.image_id == v
                    || rec.image_id.trim_start_matches("sha256:").starts_with(v)
                    || rec.image.split(':').next() == Some(v)
            })
            && self.labels.iter().all(|(k, v)| match v {
                Some(v) => rec.label(k) == Some(v.as_str()),
                None => rec.label(k).is_some(),
            })
            && self.before.as_ref().is_none_or(|b| rec.created < *b)
            && self.since.as_ref().is_none_or(|s| rec.created > *s)
    }
}
