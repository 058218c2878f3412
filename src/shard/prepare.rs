//! The first step of a request: the work that grows with its size (a
//! REGISTER_BROKER's CRC, inflation and body, a 217 body, a 318 body), done
//! before dispatch, on the shard for a small frame and on its blocking pool
//! for a large one (`conn.rs`). Pure: no shard state, `Send`.

use crate::protocol::body::{self, RegisterBody, TopicQueueIn};
use crate::protocol::codes::request as req;
use crate::protocol::frame::Frame;
use crate::protocol::header::Header;

/// A request with the work that grows with its size done: the body of a
/// REGISTER_BROKER (CRC, inflate, JSON), a 217 or a 318 decoded. Pure and
/// `Send`, so a shard runs it off its thread for a large frame.
pub struct Prepared {
    pub(super) frame: Frame,
    pub(super) body: PreparedBody,
}

// A large frame is prepared on another thread.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<Prepared>();
};

pub(super) enum PreparedBody {
    None,
    Register(Result<RegisterBody, RegisterRefused>),
    RegisterTopic(Result<Vec<TopicQueueIn>, String>),
    Properties(Vec<(String, String)>),
}

/// Why a REGISTER_BROKER fails before its fields are read, in Java's order.
pub(super) enum RegisterRefused {
    CrcMismatch,
    NegativeVersion,
    Undecodable(String),
}

impl Prepared {
    pub fn header(&self) -> &Header {
        &self.frame.header
    }
}

pub fn prepare(frame: Frame) -> Prepared {
    let h = &frame.header;
    let body = match h.code {
        req::REGISTER_BROKER => PreparedBody::Register(prepare_register(&frame)),
        req::REGISTER_TOPIC_IN_NAMESRV => match (h.ext("topic"), frame.body.as_deref()) {
            (Some(_), Some(body)) => PreparedBody::RegisterTopic(body::decode_register_topic(body)),
            _ => PreparedBody::None,
        },
        req::UPDATE_NAMESRV_CONFIG => match frame.body.as_deref() {
            Some(body) => {
                let text = String::from_utf8_lossy(body);
                PreparedBody::Properties(crate::protocol::properties::parse(&text))
            }
            None => PreparedBody::None,
        },
        _ => PreparedBody::None,
    };
    Prepared { frame, body }
}

/// Java's order: CRC, the version, then the body.
pub(super) fn prepare_register(frame: &Frame) -> Result<RegisterBody, RegisterRefused> {
    let h = &frame.header;
    let body = frame.body.as_deref();
    let crc_given = h.ext_i32("bodyCrc32").unwrap_or(0);
    if crc_given != 0 {
        let crc = body.map_or(0, |b| crc32fast::hash(b) & 0x7FFF_FFFF) as i32;
        if crc != crc_given {
            return Err(RegisterRefused::CrcMismatch);
        }
    }
    if h.version < 0 {
        return Err(RegisterRefused::NegativeVersion);
    }
    let compressed = h.ext_bool("compressed").unwrap_or(false);
    body::decode_register(body, h.version, compressed).map_err(RegisterRefused::Undecodable)
}
