//! The command header in both encodings (`remoting-protocol.md` §3-§5), and
//! the JSON header Java writes on every reply (§4, §6).

use super::json::{self, Dialect};
use serde_json::Value;

/// `LanguageCode` names by byte value (§9).
const LANGUAGES: [&str; 14] = [
    "JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY", "OTHER", "HTTP", "GO", "PHP",
    "OMS", "RUST", "NODE_JS",
];

pub const FLAG_RESPONSE: i32 = 0x1;
pub const FLAG_ONEWAY: i32 = 0x2;

/// Smallest binary header: no remark, no ext fields (§5).
const BINARY_HEADER_MIN: usize = 21;

/// A decoded request or response header. `ext` keeps the wire order; a
/// header has few fields, so lookups scan it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub code: i32,
    /// Index into the language table; `None` for a name Java does not know.
    pub language: Option<u8>,
    pub version: i32,
    pub opaque: i32,
    pub flag: i32,
    pub remark: Option<String>,
    /// `None` when the header had no extFields at all (Java then decodes
    /// every custom header field as its default, §10.2 step 5).
    pub ext: Option<Vec<(String, String)>>,
}

impl Header {
    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    /// The ext field `key`, as Java's `extFields.get(key)`.
    pub fn ext(&self, key: &str) -> Option<&str> {
        let ext = self.ext.as_ref()?;
        ext.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// An ext field parsed as Java's `Long.parseLong`; unparsable is absent
    /// (Java swallows the parse error and keeps the default, §10.2 step 3).
    pub fn ext_i64(&self, key: &str) -> Option<i64> {
        parse_java_long(self.ext(key)?)
    }

    pub fn ext_i32(&self, key: &str) -> Option<i32> {
        parse_java_long(self.ext(key)?).and_then(|v| i32::try_from(v).ok())
    }

    /// `Boolean.parseBoolean`: true only for `true` in any case.
    pub fn ext_bool(&self, key: &str) -> Option<bool> {
        self.ext(key).map(|v| v.eq_ignore_ascii_case("true"))
    }

    pub fn language_name(&self) -> Option<&'static str> {
        self.language.map(|l| LANGUAGES[l as usize])
    }
}

/// `Long.parseLong`: an optional sign and decimal digits, nothing else.
fn parse_java_long(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[derive(Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The JSON header is not JSON, not an object, or has a member of the
    /// wrong type.
    BadJson(String),
    /// A binary header whose lengths run past its end.
    BadBinary(&'static str),
}

/// Decodes a JSON header with fastjson's leniency: any key order, unknown
/// keys ignored, missing members defaulted, scalars in extFields stringified.
pub fn decode_json(bytes: &[u8]) -> Result<Header, HeaderError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| HeaderError::BadJson(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(HeaderError::BadJson("header is not a JSON object".into()));
    };
    let mut header = Header {
        language: Some(0),
        ..Header::default()
    };
    for (key, value) in map {
        match key.as_str() {
            "code" => header.code = json_int(&key, &value)?,
            "version" => header.version = json_int(&key, &value)?,
            "opaque" => header.opaque = json_int(&key, &value)?,
            "flag" => header.flag = json_int(&key, &value)?,
            "language" => header.language = json_language(&value)?,
            "remark" => header.remark = json_text(value),
            "extFields" => header.ext = json_ext(value)?,
            _ => {}
        }
    }
    Ok(header)
}

fn json_int(key: &str, value: &Value) -> Result<i32, HeaderError> {
    let parsed = match value {
        Value::Null => Some(0),
        Value::Number(n) => n.as_i64().and_then(|v| i32::try_from(v).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| HeaderError::BadJson(format!("member {key} is not an int: {value}")))
}

fn json_language(value: &Value) -> Result<Option<u8>, HeaderError> {
    match value {
        Value::Null => Ok(Some(0)),
        Value::String(name) => Ok(LANGUAGES.iter().position(|l| l == name).map(|i| i as u8)),
        Value::Number(n) => match n.as_u64() {
            Some(i) if (i as usize) < LANGUAGES.len() => Ok(Some(i as u8)),
            _ => Err(HeaderError::BadJson(format!(
                "language ordinal {n} out of range"
            ))),
        },
        other => Err(HeaderError::BadJson(format!("language is {other}"))),
    }
}

fn json_text(value: Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

fn json_ext(value: Value) -> Result<Option<Vec<(String, String)>>, HeaderError> {
    match value {
        Value::Null => Ok(None),
        Value::Object(map) => Ok(Some(
            map.into_iter()
                .filter_map(|(k, v)| json_text(v).map(|v| (k, v)))
                .collect(),
        )),
        other => Err(HeaderError::BadJson(format!("extFields is {other}"))),
    }
}

/// Decodes a ROCKETMQ binary header (§5), with Java's checks: a length past
/// the header is an error, a zero-length string is null.
pub fn decode_binary(bytes: &[u8]) -> Result<Header, HeaderError> {
    if bytes.len() < BINARY_HEADER_MIN {
        return Err(HeaderError::BadBinary("header shorter than 21 bytes"));
    }
    let mut r = Reader { bytes, at: 0 };
    let code = r.i16()? as i32;
    let language_byte = r.u8()?;
    let language = ((language_byte as usize) < LANGUAGES.len()).then_some(language_byte);
    let version = r.i16()? as i32;
    let opaque = r.i32()?;
    let flag = r.i32()?;
    let remark_len = r.i32()?;
    let remark = r.string(remark_len)?;
    let ext_len = r.i32()?;
    let mut ext = None;
    if ext_len > 0 {
        if ext_len as usize > bytes.len() {
            return Err(HeaderError::BadBinary("ext length past the header"));
        }
        let end = r.at + ext_len as usize;
        let mut fields = Vec::new();
        while r.at < end {
            let key_len = r.i16()? as i32;
            let key = r.string(key_len)?;
            let value_len = r.i32()?;
            let value = r.string(value_len)?;
            if let (Some(k), Some(v)) = (key, value) {
                fields.push((k, v));
            }
        }
        ext = Some(fields);
    }
    Ok(Header {
        code,
        language,
        version,
        opaque,
        flag,
        remark,
        ext,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], HeaderError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(HeaderError::BadBinary("field runs past the header"))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }
    fn u8(&mut self) -> Result<u8, HeaderError> {
        Ok(self.take(1)?[0])
    }
    fn i16(&mut self) -> Result<i16, HeaderError> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn i32(&mut self) -> Result<i32, HeaderError> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    /// A length-prefixed string; length <= 0 is null, as in Java.
    fn string(&mut self, len: i32) -> Result<Option<String>, HeaderError> {
        if len <= 0 {
            return Ok(None);
        }
        if len as usize > self.bytes.len() {
            return Err(HeaderError::BadBinary("string length past the header"));
        }
        let raw = self.take(len as usize)?;
        Ok(Some(String::from_utf8_lossy(raw).into_owned()))
    }
}

/// Writes the JSON header of a reply exactly as Java does: members in
/// alphabetical order, `extFields` only when `ext` is given, remark only
/// when set, language JAVA, the server's version.
pub fn write_response_json(
    out: &mut Vec<u8>,
    code: i32,
    opaque: i32,
    remark: Option<&str>,
    ext: Option<&[(&str, &str)]>,
) {
    out.extend_from_slice(b"{\"code\":");
    json::write_int(out, code as i64);
    if let Some(fields) = ext {
        out.extend_from_slice(b",\"extFields\":");
        write_ext(out, fields);
    }
    out.extend_from_slice(b",\"flag\":1,\"language\":\"JAVA\",\"opaque\":");
    json::write_int(out, opaque as i64);
    if let Some(remark) = remark {
        out.extend_from_slice(b",\"remark\":");
        json::write_str(out, remark, Dialect::Legacy);
    }
    out.extend_from_slice(b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
    json::write_int(out, super::codes::version::SERVER as i64);
    out.push(b'}');
}

/// `extFields` as a JSON object of strings.
fn write_ext(out: &mut Vec<u8>, fields: &[(&str, &str)]) {
    out.push(b'{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_key(out, k, Dialect::Legacy);
        json::write_str(out, v, Dialect::Legacy);
    }
    out.push(b'}');
}

/// Writes a request header the way a Java client does; used by the load
/// generator, the benchmarks and the tests.
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

/// Writes a ROCKETMQ binary header (§5).
pub fn write_binary(out: &mut Vec<u8>, h: &Header) {
    out.extend_from_slice(&(h.code as i16).to_be_bytes());
    out.push(h.language.unwrap_or(0));
    out.extend_from_slice(&(h.version as i16).to_be_bytes());
    out.extend_from_slice(&h.opaque.to_be_bytes());
    out.extend_from_slice(&h.flag.to_be_bytes());
    let remark = h.remark.as_deref().unwrap_or("");
    out.extend_from_slice(&(remark.len() as i32).to_be_bytes());
    out.extend_from_slice(remark.as_bytes());
    let mut ext = Vec::new();
    for (k, v) in h.ext.iter().flatten() {
        ext.extend_from_slice(&(k.len() as i16).to_be_bytes());
        ext.extend_from_slice(k.as_bytes());
        ext.extend_from_slice(&(v.len() as i32).to_be_bytes());
        ext.extend_from_slice(v.as_bytes());
    }
    out.extend_from_slice(&(ext.len() as i32).to_be_bytes());
    out.extend_from_slice(&ext);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_header_in_any_order_with_scalars_in_ext() {
        let h = decode_json(
            br#"{"opaque":7,"unknown":[1],"extFields":{"brokerId":0,"compressed":true,"x":null},"code":103}"#,
        )
        .unwrap();
        assert_eq!(h.code, 103);
        assert_eq!(h.opaque, 7);
        assert_eq!(h.flag, 0);
        assert_eq!(h.version, 0);
        assert_eq!(h.language_name(), Some("JAVA"));
        assert_eq!(h.ext("brokerId"), Some("0"));
        assert_eq!(h.ext_bool("compressed"), Some(true));
        assert_eq!(h.ext("x"), None);
    }

    #[test]
    fn json_header_errors() {
        assert!(decode_json(b"{\"code\":").is_err());
        assert!(decode_json(b"[1]").is_err());
        assert!(decode_json(br#"{"code":{}}"#).is_err());
        assert!(decode_json(br#"{"language":99}"#).is_err());
        assert_eq!(
            decode_json(br#"{"language":"KLINGON"}"#).unwrap().language,
            None
        );
    }

    #[test]
    fn binary_header_round_trip_and_empty_strings_are_null() {
        let h = Header {
            code: 105,
            language: Some(0),
            version: 479,
            opaque: 1,
            flag: 0,
            remark: None,
            ext: Some(vec![
                ("topic".into(), "TopicTest".into()),
                ("e".into(), "".into()),
            ]),
        };
        let mut out = Vec::new();
        write_binary(&mut out, &h);
        let back = decode_binary(&out).unwrap();
        assert_eq!(back.ext("topic"), Some("TopicTest"));
        assert_eq!(back.ext("e"), None);
        assert_eq!(back.version, 479);
    }

    /// Java RocketMQSerializableTest: no remark, no ext fields = 21 bytes,
    /// decoding to null remark and null ext.
    #[test]
    fn empty_binary_header_is_21_bytes() {
        let mut out = Vec::new();
        write_binary(&mut out, &Header::default());
        assert_eq!(out.len(), 21);
        let back = decode_binary(&out).unwrap();
        assert_eq!((back.remark, back.ext), (None, None));
    }

    #[test]
    fn binary_header_lengths_past_the_end_are_errors() {
        let mut out = Vec::new();
        write_binary(&mut out, &Header::default());
        out[13..17].copy_from_slice(&1000i32.to_be_bytes());
        assert!(decode_binary(&out).is_err());
        assert!(decode_binary(&out[..10]).is_err());
    }

    #[test]
    fn java_long_parsing() {
        assert_eq!(parse_java_long("-12"), Some(-12));
        assert_eq!(parse_java_long("+3"), Some(3));
        assert_eq!(parse_java_long(" 3"), None);
        assert_eq!(parse_java_long("3.0"), None);
        assert_eq!(parse_java_long(""), None);
    }
}
