//! Reading the event log's lines back (`docs/events-log.md`): each line is checked, not
//! trusted. A line that is not a JSON object of this schema, or of a newer version, is counted
//! and left out, never guessed at; a file torn by a crash ends in such a line.

use crate::event_log::SCHEMA_VERSION;
use serde::Deserialize;

/// The longest line read; an event is a few hundred bytes, so anything longer is not one.
pub const MAX_LINE: usize = 64 * 1024;

/// One event as the report needs it: when, which zone, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    /// When it was logged, ms since the epoch.
    pub at_ms: u64,
    /// The zone.
    pub zone: String,
    /// What happened.
    pub what: What,
}

/// The events a report reads (the others, such as `draw` and `overrides`, are [`What::Other`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum What {
    /// A newcomer took a place and was told `eta_s`.
    Joined {
        /// The visitor.
        visitor: String,
        /// The wait they were told, seconds.
        eta_s: u64,
    },
    /// A visitor went in after `waited_ms`, `via` `direct`, `queue` or `priority`.
    Admitted {
        /// The visitor.
        visitor: String,
        /// From arrival to admission, ms.
        waited_ms: u64,
        /// How.
        via: String,
    },
    /// The line passed a place whose holder was away.
    Abandoned {
        /// The visitor.
        visitor: String,
    },
    /// A passed visitor came back and was let in first.
    Returned {
        /// The visitor.
        visitor: String,
    },
    /// The origin ended a session.
    Released {
        /// The visitor.
        visitor: String,
    },
    /// Slots that came free without anyone ending them.
    Expired {
        /// How many.
        slots: u64,
    },
    /// The line and the slots as a node saw them.
    Queue {
        /// Visitors queued.
        waiting: u64,
        /// Occupied slots.
        active: u64,
    },
    /// An event the report does not draw.
    #[serde(other)]
    Other,
}

/// Why a line was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not a JSON object with `v`, `at_ms`, `zone` and a known event's fields.
    Unreadable,
    /// Written by a newer usher (`v` above [`SCHEMA_VERSION`]).
    Newer,
}

#[derive(Deserialize)]
struct Line {
    v: u32,
    at_ms: u64,
    zone: String,
    #[serde(flatten)]
    what: What,
}

/// Reads one line (without its newline). Blank lines are `Ok(None)`.
pub fn parse(line: &str) -> Result<Option<Logged>, Skip> {
    let line = line.trim_end_matches('\r');
    if line.trim().is_empty() {
        return Ok(None);
    }
    if line.len() > MAX_LINE {
        return Err(Skip::Unreadable);
    }
    let parsed: Line = match serde_json::from_str(line) {
        Ok(parsed) => parsed,
        // A newer line need not fit this schema at all: only then is its version read alone.
        Err(_) => {
            #[derive(Deserialize)]
            struct Version {
                v: u32,
            }
            return Err(match serde_json::from_str::<Version>(line) {
                Ok(version) if version.v > SCHEMA_VERSION => Skip::Newer,
                _ => Skip::Unreadable,
            });
        }
    };
    match parsed.v {
        0 => return Err(Skip::Unreadable),
        v if v > SCHEMA_VERSION => return Err(Skip::Newer),
        _ => {}
    }
    Ok(Some(Logged {
        at_ms: parsed.at_ms,
        zone: parsed.zone,
        what: parsed.what,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_log::{render, Event};
    use proptest::prelude::*;

    #[test]
    fn every_event_the_log_writes_reads_back() {
        let visitor = "0123456789abcdef0123456789abcdef".to_string();
        let zone = "checkout".to_string();
        let cases = [
            (
                Event::Joined {
                    zone: zone.clone(),
                    visitor: visitor.clone(),
                    rank_ms: 5,
                    eta_s: 90,
                },
                What::Joined {
                    visitor: visitor.clone(),
                    eta_s: 90,
                },
            ),
            (
                Event::Admitted {
                    zone: zone.clone(),
                    visitor: visitor.clone(),
                    rank_ms: 5,
                    waited_ms: 1_234,
                    via: "queue",
                },
                What::Admitted {
                    visitor: visitor.clone(),
                    waited_ms: 1_234,
                    via: "queue".into(),
                },
            ),
            (
                Event::Abandoned {
                    zone: zone.clone(),
                    visitor: visitor.clone(),
                    rank_ms: 5,
                },
                What::Abandoned {
                    visitor: visitor.clone(),
                },
            ),
            (
                Event::Returned {
                    zone: zone.clone(),
                    visitor: visitor.clone(),
                    rank_ms: 5,
                },
                What::Returned {
                    visitor: visitor.clone(),
                },
            ),
            (
                Event::Released {
                    zone: zone.clone(),
                    visitor: visitor.clone(),
                },
                What::Released {
                    visitor: visitor.clone(),
                },
            ),
            (
                Event::Expired {
                    zone: zone.clone(),
                    slots: 3,
                },
                What::Expired { slots: 3 },
            ),
            (
                Event::Queue {
                    zone: zone.clone(),
                    waiting: 7,
                    active: 2,
                },
                What::Queue {
                    waiting: 7,
                    active: 2,
                },
            ),
            (
                Event::Draw {
                    zone: zone.clone(),
                    event: "sale".into(),
                    seed: "00000000000000ff".into(),
                },
                What::Other,
            ),
        ];
        for (event, what) in cases {
            let line = render(&event, 42);
            let read = parse(&line).expect("readable").expect("an event");
            assert_eq!(
                read,
                Logged {
                    at_ms: 42,
                    zone: zone.clone(),
                    what
                },
                "{line}"
            );
        }
    }

    #[test]
    fn malformed_and_foreign_lines_are_left_out_and_said_why() {
        let long = format!(
            "{{\"v\":1,\"at_ms\":1,\"type\":\"joined\",\"zone\":\"{}\",\"visitor\":\"a\",\"eta_s\":1}}",
            "z".repeat(MAX_LINE)
        );
        let cases: &[(&str, Result<bool, Skip>)] = &[
            ("", Ok(false)),
            ("   ", Ok(false)),
            ("\r", Ok(false)),
            ("{\"v\":1,\"at_ms\":1,\"type\":\"expired\",\"zone\":\"z\",\"slots\":1}\r", Ok(true)),
            ("{\"v\":1,\"at_ms\":1,\"type\":\"surprise\",\"zone\":\"z\"}", Ok(true)),
            ("not json", Err(Skip::Unreadable)),
            ("[1,2,3]", Err(Skip::Unreadable)),
            ("null", Err(Skip::Unreadable)),
            // Torn by a crash mid-write.
            ("{\"v\":1,\"at_ms\":1,\"type\":\"join", Err(Skip::Unreadable)),
            ("{\"at_ms\":1,\"type\":\"expired\",\"zone\":\"z\",\"slots\":1}", Err(Skip::Unreadable)),
            ("{\"v\":0,\"at_ms\":1,\"type\":\"expired\",\"zone\":\"z\",\"slots\":1}", Err(Skip::Unreadable)),
            ("{\"v\":2,\"at_ms\":1,\"type\":\"expired\",\"zone\":\"z\",\"slots\":1}", Err(Skip::Newer)),
            ("{\"v\":99,\"whatever\":true}", Err(Skip::Newer)),
            ("{\"v\":-1,\"at_ms\":1,\"type\":\"expired\",\"zone\":\"z\",\"slots\":1}", Err(Skip::Unreadable)),
            ("{\"v\":1,\"at_ms\":-5,\"type\":\"expired\",\"zone\":\"z\",\"slots\":1}", Err(Skip::Unreadable)),
            ("{\"v\":1,\"at_ms\":1.5,\"type\":\"expired\",\"zone\":\"z\",\"slots\":1}", Err(Skip::Unreadable)),
            ("{\"v\":1,\"at_ms\":1,\"type\":\"expired\",\"zone\":\"z\",\"slots\":\"1\"}", Err(Skip::Unreadable)),
            ("{\"v\":1,\"at_ms\":1,\"type\":\"expired\",\"zone\":7,\"slots\":1}", Err(Skip::Unreadable)),
            ("{\"v\":1,\"at_ms\":1,\"type\":\"expired\",\"slots\":1}", Err(Skip::Unreadable)),
            ("{\"v\":1,\"at_ms\":1,\"type\":\"admitted\",\"zone\":\"z\",\"visitor\":\"a\",\"via\":\"queue\"}", Err(Skip::Unreadable)),
            ("{\"v\":1,\"at_ms\":1,\"zone\":\"z\",\"slots\":1}", Err(Skip::Unreadable)),
            ("{\"v\":1,\"at_ms\":18446744073709551616,\"type\":\"expired\",\"zone\":\"z\",\"slots\":1}", Err(Skip::Unreadable)),
            (&long, Err(Skip::Unreadable)),
        ];
        for (line, want) in cases {
            let got = parse(line).map(|e| e.is_some());
            assert_eq!(&got, want, "{line:.80}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(line in ".{0,300}") {
            let _ = parse(&line);
        }

        #[test]
        fn never_panics_on_near_events(
            v in 0u32..4,
            at in any::<u64>(),
            kind in prop::sample::select(vec!["joined", "admitted", "abandoned", "returned", "released", "expired", "queue", "draw", ""]),
            tail in "[a-z_\":,0-9{}]{0,60}",
        ) {
            let line = format!("{{\"v\":{v},\"at_ms\":{at},\"type\":\"{kind}\",\"zone\":\"z\",{tail}");
            let _ = parse(&line);
        }
    }
}
