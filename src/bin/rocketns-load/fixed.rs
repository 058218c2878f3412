//! `serve-fixed`: answers every request frame with one pre-encoded
//! GET_ROUTEINFO_BY_TOPIC success, only the opaque spliced in. Lookups
//! against it measure what this machine and client can do at best.

use bytes::{Buf, BytesMut};
use futures_lite::AsyncWriteExt;
use glommio::net::{TcpListener, TcpStream};
use glommio::spawn_local;
use glommio::timer::sleep;
use rocketns::protocol::frame::{self, FRAME_SIZE_MAX};
use rocketns::protocol::header;
use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

const HEAD_BEFORE_OPAQUE: &[u8] = b"{\"code\":0,\"flag\":1,\"language\":\"JAVA\",\"opaque\":";
const HEAD_AFTER_OPAQUE: &[u8] = b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":479}";
/// A one-broker route in the standard dialect, as a 5.x client gets it.
const BODY: &[u8] = br#"{"brokerDatas":[{"brokerAddrs":{"0":"127.0.0.1:20000"},"brokerName":"bench-broker-0","cluster":"BenchCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"bench-broker-0","perm":6,"readQueueNums":8,"topicSysFlag":0,"writeQueueNums":8}]}"#;

/// How often an idle connection looks at the clock.
const IDLE_TICK: Duration = Duration::from_millis(200);

#[derive(Default)]
pub struct Counters {
    pub connections: Cell<u64>,
    pub requests: Cell<u64>,
    pub broken_frames: Cell<u64>,
    pub accept_errors: Cell<u64>,
}

/// Serves until `duration` has passed; returns what it counted.
pub async fn serve(listen: SocketAddr, duration: Duration) -> Result<Rc<Counters>, String> {
    let listener = TcpListener::bind(listen).map_err(|e| format!("bind {listen}: {e}"))?;
    let until = Instant::now() + duration;
    let counters = Rc::new(Counters::default());
    let accept = {
        let counters = counters.clone();
        async move {
            loop {
                match listener.accept().await {
                    Ok(s) => {
                        counters.connections.set(counters.connections.get() + 1);
                        spawn_local(serve_conn(s, until, counters.clone())).detach();
                    }
                    Err(_) => {
                        counters.accept_errors.set(counters.accept_errors.get() + 1);
                        sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }
    };
    futures_lite::future::or(accept, sleep(duration)).await;
    // Let open connections see the clock and close.
    sleep(IDLE_TICK * 2).await;
    Ok(counters)
}

/// The opaque of the request frame `f` (length word included).
fn opaque_of(f: &[u8]) -> Option<i32> {
    let word = u32::from_be_bytes(f.get(4..8)?.try_into().ok()?);
    let head = f.get(8..8 + (word & 0x00FF_FFFF) as usize)?;
    if word >> 24 == 0 {
        if let Some(v) = scan_opaque(head) {
            return Some(v);
        }
        return header::decode_json(head).ok().map(|h| h.opaque);
    }
    header::decode_binary(head).ok().map(|h| h.opaque)
}

/// `"opaque":<int>` found by a scan, the common case of a JSON header.
fn scan_opaque(head: &[u8]) -> Option<i32> {
    const KEY: &[u8] = b"\"opaque\":";
    let at = head.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = &head[at..];
    let end = rest
        .iter()
        .enumerate()
        .position(|(i, b)| !(b.is_ascii_digit() || (i == 0 && *b == b'-')))
        .unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

fn push_reply(out: &mut Vec<u8>, opaque: i32) {
    let digits = opaque.to_string();
    let head_len = HEAD_BEFORE_OPAQUE.len() + digits.len() + HEAD_AFTER_OPAQUE.len();
    out.extend_from_slice(&((4 + head_len + BODY.len()) as u32).to_be_bytes());
    out.extend_from_slice(&(head_len as u32).to_be_bytes());
    out.extend_from_slice(HEAD_BEFORE_OPAQUE);
    out.extend_from_slice(digits.as_bytes());
    out.extend_from_slice(HEAD_AFTER_OPAQUE);
    out.extend_from_slice(BODY);
}

async fn serve_conn(mut s: TcpStream, until: Instant, counters: Rc<Counters>) {
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(IDLE_TICK));
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = Vec::with_capacity(4096);
    while Instant::now() < until {
        match crate::wire::read_more(&mut s, &mut buf).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(_) => return,
        }
        out.clear();
        loop {
            let total = match frame::peek_frame_size(&buf, FRAME_SIZE_MAX) {
                Ok(Some(total)) if buf.len() >= total => total,
                Ok(_) => break,
                Err(_) => {
                    counters.broken_frames.set(counters.broken_frames.get() + 1);
                    return;
                }
            };
            let Some(opaque) = opaque_of(&buf[..total]) else {
                counters.broken_frames.set(counters.broken_frames.get() + 1);
                return;
            };
            buf.advance(total);
            push_reply(&mut out, opaque);
            counters.requests.set(counters.requests.get() + 1);
        }
        if !out.is_empty() && s.write_all(&out).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_decodes_with_the_request_opaque() {
        for opaque in [1, 42, -7, i32::MAX] {
            let req = rocketns::protocol::client::request(105, opaque, 0, &[("topic", "T")], b"");
            assert_eq!(opaque_of(&req), Some(opaque));
            let mut out = Vec::new();
            push_reply(&mut out, opaque);
            let mut b = BytesMut::from(&out[..]);
            let f = frame::decode(&mut b, FRAME_SIZE_MAX).unwrap().unwrap();
            assert_eq!(f.header.opaque, opaque);
            assert_eq!(f.header.code, 0);
            assert!(f.header.is_response());
            let mut v = crate::wire::Verifier::default();
            assert!(v.check_lookup(crate::wire::Expect::Route(0), &f).is_ok());
        }
    }
}
