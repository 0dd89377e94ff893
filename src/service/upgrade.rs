//! `usher upgrade`: replaces a running usher with a new process (a new binary, a new config)
//! without refusing a connection. It starts `usher run --upgrade`, which waits on the upgrade
//! socket; sends the running process `SIGQUIT`, which hands over its listening sockets, drains,
//! saves the store and releases the data directory; and waits until the new process is ready.

use crate::config::Config;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the new process may take to start listening on the upgrade socket.
const SOCKET_WAIT: Duration = Duration::from_secs(5);

/// What an upgrade did.
#[derive(Debug)]
pub struct Upgraded {
    /// The process replaced.
    pub old_pid: u32,
    /// The process now serving.
    pub new_pid: u32,
    /// From `SIGQUIT` to the new process answering `/_usher/ready` with 200.
    pub took: Duration,
}

/// The PID in the data directory's lock file (written by the process holding it).
pub fn holder_pid(data_dir: &Path) -> Option<u32> {
    std::fs::read_to_string(data_dir.join("lock"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether process `pid` runs (an exited process its parent has not reaped yet does not).
fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid as libc::pid_t, 0) == 0 };
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // `PID (COMM) STATE ...`; COMM may hold spaces and parentheses.
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    });
    exists && !zombie
}

/// Replaces process `old_pid` (serving `config`, read from `config_path`) with a new one
/// started from `exe`.
pub fn upgrade(
    exe: &Path,
    config_path: &Path,
    config: &Config,
    old_pid: u32,
) -> Result<Upgraded, String> {
    if !alive(old_pid) {
        return Err(format!(
            "no process {old_pid} is running; start usher with `usher run`"
        ));
    }
    let sock = &config.server.upgrade_sock;
    let _ = std::fs::remove_file(sock);
    let mut child = Command::new(exe)
        .arg("run")
        .arg("--config")
        .arg(config_path)
        .arg("--upgrade")
        .stdin(Stdio::null())
        // Its log goes where this command's goes (stderr); stdout is for this command's report.
        .stdout(Stdio::null())
        // Its own process group: a Ctrl-C meant for this command must not stop the new server.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let new_pid = child.id();
    if let Err(e) = wait_for(SOCKET_WAIT, &mut child, || sock.exists()) {
        // Nothing was handed over yet: the running process goes on alone.
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "the new process did not open the upgrade socket {}: {e}",
            sock.display()
        ));
    }
    let started = Instant::now();
    // SAFETY: sends a signal; no memory is involved.
    if unsafe { libc::kill(old_pid as libc::pid_t, libc::SIGQUIT) } != 0 {
        let _ = child.kill();
        return Err(format!(
            "cannot signal process {old_pid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    let deadline = config.server.grace_period + Duration::from_secs(30);
    wait_for(deadline, &mut child, || {
        !alive(old_pid) && ready(config.server.listen)
    })
    .map_err(|e| format!("the new process (PID {new_pid}) did not become ready: {e}"))?;
    Ok(Upgraded {
        old_pid,
        new_pid,
        took: started.elapsed(),
    })
}

/// Polls `done` every 10 ms until `limit`, failing early if `child` exits.
fn wait_for(
    limit: Duration,
    child: &mut Child,
    mut done: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("it exited ({status}); see its log"));
        }
        if Instant::now() >= deadline {
            return Err(format!("still waiting after {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `/_usher/ready` on `addr` answers 200.
fn ready(addr: std::net::SocketAddr) -> bool {
    let addr = match addr.ip().is_unspecified() {
        true => std::net::SocketAddr::new([127, 0, 0, 1].into(), addr.port()),
        false => addr,
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = b"GET /_usher/ready HTTP/1.1\r\nHost: usher\r\nConnection: close\r\n\r\n";
    if stream.write_all(request).is_err() {
        return false;
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    response.starts_with(b"HTTP/1.1 200 ")
}
