//! The zone table: which zone (if any) a request belongs to, decided on its canonical host and
//! path ([`crate::request`]). Prefixes match on segment boundaries; the longest matching prefix
//! wins; for equal prefixes a zone naming the host beats one for every host. A request whose
//! host no zone names (or that names none) is taken to be for `[server] default_host`, or, without
//! one, is matched against every zone, host-scoped ones included: it fails closed.
//!
//! The table in force is swapped whole ([`LiveZones`]) when a reload or an operator's override
//! changes a zone; a request keeps the table it started with.

use crate::config::{Config, Event, Mode, ZoneConfig};
use crate::onsale::{self, Phase};
use crate::request::path;
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
    zones: Vec<Arc<Zone>>,
    /// Every host some zone names.
    named_hosts: Vec<String>,
    /// `[server] default_host`.
    default_host: Option<String>,
}

/// Which zones a request's host selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hosts<'a> {
    /// A host some zone names: zones for it and zones for every host.
    Named(&'a str),
    /// No host, or one no zone names, and no `default_host`: every zone, host-scoped ones too,
    /// so the request fails closed (a single-site origin serves any host as the shop).
    Any,
}

impl ZoneTable {
    /// Builds the table from a validated config.
    pub fn new(config: &Config) -> Self {
        ZoneTable::of(
            &config.zones,
            &config.tokens.cookie_prefix,
            config.server.default_host.clone(),
        )
    }

    /// A table of `zones` (validated, perhaps with live overrides applied), with cookies named
    /// after `cookie_prefix`.
    pub fn of(zones: &[ZoneConfig], cookie_prefix: &str, default_host: Option<String>) -> Self {
        let zones: Vec<Arc<Zone>> = zones
            .iter()
            .enumerate()
            .map(|(index, z)| {
                let cookie = crate::token::cookie::name(cookie_prefix, &z.name);
                Arc::new(Zone::new(index, z.clone(), cookie))
            })
            .collect();
        let mut named_hosts: Vec<String> = zones
            .iter()
            .flat_map(|z| z.config.hosts.iter().cloned())
            .collect();
        named_hosts.sort();
        named_hosts.dedup();
        ZoneTable {
            zones,
            named_hosts,
            default_host,
        }
    }

    /// The rule for `host` (canonical, `None` when the request named none).
    fn hosts<'a>(&'a self, host: Option<&'a str>) -> Hosts<'a> {
        let named = |h: &&str| self.named_hosts.iter().any(|n| n == h);
        match host.filter(named).or(self.default_host.as_deref()) {
            Some(host) => Hosts::Named(host),
            None => Hosts::Any,
        }
    }

    fn serves(zone: &Zone, hosts: Hosts<'_>) -> bool {
        match hosts {
            Hosts::Any => true,
            Hosts::Named(host) => {
                zone.config.hosts.is_empty() || zone.config.hosts.iter().any(|h| h == host)
            }
        }
    }

    /// The zone for a request to canonical `host` and canonical `path`
    /// ([`crate::request::View`]): the longest prefix wins; for equal prefixes a zone that
    /// names the host beats one for every host.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Arc<Zone>> {
        let hosts = self.hosts(host);
        // Folded once, and only if a zone compares so (borrowed when nothing changes).
        let folded = path::fold(path);
        let mut best: Option<(&Arc<Zone>, usize, bool)> = None;
        for zone in self.zones.iter().filter(|z| Self::serves(z, hosts)) {
            let host_specific = !zone.config.hosts.is_empty();
            let compared = if zone.config.case_sensitive {
                path
            } else {
                folded.as_ref()
            };
            for prefix in &zone.config.paths {
                if !path::has_prefix(compared, prefix) {
                    continue;
                }
                // On a tie, the zone that names the host wins; for a host no zone names, the
                // zone for every host (the request was never shown to be for the named one).
                let prefer_specific = matches!(hosts, Hosts::Named(_));
                let better = match best {
                    None => true,
                    Some((_, len, specific)) => {
                        prefix.len() > len
                            || (prefix.len() == len
                                && host_specific != specific
                                && host_specific == prefer_specific)
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
    pub fn by_name(&self, name: &str) -> Option<&Arc<Zone>> {
        self.zones.iter().find(|z| z.config.name == name)
    }

    /// Zones that serve canonical `host`, by the same rule as [`ZoneTable::find`].
    pub fn for_host<'a>(
        &'a self,
        host: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Arc<Zone>> + 'a {
        let hosts = self.hosts(host);
        self.zones.iter().filter(move |z| Self::serves(z, hosts))
    }

    /// The zone at `index` (its [`Zone::index`]).
    pub fn get(&self, index: usize) -> Option<&Arc<Zone>> {
        self.zones.get(index)
    }

    /// Every zone.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Zone>> {
        self.zones.iter()
    }

    /// Every zone's configuration as it runs (overrides applied), in table order.
    pub fn configs(&self) -> impl Iterator<Item = &ZoneConfig> {
        self.zones.iter().map(|z| &z.config)
    }
}

/// The zone table in force, swapped whole when a reload or a live override changes a zone.
/// Readers take the current table ([`LiveZones::current`]) and keep it for as long as they
/// work on a request or a tick.
#[derive(Debug)]
pub struct LiveZones(arc_swap::ArcSwap<ZoneTable>);

impl LiveZones {
    /// `table` in force.
    pub fn new(table: ZoneTable) -> Self {
        LiveZones(arc_swap::ArcSwap::from_pointee(table))
    }

    /// The table in force now.
    pub fn current(&self) -> Arc<ZoneTable> {
        self.0.load_full()
    }

    /// Puts `table` in force; requests already under way finish with the one they had.
    pub fn replace(&self, table: ZoneTable) {
        self.0.store(Arc::new(table));
    }
}

#[cfg(test)]
mod tests;
