//! The container image, built by podman from the repository's Dockerfile
//! and run as a Kubernetes pod would run it: the image's non-root user, a
//! read-only root filesystem, every capability dropped, ports published on
//! 127.0.0.1 only. Base images are made locally (no registry is reachable):
//! a runtime base from the host's C libraries and a builder with busybox;
//! the build takes the binary cargo already built (`PREBUILT`).
//!
//! Skipped, with the reason printed, only where podman is not installed
//! (`scripts/podman-env.sh`, run by `scripts/test.sh`, installs it).

mod common;

use common::{free_port, http_get, topic, version, Client, Reply, TempDir, BROKER_A};
use rocketns::protocol::frame;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "localhost/rocketns:test";
const RUNTIME_BASE: &str = "localhost/rocketns-test/runtime:1";
const BUILDER_BASE: &str = "localhost/rocketns-test/builder:1";

fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run podman")
}

fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Why the test cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    match Command::new("podman").arg("info").output() {
        Err(e) => Some(format!(
            "podman not found ({e}); scripts/podman-env.sh installs it"
        )),
        Ok(o) if !o.status.success() => Some(format!(
            "podman info failed: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )),
        Ok(_) => None,
    }
}

/// `FROM scratch` with `dir` as its whole filesystem.
fn image_from_dir(tag: &str, dir: &Path) {
    std::fs::write(dir.join("Containerfile"), "FROM scratch\nCOPY . /\n").unwrap();
    let dir = dir.to_str().unwrap();
    podman_ok(&[
        "build",
        "-q",
        "-t",
        tag,
        "-f",
        &format!("{dir}/Containerfile"),
        dir,
    ]);
}

fn copy_into(root: &Path, host: &Path) {
    let to = root.join(host.strip_prefix("/").unwrap());
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(host, &to).unwrap_or_else(|e| panic!("copy {}: {e}", host.display()));
}

/// The distroless/cc equivalent: the C libraries `binary` links, and
/// distroless's nonroot user (65532).
fn make_runtime_base(binary: &Path) {
    let root = TempDir::new();
    let ldd = Command::new("ldd").arg(binary).output().expect("ldd");
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            copy_into(&root.0, Path::new(p));
        }
    }
    let etc = root.0.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(etc.join("group"), "root:x:0:\nnonroot:x:65532:\n").unwrap();
    image_from_dir(RUNTIME_BASE, &root.0);
}

/// A builder base with the shell tools the Dockerfile's build stage uses.
fn make_builder_base() -> Result<(), String> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("busybox-static is not installed (scripts/podman-env.sh installs it)")?;
    let root = TempDir::new();
    let bin = root.0.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(busybox, bin.join("busybox")).unwrap();
    for tool in ["sh", "mkdir", "cp", "chmod"] {
        std::os::unix::fs::symlink("busybox", bin.join(tool)).unwrap();
    }
    image_from_dir(BUILDER_BASE, &root.0);
    Ok(())
}

/// Builds the image from the repository's Dockerfile with the test binary.
fn build_image() -> Result<(), String> {
    let binary = Path::new(env!("CARGO_BIN_EXE_rocketns"));
    let staged = repo().join("target/image/rocketns");
    std::fs::create_dir_all(staged.parent().unwrap()).unwrap();
    let strip = Command::new("strip")
        .arg("-o")
        .arg(&staged)
        .arg(binary)
        .status();
    if !strip.is_ok_and(|s| s.success()) {
        std::fs::copy(binary, &staged).unwrap();
    }
    make_runtime_base(binary);
    make_builder_base()?;
    let root = repo();
    podman_ok(&[
        "build",
        "-q",
        "--build-arg",
        &format!("BUILDER_IMAGE={BUILDER_BASE}"),
        "--build-arg",
        &format!("RUNTIME_IMAGE={RUNTIME_BASE}"),
        "--build-arg",
        "PREBUILT=target/image/rocketns",
        "-t",
        IMAGE,
        "-f",
        root.join("Dockerfile").to_str().unwrap(),
        root.to_str().unwrap(),
    ]);
    Ok(())
}

/// `podman run` flags of a pod under Pod Security "restricted".
const RESTRICTED: &[&str] = &[
    "--read-only",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
];

struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.0]);
    }
}

fn wait_connect(addr: std::net::SocketAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn the_image_runs_restricted_under_the_shipped_seccomp_profile_only() {
    if let Some(why) = unavailable() {
        println!("SKIP container: {why}");
        return;
    }
    if let Err(why) = build_image() {
        println!("SKIP container: {why}");
        return;
    }
    let user = podman_ok(&["image", "inspect", "--format", "{{.Config.User}}", IMAGE]);
    assert_eq!(user.trim(), "65532:65532");

    // podman's default seccomp profile blocks io_uring: a clear error, fast.
    let started = Instant::now();
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(RESTRICTED);
    args.push(IMAGE);
    let out = podman(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        text.contains("rocketns cannot start: io_uring_setup"),
        "{text}"
    );
    assert!(text.contains("seccomp"), "{text}");
    assert!(!text.contains("panicked"), "{text}");

    // Under the shipped profile it serves, as its own user, read-only.
    let data = TempDir::new();
    let chown = Command::new("chown")
        .args(["65532:65532", data.0.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(chown.success());
    let (remoting, http) = (free_port(), free_port());
    let name = format!("rocketns-test-{}", std::process::id());
    let profile = repo().join("deploy/seccomp/rocketns.json");
    let seccomp = format!("--security-opt=seccomp={}", profile.display());
    let volume = format!("{}:/data:Z", data.0.display());
    let ports = [
        format!("127.0.0.1:{remoting}:9876"),
        format!("127.0.0.1:{http}:8080"),
    ];
    let mut args = vec!["run", "-d", "--name", &name, &seccomp, "-v", &volume];
    args.extend_from_slice(RESTRICTED);
    args.extend(["-p", &ports[0], "-p", &ports[1], IMAGE]);
    args.extend(["--nsaddrDnsName", "localhost"]);
    podman_ok(&args);
    let container = Container(name.clone());
    let addr: std::net::SocketAddr = format!("127.0.0.1:{remoting}").parse().unwrap();
    let http_addr: std::net::SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    assert!(
        wait_connect(addr),
        "not listening: {}",
        podman_ok(&["logs", &name])
    );
    let mut c = Client::connect(addr);
    let topics = [topic("TopicTest", 4, 6), topic("Other", 2, 6)];
    assert_eq!(BROKER_A.register(&mut c, &version(1), &topics).code(), 0);
    let route = Reply::parse(&c.call(&frame::request(105, 1, 0, &[("topic", "TopicTest")], b"")));
    assert_eq!(route.code(), 0, "{:?}", route.header);
    assert!(route.body_text().contains("\"brokerName\":\"broker-a\""));
    let put = [("namespace", "ns"), ("key", "k"), ("value", "v")];
    let r = Reply::parse(&c.call(&frame::request(100, 2, 0, &put, b"")));
    assert_eq!(r.code(), 0, "{:?}", r.header);

    assert_eq!(http_get(http_addr, "/healthz").0, 200);
    assert_eq!(http_get(http_addr, "/readyz").0, 200);
    let (code, list) = http_get(http_addr, "/rocketmq/nsaddr");
    assert_eq!(code, 200, "{list}");
    assert!(list.split(';').any(|a| a.ends_with(":9876")), "{list}");
    let top = podman_ok(&["top", &name, "user"]);
    assert!(!top.lines().skip(1).any(|l| l.trim() == "root"), "{top}");

    // podman stop sends SIGTERM: exit 0, KV intact on the volume.
    podman_ok(&["stop", "-t", "10", &name]);
    let code = podman_ok(&["inspect", "--format", "{{.State.ExitCode}}", &name]);
    assert_eq!(code.trim(), "0", "{}", podman_ok(&["logs", &name]));
    let kv = std::fs::read_to_string(data.0.join("kvConfig.json")).unwrap();
    assert_eq!(kv, r#"{"configTable":{"ns":{"k":"v"}}}"#);
    drop(container);
}
