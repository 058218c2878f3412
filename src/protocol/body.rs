//! Request and reply bodies: the broker's registration in its three forms
//! (`namesrv-commands.md` §A.4, §B.1-§B.7) and DataVersion. No IO.

use super::json;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Read;

/// Largest inflated compressed registration: a peer must not make us
/// allocate without bound from a small zlib bomb.
pub const INFLATED_BODY_MAX: usize = 64 * 1024 * 1024;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DataVersion {
    pub counter: i64,
    pub state_version: i64,
    pub timestamp: i64,
}

impl DataVersion {
    /// `{"counter":..,"stateVersion":..,"timestamp":..}` as Java writes it.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(b"{\"counter\":");
        json::write_int(&mut out, self.counter);
        out.extend_from_slice(b",\"stateVersion\":");
        json::write_int(&mut out, self.state_version);
        out.extend_from_slice(b",\"timestamp\":");
        json::write_int(&mut out, self.timestamp);
        out.push(b'}');
        out
    }

    pub fn parse(bytes: &[u8]) -> Result<DataVersion, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// The part of a broker's TopicConfig the NameServer keeps (§B.2).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicConfig {
    pub topic_name: Option<String>,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    pub topic_sys_flag: i32,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            topic_name: None,
            read_queue_nums: 16,
            write_queue_nums: 16,
            perm: 6,
            topic_sys_flag: 0,
        }
    }
}

/// A static topic's logical-queue mapping (§B.6), kept to be sent back in
/// routes as `topicQueueMappingByBroker`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicQueueMappingInfo {
    pub bname: Option<String>,
    pub curr_id_map: Option<BTreeMap<i32, i32>>,
    pub dirty: bool,
    pub epoch: i64,
    pub scope: Option<String>,
    pub topic: Option<String>,
    pub total_queues: i32,
}

impl Default for TopicQueueMappingInfo {
    fn default() -> Self {
        TopicQueueMappingInfo {
            bname: None,
            curr_id_map: None,
            dirty: false,
            epoch: 0,
            scope: Some("__global__".to_string()),
            topic: None,
            total_queues: 0,
        }
    }
}

/// What a REGISTER_BROKER body carries, whatever its form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegisterBody {
    pub data_version: DataVersion,
    /// Keyed by the map key of `topicConfigTable`; the config's own
    /// `topicName` is what routes use (`namesrv-behaviour.md` §3 step 10.2).
    pub topics: BTreeMap<String, TopicConfig>,
    /// `None` when the body form has no filter-server list (old brokers).
    pub filter_servers: Option<Vec<String>>,
    /// topic -> mapping info.
    pub mappings: BTreeMap<String, TopicQueueMappingInfo>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WrapperJson {
    data_version: DataVersion,
    topic_config_table: BTreeMap<String, TopicConfig>,
    topic_queue_mapping_info_map: BTreeMap<String, TopicQueueMappingInfo>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RegisterBodyJson {
    filter_server_list: Option<Vec<String>>,
    topic_config_serialize_wrapper: WrapperJson,
}

/// Decodes a REGISTER_BROKER body by the request's version and `compressed`
/// flag (§A.4 table).
pub fn decode_register(
    body: Option<&[u8]>,
    version: i32,
    compressed: bool,
) -> Result<RegisterBody, String> {
    use super::codes::version::{V3_0_11, V5_0_0};
    let Some(body) = body else {
        return Ok(RegisterBody {
            filter_servers: (version >= V3_0_11).then(Vec::new),
            ..RegisterBody::default()
        });
    };
    if version < V3_0_11 {
        let wrapper: WrapperJson = parse_lenient(body)?;
        return Ok(from_wrapper(wrapper, None));
    }
    if compressed {
        return decode_compressed(body, version >= V5_0_0);
    }
    let parsed: RegisterBodyJson = parse_lenient(body)?;
    Ok(from_wrapper(
        parsed.topic_config_serialize_wrapper,
        Some(parsed.filter_server_list.unwrap_or_default()),
    ))
}

fn from_wrapper(w: WrapperJson, filter_servers: Option<Vec<String>>) -> RegisterBody {
    RegisterBody {
        data_version: w.data_version,
        topics: w.topic_config_table,
        filter_servers,
        mappings: w.topic_queue_mapping_info_map,
    }
}

/// serde_json after rewriting fastjson's unquoted numeric keys.
fn parse_lenient<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let text = json::quote_numeric_keys(bytes);
    serde_json::from_slice(&text).map_err(|e| e.to_string())
}

/// The zlib-compressed binary form (§A.4.2).
fn decode_compressed(body: &[u8], has_mappings: bool) -> Result<RegisterBody, String> {
    let mut plain = Vec::new();
    flate2::read::ZlibDecoder::new(body)
        .take(INFLATED_BODY_MAX as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(|e| format!("inflate: {e}"))?;
    if plain.len() > INFLATED_BODY_MAX {
        return Err(format!("inflated body exceeds {INFLATED_BODY_MAX} bytes"));
    }
    let mut r = Chunks { bytes: &plain };
    let data_version = DataVersion::parse(r.chunk()?)?;
    let mut topics = BTreeMap::new();
    for _ in 0..r.count()? {
        let line = std::str::from_utf8(r.chunk()?).map_err(|e| e.to_string())?;
        let config = parse_topic_line(line)?;
        let name = config.topic_name.clone().unwrap_or_default();
        topics.insert(name, config);
    }
    let filter_servers: Vec<String> = parse_lenient(r.chunk()?)?;
    let mut mappings = BTreeMap::new();
    if has_mappings {
        for _ in 0..r.count()? {
            let info: TopicQueueMappingInfo = parse_lenient(r.chunk()?)?;
            mappings.insert(info.topic.clone().unwrap_or_default(), info);
        }
    }
    Ok(RegisterBody {
        data_version,
        topics,
        filter_servers: Some(filter_servers),
        mappings,
    })
}

/// `<name> <read> <write> <perm> <filterType>[ <attributes JSON>]`.
fn parse_topic_line(line: &str) -> Result<TopicConfig, String> {
    let tokens: Vec<&str> = line.split(' ').collect();
    if tokens.len() < 5 {
        return Err(format!("topic config line has {} tokens", tokens.len()));
    }
    let int = |s: &str| s.parse::<i32>().map_err(|e| format!("{s:?}: {e}"));
    Ok(TopicConfig {
        topic_name: Some(tokens[0].to_string()),
        read_queue_nums: int(tokens[1])?,
        write_queue_nums: int(tokens[2])?,
        perm: int(tokens[3])?,
        topic_sys_flag: 0,
    })
}

struct Chunks<'a> {
    bytes: &'a [u8],
}

impl<'a> Chunks<'a> {
    fn int(&mut self) -> Result<i32, String> {
        if self.bytes.len() < 4 {
            return Err("compressed body truncated".into());
        }
        let (head, rest) = self.bytes.split_at(4);
        self.bytes = rest;
        Ok(i32::from_be_bytes(head.try_into().unwrap()))
    }

    /// An entry count; each entry takes at least 4 bytes, so a count the
    /// remaining bytes cannot hold is an error, not an allocation.
    fn count(&mut self) -> Result<usize, String> {
        let n = self.int()?;
        if n < 0 || n as usize > self.bytes.len() / 4 {
            return Err(format!("compressed body claims {n} entries"));
        }
        Ok(n as usize)
    }

    fn chunk(&mut self) -> Result<&'a [u8], String> {
        let len = self.int()?;
        if len < 0 || len as usize > self.bytes.len() {
            return Err(format!("compressed body chunk of {len} bytes"));
        }
        let (head, rest) = self.bytes.split_at(len as usize);
        self.bytes = rest;
        Ok(head)
    }
}

/// One QueueData of a REGISTER_TOPIC_IN_NAMESRV body (§A.12); a missing
/// number is 0 and a missing broker name empty, as fastjson leaves them.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TopicQueueIn {
    #[serde(default)]
    pub broker_name: Option<String>,
    #[serde(default)]
    pub perm: i32,
    #[serde(default)]
    pub read_queue_nums: i32,
    #[serde(default)]
    pub topic_sys_flag: i32,
    #[serde(default)]
    pub write_queue_nums: i32,
}

/// The `queueDatas` of a REGISTER_TOPIC_IN_NAMESRV body (a TopicRouteData);
/// a body without them is an empty list, as in Java.
pub fn decode_register_topic(body: &[u8]) -> Result<Vec<TopicQueueIn>, String> {
    #[derive(Deserialize)]
    struct TopicRouteIn {
        #[serde(default, rename = "queueDatas")]
        queue_datas: Option<Vec<TopicQueueIn>>,
    }
    let parsed: Option<TopicRouteIn> =
        serde_json::from_slice(&json::quote_numeric_keys(body)).map_err(|e| e.to_string())?;
    Ok(parsed.and_then(|p| p.queue_datas).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::client::{encode_register_compressed, encode_register_json};

    fn topic(name: &str, q: i32) -> (&str, TopicConfig) {
        let config = TopicConfig {
            topic_name: Some(name.to_string()),
            read_queue_nums: q,
            write_queue_nums: q,
            ..TopicConfig::default()
        };
        (name, config)
    }

    #[test]
    fn json_and_compressed_forms_decode_alike() {
        let dv = DataVersion {
            counter: 7,
            state_version: 1,
            timestamp: 1_700_000_000_123,
        };
        let topics = [topic("TopicTest", 4), topic("Other", 8)];
        let plain = decode_register(
            Some(&encode_register_json(&dv, &topics, &["f:1"])),
            479,
            false,
        )
        .unwrap();
        let zipped = encode_register_compressed(&dv, &topics, &["f:1"], true);
        let unzipped = decode_register(Some(&zipped), 479, true).unwrap();
        assert_eq!(plain, unzipped);
        assert_eq!(plain.topics["Other"].read_queue_nums, 8);
        assert_eq!(plain.filter_servers, Some(vec!["f:1".to_string()]));
    }

    /// Java RegisterBrokerBodyTest: 10,000 topics survive the compressed form.
    #[test]
    fn ten_thousand_compressed_topics() {
        let names: Vec<String> = (0..10_000).map(|i| format!("topic-{i}")).collect();
        let topics: Vec<(&str, TopicConfig)> = names.iter().map(|n| topic(n, 8)).collect();
        let zipped = encode_register_compressed(&DataVersion::default(), &topics, &[], true);
        let got = decode_register(Some(&zipped), 413, true).unwrap();
        assert_eq!(got.topics.len(), 10_000);
    }

    #[test]
    fn old_brokers_send_a_bare_wrapper_with_defaults() {
        let body = br#"{"dataVersion":{"counter":1,"timestamp":2},"topicConfigTable":{"T":{"topicName":"T"}}}"#;
        let got = decode_register(Some(body), 36, false).unwrap();
        assert_eq!(got.filter_servers, None);
        assert_eq!(got.topics["T"].read_queue_nums, 16);
        assert_eq!(got.topics["T"].perm, 6);
        assert_eq!(got.data_version.counter, 1);
    }

    #[test]
    fn mapping_info_with_unquoted_keys() {
        let body = br#"{"topicConfigSerializeWrapper":{"topicQueueMappingInfoMap":{"S":{"bname":"b","currIdMap":{0:1,1:0},"epoch":5,"topic":"S","totalQueues":2}}}}"#;
        let got = decode_register(Some(body), 479, false).unwrap();
        let info = &got.mappings["S"];
        assert_eq!(info.curr_id_map.as_ref().unwrap()[&0], 1);
        assert_eq!(info.scope.as_deref(), Some("__global__"));
    }

    #[test]
    fn broken_bodies_are_errors_not_panics() {
        assert!(decode_register(Some(b"{"), 479, false).is_err());
        assert!(decode_register(Some(b"\x78\xda\x00"), 479, true).is_err());
        let mut short = encode_register_compressed(&DataVersion::default(), &[], &[], true);
        short.truncate(short.len() - 3);
        assert!(decode_register(Some(&short), 479, true).is_err());
    }

    #[test]
    fn absent_body_is_empty_registration() {
        let got = decode_register(None, 479, false).unwrap();
        assert!(got.topics.is_empty());
        assert_eq!(got.filter_servers, Some(vec![]));
    }
}
