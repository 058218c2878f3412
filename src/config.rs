//! Configuration: the Java NameServer's keys with Java's defaults, read from
//! a properties file and from `--key value` flags (DECISIONS 3, 4), listed
//! by `-p` and logged at start-up.

use crate::route::table::{Limits, RouteSettings};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Str,
    Bool,
    Int,
    Long,
}

/// Which Java config object a key belongs to; `-p` prints them in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Namesrv,
    NettyServer,
    NettyClient,
    Rocketns,
}

/// When a key's value takes effect in rocketns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applies {
    /// Read from the published `RuntimeSettings`: UPDATE_NAMESRV_CONFIG
    /// changes it at once.
    Runtime,
    /// Read once into `StartupSettings`: a change takes effect at the next
    /// start, if the file it is persisted to is the one read at start.
    Start,
    /// A Java key rocketns accepts, lists and persists, but does not act on.
    Unused,
}

pub struct Key {
    pub name: &'static str,
    pub kind: Kind,
    pub group: Group,
    /// Java's default as text; `""` is unset (null in Java).
    pub default: &'static str,
    pub applies: Applies,
}

const fn key(
    name: &'static str,
    kind: Kind,
    group: Group,
    default: &'static str,
    applies: Applies,
) -> Key {
    Key {
        name,
        kind,
        group,
        default,
        applies,
    }
}

use Applies::*;
use Group::*;
use Kind::*;

/// Every key, in Java's field declaration order within each group
/// (`namesrv-behaviour.md` §11). Paths under the user's home are filled in
/// by `Config::defaults`.
#[rustfmt::skip]
pub const KEYS: &[Key] = &[
    key("rocketmqHome", Str, Namesrv, "", Start),
    key("kvConfigPath", Str, Namesrv, "", Start),
    key("configStorePath", Str, Namesrv, "", Start),
    key("productEnvName", Str, Namesrv, "center", Unused),
    key("clusterTest", Bool, Namesrv, "false", Unused),
    key("orderMessageEnable", Bool, Namesrv, "false", Runtime),
    key("returnOrderTopicConfigToBroker", Bool, Namesrv, "true", Runtime),
    key("clientRequestThreadPoolNums", Int, Namesrv, "8", Unused),
    key("defaultThreadPoolNums", Int, Namesrv, "16", Unused),
    key("clientRequestThreadPoolQueueCapacity", Int, Namesrv, "50000", Unused),
    key("defaultThreadPoolQueueCapacity", Int, Namesrv, "10000", Start),
    key("scanNotActiveBrokerInterval", Long, Namesrv, "5000", Runtime),
    key("unRegisterBrokerQueueCapacity", Int, Namesrv, "3000", Start),
    key("supportActingMaster", Bool, Namesrv, "false", Runtime),
    key("enableAllTopicList", Bool, Namesrv, "true", Runtime),
    key("enableTopicList", Bool, Namesrv, "true", Runtime),
    key("notifyMinBrokerIdChanged", Bool, Namesrv, "false", Runtime),
    key("enableControllerInNamesrv", Bool, Namesrv, "false", Unused),
    key("needWaitForService", Bool, Namesrv, "false", Runtime),
    key("waitSecondsForService", Int, Namesrv, "45", Runtime),
    key("deleteTopicWithBrokerRegistration", Bool, Namesrv, "false", Runtime),
    key("configBlackList", Str, Namesrv, "configBlackList;configStorePath;kvConfigPath", Start),
    key("bindAddress", Str, NettyServer, "0.0.0.0", Start),
    key("listenPort", Int, NettyServer, "9876", Start),
    key("serverWorkerThreads", Int, NettyServer, "8", Unused),
    key("serverCallbackExecutorThreads", Int, NettyServer, "0", Unused),
    key("serverSelectorThreads", Int, NettyServer, "3", Unused),
    key("serverOnewaySemaphoreValue", Int, NettyServer, "256", Unused),
    key("serverAsyncSemaphoreValue", Int, NettyServer, "64", Unused),
    key("serverChannelMaxIdleTimeSeconds", Int, NettyServer, "120", Runtime),
    key("serverSocketSndBufSize", Int, NettyServer, "0", Start),
    key("serverSocketRcvBufSize", Int, NettyServer, "0", Start),
    key("writeBufferHighWaterMark", Int, NettyServer, "0", Unused),
    key("writeBufferLowWaterMark", Int, NettyServer, "0", Unused),
    key("serverSocketBacklog", Int, NettyServer, "1024", Unused),
    key("serverNettyWorkerGroupEnable", Bool, NettyServer, "true", Unused),
    key("serverPooledByteBufAllocatorEnable", Bool, NettyServer, "true", Unused),
    key("enableShutdownGracefully", Bool, NettyServer, "false", Unused),
    key("shutdownWaitTimeSeconds", Int, NettyServer, "30", Unused),
    key("useEpollNativeSelector", Bool, NettyServer, "false", Unused),
    key("clientWorkerThreads", Int, NettyClient, "4", Unused),
    key("clientCallbackExecutorThreads", Int, NettyClient, "", Unused),
    key("clientOnewaySemaphoreValue", Int, NettyClient, "65535", Unused),
    key("clientAsyncSemaphoreValue", Int, NettyClient, "65535", Unused),
    key("connectTimeoutMillis", Int, NettyClient, "3000", Unused),
    key("channelNotActiveInterval", Long, NettyClient, "60000", Unused),
    key("isScanAvailableNameSrv", Bool, NettyClient, "true", Unused),
    key("clientChannelMaxIdleTimeSeconds", Int, NettyClient, "120", Unused),
    key("clientSocketSndBufSize", Int, NettyClient, "0", Unused),
    key("clientSocketRcvBufSize", Int, NettyClient, "0", Unused),
    key("clientPooledByteBufAllocatorEnable", Bool, NettyClient, "false", Unused),
    key("clientCloseSocketIfTimeout", Bool, NettyClient, "true", Unused),
    key("useTLS", Bool, NettyClient, "false", Unused),
    key("socksProxyConfig", Str, NettyClient, "{}", Unused),
    key("disableCallbackExecutor", Bool, NettyClient, "false", Unused),
    key("disableNettyWorkerGroup", Bool, NettyClient, "false", Unused),
    key("maxReconnectIntervalTimeSeconds", Int, NettyClient, "60", Unused),
    key("enableReconnectForGoAway", Bool, NettyClient, "true", Unused),
    key("httpListenPort", Int, Rocketns, "8080", Start),
    key("shardCount", Int, Rocketns, "0", Start),
    key("pinShards", Bool, Rocketns, "false", Start),
    key("connectionsMaxPerShard", Int, Rocketns, "0", Start),
    key("bufferBytesMaxPerShard", Int, Rocketns, "33554432", Start),
    key("brokerGroupsMax", Int, Rocketns, "4096", Runtime),
    key("topicsMax", Int, Rocketns, "1000000", Runtime),
    key("adminAllowedSources", Str, Rocketns, "", Start),
    key("nsaddrList", Str, Rocketns, "", Start),
    key("nsaddrDnsName", Str, Rocketns, "", Start),
    key("configStoreReadAtStart", Bool, Rocketns, "false", Start),
];

/// NettyClientConfig also declares these two (same key, same value); `-p`
/// lists them in both objects as Java does.
const CLIENT_DUPLICATES: &[&str] = &["writeBufferHighWaterMark", "writeBufferLowWaterMark"];

pub fn find_key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

#[derive(Clone, Debug)]
pub struct Config {
    values: BTreeMap<&'static str, String>,
    /// Keys from the file that rocketns does not know, kept as Java keeps them.
    unknown: BTreeMap<String, String>,
    /// Defaults with the user's home filled in; an empty value restores them.
    defaults: BTreeMap<&'static str, String>,
    /// Known keys set from the file or the command line.
    explicit: std::collections::BTreeSet<&'static str>,
    pub config_file: Option<PathBuf>,
}

impl Config {
    /// Java's defaults; `home` stands for `user.home`.
    pub fn defaults(home: &str, cpus: usize) -> Config {
        let mut values: BTreeMap<&'static str, String> = KEYS
            .iter()
            .map(|k| (k.name, k.default.to_string()))
            .collect();
        values.insert("kvConfigPath", format!("{home}/namesrv/kvConfig.json"));
        values.insert(
            "configStorePath",
            format!("{home}/namesrv/namesrv.properties"),
        );
        values.insert("clientCallbackExecutorThreads", cpus.to_string());
        Config {
            defaults: values.clone(),
            values,
            unknown: BTreeMap::new(),
            explicit: Default::default(),
            config_file: None,
        }
    }

    /// Sets `name` from text, checked strictly (DECISIONS 3): an empty value
    /// restores the default.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let Some(key) = find_key(name) else {
            self.unknown.insert(name.to_string(), value.to_string());
            return Ok(());
        };
        let value = value.trim();
        self.explicit.insert(key.name);
        if value.is_empty() {
            self.values
                .insert(key.name, self.defaults[key.name].clone());
            return Ok(());
        }
        let ok = match key.kind {
            Str => true,
            Bool => value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false"),
            Int => value.parse::<i32>().is_ok(),
            Long => value.parse::<i64>().is_ok(),
        };
        if key.name == "adminAllowedSources" {
            crate::acl::AdminAcl::parse(value)
                .map_err(|e| format!("invalid value for {name}: {e}"))?;
        }
        if !ok {
            let kind = format!("{:?}", key.kind).to_lowercase();
            return Err(format!(
                "invalid value for {name}: {value:?} is not a {kind}"
            ));
        }
        let value = match key.kind {
            Bool => value.to_ascii_lowercase(),
            _ => value.to_string(),
        };
        self.values.insert(key.name, value);
        Ok(())
    }

    pub fn unknown_keys(&self) -> impl Iterator<Item = &String> {
        self.unknown.keys()
    }

    /// Java keys that were set but that rocketns has no use for (thread
    /// pools, Netty buffers, ...): accepted, listed, and warned about.
    pub fn unused_keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.explicit
            .iter()
            .copied()
            .filter(|k| find_key(k).is_some_and(|k| k.applies == Unused))
    }

    pub fn str(&self, name: &str) -> &str {
        self.values.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn bool(&self, name: &str) -> bool {
        self.str(name) == "true"
    }

    pub fn i64(&self, name: &str) -> i64 {
        self.str(name).parse().unwrap_or(0)
    }

    /// `name=value` lines as `-p` prints them: NamesrvConfig, then
    /// NettyServerConfig, then NettyClientConfig, then rocketns's own keys.
    pub fn print_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for group in [Namesrv, NettyServer, NettyClient, Rocketns] {
            for k in KEYS.iter().filter(|k| k.group == group) {
                lines.push(format!("{}={}", k.name, self.str(k.name)));
            }
            if group == NettyClient {
                for name in CLIENT_DUPLICATES {
                    lines.push(format!("{name}={}", self.str(name)));
                }
            }
        }
        lines
    }

    fn num(&self, name: &str) -> u64 {
        self.i64(name).max(0) as u64
    }

    /// The settings read once at start (`Applies::Start` keys).
    pub fn startup(&self) -> StartupSettings {
        let n = |k: &str| self.num(k);
        StartupSettings {
            bind_address: self.str("bindAddress").to_string(),
            listen_port: n("listenPort") as u16,
            shard_count: n("shardCount") as usize,
            pin_shards: self.bool("pinShards"),
            connections_max_per_shard: n("connectionsMaxPerShard") as usize,
            buffer_bytes_max_per_shard: n("bufferBytesMaxPerShard").max(1) as usize,
            http_listen_port: n("httpListenPort") as u16,
            socket_send_buffer_bytes: n("serverSocketSndBufSize") as usize,
            socket_recv_buffer_bytes: n("serverSocketRcvBufSize") as usize,
            request_queue_capacity: n("defaultThreadPoolQueueCapacity").max(1) as usize,
            unregister_queue_capacity: n("unRegisterBrokerQueueCapacity").max(1) as usize,
            admin_acl: crate::acl::AdminAcl::parse(self.str("adminAllowedSources"))
                .unwrap_or_default(),
            nsaddr_list: self
                .str("nsaddrList")
                .split([';', ','])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            nsaddr_dns_name: Some(self.str("nsaddrDnsName").trim())
                .filter(|s| !s.is_empty())
                .map(String::from),
            kv_config_path: PathBuf::from(self.str("kvConfigPath")),
            config_store_path: PathBuf::from(self.str("configStorePath")),
        }
    }

    /// The settings UPDATE_NAMESRV_CONFIG changes while running
    /// (`Applies::Runtime` keys).
    pub fn runtime(&self) -> RuntimeSettings {
        let n = |k: &str| self.num(k);
        RuntimeSettings {
            idle_timeout_ms: match n("serverChannelMaxIdleTimeSeconds") {
                0 => None,
                secs => Some(secs.saturating_mul(1000)),
            },
            scan_interval_ms: n("scanNotActiveBrokerInterval").max(1),
            enable_all_topic_list: self.bool("enableAllTopicList"),
            enable_topic_list: self.bool("enableTopicList"),
            need_wait_for_service: self.bool("needWaitForService"),
            wait_seconds_for_service: n("waitSecondsForService"),
            order_message_enable: self.bool("orderMessageEnable"),
            return_order_topic_config_to_broker: self.bool("returnOrderTopicConfigToBroker"),
            limits: Limits {
                broker_groups_max: n("brokerGroupsMax").max(1) as usize,
                topics_max: n("topicsMax").max(1) as usize,
            },
            route: RouteSettings {
                delete_topic_with_broker_registration: self
                    .bool("deleteTopicWithBrokerRegistration"),
                support_acting_master: self.bool("supportActingMaster"),
                notify_min_broker_id_changed: self.bool("notifyMinBrokerIdChanged"),
            },
        }
    }
}

/// What the server reads once, at start: sockets, shards, queue sizes,
/// files, and who may change state. Owned by `Server::start`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartupSettings {
    pub bind_address: String,
    pub listen_port: u16,
    /// 0: one per CPU the process may use.
    pub shard_count: usize,
    pub pin_shards: bool,
    /// 0 until `Server::start` derives it from the open-files limit
    /// (`connection_cap`).
    pub connections_max_per_shard: usize,
    /// Bytes a shard may hold for its connections (unsent replies, read
    /// buffers, frames decoded off the shard) before it pauses the readers
    /// that hold the most.
    pub buffer_bytes_max_per_shard: usize,
    /// `/metrics`, `/healthz`, `/readyz`; 0 turns the HTTP side off.
    pub http_listen_port: u16,
    /// SO_SNDBUF and SO_RCVBUF of accepted connections, as Java's
    /// serverSocketSndBufSize and serverSocketRcvBufSize; 0 leaves the
    /// kernel's autotuning. A fixed size also bounds the kernel memory a
    /// client that never reads can pin (it is charged to the container).
    pub socket_send_buffer_bytes: usize,
    pub socket_recv_buffer_bytes: usize,
    pub request_queue_capacity: usize,
    pub unregister_queue_capacity: usize,
    /// Who may send state-changing admin requests (DECISIONS 26).
    pub admin_acl: crate::acl::AdminAcl,
    /// `/rocketmq/nsaddr` from configuration: these addresses, ...
    pub nsaddr_list: Vec<String>,
    /// ... or the ready addresses this name resolves to, at `listenPort`.
    pub nsaddr_dns_name: Option<String>,
    pub kv_config_path: PathBuf,
    /// Where UPDATE_NAMESRV_CONFIG persists the property set.
    pub config_store_path: PathBuf,
}

/// Descriptors kept for what is not a connection: per shard its listener
/// dup and io_uring rings, and for the process the HTTP side (16 requests
/// at once), the persistence and notify threads, stdio and the binary.
pub const DESCRIPTORS_RESERVED_PER_SHARD: u64 = 8;
pub const DESCRIPTORS_RESERVED: u64 = 64;
/// The smallest `bufferBytesMaxPerShard` start-up accepts: room for a few
/// connections' replies and a large frame being decoded.
pub const BUFFER_BYTES_MAX_PER_SHARD_MIN: usize = 1 << 20;

/// `bufferBytesMaxPerShard` must leave a shard room to work.
pub fn check_buffer_budget(bytes: usize) -> Result<(), String> {
    if bytes < BUFFER_BYTES_MAX_PER_SHARD_MIN {
        return Err(format!(
            "bufferBytesMaxPerShard={bytes} is below the {BUFFER_BYTES_MAX_PER_SHARD_MIN} bytes a shard needs"
        ));
    }
    Ok(())
}

/// The cap where the open-files limit cannot be read or is unlimited.
pub const CONNECTIONS_MAX_PER_SHARD_DEFAULT: usize = 20_000;

/// The connection cap per shard: `configured` when it fits the open-files
/// limit with the reserve, derived from the limit when 0. Every accepted
/// connection is one descriptor, so caps that fit mean accept never meets
/// EMFILE for a connection the caps allow.
pub fn connection_cap(
    configured: usize,
    shards: usize,
    nofile: Option<u64>,
) -> Result<usize, String> {
    let shards_n = shards.max(1) as u64;
    let reserved = DESCRIPTORS_RESERVED + DESCRIPTORS_RESERVED_PER_SHARD * shards_n;
    let limit = match nofile {
        Some(n) if n != libc::RLIM_INFINITY => n,
        _ => {
            return Ok(match configured {
                0 => CONNECTIONS_MAX_PER_SHARD_DEFAULT,
                n => n,
            })
        }
    };
    let available = limit.saturating_sub(reserved);
    if configured == 0 {
        let derived = available / shards_n;
        if derived == 0 {
            return Err(format!(
                "the open-files limit (RLIMIT_NOFILE) is {limit}, below the {reserved} descriptors \
                 rocketns reserves for {shards} shards; raise `ulimit -n`"
            ));
        }
        return Ok(derived as usize);
    }
    let wanted = configured as u64 * shards_n;
    if wanted > available {
        return Err(format!(
            "connectionsMaxPerShard={configured} on {shards} shards needs {wanted} descriptors plus \
             {reserved} reserved, over the open-files limit (RLIMIT_NOFILE) of {limit}; lower \
             connectionsMaxPerShard (0 derives it from the limit) or raise `ulimit -n`"
        ));
    }
    Ok(configured)
}

/// What UPDATE_NAMESRV_CONFIG can change while running. The writer alone
/// derives it from the property set and publishes it with each snapshot;
/// shards, the writer and the HTTP side all read that one copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeSettings {
    /// Close connections idle this long (`None`: never).
    pub idle_timeout_ms: Option<u64>,
    pub scan_interval_ms: u64,
    pub enable_all_topic_list: bool,
    pub enable_topic_list: bool,
    pub need_wait_for_service: bool,
    pub wait_seconds_for_service: u64,
    pub order_message_enable: bool,
    pub return_order_topic_config_to_broker: bool,
    pub limits: Limits,
    pub route: RouteSettings,
}

impl Default for RuntimeSettings {
    /// Java's defaults.
    fn default() -> Self {
        Config::defaults("/", 1).runtime()
    }
}

/// Keys UPDATE_NAMESRV_CONFIG can never change, whatever `configBlackList`
/// says: they name files (CVE-2023-37582 wrote a crontab through them), or
/// guard who may change state, or tell brokers where NameServers are.
const PATH_KEYS: &[&str] = &[
    "adminAllowedSources",
    "configBlackList",
    "configStorePath",
    "configStoreReadAtStart",
    "kvConfigPath",
    "nsaddrDnsName",
    "nsaddrList",
    "rocketmqHome",
];

impl Config {
    /// The black list of UPDATE_NAMESRV_CONFIG: the path keys plus the
    /// entries of `configBlackList`.
    pub fn is_black_listed(&self, name: &str) -> bool {
        PATH_KEYS.contains(&name)
            || self
                .str("configBlackList")
                .split(';')
                .any(|k| k.trim() == name)
    }

    /// Sets a key the way Java's UPDATE_NAMESRV_CONFIG does (DECISIONS 3):
    /// unparsable numbers are ignored, a boolean is true only for `true`,
    /// unknown keys change only a value already in the property set.
    pub fn set_at_runtime(&mut self, name: &str, value: &str) {
        let Some(key) = find_key(name) else {
            if let Some(v) = self.unknown.get_mut(name) {
                *v = value.to_string();
            }
            return;
        };
        let value = value.trim();
        let parsed = match key.kind {
            Str => Some(value.to_string()),
            Bool => Some(value.eq_ignore_ascii_case("true").to_string()),
            Int => value.parse::<i32>().ok().map(|v| v.to_string()),
            Long => value.parse::<i64>().ok().map(|v| v.to_string()),
        };
        if let Some(v) = parsed {
            self.values.insert(key.name, v);
        }
    }

    /// Whether the file UPDATE_NAMESRV_CONFIG persists to is read at the
    /// next start: it is the `-c` file (as in Java), or
    /// `configStoreReadAtStart` asks for it.
    pub fn config_store_read_at_start(&self) -> bool {
        let store = std::path::Path::new(self.str("configStorePath"));
        self.config_file.as_deref() == Some(store) || self.bool("configStoreReadAtStart")
    }

    /// How an UPDATE_NAMESRV_CONFIG of `name` takes effect, for its log line.
    pub fn update_effect(&self, name: &str) -> String {
        let store = self.str("configStorePath");
        let persisted = if self.config_store_read_at_start() {
            format!("persisted to {store}, read at the next start")
        } else {
            format!("persisted to {store}, not read at start")
        };
        match find_key(name).map(|k| k.applies) {
            Some(Runtime) => format!("applied now; {persisted}"),
            Some(Start) => format!("not applied while running; {persisted}"),
            Some(Unused) => format!("a Java key rocketns does not use; {persisted}"),
            None if self.unknown.contains_key(name) => format!("unknown key; {persisted}"),
            None => "unknown key, not in the property set: ignored, as in Java".to_string(),
        }
    }

    /// The config property set as GET_NAMESRV_CONFIG sends it and
    /// UPDATE_NAMESRV_CONFIG persists it: NamesrvConfig, NettyServerConfig
    /// and rocketns keys plus the file's unknown keys, sorted, `key=value\n`.
    pub fn properties_text(&self) -> String {
        let mut all: BTreeMap<&str, &str> = self
            .unknown
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for k in KEYS.iter().filter(|k| k.group != NettyClient) {
            // Java leaves out a null field; a key whose default is unset
            // and whose value is empty is that null (DECISIONS 3).
            let value = self.str(k.name);
            if !(value.is_empty() && k.default.is_empty()) {
                all.insert(k.name, value);
            }
        }
        all.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_values_name_the_key() {
        let mut c = Config::defaults("/h", 2);
        assert!(c
            .set("listenPort", "98x")
            .unwrap_err()
            .contains("listenPort"));
        assert!(c
            .set("enableAllTopicList", "yes")
            .unwrap_err()
            .contains("yes"));
        c.set("enableAllTopicList", "FALSE").unwrap();
        assert!(!c.bool("enableAllTopicList"));
        c.set("listenPort", "").unwrap();
        assert_eq!(c.str("listenPort"), "9876");
        c.set("kvConfigPath", "").unwrap();
        assert_eq!(c.str("kvConfigPath"), "/h/namesrv/kvConfig.json");
        c.set("serverWorkerThreads", "4").unwrap();
        assert_eq!(
            c.unused_keys().collect::<Vec<_>>(),
            vec!["serverWorkerThreads"]
        );
        c.set("someFutureKey", "v").unwrap();
        assert_eq!(c.unknown_keys().count(), 1);
    }

    /// A value of `k` other than its default, valid for its kind.
    fn other_value(k: &Key) -> String {
        match (k.kind, k.name) {
            (Bool, _) => (k.default != "true").to_string(),
            (Int | Long, _) => (k.default.parse::<i64>().unwrap_or(0) + 7).to_string(),
            (Str, "adminAllowedSources") => "10.0.0.0/8".into(),
            (Str, "nsaddrList") => "10.0.0.1:9876".into(),
            (Str, _) => "/elsewhere".into(),
        }
    }

    /// Each key takes effect as its `applies` says: a Runtime key changes
    /// the runtime settings the writer publishes, a Start key only the
    /// start-up settings, an Unused key neither, so `-p`, the start-up
    /// warnings and the UPDATE_NAMESRV_CONFIG log line tell the truth.
    #[test]
    fn every_key_applies_as_declared() {
        // Read at start outside `startup()`: the black list by
        // `is_black_listed`, the persisted file by the command line, and
        // rocketmqHome only for its default (DECISIONS 21).
        const READ_ELSEWHERE: &[&str] =
            &["configBlackList", "configStoreReadAtStart", "rocketmqHome"];
        let base = Config::defaults("/h", 2);
        for k in KEYS.iter().filter(|k| !READ_ELSEWHERE.contains(&k.name)) {
            let mut c = base.clone();
            c.set(k.name, &other_value(k)).unwrap();
            let runtime = c.runtime() != base.runtime();
            let startup = c.startup() != base.startup();
            let seen = match (runtime, startup) {
                (true, false) => Runtime,
                (false, true) => Start,
                (false, false) => Unused,
                (true, true) => panic!("{} changes both", k.name),
            };
            assert_eq!(seen, k.applies, "{} is declared {:?}", k.name, k.applies);
        }
    }

    #[test]
    fn update_effect_says_whether_the_store_is_read_at_start() {
        let mut c = Config::defaults("/h", 2);
        let effect = c.update_effect("enableTopicList");
        assert!(effect.starts_with("applied now"), "{effect}");
        assert!(effect.ends_with("not read at start"), "{effect}");
        c.config_file = Some("/h/namesrv/namesrv.properties".into());
        let effect = c.update_effect("listenPort");
        assert!(effect.starts_with("not applied while running"), "{effect}");
        assert!(effect.ends_with("read at the next start"), "{effect}");
        c.config_file = None;
        c.set("configStoreReadAtStart", "true").unwrap();
        assert!(c
            .update_effect("topicsMax")
            .ends_with("read at the next start"));
        assert!(c
            .update_effect("serverWorkerThreads")
            .starts_with("a Java key rocketns does not use"));
    }

    #[test]
    fn connection_caps_fit_the_open_files_limit() {
        // This machine: 20,000 descriptors, 2 shards, 80 reserved.
        assert_eq!(connection_cap(0, 2, Some(20_000)), Ok(9_960));
        assert_eq!(connection_cap(9_960, 2, Some(20_000)), Ok(9_960));
        let e = connection_cap(9_961, 2, Some(20_000)).unwrap_err();
        assert!(
            e.contains("connectionsMaxPerShard=9961") && e.contains("20000"),
            "{e}"
        );
        assert!(connection_cap(0, 2, Some(80)).unwrap_err().contains("80"));
        assert_eq!(
            connection_cap(0, 4, None),
            Ok(CONNECTIONS_MAX_PER_SHARD_DEFAULT)
        );
        assert_eq!(connection_cap(7, 4, Some(libc::RLIM_INFINITY)), Ok(7));
    }

    #[test]
    fn print_lists_every_key_in_group_order() {
        let c = Config::defaults("/h", 2);
        let lines = c.print_lines();
        assert_eq!(lines[0], "rocketmqHome=");
        assert_eq!(lines[1], "kvConfigPath=/h/namesrv/kvConfig.json");
        assert_eq!(lines.len(), KEYS.len() + CLIENT_DUPLICATES.len());
        let port = lines.iter().position(|l| l == "listenPort=9876").unwrap();
        let black = lines
            .iter()
            .position(|l| l.starts_with("configBlackList="))
            .unwrap();
        assert!(black < port);
    }
}
