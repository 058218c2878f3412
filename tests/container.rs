//! The container image, built by podman from the repository's Dockerfile
//! and run as a Kubernetes pod would run it: the image's non-root user, a
//! read-only root filesystem, every capability dropped, ports published on
//! 127.0.0.1 only. First with `podman run` and those flags, then as the
//! StatefulSet's own pod template under `podman kube play`
//! (`scripts/kube-pod.py` renders it as a Pod). Base images are made locally
//! (no registry is reachable): a runtime base from the host's C libraries
//! and a builder with busybox; the build takes the binary cargo already
//! built (`PREBUILT`). Every image, container, pod and volume made here is removed
//! at the end, pass or fail.
//!
//! Skipped, with the reason printed, only where podman is not installed
//! (`scripts/podman-env.sh`, run by `scripts/test.sh`, installs it).

mod common;

use common::{free_port, http_get, skip, topic, version, Client, Reply, TempDir, BROKER_A};
use rocketns::protocol::client;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "localhost/rocketns:test";
/// The pause image `podman kube play` builds for a pod's infra container.
const PAUSE_IMAGE: &str = "localhost/podman-pause";
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
        "--layers=false",
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
    // --layers=false: no image is kept for the build stage.
    podman_ok(&[
        "build",
        "-q",
        "--layers=false",
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

/// Images this test makes, removed when it ends, pass or fail: its own, and
/// the pause image if `kube play` had to build it.
struct Images {
    made: Vec<&'static str>,
    pause_before: Vec<String>,
}

impl Drop for Images {
    fn drop(&mut self) {
        let pause = pause_images()
            .into_iter()
            .filter(|p| !self.pause_before.contains(p));
        for image in self.made.iter().map(|s| s.to_string()).chain(pause) {
            let _ = podman(&["rmi", "-f", &image]);
        }
    }
}

/// The pause images present now, by name and tag.
fn pause_images() -> Vec<String> {
    let out = podman(&[
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "--filter",
        &format!("reference={PAUSE_IMAGE}"),
    ]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.0]);
    }
}

/// The config map's name in deploy/k8s/configmap.yaml: `kube play
/// --configmap` makes a podman volume of that name for it.
const CONFIG_MAP: &str = "rocketns-config";

/// A pod `kube play` made, and the volumes it made that did not exist
/// before; all removed when dropped.
struct Pod {
    name: String,
    volumes: Vec<String>,
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = podman(&["pod", "rm", "-f", "-t", "0", &self.name]);
        for v in &self.volumes {
            let _ = podman(&["volume", "rm", "-f", v]);
        }
    }
}

/// The remoting and HTTP addresses published on 127.0.0.1, once the
/// remoting one accepts; the container's log if it never does.
fn wait_published(
    container: &str,
    remoting: u16,
    http: u16,
) -> (std::net::SocketAddr, std::net::SocketAddr) {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{remoting}").parse().unwrap();
    let http_addr = format!("127.0.0.1:{http}").parse().unwrap();
    assert!(
        wait_connect(addr),
        "not listening: {}",
        podman_ok(&["logs", container])
    );
    (addr, http_addr)
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
fn the_image_and_the_pod_template_run_restricted_under_the_shipped_seccomp_profile() {
    if let Some(why) = unavailable() {
        skip(&format!("container: {why}"));
        return;
    }
    let _images = Images {
        made: vec![IMAGE, RUNTIME_BASE, BUILDER_BASE],
        pause_before: pause_images(),
    };
    if let Err(why) = build_image() {
        skip(&format!("container: {why}"));
        return;
    }
    let user = podman_ok(&["image", "inspect", "--format", "{{.Config.User}}", IMAGE]);
    assert_eq!(user.trim(), "65532:65532");

    podman_run();
    kube_play();
}

/// Registers a broker over `addr`, looks its topic up, and puts one KV
/// entry (`ns`/`k` = `v`), so a stop can show the KV file survived.
fn serve_a_route_and_a_kv_put(addr: std::net::SocketAddr) {
    let mut c = Client::connect(addr);
    let topics = [topic("TopicTest", 4, 6), topic("Other", 2, 6)];
    assert_eq!(BROKER_A.register(&mut c, &version(1), &topics).code(), 0);
    let route = Reply::parse(&c.call(&client::request(105, 1, 0, &[("topic", "TopicTest")], b"")));
    assert_eq!(route.code(), 0, "{:?}", route.header);
    assert!(route.body_text().contains("\"brokerName\":\"broker-a\""));
    let put = [("namespace", "ns"), ("key", "k"), ("value", "v")];
    let r = Reply::parse(&c.call(&client::request(100, 2, 0, &put, b"")));
    assert_eq!(r.code(), 0, "{:?}", r.header);
}

/// A directory the image's user (65532) can write: the KV volume.
fn data_dir() -> TempDir {
    let data = TempDir::new();
    let chown = Command::new("chown")
        .args(["65532:65532", data.0.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(chown.success());
    data
}

fn assert_not_root(container: &str) {
    let top = podman_ok(&["top", container, "user"]);
    assert!(!top.lines().skip(1).any(|l| l.trim() == "root"), "{top}");
}

/// What the probes ask (startup and liveness `/healthz`, readiness
/// `/readyz`), from the host.
fn assert_probes_answer(http_addr: std::net::SocketAddr) {
    assert_eq!(http_get(http_addr, "/healthz").0, 200);
    assert_eq!(http_get(http_addr, "/readyz").0, 200);
}

/// After a stop (SIGTERM): `container` exited 0 and the KV entry that
/// `serve_a_route_and_a_kv_put` made is intact on the volume at `data`.
fn assert_exited_0_with_kv_intact(container: &str, data: &Path) {
    let code = podman_ok(&["inspect", "--format", "{{.State.ExitCode}}", container]);
    assert_eq!(code.trim(), "0", "{}", podman_ok(&["logs", container]));
    let kv = std::fs::read_to_string(data.join("kvConfig.json")).unwrap();
    assert_eq!(kv, r#"{"configTable":{"ns":{"k":"v"}}}"#);
}

/// `podman run` with the flags of a restricted pod: refused under podman's
/// default seccomp profile, serving under the shipped one, SIGTERM exits 0.
fn podman_run() {
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
    let data = data_dir();
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
    let (addr, http_addr) = wait_published(&name, remoting, http);
    serve_a_route_and_a_kv_put(addr);
    assert_probes_answer(http_addr);
    let (code, list) = http_get(http_addr, "/rocketmq/nsaddr");
    assert_eq!(code, 200, "{list}");
    assert!(list.split(';').any(|a| a.ends_with(":9876")), "{list}");
    assert_not_root(&name);

    // podman stop sends SIGTERM: exit 0, KV intact on the volume.
    podman_ok(&["stop", "-t", "10", &name]);
    assert_exited_0_with_kv_intact(&name, &data.0);
    drop(container);
}

/// A Python with PyYAML for `scripts/kube-pod.py` (`scripts/test.sh` finds
/// one and sets ROCKETNS_YAML_PYTHON).
fn yaml_python() -> Result<String, String> {
    let py = std::env::var("ROCKETNS_YAML_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import yaml"])
        .stderr(Stdio::null())
        .status();
    match ok {
        Ok(s) if s.success() => Ok(py),
        _ => Err(format!(
            "{py} cannot import yaml (scripts/test.sh sets ROCKETNS_YAML_PYTHON)"
        )),
    }
}

/// The StatefulSet's pod template, rendered as a Pod from the same file,
/// under `podman kube play`: its securityContext, seccomp profile, config
/// map, args and KV volume as the manifests have them.
fn kube_play() {
    let python = match yaml_python() {
        Ok(p) => p,
        Err(why) => {
            skip(&format!("kube play: {why}"));
            return;
        }
    };
    let data = data_dir();
    let (remoting, http) = (free_port(), free_port());
    let name = format!("rocketns-test-{}", std::process::id());
    let root = repo();
    let rendered = Command::new(&python)
        .arg(root.join("scripts/kube-pod.py"))
        .arg("--statefulset")
        .arg(root.join("deploy/k8s/statefulset.yaml"))
        .args(["--name", &name, "--image", IMAGE, "--data"])
        .arg(&data.0)
        .args(["--remoting-port", &remoting.to_string()])
        .args(["--http-port", &http.to_string()])
        .output()
        .expect("run scripts/kube-pod.py");
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let pod_file = data.0.join("pod.yaml");
    std::fs::write(&pod_file, &rendered.stdout).unwrap();

    let config_volume_existed = podman(&["volume", "exists", CONFIG_MAP]).status.success();
    let _pod = Pod {
        name: name.clone(),
        volumes: if config_volume_existed {
            vec![]
        } else {
            vec![CONFIG_MAP.to_string()]
        },
    };
    podman_ok(&[
        "kube",
        "play",
        "--seccomp-profile-root",
        root.join("deploy/seccomp").to_str().unwrap(),
        "--configmap",
        root.join("deploy/k8s/configmap.yaml").to_str().unwrap(),
        pod_file.to_str().unwrap(),
    ]);
    let container = format!("{name}-rocketns");
    let (addr, http_addr) = wait_published(&container, remoting, http);
    // The template's security context reached the container.
    let security = podman_ok(&[
        "inspect",
        "--format",
        "{{.HostConfig.ReadonlyRootfs}} {{.Config.User}} {{len .EffectiveCaps}}",
        &container,
    ]);
    assert_eq!(security.trim(), "true 65532:65532 0", "{security}");
    assert_not_root(&container);
    // A seccomp filter and no-new-privileges are in force. podman's default
    // filter refuses io_uring, so serving below shows it is the shipped one.
    let pid = podman_ok(&["inspect", "--format", "{{.State.Pid}}", &container]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    assert_eq!(field("Seccomp:").as_deref(), Some("2"), "{status}");
    assert_eq!(field("NoNewPrivs:").as_deref(), Some("1"), "{status}");
    // The config map is what is mounted at /etc/rocketns, not the image's
    // own copy of conf/namesrv.properties.
    let mounts = podman_ok(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{.Destination}}={{.Name}} {{end}}",
        &container,
    ]);
    assert!(
        mounts.contains(&format!("/etc/rocketns={CONFIG_MAP} ")),
        "{mounts}"
    );
    let config_dir = podman_ok(&[
        "volume",
        "inspect",
        "--format",
        "{{.Mountpoint}}",
        CONFIG_MAP,
    ]);
    let config =
        std::fs::read_to_string(Path::new(config_dir.trim()).join("namesrv.properties")).unwrap();
    assert!(
        config.contains("# The Java NameServer's keys (see conf/namesrv.properties for all)."),
        "{config}"
    );

    // The probes' endpoints, asked from the host (podman would run the
    // probes through a shell the image does not have).
    serve_a_route_and_a_kv_put(addr);
    assert_probes_answer(http_addr);

    podman_ok(&["pod", "stop", "-t", "10", &name]);
    assert_exited_0_with_kv_intact(&container, &data.0);
}
