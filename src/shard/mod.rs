//! One shard: a glommio executor serving its share of the accepted
//! connections. Shards are the only code that touches sockets; they read
//! the published snapshot and send mutations to the writer.

pub mod conn;
pub mod dispatch;
pub mod prepare;

use crate::clock::Clock;
use crate::config::{RuntimeSettings, StartupSettings};
use crate::metrics::ShardStats;
use crate::protocol::frame::FrameError;
use crate::route::table::Unregistration;
use crate::route::ConnId;
use crate::writer::{Control, Published, Request};
use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender};
use futures_channel::oneshot;
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// glommio's io_memory serves only file/DMA IO, which a NameServer does not
/// do; 64 KiB is the smallest it takes (shared/notes).
const IO_MEMORY_BYTES: usize = 64 * 1024;
/// How long the executor runs ready tasks before it looks for IO again
/// (glommio's default is 100 ms): while clients that pipeline without
/// pause keep tasks ready, a connection whose request just arrived waits at
/// most about this long.
const PREEMPT_AFTER: Duration = Duration::from_millis(2);
/// Pause after an accept error such as EMFILE before accepting again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);
/// How often a shard closes the connections the writer asked it to close
/// (expired brokers) and those idle past `serverChannelMaxIdleTimeSeconds`.
const HOUSEKEEPING_TICK: Duration = Duration::from_millis(250);
/// Idle connections the housekeeping tick closes at most per tick: closing
/// a socket whose buffers hold megabytes costs the kernel time on the
/// shard's thread, so a crowd of slow readers is closed over several ticks
/// and one at a time, other tasks running in between.
const CLOSES_PER_TICK: usize = 8;
/// After a stop, how long a shard waits for the writer to answer what is
/// in flight before its connections close.
const DRAIN_MAX: Duration = Duration::from_secs(2);

/// What every shard is given at start; cloned into each executor.
#[derive(Clone)]
pub struct ShardInputs {
    pub published: Arc<ArcSwap<Published>>,
    pub requests: Sender<Request>,
    pub control: Sender<Control>,
    pub startup: Arc<StartupSettings>,
    pub clock: Arc<dyn Clock>,
    pub started_ms: u64,
}

/// One shard's state, shared by its tasks (never across threads).
pub struct ShardCtx {
    pub id: usize,
    pub published: Arc<ArcSwap<Published>>,
    pub requests: Sender<Request>,
    control: Sender<Control>,
    pub startup: Arc<StartupSettings>,
    pub clock: Arc<dyn Clock>,
    started_ms: u64,
    next_conn: Cell<u64>,
    pub stats: Arc<ShardStats>,
    warned_broken: Cell<bool>,
    /// Every open connection of this shard, for the housekeeping tick.
    conns: RefCell<HashMap<ConnId, Rc<conn::Conn>>>,
    /// Wakes the readers paused by the budget once the shard is under it.
    pub budget_eased: Wakeup,
}

/// Wakes every task waiting on it (a single-threaded notify). A waiter
/// that stops waiting (dropped) leaves nothing behind.
#[derive(Default)]
pub struct Wakeup {
    generation: Cell<u64>,
    next_token: Cell<u64>,
    waiters: RefCell<HashMap<u64, std::task::Waker>>,
}

impl Wakeup {
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get() + 1);
        for (_, waker) in self.waiters.take() {
            waker.wake();
        }
    }

    /// Resolves at the next `notify_all`.
    pub async fn wait(&self) {
        struct Waiting<'a>(&'a Wakeup, u64);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.waiters.borrow_mut().remove(&self.1);
            }
        }
        let token = self.next_token.get();
        self.next_token.set(token + 1);
        let _waiting = Waiting(self, token);
        let seen = self.generation.get();
        std::future::poll_fn(|cx| {
            if self.generation.get() != seen {
                return std::task::Poll::Ready(());
            }
            self.waiters.borrow_mut().insert(token, cx.waker().clone());
            std::task::Poll::Pending
        })
        .await
    }
}

impl ShardCtx {
    fn next_conn_id(&self) -> ConnId {
        let n = self.next_conn.get();
        self.next_conn.set(n + 1);
        ((self.id as u64) << 48) | n
    }

    pub fn waiting_for_service(&self, s: &RuntimeSettings) -> bool {
        s.need_wait_for_service
            && self.clock.now_ms() < self.started_ms + s.wait_seconds_for_service * 1000
    }

    /// A connection opened: the housekeeping tick watches it from now on.
    fn enter(&self, conn: Rc<conn::Conn>) {
        self.conns.borrow_mut().insert(conn.id, conn);
    }

    /// A connection closed; before its descriptor does.
    fn leave(&self, id: ConnId) {
        self.conns.borrow_mut().remove(&id);
    }

    fn open_connections(&self) -> usize {
        self.conns.borrow().len()
    }

    /// This connection registered a broker: its close must reach the
    /// writer, and the writer may close it when the broker expires.
    pub fn track_broker(&self, conn: &conn::Conn) {
        conn.mark_broker();
    }

    /// Shuts down the connections the writer asked to close, if they are
    /// still open and carry a broker.
    fn close_requested(&self, requests: &Receiver<ConnId>) {
        for id in requests.try_iter() {
            if let Some(conn) = self.conns.borrow().get(&id).filter(|c| c.is_broker()) {
                conn.shut_down();
            }
        }
    }

    /// Picks, on the injected clock, up to `CLOSES_PER_TICK` connections
    /// to close: those whose unsent replies have not moved for the idle
    /// timeout (slow readers: they hold the shard's memory), and those that
    /// read nothing for it (Java's `serverChannelMaxIdleTimeSeconds`; a
    /// NameServer only writes in answer to a read, so reads tell). Each
    /// comes with the counter its close bumps.
    fn idle_connections(&self) -> Vec<(Rc<conn::Conn>, &AtomicU64)> {
        let Some(idle_ms) = self.published.load().settings.idle_timeout_ms else {
            return Vec::new();
        };
        let now_ms = self.clock.now_ms();
        let idle_since = |ms: u64| now_ms.saturating_sub(ms) >= idle_ms;
        let conns = self.conns.borrow();
        let picked = conns.values().filter_map(|conn| {
            let counter = if conn.unsent() > 0 && idle_since(conn.last_output_ms()) {
                &self.stats.slow_reader_closed
            } else if idle_since(conn.last_read_ms()) {
                &self.stats.idle_closed
            } else {
                return None;
            };
            Some((conn.clone(), counter))
        });
        picked.take(CLOSES_PER_TICK).collect()
    }

    pub fn count_busy(&self, busy: bool) {
        if busy {
            self.stats.busy.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// UNREGISTER_BROKER goes on the never-dropped path, but may use only
    /// Java's unregistration queue share of it, so closes always fit.
    pub fn send_unregister(&self, unreg: Unregistration) -> bool {
        let stamp_ms = self.clock.now_ms();
        self.control.len() < self.startup.unregister_queue_capacity
            && self
                .control
                .try_send(Control::Unregister { unreg, stamp_ms })
                .is_ok()
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

/// Runs `work` on this shard's blocking pool (a thread of its own), so
/// that work growing with a request's size never keeps the shard from its
/// other connections. `None` if it panicked: a bug, logged.
pub async fn off_shard<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    let guarded = move || std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
    let outcome = glommio::executor().spawn_blocking(guarded).await;
    if outcome.is_err() {
        log::error!("work moved off a shard panicked");
    }
    outcome.ok()
}

/// Starts shard `id` on its own thread. `listener` is a dup of the one
/// listening socket; `stop` ends its accept loop.
pub fn spawn(
    id: usize,
    listener: OwnedFd,
    inputs: ShardInputs,
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
        .preempt_timer(PREEMPT_AFTER)
        // Large decodes run here; unbound, so that a pinned shard's CPU is
        // not the one they compete for.
        .blocking_thread_pool_placement(glommio::PoolPlacement::Unbound(1))
        .spawn(move || accept_loop(id, listener, inputs, stats, stop, close_requests))
        .map_err(|e| std::io::Error::other(e.to_string()))
}

async fn accept_loop(
    id: usize,
    listener: OwnedFd,
    inputs: ShardInputs,
    stats: Arc<ShardStats>,
    mut stop: oneshot::Receiver<()>,
    close_requests: Receiver<ConnId>,
) {
    // SAFETY: the fd is a listening TCP socket this shard now owns.
    let listener = unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) };
    let ctx = Rc::new(ShardCtx {
        id,
        published: inputs.published,
        requests: inputs.requests,
        control: inputs.control,
        startup: inputs.startup,
        clock: inputs.clock,
        started_ms: inputs.started_ms,
        next_conn: Cell::new(1),
        stats,
        warned_broken: Cell::new(false),
        conns: RefCell::new(HashMap::new()),
        budget_eased: Wakeup::default(),
    });
    spawn_housekeeping(ctx.clone(), close_requests);
    let mut warned_accept = false;
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            let _ = (&mut stop).await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok(stream)) => {
                admit(&ctx, stream);
                // A burst of connections is accepted without a pause;
                // the connections already open get their turns in between.
                futures_lite::future::yield_now().await;
            }
            Some(Err(e)) => {
                ctx.stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                if !std::mem::replace(&mut warned_accept, true) {
                    log::warn!("shard {id}: accept failed, backing off: {e}");
                }
                glommio::timer::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    drop(listener);
    drain(&ctx).await;
}

/// The tick that closes what the writer asked to close, and idle
/// connections.
fn spawn_housekeeping(ctx: Rc<ShardCtx>, close_requests: Receiver<ConnId>) {
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(HOUSEKEEPING_TICK).await;
            ctx.close_requested(&close_requests);
            // One at a time: closing a socket that holds megabytes costs
            // the kernel time on this thread.
            for (conn, counter) in ctx.idle_connections() {
                if conn.shut_down() {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                futures_lite::future::yield_now().await;
            }
        }
    })
    .detach();
}

/// Serves an accepted connection as a task of its own, or closes it at
/// once when the shard is at its connection cap.
fn admit(ctx: &Rc<ShardCtx>, stream: TcpStream) {
    ctx.stats.accepted.fetch_add(1, Ordering::Relaxed);
    if ctx.stats.connections.load(Ordering::Relaxed) >= ctx.startup.connections_max_per_shard {
        ctx.stats.refused_over_cap.fetch_add(1, Ordering::Relaxed);
        return;
    }
    ctx.stats.connections.fetch_add(1, Ordering::Relaxed);
    let conn_ctx = ctx.clone();
    let conn_id = ctx.next_conn_id();
    glommio::spawn_local(async move {
        conn::serve(stream, &conn_ctx, conn_id).await;
        conn_ctx.stats.connections.fetch_sub(1, Ordering::Relaxed);
    })
    .detach();
}

/// After a stop: waits (bounded) for the writer to answer what is in
/// flight, so those answers are written before the connections close.
async fn drain(ctx: &ShardCtx) {
    let deadline = std::time::Instant::now() + DRAIN_MAX;
    while ctx.stats.in_flight.load(Ordering::Relaxed) > 0 && std::time::Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    // Let the connections' flush tasks write what was just answered.
    glommio::timer::sleep(Duration::from_millis(20)).await;
}
