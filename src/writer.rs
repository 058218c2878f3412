//! The writer: the only code that mutates routes and publishes snapshots.
//!
//! Shards send requests over a bounded channel (full = SYSTEM_BUSY) and
//! events that must not be lost (unregistrations, closed connections) over
//! a second one sized by the connection cap (DECISIONS 12). The writer
//! drains both in batches, applies each message to the `RouteTable`,
//! publishes one snapshot per batch when something visible changed, and
//! only then answers, so a client asking right after a broker's reply sees
//! the broker (DECISIONS 8).

use crate::clock::Clock;
use crate::config::{Config, RuntimeSettings};
use crate::metrics::WriterStats;
use crate::notify::Notifier;
use crate::persist::{Done, Job, Persister};
use crate::protocol::body::DataVersion;
use crate::route::kv::{Kv, ORDER_TOPIC_CONFIG};
use crate::route::snapshot::Snapshot;
use crate::route::table::{QueueData, RegisterOutcome, Registration, RouteTable, Unregistration};
use crate::route::ConnId;
use arc_swap::ArcSwap;
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use futures_channel::oneshot;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the writer remembers a closed connection, to drop
/// registrations from it that were still queued when it closed.
const CLOSED_CONN_MEMORY_MS: u64 = 60_000;

/// What the writer publishes and every reader loads with one arc-swap
/// load: the route snapshot and the runtime settings that go with it.
#[derive(Default)]
pub struct Published {
    pub routes: Snapshot,
    /// The one runtime copy of the settings (UPDATE_NAMESRV_CONFIG).
    pub settings: Arc<RuntimeSettings>,
    /// GET_NAMESRV_CONFIG body.
    pub config_text: Bytes,
}

impl Published {
    /// The REGISTER_BROKER reply body (`namesrv-commands.md` §A.4 step 6).
    pub fn order_conf_body(&self) -> Option<Bytes> {
        order_conf_body(&self.settings, &self.routes.kv)
    }
}

fn order_conf_body(settings: &RuntimeSettings, kv: &Kv) -> Option<Bytes> {
    if !settings.return_order_topic_config_to_broker {
        return None;
    }
    kv.table_json(ORDER_TOPIC_CONFIG).map(Bytes::from)
}

/// Where the writer sends one request's answer; `None` for a oneway request.
pub type Reply<T> = Option<oneshot::Sender<T>>;

/// The answer to REGISTER_BROKER.
#[derive(Debug)]
pub struct Registered {
    pub outcome: RegisterOutcome,
    /// The ORDER_TOPIC_CONFIG KVTable body, when it is returned.
    pub order_conf: Option<Bytes>,
}

/// The answer to QUERY_DATA_VERSION.
#[derive(Debug)]
pub struct DataVersionAnswer {
    pub changed: bool,
    pub stored: Option<DataVersion>,
}

/// Why UPDATE_NAMESRV_CONFIG changed nothing.
#[derive(Debug)]
pub enum ConfigRefused {
    /// It named a key that can never be changed over the wire.
    BlackListed,
    /// The property set could not be made durable.
    Failed(String),
}

/// Requests: dropped with SYSTEM_BUSY when the queue is full.
pub enum Request {
    Register {
        reg: Registration,
        stamp_ms: u64,
        reply: Reply<Registered>,
    },
    QueryDataVersion {
        cluster: String,
        addr: String,
        given: Option<DataVersion>,
        stamp_ms: u64,
        reply: Reply<DataVersionAnswer>,
    },
    Heartbeat {
        cluster: String,
        addr: String,
        stamp_ms: u64,
    },
    /// WIPE (false) or ADD (true) the write permission of a broker group.
    /// Answered with the number of topics touched.
    WritePerm {
        name: String,
        add: bool,
        reply: Reply<usize>,
    },
    DeleteTopic {
        topic: String,
        cluster: Option<String>,
        reply: Reply<()>,
    },
    /// Answered with the table's reason when it stops part way (§A.12).
    RegisterTopic {
        topic: String,
        entries: Vec<(String, QueueData)>,
        reply: Reply<Result<(), String>>,
    },
    /// PUT_KV_CONFIG (`Some` value, or Java's stored null) and
    /// DELETE_KV_CONFIG (`delete`).
    Kv {
        namespace: String,
        key: String,
        value: Option<String>,
        delete: bool,
        /// Answered once the KV file holding the change is durable.
        reply: Reply<Result<(), String>>,
    },
    /// UPDATE_NAMESRV_CONFIG, answered once the property set is durable.
    UpdateConfig {
        entries: Vec<(String, String)>,
        reply: Reply<Result<(), ConfigRefused>>,
    },
}

/// Events that must reach the writer.
pub enum Control {
    Unregister {
        unreg: Unregistration,
        stamp_ms: u64,
    },
    Closed {
        conn: ConnId,
        stamp_ms: u64,
    },
    /// Run the expiry scan now, on the writer's clock (tests drive time).
    Scan,
    Stop,
}

pub struct WriterConfig {
    pub batch_max: usize,
    pub request_queue_capacity: usize,
    pub control_queue_capacity: usize,
    /// The property set: UPDATE_NAMESRV_CONFIG changes it, and the runtime
    /// settings are derived from it.
    pub config: Config,
    pub kv_config_path: PathBuf,
    pub config_store_path: PathBuf,
    /// The KV store as loaded at start.
    pub kv: Kv,
    /// Per shard: connections the writer wants closed (expired brokers).
    pub closers: Vec<Sender<ConnId>>,
}

pub struct WriterHandle {
    pub requests: Sender<Request>,
    pub control: Sender<Control>,
    pub stats: Arc<WriterStats>,
    thread: Option<JoinHandle<()>>,
}

impl WriterHandle {
    /// Stops the writer after what is queued before the stop.
    pub fn stop(&mut self) {
        let _ = self.control.send(Control::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn spawn(
    config: WriterConfig,
    clock: Arc<dyn Clock>,
    published: Arc<ArcSwap<Published>>,
) -> std::io::Result<WriterHandle> {
    let settings = Arc::new(config.config.runtime());
    let (req_tx, req_rx) = crossbeam_channel::bounded(config.request_queue_capacity);
    let (ctl_tx, ctl_rx) = crossbeam_channel::bounded(config.control_queue_capacity);
    let stats = Arc::new(WriterStats::default());
    let mut writer = Writer {
        rebuilt_since_trim: 0,
        stats: stats.clone(),
        table: RouteTable::new(settings.limits, settings.route),
        published,
        clock,
        closed: HashMap::new(),
        replies: Vec::new(),
        jobs: Vec::new(),
        kv: config.kv,
        kv_changed: true,
        config_changed: true,
        persister: Persister::spawn()?,
        notifier: Notifier::spawn()?,
        settings,
        kv_config_path: config.kv_config_path,
        config_store_path: config.config_store_path,
        batch_max: config.batch_max,
        closers: config.closers,
        config: config.config,
        requests: req_rx,
        control: ctl_rx,
    };
    writer.publish();
    let thread = std::thread::Builder::new()
        .name("rocketns-writer".into())
        .spawn(move || writer.run())?;
    Ok(WriterHandle {
        requests: req_tx,
        control: ctl_tx,
        stats,
        thread: Some(thread),
    })
}

/// An answer held back until the batch that decided it is published.
type HeldAnswer = Box<dyn FnOnce() + Send>;

struct Writer {
    table: RouteTable,
    published: Arc<ArcSwap<Published>>,
    clock: Arc<dyn Clock>,
    /// Recently closed connections and when they closed.
    closed: HashMap<ConnId, u64>,
    /// Topics rebuilt since the heap was last trimmed.
    rebuilt_since_trim: usize,
    /// Answers held back until the batch is published.
    replies: Vec<HeldAnswer>,
    /// File writes whose answers wait for the disk, sent after publication.
    jobs: Vec<Job>,
    kv: Kv,
    kv_changed: bool,
    /// The property set; `settings` is derived from it.
    config: Config,
    config_changed: bool,
    settings: Arc<RuntimeSettings>,
    kv_config_path: PathBuf,
    config_store_path: PathBuf,
    persister: Persister,
    notifier: Notifier,
    stats: Arc<WriterStats>,
    closers: Vec<Sender<ConnId>>,
    batch_max: usize,
    requests: Receiver<Request>,
    control: Receiver<Control>,
}

enum Msg {
    Request(Request),
    Control(Control),
}

impl Writer {
    fn run(&mut self) {
        let (requests, control) = (self.requests.clone(), self.control.clone());
        let mut next_scan_ms = self.clock.now_ms() + self.settings.scan_interval_ms;
        loop {
            let wait_ms = next_scan_ms.saturating_sub(self.clock.now_ms());
            let first = crossbeam_channel::select! {
                recv(control) -> m => m.ok().map(Msg::Control),
                recv(requests) -> m => m.ok().map(Msg::Request),
                default(Duration::from_millis(wait_ms)) => None,
            };
            let mut stop = false;
            if let Some(msg) = first {
                stop |= self.apply(msg);
                let mut applied = 1;
                while applied < self.batch_max {
                    let next = control
                        .try_recv()
                        .map(Msg::Control)
                        .or_else(|_| requests.try_recv().map(Msg::Request));
                    match next {
                        Ok(msg) => stop |= self.apply(msg),
                        Err(_) => break,
                    }
                    applied += 1;
                }
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .messages
                    .fetch_add(applied as u64, Ordering::Relaxed);
            }
            let now_ms = self.clock.now_ms();
            if now_ms >= next_scan_ms {
                self.scan(now_ms);
                next_scan_ms = now_ms + self.settings.scan_interval_ms;
            }
            // A shorter interval set at runtime applies from now.
            next_scan_ms = next_scan_ms.min(now_ms + self.settings.scan_interval_ms);
            self.publish();
            if self.rebuilt_since_trim >= TRIM_AFTER_TOPICS && requests.is_empty() {
                trim_heap();
                self.rebuilt_since_trim = 0;
            }
            if stop {
                return;
            }
        }
    }

    /// Applies one message; true for Stop.
    fn apply(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Request(r) => self.apply_request(r),
            Msg::Control(Control::Unregister { unreg, stamp_ms }) => {
                if self.table.unregister(&unreg, stamp_ms) {
                    log::info!(
                        "unregister broker {}/{} {} id {}",
                        unreg.cluster,
                        unreg.addr,
                        unreg.name,
                        unreg.id
                    );
                }
            }
            Msg::Control(Control::Closed { conn, stamp_ms }) => {
                for unreg in self.table.closed(conn, stamp_ms) {
                    log::info!(
                        "the broker's connection closed, unregister {}/{} {}",
                        unreg.cluster,
                        unreg.addr,
                        unreg.name
                    );
                    self.table.unregister(&unreg, stamp_ms);
                }
                self.closed.insert(conn, stamp_ms);
            }
            Msg::Control(Control::Scan) => {
                // Requests queued before the scan was asked for come first.
                while let Ok(r) = self.requests.try_recv() {
                    self.apply_request(r);
                }
                self.scan(self.clock.now_ms());
            }
            Msg::Control(Control::Stop) => return true,
        }
        false
    }

    fn apply_request(&mut self, request: Request) {
        match request {
            Request::Register {
                reg,
                stamp_ms,
                reply,
            } => self.apply_register(reg, stamp_ms, reply),
            Request::QueryDataVersion {
                cluster,
                addr,
                given,
                stamp_ms,
                reply,
            } => {
                let (changed, stored) =
                    self.table
                        .query_data_version(&cluster, &addr, given.as_ref(), stamp_ms);
                self.answer(reply, DataVersionAnswer { changed, stored });
            }
            Request::Heartbeat {
                cluster,
                addr,
                stamp_ms,
            } => {
                self.table.refresh(&cluster, &addr, stamp_ms);
            }
            Request::WritePerm { name, add, reply } => {
                let count = if add {
                    self.table.add_write_perm(&name)
                } else {
                    self.table.wipe_write_perm(&name)
                };
                let what = if add { "add" } else { "wipe" };
                log::info!("{what} write permission of broker {name}: {count} topics");
                self.answer(reply, count);
            }
            Request::DeleteTopic {
                topic,
                cluster,
                reply,
            } => {
                log::info!("delete topic {topic} (cluster {cluster:?})");
                self.table.delete_topic(&topic, cluster.as_deref());
                self.answer(reply, ());
            }
            Request::RegisterTopic {
                topic,
                entries,
                reply,
            } => {
                let outcome = self.table.register_topic(&topic, entries);
                self.answer(reply, outcome);
            }
            Request::Kv {
                namespace,
                key,
                value,
                delete,
                reply,
            } => self.apply_kv(namespace, key, value, delete, reply),
            Request::UpdateConfig { entries, reply } => self.apply_config(entries, reply),
        }
    }

    fn apply_register(&mut self, reg: Registration, stamp_ms: u64, reply: Reply<Registered>) {
        if self.closed.contains_key(&reg.conn) {
            // Sent before its connection closed; nobody to answer.
            return;
        }
        let first = self.table.live(&reg.cluster, &reg.addr).is_none();
        let who = format!("{}/{} {} id {}", reg.cluster, reg.addr, reg.name, reg.id);
        let outcome = self.table.register(reg, stamp_ms);
        match &outcome {
            RegisterOutcome::Registered { .. } if first => {
                log::info!("new broker registered, {who}")
            }
            RegisterOutcome::LimitReached(why) => {
                log::warn!("registration of {who} refused: {why}")
            }
            _ => {}
        }
        let order_conf = match outcome {
            RegisterOutcome::Registered { .. } | RegisterOutcome::Superseded => {
                order_conf_body(&self.settings, &self.kv)
            }
            _ => None,
        };
        self.answer(
            reply,
            Registered {
                outcome,
                order_conf,
            },
        );
    }

    fn apply_kv(
        &mut self,
        namespace: String,
        key: String,
        value: Option<String>,
        delete: bool,
        reply: Reply<Result<(), String>>,
    ) {
        if delete {
            log::info!("delete KV config {namespace}/{key}");
            self.kv.delete(&namespace, &key);
        } else {
            log::info!(
                "put KV config {namespace}/{key} = {}",
                loggable(value.as_deref())
            );
            self.kv.put(&namespace, &key, value.as_deref());
        }
        self.kv_changed = true;
        if namespace == ORDER_TOPIC_CONFIG && self.settings.order_message_enable {
            self.table.touch_topic(&key);
        }
        let path = self.kv_config_path.clone();
        self.persist(path, self.kv.to_file(), reply, |r| r);
    }

    fn apply_config(
        &mut self,
        entries: Vec<(String, String)>,
        reply: Reply<Result<(), ConfigRefused>>,
    ) {
        if let Some((key, _)) = entries.iter().find(|(k, _)| self.config.is_black_listed(k)) {
            log::warn!("refused to update black-listed config key {key}");
            self.answer(reply, Err(ConfigRefused::BlackListed));
            return;
        }
        // One line per key up to a point: a body of 300,000 keys must not
        // write 300,000 log lines.
        const LOGGED_KEYS_MAX: usize = 32;
        for (i, (key, value)) in entries.iter().enumerate() {
            if i < LOGGED_KEYS_MAX {
                let effect = self.config.update_effect(key);
                let shown = loggable(Some(value));
                log::info!("update NameServer config {key} = {shown}: {effect}");
            }
            self.config.set_at_runtime(key, value);
        }
        if entries.len() > LOGGED_KEYS_MAX {
            let more = entries.len() - LOGGED_KEYS_MAX;
            log::info!("update NameServer config: {more} more keys not logged");
        }
        let before = self.settings.clone();
        let settings = self.config.runtime();
        if settings.order_message_enable != before.order_message_enable {
            self.table.touch_all_topics();
        }
        self.table.set_settings(settings.route);
        self.table.set_limits(settings.limits);
        self.settings = Arc::new(settings);
        self.config_changed = true;
        let text = self.config.properties_text().into_bytes();
        let path = self.config_store_path.clone();
        self.persist(path, text, reply, |r| r.map_err(ConfigRefused::Failed));
    }

    /// Queues a durable write of `content` to `path`; `reply` is answered
    /// with `wrap` of its outcome once the file holding the change is
    /// durable.
    fn persist<T: Send + 'static>(
        &mut self,
        path: PathBuf,
        content: Vec<u8>,
        reply: Reply<T>,
        wrap: fn(Result<(), String>) -> T,
    ) {
        let done: Vec<Done> = reply
            .into_iter()
            .map(|r| -> Done {
                Box::new(move |result: Result<(), String>| {
                    let _ = r.send(wrap(result));
                })
            })
            .collect();
        self.jobs.push(Job {
            path,
            content,
            done,
        });
    }

    /// Holds `answer` back until this batch is published.
    fn answer<T: Send + 'static>(&mut self, reply: Reply<T>, answer: T) {
        if let Some(reply) = reply {
            self.replies.push(Box::new(move || {
                let _ = reply.send(answer);
            }));
        }
    }

    fn scan(&mut self, now_ms: u64) {
        for unreg in self.table.expired(now_ms) {
            log::info!(
                "The broker channel expired, {}/{} {}",
                unreg.cluster,
                unreg.addr,
                unreg.name
            );
            let conn = self.table.live(&unreg.cluster, &unreg.addr).map(|l| l.conn);
            self.table.unregister(&unreg, now_ms);
            // Java closes the expired broker's channel too.
            if let Some(conn) = conn {
                if let Some(closer) = self.closers.get((conn >> 48) as usize) {
                    let _ = closer.try_send(conn);
                }
            }
        }
        self.closed
            .retain(|_, closed_ms| closed_ms.saturating_add(CLOSED_CONN_MEMORY_MS) > now_ms);
    }

    /// Publishes the next snapshot if anything visible changed, then sends
    /// the answers held back for it.
    fn publish(&mut self) {
        let changes = self.table.take_changes();
        self.rebuilt_since_trim += changes.topics.len();
        if !changes.is_empty() || self.kv_changed || self.config_changed {
            let current = self.published.load_full();
            let (kv, order) = (&self.kv, self.settings.order_message_enable);
            let order_conf = |topic: &str| {
                order
                    .then(|| kv.get(ORDER_TOPIC_CONFIG, topic).map(str::to_string))
                    .flatten()
            };
            let mut routes = current.routes.next(&self.table, &changes, order_conf);
            if std::mem::take(&mut self.kv_changed) {
                routes.kv = Arc::new(self.kv.clone());
            }
            routes.published_ms = self.clock.now_ms();
            let mut next = Published {
                routes,
                settings: current.settings.clone(),
                config_text: current.config_text.clone(),
            };
            if std::mem::take(&mut self.config_changed) {
                next.settings = self.settings.clone();
                next.config_text = Bytes::from(self.config.properties_text());
            }
            self.published.store(Arc::new(next));
            self.stats.publications.fetch_add(1, Ordering::Relaxed);
        }
        for answer in self.replies.drain(..) {
            answer();
        }
        for job in self.jobs.drain(..) {
            self.persister.submit(job);
        }
        for notice in self.table.take_notices() {
            self.notifier.submit(notice);
        }
    }
}

/// A value for a log line: long values are cut, so a client cannot make
/// the log grow by megabytes per request.
fn loggable(value: Option<&str>) -> String {
    const SHOWN_MAX: usize = 256;
    match value {
        None => "null".into(),
        Some(v) if v.len() <= SHOWN_MAX => format!("{v:?}"),
        Some(v) => {
            let cut = (0..=SHOWN_MAX)
                .rev()
                .find(|&i| v.is_char_boundary(i))
                .unwrap_or(0);
            format!("{:?}... ({} bytes)", &v[..cut], v.len())
        }
    }
}

/// After this many topics were rebuilt, and once the queue is idle, the
/// heap is trimmed: big registrations are decoded on the shard threads, so
/// their freed bodies sit in those threads' malloc arenas and would keep
/// resident memory at its peak (14 MB of 157 at 100k topics, measured).
const TRIM_AFTER_TOPICS: usize = 10_000;

fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
