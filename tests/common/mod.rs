//! The one place tests talk to a server: start it on 127.0.0.1:0, send
//! bytes over a real socket, read whole frames back, load golden vectors.
#![allow(dead_code)]

use rocketns::clock::ManualClock;
use rocketns::config::Config;
use rocketns::protocol::body::{DataVersion, TopicConfig};
use rocketns::protocol::client;
use rocketns::protocol::frame;
use rocketns::server::Server;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A test that cannot run here says why: on stdout (shown with
/// `--nocapture`) and appended to the file named by ROCKETNS_SKIP_LOG,
/// which `scripts/test.sh` prints after cargo, since libtest keeps a
/// passing test's output to itself.
pub fn skip(why: &str) {
    println!("SKIP {why}");
    if let Ok(path) = std::env::var("ROCKETNS_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "SKIP {why}");
        }
    }
}

pub struct TestServer {
    pub server: Server,
    pub clock: Arc<ManualClock>,
    pub dir: TempDir,
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("rocketns-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Java's defaults, on 127.0.0.1 with an ephemeral port, 2 shards, and the
/// KV and config files in `dir`.
pub fn test_config(dir: &Path) -> Config {
    let mut c = Config::defaults(dir.to_str().unwrap(), 2);
    for (k, v) in [
        ("bindAddress", "127.0.0.1"),
        ("listenPort", "0"),
        ("shardCount", "2"),
        ("httpListenPort", "0"),
    ] {
        c.set(k, v).unwrap();
    }
    c.set("rocketmqHome", dir.to_str().unwrap()).unwrap();
    c
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::with(&[])
    }

    /// A server with these config keys set (Java names).
    pub fn with(keys: &[(&str, &str)]) -> TestServer {
        Self::in_dir(TempDir::new(), keys)
    }

    /// Stops this server and starts another on the same files.
    pub fn restart(self, keys: &[(&str, &str)]) -> TestServer {
        let TestServer { server, dir, .. } = self;
        server.stop();
        Self::in_dir(dir, keys)
    }

    pub fn in_dir(dir: TempDir, keys: &[(&str, &str)]) -> TestServer {
        let mut config = test_config(&dir.0);
        for (k, v) in keys {
            config.set(k, v).unwrap();
        }
        let clock = Arc::new(ManualClock::new(1_000_000));
        let server = Server::start(config, clock.clone()).expect("server starts");
        TestServer { server, clock, dir }
    }

    pub fn client(&self) -> Client {
        Client::connect(self.server.local_addr())
    }
}

pub struct Client {
    pub stream: TcpStream,
    pub opaque: i32,
}

impl Client {
    pub fn connect(addr: std::net::SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream, opaque: 0 }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// One whole frame, or `None` when the server closed the connection.
    pub fn recv(&mut self) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        if self.stream.read_exact(&mut len).is_err() {
            return None;
        }
        let mut rest = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut rest).expect("whole frame");
        Some([len.to_vec(), rest].concat())
    }

    pub fn call(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.send(bytes);
        self.recv().expect("a reply")
    }

    /// Sends a JSON request with the next opaque and returns the reply.
    pub fn request(&mut self, code: i32, ext: &[(&str, &str)], body: &[u8]) -> Reply {
        self.opaque += 1;
        let reply = self.call(&client::request(code, self.opaque, 0, ext, body));
        Reply::parse(&reply)
    }

    /// True once the server has closed this connection: end of stream or
    /// a reset within the read timeout. A timeout is not a close.
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        match self.stream.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }
}

/// A reply split into its header JSON and its body.
#[derive(Debug)]
pub struct Reply {
    pub header: serde_json::Value,
    pub header_text: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn parse(frame: &[u8]) -> Reply {
        let header_len = (u32::from_be_bytes(frame[4..8].try_into().unwrap()) & 0xFF_FFFF) as usize;
        assert_eq!(frame[4], 0, "replies have JSON headers");
        let header_text = String::from_utf8(frame[8..8 + header_len].to_vec()).unwrap();
        Reply {
            header: serde_json::from_str(&header_text).unwrap(),
            header_text,
            body: frame[8 + header_len..].to_vec(),
        }
    }

    pub fn code(&self) -> i64 {
        self.header["code"].as_i64().unwrap()
    }

    pub fn body_text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

fn golden_path(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// A hex dump golden vector (`offset  hex bytes  |ascii|`).
pub fn golden_hex(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(golden_path(name)).expect("golden file");
    text.lines()
        .filter(|l| l.len() > 6)
        .flat_map(|l| {
            let hex = l[6..].split('|').next().unwrap().to_string();
            hex.split_whitespace()
                .map(|b| u8::from_str_radix(b, 16).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A golden reply: first line the header JSON, the rest the body, framed
/// as a JSON-header frame.
pub fn golden_frame(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(golden_path(name)).expect("golden file");
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

/// Asserts byte equality and shows both sides as text when they differ.
pub fn assert_bytes(got: &[u8], want: &[u8]) {
    assert!(
        got == want,
        "bytes differ\n got: {}\nwant: {}",
        String::from_utf8_lossy(got),
        String::from_utf8_lossy(want)
    );
}

pub fn topic(name: &str, queues: i32, perm: i32) -> (&str, TopicConfig) {
    let config = TopicConfig {
        topic_name: Some(name.to_string()),
        read_queue_nums: queues,
        write_queue_nums: queues,
        perm,
        topic_sys_flag: 0,
    };
    (name, config)
}

pub fn version(counter: i64) -> DataVersion {
    DataVersion {
        counter,
        state_version: 0,
        timestamp: 1_700_000_000_000,
    }
}

/// A broker as the tests register it.
pub struct Broker<'a> {
    pub cluster: &'a str,
    pub name: &'a str,
    pub addr: &'a str,
    pub id: i64,
}

pub const BROKER_A: Broker<'static> = Broker {
    cluster: "DefaultCluster",
    name: "broker-a",
    addr: "192.168.0.1:10911",
    id: 0,
};

impl Broker<'_> {
    pub fn register_frame(
        &self,
        opaque: i32,
        dv: &DataVersion,
        topics: &[(&str, TopicConfig)],
    ) -> Vec<u8> {
        let body = client::encode_register_json(dv, topics, &[]);
        self.register_frame_with(opaque, &body, &[])
    }

    /// A registration with this body and extra ext fields (e.g. a zone);
    /// a later duplicate key wins.
    pub fn register_frame_with(&self, opaque: i32, body: &[u8], extra: &[(&str, &str)]) -> Vec<u8> {
        let id = self.id.to_string();
        let crc = (crc32fast::hash(body) & 0x7FFF_FFFF).to_string();
        let ext = [
            ("brokerAddr", self.addr),
            ("brokerId", id.as_str()),
            ("brokerName", self.name),
            ("bodyCrc32", crc.as_str()),
            ("clusterName", self.cluster),
            ("compressed", "false"),
            ("enableActingMaster", "false"),
            ("haServerAddr", "192.168.0.1:10912"),
        ];
        let ext: Vec<(&str, &str)> = ext.iter().chain(extra).copied().collect();
        client::request(103, opaque, 0, &ext, body)
    }

    pub fn register(
        &self,
        c: &mut Client,
        dv: &DataVersion,
        topics: &[(&str, TopicConfig)],
    ) -> Reply {
        Reply::parse(&c.call(&self.register_frame(77, dv, topics)))
    }
}

/// Polls `f` until it holds or 5 s pass; for effects the server applies
/// asynchronously (unregistration), never for timing.
pub fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// The real binary on 127.0.0.1 with an ephemeral port and its files in
/// `dir`; returns once it printed its boot line.
pub fn spawn_binary(dir: &Path, extra: &[&str]) -> (std::process::Child, std::net::SocketAddr) {
    spawn_command(binary(dir, extra))
}

/// Spawns the server command and waits for its boot line.
fn spawn_command(mut cmd: std::process::Command) -> (std::process::Child, std::net::SocketAddr) {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let boot = lines
        .find_map(|l| l.ok().filter(|l| l.contains("boot success")))
        .expect("boot line");
    let addr = boot
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .expect("address in boot line");
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

/// The binary's command with test defaults; the caller adds and spawns.
pub fn binary(dir: &Path, extra: &[&str]) -> std::process::Command {
    binary_at(Path::new(env!("CARGO_BIN_EXE_rocketns")), dir, extra)
}

/// The release build of the server, built once per test process with the
/// cargo running the tests: for tests whose point is how fast it answers.
pub fn release_binary() -> &'static Path {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = std::process::Command::new(cargo)
            .args([
                "build",
                "--release",
                "--bin",
                "rocketns",
                "--message-format=json",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("cargo runs");
        assert!(out.status.success(), "cargo build --release failed");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find_map(|m| Some(PathBuf::from(m["executable"].as_str()?)))
            .expect("cargo names the executable")
    })
}

/// Like `spawn_binary`, with the release build.
pub fn spawn_release_binary(
    dir: &Path,
    extra: &[&str],
) -> (std::process::Child, std::net::SocketAddr) {
    spawn_command(binary_at(release_binary(), dir, extra))
}

/// The command of the server at `exe` with test defaults.
pub fn binary_at(exe: &Path, dir: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "--bindAddress",
        "127.0.0.1",
        "--listenPort",
        "0",
        "--shardCount",
        "2",
        "--httpListenPort",
        "0",
    ])
    .arg("--kvConfigPath")
    .arg(dir.join("kvConfig.json"))
    .arg("--configStorePath")
    .arg(dir.join("namesrv.properties"))
    .arg("--rocketmqHome")
    .arg(dir)
    .args(extra)
    .env("HOME", dir)
    .env("RUST_LOG", "warn");
    cmd
}

/// A port that was free a moment ago (for the HTTP side, whose 0 means off).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A GET over plain HTTP/1.1: (status code, body).
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect http");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}
