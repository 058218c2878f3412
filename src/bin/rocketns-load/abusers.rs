//! The hostile clients of the `abuse` mode. They run as tasks on their own
//! executor thread (niced), never on the measuring client's, and follow
//! the phase schedule that thread made: each phase's abuse starts at the
//! phase's start and is cancelled, its connections closed, at its end.
//! Every failure is counted by kind; none ends the run.

use crate::abuse::{is_timeout, read_reply, Abuse, Phase, BROKER_NAME};
use crate::stats::Stats;
use crate::wire;
use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::timer::sleep;
use glommio::{spawn_local, Task};
use rocketns::protocol::body::{DataVersion, TopicConfig};
use rocketns::protocol::client;
use rocketns::protocol::codes::{request as req, response as resp};
use rocketns::protocol::frame::FRAME_SIZE_MAX;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Pause before a slow reader reconnects, or a flood worker after a failed
/// connect (the flood's pace is otherwise as fast as connects complete).
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);
const FLOOD_PAUSE: Duration = Duration::from_millis(5);
/// Lookups in the buffer a slow reader writes over and over.
const SLOW_READER_BATCH: i32 = 1000;
/// Topic of the 217 body: not the measured topic, so the measured route
/// never changes; its queue data names the run's own broker.
const TOPIC_217: &str = "abuse-217";

/// One request at the frame limit and the answer code it must get.
pub struct LargeFrame {
    /// Short name, used in error kinds and the output.
    pub key: &'static str,
    pub bytes: Vec<u8>,
    pub expect: i32,
}

/// What the abusers' thread needs; built on the main thread.
pub struct AbuseSettings {
    pub addr: SocketAddr,
    pub timeout: Duration,
    pub slow_readers: usize,
    pub rcvbuf: usize,
    pub sndbuf: usize,
    pub flood_conns: usize,
    pub flood_hold: Duration,
    pub large: Vec<LargeFrame>,
    /// What slow readers look up: the measured topic, whose route is real.
    pub topic: String,
}

/// What one phase's abuse did: counts by kind (events and errors alike),
/// and the round trip of each kind of large request answered as expected.
#[derive(Default)]
pub struct PhaseAbuse {
    pub counts: BTreeMap<String, u64>,
    pub large: BTreeMap<&'static str, Stats>,
}

#[derive(Default)]
struct Tally(RefCell<PhaseAbuse>);

impl Tally {
    fn add(&self, kind: &str, n: u64) {
        let mut t = self.0.borrow_mut();
        match t.counts.get_mut(kind) {
            Some(c) => *c += n,
            None => {
                t.counts.insert(kind.to_string(), n);
            }
        }
    }

    fn count(&self, kind: &str) {
        self.add(kind, 1);
    }
}

/// The requests of the `large-frames` phase, each near the 16 MiB limit
/// and each expensive for a different decoder. Built once, before the
/// first phase, so building them takes no CPU from the measured phases.
pub fn large_frames(seed: u64) -> Result<Vec<LargeFrame>, String> {
    // PUT_KV_CONFIG with a 15 MiB value: the cost is the header's JSON.
    let value = "v".repeat(15 << 20);
    let put = client::request(
        req::PUT_KV_CONFIG,
        1,
        0,
        &[("namespace", "abuse"), ("key", "big"), ("value", &value)],
        b"",
    );
    drop(value);
    // A compressed REGISTER_BROKER of random topic names (zlib gains
    // little on them): about 24 MB inflated and decoded, then refused by
    // a low topicsMax. A broker group of its own, so the refusal touches
    // nothing the measuring client reads.
    let register = compressed_register(seed, 170_000)?;
    // REGISTER_TOPIC_IN_NAMESRV with 150,000 queue datas: a 15 MB body.
    let queue = format!(
        r#"{{"brokerName":"{BROKER_NAME}","perm":6,"readQueueNums":8,"topicSysFlag":0,"writeQueueNums":8}}"#
    );
    let route = format!("{{\"queueDatas\":[{}]}}", vec![queue; 150_000].join(","));
    let register_topic = client::request(
        req::REGISTER_TOPIC_IN_NAMESRV,
        3,
        0,
        &[("topic", TOPIC_217)],
        route.as_bytes(),
    );
    // UPDATE_NAMESRV_CONFIG with 300,000 unknown keys (ignored, as Java).
    let props: String = (0..300_000).map(|i| format!("abuse.k{i}=v\n")).collect();
    let update = client::request(req::UPDATE_NAMESRV_CONFIG, 4, 0, &[], props.as_bytes());
    let frames = vec![
        LargeFrame {
            key: "put_kv_config_15MiB",
            bytes: put,
            expect: resp::SUCCESS,
        },
        LargeFrame {
            key: "register_broker_compressed",
            bytes: register,
            expect: resp::SYSTEM_ERROR,
        },
        LargeFrame {
            key: "register_topic_217_15MB",
            bytes: register_topic,
            expect: resp::SUCCESS,
        },
        LargeFrame {
            key: "update_config_318_300k_keys",
            bytes: update,
            expect: resp::SUCCESS,
        },
    ];
    for f in &frames {
        if f.bytes.len() > FRAME_SIZE_MAX {
            return Err(format!(
                "{} is {} bytes, above the frame limit",
                f.key,
                f.bytes.len()
            ));
        }
    }
    Ok(frames)
}

/// The compressed registration of `count` random 120-character names;
/// fewer names if that does not fit the frame limit.
fn compressed_register(seed: u64, mut count: usize) -> Result<Vec<u8>, String> {
    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for _ in 0..4 {
        let mut rng = wire::Rng::new(seed ^ 0x5DEE_CE66_D1CE_4E5B);
        let names: Vec<String> = (0..count)
            .map(|_| {
                (0..120)
                    .map(|_| char::from(alphabet[rng.below(62) as usize]))
                    .collect()
            })
            .collect();
        let config = TopicConfig {
            topic_name: None,
            read_queue_nums: 8,
            write_queue_nums: 8,
            perm: 6,
            topic_sys_flag: 0,
        };
        let topics: Vec<(&str, TopicConfig)> =
            names.iter().map(|n| (n.as_str(), config.clone())).collect();
        let dv = DataVersion {
            counter: 1,
            state_version: 0,
            timestamp: 1_700_000_000_000,
        };
        let body = client::encode_register_compressed(&dv, &topics, &[], true);
        let crc = (crc32fast::hash(&body) & 0x7FFF_FFFF).to_string();
        let frame = client::request(
            req::REGISTER_BROKER,
            2,
            0,
            &[
                ("brokerAddr", "127.0.0.1:29911"),
                ("brokerId", "0"),
                ("brokerName", "abuse-large-broker"),
                ("bodyCrc32", crc.as_str()),
                ("clusterName", "AbuseLarge"),
                ("compressed", "true"),
                ("enableActingMaster", "false"),
                ("haServerAddr", "127.0.0.1:29912"),
            ],
            &body,
        );
        if frame.len() <= FRAME_SIZE_MAX {
            return Ok(frame);
        }
        // Shrink in proportion, with 1 % to spare.
        count = count * FRAME_SIZE_MAX / frame.len() * 99 / 100;
    }
    Err("the compressed registration does not fit the frame limit".into())
}

/// Runs each phase's abuse in its time; one `PhaseAbuse` per phase.
pub async fn run(phases: Vec<Phase>, s: AbuseSettings) -> Vec<PhaseAbuse> {
    let s = Rc::new(s);
    let lookups = Rc::new(slow_reader_batch(&s.topic));
    let mut out = Vec::with_capacity(phases.len());
    for p in &phases {
        sleep_until(p.start).await;
        let tally = Rc::new(Tally::default());
        let tasks: Vec<Task<()>> = match p.abuse {
            Abuse::None => Vec::new(),
            Abuse::SlowReaders => (0..s.slow_readers)
                .map(|_| spawn_local(slow_reader(s.clone(), tally.clone(), lookups.clone())))
                .collect(),
            Abuse::LargeFrames => vec![spawn_local(large(s.clone(), tally.clone(), p.end))],
            Abuse::Flood => (0..s.flood_conns)
                .map(|_| spawn_local(flood_worker(s.clone(), tally.clone())))
                .collect(),
        };
        sleep_until(p.end).await;
        // Dropping a task cancels it: its connection closes.
        drop(tasks);
        let mut done = std::mem::take(&mut *tally.0.borrow_mut());
        if let Some(bytes) = done.counts.remove("slow_reader_bytes_written") {
            let per = lookups.len() as u64 / SLOW_READER_BATCH as u64;
            done.counts
                .insert("slow_reader_lookups_written".into(), bytes / per);
        }
        out.push(done);
    }
    out
}

async fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        sleep(t - now).await;
    }
}

/// Lookups of `topic`, all of one length (opaques of 7 digits), so bytes
/// written divide into lookups.
fn slow_reader_batch(topic: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..SLOW_READER_BATCH {
        wire::lookup_request(&mut out, 1_000_000 + i, topic);
    }
    out
}

/// A connection whose receive buffer is `rcvbuf` (set before connecting,
/// so the window it advertises stays small) and whose send buffer is
/// `sndbuf` (so what it writes is close to what the server took, not
/// megabytes queued in this side's kernel).
fn connect_small(
    addr: SocketAddr,
    rcvbuf: usize,
    sndbuf: usize,
    timeout: Duration,
) -> Result<TcpStream, String> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)
        .map_err(|e| wire::io_kind("socket", &e))?;
    sock.set_recv_buffer_size(rcvbuf)
        .map_err(|e| wire::io_kind("rcvbuf", &e))?;
    sock.set_send_buffer_size(sndbuf)
        .map_err(|e| wire::io_kind("sndbuf", &e))?;
    sock.connect_timeout(&addr.into(), timeout)
        .map_err(|e| wire::io_kind("connect", &e))?;
    let _ = sock.set_nodelay(true);
    // SAFETY: a connected TCP socket whose descriptor we own and hand over.
    Ok(unsafe { TcpStream::from_raw_fd(sock.into_raw_fd()) })
}

/// Pipelines lookups as fast as the server takes them and never reads;
/// connects again if the server closes it. Runs until cancelled.
async fn slow_reader(s: Rc<AbuseSettings>, t: Rc<Tally>, lookups: Rc<Vec<u8>>) {
    loop {
        // A blocking connect (a local one takes microseconds): only this
        // thread waits, and it is not the measuring one.
        let mut stream = match connect_small(s.addr, s.rcvbuf, s.sndbuf, s.timeout) {
            Ok(st) => st,
            Err(kind) => {
                t.count(&format!("slow_reader_{kind}"));
                sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        t.count("slow_reader_connections");
        let mut pos = 0;
        loop {
            match stream.write(&lookups[pos..]).await {
                Ok(0) => {
                    t.count("slow_reader_write_zero");
                    break;
                }
                Ok(n) => {
                    t.add("slow_reader_bytes_written", n as u64);
                    pos = (pos + n) % lookups.len();
                }
                Err(e) => {
                    t.count(&wire::io_kind("slow_reader_write", &e));
                    break;
                }
            }
        }
        drop(stream);
        sleep(RECONNECT_PAUSE).await;
    }
}

/// Opens connections one after another as fast as they complete: one the
/// server refuses (over its cap) is closed by it at once; one it keeps is
/// closed by us after the hold time. Runs until cancelled.
async fn flood_worker(s: Rc<AbuseSettings>, t: Rc<Tally>) {
    let mut byte = [0u8; 64];
    loop {
        let mut stream = match wire::connect(s.addr, s.timeout).await {
            Ok(st) => st,
            Err(kind) => {
                t.count(&format!("flood_{kind}"));
                sleep(FLOOD_PAUSE).await;
                continue;
            }
        };
        t.count("flood_connections");
        let _ = stream.set_read_timeout(Some(s.flood_hold));
        match stream.read(&mut byte).await {
            Ok(0) => t.count("flood_closed_by_server"),
            Ok(_) => t.count("flood_unexpected_bytes"),
            Err(e) if is_timeout(&e) => t.count("flood_kept_then_closed"),
            Err(e) => t.count(&wire::io_kind("flood_read", &e)),
        }
    }
}

/// The large requests in turn, each on a new connection, each waiting for
/// its answer (or the phase's end).
async fn large(s: Rc<AbuseSettings>, t: Rc<Tally>, end: Instant) {
    let mut i = 0;
    while Instant::now() < end && !s.large.is_empty() {
        let f = &s.large[i % s.large.len()];
        i += 1;
        let started = Instant::now();
        t.count(&format!("{}_sent", f.key));
        match one_large(&s, f, end).await {
            Ok(code) if code == f.expect => {
                let mut tally = t.0.borrow_mut();
                tally.large.entry(f.key).or_default().ok(started.elapsed());
            }
            Ok(code) => t.count(&format!("{}_code_{code}", f.key)),
            Err(kind) => t.count(&format!("{}_{kind}", f.key)),
        }
    }
}

/// The answer code of one large request.
async fn one_large(s: &AbuseSettings, f: &LargeFrame, end: Instant) -> Result<i32, String> {
    let mut stream = wire::connect(s.addr, s.timeout).await?;
    let left = end.saturating_duration_since(Instant::now());
    let _ = stream.set_read_timeout(Some(left.max(Duration::from_millis(1))));
    stream
        .write_all(&f.bytes)
        .await
        .map_err(|e| wire::io_kind("write", &e))?;
    let mut buf = BytesMut::with_capacity(4096);
    let reply = read_reply(&mut stream, &mut buf).await?;
    Ok(reply.header.code)
}
