//! The engine's event log (`docker events`): the last events in memory, as Docker keeps them,
//! each with a sequence number so a follower reads only what is new.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use berth_api::events::{Event, EventActor};

/// How many events are kept for `events --since`.
const KEPT: usize = 1024;

#[derive(Debug, Default)]
pub struct EventLog {
    inner: Mutex<(u64, VecDeque<(u64, Event)>)>,
}

impl EventLog {
    /// Records an event in Docker's wire form.
    pub fn emit(&self, kind: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) {
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
        let container = kind == "container";
        let event = Event {
            kind: kind.to_owned(),
            action: action.to_owned(),
            scope: "local".into(),
            time: nanos / 1_000_000_000,
            time_nano: nanos,
            // The older fields docker clients still read.
            status: container.then(|| action.to_owned()),
            id: container.then(|| id.to_owned()),
            from: attributes.get("image").filter(|_| container).cloned(),
            actor: EventActor {
                id: id.to_owned(),
                attributes,
            },
        };
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.0 += 1;
        let seq = inner.0;
        inner.1.push_back((seq, event));
        while inner.1.len() > KEPT {
            inner.1.pop_front();
        }
    }

    /// Events after sequence number `seq` (all kept ones for 0), and the newest number.
    pub fn after(&self, seq: u64) -> (Vec<Event>, u64) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let events = inner
            .1
            .iter()
            .filter(|(n, _)| *n > seq)
            .map(|(_, e)| e.clone())
            .collect();
        (events, inner.0)
    }
}
