//! The shipped load generator, run briefly against a real server: every
//! mode must verify its replies and report zero errors against rocketns,
//! and must report errors (not hang or succeed) when replies are wrong.

mod common;

use common::{free_port, TestServer};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `rocketns-load ARGS --json` to its end and returns its JSON line.
fn load(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_rocketns-load"))
        .args(args)
        .arg("--json")
        .stderr(Stdio::inherit())
        .output()
        .expect("run rocketns-load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "rocketns-load failed: {stdout}");
    let line = stdout.lines().last().expect("a JSON line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn assert_clean(v: &Value, prefix: &str) {
    assert_eq!(num(v, &format!("{prefix}errors_total")), 0.0, "{v}");
    assert!(num(v, &format!("{prefix}ok_total")) > 0.0, "{v}");
    let p50 = num(v, &format!("{prefix}latency_us_p50"));
    let p99 = num(v, &format!("{prefix}latency_us_p99"));
    let max = num(v, &format!("{prefix}latency_us_max"));
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{v}");
}

#[test]
fn mixed_mode_lookups_and_churning_registrations_verify_against_rocketns() {
    let server = TestServer::start();
    let addr = server.server.local_addr().to_string();
    let v = load(&[
        "mixed",
        "--addr",
        &addr,
        "--brokers",
        "2",
        "--topics-per-broker",
        "50",
        "--period-ms",
        "200",
        "--churn",
        "topics",
        "--connections",
        "4",
        "--in-flight",
        "2",
        "--missing-pct",
        "20",
        "--warmup-secs",
        "0",
        "--duration-secs",
        "2",
    ]);
    assert_eq!(v["mode"], "mixed");
    assert_clean(&v, "");
    assert_clean(&v, "register_");
    assert_eq!(num(&v, "connections_served"), 4.0, "{v}");
    assert!(num(&v, "first_register_ok_total") >= 2.0, "{v}");
    assert!(
        server.server.snapshot_version() > 2,
        "churn published new snapshots"
    );
}

#[test]
fn open_loop_lookup_holds_its_rate_against_rocketns() {
    let server = TestServer::start();
    let addr = server.server.local_addr().to_string();
    // Brokers hold their topics registered while the lookup run asks for them.
    let register = Command::new(env!("CARGO_BIN_EXE_rocketns-load"))
        .args(["register", "--addr", &addr, "--brokers", "1"])
        .args(["--topics-per-broker", "20", "--period-ms", "1000"])
        .args(["--warmup-secs", "0", "--duration-secs", "6"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn register");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut client = server.client();
    while client
        .request(105, &[("topic", "bench-topic-0-19")], b"")
        .code()
        != 0
    {
        assert!(Instant::now() < deadline, "the broker never registered");
        std::thread::sleep(Duration::from_millis(20));
    }
    let v = load(&[
        "lookup",
        "--addr",
        &addr,
        "--brokers",
        "1",
        "--topics-per-broker",
        "20",
        "--connections",
        "3",
        "--rate",
        "500",
        "--warmup-secs",
        "0",
        "--duration-secs",
        "2",
    ]);
    let mut register = register;
    let _ = register.wait();
    assert_clean(&v, "");
    assert_eq!(num(&v, "connections_served"), 3.0, "{v}");
    let rate = num(&v, "throughput_per_s");
    assert!((300.0..=700.0).contains(&rate), "open loop at 500/s: {v}");
}

#[test]
fn storm_connects_once_per_lookup_and_counts_missing_topics_as_verified() {
    let server = TestServer::start();
    let addr = server.server.local_addr().to_string();
    // No broker: every topic is missing, and the run says so exactly.
    let v = load(&[
        "storm",
        "--addr",
        &addr,
        "--connections",
        "200",
        "--concurrency",
        "20",
        "--missing-pct",
        "100",
        "--duration-secs",
        "10",
    ]);
    assert_clean(&v, "");
    assert_eq!(num(&v, "ok_total"), 200.0, "{v}");
}

#[test]
fn lookup_reports_errors_when_the_replies_are_wrong() {
    // serve-fixed answers every request with one route, so lookups that
    // expect TOPIC_NOT_EXIST must be counted as errors, not as successes.
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut fixed = Command::new(env!("CARGO_BIN_EXE_rocketns-load"))
        .args(["serve-fixed", "--listen", &listen, "--duration-secs", "8"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn serve-fixed");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(&listen).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let v = load(&[
        "lookup",
        "--addr",
        &listen,
        "--connections",
        "2",
        "--missing-pct",
        "100",
        "--warmup-secs",
        "0",
        "--duration-secs",
        "1",
    ]);
    let _ = fixed.kill();
    let _ = fixed.wait();
    assert_eq!(num(&v, "ok_total"), 0.0, "{v}");
    assert!(num(&v, "errors_total") > 0.0, "{v}");
    assert!(
        v["errors_by_kind"]["missing_topic_code_0"].as_f64() > Some(0.0),
        "{v}"
    );
}

#[test]
fn lookup_counts_only_the_connections_that_were_served() {
    // One shard that holds two connections: the other two are accepted and
    // closed at once, every time they reconnect.
    let s = TestServer::with(&[("shardCount", "1"), ("connectionsMaxPerShard", "2")]);
    let addr = s.server.local_addr();
    let args = format!(
        "lookup --addr {addr} --connections 4 --missing-pct 100 --warmup-secs 0 --duration-secs 1"
    );
    let v = load(&args.split(' ').collect::<Vec<_>>());
    assert_eq!(num(&v, "connections"), 4.0, "{v}");
    assert_eq!(num(&v, "connections_served"), 2.0, "{v}");
    assert!(num(&v, "ok_total") > 0.0, "{v}");
    assert!(num(&v, "errors_total") > 0.0, "{v}");
}
