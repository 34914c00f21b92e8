//! What a pull or push reports as it goes, and the JSON lines Docker's API streams for it
//! (`POST /images/create`, `POST /images/{name}/push`), shaped as moby's stream formatter
//! writes them: field order `status`, `progressDetail`, `progress`, `id`, `aux`; zero counts
//! left out; the `progress` bar drawn for a 200-column terminal with decimal sizes.

use berth_core::Digest;
use serde::Serialize;

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A line of its own: `Pulling from library/busybox` (id `latest`), `Digest: sha256:…`,
    /// `Status: Downloaded newer image for busybox:latest`, `The push refers to repository
    /// […]`, `latest: digest: sha256:… size: 528`.
    Message { id: Option<String>, text: String },
    /// A layer's state changed; `id` is the short ID Docker shows (12 hex digits of the
    /// layer's digest when pulling, of its diff ID when pushing).
    Layer { id: String, state: LayerState },
    /// The closing record of a push (the stream's `aux`).
    Pushed {
        tag: String,
        digest: Digest,
        size: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerState {
    PullingFsLayer,
    Waiting,
    Downloading {
        current: u64,
        total: u64,
    },
    /// A failed download waits this many seconds before it resumes.
    Retrying {
        seconds: u64,
    },
    VerifyingChecksum,
    DownloadComplete,
    Extracting {
        current: u64,
        total: u64,
    },
    PullComplete,
    AlreadyExists,
    Preparing,
    Pushing {
        current: u64,
        total: u64,
    },
    Pushed,
    LayerAlreadyExists,
    /// Mounted from another repository of the same registry (its path, `library/busybox`).
    MountedFrom(String),
}

impl LayerState {
    /// The status text Docker shows.
    pub fn status(&self) -> String {
        match self {
            LayerState::PullingFsLayer => "Pulling fs layer".into(),
            LayerState::Waiting => "Waiting".into(),
            LayerState::Downloading { .. } => "Downloading".into(),
            LayerState::Retrying { seconds } => format!(
                "Retrying in {seconds} second{}",
                if *seconds == 1 { "" } else { "s" }
            ),
            LayerState::VerifyingChecksum => "Verifying Checksum".into(),
            LayerState::DownloadComplete => "Download complete".into(),
            LayerState::Extracting { .. } => "Extracting".into(),
            LayerState::PullComplete => "Pull complete".into(),
            LayerState::AlreadyExists => "Already exists".into(),
            LayerState::Preparing => "Preparing".into(),
            LayerState::Pushing { .. } => "Pushing".into(),
            LayerState::Pushed => "Pushed".into(),
            LayerState::LayerAlreadyExists => "Layer already exists".into(),
            LayerState::MountedFrom(from) => format!("Mounted from {from}"),
        }
    }

    fn counts(&self) -> Option<(u64, u64)> {
        match self {
            LayerState::Downloading { current, total }
            | LayerState::Extracting { current, total }
            | LayerState::Pushing { current, total } => Some((*current, *total)),
            _ => None,
        }
    }
}

/// Docker's short ID: the first 12 hex digits.
pub fn short_id(d: &Digest) -> String {
    d.hex().chars().take(12).collect()
}

#[derive(Serialize)]
struct Detail {
    #[serde(skip_serializing_if = "is_zero")]
    current: u64,
    #[serde(skip_serializing_if = "is_zero")]
    total: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Aux<'a> {
    tag: &'a str,
    digest: String,
    size: u64,
}

#[derive(Serialize)]
struct JsonMessage<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    progress_detail: Option<Detail>,
    #[serde(rename = "progress", skip_serializing_if = "Option::is_none")]
    progress: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aux: Option<Aux<'a>>,
}

/// The JSON message Docker's API sends for `p` (one line of the stream, without the `\r\n`
/// Docker ends each with).
pub fn to_json(p: &Progress) -> String {
    let msg = match p {
        Progress::Message { id, text } => JsonMessage {
            status: Some(text.clone()),
            progress_detail: None,
            progress: None,
            id: id.as_deref().filter(|i| !i.is_empty()),
            aux: None,
        },
        Progress::Layer { id, state } => {
            let (current, total) = state.counts().unwrap_or((0, 0));
            let bar = progress_bar(current, total);
            JsonMessage {
                status: Some(state.status()),
                progress_detail: Some(Detail { current, total }),
                progress: (!bar.is_empty()).then_some(bar),
                id: Some(id),
                aux: None,
            }
        }
        Progress::Pushed { tag, digest, size } => JsonMessage {
            status: None,
            progress_detail: Some(Detail {
                current: 0,
                total: 0,
            }),
            progress: None,
            id: None,
            aux: Some(Aux {
                tag,
                digest: digest.to_string(),
                size: *size,
            }),
        },
    };
    serde_json::to_string(&msg).expect("a progress message serializes")
}

/// The error record that ends a failed stream: `{"errorDetail":{"message":…},"error":…}`.
pub fn error_json(message: &str) -> String {
    #[derive(Serialize)]
    struct ErrorDetail<'a> {
        message: &'a str,
    }
    #[derive(Serialize)]
    struct ErrorMessage<'a> {
        #[serde(rename = "errorDetail")]
        detail: ErrorDetail<'a>,
        error: &'a str,
    }
    serde_json::to_string(&ErrorMessage {
        detail: ErrorDetail { message },
        error: message,
    })
    .expect("an error message serializes")
}

/// moby's `JSONProgress.String()` on a 200-column terminal: `[====>     ]  1.2MB/2.4MB`.
pub fn progress_bar(current: u64, total: u64) -> String {
    if current == 0 && total == 0 {
        return String::new();
    }
    if total == 0 {
        return format!("{:>8}", human_size(current));
    }
    let percentage = (((current as f64 / total as f64) * 100.0) as i64 / 2).clamp(0, 50) as usize;
    let bar = format!(
        "[{}>{}] ",
        "=".repeat(percentage),
        " ".repeat(50 - percentage)
    );
    let numbers = if current > total {
        format!("{:>8}", human_size(current))
    } else {
        format!("{:>8}/{}", human_size(current), human_size(total))
    };
    bar + &numbers
}

/// go-units' `HumanSize`: decimal units, four significant digits (`1.234kB`, `2.2MB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", significant(v, 4), UNITS[i])
}

/// Go's `%.Ng` for values below 1000: N significant digits, no trailing zeros.
fn significant(v: f64, digits: i32) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let before = (v.abs().log10().floor() as i32 + 1).max(1);
    let decimals = (digits - before).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(state: LayerState) -> String {
        to_json(&Progress::Layer {
            id: "a1b2c3d4e5f6".into(),
            state,
        })
    }

    #[test]
    fn sizes_as_go_units() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1234), "1.234kB");
        assert_eq!(human_size(5678), "5.678kB");
        assert_eq!(human_size(32768), "32.77kB");
        assert_eq!(human_size(2_200_000), "2.2MB");
        assert_eq!(human_size(1_000_000), "1MB");
        assert_eq!(human_size(772_788), "772.8kB");
    }

    #[test]
    fn bars_as_moby_draws_them() {
        assert_eq!(progress_bar(0, 0), "");
        assert_eq!(
            progress_bar(1234, 5678),
            format!("[{}>{}]  1.234kB/5.678kB", "=".repeat(10), " ".repeat(40))
        );
        assert_eq!(
            progress_bar(100, 100),
            format!("[{}>]     100B/100B", "=".repeat(50))
        );
        assert_eq!(progress_bar(5, 0), "      5B");
        assert_eq!(
            progress_bar(200, 100),
            format!("[{}>]     200B", "=".repeat(50))
        );
    }

    #[test]
    fn pull_lines_as_docker_sends_them() {
        assert_eq!(
            to_json(&Progress::Message {
                id: Some("latest".into()),
                text: "Pulling from library/busybox".into()
            }),
            r#"{"status":"Pulling from library/busybox","id":"latest"}"#
        );
        assert_eq!(
            layer(LayerState::PullingFsLayer),
            r#"{"status":"Pulling fs layer","progressDetail":{},"id":"a1b2c3d4e5f6"}"#
        );
        assert_eq!(
            layer(LayerState::Waiting),
            r#"{"status":"Waiting","progressDetail":{},"id":"a1b2c3d4e5f6"}"#
        );
        assert_eq!(
            layer(LayerState::Downloading {
                current: 1234,
                total: 5678
            }),
            format!(
                r#"{{"status":"Downloading","progressDetail":{{"current":1234,"total":5678}},"progress":"[{}>{}]  1.234kB/5.678kB","id":"a1b2c3d4e5f6"}}"#,
                "=".repeat(10),
                " ".repeat(40)
            )
        );
        assert_eq!(
            layer(LayerState::Downloading {
                current: 0,
                total: 10
            }),
            format!(
                r#"{{"status":"Downloading","progressDetail":{{"total":10}},"progress":"[>{}]       0B/10B","id":"a1b2c3d4e5f6"}}"#,
                " ".repeat(50)
            )
        );
        assert_eq!(
            layer(LayerState::VerifyingChecksum),
            r#"{"status":"Verifying Checksum","progressDetail":{},"id":"a1b2c3d4e5f6"}"#
        );
        assert_eq!(
            layer(LayerState::DownloadComplete),
            r#"{"status":"Download complete","progressDetail":{},"id":"a1b2c3d4e5f6"}"#
        );
        assert!(layer(LayerState::Extracting {
            current: 5,
            total: 10
        })
        .starts_with(r#"{"status":"Extracting","progressDetail":{"current":5,"total":10},"progress":"[=========================>"#));
        assert_eq!(
            layer(LayerState::PullComplete),
            r#"{"status":"Pull complete","progressDetail":{},"id":"a1b2c3d4e5f6"}"#
        );
        assert_eq!(
            layer(LayerState::AlreadyExists),
            r#"{"status":"Already exists","progressDetail":{},"id":"a1b2c3d4e5f6"}"#
        );
        assert_eq!(
            layer(LayerState::Retrying { seconds: 1 }),
            r#"{"status":"Retrying in 1 second","progressDetail":{},"id":"a1b2c3d4e5f6"}"#
        );
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            to_json(&Progress::Message {
                id: None,
                text: format!("Digest: {d}")
            }),
            format!(r#"{{"status":"Digest: {d}"}}"#)
        );
    }

    #[test]
    fn push_lines_as_docker_sends_them() {
        assert_eq!(
            layer(LayerState::Preparing),
            r#"{"status":"Preparing","progressDetail":{},"id":"a1b2c3d4e5f6"}"#
        );
        assert_eq!(
            layer(LayerState::LayerAlreadyExists),
            r#"{"status":"Layer already exists","progressDetail":{},"id":"a1b2c3d4e5f6"}"#
        );
        assert_eq!(
            layer(LayerState::MountedFrom("library/busybox".into())),
            r#"{"status":"Mounted from library/busybox","progressDetail":{},"id":"a1b2c3d4e5f6"}"#
        );
        assert_eq!(
            layer(LayerState::Pushed),
            r#"{"status":"Pushed","progressDetail":{},"id":"a1b2c3d4e5f6"}"#
        );
        let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .unwrap();
        assert_eq!(
            to_json(&Progress::Pushed {
                tag: "latest".into(),
                digest: d.clone(),
                size: 527
            }),
            format!(
                r#"{{"progressDetail":{{}},"aux":{{"Tag":"latest","Digest":"{d}","Size":527}}}}"#
            )
        );
        assert_eq!(short_id(&d), "e3b0c44298fc");
        assert_eq!(
            error_json("boom"),
            r#"{"errorDetail":{"message":"boom"},"error":"boom"}"#
        );
    }
}
