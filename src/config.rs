//! Configuration: the Java NameServer's keys with Java's defaults, read from
//! a properties file and from `--key value` flags (DECISIONS 3, 4), listed
//! by `-p` and logged at start-up.

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

pub struct Key {
    pub name: &'static str,
    pub kind: Kind,
    pub group: Group,
    /// Java's default as text; `""` is unset (null in Java).
    pub default: &'static str,
    /// False for keys rocketns accepts but does not act on.
    pub used: bool,
}

const fn key(
    name: &'static str,
    kind: Kind,
    group: Group,
    default: &'static str,
    used: bool,
) -> Key {
    Key {
        name,
        kind,
        group,
        default,
        used,
    }
}

use Group::*;
use Kind::*;

/// Every key, in Java's field declaration order within each group
/// (`namesrv-behaviour.md` §11). Paths under the user's home are filled in
/// by `Config::defaults`.
pub const KEYS: &[Key] = &[
    key("rocketmqHome", Str, Namesrv, "", true),
    key("kvConfigPath", Str, Namesrv, "", true),
    key("configStorePath", Str, Namesrv, "", true),
    key("productEnvName", Str, Namesrv, "center", false),
    key("clusterTest", Bool, Namesrv, "false", false),
    key("orderMessageEnable", Bool, Namesrv, "false", true),
    key(
        "returnOrderTopicConfigToBroker",
        Bool,
        Namesrv,
        "true",
        false,
    ),
    key("clientRequestThreadPoolNums", Int, Namesrv, "8", false),
    key("defaultThreadPoolNums", Int, Namesrv, "16", false),
    key(
        "clientRequestThreadPoolQueueCapacity",
        Int,
        Namesrv,
        "50000",
        false,
    ),
    key(
        "defaultThreadPoolQueueCapacity",
        Int,
        Namesrv,
        "10000",
        true,
    ),
    key("scanNotActiveBrokerInterval", Long, Namesrv, "5000", true),
    key("unRegisterBrokerQueueCapacity", Int, Namesrv, "3000", true),
    key("supportActingMaster", Bool, Namesrv, "false", true),
    key("enableAllTopicList", Bool, Namesrv, "true", true),
    key("enableTopicList", Bool, Namesrv, "true", true),
    key("notifyMinBrokerIdChanged", Bool, Namesrv, "false", true),
    key("enableControllerInNamesrv", Bool, Namesrv, "false", false),
    key("needWaitForService", Bool, Namesrv, "false", true),
    key("waitSecondsForService", Int, Namesrv, "45", true),
    key(
        "deleteTopicWithBrokerRegistration",
        Bool,
        Namesrv,
        "false",
        true,
    ),
    key(
        "configBlackList",
        Str,
        Namesrv,
        "configBlackList;configStorePath;kvConfigPath",
        false,
    ),
    key("bindAddress", Str, NettyServer, "0.0.0.0", true),
    key("listenPort", Int, NettyServer, "9876", true),
    key("serverWorkerThreads", Int, NettyServer, "8", false),
    key(
        "serverCallbackExecutorThreads",
        Int,
        NettyServer,
        "0",
        false,
    ),
    key("serverSelectorThreads", Int, NettyServer, "3", false),
    key("serverOnewaySemaphoreValue", Int, NettyServer, "256", false),
    key("serverAsyncSemaphoreValue", Int, NettyServer, "64", false),
    key(
        "serverChannelMaxIdleTimeSeconds",
        Int,
        NettyServer,
        "120",
        false,
    ),
    key("serverSocketSndBufSize", Int, NettyServer, "0", false),
    key("serverSocketRcvBufSize", Int, NettyServer, "0", false),
    key("writeBufferHighWaterMark", Int, NettyServer, "0", false),
    key("writeBufferLowWaterMark", Int, NettyServer, "0", false),
    key("serverSocketBacklog", Int, NettyServer, "1024", false),
    key(
        "serverNettyWorkerGroupEnable",
        Bool,
        NettyServer,
        "true",
        false,
    ),
    key(
        "serverPooledByteBufAllocatorEnable",
        Bool,
        NettyServer,
        "true",
        false,
    ),
    key(
        "enableShutdownGracefully",
        Bool,
        NettyServer,
        "false",
        false,
    ),
    key("shutdownWaitTimeSeconds", Int, NettyServer, "30", false),
    key("useEpollNativeSelector", Bool, NettyServer, "false", false),
    key("clientWorkerThreads", Int, NettyClient, "4", false),
    key("clientCallbackExecutorThreads", Int, NettyClient, "", false),
    key(
        "clientOnewaySemaphoreValue",
        Int,
        NettyClient,
        "65535",
        false,
    ),
    key(
        "clientAsyncSemaphoreValue",
        Int,
        NettyClient,
        "65535",
        false,
    ),
    key("connectTimeoutMillis", Int, NettyClient, "3000", false),
    key(
        "channelNotActiveInterval",
        Long,
        NettyClient,
        "60000",
        false,
    ),
    key("isScanAvailableNameSrv", Bool, NettyClient, "true", false),
    key(
        "clientChannelMaxIdleTimeSeconds",
        Int,
        NettyClient,
        "120",
        false,
    ),
    key("clientSocketSndBufSize", Int, NettyClient, "0", false),
    key("clientSocketRcvBufSize", Int, NettyClient, "0", false),
    key(
        "clientPooledByteBufAllocatorEnable",
        Bool,
        NettyClient,
        "false",
        false,
    ),
    key(
        "clientCloseSocketIfTimeout",
        Bool,
        NettyClient,
        "true",
        false,
    ),
    key("useTLS", Bool, NettyClient, "false", false),
    key("socksProxyConfig", Str, NettyClient, "{}", false),
    key("disableCallbackExecutor", Bool, NettyClient, "false", false),
    key("disableNettyWorkerGroup", Bool, NettyClient, "false", false),
    key(
        "maxReconnectIntervalTimeSeconds",
        Int,
        NettyClient,
        "60",
        false,
    ),
    key("enableReconnectForGoAway", Bool, NettyClient, "true", false),
    key("httpListenPort", Int, Rocketns, "8080", true),
    key("shardCount", Int, Rocketns, "0", true),
    key("pinShards", Bool, Rocketns, "false", true),
    key("connectionsMaxPerShard", Int, Rocketns, "20000", true),
    key("brokerGroupsMax", Int, Rocketns, "4096", true),
    key("topicsMax", Int, Rocketns, "1000000", true),
    key("adminAllowedSources", Str, Rocketns, "", true),
    key("nsaddrList", Str, Rocketns, "", true),
    key("nsaddrDnsName", Str, Rocketns, "", true),
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
            .filter(|k| find_key(k).is_some_and(|k| !k.used))
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

    /// The typed settings the server runs with.
    pub fn settings(&self) -> crate::server::Settings {
        let n = |k: &str| self.i64(k).max(0) as u64;
        crate::server::Settings {
            bind_address: self.str("bindAddress").to_string(),
            listen_port: n("listenPort") as u16,
            shard_count: n("shardCount") as usize,
            pin_shards: self.bool("pinShards"),
            connections_max_per_shard: n("connectionsMaxPerShard").max(1) as usize,
            http_listen_port: n("httpListenPort") as u16,
            idle_timeout: match n("serverChannelMaxIdleTimeSeconds") {
                0 => None,
                secs => Some(std::time::Duration::from_secs(secs)),
            },
            scan_interval_ms: n("scanNotActiveBrokerInterval").max(1),
            request_queue_capacity: n("defaultThreadPoolQueueCapacity").max(1) as usize,
            unregister_queue_capacity: n("unRegisterBrokerQueueCapacity").max(1) as usize,
            enable_all_topic_list: self.bool("enableAllTopicList"),
            enable_topic_list: self.bool("enableTopicList"),
            need_wait_for_service: self.bool("needWaitForService"),
            wait_seconds_for_service: n("waitSecondsForService"),
            order_message_enable: self.bool("orderMessageEnable"),
            return_order_topic_config_to_broker: self.bool("returnOrderTopicConfigToBroker"),
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
            kv_config_path: Some(PathBuf::from(self.str("kvConfigPath"))),
            config_store_path: Some(PathBuf::from(self.str("configStorePath"))),
            limits: crate::route::table::Limits {
                broker_groups_max: n("brokerGroupsMax").max(1) as usize,
                topics_max: n("topicsMax").max(1) as usize,
            },
            route: crate::route::table::RouteSettings {
                delete_topic_with_broker_registration: self
                    .bool("deleteTopicWithBrokerRegistration"),
                support_acting_master: self.bool("supportActingMaster"),
                notify_min_broker_id_changed: self.bool("notifyMinBrokerIdChanged"),
            },
        }
    }
}

/// Keys UPDATE_NAMESRV_CONFIG can never change, whatever `configBlackList`
/// says: they name files (CVE-2023-37582 wrote a crontab through them), or
/// guard who may change state, or tell brokers where NameServers are.
const PATH_KEYS: &[&str] = &[
    "adminAllowedSources",
    "configBlackList",
    "configStorePath",
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
            all.insert(k.name, self.str(k.name));
        }
        all.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }
}

/// Parses Java properties text: `#`/`!` comments, `=`, `:` or blank as the
/// separator, backslash escapes and line continuations.
pub fn parse_properties(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(first) = lines.next() {
        let mut logical = first.trim_start().to_string();
        if logical.is_empty() || logical.starts_with('#') || logical.starts_with('!') {
            continue;
        }
        while ends_with_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some(next) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        out.push(split_entry(&logical));
    }
    out
}

fn ends_with_continuation(line: &str) -> bool {
    line.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

fn split_entry(line: &str) -> (String, String) {
    let mut key = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(e) = chars.next() {
                    push_escape(&mut key, e, &mut chars);
                }
            }
            '=' | ':' => break,
            ' ' | '\t' | '\u{c}' => {
                while chars
                    .peek()
                    .is_some_and(|c| matches!(c, ' ' | '\t' | '\u{c}'))
                {
                    chars.next();
                }
                if chars.peek().is_some_and(|c| matches!(c, '=' | ':')) {
                    chars.next();
                }
                break;
            }
            c => key.push(c),
        }
    }
    while chars
        .peek()
        .is_some_and(|c| matches!(c, ' ' | '\t' | '\u{c}'))
    {
        chars.next();
    }
    let mut value = String::new();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(e) = chars.next() {
                push_escape(&mut value, e, &mut chars);
            }
        } else {
            value.push(c);
        }
    }
    (key, value)
}

fn push_escape(out: &mut String, e: char, rest: &mut std::iter::Peekable<std::str::Chars>) {
    match e {
        't' => out.push('\t'),
        'n' => out.push('\n'),
        'r' => out.push('\r'),
        'f' => out.push('\u{c}'),
        'u' => {
            let hex: String = (0..4).filter_map(|_| rest.next()).collect();
            match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                Some(c) => out.push(c),
                None => out.push_str(&hex),
            }
        }
        other => out.push(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_syntax() {
        let text = "# c\n! c\n  a = 1\nb:2\nc 3\nd=x\\\n   y\ne=\\u0041\\=\nf\n";
        let got = parse_properties(text);
        let want = [
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d", "xy"),
            ("e", "A="),
            ("f", ""),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
    }

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
