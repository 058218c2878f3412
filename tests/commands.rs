//! Wire tests of the admin and list commands (`namesrv-commands.md` §A),
//! against golden vectors written from the spec.

mod common;
use common::*;
use rocketns::protocol::body::TopicConfig;
use rocketns::protocol::frame;
use rocketns::server::Settings;

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
    assert_eq!(BROKER_A.register(&mut c, &version(1), &[topic("TopicTest", 4, 6)]).code(), 0);
    let got = c.call(&frame::request(224, 1, 0, &[("cluster", "DefaultCluster")], b""));
    assert_bytes(&got, &golden_frame("topic_list_one.txt"));
    let other = Reply::parse(&c.call(&frame::request(224, 1, 0, &[("cluster", "Nope")], b"")));
    assert_eq!(other.body_text(), r#"{"topicList":[]}"#);
}

#[test]
fn system_topic_list_names_clusters_and_brokers() {
    let s = TestServer::start();
    let mut c = s.client();
    BROKER_A.register(&mut c, &version(1), &[topic("A", 1, 6), topic("B", 1, 6)]);
    let r = Reply::parse(&c.call(&frame::request(304, 1, 0, &[], b"")));
    assert_eq!(r.code(), 0);
    assert_eq!(list(&r), vec!["DefaultCluster", "broker-a"]);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["brokerAddr"], "192.168.0.1:10911");
}

#[test]
fn unit_topic_lists_select_by_sys_flag() {
    let s = TestServer::start();
    let mut c = s.client();
    let topics = [flagged("plain", 0), flagged("unit", 1), flagged("sub", 2), flagged("both", 3)];
    assert_eq!(BROKER_A.register(&mut c, &version(1), &topics).code(), 0);
    let names = |c: &mut Client, code| list(&Reply::parse(&c.call(&frame::request(code, 1, 0, &[], b""))));
    assert_eq!(names(&mut c, 311), vec!["both", "unit"]);
    assert_eq!(names(&mut c, 312), vec!["both", "sub"]);
    assert_eq!(names(&mut c, 313), vec!["sub"]);
}

#[test]
fn topic_lists_can_be_disabled() {
    let s = TestServer::with(Settings {
        enable_topic_list: false,
        enable_all_topic_list: false,
        ..Settings::default()
    });
    let mut c = s.client();
    for code in [206, 224, 311, 312, 313] {
        assert_bytes(&c.call(&frame::request(code, 1, 0, &[], b"")), &golden_frame("disable.txt"));
    }
    let r = Reply::parse(&c.call(&frame::request(304, 1, 0, &[], b"")));
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
    let ext = [("clusterName", "DefaultCluster"), ("brokerName", "broker-a")];
    let got = c.call(&frame::request(901, 1, 0, &ext, b""));
    assert_bytes(&got, &golden_frame("broker_member_group.txt"));
    let unknown = Reply::parse(&c.call(&frame::request(901, 1, 0, &[("brokerName", "x")], b"")));
    assert_eq!(unknown.body_text(), r#"{"brokerMemberGroup":{"brokerAddrs":{},"brokerName":"x"}}"#);
}
