//! One connection: read and decode frames, answer lookups at once, hand
//! mutations to the writer thread, and write replies from a second task
//! (the flush task).
//!
//! The reader and the flush task share the one glommio stream through
//! `SharedStream`, which borrows it only inside a poll (glommio keeps separate
//! read and write sources, so each task waits on its own): a connection
//! costs one descriptor. Replies go through an `Outbox`; the reader stops
//! reading while the outbox or the requests in flight are over their caps,
//! instead of dropping requests (DECISIONS 18).

use super::dispatch::{self, Handled};
use super::ShardCtx;
use crate::metrics;
use crate::protocol::codes::request::GET_ROUTEINFO_BY_TOPIC;
use crate::protocol::frame::{self, FrameError, FRAME_SIZE_MAX};
use crate::route::ConnId;
use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpStream;
use glommio::spawn_local;
use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;

/// A read buffer starts this small and grows only for a large frame.
const READ_BUF_START: usize = 4 * 1024;
/// An empty read buffer above this is given back.
const READ_BUF_KEEP_MAX: usize = 64 * 1024;
/// Largest single read while a big frame is arriving.
const READ_CHUNK_MAX: usize = 1024 * 1024;
/// Reply bytes queued for one connection before its reader pauses.
const OUTBOX_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Writer-bound requests in flight per connection before its reader pauses.
const IN_FLIGHT_MAX: usize = 64;

/// What the shard knows of one open connection.
pub struct Conn {
    pub id: ConnId,
    fd: RawFd,
    /// The peer's address, for `adminAllowedSources`.
    pub peer: Option<std::net::IpAddr>,
    broker: Cell<bool>,
    in_flight: Cell<usize>,
    /// When a read last returned bytes, on the shard's clock.
    last_read_ms: Cell<u64>,
    shut: Cell<bool>,
}

impl Conn {
    pub fn mark_broker(&self) {
        self.broker.set(true);
    }

    pub fn is_broker(&self) -> bool {
        self.broker.get()
    }

    pub fn last_read_ms(&self) -> u64 {
        self.last_read_ms.get()
    }

    /// Shuts the socket down in both directions, which ends both of its
    /// tasks; true the first time.
    pub fn shut_down(&self) -> bool {
        if self.shut.replace(true) {
            return false;
        }
        // SAFETY: the descriptor is open: the shard forgets a connection
        // (`ShardCtx::leave`) before its stream, which owns it, is dropped.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
        true
    }
}

struct Outbox {
    bytes: RefCell<Vec<u8>>,
    closed: Cell<bool>,
    broken: Cell<bool>,
    bell: (LocalSender<()>, LocalReceiver<()>),
    progress: (LocalSender<()>, LocalReceiver<()>),
}

impl Outbox {
    fn new() -> Outbox {
        Outbox {
            bytes: RefCell::new(Vec::new()),
            closed: Cell::new(false),
            broken: Cell::new(false),
            bell: local_channel::new_bounded(1),
            progress: local_channel::new_bounded(1),
        }
    }

    fn push(&self, frame: &[u8]) {
        self.bytes.borrow_mut().extend_from_slice(frame);
        let _ = self.bell.0.try_send(());
    }

    fn queued(&self) -> usize {
        self.bytes.borrow().len()
    }

    fn close(&self) {
        self.closed.set(true);
        let _ = self.bell.0.try_send(());
    }

    fn signal_progress(&self) {
        let _ = self.progress.0.try_send(());
    }
}

pub async fn serve(stream: TcpStream, ctx: &Rc<ShardCtx>, id: ConnId) {
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let conn = Rc::new(Conn {
        id,
        fd: stream.as_raw_fd(),
        peer: peer.map(|a| a.ip()),
        broker: Cell::new(false),
        in_flight: Cell::new(0),
        last_read_ms: Cell::new(ctx.clock.now_ms()),
        shut: Cell::new(false),
    });
    ctx.enter(conn.clone());
    let mut stream = SharedStream(Rc::new(RefCell::new(stream)));
    let flush_stream = SharedStream(stream.0.clone());
    let outbox = Rc::new(Outbox::new());
    let flusher = spawn_local(flush_loop(flush_stream, outbox.clone(), conn.clone()));
    if let Err(e) = read_loop(&mut stream, ctx, &conn, &outbox).await {
        ctx.broken_frame(&e, peer);
        conn.shut_down();
    }
    outbox.close();
    if conn.is_broker() {
        ctx.send_closed(conn.id);
    }
    flusher.await;
    ctx.leave(conn.id);
}

async fn read_loop(
    stream: &mut SharedStream,
    ctx: &Rc<ShardCtx>,
    conn: &Rc<Conn>,
    outbox: &Rc<Outbox>,
) -> Result<(), FrameError> {
    let mut buf = BytesMut::with_capacity(READ_BUF_START);
    loop {
        while let Some(f) = frame::decode(&mut buf, FRAME_SIZE_MAX)? {
            if f.header.is_response() {
                continue; // a reply to a request we never sent (§7)
            }
            let code = f.header.code;
            let started = std::time::Instant::now();
            match dispatch::handle(ctx, conn, f) {
                Handled::Now(bytes) => {
                    outbox.push(&bytes);
                    ctx.stats.request(code, metrics::is_success(&bytes));
                    if code == GET_ROUTEINFO_BY_TOPIC {
                        ctx.stats
                            .lookup_latency(started.elapsed().as_nanos() as u64);
                    }
                }
                Handled::Nothing => {}
                Handled::Later(pending) => {
                    conn.in_flight.set(conn.in_flight.get() + 1);
                    ctx.stats.in_flight.fetch_add(1, Ordering::Relaxed);
                    let (ctx, conn, outbox) = (ctx.clone(), conn.clone(), outbox.clone());
                    spawn_local(async move {
                        if let Some(bytes) = pending.await {
                            outbox.push(&bytes);
                            ctx.stats.request(code, metrics::is_success(&bytes));
                        }
                        conn.in_flight.set(conn.in_flight.get() - 1);
                        ctx.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                        outbox.signal_progress();
                    })
                    .detach();
                }
            }
            while (outbox.queued() > OUTBOX_BYTES_MAX || conn.in_flight.get() >= IN_FLIGHT_MAX)
                && !outbox.broken.get()
            {
                outbox.progress.1.recv().await;
            }
        }
        if outbox.broken.get() {
            return Ok(());
        }
        if buf.is_empty() && buf.capacity() > READ_BUF_KEEP_MAX {
            buf = BytesMut::with_capacity(READ_BUF_START);
        }
        let missing = frame::peek_frame_size(&buf, FRAME_SIZE_MAX)?
            .map_or(0, |total| total.saturating_sub(buf.len()));
        let chunk = missing.clamp(READ_BUF_START, READ_CHUNK_MAX);
        let filled = buf.len();
        buf.resize(filled + chunk, 0);
        match stream.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return Ok(()),
            Ok(n) => buf.truncate(filled + n),
        }
        conn.last_read_ms.set(ctx.clock.now_ms());
    }
}

/// Writes what the outbox holds until the connection closes.
async fn flush_loop(mut stream: SharedStream, outbox: Rc<Outbox>, conn: Rc<Conn>) {
    loop {
        let bytes = std::mem::take(&mut *outbox.bytes.borrow_mut());
        if bytes.is_empty() {
            if outbox.closed.get() {
                break;
            }
            if outbox.bell.1.recv().await.is_none() {
                break;
            }
            continue;
        }
        if stream.write_all(&bytes).await.is_err() {
            outbox.broken.set(true);
            // Wakes the reader.
            conn.shut_down();
            break;
        }
        outbox.signal_progress();
    }
    outbox.signal_progress();
}

/// One connection's stream, shared by its reader and flush tasks. Each
/// poll borrows it for the poll alone, never across an `.await`.
struct SharedStream(Rc<RefCell<TcpStream>>);

impl futures_lite::AsyncRead for SharedStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let mut s = self.0.borrow_mut();
        std::pin::Pin::new(&mut *s).poll_read(cx, buf)
    }
}

impl futures_lite::AsyncWrite for SharedStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let mut s = self.0.borrow_mut();
        std::pin::Pin::new(&mut *s).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let mut s = self.0.borrow_mut();
        std::pin::Pin::new(&mut *s).poll_flush(cx)
    }

    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let mut s = self.0.borrow_mut();
        std::pin::Pin::new(&mut *s).poll_close(cx)
    }
}
