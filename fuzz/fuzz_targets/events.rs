//! Any message of the jobs, events and heartbeats streams, as the projector
//! decodes it: the first line is the subject, the rest the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_protocol::decode::{decode_event, decode_heartbeat, decode_submission};
use shoal_protocol::rejection::Position;
use shoal_protocol::{Subjects, Timestamp};

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|byte| *byte == b'\n').unwrap_or(data.len());
    let subject = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 1..).unwrap_or_default();
    let subjects = Subjects::default();
    let at = Position {
        stream: "SHOAL_FUZZ",
        sequence: 1,
        stored_at: Timestamp::now(),
    };
    let _ = decode_submission(&subjects, &subject, body, at);
    let _ = decode_event(&subjects, &subject, body, at);
    let _ = decode_heartbeat(&subjects, &subject, body, at);
});
