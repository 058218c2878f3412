//! kill -9 of the real binary in the middle of KV writes, repeated: the KV
//! file is always readable, and holds every change that was acknowledged.

mod common;
use common::*;
use rocketns::protocol::client;
use rocketns::route::kv::Kv;
use std::time::{Duration, Instant};

#[test]
fn kill_9_during_kv_writes_never_breaks_the_file() {
    let dir = TempDir::new();
    let mut acked: Vec<String> = Vec::new();
    let value = "x".repeat(200);
    for round in 0..8u64 {
        let (mut child, addr) = spawn_binary(&dir.0, &[]);
        let mut c = Client::connect(addr);
        let kill_after = Duration::from_millis(20 + round * 13);
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed() < kill_after {
            let key = format!("r{round}-k{n}");
            let ext = [
                ("namespace", "crash"),
                ("key", key.as_str()),
                ("value", value.as_str()),
            ];
            let reply = Reply::parse(&c.call(&client::request(100, n, 0, &ext, b"")));
            assert_eq!(reply.code(), 0, "{}", reply.header_text);
            acked.push(key);
            n += 1;
        }
        // Keep writing while the kill lands.
        let key = format!("r{round}-inflight");
        let ext = [
            ("namespace", "crash"),
            ("key", key.as_str()),
            ("value", value.as_str()),
        ];
        c.send(&client::request(100, n, 0, &ext, b""));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        let bytes = std::fs::read(dir.0.join("kvConfig.json")).expect("file exists");
        let kv =
            Kv::from_file(&bytes).unwrap_or_else(|e| panic!("round {round}: broken file: {e}"));
        let missing: Vec<&String> = acked
            .iter()
            .filter(|k| kv.get("crash", k).is_none())
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged but lost: {missing:?}"
        );
    }
    assert!(
        acked.len() > 8,
        "the test wrote too little to mean anything"
    );
}
