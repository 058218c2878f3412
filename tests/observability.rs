//! The HTTP side: Prometheus metrics that move with traffic, health and
//! readiness probes.

mod common;
use common::*;
use rocketns::protocol::client;

/// Parses Prometheus text: every line is a comment or `name{labels} value`.
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {l:?}"));
            assert!(name.chars().next().unwrap().is_ascii_alphabetic(), "{l:?}");
            (name.to_string(), value)
        })
        .collect()
}

fn value(text: &str, name: &str) -> f64 {
    samples(text)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .1
}

#[test]
fn metrics_parse_and_move_with_traffic() {
    let port = free_port().to_string();
    let s = TestServer::with(&[("httpListenPort", &port)]);
    let http = s.server.http_addr().unwrap();
    let (code, before) = http_get(http, "/metrics");
    assert_eq!(code, 200);
    let routes = "rocketns_requests_total{code=\"105\"}";
    assert_eq!(value(&before, routes), 0.0);
    let mut c = s.client();
    BROKER_A.register(&mut c, &version(1), &[topic("A", 1, 6), topic("B", 1, 6)]);
    for _ in 0..5 {
        c.call(&client::request(105, 1, 0, &[("topic", "A")], b""));
    }
    c.call(&client::request(105, 1, 0, &[("topic", "nope")], b""));
    let mut bad = s.client();
    bad.send(&[0xff, 0xff, 0xff, 0xff]);
    assert!(bad.is_closed());
    let (_, after) = http_get(http, "/metrics");
    assert_eq!(value(&after, routes), 6.0);
    assert_eq!(
        value(&after, "rocketns_request_errors_total{code=\"105\"}"),
        1.0
    );
    assert_eq!(value(&after, "rocketns_requests_total{code=\"103\"}"), 1.0);
    assert_eq!(value(&after, "rocketns_topics"), 2.0);
    assert_eq!(value(&after, "rocketns_broker_groups"), 1.0);
    assert_eq!(value(&after, "rocketns_lookup_latency_seconds_count"), 6.0);
    assert_eq!(
        value(
            &after,
            "rocketns_broken_frames_total{reason=\"negative_length\"}"
        ),
        1.0
    );
    assert!(value(&after, "rocketns_snapshot_version") >= 2.0);
    assert!(value(&after, "rocketns_writer_batches_total") >= 1.0);
    assert!(
        value(&after, "rocketns_connections{shard=\"0\"}")
            + value(&after, "rocketns_connections{shard=\"1\"}")
            >= 1.0
    );
}

#[test]
fn health_and_readiness() {
    let port = free_port().to_string();
    let keys = [
        ("httpListenPort", port.as_str()),
        ("needWaitForService", "true"),
        ("waitSecondsForService", "10"),
    ];
    let s = TestServer::with(&keys);
    let http = s.server.http_addr().unwrap();
    assert_eq!(http_get(http, "/healthz").0, 200);
    let (code, body) = http_get(http, "/readyz");
    assert_eq!(code, 503, "{body}");
    s.clock.advance_ms(10_000);
    assert_eq!(http_get(http, "/readyz"), (200, "ready\n".to_string()));
    assert_eq!(http_get(http, "/nothing").0, 404);
}

/// The address server Java brokers and clients poll when
/// `rocketmq.namesrv.domain` is set: `/rocketmq/nsaddr`, a `;` list.
#[test]
fn nsaddr_serves_the_configured_list_or_the_resolved_name() {
    let port = free_port().to_string();
    let list = "10.0.0.1:9876; 10.0.0.2:9876";
    let s = TestServer::with(&[("httpListenPort", &port), ("nsaddrList", list)]);
    let http = s.server.http_addr().unwrap();
    let got = http_get(http, "/rocketmq/nsaddr?nofix=1");
    assert_eq!(got, (200, "10.0.0.1:9876;10.0.0.2:9876".to_string()));

    let port = free_port().to_string();
    let s = TestServer::with(&[("httpListenPort", &port), ("nsaddrDnsName", "localhost")]);
    let (code, body) = http_get(s.server.http_addr().unwrap(), "/rocketmq/nsaddr");
    let own = format!("127.0.0.1:{}", s.server.local_addr().port());
    assert_eq!(code, 200, "{body}");
    assert!(body.split(';').any(|a| a == own), "{body} lists {own}");

    let port = free_port().to_string();
    let s = TestServer::with(&[
        ("httpListenPort", &port),
        ("nsaddrDnsName", "no-such-host.invalid"),
    ]);
    let (code, body) = http_get(s.server.http_addr().unwrap(), "/rocketmq/nsaddr");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("no-such-host.invalid"), "{body}");

    let port = free_port().to_string();
    let s = TestServer::with(&[("httpListenPort", &port)]);
    let (code, body) = http_get(s.server.http_addr().unwrap(), "/rocketmq/nsaddr");
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("nsaddrList"), "{body}");
}

/// `rocketns --healthcheck HOST:PORT[/PATH]`: the image's HEALTHCHECK, and
/// an exec probe where a runtime runs one without a shell; needs no curl.
#[test]
fn healthcheck_flag_exits_0_only_for_a_healthy_server() {
    let port = free_port().to_string();
    let s = TestServer::with(&[("httpListenPort", &port)]);
    let check = |addr: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_rocketns"))
            .args(["--healthcheck", addr])
            .output()
            .unwrap()
            .status
            .code()
    };
    let http = s.server.http_addr().unwrap();
    assert_eq!(check(&http.to_string()), Some(0));
    assert_eq!(check(&format!("{http}/readyz")), Some(0));
    assert_eq!(check(&format!("{http}/no-such-endpoint")), Some(1));
    drop(s);
    assert_eq!(check(&format!("127.0.0.1:{port}")), Some(1));
}
