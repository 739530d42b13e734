//! AMR narrowband (3GPP TS 26.071), through opencore-amrnb (Debian `libopencore-amrnb0`).
//!
//! 160 samples at 8 kHz (20 ms) become one frame in the "storage" layout of RFC 4867 §5: a
//! table-of-contents byte (frame type, quality bit) and the speech bits, 32 bytes at 12.2
//! kbit/s. This wrapper's byte format is a sequence of such frames; the RTP payload formats of
//! RFC 4867 (octet-aligned and bandwidth-efficient) are built from it by the media engine.
//! The wrapper owns the opencore states, gives the encoder a copy of its input (opencore
//! writes into it although its header says `const`), and checks every frame size before
//! calling in.

use std::os::raw::{c_int, c_short, c_uchar, c_void};

use crate::{CodecInfo, Decoder, Encoder};

/// AMR: dynamic payload type, 8 kHz, 160-sample frames.
pub const AMR: CodecInfo = CodecInfo {
    name: "AMR",
    sample_rate: 8000,
    static_payload_type: None,
    frame_samples: FRAME_SAMPLES,
};

const FRAME_SAMPLES: usize = 160;
/// The largest storage frame: ToC + 31 bytes of 12.2 kbit/s speech.
const MAX_FRAME_BYTES: usize = 32;

/// The AMR-NB modes (bit rates), as opencore numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmrMode {
    Mr475 = 0,
    Mr515 = 1,
    Mr59 = 2,
    Mr67 = 3,
    Mr74 = 4,
    Mr795 = 5,
    Mr102 = 6,
    Mr122 = 7,
}

/// Speech bytes after the ToC byte for each frame type (0–7 speech, 8 SID, 15 no data);
/// `None` for the types that do not occur in AMR-NB.
pub fn frame_bytes(frame_type: u8) -> Option<usize> {
    match frame_type {
        0 => Some(12),
        1 => Some(13),
        2 => Some(15),
        3 => Some(17),
        4 => Some(19),
        5 => Some(20),
        6 => Some(26),
        7 => Some(31),
        8 => Some(5),
        15 => Some(0),
        _ => None,
    }
}

#[link(name = "opencore-amrnb")]
unsafe extern "C" {
    fn Encoder_Interface_init(dtx: c_int) -> *mut c_void;
    fn Encoder_Interface_exit(state: *mut c_void);
    fn Encoder_Interface_Encode(
        state: *mut c_void,
        mode: c_int,
        speech: *const c_short,
        out: *mut c_uchar,
        force_speech: c_int,
    ) -> c_int;
    fn Decoder_Interface_init() -> *mut c_void;
    fn Decoder_Interface_exit(state: *mut c_void);
    fn Decoder_Interface_Decode(
        state: *mut c_void,
        input: *const c_uchar,
        out: *mut c_short,
        bad_frame: c_int,
    );
}

/// AMR-NB encoder.
pub struct AmrEncoder {
    state: *mut c_void,
    mode: AmrMode,
    scratch: [i16; FRAME_SAMPLES],
}

// SAFETY: the opencore state is plain memory owned by this value and used only through
// `&mut self`.
unsafe impl Send for AmrEncoder {}

impl AmrEncoder {
    /// An encoder at `mode`; with `dtx`, silence becomes SID frames.
    pub fn new(mode: AmrMode, dtx: bool) -> AmrEncoder {
        // SAFETY: plain constructor; returns a new state or null.
        let state = unsafe { Encoder_Interface_init(c_int::from(dtx)) };
        assert!(
            !state.is_null(),
            "opencore-amrnb could not allocate its encoder"
        );
        AmrEncoder {
            state,
            mode,
            scratch: [0; FRAME_SAMPLES],
        }
    }

    /// Changes the bit rate from the next frame on (e.g. after a CMR from the peer).
    pub fn set_mode(&mut self, mode: AmrMode) {
        self.mode = mode;
    }
}

impl Drop for AmrEncoder {
    fn drop(&mut self) {
        // SAFETY: the state came from Encoder_Interface_init and is released once.
        unsafe { Encoder_Interface_exit(self.state) }
    }
}

impl Encoder for AmrEncoder {
    fn info(&self) -> CodecInfo {
        AMR
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        for frame in pcm.chunks_exact(FRAME_SAMPLES) {
            self.scratch.copy_from_slice(frame);
            let start = out.len();
            out.resize(start + MAX_FRAME_BYTES, 0);
            // SAFETY: the state is live; the input is our own copy of 160 samples (opencore
            // writes into it) and the output has room for the largest frame, 32 bytes.
            let written = unsafe {
                Encoder_Interface_Encode(
                    self.state,
                    self.mode as c_int,
                    self.scratch.as_ptr(),
                    out[start..].as_mut_ptr(),
                    0,
                )
            };
            let written = usize::try_from(written).unwrap_or(0).min(MAX_FRAME_BYTES);
            out.truncate(start + written);
        }
    }
}

/// AMR-NB decoder.
pub struct AmrDecoder {
    state: *mut c_void,
    scratch: [u8; MAX_FRAME_BYTES],
}

// SAFETY: as for the encoder.
unsafe impl Send for AmrDecoder {}

impl AmrDecoder {
    pub fn new() -> AmrDecoder {
        // SAFETY: plain constructor; returns a new state or null.
        let state = unsafe { Decoder_Interface_init() };
        assert!(
            !state.is_null(),
            "opencore-amrnb could not allocate its decoder"
        );
        AmrDecoder {
            state,
            scratch: [0; MAX_FRAME_BYTES],
        }
    }
}

impl Default for AmrDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for AmrDecoder {
    fn drop(&mut self) {
        // SAFETY: the state came from Decoder_Interface_init and is released once.
        unsafe { Decoder_Interface_exit(self.state) }
    }
}

impl Decoder for AmrDecoder {
    fn info(&self) -> CodecInfo {
        AMR
    }

    /// Storage frames one after another; decoding stops at a frame type AMR-NB does not have
    /// or a frame cut short.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        let mut rest = payload;
        while let Some(&toc) = rest.first() {
            let Some(length) = frame_bytes((toc >> 3) & 0x0f) else {
                return;
            };
            let Some(frame) = rest.get(..1 + length) else {
                return;
            };
            self.scratch = [0; MAX_FRAME_BYTES];
            self.scratch[..frame.len()].copy_from_slice(frame);
            let start = out.len();
            out.resize(start + FRAME_SAMPLES, 0);
            // SAFETY: the state is live; the input is a whole storage frame (its ToC says how
            // long, and we checked it is all there) in a 32-byte buffer, and the output holds
            // the 160 samples Decoder_Interface_Decode writes.
            unsafe {
                Decoder_Interface_Decode(
                    self.state,
                    self.scratch.as_ptr(),
                    out[start..].as_mut_ptr(),
                    0,
                )
            };
            rest = &rest[frame.len()..];
        }
    }
}
