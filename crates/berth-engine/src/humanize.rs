//! Durations and names the way `docker ps` shows them.

/// Docker's rough durations: "Less than a second", "5 seconds", "About a minute", "3 hours"…
pub fn duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0 => "Less than a second".to_owned(),
        1 => "1 second".to_owned(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".to_owned(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".to_owned(),
        7200..=172_799 => format!("{} hours", s / 3600),
        172_800..=1_209_599 => format!("{} days", s / 86_400),
        1_209_600..=5_183_999 => format!("{} weeks", s / 604_800),
        5_184_000..=63_071_999 => format!("{} months", s / 2_592_000),
        _ => format!("{} years", s / 31_536_000),
    }
}

const FIRST: [&str; 24] = [
    "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lively", "merry",
    "nimble", "proud", "quick", "quiet", "rapid", "shiny", "silent", "steady", "swift", "tidy",
    "vivid", "wise", "young", "zesty",
];
const SECOND: [&str; 24] = [
    "anchor", "beacon", "buoy", "cabin", "compass", "current", "dock", "galley", "harbor", "hull",
    "jetty", "keel", "lagoon", "lantern", "mast", "mooring", "pier", "quay", "rudder", "sail",
    "skiff", "tide", "wharf", "yawl",
];

/// A random `adjective_noun` name, like Docker's generated names.
pub fn random_name() -> String {
    let mut b = [0u8; 2];
    let _ = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
    format!(
        "{}_{}",
        FIRST[b[0] as usize % FIRST.len()],
        SECOND[b[1] as usize % SECOND.len()]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_docker() {
        assert_eq!(duration(0), "Less than a second");
        assert_eq!(duration(5), "5 seconds");
        assert_eq!(duration(90), "About a minute");
        assert_eq!(duration(3 * 3600), "3 hours");
        assert!(random_name().contains('_'));
    }
}
