//! Starts the writer and the shards on one shared listening socket, and
//! stops them.

use crate::clock::Clock;
use crate::config::Config;
use crate::http;
use crate::metrics::{self, Gauges, ShardStats, WriterStats};
use crate::route::kv::Kv;
use crate::route::snapshot::Snapshot;
use crate::route::table::{Limits, RouteSettings};
use crate::shard;
use crate::writer::{self, Control, WriterConfig, WriterHandle};
use arc_swap::ArcSwap;
use futures_channel::oneshot;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Java's hard-coded listen backlog (DECISIONS 16).
const LISTEN_BACKLOG: i32 = 1024;
/// Expired-broker connections a shard may have waiting to be closed.
const CLOSE_QUEUE_MAX: usize = 1024;
/// Messages the writer takes per batch before publishing.
const WRITER_BATCH_MAX: usize = 1024;

/// The settings the server runs with, taken from `Config::settings`.
#[derive(Clone, Debug)]
pub struct Settings {
    pub bind_address: String,
    pub listen_port: u16,
    /// 0: one per CPU the process may use.
    pub shard_count: usize,
    pub pin_shards: bool,
    pub connections_max_per_shard: usize,
    /// `/metrics`, `/healthz`, `/readyz`; 0 turns the HTTP side off.
    pub http_listen_port: u16,
    /// Close connections idle this long (`None`: never).
    pub idle_timeout: Option<std::time::Duration>,
    pub scan_interval_ms: u64,
    pub request_queue_capacity: usize,
    pub unregister_queue_capacity: usize,
    pub enable_all_topic_list: bool,
    pub enable_topic_list: bool,
    pub need_wait_for_service: bool,
    pub wait_seconds_for_service: u64,
    pub order_message_enable: bool,
    pub return_order_topic_config_to_broker: bool,
    /// Who may send state-changing admin requests (DECISIONS 26).
    pub admin_acl: crate::acl::AdminAcl,
    /// `/rocketmq/nsaddr` from configuration: these addresses, ...
    pub nsaddr_list: Vec<String>,
    /// ... or the ready addresses this name resolves to, at `listenPort`.
    pub nsaddr_dns_name: Option<String>,
    /// Where the KV store lives; `None` keeps it in memory only.
    pub kv_config_path: Option<PathBuf>,
    pub config_store_path: Option<PathBuf>,
    pub limits: Limits,
    pub route: RouteSettings,
}

impl Default for Settings {
    /// Java's defaults, on an ephemeral loopback port (tests).
    fn default() -> Self {
        Settings {
            bind_address: "127.0.0.1".into(),
            listen_port: 0,
            shard_count: 0,
            pin_shards: false,
            connections_max_per_shard: 20_000,
            http_listen_port: 0,
            idle_timeout: Some(std::time::Duration::from_secs(120)),
            scan_interval_ms: 5_000,
            request_queue_capacity: 10_000,
            unregister_queue_capacity: 3_000,
            enable_all_topic_list: true,
            enable_topic_list: true,
            need_wait_for_service: false,
            wait_seconds_for_service: 45,
            order_message_enable: false,
            return_order_topic_config_to_broker: true,
            admin_acl: Default::default(),
            nsaddr_list: Vec::new(),
            nsaddr_dns_name: None,
            kv_config_path: None,
            config_store_path: None,
            limits: Limits::default(),
            route: RouteSettings::default(),
        }
    }
}

pub struct Server {
    local_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    writer: WriterHandle,
    shards: Vec<(glommio::ExecutorJoinHandle<()>, oneshot::Sender<()>)>,
    stats: Vec<Arc<ShardStats>>,
    probe: Option<Arc<Probe>>,
}

/// What `/metrics` and `/readyz` read.
struct Probe {
    snapshot: Arc<ArcSwap<Snapshot>>,
    shards: Vec<Arc<ShardStats>>,
    writer: Arc<WriterStats>,
    requests: crossbeam_channel::Sender<writer::Request>,
    control: crossbeam_channel::Sender<Control>,
    clock: Arc<dyn Clock>,
    started_ms: u64,
    /// The remoting port actually bound, for `nsaddrDnsName` entries.
    remoting_port: u16,
    stopped: AtomicBool,
}

impl http::Stopping for Probe {
    fn stopping(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

impl http::Status for Probe {
    fn metrics(&self) -> String {
        let snapshot = self.snapshot.load();
        let gauges = Gauges {
            request_queue_depth: self.requests.len(),
            control_queue_depth: self.control.len(),
            snapshot_version: snapshot.version,
            snapshot_age_ms: self.clock.now_ms().saturating_sub(snapshot.published_ms),
            broker_groups: snapshot.brokers.groups.len(),
            topics: snapshot.topics.len(),
        };
        let shards: Vec<&ShardStats> = self.shards.iter().map(|s| &**s).collect();
        metrics::render(&shards, &self.writer, &gauges)
    }

    fn nsaddr(&self) -> Option<Result<String, String>> {
        let settings = self.snapshot.load().settings.clone();
        let name = settings.nsaddr_dns_name.as_deref();
        http::nsaddr_text(&settings.nsaddr_list, name, self.remoting_port)
    }

    fn ready(&self) -> Result<(), String> {
        if self.stopped.load(Ordering::Relaxed) {
            return Err("shutting down".into());
        }
        let settings = &self.snapshot.load().settings;
        let until_ms = self.started_ms + settings.wait_seconds_for_service * 1000;
        let now_ms = self.clock.now_ms();
        if settings.need_wait_for_service && now_ms < until_ms {
            return Err(format!(
                "waiting for service, {} s left",
                (until_ms - now_ms).div_ceil(1000)
            ));
        }
        Ok(())
    }
}

/// CPUs this process may run on: affinity mask and cgroup quota honoured.
pub fn usable_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn bind(settings: &Settings) -> std::io::Result<Socket> {
    let addr: SocketAddr = (settings.bind_address.as_str(), settings.listen_port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("bindAddress resolves to nothing"))?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| std::io::Error::new(e.kind(), format!("Failed to bind to {addr}: {e}")))?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket)
}

impl Server {
    pub fn start(config: Config, clock: Arc<dyn Clock>) -> std::io::Result<Server> {
        let settings = config.settings();
        let kv = load_kv(settings.kv_config_path.as_deref())?;
        let listener = bind(&settings)?;
        let local_addr = listener
            .local_addr()?
            .as_socket()
            .ok_or_else(|| std::io::Error::other("listener has no inet address"))?;
        let shard_count = match settings.shard_count {
            0 => usable_cpus(),
            n => n,
        };
        let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
        let control_capacity =
            settings.connections_max_per_shard * shard_count + settings.unregister_queue_capacity;
        let (closers, close_rxs): (Vec<_>, Vec<_>) = (0..shard_count)
            .map(|_| crossbeam_channel::bounded(CLOSE_QUEUE_MAX))
            .unzip();
        let writer = writer::spawn(
            WriterConfig {
                batch_max: WRITER_BATCH_MAX,
                control_queue_capacity: control_capacity,
                config,
                kv,
                closers,
            },
            clock.clone(),
            snapshot.clone(),
        )?;
        let shared = shard::Shared {
            snapshot: snapshot.clone(),
            requests: writer.requests.clone(),
            control: writer.control.clone(),
            settings: Arc::new(settings.clone()),
            started_ms: clock.now_ms(),
            clock,
        };
        let http_listener = match settings.http_listen_port {
            0 => None,
            port => Some(bind_http(&settings.bind_address, port)?),
        };
        let mut server = Server {
            local_addr,
            http_addr: None,
            snapshot,
            writer,
            shards: Vec::new(),
            stats: Vec::new(),
            probe: None,
        };
        let cpus = pinned_cpus(settings.pin_shards, shard_count);
        for (id, close_rx) in close_rxs.into_iter().enumerate() {
            let fd: OwnedFd = listener.as_fd().try_clone_to_owned()?;
            let stats = Arc::new(ShardStats::default());
            let (stop_tx, stop_rx) = oneshot::channel();
            let cpu = cpus.as_ref().map(|c| c[id % c.len()]);
            let handle = shard::spawn(
                id,
                fd,
                shared.clone(),
                stats.clone(),
                cpu,
                stop_rx,
                close_rx,
            )?;
            server.shards.push((handle, stop_tx));
            server.stats.push(stats);
        }
        if let Some(listener) = http_listener {
            server.http_addr = Some(listener.local_addr()?);
            let probe = Arc::new(Probe {
                snapshot: server.snapshot.clone(),
                shards: server.stats.clone(),
                writer: server.writer.stats.clone(),
                requests: server.writer.requests.clone(),
                control: server.writer.control.clone(),
                clock: shared.clock.clone(),
                started_ms: shared.started_ms,
                remoting_port: server.local_addr.port(),
                stopped: AtomicBool::new(false),
            });
            http::spawn(listener, probe.clone())?;
            server.probe = Some(probe);
        }
        Ok(server)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The HTTP side's address, when it is on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Version of the published snapshot; grows only when routes change.
    pub fn snapshot_version(&self) -> u64 {
        self.snapshot.load().version
    }

    /// Asks the writer to run its expiry scan now, on its clock.
    pub fn scan_now(&self) {
        let _ = self.writer.control.send(Control::Scan);
    }

    pub fn broken_frames(&self) -> u64 {
        self.stats.iter().map(|s| s.broken_frames()).sum()
    }

    pub fn connections(&self) -> usize {
        self.stats
            .iter()
            .map(|s| s.connections.load(Ordering::Relaxed))
            .sum()
    }

    /// Blocks until the shards end (they end only when stopped).
    pub fn wait(mut self) {
        for (handle, _stop) in self.shards.drain(..) {
            let _ = handle.join();
        }
    }

    /// Stops accepting, answers what is in flight, then stops the writer,
    /// which finishes its queue and waits for pending file writes.
    pub fn stop(mut self) {
        self.stop_shards();
        self.writer.stop();
    }

    fn stop_shards(&mut self) {
        if let Some(probe) = self.probe.take() {
            probe.stopped.store(true, Ordering::SeqCst);
            http::wake(self.http_addr);
        }
        for (_, stop) in &mut self.shards {
            let (tx, _) = oneshot::channel();
            let _ = std::mem::replace(stop, tx).send(());
        }
        for (handle, _) in self.shards.drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_shards();
    }
}

fn bind_http(address: &str, port: u16) -> std::io::Result<std::net::TcpListener> {
    std::net::TcpListener::bind((address, port)).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("Failed to bind HTTP to {address}:{port}: {e}"),
        )
    })
}

/// Loads the KV file: a missing file is an empty store; one that does not
/// parse stops start-up, as in Java.
fn load_kv(path: Option<&std::path::Path>) -> std::io::Result<Kv> {
    let Some(path) = path else {
        return Ok(Kv::default());
    };
    match std::fs::read(path) {
        Ok(bytes) => Kv::from_file(&bytes).map_err(|e| {
            std::io::Error::other(format!("KV config file {} is broken: {e}", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Kv::default()),
        Err(e) => {
            log::warn!(
                "KV config file {} unreadable, starting empty: {e}",
                path.display()
            );
            Ok(Kv::default())
        }
    }
}

/// With `pinShards`, the CPUs of this process's affinity mask to pin to.
fn pinned_cpus(pin: bool, _shards: usize) -> Option<Vec<usize>> {
    if !pin {
        return None;
    }
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0 {
        return None;
    }
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect();
    (!cpus.is_empty()).then_some(cpus)
}
