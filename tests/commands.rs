//! Wire tests of the admin and list commands (`namesrv-commands.md` §A),
//! against golden vectors written from the spec.

mod common;
use common::*;
use rocketns::protocol::body::TopicConfig;
use rocketns::protocol::client;
use rocketns::protocol::frame;

fn flagged(name: &str, sys_flag: i32) -> (&str, TopicConfig) {
    let (n, mut config) = topic(name, 4, 6);
    config.topic_sys_flag = sys_flag;
    (n, config)
}

fn list(reply: &Reply) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    let mut names: Vec<String> = v["topicList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn topics_by_cluster() {
    let s = TestServer::start();
    let mut c = s.client();
    assert_eq!(BROKER_A.register(&mut c, &version(1), &[]).code(), 0);
    assert_eq!(
        BROKER_A
            .register(&mut c, &version(1), &[topic("TopicTest", 4, 6)])
            .code(),
        0
    );
    let got = c.call(&client::request(
        224,
        1,
        0,
        &[("cluster", "DefaultCluster")],
        b"",
    ));
    assert_bytes(&got, &golden_frame("topic_list_one.txt"));
    let other = Reply::parse(&c.call(&client::request(224, 1, 0, &[("cluster", "Nope")], b"")));
    assert_eq!(other.body_text(), r#"{"topicList":[]}"#);
}

#[test]
fn system_topic_list_names_clusters_and_brokers() {
    let s = TestServer::start();
    let mut c = s.client();
    BROKER_A.register(&mut c, &version(1), &[topic("A", 1, 6), topic("B", 1, 6)]);
    let r = Reply::parse(&c.call(&client::request(304, 1, 0, &[], b"")));
    assert_eq!(r.code(), 0);
    assert_eq!(list(&r), vec!["DefaultCluster", "broker-a"]);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["brokerAddr"], "192.168.0.1:10911");
}

#[test]
fn unit_topic_lists_select_by_sys_flag() {
    let s = TestServer::start();
    let mut c = s.client();
    let topics = [
        flagged("plain", 0),
        flagged("unit", 1),
        flagged("sub", 2),
        flagged("both", 3),
    ];
    let r = BROKER_A.register(&mut c, &version(1), &topics);
    assert_eq!(r.code(), 0, "{:?}", r.header);
    let names = |c: &mut Client, code| {
        list(&Reply::parse(&c.call(&client::request(
            code,
            1,
            0,
            &[],
            b"",
        ))))
    };
    assert_eq!(names(&mut c, 311), vec!["both", "unit"]);
    assert_eq!(names(&mut c, 312), vec!["both", "sub"]);
    assert_eq!(names(&mut c, 313), vec!["sub"]);
}

#[test]
fn topic_lists_can_be_disabled() {
    let s = TestServer::with(&[
        ("enableTopicList", "false"),
        ("enableAllTopicList", "false"),
    ]);
    let mut c = s.client();
    for code in [206, 224, 311, 312, 313] {
        assert_bytes(
            &c.call(&client::request(code, 1, 0, &[], b"")),
            &golden_frame("disable.txt"),
        );
    }
    let r = Reply::parse(&c.call(&client::request(304, 1, 0, &[], b"")));
    assert_eq!(r.code(), 0, "304 is never gated");
}

#[test]
fn broker_member_group() {
    let s = TestServer::start();
    let mut c = s.client();
    let topics = [topic("A", 1, 6), topic("B", 1, 6)];
    BROKER_A.register(&mut c, &version(1), &topics);
    let slave = Broker {
        addr: "192.168.0.2:10911",
        id: 1,
        ..BROKER_A
    };
    slave.register(&mut c, &version(1), &topics);
    let ext = [
        ("clusterName", "DefaultCluster"),
        ("brokerName", "broker-a"),
    ];
    let got = c.call(&client::request(901, 1, 0, &ext, b""));
    assert_bytes(&got, &golden_frame("broker_member_group.txt"));
    let unknown = Reply::parse(&c.call(&client::request(901, 1, 0, &[("brokerName", "x")], b"")));
    assert_eq!(
        unknown.body_text(),
        r#"{"brokerMemberGroup":{"brokerAddrs":{},"brokerName":"x"}}"#
    );
}

fn route(c: &mut Client, topic: &str) -> Reply {
    Reply::parse(&c.call(&client::request(105, 1, 0, &[("topic", topic)], b"")))
}

fn perms(r: &Reply) -> Vec<(String, i64)> {
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["queueDatas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["brokerName"].as_str().unwrap().to_string(),
                q["perm"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn wipe_and_add_write_permission() {
    let s = TestServer::start();
    let mut c = s.client();
    BROKER_A.register(&mut c, &version(1), &[topic("A", 1, 7), topic("B", 1, 6)]);
    let name = [("brokerName", "broker-a")];
    assert_bytes(
        &c.call(&client::request(205, 1, 0, &name, b"")),
        &golden_frame("wipe_write_perm.txt"),
    );
    assert_eq!(
        perms(&route(&mut c, "A")),
        vec![("broker-a".to_string(), 5)]
    );
    // Java: an unchanged re-registration keeps the wiped permission.
    BROKER_A.register(&mut c, &version(1), &[topic("A", 1, 7), topic("B", 1, 6)]);
    assert_eq!(
        perms(&route(&mut c, "A")),
        vec![("broker-a".to_string(), 5)]
    );
    assert_bytes(
        &c.call(&client::request(327, 1, 0, &name, b"")),
        &golden_frame("add_write_perm.txt"),
    );
    // Java overwrites with READ|WRITE, dropping the inherit bit.
    assert_eq!(
        perms(&route(&mut c, "A")),
        vec![("broker-a".to_string(), 6)]
    );
    let none = Reply::parse(&c.call(&client::request(205, 1, 0, &[("brokerName", "x")], b"")));
    assert_eq!(none.header["extFields"]["wipeTopicCount"], "0");
}

#[test]
fn delete_topic_with_and_without_cluster() {
    let s = TestServer::start();
    let mut c = s.client();
    let topics = [topic("A", 1, 6), topic("B", 1, 6)];
    BROKER_A.register(&mut c, &version(1), &topics);
    let other = Broker {
        cluster: "OtherCluster",
        name: "broker-b",
        addr: "192.168.0.9:10911",
        id: 0,
    };
    other.register(&mut c, &version(1), &topics);
    let ext = [("topic", "A"), ("clusterName", "OtherCluster")];
    assert_bytes(
        &c.call(&client::request(216, 1, 0, &ext, b"")),
        &golden_frame("success_plain.txt"),
    );
    assert_eq!(
        perms(&route(&mut c, "A")),
        vec![("broker-a".to_string(), 6)]
    );
    let ext = [("topic", "B")];
    assert_bytes(
        &c.call(&client::request(216, 1, 0, &ext, b"")),
        &golden_frame("success_plain.txt"),
    );
    assert_eq!(route(&mut c, "B").code(), 17);
    let r = Reply::parse(&c.call(&client::request(216, 1, 0, &[], b"")));
    assert_eq!(r.code(), 0, "a missing topic is still SUCCESS");
}

/// Java (DECISIONS 1): a known topic applies entries up to the first
/// unknown broker group; a new topic needs every group known.
#[test]
fn register_topic_partial_apply() {
    let s = TestServer::start();
    let mut c = s.client();
    BROKER_A.register(&mut c, &version(1), &[topic("A", 1, 6), topic("B", 1, 6)]);
    let other = Broker {
        name: "broker-b",
        addr: "192.168.0.9:10911",
        ..BROKER_A
    };
    other.register(&mut c, &version(1), &[topic("C", 1, 6), topic("D", 1, 6)]);
    let qd = |b: &str, perm: i32| {
        format!(
            r#"{{"brokerName":"{b}","perm":{perm},"readQueueNums":2,"topicSysFlag":0,"writeQueueNums":2}}"#
        )
    };
    let body = |qds: &[String]| {
        format!(
            r#"{{"brokerDatas":[],"filterServerTable":{{}},"queueDatas":[{}]}}"#,
            qds.join(",")
        )
    };
    let send = |c: &mut Client, t: &str, b: String| {
        let r = Reply::parse(&c.call(&client::request(217, 1, 0, &[("topic", t)], b.as_bytes())));
        assert_eq!(r.code(), 0, "{}", r.header_text);
    };
    send(
        &mut c,
        "A",
        body(&[qd("broker-a", 4), qd("nobody", 6), qd("broker-b", 6)]),
    );
    assert_eq!(
        perms(&route(&mut c, "A")),
        vec![("broker-a".to_string(), 4)]
    );
    send(&mut c, "New", body(&[qd("broker-a", 6), qd("nobody", 6)]));
    assert_eq!(route(&mut c, "New").code(), 17);
    send(&mut c, "New", body(&[qd("broker-a", 6), qd("broker-b", 2)]));
    let expected = vec![("broker-a".to_string(), 6), ("broker-b".to_string(), 2)];
    assert_eq!(perms(&route(&mut c, "New")), expected);
    let bad = Reply::parse(&c.call(&client::request(217, 1, 0, &[("topic", "A")], b"{")));
    assert_eq!(bad.code(), 1);
}

const ORDER: &str = "ORDER_TOPIC_CONFIG";

fn kv(c: &mut Client, code: i32, ext: &[(&str, &str)]) -> Vec<u8> {
    c.call(&client::request(code, 1, 0, ext, b""))
}

#[test]
fn kv_config_commands_and_file() {
    let s = TestServer::start();
    let mut c = s.client();
    let put = [
        ("namespace", ORDER),
        ("key", "TopicTest"),
        ("value", "broker-a:4"),
    ];
    assert_bytes(&kv(&mut c, 100, &put), &golden_frame("success_plain.txt"));
    let get = [("namespace", ORDER), ("key", "TopicTest")];
    assert_bytes(&kv(&mut c, 101, &get), &golden_frame("get_kv_found.txt"));
    let missing = [("namespace", ORDER), ("key", "nope")];
    assert_bytes(
        &kv(&mut c, 101, &missing),
        &golden_frame("get_kv_missing.txt"),
    );
    assert_bytes(
        &kv(&mut c, 219, &[("namespace", ORDER)]),
        &golden_frame("kv_list.txt"),
    );
    assert_bytes(
        &kv(&mut c, 219, &[("namespace", "nope")]),
        &golden_frame("kv_list_missing.txt"),
    );
    // The reply came after the file holding the change was durable.
    let file = s.dir.0.join("namesrv/kvConfig.json");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        text,
        r#"{"configTable":{"ORDER_TOPIC_CONFIG":{"TopicTest":"broker-a:4"}}}"#
    );
    assert_bytes(&kv(&mut c, 102, &get), &golden_frame("success_plain.txt"));
    // Java keeps the emptied namespace.
    let list = Reply::parse(&kv(&mut c, 219, &[("namespace", ORDER)]));
    assert_eq!(list.body_text(), r#"{"table":{}}"#);
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text, r#"{"configTable":{"ORDER_TOPIC_CONFIG":{}}}"#);
    let r = Reply::parse(&kv(&mut c, 100, &[("key", "k")]));
    assert_eq!(r.header["remark"], "namespace or key is null");
}

#[test]
fn kv_config_survives_a_restart() {
    let s = TestServer::start();
    let mut c = s.client();
    let put = [("namespace", "ns"), ("key", "k"), ("value", "v é/\"")];
    assert_eq!(Reply::parse(&kv(&mut c, 100, &put)).code(), 0);
    drop(c);
    let s = s.restart(&[]);
    let mut c = s.client();
    let r = Reply::parse(&kv(&mut c, 101, &[("namespace", "ns"), ("key", "k")]));
    assert_eq!(r.header["extFields"]["value"], "v é/\"");
}

/// Java: with orderMessageEnable the route carries orderTopicConf from KV,
/// and brokers get the ORDER_TOPIC_CONFIG table in the register reply.
#[test]
fn order_topic_conf_in_routes_and_register_replies() {
    let s = TestServer::with(&[("orderMessageEnable", "true")]);
    let mut c = s.client();
    let topics = [topic("TopicTest", 4, 6), topic("Other", 2, 6)];
    BROKER_A.register(&mut c, &version(1), &topics);
    let put = [
        ("namespace", ORDER),
        ("key", "TopicTest"),
        ("value", "broker-a:4"),
    ];
    assert_eq!(Reply::parse(&kv(&mut c, 100, &put)).code(), 0);
    let got = c.call(&client::request(105, 1, 0, &[("topic", "TopicTest")], b""));
    assert_bytes(&got, &golden_frame("route_with_order_conf.txt"));
    let got = c.call(&BROKER_A.register_frame(77, &version(1), &topics));
    assert_bytes(&got, &golden_frame("register_master_with_order_conf.txt"));
}

#[test]
fn namesrv_config_get_update_and_black_list() {
    let s = TestServer::with(&[("configBlackList", "configBlackList;listenPort")]);
    let mut c = s.client();
    let text = |c: &mut Client| Reply::parse(&kv(c, 319, &[])).body_text().to_string();
    let before = text(&mut c);
    assert!(before.contains("\nenableAllTopicList=true\n"), "{before}");
    // Java leaves out a null field: unset keys are absent, not `key=`.
    assert!(!before.contains("\nnsaddrList="), "{before}");
    let mut keys: Vec<&str> = before
        .lines()
        .map(|l| l.split('=').next().unwrap())
        .collect();
    let sorted = {
        let mut k = keys.clone();
        k.sort();
        k
    };
    assert_eq!(keys, sorted, "sorted by key");
    keys.dedup();
    assert!(keys.contains(&"topicsMax") && !keys.contains(&"clientWorkerThreads"));
    let update =
        |c: &mut Client, body: &str| c.call(&client::request(318, 1, 0, &[], body.as_bytes()));
    for refused in [
        "kvConfigPath=/etc/cron.d/x",
        "rocketmqHome=/tmp",
        "listenPort=1",
    ] {
        assert_bytes(
            &update(&mut c, refused),
            &golden_frame("config_black_list.txt"),
        );
    }
    let body = "enableAllTopicList=false\nwaitSecondsForService=abc\n";
    assert_bytes(&update(&mut c, body), &golden_frame("success_plain.txt"));
    assert_bytes(&kv(&mut c, 206, &[]), &golden_frame("disable.txt"));
    let after = text(&mut c);
    assert!(after.contains("\nenableAllTopicList=false\n"));
    assert!(
        after.contains("\nwaitSecondsForService=45\n"),
        "unparsable numbers are ignored"
    );
    let stored = std::fs::read_to_string(s.dir.0.join("namesrv/namesrv.properties")).unwrap();
    assert_eq!(stored, after);
    // Java RequestProcessorTest: a body that is no sensible properties text
    // is still SUCCESS, unknown keys ignored.
    assert_bytes(
        &update(&mut c, "{key=value}"),
        &golden_frame("success_plain.txt"),
    );
    assert_eq!(text(&mut c), after);
}

/// DECISIONS 26 (rocketns only, not in Java): with `adminAllowedSources`
/// set, the state-changing admin codes from other sources get 16
/// NO_PERMISSION; lookups, brokers' 217 and reads are served; the list can
/// not be changed over the wire.
#[test]
fn admin_requests_from_sources_outside_admin_allowed_sources_are_refused() {
    let port = common::free_port().to_string();
    let s = TestServer::with(&[
        ("adminAllowedSources", "10.0.0.0/8, fd00::/8"),
        ("httpListenPort", &port),
    ]);
    let mut c = s.client();
    let topics = [topic("TopicTest", 4, 6), topic("Other", 2, 6)];
    assert_eq!(BROKER_A.register(&mut c, &version(1), &topics).code(), 0);
    let remark = |code: i32| {
        format!("request code {code} from 127.0.0.1 refused: source not in adminAllowedSources")
    };
    let put = [("namespace", "ns"), ("key", "k"), ("value", "v")];
    type Ext<'a> = &'a [(&'a str, &'a str)];
    let guarded: [(i32, Ext, &[u8]); 6] = [
        (100, &put, b""),
        (102, &put[..2], b""),
        (205, &[("brokerName", "broker-a")], b""),
        (327, &[("brokerName", "broker-a")], b""),
        (216, &[("topic", "TopicTest")], b""),
        (318, &[], b"enableAllTopicList=false"),
    ];
    for (code, ext, body) in guarded {
        let got = c.call(&client::request(code, 9, 0, ext, body));
        let want = frame::response(16, 9, Some(&remark(code)), None, b"");
        assert_bytes(&got, &want);
    }
    // Nothing changed: the route is whole, and reads and broker codes work.
    let r = route(&mut c, "TopicTest");
    assert_eq!(perms(&r), vec![("broker-a".to_string(), 6)]);
    assert_eq!(Reply::parse(&kv(&mut c, 101, &put[..2])).code(), 22);
    assert_eq!(Reply::parse(&kv(&mut c, 206, &[])).code(), 0);
    let (_, metrics) = common::http_get(s.server.http_addr().unwrap(), "/metrics");
    assert!(
        metrics.contains("\nrocketns_admin_refused_total 6\n"),
        "{metrics}"
    );

    let s = TestServer::with(&[("adminAllowedSources", "127.0.0.0/8")]);
    let mut c = s.client();
    assert_eq!(Reply::parse(&kv(&mut c, 100, &put)).code(), 0);
    let lock = "adminAllowedSources=0.0.0.0/0";
    let got = c.call(&client::request(318, 1, 0, &[], lock.as_bytes()));
    assert_bytes(&got, &golden_frame("config_black_list.txt"));
}

/// topicsMax and brokerGroupsMax changed over the wire (318) apply to the
/// next registration; what the table holds stays.
#[test]
fn table_limits_change_at_runtime() {
    let s = TestServer::start();
    let mut c = s.client();
    let dv = version(1);
    let r = BROKER_A.register(&mut c, &dv, &[topic("T1", 4, 6), topic("T2", 4, 6)]);
    assert_eq!(r.code(), 0);
    let update = client::request(318, 1, 0, &[], b"topicsMax=3\nbrokerGroupsMax=1\n");
    assert_bytes(&c.call(&update), &golden_frame("success_plain.txt"));
    let b = Broker {
        name: "broker-b",
        addr: "192.168.0.2:10911",
        ..BROKER_A
    };
    let r = b.register(&mut c, &dv, &[topic("T3", 4, 6), topic("T4", 4, 6)]);
    assert_eq!(r.code(), 1);
    assert_eq!(
        r.header["remark"], "broker group limit reached: brokerGroupsMax=1",
        "{}",
        r.header_text
    );
    let topics = [
        topic("T1", 4, 6),
        topic("T2", 4, 6),
        topic("T3", 4, 6),
        topic("T4", 4, 6),
    ];
    let r = BROKER_A.register(&mut c, &version(2), &topics);
    assert_eq!(r.header["remark"], "topic limit reached: topicsMax=3");
    assert_eq!(route(&mut c, "T1").code(), 0, "what the table holds stays");
    assert_eq!(route(&mut c, "T3").code(), 17);
}

/// Starts the binary with the image's way of keeping 318 changes: the -c
/// file, a separate store, and `extra`.
fn spawn_with_store(dir: &std::path::Path, extra: &[&str]) -> (std::process::Child, Client) {
    let conf = dir.join("conf.properties");
    let store = dir.join("store.properties");
    let (c, s) = (conf.to_str().unwrap(), store.to_str().unwrap());
    let mut args = vec!["-c", c, "--configStorePath", s];
    args.extend_from_slice(extra);
    let (child, addr) = spawn_binary(dir, &args);
    (child, Client::connect(addr))
}

fn stop(mut child: std::process::Child) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// The shipped image and StatefulSet persist 318 changes to a file of
/// their own and read it at the next start (configStoreReadAtStart), so an
/// operator's change survives a restart; flags still win. Without the key,
/// as in Java, the store is written but not read.
#[test]
fn an_update_survives_a_restart_when_the_store_is_read_at_start() {
    let dir = TempDir::new();
    std::fs::write(dir.0.join("conf.properties"), "enableTopicList=true\n").unwrap();
    let read = ["--configStoreReadAtStart", "true", "--topicsMax", "9"];
    let (child, mut c) = spawn_with_store(&dir.0, &read);
    let update = b"enableTopicList=false\ntopicsMax=3\n";
    let r = Reply::parse(&c.call(&client::request(318, 1, 0, &[], update)));
    assert_eq!(r.code(), 0);
    let by_cluster = client::request(224, 1, 0, &[("cluster", "DefaultCluster")], b"");
    assert_bytes(&c.call(&by_cluster), &golden_frame("disable.txt"));
    stop(child);
    let (child, mut c) = spawn_with_store(&dir.0, &read);
    assert_bytes(&c.call(&by_cluster), &golden_frame("disable.txt"));
    let config = Reply::parse(&c.call(&client::request(319, 3, 0, &[], b"")));
    assert!(
        config.body_text().contains("\ntopicsMax=9\n"),
        "the flag wins"
    );
    stop(child);
    let (child, mut c) = spawn_with_store(&dir.0, &[]);
    let r = Reply::parse(&c.call(&by_cluster));
    assert_eq!(r.code(), 0, "store not read without configStoreReadAtStart");
    stop(child);
}
