//! Lookups: C connections with P requests in flight each, closed loop or
//! paced open loop; and the connection storm.

use crate::stats::Stats;
use crate::wire::{self, Expect, Mix, Rng, Verifier};
use crate::Window;
use bytes::BytesMut;
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use glommio::timer::sleep;
use glommio::{spawn_local, Task};
use rocketns::protocol::frame::Frame;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Connections opened at once while setting up, so the server's accept
/// backlog does not overflow into SYN retries.
const CONNECTS_AT_ONCE: u64 = 256;
/// Pause before re-opening a connection that failed.
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);
/// Longest a paced sender sleeps before looking at its connection again.
const SLEEP_SLICE: Duration = Duration::from_millis(100);

pub struct LookupCtx {
    pub addr: SocketAddr,
    pub timeout: Duration,
    pub in_flight: usize,
    /// Requests per second per connection, for the open loop.
    pub rate_per_conn: Option<f64>,
    pub connections: usize,
    pub mix: Mix,
    pub seed: u64,
    pub window: Window,
    pub stats: RefCell<Stats>,
    pub verifier: RefCell<Verifier>,
    /// Per connection: a verified reply arrived in the measured window.
    pub served: RefCell<Vec<bool>>,
}

impl LookupCtx {
    /// The stats of the run, with how many connections were served.
    pub fn take_stats(&self) -> Stats {
        let mut stats = self.stats.take();
        stats.connections_served = Some(self.served.borrow().iter().filter(|s| **s).count());
        stats
    }
}

/// Opens `n` connections, a bounded number at a time.
pub async fn connect_all(
    addr: SocketAddr,
    n: usize,
    timeout: Duration,
) -> Vec<Result<TcpStream, String>> {
    let gate = Rc::new(Semaphore::new(CONNECTS_AT_ONCE));
    let tasks: Vec<Task<Result<TcpStream, String>>> = (0..n)
        .map(|_| {
            let gate = gate.clone();
            spawn_local(async move {
                let _permit = gate.acquire_permit(1).await;
                wire::connect(addr, timeout).await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await);
    }
    out
}

/// Starts one task per connection; `streams` are the connections opened
/// beforehand (a failed one is opened again by its task).
pub fn start(ctx: &Rc<LookupCtx>, streams: Vec<Result<TcpStream, String>>) -> Vec<Task<()>> {
    streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let stream = match s {
                Ok(s) => Some(s),
                Err(kind) => {
                    ctx.stats.borrow_mut().error(&kind);
                    None
                }
            };
            spawn_local(drive(ctx.clone(), i, stream))
        })
        .collect()
}

/// What ended a session early: the error kind and the requests lost with it.
type SessionError = (String, usize);

struct Conn {
    rng: Rng,
    opaque: i32,
    /// Next request number of the open-loop schedule.
    next: u64,
    index: usize,
}

impl Conn {
    fn next_opaque(&mut self) -> i32 {
        self.opaque = self.opaque.wrapping_add(1).max(1);
        self.opaque
    }
}

async fn drive(ctx: Rc<LookupCtx>, index: usize, mut stream: Option<TcpStream>) {
    let mut conn = Conn {
        rng: Rng::new(ctx.seed ^ (index as u64).wrapping_mul(0xA24B_AED4_963E_E407)),
        opaque: 0,
        next: 0,
        index,
    };
    loop {
        if Instant::now() >= ctx.window.until {
            return;
        }
        let s = match stream.take() {
            Some(s) => s,
            None => match wire::connect(ctx.addr, ctx.timeout).await {
                Ok(s) => s,
                Err(kind) => {
                    ctx.stats.borrow_mut().error(&kind);
                    sleep(RECONNECT_PAUSE).await;
                    continue;
                }
            },
        };
        let result = if ctx.rate_per_conn.is_some() {
            open_session(&ctx, s, &mut conn).await
        } else {
            closed_session(&ctx, s, &mut conn).await
        };
        match result {
            Ok(()) => return,
            Err((kind, lost)) => {
                {
                    let mut st = ctx.stats.borrow_mut();
                    st.error(&kind);
                    st.errors_n("in_flight_lost", lost as u64);
                }
                sleep(RECONNECT_PAUSE).await;
            }
        }
    }
}

/// Verifies one reply to connection `index` and records it.
fn settle(ctx: &LookupCtx, index: usize, sent: Instant, expect: Expect, f: &Frame, now: Instant) {
    let verdict = ctx.verifier.borrow_mut().check_lookup(expect, f);
    let mut st = ctx.stats.borrow_mut();
    match verdict {
        Ok(()) if ctx.window.contains(sent) => {
            st.ok(now.saturating_duration_since(sent));
            if let Some(served) = ctx.served.borrow_mut().get_mut(index) {
                *served = true;
            }
        }
        Ok(()) => {}
        Err(kind) => st.error(&kind),
    }
}

async fn closed_session(
    ctx: &LookupCtx,
    mut s: TcpStream,
    conn: &mut Conn,
) -> Result<(), SessionError> {
    let _ = s.set_read_timeout(Some(ctx.timeout));
    // opaque -> (sent, expected); at most 256 entries.
    let mut pending: Vec<(i32, Instant, Expect)> = Vec::with_capacity(ctx.in_flight);
    let mut out = Vec::with_capacity(256 * ctx.in_flight.min(16));
    let mut buf = BytesMut::with_capacity(4096);
    let mut now = Instant::now();
    loop {
        if now < ctx.window.until {
            out.clear();
            while pending.len() < ctx.in_flight {
                let (expect, topic) = ctx.mix.pick(&mut conn.rng);
                let opaque = conn.next_opaque();
                wire::lookup_request(&mut out, opaque, &topic);
                pending.push((opaque, now, expect));
            }
            if !out.is_empty() {
                if let Err(e) = s.write_all(&out).await {
                    return Err((wire::io_kind("write", &e), pending.len()));
                }
            }
        } else if pending.is_empty() {
            return Ok(());
        }
        match wire::read_more(&mut s, &mut buf).await {
            Ok(0) => return Err(("closed_by_server".into(), pending.len())),
            Ok(_) => {}
            Err(e) => return Err((wire::io_kind("read", &e), pending.len())),
        }
        now = Instant::now();
        loop {
            let f = match wire::next_frame(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(kind) => return Err((kind, pending.len())),
            };
            match pending.iter().position(|p| p.0 == f.header.opaque) {
                Some(at) => {
                    let (_, sent, expect) = pending.swap_remove(at);
                    settle(ctx, conn.index, sent, expect, &f, now);
                }
                None => ctx.stats.borrow_mut().error("unknown_opaque"),
            }
        }
        // Replies to the others keep coming, so no read times out.
        if pending
            .iter()
            .any(|p| now.saturating_duration_since(p.1) > ctx.timeout)
        {
            return Err(("reply_timeout".into(), pending.len()));
        }
    }
}

/// Shared by the sender and the reader of one open-loop session.
struct Open {
    pending: RefCell<HashMap<i32, (Instant, Expect)>>,
    permits: Semaphore,
    sender_done: Cell<bool>,
    broken: Cell<bool>,
    send_error: RefCell<Option<String>>,
    fd: i32,
}

impl Open {
    fn break_off(&self) {
        if !self.broken.replace(true) {
            self.permits.close();
            // SAFETY: shutting down our own socket wakes both tasks.
            unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
        }
    }
}

async fn open_session(
    ctx: &LookupCtx,
    mut s: TcpStream,
    conn: &mut Conn,
) -> Result<(), SessionError> {
    let fd = s.as_raw_fd();
    // SAFETY: dup returns a new descriptor that nothing else owns.
    let wfd = unsafe { libc::dup(fd) };
    if wfd < 0 {
        let e = std::io::Error::last_os_error();
        return Err((wire::io_kind("dup", &e), 0));
    }
    // SAFETY: `wfd` is a fresh, owned, connected TCP socket.
    let mut w = unsafe { TcpStream::from_raw_fd(wfd) };
    let read_tick = (ctx.timeout / 5).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let _ = s.set_read_timeout(Some(read_tick));
    let shared = Open {
        pending: RefCell::new(HashMap::with_capacity(ctx.in_flight)),
        permits: Semaphore::new(ctx.in_flight as u64),
        sender_done: Cell::new(false),
        broken: Cell::new(false),
        send_error: RefCell::new(None),
        fd,
    };
    let rate = ctx.rate_per_conn.unwrap_or(1.0);
    let index = conn.index;
    let phase = index as f64 / ctx.connections as f64;
    let start = ctx.window.start;
    let due_of = |k: u64| start + Duration::from_secs_f64((k as f64 + phase) / rate);

    let sender = async {
        let mut out = Vec::with_capacity(4096);
        loop {
            if shared.broken.get() {
                return;
            }
            let due = due_of(conn.next);
            if due >= ctx.window.until {
                break;
            }
            let now = Instant::now();
            if due > now {
                sleep((due - now).min(SLEEP_SLICE)).await;
                continue;
            }
            let got = match shared.permits.try_acquire(1) {
                Ok(true) => true,
                Ok(false) => shared.permits.acquire(1).await.is_ok(),
                Err(_) => false,
            };
            if !got {
                return;
            }
            out.clear();
            {
                let mut pending = shared.pending.borrow_mut();
                loop {
                    let due = due_of(conn.next);
                    let (expect, topic) = ctx.mix.pick(&mut conn.rng);
                    let opaque = conn.next_opaque();
                    wire::lookup_request(&mut out, opaque, &topic);
                    pending.insert(opaque, (due, expect));
                    conn.next += 1;
                    let after = due_of(conn.next);
                    if after > now || after >= ctx.window.until {
                        break;
                    }
                    if !matches!(shared.permits.try_acquire(1), Ok(true)) {
                        break;
                    }
                }
            }
            if let Err(e) = w.write_all(&out).await {
                *shared.send_error.borrow_mut() = Some(wire::io_kind("write", &e));
                shared.break_off();
                return;
            }
        }
        shared.sender_done.set(true);
        if shared.pending.borrow().is_empty() {
            shared.break_off();
        }
    };

    let reader = async {
        let mut buf = BytesMut::with_capacity(4096);
        let finished = || shared.sender_done.get() && shared.pending.borrow().is_empty();
        let late = |now: Instant| {
            shared
                .pending
                .borrow()
                .values()
                .any(|(sent, _)| now.saturating_duration_since(*sent) > ctx.timeout)
        };
        let mut scanned = Instant::now();
        loop {
            if finished() {
                return Ok(());
            }
            match wire::read_more(&mut s, &mut buf).await {
                Ok(0) if finished() => return Ok(()),
                Ok(0) => return Err("closed_by_server".to_string()),
                Ok(_) => {}
                Err(_) if finished() => return Ok(()),
                Err(_) if shared.broken.get() => return Err("write_failed".to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    if late(Instant::now()) {
                        return Err("read_timeout".to_string());
                    }
                    continue;
                }
                Err(e) => return Err(wire::io_kind("read", &e)),
            }
            let now = Instant::now();
            loop {
                let f = match wire::next_frame(&mut buf) {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(kind) => return Err(kind),
                };
                let entry = shared.pending.borrow_mut().remove(&f.header.opaque);
                match entry {
                    Some((sent, expect)) => {
                        shared.permits.signal(1);
                        settle(ctx, index, sent, expect, &f, now);
                    }
                    None => ctx.stats.borrow_mut().error("unknown_opaque"),
                }
            }
            // Replies to the others keep coming, so no read times out.
            if now.saturating_duration_since(scanned) >= read_tick {
                scanned = now;
                if late(now) {
                    return Err("reply_timeout".to_string());
                }
            }
        }
    };
    let reader = async {
        let r = reader.await;
        if r.is_err() {
            shared.break_off();
        }
        r
    };
    let ((), result) = futures_lite::future::zip(sender, reader).await;
    let lost = shared.pending.borrow().len();
    match result {
        Ok(()) => Ok(()),
        Err(kind) => Err((shared.send_error.borrow_mut().take().unwrap_or(kind), lost)),
    }
}

pub struct StormCtx {
    pub addr: SocketAddr,
    pub timeout: Duration,
    pub total: usize,
    pub mix: Mix,
    pub seed: u64,
    pub until: Instant,
    pub next: Cell<usize>,
    pub stats: RefCell<Stats>,
    pub verifier: RefCell<Verifier>,
}

/// `concurrency` workers, each opening a connection, doing one lookup and
/// closing it, until `total` are done or the time is up.
pub fn start_storm(ctx: &Rc<StormCtx>, concurrency: usize) -> Vec<Task<()>> {
    (0..concurrency)
        .map(|w| {
            let ctx = ctx.clone();
            spawn_local(async move {
                let mut rng = Rng::new(ctx.seed ^ (w as u64).wrapping_mul(0x9FB2_1C65_1E98_DF25));
                loop {
                    let i = ctx.next.get();
                    if i >= ctx.total || Instant::now() >= ctx.until {
                        return;
                    }
                    ctx.next.set(i + 1);
                    let t = Instant::now();
                    let result = storm_one(&ctx, &mut rng).await;
                    let mut st = ctx.stats.borrow_mut();
                    match result {
                        Ok(()) => st.ok(t.elapsed()),
                        Err(kind) => st.error(&kind),
                    }
                }
            })
        })
        .collect()
}

async fn storm_one(ctx: &StormCtx, rng: &mut Rng) -> Result<(), String> {
    let mut s = wire::connect(ctx.addr, ctx.timeout).await?;
    let _ = s.set_read_timeout(Some(ctx.timeout));
    let (expect, topic) = ctx.mix.pick(rng);
    let mut out = Vec::with_capacity(256);
    wire::lookup_request(&mut out, 1, &topic);
    s.write_all(&out)
        .await
        .map_err(|e| wire::io_kind("write", &e))?;
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        match wire::read_more(&mut s, &mut buf).await {
            Ok(0) => return Err("closed_by_server".into()),
            Ok(_) => {}
            Err(e) => return Err(wire::io_kind("read", &e)),
        }
        if let Some(f) = wire::next_frame(&mut buf)? {
            if f.header.opaque != 1 {
                return Err("unknown_opaque".into());
            }
            return ctx.verifier.borrow_mut().check_lookup(expect, &f);
        }
    }
}
