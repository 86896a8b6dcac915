//! The config loader: any text must give a config or a file:line error, never a panic.
#![no_main]

use std::path::Path;

use hotline::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::parse(Path::new("fuzz.toml"), text);
    }
});
