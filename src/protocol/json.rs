//! The two JSON dialects the Java NameServer writes, and the leniency its
//! fastjson parser has when reading.
//!
//! * `Legacy` is fastjson's default output: quotes, backslashes, control
//!   characters and U+007F..U+009F escaped, everything else raw UTF-8;
//!   Long/Integer map keys unquoted (`{0:"addr"}`).
//! * `Standard` is what clients >= 4.9.4 get for routes: map keys quoted,
//!   every char >= U+007F escaped as `\uXXXX` (UTF-16 units), `/` as `\/`,
//!   and longs beyond 2^53-1 written as strings (DECISIONS 11).

use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Legacy,
    Standard,
}

/// Largest integer a JavaScript double holds exactly; beyond it the
/// standard dialect writes longs as strings.
const SAFE_INTEGER_MAX: i64 = 9_007_199_254_740_991;

/// Appends `s` as a JSON string literal (quotes included).
pub fn write_str(out: &mut Vec<u8>, s: &str, dialect: Dialect) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, ch) in s.char_indices() {
        let escape = match ch {
            '"' | '\\' => true,
            '/' => dialect == Dialect::Standard,
            c if (c as u32) < 0x20 => true,
            c if (0x7F..=0x9F).contains(&(c as u32)) => true,
            c if (c as u32) > 0x9F => dialect == Dialect::Standard,
            _ => false,
        };
        if !escape {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        start = i + ch.len_utf8();
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '/' => out.extend_from_slice(b"\\/"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write_u16_escape(out, *unit);
                }
            }
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn write_u16_escape(out: &mut Vec<u8>, unit: u16) {
    let mut text = String::with_capacity(6);
    let _ = write!(text, "\\u{unit:04X}");
    out.extend_from_slice(text.as_bytes());
}

/// Appends a decimal integer.
pub fn write_int(out: &mut Vec<u8>, v: i64) {
    let mut buf = itoa_buf(v);
    out.append(&mut buf);
}

/// Appends a Long value: a string in the standard dialect when a double
/// cannot hold it exactly.
pub fn write_long(out: &mut Vec<u8>, v: i64, dialect: Dialect) {
    if dialect == Dialect::Standard && !(-SAFE_INTEGER_MAX..=SAFE_INTEGER_MAX).contains(&v) {
        out.push(b'"');
        write_int(out, v);
        out.push(b'"');
    } else {
        write_int(out, v);
    }
}

/// Appends a numeric map key: bare in the legacy dialect, quoted in the
/// standard one.
pub fn write_num_key(out: &mut Vec<u8>, key: i64, dialect: Dialect) {
    if dialect == Dialect::Standard {
        out.push(b'"');
        write_int(out, key);
        out.extend_from_slice(b"\":");
    } else {
        write_int(out, key);
        out.push(b':');
    }
}

/// Appends `"key":` for a bean member or a string map key.
pub fn write_key(out: &mut Vec<u8>, key: &str, dialect: Dialect) {
    write_str(out, key, dialect);
    out.push(b':');
}

pub fn write_bool(out: &mut Vec<u8>, v: bool) {
    out.extend_from_slice(if v { b"true" } else { b"false" });
}

fn itoa_buf(v: i64) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// Rewrites fastjson's unquoted numeric object keys (`{0:"a"}`) into quoted
/// ones so a strict parser accepts them. Everything else is copied as is;
/// strings are skipped with their escapes, and numbers inside arrays are
/// values, not keys. Returns the input untouched when nothing needs quoting.
pub fn quote_numeric_keys(input: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let mut nesting = Vec::new();
    let mut key = next_numeric_key(input, 0, &mut nesting);
    if key.is_none() {
        return std::borrow::Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len() + 16);
    let mut copied = 0;
    while let Some(key_start) = key {
        let mut key_end = key_start;
        while key_end < input.len() && matches!(input[key_end], b'-' | b'0'..=b'9') {
            key_end += 1;
        }
        out.extend_from_slice(&input[copied..key_start]);
        out.push(b'"');
        out.extend_from_slice(&input[key_start..key_end]);
        out.push(b'"');
        copied = key_end;
        key = next_numeric_key(input, key_end, &mut nesting);
    }
    out.extend_from_slice(&input[copied..]);
    std::borrow::Cow::Owned(out)
}

/// Finds the next object key, from `from`, that starts with a digit or `-`.
/// `nesting` carries the open containers (true = object) between calls.
fn next_numeric_key(input: &[u8], from: usize, nesting: &mut Vec<bool>) -> Option<usize> {
    let mut i = from;
    let mut expect_key = false;
    while i < input.len() {
        match input[i] {
            b'"' => {
                i = string_end(input, i);
                expect_key = false;
                continue;
            }
            b'{' => {
                nesting.push(true);
                expect_key = true;
            }
            b'[' => {
                nesting.push(false);
                expect_key = false;
            }
            b'}' | b']' => {
                nesting.pop();
                expect_key = false;
            }
            b',' => expect_key = nesting.last() == Some(&true),
            b' ' | b'\t' | b'\r' | b'\n' => {}
            b'-' | b'0'..=b'9' if expect_key => return Some(i),
            _ => expect_key = false,
        }
        i += 1;
    }
    None
}

/// Index just past the string literal that starts at `start` (a quote).
fn string_end(input: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < input.len() {
        match input[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    input.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str, d: Dialect) -> String {
        let mut out = Vec::new();
        write_str(&mut out, v, d);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn legacy_escapes_only_what_fastjson_escapes() {
        assert_eq!(
            s("a/b\"c\\\n\u{7f}é", Dialect::Legacy),
            "\"a/b\\\"c\\\\\\n\\u007Fé\""
        );
    }

    #[test]
    fn standard_escapes_non_ascii_and_slash() {
        assert_eq!(
            s("a/é😀", Dialect::Standard),
            "\"a\\/\\u00E9\\uD83D\\uDE00\""
        );
    }

    #[test]
    fn standard_writes_big_longs_as_strings() {
        let mut out = Vec::new();
        write_long(&mut out, SAFE_INTEGER_MAX + 1, Dialect::Standard);
        write_long(&mut out, SAFE_INTEGER_MAX, Dialect::Standard);
        write_long(&mut out, SAFE_INTEGER_MAX + 1, Dialect::Legacy);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"9007199254740992\"90071992547409919007199254740992"
        );
    }

    #[test]
    fn unquoted_numeric_keys_are_quoted_outside_strings_only() {
        let input = br#"{"a":{0:"x, {1:2}",-1:{2:[1,2]}},"b":[3,4]}"#;
        let got = quote_numeric_keys(input);
        assert_eq!(
            std::str::from_utf8(&got).unwrap(),
            r#"{"a":{"0":"x, {1:2}","-1":{"2":[1,2]}},"b":[3,4]}"#
        );
    }
}
