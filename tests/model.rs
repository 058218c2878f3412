//! Seeded random walks through the route table, each step checked against a
//! naive model of what clients see.
//!
//! The model keeps only what a client can observe (each broker group as
//! GET_BROKER_CLUSTER_INFO shows it, each topic's queue data, the filter
//! servers and static-topic mappings brokers reported) plus the liveness
//! records that decide when a broker goes away. Each operation is written
//! from the rules of `namesrv-behaviour.md` and `namesrv-commands.md`; a
//! route is assembled from scratch at every check (§6, with the
//! acting-master rewrite) and encoded by hand, so nothing here reuses the
//! table's bookkeeping, its change tracking or its encoder.
//!
//! After every step:
//! * each topic's published bodies (both dialects) are byte-equal to the
//!   model's route, and the cluster info to the model's groups;
//! * the incrementally built snapshot equals one rebuilt from the table;
//! * a new snapshot was published exactly when the model says something a
//!   client can see changed (DECISIONS 2), and then its version grew by one;
//! * every topic the table marked for re-encoding has new bytes, unless
//!   the step flipped a switch every route depends on (DECISIONS 10);
//! * replies the table gives (register outcome, perm counts, 217, 322)
//!   match the model.
//!
//! A failing walk is cut at its failing step and then shrunk by dropping
//! runs of steps while it still fails the same check; the panic shows the
//! seed and the shrunk walk.
//!
//! The model follows the spec everywhere but in the one place the table
//! differs on purpose (its module doc): the expiry scan drops a liveness
//! entry whose address no group holds. The `spec_` tests at the end
//! reproduce, each in a few steps, the cases where the table once differed.

use rocketns::protocol::body::{DataVersion, RegisterBody, TopicConfig, TopicQueueMappingInfo};
use rocketns::route::snapshot::Snapshot;
use rocketns::route::table::{
    Changes, Limits, QueueData, RegisterOutcome, Registration, RouteSettings, RouteTable,
    Unregistration,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

const PERM_WRITE: i32 = 2;
const DEFAULT_TIMEOUT_MS: u64 = 120_000;
const SYNC_MEMBER_PREFIX: &str = "rmq_sys_SYNC_BROKER_MEMBER_";

const CLUSTERS: &[&str] = &["c1", "c2"];
const NAMES: &[&str] = &["b1", "b2", "b3"];
const ADDRS: &[&str] = &[
    "10.0.0.1:10911",
    "10.0.0.2:10911",
    "10.0.0.3:10911",
    "10.0.0.4:10911",
    "10.0.0.5:10911",
];
const TOPICS: &[&str] = &["t1", "t2", "t3", "t4", "rmq_sys_SYNC_BROKER_MEMBER_b1"];
const ZONES: &[Option<&str>] = &[None, Some("z1"), Some("z2")];
const FILTER_SERVERS: &[&str] = &["10.1.0.1:30000", "10.1.0.2:30000"];

// ---------------------------------------------------------------------------
// Randomness

/// splitmix64: seedable and small.
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

    /// True with probability `num / den`.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize].clone()
    }
}

// ---------------------------------------------------------------------------
// Steps

/// One thing that happens to the NameServer, as the writer hands it to the
/// table. Stamps are "now" unless `late_ms` says the event was received that
/// much earlier than it is applied.
#[derive(Clone, Debug)]
enum Step {
    Register(Registration),
    Unregister {
        u: Unregistration,
        late_ms: u64,
    },
    Close {
        conn: u64,
        late_ms: u64,
    },
    Heartbeat {
        cluster: String,
        addr: String,
    },
    QueryVersion {
        cluster: String,
        addr: String,
        given: Option<DataVersion>,
    },
    /// Time passes; then the expiry scan runs.
    Wait {
        ms: u64,
    },
    WipePerm(String),
    AddPerm(String),
    DeleteTopic {
        topic: String,
        cluster: Option<String>,
    },
    RegisterTopic {
        topic: String,
        entries: Vec<(String, QueueData)>,
    },
    /// UPDATE_NAMESRV_CONFIG flipping `supportActingMaster` (true) or
    /// `deleteTopicWithBrokerRegistration` (false).
    Toggle {
        acting_master: bool,
    },
}

#[derive(Clone, Debug)]
struct Timed {
    /// Milliseconds since the previous step.
    dt: u64,
    step: Step,
}

fn queue_text(q: &QueueData) -> String {
    format!(
        "r{}/w{}/p{}/f{}",
        q.read_queue_nums, q.write_queue_nums, q.perm, q.topic_sys_flag
    )
}

fn version_text(v: &DataVersion) -> String {
    format!("dv({},{},{})", v.counter, v.state_version, v.timestamp)
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Register(r) => {
                let topics: Vec<String> = r
                    .body
                    .topics
                    .iter()
                    .map(|(k, c)| {
                        format!(
                            "{k}:r{}/w{}/p{}/f{}",
                            c.read_queue_nums, c.write_queue_nums, c.perm, c.topic_sys_flag
                        )
                    })
                    .collect();
                let mappings: Vec<String> = r
                    .body
                    .mappings
                    .iter()
                    .map(|(t, m)| format!("{t}@{}#{}", m.bname.as_deref().unwrap_or("?"), m.epoch))
                    .collect();
                write!(
                    f,
                    "register {}/{} {} id {} {} acting={:?} zone={:?} timeout={:?} ha={:?} conn={} \
                     topics=[{}] filters={:?} mappings=[{}]",
                    r.cluster,
                    r.addr,
                    r.name,
                    r.id,
                    version_text(&r.body.data_version),
                    r.acting_master,
                    r.zone,
                    r.timeout_ms,
                    r.ha_addr,
                    r.conn,
                    topics.join(" "),
                    r.body.filter_servers,
                    mappings.join(" ")
                )
            }
            Step::Unregister { u, late_ms } => write!(
                f,
                "unregister {}/{} {} id {} (stamped {late_ms} ms early)",
                u.cluster, u.addr, u.name, u.id
            ),
            Step::Close { conn, late_ms } => {
                write!(f, "close conn {conn} (stamped {late_ms} ms early)")
            }
            Step::Heartbeat { cluster, addr } => write!(f, "heartbeat {cluster}/{addr}"),
            Step::QueryVersion {
                cluster,
                addr,
                given,
            } => write!(
                f,
                "query data version {cluster}/{addr} {:?}",
                given.as_ref().map(version_text)
            ),
            Step::Wait { ms } => write!(f, "wait {ms} ms, then expiry scan"),
            Step::WipePerm(name) => write!(f, "wipe write perm of {name}"),
            Step::AddPerm(name) => write!(f, "add write perm of {name}"),
            Step::DeleteTopic { topic, cluster } => {
                write!(f, "delete topic {topic} cluster={cluster:?}")
            }
            Step::RegisterTopic { topic, entries } => {
                let e: Vec<String> = entries
                    .iter()
                    .map(|(n, q)| format!("{n}:{}", queue_text(q)))
                    .collect();
                write!(f, "register topic {topic} [{}]", e.join(" "))
            }
            Step::Toggle {
                acting_master: true,
            } => write!(f, "318: flip supportActingMaster"),
            Step::Toggle {
                acting_master: false,
            } => {
                write!(f, "318: flip deleteTopicWithBrokerRegistration")
            }
        }
    }
}

/// What a walk starts with.
#[derive(Clone, Copy, Debug)]
struct Setup {
    limits: Limits,
    settings: RouteSettings,
}

// ---------------------------------------------------------------------------
// The model

#[derive(Clone, Debug, PartialEq, Eq)]
struct Group {
    cluster: String,
    addrs: BTreeMap<i64, String>,
    zone: Option<String>,
    acting: bool,
}

/// A broker process the NameServer considers alive, keyed by
/// (cluster, address).
#[derive(Clone, Debug)]
struct Proc {
    /// Receive stamp of its latest accepted registration (DECISIONS 13).
    registered_ms: u64,
    /// Last registration or heartbeat.
    seen_ms: u64,
    timeout_ms: u64,
    version: DataVersion,
    ha: Option<String>,
    conn: u64,
}

/// A route as GET_ROUTEINFO_BY_TOPIC answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Route {
    /// By broker name, with the acting-master rewrite applied.
    brokers: BTreeMap<String, Group>,
    filters: BTreeMap<String, Vec<String>>,
    queues: BTreeMap<String, QueueData>,
    mappings: Option<BTreeMap<String, TopicQueueMappingInfo>>,
}

/// Everything a client or an admin tool can read back.
#[derive(Clone, Debug, PartialEq, Eq)]
struct View {
    /// (supportActingMaster, deleteTopicWithBrokerRegistration): GET_NAMESRV_CONFIG.
    settings: (bool, bool),
    /// Every topic (GET_ALL_TOPIC_LIST) and its route, `None` for TOPIC_NOT_EXIST.
    topics: BTreeMap<String, Option<Route>>,
    groups: BTreeMap<String, Group>,
    clusters: BTreeMap<String, BTreeSet<String>>,
}

/// What the table should answer to a registration.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expect {
    Registered(Option<(String, Option<String>)>),
    Superseded,
    Refused,
    Limit,
}

/// How often the walks reached each interesting situation.
#[derive(Clone, Debug, Default)]
struct Coverage {
    registered: u64,
    unchanged_reregistration: u64,
    superseded: u64,
    refused: u64,
    group_limit: u64,
    topic_limit: u64,
    prime_slave_wipe: u64,
    deleted_with_registration: u64,
    fenced: u64,
    close_fenced: u64,
    closed: u64,
    expired: u64,
    /// An expired entry no group of its cluster holds, kept because a
    /// group of another cluster holds its address (as Java keeps it).
    expired_orphan_kept: u64,
    /// The same, dropped because no group holds its address at all.
    expired_orphan_dropped: u64,
    headless_wipe: u64,
    register_topic_partial: u64,
    register_topic_created: u64,
    register_topic_ignored: u64,
    empty_group: u64,
    acting_rewrite: u64,
    filter_servers_shown: u64,
    mappings_shown: u64,
    zone_shown: u64,
    sync_topic_headless: u64,
    settings_changed: u64,
}

impl Coverage {
    fn add(&mut self, o: &Coverage) {
        self.registered += o.registered;
        self.unchanged_reregistration += o.unchanged_reregistration;
        self.superseded += o.superseded;
        self.refused += o.refused;
        self.group_limit += o.group_limit;
        self.topic_limit += o.topic_limit;
        self.prime_slave_wipe += o.prime_slave_wipe;
        self.deleted_with_registration += o.deleted_with_registration;
        self.fenced += o.fenced;
        self.close_fenced += o.close_fenced;
        self.closed += o.closed;
        self.expired += o.expired;
        self.expired_orphan_kept += o.expired_orphan_kept;
        self.expired_orphan_dropped += o.expired_orphan_dropped;
        self.headless_wipe += o.headless_wipe;
        self.register_topic_partial += o.register_topic_partial;
        self.register_topic_created += o.register_topic_created;
        self.register_topic_ignored += o.register_topic_ignored;
        self.empty_group += o.empty_group;
        self.acting_rewrite += o.acting_rewrite;
        self.filter_servers_shown += o.filter_servers_shown;
        self.mappings_shown += o.mappings_shown;
        self.zone_shown += o.zone_shown;
        self.sync_topic_headless += o.sync_topic_headless;
        self.settings_changed += o.settings_changed;
    }

    /// Names of the situations never reached.
    fn missing(&self) -> Vec<&'static str> {
        let all = [
            ("registered", self.registered),
            ("unchanged re-registration", self.unchanged_reregistration),
            ("superseded", self.superseded),
            ("refused", self.refused),
            ("group limit", self.group_limit),
            ("topic limit", self.topic_limit),
            ("prime slave wipe", self.prime_slave_wipe),
            ("deleted with registration", self.deleted_with_registration),
            ("fenced", self.fenced),
            ("close fenced", self.close_fenced),
            ("closed", self.closed),
            ("expired", self.expired),
            ("expired orphan kept", self.expired_orphan_kept),
            ("expired orphan dropped", self.expired_orphan_dropped),
            ("headless wipe", self.headless_wipe),
            ("217 partial", self.register_topic_partial),
            ("217 created", self.register_topic_created),
            ("217 ignored", self.register_topic_ignored),
            ("empty group", self.empty_group),
            ("acting rewrite", self.acting_rewrite),
            ("filter servers shown", self.filter_servers_shown),
            ("mappings shown", self.mappings_shown),
            ("zone shown", self.zone_shown),
            ("sync topic headless", self.sync_topic_headless),
            ("settings changed", self.settings_changed),
        ];
        all.iter()
            .filter(|(_, n)| *n == 0)
            .map(|(k, _)| *k)
            .collect()
    }
}

struct Model {
    settings: RouteSettings,
    limits: Limits,
    groups: BTreeMap<String, Group>,
    clusters: BTreeMap<String, BTreeSet<String>>,
    procs: BTreeMap<(String, String), Proc>,
    filters: BTreeMap<(String, String), Vec<String>>,
    /// topic -> broker name -> queue data; a topic with none is no topic.
    queues: BTreeMap<String, BTreeMap<String, QueueData>>,
    /// topic -> bname -> mapping; never forgotten.
    mappings: BTreeMap<String, BTreeMap<String, TopicQueueMappingInfo>>,
    seen: Coverage,
}

fn topic_of(key: &str, config: &TopicConfig) -> String {
    config.topic_name.clone().unwrap_or_else(|| key.to_string())
}

impl Model {
    fn new(setup: &Setup) -> Model {
        Model {
            settings: setup.settings,
            limits: setup.limits,
            groups: BTreeMap::new(),
            clusters: BTreeMap::new(),
            procs: BTreeMap::new(),
            filters: BTreeMap::new(),
            queues: BTreeMap::new(),
            mappings: BTreeMap::new(),
            seen: Coverage::default(),
        }
    }

    // ----- REGISTER_BROKER -----

    fn register(&mut self, r: &Registration, now: u64) -> Expect {
        // The limits refuse a registration before it touches anything.
        if !self.groups.contains_key(&r.name) && self.groups.len() >= self.limits.broker_groups_max
        {
            self.seen.group_limit += 1;
            return Expect::Limit;
        }
        let new_topics: BTreeSet<String> = r
            .body
            .topics
            .iter()
            .map(|(k, c)| topic_of(k, c))
            .filter(|t| !self.queues.contains_key(t))
            .collect();
        if self.queues.len() + new_topics.len() > self.limits.topics_max {
            self.seen.topic_limit += 1;
            return Expect::Limit;
        }

        let key = (r.cluster.clone(), r.addr.clone());
        // The header alone: the name joins the cluster, the group exists
        // (keeping the cluster it was created in) and shows this zone and
        // flag, and the address leaves any other id of the group. These
        // stay even when the registration goes no further (§3 steps 1-5).
        self.clusters
            .entry(r.cluster.clone())
            .or_default()
            .insert(r.name.clone());
        let new_group = !self.groups.contains_key(&r.name);
        let group = self.groups.entry(r.name.clone()).or_insert(Group {
            cluster: r.cluster.clone(),
            addrs: BTreeMap::new(),
            zone: None,
            acting: false,
        });
        group.zone = r.zone.clone();
        group.acting = r.acting_master == Some(true);
        group.addrs.retain(|id, a| *a != r.addr || *id == r.id);

        // Another live process holding this id with a newer state wins.
        if let Some(holder) = group.addrs.get(&r.id).filter(|a| **a != r.addr) {
            let holder_key = (r.cluster.clone(), holder.clone());
            let newer = self
                .procs
                .get(&holder_key)
                .is_some_and(|p| p.version.state_version > r.body.data_version.state_version);
            if newer {
                self.procs.remove(&key);
                self.seen.superseded += 1;
                return Expect::Superseded;
            }
        }
        // A single topic from an id the group does not know yet.
        if !group.addrs.contains_key(&r.id) && r.body.topics.len() == 1 {
            self.seen.refused += 1;
            if group.addrs.is_empty() {
                self.seen.empty_group += 1;
            }
            return Expect::Refused;
        }
        let id_was_vacant = group.addrs.insert(r.id, r.addr.clone()).is_none();
        let lowest_id = *group.addrs.keys().next().expect("just inserted");
        let master_addr = group.addrs.get(&0).cloned();

        // Who speaks for the group's topics: the master, or a new-style
        // slave holding the lowest id (no master registered).
        let new_style = r.acting_master.is_some();
        let speaks = r.id == 0 || (new_style && r.id == lowest_id);
        if speaks {
            let previous = self.procs.get(&key).map(|p| p.version);
            let same_version = previous == Some(r.body.data_version);
            let fresh = new_group || id_was_vacant;
            let read_only = r.id != 0 && r.acting_master == Some(true);
            if read_only {
                self.seen.prime_slave_wipe += 1;
            }
            if self.settings.delete_topic_with_broker_registration && r.body.mappings.is_empty() {
                for (topic, by_name) in self.queues.iter_mut() {
                    if !r.body.topics.contains_key(topic) && by_name.remove(&r.name).is_some() {
                        self.seen.deleted_with_registration += 1;
                    }
                }
                self.queues.retain(|_, by_name| !by_name.is_empty());
            }
            for (k, c) in &r.body.topics {
                let topic = topic_of(k, c);
                let held = self
                    .queues
                    .get(&topic)
                    .is_some_and(|by_name| by_name.contains_key(&r.name));
                if fresh || !same_version || !held {
                    let perm = if read_only {
                        c.perm & !PERM_WRITE
                    } else {
                        c.perm
                    };
                    let data = QueueData {
                        read_queue_nums: c.read_queue_nums,
                        write_queue_nums: c.write_queue_nums,
                        perm,
                        topic_sys_flag: c.topic_sys_flag,
                    };
                    self.queues
                        .entry(topic)
                        .or_default()
                        .insert(r.name.clone(), data);
                }
            }
            if fresh || !same_version {
                for (topic, info) in &r.body.mappings {
                    let bname = info.bname.clone().unwrap_or_default();
                    self.mappings
                        .entry(topic.clone())
                        .or_default()
                        .insert(bname, info.clone());
                }
            }
        }

        self.procs.insert(
            key.clone(),
            Proc {
                registered_ms: now,
                seen_ms: now,
                timeout_ms: r.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
                version: r.body.data_version,
                ha: r.ha_addr.clone(),
                conn: r.conn,
            },
        );
        match &r.body.filter_servers {
            None => {}
            Some(list) if list.is_empty() => {
                self.filters.remove(&key);
            }
            Some(list) => {
                self.filters.insert(key, list.clone());
            }
        }
        self.seen.registered += 1;
        // A slave learns its live master (§3 step 13).
        let master = match master_addr {
            Some(m) if r.id != 0 => self
                .procs
                .get(&(r.cluster.clone(), m.clone()))
                .map(|p| (m, p.ha.clone())),
            _ => None,
        };
        Expect::Registered(master)
    }

    // ----- unregistration, liveness -----

    /// Applies an unregistration received at `stamp`.
    fn unregister(&mut self, u: &Unregistration, stamp: u64) {
        let key = (u.cluster.clone(), u.addr.clone());
        // DECISIONS 13: older than the registration it would undo.
        if self
            .procs
            .get(&key)
            .is_some_and(|p| p.registered_ms > stamp)
        {
            self.seen.fenced += 1;
            return;
        }
        self.procs.remove(&key);
        self.filters.remove(&key);
        let Some(group) = self.groups.get_mut(&u.name) else {
            return;
        };
        // Whether or not the address was in it, the group is "removed"
        // when no address is left and "reduced" otherwise (§4 step 2).
        group.addrs.retain(|_, a| *a != u.addr);
        if group.addrs.is_empty() {
            // The group is gone: from its cluster (as the request names
            // it), and from every topic; topics left empty are gone.
            self.groups.remove(&u.name);
            if let Some(names) = self.clusters.get_mut(&u.cluster) {
                names.remove(&u.name);
                if names.is_empty() {
                    self.clusters.remove(&u.cluster);
                }
            }
            for by_name in self.queues.values_mut() {
                by_name.remove(&u.name);
            }
            self.queues.retain(|_, by_name| !by_name.is_empty());
        } else if group.acting && !group.addrs.contains_key(&0) {
            self.seen.headless_wipe += 1;
            self.set_perm(&u.name, |p| p & !PERM_WRITE);
        }
    }

    /// The first group (by name) of `cluster` holding `addr`.
    fn member(&self, cluster: &str, addr: &str) -> Option<Unregistration> {
        self.groups.iter().find_map(|(name, g)| {
            if g.cluster != cluster {
                return None;
            }
            let (id, _) = g.addrs.iter().find(|(_, a)| *a == addr)?;
            Some(Unregistration {
                cluster: cluster.to_string(),
                addr: addr.to_string(),
                name: name.clone(),
                id: *id,
            })
        })
    }

    /// A connection closed at `stamp`: the processes registered on it no
    /// later than that go, all of them (DECISIONS 13; Java unregisters only
    /// the first one it finds, in hash order).
    fn close(&mut self, conn: u64, stamp: u64) {
        self.seen.close_fenced += self
            .procs
            .values()
            .filter(|p| p.conn == conn && p.registered_ms > stamp)
            .count() as u64;
        let gone: Vec<(String, String)> = self
            .procs
            .iter()
            .filter(|(_, p)| p.conn == conn && p.registered_ms <= stamp)
            .map(|(k, _)| k.clone())
            .collect();
        let found: Vec<Unregistration> =
            gone.iter().filter_map(|(c, a)| self.member(c, a)).collect();
        for u in found {
            self.seen.closed += 1;
            self.unregister(&u, stamp);
        }
    }

    /// The expiry scan at `now`.
    fn expire(&mut self, now: u64) {
        let dead: Vec<(String, String)> = self
            .procs
            .iter()
            .filter(|(_, p)| p.seen_ms + p.timeout_ms < now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut found = Vec::new();
        for (c, a) in dead {
            match self.member(&c, &a) {
                Some(u) => found.push(u),
                None => {
                    // No group of its cluster holds it: nothing to
                    // unregister. Java keeps the entry; the table drops
                    // it when no group of any cluster holds the address
                    // (its one deliberate difference).
                    let held = self
                        .groups
                        .values()
                        .any(|g| g.addrs.values().any(|x| *x == a));
                    if held {
                        self.seen.expired_orphan_kept += 1;
                    } else {
                        self.seen.expired_orphan_dropped += 1;
                        self.procs.remove(&(c, a));
                    }
                }
            }
        }
        for u in found {
            self.seen.expired += 1;
            self.unregister(&u, now);
        }
    }

    fn refresh(&mut self, cluster: &str, addr: &str, now: u64) {
        if let Some(p) = self.procs.get_mut(&(cluster.to_string(), addr.to_string())) {
            p.seen_ms = now;
        }
    }

    /// QUERY_DATA_VERSION: (changed, stored), refreshing liveness.
    fn query_version(
        &mut self,
        cluster: &str,
        addr: &str,
        given: Option<&DataVersion>,
        now: u64,
    ) -> (bool, Option<DataVersion>) {
        let stored = self
            .procs
            .get(&(cluster.to_string(), addr.to_string()))
            .map(|p| p.version);
        let changed = stored.is_none() || given.is_none() || stored.as_ref() != given;
        self.refresh(cluster, addr, now);
        (changed, stored)
    }

    // ----- admin -----

    /// Applies `f` to the perm of every queue data of `name`; counts topics.
    fn set_perm(&mut self, name: &str, f: impl Fn(i32) -> i32) -> usize {
        let mut count = 0;
        for by_name in self.queues.values_mut() {
            if let Some(q) = by_name.get_mut(name) {
                q.perm = f(q.perm);
                count += 1;
            }
        }
        count
    }

    fn delete_topic(&mut self, topic: &str, cluster: Option<&str>) {
        match cluster.filter(|c| !c.is_empty()) {
            Some(c) => {
                let names = self.clusters.get(c).cloned().unwrap_or_default();
                if let Some(by_name) = self.queues.get_mut(topic) {
                    by_name.retain(|name, _| !names.contains(name));
                    if by_name.is_empty() {
                        self.queues.remove(topic);
                    }
                }
            }
            None => {
                self.queues.remove(topic);
            }
        }
    }

    /// REGISTER_TOPIC_IN_NAMESRV (§A.12, DECISIONS 1): Ok, or Err when the
    /// topic limit refuses a new topic.
    fn register_topic(&mut self, topic: &str, entries: &[(String, QueueData)]) -> Result<(), ()> {
        let known = |m: &Model, name: &str| m.groups.contains_key(name);
        if !self.queues.contains_key(topic) {
            if entries.is_empty() || entries.iter().any(|(n, _)| !known(self, n)) {
                self.seen.register_topic_ignored += 1;
                return Ok(());
            }
            if self.queues.len() >= self.limits.topics_max {
                self.seen.topic_limit += 1;
                return Err(());
            }
            self.seen.register_topic_created += 1;
        }
        for (i, (name, data)) in entries.iter().enumerate() {
            if !known(self, name) {
                if i > 0 {
                    self.seen.register_topic_partial += 1;
                }
                break;
            }
            self.queues
                .entry(topic.to_string())
                .or_default()
                .insert(name.clone(), data.clone());
        }
        Ok(())
    }

    // ----- what clients see -----

    /// GET_ROUTEINFO_BY_TOPIC (§6), assembled from scratch.
    fn route(&self, topic: &str) -> Option<Route> {
        let queues = self.queues.get(topic)?;
        let mut brokers: BTreeMap<String, Group> = queues
            .keys()
            .filter_map(|name| Some((name.clone(), self.groups.get(name)?.clone())))
            .collect();
        if queues.is_empty() || brokers.is_empty() {
            return None;
        }
        // Each address shows the filter servers of (its group's cluster,
        // address); the list of a later group (by name) wins.
        let mut filters = BTreeMap::new();
        for g in brokers.values() {
            for addr in g.addrs.values() {
                if let Some(list) = self.filters.get(&(g.cluster.clone(), addr.clone())) {
                    filters.insert(addr.clone(), list.clone());
                }
            }
        }
        let headless = |g: &Group| !g.addrs.is_empty() && !g.addrs.contains_key(&0);
        if self.settings.support_acting_master
            && !topic.starts_with(SYNC_MEMBER_PREFIX)
            && brokers.values().any(headless)
        {
            for (name, g) in brokers.iter_mut() {
                let writable = queues[name].perm & PERM_WRITE != 0;
                if headless(g) && g.acting && !writable {
                    let (_, addr) = g.addrs.pop_first().expect("headless is not empty");
                    g.addrs.insert(0, addr);
                }
            }
        }
        Some(Route {
            brokers,
            filters,
            queues: queues.clone(),
            mappings: self.mappings.get(topic).cloned(),
        })
    }

    fn view(&self) -> View {
        View {
            settings: (
                self.settings.support_acting_master,
                self.settings.delete_topic_with_broker_registration,
            ),
            topics: self
                .queues
                .keys()
                .map(|t| (t.clone(), self.route(t)))
                .collect(),
            groups: self.groups.clone(),
            clusters: self.clusters.clone(),
        }
    }
}

impl View {
    fn empty() -> View {
        View {
            settings: (false, false),
            topics: BTreeMap::new(),
            groups: BTreeMap::new(),
            clusters: BTreeMap::new(),
        }
    }
}

/// Counts what a view shows that the walks should reach.
fn note_view(seen: &mut Coverage, model: &Model, view: &View) {
    for (topic, route) in &view.topics {
        let Some(route) = route else { continue };
        if !route.filters.is_empty() {
            seen.filter_servers_shown += 1;
        }
        if route.mappings.is_some() {
            seen.mappings_shown += 1;
        }
        if route.brokers.values().any(|g| g.zone.is_some()) {
            seen.zone_shown += 1;
        }
        let raw_headless = route.brokers.keys().any(|n| {
            let g = &model.groups[n];
            g.acting && !g.addrs.is_empty() && !g.addrs.contains_key(&0)
        });
        let shows_master = route
            .brokers
            .iter()
            .any(|(n, g)| g.addrs.get(&0) != model.groups[n].addrs.get(&0));
        if shows_master {
            seen.acting_rewrite += 1;
        }
        if raw_headless
            && topic.starts_with(SYNC_MEMBER_PREFIX)
            && model.settings.support_acting_master
        {
            seen.sync_topic_headless += 1;
        }
    }
}

// ---------------------------------------------------------------------------
// Naive JSON of what the model expects (ASCII names without '/': no escapes)

fn num_key(id: i64, standard: bool) -> String {
    if standard {
        format!("\"{id}\"")
    } else {
        id.to_string()
    }
}

fn long(v: i64, standard: bool) -> String {
    if standard && v.unsigned_abs() > 9_007_199_254_740_991 {
        format!("\"{v}\"")
    } else {
        v.to_string()
    }
}

fn quoted_list(items: &[String]) -> String {
    let q: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", q.join(","))
}

fn broker_json(name: &str, g: &Group, standard: bool) -> String {
    let addrs: Vec<String> = g
        .addrs
        .iter()
        .map(|(id, a)| format!("{}:\"{a}\"", num_key(*id, standard)))
        .collect();
    let zone = match &g.zone {
        Some(z) => format!(",\"zoneName\":\"{z}\""),
        None => String::new(),
    };
    format!(
        "{{\"brokerAddrs\":{{{}}},\"brokerName\":\"{name}\",\"cluster\":\"{}\",\"enableActingMaster\":{}{zone}}}",
        addrs.join(","),
        g.cluster,
        g.acting
    )
}

fn mapping_json(m: &TopicQueueMappingInfo, standard: bool) -> String {
    let mut members = Vec::new();
    if let Some(b) = &m.bname {
        members.push(format!("\"bname\":\"{b}\""));
    }
    if let Some(ids) = &m.curr_id_map {
        let e: Vec<String> = ids
            .iter()
            .map(|(k, v)| format!("{}:{v}", num_key(*k as i64, standard)))
            .collect();
        members.push(format!("\"currIdMap\":{{{}}}", e.join(",")));
    }
    members.push(format!("\"dirty\":{}", m.dirty));
    members.push(format!("\"epoch\":{}", long(m.epoch, standard)));
    if let Some(s) = &m.scope {
        members.push(format!("\"scope\":\"{s}\""));
    }
    if let Some(t) = &m.topic {
        members.push(format!("\"topic\":\"{t}\""));
    }
    members.push(format!("\"totalQueues\":{}", m.total_queues));
    format!("{{{}}}", members.join(","))
}

/// TopicRouteData as rocketns writes it: members alphabetical, maps and
/// lists in name order.
fn route_json(route: &Route, standard: bool) -> String {
    let brokers: Vec<String> = route
        .brokers
        .iter()
        .map(|(n, g)| broker_json(n, g, standard))
        .collect();
    let filters: Vec<String> = route
        .filters
        .iter()
        .map(|(a, l)| format!("\"{a}\":{}", quoted_list(l)))
        .collect();
    let queues: Vec<String> = route
        .queues
        .iter()
        .map(|(n, q)| {
            format!(
                "{{\"brokerName\":\"{n}\",\"perm\":{},\"readQueueNums\":{},\"topicSysFlag\":{},\"writeQueueNums\":{}}}",
                q.perm, q.read_queue_nums, q.topic_sys_flag, q.write_queue_nums
            )
        })
        .collect();
    let mappings = match &route.mappings {
        Some(m) => {
            let e: Vec<String> = m
                .iter()
                .map(|(b, info)| format!("\"{b}\":{}", mapping_json(info, standard)))
                .collect();
            format!(",\"topicQueueMappingByBroker\":{{{}}}", e.join(","))
        }
        None => String::new(),
    };
    format!(
        "{{\"brokerDatas\":[{}],\"filterServerTable\":{{{}}},\"queueDatas\":[{}]{mappings}}}",
        brokers.join(","),
        filters.join(","),
        queues.join(",")
    )
}

/// ClusterInfo, legacy dialect.
fn cluster_info_json(view: &View) -> String {
    let groups: Vec<String> = view
        .groups
        .iter()
        .map(|(n, g)| format!("\"{n}\":{}", broker_json(n, g, false)))
        .collect();
    let clusters: Vec<String> = view
        .clusters
        .iter()
        .map(|(c, names)| {
            let names: Vec<String> = names.iter().cloned().collect();
            format!("\"{c}\":{}", quoted_list(&names))
        })
        .collect();
    format!(
        "{{\"brokerAddrTable\":{{{}}},\"clusterAddrTable\":{{{}}}}}",
        groups.join(","),
        clusters.join(",")
    )
}

// ---------------------------------------------------------------------------
// Running a walk

#[derive(Clone, Debug)]
struct Failure {
    /// Index of the failing step.
    at: usize,
    /// Which check failed, stable across shrinking.
    what: String,
    detail: String,
}

fn fail<T>(at: usize, what: impl Into<String>, detail: impl Into<String>) -> Result<T, Failure> {
    Err(Failure {
        at,
        what: what.into(),
        detail: detail.into(),
    })
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Harness options, to show that checks can fail.
#[derive(Clone, Copy, Debug, Default)]
struct Harness {
    /// Publish after every step, as a broken writer would.
    force_publish: bool,
}

fn outcome_of(o: &RegisterOutcome) -> Expect {
    match o {
        RegisterOutcome::Registered { master } => Expect::Registered(master.clone()),
        RegisterOutcome::Superseded => Expect::Superseded,
        RegisterOutcome::Refused => Expect::Refused,
        RegisterOutcome::LimitReached(_) => Expect::Limit,
    }
}

/// The first difference between two views, for the report.
fn view_diff(before: &View, after: &View) -> String {
    if before.settings != after.settings {
        return format!("settings {:?} -> {:?}", before.settings, after.settings);
    }
    let topics: BTreeSet<&String> = before.topics.keys().chain(after.topics.keys()).collect();
    for t in topics {
        let (b, a) = (before.topics.get(t), after.topics.get(t));
        if b != a {
            return format!("topic {t}: {b:?} -> {a:?}");
        }
    }
    if before.groups != after.groups {
        return format!("groups {:?} -> {:?}", before.groups, after.groups);
    }
    if before.clusters != after.clusters {
        return format!("clusters {:?} -> {:?}", before.clusters, after.clusters);
    }
    "no client-visible difference".to_string()
}

/// Applies one step to the table and the model; compares their replies.
/// Returns whether the step changed the NameServer's config (which the
/// writer always publishes).
fn apply(
    at: usize,
    step: &Step,
    now: u64,
    table: &mut RouteTable,
    model: &mut Model,
) -> Result<bool, Failure> {
    match step {
        Step::Register(r) => {
            let want = model.register(r, now);
            let got = outcome_of(&table.register(r.clone(), now));
            if got != want {
                return fail(
                    at,
                    "register reply",
                    format!("table {got:?}, model {want:?}"),
                );
            }
        }
        Step::Unregister { u, late_ms } => {
            let stamp = now.saturating_sub(*late_ms);
            model.unregister(u, stamp);
            table.unregister(u, stamp);
        }
        Step::Close { conn, late_ms } => {
            let stamp = now.saturating_sub(*late_ms);
            model.close(*conn, stamp);
            for u in table.closed(*conn, stamp) {
                table.unregister(&u, stamp);
            }
        }
        Step::Heartbeat { cluster, addr } => {
            model.refresh(cluster, addr, now);
            table.refresh(cluster, addr, now);
        }
        Step::QueryVersion {
            cluster,
            addr,
            given,
        } => {
            let want = model.query_version(cluster, addr, given.as_ref(), now);
            let got = table.query_data_version(cluster, addr, given.as_ref(), now);
            if got != want {
                return fail(at, "322 reply", format!("table {got:?}, model {want:?}"));
            }
        }
        Step::Wait { .. } => {
            model.expire(now);
            for u in table.expired(now) {
                table.unregister(&u, now);
            }
        }
        Step::WipePerm(name) => {
            let want = model.set_perm(name, |p| p & !PERM_WRITE);
            let got = table.wipe_write_perm(name);
            if got != want {
                return fail(at, "205 count", format!("table {got}, model {want}"));
            }
        }
        Step::AddPerm(name) => {
            let want = model.set_perm(name, |_| 6);
            let got = table.add_write_perm(name);
            if got != want {
                return fail(at, "327 count", format!("table {got}, model {want}"));
            }
        }
        Step::DeleteTopic { topic, cluster } => {
            model.delete_topic(topic, cluster.as_deref());
            table.delete_topic(topic, cluster.as_deref());
        }
        Step::RegisterTopic { topic, entries } => {
            let want = model.register_topic(topic, entries);
            let got = table.register_topic(topic, entries.clone()).map_err(|_| ());
            if got != want {
                return fail(at, "217 reply", format!("table {got:?}, model {want:?}"));
            }
        }
        Step::Toggle { acting_master } => {
            let mut s = model.settings;
            if *acting_master {
                s.support_acting_master = !s.support_acting_master;
            } else {
                s.delete_topic_with_broker_registration = !s.delete_topic_with_broker_registration;
            }
            model.settings = s;
            table.set_settings(s);
            model.seen.settings_changed += 1;
            return Ok(true);
        }
    }
    Ok(false)
}

/// The published snapshot shows exactly the model's view.
fn check_snapshot(at: usize, snap: &Snapshot, view: &View) -> Result<(), Failure> {
    let names: BTreeSet<&str> = snap.topics.names().collect();
    let want: BTreeSet<&str> = view.topics.keys().map(String::as_str).collect();
    if names != want {
        return fail(
            at,
            "topic list",
            format!("snapshot {names:?}, model {want:?}"),
        );
    }
    for (topic, route) in &view.topics {
        let entry = snap.topics.get(topic).expect("names compared");
        let Some(route) = route else {
            return fail(
                at,
                format!("route of {topic}"),
                "the model has the topic but no route for it",
            );
        };
        for (standard, got) in [(true, &entry.standard), (false, &entry.legacy)] {
            let want = route_json(route, standard);
            if text(got) != want {
                let dialect = if standard { "standard" } else { "legacy" };
                return fail(
                    at,
                    format!("route of {topic}"),
                    format!(
                        "{dialect} body\n  snapshot {}\n  model    {want}",
                        text(got)
                    ),
                );
            }
        }
        let brokers: BTreeSet<&str> = entry.brokers.iter().map(|b| &**b).collect();
        let want_brokers: BTreeSet<&str> = route.queues.keys().map(String::as_str).collect();
        if brokers != want_brokers {
            return fail(
                at,
                format!("brokers of {topic}"),
                format!("snapshot {brokers:?}, model {want_brokers:?}"),
            );
        }
        if !route
            .queues
            .values()
            .any(|q| q.topic_sys_flag == entry.sys_flag)
        {
            return fail(
                at,
                format!("sys flag of {topic}"),
                format!("snapshot {}, model {:?}", entry.sys_flag, route.queues),
            );
        }
    }
    let want = cluster_info_json(view);
    if text(&snap.brokers.cluster_info) != want {
        return fail(
            at,
            "cluster info",
            format!(
                "\n  snapshot {}\n  model    {want}",
                text(&snap.brokers.cluster_info)
            ),
        );
    }
    let groups: BTreeMap<String, Group> = snap
        .brokers
        .groups
        .iter()
        .map(|(n, g)| {
            let g = Group {
                cluster: g.cluster.clone(),
                addrs: g.addrs.clone(),
                zone: g.zone.clone(),
                acting: g.acting_master,
            };
            (n.clone(), g)
        })
        .collect();
    if groups != view.groups || snap.brokers.clusters != view.clusters {
        return fail(
            at,
            "broker view",
            format!(
                "snapshot {groups:?} {:?}, model {:?} {:?}",
                snap.brokers.clusters, view.groups, view.clusters
            ),
        );
    }
    Ok(())
}

/// The incrementally built snapshot equals one built from scratch.
fn check_rebuild(at: usize, snap: &Snapshot, table: &RouteTable) -> Result<(), Failure> {
    let full = rebuilt(table);
    let names: BTreeSet<&str> = snap.topics.names().collect();
    let full_names: BTreeSet<&str> = full.topics.names().collect();
    if names != full_names {
        return fail(
            at,
            "rebuild: topic list",
            format!("incremental {names:?}, rebuilt {full_names:?}"),
        );
    }
    for (topic, entry) in full.topics.entries() {
        let inc = snap.topics.get(topic).expect("names compared");
        if inc.standard != entry.standard || inc.legacy != entry.legacy {
            return fail(
                at,
                format!("rebuild: route of {topic}"),
                format!(
                    "\n  incremental {}\n  rebuilt     {}",
                    text(&inc.standard),
                    text(&entry.standard)
                ),
            );
        }
        if inc.brokers != entry.brokers || inc.sys_flag != entry.sys_flag {
            return fail(
                at,
                format!("rebuild: entry of {topic}"),
                "brokers or sys flag",
            );
        }
    }
    if snap.brokers.cluster_info != full.brokers.cluster_info
        || snap.brokers.groups != full.brokers.groups
        || snap.brokers.clusters != full.brokers.clusters
    {
        return fail(
            at,
            "rebuild: cluster info",
            format!(
                "\n  incremental {}\n  rebuilt     {}",
                text(&snap.brokers.cluster_info),
                text(&full.brokers.cluster_info)
            ),
        );
    }
    Ok(())
}

fn rebuilt(table: &RouteTable) -> Snapshot {
    let all = Changes {
        topics: table.topic_names().cloned().collect(),
        brokers: true,
        topic_set: true,
    };
    Snapshot::default().next(table, &all, |_| None)
}

fn run(setup: &Setup, steps: &[Timed], harness: Harness) -> Result<Coverage, Failure> {
    let mut table = RouteTable::new(setup.limits, setup.settings);
    let mut model = Model::new(setup);
    let mut snap = Snapshot::default();
    let mut now = 1_000_000u64;
    let mut seen = Coverage::default();
    let mut after = model.view();
    for (at, timed) in steps.iter().enumerate() {
        now += timed.dt;
        if let Step::Wait { ms } = timed.step {
            now += ms;
        }
        let before = std::mem::replace(&mut after, View::empty());
        let config_changed = apply(at, &timed.step, now, &mut table, &mut model)?;

        // Publish as the writer does: when the table reports a change, or
        // the config changed.
        let version = snap.version;
        let changes = table.take_changes();
        if !changes.is_empty() || config_changed || harness.force_publish {
            let next = snap.next(&table, &changes, |_| None);
            // DECISIONS 10: a topic is re-encoded only when its bytes
            // change (a switch every route depends on re-encodes them all).
            if !config_changed {
                if let Some(topic) = changes.topics.iter().find(|t| {
                    let old = snap.topics.get(t).map(|e| (&e.standard, &e.legacy));
                    old == next.topics.get(t).map(|e| (&e.standard, &e.legacy))
                }) {
                    return fail(
                        at,
                        "re-encoded unchanged",
                        format!("topic {topic} marked, bytes unchanged"),
                    );
                }
            }
            snap = next;
        }
        after = model.view();
        let published = snap.version != version;
        let visible = after != before;
        if !visible && matches!(timed.step, Step::Register(_)) {
            seen.unchanged_reregistration += 1;
        }
        if published && snap.version != version + 1 {
            return fail(at, "version step", format!("{version} -> {}", snap.version));
        }

        if published != visible {
            return fail(
                at,
                "publication",
                format!(
                    "published={published} but client-visible change={visible} ({})",
                    view_diff(&before, &after)
                ),
            );
        }
        check_rebuild(at, &snap, &table)?;
        check_snapshot(at, &snap, &after)?;
        note_view(&mut seen, &model, &after);
    }
    seen.add(&model.seen);
    Ok(seen)
}

/// `run`, with a panic inside the table turned into a failure.
fn run_caught(setup: &Setup, steps: &[Timed], harness: Harness) -> Result<Coverage, Failure> {
    match catch_unwind(AssertUnwindSafe(|| run(setup, steps, harness))) {
        Ok(result) => result,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            // Which step panicked is unknown here: re-run prefixes.
            let at = (0..steps.len())
                .find(|n| {
                    catch_unwind(AssertUnwindSafe(|| run(setup, &steps[..=*n], harness))).is_err()
                })
                .unwrap_or(steps.len().saturating_sub(1));
            fail(at, "panic", msg)
        }
    }
}

/// Shortest failing prefix, then runs of steps (16, 8, 4, 2, then single
/// ones) dropped while the same check still fails. A dropped step's time is
/// given to the next one, so later steps keep their clock.
fn shrink(
    setup: &Setup,
    steps: &[Timed],
    harness: Harness,
    first: Failure,
) -> (Vec<Timed>, Failure) {
    let mut best: Vec<Timed> = steps[..=first.at].to_vec();
    let mut failure = first;
    for chunk in [16, 8, 4, 2, 1, 2, 1] {
        // The failing step itself stays; try the runs before it, last first.
        let mut end = best.len() - 1;
        while end > 0 {
            let start = end.saturating_sub(chunk);
            let mut candidate = best.clone();
            let dropped: u64 = candidate.drain(start..end).map(|t| t.dt).sum();
            candidate[start].dt += dropped;
            match run_caught(setup, &candidate, harness) {
                Err(f) if f.what == failure.what => {
                    candidate.truncate(f.at + 1);
                    end = start.min(candidate.len() - 1);
                    best = candidate;
                    failure = f;
                }
                _ => end = start,
            }
        }
    }
    (best, failure)
}

fn report(seed: u64, setup: &Setup, original: usize, steps: &[Timed], f: &Failure) -> String {
    let mut out = format!(
        "seed {seed} (MODEL_SEED={seed}): {} failed at step {original} of the walk; \
         shrunk to {} steps\n\
         setup: {:?}\n",
        f.what,
        steps.len(),
        setup
    );
    let mut now = 1_000_000u64;
    for (i, t) in steps.iter().enumerate() {
        now += t.dt;
        if let Step::Wait { ms } = t.step {
            now += ms;
        }
        out.push_str(&format!("  {i:>3} @{now}: {}\n", t.step));
    }
    out.push_str(&format!(
        "failure at step {}: {}: {}",
        f.at, f.what, f.detail
    ));
    out
}

// ---------------------------------------------------------------------------
// Generating walks

/// What one broker address currently believes it is.
#[derive(Clone)]
struct Profile {
    addr: String,
    cluster: String,
    name: String,
    id: i64,
    acting: Option<bool>,
    zone: Option<String>,
    timeout: Option<u64>,
    ha: Option<String>,
    version: DataVersion,
    topics: BTreeMap<String, TopicConfig>,
    mappings: BTreeMap<String, TopicQueueMappingInfo>,
    filters: Option<Vec<String>>,
    slot: usize,
}

struct Gen {
    rng: Rng,
    profiles: Vec<Profile>,
    /// Per connection slot, how many connections it has closed.
    conn_gen: Vec<u64>,
}

fn config(rng: &mut Rng, topic: &str) -> TopicConfig {
    let q = 1 + rng.below(4) as i32;
    TopicConfig {
        topic_name: Some(topic.to_string()),
        read_queue_nums: q,
        write_queue_nums: if rng.chance(1, 4) { q + 1 } else { q },
        perm: rng.pick(&[6, 6, 6, 4, 2, 7, 14]),
        topic_sys_flag: rng.pick(&[0, 0, 1, 2, 3]),
    }
}

fn queue_data(rng: &mut Rng) -> QueueData {
    let q = 1 + rng.below(4) as i32;
    QueueData {
        read_queue_nums: q,
        write_queue_nums: q,
        perm: rng.pick(&[6, 4, 7]),
        topic_sys_flag: rng.pick(&[0, 1, 2]),
    }
}

fn mapping(rng: &mut Rng, topic: &str, bname: &str) -> TopicQueueMappingInfo {
    let mut ids = BTreeMap::new();
    for logic in 0..rng.below(3) as i32 {
        ids.insert(logic, rng.below(8) as i32);
    }
    TopicQueueMappingInfo {
        bname: Some(bname.to_string()),
        curr_id_map: (!ids.is_empty() || rng.chance(1, 2)).then_some(ids),
        dirty: rng.chance(1, 3),
        epoch: rng.pick(&[0, 7, 1 << 60]),
        scope: rng.pick(&[Some("__global__".to_string()), None]),
        topic: Some(topic.to_string()),
        total_queues: rng.below(8) as i32,
    }
}

impl Gen {
    fn new(seed: u64) -> Gen {
        let mut rng = Rng(seed);
        let profiles = ADDRS
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                let mut p = Profile {
                    addr: addr.to_string(),
                    cluster: if rng.chance(3, 4) { "c1" } else { "c2" }.to_string(),
                    name: rng.pick(NAMES).to_string(),
                    id: rng.pick(&[0, 0, 1, 2]),
                    acting: rng.pick(&[None, Some(false), Some(true), Some(true)]),
                    zone: rng.pick(ZONES).map(str::to_string),
                    timeout: rng.pick(&[None, Some(10_000), Some(30_000)]),
                    ha: rng.chance(1, 2).then(|| format!("ha-{addr}")),
                    version: DataVersion {
                        counter: 1,
                        state_version: rng.below(2) as i64,
                        timestamp: 1_700_000_000_000 + i as i64,
                    },
                    topics: BTreeMap::new(),
                    mappings: BTreeMap::new(),
                    filters: Some(vec![]),
                    slot: i,
                };
                for t in TOPICS {
                    if rng.chance(1, 2) {
                        p.topics.insert(t.to_string(), config(&mut rng, t));
                    }
                }
                p
            })
            .collect();
        Gen {
            rng,
            profiles,
            conn_gen: vec![0; ADDRS.len()],
        }
    }

    fn conn(&self, slot: usize) -> u64 {
        (slot as u64 + 1) * 1000 + self.conn_gen[slot]
    }

    fn registration(&self, p: &Profile) -> Registration {
        Registration {
            cluster: p.cluster.clone(),
            addr: p.addr.clone(),
            name: p.name.clone(),
            id: p.id,
            ha_addr: p.ha.clone(),
            zone: p.zone.clone(),
            timeout_ms: p.timeout,
            acting_master: p.acting,
            body: RegisterBody {
                data_version: p.version,
                topics: p.topics.clone(),
                filter_servers: p.filters.clone(),
                mappings: p.mappings.clone(),
            },
            conn: self.conn(p.slot),
        }
    }

    /// The broker's topic configs changed: a new data version.
    fn change_topics(&mut self, i: usize) {
        let rng = &mut self.rng;
        let p = &mut self.profiles[i];
        p.version.counter += 1;
        p.version.timestamp += 1_000;
        let topic = rng.pick(TOPICS);
        match rng.below(4) {
            0 => {
                p.topics.remove(topic);
            }
            _ => {
                p.topics.insert(topic.to_string(), config(rng, topic));
            }
        }
        p.mappings.clear();
        if rng.chance(1, 5) {
            // A static topic: usually one the broker hosts, sometimes not.
            let topic = rng.pick(TOPICS);
            let bname = if rng.chance(4, 5) {
                p.name.clone()
            } else {
                rng.pick(NAMES).to_string()
            };
            p.mappings
                .insert(topic.to_string(), mapping(rng, topic, &bname));
        }
    }

    /// The broker restarted with another identity or header.
    fn change_header(&mut self, i: usize) {
        let rng = &mut self.rng;
        let p = &mut self.profiles[i];
        match rng.below(9) {
            0 => p.id = rng.pick(&[0, 1, 2]),
            1 => p.id = 0,
            2 => p.name = rng.pick(NAMES).to_string(),
            3 => p.cluster = rng.pick(CLUSTERS).to_string(),
            4 => p.zone = rng.pick(ZONES).map(str::to_string),
            5 => p.acting = rng.pick(&[None, Some(false), Some(true)]),
            6 => p.timeout = rng.pick(&[None, Some(10_000), Some(30_000)]),
            7 => p.ha = rng.chance(1, 2).then(|| format!("ha-{}", p.addr)),
            _ => p.version.state_version += 1,
        }
    }

    fn step(&mut self) -> Step {
        let i = self.rng.below(self.profiles.len() as u64) as usize;
        match self.rng.below(100) {
            // Re-registration, unchanged (the 30 s heartbeat of a broker).
            0..=21 => Step::Register(self.registration(&self.profiles[i])),
            22..=33 => {
                self.change_topics(i);
                Step::Register(self.registration(&self.profiles[i]))
            }
            34..=40 => {
                self.change_header(i);
                Step::Register(self.registration(&self.profiles[i]))
            }
            41..=44 => {
                let rng = &mut self.rng;
                let p = &mut self.profiles[i];
                p.filters = match rng.below(4) {
                    0 => None,
                    1 => Some(vec![]),
                    2 => Some(vec![FILTER_SERVERS[0].to_string()]),
                    _ => Some(FILTER_SERVERS.iter().map(|s| s.to_string()).collect()),
                };
                Step::Register(self.registration(&self.profiles[i]))
            }
            45..=48 => {
                // A single-topic body (the guard of §3 step 7), or an
                // arbitrary header.
                let mut r = self.registration(&self.profiles[i]);
                let rng = &mut self.rng;
                if rng.chance(1, 2) {
                    let t = rng.pick(TOPICS);
                    r.body.topics = BTreeMap::from([(t.to_string(), config(rng, t))]);
                    r.body.data_version.counter += 100;
                } else {
                    r.cluster = rng.pick(CLUSTERS).to_string();
                    r.name = rng.pick(NAMES).to_string();
                    r.id = rng.pick(&[0, 1, 2]);
                    r.acting_master = rng.pick(&[None, Some(false), Some(true)]);
                }
                Step::Register(r)
            }
            49..=56 => {
                let p = &self.profiles[i];
                let rng = &mut self.rng;
                let mut u = Unregistration {
                    cluster: p.cluster.clone(),
                    addr: p.addr.clone(),
                    name: p.name.clone(),
                    id: p.id,
                };
                if rng.chance(1, 4) {
                    u.name = rng.pick(NAMES).to_string();
                }
                if rng.chance(1, 8) {
                    u.cluster = rng.pick(CLUSTERS).to_string();
                }
                let late_ms = if rng.chance(1, 3) {
                    rng.below(20_000)
                } else {
                    0
                };
                Step::Unregister { u, late_ms }
            }
            57..=61 => {
                let slot = self.rng.below(self.conn_gen.len() as u64) as usize;
                let conn = self.conn(slot);
                let late_ms = if self.rng.chance(1, 4) {
                    self.rng.below(20_000)
                } else {
                    0
                };
                self.conn_gen[slot] += 1;
                Step::Close { conn, late_ms }
            }
            62..=67 => {
                let p = &self.profiles[i];
                Step::Heartbeat {
                    cluster: p.cluster.clone(),
                    addr: p.addr.clone(),
                }
            }
            68..=70 => {
                let p = &self.profiles[i];
                let given = match self.rng.below(3) {
                    0 => None,
                    1 => Some(p.version),
                    _ => Some(DataVersion {
                        counter: p.version.counter + 1,
                        ..p.version
                    }),
                };
                Step::QueryVersion {
                    cluster: p.cluster.clone(),
                    addr: p.addr.clone(),
                    given,
                }
            }
            71..=77 => Step::Wait {
                ms: self.rng.pick(&[3_000, 12_000, 35_000, 125_000]),
            },
            78..=80 => Step::WipePerm(self.rng.pick(NAMES).to_string()),
            81..=83 => Step::AddPerm(self.rng.pick(NAMES).to_string()),
            84..=87 => {
                let rng = &mut self.rng;
                let cluster = match rng.below(4) {
                    0 => Some(String::new()),
                    1 => Some(rng.pick(CLUSTERS).to_string()),
                    _ => None,
                };
                Step::DeleteTopic {
                    topic: rng.pick(TOPICS).to_string(),
                    cluster,
                }
            }
            88..=96 => {
                let rng = &mut self.rng;
                let n = rng.pick(&[0, 1, 1, 2, 3]);
                let entries = (0..n)
                    .map(|_| {
                        let name = if rng.chance(1, 4) {
                            "b9"
                        } else {
                            rng.pick(NAMES)
                        };
                        (name.to_string(), queue_data(rng))
                    })
                    .collect();
                let topic = if rng.chance(1, 4) {
                    "t9"
                } else {
                    rng.pick(TOPICS)
                };
                Step::RegisterTopic {
                    topic: topic.to_string(),
                    entries,
                }
            }
            _ => Step::Toggle {
                acting_master: self.rng.chance(1, 2),
            },
        }
    }
}

fn walk(seed: u64, len: usize) -> (Setup, Vec<Timed>) {
    let mut gen = Gen::new(seed);
    let small = seed.is_multiple_of(3);
    let setup = Setup {
        limits: if small {
            Limits {
                broker_groups_max: 1 + gen.rng.below(2) as usize,
                topics_max: 2 + gen.rng.below(3) as usize,
            }
        } else {
            Limits::default()
        },
        settings: RouteSettings {
            support_acting_master: gen.rng.chance(2, 3),
            delete_topic_with_broker_registration: gen.rng.chance(1, 3),
            notify_min_broker_id_changed: false,
        },
    };
    let steps = (0..len)
        .map(|_| {
            let dt = gen.rng.below(4_000);
            Timed {
                dt,
                step: gen.step(),
            }
        })
        .collect();
    (setup, steps)
}

/// Runs the walk of `seed`; on a failure, panics with the shrunk walk.
fn check_seed(seed: u64, len: usize, harness: Harness) -> Coverage {
    let (setup, steps) = walk(seed, len);
    match run_caught(&setup, &steps, harness) {
        Ok(seen) => seen,
        Err(f) => {
            let original = f.at;
            let (shrunk, f) = shrink(&setup, &steps, harness, f);
            panic!("{}", report(seed, &setup, original, &shrunk, &f));
        }
    }
}

const SEEDS: u64 = 24;
const STEPS: usize = 200;

/// The seeds to walk: `MODEL_SEED=n` for one, `MODEL_SEEDS=n` for more.
fn seeds() -> std::ops::Range<u64> {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    match (env("MODEL_SEED"), env("MODEL_SEEDS")) {
        (Some(one), _) => one..one + 1,
        (None, Some(n)) => 0..n,
        (None, None) => 0..SEEDS,
    }
}

#[test]
fn random_walks_match_the_naive_model() {
    let mut seen = Coverage::default();
    for seed in seeds() {
        seen.add(&check_seed(seed, STEPS, Harness::default()));
    }
    eprintln!("{seen:?}");
    if std::env::var("MODEL_SEED").is_err() {
        let missing = seen.missing();
        assert!(missing.is_empty(), "never reached: {missing:?}\n{seen:?}");
    }
}

/// The publication check is not vacuous: a writer that publishes after
/// every step fails it, and the failure shrinks to a short walk.
#[test]
fn the_publication_check_can_fail() {
    let harness = Harness {
        force_publish: true,
    };
    let (setup, steps) = walk(1, STEPS);
    let f = run_caught(&setup, &steps, harness).expect_err("a forced publication must be caught");
    assert_eq!(f.what, "publication", "{f:?}");
    let (shrunk, f) = shrink(&setup, &steps, harness, f);
    assert_eq!(f.what, "publication");
    assert!(shrunk.len() <= 2, "{}", report(1, &setup, 0, &shrunk, &f));
}

// ---------------------------------------------------------------------------
// Minimal reproductions of where the table once differed from the spec

const F1: &str = "10.1.0.1:30000";

fn reg(
    cluster: &str,
    addr: &str,
    name: &str,
    id: i64,
    counter: i64,
    topics: &[&str],
) -> Registration {
    let topics = topics
        .iter()
        .map(|t| {
            let c = TopicConfig {
                topic_name: Some(t.to_string()),
                read_queue_nums: 4,
                write_queue_nums: 4,
                perm: 6,
                topic_sys_flag: 0,
            };
            (t.to_string(), c)
        })
        .collect();
    Registration {
        cluster: cluster.to_string(),
        addr: addr.to_string(),
        name: name.to_string(),
        id,
        ha_addr: None,
        zone: None,
        timeout_ms: None,
        acting_master: Some(false),
        body: RegisterBody {
            data_version: DataVersion {
                counter,
                state_version: 0,
                timestamp: 0,
            },
            topics,
            filter_servers: Some(vec![]),
            mappings: BTreeMap::new(),
        },
        conn: 1,
    }
}

fn publish(table: &mut RouteTable, snap: &Snapshot) -> Snapshot {
    let changes = table.take_changes();
    snap.next(table, &changes, |_| None)
}

/// §4 step 2 (and Java's `cleanTopicByUnRegisterRequests`): the named
/// group is "reduced" whether or not the address was in it, and a reduced
/// acting-master group without a master loses the write bit.
#[test]
fn spec_unregistering_an_unknown_address_still_wipes_a_headless_acting_group() {
    let mut t = RouteTable::new(Limits::default(), RouteSettings::default());
    let mut slave = reg("c1", ADDRS[2], "b3", 1, 1, &["t4", "t5"]);
    slave.acting_master = Some(true);
    assert!(matches!(
        t.register(slave, 1_000),
        RegisterOutcome::Registered { .. }
    ));
    assert_eq!(
        t.topic("t4").unwrap()["b3"].perm,
        4,
        "prime slave: read only"
    );
    t.add_write_perm("b3");
    let stray = Unregistration {
        cluster: "c1".into(),
        addr: ADDRS[1].into(),
        name: "b3".into(),
        id: 2,
    };
    t.unregister(&stray, 2_000);
    assert_eq!(
        t.topic("t4").unwrap()["b3"].perm,
        4,
        "reduced headless group wiped"
    );
}

/// §1 and §4 step 2: a group left without addresses by a refused first
/// registration goes at the first unregistration naming it.
#[test]
fn spec_unregistering_a_refused_broker_removes_its_empty_group() {
    let mut t = RouteTable::new(Limits::default(), RouteSettings::default());
    let first = reg("c1", ADDRS[0], "b2", 2, 1, &["t2"]);
    assert_eq!(t.register(first, 1_000), RegisterOutcome::Refused);
    assert!(
        t.brokers()["b2"].addrs.is_empty(),
        "the empty group of §3 step 7"
    );
    let u = Unregistration {
        cluster: "c1".into(),
        addr: ADDRS[0].into(),
        name: "b2".into(),
        id: 2,
    };
    t.unregister(&u, 2_000);
    assert!(!t.brokers().contains_key("b2"), "group removed");
    assert!(
        !t.clusters().contains_key("c1"),
        "cluster left empty removed"
    );
}

/// §6 step 3: a route lists, for each address of each of its groups, the
/// filter servers of (that group's cluster, address), whichever group the
/// registration that reported them named.
#[test]
fn spec_filter_servers_show_in_every_group_holding_the_address() {
    let mut t = RouteTable::new(Limits::default(), RouteSettings::default());
    let mut snap = Snapshot::default();
    t.register(reg("c1", ADDRS[1], "b3", 0, 1, &["t3", "t4"]), 1_000);
    snap = publish(&mut t, &snap);
    // The same broker process, now also registering as group b1.
    let mut renamed = reg("c1", ADDRS[1], "b1", 0, 2, &["t1", "t2"]);
    renamed.body.filter_servers = Some(vec![F1.to_string()]);
    t.register(renamed, 2_000);
    snap = publish(&mut t, &snap);
    let body = text(&snap.topics.get("t4").unwrap().standard);
    let want = format!("\"filterServerTable\":{{\"{}\":[\"{F1}\"]}}", ADDRS[1]);
    assert!(
        body.contains(&want),
        "t4 (group b3 holds the address): {body}"
    );
}

/// DECISIONS 2: a filter-server list no route shows (the group named is of
/// another cluster) publishes nothing.
#[test]
fn spec_filter_servers_shown_nowhere_publish_nothing() {
    let mut t = RouteTable::new(Limits::default(), RouteSettings::default());
    t.register(reg("c1", ADDRS[0], "b1", 0, 1, &["t1", "t2"]), 1_000);
    t.register(reg("c2", ADDRS[0], "b1", 0, 1, &["t1", "t2"]), 2_000);
    t.take_changes();
    // Group b1 is of cluster c1: the list of (c2, address) shows nowhere.
    let mut again = reg("c2", ADDRS[0], "b1", 0, 1, &["t1", "t2"]);
    again.body.filter_servers = Some(vec![F1.to_string()]);
    t.register(again, 3_000);
    let changes = t.take_changes();
    assert!(changes.is_empty(), "{changes:?}");
}

/// DECISIONS 2: a static-topic mapping of a topic that has no route shows
/// nowhere, so storing it publishes nothing.
#[test]
fn spec_a_mapping_of_a_topic_without_route_publishes_nothing() {
    let mut t = RouteTable::new(Limits::default(), RouteSettings::default());
    let info = |epoch| TopicQueueMappingInfo {
        bname: Some("b1".into()),
        epoch,
        topic: Some("t3".into()),
        ..TopicQueueMappingInfo::default()
    };
    let mut first = reg("c1", ADDRS[0], "b1", 0, 1, &["t1", "t2"]);
    first.body.mappings.insert("t3".into(), info(1));
    t.register(first, 1_000);
    t.take_changes();
    let mut second = reg("c1", ADDRS[0], "b1", 0, 2, &["t1", "t2"]);
    second.body.mappings.insert("t3".into(), info(2));
    t.register(second, 2_000);
    assert!(t.topic("t3").is_none(), "t3 has no route");
    let changes = t.take_changes();
    assert!(changes.is_empty(), "{changes:?}");
}

/// DECISIONS 2: a 217 whose second entry restores what its first changed
/// leaves every route as it was, so it publishes nothing.
#[test]
fn spec_register_topic_undone_within_one_request_publishes_nothing() {
    let mut t = RouteTable::new(Limits::default(), RouteSettings::default());
    t.register(reg("c1", ADDRS[0], "b1", 0, 1, &["t1", "t2"]), 1_000);
    t.take_changes();
    let stored = t.topic("t1").unwrap()["b1"].clone();
    let read_only = QueueData {
        perm: 4,
        ..stored.clone()
    };
    t.register_topic("t1", vec![("b1".into(), read_only), ("b1".into(), stored)])
        .unwrap();
    let changes = t.take_changes();
    assert!(changes.is_empty(), "{changes:?}");
}

/// §5: the expiry scan unregisters what a group of the entry's cluster
/// holds; an entry no such group holds is left in place, so the broker's
/// next QUERY_DATA_VERSION still finds its data version.
#[test]
fn spec_expiry_keeps_a_liveness_entry_no_group_holds() {
    let mut t = RouteTable::new(Limits::default(), RouteSettings::default());
    t.register(reg("c1", ADDRS[0], "b1", 0, 1, &["t1", "t2"]), 1_000);
    // The same process in cluster c2: group b1 stays a c1 group, so no
    // group of c2 holds the address.
    t.register(reg("c2", ADDRS[0], "b1", 0, 1, &["t1", "t2"]), 1_000);
    t.refresh("c1", ADDRS[0], 100_000);
    let later = 1_000 + 120_000 + 1;
    for u in t.expired(later) {
        t.unregister(&u, later);
    }
    let stored = DataVersion {
        counter: 1,
        state_version: 0,
        timestamp: 0,
    };
    let answer = t.query_data_version("c2", ADDRS[0], Some(&stored), later);
    assert_eq!(
        answer,
        (false, Some(stored)),
        "QUERY_DATA_VERSION of (c2, address)"
    );
}

/// Every published body equals one built from scratch.
fn assert_fresh(snap: &Snapshot, table: &RouteTable) {
    if let Err(f) = check_rebuild(0, snap, table) {
        panic!("{}: {}", f.what, f.detail);
    }
}

/// §6 step 3, §4 step 1: an unregistration naming another group still
/// removes the filter servers of (cluster, address), and every route
/// showing them changes.
#[test]
fn spec_filter_servers_removed_under_another_group_name_leave_every_route() {
    let mut t = RouteTable::new(Limits::default(), RouteSettings::default());
    let mut snap = Snapshot::default();
    let mut first = reg("c1", ADDRS[1], "b3", 0, 1, &["t3", "t4"]);
    first.body.filter_servers = Some(vec![F1.to_string()]);
    t.register(first, 1_000);
    let mut second = reg("c1", ADDRS[1], "b1", 0, 2, &["t1", "t2"]);
    second.body.filter_servers = None;
    t.register(second, 2_000);
    snap = publish(&mut t, &snap);
    assert!(text(&snap.topics.get("t1").unwrap().standard).contains(F1));
    let stray = Unregistration {
        cluster: "c1".into(),
        addr: ADDRS[1].into(),
        name: "b2".into(),
        id: 0,
    };
    t.unregister(&stray, 3_000);
    snap = publish(&mut t, &snap);
    assert_fresh(&snap, &t);
    for topic in ["t1", "t2", "t3", "t4"] {
        let body = text(&snap.topics.get(topic).unwrap().standard);
        assert!(body.contains("\"filterServerTable\":{}"), "{topic}: {body}");
    }
}

/// §5, §6 step 3: expiry unregisters the address from the first group of
/// its cluster holding it; the other group's routes lose the filter
/// servers too.
#[test]
fn spec_expiry_of_an_address_in_two_groups_refreshes_both_groups_routes() {
    let mut t = RouteTable::new(Limits::default(), RouteSettings::default());
    let mut snap = Snapshot::default();
    let mut first = reg("c1", ADDRS[1], "b3", 0, 1, &["t3", "t4"]);
    first.body.filter_servers = Some(vec![F1.to_string()]);
    t.register(first, 1_000);
    let mut second = reg("c1", ADDRS[1], "b1", 0, 2, &["t1", "t2"]);
    second.body.filter_servers = None;
    t.register(second, 2_000);
    snap = publish(&mut t, &snap);
    let later = 2_000 + 120_000 + 1;
    let dead = t.expired(later);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].name, "b1", "the first group of c1 holding it");
    t.unregister(&dead[0], later);
    snap = publish(&mut t, &snap);
    assert_fresh(&snap, &t);
    let body = text(&snap.topics.get("t4").unwrap().standard);
    assert!(body.contains("\"filterServerTable\":{}"), "t4: {body}");
}

/// §1, §3 step 7: a refused first registration leaves its group, empty,
/// in the cluster info, as Java does.
#[test]
fn spec_a_refused_first_registration_leaves_an_empty_group() {
    let mut t = RouteTable::new(Limits::default(), RouteSettings::default());
    let refused = reg("c1", ADDRS[0], "b2", 2, 1, &["t2"]);
    assert_eq!(t.register(refused, 1_000), RegisterOutcome::Refused);
    let changes = t.take_changes();
    assert!(changes.brokers, "the empty group shows in the cluster info");
    assert!(t.brokers()["b2"].addrs.is_empty());
    assert!(t.clusters()["c1"].contains("b2"));
}

/// The table's one deliberate difference (its module doc): an expired
/// liveness entry whose address no group of any cluster holds is dropped,
/// where Java keeps it for ever. The broker, if it comes back, is told its
/// data version changed and registers again.
#[test]
fn expiry_drops_a_liveness_entry_whose_address_no_group_holds() {
    let mut t = RouteTable::new(Limits::default(), RouteSettings::default());
    t.register(reg("c1", ADDRS[0], "b1", 0, 1, &["t1", "t2"]), 1_000);
    // A new process takes id 0 over before the old one expires.
    t.register(reg("c1", ADDRS[1], "b1", 0, 1, &["t1", "t2"]), 2_000);
    assert_eq!(t.brokers()["b1"].addrs[&0], ADDRS[1]);
    let later = 2_000 + 120_000 + 1;
    let dead = t.expired(later);
    assert_eq!(dead.len(), 1, "the new holder of id 0: {dead:?}");
    assert_eq!(dead[0].addr, ADDRS[1]);
    assert!(t.live("c1", ADDRS[0]).is_none(), "orphan dropped");
    let stored = DataVersion {
        counter: 1,
        state_version: 0,
        timestamp: 0,
    };
    assert_eq!(
        t.query_data_version("c1", ADDRS[0], Some(&stored), later),
        (true, None)
    );
}

/// DECISIONS 10: a slave that becomes id 0 of a headless acting-master
/// group, whose routes already showed it as id 0, changes the cluster info
/// but not the route of a topic whose queues it does not re-register.
#[test]
fn a_master_filling_the_id_its_route_already_showed_re_encodes_nothing_else() {
    let settings = RouteSettings {
        support_acting_master: true,
        ..RouteSettings::default()
    };
    let mut t = RouteTable::new(Limits::default(), settings);
    let mut slave = reg("c1", ADDRS[0], "b2", 2, 1, &["t2", "t3"]);
    slave.acting_master = Some(true);
    t.register(slave, 1_000);
    let read_only = QueueData {
        read_queue_nums: 4,
        write_queue_nums: 4,
        perm: 4,
        topic_sys_flag: 0,
    };
    t.register_topic("t1", vec![("b2".into(), read_only)])
        .unwrap();
    let snap = publish(&mut t, &Snapshot::default());
    let mut master = reg("c1", ADDRS[0], "b2", 0, 1, &["t2", "t3"]);
    master.acting_master = Some(true);
    t.register(master, 2_000);
    let changes = t.take_changes();
    assert!(changes.brokers);
    let marked: BTreeSet<&str> = changes.topics.iter().map(String::as_str).collect();
    assert_eq!(marked, BTreeSet::from(["t2", "t3"]), "write perm back");
    let next = snap.next(&t, &changes, |_| None);
    assert_fresh(&next, &t);
}
