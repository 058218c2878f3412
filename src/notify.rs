//! Outbound NOTIFY_MIN_BROKER_ID_CHANGE (905): oneway, 300 ms to connect
//! and send, failures logged only (`namesrv-behaviour.md` §12). A plain
//! thread, so a slow broker never holds up the writer.

use crate::protocol::client;
use crate::protocol::header::FLAG_ONEWAY;
use crate::route::table::MinIdNotice;
use crossbeam_channel::Sender;
use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

const NOTIFY_MIN_BROKER_ID_CHANGE: i32 = 905;
const SEND_TIMEOUT: Duration = Duration::from_millis(300);
/// Notices queued before new ones are dropped (and logged).
const QUEUE_MAX: usize = 1024;

pub struct Notifier {
    tx: Sender<MinIdNotice>,
}

impl Notifier {
    pub fn spawn() -> std::io::Result<Notifier> {
        let (tx, rx) = crossbeam_channel::bounded::<MinIdNotice>(QUEUE_MAX);
        std::thread::Builder::new()
            .name("rocketns-notify".into())
            .spawn(move || {
                let mut opaque = 0;
                for notice in rx {
                    for target in &notice.targets {
                        opaque += 1;
                        if let Err(e) = send(target, &notice, opaque) {
                            log::warn!("NOTIFY_MIN_BROKER_ID_CHANGE to {target} failed: {e}");
                        }
                    }
                }
            })?;
        Ok(Notifier { tx })
    }

    pub fn submit(&self, notice: MinIdNotice) {
        if self.tx.try_send(notice).is_err() {
            log::warn!("NOTIFY_MIN_BROKER_ID_CHANGE queue full, notice dropped");
        }
    }
}

fn send(target: &str, n: &MinIdNotice, opaque: i32) -> std::io::Result<()> {
    let addr: SocketAddr = target
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("address resolves to nothing"))?;
    let min_id = n.min_broker_id.to_string();
    // Java's HashMap order for these four keys: each has a bucket of its
    // own in a 16-slot table (4, 8, 12, 14), so the order is fixed.
    let mut ext = Vec::with_capacity(4);
    if let Some(ha) = &n.ha_broker_addr {
        ext.push(("haBrokerAddr", ha.as_str()));
    }
    if let Some(offline) = &n.offline_broker_addr {
        ext.push(("offlineBrokerAddr", offline.as_str()));
    }
    ext.push(("minBrokerAddr", n.min_broker_addr.as_str()));
    ext.push(("minBrokerId", min_id.as_str()));
    let bytes = client::request(NOTIFY_MIN_BROKER_ID_CHANGE, opaque, FLAG_ONEWAY, &ext, b"");
    let mut stream = TcpStream::connect_timeout(&addr, SEND_TIMEOUT)?;
    stream.set_write_timeout(Some(SEND_TIMEOUT))?;
    stream.write_all(&bytes)
}
