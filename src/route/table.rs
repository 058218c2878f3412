//! The registry's tables and every mutation of them, as in Java's
//! `RouteInfoManager` (`namesrv-behaviour.md` §1-§8), with two additions:
//! each mutation records what it changed that a client can see, so the
//! writer rebuilds only those topics (DECISIONS 2, 10); and unregistrations
//! carry a receive stamp that fences them against newer registrations
//! (DECISIONS 13).
//!
//! One deliberate difference from Java: the expiry scan drops a liveness
//! entry whose address no broker group holds any more, in any cluster
//! (`expired`). Java keeps every expired entry that no group of its own
//! cluster holds, forever: nothing but a 104 for that exact (cluster,
//! address) or a new registration of it removes it. Such entries are made
//! by ordinary churn, not only by odd clients: a broker that dies without
//! unregistering and whose id is taken over by a new address (a
//! rescheduled pod with a new IP) before it expires leaves one behind, so
//! in Java the table grows with the history of addresses, not with the
//! registry. An expired entry whose address some group of another cluster
//! still holds is kept, as in Java (it answers QUERY_DATA_VERSION and
//! decides whether the next registration of that (cluster, address)
//! carries a new data version); those are bounded by what the registry
//! holds now. A dropped entry belongs to an address that is in no route,
//! and it changes only what a dead broker coming back would be told: a
//! QUERY_DATA_VERSION answers `changed`, so the broker registers again
//! rather than believing it is still registered.

use super::encode;
use super::{ConnId, BROKER_TIMEOUT_DEFAULT_MS, PERM_READ, PERM_WRITE};
use crate::protocol::body::{DataVersion, RegisterBody, TopicQueueMappingInfo};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Caps on what brokers can make the table hold (DECISIONS 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub broker_groups_max: usize,
    pub topics_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            broker_groups_max: 4096,
            topics_max: 1_000_000,
        }
    }
}

/// Runtime switches that change routes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteSettings {
    pub delete_topic_with_broker_registration: bool,
    pub support_acting_master: bool,
    pub notify_min_broker_id_changed: bool,
}

/// A NOTIFY_MIN_BROKER_ID_CHANGE to send (`namesrv-behaviour.md` §12).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MinIdNotice {
    pub targets: Vec<String>,
    pub min_broker_id: i64,
    pub min_broker_addr: String,
    pub offline_broker_addr: Option<String>,
    pub ha_broker_addr: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueData {
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    pub topic_sys_flag: i32,
}

/// A topic's QueueData by broker name, sorted by name: a sorted vector,
/// because almost every topic lives on one or a few broker groups, and a
/// `BTreeMap` allocates a whole 11-slot node for each of them (about 450
/// bytes a topic, 45 MB at 100k topics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicQueues(Vec<(String, QueueData)>);

impl TopicQueues {
    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<&QueueData> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut QueueData> {
        self.find(name).ok().map(|i| &mut self.0[i].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Inserts or replaces; returns the replaced value.
    pub fn insert(&mut self, name: String, data: QueueData) -> Option<QueueData> {
        match self.find(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, data)),
            Err(i) => {
                self.0.insert(i, (name, data));
                self.0.shrink_to_fit();
                None
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<QueueData> {
        let i = self.find(name).ok()?;
        let (_, data) = self.0.remove(i);
        self.0.shrink_to_fit();
        Some(data)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// In broker-name order, as the `BTreeMap` it replaces.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &QueueData)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &QueueData> {
        self.0.iter().map(|(_, v)| v)
    }
}

impl std::ops::Index<&str> for TopicQueues {
    type Output = QueueData;

    fn index(&self, name: &str) -> &QueueData {
        self.get(name).expect("no QueueData for this broker name")
    }
}

/// A broker group: master and slaves sharing one broker name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerGroup {
    /// Fixed when the group is first created.
    pub cluster: String,
    pub addrs: BTreeMap<i64, String>,
    pub zone: Option<String>,
    pub acting_master: bool,
}

/// Liveness of one broker process, keyed by (cluster, address).
#[derive(Clone, Debug)]
pub struct LiveInfo {
    pub last_update_ms: u64,
    pub timeout_ms: u64,
    pub data_version: DataVersion,
    pub conn: ConnId,
    pub ha_addr: Option<String>,
    /// Receive stamp of the registration that created this entry.
    pub registered_ms: u64,
}

type LiveKey = (String, String);

/// A REGISTER_BROKER as the table needs it; names already validated.
#[derive(Clone, Debug)]
pub struct Registration {
    pub cluster: String,
    pub addr: String,
    pub name: String,
    pub id: i64,
    pub ha_addr: Option<String>,
    pub zone: Option<String>,
    pub timeout_ms: Option<u64>,
    pub acting_master: Option<bool>,
    pub body: RegisterBody,
    pub conn: ConnId,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// Registered; `master` is `(masterAddr, haServerAddr)` for a slave
    /// whose master is live (§3 step 13).
    Registered {
        master: Option<(String, Option<String>)>,
    },
    /// Another address holds this id with a newer stateVersion: ignored,
    /// answered SUCCESS (§A.4 special outcome).
    Superseded,
    /// First registration of this id carrying exactly one topic (§3 step 7).
    Refused,
    /// A table limit would be exceeded; nothing changed.
    LimitReached(String),
}

/// An unregistration (UNREGISTER_BROKER, a closed connection, an expiry).
#[derive(Clone, Debug)]
pub struct Unregistration {
    pub cluster: String,
    pub addr: String,
    pub name: String,
    pub id: i64,
}

/// What changed that a client or admin can see, since the last `take_changes`.
#[derive(Debug, Default)]
pub struct Changes {
    pub topics: HashSet<String>,
    /// The broker or cluster tables changed (GET_BROKER_CLUSTER_INFO).
    pub brokers: bool,
    /// A topic was added or removed (topic lists).
    pub topic_set: bool,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty() && !self.brokers && !self.topic_set
    }
}

#[derive(Default)]
pub struct RouteTable {
    topics: HashMap<String, TopicQueues>,
    brokers: BTreeMap<String, BrokerGroup>,
    clusters: BTreeMap<String, BTreeSet<String>>,
    live: HashMap<LiveKey, LiveInfo>,
    filter_servers: HashMap<LiveKey, Vec<String>>,
    mappings: HashMap<String, BTreeMap<String, TopicQueueMappingInfo>>,
    /// Index: broker name -> topics holding QueueData for it.
    broker_topics: HashMap<String, BTreeSet<String>>,
    changes: Changes,
    notices: Vec<MinIdNotice>,
    limits: Limits,
    settings: RouteSettings,
}

impl RouteTable {
    pub fn new(limits: Limits, settings: RouteSettings) -> RouteTable {
        RouteTable {
            limits,
            settings,
            ..RouteTable::default()
        }
    }

    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    /// Min-id notifications decided since the last call.
    pub fn take_notices(&mut self) -> Vec<MinIdNotice> {
        std::mem::take(&mut self.notices)
    }

    pub fn settings(&self) -> RouteSettings {
        self.settings
    }

    /// Changing a switch that every route depends on marks every topic.
    pub fn set_settings(&mut self, settings: RouteSettings) {
        if settings.support_acting_master != self.settings.support_acting_master {
            self.touch_all_topics();
        }
        self.settings = settings;
    }

    /// New caps apply to what comes next; what the table holds stays.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Marks a topic for re-encoding (its order config changed).
    pub fn touch_topic(&mut self, topic: &str) {
        if self.topics.contains_key(topic) {
            self.changes.topics.insert(topic.to_string());
        }
    }

    /// Marks every topic for re-encoding (a switch every route depends on).
    pub fn touch_all_topics(&mut self) {
        self.changes.topics.extend(self.topics.keys().cloned());
    }

    // ----- reads -----

    pub fn topic(&self, topic: &str) -> Option<&TopicQueues> {
        self.topics.get(topic)
    }

    pub fn topic_names(&self) -> impl Iterator<Item = &String> {
        self.topics.keys()
    }

    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    pub fn brokers(&self) -> &BTreeMap<String, BrokerGroup> {
        &self.brokers
    }

    pub fn clusters(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.clusters
    }

    pub fn live(&self, cluster: &str, addr: &str) -> Option<&LiveInfo> {
        self.live.get(&(cluster.to_string(), addr.to_string()))
    }

    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    pub fn filter_servers(&self, cluster: &str, addr: &str) -> Option<&Vec<String>> {
        if self.filter_servers.is_empty() {
            return None;
        }
        self.filter_servers
            .get(&(cluster.to_string(), addr.to_string()))
    }

    /// The `filterServerTable` of a route over `queues` (§6 step 3): each
    /// address of each group shows the filter servers of (the group's
    /// cluster, the address); where two groups of the route hold one
    /// address, the later one by name that has a list wins.
    pub fn route_filter_servers(&self, queues: &TopicQueues) -> BTreeMap<String, Vec<String>> {
        let mut table = BTreeMap::new();
        if self.filter_servers.is_empty() {
            return table;
        }
        for group in queues.keys().filter_map(|name| self.brokers.get(name)) {
            for addr in group.addrs.values() {
                if let Some(list) = self.filter_servers(&group.cluster, addr) {
                    table.insert(addr.clone(), list.clone());
                }
            }
        }
        table
    }

    pub fn mappings(&self, topic: &str) -> Option<&BTreeMap<String, TopicQueueMappingInfo>> {
        self.mappings.get(topic)
    }

    // ----- registration (§3) -----

    pub fn register(&mut self, reg: Registration, now_ms: u64) -> RegisterOutcome {
        if let Some(limit) = self.limit_reached(&reg) {
            return RegisterOutcome::LimitReached(limit);
        }
        let key = (reg.cluster.clone(), reg.addr.clone());
        // Step 1.
        if self
            .clusters
            .entry(reg.cluster.clone())
            .or_default()
            .insert(reg.name.clone())
        {
            self.changes.brokers = true;
        }
        // Steps 2-3. What the group was, to tell what of it changed.
        let previous = self.brokers.get(&reg.name).cloned();
        let mut register_first = false;
        if previous.is_none() {
            register_first = true;
            self.changes.brokers = true;
            let group = BrokerGroup {
                cluster: reg.cluster.clone(),
                addrs: BTreeMap::new(),
                zone: None,
                acting_master: false,
            };
            self.brokers.insert(reg.name.clone(), group);
        }
        let is_old_version = reg.acting_master.is_none();
        let acting_master = reg.acting_master.unwrap_or(false);
        let group = self.brokers.get_mut(&reg.name).expect("inserted above");
        group.acting_master = acting_master;
        group.zone = reg.zone.clone();
        // Step 4: an empty group counts its previous minimum as 0.
        let min_id_changed = reg.id < group.addrs.keys().next().copied().unwrap_or(0);
        // Step 5: the same address under another id (a role switch).
        group
            .addrs
            .retain(|id, addr| *addr != reg.addr || *id == reg.id);
        // Step 6: a newer holder of this id wins.
        if let Some(old_addr) = group.addrs.get(&reg.id).filter(|a| **a != reg.addr) {
            let holder = self.live.get(&(reg.cluster.clone(), old_addr.clone()));
            let incoming = reg.body.data_version.state_version;
            if holder.is_some_and(|h| h.data_version.state_version > incoming) {
                self.live.remove(&key);
                self.mark_group_change(&reg.name, previous.as_ref());
                return RegisterOutcome::Superseded;
            }
        }
        // Step 7: the single-topic guard.
        if !group.addrs.contains_key(&reg.id) && reg.body.topics.len() == 1 {
            self.mark_group_change(&reg.name, previous.as_ref());
            return RegisterOutcome::Refused;
        }
        // Step 8.
        let old_addr = group.addrs.insert(reg.id, reg.addr.clone());
        register_first |= old_addr.as_deref().is_none_or(str::is_empty);
        // Step 9.
        let is_master = reg.id == 0;
        let min_id = *group.addrs.keys().next().expect("just inserted");
        let is_prime_slave = !is_old_version && !is_master && reg.id == min_id;
        let wipe_write = is_prime_slave && group.acting_master;
        // Step 10.
        if is_master || is_prime_slave {
            self.apply_topics(&reg, &key, register_first, wipe_write);
        }
        // After step 10, so the routes compare under the perms they show.
        self.mark_group_change(&reg.name, previous.as_ref());
        // Step 11.
        let info = LiveInfo {
            last_update_ms: now_ms,
            timeout_ms: reg.timeout_ms.unwrap_or(BROKER_TIMEOUT_DEFAULT_MS),
            data_version: reg.body.data_version,
            conn: reg.conn,
            ha_addr: reg.ha_addr.clone(),
            registered_ms: now_ms,
        };
        self.live.insert(key.clone(), info);
        // Step 12.
        self.apply_filter_servers(&reg, key);
        // Step 14.
        if min_id_changed && self.settings.notify_min_broker_id_changed {
            self.notice_new_min(&reg);
        }
        // Step 13.
        RegisterOutcome::Registered {
            master: self.master_of(&reg),
        }
    }

    fn limit_reached(&self, reg: &Registration) -> Option<String> {
        if !self.brokers.contains_key(&reg.name)
            && self.brokers.len() >= self.limits.broker_groups_max
        {
            let max = self.limits.broker_groups_max;
            return Some(format!("broker group limit reached: brokerGroupsMax={max}"));
        }
        let new_topics = reg
            .body
            .topics
            .iter()
            .filter(|(k, c)| {
                !self
                    .topics
                    .contains_key(c.topic_name.as_deref().unwrap_or(k))
            })
            .count();
        if self.topics.len() + new_topics > self.limits.topics_max {
            let max = self.limits.topics_max;
            return Some(format!("topic limit reached: topicsMax={max}"));
        }
        None
    }

    /// Step 10: topic data from a master or a prime slave.
    fn apply_topics(&mut self, reg: &Registration, key: &LiveKey, first: bool, wipe_write: bool) {
        let stored = self.live.get(key).map(|l| l.data_version);
        let version_changed = stored != Some(reg.body.data_version);
        // 10.1
        if self.settings.delete_topic_with_broker_registration && reg.body.mappings.is_empty() {
            let gone: Vec<String> = self
                .broker_topics
                .get(&reg.name)
                .into_iter()
                .flatten()
                .filter(|t| !reg.body.topics.contains_key(*t))
                .cloned()
                .collect();
            for topic in gone {
                self.remove_queue_data(&topic, &reg.name);
            }
        }
        // 10.2
        for (map_key, config) in &reg.body.topics {
            let topic = config.topic_name.as_deref().unwrap_or(map_key);
            let known = self.topics.get(topic).filter(|q| !q.is_empty());
            let changed = version_changed || known.is_none_or(|q| !q.contains_key(&reg.name));
            if !(first || changed) {
                continue;
            }
            let mut perm = config.perm;
            if wipe_write {
                perm &= !PERM_WRITE;
            }
            let data = QueueData {
                read_queue_nums: config.read_queue_nums,
                write_queue_nums: config.write_queue_nums,
                perm,
                topic_sys_flag: config.topic_sys_flag,
            };
            self.put_queue_data(topic, &reg.name, data);
        }
        // 10.3: kept even for a topic with no route; it shows once the
        // topic has one (and that marks the topic).
        if version_changed || first {
            for (topic, info) in &reg.body.mappings {
                let bname = info.bname.clone().unwrap_or_default();
                let per_topic = self.mappings.entry(topic.clone()).or_default();
                if per_topic.get(&bname) != Some(info) {
                    per_topic.insert(bname, info.clone());
                    if self.topics.contains_key(topic) {
                        self.changes.topics.insert(topic.clone());
                    }
                }
            }
        }
    }

    /// Step 12: `None` leaves the list alone, an empty list removes it.
    fn apply_filter_servers(&mut self, reg: &Registration, key: LiveKey) {
        let Some(list) = &reg.body.filter_servers else {
            return;
        };
        let list = (!list.is_empty()).then(|| list.clone());
        self.set_filter_servers(key, list);
    }

    /// Stores (`Some`) or removes (`None`) the filter servers of (cluster,
    /// address), and marks the routes that show the difference. A list
    /// shows in the route of every group of that cluster holding the
    /// address, whichever group the request named; and a route whose
    /// other group shows its own list for the address does not change.
    fn set_filter_servers(&mut self, key: LiveKey, list: Option<Vec<String>>) {
        if self.filter_servers.get(&key) == list.as_ref() {
            return;
        }
        let (cluster, addr) = &key;
        let topics: BTreeSet<String> = self
            .brokers
            .iter()
            .filter(|(_, g)| g.cluster == *cluster && g.addrs.values().any(|a| a == addr))
            .filter_map(|(name, _)| self.broker_topics.get(name))
            .flatten()
            .cloned()
            .collect();
        let shown = |t: &Self, topic: &str| {
            t.topics
                .get(topic)
                .and_then(|q| t.route_filter_servers(q).remove(addr))
        };
        let before: Vec<Option<Vec<String>>> = topics.iter().map(|t| shown(self, t)).collect();
        match list {
            Some(list) => self.filter_servers.insert(key.clone(), list),
            None => self.filter_servers.remove(&key),
        };
        for (topic, before) in topics.into_iter().zip(before) {
            if shown(self, &topic) != before {
                self.changes.topics.insert(topic);
            }
        }
    }

    fn notice_new_min(&mut self, reg: &Registration) {
        let Some(group) = self.brokers.get(&reg.name) else {
            return;
        };
        let mut targets: Vec<String> = group
            .addrs
            .values()
            .filter(|a| **a != reg.addr)
            .cloned()
            .collect();
        if group.addrs.len() == 1 {
            targets = vec![reg.addr.clone()];
        }
        self.notices.push(MinIdNotice {
            targets,
            min_broker_id: reg.id,
            min_broker_addr: reg.addr.clone(),
            offline_broker_addr: None,
            ha_broker_addr: reg.ha_addr.clone(),
        });
    }

    fn master_of(&self, reg: &Registration) -> Option<(String, Option<String>)> {
        if reg.id == 0 {
            return None;
        }
        let master = self.brokers.get(&reg.name)?.addrs.get(&0)?;
        let live = self.live.get(&(reg.cluster.clone(), master.clone()))?;
        Some((master.clone(), live.ha_addr.clone()))
    }

    fn put_queue_data(&mut self, topic: &str, name: &str, data: QueueData) {
        let queues = match self.topics.get_mut(topic) {
            Some(q) => q,
            None => {
                self.changes.topic_set = true;
                self.topics.entry(topic.to_string()).or_default()
            }
        };
        if queues.get(name) == Some(&data) {
            return;
        }
        queues.insert(name.to_string(), data);
        self.changes.topics.insert(topic.to_string());
        self.broker_topics
            .entry(name.to_string())
            .or_default()
            .insert(topic.to_string());
    }

    fn remove_queue_data(&mut self, topic: &str, name: &str) {
        let Some(queues) = self.topics.get_mut(topic) else {
            return;
        };
        if queues.remove(name).is_none() {
            return;
        }
        self.changes.topics.insert(topic.to_string());
        if queues.is_empty() {
            self.topics.remove(topic);
            self.changes.topic_set = true;
        }
        if let Some(set) = self.broker_topics.get_mut(name) {
            set.remove(topic);
            if set.is_empty() {
                self.broker_topics.remove(name);
            }
        }
    }

    /// Group `name` may differ from `before`: the cluster info shows any
    /// difference, a route only a difference in the group's `BrokerData` as
    /// the route presents it (a slave filling id 0 of a headless group
    /// that the route already showed as acting master changes no route).
    /// A topic whose QueueData changed meanwhile is marked by that change,
    /// so comparing both under its current QueueData is exact.
    fn mark_group_change(&mut self, name: &str, before: Option<&BrokerGroup>) {
        let Some(after) = self.brokers.get(name) else {
            return;
        };
        if before == Some(after) {
            return;
        }
        // Only the acting-master rewrite can make two groups look alike.
        let Some(before) = before.filter(|_| self.settings.support_acting_master) else {
            self.mark_broker(name);
            return;
        };
        self.changes.brokers = true;
        let changed: Vec<String> = self
            .broker_topics
            .get(name)
            .into_iter()
            .flatten()
            .filter(|topic| {
                let queue = &self.topics[topic.as_str()][name];
                encode::broker_data(self, topic, name, before, queue)
                    != encode::broker_data(self, topic, name, after, queue)
            })
            .cloned()
            .collect();
        self.changes.topics.extend(changed);
    }

    /// The group itself changed: cluster info and every route naming it.
    fn mark_broker(&mut self, name: &str) {
        self.changes.brokers = true;
        if let Some(topics) = self.broker_topics.get(name) {
            self.changes.topics.extend(topics.iter().cloned());
        }
    }

    // ----- liveness (§5) -----

    /// BROKER_HEARTBEAT and QUERY_DATA_VERSION refresh an existing entry.
    pub fn refresh(&mut self, cluster: &str, addr: &str, now_ms: u64) -> bool {
        match self.live.get_mut(&(cluster.to_string(), addr.to_string())) {
            Some(info) => {
                info.last_update_ms = now_ms;
                true
            }
            None => false,
        }
    }

    /// QUERY_DATA_VERSION (§A.21): `(changed, stored version)`, refreshing
    /// liveness.
    pub fn query_data_version(
        &mut self,
        cluster: &str,
        addr: &str,
        given: Option<&DataVersion>,
        now_ms: u64,
    ) -> (bool, Option<DataVersion>) {
        let stored = self.live(cluster, addr).map(|l| l.data_version);
        let changed = match (stored, given) {
            (Some(s), Some(g)) => s != *g,
            _ => true,
        };
        self.refresh(cluster, addr, now_ms);
        (changed, stored)
    }

    /// Unregistrations for every broker whose liveness ran out (§5 scan).
    /// An entry that no group of its cluster holds gets none and stays, as
    /// in Java, while a group of another cluster holds its address; when
    /// no group holds the address at all it is dropped (the one deviation
    /// of this module, see its doc).
    pub fn expired(&mut self, now_ms: u64) -> Vec<Unregistration> {
        let dead: Vec<LiveKey> = self
            .live
            .iter()
            .filter(|(_, l)| l.last_update_ms.saturating_add(l.timeout_ms) < now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for (cluster, addr) in dead {
            if let Some(u) = self.find_member(&cluster, &addr) {
                out.push(u);
                continue;
            }
            let held = self
                .brokers
                .values()
                .any(|g| g.addrs.values().any(|a| *a == addr));
            if !held {
                self.live.remove(&(cluster, addr));
            }
        }
        out
    }

    /// Unregistrations for the brokers registered over `conn`, registered no
    /// later than `closed_ms` (§5 "channel destroyed", DECISIONS 13).
    pub fn closed(&self, conn: ConnId, closed_ms: u64) -> Vec<Unregistration> {
        self.live
            .iter()
            .filter(|(_, l)| l.conn == conn && l.registered_ms <= closed_ms)
            .filter_map(|((cluster, addr), _)| self.find_member(cluster, addr))
            .collect()
    }

    /// The first group of `cluster` that holds `addr`, as Java searches it.
    fn find_member(&self, cluster: &str, addr: &str) -> Option<Unregistration> {
        self.brokers
            .iter()
            .filter(|(_, g)| g.cluster == cluster)
            .find_map(|(name, g)| {
                let (id, _) = g.addrs.iter().find(|(_, a)| *a == addr)?;
                Some(Unregistration {
                    cluster: cluster.to_string(),
                    addr: addr.to_string(),
                    name: name.clone(),
                    id: *id,
                })
            })
    }

    // ----- unregistration (§4) -----

    /// Applies one unregistration received at `stamp_ms`; one that predates
    /// the live registration of the same (cluster, address) is stale and
    /// ignored. Returns whether it was applied.
    pub fn unregister(&mut self, u: &Unregistration, stamp_ms: u64) -> bool {
        let key = (u.cluster.clone(), u.addr.clone());
        if self
            .live
            .get(&key)
            .is_some_and(|l| l.registered_ms > stamp_ms)
        {
            return false;
        }
        // Step 1.
        self.live.remove(&key);
        self.set_filter_servers(key, None);
        // Step 2. The name is "removed" when no address is left, and
        // "reduced" otherwise, whether or not the address was in the group:
        // an empty group (left by a refused registration) goes, and a
        // headless acting-master group loses its write bits.
        let Some(group) = self.brokers.get_mut(&u.name) else {
            return true;
        };
        let was_min = group.addrs.keys().next() == Some(&u.id);
        let before = group.addrs.len();
        group.addrs.retain(|_, addr| *addr != u.addr);
        let matched = group.addrs.len() != before;
        if group.addrs.is_empty() {
            // Step 3 and the topic clean-up.
            self.remove_group(&u.name, &u.cluster);
            return true;
        }
        let headless = group.acting_master && !group.addrs.contains_key(&0);
        // As Java: the request's id alone decides `was_min`, matched or not.
        if was_min && group.acting_master && self.settings.notify_min_broker_id_changed {
            let (min_id, min_addr) = group.addrs.iter().next().expect("not empty");
            self.notices.push(MinIdNotice {
                targets: group.addrs.values().cloned().collect(),
                min_broker_id: *min_id,
                min_broker_addr: min_addr.clone(),
                offline_broker_addr: Some(u.addr.clone()),
                ha_broker_addr: None,
            });
        }
        if matched {
            self.mark_broker(&u.name);
        }
        if headless {
            self.wipe_write_perm(&u.name);
        }
        true
    }

    fn remove_group(&mut self, name: &str, cluster: &str) {
        self.brokers.remove(name);
        self.changes.brokers = true;
        if let Some(names) = self.clusters.get_mut(cluster) {
            names.remove(name);
            if names.is_empty() {
                self.clusters.remove(cluster);
            }
        }
        let topics = self.broker_topics.get(name).cloned().unwrap_or_default();
        for topic in topics {
            self.remove_queue_data(&topic, name);
        }
    }

    /// Clears the write bit of every QueueData of `name`; returns how many
    /// topics hold it (WIPE_WRITE_PERM_OF_BROKER counts them all).
    pub fn wipe_write_perm(&mut self, name: &str) -> usize {
        self.set_perm(name, |perm| perm & !PERM_WRITE)
    }

    /// ADD_WRITE_PERM_OF_BROKER: perm becomes READ|WRITE, dropping any
    /// other bit, as in Java.
    pub fn add_write_perm(&mut self, name: &str) -> usize {
        self.set_perm(name, |_| PERM_READ | PERM_WRITE)
    }

    // ----- topic administration (§A.11, §A.12) -----

    /// DELETE_TOPIC_IN_NAMESRV: the whole topic, or only the queues of the
    /// brokers of `cluster` when one is given.
    pub fn delete_topic(&mut self, topic: &str, cluster: Option<&str>) {
        let names: Vec<String> = match cluster.filter(|c| !c.is_empty()) {
            Some(c) => self
                .clusters
                .get(c)
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            None => self
                .topics
                .get(topic)
                .into_iter()
                .flat_map(|q| q.keys().cloned())
                .collect(),
        };
        for name in names {
            self.remove_queue_data(topic, &name);
        }
    }

    /// REGISTER_TOPIC_IN_NAMESRV with Java's partial apply (DECISIONS 1):
    /// a known topic takes entries until the first unknown broker group; a
    /// new topic is created only when every group is known.
    pub fn register_topic(
        &mut self,
        topic: &str,
        entries: Vec<(String, QueueData)>,
    ) -> Result<(), String> {
        let known = |t: &Self, name: &str| t.brokers.contains_key(name);
        if !self.topics.contains_key(topic) {
            if entries.is_empty() || !entries.iter().all(|(n, _)| known(self, n)) {
                return Ok(());
            }
            if self.topics.len() >= self.limits.topics_max {
                let max = self.limits.topics_max;
                return Err(format!("topic limit reached: topicsMax={max}"));
            }
        }
        // The entries up to the first unknown group, the last one of each
        // group winning: what applying them in order leaves, without
        // marking a topic whose later entry undoes an earlier one.
        let mut applied: BTreeMap<String, QueueData> = BTreeMap::new();
        for (name, data) in entries {
            if !known(self, &name) {
                break;
            }
            applied.insert(name, data);
        }
        for (name, data) in applied {
            self.put_queue_data(topic, &name, data);
        }
        Ok(())
    }

    fn set_perm(&mut self, name: &str, f: impl Fn(i32) -> i32) -> usize {
        let topics: Vec<String> = self
            .broker_topics
            .get(name)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        for topic in &topics {
            let queues = self.topics.get_mut(topic).expect("index is exact");
            let data = queues.get_mut(name).expect("index is exact");
            let perm = f(data.perm);
            if perm != data.perm {
                data.perm = perm;
                self.changes.topics.insert(topic.clone());
            }
        }
        topics.len()
    }
}
