//! Stream framing (RFC 3261 §18.3): cut SIP messages out of a TCP or TLS byte stream by their
//! Content-Length, and recognise RFC 5626 keep-alives.
//!
//! Pure: the connection task pushes the bytes it reads and pops what is complete. A message
//! without a Content-Length, with a malformed or conflicting one, or with a header section
//! larger than the limit is a framing error: the stream can not be resynchronised and the
//! caller closes the connection.

use crate::sip::message::{Headers, Limits, ParseError};

/// What the framer found at the front of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete message (start line to end of body).
    Message(Vec<u8>),
    /// A double-CRLF keep-alive ping: answer with a single CRLF pong.
    Ping,
    /// A single-CRLF keep-alive pong.
    Pong,
}

/// Why the stream must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("header section larger than {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("message larger than {limit} bytes")]
    MessageTooLarge { limit: usize },
    #[error("stream message without a valid Content-Length: {0}")]
    ContentLength(ParseError),
}

/// Accumulates stream bytes and yields frames.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buffer: Vec<u8>,
    limits: Limits,
}

impl StreamFramer {
    pub fn new(limits: Limits) -> Self {
        StreamFramer {
            buffer: Vec::new(),
            limits,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes received but not yet framed.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    /// A framing error; the connection must be closed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        if self.buffer.starts_with(b"\r\n\r\n") {
            self.buffer.drain(..4);
            return Ok(Some(Frame::Ping));
        }
        if self.buffer.starts_with(b"\r\n") {
            if self.buffer.len() < 4 && b"\r\n\r\n".starts_with(&self.buffer) {
                // Could be the start of a ping; a lone CRLF is a pong once more bytes show it.
                if self.buffer.len() == 2 {
                    return Ok(None);
                }
            }
            self.buffer.drain(..2);
            return Ok(Some(Frame::Pong));
        }
        let Some(head_end) = find(&self.buffer, b"\r\n\r\n") else {
            if self.buffer.len() > self.limits.max_message_bytes {
                return Err(FramingError::HeadersTooLarge {
                    limit: self.limits.max_message_bytes,
                });
            }
            return Ok(None);
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_end]);
        let header_text = head.split_once('\n').map_or("", |(_, rest)| rest);
        let headers =
            Headers::parse(header_text, &self.limits).map_err(FramingError::ContentLength)?;
        let length = headers
            .content_length()
            .map_err(FramingError::ContentLength)?
            .ok_or(FramingError::ContentLength(ParseError::BadContentLength))?;
        let total = head_end + 4 + length;
        if total > self.limits.max_message_bytes {
            return Err(FramingError::MessageTooLarge {
                limit: self.limits.max_message_bytes,
            });
        }
        if self.buffer.len() < total {
            return Ok(None);
        }
        let message: Vec<u8> = self.buffer.drain(..total).collect();
        Ok(Some(Frame::Message(message)))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 4\r\n\r\nbody";

    #[test]
    fn messages_are_cut_by_content_length_across_reads() {
        let mut f = StreamFramer::new(Limits::default());
        let mut stream = OPTIONS.to_vec();
        stream.extend_from_slice(OPTIONS);
        for chunk in stream.chunks(7) {
            f.push(chunk);
        }
        assert_eq!(
            f.next_frame().unwrap(),
            Some(Frame::Message(OPTIONS.to_vec()))
        );
        assert_eq!(
            f.next_frame().unwrap(),
            Some(Frame::Message(OPTIONS.to_vec()))
        );
        assert_eq!(f.next_frame().unwrap(), None);
    }

    #[test]
    fn partial_body_waits_for_more() {
        let mut f = StreamFramer::new(Limits::default());
        f.push(&OPTIONS[..OPTIONS.len() - 2]);
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(&OPTIONS[OPTIONS.len() - 2..]);
        assert!(matches!(f.next_frame().unwrap(), Some(Frame::Message(_))));
    }

    #[test]
    fn keepalive_ping_and_pong() {
        let mut f = StreamFramer::new(Limits::default());
        f.push(b"\r\n\r\n");
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Ping));
        f.push(b"\r\n");
        assert_eq!(f.next_frame().unwrap(), None, "may still become a ping");
        f.push(OPTIONS);
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Pong));
        assert!(matches!(f.next_frame().unwrap(), Some(Frame::Message(_))));
    }

    #[test]
    fn missing_or_conflicting_content_length_is_a_framing_error() {
        for message in [
            &b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n"[..],
            &b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 13\r\nl: 5\r\n\r\n"[..],
            &b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -5\r\n\r\n"[..],
        ] {
            let mut f = StreamFramer::new(Limits::default());
            f.push(message);
            assert!(matches!(
                f.next_frame(),
                Err(FramingError::ContentLength(_))
            ));
        }
    }

    #[test]
    fn oversized_headers_are_refused_without_waiting_forever() {
        let limits = Limits {
            max_message_bytes: 1024,
            ..Limits::default()
        };
        let mut f = StreamFramer::new(limits);
        f.push(&vec![b'a'; 2048]);
        assert!(matches!(
            f.next_frame(),
            Err(FramingError::HeadersTooLarge { .. })
        ));
    }
}
