//! A submission body, as a worker and the projector read it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_protocol::JobSpec;

fuzz_target!(|body: &[u8]| {
    if let Ok(spec) = JobSpec::from_slice(body) {
        // A spec that was accepted is one that the rest of the code can use.
        let _ = spec.action();
        let _ = spec.job_id(1);
        if let Some(retry) = &spec.retry {
            for attempt in [0, 1, 2, 63, 64, u32::MAX] {
                let _ = retry.delay_after(attempt);
            }
        }
    }
});
