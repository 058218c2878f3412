//! The immutable view that lookups read. Built only by the writer, published
//! through arc-swap; a lookup finds a topic's reply body already encoded in
//! both dialects.
//!
//! Topics live in a fixed number of shards, each an `Arc<HashMap>`: a
//! publication copies only the shards holding a changed topic and shares
//! the rest, so its cost follows the change, not the table (DECISIONS 10).

use super::encode::{self, TopicRoute};
use super::kv::Kv;
use super::lists::ListCache;
use super::table::{BrokerGroup, Changes, RouteTable};
use crate::protocol::json::Dialect;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

const TOPIC_SHARDS: usize = 256;

/// One topic's reply bodies. The zone-mode path decodes `legacy` again, as
/// Java does, so the structured route is not kept (memory at 100k topics).
#[derive(Debug)]
pub struct TopicEntry {
    pub standard: Bytes,
    pub legacy: Bytes,
    /// Broker groups holding queues of the topic (GET_TOPICS_BY_CLUSTER).
    pub brokers: Box<[Box<str>]>,
    /// topicSysFlag of its first QueueData (the unit-topic lists).
    pub sys_flag: i32,
}

impl TopicEntry {
    pub fn new(route: &TopicRoute) -> TopicEntry {
        TopicEntry {
            // Boxed first: exact size, and no separate shared header.
            standard: Bytes::from(encode::route_json(route, Dialect::Standard).into_boxed_slice()),
            legacy: Bytes::from(encode::route_json(route, Dialect::Legacy).into_boxed_slice()),
            brokers: route
                .queue_datas
                .iter()
                .map(|q| q.broker_name.as_str().into())
                .collect(),
            sys_flag: route.queue_datas.first().map_or(0, |q| q.topic_sys_flag),
        }
    }
}

/// The broker and cluster tables as of this snapshot; rebuilt only when
/// they change (they are small: one entry per broker group).
#[derive(Debug)]
pub struct BrokerView {
    pub groups: BTreeMap<String, BrokerGroup>,
    pub clusters: BTreeMap<String, BTreeSet<String>>,
    /// GET_BROKER_CLUSTER_INFO body.
    pub cluster_info: Bytes,
}

impl Default for BrokerView {
    fn default() -> Self {
        BrokerView {
            groups: BTreeMap::new(),
            clusters: BTreeMap::new(),
            cluster_info: Bytes::from_static(b"{\"brokerAddrTable\":{},\"clusterAddrTable\":{}}"),
        }
    }
}

type Shard = HashMap<Box<str>, Arc<TopicEntry>>;

#[derive(Clone)]
pub struct TopicMap {
    shards: Arc<[Arc<Shard>]>,
    len: usize,
}

impl Default for TopicMap {
    fn default() -> Self {
        let shards: Vec<Arc<Shard>> = (0..TOPIC_SHARDS).map(|_| Arc::default()).collect();
        TopicMap {
            shards: shards.into(),
            len: 0,
        }
    }
}

/// FNV-1a: cheap, and only spreads topics over shards (each shard's map
/// keeps std's randomized hasher).
fn shard_of(topic: &str) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in topic.bytes() {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    h as usize % TOPIC_SHARDS
}

impl TopicMap {
    pub fn get(&self, topic: &str) -> Option<&Arc<TopicEntry>> {
        self.shards[shard_of(topic)].get(topic)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.shards.iter().flat_map(|s| s.keys().map(|k| &**k))
    }

    pub fn entries(&self) -> impl Iterator<Item = (&str, &Arc<TopicEntry>)> {
        self.shards
            .iter()
            .flat_map(|s| s.iter().map(|(k, v)| (&**k, v)))
    }

    /// A copy with `updates` applied (`None` removes); untouched shards are
    /// shared with `self`.
    pub fn with_updates(&self, updates: Vec<(String, Option<Arc<TopicEntry>>)>) -> TopicMap {
        let mut shards: Vec<Arc<Shard>> = self.shards.to_vec();
        let mut len = self.len;
        for (topic, entry) in updates {
            let shard = Arc::make_mut(&mut shards[shard_of(&topic)]);
            let had = match entry {
                Some(e) => shard.insert(topic.into_boxed_str(), e).is_some(),
                None => {
                    let had = shard.remove(topic.as_str()).is_some();
                    len -= had as usize;
                    continue;
                }
            };
            len += !had as usize;
        }
        TopicMap {
            shards: shards.into(),
            len,
        }
    }
}

/// The routes a shard answers from without asking the writer.
#[derive(Default)]
pub struct Snapshot {
    /// Grows by one per publication.
    pub version: u64,
    pub topics: TopicMap,
    pub brokers: Arc<BrokerView>,
    pub kv: Arc<Kv>,
    /// The topic lists, built on first use and shared by the snapshots
    /// that follow until one changes what they list.
    pub lists: Arc<ListCache>,
    /// When the writer published it, on the monotonic clock.
    pub published_ms: u64,
}

impl Snapshot {
    /// The next snapshot after `changes`: changed topics re-encoded, the
    /// rest shared with `self`.
    pub fn next(
        &self,
        table: &RouteTable,
        changes: &Changes,
        order_conf: impl Fn(&str) -> Option<String>,
    ) -> Snapshot {
        let updates: Vec<(String, Option<Arc<TopicEntry>>)> = changes
            .topics
            .iter()
            .map(|topic| {
                let conf = order_conf(topic);
                let route = encode::assemble(table, topic, conf.as_deref());
                (topic.clone(), route.map(|r| Arc::new(TopicEntry::new(&r))))
            })
            .collect();
        // A list changes when a topic comes or goes, moves between broker
        // groups or changes its sys flag, or when the clusters change;
        // not when only queues or permissions do.
        let listed = |e: Option<&Arc<TopicEntry>>| e.map(|e| (e.brokers.clone(), e.sys_flag));
        let lists_change = changes.brokers
            || updates
                .iter()
                .any(|(topic, new)| listed(self.topics.get(topic)) != listed(new.as_ref()));
        let lists = match lists_change {
            true => Arc::default(),
            false => self.lists.clone(),
        };
        let brokers = if changes.brokers {
            Arc::new(BrokerView {
                groups: table.brokers().clone(),
                clusters: table.clusters().clone(),
                cluster_info: Bytes::from(encode::cluster_info_json(table)),
            })
        } else {
            self.brokers.clone()
        };
        Snapshot {
            version: self.version + 1,
            topics: self.topics.with_updates(updates),
            brokers,
            kv: self.kv.clone(),
            lists,
            published_ms: self.published_ms,
        }
    }
}
