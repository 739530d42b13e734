//! Any header value: parsing it as Authorization credentials or as a challenge never panics,
//! and whatever parses prints back to a value that parses equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rswitch::sip::auth::{Challenge, Credentials};

fuzz_target!(|value: &str| {
    if let Ok(credentials) = Credentials::parse(value) {
        let printed = credentials.to_string();
        assert_eq!(
            Credentials::parse(&printed).ok(),
            Some(credentials),
            "{printed:?}"
        );
    }
    if let Ok(challenge) = Challenge::parse(value) {
        let printed = challenge.to_string();
        assert_eq!(
            Challenge::parse(&printed).ok(),
            Some(challenge),
            "{printed:?}"
        );
    }
});
