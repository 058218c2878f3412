//! What the modes share on the wire: topic names, request frames, reply
//! checks, socket reads, error names.

use bytes::BytesMut;
use futures_lite::AsyncReadExt;
use glommio::net::TcpStream;
use rocketns::protocol::client;
use rocketns::protocol::codes::{request as req, response as resp};
use rocketns::protocol::frame::{self, Frame, FRAME_SIZE_MAX};
use rocketns::protocol::json;
use serde::Deserialize;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// First read size of a connection; grows only for a larger frame.
const READ_CHUNK_MIN: usize = 4096;
const READ_CHUNK_MAX: usize = 1 << 20;

/// Which topics exist on the server, by number.
#[derive(Clone, Debug)]
pub enum TopicSet {
    /// `bench-topic-<i>`, i < n.
    Flat(u64),
    /// `bench-topic-<b>-<i>`, as `register` names them.
    PerBroker { brokers: u64, per_broker: u64 },
}

impl TopicSet {
    pub fn len(&self) -> u64 {
        match self {
            TopicSet::Flat(n) => *n,
            TopicSet::PerBroker {
                brokers,
                per_broker,
            } => brokers * per_broker,
        }
    }

    pub fn name(&self, i: u64) -> String {
        match self {
            TopicSet::Flat(_) => format!("bench-topic-{i}"),
            TopicSet::PerBroker { per_broker, .. } => {
                format!("bench-topic-{}-{}", i / per_broker, i % per_broker)
            }
        }
    }
}

/// SplitMix64: small, seeded, good enough to pick topics.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What a lookup's reply must be.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// Code 0 and a route with queues, for this topic number.
    Route(u64),
    /// Code 17 TOPIC_NOT_EXIST.
    Missing,
}

/// The lookup mix: which topic each request asks for.
#[derive(Clone, Debug)]
pub struct Mix {
    pub topics: TopicSet,
    /// Share of lookups for topics that do not exist, 0..=1.
    pub missing: f64,
}

impl Mix {
    pub fn pick(&self, rng: &mut Rng) -> (Expect, String) {
        let n = self.topics.len().max(1);
        let i = rng.below(n);
        if self.missing > 0.0 && rng.unit() < self.missing {
            (Expect::Missing, format!("bench-missing-{i}"))
        } else {
            (Expect::Route(i), self.topics.name(i))
        }
    }
}

/// Appends a GET_ROUTEINFO_BY_TOPIC request (JSON header, version 479).
pub fn lookup_request(out: &mut Vec<u8>, opaque: i32, topic: &str) {
    out.extend_from_slice(&client::request(
        req::GET_ROUTEINFO_BY_TOPIC,
        opaque,
        0,
        &[("topic", topic)],
        b"",
    ));
}

#[derive(Deserialize)]
struct RouteCheck {
    #[serde(rename = "queueDatas", default)]
    queue_datas: Vec<serde::de::IgnoredAny>,
}

/// Checks lookup replies. A route body is parsed in full the first time it
/// is seen for a topic; a later reply byte-equal to that verified body is
/// verified by the comparison, and any other body is parsed again.
#[derive(Default)]
pub struct Verifier {
    verified: HashMap<u64, Box<[u8]>>,
}

impl Verifier {
    /// `Err` names the kind of error.
    pub fn check_lookup(&mut self, expect: Expect, f: &Frame) -> Result<(), String> {
        if !f.header.is_response() {
            return Err("not_a_response".into());
        }
        let code = f.header.code;
        match expect {
            Expect::Missing if code == resp::TOPIC_NOT_EXIST => Ok(()),
            Expect::Missing => Err(format!("missing_topic_code_{code}")),
            Expect::Route(_) if code != resp::SUCCESS => Err(format!("route_code_{code}")),
            Expect::Route(id) => {
                let Some(body) = f.body.as_deref() else {
                    return Err("route_empty_body".into());
                };
                if self.verified.get(&id).is_some_and(|v| **v == *body) {
                    return Ok(());
                }
                let text = json::quote_numeric_keys(body);
                let route: RouteCheck =
                    serde_json::from_slice(&text).map_err(|_| "route_bad_json".to_string())?;
                if route.queue_datas.is_empty() {
                    return Err("route_empty_queue_datas".into());
                }
                self.verified.insert(id, body.into());
                Ok(())
            }
        }
    }
}

/// Reads more bytes into `buf`; `Ok(0)` is end of stream.
pub async fn read_more(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let missing = match frame::peek_frame_size(buf, FRAME_SIZE_MAX) {
        Ok(Some(total)) => total.saturating_sub(buf.len()),
        _ => 0,
    };
    let chunk = missing.clamp(READ_CHUNK_MIN, READ_CHUNK_MAX);
    let filled = buf.len();
    buf.resize(filled + chunk, 0);
    let r = stream.read(&mut buf[filled..]).await;
    buf.truncate(filled + *r.as_ref().unwrap_or(&0));
    r
}

/// Takes the next whole frame off `buf`; a broken frame is an error kind.
pub fn next_frame(buf: &mut BytesMut) -> Result<Option<Frame>, String> {
    frame::decode(buf, FRAME_SIZE_MAX).map_err(|e| format!("broken_frame_{}", e.reason()))
}

/// `prefix_reason` for an IO error.
pub fn io_kind(prefix: &str, e: &io::Error) -> String {
    use io::ErrorKind as K;
    let k = match e.kind() {
        K::ConnectionRefused => "refused",
        K::ConnectionReset => "reset",
        K::ConnectionAborted => "aborted",
        K::TimedOut => "timeout",
        K::BrokenPipe => "broken_pipe",
        K::NotConnected => "not_connected",
        K::AddrNotAvailable => "addr_not_available",
        K::AddrInUse => "addr_in_use",
        K::UnexpectedEof => "eof",
        _ => match e.raw_os_error() {
            Some(libc::ECANCELED) | Some(libc::ETIME) => "timeout",
            Some(libc::EMFILE) | Some(libc::ENFILE) => "too_many_files",
            Some(n) => return format!("{prefix}_errno_{n}"),
            None => "other",
        },
    };
    format!("{prefix}_{k}")
}

/// A connected socket with TCP_NODELAY, or the error kind.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    let stream = TcpStream::connect_timeout(addr, timeout)
        .await
        .map_err(|e| io_kind("connect", &io::Error::from(e)))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}
