//! The fuzz targets' entry points (fuzz/, docs/fuzzing.md) under proptest,
//! so every `cargo test` throws arbitrary input at them: an agent's frame,
//! the scanner's grammar, a scenario file. Nothing may panic, and the
//! parsers keep the promises the fuzz targets assert. Bounded: a few
//! hundred cases each, a fixed seed, about a second in all.

use proptest::prelude::*;
use rmmsim::protocol::decode_agent_message;
use rmmsim::server::scanner::{parse_build_name, parse_channel, parse_digest, version_in_name};

/// A fixed seed, so CI is repeatable; explore further with
/// `PROPTEST_CASES=100000 PROPTEST_RNG_SEED=<n> cargo test --test it arbitrary_input`.
fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        c.rng_seed = proptest::test_runner::RngSeed::Fixed(20_261_201);
    }
    c
}

/// The fuzz target `decode_agent_message`: never panics; what decodes
/// encodes back to the same message.
fn decode_round_trips(text: &str) {
    if let Ok(message) = decode_agent_message(text) {
        let again = serde_json::to_string(&message).unwrap();
        assert_eq!(decode_agent_message(&again).as_ref(), Ok(&message), "{text:?}");
    }
}

/// Text that looks like an agent's frame: JSON objects with the protocol's
/// keys and odd values, so most cases get past the JSON parser.
fn frame_like() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("type"),
        Just("device_id"),
        Just("hostname"),
        Just("os"),
        Just("arch"),
        Just("version"),
        Just("site_key"),
        Just("update_id"),
        Just("success"),
        Just("error"),
        Just("level"),
        Just("message"),
    ];
    let value = prop_oneof![
        Just("\"hello\"".to_owned()),
        Just("\"heartbeat\"".to_owned()),
        Just("\"update_result\"".to_owned()),
        Just("\"log\"".to_owned()),
        Just("\"win-6f1c2a9e-0b7d-4c1e-9a51-3d2f8e4b7c10\"".to_owned()),
        Just("null".to_owned()),
        Just("true".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| n.to_string()),
        "[0-9.]{0,12}".prop_map(|s| format!("\"{s}\"")),
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just("{}".to_owned()),
        Just("[]".to_owned()),
    ];
    prop::collection::vec((key, value), 0..8).prop_map(|fields| {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    })
}

/// The fuzz target `scanner_grammar`.
fn scanner_agrees(bytes: &[u8]) {
    let _ = parse_channel(Some(bytes));
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok((_, version)) = parse_build_name(text) {
        assert_eq!(version_in_name(text), Some(version), "{text:?}");
    }
    if let Ok(digest) = parse_digest(text) {
        assert!(
            digest.len() == 64 && digest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{text:?} -> {digest}"
        );
    }
}

/// The fuzz target `scenario_parse`: parsing and checking never panic, and
/// every error's line is inside the text, in file order, at most
/// `MAX_ERRORS` of them listed.
fn scenario_parses_or_says_where(text: &str) {
    if let Err(errors) = rmmsim::scenario::parse("fuzz.toml", text) {
        assert!(!errors.errors.is_empty() && errors.errors.len() <= rmmsim::scenario::MAX_ERRORS);
        for e in &errors.errors {
            assert!(e.line >= 1 && e.line <= text.lines().count() + 1, "{e}");
        }
        let lines: Vec<usize> = errors.errors.iter().map(|e| e.line).collect();
        assert!(lines.is_sorted(), "{errors}");
    }
}

/// Shipped scenarios, to mutate: arbitrary text rarely gets past TOML.
const SCENARIOS: [&str; 2] = [
    include_str!("../../scenarios/frozen-stable.toml"),
    include_str!("../../scenarios/bad-build-rollback.toml"),
];

/// Cuts `text` at `at` (a fraction of its length, on a char boundary) and
/// splices `insert` in place of `cut` bytes.
fn mutate(text: &str, at: f64, cut: usize, insert: &str) -> String {
    let mut start = ((text.len() as f64) * at) as usize;
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + cut).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    format!("{}{insert}{}", &text[..start], &text[end..])
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn decoding_any_frame_never_panics(text in any::<String>()) {
        decode_round_trips(&text);
    }

    #[test]
    fn decoding_frame_like_json_never_panics(text in frame_like()) {
        decode_round_trips(&text);
    }

    #[test]
    fn the_scanner_grammar_takes_any_bytes(bytes in any::<Vec<u8>>()) {
        scanner_agrees(&bytes);
    }

    #[test]
    fn the_scanner_grammar_takes_any_build_like_name(
        name in "gururmm-agent-[a-z0-9.-]{0,24}(-site-[0-9a-f-]{0,8})?-[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{0,3}[a-z-]{0,2}\\.exe",
        digest in "[0-9a-fA-F]{62,66}( [ -~]{0,20})?\n?",
    ) {
        scanner_agrees(name.as_bytes());
        scanner_agrees(digest.as_bytes());
    }
}

proptest! {
    #![proptest_config(config(100))]

    #[test]
    fn any_text_as_a_scenario_never_panics(text in any::<String>()) {
        scenario_parses_or_says_where(&text);
    }

    #[test]
    fn a_mangled_scenario_never_panics(
        which in 0..SCENARIOS.len(),
        at in 0.0..1.0f64,
        cut in 0usize..40,
        insert in prop_oneof![
            any::<String>(),
            Just("\"".to_owned()),
            Just("= 0\n".to_owned()),
            Just("\n[[fleet]]\ncount = 0\n".to_owned()),
            Just("\n[[events]]\nat = \"0s\"\n".to_owned()),
            "[0-9a-z_ =\".\\[\\]{},\n-]{0,12}",
        ],
    ) {
        scenario_parses_or_says_where(&mutate(SCENARIOS[which], at, cut, insert.as_str()));
    }
}
