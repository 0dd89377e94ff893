//! The zone table: which zone (if any) a request for (host, path) belongs to. The longest
//! matching path prefix wins; for equal prefixes a zone naming the host beats one for every host.

use crate::config::{Config, Event, Mode, ZoneConfig};
use crate::onsale::{self, Phase};
use std::sync::Arc;

/// A zone as the request path sees it: its config and precomputed cookie name.
#[derive(Debug, Clone)]
pub struct Zone {
    /// Position in the table; stable for the process lifetime.
    pub index: usize,
    /// The zone's configuration (during a sale: the sale's, with the event's overrides).
    pub config: ZoneConfig,
    /// Name of the cookie that carries this zone's token.
    pub cookie: String,
    /// The zone's scheduled events (shared by the zone and its sales).
    pub schedule: Arc<[Event]>,
    /// The zone as it runs during each event's pre-queue (paused: the queue forms, nobody is
    /// admitted) and sale (the event's overrides), in schedule order.
    phases: Vec<(Zone, Zone)>,
}

impl Zone {
    fn new(index: usize, config: ZoneConfig, cookie: String) -> Self {
        let schedule: Arc<[Event]> = config.events.clone().into();
        let copy = |config: ZoneConfig| Zone {
            index,
            config,
            cookie: cookie.clone(),
            schedule: schedule.clone(),
            phases: Vec::new(),
        };
        let phases = schedule
            .iter()
            .map(|event| {
                let prequeue = ZoneConfig {
                    title: event.title.clone(),
                    mode: Mode::Paused,
                    template: event.sale.template.clone(),
                    events: Vec::new(),
                    ..config.clone()
                };
                (copy(prequeue), copy((*event.sale).clone()))
            })
            .collect();
        Zone {
            index,
            config,
            cookie,
            schedule,
            phases,
        }
    }

    /// The zone's phase at `now_ms`, and the zone as it runs then: paused during a pre-queue,
    /// with the event's overrides during a sale, else as configured.
    pub fn at(&self, now_ms: u64) -> (&Zone, Phase<'_>) {
        let phase = onsale::phase(&self.schedule, now_ms);
        let of = |event: &Event| {
            self.schedule
                .iter()
                .position(|e| std::ptr::eq(e, event))
                .and_then(|i| self.phases.get(i))
        };
        let zone = match phase {
            Phase::Prequeue(event) => of(event).map(|(prequeue, _)| prequeue),
            Phase::Sale(event) => of(event).map(|(_, sale)| sale),
            Phase::Base | Phase::Ended(_) => None,
        };
        (zone.unwrap_or(self), phase)
    }
}

/// All zones of a configuration.
#[derive(Debug, Clone)]
pub struct ZoneTable {
    zones: Vec<Zone>,
}

/// The host part of a `Host` header, lower-cased, without port (borrowed when already so).
pub fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let host = host.trim();
    let without_port = if host.starts_with('[') {
        host.split(']')
            .next()
            .map_or(host, |h| h)
            .trim_start_matches('[')
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    if without_port.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(without_port.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(without_port)
    }
}

impl ZoneTable {
    /// Builds the table from a validated config.
    pub fn new(config: &Config) -> Self {
        let zones = config
            .zones
            .iter()
            .enumerate()
            .map(|(index, z)| {
                let cookie = crate::token::cookie::name(&config.tokens.cookie_prefix, &z.name);
                Zone::new(index, z.clone(), cookie)
            })
            .collect();
        ZoneTable { zones }
    }

    /// The zone for a request to `host` (already normalized) and `path`.
    pub fn find(&self, host: &str, path: &str) -> Option<&Zone> {
        let mut best: Option<(&Zone, usize, bool)> = None;
        for zone in &self.zones {
            let host_specific = !zone.config.hosts.is_empty();
            if host_specific && !zone.config.hosts.iter().any(|h| h == host) {
                continue;
            }
            for prefix in &zone.config.paths {
                if !path.starts_with(prefix.as_str()) {
                    continue;
                }
                let better = match best {
                    None => true,
                    Some((_, len, specific)) => {
                        prefix.len() > len || (prefix.len() == len && host_specific && !specific)
                    }
                };
                if better {
                    best = Some((zone, prefix.len(), host_specific));
                }
            }
        }
        best.map(|(zone, _, _)| zone)
    }

    /// The zone called `name`.
    pub fn by_name(&self, name: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.config.name == name)
    }

    /// Zones that serve `host` (host-specific ones and those for every host).
    pub fn for_host<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a Zone> + 'a {
        self.zones
            .iter()
            .filter(move |z| z.config.hosts.is_empty() || z.config.hosts.iter().any(|h| h == host))
    }

    /// The zone at `index` (its [`Zone::index`]).
    pub fn get(&self, index: usize) -> Option<&Zone> {
        self.zones.get(index)
    }

    /// Every zone.
    pub fn iter(&self) -> impl Iterator<Item = &Zone> {
        self.zones.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ZoneTable {
        let text = r#"
            [upstreams.shop]
            addrs = ["127.0.0.1:9000"]
            [tokens]
            signing_key = { kid = "k", env = "UNUSED" }
            [zones.checkout]
            paths = ["/checkout"]
            capacity = 1
            admit_per_minute = 1
            [zones.express]
            paths = ["/checkout/express"]
            capacity = 1
            admit_per_minute = 1
            [zones.vip]
            hosts = ["VIP.example.com"]
            paths = ["/checkout"]
            capacity = 1
            admit_per_minute = 1
        "#;
        let config = crate::config::parse(text, std::path::Path::new(".")).expect("valid");
        ZoneTable::new(&config)
    }

    #[test]
    fn longest_prefix_then_specific_host_wins() {
        let t = table();
        let name = |host: &str, path: &str| t.find(host, path).map(|z| z.config.name.clone());
        assert_eq!(
            name("shop.example.com", "/checkout/cart").as_deref(),
            Some("checkout")
        );
        assert_eq!(
            name("shop.example.com", "/checkout/express/1").as_deref(),
            Some("express")
        );
        assert_eq!(name("vip.example.com", "/checkout").as_deref(), Some("vip"));
        assert_eq!(
            name("vip.example.com", "/checkout/express").as_deref(),
            Some("express")
        );
        assert_eq!(name("shop.example.com", "/"), None);
        assert_eq!(
            t.by_name("vip").map(|z| z.cookie.as_str()),
            Some("usher_vip")
        );
    }

    #[test]
    fn host_normalization_drops_port_and_case() {
        assert_eq!(normalize_host("Shop.Example.com:8080"), "shop.example.com");
        assert_eq!(normalize_host("[::1]:8080"), "::1");
        assert_eq!(normalize_host("localhost"), "localhost");
    }
}
