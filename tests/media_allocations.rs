//! The media path allocates nothing per packet once a call is set up: a pass-through call and
//! transcoded calls (PCMU↔Opus, PCMU↔G.729, PCMU↔G.722) run for a while to warm up, then
//! ten seconds more of packets and ticks must not touch the heap. Counts, not times: the
//! result does not depend on the machine. Its own test binary, so no other test allocates
//! while it counts (one test function, run alone).

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use rswitch::media::continuity::LatchPolicy;
use rswitch::media::rtp::RtpHeader;
use rswitch::media::shard::{Codec, Feed, LegConfig, Shard};
use rswitch_codecs::factory;

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

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn leg(name: &str, payload_type: u8, clock_rate: u32, port: u16, ssrc: u32) -> LegConfig {
    LegConfig {
        codec: Codec {
            name: name.into(),
            payload_type,
            clock_rate,
            fmtp: None,
        },
        telephone_event: Some(101),
        remote: Some(SocketAddr::from(([192, 0, 2, 1], port))),
        latch: LatchPolicy::Continue,
        send: true,
        receive: true,
        ssrc,
        first_sequence: 1,
        rtcp_mux: true,
        detect_inband_dtmf: true,
    }
}

/// One encoded 20 ms payload of a tone, made before counting.
fn payload(name: &str, rate: u32) -> Vec<u8> {
    let mut encoder = factory::new_encoder(name, None, rate).unwrap();
    let rate = encoder.info().sample_rate;
    let pcm: Vec<i16> = (0..rate as usize / 50)
        .map(|n| (6000.0 * (n as f64 * 0.3).sin()) as i16)
        .collect();
    let mut out = Vec::new();
    encoder.encode(&pcm, &mut out);
    out
}

#[test]
fn a_running_call_allocates_nothing_per_packet() {
    let calls = [
        (("PCMU", 0, 8000), ("PCMU", 0, 8000)),
        (("PCMU", 0, 8000), ("opus", 111, 48_000)),
        (("PCMU", 0, 8000), ("G729", 18, 8000)),
        (("PCMA", 8, 8000), ("G722", 9, 8000)),
    ];
    let mut shard = Shard::new("rswitch@test");
    let mut legs = Vec::new();
    for (index, (a, b)) in calls.iter().enumerate() {
        let port = 4000 + 2 * index as u16;
        let leg_a = shard.add_leg(leg(a.0, a.1, a.2, port, 1 + index as u32));
        let leg_b = shard.add_leg(leg(b.0, b.1, b.2, port + 100, 100 + index as u32));
        shard.set_feed(leg_a, Feed::Leg(leg_b)).unwrap();
        shard.set_feed(leg_b, Feed::Leg(leg_a)).unwrap();
        let payload_a = payload(a.0, 8000);
        let payload_b = payload(b.0, 8000);
        legs.push((leg_a, a, payload_a, port, leg_b, b, payload_b, port + 100));
    }
    let mut datagram = Vec::with_capacity(1500);
    let mut run = |shard: &mut Shard, ticks: std::ops::Range<u64>| {
        for tick in ticks {
            let now = tick * 20;
            for (leg_a, a, payload_a, port_a, leg_b, b, payload_b, port_b) in &legs {
                for (leg, codec, payload, port) in
                    [(leg_a, a, payload_a, port_a), (leg_b, b, payload_b, port_b)]
                {
                    datagram.clear();
                    RtpHeader {
                        marker: false,
                        payload_type: codec.1,
                        sequence: tick as u16,
                        timestamp: (tick as u32).wrapping_mul(codec.2 / 50),
                        ssrc: 0x7777,
                    }
                    .write_packet(payload, &mut datagram);
                    let source = SocketAddr::from(([192, 0, 2, 1], *port));
                    shard.handle_datagram(*leg, source, &datagram, false, now);
                }
            }
            shard.handle_tick(now);
            assert!(!shard.transmits().is_empty());
            shard.clear_transmits();
            while shard.poll_event().is_some() {}
        }
    };
    // Warm up: buffers reach their working size, the jitter buffer settles, RTCP is sent.
    run(&mut shard, 0..600);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    run(&mut shard, 600..1100);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(
        allocations, 0,
        "heap allocations in 10 s of four calls (pass-through and transcoded)"
    );
}
