//! The `usher` command line: run the proxy, check configs, make keys, inspect tokens, sign
//! identity links, verify and repair the embedded store's files, run the demo.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use usher::clock::{self, Clock};
use usher::config::{self, Config};
use usher::store::embedded as store;
use usher::token::{keys, Keyring, Tokens};

/// A self-hosted virtual waiting room in front of any shop.
#[derive(Parser)]
#[command(name = "usher", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy with a config file.
    Run {
        /// The TOML config (see conf/usher.example.toml).
        #[arg(short, long)]
        config: PathBuf,
        /// Take over from a running usher: wait on the upgrade socket for its listening
        /// sockets (it is sent SIGQUIT), then for its data directory. `usher upgrade` does it.
        #[arg(long)]
        upgrade: bool,
    },
    /// Replace the running usher without downtime: start a new process with `run --upgrade`,
    /// send the running one SIGQUIT, wait until the new one is ready.
    Upgrade {
        /// The config the new process runs with.
        #[arg(short, long)]
        config: PathBuf,
        /// The running process (default: the PID in the data directory's lock file).
        #[arg(long)]
        pid: Option<u32>,
    },
    /// Validate config files and their keys; list every problem with its path; exit 1 on any.
    Check {
        /// One or more config files.
        #[arg(short, long, num_args = 1.., required = true)]
        config: Vec<PathBuf>,
    },
    /// Write a new signing key (EdDSA: FILE and FILE.pub; HS256: a secret in FILE).
    Keygen {
        /// Where to write the key.
        #[arg(short, long)]
        out: PathBuf,
        /// Key type.
        #[arg(short, long, value_enum, default_value_t = KeyAlgorithm::Eddsa)]
        algorithm: KeyAlgorithm,
        /// Do nothing if FILE exists already (instead of refusing).
        #[arg(long)]
        if_missing: bool,
    },
    /// Tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Re-run a pre-queue lottery from its published seed: print the visitors in drawn order.
    ///
    /// The seed is logged at the draw ("pre-queue lottery drawn") and published in the status
    /// JSON as event.draw_seed. Visitor ids are the 32 hex digits the origin sees in the
    /// Usher-Visitor header.
    Draw {
        /// The config with the event.
        #[arg(short, long)]
        config: PathBuf,
        /// The zone.
        #[arg(short, long)]
        zone: String,
        /// The event's name.
        #[arg(short, long)]
        event: String,
        /// The seed (16 hex digits).
        #[arg(short, long)]
        seed: String,
        /// Visitor ids (32 hex digits each).
        #[arg(required = true)]
        visitors: Vec<String>,
    },
    /// Write a report of a sale from the event log ([events_log]): one self-contained HTML
    /// page with plots (the line and admissions over time, the time in line with percentiles,
    /// abandonment, the ETA shown against the real wait) and a CSV of the same beside it.
    Report {
        /// The config whose [events_log] to read (its rotated files too).
        #[arg(short, long, required_unless_present = "log")]
        config: Option<PathBuf>,
        /// Read these log files instead, in order (e.g. every node's of a fleet).
        #[arg(long, conflicts_with = "config")]
        log: Vec<PathBuf>,
        /// The zone.
        #[arg(short, long)]
        zone: String,
        /// From (RFC 3339, e.g. 2026-12-01T10:00:00Z); default: the first event.
        #[arg(long)]
        from: Option<String>,
        /// To (RFC 3339, exclusive); default: the last event.
        #[arg(long)]
        to: Option<String>,
        /// The HTML file to write; the CSV goes beside it.
        #[arg(short, long, default_value = "usher-report.html")]
        out: PathBuf,
    },
    /// Steer a running usher through its admin API ([admin] listen): zones, live overrides
    /// and messages, reloads, revocations, the audit log. Prints a table, or the API's JSON
    /// with --json.
    Ctl {
        /// The admin API, e.g. http://127.0.0.1:9092
        #[arg(long)]
        admin: String,
        /// A file holding one of the [admin] tokens.
        #[arg(long)]
        token_file: PathBuf,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        command: CtlCommand,
    },
    /// Identities: who a visitor is, so all their devices share one place.
    Identity {
        #[command(subcommand)]
        command: IdentityCommand,
    },
    /// The embedded store's files (store.data_dir): check them, or repair them.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// The quick start: run a demo shop and usher in front of it (conf/demo.toml).
    Demo {
        /// The demo config.
        #[arg(short, long, default_value = "conf/demo.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Decode and verify a token; print its claims. Exit 1 if usher would refuse it.
    Inspect {
        /// The token (the value of a `usher_<zone>` cookie).
        token: String,
        /// The config whose keys verify it.
        #[arg(short, long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum CtlCommand {
    /// Every zone: mode and limits in force, waiting, active, the wait of a newcomer.
    Zones,
    /// One zone; with `set`, `message` or `reset`, change it live (write token).
    Zone {
        /// The zone's name.
        name: String,
        #[command(subcommand)]
        change: Option<ZoneChange>,
    },
    /// Re-read the config file on the node (like SIGHUP); a file with problems changes nothing.
    Reload,
    /// End a visitor's session (its slot is freed) or place (write token).
    Revoke {
        /// The zone.
        zone: String,
        /// The visitor id: 32 hex digits, as the origin sees it in Usher-Visitor.
        visitor: String,
    },
    /// Who changed what, when, from where (this node, newest 1,000).
    Audit,
}

/// A live change to one zone: kept in the store, enforced by every node at its next tick.
#[derive(Subcommand)]
enum ZoneChange {
    /// Override limits or the mode, e.g. `set --rate 600 --mode paused`.
    Set {
        /// Admissions per minute (brings a second's worth of burst unless --burst is given).
        #[arg(long)]
        rate: Option<u64>,
        /// Sessions at once.
        #[arg(long)]
        capacity: Option<u64>,
        /// Admissions at once above the rate.
        #[arg(long)]
        burst: Option<u64>,
        /// auto, queue_all, paused, passthrough or closed.
        #[arg(long)]
        mode: Option<String>,
        /// How long a new session lasts, e.g. 10m.
        #[arg(long)]
        session_ttl: Option<String>,
    },
    /// Show a notice on every waiting page of the zone now; "" clears it.
    Message {
        /// The text (plain text, at most 1,000 bytes).
        text: String,
    },
    /// Drop every override: the zone runs as configured again.
    Reset,
    /// Issue priority codes: a link to a zone page with ?usher_code=CODE puts its holder in
    /// the priority line, admitted before the main line.
    Codes {
        /// How many codes.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Uses of each code.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// How long they are valid, e.g. 24h.
        #[arg(long, default_value = "24h")]
        valid_for: String,
    },
}

impl ZoneChange {
    fn request(self, zone: String) -> usher::ctl::CtlRequest {
        use usher::ctl::CtlRequest;
        match self {
            ZoneChange::Set {
                rate,
                capacity,
                burst,
                mode,
                session_ttl,
            } => {
                let mut patch = serde_json::Map::new();
                let mut put = |key: &str, value: Option<serde_json::Value>| {
                    if let Some(value) = value {
                        patch.insert(key.to_string(), value);
                    }
                };
                put("admit_per_minute", rate.map(Into::into));
                put("capacity", capacity.map(Into::into));
                put("burst", burst.map(Into::into));
                put("mode", mode.map(Into::into));
                put("session_ttl", session_ttl.map(Into::into));
                CtlRequest::Set {
                    zone,
                    patch: patch.into(),
                }
            }
            ZoneChange::Message { text } => CtlRequest::Set {
                zone,
                patch: serde_json::json!({ "message": text }),
            },
            ZoneChange::Reset => CtlRequest::Reset(zone),
            ZoneChange::Codes {
                count,
                uses,
                valid_for,
            } => CtlRequest::Codes {
                zone,
                ask: serde_json::json!({ "count": count, "uses": uses, "valid_for": valid_for }),
            },
        }
    }
}

#[derive(Subcommand)]
enum IdentityCommand {
    /// Sign an identity for a link: print the token and a link with `?usher_identity=TOKEN`.
    /// A newcomer arriving through it takes that identity's place (one place for all of its
    /// devices), like a visitor the shop named with an `Usher-Identity` header.
    Sign {
        /// The config whose signing key signs it.
        #[arg(short, long)]
        config: PathBuf,
        /// Who the visitor is (the shop's user id, an e-mail address): 1 to 256 visible
        /// ASCII characters.
        #[arg(short, long)]
        identity: String,
        /// Only for this zone (default: every zone).
        #[arg(short, long)]
        zone: Option<String>,
        /// How long the link works: "30m", "7d", ...
        #[arg(long, default_value = "7d")]
        valid: String,
        /// The page the link opens (printed with the token appended).
        #[arg(long, default_value = "https://shop.example/checkout")]
        url: String,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Read every store file without changing any: format, records readable, where each stops
    /// and why. Exit 0 if usher would open the store, 1 if not. Refused while usher runs.
    Verify {
        /// The config whose store.data_dir to read.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Keep the longest valid prefix of the state (a valid snapshot and the valid prefix of its
    /// log), write it afresh, and move every replaced file into data_dir/damaged-<UTC time>/
    /// (nothing is deleted). Prints what was lost. Also converts format 1 files. Refused while
    /// usher runs.
    Repair {
        /// The config whose store.data_dir to repair.
        #[arg(short, long)]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum KeyAlgorithm {
    /// Ed25519 (the default): the origin can verify tokens with the public key.
    Eddsa,
    /// HMAC-SHA256 shared secret.
    Hs256,
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr, as a service manager expects; stdout stays for command output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|e| {
        eprintln!("{}: invalid configuration", path.display());
        for problem in e.problems() {
            eprintln!("  {problem}");
        }
        ExitCode::FAILURE
    })
}

fn run(path: &Path, upgrade: bool) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match usher::service::build_server(path, &config, clock::system(), upgrade) {
        Ok(node) => {
            node.run();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("usher: cannot start: {e}");
            ExitCode::FAILURE
        }
    }
}

fn upgrade(path: &Path, pid: Option<u32>) -> ExitCode {
    use usher::service::upgrade;
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(old_pid) = pid.or_else(|| upgrade::holder_pid(&config.store.data_dir)) else {
        eprintln!(
            "usher: no running usher found (no PID in {}); give it with --pid",
            config.store.data_dir.join("lock").display()
        );
        return ExitCode::FAILURE;
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("usher: cannot find this program's path: {e}");
            return ExitCode::FAILURE;
        }
    };
    match upgrade::upgrade(&exe, path, &config, old_pid) {
        Ok(done) => {
            println!(
                "upgraded: PID {} -> PID {}, ready {} ms after the handover began",
                done.old_pid,
                done.new_pid,
                done.took.as_millis()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("usher: upgrade failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(paths: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for path in paths {
        let config = match config::load(path) {
            Ok(config) => config,
            Err(e) => {
                failed = true;
                eprintln!("{}: invalid", path.display());
                for problem in e.problems() {
                    eprintln!("  {problem}");
                }
                continue;
            }
        };
        let mut problems = Keyring::load(&config.tokens).err().unwrap_or_default();
        if let Some(tls) = &config.server.tls {
            problems.extend(usher::tls::Loaded::read(tls).err().unwrap_or_default());
        }
        match problems.is_empty() {
            true => println!("{}: ok ({} zone(s))", path.display(), config.zones.len()),
            false => {
                failed = true;
                eprintln!("{}: invalid", path.display());
                for problem in problems {
                    eprintln!("  {problem}");
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn keygen(out: &Path, algorithm: KeyAlgorithm, if_missing: bool) -> ExitCode {
    if out.exists() {
        if if_missing {
            return ExitCode::SUCCESS;
        }
        eprintln!("usher: {} exists; not overwriting a key", out.display());
        return ExitCode::FAILURE;
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("usher: cannot create {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    }
    let written = match algorithm {
        KeyAlgorithm::Eddsa => {
            let (private, public) = keys::generate_ed25519();
            let public_path = PathBuf::from(format!("{}.pub", out.display()));
            write_secret(out, &private)
                .and_then(|_| std::fs::write(&public_path, public))
                .map(|_| format!("wrote {} and {}", out.display(), public_path.display()))
        }
        KeyAlgorithm::Hs256 => {
            write_secret(out, &keys::generate_hs256()).map(|_| format!("wrote {}", out.display()))
        }
    };
    match written {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("usher: cannot write {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

/// Writes a file only its owner can read.
fn write_secret(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(content.as_bytes())
}

fn report(
    config: Option<&Path>,
    log: Vec<PathBuf>,
    zone: &str,
    from: Option<&str>,
    to: Option<&str>,
    out: PathBuf,
) -> ExitCode {
    let files = match config {
        Some(path) => {
            let config = match load(path) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let Some(events_log) = &config.events_log else {
                eprintln!(
                    "usher: {} has no [events_log]: there is nothing to report from",
                    path.display()
                );
                return ExitCode::FAILURE;
            };
            usher::event_log::files(events_log)
        }
        None => log,
    };
    let mut bounds = [None, None];
    for (bound, (flag, text)) in bounds.iter_mut().zip([("--from", from), ("--to", to)]) {
        if let Some(text) = text {
            match usher::config::timestamp::parse_rfc3339(text) {
                Some(ms) => *bound = Some(ms),
                None => {
                    eprintln!(
                        "usher: {flag} `{text}` is not an RFC 3339 time (2026-12-01T10:00:00Z)"
                    );
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    if let [Some(from), Some(to)] = bounds {
        if from >= to {
            eprintln!("usher: --from must be before --to");
            return ExitCode::FAILURE;
        }
    }
    let request = usher::report::Request {
        files,
        zone,
        from_ms: bounds[0],
        to_ms: bounds[1],
        out,
    };
    match usher::report::write(&request) {
        Ok(written) => {
            let f = &written.figures;
            let skipped = written.skipped;
            if skipped.unreadable + skipped.newer > 0 {
                eprintln!(
                    "usher: left out {} unreadable line(s) and {} of a newer usher",
                    skipped.unreadable, skipped.newer
                );
            }
            println!("{}", usher::report::render::summary_line(f));
            println!(
                "wrote {} and {}",
                written.html.display(),
                written.csv.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("usher: {e}");
            ExitCode::FAILURE
        }
    }
}

fn draw(path: &Path, zone: &str, event: &str, seed: &str, visitors: &[String]) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(found) = config
        .zone(zone)
        .and_then(|z| z.events.iter().find(|e| e.name == event))
    else {
        eprintln!(
            "usher: no event `{event}` in zone `{zone}` of {}",
            path.display()
        );
        return ExitCode::FAILURE;
    };
    let Ok(seed) = u64::from_str_radix(seed.trim(), 16) else {
        eprintln!("usher: the seed is 16 hex digits, not `{seed}`");
        return ExitCode::FAILURE;
    };
    let mut drawn = Vec::new();
    for text in visitors {
        let Some(visitor) = usher::admission::VisitorId::parse(text) else {
            eprintln!("usher: `{text}` is not a visitor id (32 hex digits)");
            return ExitCode::FAILURE;
        };
        drawn.push(usher::onsale::lottery_key(found, seed, visitor));
    }
    drawn.sort();
    println!("place  drawn rank (ms)  visitor");
    for (place, key) in drawn.iter().enumerate() {
        println!("{:>5}  {:>15}  {}", place + 1, key.rank, key.visitor);
    }
    ExitCode::SUCCESS
}

/// The token service of `config`'s keys, or every key problem printed.
fn tokens_of(config: &Config) -> Result<Tokens, ExitCode> {
    match Keyring::load(&config.tokens) {
        Ok(keyring) => Ok(Tokens::new(keyring, &config.tokens.issuer, 1)),
        Err(problems) => {
            for problem in problems {
                eprintln!("  {problem}");
            }
            Err(ExitCode::FAILURE)
        }
    }
}

/// `usher identity sign`: a signed identity token and a link carrying it.
fn sign_identity(
    path: &Path,
    identity: &str,
    zone: Option<&str>,
    valid: &str,
    url: &str,
) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !usher::room::is_identity(identity.as_bytes()) {
        eprintln!("usher: an identity is 1 to 256 visible ASCII characters (no spaces)");
        return ExitCode::FAILURE;
    }
    if let Some(zone) = zone.filter(|z| config.zone(z).is_none()) {
        eprintln!("usher: {} has no zone `{zone}`", path.display());
        return ExitCode::FAILURE;
    }
    let valid = match config::parse_duration(valid) {
        Ok(d) if d.as_secs() > 0 => d,
        Ok(_) => {
            eprintln!("usher: --valid must be at least a second");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("usher: --valid: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tokens = match tokens_of(&config) {
        Ok(tokens) => tokens,
        Err(code) => return code,
    };
    let now = clock::SystemClock.now_ms();
    let id = tokens.identity_id(identity);
    let token = tokens.identity_token(id, zone.unwrap_or("*"), valid.as_secs(), now);
    let separator = if url.contains('?') { '&' } else { '?' };
    println!("{token}");
    println!("{url}{separator}{}={token}", usher::room::IDENTITY_PARAM);
    ExitCode::SUCCESS
}

fn inspect(token: &str, path: &Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let tokens = match tokens_of(&config) {
        Ok(tokens) => tokens,
        Err(code) => return code,
    };
    let claims = usher::token::decode_unverified(token)
        .map(|c| serde_json::to_string_pretty(&c).unwrap_or_default())
        .unwrap_or_else(|| "(unreadable)".into());
    println!("{claims}");
    match tokens.verify(token, clock::SystemClock.now_ms()) {
        Ok(c) => {
            println!(
                "valid {:?} token for zone `{}`, expires at {} (unix s)",
                c.typ, c.zone, c.exp
            );
            ExitCode::SUCCESS
        }
        Err(reason) => {
            println!("refused: {}", reason.as_str());
            ExitCode::FAILURE
        }
    }
}

/// The embedded store's data directory of the config at `path`.
fn data_dir(path: &Path) -> Result<PathBuf, ExitCode> {
    let config = load(path)?;
    if config.store.scylla.is_some() {
        eprintln!(
            "usher: {} uses the CQL store; verify and repair are for the embedded store",
            path.display()
        );
        return Err(ExitCode::FAILURE);
    }
    Ok(config.store.data_dir)
}

/// One line per file: what it holds, where reading stops and why.
fn print_files(files: &[store::FileReport]) {
    for file in files {
        let format = match &file.header {
            Some(h) => format!("format {}, generation {}", h.usher_store, h.generation),
            None if matches!(file.stop, store::Stop::Unsupported { .. }) => "format 1".into(),
            None => "no header".into(),
        };
        let status = match &file.stop {
            store::Stop::End => "whole".to_string(),
            store::Stop::Torn { offset, dropped } => format!(
                "torn last record at byte {offset} ({dropped} bytes; cut off when usher opens the store)"
            ),
            store::Stop::Damaged { offset, what } => format!("stops at byte {offset}: {what}"),
            store::Stop::Unsupported { what } => format!("not readable: {what}"),
        };
        println!(
            "{}: {format}, {} bytes, {} records readable; {status}",
            file.path.display(),
            file.size,
            file.records
        );
        if let Some(note) = &file.note {
            println!("  {note}");
        }
    }
}

fn store_verify(path: &Path) -> ExitCode {
    let dir = match data_dir(path) {
        Ok(dir) => dir,
        Err(code) => return code,
    };
    let verification = match store::verify(&dir) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("usher: cannot verify {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    if verification.new {
        println!(
            "{}: no store files; usher would start a new, empty store",
            dir.display()
        );
    }
    print_files(&verification.files);
    match &verification.problem {
        None => {
            println!("ok: usher would open this store");
            ExitCode::SUCCESS
        }
        Some(problem) => {
            println!("refused: {problem}");
            ExitCode::FAILURE
        }
    }
}

fn store_repair(path: &Path) -> ExitCode {
    let dir = match data_dir(path) {
        Ok(dir) => dir,
        Err(code) => return code,
    };
    let repaired = match store::repair(&dir, clock::SystemClock.now_ms()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("usher: cannot repair {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    print_files(&repaired.files);
    let Some(aside) = &repaired.moved_to else {
        println!("nothing to repair: usher opens this store as it is");
        return ExitCode::SUCCESS;
    };
    if let Some(problem) = &repaired.problem {
        println!("was: {problem}");
    }
    println!("lost:");
    for file in &repaired.files {
        println!(
            "  {}: {} records, {} bytes",
            file.path.display(),
            file.lost_records,
            file.lost_bytes
        );
    }
    println!(
        "kept {} record(s); the old files are in {}",
        repaired.kept_records,
        aside.display()
    );
    ExitCode::SUCCESS
}

fn demo(path: &Path) -> ExitCode {
    // The demo's key lives beside its config and is made on first run.
    let config_text = std::fs::read_to_string(path).unwrap_or_default();
    let key_file = config_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("# demo-key: "))
        .map(|k| path.parent().unwrap_or(Path::new(".")).join(k.trim()));
    if let Some(key) = key_file {
        let code = keygen(&key, KeyAlgorithm::Eddsa, true);
        if code != ExitCode::SUCCESS {
            return code;
        }
    }
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(origin) = config
        .upstreams
        .get(&config.server.default_upstream)
        .and_then(|u| u.addrs.first().and_then(|a| a.literal()))
    else {
        eprintln!("usher: the demo config needs a default upstream");
        return ExitCode::FAILURE;
    };
    // Bound here, so a port in use is one clear line before anything starts.
    let listener = match std::net::TcpListener::bind(origin)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
    {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("usher demo: cannot start the demo shop on {origin}: {e}");
            return ExitCode::FAILURE;
        }
    };
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                eprintln!("usher demo: cannot start the demo shop: {e}");
                return;
            }
        };
        runtime.block_on(async move {
            match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => usher::demo::origin::serve(listener, usher::demo::shop).await,
                Err(e) => eprintln!("usher demo: cannot start the demo shop on {origin}: {e}"),
            }
        });
    });
    let zone = config.zones.first();
    println!();
    println!("  usher demo: a waiting room in front of a demo shop");
    println!("  shop (direct):    http://{origin}/");
    println!("  through usher:    http://{}/", config.server.listen);
    if let Some(zone) = zone {
        println!(
            "  protected:        http://{}{}  (capacity {}, {} admissions/minute)",
            config.server.listen,
            zone.paths.first().map(String::as_str).unwrap_or("/"),
            zone.limits.capacity,
            zone.limits.admit_per_minute
        );
    }
    println!(
        "  status JSON:      http://{}/_usher/status",
        config.server.listen
    );
    if let Some(metrics) = config.metrics.listen {
        println!("  metrics:          http://{metrics}/metrics");
    }
    println!("  Open the protected URL in a few private windows to see the queue. Ctrl-C stops.");
    println!();
    run(path, false)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config, upgrade } => {
            init_logs();
            run(&config, upgrade)
        }
        Command::Upgrade { config, pid } => upgrade(&config, pid),
        Command::Check { config } => check(&config),
        Command::Keygen {
            out,
            algorithm,
            if_missing,
        } => keygen(&out, algorithm, if_missing),
        Command::Token {
            command: TokenCommand::Inspect { token, config },
        } => inspect(&token, &config),
        Command::Report {
            config,
            log,
            zone,
            from,
            to,
            out,
        } => report(
            config.as_deref(),
            log,
            &zone,
            from.as_deref(),
            to.as_deref(),
            out,
        ),
        Command::Draw {
            config,
            zone,
            event,
            seed,
            visitors,
        } => draw(&config, &zone, &event, &seed, &visitors),
        Command::Ctl {
            admin,
            token_file,
            json,
            command,
        } => {
            let request = match command {
                CtlCommand::Zones => usher::ctl::CtlRequest::Zones,
                CtlCommand::Zone { name, change: None } => usher::ctl::CtlRequest::Zone(name),
                CtlCommand::Zone {
                    name,
                    change: Some(change),
                } => change.request(name),
                CtlCommand::Reload => usher::ctl::CtlRequest::Reload,
                CtlCommand::Revoke { zone, visitor } => {
                    usher::ctl::CtlRequest::Revoke { zone, visitor }
                }
                CtlCommand::Audit => usher::ctl::CtlRequest::Audit,
            };
            match usher::ctl::run(&admin, &token_file, json, &request) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(message) => {
                    eprintln!("usher ctl: {message}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Identity {
            command:
                IdentityCommand::Sign {
                    config,
                    identity,
                    zone,
                    valid,
                    url,
                },
        } => sign_identity(&config, &identity, zone.as_deref(), &valid, &url),
        Command::Store {
            command: StoreCommand::Verify { config },
        } => store_verify(&config),
        Command::Store {
            command: StoreCommand::Repair { config },
        } => store_repair(&config),
        Command::Demo { config } => {
            init_logs();
            demo(&config)
        }
    }
}
