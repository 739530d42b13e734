//! Any byte stream, cut into reads of varying sizes: the framer never panics, never keeps
//! more than the message limit once it asks for more bytes, never yields a message over
//! the limit, and neither loses nor invents a byte (frames + pending == bytes pushed).
//!
//! Input: two bytes of limit, one byte seeding the read sizes, then the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rswitch::sip::message::Limits;
use rswitch::sip::transport::framing::{Frame, StreamFramer};

fuzz_target!(|input: &[u8]| {
    let [hi, lo, seed, stream @ ..] = input else {
        return;
    };
    let mut seed = *seed;
    let limit = 64 + usize::from(u16::from_be_bytes([*hi, *lo]) % 4096);
    let mut framer = StreamFramer::new(Limits {
        max_message_bytes: limit,
        ..Limits::default()
    });
    let (mut pushed, mut framed) = (0, 0);
    for chunk in chunks(stream, &mut seed) {
        framer.push(chunk);
        pushed += chunk.len();
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Message(message))) => {
                    assert!(
                        message.len() <= limit,
                        "a {}-byte message over the {limit} limit",
                        message.len()
                    );
                    framed += message.len();
                }
                Ok(Some(Frame::Ping)) => framed += 4,
                Ok(Some(Frame::Pong)) => framed += 2,
                Ok(None) => break,
                Err(_) => return, // the connection is closed
            }
        }
        assert!(
            framer.pending() <= limit,
            "{} bytes pending over the {limit} limit",
            framer.pending()
        );
        assert_eq!(framed + framer.pending(), pushed, "bytes lost or invented");
    }
});

/// `stream` cut into reads of 1 to 64 bytes, sizes drawn from `seed`.
fn chunks<'a>(mut stream: &'a [u8], seed: &'a mut u8) -> impl Iterator<Item = &'a [u8]> {
    std::iter::from_fn(move || {
        if stream.is_empty() {
            return None;
        }
        *seed = seed.wrapping_mul(101).wrapping_add(13);
        let (chunk, rest) = stream.split_at(usize::from(*seed % 64 + 1).min(stream.len()));
        stream = rest;
        Some(chunk)
    })
}
