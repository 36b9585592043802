//! An agent's text frame: decoding never panics, and a frame that decodes
//! encodes back to one that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rmmsim::protocol::decode_agent_message;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = decode_agent_message(text) {
        let again = serde_json::to_string(&message).expect("a decoded message encodes");
        assert_eq!(decode_agent_message(&again).as_ref(), Ok(&message));
    }
});
