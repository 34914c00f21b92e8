//! Docker's tables: cells separated by tabs, aligned the way Go's `text/tabwriter` does with
//! the docker CLI's settings (minimum cell width 10, padding 3); the last cell of a line is
//! not padded.

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
