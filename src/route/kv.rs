//! The KV config store (`namesrv-behaviour.md` §10): namespace -> key ->
//! value, with the Java NameServer's file format. No IO: the writer owns it
//! and hands the file content to the persistence thread.

use crate::protocol::json::{self, Dialect};
use std::collections::BTreeMap;

/// The namespace GET_ROUTEINFO_BY_TOPIC and REGISTER_BROKER read.
pub const ORDER_TOPIC_CONFIG: &str = "ORDER_TOPIC_CONFIG";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kv {
    /// A `None` value is Java's stored null: present, but found by nobody
    /// and written nowhere.
    table: BTreeMap<String, Entries>,
}

/// One namespace as the file holds it; a null value is Java's stored null.
type Entries = BTreeMap<String, Option<String>>;

#[derive(serde::Deserialize)]
struct FileJson {
    #[serde(default, rename = "configTable")]
    config_table: Option<BTreeMap<String, Option<Entries>>>,
}

impl Kv {
    /// Parses a `kvConfig.json` as Java writes it.
    pub fn from_file(text: &[u8]) -> Result<Kv, String> {
        let file: FileJson = serde_json::from_slice(text).map_err(|e| e.to_string())?;
        let table = file
            .config_table
            .unwrap_or_default()
            .into_iter()
            .map(|(ns, m)| (ns, m.unwrap_or_default()))
            .collect();
        Ok(Kv { table })
    }

    /// `{"configTable":{ns:{key:value}}}`, null values left out.
    pub fn to_file(&self) -> Vec<u8> {
        let d = Dialect::Legacy;
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(b"{\"configTable\":{");
        for (i, (ns, entries)) in self.table.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::write_key(&mut out, ns, d);
            write_table(&mut out, entries);
        }
        out.extend_from_slice(b"}}");
        out
    }

    pub fn put(&mut self, ns: &str, key: &str, value: Option<&str>) {
        let entries = self.table.entry(ns.to_string()).or_default();
        entries.insert(key.to_string(), value.map(str::to_string));
    }

    /// Removes `key`; the namespace stays, even empty, as in Java.
    pub fn delete(&mut self, ns: &str, key: &str) {
        if let Some(entries) = self.table.get_mut(ns) {
            entries.remove(key);
        }
    }

    pub fn get(&self, ns: &str, key: &str) -> Option<&str> {
        self.table.get(ns)?.get(key)?.as_deref()
    }

    pub fn has_namespace(&self, ns: &str) -> bool {
        self.table.contains_key(ns)
    }

    /// `{"table":{...}}` of a namespace (GET_KVLIST_BY_NAMESPACE, the
    /// REGISTER_BROKER reply body), `None` when it does not exist.
    pub fn table_json(&self, ns: &str) -> Option<Vec<u8>> {
        let entries = self.table.get(ns)?;
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(b"{\"table\":");
        write_table(&mut out, entries);
        out.push(b'}');
        Some(out)
    }

    /// About how many bytes `table_json` of a namespace writes (keys and
    /// values before escaping), `None` when it does not exist.
    pub fn namespace_bytes(&self, ns: &str) -> Option<usize> {
        let entries = self.table.get(ns)?;
        let sizes = entries
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, String::len));
        Some(sizes.sum())
    }

    /// Keys of a namespace with a value.
    pub fn keys(&self, ns: &str) -> impl Iterator<Item = &String> {
        self.table
            .get(ns)
            .into_iter()
            .flat_map(|m| m.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k))
    }
}

fn write_table(out: &mut Vec<u8>, entries: &Entries) {
    let d = Dialect::Legacy;
    out.push(b'{');
    let mut first = true;
    for (k, v) in entries {
        let Some(v) = v else { continue };
        if !first {
            out.push(b',');
        }
        first = false;
        json::write_key(out, k, d);
        json::write_str(out, v, d);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_round_trip_keeps_empty_namespaces_and_drops_nulls() {
        let mut kv = Kv::default();
        kv.put("ns", "k", Some("v"));
        kv.put("ns", "gone", None);
        kv.put("empty", "x", Some("1"));
        kv.delete("empty", "x");
        let file = kv.to_file();
        assert_eq!(file, br#"{"configTable":{"empty":{},"ns":{"k":"v"}}}"#);
        let back = Kv::from_file(&file).unwrap();
        assert_eq!(back.get("ns", "k"), Some("v"));
        assert!(back.has_namespace("empty"));
        assert_eq!(back.table_json("empty").unwrap(), br#"{"table":{}}"#);
        assert!(Kv::from_file(b"{\"configTable\":").is_err());
    }
}
