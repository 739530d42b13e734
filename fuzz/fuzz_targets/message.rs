//! Any datagram: a message that parses prints back to one that parses equal; a datagram
//! that does not parse never panics, nor does the stateless error response built for it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rswitch::sip::message::{Limits, error_response, parse_datagram};

fuzz_target!(|datagram: &[u8]| {
    let limits = Limits::default();
    match parse_datagram(datagram, &limits) {
        Ok(message) => {
            let printed = message.to_bytes();
            let reparsed = parse_datagram(&printed, &limits);
            assert_eq!(reparsed.as_ref(), Ok(&message), "parse(print(m)) != m");
        }
        Err(error) => drop(error_response(datagram, &error)),
    }
});
