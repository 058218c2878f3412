//! What only a client sends: request frames and broker register bodies,
//! written the way Java clients and brokers write them. The server never
//! calls this; the tests, the benchmarks and the load generator do.

use super::body::{DataVersion, TopicConfig};
use super::frame::{write_frame, SerializeType};
use super::header::write_ext;
use super::json::{self, Dialect};

/// A whole request frame with a Java client's JSON header.
pub fn request(code: i32, opaque: i32, flag: i32, ext: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = Vec::with_capacity(128);
    write_request_json(
        &mut head,
        code,
        opaque,
        flag,
        super::codes::version::SERVER,
        ext,
    );
    let mut out = Vec::with_capacity(8 + head.len() + body.len());
    write_frame(&mut out, SerializeType::Json, &head, body);
    out
}

/// Writes a request header the way a Java client does.
pub fn write_request_json(
    out: &mut Vec<u8>,
    code: i32,
    opaque: i32,
    flag: i32,
    version: i32,
    ext: &[(&str, &str)],
) {
    out.extend_from_slice(b"{\"code\":");
    json::write_int(out, code as i64);
    out.extend_from_slice(b",\"extFields\":");
    write_ext(out, ext);
    out.extend_from_slice(b",\"flag\":");
    json::write_int(out, flag as i64);
    out.extend_from_slice(b",\"language\":\"JAVA\",\"opaque\":");
    json::write_int(out, opaque as i64);
    out.extend_from_slice(b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
    json::write_int(out, version as i64);
    out.push(b'}');
}

/// A `RegisterBrokerBody` as a 5.x broker writes it; for tests, benches and
/// the load generator.
pub fn encode_register_json(
    data_version: &DataVersion,
    topics: &[(&str, TopicConfig)],
    filter_servers: &[&str],
) -> Vec<u8> {
    let d = Dialect::Legacy;
    let mut out = Vec::with_capacity(64 + topics.len() * 160);
    out.extend_from_slice(b"{\"filterServerList\":[");
    for (i, f) in filter_servers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_str(&mut out, f, d);
    }
    out.extend_from_slice(b"],\"topicConfigSerializeWrapper\":{\"dataVersion\":");
    out.extend_from_slice(&data_version.to_json());
    // As a 5.x broker sends it (spec §A.4.1); peers may require it.
    out.extend_from_slice(b",\"mappingDataVersion\":");
    out.extend_from_slice(&data_version.to_json());
    out.extend_from_slice(b",\"topicConfigTable\":{");
    for (i, (name, c)) in topics.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_key(&mut out, name, d);
        out.extend_from_slice(b"{\"attributes\":{},\"order\":false,\"perm\":");
        json::write_int(&mut out, c.perm as i64);
        out.extend_from_slice(b",\"readQueueNums\":");
        json::write_int(&mut out, c.read_queue_nums as i64);
        out.extend_from_slice(b",\"topicFilterType\":\"SINGLE_TAG\",\"topicName\":");
        json::write_str(&mut out, c.topic_name.as_deref().unwrap_or(name), d);
        out.extend_from_slice(b",\"topicSysFlag\":");
        json::write_int(&mut out, c.topic_sys_flag as i64);
        out.extend_from_slice(b",\"writeQueueNums\":");
        json::write_int(&mut out, c.write_queue_nums as i64);
        out.push(b'}');
    }
    out.extend_from_slice(b"},\"topicQueueMappingDetailMap\":{},\"topicQueueMappingInfoMap\":{}}}");
    out
}

/// The compressed form (§A.4.2) as a 4.x broker with `compressedRegister`
/// writes it; for tests and the load generator.
pub fn encode_register_compressed(
    data_version: &DataVersion,
    topics: &[(&str, TopicConfig)],
    filter_servers: &[&str],
    with_mappings: bool,
) -> Vec<u8> {
    use std::io::Write;
    let mut plain = Vec::new();
    let chunk = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    chunk(&mut plain, &data_version.to_json());
    plain.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for (name, c) in topics {
        let line = format!(
            "{} {} {} {} SINGLE_TAG {{}}",
            c.topic_name.as_deref().unwrap_or(name),
            c.read_queue_nums,
            c.write_queue_nums,
            c.perm
        );
        chunk(&mut plain, line.as_bytes());
    }
    let filters = serde_json::to_vec(filter_servers).expect("strings encode");
    chunk(&mut plain, &filters);
    if with_mappings {
        plain.extend_from_slice(&0i32.to_be_bytes());
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&plain).expect("in-memory write");
    z.finish().expect("in-memory write")
}
