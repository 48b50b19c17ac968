//! Times and durations as every part reads them from the wire, and the
//! arithmetic done on them: none may panic or overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_protocol::{Duration, Timestamp};

fuzz_target!(|text: &str| {
    let (left, right) = text.split_once('|').unwrap_or((text, "1s"));
    let time = left.parse::<Timestamp>();
    let duration = right.parse::<Duration>();
    if let Ok(duration) = duration {
        let _ = duration.to_string();
        let again: Duration = duration.to_string().parse().expect("a duration reads back");
        assert_eq!(again, duration);
        if let Ok(time) = time {
            let _ = time.checked_add(duration.get());
        }
        let _ = Timestamp::now().checked_add(duration.get());
    }
    if let Ok(time) = time {
        let _ = time.to_string();
        let _ = serde_json::to_string(&time).expect("a time serializes");
    }
});
