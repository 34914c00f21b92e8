//! Docker's tables: cells separated by tabs, aligned the way Go's `text/tabwriter` does with
//! the docker CLI's settings (minimum cell width 10, padding 3); the last cell of a line is
//! not padded. Also the cells both clients (the CLI and compose) show the same way.

use serde_json::Value;

/// Docker's tabwriter settings.
const MIN_WIDTH: usize = 10;
const PADDING: usize = 3;

/// Aligns tab-separated `lines` into columns.
pub fn align(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in &rows {
        // A line's last cell is not part of a column (it is not tab-terminated).
        for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            widths[i] = widths[i].max(cell.chars().count() + PADDING);
        }
    }
    for w in &mut widths {
        *w = (*w).max(MIN_WIDTH);
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `s` cut to `n` characters with an ellipsis, as docker truncates.
pub fn ellipsis(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Docker's ports column: `0.0.0.0:8080->80/tcp, 443/tcp`.
pub fn ports_text(ports: &Value) -> String {
    let mut out = Vec::new();
    for p in ports.as_array().into_iter().flatten() {
        let private = p["PrivatePort"].as_i64().unwrap_or(0);
        let proto = p["Type"].as_str().unwrap_or("tcp");
        match p["PublicPort"].as_i64() {
            Some(public) if public != 0 => out.push(format!(
                "{}:{public}->{private}/{proto}",
                p["IP"].as_str().unwrap_or("0.0.0.0")
            )),
            _ => out.push(format!("{private}/{proto}")),
        }
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_like_docker() {
        let lines = vec![
            "CONTAINER ID\tIMAGE\tCOMMAND\tNAMES".to_owned(),
            "0123456789ab\tbb\t\"sh\"\tx".to_owned(),
        ];
        assert_eq!(
            align(&lines),
            "CONTAINER ID   IMAGE     COMMAND   NAMES\n0123456789ab   bb        \"sh\"      x\n"
        );
    }
}
