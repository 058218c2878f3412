//! Request code to handler. Lookups are answered here from the current
//! snapshot; mutations go to the writer and are answered when it replies.

use super::conn::Conn;
use super::ShardCtx;
use crate::protocol::body::{self, DataVersion};
use crate::protocol::codes::{self, request as req, response as resp};
use crate::protocol::frame::{self, Frame};
use crate::protocol::header::Header;
use crate::protocol::json::{self, Dialect};
use crate::route::encode::{self, TopicRoute};
use crate::route::table::{QueueData, RegisterOutcome, Registration, Unregistration};
use crate::writer::{Control, Outcome, Request};
use crossbeam_channel::TrySendError;
use futures_channel::oneshot;

/// What to do with one request.
pub enum Handled {
    /// Write this frame now (`None`: nothing to write, e.g. oneway).
    Now(Option<Vec<u8>>),
    /// Write what `finish` makes of the writer's answer.
    Later(Pending),
}

pub struct Pending {
    rx: oneshot::Receiver<Outcome>,
    opaque: i32,
    finish: fn(Outcome, i32) -> Vec<u8>,
}

impl Pending {
    /// The reply frame, or `None` when the writer dropped the request.
    pub async fn reply(self) -> Option<Vec<u8>> {
        let outcome = self.rx.await.ok()?;
        Some((self.finish)(outcome, self.opaque))
    }
}

/// The Java remark for an exception thrown inside a handler; clients only
/// show it, so it names the Java exception and what was missing.
fn npe(what: &str) -> String {
    format!("java.lang.NullPointerException: {what} is null")
}

pub fn handle(ctx: &ShardCtx, conn: &Conn, frame: Frame) -> Handled {
    let h = &frame.header;
    let reply = |bytes: Vec<u8>| Handled::Now((!h.is_oneway()).then_some(bytes));
    if !ctx.settings.admin_acl.allows(h.code, conn.peer) {
        return reply(ctx.refuse_admin(h.code, conn.peer, h.opaque));
    }
    match h.code {
        req::GET_ROUTEINFO_BY_TOPIC => reply(route_info(ctx, h)),
        req::GET_BROKER_CLUSTER_INFO => {
            let snapshot = ctx.snapshot.load();
            reply(frame::response(
                resp::SUCCESS,
                h.opaque,
                None,
                None,
                &snapshot.brokers.cluster_info,
            ))
        }
        req::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => reply(all_topics(ctx, h)),
        req::GET_TOPICS_BY_CLUSTER => reply(topics_by_cluster(ctx, h)),
        req::GET_SYSTEM_TOPIC_LIST_FROM_NS => reply(system_topics(ctx, h)),
        req::GET_UNIT_TOPIC_LIST => reply(unit_topics(ctx, h, |f| f & FLAG_UNIT != 0)),
        req::GET_HAS_UNIT_SUB_TOPIC_LIST => reply(unit_topics(ctx, h, |f| f & FLAG_UNIT_SUB != 0)),
        req::GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST => reply(unit_topics(ctx, h, |f| {
            f & FLAG_UNIT_SUB != 0 && f & FLAG_UNIT == 0
        })),
        req::GET_BROKER_MEMBER_GROUP => reply(broker_member_group(ctx, h)),
        req::WIPE_WRITE_PERM_OF_BROKER => write_perm(ctx, h, false),
        req::ADD_WRITE_PERM_OF_BROKER => write_perm(ctx, h, true),
        req::DELETE_TOPIC_IN_NAMESRV => delete_topic(ctx, h),
        req::REGISTER_TOPIC_IN_NAMESRV => register_topic(ctx, &frame),
        req::PUT_KV_CONFIG => put_kv(ctx, h),
        req::GET_KV_CONFIG => reply(get_kv(ctx, h)),
        req::DELETE_KV_CONFIG => delete_kv(ctx, h),
        req::GET_KVLIST_BY_NAMESPACE => reply(kv_list(ctx, h)),
        req::UPDATE_NAMESRV_CONFIG => update_config(ctx, &frame),
        req::GET_NAMESRV_CONFIG => {
            let snapshot = ctx.snapshot.load();
            let body = &snapshot.config_text;
            reply(frame::response(resp::SUCCESS, h.opaque, None, None, body))
        }
        req::REGISTER_BROKER => register(ctx, conn, &frame),
        req::UNREGISTER_BROKER => reply(unregister(ctx, h)),
        req::QUERY_DATA_VERSION => query_data_version(ctx, &frame),
        req::BROKER_HEARTBEAT => reply(heartbeat(ctx, h)),
        code => {
            let remark = codes::remark_not_supported(code);
            let code = resp::REQUEST_CODE_NOT_SUPPORTED;
            reply(frame::response(code, h.opaque, Some(&remark), None, b""))
        }
    }
}

fn error(opaque: i32, code: i32, remark: &str) -> Vec<u8> {
    frame::response(code, opaque, Some(remark), None, b"")
}

// ----- lookups -----

fn route_info(ctx: &ShardCtx, h: &Header) -> Vec<u8> {
    let snapshot = ctx.snapshot.load();
    if ctx.waiting_for_service(&snapshot.settings) {
        return error(h.opaque, resp::SYSTEM_ERROR, codes::REMARK_NOT_READY);
    }
    let topic = h.ext("topic");
    let Some(entry) = topic.and_then(|t| snapshot.topics.get(t)) else {
        let remark = codes::remark_topic_not_exist(topic);
        return error(h.opaque, resp::TOPIC_NOT_EXIST, &remark);
    };
    let zone = h.ext("__ZONE_NAME").filter(|z| !z.trim().is_empty());
    if let (Some(zone), Some(true)) = (zone, h.ext_bool("__ZONE_MODE")) {
        if let Some(body) = zone_filtered(&entry.legacy, zone) {
            return frame::response(resp::SUCCESS, h.opaque, None, None, &body);
        }
    }
    let standard =
        h.version >= codes::version::V4_9_4 || h.ext_bool("acceptStandardJsonOnly") == Some(true);
    let body = if standard {
        &entry.standard
    } else {
        &entry.legacy
    };
    frame::response(resp::SUCCESS, h.opaque, None, None, body)
}

/// Java's zone hook (`namesrv-commands.md` §A.6 step 6): decode the route,
/// keep groups without a master or in `zone`, re-encode in legacy form.
fn zone_filtered(legacy: &[u8], zone: &str) -> Option<Vec<u8>> {
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

fn all_topics(ctx: &ShardCtx, h: &Header) -> Vec<u8> {
    let snapshot = ctx.snapshot.load();
    if !snapshot.settings.enable_all_topic_list {
        return error(h.opaque, resp::SYSTEM_ERROR, "disable");
    }
    let body = encode::topic_list_json(snapshot.topics.names(), None);
    frame::response(resp::SUCCESS, h.opaque, None, None, &body)
}

/// topicSysFlag bits (`namesrv-commands.md` §B.2).
const FLAG_UNIT: i32 = 1;
const FLAG_UNIT_SUB: i32 = 2;

fn topic_list_reply(h: &Header, mut names: Vec<&str>, broker_addr: Option<&str>) -> Vec<u8> {
    names.sort_unstable();
    let body = encode::topic_list_json(names.into_iter(), broker_addr);
    frame::response(resp::SUCCESS, h.opaque, None, None, &body)
}

fn topics_by_cluster(ctx: &ShardCtx, h: &Header) -> Vec<u8> {
    let snapshot = ctx.snapshot.load();
    if !snapshot.settings.enable_topic_list {
        return error(h.opaque, resp::SYSTEM_ERROR, "disable");
    }
    let members = h
        .ext("cluster")
        .and_then(|c| snapshot.brokers.clusters.get(c));
    let names = match members {
        None => Vec::new(),
        Some(members) => snapshot
            .topics
            .entries()
            .filter(|(_, e)| e.brokers.iter().any(|b| members.contains(&**b)))
            .map(|(name, _)| name)
            .collect(),
    };
    topic_list_reply(h, names, None)
}

/// Cluster and broker names double as system topics (§A.15).
fn system_topics(ctx: &ShardCtx, h: &Header) -> Vec<u8> {
    let snapshot = ctx.snapshot.load();
    let view = &snapshot.brokers;
    let mut names: Vec<&str> = Vec::new();
    for (cluster, members) in &view.clusters {
        names.push(cluster);
        names.extend(members.iter().map(String::as_str));
    }
    names.sort_unstable();
    names.dedup();
    let addr = view.groups.values().find_map(|g| g.addrs.values().next());
    topic_list_reply(h, names, addr.map(String::as_str))
}

fn unit_topics(ctx: &ShardCtx, h: &Header, select: fn(i32) -> bool) -> Vec<u8> {
    let snapshot = ctx.snapshot.load();
    if !snapshot.settings.enable_topic_list {
        return error(h.opaque, resp::SYSTEM_ERROR, "disable");
    }
    let names = snapshot
        .topics
        .entries()
        .filter(|(_, e)| select(e.sys_flag))
        .map(|(name, _)| name)
        .collect();
    topic_list_reply(h, names, None)
}

/// GET_BROKER_MEMBER_GROUP (§A.22): legacy encoding, and Java's leftover
/// remark on a SUCCESS reply.
fn broker_member_group(ctx: &ShardCtx, h: &Header) -> Vec<u8> {
    let snapshot = ctx.snapshot.load();
    let name = h.ext("brokerName");
    let group = name.and_then(|n| snapshot.brokers.groups.get(n));
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
    if let Some(cluster) = h.ext("clusterName") {
        body.extend_from_slice(b",\"cluster\":");
        json::write_str(&mut body, cluster, d);
    }
    body.extend_from_slice(b"}}");
    let remark = Some("not set any response code");
    frame::response(resp::SUCCESS, h.opaque, remark, None, &body)
}

// ----- mutations -----

/// Sends a request to the writer; a full queue is SYSTEM_BUSY (DECISIONS 7).
fn to_writer(
    ctx: &ShardCtx,
    h: &Header,
    make: impl FnOnce(Option<crate::writer::Reply>) -> Request,
    finish: fn(Outcome, i32) -> Vec<u8>,
) -> Handled {
    let (tx, rx) = if h.is_oneway() {
        (None, None)
    } else {
        let (tx, rx) = oneshot::channel();
        (Some(tx), Some(rx))
    };
    match ctx.writer.try_send(make(tx)) {
        Ok(()) => match rx {
            Some(rx) => Handled::Later(Pending {
                rx,
                opaque: h.opaque,
                finish,
            }),
            None => Handled::Now(None),
        },
        Err(e) => {
            let (code, remark) = match e {
                TrySendError::Full(_) => (resp::SYSTEM_BUSY, codes::REMARK_OVERLOAD),
                TrySendError::Disconnected(_) => (resp::SYSTEM_ERROR, "name server stopping"),
            };
            ctx.count_busy(code == resp::SYSTEM_BUSY);
            Handled::Now((!h.is_oneway()).then(|| error(h.opaque, code, remark)))
        }
    }
}

fn register(ctx: &ShardCtx, conn: &Conn, frame: &Frame) -> Handled {
    let h = &frame.header;
    let oneway = h.is_oneway();
    let fail = |code: i32, remark: &str, ext: Option<&[(&str, &str)]>| {
        Handled::Now((!oneway).then(|| frame::response(code, h.opaque, Some(remark), ext, b"")))
    };
    // Java's order: CRC, body, then the unboxing of a missing brokerId.
    let body = frame.body.as_deref();
    let crc_given = h.ext_i32("bodyCrc32").unwrap_or(0);
    if crc_given != 0 {
        let crc = body.map_or(0, |b| crc32fast::hash(b) & 0x7FFF_FFFF) as i32;
        if crc != crc_given {
            return fail(resp::SYSTEM_ERROR, codes::REMARK_CRC_MISMATCH, Some(&[]));
        }
    }
    if h.version < 0 {
        return fail(
            resp::SYSTEM_ERROR,
            "java.lang.ArrayIndexOutOfBoundsException",
            None,
        );
    }
    let compressed = h.ext_bool("compressed").unwrap_or(false);
    let body = match body::decode_register(body, h.version, compressed) {
        Ok(b) => b,
        Err(e) => {
            let remark = format!(
                "org.apache.rocketmq.remoting.exception.RemotingCommandException: Failed to decode RegisterBrokerBody, {e}"
            );
            return fail(resp::SYSTEM_ERROR, &remark, None);
        }
    };
    let Some(id) = h.ext_i64("brokerId") else {
        return fail(resp::SYSTEM_ERROR, &npe("brokerId"), None);
    };
    let (Some(cluster), Some(addr), Some(name)) = (
        h.ext("clusterName"),
        h.ext("brokerAddr"),
        h.ext("brokerName"),
    ) else {
        // Java registers nothing coherent and still answers SUCCESS.
        let body = ctx.snapshot.load().order_conf_body();
        return Handled::Now((!oneway).then(|| register_reply(None, h.opaque, body.as_deref())));
    };
    let reg = Registration {
        cluster: cluster.to_string(),
        addr: addr.to_string(),
        name: name.to_string(),
        id,
        ha_addr: h.ext("haServerAddr").map(str::to_string),
        zone: h.ext("__ZONE_NAME").map(str::to_string),
        timeout_ms: h.ext_i64("heartbeatTimeoutMillis").map(|t| t.max(0) as u64),
        acting_master: h.ext_bool("enableActingMaster"),
        body,
        conn: conn.id,
    };
    ctx.track_broker(conn);
    let stamp_ms = ctx.clock.now_ms();
    to_writer(
        ctx,
        h,
        |reply| Request::Register {
            reg,
            stamp_ms,
            reply,
        },
        finish_register,
    )
}

fn finish_register(outcome: Outcome, opaque: i32) -> Vec<u8> {
    match outcome {
        Outcome::Register(RegisterOutcome::Registered { master }, body) => {
            register_reply(master.as_ref(), opaque, body.as_deref())
        }
        Outcome::Register(RegisterOutcome::Superseded, body) => {
            register_reply(None, opaque, body.as_deref())
        }
        Outcome::Register(RegisterOutcome::Refused, _) => frame::response(
            resp::SYSTEM_ERROR,
            opaque,
            Some(codes::REMARK_REGISTER_FAILED),
            Some(&[]),
            b"",
        ),
        Outcome::Register(RegisterOutcome::LimitReached(why), _) => {
            frame::response(resp::SYSTEM_ERROR, opaque, Some(&why), Some(&[]), b"")
        }
        other => unreachable!("register answered with {other:?}"),
    }
}

/// SUCCESS with `haServerAddr`/`masterAddr` for a slave whose master is
/// live, and the ORDER_TOPIC_CONFIG KVTable as body when there is one.
fn register_reply(
    master: Option<&(String, Option<String>)>,
    opaque: i32,
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut ext: Vec<(&str, &str)> = Vec::new();
    if let Some((master_addr, ha)) = master {
        if let Some(ha) = ha {
            ext.push(("haServerAddr", ha));
        }
        ext.push(("masterAddr", master_addr));
    }
    frame::response(
        resp::SUCCESS,
        opaque,
        None,
        Some(&ext),
        body.unwrap_or_default(),
    )
}

fn unregister(ctx: &ShardCtx, h: &Header) -> Vec<u8> {
    let ok = frame::response(resp::SUCCESS, h.opaque, None, None, b"");
    let (Some(cluster), Some(addr), Some(name)) = (
        h.ext("clusterName"),
        h.ext("brokerAddr"),
        h.ext("brokerName"),
    ) else {
        // Java queues it and its batch step skips it.
        return ok;
    };
    let unreg = Unregistration {
        cluster: cluster.to_string(),
        addr: addr.to_string(),
        name: name.to_string(),
        id: h.ext_i64("brokerId").unwrap_or(0),
    };
    let stamp_ms = ctx.clock.now_ms();
    if !ctx.send_unregister(Control::Unregister { unreg, stamp_ms }) {
        // Java's answer when its unregistration queue is full: no remark.
        return frame::response(resp::SYSTEM_ERROR, h.opaque, None, None, b"");
    }
    ok
}

fn query_data_version(ctx: &ShardCtx, frame: &Frame) -> Handled {
    let h = &frame.header;
    let (Some(cluster), Some(addr)) = (h.ext("clusterName"), h.ext("brokerAddr")) else {
        let remark = npe("clusterName or brokerAddr");
        return Handled::Now(
            (!h.is_oneway()).then(|| error(h.opaque, resp::SYSTEM_ERROR, &remark)),
        );
    };
    let given = match frame.body.as_deref().map(DataVersion::parse) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            let remark = format!("com.alibaba.fastjson.JSONException: {e}");
            return Handled::Now(
                (!h.is_oneway()).then(|| error(h.opaque, resp::SYSTEM_ERROR, &remark)),
            );
        }
    };
    let (cluster, addr) = (cluster.to_string(), addr.to_string());
    let stamp_ms = ctx.clock.now_ms();
    to_writer(
        ctx,
        h,
        |reply| Request::QueryDataVersion {
            cluster,
            addr,
            given,
            stamp_ms,
            reply,
        },
        finish_query_data_version,
    )
}

fn finish_query_data_version(outcome: Outcome, opaque: i32) -> Vec<u8> {
    let Outcome::DataVersion { changed, stored } = outcome else {
        unreachable!("query answered with {outcome:?}");
    };
    let ext = [("changed", if changed { "true" } else { "false" })];
    let body = stored.map(|v| v.to_json()).unwrap_or_default();
    frame::response(resp::SUCCESS, opaque, None, Some(&ext), &body)
}

fn write_perm(ctx: &ShardCtx, h: &Header, add: bool) -> Handled {
    let name = h.ext("brokerName").unwrap_or_default().to_string();
    let finish = if add {
        finish_add_perm
    } else {
        finish_wipe_perm
    };
    to_writer(
        ctx,
        h,
        |reply| Request::WritePerm { name, add, reply },
        finish,
    )
}

fn finish_wipe_perm(outcome: Outcome, opaque: i32) -> Vec<u8> {
    finish_count("wipeTopicCount", outcome, opaque)
}

fn finish_add_perm(outcome: Outcome, opaque: i32) -> Vec<u8> {
    finish_count("addTopicCount", outcome, opaque)
}

fn finish_count(key: &str, outcome: Outcome, opaque: i32) -> Vec<u8> {
    let Outcome::Count(n) = outcome else {
        unreachable!("permission change answered with {outcome:?}");
    };
    let n = n.to_string();
    frame::response(resp::SUCCESS, opaque, None, Some(&[(key, &n)]), b"")
}

/// SUCCESS with no extFields, or the writer's reason for refusing.
fn finish_done(outcome: Outcome, opaque: i32) -> Vec<u8> {
    match outcome {
        Outcome::Failed(why) => error(opaque, resp::SYSTEM_ERROR, &why),
        Outcome::Denied => error(opaque, resp::NO_PERMISSION, codes::REMARK_BLACK_LIST),
        _ => frame::response(resp::SUCCESS, opaque, None, None, b""),
    }
}

// ----- KV config (§A.1-§A.3, §A.13) -----

fn put_kv(ctx: &ShardCtx, h: &Header) -> Handled {
    let (Some(namespace), Some(key)) = (h.ext("namespace"), h.ext("key")) else {
        let e = error(h.opaque, resp::SYSTEM_ERROR, "namespace or key is null");
        return Handled::Now((!h.is_oneway()).then_some(e));
    };
    let make = |reply| Request::Kv {
        namespace: namespace.to_string(),
        key: key.to_string(),
        value: h.ext("value").map(str::to_string),
        delete: false,
        reply,
    };
    to_writer(ctx, h, make, finish_done)
}

fn delete_kv(ctx: &ShardCtx, h: &Header) -> Handled {
    let (Some(namespace), Some(key)) = (h.ext("namespace"), h.ext("key")) else {
        // Java looks up a null namespace, finds nothing, answers SUCCESS.
        return Handled::Now((!h.is_oneway()).then(|| finish_done(Outcome::Done, h.opaque)));
    };
    let make = |reply| Request::Kv {
        namespace: namespace.to_string(),
        key: key.to_string(),
        value: None,
        delete: true,
        reply,
    };
    to_writer(ctx, h, make, finish_done)
}

fn get_kv(ctx: &ShardCtx, h: &Header) -> Vec<u8> {
    let (namespace, key) = (h.ext("namespace"), h.ext("key"));
    let snapshot = ctx.snapshot.load();
    let found = namespace.zip(key).and_then(|(n, k)| snapshot.kv.get(n, k));
    match found {
        Some(value) => frame::response(
            resp::SUCCESS,
            h.opaque,
            None,
            Some(&[("value", value)]),
            b"",
        ),
        None => {
            let remark = format!(
                "No config item, Namespace: {} Key: {}",
                namespace.unwrap_or("null"),
                key.unwrap_or("null")
            );
            frame::response(
                resp::QUERY_NOT_FOUND,
                h.opaque,
                Some(&remark),
                Some(&[]),
                b"",
            )
        }
    }
}

fn kv_list(ctx: &ShardCtx, h: &Header) -> Vec<u8> {
    let namespace = h.ext("namespace");
    let snapshot = ctx.snapshot.load();
    match namespace.and_then(|n| snapshot.kv.table_json(n)) {
        Some(body) => frame::response(resp::SUCCESS, h.opaque, None, None, &body),
        None => {
            let remark = format!("No config item, Namespace: {}", namespace.unwrap_or("null"));
            error(h.opaque, resp::QUERY_NOT_FOUND, &remark)
        }
    }
}

// ----- NameServer config (§A.19) -----

fn update_config(ctx: &ShardCtx, frame: &Frame) -> Handled {
    let h = &frame.header;
    let Some(body) = frame.body.as_deref() else {
        return Handled::Now((!h.is_oneway()).then(|| finish_done(Outcome::Done, h.opaque)));
    };
    let entries = crate::config::parse_properties(&String::from_utf8_lossy(body));
    to_writer(
        ctx,
        h,
        |reply| Request::UpdateConfig { entries, reply },
        finish_done,
    )
}

fn delete_topic(ctx: &ShardCtx, h: &Header) -> Handled {
    let Some(topic) = h.ext("topic").map(str::to_string) else {
        // Java swallows the exception of a missing topic: SUCCESS.
        return Handled::Now((!h.is_oneway()).then(|| finish_done(Outcome::Done, h.opaque)));
    };
    let cluster = h.ext("clusterName").map(str::to_string);
    let make = |reply| Request::DeleteTopic {
        topic,
        cluster,
        reply,
    };
    to_writer(ctx, h, make, finish_done)
}

/// The `queueDatas` of a REGISTER_TOPIC_IN_NAMESRV body.
#[derive(serde::Deserialize)]
struct TopicRouteBody {
    #[serde(default, rename = "queueDatas")]
    queue_datas: Option<Vec<QueueDataIn>>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueueDataIn {
    broker_name: Option<String>,
    #[serde(default)]
    perm: i32,
    #[serde(default)]
    read_queue_nums: i32,
    #[serde(default)]
    topic_sys_flag: i32,
    #[serde(default)]
    write_queue_nums: i32,
}

fn register_topic(ctx: &ShardCtx, frame: &Frame) -> Handled {
    let h = &frame.header;
    let now = |bytes: Vec<u8>| Handled::Now((!h.is_oneway()).then_some(bytes));
    let ok = || frame::response(resp::SUCCESS, h.opaque, None, None, b"");
    let (Some(topic), Some(body)) = (h.ext("topic"), frame.body.as_deref()) else {
        return now(ok());
    };
    let parsed: Option<TopicRouteBody> =
        match serde_json::from_slice(&json::quote_numeric_keys(body)) {
            Ok(p) => p,
            Err(e) => {
                let remark = format!("com.alibaba.fastjson.JSONException: {e}");
                return now(error(h.opaque, resp::SYSTEM_ERROR, &remark));
            }
        };
    let entries: Vec<(String, QueueData)> = parsed
        .and_then(|p| p.queue_datas)
        .unwrap_or_default()
        .into_iter()
        .map(|q| {
            let data = QueueData {
                read_queue_nums: q.read_queue_nums,
                write_queue_nums: q.write_queue_nums,
                perm: q.perm,
                topic_sys_flag: q.topic_sys_flag,
            };
            (q.broker_name.unwrap_or_default(), data)
        })
        .collect();
    if entries.is_empty() {
        return now(ok());
    }
    let topic = topic.to_string();
    to_writer(
        ctx,
        h,
        |reply| Request::RegisterTopic {
            topic,
            entries,
            reply,
        },
        finish_done,
    )
}

fn heartbeat(ctx: &ShardCtx, h: &Header) -> Vec<u8> {
    let (Some(cluster), Some(addr)) = (h.ext("clusterName"), h.ext("brokerAddr")) else {
        return error(
            h.opaque,
            resp::SYSTEM_ERROR,
            &npe("clusterName or brokerAddr"),
        );
    };
    let request = Request::Heartbeat {
        cluster: cluster.to_string(),
        addr: addr.to_string(),
        stamp_ms: ctx.clock.now_ms(),
    };
    if ctx.writer.try_send(request).is_err() {
        ctx.count_busy(true);
        return error(h.opaque, resp::SYSTEM_BUSY, codes::REMARK_OVERLOAD);
    }
    frame::response(resp::SUCCESS, h.opaque, None, None, b"")
}
