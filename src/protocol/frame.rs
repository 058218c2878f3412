//! Frames: bytes to commands and back (`remoting-protocol.md` §2). No IO.
//!
//! `decode` first looks at what is buffered; "not enough bytes yet" is
//! `Ok(None)`, a protocol violation is `Err` and closes the connection.

use super::header::{self, Header, HeaderError};
use bytes::{Buf, Bytes, BytesMut};

/// Java's frame limit, counted *including* the 4-byte length prefix.
pub const FRAME_SIZE_MAX: usize = 16 * 1024 * 1024;
/// First byte of a TLS handshake record (`namesrv-behaviour.md` §14).
const TLS_HANDSHAKE: u8 = 0x16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SerializeType {
    Json,
    RocketMq,
}

#[derive(Debug)]
pub struct Frame {
    pub header: Header,
    pub serialize: SerializeType,
    /// `None` for no body and for an empty one: Java does not tell them apart.
    pub body: Option<Bytes>,
}

/// Why a frame could not be decoded; each closes the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// frameLength below zero.
    NegativeLength(i32),
    /// frameLength + 4 above the frame limit.
    TooLong(u64),
    /// A TLS ClientHello where a frame should start (DECISIONS 27).
    TlsClientHello,
    /// frameLength too small to hold the header-length word, or a header
    /// length past the frame.
    BadHeaderLength(u32),
    /// Serialize type byte other than 0 (JSON) or 1 (ROCKETMQ).
    BadSerializeType(u8),
    BadHeader(HeaderError),
}

impl FrameError {
    /// A short stable name, used for counters and the one log line.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::NegativeLength(_) => "negative_length",
            FrameError::TooLong(_) => "too_long",
            FrameError::TlsClientHello => "tls_client_hello",
            FrameError::BadHeaderLength(_) => "bad_header_length",
            FrameError::BadSerializeType(_) => "bad_serialize_type",
            FrameError::BadHeader(HeaderError::BadJson(_)) => "bad_json_header",
            FrameError::BadHeader(HeaderError::BadBinary(_)) => "bad_binary_header",
        }
    }
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::NegativeLength(n) => write!(f, "negative frame length {n}"),
            FrameError::TooLong(n) => write!(f, "frame of {n} bytes exceeds {FRAME_SIZE_MAX}"),
            FrameError::TlsClientHello => write!(f, "TLS ClientHello on a plain connection"),
            FrameError::BadHeaderLength(n) => write!(f, "decode error, bad header length: {n}"),
            FrameError::BadSerializeType(t) => write!(f, "unknown serialize type {t}"),
            FrameError::BadHeader(HeaderError::BadJson(e)) => write!(f, "bad JSON header: {e}"),
            FrameError::BadHeader(HeaderError::BadBinary(e)) => write!(f, "bad binary header: {e}"),
        }
    }
}

/// Size of the whole frame at the front of `buf` (prefix included) once its
/// length word is buffered, after checking it against `frame_size_max`.
pub fn peek_frame_size(buf: &[u8], frame_size_max: usize) -> Result<Option<usize>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let length = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if buf[0] == TLS_HANDSHAKE {
        return Err(FrameError::TlsClientHello);
    }
    if length < 0 {
        return Err(FrameError::NegativeLength(length));
    }
    let total = length as u64 + 4;
    if total > frame_size_max as u64 {
        return Err(FrameError::TooLong(total));
    }
    if length < 4 {
        return Err(FrameError::BadHeaderLength(length as u32));
    }
    Ok(Some(total as usize))
}

/// Takes one frame off the front of `buf`, or returns `Ok(None)` and leaves
/// `buf` alone when the frame is not complete yet.
pub fn decode(buf: &mut BytesMut, frame_size_max: usize) -> Result<Option<Frame>, FrameError> {
    let Some(total) = peek_frame_size(buf, frame_size_max)? else {
        return Ok(None);
    };
    if buf.len() < total {
        return Ok(None);
    }
    let mut frame = buf.split_to(total).freeze();
    frame.advance(4);
    let word = frame.get_u32();
    let header_len = (word & 0x00FF_FFFF) as usize;
    let serialize = match (word >> 24) as u8 {
        0 => SerializeType::Json,
        1 => SerializeType::RocketMq,
        other => return Err(FrameError::BadSerializeType(other)),
    };
    if header_len > frame.len() {
        return Err(FrameError::BadHeaderLength(header_len as u32));
    }
    let header_bytes = frame.split_to(header_len);
    let header = match serialize {
        SerializeType::Json => header::decode_json(&header_bytes),
        SerializeType::RocketMq => header::decode_binary(&header_bytes),
    }
    .map_err(FrameError::BadHeader)?;
    let body = (!frame.is_empty()).then_some(frame);
    Ok(Some(Frame {
        header,
        serialize,
        body,
    }))
}

/// Appends one frame: the two length words, the header, the body.
pub fn write_frame(out: &mut Vec<u8>, serialize: SerializeType, header: &[u8], body: &[u8]) {
    let frame_len = 4 + header.len() + body.len();
    let type_byte = match serialize {
        SerializeType::Json => 0u32,
        SerializeType::RocketMq => 1u32,
    };
    out.reserve(4 + frame_len);
    out.extend_from_slice(&(frame_len as u32).to_be_bytes());
    out.extend_from_slice(&((type_byte << 24) | header.len() as u32).to_be_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(body);
}

/// A whole reply frame with Java's JSON response header.
pub fn response(
    code: i32,
    opaque: i32,
    remark: Option<&str>,
    ext: Option<&[(&str, &str)]>,
    body: &[u8],
) -> Vec<u8> {
    let mut head = Vec::with_capacity(128);
    header::write_response_json(&mut head, code, opaque, remark, ext);
    let mut out = Vec::with_capacity(8 + head.len() + body.len());
    write_frame(&mut out, SerializeType::Json, &head, body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(b: &[u8]) -> BytesMut {
        BytesMut::from(b)
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let whole = crate::protocol::client::request(105, 1, 0, &[("topic", "T")], b"");
        for cut in 0..whole.len() {
            assert!(decode(&mut buf(&whole[..cut]), FRAME_SIZE_MAX)
                .unwrap()
                .is_none());
        }
        let frame = decode(&mut buf(&whole), FRAME_SIZE_MAX).unwrap().unwrap();
        assert_eq!(frame.header.ext("topic"), Some("T"));
        assert!(frame.body.is_none());
    }

    /// Java RemotingCommandTest: the header-length word for JSON 261 and
    /// ROCKETMQ 16 777 215.
    #[test]
    fn header_length_words() {
        let mut out = Vec::new();
        write_frame(&mut out, SerializeType::Json, &[b' '; 261], b"");
        assert_eq!(&out[4..8], &[0x00, 0x00, 0x01, 0x05]);
        let mut out = Vec::new();
        write_frame(
            &mut out,
            SerializeType::RocketMq,
            &vec![0u8; 16_777_215],
            b"",
        );
        assert_eq!(&out[4..8], &[0x01, 0xFF, 0xFF, 0xFF]);
    }

    #[test]
    fn limit_counts_the_length_prefix() {
        let at_limit = ((FRAME_SIZE_MAX - 4) as u32).to_be_bytes();
        assert_eq!(
            peek_frame_size(&at_limit, FRAME_SIZE_MAX),
            Ok(Some(FRAME_SIZE_MAX))
        );
        let over = ((FRAME_SIZE_MAX - 3) as u32).to_be_bytes();
        assert!(matches!(
            peek_frame_size(&over, FRAME_SIZE_MAX),
            Err(FrameError::TooLong(_))
        ));
    }

    #[test]
    fn broken_frames() {
        let cases: &[(&[u8], &str)] = &[
            (&[0xff, 0xff, 0xff, 0xff], "negative_length"),
            (&[0x16, 0x03, 0x01, 0x02], "tls_client_hello"),
            (&[0, 0, 0, 2, 0, 0], "bad_header_length"),
            (&[0, 0, 0, 6, 0, 0, 0, 9, b'{', b'}'], "bad_header_length"),
            (&[0, 0, 0, 6, 2, 0, 0, 2, b'{', b'}'], "bad_serialize_type"),
            (&[0, 0, 0, 6, 0, 0, 0, 2, b'{', b'x'], "bad_json_header"),
            (&[0, 0, 0, 6, 1, 0, 0, 2, b'{', b'}'], "bad_binary_header"),
        ];
        for (bytes, reason) in cases {
            let err = decode(&mut buf(bytes), FRAME_SIZE_MAX).unwrap_err();
            assert_eq!(err.reason(), *reason, "{bytes:?}");
        }
    }
}
