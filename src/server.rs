//! Starts the writer and the shards on one shared listening socket, and
//! stops them.

use crate::clock::Clock;
use crate::config::{check_buffer_budget, connection_cap, Config, StartupSettings};
use crate::http;
use crate::metrics::{self, Gauges, ShardStats, WriterStats};
use crate::route::kv::Kv;
use crate::shard::{self, ShardInputs};
use crate::writer::{self, Control, Published, WriterConfig, WriterHandle};
use arc_swap::ArcSwap;
use crossbeam_channel::Receiver;
use futures_channel::oneshot;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Java's hard-coded listen backlog (DECISIONS 16).
const LISTEN_BACKLOG: i32 = 1024;
/// Expired-broker connections a shard may have waiting to be closed.
const CLOSE_QUEUE_MAX: usize = 1024;
/// Messages the writer takes per batch before publishing.
const WRITER_BATCH_MAX: usize = 1024;

pub struct Server {
    local_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    published: Arc<ArcSwap<Published>>,
    writer: WriterHandle,
    shards: Vec<(glommio::ExecutorJoinHandle<()>, oneshot::Sender<()>)>,
    stats: Vec<Arc<ShardStats>>,
    http_status: Option<Arc<HttpStatus>>,
}

/// What `/metrics`, `/readyz` and `/rocketmq/nsaddr` read.
struct HttpStatus {
    published: Arc<ArcSwap<Published>>,
    shards: Vec<Arc<ShardStats>>,
    writer: Arc<WriterStats>,
    requests: crossbeam_channel::Sender<writer::Request>,
    control: crossbeam_channel::Sender<Control>,
    clock: Arc<dyn Clock>,
    started_ms: u64,
    startup: Arc<StartupSettings>,
    /// The remoting port actually bound, for `nsaddrDnsName` entries.
    remoting_port: u16,
    stopped: AtomicBool,
}

impl http::Stopping for HttpStatus {
    fn stopping(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

impl http::Status for HttpStatus {
    fn metrics(&self) -> String {
        let published = self.published.load();
        let routes = &published.routes;
        let gauges = Gauges {
            request_queue_depth: self.requests.len(),
            control_queue_depth: self.control.len(),
            snapshot_version: routes.version,
            snapshot_age_ms: self.clock.now_ms().saturating_sub(routes.published_ms),
            broker_groups: routes.brokers.groups.len(),
            topics: routes.topics.len(),
            connections_max_per_shard: self.startup.connections_max_per_shard,
        };
        let shards: Vec<&ShardStats> = self.shards.iter().map(|s| &**s).collect();
        metrics::render(&shards, &self.writer, &gauges)
    }

    fn nsaddr(&self) -> Option<Result<String, String>> {
        let name = self.startup.nsaddr_dns_name.as_deref();
        http::nsaddr_text(&self.startup.nsaddr_list, name, self.remoting_port)
    }

    fn ready(&self) -> Result<(), String> {
        if self.stopped.load(Ordering::Relaxed) {
            return Err("shutting down".into());
        }
        let settings = self.published.load().settings.clone();
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

fn bind(settings: &StartupSettings) -> std::io::Result<Socket> {
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
    /// Binds, loads the KV file, starts the writer, the shards and the HTTP
    /// side. `config` is the property set as loaded at start.
    pub fn start(config: Config, clock: Arc<dyn Clock>) -> std::io::Result<Server> {
        let mut startup = config.startup();
        startup.shard_count = match startup.shard_count {
            0 => usable_cpus(),
            n => n,
        };
        let shard_count = startup.shard_count;
        startup.connections_max_per_shard = connection_cap(
            startup.connections_max_per_shard,
            shard_count,
            crate::preflight::nofile(),
        )
        .map_err(std::io::Error::other)?;
        check_buffer_budget(startup.buffer_bytes_max_per_shard).map_err(std::io::Error::other)?;
        log::info!(
            "{} shards, each serving at most {} connections",
            shard_count,
            startup.connections_max_per_shard
        );
        let startup = Arc::new(startup);
        let kv = load_kv(&startup.kv_config_path)?;
        let listener = bind(&startup)?;
        let local_addr = listener
            .local_addr()?
            .as_socket()
            .ok_or_else(|| std::io::Error::other("listener has no inet address"))?;
        let published = Arc::new(ArcSwap::from_pointee(Published::default()));
        let (closers, close_rxs): (Vec<_>, Vec<_>) = (0..shard_count)
            .map(|_| crossbeam_channel::bounded(CLOSE_QUEUE_MAX))
            .unzip();
        let writer = writer::spawn(
            WriterConfig {
                batch_max: WRITER_BATCH_MAX,
                request_queue_capacity: startup.request_queue_capacity,
                // Every connection's close fits, plus Java's share for 104.
                control_queue_capacity: startup.connections_max_per_shard * shard_count
                    + startup.unregister_queue_capacity,
                kv_config_path: startup.kv_config_path.clone(),
                config_store_path: startup.config_store_path.clone(),
                config,
                kv,
                closers,
            },
            clock.clone(),
            published.clone(),
        )?;
        let inputs = ShardInputs {
            published: published.clone(),
            requests: writer.requests.clone(),
            control: writer.control.clone(),
            startup: startup.clone(),
            started_ms: clock.now_ms(),
            clock,
        };
        let http_listener = match startup.http_listen_port {
            0 => None,
            port => Some(bind_http(&startup.bind_address, port)?),
        };
        let mut server = Server {
            local_addr,
            http_addr: None,
            published,
            writer,
            shards: Vec::new(),
            stats: Vec::new(),
            http_status: None,
        };
        server.spawn_shards(&listener, &inputs, close_rxs)?;
        if let Some(listener) = http_listener {
            server.spawn_http(listener, &inputs)?;
        }
        Ok(server)
    }

    fn spawn_shards(
        &mut self,
        listener: &Socket,
        inputs: &ShardInputs,
        close_rxs: Vec<Receiver<crate::route::ConnId>>,
    ) -> std::io::Result<()> {
        let cpus = pinned_cpus(inputs.startup.pin_shards);
        for (id, close_rx) in close_rxs.into_iter().enumerate() {
            let fd: OwnedFd = listener.as_fd().try_clone_to_owned()?;
            let stats = Arc::new(ShardStats::default());
            let (stop_tx, stop_rx) = oneshot::channel();
            let cpu = cpus.as_ref().map(|c| c[id % c.len()]);
            let handle = shard::spawn(
                id,
                fd,
                inputs.clone(),
                stats.clone(),
                cpu,
                stop_rx,
                close_rx,
            )?;
            self.shards.push((handle, stop_tx));
            self.stats.push(stats);
        }
        Ok(())
    }

    fn spawn_http(
        &mut self,
        listener: std::net::TcpListener,
        inputs: &ShardInputs,
    ) -> std::io::Result<()> {
        self.http_addr = Some(listener.local_addr()?);
        let status = Arc::new(HttpStatus {
            published: self.published.clone(),
            shards: self.stats.clone(),
            writer: self.writer.stats.clone(),
            requests: self.writer.requests.clone(),
            control: self.writer.control.clone(),
            clock: inputs.clock.clone(),
            started_ms: inputs.started_ms,
            startup: inputs.startup.clone(),
            remoting_port: self.local_addr.port(),
            stopped: AtomicBool::new(false),
        });
        http::spawn(listener, status.clone())?;
        self.http_status = Some(status);
        Ok(())
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
        self.published.load().routes.version
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
        if let Some(status) = self.http_status.take() {
            status.stopped.store(true, Ordering::SeqCst);
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
fn load_kv(path: &std::path::Path) -> std::io::Result<Kv> {
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
fn pinned_cpus(pin: bool) -> Option<Vec<usize>> {
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
