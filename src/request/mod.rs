//! One canonical view of a request, which every gate decision is made on. Pure: it takes the raw
//! bytes of the request line and headers and never sees a Pingora type.
//!
//! The origin still receives the target exactly as the client sent it; the decision is made on
//! the canonical form, which reads the target the way the most lenient origin would
//! ([`path`]), so whatever the origin makes of the original has been gated. What cannot be read
//! is a [`Refusal`]: a 400 that never reaches the origin.
//!
//! Files: [`target`] (request-target forms), [`path`] (the canonical path and prefix matching),
//! [`host`] (the canonical host), [`client`] (the client address behind trusted proxies),
//! [`proxy_protocol`] (the PROXY protocol header an L4 balancer puts before the request),
//! [`redirect`] (where the plain-HTTP listener sends a request). It imports nothing from usher.

pub mod client;
pub mod host;
pub mod path;
pub mod proxy_protocol;
pub mod redirect;
pub mod target;

#[cfg(test)]
mod tests;

use std::borrow::Cow;

/// The parts of a request the gate decides on, in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View<'a> {
    /// The canonical host ([`host::canonical`]); `None` when the request names none (HTTP/1.0).
    pub host: Option<Cow<'a, str>>,
    /// The canonical path ([`path::canonical`]).
    pub path: Cow<'a, str>,
    /// The raw query, without `?`, when it is UTF-8.
    pub query: Option<&'a str>,
    /// The target was `*` (`OPTIONS *`).
    pub asterisk: bool,
}

/// Why a request is refused with a 400 before anything else looks at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request target's form.
    #[error("{0}")]
    Target(#[from] target::TargetError),
    /// The path cannot be read.
    #[error("path: {0}")]
    Path(#[from] path::PathError),
    /// The host cannot be read.
    #[error("host: {0}")]
    Host(#[from] host::HostError),
    /// An absolute-form target and a `Host` header that name different hosts.
    #[error("the Host header and the request target name different hosts")]
    HostConflict,
    /// More than one `Host` header.
    #[error("more than one Host header")]
    DuplicateHost,
    /// HTTP/1.1 without a host.
    #[error("HTTP/1.1 request without a Host header")]
    MissingHost,
}

impl Refusal {
    /// A short label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Target(_) => "target",
            Refusal::Path(_) => "path",
            Refusal::Host(_) | Refusal::HostConflict | Refusal::DuplicateHost => "host",
            Refusal::MissingHost => "no_host",
        }
    }
}

/// The request line and `Host` field lines of a request, as received.
#[derive(Debug, Clone, Copy)]
pub struct Raw<'a> {
    /// The method (`GET`).
    pub method: &'a str,
    /// Whether the request is HTTP/1.0 (or 0.9), where `Host` is optional.
    pub http10: bool,
    /// The request target as received.
    pub target: &'a [u8],
    /// Every `Host` field line.
    pub hosts: &'a [&'a [u8]],
    /// HTTP/2's `:authority` (HTTP/1 has none): it names the host as an absolute-form target
    /// does, so a `Host` field naming another host is a conflict.
    pub authority: Option<&'a [u8]>,
}

/// The canonical view of a request, or why it cannot be had.
pub fn view<'a>(raw: Raw<'a>) -> Result<View<'a>, Refusal> {
    let target = target::parse(raw.method, raw.target)?;
    let path = path::canonical(target.path)?;
    let header = match raw.hosts {
        [] => None,
        [one] if one.iter().all(|b| b.is_ascii_whitespace()) => None,
        [one] => Some(host::canonical(one)?),
        _ => return Err(Refusal::DuplicateHost),
    };
    let host = match (target.authority.or(raw.authority), header) {
        (Some(authority), header) => {
            let authority = host::canonical(authority)?;
            if header.is_some_and(|h| h != authority) {
                return Err(Refusal::HostConflict);
            }
            Some(authority)
        }
        (None, Some(header)) => Some(header),
        (None, None) if raw.http10 => None,
        (None, None) => return Err(Refusal::MissingHost),
    };
    Ok(View {
        host,
        path,
        query: target.query.and_then(|q| std::str::from_utf8(q).ok()),
        asterisk: target.asterisk,
    })
}
