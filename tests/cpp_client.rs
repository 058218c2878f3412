//! A real client nobody here wrote: Apache's RocketMQ C++ client
//! (librocketmq.so, PyPI `rocketmq-python-cvs`) asks for a topic's queues
//! after a broker registered through the raw protocol. `scripts/test.sh`
//! sets up the virtualenv and passes its python in ROCKETNS_TEST_PYTHON.

mod common;
use common::*;

fn cpp_queues(python: &str, addr: std::net::SocketAddr, topic: &str) -> serde_json::Value {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/cpp_client/cpp_queues.py"
    );
    let out = std::process::Command::new(python)
        .args([script, &addr.to_string(), topic])
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "no output; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

#[test]
fn cpp_client_sees_exactly_the_registered_queues() {
    let Ok(python) = std::env::var("ROCKETNS_TEST_PYTHON") else {
        common::skip("cpp_client: ROCKETNS_TEST_PYTHON not set (run ./scripts/test.sh)");
        return;
    };
    let s = TestServer::start();
    let mut c = s.client();
    let topics = [topic("TopicTest", 4, 6), topic("Other", 2, 6)];
    assert_eq!(BROKER_A.register(&mut c, &version(1), &topics).code(), 0);
    let b = Broker {
        name: "broker-b",
        addr: "192.168.0.9:10911",
        ..BROKER_A
    };
    assert_eq!(
        b.register(
            &mut c,
            &version(1),
            &[topic("TopicTest", 2, 6), topic("X", 1, 6)]
        )
        .code(),
        0
    );
    let got = cpp_queues(&python, s.server.local_addr(), "TopicTest");
    let queues: Vec<(String, i64)> = got
        .as_array()
        .unwrap_or_else(|| panic!("{got}"))
        .iter()
        .map(|q| {
            assert_eq!(q["topic"], "TopicTest");
            (
                q["brokerName"].as_str().unwrap().to_string(),
                q["queueId"].as_i64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, i64)> = [
        ("broker-a", 0),
        ("broker-a", 1),
        ("broker-a", 2),
        ("broker-a", 3),
        ("broker-b", 0),
        ("broker-b", 1),
    ]
    .iter()
    .map(|(b, q)| (b.to_string(), *q))
    .collect();
    assert_eq!(queues, want);
}
