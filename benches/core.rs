//! Micro-benchmarks of the data plane (frame decode, route lookup) and the
//! control plane (snapshot publication) at 1k, 10k and 100k topics.
//!
//! `cargo bench --bench core`; figures are for comparison within one run.

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use rocketns::protocol::body::{DataVersion, RegisterBody, TopicConfig};
use rocketns::protocol::client;
use rocketns::protocol::frame::{self, FRAME_SIZE_MAX};
use rocketns::route::snapshot::Snapshot;
use rocketns::route::table::{Changes, Limits, Registration, RouteSettings, RouteTable};
use std::time::Duration;

const TOPICS_PER_BROKER: usize = 1_000;

fn registration(broker: usize, version: i64, queues: i32) -> Registration {
    let topics = (0..TOPICS_PER_BROKER)
        .map(|t| {
            let name = format!("topic-{broker}-{t}");
            let config = TopicConfig {
                topic_name: Some(name.clone()),
                read_queue_nums: queues,
                write_queue_nums: queues,
                ..TopicConfig::default()
            };
            (name, config)
        })
        .collect();
    Registration {
        cluster: "DefaultCluster".into(),
        addr: format!("10.0.{}.{}:10911", broker / 250, broker % 250),
        name: format!("broker-{broker}"),
        id: 0,
        ha_addr: None,
        zone: None,
        timeout_ms: None,
        acting_master: Some(false),
        body: RegisterBody {
            data_version: DataVersion {
                counter: version,
                ..DataVersion::default()
            },
            topics,
            filter_servers: Some(vec![]),
            mappings: Default::default(),
        },
        conn: broker as u64,
    }
}

/// A table and its snapshot with `topics` topics over `topics / 1000` brokers.
fn world(topics: usize) -> (RouteTable, Snapshot) {
    let mut table = RouteTable::new(Limits::default(), RouteSettings::default());
    for b in 0..topics / TOPICS_PER_BROKER {
        table.register(registration(b, 1, 8), 0);
    }
    let changes = table.take_changes();
    let snapshot = Snapshot::default().next(&table, &changes, |_| None);
    (table, snapshot)
}

fn sizes() -> [(usize, &'static str); 3] {
    [(1_000, "1k"), (10_000, "10k"), (100_000, "100k")]
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup");
    for (n, label) in sizes() {
        let (_, snapshot) = world(n);
        let names: Vec<String> = (0..1024)
            .map(|i| {
                format!(
                    "topic-{}-{}",
                    i % (n / TOPICS_PER_BROKER),
                    (i * 7) % TOPICS_PER_BROKER
                )
            })
            .collect();
        let mut i = 0;
        g.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| {
                i = (i + 1) % names.len();
                let entry = snapshot.topics.get(&names[i]).expect("present");
                black_box(frame::response(0, i as i32, None, None, &entry.standard))
            })
        });
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    let request = client::request(105, 1, 0, &[("topic", "topic-3-141")], b"");
    c.bench_function("decode/route_request", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&request[..]);
            black_box(frame::decode(&mut buf, FRAME_SIZE_MAX).unwrap().unwrap())
        })
    });
}

/// Publication after one topic changed: re-encode it, copy its shard.
fn publish(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish_one_topic");
    for (n, label) in sizes() {
        let (table, snapshot) = world(n);
        let mut changes = Changes::default();
        changes.topics.insert("topic-0-0".to_string());
        g.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| black_box(snapshot.next(&table, &changes, |_| None)))
        });
    }
    g.finish();
}

/// A broker re-registers its 1,000 topics with a new data version and one
/// topic changed; the table applies it and one snapshot is published.
fn register_and_publish(c: &mut Criterion) {
    let mut g = c.benchmark_group("register_changed_and_publish");
    for (n, label) in sizes() {
        let (mut table, snapshot) = world(n);
        let mut regs: Vec<Registration> = (0..2).map(|v| registration(0, v + 2, 8)).collect();
        let first = regs[1].body.topics.keys().next().unwrap().clone();
        regs[1].body.topics.get_mut(&first).unwrap().read_queue_nums = 4;
        let mut i = 0;
        g.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| {
                i += 1;
                table.register(regs[i % 2].clone(), 0);
                let changes: Changes = table.take_changes();
                black_box(snapshot.next(&table, &changes, |_| None))
            })
        });
    }
    g.finish();
}

/// Decoding a 10,000-topic REGISTER_BROKER body, as a 5.x broker sends it
/// (plain JSON) and as a 4.x broker with compressedRegister does (zlib).
fn decode_register_body(c: &mut Criterion) {
    use rocketns::protocol::body::decode_register;
    use rocketns::protocol::client::{encode_register_compressed, encode_register_json};
    use rocketns::protocol::codes::version::{V4_9_4, V5_0_0};
    let names: Vec<String> = (0..10_000).map(|t| format!("topic-0-{t}")).collect();
    let topics: Vec<(&str, TopicConfig)> = names
        .iter()
        .map(|n| {
            let config = TopicConfig {
                topic_name: Some(n.clone()),
                read_queue_nums: 8,
                write_queue_nums: 8,
                ..TopicConfig::default()
            };
            (n.as_str(), config)
        })
        .collect();
    let dv = DataVersion {
        counter: 1,
        state_version: 0,
        timestamp: 1_700_000_000_000,
    };
    let plain = encode_register_json(&dv, &topics, &[]);
    let zipped = encode_register_compressed(&dv, &topics, &[], false);
    let mut g = c.benchmark_group("decode_register_body_10k_topics");
    g.bench_function("json", |b| {
        b.iter(|| black_box(decode_register(Some(&plain), V5_0_0, false).unwrap()))
    });
    g.bench_function("compressed", |b| {
        b.iter(|| black_box(decode_register(Some(&zipped), V4_9_4, true).unwrap()))
    });
    g.finish();
}

/// An unchanged re-registration: liveness only, nothing to publish. The
/// decoded registration is made outside the timing (`iter_batched`).
fn reregister_unchanged(c: &mut Criterion) {
    let (mut table, _) = world(10_000);
    let reg = registration(0, 1, 8);
    c.bench_function("reregister_unchanged/1k_topics", |b| {
        b.iter_batched(
            || reg.clone(),
            |reg| {
                table.register(reg, 0);
                assert!(table.take_changes().is_empty());
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = lookup, decode, decode_register_body, publish, register_and_publish, reregister_unchanged
}
criterion_main!(benches);
