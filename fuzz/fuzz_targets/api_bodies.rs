//! Engine API request bodies: container create, network and volume create, and the build
//! query, decoded and checked as the routes do; the first byte picks which.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = data.split_first() else { return };
    match which % 4 {
        0 => {
            let _ = berth_api::containers::CreateRequest::decode(Some("fuzz".into()), body);
        }
        1 => {
            let _ = berth_api::networks::decode_create(body);
        }
        2 => {
            let _ = berth_api::volumes::decode_create(body);
        }
        _ => {
            if let Ok(q) = std::str::from_utf8(body) {
                let _ = berth_api::build::parse_request(q);
            }
        }
    }
});
