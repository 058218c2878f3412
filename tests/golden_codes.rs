//! Golden vectors for the request codes the other wire tests leave without
//! one: 206 (its SUCCESS case), 217, 224, 304, 311, 312, 313, 319 and the
//! outbound 905. Every expected frame is written by hand from the spec
//! (`namesrv-commands.md`, `namesrv-behaviour.md` §11–12) into
//! tests/golden, never taken from our encoder (DECISIONS 19). Where Java's
//! order depends on String hash codes the byte-exact case has one element
//! and the larger cases are compared as sets.

mod common;
use common::*;
use rocketns::protocol::body::TopicConfig;
use rocketns::protocol::client;
use rocketns::protocol::frame;
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

fn request_frame(code: i32, opaque: i32, ext: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    client::request(code, opaque, 0, ext, body)
}

/// Sends a request with opaque 1, as the golden replies expect.
fn ask(c: &mut Client, code: i32, ext: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    c.call(&request_frame(code, 1, ext, body))
}

/// A golden frame (first line the header, the rest the body, the file's
/// last newline not part of it) with each `${NAME}` replaced by its value.
fn golden_with(name: &str, vars: &[(&str, &str)]) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let mut text = std::fs::read_to_string(&path).expect("golden file");
    for (k, v) in vars {
        text = text.replace(&format!("${{{k}}}"), v);
    }
    assert!(!text.contains("${"), "{name}: a placeholder left: {text}");
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let (header, body) = text.split_once('\n').unwrap_or((text, ""));
    let mut out = Vec::new();
    frame::write_frame(
        &mut out,
        frame::SerializeType::Json,
        header.as_bytes(),
        body.as_bytes(),
    );
    out
}

/// The `topicList` of a TopicList body as a set, checking it holds no
/// name twice (Java's member is a set).
fn topic_set(reply: &[u8]) -> BTreeSet<String> {
    let r = Reply::parse(reply);
    assert_eq!(r.code(), 0, "{}", r.header_text);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let names: Vec<String> = v["topicList"]
        .as_array()
        .unwrap_or_else(|| panic!("no topicList in {}", r.body_text()))
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let set: BTreeSet<String> = names.iter().cloned().collect();
    assert_eq!(set.len(), names.len(), "duplicates in {names:?}");
    set
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn flagged(name: &str, sys_flag: i32) -> (&str, TopicConfig) {
    let (n, mut config) = topic(name, 4, 6);
    config.topic_sys_flag = sys_flag;
    (n, config)
}

fn registered(c: &mut Client, broker: &Broker, topics: &[(&str, TopicConfig)]) {
    let r = broker.register(c, &version(1), topics);
    assert_eq!(r.code(), 0, "{}", r.header_text);
}

const BROKER_B: Broker<'static> = Broker {
    cluster: "DefaultCluster",
    name: "broker-b",
    addr: "192.168.0.9:10911",
    id: 0,
};

// ---- 206 GET_ALL_TOPIC_LIST_FROM_NAMESERVER (§A.10) ----

#[test]
fn all_topic_list_206_success() {
    let s = TestServer::start();
    let mut c = s.client();
    assert_bytes(
        &ask(&mut c, 206, &[], b""),
        &golden_frame("topic_list_empty.txt"),
    );
    // A first registration with exactly one topic is refused (§A.4 step 4),
    // so the group is registered empty first.
    registered(&mut c, &BROKER_A, &[]);
    registered(&mut c, &BROKER_A, &[topic("TopicTest", 4, 6)]);
    assert_bytes(
        &ask(&mut c, 206, &[], b""),
        &golden_frame("topic_list_one.txt"),
    );
    // Several topics, one of them on two groups: each name once, any order.
    registered(
        &mut c,
        &BROKER_B,
        &[topic("TopicTest", 4, 6), topic("Other", 2, 6)],
    );
    assert_eq!(
        topic_set(&ask(&mut c, 206, &[], b"")),
        set(&["Other", "TopicTest"])
    );
}

// ---- 217 REGISTER_TOPIC_IN_NAMESRV (§A.12) ----

/// A TopicRouteData body as a broker sends it: no broker data, the queue
/// data to register.
fn register_topic_body(queue_datas: &[&str]) -> Vec<u8> {
    format!(
        r#"{{"brokerDatas":[],"filterServerTable":{{}},"queueDatas":[{}]}}"#,
        queue_datas.join(",")
    )
    .into_bytes()
}

#[test]
fn register_topic_217_reply_and_its_route() {
    let s = TestServer::start();
    let mut c = s.client();
    registered(
        &mut c,
        &BROKER_A,
        &[topic("TopicTest", 4, 6), topic("Other", 2, 6)],
    );
    let qd = r#"{"brokerName":"broker-a","perm":6,"readQueueNums":8,"topicSysFlag":0,"writeQueueNums":8}"#;
    let got = ask(
        &mut c,
        217,
        &[("topic", "NewTopic")],
        &register_topic_body(&[qd]),
    );
    assert_bytes(&got, &golden_frame("success_plain.txt"));
    assert_bytes(
        &ask(&mut c, 105, &[("topic", "NewTopic")], b""),
        &golden_frame("register_topic_route.txt"),
    );

    // An unknown broker group: still SUCCESS, nothing stored.
    let nobody =
        r#"{"brokerName":"nobody","perm":6,"readQueueNums":8,"topicSysFlag":0,"writeQueueNums":8}"#;
    let got = ask(
        &mut c,
        217,
        &[("topic", "NoSuchTopic")],
        &register_topic_body(&[nobody]),
    );
    assert_bytes(&got, &golden_frame("success_plain.txt"));
    assert_bytes(
        &ask(&mut c, 105, &[("topic", "NoSuchTopic")], b""),
        &golden_frame("topic_not_exist.txt"),
    );
    // No body, and no queue data: SUCCESS, nothing.
    for body in [&b""[..], &register_topic_body(&[])[..]] {
        let got = ask(&mut c, 217, &[("topic", "NoSuchTopic")], body);
        assert_bytes(&got, &golden_frame("success_plain.txt"));
    }
    assert_bytes(
        &ask(&mut c, 105, &[("topic", "NoSuchTopic")], b""),
        &golden_frame("topic_not_exist.txt"),
    );
}

// ---- 224 GET_TOPICS_BY_CLUSTER (§A.14) ----

#[test]
fn topics_by_cluster_224() {
    let s = TestServer::start();
    let mut c = s.client();
    let cluster = [("cluster", "DefaultCluster")];
    assert_bytes(
        &ask(&mut c, 224, &cluster, b""),
        &golden_frame("topic_list_empty.txt"),
    );
    registered(&mut c, &BROKER_A, &[]);
    registered(&mut c, &BROKER_A, &[topic("TopicTest", 4, 6)]);
    assert_bytes(
        &ask(&mut c, 224, &cluster, b""),
        &golden_frame("topic_list_one.txt"),
    );
    let nope = [("cluster", "Nope")];
    assert_bytes(
        &ask(&mut c, 224, &nope, b""),
        &golden_frame("topic_list_empty.txt"),
    );

    registered(
        &mut c,
        &BROKER_B,
        &[topic("B1", 1, 6), topic("TopicTest", 4, 6)],
    );
    let elsewhere = Broker {
        cluster: "OtherCluster",
        name: "broker-x",
        addr: "192.168.0.7:10911",
        id: 0,
    };
    registered(&mut c, &elsewhere, &[topic("X1", 1, 6), topic("X2", 1, 6)]);
    assert_eq!(
        topic_set(&ask(&mut c, 224, &cluster, b"")),
        set(&["B1", "TopicTest"])
    );
    let other = [("cluster", "OtherCluster")];
    assert_eq!(
        topic_set(&ask(&mut c, 224, &other, b"")),
        set(&["X1", "X2"])
    );
}

// ---- 304 GET_SYSTEM_TOPIC_LIST_FROM_NS (§A.15) ----

/// The list holds cluster and broker names; a cluster named like its only
/// broker group makes it one name, so the golden is byte-exact.
#[test]
fn system_topic_list_304() {
    let s = TestServer::start();
    let mut c = s.client();
    assert_bytes(
        &ask(&mut c, 304, &[], b""),
        &golden_frame("topic_list_empty.txt"),
    );
    let solo = Broker {
        cluster: "solo",
        name: "solo",
        addr: "192.168.0.1:10911",
        id: 0,
    };
    registered(
        &mut c,
        &solo,
        &[topic("TopicTest", 4, 6), topic("Other", 2, 6)],
    );
    assert_bytes(
        &ask(&mut c, 304, &[], b""),
        &golden_frame("system_topic_list_one.txt"),
    );

    registered(
        &mut c,
        &BROKER_B,
        &[topic("TopicTest", 4, 6), topic("Other", 2, 6)],
    );
    let got = ask(&mut c, 304, &[], b"");
    assert_eq!(
        topic_set(&got),
        set(&["DefaultCluster", "broker-b", "solo"])
    );
    let v: serde_json::Value = serde_json::from_slice(&Reply::parse(&got).body).unwrap();
    let addr = v["brokerAddr"].as_str().unwrap();
    assert!(
        addr == solo.addr || addr == BROKER_B.addr,
        "brokerAddr {addr}"
    );
}

// ---- 311, 312, 313 unit topic lists (§A.16–A.18) ----

#[test]
fn unit_topic_lists_311_312_313() {
    let s = TestServer::start();
    let mut c = s.client();
    for code in [311, 312, 313] {
        assert_bytes(
            &ask(&mut c, code, &[], b""),
            &golden_frame("topic_list_empty.txt"),
        );
    }
    let topics = [
        flagged("PlainTopic", 0),
        flagged("UnitTopic", 1),
        flagged("UnitSubTopic", 2),
    ];
    registered(&mut c, &BROKER_A, &topics);
    assert_bytes(
        &ask(&mut c, 311, &[], b""),
        &golden_frame("unit_topic_list_one.txt"),
    );
    assert_bytes(
        &ask(&mut c, 312, &[], b""),
        &golden_frame("unit_sub_topic_list_one.txt"),
    );
    assert_bytes(
        &ask(&mut c, 313, &[], b""),
        &golden_frame("unit_sub_topic_list_one.txt"),
    );

    // A topic with both bits: in 311 and 312, not in 313.
    let topics = [
        flagged("PlainTopic", 0),
        flagged("UnitTopic", 1),
        flagged("UnitSubTopic", 2),
        flagged("BothTopic", 3),
    ];
    let r = BROKER_A.register(&mut c, &version(2), &topics);
    assert_eq!(r.code(), 0, "{}", r.header_text);
    assert_eq!(
        topic_set(&ask(&mut c, 311, &[], b"")),
        set(&["BothTopic", "UnitTopic"])
    );
    assert_eq!(
        topic_set(&ask(&mut c, 312, &[], b"")),
        set(&["BothTopic", "UnitSubTopic"])
    );
    assert_bytes(
        &ask(&mut c, 313, &[], b""),
        &golden_frame("unit_sub_topic_list_one.txt"),
    );
}

// ---- 319 GET_NAMESRV_CONFIG (§A.20, namesrv-behaviour §11) ----

/// The test config: Java's defaults with the test's keys, the user's home
/// and rocketmqHome in the temp dir, the rocketns-only keys (README, with
/// the three that default to unset given values) and a key rocketns does
/// not know, as a `-c` file may hold.
#[test]
fn namesrv_config_319_is_the_whole_sorted_property_set() {
    let s = TestServer::with(&[
        ("adminAllowedSources", "127.0.0.1"),
        ("nsaddrList", "192.168.0.1:9876;192.168.0.2:9876"),
        ("nsaddrDnsName", "rocketns.example"),
        ("brokerClusterName", "DefaultCluster"),
    ]);
    let mut c = s.client();
    let dir = s.dir.0.to_str().unwrap();
    assert_bytes(
        &ask(&mut c, 319, &[], b""),
        &golden_with("namesrv_config.txt", &[("DIR", dir)]),
    );
}

// ---- 905 NOTIFY_MIN_BROKER_ID_CHANGE, outbound (§A.25, behaviour §12) ----

/// A fake broker: a listener the server can send its notice to.
fn fake_broker() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

/// The first frame the server sends to a fake broker, on a connection it
/// opened itself.
fn notice(listener: &TcpListener) -> Vec<u8> {
    listener.set_nonblocking(true).unwrap();
    let mut accepted = None;
    assert!(
        eventually(|| {
            accepted = listener.accept().ok().map(|(s, _)| s);
            accepted.is_some()
        }),
        "the server never connected"
    );
    let stream = accepted.unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut broker = Client { stream, opaque: 0 };
    broker.recv().expect("a notice")
}

/// The notice's opaque: a request id of the server's choosing (Java's is a
/// process-wide counter), so the golden leaves it open.
fn opaque_of(frame: &[u8]) -> String {
    Reply::parse(frame).header["opaque"]
        .as_i64()
        .expect("an opaque")
        .to_string()
}

/// A slave listens, then the master (a lower id) joins its group: the
/// slave hears of the new minimum. Returns (notice, golden).
fn notice_when_a_lower_id_joins() -> (Vec<u8>, Vec<u8>) {
    let s = TestServer::with(&[("notifyMinBrokerIdChanged", "true")]);
    let mut c = s.client();
    let (listener, slave_addr) = fake_broker();
    let topics = [topic("TopicTest", 4, 6), topic("Other", 2, 6)];
    let slave = Broker {
        addr: &slave_addr,
        id: 1,
        ..BROKER_A
    };
    registered(&mut c, &slave, &topics);
    registered(&mut c, &BROKER_A, &topics);
    let got = notice(&listener);
    let want = golden_with(
        "notify_min_broker_id_joined.txt",
        &[("OPAQUE", &opaque_of(&got))],
    );
    (got, want)
}

/// An acting-master group whose minimum id goes offline: every remaining
/// member hears of the new minimum and of the address that left. Returns
/// (notice, golden) for each of them.
fn notices_when_the_minimum_goes_offline() -> Vec<(Vec<u8>, Vec<u8>)> {
    let s = TestServer::with(&[("notifyMinBrokerIdChanged", "true")]);
    let mut c = s.client();
    let (first, first_addr) = fake_broker();
    let (second, second_addr) = fake_broker();
    // A register body (§B.7) written out, with the acting-master flag in
    // the header.
    let body = br#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":1,"stateVersion":0,"timestamp":1700000000000},"topicConfigTable":{"Other":{"perm":6,"readQueueNums":2,"topicName":"Other","topicSysFlag":0,"writeQueueNums":2},"TopicTest":{"perm":6,"readQueueNums":4,"topicName":"TopicTest","topicSysFlag":0,"writeQueueNums":4}}}}"#;
    let acting = [("enableActingMaster", "true")];
    let members = [
        BROKER_A,
        Broker {
            addr: &first_addr,
            id: 1,
            ..BROKER_A
        },
        Broker {
            addr: &second_addr,
            id: 2,
            ..BROKER_A
        },
    ];
    for m in &members {
        let r = Reply::parse(&c.call(&m.register_frame_with(7, body, &acting)));
        assert_eq!(r.code(), 0, "{}", r.header_text);
    }
    let who = [
        ("brokerAddr", BROKER_A.addr),
        ("brokerId", "0"),
        ("brokerName", BROKER_A.name),
        ("clusterName", BROKER_A.cluster),
    ];
    assert_bytes(
        &ask(&mut c, 104, &who, b""),
        &golden_frame("success_plain.txt"),
    );
    [&first, &second]
        .into_iter()
        .map(|listener| {
            let got = notice(listener);
            let want = golden_with(
                "notify_min_broker_id_offline.txt",
                &[("OPAQUE", &opaque_of(&got)), ("MIN_ADDR", &first_addr)],
            );
            (got, want)
        })
        .collect()
}

/// Byte-exact, the extFields members in Java's HashMap order too.
#[test]
fn notify_min_broker_id_change_905_when_a_lower_id_joins() {
    let (got, want) = notice_when_a_lower_id_joins();
    assert_bytes(&got, &want);
}

#[test]
fn notify_min_broker_id_change_905_when_the_minimum_goes_offline() {
    for (got, want) in notices_when_the_minimum_goes_offline() {
        assert_bytes(&got, &want);
    }
}
