//! Brokers: each on its own connection, registering its topics once and
//! then every period, with the chosen churn.

use crate::stats::Stats;
use crate::wire;
use crate::Window;
use bytes::BytesMut;
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use glommio::timer::sleep;
use glommio::{spawn_local, Task};
use rocketns::protocol::body::{DataVersion, TopicConfig};
use rocketns::protocol::client;
use rocketns::protocol::client::encode_register_json;
use rocketns::protocol::codes::{request as req, response as resp};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Brokers registering at once in the first phase.
const FIRST_AT_ONCE: u64 = 64;
/// Queue counts a topic flips between under `--churn topics`.
const QUEUES: i32 = 8;
const QUEUES_FLIPPED: i32 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Churn {
    /// The same data version every time.
    None,
    /// counter + 1 every time, same topics.
    Version,
    /// counter + 1 and one topic's queue count flips.
    Topics,
}

impl Churn {
    pub fn name(self) -> &'static str {
        match self {
            Churn::None => "none",
            Churn::Version => "version",
            Churn::Topics => "topics",
        }
    }
}

pub struct RegisterCtx {
    pub addr: SocketAddr,
    pub timeout: Duration,
    pub brokers: u64,
    pub per_broker: u64,
    pub period: Duration,
    pub churn: Churn,
    /// DataVersion timestamp, the run's start in ms since the epoch.
    pub timestamp_ms: i64,
    pub stats: RefCell<Stats>,
    pub first: RefCell<Stats>,
}

pub struct Broker {
    pub b: u64,
    topics: Vec<(String, TopicConfig)>,
    counter: i64,
    flips: u64,
    opaque: i32,
    stream: Option<TcpStream>,
    buf: BytesMut,
}

impl Broker {
    pub fn new(b: u64, per_broker: u64) -> Broker {
        let topics = (0..per_broker)
            .map(|i| {
                let config = TopicConfig {
                    topic_name: None,
                    read_queue_nums: QUEUES,
                    write_queue_nums: QUEUES,
                    perm: 6,
                    topic_sys_flag: 0,
                };
                (format!("bench-topic-{b}-{i}"), config)
            })
            .collect();
        Broker {
            b,
            topics,
            counter: 1,
            flips: 0,
            opaque: 0,
            stream: None,
            buf: BytesMut::new(),
        }
    }

    /// Applies one step of churn (not before the first registration).
    fn churn(&mut self, churn: Churn) {
        match churn {
            Churn::None => {}
            Churn::Version => self.counter += 1,
            Churn::Topics => {
                self.counter += 1;
                if !self.topics.is_empty() {
                    let at = (self.flips % self.topics.len() as u64) as usize;
                    let c = &mut self.topics[at].1;
                    let q = if c.read_queue_nums == QUEUES {
                        QUEUES_FLIPPED
                    } else {
                        QUEUES
                    };
                    c.read_queue_nums = q;
                    c.write_queue_nums = q;
                }
                self.flips += 1;
            }
        }
    }

    /// The whole REGISTER_BROKER frame for the current state.
    pub fn frame(&mut self, timestamp_ms: i64) -> Vec<u8> {
        let dv = DataVersion {
            counter: self.counter,
            state_version: 0,
            timestamp: timestamp_ms,
        };
        let topics: Vec<(&str, TopicConfig)> = self
            .topics
            .iter()
            .map(|(n, c)| (n.as_str(), c.clone()))
            .collect();
        let body = encode_register_json(&dv, &topics, &[]);
        let crc = (crc32fast::hash(&body) & 0x7FFF_FFFF).to_string();
        let addr = format!("127.0.0.1:{}", 20000 + self.b);
        let ha = format!("127.0.0.1:{}", 30000 + self.b);
        let name = format!("bench-broker-{}", self.b);
        self.opaque = self.opaque.wrapping_add(1).max(1);
        client::request(
            req::REGISTER_BROKER,
            self.opaque,
            0,
            &[
                ("brokerAddr", addr.as_str()),
                ("brokerId", "0"),
                ("brokerName", name.as_str()),
                ("bodyCrc32", crc.as_str()),
                ("clusterName", "BenchCluster"),
                ("compressed", "false"),
                ("enableActingMaster", "false"),
                ("haServerAddr", ha.as_str()),
            ],
            &body,
        )
    }

    async fn ensure_connected(&mut self, ctx: &RegisterCtx) -> Result<(), String> {
        if self.stream.is_none() {
            let s = wire::connect(ctx.addr, ctx.timeout).await?;
            let _ = s.set_read_timeout(Some(ctx.timeout));
            self.buf.clear();
            self.stream = Some(s);
        }
        Ok(())
    }

    /// Sends one registration and waits for its verified reply. A failure
    /// of the connection drops it; the next registration opens another.
    async fn register(&mut self, ctx: &RegisterCtx) -> Result<(), String> {
        self.ensure_connected(ctx).await?;
        let bytes = self.frame(ctx.timestamp_ms);
        let result = self.exchange(&bytes).await;
        if let Err((_, fatal)) = &result {
            if *fatal {
                self.stream = None;
            }
        }
        result.map_err(|(kind, _)| kind)
    }

    /// `Err((kind, connection unusable))`.
    async fn exchange(&mut self, bytes: &[u8]) -> Result<(), (String, bool)> {
        let s = self.stream.as_mut().expect("connected");
        if let Err(e) = s.write_all(bytes).await {
            return Err((wire::io_kind("write", &e), true));
        }
        loop {
            while let Some(f) = wire::next_frame(&mut self.buf).map_err(|k| (k, true))? {
                if !f.header.is_response() {
                    continue; // a request from the server (e.g. 905), not our reply
                }
                if f.header.opaque != self.opaque {
                    return Err(("unknown_opaque".into(), true));
                }
                return match f.header.code {
                    resp::SUCCESS => Ok(()),
                    code => Err((format!("register_code_{code}"), false)),
                };
            }
            match wire::read_more(s, &mut self.buf).await {
                Ok(0) => return Err(("closed_by_server".into(), true)),
                Ok(_) => {}
                Err(e) => return Err((wire::io_kind("read", &e), true)),
            }
        }
    }
}

/// The size of the largest registration frame, to check the frame limit.
pub fn largest_frame(ctx: &RegisterCtx) -> usize {
    let mut b = Broker::new(ctx.brokers - 1, ctx.per_broker);
    b.frame(ctx.timestamp_ms).len()
}

/// Every broker registers once, a bounded number at a time; the latency of
/// each (connect included) goes to `ctx.first`.
pub async fn first_phase(ctx: &Rc<RegisterCtx>) -> Vec<Broker> {
    let gate = Rc::new(Semaphore::new(FIRST_AT_ONCE));
    let tasks: Vec<Task<Broker>> = (0..ctx.brokers)
        .map(|b| {
            let (ctx, gate) = (ctx.clone(), gate.clone());
            spawn_local(async move {
                let _permit = gate.acquire_permit(1).await;
                let mut broker = Broker::new(b, ctx.per_broker);
                let t = Instant::now();
                let result = broker.register(&ctx).await;
                let mut st = ctx.first.borrow_mut();
                match result {
                    Ok(()) => st.ok(t.elapsed()),
                    Err(kind) => st.error(&kind),
                }
                broker
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await);
    }
    out
}

/// Re-registration every period, broker b offset by b/B of a period; the
/// latency is taken from the tick's intended time. Each task hands its
/// broker back at the end of the window: the caller keeps the connection
/// open until the lookups are done, as closing it unregisters the broker.
pub fn start(ctx: &Rc<RegisterCtx>, brokers: Vec<Broker>, window: Window) -> Vec<Task<Broker>> {
    let n = brokers.len().max(1) as u32;
    brokers
        .into_iter()
        .map(|mut broker| {
            let ctx = ctx.clone();
            spawn_local(async move {
                let offset = ctx.period * broker.b as u32 / n;
                let mut k: u32 = 0;
                loop {
                    let due = window.start + offset + ctx.period * k;
                    if due >= window.until {
                        let now = Instant::now();
                        if window.until > now {
                            sleep(window.until - now).await;
                        }
                        return broker;
                    }
                    let now = Instant::now();
                    if due > now {
                        sleep(due - now).await;
                    }
                    broker.churn(ctx.churn);
                    let result = broker.register(&ctx).await;
                    let done = Instant::now();
                    let mut st = ctx.stats.borrow_mut();
                    match result {
                        Ok(()) if window.contains(due) => {
                            st.ok(done.saturating_duration_since(due))
                        }
                        Ok(()) => {}
                        Err(kind) => st.error(&kind),
                    }
                    k += 1;
                }
            })
        })
        .collect()
}
