//! `abuse` (issue 15): a well-behaved client's lookup latency on one shard
//! while hostile clients run, against the same lookups with no abuse, in
//! one run.
//!
//! The measuring client (C connections, one lookup in flight each, closed
//! loop, one topic that the run's own broker registers and keeps
//! registered) runs from start to end on its own executor thread. The run
//! is a list of phases of equal length, each followed by an unmeasured
//! gap; a lookup counts in the phase it was sent in. The abusers run on a
//! second executor thread at a high nice value (`abusers`), so the
//! measuring thread's own scheduling is disturbed as little as this
//! machine allows; an optional third plain thread samples the server's
//! /metrics and resident memory per phase. The table gives each phase's
//! p99 as a ratio to the first phase without abuse.

use crate::abusers::{self, AbuseSettings, PhaseAbuse};
use crate::args::{common, resolve, u64_of};
use crate::client::join_until;
use crate::stats::Stats;
use crate::wire::{self, Expect, Verifier};
use crate::{ensure_fds, git_commit};
use bytes::BytesMut;
use clap::ArgMatches;
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use glommio::timer::sleep;
use glommio::{spawn_local, LocalExecutorBuilder, Placement, Task};
use rocketns::protocol::body::{DataVersion, TopicConfig};
use rocketns::protocol::client;
use rocketns::protocol::codes::{request as req, response as resp};
use rocketns::protocol::frame::Frame;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The run's own broker, which registers the measured topic.
pub const BROKER_NAME: &str = "abuse-bench-broker";
/// How often that broker re-registers (unchanged: liveness only), so its
/// connection is never idle whatever the server's idle timeout.
const BROKER_PERIOD: Duration = Duration::from_secs(1);
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);
/// Tries of the first registration before the run gives up.
const FIRST_REGISTER_TRIES: u32 = 5;
/// Ring depth of the abusers' executor. A loopback connect runs the whole
/// handshake inside the submitting syscall, and with the kernel's
/// PREEMPT_NONE one io_uring_enter of 128 of them held CPU 0 for about
/// 2.5 ms whatever the thread's nice value (the measuring thread's timer
/// probe woke 2.5 ms late at p99 in the flood); 16 keeps that near 0.5 ms
/// and still opens several thousand connections a second.
const ABUSER_RING_DEPTH: usize = 16;
/// Period of the measuring thread's timer probe: how late it wakes is
/// how long that thread could not run (the abusers' thread shares its CPU).
const PROBE_PERIOD: Duration = Duration::from_millis(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abuse {
    None,
    SlowReaders,
    LargeFrames,
    Flood,
}

impl Abuse {
    const ALL: [Abuse; 4] = [
        Abuse::None,
        Abuse::SlowReaders,
        Abuse::LargeFrames,
        Abuse::Flood,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Abuse::None => "none",
            Abuse::SlowReaders => "slow-readers",
            Abuse::LargeFrames => "large-frames",
            Abuse::Flood => "flood",
        }
    }
}

fn parse_phases(text: &str) -> Result<Vec<Abuse>, String> {
    let phases: Vec<Abuse> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            Abuse::ALL
                .into_iter()
                .find(|a| a.name() == s)
                .ok_or_else(|| format!("--phases: unknown phase {s}"))
        })
        .collect::<Result<_, _>>()?;
    if !phases.contains(&Abuse::None) {
        return Err("--phases needs a phase `none`: it is the baseline".into());
    }
    Ok(phases)
}

/// One phase of the schedule: its abuse runs, and its lookups count, from
/// `start` to `end`.
#[derive(Clone, Copy, Debug)]
pub struct Phase {
    pub abuse: Abuse,
    pub start: Instant,
    pub end: Instant,
}

/// A read that ended on its timeout.
pub fn is_timeout(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut
        || matches!(e.raw_os_error(), Some(libc::ETIME) | Some(libc::ECANCELED))
}

/// Reads until the next response frame (requests from the server, such as
/// a 905, are skipped); `Err` names the kind of failure.
pub async fn read_reply(s: &mut TcpStream, buf: &mut BytesMut) -> Result<Frame, String> {
    loop {
        while let Some(f) = wire::next_frame(buf)? {
            if f.header.is_response() {
                return Ok(f);
            }
        }
        match wire::read_more(s, buf).await {
            Ok(0) => return Err("closed_by_server".into()),
            Ok(_) => {}
            Err(e) if is_timeout(&e) => return Err("read_timeout".into()),
            Err(e) => return Err(wire::io_kind("read", &e)),
        }
    }
}

/// The CPUs the calling thread may run on, as a list.
fn affinity() -> String {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only
    // write into it and read it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return "?".into();
        }
        let cpus: Vec<String> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .map(|c| c.to_string())
            .collect();
        cpus.join(",")
    }
}

/// Sets the calling thread's nice value; whether that worked.
fn set_nice(nice: i64) -> bool {
    // SAFETY: plain libc calls on the calling thread.
    unsafe {
        libc::setpriority(
            libc::PRIO_PROCESS,
            libc::gettid() as libc::id_t,
            nice as i32,
        ) == 0
    }
}

/// Everything the command line says, read before the run starts.
struct Settings {
    addr: SocketAddr,
    addr_text: String,
    timeout: Duration,
    warmup: Duration,
    duration: Duration,
    gap: Duration,
    seed: u64,
    json: bool,
    connections: usize,
    rate: Option<f64>,
    topic: String,
    abuses: Vec<Abuse>,
    slow_readers: usize,
    rcvbuf: usize,
    sndbuf: usize,
    flood_conns: usize,
    flood_hold: Duration,
    nice: i64,
    metrics: Option<(SocketAddr, String)>,
    server_pid: Option<u32>,
    sample_every: Duration,
    label: Option<String>,
    case: Option<String>,
}

fn settings(m: &ArgMatches) -> Result<Settings, String> {
    let c = common(m)?;
    let rate = m.get_one::<f64>("rate").copied();
    if let Some(r) = rate {
        if !(r > 0.0 && r <= 10_000_000.0) {
            return Err(format!("--rate {r} is not within (0, 10000000]"));
        }
    }
    let metrics = match m.get_one::<String>("metrics-addr") {
        Some(text) => Some((resolve(text)?, text.clone())),
        None => None,
    };
    Ok(Settings {
        addr: c.addr,
        addr_text: c.addr_text,
        timeout: c.timeout,
        warmup: c.warmup,
        duration: c.duration,
        gap: Duration::from_secs(u64_of(m, "gap-secs")),
        seed: c.seed,
        json: c.json,
        connections: u64_of(m, "connections") as usize,
        rate,
        topic: m.get_one::<String>("topic").expect("defaulted").clone(),
        abuses: parse_phases(m.get_one::<String>("phases").expect("defaulted"))?,
        slow_readers: u64_of(m, "slow-readers") as usize,
        rcvbuf: u64_of(m, "slow-reader-rcvbuf") as usize,
        sndbuf: u64_of(m, "slow-reader-sndbuf") as usize,
        flood_conns: u64_of(m, "flood-conns") as usize,
        flood_hold: Duration::from_millis(u64_of(m, "flood-hold-ms")),
        nice: *m.get_one::<i64>("abuser-nice").expect("defaulted"),
        metrics,
        server_pid: m.get_one::<u32>("server-pid").copied(),
        sample_every: Duration::from_millis(u64_of(m, "sample-ms")),
        label: m.get_one::<String>("label").cloned(),
        case: m.get_one::<String>("case").cloned(),
    })
}

pub fn run(m: &ArgMatches) -> Result<(), String> {
    let s = settings(m)?;
    let has = |a: Abuse| s.abuses.contains(&a);
    let mut fds = s.connections as u64 + 1 + 2;
    if has(Abuse::SlowReaders) {
        fds += s.slow_readers as u64;
    }
    if has(Abuse::Flood) {
        fds += s.flood_conns as u64;
    }
    ensure_fds(fds + 64)?;
    let large = if has(Abuse::LargeFrames) {
        let t = Instant::now();
        let frames = abusers::large_frames(s.seed)?;
        let sizes: Vec<String> = frames
            .iter()
            .map(|f| format!("{} {} bytes", f.key, f.bytes.len()))
            .collect();
        eprintln!(
            "rocketns-load abuse: large frames built in {:.1} s: {}",
            t.elapsed().as_secs_f64(),
            sizes.join(", ")
        );
        frames
    } else {
        Vec::new()
    };

    // The measuring thread registers the topic, connects, and only then
    // fixes the schedule, which it hands back here for the others.
    let (tx, rx) = mpsc::channel();
    let mset = MeasureSettings {
        rate: s.rate,
        addr: s.addr,
        timeout: s.timeout,
        topic: s.topic.clone(),
        connections: s.connections,
        warmup: s.warmup,
        duration: s.duration,
        gap: s.gap,
        abuses: s.abuses.clone(),
    };
    let measuring = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(64 << 10)
        .name("abuse-measure")
        .spawn(move || async move { measure(mset, tx).await })
        .map_err(|e| format!("starting the measuring executor: {e}"))?;
    let phases: Vec<Phase> = match rx.recv() {
        Ok(p) => p,
        Err(_) => {
            let r = measuring.join().map_err(|e| format!("executor: {e}"))?;
            return Err(r.err().unwrap_or_else(|| "no schedule was made".into()));
        }
    };

    let aset = AbuseSettings {
        addr: s.addr,
        timeout: s.timeout,
        slow_readers: s.slow_readers,
        rcvbuf: s.rcvbuf,
        sndbuf: s.sndbuf,
        flood_conns: s.flood_conns,
        flood_hold: s.flood_hold,
        large,
        topic: s.topic.clone(),
    };
    let nice = s.nice;
    let schedule = phases.clone();
    let abusing = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(64 << 10)
        .ring_depth(ABUSER_RING_DEPTH)
        .name("abuse-abusers")
        .spawn(move || async move {
            let niced = set_nice(nice);
            let cpus = affinity();
            (abusers::run(schedule, aset).await, cpus, niced)
        })
        .map_err(|e| format!("starting the abusers' executor: {e}"))?;
    let (schedule, metrics, pid, every) = (
        phases.clone(),
        s.metrics.clone(),
        s.server_pid,
        s.sample_every,
    );
    let sampler = std::thread::Builder::new()
        .name("abuse-sampler".into())
        .spawn(move || sample(&schedule, metrics.map(|m| m.0), pid, every))
        .map_err(|e| format!("starting the sampler: {e}"))?;

    let measured = measuring.join().map_err(|e| format!("executor: {e}"))??;
    let (abused, abuser_cpus, niced) = abusing.join().map_err(|e| format!("executor: {e}"))?;
    let server = sampler
        .join()
        .map_err(|_| "the sampler panicked".to_string())?;
    let threads = Threads {
        measuring: format!(
            "thread abuse-measure on CPU {}: {} connections x 1 in flight, {}, lookups of {}",
            measured.cpus,
            s.connections,
            loop_name(s.rate),
            s.topic
        ),
        abusers: format!(
            "thread abuse-abusers on CPU {abuser_cpus}, nice {}",
            if niced {
                nice.to_string()
            } else {
                format!("0 (setting {nice} failed)")
            }
        ),
    };
    report(&s, &phases, &measured, &abused, &server, &threads);
    Ok(())
}

// ---------------------------------------------------------------------
// The measuring client.

struct MeasureSettings {
    /// Lookups per second in all, paced per connection; `None`: as fast
    /// as the replies come.
    rate: Option<f64>,
    addr: SocketAddr,
    timeout: Duration,
    topic: String,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    gap: Duration,
    abuses: Vec<Abuse>,
}

/// What the measuring thread hands back.
struct Measured {
    phases: Vec<Stats>,
    /// Per phase: how late the measuring thread's 1 ms timer woke.
    lag: Vec<Stats>,
    /// Per phase: the run's broker's re-registrations (each second).
    registrations: Vec<Stats>,
    /// Errors outside every phase (warm-up, gaps, the end).
    between: Stats,
    cpus: String,
}

struct Measure {
    /// Least time between two lookups of one connection (paced runs).
    interval: Option<Duration>,
    connections: usize,
    addr: SocketAddr,
    timeout: Duration,
    topic: String,
    phases: Vec<Phase>,
    end: Instant,
    stats: RefCell<Vec<Stats>>,
    lag: RefCell<Vec<Stats>>,
    registrations: RefCell<Vec<Stats>>,
    between: RefCell<Stats>,
    verifier: RefCell<Verifier>,
}

impl Measure {
    fn phase_of(&self, t: Instant) -> Option<usize> {
        self.phases.iter().position(|p| t >= p.start && t < p.end)
    }

    /// Counts an error in the phase of `t`.
    fn error_at(&self, t: Instant, kind: &str) {
        match self.phase_of(t) {
            Some(i) => self.stats.borrow_mut()[i].error(kind),
            None => self.between.borrow_mut().error(kind),
        }
    }

    fn settle(&self, sent: Instant, f: &Frame) {
        let now = Instant::now();
        match self.verifier.borrow_mut().check_lookup(Expect::Route(0), f) {
            Ok(()) => {
                if let Some(i) = self.phase_of(sent) {
                    self.stats.borrow_mut()[i].ok(now.saturating_duration_since(sent));
                }
            }
            Err(kind) => self.error_at(sent, &kind),
        }
    }
}

/// The registration of the measured topic by the run's own broker; the
/// same bytes each time, so a re-registration changes nothing visible.
fn broker_frame(topic: &str, opaque: i32) -> Vec<u8> {
    let dv = DataVersion {
        counter: 1,
        state_version: 0,
        timestamp: 1_700_000_000_000,
    };
    let config = TopicConfig {
        topic_name: None,
        read_queue_nums: 8,
        write_queue_nums: 8,
        perm: 6,
        topic_sys_flag: 0,
    };
    // Two topics: a broker's first registration with exactly one topic is
    // refused, as in Java (namesrv-behaviour §3 step 7).
    let second = format!("{topic}-second");
    let topics = [(topic, config.clone()), (second.as_str(), config)];
    let body = client::encode_register_json(&dv, &topics, &[]);
    let crc = (crc32fast::hash(&body) & 0x7FFF_FFFF).to_string();
    client::request(
        req::REGISTER_BROKER,
        opaque,
        0,
        &[
            ("brokerAddr", "127.0.0.1:29901"),
            ("brokerId", "0"),
            ("brokerName", BROKER_NAME),
            ("bodyCrc32", crc.as_str()),
            ("clusterName", "AbuseBench"),
            ("compressed", "false"),
            ("enableActingMaster", "false"),
            ("haServerAddr", "127.0.0.1:29902"),
        ],
        &body,
    )
}

/// One registration on `s`.
async fn register_on(s: &mut TcpStream, frame: &[u8]) -> Result<(), String> {
    s.write_all(frame)
        .await
        .map_err(|e| wire::io_kind("broker_write", &e))?;
    let mut buf = BytesMut::with_capacity(4096);
    let f = read_reply(s, &mut buf)
        .await
        .map_err(|k| format!("broker_{k}"))?;
    match f.header.code {
        resp::SUCCESS => Ok(()),
        code => {
            let remark = f.header.remark.as_deref().unwrap_or("");
            eprintln!("rocketns-load abuse: the broker's registration answered {code}: {remark}");
            Err(format!("broker_register_code_{code}"))
        }
    }
}

/// A connection with the topic registered on it.
async fn registered(
    addr: SocketAddr,
    timeout: Duration,
    frame: &[u8],
) -> Result<TcpStream, String> {
    let mut s = wire::connect(addr, timeout)
        .await
        .map_err(|k| format!("broker_{k}"))?;
    let _ = s.set_read_timeout(Some(timeout));
    register_on(&mut s, frame).await?;
    Ok(s)
}

/// Re-registers every period on the broker's connection (a new one if it
/// broke) until cancelled; failures count in the phase they happen in.
async fn keep_registered(ctx: Rc<Measure>, mut s: Option<TcpStream>, frame: Rc<Vec<u8>>) {
    loop {
        sleep(BROKER_PERIOD).await;
        let sent = Instant::now();
        let result = match s.as_mut() {
            Some(st) => register_on(st, &frame).await,
            None => match registered(ctx.addr, ctx.timeout, &frame).await {
                Ok(st) => {
                    s = Some(st);
                    Ok(())
                }
                Err(k) => Err(k),
            },
        };
        match result {
            Ok(()) => {
                if let Some(i) = ctx.phase_of(sent) {
                    ctx.registrations.borrow_mut()[i].ok(sent.elapsed());
                }
            }
            Err(kind) => {
                ctx.error_at(sent, &kind);
                s = None;
            }
        }
    }
}

async fn measure(m: MeasureSettings, tx: mpsc::Sender<Vec<Phase>>) -> Result<Measured, String> {
    let cpus = affinity();
    let frame = Rc::new(broker_frame(&m.topic, 1));
    let mut broker = None;
    let mut last = String::new();
    for _ in 0..FIRST_REGISTER_TRIES {
        match registered(m.addr, m.timeout, &frame).await {
            Ok(s) => {
                broker = Some(s);
                break;
            }
            Err(k) => {
                last = k;
                sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let Some(broker) = broker else {
        return Err(format!(
            "the broker could not register {} ({last}): nothing to measure",
            m.topic
        ));
    };
    let mut streams = Vec::with_capacity(m.connections);
    for _ in 0..m.connections {
        streams.push(wire::connect(m.addr, m.timeout).await);
    }
    let t0 = Instant::now() + m.warmup;
    let step = m.duration + m.gap;
    let phases: Vec<Phase> = m
        .abuses
        .iter()
        .enumerate()
        .map(|(i, &abuse)| {
            let start = t0 + step * i as u32;
            Phase {
                abuse,
                start,
                end: start + m.duration,
            }
        })
        .collect();
    let end = phases.last().map_or(t0, |p| p.end);
    let ctx = Rc::new(Measure {
        interval: m
            .rate
            .map(|r| Duration::from_secs_f64(m.connections as f64 / r)),
        connections: m.connections,
        addr: m.addr,
        timeout: m.timeout,
        topic: m.topic.clone(),
        phases: phases.clone(),
        end,
        stats: RefCell::new(phases.iter().map(|_| Stats::default()).collect()),
        lag: RefCell::new(phases.iter().map(|_| Stats::default()).collect()),
        registrations: RefCell::new(phases.iter().map(|_| Stats::default()).collect()),
        between: RefCell::new(Stats::default()),
        verifier: RefCell::new(Verifier::default()),
    });
    let _ = tx.send(phases);
    let keeper = spawn_local(keep_registered(ctx.clone(), Some(broker), frame));
    let prober = spawn_local(probe(ctx.clone()));
    let tasks: Vec<Task<()>> = streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            if let Err(kind) = &s {
                ctx.error_at(Instant::now(), kind);
            }
            spawn_local(measure_conn(ctx.clone(), i, s.ok()))
        })
        .collect();
    let (_, stuck) = join_until(tasks, end + m.timeout + Duration::from_secs(1)).await;
    ctx.between
        .borrow_mut()
        .errors_n("tasks_stuck_at_end", stuck);
    // The broker's connection closes only now: that unregisters it.
    drop(keeper);
    drop(prober);
    Ok(Measured {
        phases: ctx.stats.take(),
        lag: ctx.lag.take(),
        registrations: ctx.registrations.take(),
        between: ctx.between.take(),
        cpus,
    })
}

/// Sleeps for `PROBE_PERIOD` over and over, recording how late it wakes.
async fn probe(ctx: Rc<Measure>) {
    while Instant::now() < ctx.end {
        let t = Instant::now();
        sleep(PROBE_PERIOD).await;
        let late = t.elapsed().saturating_sub(PROBE_PERIOD);
        if let Some(i) = ctx.phase_of(t) {
            ctx.lag.borrow_mut()[i].ok(late);
        }
    }
}

/// One measuring connection: a lookup, its reply, the next, until the
/// last phase ends; a failed connection is opened again. Paced, each
/// lookup waits for its turn, one interval after the previous turn (or
/// after the reply, if that came later: no catching up in bursts); the
/// connections' turns are spread over the interval.
async fn measure_conn(ctx: Rc<Measure>, index: usize, mut stream: Option<TcpStream>) {
    let mut due = ctx
        .interval
        .map(|iv| Instant::now() + iv.mul_f64(index as f64 / ctx.connections as f64));
    let mut opaque: i32 = 0;
    let mut out = Vec::with_capacity(256);
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if Instant::now() >= ctx.end {
            return;
        }
        let mut s = match stream.take() {
            Some(s) => s,
            None => match wire::connect(ctx.addr, ctx.timeout).await {
                Ok(s) => s,
                Err(kind) => {
                    ctx.error_at(Instant::now(), &kind);
                    sleep(RECONNECT_PAUSE).await;
                    continue;
                }
            },
        };
        let _ = s.set_read_timeout(Some(ctx.timeout));
        buf.clear();
        loop {
            if let (Some(d), Some(iv)) = (due, ctx.interval) {
                let now = Instant::now();
                if d > now {
                    sleep(d - now).await;
                }
                due = Some((d + iv).max(Instant::now()));
            }
            let sent = Instant::now();
            if sent >= ctx.end {
                return;
            }
            opaque = opaque.wrapping_add(1).max(1);
            out.clear();
            wire::lookup_request(&mut out, opaque, &ctx.topic);
            if let Err(e) = s.write_all(&out).await {
                ctx.error_at(sent, &wire::io_kind("write", &e));
                break;
            }
            match read_reply(&mut s, &mut buf).await {
                Ok(f) if f.header.opaque == opaque => ctx.settle(sent, &f),
                Ok(_) => {
                    ctx.error_at(sent, "unknown_opaque");
                    break;
                }
                Err(kind) => {
                    ctx.error_at(sent, &kind);
                    break;
                }
            }
        }
        drop(s);
        sleep(RECONNECT_PAUSE).await;
    }
}

// ---------------------------------------------------------------------
// The server's side, sampled on a plain thread.

/// Counters reported as their increase over a phase.
const COUNTERS: [&str; 9] = [
    "rocketns_requests_total{code=\"105\"}",
    "rocketns_budget_paused_total",
    "rocketns_slow_reader_closed_total",
    "rocketns_offloaded_frames_total",
    "rocketns_connections_accepted_total",
    "rocketns_connections_refused_total",
    "rocketns_idle_closed_total",
    "rocketns_broken_frames_total",
    "rocketns_system_busy_total",
];
/// Gauges reported as their highest sample in a phase (summed over shards).
const GAUGES: [&str; 2] = ["rocketns_buffer_bytes", "rocketns_connections"];

#[derive(Clone, Default)]
struct PhaseServer {
    /// Run and run-queue wait by thread, the server's and this process's.
    server_cpu: ThreadTimes,
    client_cpu: ThreadTimes,
    /// Share of each CPU's time that anything (these processes, others,
    /// interrupts) used, from /proc/stat: shows load from other tenants.
    machine_busy: Vec<f64>,
    deltas: BTreeMap<&'static str, f64>,
    peaks: BTreeMap<&'static str, f64>,
    peak_rss_mb: Option<f64>,
    /// Memory the kernel holds for TCP sockets (all of them: the server's
    /// unsent replies are there), from /proc/net/sockstat.
    peak_tcp_mem_mb: Option<f64>,
    samples: u64,
    failed_samples: u64,
}

/// Every family in a Prometheus text summed over its labels, and every
/// labelled series under its own name (`name{label="v"}`).
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let family = series.split('{').next().unwrap_or("");
        if family.is_empty() {
            continue;
        }
        *out.entry(family.to_string()).or_insert(0.0) += v;
        if family != series {
            out.insert(series.to_string(), v);
        }
    }
    out
}

fn scrape(addr: SocketAddr) -> Option<HashMap<String, f64>> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| parse_metrics(body))
}

/// Per thread: seconds on a CPU and seconds runnable but waiting for one.
type ThreadTimes = BTreeMap<String, (f64, f64)>;

/// The times of each thread of `pid` so far, from its schedstat, by
/// thread name; threads that share a name (an executor and its blocking
/// pool) are told apart by their id, `name[tid]`.
fn thread_times(pid: u32) -> ThreadTimes {
    let mut threads: Vec<(String, String, f64, f64)> = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return ThreadTimes::new();
    };
    for entry in dir.flatten() {
        let tid = entry.file_name().to_string_lossy().into_owned();
        let read = |f: &str| std::fs::read_to_string(entry.path().join(f)).ok();
        let (Some(comm), Some(sched)) = (read("comm"), read("schedstat")) else {
            continue;
        };
        // "ns on a CPU, ns waiting on a run queue, time slices"
        let f: Vec<f64> = sched
            .split_whitespace()
            .take(2)
            .filter_map(|v| v.parse().ok())
            .collect();
        if f.len() == 2 {
            threads.push((comm.trim().to_string(), tid, f[0] / 1e9, f[1] / 1e9));
        }
    }
    let shared = |name: &str| threads.iter().filter(|t| t.0 == name).count() > 1;
    threads
        .iter()
        .map(|(name, tid, run, wait)| {
            let key = if shared(name) {
                format!("{name}[{tid}]")
            } else {
                name.clone()
            };
            (key, (*run, *wait))
        })
        .collect()
}

/// (busy, total) jiffies of each CPU, from /proc/stat.
fn cpu_times() -> Vec<(u64, u64)> {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return Vec::new();
    };
    stat.lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .map(|l| {
            // user nice system idle iowait irq softirq steal ...
            let f: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .take(8)
                .filter_map(|v| v.parse().ok())
                .collect();
            let total: u64 = f.iter().sum();
            let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
            (total - idle, total)
        })
        .collect()
}

/// `after - before` by name, names absent before counted from zero.
fn times_delta(before: &ThreadTimes, after: &ThreadTimes) -> ThreadTimes {
    after
        .iter()
        .map(|(k, v)| {
            let b = before.get(k).copied().unwrap_or((0.0, 0.0));
            (k.clone(), (v.0 - b.0, v.1 - b.1))
        })
        .filter(|(_, v)| v.0 > 0.0 || v.1 > 0.0)
        .collect()
}

fn tcp_mem_mb() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    let line = text.lines().find(|l| l.starts_with("TCP:"))?;
    let mut words = line.split_whitespace();
    words.find(|w| *w == "mem")?;
    let pages: f64 = words.next()?.parse().ok()?;
    // SAFETY: sysconf only reads a constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as f64;
    Some((pages * page / (1 << 20) as f64 * 10.0).round() / 10.0)
}

fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}

/// Per phase: the counters at its start and end, the gauges and the
/// server's resident memory every `every` in between.
fn sample(
    phases: &[Phase],
    metrics: Option<SocketAddr>,
    pid: Option<u32>,
    every: Duration,
) -> Vec<PhaseServer> {
    let take = |out: &mut PhaseServer| -> Option<HashMap<String, f64>> {
        if let Some(mb) = pid.and_then(rss_mb) {
            out.peak_rss_mb = Some(out.peak_rss_mb.map_or(mb, |p: f64| p.max(mb)));
        }
        if let Some(mb) = tcp_mem_mb() {
            out.peak_tcp_mem_mb = Some(out.peak_tcp_mem_mb.map_or(mb, |p: f64| p.max(mb)));
        }
        let m = metrics.and_then(scrape);
        match &m {
            Some(m) => {
                out.samples += 1;
                for g in GAUGES {
                    if let Some(&v) = m.get(g) {
                        let peak = out.peaks.entry(g).or_insert(v);
                        *peak = peak.max(v);
                    }
                }
            }
            None if metrics.is_some() => out.failed_samples += 1,
            None => {}
        }
        m
    };
    let mut all = Vec::with_capacity(phases.len());
    for p in phases {
        let mut out = PhaseServer::default();
        if let Some(d) = p.start.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let me = std::process::id();
        let cpu_before = (pid.map(thread_times).unwrap_or_default(), thread_times(me));
        let machine_before = cpu_times();
        let first = take(&mut out);
        let mut last = first.clone();
        loop {
            let now = Instant::now();
            if now >= p.end {
                break;
            }
            std::thread::sleep(every.min(p.end - now));
            if let Some(m) = take(&mut out) {
                last = Some(m);
            }
        }
        out.server_cpu = times_delta(&cpu_before.0, &pid.map(thread_times).unwrap_or_default());
        out.client_cpu = times_delta(&cpu_before.1, &thread_times(me));
        out.machine_busy = machine_before
            .iter()
            .zip(cpu_times())
            .map(|(a, b)| {
                let total = b.1.saturating_sub(a.1).max(1) as f64;
                (b.0.saturating_sub(a.0) as f64 / total * 1000.0).round() / 1000.0
            })
            .collect();
        if let (Some(a), Some(b)) = (&first, &last) {
            for c in COUNTERS {
                if let (Some(x), Some(y)) = (a.get(c), b.get(c)) {
                    out.deltas.insert(c, y - x);
                }
            }
        }
        all.push(out);
    }
    all
}

// ---------------------------------------------------------------------
// The summary.

fn loop_name(rate: Option<f64>) -> String {
    match rate {
        Some(r) => format!("closed loop paced at {r}/s in all"),
        None => "closed loop".into(),
    }
}

struct Threads {
    measuring: String,
    abusers: String,
}

fn ratio(p99: f64, base: f64) -> Option<f64> {
    (base > 0.0 && p99 > 0.0).then(|| (p99 / base * 100.0).round() / 100.0)
}

fn report(
    s: &Settings,
    phases: &[Phase],
    measured: &Measured,
    abused: &[PhaseAbuse],
    server: &[PhaseServer],
    threads: &Threads,
) {
    let baseline = phases
        .iter()
        .position(|p| p.abuse == Abuse::None)
        .map_or(0.0, |i| measured.phases[i].us(0.99));
    let secs = s.duration.as_secs_f64();
    let mut h = format!(
        "rocketns-load abuse: addr={} phases of {} s, {} s unmeasured after each, {} s warm-up\n\
         measuring client: {}\nabusers: {}\n",
        s.addr_text,
        s.duration.as_secs(),
        s.gap.as_secs(),
        s.warmup.as_secs(),
        threads.measuring,
        threads.abusers
    );
    if s.metrics.is_some() || s.server_pid.is_some() {
        h.push_str(&format!(
            "server samples: thread abuse-sampler every {} ms\n",
            s.sample_every.as_millis()
        ));
    }
    h.push_str(
        "\n| # | phase | lookups | lookups/s | p50 µs | p99 µs | p99.9 µs | max µs | p99 / baseline | errors | client lag p99 µs |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (i, p) in phases.iter().enumerate() {
        let st = &measured.phases[i];
        let r = ratio(st.us(0.99), baseline).map_or("-".to_string(), |r| format!("{r:.2}x"));
        h.push_str(&format!(
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {r} | {} | {} |\n",
            i + 1,
            p.abuse.name(),
            st.ok,
            st.ok as f64 / secs,
            st.us(0.50),
            st.us(0.99),
            st.us(0.999),
            st.max_us(),
            st.errors_total(),
            measured.lag[i].us(0.99)
        ));
    }
    for (i, p) in phases.iter().enumerate() {
        h.push_str(&format!("\n{} {}:\n", i + 1, p.abuse.name()));
        for (k, v) in &measured.phases[i].errors {
            h.push_str(&format!("  measuring client error {k}: {v}\n"));
        }
        let a = &abused[i];
        if !a.counts.is_empty() {
            let shown: Vec<String> = a.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
            h.push_str(&format!("  abusers: {}\n", shown.join(" ")));
        }
        for (k, st) in &a.large {
            h.push_str(&format!(
                "  {k}: {} answered as expected, round trip p50 {:.0} ms, max {:.0} ms\n",
                st.ok,
                st.us(0.5) / 1000.0,
                st.max_us() / 1000.0
            ));
        }
        let sv = &server[i];
        for (who, cpu) in [("server", &sv.server_cpu), ("client", &sv.client_cpu)] {
            let shown: Vec<String> = cpu
                .iter()
                .filter(|(_, v)| v.0 / secs >= 0.005)
                .map(|(k, v)| {
                    format!(
                        "{k} {:.0}% / {:.1}%",
                        v.0 / secs * 100.0,
                        v.1 / secs * 100.0
                    )
                })
                .collect();
            if !shown.is_empty() {
                h.push_str(&format!(
                    "  {who} threads, on a CPU / waiting for one: {}\n",
                    shown.join(", ")
                ));
            }
        }
        if !sv.machine_busy.is_empty() {
            let busy: Vec<String> = sv
                .machine_busy
                .iter()
                .enumerate()
                .map(|(c, b)| format!("CPU {c} {:.0}%", b * 100.0))
                .collect();
            h.push_str(&format!(
                "  machine CPU busy (any process, interrupts; tick-sampled): {}\n",
                busy.join(", ")
            ));
        }
        let lag = &measured.lag[i];
        h.push_str(&format!(
            "  measuring thread's 1 ms timer woke late by: p50 {} µs, p99 {} µs, max {} µs\n",
            lag.us(0.5),
            lag.us(0.99),
            lag.max_us()
        ));
        let reg = &measured.registrations[i];
        h.push_str(&format!(
            "  the run's broker re-registering each second: {} answered, p50 {} µs, max {} µs\n",
            reg.ok,
            reg.us(0.5),
            reg.max_us()
        ));
        if !sv.deltas.is_empty() || sv.peak_rss_mb.is_some() {
            let mut parts: Vec<String> = sv
                .deltas
                .iter()
                .map(|(k, v)| format!("{}+{v}", k.trim_start_matches("rocketns_")))
                .collect();
            parts.extend(
                sv.peaks
                    .iter()
                    .map(|(k, v)| format!("peak {}={v}", k.trim_start_matches("rocketns_"))),
            );
            if let Some(mb) = sv.peak_rss_mb {
                parts.push(format!("peak sampled RSS={mb} MB"));
            }
            if let Some(mb) = sv.peak_tcp_mem_mb {
                parts.push(format!("peak kernel TCP memory={mb} MB"));
            }
            if sv.failed_samples > 0 {
                parts.push(format!("failed samples={}", sv.failed_samples));
            }
            h.push_str(&format!("  server: {}\n", parts.join(" ")));
        }
    }
    if measured.between.errors_total() > 0 {
        h.push_str("\noutside the phases (warm-up, gaps):\n");
        for (k, v) in &measured.between.errors {
            h.push_str(&format!("  measuring client error {k}: {v}\n"));
        }
    }
    println!("{h}");
    if !s.json {
        return;
    }
    for (i, p) in phases.iter().enumerate() {
        println!(
            "{}",
            Value::Object(phase_json(
                s, i, p, measured, &abused[i], &server[i], threads, baseline
            ))
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn phase_json(
    s: &Settings,
    i: usize,
    p: &Phase,
    measured: &Measured,
    a: &PhaseAbuse,
    sv: &PhaseServer,
    threads: &Threads,
    baseline: f64,
) -> Map<String, Value> {
    let st = &measured.phases[i];
    let name = p.abuse.name();
    let mut o = Map::new();
    o.insert("mode".into(), "abuse".into());
    if let Some(l) = &s.label {
        o.insert("label".into(), l.clone().into());
    }
    let case = match &s.case {
        Some(c) => format!("{c}: {} {name}", i + 1),
        None => format!("abuse: {} {name}", i + 1),
    };
    o.insert("case".into(), case.into());
    o.insert("phase".into(), name.into());
    o.insert("phase_index".into(), (i + 1).into());
    o.insert("addr".into(), s.addr_text.clone().into());
    o.insert("connections".into(), s.connections.into());
    o.insert("in_flight".into(), 1.into());
    o.insert("loop".into(), loop_name(s.rate).into());
    o.insert("rate_per_s".into(), s.rate.map_or(Value::Null, Value::from));
    o.insert("topic".into(), s.topic.clone().into());
    o.insert("duration_s".into(), s.duration.as_secs().into());
    o.insert("gap_s".into(), s.gap.as_secs().into());
    o.insert("warmup_s".into(), s.warmup.as_secs().into());
    o.insert("timeout_ms".into(), (s.timeout.as_millis() as u64).into());
    o.insert("client_threads".into(), 2.into());
    o.insert("measuring_thread".into(), threads.measuring.clone().into());
    o.insert("abuser_thread".into(), threads.abusers.clone().into());
    st.to_json("", s.duration, &mut o);
    o.insert(
        "p99_vs_baseline".into(),
        ratio(st.us(0.99), baseline).map_or(Value::Null, Value::from),
    );
    let counts: Map<String, Value> = a
        .counts
        .iter()
        .map(|(k, v)| (k.clone(), (*v).into()))
        .collect();
    o.insert("abuse_counts".into(), Value::Object(counts));
    let large: Map<String, Value> = a
        .large
        .iter()
        .map(|(k, st)| {
            let mut e = Map::new();
            st.to_json("", s.duration, &mut e);
            (k.to_string(), Value::Object(e))
        })
        .collect();
    o.insert("large_round_trip".into(), Value::Object(large));
    let mut server = Map::new();
    for (k, v) in &sv.deltas {
        server.insert(format!("{k}_delta"), (*v).into());
    }
    for (k, v) in &sv.peaks {
        server.insert(format!("{k}_peak"), (*v).into());
    }
    if let Some(mb) = sv.peak_rss_mb {
        server.insert("rss_mb_peak_sampled".into(), mb.into());
    }
    if let Some(mb) = sv.peak_tcp_mem_mb {
        o.insert("kernel_tcp_mem_mb_peak_sampled".into(), mb.into());
    }
    server.insert("samples".into(), sv.samples.into());
    let r3 = |v: f64| (v * 1000.0).round() / 1000.0;
    let cpu = |m: &ThreadTimes| -> Value {
        let o: Map<String, Value> = m
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(vec![r3(v.0), r3(v.1)])))
            .collect();
        Value::Object(o)
    };
    server.insert("threads_run_wait_s".into(), cpu(&sv.server_cpu));
    o.insert("client_threads_run_wait_s".into(), cpu(&sv.client_cpu));
    o.insert(
        "machine_cpu_busy_share".into(),
        sv.machine_busy.clone().into(),
    );
    let reg = &measured.registrations[i];
    o.insert("broker_register_ok_total".into(), reg.ok.into());
    o.insert("broker_register_us_p50".into(), reg.us(0.5).into());
    o.insert("broker_register_us_max".into(), reg.max_us().into());
    let lag = &measured.lag[i];
    o.insert("client_timer_lag_us_p50".into(), lag.us(0.5).into());
    o.insert("client_timer_lag_us_p99".into(), lag.us(0.99).into());
    o.insert("client_timer_lag_us_max".into(), lag.max_us().into());
    o.insert("server".into(), Value::Object(server));
    o.insert("git_commit".into(), git_commit());
    o
}
