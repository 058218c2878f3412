//! One connection: read and decode frames, answer lookups at once, hand
//! mutations to the writer thread, and write replies from a second task
//! (the flush task).
//!
//! The reader and the flush task share the one glommio stream through
//! `SharedStream`, which borrows it only inside a poll (glommio keeps
//! separate read and write sources, so each task waits on its own): a
//! connection costs one descriptor. Replies go through the connection's
//! `Outbox`. The reader stops reading, rather than dropping requests
//! (DECISIONS 18), while the connection's unsent replies or its requests in
//! flight are over their caps, or while the shard is over its buffer budget
//! and this connection holds at least its share of it.
//!
//! A frame of `OFFLOAD_FRAME_BYTES_MIN` or more is decoded and prepared on
//! the shard's blocking pool, so a large request never keeps the shard from
//! its other connections; the reader waits for it, so the connection's
//! requests still reach the writer in order.

use super::dispatch::{self, Handled};
use super::prepare::{self, Prepared};
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
use std::time::Duration;

/// A read buffer starts this small and grows only for a large frame.
pub const READ_BUF_START: usize = 4 * 1024;
/// An empty read buffer above this is given back.
const READ_BUF_KEEP_MAX: usize = 64 * 1024;
/// Largest single read while a big frame is arriving.
const READ_CHUNK_MAX: usize = 1024 * 1024;
/// Unsent reply bytes of one connection before its reader pauses: a few
/// lookup replies. One reply may be larger (a topic list); the reader then
/// waits until it is sent.
pub const OUTPUT_BYTES_MAX_PER_CONN: usize = 64 * 1024;
/// Writer-bound requests in flight per connection before its reader pauses.
const IN_FLIGHT_MAX: usize = 64;
/// Frames this large or larger are decoded off the shard's thread.
pub const OFFLOAD_FRAME_BYTES_MIN: usize = 64 * 1024;
/// A reader paused by the shard's budget is woken when the shard is back
/// under it or its own replies move; it looks again after this at the
/// latest.
const BUDGET_RECHECK: Duration = Duration::from_millis(100);
/// Requests a connection serves in a row before it lets the shard's other
/// tasks run: a client that pipelines without pause gets its turn, not
/// the shard.
const FRAMES_PER_TURN: usize = 4;

const _: () = assert!(READ_BUF_START <= OFFLOAD_FRAME_BYTES_MIN);
const _: () = assert!(
    crate::config::BUFFER_BYTES_MAX_PER_SHARD_MIN
        >= 8 * OUTPUT_BYTES_MAX_PER_CONN + OFFLOAD_FRAME_BYTES_MIN
);
const _: () = assert!(OFFLOAD_FRAME_BYTES_MIN <= FRAME_SIZE_MAX);

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
    /// Replies not yet written to the socket.
    outbox: Outbox,
    /// When the unsent replies last moved (or were first queued).
    last_output_ms: Cell<u64>,
    /// Bytes this connection holds of the shard's budget: unsent replies,
    /// its read buffer, a frame being decoded off the shard.
    held: Cell<usize>,
    /// Of which its read buffer.
    read_held: Cell<usize>,
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

    /// Bytes of replies queued or being written.
    pub fn unsent(&self) -> usize {
        self.outbox.unsent.get()
    }

    pub fn last_output_ms(&self) -> u64 {
        self.last_output_ms.get()
    }

    pub fn held(&self) -> usize {
        self.held.get()
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
    /// Queued bytes plus those the flush task is writing.
    unsent: Cell<usize>,
    closed: Cell<bool>,
    broken: Cell<bool>,
    bell: (LocalSender<()>, LocalReceiver<()>),
    progress: (LocalSender<()>, LocalReceiver<()>),
}

impl Outbox {
    fn new() -> Outbox {
        Outbox {
            bytes: RefCell::new(Vec::new()),
            unsent: Cell::new(0),
            closed: Cell::new(false),
            broken: Cell::new(false),
            bell: local_channel::new_bounded(1),
            progress: local_channel::new_bounded(1),
        }
    }

    fn close(&self) {
        self.closed.set(true);
        let _ = self.bell.0.try_send(());
    }

    fn signal_progress(&self) {
        let _ = self.progress.0.try_send(());
    }
}

/// Adds `delta` bytes to what `conn` holds of the shard's budget.
fn hold(ctx: &ShardCtx, conn: &Conn, delta: isize) {
    conn.held.set(conn.held.get().wrapping_add_signed(delta));
    let before = ctx
        .stats
        .buffer_bytes
        .fetch_add(delta as usize, Ordering::Relaxed);
    let budget = ctx.startup.buffer_bytes_max_per_shard;
    if delta < 0 && before > budget && before.wrapping_add_signed(delta) <= budget {
        ctx.budget_eased.notify_all();
    }
}

/// Whether the shard is over its budget and `conn`, with replies queued,
/// holds at least an even share of it: such readers pause until it eases.
/// A connection with nothing queued (a broker waiting for its answer, a
/// client between requests) is never paused.
fn over_budget(ctx: &ShardCtx, conn: &Conn) -> bool {
    let total = ctx.stats.buffer_bytes.load(Ordering::Relaxed);
    total > ctx.startup.buffer_bytes_max_per_shard
        && conn.unsent() > 0
        && conn
            .held
            .get()
            .saturating_mul(ctx.open_connections().max(1))
            >= total
}

/// Queues a reply, counted against the connection and the shard's budget.
fn push_reply(ctx: &ShardCtx, conn: &Conn, frame: &[u8]) {
    let outbox = &conn.outbox;
    if outbox.unsent.get() == 0 {
        conn.last_output_ms.set(ctx.clock.now_ms());
    }
    outbox.bytes.borrow_mut().extend_from_slice(frame);
    outbox.unsent.set(outbox.unsent.get() + frame.len());
    hold(ctx, conn, frame.len() as isize);
    let _ = outbox.bell.0.try_send(());
}

/// Sets a socket buffer size option when configured (Java applies them to
/// accepted channels the same way).
fn set_buffer_size(fd: RawFd, option: libc::c_int, bytes: usize) {
    if bytes == 0 {
        return;
    }
    let value = bytes.min(libc::c_int::MAX as usize) as libc::c_int;
    // SAFETY: setsockopt reads an int from a valid pointer of its size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

pub async fn serve(stream: TcpStream, ctx: &Rc<ShardCtx>, id: ConnId) {
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    set_buffer_size(fd, libc::SO_SNDBUF, ctx.startup.socket_send_buffer_bytes);
    set_buffer_size(fd, libc::SO_RCVBUF, ctx.startup.socket_recv_buffer_bytes);
    let peer = stream.peer_addr().ok();
    let now_ms = ctx.clock.now_ms();
    let conn = Rc::new(Conn {
        id,
        fd: stream.as_raw_fd(),
        peer: peer.map(|a| a.ip()),
        broker: Cell::new(false),
        in_flight: Cell::new(0),
        last_read_ms: Cell::new(now_ms),
        outbox: Outbox::new(),
        last_output_ms: Cell::new(now_ms),
        held: Cell::new(0),
        read_held: Cell::new(0),
        shut: Cell::new(false),
    });
    ctx.enter(conn.clone());
    let mut stream = SharedStream(Rc::new(RefCell::new(stream)));
    let flush_stream = SharedStream(stream.0.clone());
    let flusher = spawn_local(flush_loop(flush_stream, ctx.clone(), conn.clone()));
    let mut buf = BytesMut::with_capacity(READ_BUF_START);
    if let Err(e) = read_loop(&mut stream, ctx, &conn, &mut buf).await {
        ctx.broken_frame(&e, peer);
        conn.shut_down();
    }
    drop(buf);
    conn.outbox.close();
    if conn.is_broker() {
        ctx.send_closed(conn.id);
    }
    flusher.await;
    ctx.leave(conn.id);
    // Whatever is still counted (a read buffer) goes with the connection.
    hold(ctx, &conn, -(conn.held.get() as isize));
}

async fn read_loop(
    stream: &mut SharedStream,
    ctx: &Rc<ShardCtx>,
    conn: &Rc<Conn>,
    buf: &mut BytesMut,
) -> Result<(), FrameError> {
    let mut served_this_turn = 0;
    loop {
        while let Some(total) = frame::peek_frame_size(buf, FRAME_SIZE_MAX)? {
            if buf.len() < total {
                break;
            }
            let prepared = if total >= OFFLOAD_FRAME_BYTES_MIN {
                let part = buf.split_to(total);
                match offload(ctx, conn, part).await {
                    Some(prepared) => prepared?,
                    None => return Ok(()),
                }
            } else {
                let Some(frame) = frame::decode(buf, FRAME_SIZE_MAX)? else {
                    break;
                };
                prepare::prepare(frame)
            };
            serve_one(ctx, conn, prepared);
            wait_for_room(ctx, conn).await;
            served_this_turn += 1;
            if served_this_turn == FRAMES_PER_TURN {
                served_this_turn = 0;
                futures_lite::future::yield_now().await;
            }
        }
        if conn.outbox.broken.get() {
            return Ok(());
        }
        if buf.is_empty() && buf.capacity() > READ_BUF_KEEP_MAX {
            *buf = BytesMut::with_capacity(READ_BUF_START);
        }
        let missing = frame::peek_frame_size(buf, FRAME_SIZE_MAX)?
            .map_or(0, |total| total.saturating_sub(buf.len()));
        let chunk = missing.clamp(READ_BUF_START, READ_CHUNK_MAX);
        let filled = buf.len();
        buf.resize(filled + chunk, 0);
        set_read_held(ctx, conn, buf.capacity());
        let read = stream.read(&mut buf[filled..]).await;
        match read {
            Ok(0) | Err(_) => {
                set_read_held(ctx, conn, 0);
                return Ok(());
            }
            Ok(n) => buf.truncate(filled + n),
        }
        conn.last_read_ms.set(ctx.clock.now_ms());
    }
}

/// The part of a connection's budget share that is its read buffer.
fn set_read_held(ctx: &ShardCtx, conn: &Conn, capacity: usize) {
    let before = conn.read_held.replace(capacity);
    hold(ctx, conn, capacity as isize - before as isize);
}

/// Decodes and prepares a large frame on the shard's blocking pool. `None`
/// if the decode panicked: a bug, logged, and the connection is closed.
async fn offload(
    ctx: &ShardCtx,
    conn: &Conn,
    mut part: BytesMut,
) -> Option<Result<Prepared, FrameError>> {
    let size = part.len() as isize;
    hold(ctx, conn, size);
    ctx.stats.offloaded.fetch_add(1, Ordering::Relaxed);
    let decode = move || frame::decode(&mut part, FRAME_SIZE_MAX).map(|f| f.map(prepare::prepare));
    let outcome = super::off_shard(decode).await;
    hold(ctx, conn, -size);
    match outcome {
        Some(Ok(Some(prepared))) => Some(Ok(prepared)),
        Some(Err(e)) => Some(Err(e)),
        // A whole frame always decodes to one; a panic was logged.
        Some(Ok(None)) | None => None,
    }
}

/// Answers one request now, or once the writer has.
fn serve_one(ctx: &Rc<ShardCtx>, conn: &Rc<Conn>, prepared: Prepared) {
    let header = prepared.header();
    if header.is_response() {
        return; // a reply to a request we never sent (§7)
    }
    let code = header.code;
    let started = std::time::Instant::now();
    match dispatch::handle(ctx, conn, prepared) {
        Handled::Now(bytes) => {
            push_reply(ctx, conn, &bytes);
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
            let (ctx, conn) = (ctx.clone(), conn.clone());
            spawn_local(async move {
                if let Some(bytes) = pending.await {
                    push_reply(&ctx, &conn, &bytes);
                    ctx.stats.request(code, metrics::is_success(&bytes));
                }
                conn.in_flight.set(conn.in_flight.get() - 1);
                ctx.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                conn.outbox.signal_progress();
            })
            .detach();
        }
    }
}

/// Waits while the shard is over its budget and this connection holds at
/// least its share of it, or while the connection is over its own caps.
async fn wait_for_room(ctx: &ShardCtx, conn: &Conn) {
    let outbox = &conn.outbox;
    let mut paused = false;
    loop {
        if outbox.broken.get() {
            return;
        }
        if over_budget(ctx, conn) {
            if !std::mem::replace(&mut paused, true) {
                ctx.stats.budget_paused.fetch_add(1, Ordering::Relaxed);
            }
            let eased = ctx.budget_eased.wait();
            let moved = async {
                outbox.progress.1.recv().await;
            };
            let late = glommio::timer::sleep(BUDGET_RECHECK);
            futures_lite::future::or(eased, futures_lite::future::or(moved, late)).await;
            continue;
        }
        if outbox.unsent.get() > OUTPUT_BYTES_MAX_PER_CONN || conn.in_flight.get() >= IN_FLIGHT_MAX
        {
            outbox.progress.1.recv().await;
            continue;
        }
        return;
    }
}

/// Writes what the outbox holds until the connection closes.
async fn flush_loop(mut stream: SharedStream, ctx: Rc<ShardCtx>, conn: Rc<Conn>) {
    let outbox = &conn.outbox;
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
        let mut sent = 0;
        while sent < bytes.len() {
            match stream.write(&bytes[sent..]).await {
                Ok(n) if n > 0 => {
                    sent += n;
                    outbox.unsent.set(outbox.unsent.get() - n);
                    hold(&ctx, &conn, -(n as isize));
                    conn.last_output_ms.set(ctx.clock.now_ms());
                }
                _ => {
                    outbox.broken.set(true);
                    let rest = bytes.len() - sent;
                    outbox.unsent.set(outbox.unsent.get() - rest);
                    hold(&ctx, &conn, -(rest as isize));
                    // Wakes the reader.
                    conn.shut_down();
                    break;
                }
            }
        }
        if outbox.broken.get() {
            break;
        }
        outbox.signal_progress();
    }
    // What never went out is no longer held.
    let rest = std::mem::take(&mut *outbox.bytes.borrow_mut()).len();
    outbox.unsent.set(outbox.unsent.get() - rest);
    hold(&ctx, &conn, -(rest as isize));
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
