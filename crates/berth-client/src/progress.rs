//! Docker's JSON progress stream (pull, push, load) shown the way the docker CLI shows it: on a
//! terminal one line per layer, redrawn in place with a progress bar; otherwise one line per
//! status change (no bars), so logs stay readable.

use std::io::Write;

use serde_json::Value;

/// The bar docker draws: 50 cells, `=` done, `>` the head, then the sizes.
pub fn bar(current: u64, total: u64) -> String {
    if total == 0 {
        return berth_core::humanize::size(current as f64);
    }
    let width = 50usize;
    let done = ((current.min(total) as f64 / total as f64) * width as f64) as usize;
    let mut s = String::with_capacity(width + 32);
    s.push('[');
    for i in 0..width {
        s.push(if i + 1 < done || (i + 1 == done && done == width) {
            '='
        } else if i + 1 == done {
            '>'
        } else {
            ' '
        });
    }
    s.push(']');
    format!(
        "{s}  {}/{}",
        berth_core::humanize::size(current as f64),
        berth_core::humanize::size(total as f64)
    )
}

/// An error message in the stream.
fn error_of(m: &Value) -> Option<String> {
    m["errorDetail"]["message"]
        .as_str()
        .or(m["error"].as_str())
        .map(str::to_owned)
}

/// Renders a progress stream; returns the first error it carried, if any.
#[derive(Debug)]
pub struct Display<W: Write> {
    out: W,
    tty: bool,
    /// Layer ids in the order their lines were printed (terminal mode).
    lines: Vec<String>,
    /// The last status printed per id (plain mode prints changes only).
    last: std::collections::HashMap<String, String>,
}

impl<W: Write> Display<W> {
    pub fn new(out: W, tty: bool) -> Display<W> {
        Display {
            out,
            tty,
            lines: Vec::new(),
            last: Default::default(),
        }
    }

    /// Shows one message; returns its error, if it is one.
    pub fn show(&mut self, m: &Value) -> std::io::Result<Option<String>> {
        if let Some(e) = error_of(m) {
            return Ok(Some(e));
        }
        if m.get("aux").is_some() {
            return Ok(None); // results for the client (an image ID), not output
        }
        if let Some(s) = m["stream"].as_str() {
            write!(self.out, "{s}")?;
            return self.flush();
        }
        let status = m["status"].as_str().unwrap_or("");
        let id = m["id"].as_str().unwrap_or("");
        let detail = &m["progressDetail"];
        let progress = match (detail["current"].as_u64(), detail["total"].as_u64()) {
            (Some(c), Some(t)) => Some(bar(c, t)),
            (Some(c), None) => Some(berth_core::humanize::size(c as f64)),
            _ => m["progress"].as_str().map(str::to_owned),
        };
        if id.is_empty() {
            writeln!(self.out, "{status}")?;
            return self.flush();
        }
        let text = match &progress {
            Some(p) if self.tty => format!("{id}: {status} {p}"),
            _ => format!("{id}: {status}"),
        };
        if !self.tty {
            // Plain output: only changes of status, no bars.
            if self.last.get(id).map(String::as_str) != Some(status) {
                self.last.insert(id.to_owned(), status.to_owned());
                writeln!(self.out, "{text}")?;
            }
            return self.flush();
        }
        match self.lines.iter().position(|l| l == id) {
            None => {
                self.lines.push(id.to_owned());
                writeln!(self.out, "{text}")?;
            }
            Some(i) => {
                let up = self.lines.len() - i;
                // Up to the layer's line, clear it, write, and back down.
                write!(self.out, "\x1b[{up}A\r\x1b[2K{text}\r\x1b[{up}B")?;
            }
        }
        self.flush()
    }

    fn flush(&mut self) -> std::io::Result<Option<String>> {
        self.out.flush()?;
        Ok(None)
    }

    /// Shows a whole stream of JSON lines; returns the first error it carried.
    pub fn show_stream(&mut self, body: &mut dyn std::io::Read) -> std::io::Result<Option<String>> {
        let mut reader = std::io::BufReader::new(body);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = std::io::BufRead::read_until(&mut reader, b'\n', &mut line)?;
            if n == 0 {
                return Ok(None);
            }
            let Ok(m) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            if let Some(e) = self.show(&m)? {
                return Ok(Some(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bars_like_docker() {
        let cells = |b: String| b.split(']').next().unwrap().len();
        assert_eq!(cells(bar(0, 100)), cells(bar(100, 100)));
        assert!(bar(50, 100).starts_with("[========================>"));
        assert!(bar(100, 100).starts_with("[=================================================="));
        assert!(bar(50_000, 100_000).ends_with("50kB/100kB"));
    }

    #[test]
    fn plain_output_shows_status_changes_only() {
        let mut out = Vec::new();
        let mut d = Display::new(&mut out, false);
        for m in [
            json!({"status": "Pulling from library/bb", "id": "latest"}),
            json!({"status": "Pulling fs layer", "id": "abc"}),
            json!({"status": "Downloading", "id": "abc", "progressDetail": {"current": 1, "total": 9}}),
            json!({"status": "Downloading", "id": "abc", "progressDetail": {"current": 5, "total": 9}}),
            json!({"status": "Pull complete", "id": "abc"}),
            json!({"status": "Digest: sha256:00"}),
        ] {
            assert_eq!(d.show(&m).unwrap(), None);
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "latest: Pulling from library/bb\nabc: Pulling fs layer\nabc: Downloading\nabc: Pull complete\nDigest: sha256:00\n"
        );
        let mut out = Vec::new();
        let mut d = Display::new(&mut out, false);
        assert_eq!(
            d.show(&json!({"errorDetail": {"message": "manifest unknown"}, "error": "manifest unknown"}))
                .unwrap()
                .as_deref(),
            Some("manifest unknown")
        );
    }

    #[test]
    fn terminal_output_redraws_a_layer_in_place() {
        let mut out = Vec::new();
        let mut d = Display::new(&mut out, true);
        d.show(&json!({"status": "Waiting", "id": "a"})).unwrap();
        d.show(&json!({"status": "Waiting", "id": "b"})).unwrap();
        d.show(&json!({"status": "Downloading", "id": "a", "progressDetail": {"current": 1, "total": 2}}))
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("a: Waiting\nb: Waiting\n\x1b[2A\r\x1b[2Ka: Downloading ["),
            "{text:?}"
        );
        assert!(text.ends_with("\r\x1b[2B"), "{text:?}");
    }
}
