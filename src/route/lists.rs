//! Answers computed from a snapshot rather than stored in it: the topic
//! lists (206, 224, 304, 311-313), the zone filter of
//! GET_ROUTEINFO_BY_TOPIC (`namesrv-commands.md` §A.6 step 6) and
//! GET_BROKER_MEMBER_GROUP.
//!
//! A topic list scans every topic, so each is built at most once per
//! `ListCache`: on first use, by whoever asks first (a shard does it on its
//! blocking pool), and shared by every snapshot until one changes what the
//! lists hold (`Snapshot::next`).

use super::encode::{self, TopicRoute};
use super::snapshot::Snapshot;
use super::table::BrokerGroup;
use crate::protocol::json::{self, Dialect};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// One of the topic lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicList {
    /// GET_ALL_TOPIC_LIST_FROM_NAMESERVER (206).
    All,
    /// GET_TOPICS_BY_CLUSTER (224).
    ByCluster(String),
    /// GET_SYSTEM_TOPIC_LIST_FROM_NS (304).
    System,
    /// GET_UNIT_TOPIC_LIST and its two siblings (311-313).
    Unit(UnitSelect),
}

/// The topic lists of one set of topics, each built once.
#[derive(Default)]
pub struct ListCache {
    all: OnceLock<Bytes>,
    system: OnceLock<Bytes>,
    units: [OnceLock<Bytes>; 3],
    /// Only clusters that exist are kept, so its size follows the table.
    by_cluster: Mutex<HashMap<String, Bytes>>,
}

impl ListCache {
    /// The list's body if it was built already.
    pub fn get(&self, list: &TopicList) -> Option<Bytes> {
        match list {
            TopicList::All => self.all.get().cloned(),
            TopicList::System => self.system.get().cloned(),
            TopicList::Unit(u) => self.units[u.slot()].get().cloned(),
            TopicList::ByCluster(c) => {
                let cached = self.by_cluster.lock().unwrap_or_else(|e| e.into_inner());
                cached.get(c).cloned()
            }
        }
    }

    /// The list's body, built from `s` unless it was built already. Takes
    /// time in proportion to the topics: callers on a shard run it on the
    /// blocking pool.
    pub fn get_or_build(&self, list: &TopicList, s: &Snapshot) -> Bytes {
        let build = || Bytes::from(build(list, s));
        match list {
            TopicList::All => self.all.get_or_init(build).clone(),
            TopicList::System => self.system.get_or_init(build).clone(),
            TopicList::Unit(u) => self.units[u.slot()].get_or_init(build).clone(),
            TopicList::ByCluster(c) => {
                if let Some(body) = self.get(list) {
                    return body;
                }
                let body = build();
                if s.brokers.clusters.contains_key(c) {
                    let mut cached = self.by_cluster.lock().unwrap_or_else(|e| e.into_inner());
                    cached.insert(c.clone(), body.clone());
                }
                body
            }
        }
    }
}

fn build(list: &TopicList, s: &Snapshot) -> Vec<u8> {
    match list {
        TopicList::All => all_topics(s),
        TopicList::ByCluster(c) => topics_by_cluster(s, Some(c)),
        TopicList::System => system_topics(s),
        TopicList::Unit(u) => unit_topics(s, *u),
    }
}

/// topicSysFlag bits (`namesrv-commands.md` §B.2).
const FLAG_UNIT: i32 = 1;
const FLAG_UNIT_SUB: i32 = 2;

/// Which topics a unit-topic list (312, 313, 314) selects by topicSysFlag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitSelect {
    Unit,
    HasUnitSub,
    HasUnitSubNotUnit,
}

impl UnitSelect {
    fn slot(self) -> usize {
        match self {
            UnitSelect::Unit => 0,
            UnitSelect::HasUnitSub => 1,
            UnitSelect::HasUnitSubNotUnit => 2,
        }
    }

    fn selects(self, flag: i32) -> bool {
        let (unit, sub) = (flag & FLAG_UNIT != 0, flag & FLAG_UNIT_SUB != 0);
        match self {
            UnitSelect::Unit => unit,
            UnitSelect::HasUnitSub => sub,
            UnitSelect::HasUnitSubNotUnit => sub && !unit,
        }
    }
}

fn sorted_list(mut names: Vec<&str>, broker_addr: Option<&str>) -> Vec<u8> {
    names.sort_unstable();
    encode::topic_list_json(names.into_iter(), broker_addr)
}

/// GET_ALL_TOPIC_LIST_FROM_NAMESERVER (206).
pub fn all_topics(s: &Snapshot) -> Vec<u8> {
    encode::topic_list_json(s.topics.names(), None)
}

/// GET_TOPICS_BY_CLUSTER (304): topics with queues on a group of `cluster`.
pub fn topics_by_cluster(s: &Snapshot, cluster: Option<&str>) -> Vec<u8> {
    let members = cluster.and_then(|c| s.brokers.clusters.get(c));
    let names = match members {
        None => Vec::new(),
        Some(members) => s
            .topics
            .entries()
            .filter(|(_, e)| e.brokers.iter().any(|b| members.contains(&**b)))
            .map(|(name, _)| name)
            .collect(),
    };
    sorted_list(names, None)
}

/// GET_SYSTEM_TOPIC_LIST_FROM_NS (311): cluster and broker names double as
/// system topics (§A.15), with the address of some broker.
pub fn system_topics(s: &Snapshot) -> Vec<u8> {
    let view = &s.brokers;
    let mut names: Vec<&str> = Vec::new();
    for (cluster, members) in &view.clusters {
        names.push(cluster);
        names.extend(members.iter().map(String::as_str));
    }
    names.sort_unstable();
    names.dedup();
    let addr = view.groups.values().find_map(|g| g.addrs.values().next());
    encode::topic_list_json(names.into_iter(), addr.map(String::as_str))
}

/// GET_UNIT_TOPIC_LIST and its two siblings.
pub fn unit_topics(s: &Snapshot, select: UnitSelect) -> Vec<u8> {
    let names = s
        .topics
        .entries()
        .filter(|(_, e)| select.selects(e.sys_flag))
        .map(|(name, _)| name)
        .collect();
    sorted_list(names, None)
}

/// Java's zone hook (§A.6 step 6): decode the route, keep groups without a
/// master or in `zone`, re-encode in legacy form. `None` if the stored body
/// does not decode (it always should).
pub fn zone_filtered(legacy: &[u8], zone: &str) -> Option<Vec<u8>> {
    let text = json::quote_numeric_keys(legacy);
    let mut route: TopicRoute = serde_json::from_slice(&text).ok()?;
    let (kept, removed): (Vec<_>, Vec<_>) = route.broker_datas.into_iter().partition(|b| {
        !b.broker_addrs.contains_key(&0)
            || b.zone_name
                .as_deref()
                .is_some_and(|z| z.eq_ignore_ascii_case(zone))
    });
    route.broker_datas = kept;
    for b in &removed {
        route.queue_datas.retain(|q| q.broker_name != b.broker_name);
        for addr in b.broker_addrs.values() {
            route.filter_server_table.remove(addr);
        }
    }
    Some(encode::route_json(&route, Dialect::Legacy))
}

/// GET_BROKER_MEMBER_GROUP's body (§A.22), in the legacy encoding: the
/// group's addresses by id, and the names the request gave.
pub fn member_group(
    group: Option<&BrokerGroup>,
    name: Option<&str>,
    cluster: Option<&str>,
) -> Vec<u8> {
    let d = Dialect::Legacy;
    let mut body = Vec::with_capacity(128);
    body.extend_from_slice(b"{\"brokerMemberGroup\":{\"brokerAddrs\":{");
    for (i, (id, addr)) in group.into_iter().flat_map(|g| &g.addrs).enumerate() {
        if i > 0 {
            body.push(b',');
        }
        json::write_num_key(&mut body, *id, d);
        json::write_str(&mut body, addr, d);
    }
    body.push(b'}');
    if let Some(name) = name {
        body.extend_from_slice(b",\"brokerName\":");
        json::write_str(&mut body, name, d);
    }
    if let Some(cluster) = cluster {
        body.extend_from_slice(b",\"cluster\":");
        json::write_str(&mut body, cluster, d);
    }
    body.extend_from_slice(b"}}");
    body
}
