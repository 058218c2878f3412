//! The command header in both encodings (`remoting-protocol.md` §3-§5), and
//! the JSON header Java writes on every reply (§4, §6).

use super::json::{self, Dialect};

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

    /// Several ext fields at once, or `None` if any is absent.
    pub fn ext_all<const N: usize>(&self, keys: [&str; N]) -> Option<[&str; N]> {
        let mut out = [""; N];
        for (slot, key) in out.iter_mut().zip(keys) {
            *slot = self.ext(key)?;
        }
        Some(out)
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
/// keys ignored, missing members defaulted, scalars in extFields stringified,
/// a repeated key's last value kept. Decoded straight into `Header` with
/// serde's visitors: no intermediate `Value` tree on the request path.
pub fn decode_json(bytes: &[u8]) -> Result<Header, HeaderError> {
    use serde::de::DeserializeSeed;
    let bad = |e: serde_json::Error| HeaderError::BadJson(e.to_string());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let header = HeaderSeed.deserialize(&mut de).map_err(bad)?;
    de.end().map_err(bad)?;
    Ok(header)
}

mod visit {
    //! The serde visitors of `decode_json`.
    use super::{Header, LANGUAGES};
    use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
    use serde_json::Value;
    use std::fmt;

    pub struct HeaderSeed;

    /// A top-level member name; only the known ones are told apart.
    enum Field {
        Code,
        Version,
        Opaque,
        Flag,
        Language,
        Remark,
        ExtFields,
        Other,
    }

    impl<'de> de::Deserialize<'de> for Field {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Field, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Field;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a member name")
                }
                fn visit_str<E>(self, key: &str) -> Result<Field, E> {
                    Ok(match key {
                        "code" => Field::Code,
                        "version" => Field::Version,
                        "opaque" => Field::Opaque,
                        "flag" => Field::Flag,
                        "language" => Field::Language,
                        "remark" => Field::Remark,
                        "extFields" => Field::ExtFields,
                        _ => Field::Other,
                    })
                }
            }
            d.deserialize_str(V)
        }
    }

    impl<'de> DeserializeSeed<'de> for HeaderSeed {
        type Value = Header;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Header, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for HeaderSeed {
        type Value = Header;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("header is not a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
            let mut h = Header {
                language: Some(0),
                ..Header::default()
            };
            while let Some(field) = map.next_key::<Field>()? {
                match field {
                    Field::Code => h.code = map.next_value_seed(Int("code"))?,
                    Field::Version => h.version = map.next_value_seed(Int("version"))?,
                    Field::Opaque => h.opaque = map.next_value_seed(Int("opaque"))?,
                    Field::Flag => h.flag = map.next_value_seed(Int("flag"))?,
                    Field::Language => h.language = map.next_value_seed(Language)?,
                    Field::Remark => h.remark = map.next_value::<Text>()?.0,
                    Field::ExtFields => h.ext = map.next_value_seed(Ext)?,
                    Field::Other => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(h)
        }
    }

    /// An int member: a number in range, a numeric string, or null (0).
    struct Int(&'static str);

    impl<'de> DeserializeSeed<'de> for Int {
        type Value = i32;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<i32, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Int {
        type Value = i32;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "member {} as an int", self.0)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i32, E> {
            i32::try_from(v).map_err(|_| E::custom(format!("member {} is not an int: {v}", self.0)))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i32, E> {
            i32::try_from(v).map_err(|_| E::custom(format!("member {} is not an int: {v}", self.0)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<i32, E> {
            v.trim()
                .parse()
                .map_err(|_| E::custom(format!("member {} is not an int: {v:?}", self.0)))
        }
        fn visit_unit<E>(self) -> Result<i32, E> {
            Ok(0)
        }
    }

    /// `language`: a name (unknown names are `None`), an ordinal, or null.
    struct Language;

    impl<'de> DeserializeSeed<'de> for Language {
        type Value = Option<u8>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<u8>, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Language {
        type Value = Option<u8>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a language name or ordinal")
        }
        fn visit_str<E>(self, name: &str) -> Result<Option<u8>, E> {
            Ok(LANGUAGES.iter().position(|l| *l == name).map(|i| i as u8))
        }
        fn visit_u64<E: de::Error>(self, i: u64) -> Result<Option<u8>, E> {
            match usize::try_from(i) {
                Ok(i) if i < LANGUAGES.len() => Ok(Some(i as u8)),
                _ => Err(E::custom(format!("language ordinal {i} out of range"))),
            }
        }
        fn visit_i64<E: de::Error>(self, i: i64) -> Result<Option<u8>, E> {
            match u64::try_from(i) {
                Ok(i) => self.visit_u64(i),
                Err(_) => Err(E::custom(format!("language ordinal {i} out of range"))),
            }
        }
        fn visit_unit<E>(self) -> Result<Option<u8>, E> {
            Ok(Some(0))
        }
    }

    /// Any value as Java's `String.valueOf` of the parsed member: strings
    /// as they are, other scalars and structures as JSON text, null as None.
    struct Text(Option<String>);

    impl<'de> de::Deserialize<'de> for Text {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text, D::Error> {
            d.deserialize_any(TextVisitor)
        }
    }

    struct TextVisitor;

    impl<'de> Visitor<'de> for TextVisitor {
        type Value = Text;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_str<E>(self, v: &str) -> Result<Text, E> {
            Ok(Text(Some(v.to_string())))
        }
        fn visit_string<E>(self, v: String) -> Result<Text, E> {
            Ok(Text(Some(v)))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Text, E> {
            Ok(Text(Some(v.to_string())))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Text, E> {
            Ok(Text(Some(v.to_string())))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Text, E> {
            Ok(Text(Some(Value::from(v).to_string())))
        }
        fn visit_bool<E>(self, v: bool) -> Result<Text, E> {
            Ok(Text(Some(v.to_string())))
        }
        fn visit_unit<E>(self) -> Result<Text, E> {
            Ok(Text(None))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Text, A::Error> {
            let v = Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
            Ok(Text(Some(v.to_string())))
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Text, A::Error> {
            let v = Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
            Ok(Text(Some(v.to_string())))
        }
    }

    use serde::Deserialize as _;

    /// `extFields`: an object whose values become text (null ones are
    /// dropped), or null.
    struct Ext;

    impl<'de> DeserializeSeed<'de> for Ext {
        type Value = Option<Vec<(String, String)>>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Ext {
        type Value = Option<Vec<(String, String)>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("extFields as an object")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut ext: Vec<(String, String)> = Vec::with_capacity(map.size_hint().unwrap_or(8));
            while let Some(key) = map.next_key::<String>()? {
                let Text(value) = map.next_value()?;
                // A repeated key: the last one counts, as in a Java map.
                let old = ext.iter().position(|(k, _)| *k == key);
                match (old, value) {
                    (Some(i), Some(v)) => ext[i].1 = v,
                    (Some(i), None) => {
                        ext.remove(i);
                    }
                    (None, Some(v)) => ext.push((key, v)),
                    (None, None) => {}
                }
            }
            Ok(Some(ext))
        }
    }
}

use visit::HeaderSeed;

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
pub(super) fn write_ext(out: &mut Vec<u8>, fields: &[(&str, &str)]) {
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
    fn json_header_repeats_structures_and_numbers_as_a_value_tree_would() {
        let h = decode_json(
            br#"{"code":1,"code":2,"remark":{"b":[1,2.5]},"extFields":{"k":"a","f":1.5,"k":"b","o":{"x":true},"n":-3}}"#,
        )
        .unwrap();
        assert_eq!(h.code, 2, "last repeated member wins");
        assert_eq!(h.remark.as_deref(), Some(r#"{"b":[1,2.5]}"#));
        assert_eq!(h.ext("k"), Some("b"));
        assert_eq!(h.ext("f"), Some("1.5"));
        assert_eq!(h.ext("o"), Some(r#"{"x":true}"#));
        assert_eq!(h.ext("n"), Some("-3"));
        let h = decode_json(br#"{"code":" 105 ","extFields":{"k":"v","k":null}}"#).unwrap();
        assert_eq!((h.code, h.ext("k")), (105, None));
        assert_eq!(decode_json(br#"{"extFields":null}"#).unwrap().ext, None);
    }

    #[test]
    fn json_header_errors() {
        assert!(decode_json(br#"{"code":1} x"#).is_err(), "trailing bytes");
        assert!(decode_json(br#"{"code":1.5}"#).is_err());
        assert!(decode_json(br#"{"code":"x1"}"#).is_err());
        assert!(decode_json(br#"{"code":4294967296}"#).is_err());
        assert!(decode_json(br#"{"language":-1}"#).is_err());
        assert!(decode_json(br#"{"extFields":[1]}"#).is_err());
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
