//! One shard: a glommio executor serving its share of the accepted
//! connections. Shards are the only code that touches sockets; they read
//! the published snapshot and send mutations to the writer.

pub mod conn;
pub mod dispatch;

use crate::clock::Clock;
use crate::metrics::ShardStats;
use crate::protocol::frame::FrameError;
use crate::route::snapshot::Snapshot;
use crate::route::ConnId;
use crate::server::Settings;
use crate::writer::{Control, Request};
use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender};
use futures_channel::oneshot;
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// glommio's io_memory serves only file/DMA IO, which a NameServer does not
/// do; 64 KiB is the smallest it takes (shared/notes).
const IO_MEMORY_BYTES: usize = 64 * 1024;
/// Pause after an accept error such as EMFILE before accepting again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);
/// How often a shard looks for connections the writer wants closed.
const CLOSE_POLL: Duration = Duration::from_millis(250);
/// After a stop, how long a shard waits for the writer to answer what is
/// in flight before its connections close.
const DRAIN_MAX: Duration = Duration::from_secs(2);

/// What every shard shares; cloned into each executor.
#[derive(Clone)]
pub struct Shared {
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub requests: Sender<Request>,
    pub control: Sender<Control>,
    pub settings: Arc<Settings>,
    pub clock: Arc<dyn Clock>,
    pub started_ms: u64,
}

pub struct ShardCtx {
    pub id: usize,
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub writer: Sender<Request>,
    control: Sender<Control>,
    pub settings: Arc<Settings>,
    pub clock: Arc<dyn Clock>,
    started_ms: u64,
    next_conn: Cell<u64>,
    pub stats: Arc<ShardStats>,
    warned_broken: Cell<bool>,
    /// Connections that registered a broker, so the writer can close them.
    broker_fds: RefCell<HashMap<ConnId, RawFd>>,
}

impl ShardCtx {
    fn next_conn_id(&self) -> ConnId {
        let n = self.next_conn.get();
        self.next_conn.set(n + 1);
        ((self.id as u64) << 48) | n
    }

    pub fn waiting_for_service(&self, s: &Settings) -> bool {
        s.need_wait_for_service
            && self.clock.now_ms() < self.started_ms + s.wait_seconds_for_service * 1000
    }

    /// This connection registered a broker: its close must reach the
    /// writer, and the writer may close it when the broker expires.
    pub fn track_broker(&self, conn: &conn::Conn) {
        if !conn.is_broker() {
            conn.mark_broker();
            self.broker_fds.borrow_mut().insert(conn.id, conn.fd);
        }
    }

    pub fn untrack_broker(&self, conn: ConnId) {
        self.broker_fds.borrow_mut().remove(&conn);
    }

    /// Shuts down the connections the writer asked to close.
    fn close_requested(&self, requests: &Receiver<ConnId>) {
        for conn in requests.try_iter() {
            if let Some(fd) = self.broker_fds.borrow().get(&conn) {
                // SAFETY: the fd belongs to a live connection of this shard:
                // entries leave the map before their connection's fds close.
                unsafe { libc::shutdown(*fd, libc::SHUT_RDWR) };
            }
        }
    }

    pub fn count_busy(&self, busy: bool) {
        if busy {
            self.stats.busy.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// UNREGISTER_BROKER goes on the never-dropped path, but may use only
    /// Java's unregistration queue share of it, so closes always fit.
    pub fn send_unregister(&self, msg: Control) -> bool {
        self.control.len() < self.settings.unregister_queue_capacity
            && self.control.try_send(msg).is_ok()
    }

    /// A broker's connection closed. The control queue is sized so this
    /// always fits; if it ever does not, expiry removes the broker later.
    pub fn send_closed(&self, conn: ConnId) {
        let stamp_ms = self.clock.now_ms();
        if self
            .control
            .try_send(Control::Closed { conn, stamp_ms })
            .is_err()
        {
            log::error!("control queue full: close of connection {conn:#x} left to expiry");
        }
    }

    /// Refuses an admin request from a source outside `adminAllowedSources`
    /// with 16 NO_PERMISSION; counted, and logged once per shard at warn.
    pub fn refuse_admin(&self, code: i32, peer: Option<std::net::IpAddr>, opaque: i32) -> Vec<u8> {
        let remark = crate::acl::remark_refused(code, peer);
        if self.stats.admin_refused.fetch_add(1, Ordering::Relaxed) == 0 {
            log::warn!("{remark} (further refusals are counted in rocketns_admin_refused_total)");
        } else {
            log::debug!("{remark}");
        }
        crate::protocol::frame::response(
            crate::protocol::codes::response::NO_PERMISSION,
            opaque,
            Some(&remark),
            None,
            b"",
        )
    }

    /// Counts a broken frame; logs the first per shard at warn, later ones
    /// at debug (once per cause is enough to diagnose a misbehaving peer).
    pub fn broken_frame(&self, e: &FrameError, peer: Option<std::net::SocketAddr>) {
        self.stats.broken_frame(e);
        let peer = peer.map(|a| a.to_string()).unwrap_or_default();
        if !self.warned_broken.replace(true) {
            log::warn!("closing connection from {peer}: {e} ({})", e.reason());
        } else {
            log::debug!("closing connection from {peer}: {e} ({})", e.reason());
        }
    }
}

/// Starts shard `id` on its own thread. `listener` is a dup of the one
/// listening socket; `stop` ends its accept loop.
pub fn spawn(
    id: usize,
    listener: OwnedFd,
    shared: Shared,
    stats: Arc<ShardStats>,
    cpu: Option<usize>,
    stop: oneshot::Receiver<()>,
    close_requests: Receiver<ConnId>,
) -> std::io::Result<glommio::ExecutorJoinHandle<()>> {
    let placement = match cpu {
        Some(cpu) => Placement::Fixed(cpu),
        None => Placement::Unbound,
    };
    LocalExecutorBuilder::new(placement)
        .name(&format!("rocketns-shard-{id}"))
        .io_memory(IO_MEMORY_BYTES)
        .spawn(move || accept_loop(id, listener, shared, stats, stop, close_requests))
        .map_err(|e| std::io::Error::other(e.to_string()))
}

async fn accept_loop(
    id: usize,
    listener: OwnedFd,
    shared: Shared,
    stats: Arc<ShardStats>,
    mut stop: oneshot::Receiver<()>,
    close_requests: Receiver<ConnId>,
) {
    // SAFETY: the fd is a listening TCP socket this shard now owns.
    let listener = unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) };
    let ctx = Rc::new(ShardCtx {
        id,
        snapshot: shared.snapshot,
        writer: shared.requests,
        control: shared.control,
        settings: shared.settings,
        clock: shared.clock,
        started_ms: shared.started_ms,
        next_conn: Cell::new(1),
        stats,
        warned_broken: Cell::new(false),
        broker_fds: RefCell::new(HashMap::new()),
    });
    let closer_ctx = ctx.clone();
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(CLOSE_POLL).await;
            closer_ctx.close_requested(&close_requests);
        }
    })
    .detach();
    let cap = ctx.settings.connections_max_per_shard;
    let mut warned_accept = false;
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            let _ = (&mut stop).await;
            None
        })
        .await;
        let stream = match accepted {
            None => break,
            Some(Ok(stream)) => stream,
            Some(Err(e)) => {
                ctx.stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                if !std::mem::replace(&mut warned_accept, true) {
                    log::warn!("shard {id}: accept failed, backing off: {e}");
                }
                glommio::timer::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        ctx.stats.accepted.fetch_add(1, Ordering::Relaxed);
        if ctx.stats.connections.load(Ordering::Relaxed) >= cap {
            ctx.stats.refused_over_cap.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        }
        ctx.stats.connections.fetch_add(1, Ordering::Relaxed);
        let conn_ctx = ctx.clone();
        let conn_id = ctx.next_conn_id();
        glommio::spawn_local(async move {
            conn::serve(stream, conn_ctx.clone(), conn_id).await;
            conn_ctx.stats.connections.fetch_sub(1, Ordering::Relaxed);
        })
        .detach();
    }
    drop(listener);
    let deadline = std::time::Instant::now() + DRAIN_MAX;
    while ctx.stats.in_flight.load(Ordering::Relaxed) > 0 && std::time::Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    // Let the connection writers flush what was just answered.
    glommio::timer::sleep(Duration::from_millis(20)).await;
}
