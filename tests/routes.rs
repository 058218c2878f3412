//! Route details beyond the plain case (`namesrv-commands.md` §A.6,
//! `namesrv-behaviour.md` §6): zone filtering, static-topic mappings,
//! filter servers, the acting-master rewrite, the readiness gate.

mod common;
use common::*;
use rocketns::protocol::client;

fn lookup(c: &mut Client, ext: &[(&str, &str)]) -> Vec<u8> {
    c.call(&client::request(105, 1, 0, ext, b""))
}

/// Java's zone hook: groups of another zone are dropped, groups without a
/// master kept, and the reply is always legacy-encoded.
#[test]
fn zone_mode_filters_and_encodes_legacy() {
    let s = TestServer::start();
    let mut c = s.client();
    let topics = [topic("TopicTest", 4, 6), topic("Other", 2, 6)];
    let json = client::encode_register_json(&version(1), &topics, &[]);
    let r = c.call(&BROKER_A.register_frame_with(1, &json, &[("__ZONE_NAME", "z1")]));
    assert_eq!(Reply::parse(&r).code(), 0);
    let b = Broker {
        name: "broker-b",
        addr: "192.168.0.9:10911",
        ..BROKER_A
    };
    c.call(&b.register_frame_with(1, &json, &[("__ZONE_NAME", "z2")]));
    let ext = [
        ("topic", "TopicTest"),
        ("__ZONE_MODE", "TRUE"),
        ("__ZONE_NAME", "Z1"),
    ];
    assert_bytes(
        &lookup(&mut c, &ext),
        &golden_frame("route_zone_filtered.txt"),
    );
    // Without zone mode both groups are there.
    let all = Reply::parse(&lookup(
        &mut c,
        &[("topic", "TopicTest"), ("__ZONE_NAME", "z1")],
    ));
    assert!(all.body_text().contains("broker-b"));
    // A blank zone name turns the filter off.
    let blank = [
        ("topic", "TopicTest"),
        ("__ZONE_MODE", "true"),
        ("__ZONE_NAME", " "),
    ];
    assert!(Reply::parse(&lookup(&mut c, &blank))
        .body_text()
        .contains("broker-b"));
}

#[test]
fn static_topic_mapping_and_filter_servers_are_in_the_route() {
    let s = TestServer::start();
    let mut c = s.client();
    let body = br#"{"filterServerList":["10.0.0.5:30000"],"topicConfigSerializeWrapper":{"dataVersion":{"counter":1,"stateVersion":0,"timestamp":1},"topicConfigTable":{"S":{"perm":6,"readQueueNums":1,"topicName":"S","writeQueueNums":1},"Other":{"topicName":"Other"}},"topicQueueMappingInfoMap":{"S":{"bname":"broker-a","currIdMap":{0:0},"dirty":false,"epoch":5,"scope":"__global__","topic":"S","totalQueues":1}}}}"#;
    let r = Reply::parse(&c.call(&BROKER_A.register_frame_with(1, body, &[])));
    assert_eq!(r.code(), 0, "{}", r.header_text);
    let got = lookup(&mut c, &[("topic", "S")]);
    assert_bytes(&got, &golden_frame("route_static_topic_filter_server.txt"));
}

/// Java (supportActingMaster): a headless acting-master group whose queues
/// lost write permission shows its lowest slave as id 0.
#[test]
fn acting_master_rewrite() {
    let s = TestServer::with(&[("supportActingMaster", "true")]);
    let mut c = s.client();
    let topics = [topic("TopicTest", 4, 6), topic("Other", 2, 6)];
    let json = client::encode_register_json(&version(1), &topics, &[]);
    let acting = [("enableActingMaster", "true")];
    c.call(&BROKER_A.register_frame_with(1, &json, &acting));
    let slave = Broker {
        addr: "192.168.0.2:10911",
        id: 1,
        ..BROKER_A
    };
    c.call(&slave.register_frame_with(1, &json, &acting));
    let who = [
        ("brokerAddr", "192.168.0.1:10911"),
        ("brokerId", "0"),
        ("brokerName", "broker-a"),
        ("clusterName", "DefaultCluster"),
    ];
    c.call(&client::request(104, 1, 0, &who, b""));
    let golden = golden_frame("route_acting_master.txt");
    assert!(eventually(
        || lookup(&mut c, &[("topic", "TopicTest")]) == golden
    ));
}

#[test]
fn lookups_wait_for_service_when_asked() {
    let s = TestServer::with(&[
        ("needWaitForService", "true"),
        ("waitSecondsForService", "45"),
    ]);
    let mut c = s.client();
    assert_bytes(
        &lookup(&mut c, &[("topic", "T")]),
        &golden_frame("not_ready.txt"),
    );
    s.clock.advance_ms(45_000);
    assert_eq!(Reply::parse(&lookup(&mut c, &[("topic", "T")])).code(), 17);
}

/// Java (deleteTopicWithBrokerRegistration): a full registration from the
/// master drops the topics it no longer reports.
#[test]
fn delete_topic_with_broker_registration() {
    let s = TestServer::with(&[("deleteTopicWithBrokerRegistration", "true")]);
    let mut c = s.client();
    BROKER_A.register(&mut c, &version(1), &[topic("A", 1, 6), topic("B", 1, 6)]);
    BROKER_A.register(&mut c, &version(2), &[topic("A", 1, 6), topic("C", 1, 6)]);
    assert_eq!(Reply::parse(&lookup(&mut c, &[("topic", "B")])).code(), 17);
    assert_eq!(Reply::parse(&lookup(&mut c, &[("topic", "C")])).code(), 0);
}

/// Java (notifyMinBrokerIdChanged): when a lower id joins a group, the
/// other members get a oneway NOTIFY_MIN_BROKER_ID_CHANGE.
#[test]
fn min_broker_id_change_is_notified() {
    let s = TestServer::with(&[("notifyMinBrokerIdChanged", "true")]);
    let slave_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let slave_addr = slave_listener.local_addr().unwrap().to_string();
    let mut c = s.client();
    let topics = [topic("TopicTest", 4, 6), topic("Other", 2, 6)];
    let slave = Broker {
        addr: &slave_addr,
        id: 1,
        ..BROKER_A
    };
    assert_eq!(slave.register(&mut c, &version(1), &topics).code(), 0);
    assert_eq!(BROKER_A.register(&mut c, &version(1), &topics).code(), 0);
    let (stream, _) = slave_listener.accept().unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut notified = Client { stream, opaque: 0 };
    let r = Reply::parse(&notified.recv().expect("a notification"));
    assert_eq!(r.code(), 905);
    assert_eq!(r.header["flag"], 2, "oneway request");
    let ext = &r.header["extFields"];
    assert_eq!(ext["minBrokerId"], "0");
    assert_eq!(ext["minBrokerAddr"], "192.168.0.1:10911");
    assert_eq!(ext["haBrokerAddr"], "192.168.0.1:10912");
}
