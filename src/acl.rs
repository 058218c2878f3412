//! `adminAllowedSources` (DECISIONS 26): the sources allowed to send the
//! admin requests that change state. The Java NameServer has no such guard;
//! empty (the default) allows everyone, as Java does.

use crate::protocol::codes::request as req;
use std::net::IpAddr;

/// Admin codes that change state. 217 and 104 are not here: brokers send them.
pub const GUARDED_CODES: &[i32] = &[
    req::PUT_KV_CONFIG,
    req::DELETE_KV_CONFIG,
    req::WIPE_WRITE_PERM_OF_BROKER,
    req::DELETE_TOPIC_IN_NAMESRV,
    req::UPDATE_NAMESRV_CONFIG,
    req::ADD_WRITE_PERM_OF_BROKER,
];

/// One network, `addr/prefix`; a bare address is a single host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let bad = || format!("{text:?} is not an address or addr/prefix network");
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let (whole, rest) = ((prefix / 8) as usize, prefix % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
}

/// The parsed list; empty allows every source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdminAcl(Vec<Cidr>);

impl AdminAcl {
    /// `,` or `;` separated networks, blanks ignored.
    pub fn parse(text: &str) -> Result<AdminAcl, String> {
        text.split([',', ';'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Cidr::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(AdminAcl)
    }

    /// Whether a request with `code` from `peer` may be served. An unknown
    /// peer address is refused once the list is set.
    pub fn allows(&self, code: i32, peer: Option<IpAddr>) -> bool {
        self.0.is_empty()
            || !GUARDED_CODES.contains(&code)
            || peer.is_some_and(|ip| self.0.iter().any(|c| c.contains(ip)))
    }
}

/// The remark of a refused request (16 NO_PERMISSION).
pub fn remark_refused(code: i32, peer: Option<IpAddr>) -> String {
    let peer = peer.map_or_else(|| "unknown".to_string(), |p| p.to_string());
    format!("request code {code} from {peer} refused: source not in adminAllowedSources")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn networks_match_by_prefix() {
        let acl = AdminAcl::parse("10.1.0.0/16; 192.168.7.9, fd00::/8").unwrap();
        let put = req::PUT_KV_CONFIG;
        assert!(acl.allows(put, ip("10.1.255.3")));
        assert!(!acl.allows(put, ip("10.2.0.1")));
        assert!(acl.allows(put, ip("192.168.7.9")));
        assert!(!acl.allows(put, ip("192.168.7.10")));
        assert!(acl.allows(put, ip("fd12::1")));
        assert!(!acl.allows(put, ip("fe80::1")));
        assert!(acl.allows(put, ip("::ffff:10.1.2.3")), "v4-mapped");
        assert!(!acl.allows(put, None));
        assert!(acl.allows(req::GET_ROUTEINFO_BY_TOPIC, ip("8.8.8.8")));
        assert!(acl.allows(req::REGISTER_TOPIC_IN_NAMESRV, ip("8.8.8.8")));
        let odd = AdminAcl::parse("10.0.0.0/9").unwrap();
        assert!(odd.allows(put, ip("10.127.0.1")));
        assert!(!odd.allows(put, ip("10.128.0.1")));
        assert!(AdminAcl::parse("0.0.0.0/0")
            .unwrap()
            .allows(put, ip("1.2.3.4")));
    }

    #[test]
    fn empty_allows_everyone_and_bad_entries_are_named() {
        assert!(AdminAcl::parse(" ")
            .unwrap()
            .allows(req::PUT_KV_CONFIG, None));
        for bad in [
            "10.0.0.0/33",
            "10.0.0",
            "host.example",
            "::/129",
            "1.2.3.4/x",
        ] {
            let e = AdminAcl::parse(&format!("127.0.0.1,{bad}")).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
