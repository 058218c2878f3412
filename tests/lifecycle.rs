//! The process as an operator sees it: flags, config files, start-up
//! checks, signals, idle connections.

mod common;
use common::*;
use rocketns::protocol::client;
use rocketns::route::kv::Kv;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The child's exit status once it exits, or `None` if it is still running
/// after `limit`.
fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A metric from GET /metrics, summed over its labelled series; `None`
/// when the scrape gets no whole answer or has no such metric (so it can be
/// polled while descriptors are short).
fn scrape(http: SocketAddr, name: &str) -> Option<u64> {
    let mut s = TcpStream::connect(http).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let values: Vec<u64> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let rest = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once("} ")?.1,
                None => rest.strip_prefix(' ')?,
            };
            rest.parse().ok()
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// A child process killed when dropped, so a failed assertion leaves no
/// server behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends a route lookup on a fresh connection and waits up to `patience`
/// for its answer: true once the listener accepted and served it.
fn served(addr: SocketAddr, patience: Duration) -> bool {
    let Ok(stream) = TcpStream::connect(addr) else {
        return false;
    };
    stream.set_read_timeout(Some(patience)).unwrap();
    let mut c = Client { stream, opaque: 0 };
    c.send(&client::request(105, 1, 0, &[("topic", "T")], b""));
    c.recv().is_some_and(|r| Reply::parse(&r).code() == 17)
}

fn output(cmd: &mut std::process::Command) -> (i32, String) {
    let out = cmd.output().expect("runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn print_config_lists_every_key_and_exits_0() {
    let dir = TempDir::new();
    let (code, text) = output(&mut binary(&dir.0, &["-p"]));
    assert_eq!(code, 0, "{text}");
    for key in rocketns::config::KEYS {
        assert!(
            text.contains(&format!("\n{}=", key.name))
                || text.starts_with(&format!("{}=", key.name)),
            "{} missing",
            key.name
        );
    }
    assert!(text.contains("\nlistenPort=0\n"), "flags override: {text}");
    // A repeated flag: the last wins (container args after an entrypoint's).
    let (code, text) = output(&mut binary(
        &dir.0,
        &["-p", "--listenPort", "1", "--listenPort=2"],
    ));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("\nlistenPort=2\n"), "{text}");
}

#[test]
fn a_bad_value_stops_start_up_naming_the_key() {
    let dir = TempDir::new();
    let (code, text) = output(&mut binary(
        &dir.0,
        &["--scanNotActiveBrokerInterval", "5s"],
    ));
    assert_ne!(code, 0);
    assert!(
        text.contains("scanNotActiveBrokerInterval") && text.contains("5s"),
        "{text}"
    );
    let small = ["--bufferBytesMaxPerShard", "4096"];
    let (code, text) = output(&mut binary(&dir.0, &small));
    assert_ne!(code, 0);
    assert!(text.contains("bufferBytesMaxPerShard=4096"), "{text}");
    let acl = ["--adminAllowedSources", "127.0.0.1,10.0.0.0/33"];
    let (code, text) = output(&mut binary(&dir.0, &acl));
    assert_ne!(code, 0);
    assert!(
        text.contains("adminAllowedSources") && text.contains("10.0.0.0/33"),
        "{text}"
    );
    let (code, text) = output(&mut binary(&dir.0, &["--bogusFlag", "1"]));
    assert_eq!(code, 1, "usage error exits 1 like mqnamesrv: {text}");
}

/// A properties file with the Java NameServer's keys and defaults loads.
#[test]
fn a_java_properties_file_loads() {
    let dir = TempDir::new();
    let file = dir.0.join("namesrv.conf");
    let java = "rocketmqHome=/opt/rocketmq\nkvConfigPath=/home/rocketmq/namesrv/kvConfig.json\n\
        productEnvName=center\nclusterTest=false\norderMessageEnable=false\n\
        returnOrderTopicConfigToBroker=true\nclientRequestThreadPoolNums=8\ndefaultThreadPoolNums=16\n\
        clientRequestThreadPoolQueueCapacity=50000\ndefaultThreadPoolQueueCapacity=10000\n\
        scanNotActiveBrokerInterval=5000\nunRegisterBrokerQueueCapacity=3000\nsupportActingMaster=false\n\
        enableAllTopicList=true\nenableTopicList=true\nnotifyMinBrokerIdChanged=false\n\
        enableControllerInNamesrv=false\nneedWaitForService=false\nwaitSecondsForService=45\n\
        deleteTopicWithBrokerRegistration=false\nconfigBlackList=configBlackList;configStorePath;kvConfigPath\n\
        bindAddress=0.0.0.0\nlistenPort=9876\nserverWorkerThreads=8\nserverCallbackExecutorThreads=0\n\
        serverSelectorThreads=3\nserverOnewaySemaphoreValue=256\nserverAsyncSemaphoreValue=64\n\
        serverChannelMaxIdleTimeSeconds=120\nserverSocketSndBufSize=0\nserverSocketRcvBufSize=0\n\
        writeBufferHighWaterMark=0\nwriteBufferLowWaterMark=0\nserverSocketBacklog=1024\n\
        serverNettyWorkerGroupEnable=true\nserverPooledByteBufAllocatorEnable=true\n\
        enableShutdownGracefully=false\nshutdownWaitTimeSeconds=30\nuseEpollNativeSelector=false\n";
    std::fs::write(&file, java).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rocketns"));
    cmd.args(["-c", file.to_str().unwrap(), "-p"])
        .env("HOME", &dir.0);
    let (code, text) = output(&mut cmd);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("load config properties file OK"));
    assert!(
        text.contains("\nrocketmqHome=/opt/rocketmq\n") || text.starts_with("load"),
        "{text}"
    );
    assert!(
        text.contains(&format!("configStorePath={}", file.display())),
        "-c becomes configStorePath"
    );
}

/// Installs a seccomp filter that answers io_uring_setup/enter/register
/// with ENOSYS, as Docker's and podman's default profiles do.
fn deny_io_uring() -> std::io::Result<()> {
    const ARCH_NR_OFFSET: u32 = 4;
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xC000_003E;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xC000_00B7;
    let stmt = |code: u16, k: u32| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u16, k: u32, jt: u8, jf: u8| libc::sock_filter { code, jt, jf, k };
    let ld = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    let jeq = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    let jge = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    let ret = (libc::BPF_RET | libc::BPF_K) as u16;
    let filter = [
        stmt(ld, ARCH_NR_OFFSET),
        jump(jeq, AUDIT_ARCH, 1, 0),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
        stmt(ld, 0),
        jump(jge, 425, 0, 2),
        jump(jge, 428, 1, 0),
        stmt(ret, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut _,
    };
    // SAFETY: called in the child between fork and exec; prctl only reads.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const _,
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[test]
fn blocked_io_uring_is_a_clear_error_not_a_panic() {
    let dir = TempDir::new();
    let mut cmd = binary(&dir.0, &[]);
    // SAFETY: deny_io_uring only makes async-signal-safe prctl calls.
    unsafe { cmd.pre_exec(deny_io_uring) };
    let started = Instant::now();
    let (code, text) = output(cmd.stdin(Stdio::null()));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_ne!(code, 0, "{text}");
    assert_ne!(code, 101, "a panic: {text}");
    assert!(
        text.contains("io_uring_setup") && text.contains("seccomp"),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
}

/// SIGTERM while a client keeps writing KV: every write acknowledged
/// before the process went away is in the file, and it exits 0 in 5 s.
#[test]
fn sigterm_under_load_loses_no_kv_write_and_exits_0() {
    let dir = TempDir::new();
    let (child, addr) = spawn_binary(&dir.0, &[]);
    let mut child = Killed(child);
    let progress = Arc::new(AtomicUsize::new(0));
    let seen = progress.clone();
    let writer = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        let mut acked = Vec::new();
        for n in 0..100_000 {
            let key = format!("k{n}");
            let ext = [("namespace", "term"), ("key", key.as_str()), ("value", "v")];
            c.send(&client::request(100, n, 0, &ext, b""));
            match c.recv() {
                Some(reply) if Reply::parse(&reply).code() == 0 => acked.push(key),
                _ => break,
            }
            seen.store(acked.len(), Ordering::SeqCst);
        }
        acked
    });
    // Under load: the writes are being acknowledged, and still going.
    assert!(
        eventually(|| progress.load(Ordering::SeqCst) >= 50),
        "KV writes not acknowledged before the signal: {}",
        progress.load(Ordering::SeqCst)
    );
    assert!(
        !writer.is_finished(),
        "the writes stopped before the signal"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let status = exit_within(&mut child.0, Duration::from_secs(5));
    assert_eq!(status.expect("no exit within 5 s").code(), Some(0));
    let acked = writer.join().unwrap();
    assert!(acked.len() >= 50);
    let kv = Kv::from_file(&std::fs::read(dir.0.join("kvConfig.json")).unwrap()).unwrap();
    let lost: Vec<_> = acked
        .iter()
        .filter(|k| kv.get("term", k).is_none())
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged but lost: {} of {}",
        lost.len(),
        acked.len()
    );
}

/// Idle close follows the server's (injected) clock: a connection that
/// read nothing for serverChannelMaxIdleTimeSeconds is closed, one that
/// read within it stays open.
#[test]
fn idle_connections_are_closed() {
    let s = TestServer::with(&[("serverChannelMaxIdleTimeSeconds", "120")]);
    let lookup = client::request(105, 1, 0, &[("topic", "T")], b"");
    let mut idle = s.client();
    let mut busy = s.client();
    assert_eq!(Reply::parse(&idle.call(&lookup)).code(), 17);
    assert_eq!(Reply::parse(&busy.call(&lookup)).code(), 17);
    s.clock.advance_ms(60_000);
    assert_eq!(Reply::parse(&busy.call(&lookup)).code(), 17);
    s.clock.advance_ms(61_000);
    assert!(idle.is_closed(), "idle for 121 s of 120, still open");
    assert_eq!(Reply::parse(&busy.call(&lookup)).code(), 17);
}

/// serverChannelMaxIdleTimeSeconds changed over the wire (318) applies to
/// open connections.
#[test]
fn idle_timeout_changes_at_runtime() {
    let s = TestServer::with(&[("serverChannelMaxIdleTimeSeconds", "0")]);
    let lookup = client::request(105, 1, 0, &[("topic", "T")], b"");
    let mut idle = s.client();
    assert_eq!(Reply::parse(&idle.call(&lookup)).code(), 17);
    s.clock.advance_ms(3_600_000);
    let mut admin = s.client();
    let update = b"serverChannelMaxIdleTimeSeconds=30\n";
    let r = Reply::parse(&admin.call(&client::request(318, 2, 0, &[], update)));
    assert_eq!(r.code(), 0);
    assert!(idle.is_closed(), "idle for an hour under a 30 s timeout");
}

/// A connection over the shard's cap is closed at once; the others and
/// later ones are served.
#[test]
fn connections_over_the_cap_are_refused() {
    let s = TestServer::with(&[("shardCount", "1"), ("connectionsMaxPerShard", "2")]);
    let mut a = s.client();
    let mut b = s.client();
    assert_eq!(
        Reply::parse(&a.call(&client::request(105, 1, 0, &[("topic", "T")], b""))).code(),
        17
    );
    assert_eq!(
        Reply::parse(&b.call(&client::request(105, 1, 0, &[("topic", "T")], b""))).code(),
        17
    );
    let mut c = s.client();
    assert!(c.is_closed(), "third connection served over the cap");
    drop(a);
    assert!(eventually(|| {
        let mut d = s.client();
        d.send(&client::request(105, 1, 0, &[("topic", "T")], b""));
        d.recv().is_some()
    }));
}

/// Descriptors the EMFILE test lets the server open past those it has once
/// it has started.
const NOFILE: u64 = 48;

/// EMFILE on accept is counted, logged, backed off from, and never stops
/// the listener. The server's limit is lowered under its connection caps
/// once it runs. Two floods: `held`, each connection served (so accepted)
/// and kept open to the end; then `burst`, more connections than the room
/// left on its own, which must run the server out of descriptors. The scrape
/// and the recovery checks run after the burst is dropped, while `held`
/// still holds its descriptors.
#[test]
fn running_out_of_file_descriptors_does_not_stop_the_listener() {
    let dir = TempDir::new();
    let http_port = free_port().to_string();
    let mut cmd = binary(&dir.0, &["--httpListenPort", &http_port]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = Killed(cmd.spawn().unwrap());
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = log.clone();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    let log_text = || log.lock().unwrap().join("\n");
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let boot = stdout
        .find_map(|l| l.ok().filter(|l| l.contains("boot success")))
        .expect("boot line");
    std::thread::spawn(move || stdout.for_each(drop));
    let addr: SocketAddr = boot.rsplit(' ').next().unwrap().parse().unwrap();
    let http: SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
    // The connection caps fit the limit the server started with, so only
    // a limit lowered under it afterwards (another process, prlimit) makes
    // accept meet EMFILE: lower it to what is open now plus room for the
    // held connections and a scrape.
    let pid = child.0.id() as libc::pid_t;
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64;
    let lim = libc::rlimit {
        rlim_cur: open + NOFILE,
        rlim_max: open + NOFILE,
    };
    // SAFETY: prlimit reads a valid rlimit and writes no old value.
    let set = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &lim, std::ptr::null_mut()) };
    assert_eq!(set, 0, "prlimit: {}", std::io::Error::last_os_error());
    let errors = "rocketns_accept_errors_total";
    assert_eq!(
        scrape(http, errors),
        Some(0),
        "accept errors before the flood"
    );

    let mut held: Vec<Client> = (0..NOFILE / 3)
        .map(|_| {
            let mut c = Client::connect(addr);
            let r = c.call(&client::request(105, 1, 0, &[("topic", "T")], b""));
            assert_eq!(Reply::parse(&r).code(), 17);
            c
        })
        .collect();
    // The kernel completes these handshakes whether or not the server can
    // accept them: the burst alone needs more descriptors than it may have.
    let burst: Vec<TcpStream> = (0..NOFILE)
        .map(|_| TcpStream::connect(addr).expect("connect into the backlog"))
        .collect();
    let emfile = |l: &String| {
        l.contains("accept failed")
            && (l.contains("Too many open files") || l.contains("os error 24"))
    };
    assert!(
        eventually(|| log.lock().unwrap().iter().any(emfile)),
        "no \"accept failed\" with EMFILE logged while the burst was held:\n{}",
        log_text()
    );
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the server exited under EMFILE:\n{}",
        log_text()
    );
    drop(burst);
    // With the burst gone the server has descriptors again: the listener
    // accepts and serves, and the HTTP side answers a scrape.
    assert!(
        eventually(|| served(addr, Duration::from_secs(1))),
        "listener stopped after EMFILE:\n{}",
        log_text()
    );
    let mut counted = None;
    assert!(
        eventually(|| {
            counted = scrape(http, errors);
            counted.is_some_and(|n| n > 0)
        }),
        "{errors} is {counted:?}, want > 0"
    );
    // Scraped while the held connections still hold their descriptors.
    let open = scrape(http, "rocketns_connections");
    assert!(
        open.is_some_and(|n| n >= held.len() as u64),
        "open connections {open:?}, want at least the {} held",
        held.len()
    );
    // None of them was dropped by the episode.
    for c in &mut held {
        let r = c.call(&client::request(105, 2, 0, &[("topic", "T")], b""));
        assert_eq!(Reply::parse(&r).code(), 17);
    }
}

/// The connection caps of all shards and a reserve must fit the open-files
/// limit: a cap that does not stops start-up naming both numbers; by
/// default the cap is derived from the limit.
#[test]
fn connection_caps_must_fit_the_open_files_limit() {
    let dir = TempDir::new();
    let limited = |cmd: &mut std::process::Command| {
        // SAFETY: setrlimit between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: 1000,
                    rlim_max: 1000,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
    };
    let mut too_many = binary(&dir.0, &["--connectionsMaxPerShard", "600"]);
    limited(&mut too_many);
    let (code, text) = output(&mut too_many);
    assert_ne!(code, 0);
    assert!(
        text.contains("connectionsMaxPerShard=600") && text.contains("1000"),
        "{text}"
    );
    let port = free_port().to_string();
    let mut derived = binary(&dir.0, &["--httpListenPort", &port]);
    limited(&mut derived);
    derived.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = derived.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let booted = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .any(|l| l.is_ok_and(|l| l.contains("boot success")));
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (_, metrics) = http_get(addr, "/metrics");
    let _ = child.kill();
    let _ = child.wait();
    assert!(booted, "no boot with a derived cap");
    // 1000 - 64 - 2 x 8 reserved, over 2 shards.
    assert!(
        metrics.contains("rocketns_connections_max_per_shard 460"),
        "{metrics}"
    );
}
