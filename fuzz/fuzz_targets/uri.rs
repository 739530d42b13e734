//! Any text: a URI that parses prints back to one that parses equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rswitch::sip::message::Uri;

fuzz_target!(|text: &str| {
    if let Ok(uri) = Uri::parse(text) {
        let printed = uri.to_string();
        assert_eq!(
            Uri::parse(&printed).ok(),
            Some(uri),
            "parse(print(u)) != u for {printed:?}"
        );
    }
});
