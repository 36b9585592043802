//! The scanner's grammar: build file names, `.sha256` and `.channel`
//! contents. Nothing panics, and the parsers agree with each other.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rmmsim::server::scanner::{parse_build_name, parse_channel, parse_digest, version_in_name};

fuzz_target!(|data: &[u8]| {
    let _ = parse_channel(Some(data));
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((_, version)) = parse_build_name(text) {
        assert_eq!(version_in_name(text), Some(version), "{text:?}");
    }
    let _ = version_in_name(text);
    if let Ok(digest) = parse_digest(text) {
        assert!(digest.len() == 64 && digest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    }
});
