//! Route assembly (`namesrv-behaviour.md` §6) and the JSON bodies built at
//! publication (`namesrv-commands.md` §B.3, §B.4, §B.8, §B.9).
//!
//! Maps come out in ascending key order in both dialects: numeric order for
//! broker ids, string order for names (DECISIONS 19).

use super::table::{BrokerGroup, QueueData, RouteTable};
use super::PERM_WRITE;
use crate::protocol::body::TopicQueueMappingInfo;
use crate::protocol::json::{self, Dialect};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Topics whose routes the acting-master rewrite leaves alone (§6 step 6).
const SYNC_BROKER_MEMBER_PREFIX: &str = "rmq_sys_SYNC_BROKER_MEMBER_";

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerData {
    pub broker_addrs: BTreeMap<i64, String>,
    pub broker_name: String,
    pub cluster: String,
    #[serde(default)]
    pub enable_acting_master: bool,
    #[serde(default)]
    pub zone_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueDataOut {
    pub broker_name: String,
    pub perm: i32,
    pub read_queue_nums: i32,
    pub topic_sys_flag: i32,
    pub write_queue_nums: i32,
}

/// `TopicRouteData`, the GET_ROUTEINFO_BY_TOPIC body.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicRoute {
    pub broker_datas: Vec<BrokerData>,
    #[serde(default)]
    pub filter_server_table: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub order_topic_conf: Option<String>,
    pub queue_datas: Vec<QueueDataOut>,
    #[serde(default)]
    pub topic_queue_mapping_by_broker: Option<BTreeMap<String, TopicQueueMappingInfo>>,
}

/// Builds the route of `topic` as Java's `pickupTopicRouteData` does, or
/// `None` where Java answers TOPIC_NOT_EXIST.
pub fn assemble(table: &RouteTable, topic: &str, order_conf: Option<&str>) -> Option<TopicRoute> {
    let queues = table.topic(topic)?;
    let mut broker_datas = Vec::with_capacity(queues.len());
    for (name, queue) in queues.iter() {
        let Some(group) = table.brokers().get(name) else {
            continue;
        };
        broker_datas.push(broker_data(table, topic, name, group, queue));
    }
    if queues.is_empty() || broker_datas.is_empty() {
        return None;
    }
    Some(TopicRoute {
        broker_datas,
        // The table's rule, which its change tracking follows too.
        filter_server_table: table.route_filter_servers(queues),
        order_topic_conf: order_conf.map(str::to_string),
        queue_datas: queues
            .iter()
            .map(|(name, q)| QueueDataOut {
                broker_name: name.clone(),
                perm: q.perm,
                read_queue_nums: q.read_queue_nums,
                topic_sys_flag: q.topic_sys_flag,
                write_queue_nums: q.write_queue_nums,
            })
            .collect(),
        topic_queue_mapping_by_broker: table.mappings(topic).cloned(),
    })
}

/// The `BrokerData` a route of `topic` shows for group `name`, whose
/// QueueData in that topic is `queue`: a copy of the group, with the
/// acting-master rewrite of §6 step 6 (when `supportActingMaster` is on and
/// the topic is not a sync-member topic, a headless acting-master group
/// whose queues are not writable shows its smallest-id slave as id 0).
/// Java first asks whether any group of the route is headless; a group the
/// rewrite applies to is one, so the rule needs no other group. The table's
/// change tracking compares these too.
pub fn broker_data(
    table: &RouteTable,
    topic: &str,
    name: &str,
    group: &BrokerGroup,
    queue: &QueueData,
) -> BrokerData {
    let mut broker_addrs = group.addrs.clone();
    let rewrite = table.settings().support_acting_master
        && !topic.starts_with(SYNC_BROKER_MEMBER_PREFIX)
        && group.acting_master
        && !broker_addrs.is_empty()
        && !broker_addrs.contains_key(&0)
        && queue.perm & PERM_WRITE == 0;
    if rewrite {
        if let Some((_, addr)) = broker_addrs.pop_first() {
            broker_addrs.insert(0, addr);
        }
    }
    BrokerData {
        broker_addrs,
        broker_name: name.to_string(),
        cluster: group.cluster.clone(),
        enable_acting_master: group.acting_master,
        zone_name: group.zone.clone(),
    }
}

pub fn route_json(route: &TopicRoute, d: Dialect) -> Vec<u8> {
    let mut out = Vec::with_capacity(320);
    out.extend_from_slice(b"{\"brokerDatas\":[");
    for (i, b) in route.broker_datas.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_broker_data(&mut out, b, d);
    }
    out.extend_from_slice(b"],\"filterServerTable\":{");
    for (i, (addr, list)) in route.filter_server_table.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_key(&mut out, addr, d);
        write_str_array(&mut out, list.iter().map(String::as_str), d);
    }
    out.push(b'}');
    if let Some(conf) = &route.order_topic_conf {
        out.extend_from_slice(b",\"orderTopicConf\":");
        json::write_str(&mut out, conf, d);
    }
    out.extend_from_slice(b",\"queueDatas\":[");
    for (i, q) in route.queue_datas.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"brokerName\":");
        json::write_str(&mut out, &q.broker_name, d);
        out.extend_from_slice(b",\"perm\":");
        json::write_int(&mut out, q.perm as i64);
        out.extend_from_slice(b",\"readQueueNums\":");
        json::write_int(&mut out, q.read_queue_nums as i64);
        out.extend_from_slice(b",\"topicSysFlag\":");
        json::write_int(&mut out, q.topic_sys_flag as i64);
        out.extend_from_slice(b",\"writeQueueNums\":");
        json::write_int(&mut out, q.write_queue_nums as i64);
        out.push(b'}');
    }
    out.push(b']');
    if let Some(mappings) = &route.topic_queue_mapping_by_broker {
        out.extend_from_slice(b",\"topicQueueMappingByBroker\":{");
        for (i, (bname, info)) in mappings.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::write_key(&mut out, bname, d);
            write_mapping_info(&mut out, info, d);
        }
        out.push(b'}');
    }
    out.push(b'}');
    out
}

/// BrokerData as 5.x writes it (4.9.x had no `enableActingMaster`/`zoneName`).
fn write_broker_data(out: &mut Vec<u8>, b: &BrokerData, d: Dialect) {
    out.extend_from_slice(b"{\"brokerAddrs\":{");
    for (i, (id, addr)) in b.broker_addrs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_num_key(out, *id, d);
        json::write_str(out, addr, d);
    }
    out.extend_from_slice(b"},\"brokerName\":");
    json::write_str(out, &b.broker_name, d);
    out.extend_from_slice(b",\"cluster\":");
    json::write_str(out, &b.cluster, d);
    out.extend_from_slice(b",\"enableActingMaster\":");
    json::write_bool(out, b.enable_acting_master);
    if let Some(zone) = &b.zone_name {
        out.extend_from_slice(b",\"zoneName\":");
        json::write_str(out, zone, d);
    }
    out.push(b'}');
}

fn write_mapping_info(out: &mut Vec<u8>, m: &TopicQueueMappingInfo, d: Dialect) {
    out.push(b'{');
    let mut first = true;
    let mut member = |out: &mut Vec<u8>, name: &str| {
        if !first {
            out.push(b',');
        }
        first = false;
        json::write_key(out, name, d);
    };
    if let Some(bname) = &m.bname {
        member(out, "bname");
        json::write_str(out, bname, d);
    }
    if let Some(ids) = &m.curr_id_map {
        member(out, "currIdMap");
        out.push(b'{');
        for (i, (k, v)) in ids.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::write_num_key(out, *k as i64, d);
            json::write_int(out, *v as i64);
        }
        out.push(b'}');
    }
    member(out, "dirty");
    json::write_bool(out, m.dirty);
    member(out, "epoch");
    json::write_long(out, m.epoch, d);
    if let Some(scope) = &m.scope {
        member(out, "scope");
        json::write_str(out, scope, d);
    }
    if let Some(topic) = &m.topic {
        member(out, "topic");
        json::write_str(out, topic, d);
    }
    member(out, "totalQueues");
    json::write_int(out, m.total_queues as i64);
    out.push(b'}');
}

fn write_str_array<'a>(out: &mut Vec<u8>, items: impl Iterator<Item = &'a str>, d: Dialect) {
    out.push(b'[');
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_str(out, s, d);
    }
    out.push(b']');
}

/// `ClusterInfo` (GET_BROKER_CLUSTER_INFO), legacy dialect in every version.
pub fn cluster_info_json(table: &RouteTable) -> Vec<u8> {
    let d = Dialect::Legacy;
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"brokerAddrTable\":{");
    for (i, (name, g)) in table.brokers().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_key(&mut out, name, d);
        let data = BrokerData {
            broker_addrs: g.addrs.clone(),
            broker_name: name.clone(),
            cluster: g.cluster.clone(),
            enable_acting_master: g.acting_master,
            zone_name: g.zone.clone(),
        };
        write_broker_data(&mut out, &data, d);
    }
    out.extend_from_slice(b"},\"clusterAddrTable\":{");
    for (i, (cluster, names)) in table.clusters().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_key(&mut out, cluster, d);
        write_str_array(&mut out, names.iter().map(String::as_str), d);
    }
    out.extend_from_slice(b"}}");
    out
}

/// `TopicList` (§B.9).
pub fn topic_list_json<'a>(
    topics: impl Iterator<Item = &'a str>,
    broker_addr: Option<&str>,
) -> Vec<u8> {
    let d = Dialect::Legacy;
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    if let Some(addr) = broker_addr {
        out.extend_from_slice(b"\"brokerAddr\":");
        json::write_str(&mut out, addr, d);
        out.push(b',');
    }
    out.extend_from_slice(b"\"topicList\":");
    write_str_array(&mut out, topics, d);
    out.push(b'}');
    out
}
