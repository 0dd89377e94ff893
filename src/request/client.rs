//! Who the client is: the socket peer, or, when the peer is one of `[server] trusted_proxies`
//! (a load balancer or TLS terminator in front of usher), the rightmost `X-Forwarded-For` entry
//! that no trusted proxy wrote. Entries left of it were written by the client and prove nothing.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    bits: u8,
}

/// Why a CIDR is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an address or address block like \"10.0.0.0/8\" or \"::1\"")]
pub struct CidrError(String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || CidrError(text.to_string());
        let (address, bits) = match text.split_once('/') {
            Some((address, bits)) => (address, Some(bits)),
            None => (text, None),
        };
        let network: IpAddr = address.trim().parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(bits) => bits.trim().parse::<u8>().map_err(|_| bad())?,
        };
        if bits > max {
            return Err(bad());
        }
        Ok(Cidr {
            network: unmap(network),
            bits,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.bits)
    }
}

/// IPv4 addresses written as IPv6 (`::ffff:10.0.0.1`, as a dual-stack socket reports them) as
/// IPv4, so one rule covers both spellings.
pub fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The address block of `ip` that per-client limits count it under: its first `bits_v4` (IPv4)
/// or `bits_v6` (IPv6) bits, the rest zero. 32 and 128 keep the address itself.
pub fn block_of(ip: IpAddr, bits_v4: u8, bits_v6: u8) -> IpAddr {
    let keep = |len: u32, bits: u8| -> u128 {
        let bits = u32::from(bits).min(len);
        if bits == 0 {
            0
        } else {
            (!0u128 << (len - bits)) & (!0u128 >> (128 - len))
        }
    };
    match unmap(ip) {
        IpAddr::V4(v4) => {
            let masked = u128::from(u32::from(v4)) & keep(32, bits_v4);
            IpAddr::V4(std::net::Ipv4Addr::from(masked as u32))
        }
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(
            u128::from(v6) & keep(128, bits_v6),
        )),
    }
}

impl Cidr {
    /// Whether `ip` is in the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let mask = |len: u32, bits: u8| -> u128 {
            if bits == 0 {
                0
            } else {
                (!0u128 << (len - u32::from(bits))) & (!0u128 >> (128 - len))
            }
        };
        match (self.network, unmap(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let m = mask(32, self.bits);
                u128::from(u32::from(net)) & m == u128::from(u32::from(ip)) & m
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let m = mask(128, self.bits);
                u128::from(net) & m == u128::from(ip) & m
            }
            _ => false,
        }
    }
}

/// The proxies whose `X-Forwarded-*` headers usher believes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Trusts the given blocks.
    pub fn new(blocks: Vec<Cidr>) -> Self {
        TrustedProxies(blocks)
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(ip))
    }

    /// Whether any proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`1.2.3.4:5`, `[::1]:5`).
fn entry_ip(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(unmap(ip));
    }
    if let Some(literal) = entry.strip_prefix('[') {
        return literal.split_once(']')?.0.parse().ok().map(unmap);
    }
    let (ip, port) = entry.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The client of a request from socket peer `peer` carrying `X-Forwarded-For` values `xff`
/// (every field line, in order).
///
/// An untrusted peer is the client. From a trusted peer, the entries are read right to left,
/// skipping trusted proxies; the first other address is the client. An entry that is not an
/// address ends the walk: the last address known good (a trusted proxy) stands in, so garbage
/// never becomes an identity.
pub fn client_ip(peer: IpAddr, xff: &[&[u8]], trusted: &TrustedProxies) -> IpAddr {
    let peer = unmap(peer);
    if !trusted.trusts(peer) {
        return peer;
    }
    let mut client = peer;
    for line in xff.iter().rev() {
        let Ok(line) = std::str::from_utf8(line) else {
            return client;
        };
        for entry in line.rsplit(',') {
            match entry_ip(entry) {
                Some(ip) if trusted.trusts(ip) => client = ip,
                Some(ip) => return ip,
                None => return client,
            }
        }
    }
    client
}

/// The `X-Forwarded-For` value to send upstream: a trusted peer's list with the peer added, or
/// only the peer when it is not trusted (a client's own list is replaced, never passed on).
pub fn forwarded_for(peer: IpAddr, xff: &[&[u8]], trusted: &TrustedProxies) -> String {
    let peer = unmap(peer);
    if !trusted.trusts(peer) {
        return peer.to_string();
    }
    let mut out = String::new();
    for line in xff {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        for entry in line.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            out.push_str(entry);
            out.push_str(", ");
        }
    }
    out.push_str(&peer.to_string());
    out
}
