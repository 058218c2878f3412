//! Counters. Each shard writes only its own `ShardStats` (its own
//! allocation, aligned apart, relaxed atomics), so the lookup path touches
//! no shared cache line; a scrape sums them (`render`).

use crate::protocol::codes::request;
use crate::protocol::frame::FrameError;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Request codes counted by name; everything else is "other".
pub const CODES: [i32; 23] = [
    request::PUT_KV_CONFIG,
    request::GET_KV_CONFIG,
    request::DELETE_KV_CONFIG,
    request::REGISTER_BROKER,
    request::UNREGISTER_BROKER,
    request::GET_ROUTEINFO_BY_TOPIC,
    request::GET_BROKER_CLUSTER_INFO,
    request::WIPE_WRITE_PERM_OF_BROKER,
    request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER,
    request::DELETE_TOPIC_IN_NAMESRV,
    request::REGISTER_TOPIC_IN_NAMESRV,
    request::GET_KVLIST_BY_NAMESPACE,
    request::GET_TOPICS_BY_CLUSTER,
    request::GET_SYSTEM_TOPIC_LIST_FROM_NS,
    request::GET_UNIT_TOPIC_LIST,
    request::GET_HAS_UNIT_SUB_TOPIC_LIST,
    request::GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST,
    request::UPDATE_NAMESRV_CONFIG,
    request::GET_NAMESRV_CONFIG,
    request::QUERY_DATA_VERSION,
    request::ADD_WRITE_PERM_OF_BROKER,
    request::GET_BROKER_MEMBER_GROUP,
    request::BROKER_HEARTBEAT,
];
const CODE_SLOTS: usize = CODES.len() + 1;

pub const BROKEN_REASONS: [&str; 7] = [
    "negative_length",
    "too_long",
    "tls_client_hello",
    "bad_header_length",
    "bad_serialize_type",
    "bad_json_header",
    "bad_binary_header",
];

/// Upper bounds of the lookup latency buckets, in microseconds.
pub const LATENCY_BUCKETS_US: [u64; 13] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000,
];

fn slot(code: i32) -> usize {
    CODES.iter().position(|&c| c == code).unwrap_or(CODES.len())
}

#[derive(Default, Debug)]
#[repr(align(128))]
pub struct ShardStats {
    pub connections: AtomicUsize,
    pub accepted: AtomicU64,
    pub refused_over_cap: AtomicU64,
    pub accept_errors: AtomicU64,
    pub busy: AtomicU64,
    pub idle_closed: AtomicU64,
    pub slow_reader_closed: AtomicU64,
    pub admin_refused: AtomicU64,
    /// Frames decoded off the shard's thread.
    pub offloaded: AtomicU64,
    /// Times a reader paused because the shard was over its budget.
    pub budget_paused: AtomicU64,
    /// Bytes held of the shard's budget: unsent replies, read buffers,
    /// frames being decoded off the shard.
    pub buffer_bytes: AtomicUsize,
    /// Writer-bound requests not answered yet.
    pub in_flight: AtomicUsize,
    requests: [AtomicU64; CODE_SLOTS],
    errors: [AtomicU64; CODE_SLOTS],
    broken: [AtomicU64; BROKEN_REASONS.len()],
    lookup_buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    lookup_ns_sum: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl ShardStats {
    /// One answered request: its code, and whether the reply was SUCCESS.
    pub fn request(&self, code: i32, success: bool) {
        bump(&self.requests[slot(code)]);
        if !success {
            bump(&self.errors[slot(code)]);
        }
    }

    pub fn broken_frame(&self, e: &FrameError) {
        let i = BROKEN_REASONS
            .iter()
            .position(|r| *r == e.reason())
            .unwrap_or(0);
        bump(&self.broken[i]);
    }

    pub fn broken_frames(&self) -> u64 {
        self.broken.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    pub fn lookup_latency(&self, ns: u64) {
        let us = ns / 1_000;
        let i = LATENCY_BUCKETS_US
            .iter()
            .position(|&b| us < b)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        bump(&self.lookup_buckets[i]);
        self.lookup_ns_sum.fetch_add(ns, Ordering::Relaxed);
    }
}

/// Whether a reply frame carries code 0: its JSON header starts
/// `{"code":0,`.
pub fn is_success(frame: &[u8]) -> bool {
    frame.get(8..18) == Some(b"{\"code\":0,".as_slice())
}

/// Writer-side figures for a scrape.
#[derive(Default, Debug)]
pub struct WriterStats {
    pub batches: AtomicU64,
    pub messages: AtomicU64,
    pub publications: AtomicU64,
}

/// What the process-wide part of a scrape shows.
pub struct Gauges {
    pub request_queue_depth: usize,
    pub control_queue_depth: usize,
    pub snapshot_version: u64,
    pub snapshot_age_ms: u64,
    pub broker_groups: usize,
    pub topics: usize,
    pub connections_max_per_shard: usize,
}

/// A counter every shard keeps, summed into one unlabelled family.
type ShardCounter = (&'static str, &'static str, fn(&ShardStats) -> &AtomicU64);

const SHARD_COUNTERS: [ShardCounter; 9] = [
    (
        "rocketns_connections_accepted_total",
        "Connections accepted.",
        |s| &s.accepted,
    ),
    (
        "rocketns_connections_refused_total",
        "Connections closed at once: shard at its cap.",
        |s| &s.refused_over_cap,
    ),
    (
        "rocketns_accept_errors_total",
        "Failed accepts (e.g. EMFILE), each followed by a back-off.",
        |s| &s.accept_errors,
    ),
    (
        "rocketns_idle_closed_total",
        "Connections closed after serverChannelMaxIdleTimeSeconds.",
        |s| &s.idle_closed,
    ),
    (
        "rocketns_slow_reader_closed_total",
        "Connections closed: replies unsent for serverChannelMaxIdleTimeSeconds.",
        |s| &s.slow_reader_closed,
    ),
    (
        "rocketns_offloaded_frames_total",
        "Large frames decoded off the shard's thread.",
        |s| &s.offloaded,
    ),
    (
        "rocketns_budget_paused_total",
        "Reader pauses: shard over bufferBytesMaxPerShard.",
        |s| &s.budget_paused,
    ),
    (
        "rocketns_system_busy_total",
        "Requests refused with SYSTEM_BUSY: writer queue full.",
        |s| &s.busy,
    ),
    (
        "rocketns_admin_refused_total",
        "Admin requests refused: source not in adminAllowedSources.",
        |s| &s.admin_refused,
    ),
];

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

fn sum(shards: &[&ShardStats], f: impl Fn(&ShardStats) -> u64) -> u64 {
    shards.iter().map(|s| f(s)).sum()
}

/// A scrape being written.
struct Scrape(String);

impl Scrape {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// A family of one sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        let _ = writeln!(self.0, "{name} {value}");
    }

    /// A family with one sample per value of `label`.
    fn labelled(
        &mut self,
        (name, kind, help): (&str, &str, &str),
        label: &str,
        samples: impl Iterator<Item = (String, u64)>,
    ) {
        self.family(name, kind, help);
        for (value, n) in samples {
            let _ = writeln!(self.0, "{name}{{{label}=\"{value}\"}} {n}");
        }
    }

    /// The lookup latency histogram, summed over shards.
    fn lookup_latency(&mut self, shards: &[&ShardStats]) {
        let name = "rocketns_lookup_latency_seconds";
        let help = "GET_ROUTEINFO_BY_TOPIC time from decoded request to queued reply.";
        self.family(name, "histogram", help);
        let mut cumulative = 0;
        let bounds = LATENCY_BUCKETS_US
            .iter()
            .map(|&b| (b as f64 / 1e6).to_string());
        for (i, le) in bounds.chain(["+Inf".to_string()]).enumerate() {
            cumulative += sum(shards, |s| load(&s.lookup_buckets[i]));
            let _ = writeln!(self.0, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let seconds = sum(shards, |s| load(&s.lookup_ns_sum)) as f64 / 1e9;
        let _ = writeln!(self.0, "{name}_sum {seconds}");
        let _ = writeln!(self.0, "{name}_count {cumulative}");
    }
}

/// Per request code (and `other`), a counter every shard keeps.
fn by_code<'a>(
    shards: &'a [&ShardStats],
    field: fn(&ShardStats) -> &[AtomicU64],
) -> impl Iterator<Item = (String, u64)> + 'a {
    let codes = CODES.iter().map(|c| c.to_string());
    codes
        .chain(["other".to_string()])
        .enumerate()
        .map(move |(i, code)| (code, sum(shards, |s| load(&field(s)[i]))))
}

/// Prometheus text format (version 0.0.4).
pub fn render(shards: &[&ShardStats], writer: &WriterStats, g: &Gauges) -> String {
    let mut s = Scrape(String::with_capacity(4096));
    let requests = "Requests answered, by request code.";
    s.labelled(
        ("rocketns_requests_total", "counter", requests),
        "code",
        by_code(shards, |s| &s.requests),
    );
    let errors = "Replies with a code other than SUCCESS, by request code.";
    s.labelled(
        ("rocketns_request_errors_total", "counter", errors),
        "code",
        by_code(shards, |s| &s.errors),
    );
    let broken = "Connections closed for a broken frame, by reason.";
    let reasons = BROKEN_REASONS.iter().enumerate();
    s.labelled(
        ("rocketns_broken_frames_total", "counter", broken),
        "reason",
        reasons.map(|(i, r)| (r.to_string(), sum(shards, |s| load(&s.broken[i])))),
    );
    let open = shards.iter().enumerate();
    s.labelled(
        (
            "rocketns_connections",
            "gauge",
            "Open connections, by shard.",
        ),
        "shard",
        open.map(|(i, s)| (i.to_string(), s.connections.load(Ordering::Relaxed) as u64)),
    );
    let held = shards.iter().enumerate();
    let help =
        "Bytes held of bufferBytesMaxPerShard: unsent replies, read buffers, offloaded frames.";
    s.labelled(
        ("rocketns_buffer_bytes", "gauge", help),
        "shard",
        held.map(|(i, s)| (i.to_string(), s.buffer_bytes.load(Ordering::Relaxed) as u64)),
    );
    for (name, help, field) in SHARD_COUNTERS {
        s.single(name, "counter", help, sum(shards, |s| load(field(s))));
    }
    s.lookup_latency(shards);
    let writer_counters = [
        (
            "rocketns_writer_batches_total",
            "Batches the writer applied.",
            &writer.batches,
        ),
        (
            "rocketns_writer_messages_total",
            "Messages the writer applied (messages / batches = mean batch size).",
            &writer.messages,
        ),
        (
            "rocketns_snapshot_publications_total",
            "Snapshots published.",
            &writer.publications,
        ),
    ];
    for (name, help, n) in writer_counters {
        s.single(name, "counter", help, load(n));
    }
    let age = g.snapshot_age_ms as f64 / 1e3;
    let age_help = "Time since the snapshot was published.";
    s.single("rocketns_snapshot_age_seconds", "gauge", age_help, age);
    let gauges: [(&str, &str, u64); 6] = [
        (
            "rocketns_writer_queue_depth",
            "Requests waiting for the writer.",
            g.request_queue_depth as u64,
        ),
        (
            "rocketns_writer_control_queue_depth",
            "Unregistrations and closes waiting for the writer.",
            g.control_queue_depth as u64,
        ),
        (
            "rocketns_snapshot_version",
            "Version of the published snapshot.",
            g.snapshot_version,
        ),
        (
            "rocketns_broker_groups",
            "Broker groups (broker names) registered.",
            g.broker_groups as u64,
        ),
        ("rocketns_topics", "Topics with a route.", g.topics as u64),
        (
            "rocketns_connections_max_per_shard",
            "Connection cap of each shard (connectionsMaxPerShard, or derived from RLIMIT_NOFILE).",
            g.connections_max_per_shard as u64,
        ),
    ];
    for (name, help, n) in gauges {
        s.single(name, "gauge", help, n);
    }
    s.0
}
