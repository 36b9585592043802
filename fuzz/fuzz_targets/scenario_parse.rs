//! A scenario file: parsing and checking never panic, and every error names
//! a line and column inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = rmmsim::scenario::parse("fuzz.toml", text) {
        for e in &errors.errors {
            assert!(e.line >= 1 && e.line <= text.lines().count().max(1) + 1, "{e}");
        }
    }
});
