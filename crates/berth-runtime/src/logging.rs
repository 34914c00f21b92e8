//! runc-style logging: `--log FILE` with `--log-format text|json`. JSON lines carry `level`,
//! `msg` and `time` like runc's, since tools (containerd) read the last error from them.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where log lines go; `None` means stderr.
#[derive(Debug)]
pub struct LogSink {
    path: Option<PathBuf>,
    format: LogFormat,
    file: Option<Mutex<std::fs::File>>,
}

impl LogSink {
    pub fn open(path: Option<&Path>, format: LogFormat) -> std::io::Result<LogSink> {
        let file = match path {
            Some(p) => Some(Mutex::new(
                OpenOptions::new().create(true).append(true).open(p)?,
            )),
            None => None,
        };
        Ok(LogSink {
            path: path.map(Path::to_path_buf),
            format,
            file,
        })
    }

    pub fn has_file(&self) -> bool {
        self.path.is_some()
    }

    /// Writes one line at `level`.
    pub fn write(&self, level: &str, msg: &str, fields: &[(String, String)]) {
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let line = match self.format {
            LogFormat::Json => {
                let mut obj = serde_json::Map::new();
                obj.insert("level".into(), level.into());
                obj.insert("msg".into(), msg.into());
                obj.insert("time".into(), time.into());
                for (k, v) in fields {
                    obj.insert(k.clone(), v.clone().into());
                }
                serde_json::Value::Object(obj).to_string()
            }
            LogFormat::Text => {
                let mut s = format!("time=\"{time}\" level={level} msg={msg:?}");
                for (k, v) in fields {
                    let _ = write!(s, " {k}={v:?}");
                }
                s
            }
        };
        match &self.file {
            Some(f) => {
                if let Ok(mut f) = f.lock() {
                    let _ = writeln!(f, "{line}");
                }
            }
            None => {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
    }
}

struct Fields {
    message: String,
    rest: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.rest
                .push((field.name().to_owned(), format!("{value:?}")));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.rest.push((field.name().to_owned(), value.to_owned()));
        }
    }
}

struct SinkLayer(std::sync::Arc<LogSink>);

impl<S: Subscriber> Layer<S> for SinkLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields {
            message: String::new(),
            rest: Vec::new(),
        };
        event.record(&mut fields);
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        self.0.write(&level, &fields.message, &fields.rest);
    }
}

/// Routes `tracing` events at `level` or above into `sink`.
pub fn install(sink: std::sync::Arc<LogSink>, level: Level) {
    let filter = tracing_subscriber::filter::LevelFilter::from_level(level);
    let _ = tracing_subscriber::registry()
        .with(SinkLayer(sink).with_filter(filter))
        .try_init();
}
