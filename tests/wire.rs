//! Wire tests: real bytes over a real socket to a server on 127.0.0.1,
//! checked against golden vectors in tests/golden (written from the spec,
//! not from our encoder).

mod common;
use common::*;
use rocketns::protocol::client;
use rocketns::protocol::frame;
use rocketns::protocol::header;

const ROUTE: i32 = 105;

fn register_broker_a(c: &mut Client) {
    // Two topics: a first registration with exactly one is refused (§A.4).
    let r = BROKER_A.register(
        c,
        &version(1),
        &[topic("TopicTest", 4, 6), topic("Other", 2, 6)],
    );
    assert_eq!(r.code(), 0, "{}", r.header_text);
}

fn route_request(topic: &str, version: i32) -> Vec<u8> {
    let mut head = Vec::new();
    client::write_request_json(&mut head, ROUTE, 1, 0, version, &[("topic", topic)]);
    let mut out = Vec::new();
    frame::write_frame(&mut out, frame::SerializeType::Json, &head, b"");
    out
}

#[test]
fn route_lookup_matches_the_spec_bytes() {
    let s = TestServer::start();
    let mut c = s.client();
    register_broker_a(&mut c);
    let request = golden_hex("spec_14_1_route_request_json.hex");
    assert_bytes(&request, &route_request("TopicTest", 479));
    assert_bytes(
        &c.call(&request),
        &golden_hex("spec_14_2_route_response.hex"),
    );
}

#[test]
fn old_clients_get_the_legacy_body_unless_they_ask_for_standard() {
    let s = TestServer::start();
    let mut c = s.client();
    register_broker_a(&mut c);
    assert_bytes(
        &c.call(&route_request("TopicTest", 400)),
        &golden_frame("route_legacy.txt"),
    );
    let mut head = Vec::new();
    let ext = [("topic", "TopicTest"), ("acceptStandardJsonOnly", "true")];
    client::write_request_json(&mut head, ROUTE, 1, 0, 400, &ext);
    let mut asked = Vec::new();
    frame::write_frame(&mut asked, frame::SerializeType::Json, &head, b"");
    assert_bytes(&c.call(&asked), &golden_hex("spec_14_2_route_response.hex"));
}

#[test]
fn binary_header_request_gets_the_same_json_reply() {
    let s = TestServer::start();
    let mut c = s.client();
    register_broker_a(&mut c);
    let request = golden_hex("spec_14_3_route_request_binary.hex");
    assert_bytes(
        &c.call(&request),
        &golden_hex("spec_14_2_route_response.hex"),
    );
}

#[test]
fn missing_topic_is_topic_not_exist_with_javas_remark() {
    let s = TestServer::start();
    let mut c = s.client();
    assert_bytes(
        &c.call(&route_request("NoSuchTopic", 479)),
        &golden_frame("topic_not_exist.txt"),
    );
    let no_topic = c.call(&client::request(ROUTE, 1, 0, &[], b""));
    assert!(Reply::parse(&no_topic).header["remark"]
        .as_str()
        .unwrap()
        .contains("topic: null\n"));
}

#[test]
fn unknown_code_is_not_supported_and_the_connection_stays_open() {
    let s = TestServer::start();
    let mut c = s.client();
    let got = c.call(&client::request(99999, 1, 0, &[], b""));
    assert_bytes(&got, &golden_frame("unknown_code.txt"));
    assert_bytes(
        &c.call(&route_request("NoSuchTopic", 479)),
        &golden_frame("topic_not_exist.txt"),
    );
}

#[test]
fn oneway_requests_are_never_answered() {
    let s = TestServer::start();
    let mut c = s.client();
    let oneway = header::FLAG_ONEWAY;
    c.send(&client::request(99999, 5, oneway, &[], b""));
    let beat = [("clusterName", "DefaultCluster"), ("brokerAddr", "x:1")];
    c.send(&client::request(904, 6, oneway, &beat, b""));
    c.send(&client::request(904, 7, oneway, &[], b""));
    // The next reply on the wire is the one to this request.
    assert_bytes(
        &c.call(&route_request("NoSuchTopic", 479)),
        &golden_frame("topic_not_exist.txt"),
    );
}

#[test]
fn register_replies_for_master_and_slave() {
    let s = TestServer::start();
    let mut c = s.client();
    let topics = [topic("TopicTest", 4, 6), topic("Other", 2, 6)];
    let master = c.call(&BROKER_A.register_frame(77, &version(1), &topics));
    assert_bytes(&master, &golden_frame("register_master.txt"));
    let slave = Broker {
        addr: "192.168.0.2:10911",
        id: 1,
        ..BROKER_A
    };
    let got = c.call(&slave.register_frame(77, &version(1), &topics));
    assert_bytes(&got, &golden_frame("register_slave.txt"));
    let info = c.call(&client::request(106, 1, 0, &[], b""));
    assert_bytes(&info, &golden_frame("cluster_info.txt"));
}

#[test]
fn register_checks_the_body_crc() {
    let s = TestServer::start();
    let mut c = s.client();
    let before = s.server.snapshot_version();
    let mut bytes = BROKER_A.register_frame(77, &version(1), &[topic("A", 1, 6), topic("B", 1, 6)]);
    let last = bytes.len() - 3;
    bytes[last] ^= 0x01; // corrupt the body, keep the length
    assert_bytes(&c.call(&bytes), &golden_frame("register_crc_mismatch.txt"));
    assert_eq!(s.server.snapshot_version(), before, "nothing registered");
}

#[test]
fn first_registration_with_exactly_one_topic_is_refused() {
    let s = TestServer::start();
    let mut c = s.client();
    let got = c.call(&BROKER_A.register_frame(77, &version(1), &[topic("Only", 4, 6)]));
    assert_bytes(&got, &golden_frame("register_single_topic_refused.txt"));
}

#[test]
fn compressed_registration_is_understood() {
    let s = TestServer::start();
    let mut c = s.client();
    let topics = [topic("TopicTest", 4, 6), topic("Other", 2, 6)];
    let body = client::encode_register_compressed(&version(1), &topics, &[], true);
    let crc = (crc32fast::hash(&body) & 0x7FFF_FFFF).to_string();
    let ext = [
        ("brokerAddr", "192.168.0.1:10911"),
        ("brokerId", "0"),
        ("brokerName", "broker-a"),
        ("bodyCrc32", crc.as_str()),
        ("clusterName", "DefaultCluster"),
        ("compressed", "true"),
        ("enableActingMaster", "false"),
    ];
    let r = Reply::parse(&c.call(&client::request(103, 1, 0, &ext, &body)));
    assert_eq!(r.code(), 0, "{}", r.header_text);
    assert_bytes(
        &c.call(&route_request("TopicTest", 479)),
        &golden_hex("spec_14_2_route_response.hex"),
    );
}

#[test]
fn topic_list_and_data_version_and_heartbeat() {
    let s = TestServer::start();
    let mut c = s.client();
    // An empty first registration, then one topic (the guard allows it now).
    assert_eq!(BROKER_A.register(&mut c, &version(1), &[]).code(), 0);
    assert_eq!(
        BROKER_A
            .register(&mut c, &version(1), &[topic("TopicTest", 4, 6)])
            .code(),
        0
    );
    assert_bytes(
        &c.call(&client::request(206, 1, 0, &[], b"")),
        &golden_frame("topic_list_one.txt"),
    );

    let who = [
        ("brokerAddr", "192.168.0.1:10911"),
        ("brokerId", "0"),
        ("brokerName", "broker-a"),
        ("clusterName", "DefaultCluster"),
    ];
    let same = version(1).to_json();
    let got = c.call(&client::request(322, 1, 0, &who, &same));
    assert_bytes(&got, &golden_frame("query_data_version_unchanged.txt"));
    let stranger = [
        ("brokerAddr", "10.9.9.9:1"),
        ("clusterName", "DefaultCluster"),
    ];
    let got = c.call(&client::request(322, 1, 0, &stranger, &same));
    assert_bytes(&got, &golden_frame("query_data_version_unknown.txt"));
    let got = c.call(&client::request(904, 1, 0, &who, b""));
    assert_bytes(&got, &golden_frame("success_plain.txt"));
}

#[test]
fn unregister_removes_the_broker_from_routes() {
    let s = TestServer::start();
    let mut c = s.client();
    register_broker_a(&mut c);
    let who = [
        ("brokerAddr", "192.168.0.1:10911"),
        ("brokerId", "0"),
        ("brokerName", "broker-a"),
        ("clusterName", "DefaultCluster"),
    ];
    // An admin tool sends it on its own connection.
    let mut admin = s.client();
    assert_bytes(
        &admin.call(&client::request(104, 1, 0, &who, b"")),
        &golden_frame("success_plain.txt"),
    );
    assert!(eventually(|| Reply::parse(
        &admin.call(&route_request("TopicTest", 479))
    )
    .code()
        == 17));
    let info = Reply::parse(&admin.call(&client::request(106, 1, 0, &[], b"")));
    assert_eq!(
        info.body_text(),
        r#"{"brokerAddrTable":{},"clusterAddrTable":{}}"#
    );
}

#[test]
fn a_reply_to_register_means_lookups_see_the_broker() {
    let s = TestServer::start();
    let mut broker = s.client();
    let mut clients: Vec<Client> = (0..4).map(|_| s.client()).collect();
    for round in 0..20 {
        let name = format!("T{round}");
        let topics = [topic(&name, 4, 6), topic("Other", 2, 6)];
        let r = BROKER_A.register(&mut broker, &version(round), &topics);
        assert_eq!(r.code(), 0);
        for c in &mut clients {
            let got = Reply::parse(&c.call(&route_request(&name, 479)));
            assert_eq!(got.code(), 0, "round {round}: {}", got.header_text);
        }
    }
}

#[test]
fn closing_the_broker_connection_drops_its_routes() {
    let s = TestServer::start();
    let mut broker = s.client();
    register_broker_a(&mut broker);
    let mut c = s.client();
    assert_eq!(
        Reply::parse(&c.call(&route_request("TopicTest", 479))).code(),
        0
    );
    drop(broker);
    assert!(eventually(|| Reply::parse(
        &c.call(&route_request("TopicTest", 479))
    )
    .code()
        == 17));
}

/// Returns once the writer has applied everything the shards sent it
/// before this call: a QUERY_DATA_VERSION for a broker nobody registered
/// goes through the writer, changes nothing visible, and is answered only
/// after the batch that holds it is published. The writer takes queued
/// closes and unregistrations before requests, so a close sent earlier is
/// in that batch or an earlier one.
fn writer_caught_up(s: &TestServer) {
    let mut c = s.client();
    let stranger = [("brokerAddr", "10.9.9.9:1"), ("clusterName", "NoCluster")];
    let r = c.request(322, &stranger, &version(1).to_json());
    assert_eq!(r.code(), 0, "{}", r.header_text);
}

#[test]
fn a_client_connection_closing_drops_nothing() {
    let s = TestServer::start();
    let mut broker = s.client();
    register_broker_a(&mut broker);
    // Answered after the registration was published.
    let v = s.server.snapshot_version();
    let mut other = s.client();
    assert_eq!(
        Reply::parse(&other.call(&route_request("TopicTest", 479))).code(),
        0
    );
    assert_eq!(s.server.connections(), 2, "the broker and the client");
    drop(other);
    // A connection leaves the count after whatever its close sends the
    // writer is queued; the marker below queues behind it.
    assert!(
        eventually(|| s.server.connections() == 1),
        "the client's close never seen"
    );
    writer_caught_up(&s);
    assert_eq!(
        s.server.snapshot_version(),
        v,
        "a client's close published a snapshot"
    );
    let mut c = s.client();
    assert_eq!(
        Reply::parse(&c.call(&route_request("TopicTest", 479))).code(),
        0
    );
    assert_eq!(s.server.snapshot_version(), v);
}

#[test]
fn expiry_follows_the_injected_clock() {
    let s = TestServer::start();
    let mut broker = s.client();
    register_broker_a(&mut broker);
    let mut c = s.client();
    s.clock.advance_ms(119_000);
    s.server.scan_now();
    assert_eq!(
        Reply::parse(&c.call(&route_request("TopicTest", 479))).code(),
        0
    );
    s.clock.advance_ms(2_000);
    s.server.scan_now();
    assert!(eventually(|| Reply::parse(
        &c.call(&route_request("TopicTest", 479))
    )
    .code()
        == 17));
    // As Java, the expired broker's connection is closed; the client's is not.
    assert!(broker.is_closed(), "expired broker's connection still open");
    assert_eq!(
        Reply::parse(&c.call(&route_request("TopicTest", 479))).code(),
        17
    );
}

#[test]
fn heartbeats_keep_a_broker_alive() {
    let s = TestServer::start();
    let mut broker = s.client();
    register_broker_a(&mut broker);
    let who = [
        ("brokerAddr", "192.168.0.1:10911"),
        ("clusterName", "DefaultCluster"),
    ];
    s.clock.advance_ms(100_000);
    broker.call(&client::request(904, 1, 0, &who, b""));
    s.clock.advance_ms(100_000);
    s.server.scan_now();
    let mut c = s.client();
    assert_eq!(
        Reply::parse(&c.call(&route_request("TopicTest", 479))).code(),
        0
    );
}

#[test]
fn unchanged_reregistration_publishes_nothing() {
    let s = TestServer::start();
    let mut c = s.client();
    let topics = [topic("TopicTest", 4, 6), topic("Other", 2, 6)];
    assert_eq!(BROKER_A.register(&mut c, &version(1), &topics).code(), 0);
    let v = s.server.snapshot_version();
    assert!(v > 0);
    assert_eq!(BROKER_A.register(&mut c, &version(1), &topics).code(), 0);
    assert_eq!(s.server.snapshot_version(), v, "same data version");
    assert_eq!(BROKER_A.register(&mut c, &version(2), &topics).code(), 0);
    assert_eq!(
        s.server.snapshot_version(),
        v,
        "new data version, same topics"
    );
    let more = [topic("TopicTest", 8, 6), topic("Other", 2, 6)];
    assert_eq!(BROKER_A.register(&mut c, &version(3), &more).code(), 0);
    assert_eq!(
        s.server.snapshot_version(),
        v + 1,
        "a real change publishes"
    );
}

/// Every broken-frame case closes only its own connection, is counted, and
/// a second connection keeps being answered.
#[test]
fn broken_frames_close_only_their_connection() {
    let s = TestServer::start();
    let mut healthy = s.client();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("negative length", vec![0xff, 0xff, 0xff, 0xfe]),
        (
            "over the limit",
            (16 * 1024 * 1024 - 3u32).to_be_bytes().to_vec(),
        ),
        (
            "header past frame",
            vec![0, 0, 0, 6, 0, 0, 0, 9, b'{', b'}'],
        ),
        (
            "unknown serialize type",
            vec![0, 0, 0, 6, 7, 0, 0, 2, b'{', b'}'],
        ),
        (
            "header not JSON",
            vec![0, 0, 0, 7, 0, 0, 0, 3, b'{', b'"', b'x'],
        ),
        (
            "binary header truncated",
            vec![0, 0, 0, 6, 1, 0, 0, 2, 0, 105],
        ),
        (
            "TLS ClientHello",
            vec![0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00],
        ),
    ];
    for (i, (what, bytes)) in cases.iter().enumerate() {
        let mut bad = s.client();
        bad.send(bytes);
        assert!(bad.is_closed(), "{what}: connection stays open");
        assert!(
            eventually(|| s.server.broken_frames() == i as u64 + 1),
            "{what}: not counted"
        );
        let got = healthy.call(&route_request("NoSuchTopic", 479));
        assert_bytes(&got, &golden_frame("topic_not_exist.txt"));
    }
}

#[test]
fn a_frame_split_into_single_bytes_is_assembled() {
    let s = TestServer::start();
    let mut c = s.client();
    for b in route_request("NoSuchTopic", 479) {
        c.send(&[b]);
    }
    assert_bytes(&c.recv().unwrap(), &golden_frame("topic_not_exist.txt"));
}

#[test]
fn pipelined_requests_are_all_answered() {
    let s = TestServer::start();
    let mut c = s.client();
    register_broker_a(&mut c);
    let mut batch = Vec::new();
    for opaque in 0..500 {
        batch.extend(client::request(
            ROUTE,
            opaque,
            0,
            &[("topic", "TopicTest")],
            b"",
        ));
    }
    c.send(&batch);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..500 {
        let r = Reply::parse(&c.recv().unwrap());
        assert_eq!(r.code(), 0);
        seen.insert(r.header["opaque"].as_i64().unwrap());
    }
    assert_eq!(seen.len(), 500);
}

#[test]
fn second_instance_on_the_same_port_fails_with_address_in_use() {
    let s = TestServer::start();
    let dir = TempDir::new();
    let mut config = test_config(&dir.0);
    let port = s.server.local_addr().port().to_string();
    config.set("listenPort", &port).unwrap();
    let clock = std::sync::Arc::new(rocketns::clock::ManualClock::new(0));
    let err = rocketns::server::Server::start(config, clock)
        .err()
        .expect("bind fails");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
}
