//! The PROXY protocol header (HAProxy's, versions 1 and 2) that an L4 load balancer (AWS NLB,
//! HAProxy in TCP mode) writes at the start of a connection to say whose it is. Pure: bytes in,
//! the header's length and the client address out; it never panics, whatever the bytes.
//!
//! - v1: one text line, at most 107 bytes: `PROXY TCP4 <src> <dst> <sport> <dport>\r\n` (or
//!   `TCP6`), or `PROXY UNKNOWN…\r\n`.
//! - v2: a 12-byte signature, version and command, family and protocol, a big-endian length,
//!   then the addresses (and TLVs, which are skipped). `LOCAL` (the balancer's own health
//!   check) and families other than TCP over IPv4/IPv6 carry no client.
//!
//! A listener that expects the header refuses a connection without one: a client that could
//! reach it directly must not be able to name its own address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest v1 header, CRLF included.
const V1_MAX: usize = 107;

/// A complete header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// Bytes the header takes at the start of the stream (the request follows them).
    pub len: usize,
    /// The client's address; `None` when the header names none (`LOCAL`, `UNKNOWN`, `UNSPEC`,
    /// UNIX sockets): the connection is the balancer's own, and its peer is the client.
    pub source: Option<SocketAddr>,
}

/// What the bytes read so far say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header.
    Header(ProxyHeader),
    /// A prefix of a header: read more.
    Incomplete,
}

/// Why the start of a connection is not a PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    /// It starts with neither signature.
    #[error("the connection does not start with a PROXY protocol header")]
    Missing,
    /// It starts like one but is not a valid one.
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
}

/// Reads a PROXY header at the start of `buf`.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    if buf.starts_with(&V2_SIGNATURE) {
        return parse_v2(buf);
    }
    if buf.len() < V2_SIGNATURE.len() && V2_SIGNATURE.starts_with(buf) && !buf.is_empty() {
        // `\r\n\r\n…` so far: both could still come (v1 never starts with `\r`).
        return Ok(Parsed::Incomplete);
    }
    let v1 = b"PROXY ";
    let prefix = buf.len().min(v1.len());
    if buf[..prefix] != v1[..prefix] || buf.is_empty() {
        return match buf.is_empty() {
            true => Ok(Parsed::Incomplete),
            false => Err(ProxyHeaderError::Missing),
        };
    }
    parse_v1(buf)
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let malformed = ProxyHeaderError::Malformed;
    // Printable ASCII up to the CRLF: anything else (a bare LF, a control byte) is refused
    // at once rather than waited on.
    let mut end = None;
    for (i, b) in buf.iter().enumerate().take(V1_MAX) {
        match (*b, buf.get(i + 1)) {
            (b'\r', Some(b'\n')) => {
                end = Some(i);
                break;
            }
            (b'\r', None) => return Ok(Parsed::Incomplete),
            (0x20..=0x7e, _) => {}
            _ => {
                return Err(malformed(
                    "a v1 line with a byte that is not printable ASCII",
                ))
            }
        }
    }
    let Some(end) = end else {
        return match buf.len() >= V1_MAX {
            true => Err(malformed("a v1 line longer than 107 bytes")),
            false => Ok(Parsed::Incomplete),
        };
    };
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| malformed("v1 is not ASCII"))?;
    let len = end + 2;
    let fields: Vec<&str> = line.split(' ').collect();
    let source = match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => None,
        ["PROXY", family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let v4 = *family == "TCP4";
            let ip = |text: &str| -> Result<IpAddr, ProxyHeaderError> {
                match (v4, text.parse::<IpAddr>()) {
                    (true, Ok(ip @ IpAddr::V4(_))) | (false, Ok(ip @ IpAddr::V6(_))) => Ok(ip),
                    _ => Err(malformed("a v1 address that is not of its family")),
                }
            };
            let port = |text: &str| -> Result<u16, ProxyHeaderError> {
                // No sign, no leading zeros (the spec's form), 0..=65535.
                let plain = !text.is_empty()
                    && text.bytes().all(|b| b.is_ascii_digit())
                    && (text == "0" || !text.starts_with('0'));
                match plain {
                    true => text.parse().map_err(|_| malformed("a v1 port above 65535")),
                    false => Err(malformed("a v1 port that is not a number")),
                }
            };
            ip(dst)?;
            port(dport)?;
            Some(SocketAddr::new(ip(src)?, port(sport)?))
        }
        _ => return Err(malformed("a v1 line that is not PROXY TCP4|TCP6|UNKNOWN")),
    };
    Ok(Parsed::Header(ProxyHeader { len, source }))
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let malformed = ProxyHeaderError::Malformed;
    let [version_command, family, hi, lo] = match buf.get(12..16) {
        Some(&[a, b, c, d]) => [a, b, c, d],
        _ => return Ok(Parsed::Incomplete),
    };
    if version_command >> 4 != 2 {
        return Err(malformed("a v2 header of another version"));
    }
    let local = match version_command & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(malformed("a v2 command that is neither LOCAL nor PROXY")),
    };
    let body = usize::from(u16::from_be_bytes([hi, lo]));
    let len = 16 + body;
    let Some(addresses) = buf.get(16..len) else {
        return Ok(Parsed::Incomplete);
    };
    let source = match (local, family) {
        (true, _) => None,
        // TCP over IPv4: source, destination, source port, destination port.
        (false, 0x11) => {
            let a = addresses
                .get(..12)
                .ok_or(malformed("a v2 IPv4 header too short for its addresses"))?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Some(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be_bytes([a[8], a[9]]),
            ))
        }
        // TCP over IPv6.
        (false, 0x21) => {
            let a = addresses
                .get(..36)
                .ok_or(malformed("a v2 IPv6 header too short for its addresses"))?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&a[..16]);
            let ip = Ipv6Addr::from(octets);
            Some(SocketAddr::new(
                IpAddr::V6(ip),
                u16::from_be_bytes([a[32], a[33]]),
            ))
        }
        // UNSPEC, UNIX sockets, datagrams: no client address to take.
        (false, 0x00 | 0x31 | 0x32 | 0x12 | 0x22) => None,
        (false, _) => return Err(malformed("a v2 address family it does not define")),
    };
    Ok(Parsed::Header(ProxyHeader { len, source }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(buf: &[u8]) -> ProxyHeader {
        match parse(buf) {
            Ok(Parsed::Header(h)) => h,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family);
        out.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
        out.extend_from_slice(addresses);
        out
    }

    #[test]
    fn v1_headers_name_the_client_and_their_length() {
        let line = b"PROXY TCP4 203.0.113.9 192.0.2.1 56324 443\r\nGET / HTTP/1.1\r\n";
        let h = header(line);
        assert_eq!(h.len, 44);
        assert_eq!(h.source, Some("203.0.113.9:56324".parse().expect("addr")));
        let h = header(b"PROXY TCP6 2001:db8::1 2001:db8::2 65535 443\r\n");
        assert_eq!(h.source, Some("[2001:db8::1]:65535".parse().expect("addr")));
        let h = header(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nrest");
        assert_eq!((h.len, h.source), (35, None));
        assert_eq!(header(b"PROXY UNKNOWN\r\n").source, None);
    }

    #[test]
    fn v2_headers_name_the_client_and_skip_their_tlvs() {
        let mut ipv4 = vec![203, 0, 113, 9, 192, 0, 2, 1, 0xdc, 0x04, 0x01, 0xbb];
        ipv4.extend_from_slice(&[0x04, 0x00, 0x01, 0x2a]); // a TLV: skipped
        let mut buf = v2(1, 0x11, &ipv4);
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let h = header(&buf);
        assert_eq!(h.len, 16 + 16);
        assert_eq!(h.source, Some("203.0.113.9:56324".parse().expect("addr")));
        let mut ipv6 = vec![0u8; 36];
        ipv6[15] = 1;
        ipv6[32..34].copy_from_slice(&443u16.to_be_bytes());
        assert_eq!(
            header(&v2(1, 0x21, &ipv6)).source,
            Some("[::1]:443".parse().expect("addr"))
        );
        // The balancer's own health check, and a UNIX socket: no client address.
        assert_eq!(header(&v2(0, 0x00, &[])).source, None);
        assert_eq!(header(&v2(0, 0x11, &ipv4)).source, None);
        assert_eq!(header(&v2(1, 0x31, &[0u8; 216])).source, None);
    }

    #[test]
    fn prefixes_ask_for_more_and_everything_else_is_refused() {
        let full = b"PROXY TCP4 203.0.113.9 192.0.2.1 56324 443\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]), Ok(Parsed::Incomplete), "{cut}");
        }
        let two = v2(1, 0x11, &[1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]);
        for cut in 0..two.len() {
            assert_eq!(parse(&two[..cut]), Ok(Parsed::Incomplete), "{cut}");
        }
        let missing: &[&[u8]] = &[b"GET / HTTP/1.1\r\n", b"proxy TCP4", b"\r\nX", b"PROXYTCP4"];
        for buf in missing {
            assert_eq!(parse(buf), Err(ProxyHeaderError::Missing), "{buf:?}");
        }
        let malformed: &[&[u8]] = &[
            b"PROXY TCP4 203.0.113.9 192.0.2.1 56324\r\n",
            b"PROXY TCP4 2001:db8::1 192.0.2.1 1 2\r\n",
            b"PROXY TCP6 203.0.113.9 192.0.2.1 1 2\r\n",
            b"PROXY TCP4 203.0.113.9 192.0.2.1 65536 443\r\n",
            b"PROXY TCP4 203.0.113.9 192.0.2.1 0443 443\r\n",
            b"PROXY TCP4 203.0.113.9 192.0.2.1 -1 443\r\n",
            b"PROXY TCP4  203.0.113.9 192.0.2.1 1 443\r\n",
            b"PROXY UDP4 203.0.113.9 192.0.2.1 1 443\r\n",
            b"PROXY TCP4 203.0.113.9 192.0.2.1 1 443\n",
            b"PROXY TCP4 \xff\xfe 192.0.2.1 1 443\r\n",
        ];
        for buf in malformed {
            assert!(
                matches!(parse(buf), Err(ProxyHeaderError::Malformed(_))),
                "{:?}: {:?}",
                String::from_utf8_lossy(buf),
                parse(buf)
            );
        }
        let long = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 200]].concat();
        assert!(matches!(parse(&long), Err(ProxyHeaderError::Malformed(_))));
        for bad in [
            v2(2, 0x11, &[0; 12]), // a third command
            v2(1, 0x11, &[0; 8]),  // IPv4 without its ports
            v2(1, 0x21, &[0; 20]), // IPv6 too short
            v2(1, 0x41, &[0; 12]), // no such family
        ] {
            assert!(
                matches!(parse(&bad), Err(ProxyHeaderError::Malformed(_))),
                "{bad:?}"
            );
        }
        let mut v3 = v2(1, 0x11, &[0; 12]);
        v3[12] = 0x31;
        assert!(matches!(parse(&v3), Err(ProxyHeaderError::Malformed(_))));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4_000, ..ProptestConfig::default() })]

        /// No bytes make it panic; a header it accepts fits in the bytes it was given.
        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300),
                        signature in any::<bool>(), text in any::<bool>()) {
            let mut buf = Vec::new();
            if signature {
                buf.extend_from_slice(&V2_SIGNATURE);
            } else if text {
                buf.extend_from_slice(b"PROXY ");
            }
            buf.extend_from_slice(&bytes);
            if let Ok(Parsed::Header(h)) = parse(&buf) {
                prop_assert!(h.len <= buf.len());
            }
        }
    }
}
