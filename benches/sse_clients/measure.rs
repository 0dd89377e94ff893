//! What the run reads from `/proc` (a process's resident memory, CPU time and open files) and
//! the arithmetic on the samples: percentiles, and the grouping of event arrivals into the waves
//! that each exchanger tick sets off.

use std::time::Instant;

/// Resident memory of `pid` in KiB: (`VmRSS`, `RssAnon`). `RssAnon` leaves out the mapped
/// binary and libraries, so it is the memory usher allocated.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("RssAnon:"))
}

/// Open file descriptors of `pid`.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// CPU time (user + system) a process used so far, in seconds; `pid` 0 is this process.
pub fn cpu_seconds(pid: u32, clk_tck: u64) -> f64 {
    let path = match pid {
        0 => "/proc/self/stat".to_string(),
        pid => format!("/proc/{pid}/stat"),
    };
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    // utime and stime are fields 14 and 15, so 12 and 13 after the state field (3).
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    ticks as f64 / clk_tck as f64
}

/// The machine's 1, 5 and 15 minute load averages: the box is shared, so say how busy it was.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPU use of a process between two points, as a percentage of one core.
pub struct CpuMeter {
    pid: u32,
    clk_tck: u64,
    started: Instant,
    cpu: f64,
}

impl CpuMeter {
    pub fn start(pid: u32, clk_tck: u64) -> Self {
        CpuMeter {
            pid,
            clk_tck,
            started: Instant::now(),
            cpu: cpu_seconds(pid, clk_tck),
        }
    }

    /// (CPU seconds used, percent of one core) since `start`.
    pub fn read(&self) -> (f64, f64) {
        let used = cpu_seconds(self.pid, self.clk_tck) - self.cpu;
        let wall = self.started.elapsed().as_secs_f64();
        (used, 100.0 * used / wall.max(1e-9))
    }
}

/// The `p`-th percentile (0-100) of sorted values, nearest rank.
pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One burst of events: what a tick's commit woke.
pub struct Wave {
    /// From its first event to its last, ms.
    pub spread_ms: u32,
    pub events: usize,
}

/// Groups sorted arrival times (ms) into waves: a gap longer than `gap_ms` starts a new one.
pub fn waves(sorted: &[u32], gap_ms: u32) -> Vec<Wave> {
    let mut waves = Vec::new();
    let Some(&first) = sorted.first() else {
        return waves;
    };
    let (mut start, mut last, mut events) = (first, first, 0);
    for &at in sorted {
        if at - last > gap_ms {
            waves.push(Wave {
                spread_ms: last - start,
                events,
            });
            (start, events) = (at, 0);
        }
        last = at;
        events += 1;
    }
    waves.push(Wave {
        spread_ms: last - start,
        events,
    });
    waves
}
