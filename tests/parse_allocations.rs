//! How many heap allocations parsing a typical INVITE costs: the parser's design (one text
//! buffer, spans, grammar checks over borrowed slices) keeps it at four — the header text,
//! the field list, the body and the Request-URI's user part. A change that allocates per
//! header or per check fails here. Counts, not times: the result does not depend on the
//! machine. Its own test binary, so no other test allocates while it counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use rswitch::sip::message::{Limits, parse_datagram};

struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const INVITE: &str = "INVITE sip:1001@192.0.2.10 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.55:5060;branch=z9hG4bK-524287-1---7f9d3c1a2b4e5f60;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:1000@192.0.2.55:5060;transport=udp>\r\n\
To: <sip:1001@192.0.2.10>\r\n\
From: \"Zhang San\" <sip:1000@192.0.2.10>;tag=3f8a7b2c\r\n\
Call-ID: 9c4e2a1f7b3d4e5a8c6b0d2f1e3a5c7b@192.0.2.55\r\n\
CSeq: 1 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE, UPDATE\r\n\
Content-Type: application/sdp\r\n\
Supported: replaces, timer, 100rel\r\n\
User-Agent: Yealink SIP-T46U 108.86.0.20\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Content-Length: 32\r\n\
\r\n\
v=0\r\n\
o=- 20518 0 IN IP4 192.0.2.55\r\n";

#[test]
fn parsing_a_typical_invite_allocates_four_times() {
    let limits = Limits::default();
    // Warm up anything the first call initialises.
    parse_datagram(INVITE.as_bytes(), &limits).expect("parses");
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let message = parse_datagram(INVITE.as_bytes(), &limits).expect("parses");
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    drop(message);
    assert_eq!(allocations, 4, "allocations to parse the INVITE");
}
