//! A resource file, as `shoal apply`, `shoal render` and the supervisor read it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_protocol::resource::Resource;

fuzz_target!(|text: &str| {
    let _ = Resource::from_yaml(text);
});
