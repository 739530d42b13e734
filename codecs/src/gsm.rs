//! GSM 06.10 full rate (RTP payload type 3), through libgsm (Debian `libgsm1`).
//!
//! 160 samples at 8 kHz (20 ms) become 33 bytes. The wrapper owns the libgsm state and checks
//! every frame size before calling in; a payload that is not a whole number of frames has its
//! tail ignored.

use std::os::raw::{c_int, c_short, c_uchar, c_void};

use crate::{CodecInfo, Decoder, Encoder};

/// GSM: static payload type 3, 8 kHz, 160-sample frames.
pub const GSM: CodecInfo = CodecInfo {
    name: "GSM",
    sample_rate: 8000,
    static_payload_type: Some(3),
    frame_samples: FRAME_SAMPLES,
};

const FRAME_SAMPLES: usize = 160;
const FRAME_BYTES: usize = 33;

#[link(name = "gsm")]
unsafe extern "C" {
    fn gsm_create() -> *mut c_void;
    fn gsm_destroy(state: *mut c_void);
    fn gsm_encode(state: *mut c_void, source: *mut c_short, destination: *mut c_uchar);
    fn gsm_decode(state: *mut c_void, source: *mut c_uchar, destination: *mut c_short) -> c_int;
}

/// One libgsm state (encoders and decoders each need their own).
struct State(*mut c_void);

// SAFETY: a libgsm state is plain memory owned by this value; it is only used through
// `&mut self`, so never from two threads at once.
unsafe impl Send for State {}

impl State {
    fn new() -> State {
        // SAFETY: gsm_create takes no arguments and returns a new state or null.
        let state = unsafe { gsm_create() };
        assert!(!state.is_null(), "libgsm could not allocate its state");
        State(state)
    }
}

impl Drop for State {
    fn drop(&mut self) {
        // SAFETY: the state came from gsm_create and is destroyed once.
        unsafe { gsm_destroy(self.0) }
    }
}

/// GSM encoder.
pub struct GsmEncoder {
    state: State,
    /// libgsm's encoder takes a mutable input pointer: it gets a copy.
    scratch: [i16; FRAME_SAMPLES],
}

impl GsmEncoder {
    pub fn new() -> GsmEncoder {
        GsmEncoder {
            state: State::new(),
            scratch: [0; FRAME_SAMPLES],
        }
    }
}

impl Default for GsmEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder for GsmEncoder {
    fn info(&self) -> CodecInfo {
        GSM
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        for frame in pcm.chunks_exact(FRAME_SAMPLES) {
            self.scratch.copy_from_slice(frame);
            let start = out.len();
            out.resize(start + FRAME_BYTES, 0);
            // SAFETY: the state is live; the input holds 160 samples and the output 33
            // bytes, the sizes gsm_encode reads and writes.
            unsafe {
                gsm_encode(
                    self.state.0,
                    self.scratch.as_mut_ptr(),
                    out[start..].as_mut_ptr(),
                )
            };
        }
    }
}

/// GSM decoder.
pub struct GsmDecoder {
    state: State,
    scratch: [u8; FRAME_BYTES],
}

impl GsmDecoder {
    pub fn new() -> GsmDecoder {
        GsmDecoder {
            state: State::new(),
            scratch: [0; FRAME_BYTES],
        }
    }
}

impl Default for GsmDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder for GsmDecoder {
    fn info(&self) -> CodecInfo {
        GSM
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        for frame in payload.chunks_exact(FRAME_BYTES) {
            self.scratch.copy_from_slice(frame);
            let start = out.len();
            out.resize(start + FRAME_SAMPLES, 0);
            // SAFETY: the state is live; the input holds 33 bytes and the output 160
            // samples, the sizes gsm_decode reads and writes.
            let status = unsafe {
                gsm_decode(
                    self.state.0,
                    self.scratch.as_mut_ptr(),
                    out[start..].as_mut_ptr(),
                )
            };
            if status != 0 {
                // Not a GSM frame (bad magic nibble): silence in its place.
                out[start..].fill(0);
            }
        }
    }
}
