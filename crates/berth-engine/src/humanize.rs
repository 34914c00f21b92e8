//! Names the way Docker generates them (and durations, from berth-core).

pub use berth_core::humanize::duration;

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
