//! A seeded random walk through the route state machine, checked after
//! every step against a deliberately naive model: plain maps, linear scans,
//! every route rebuilt from scratch. It also checks that the incrementally
//! built snapshot equals a full rebuild, that a step publishes exactly when
//! something visible changed, and the snapshot's invariants.

use rocketns::protocol::body::{DataVersion, RegisterBody, TopicConfig};
use rocketns::protocol::json::Dialect;
use rocketns::route::encode::{self, BrokerData, QueueDataOut, TopicRoute};
use rocketns::route::snapshot::Snapshot;
use rocketns::route::table::{
    BrokerGroup, Limits, QueueData, Registration, RouteSettings, RouteTable, Unregistration,
};
use std::collections::{BTreeMap, BTreeSet};

/// splitmix64: small, seedable, good enough to pick steps.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const CLUSTERS: &[&str] = &["c1", "c2"];
const NAMES: &[&str] = &["b1", "b2", "b3"];
const ADDRS: &[&str] = &["a1", "a2", "a3", "a4", "a5"];
const TOPICS: &[&str] = &["t1", "t2", "t3", "t4", "t5", "t6"];

struct Live {
    last_ms: u64,
    timeout_ms: u64,
    version: DataVersion,
    conn: u64,
    registered_ms: u64,
}

#[derive(Default)]
struct Model {
    groups: BTreeMap<String, BrokerGroup>,
    clusters: BTreeMap<String, BTreeSet<String>>,
    topics: BTreeMap<String, BTreeMap<String, QueueData>>,
    live: BTreeMap<(String, String), Live>,
}

impl Model {
    fn register(&mut self, r: &Registration, now: u64) {
        let key = (r.cluster.clone(), r.addr.clone());
        self.clusters
            .entry(r.cluster.clone())
            .or_default()
            .insert(r.name.clone());
        let mut first = !self.groups.contains_key(&r.name);
        let g = self
            .groups
            .entry(r.name.clone())
            .or_insert_with(|| BrokerGroup {
                cluster: r.cluster.clone(),
                addrs: BTreeMap::new(),
                zone: None,
                acting_master: false,
            });
        g.acting_master = r.acting_master.unwrap_or(false);
        g.zone = r.zone.clone();
        g.addrs.retain(|id, a| !(*a == r.addr && *id != r.id));
        if let Some(old) = g.addrs.get(&r.id).cloned() {
            let holder = self.live.get(&(r.cluster.clone(), old.clone()));
            let newer =
                holder.is_some_and(|h| h.version.state_version > r.body.data_version.state_version);
            if old != r.addr && newer {
                self.live.remove(&key);
                return;
            }
        }
        if !g.addrs.contains_key(&r.id) && r.body.topics.len() == 1 {
            return;
        }
        first |= g.addrs.insert(r.id, r.addr.clone()).is_none();
        let min = *g.addrs.keys().min().unwrap();
        let prime = r.acting_master.is_some() && r.id != 0 && r.id == min;
        let wipe = prime && g.acting_master;
        if r.id == 0 || prime {
            let changed_version =
                self.live.get(&key).map(|l| l.version) != Some(r.body.data_version);
            for config in r.body.topics.values() {
                let t = config.topic_name.clone().unwrap();
                let has = self.topics.get(&t).is_some_and(|q| q.contains_key(&r.name));
                if first || changed_version || !has {
                    let perm = if wipe { config.perm & !2 } else { config.perm };
                    let data = QueueData {
                        read_queue_nums: config.read_queue_nums,
                        write_queue_nums: config.write_queue_nums,
                        perm,
                        topic_sys_flag: config.topic_sys_flag,
                    };
                    self.topics
                        .entry(t)
                        .or_default()
                        .insert(r.name.clone(), data);
                }
            }
        }
        let live = Live {
            last_ms: now,
            timeout_ms: r.timeout_ms.unwrap_or(120_000),
            version: r.body.data_version,
            conn: r.conn,
            registered_ms: now,
        };
        self.live.insert(key, live);
    }

    fn unregister(&mut self, u: &Unregistration, stamp: u64) {
        let key = (u.cluster.clone(), u.addr.clone());
        if self.live.get(&key).is_some_and(|l| l.registered_ms > stamp) {
            return;
        }
        self.live.remove(&key);
        let Some(g) = self.groups.get_mut(&u.name) else {
            return;
        };
        let before = g.addrs.len();
        g.addrs.retain(|_, a| *a != u.addr);
        if g.addrs.len() == before {
            return;
        }
        if g.addrs.is_empty() {
            self.groups.remove(&u.name);
            if let Some(set) = self.clusters.get_mut(&u.cluster) {
                set.remove(&u.name);
                if set.is_empty() {
                    self.clusters.remove(&u.cluster);
                }
            }
            for q in self.topics.values_mut() {
                q.remove(&u.name);
            }
            self.topics.retain(|_, q| !q.is_empty());
        } else if g.acting_master && !g.addrs.contains_key(&0) {
            self.set_perm(&u.name, |p| p & !2);
        }
    }

    fn member(&self, cluster: &str, addr: &str) -> Option<Unregistration> {
        for (name, g) in &self.groups {
            if g.cluster != cluster {
                continue;
            }
            for (id, a) in &g.addrs {
                if a == addr {
                    let (cluster, addr, name) = (cluster.into(), addr.into(), name.clone());
                    return Some(Unregistration {
                        cluster,
                        addr,
                        name,
                        id: *id,
                    });
                }
            }
        }
        None
    }

    fn closed(&mut self, conn: u64, stamp: u64) {
        let keys: Vec<_> = self
            .live
            .iter()
            .filter(|(_, l)| l.conn == conn && l.registered_ms <= stamp)
            .map(|(k, _)| k.clone())
            .collect();
        for (c, a) in keys {
            if let Some(u) = self.member(&c, &a) {
                self.unregister(&u, stamp);
            }
        }
    }

    fn expire(&mut self, now: u64) {
        let keys: Vec<_> = self
            .live
            .iter()
            .filter(|(_, l)| l.last_ms + l.timeout_ms < now)
            .map(|(k, _)| k.clone())
            .collect();
        for (c, a) in keys {
            match self.member(&c, &a) {
                Some(u) => self.unregister(&u, now),
                None => {
                    self.live.remove(&(c, a));
                }
            }
        }
    }

    fn set_perm(&mut self, name: &str, f: impl Fn(i32) -> i32) {
        for q in self.topics.values_mut() {
            if let Some(d) = q.get_mut(name) {
                d.perm = f(d.perm);
            }
        }
    }

    fn route(&self, topic: &str) -> Option<TopicRoute> {
        let q = self.topics.get(topic)?;
        let broker_datas: Vec<BrokerData> = q
            .keys()
            .filter_map(|name| {
                let g = self.groups.get(name)?;
                Some(BrokerData {
                    broker_addrs: g.addrs.clone(),
                    broker_name: name.clone(),
                    cluster: g.cluster.clone(),
                    enable_acting_master: g.acting_master,
                    zone_name: g.zone.clone(),
                })
            })
            .collect();
        if broker_datas.is_empty() {
            return None;
        }
        let queue_datas = q
            .iter()
            .map(|(name, d)| QueueDataOut {
                broker_name: name.clone(),
                perm: d.perm,
                read_queue_nums: d.read_queue_nums,
                topic_sys_flag: d.topic_sys_flag,
                write_queue_nums: d.write_queue_nums,
            })
            .collect();
        Some(TopicRoute {
            broker_datas,
            filter_server_table: BTreeMap::new(),
            order_topic_conf: None,
            queue_datas,
            topic_queue_mapping_by_broker: None,
        })
    }

    /// Everything a client or admin can see, to tell whether a step changed it.
    fn visible(&self) -> String {
        let routes: Vec<_> = TOPICS.iter().map(|t| self.route(t)).collect();
        format!("{routes:?}{:?}{:?}", self.groups, self.clusters)
    }
}

fn registration(rng: &mut Rng) -> Registration {
    let chosen: Vec<&str> = TOPICS
        .iter()
        .copied()
        .filter(|_| rng.below(3) == 0)
        .collect();
    let topics = chosen
        .into_iter()
        .map(|t| {
            let q = 1 + rng.below(2) as i32;
            let config = TopicConfig {
                topic_name: Some(t.to_string()),
                read_queue_nums: q,
                write_queue_nums: q,
                perm: [6, 4, 7][rng.below(3) as usize],
                topic_sys_flag: rng.below(2) as i32,
            };
            (t.to_string(), config)
        })
        .collect();
    Registration {
        cluster: rng.pick(CLUSTERS).into(),
        addr: rng.pick(ADDRS).into(),
        name: rng.pick(NAMES).into(),
        id: rng.below(3) as i64,
        ha_addr: None,
        zone: None,
        timeout_ms: [None, Some(30_000)][rng.below(2) as usize],
        acting_master: [None, Some(false), Some(true)][rng.below(3) as usize],
        body: RegisterBody {
            data_version: DataVersion {
                counter: rng.below(3) as i64,
                state_version: rng.below(2) as i64,
                timestamp: 0,
            },
            topics,
            filter_servers: Some(vec![]),
            mappings: BTreeMap::new(),
        },
        conn: 1 + rng.below(4),
    }
}

fn unregistration(rng: &mut Rng) -> Unregistration {
    Unregistration {
        cluster: rng.pick(CLUSTERS).into(),
        addr: rng.pick(ADDRS).into(),
        name: rng.pick(NAMES).into(),
        id: rng.below(3) as i64,
    }
}

fn check(step: usize, table: &RouteTable, snapshot: &Snapshot, model: &Model) {
    let names: BTreeSet<&str> = snapshot.topics.names().collect();
    let want: BTreeSet<&str> = model.topics.keys().map(String::as_str).collect();
    assert_eq!(names, want, "step {step}: topic list");
    assert_eq!(
        table.topic_count(),
        model.topics.len(),
        "step {step}: table topics"
    );
    for t in TOPICS {
        let got = snapshot.topics.get(t);
        match model.route(t) {
            None => assert!(got.is_none(), "step {step}: {t} should not exist"),
            Some(route) => {
                let got = got.unwrap_or_else(|| panic!("step {step}: {t} missing"));
                let standard = encode::route_json(&route, Dialect::Standard);
                let legacy = encode::route_json(&route, Dialect::Legacy);
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                assert_eq!(
                    text(&got.standard),
                    text(&standard),
                    "step {step}: {t} standard"
                );
                assert_eq!(text(&got.legacy), text(&legacy), "step {step}: {t} legacy");
            }
        }
    }
    assert_eq!(
        snapshot.brokers.groups, model.groups,
        "step {step}: broker groups"
    );
    assert_eq!(
        snapshot.brokers.clusters, model.clusters,
        "step {step}: clusters"
    );
    // Invariants of the published view.
    let in_clusters: BTreeSet<&String> = snapshot.brokers.clusters.values().flatten().collect();
    for (topic, entry) in snapshot.topics.entries() {
        for b in entry.brokers.iter() {
            assert!(
                snapshot.brokers.groups.contains_key(&**b),
                "step {step}: {topic} names {b}"
            );
        }
    }
    for name in snapshot.brokers.groups.keys() {
        assert!(
            in_clusters.contains(name),
            "step {step}: {name} in no cluster"
        );
    }
}

fn walk(seed: u64, steps: usize) {
    let mut rng = Rng(seed);
    let mut table = RouteTable::new(Limits::default(), RouteSettings::default());
    let mut model = Model::default();
    let mut snapshot = Snapshot::default();
    let mut now = 1_000u64;
    for step in 0..steps {
        now += rng.below(20_000);
        let before = model.visible();
        match rng.below(10) {
            0..=3 => {
                let r = registration(&mut rng);
                model.register(&r, now);
                table.register(r, now);
            }
            4 => {
                let u = unregistration(&mut rng);
                // Sometimes stale: received before the latest registration.
                let stamp = now - rng.below(2) * 30_000;
                model.unregister(&u, stamp);
                table.unregister(&u, stamp);
            }
            5 => {
                let conn = 1 + rng.below(4);
                model.closed(conn, now);
                for u in table.closed(conn, now) {
                    table.unregister(&u, now);
                }
            }
            6 => {
                now += rng.below(120_000);
                model.expire(now);
                for u in table.expired(now) {
                    table.unregister(&u, now);
                }
            }
            7 => {
                let name = rng.pick(NAMES);
                if rng.below(2) == 0 {
                    model.set_perm(name, |p| p & !2);
                    table.wipe_write_perm(name);
                } else {
                    model.set_perm(name, |_| 6);
                    table.add_write_perm(name);
                }
            }
            8 => {
                let (c, a) = (rng.pick(CLUSTERS), rng.pick(ADDRS));
                if let Some(l) = model.live.get_mut(&(c.to_string(), a.to_string())) {
                    l.last_ms = now;
                }
                table.refresh(c, a, now);
            }
            _ => {
                let t = rng.pick(TOPICS);
                model.topics.remove(t);
                table.delete_topic(t, None);
            }
        }
        let changes = table.take_changes();
        let published = !changes.is_empty();
        if published {
            let next = snapshot.next(&table, &changes, |_| None);
            assert!(next.version > snapshot.version);
            snapshot = next;
        }
        let changed = model.visible() != before;
        assert_eq!(
            changed, published,
            "step {step} (seed {seed}): published iff visible change"
        );
        check(step, &table, &snapshot, &model);
    }
}

#[test]
fn random_walks_match_the_naive_model() {
    for seed in [1, 2, 3, 42, 2026] {
        walk(seed, 2_000);
    }
}
