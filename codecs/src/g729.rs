//! G.729 Annex A (and Annex B silence frames), RTP payload type 18, through bcg729 (Debian
//! `libbcg729`, GPL-3.0: see the README). Built with the cargo feature `g729` (on by default).
//!
//! 80 samples at 8 kHz (10 ms) become 10 bytes; an RTP packet of 20 ms carries two frames. A
//! 2-byte frame is an Annex B SID (comfort noise) frame. The wrapper owns the bcg729 contexts
//! and checks every frame size before calling in.

use std::os::raw::c_void;

use crate::{CodecInfo, Decoder, Encoder};

/// G729: static payload type 18, 8 kHz, 80-sample frames.
pub const G729: CodecInfo = CodecInfo {
    name: "G729",
    sample_rate: 8000,
    static_payload_type: Some(18),
    frame_samples: FRAME_SAMPLES,
};

const FRAME_SAMPLES: usize = 80;
const FRAME_BYTES: usize = 10;
const SID_BYTES: usize = 2;

#[link(name = "bcg729")]
unsafe extern "C" {
    fn initBcg729EncoderChannel(enable_vad: u8) -> *mut c_void;
    fn closeBcg729EncoderChannel(context: *mut c_void);
    fn bcg729Encoder(
        context: *mut c_void,
        input: *const i16,
        bitstream: *mut u8,
        bitstream_length: *mut u8,
    );
    fn initBcg729DecoderChannel() -> *mut c_void;
    fn closeBcg729DecoderChannel(context: *mut c_void);
    fn bcg729Decoder(
        context: *mut c_void,
        bitstream: *const u8,
        bitstream_length: u8,
        frame_erasure: u8,
        sid_frame: u8,
        rfc3389_payload: u8,
        signal: *mut i16,
    );
}

/// G.729 encoder.
pub struct G729Encoder {
    context: *mut c_void,
}

// SAFETY: the bcg729 context is plain memory owned by this value and used only through
// `&mut self`.
unsafe impl Send for G729Encoder {}

impl G729Encoder {
    /// An encoder; with `vad`, silence is sent as 2-byte SID frames or nothing (Annex B).
    pub fn new(vad: bool) -> G729Encoder {
        // SAFETY: plain constructor; returns a new context or null.
        let context = unsafe { initBcg729EncoderChannel(u8::from(vad)) };
        assert!(!context.is_null(), "bcg729 could not allocate its encoder");
        G729Encoder { context }
    }
}

impl Drop for G729Encoder {
    fn drop(&mut self) {
        // SAFETY: the context came from initBcg729EncoderChannel and is closed once.
        unsafe { closeBcg729EncoderChannel(self.context) }
    }
}

impl Encoder for G729Encoder {
    fn info(&self) -> CodecInfo {
        G729
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        for frame in pcm.chunks_exact(FRAME_SAMPLES) {
            let start = out.len();
            out.resize(start + FRAME_BYTES, 0);
            let mut written = 0u8;
            // SAFETY: the context is live; the input holds 80 samples and the output room
            // for the 10 bytes bcg729Encoder writes at most.
            unsafe {
                bcg729Encoder(
                    self.context,
                    frame.as_ptr(),
                    out[start..].as_mut_ptr(),
                    &mut written,
                )
            };
            out.truncate(start + usize::from(written).min(FRAME_BYTES));
        }
    }
}

/// G.729 decoder.
pub struct G729Decoder {
    context: *mut c_void,
}

// SAFETY: as for the encoder.
unsafe impl Send for G729Decoder {}

impl G729Decoder {
    pub fn new() -> G729Decoder {
        // SAFETY: plain constructor; returns a new context or null.
        let context = unsafe { initBcg729DecoderChannel() };
        assert!(!context.is_null(), "bcg729 could not allocate its decoder");
        G729Decoder { context }
    }

    fn decode_frame(&mut self, frame: &[u8], erased: bool, out: &mut Vec<i16>) {
        let start = out.len();
        out.resize(start + FRAME_SAMPLES, 0);
        let sid = frame.len() == SID_BYTES;
        // SAFETY: the context is live; `frame` is 10 bytes (2 for SID) as its length says,
        // and the output holds the 80 samples bcg729Decoder writes.
        unsafe {
            bcg729Decoder(
                self.context,
                frame.as_ptr(),
                frame.len() as u8,
                u8::from(erased),
                u8::from(sid),
                0,
                out[start..].as_mut_ptr(),
            )
        };
    }

    /// One lost 10 ms frame, concealed by the decoder.
    pub fn conceal_frame(&mut self, out: &mut Vec<i16>) {
        self.decode_frame(&[0; FRAME_BYTES], true, out);
    }
}

impl Default for G729Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for G729Decoder {
    fn drop(&mut self) {
        // SAFETY: the context came from initBcg729DecoderChannel and is closed once.
        unsafe { closeBcg729DecoderChannel(self.context) }
    }
}

impl Decoder for G729Decoder {
    fn info(&self) -> CodecInfo {
        G729
    }

    /// Whole 10-byte frames, then at most one 2-byte SID frame; other tails are ignored.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        let frames = payload.chunks_exact(FRAME_BYTES);
        let tail = frames.remainder();
        for frame in frames {
            self.decode_frame(frame, false, out);
        }
        if tail.len() == SID_BYTES {
            self.decode_frame(tail, false, out);
        }
    }

    fn has_concealment(&self) -> bool {
        true
    }

    /// Whole 10 ms frames concealed by the decoder; a part frame at the end as silence.
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        for _ in 0..samples / FRAME_SAMPLES {
            self.conceal_frame(out);
        }
        out.resize(out.len() + samples % FRAME_SAMPLES, 0);
    }
}
