//! An on-sale spike through real HTTP: 2,000 concurrent visitors against the real binary in front
//! of an in-process origin (see `common::crowd` for what each visitor does and what is asserted:
//! everyone gets in exactly once, zero FIFO inversions, never more sessions at the origin than the
//! capacity, admissions in any window within the rate plus the burst).

mod common;

use common::crowd::{self, Limits, Origin};
use common::Usher;
use std::time::Duration;

const VISITORS: usize = 2_000;
const LIMITS: Limits = Limits {
    capacity: 40,
    admit_per_minute: 6_000, // 100 per second
    burst: 50,
    slack: 0,
    fifo_tolerance_ms: 0,
    resent: 0,
};

#[test]
fn two_thousand_visitors_get_in_fairly_within_capacity_and_rate() {
    let (origin_addr, origin) = Origin::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start(
        dir.path(),
        origin_addr,
        &format!(
            "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = {}\n\
             admit_per_minute = {}\nburst = {}\nrefresh_interval = \"500ms\"\n\
             [store]\ndata_dir = \"data\"\ntick = \"100ms\"\n",
            LIMITS.capacity, LIMITS.admit_per_minute, LIMITS.burst
        ),
    );
    let (visits, elapsed) = crowd::run(&[usher.addr], VISITORS, Duration::from_secs(150));
    let max_active = crowd::check(&origin, visits, VISITORS, &LIMITS);
    let admitted = usher.metric("usher_admitted_total{via=\"queue\",zone=\"checkout\"}")
        + usher.metric("usher_admitted_total{via=\"direct\",zone=\"checkout\"}")
        + usher.metric("usher_admitted_total{via=\"returned\",zone=\"checkout\"}");
    assert_eq!(admitted as usize, VISITORS, "admissions counted by usher");
    eprintln!(
        "spike: {VISITORS} visitors in {:.1} s, max {max_active} at the origin (capacity {})",
        elapsed.as_secs_f64(),
        LIMITS.capacity
    );
}
