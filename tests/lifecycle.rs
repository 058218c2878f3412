//! The process as an operator sees it: flags, config files, start-up
//! checks, signals, idle connections.

mod common;
use common::*;
use rocketns::protocol::client;
use rocketns::route::kv::Kv;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

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

#[test]
fn sigterm_under_load_loses_no_kv_write_and_exits_0() {
    let dir = TempDir::new();
    let (mut child, addr) = spawn_binary(&dir.0, &[]);
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
        }
        acked
    });
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no exit within 5 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let acked = writer.join().unwrap();
    assert!(!acked.is_empty());
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

/// EMFILE on accept backs off and never stops the listener.
#[test]
fn running_out_of_file_descriptors_does_not_stop_the_listener() {
    let dir = TempDir::new();
    let mut cmd = binary(&dir.0, &[]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    // SAFETY: setrlimit between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 96,
                rlim_max: 96,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let boot = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .find_map(|l| l.ok().filter(|l| l.contains("boot success")))
        .expect("boot line");
    let addr: std::net::SocketAddr = boot.rsplit(' ').next().unwrap().parse().unwrap();
    // Each accepted connection costs the server two descriptors.
    let flood: Vec<_> = (0..80)
        .filter_map(|_| std::net::TcpStream::connect(addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    drop(flood);
    let served = eventually(|| {
        let Ok(stream) = std::net::TcpStream::connect(addr) else {
            return false;
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let mut c = Client { stream, opaque: 0 };
        c.send(&client::request(105, 1, 0, &[("topic", "T")], b""));
        c.recv().is_some()
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(served, "listener stopped after EMFILE");
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
