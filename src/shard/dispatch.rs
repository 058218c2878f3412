//! Request code to handler, and nothing else: each handler reads its
//! header fields, then either answers from the published snapshot (whose
//! bodies `route/` built) or hands a typed request to the writer and
//! answers from the writer's typed reply. Find any request code here in
//! one hop.

use super::conn::Conn;
use super::prepare::{prepare_register, Prepared, PreparedBody, RegisterRefused};
use super::ShardCtx;
use crate::protocol::body::{DataVersion, RegisterBody, TopicQueueIn};
use crate::protocol::codes::{self, request as req, response as resp};
use crate::protocol::frame::{self, Frame};
use crate::protocol::header::Header;
use crate::route::lists::{self, TopicList, UnitSelect};
use crate::route::table::{QueueData, RegisterOutcome, Registration, Unregistration};
use crate::writer::{ConfigRefused, DataVersionAnswer, Registered, Reply, Request};
use crossbeam_channel::TrySendError;
use futures_channel::oneshot;
use std::future::Future;
use std::pin::Pin;

/// What to do with one request.
pub enum Handled {
    /// Write this frame now; dropped for a oneway request.
    Now(Vec<u8>),
    /// Nothing to write: a oneway request was handed to the writer.
    Nothing,
    /// Write the frame this resolves to, once the writer has answered
    /// (`None`: the writer dropped the request).
    Later(Pending),
}

pub type Pending = Pin<Box<dyn Future<Output = Option<Vec<u8>>>>>;

/// The ext fields that name a broker: cluster, address, broker name.
const BROKER_KEYS: [&str; 3] = ["clusterName", "brokerAddr", "brokerName"];
/// The ext fields that name a live broker: cluster and address.
const LIVE_KEYS: [&str; 2] = ["clusterName", "brokerAddr"];

/// Java's remark when a handler dereferences a missing field: clients
/// only show it, so it names the Java exception and what was missing.
fn null_field_remark(what: &str) -> String {
    format!("java.lang.NullPointerException: {what} is null")
}

pub fn handle(ctx: &ShardCtx, conn: &Conn, prepared: Prepared) -> Handled {
    let oneway = prepared.frame.header.is_oneway();
    match handle_request(ctx, conn, prepared) {
        Handled::Now(_) if oneway => Handled::Nothing,
        handled => handled,
    }
}

fn handle_request(ctx: &ShardCtx, conn: &Conn, prepared: Prepared) -> Handled {
    let Prepared { frame, body } = prepared;
    let h = &frame.header;
    if !ctx.startup.admin_acl.allows(h.code, conn.peer) {
        return Handled::Now(ctx.refuse_admin(h.code, conn.peer, h.opaque));
    }
    match h.code {
        req::GET_ROUTEINFO_BY_TOPIC => Handled::Now(route_info(ctx, h)),
        req::GET_BROKER_CLUSTER_INFO => {
            let published = ctx.published.load();
            Handled::Now(success(h, &published.routes.brokers.cluster_info))
        }
        req::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => topic_list(ctx, h, TopicList::All),
        req::GET_TOPICS_BY_CLUSTER => match h.ext("cluster") {
            Some(cluster) => topic_list(ctx, h, TopicList::ByCluster(cluster.to_string())),
            None => topic_list(ctx, h, TopicList::ByCluster(String::new())),
        },
        req::GET_SYSTEM_TOPIC_LIST_FROM_NS => topic_list(ctx, h, TopicList::System),
        req::GET_UNIT_TOPIC_LIST => topic_list(ctx, h, TopicList::Unit(UnitSelect::Unit)),
        req::GET_HAS_UNIT_SUB_TOPIC_LIST => {
            topic_list(ctx, h, TopicList::Unit(UnitSelect::HasUnitSub))
        }
        req::GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST => {
            topic_list(ctx, h, TopicList::Unit(UnitSelect::HasUnitSubNotUnit))
        }
        req::GET_BROKER_MEMBER_GROUP => Handled::Now(broker_member_group(ctx, h)),
        req::WIPE_WRITE_PERM_OF_BROKER => write_perm(ctx, h, false),
        req::ADD_WRITE_PERM_OF_BROKER => write_perm(ctx, h, true),
        req::DELETE_TOPIC_IN_NAMESRV => delete_topic(ctx, h),
        req::REGISTER_TOPIC_IN_NAMESRV => match body {
            PreparedBody::RegisterTopic(queues) => register_topic(ctx, h, queues),
            _ => Handled::Now(ok_empty(h.opaque)),
        },
        req::PUT_KV_CONFIG => put_kv(ctx, h),
        req::GET_KV_CONFIG => get_kv(ctx, h),
        req::DELETE_KV_CONFIG => delete_kv(ctx, h),
        req::GET_KVLIST_BY_NAMESPACE => kv_list(ctx, h),
        req::UPDATE_NAMESRV_CONFIG => match body {
            PreparedBody::Properties(entries) => update_config(ctx, h, entries),
            _ => Handled::Now(ok_empty(h.opaque)),
        },
        req::GET_NAMESRV_CONFIG => {
            let published = ctx.published.load();
            Handled::Now(success(h, &published.config_text))
        }
        req::REGISTER_BROKER => match body {
            PreparedBody::Register(decoded) => register(ctx, conn, h, decoded),
            _ => register(ctx, conn, h, prepare_register(&frame)),
        },
        req::UNREGISTER_BROKER => Handled::Now(unregister(ctx, h)),
        req::QUERY_DATA_VERSION => query_data_version(ctx, &frame),
        req::BROKER_HEARTBEAT => Handled::Now(heartbeat(ctx, h)),
        code => {
            let remark = codes::remark_not_supported(code);
            Handled::Now(error(h.opaque, resp::REQUEST_CODE_NOT_SUPPORTED, &remark))
        }
    }
}

fn success(h: &Header, body: &[u8]) -> Vec<u8> {
    frame::response(resp::SUCCESS, h.opaque, None, None, body)
}

fn error(opaque: i32, code: i32, remark: &str) -> Vec<u8> {
    frame::response(code, opaque, Some(remark), None, b"")
}

fn ok_empty(opaque: i32) -> Vec<u8> {
    frame::response(resp::SUCCESS, opaque, None, None, b"")
}

// ----- lookups -----

fn route_info(ctx: &ShardCtx, h: &Header) -> Vec<u8> {
    let published = ctx.published.load();
    if ctx.waiting_for_service(&published.settings) {
        return error(h.opaque, resp::SYSTEM_ERROR, codes::REMARK_NOT_READY);
    }
    let topic = h.ext("topic");
    let Some(entry) = topic.and_then(|t| published.routes.topics.get(t)) else {
        let remark = codes::remark_topic_not_exist(topic);
        return error(h.opaque, resp::TOPIC_NOT_EXIST, &remark);
    };
    let zone = h.ext("__ZONE_NAME").filter(|z| !z.trim().is_empty());
    if let (Some(zone), Some(true)) = (zone, h.ext_bool("__ZONE_MODE")) {
        if let Some(body) = lists::zone_filtered(&entry.legacy, zone) {
            return success(h, &body);
        }
    }
    let standard =
        h.version >= codes::version::V4_9_4 || h.ext_bool("acceptStandardJsonOnly") == Some(true);
    let body = if standard {
        &entry.standard
    } else {
        &entry.legacy
    };
    success(h, body)
}

/// A topic list: from the snapshot's cache, or built on the blocking pool
/// the first time it is asked for. 206 is gated by enableAllTopicList,
/// 224 and 311-313 by enableTopicList; 304 never is.
fn topic_list(ctx: &ShardCtx, h: &Header, list: TopicList) -> Handled {
    let published = ctx.published.load_full();
    let enabled = match list {
        TopicList::All => published.settings.enable_all_topic_list,
        TopicList::System => true,
        TopicList::ByCluster(_) | TopicList::Unit(_) => published.settings.enable_topic_list,
    };
    if !enabled {
        return Handled::Now(error(h.opaque, resp::SYSTEM_ERROR, "disable"));
    }
    let opaque = h.opaque;
    if let Some(body) = published.routes.lists.get(&list) {
        return Handled::Now(frame::response(resp::SUCCESS, opaque, None, None, &body));
    }
    Handled::Later(Box::pin(async move {
        let build = move || {
            let routes = &published.routes;
            let body = routes.lists.get_or_build(&list, routes);
            frame::response(resp::SUCCESS, opaque, None, None, &body)
        };
        super::off_shard(build).await
    }))
}

/// GET_BROKER_MEMBER_GROUP (§A.22), with Java's leftover remark on a
/// SUCCESS reply.
fn broker_member_group(ctx: &ShardCtx, h: &Header) -> Vec<u8> {
    let published = ctx.published.load();
    let name = h.ext("brokerName");
    let group = name.and_then(|n| published.routes.brokers.groups.get(n));
    let body = lists::member_group(group, name, h.ext("clusterName"));
    let remark = Some("not set any response code");
    frame::response(resp::SUCCESS, h.opaque, remark, None, &body)
}

/// A reply whose encoding grows with a stored value is built on the
/// shard's blocking pool when the value is large, so that no request keeps
/// the shard for long.
fn encode_sized(size: usize, encode: impl FnOnce() -> Vec<u8> + Send + 'static) -> Handled {
    if size < ENCODE_OFF_SHARD_BYTES_MIN {
        return Handled::Now(encode());
    }
    Handled::Later(Box::pin(super::off_shard(encode)))
}

/// Stored values at least this large are encoded off the shard.
const ENCODE_OFF_SHARD_BYTES_MIN: usize = 64 * 1024;

fn get_kv(ctx: &ShardCtx, h: &Header) -> Handled {
    let (namespace, key) = (h.ext("namespace"), h.ext("key"));
    let published = ctx.published.load_full();
    let found = namespace
        .zip(key)
        .and_then(|(n, k)| published.routes.kv.get(n, k));
    let opaque = h.opaque;
    match found {
        Some(value) => {
            let size = value.len();
            let (namespace, key) = (namespace.unwrap_or_default(), key.unwrap_or_default());
            let (namespace, key) = (namespace.to_string(), key.to_string());
            encode_sized(size, move || {
                let value = published
                    .routes
                    .kv
                    .get(&namespace, &key)
                    .unwrap_or_default();
                let ext = [("value", value)];
                frame::response(resp::SUCCESS, opaque, None, Some(&ext), b"")
            })
        }
        None => {
            let remark = format!(
                "No config item, Namespace: {} Key: {}",
                namespace.unwrap_or("null"),
                key.unwrap_or("null")
            );
            let code = resp::QUERY_NOT_FOUND;
            Handled::Now(frame::response(code, opaque, Some(&remark), Some(&[]), b""))
        }
    }
}

fn kv_list(ctx: &ShardCtx, h: &Header) -> Handled {
    let namespace = h.ext("namespace");
    let published = ctx.published.load_full();
    let Some(size) = namespace.and_then(|n| published.routes.kv.namespace_bytes(n)) else {
        let remark = format!("No config item, Namespace: {}", namespace.unwrap_or("null"));
        return Handled::Now(error(h.opaque, resp::QUERY_NOT_FOUND, &remark));
    };
    let (namespace, opaque) = (namespace.unwrap_or_default().to_string(), h.opaque);
    encode_sized(size, move || {
        let body = published
            .routes
            .kv
            .table_json(&namespace)
            .unwrap_or_default();
        frame::response(resp::SUCCESS, opaque, None, None, &body)
    })
}

// ----- mutations -----

/// Hands a request to the writer; its typed reply becomes the frame
/// `finish` makes of it. A full queue is SYSTEM_BUSY (DECISIONS 7).
fn to_writer<T: 'static>(
    ctx: &ShardCtx,
    h: &Header,
    make: impl FnOnce(Reply<T>) -> Request,
    finish: fn(T, i32) -> Vec<u8>,
) -> Handled {
    let (tx, rx) = match h.is_oneway() {
        true => (None, None),
        false => {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        }
    };
    if let Err(e) = ctx.requests.try_send(make(tx)) {
        let (code, remark) = match e {
            TrySendError::Full(_) => (resp::SYSTEM_BUSY, codes::REMARK_OVERLOAD),
            TrySendError::Disconnected(_) => (resp::SYSTEM_ERROR, "name server stopping"),
        };
        ctx.count_busy(code == resp::SYSTEM_BUSY);
        return Handled::Now(error(h.opaque, code, remark));
    }
    let Some(rx) = rx else {
        return Handled::Nothing;
    };
    let opaque = h.opaque;
    Handled::Later(Box::pin(async move {
        let answer = rx.await.ok()?;
        Some(finish(answer, opaque))
    }))
}

fn register(
    ctx: &ShardCtx,
    conn: &Conn,
    h: &Header,
    decoded: Result<RegisterBody, RegisterRefused>,
) -> Handled {
    let fail = |code: i32, remark: &str, ext: Option<&[(&str, &str)]>| {
        Handled::Now(frame::response(code, h.opaque, Some(remark), ext, b""))
    };
    let body = match decoded {
        Ok(b) => b,
        Err(RegisterRefused::CrcMismatch) => {
            return fail(resp::SYSTEM_ERROR, codes::REMARK_CRC_MISMATCH, Some(&[]));
        }
        Err(RegisterRefused::NegativeVersion) => {
            let remark = "java.lang.ArrayIndexOutOfBoundsException";
            return fail(resp::SYSTEM_ERROR, remark, None);
        }
        Err(RegisterRefused::Undecodable(e)) => {
            let remark = format!(
                "org.apache.rocketmq.remoting.exception.RemotingCommandException: Failed to decode RegisterBrokerBody, {e}"
            );
            return fail(resp::SYSTEM_ERROR, &remark, None);
        }
    };
    let Some(id) = h.ext_i64("brokerId") else {
        return fail(resp::SYSTEM_ERROR, &null_field_remark("brokerId"), None);
    };
    let Some([cluster, addr, name]) = h.ext_all(BROKER_KEYS) else {
        // Java registers nothing coherent and still answers SUCCESS.
        let order_conf = ctx.published.load().order_conf_body();
        return Handled::Now(register_reply(None, h.opaque, order_conf.as_deref()));
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
    let make = |reply| Request::Register {
        reg,
        stamp_ms,
        reply,
    };
    to_writer(ctx, h, make, finish_register)
}

fn finish_register(answer: Registered, opaque: i32) -> Vec<u8> {
    let order_conf = answer.order_conf.as_deref();
    match answer.outcome {
        RegisterOutcome::Registered { master } => {
            register_reply(master.as_ref(), opaque, order_conf)
        }
        RegisterOutcome::Superseded => register_reply(None, opaque, order_conf),
        RegisterOutcome::Refused => {
            let remark = Some(codes::REMARK_REGISTER_FAILED);
            frame::response(resp::SYSTEM_ERROR, opaque, remark, Some(&[]), b"")
        }
        RegisterOutcome::LimitReached(why) => {
            frame::response(resp::SYSTEM_ERROR, opaque, Some(&why), Some(&[]), b"")
        }
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
    let body = body.unwrap_or_default();
    frame::response(resp::SUCCESS, opaque, None, Some(&ext), body)
}

fn unregister(ctx: &ShardCtx, h: &Header) -> Vec<u8> {
    let Some([cluster, addr, name]) = h.ext_all(BROKER_KEYS) else {
        // Java queues it and its batch step skips it.
        return ok_empty(h.opaque);
    };
    let unreg = Unregistration {
        cluster: cluster.to_string(),
        addr: addr.to_string(),
        name: name.to_string(),
        id: h.ext_i64("brokerId").unwrap_or(0),
    };
    if !ctx.send_unregister(unreg) {
        // Java's answer when its unregistration queue is full: no remark.
        return frame::response(resp::SYSTEM_ERROR, h.opaque, None, None, b"");
    }
    ok_empty(h.opaque)
}

fn query_data_version(ctx: &ShardCtx, frame: &Frame) -> Handled {
    let h = &frame.header;
    let Some([cluster, addr]) = h.ext_all(LIVE_KEYS) else {
        let remark = null_field_remark("clusterName or brokerAddr");
        return Handled::Now(error(h.opaque, resp::SYSTEM_ERROR, &remark));
    };
    let given = match frame.body.as_deref().map(DataVersion::parse) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            let remark = format!("com.alibaba.fastjson.JSONException: {e}");
            return Handled::Now(error(h.opaque, resp::SYSTEM_ERROR, &remark));
        }
    };
    let (cluster, addr) = (cluster.to_string(), addr.to_string());
    let stamp_ms = ctx.clock.now_ms();
    let make = |reply| Request::QueryDataVersion {
        cluster,
        addr,
        given,
        stamp_ms,
        reply,
    };
    to_writer(ctx, h, make, finish_query_data_version)
}

fn finish_query_data_version(answer: DataVersionAnswer, opaque: i32) -> Vec<u8> {
    let changed = if answer.changed { "true" } else { "false" };
    let body = answer.stored.map(|v| v.to_json()).unwrap_or_default();
    frame::response(
        resp::SUCCESS,
        opaque,
        None,
        Some(&[("changed", changed)]),
        &body,
    )
}

fn heartbeat(ctx: &ShardCtx, h: &Header) -> Vec<u8> {
    let Some([cluster, addr]) = h.ext_all(LIVE_KEYS) else {
        let remark = null_field_remark("clusterName or brokerAddr");
        return error(h.opaque, resp::SYSTEM_ERROR, &remark);
    };
    let request = Request::Heartbeat {
        cluster: cluster.to_string(),
        addr: addr.to_string(),
        stamp_ms: ctx.clock.now_ms(),
    };
    if ctx.requests.try_send(request).is_err() {
        ctx.count_busy(true);
        return error(h.opaque, resp::SYSTEM_BUSY, codes::REMARK_OVERLOAD);
    }
    ok_empty(h.opaque)
}

fn write_perm(ctx: &ShardCtx, h: &Header, add: bool) -> Handled {
    let name = h.ext("brokerName").unwrap_or_default().to_string();
    let finish = match add {
        true => finish_add_perm,
        false => finish_wipe_perm,
    };
    to_writer(
        ctx,
        h,
        |reply| Request::WritePerm { name, add, reply },
        finish,
    )
}

fn finish_wipe_perm(count: usize, opaque: i32) -> Vec<u8> {
    finish_count("wipeTopicCount", count, opaque)
}

fn finish_add_perm(count: usize, opaque: i32) -> Vec<u8> {
    finish_count("addTopicCount", count, opaque)
}

fn finish_count(key: &str, count: usize, opaque: i32) -> Vec<u8> {
    let count = count.to_string();
    frame::response(resp::SUCCESS, opaque, None, Some(&[(key, &count)]), b"")
}

fn delete_topic(ctx: &ShardCtx, h: &Header) -> Handled {
    let Some(topic) = h.ext("topic").map(str::to_string) else {
        // Java swallows the exception of a missing topic: SUCCESS.
        return Handled::Now(ok_empty(h.opaque));
    };
    let cluster = h.ext("clusterName").map(str::to_string);
    let make = |reply| Request::DeleteTopic {
        topic,
        cluster,
        reply,
    };
    to_writer(ctx, h, make, |(), opaque| ok_empty(opaque))
}

fn register_topic(
    ctx: &ShardCtx,
    h: &Header,
    decoded: Result<Vec<TopicQueueIn>, String>,
) -> Handled {
    let topic = h.ext("topic").unwrap_or_default();
    let queues = match decoded {
        Ok(queues) => queues,
        Err(e) => {
            let remark = format!("com.alibaba.fastjson.JSONException: {e}");
            return Handled::Now(error(h.opaque, resp::SYSTEM_ERROR, &remark));
        }
    };
    if queues.is_empty() {
        return Handled::Now(ok_empty(h.opaque));
    }
    let entries: Vec<(String, QueueData)> = queues
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
    let topic = topic.to_string();
    let make = |reply| Request::RegisterTopic {
        topic,
        entries,
        reply,
    };
    to_writer(ctx, h, make, finish_failable)
}

/// SUCCESS, or SYSTEM_ERROR with the writer's reason.
fn finish_failable(answer: Result<(), String>, opaque: i32) -> Vec<u8> {
    match answer {
        Ok(()) => ok_empty(opaque),
        Err(why) => error(opaque, resp::SYSTEM_ERROR, &why),
    }
}

// ----- KV config (§A.1-§A.3, §A.13) -----

fn put_kv(ctx: &ShardCtx, h: &Header) -> Handled {
    let Some([namespace, key]) = h.ext_all(["namespace", "key"]) else {
        let remark = "namespace or key is null";
        return Handled::Now(error(h.opaque, resp::SYSTEM_ERROR, remark));
    };
    let make = |reply| Request::Kv {
        namespace: namespace.to_string(),
        key: key.to_string(),
        value: h.ext("value").map(str::to_string),
        delete: false,
        reply,
    };
    to_writer(ctx, h, make, finish_failable)
}

fn delete_kv(ctx: &ShardCtx, h: &Header) -> Handled {
    let Some([namespace, key]) = h.ext_all(["namespace", "key"]) else {
        // Java looks up a null namespace, finds nothing, answers SUCCESS.
        return Handled::Now(ok_empty(h.opaque));
    };
    let make = |reply| Request::Kv {
        namespace: namespace.to_string(),
        key: key.to_string(),
        value: None,
        delete: true,
        reply,
    };
    to_writer(ctx, h, make, finish_failable)
}

// ----- NameServer config (§A.19) -----

fn update_config(ctx: &ShardCtx, h: &Header, entries: Vec<(String, String)>) -> Handled {
    let make = |reply| Request::UpdateConfig { entries, reply };
    to_writer(ctx, h, make, finish_update_config)
}

fn finish_update_config(answer: Result<(), ConfigRefused>, opaque: i32) -> Vec<u8> {
    match answer {
        Ok(()) => ok_empty(opaque),
        Err(ConfigRefused::BlackListed) => {
            error(opaque, resp::NO_PERMISSION, codes::REMARK_BLACK_LIST)
        }
        Err(ConfigRefused::Failed(why)) => error(opaque, resp::SYSTEM_ERROR, &why),
    }
}
