//! The shipped observability, proven against a real Prometheus (Debian's `prometheus` package,
//! which brings `promtool`): the alert rules pass `promtool check rules` and their unit tests
//! (`deploy/usher-alerts.test.yml`, a firing and a quiet case for every alert); the dashboards
//! (a fleet's, and one node's generated from it by `scripts/node-dashboard.py`) are valid
//! Grafana JSON with a data-source variable; and with Prometheus scraping a real usher through
//! a small spike, every panel's query returns data.

mod common;

use common::{crowd, free_addr, wait_until, Usher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

/// A Debian tool: on PATH, or in /usr/bin.
fn tool(name: &str) -> PathBuf {
    let installed = Path::new("/usr/bin").join(name);
    assert!(
        installed.is_file() || Command::new(name).arg("--version").output().is_ok(),
        "{name} is missing: apt-get install -y prometheus (`make setup-test` and .ci/run do)"
    );
    match installed.is_file() {
        true => installed,
        false => PathBuf::from(name),
    }
}

#[test]
fn the_alert_rules_pass_promtool_and_each_alert_is_unit_tested() {
    let promtool = tool("promtool");
    for args in [
        ["check", "rules", "usher-alerts.yml"],
        ["test", "rules", "usher-alerts.test.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(deploy(""))
            .output()
            .expect("promtool");
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every alert has a test in which it fires (a non-empty exp_alerts under its name).
    let rules = std::fs::read_to_string(deploy("usher-alerts.yml")).expect("rules");
    let tests = std::fs::read_to_string(deploy("usher-alerts.test.yml")).expect("tests");
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 5, "{alerts:?}");
    for alert in alerts {
        let fires = tests
            .split("alertname: ")
            .skip(1)
            .any(|case| case.starts_with(alert) && case.contains("exp_labels"));
        assert!(fires, "no test in which {alert} fires");
    }
}

/// The shipped dashboards.
fn dashboards() -> Vec<(PathBuf, serde_json::Value)> {
    let dir = deploy("grafana/dashboards");
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .expect("dashboards")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read");
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()));
            (p, json)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!found.is_empty());
    found
}

/// Every `expr` of a dashboard's panels, with its panel's title.
fn panel_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let panels = dashboard["panels"].as_array().cloned().unwrap_or_default();
    panels
        .iter()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap_or("?").to_string();
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            targets
                .into_iter()
                .filter_map(move |t| Some((title.clone(), t["expr"].as_str()?.to_string())))
        })
        .collect()
}

#[test]
fn the_single_node_dashboard_is_generated_from_the_fleet_one() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/node-dashboard.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg("--check")
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = dashboards()
        .iter()
        .filter_map(|(_, d)| d["uid"].as_str().map(str::to_string))
        .collect();
    assert_eq!(names, ["usher-fleet", "usher-node"]);
}

#[test]
fn the_dashboards_are_grafana_json_with_a_data_source_variable() {
    for (path, d) in dashboards() {
        let name = path.display();
        assert!(
            d["schemaVersion"].as_u64().unwrap_or(0) >= 36,
            "{name}: schemaVersion"
        );
        assert!(
            d["uid"].as_str().is_some_and(|u| !u.is_empty()),
            "{name}: uid"
        );
        assert!(d["title"].as_str().is_some(), "{name}: title");
        let variables = d["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            variables
                .iter()
                .any(|v| v["type"] == "datasource" && v["name"] == "datasource"),
            "{name}: a `datasource` variable"
        );
        let panels = d["panels"].as_array().cloned().unwrap_or_default();
        let mut ids = std::collections::HashSet::new();
        for panel in &panels {
            let title = panel["title"].as_str().unwrap_or("?");
            assert!(
                ids.insert(panel["id"].as_u64()),
                "{name}: {title}: a unique id"
            );
            assert!(
                panel["gridPos"]["w"].as_u64().is_some(),
                "{name}: {title}: gridPos"
            );
            if panel["type"] == "row" {
                continue;
            }
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{name}: {title}: uses the data-source variable"
            );
            assert!(
                !panel_queries(&serde_json::json!({ "panels": [panel] })).is_empty(),
                "{name}: {title}: has a query"
            );
        }
    }
}

/// Prometheus from apt, scraping `target` every second, its data in `dir`.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
}

impl Prometheus {
    fn start(dir: &Path, target: SocketAddr) -> Prometheus {
        let addr = free_addr();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: usher\n    static_configs:\n      - targets: [\"{target}\"]\n",
                deploy("usher-alerts.yml").display()
            ),
        )
        .expect("prometheus.yml");
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus");
        let mut prometheus = Prometheus { child, addr };
        wait_until("prometheus ready", WAIT, || {
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
                panic!("prometheus exited with {status}:\n{log}");
            }
            prometheus
                .get("/-/ready")
                .is_some_and(|(status, _)| status == 200)
        });
        prometheus
    }

    /// `GET path` (HTTP/1.0, so the body is never chunked): status and body.
    fn get(&self, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.addr).ok()?;
        stream.set_read_timeout(Some(WAIT)).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: prometheus\r\n\r\n").ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
    }

    /// The result of an instant query (panics unless Prometheus calls it a success).
    fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let path = format!("/api/v1/query?query={}", percent_encode(expr));
        let (status, body) = self.get(&path).expect("prometheus answers");
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(status, 200, "{expr}: {body}");
        assert_eq!(json["status"], "success", "{expr}: {body}");
        json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn a_real_prometheus_scrapes_usher_and_every_dashboard_panel_has_data() {
    let (origin, _shop) = crowd::Origin::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start(
        dir.path(),
        origin,
        "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 5\nadmit_per_minute = 1200\n\
         refresh_interval = \"500ms\"\n[store]\ndata_dir = \"data\"\ntick = \"100ms\"\n",
    );
    let prometheus = Prometheus::start(dir.path(), usher.metrics);
    // Ready is not scraping: Prometheus syncs its targets a few seconds after start, and the
    // spike's line can be gone by then (CI once waited in vain for it).
    wait_until("prometheus scrapes usher", WAIT, || {
        !prometheus.query("up{job=\"usher\"} == 1").is_empty()
    });

    // A small spike: 60 visitors at once into 5 slots, each polling, shopping and checking out.
    let addr = usher.addr;
    let spike = std::thread::spawn(move || crowd::run(&[addr], 60, Duration::from_secs(90)));
    wait_until("prometheus sees the queue", WAIT, || {
        !prometheus
            .query("usher_queue_waiting{zone=\"checkout\"} > 0")
            .is_empty()
    });
    let (visits, _) = spike.join().expect("spike");
    assert_eq!(visits.len(), 60);
    // A forged token, refused and counted.
    usher.client().get(
        "/checkout",
        &[("Cookie", "usher_checkout=eyJhbGciOiJub25lIn0.e30.")],
    );
    wait_until("prometheus sees the refusal", WAIT, || {
        !prometheus
            .query("rate(usher_token_rejections_total[30s]) > 0")
            .is_empty()
    });

    // Panels that are empty unless something is wrong, which this run is not.
    let empty_when_healthy = ["Store errors by op", "usher's own 502/504 answers"];
    for (path, dashboard) in dashboards() {
        for (title, expr) in panel_queries(&dashboard) {
            let expr = expr
                .replace("$__rate_interval", "30s")
                .replace("$zone", ".*")
                .replace("$instance", ".*");
            let result = prometheus.query(&expr);
            if empty_when_healthy.contains(&title.as_str()) {
                continue;
            }
            assert!(
                !result.is_empty(),
                "{}: panel {title:?} has no data: {expr}",
                path.display()
            );
        }
    }
    // The rules load in a real Prometheus too.
    let (_, rules) = prometheus.get("/api/v1/rules").expect("rules");
    assert!(rules.contains("UsherShopAtCapacity"), "{rules}");
}
