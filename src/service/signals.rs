//! Signals, and the listening sockets they hand over:
//!
//! - `SIGTERM`: stop accepting, finish open requests, save the state, exit (as soon as the open
//!   requests are done, at most `grace_period`).
//! - `SIGQUIT`: a zero-downtime upgrade. The listening sockets are sent to the new process
//!   waiting on the upgrade socket (`usher run --upgrade`), then this process drains as for
//!   `SIGTERM` and hands the data directory over. If no new process takes the sockets, this one
//!   goes on serving: an upgrade that cannot happen must not become an outage.
//! - `SIGINT`: stop at once (the state written so far is on disk).
//! - `SIGHUP`: reload the config file ([`super::reload`]); a file with problems is logged and
//!   the running config stays.
//!
//! Pingora sends the sockets itself on `SIGQUIT`, but then keeps accepting for 5 s, during
//! which the new process could not open the store: so usher sends them itself, from the
//! listening-socket table Pingora shares with every service ([`ListenFdsCapture`]).

use crate::lifecycle::Lifecycle;
use async_trait::async_trait;
use pingora::server::{ListenFds, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::Service;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// The process's signal handling, given to Pingora's main loop.
pub struct Signals {
    /// The listening sockets, once the services started.
    pub fds: Arc<OnceLock<ListenFds>>,
    /// Where the new process waits for them.
    pub upgrade_sock: PathBuf,
    /// Told when a drain begins.
    pub lifecycle: Arc<Lifecycle>,
    /// What `SIGHUP` runs.
    pub reload: Arc<dyn crate::admin::Reload>,
}

fn listen(kind: SignalKind) -> Signal {
    // Registering a handler fails only if the runtime has no signal driver, which Pingora's has.
    signal(kind).expect("a signal handler can be registered")
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let mut term = listen(SignalKind::terminate());
        let mut quit = listen(SignalKind::quit());
        let mut int = listen(SignalKind::interrupt());
        let mut hup = listen(SignalKind::hangup());
        loop {
            tokio::select! {
                _ = term.recv() => {
                    tracing::info!("SIGTERM: draining open requests, then exiting");
                    self.lifecycle.begin_drain(false);
                    return ShutdownSignal::GracefulTerminate;
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT: exiting now");
                    return ShutdownSignal::FastShutdown;
                }
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the config");
                    let reload = self.reload.clone();
                    // Logged by the reload itself, whatever the result.
                    let _ = tokio::task::spawn_blocking(move || reload.reload()).await;
                }
                _ = quit.recv() => match self.hand_over().await {
                    Ok(()) => {
                        tracing::info!(sock = %self.upgrade_sock.display(), "SIGQUIT: listening sockets handed to the new process; draining");
                        self.lifecycle.begin_drain(true);
                        return ShutdownSignal::GracefulTerminate;
                    }
                    Err(e) => tracing::error!(
                        sock = %self.upgrade_sock.display(),
                        error = %e,
                        "SIGQUIT: no new process took the listening sockets (start it with `usher run --upgrade` first); still serving"
                    ),
                },
            }
        }
    }
}

/// How long the new process has to start accepting once it has the sockets.
const TAKEOVER_WAIT: Duration = Duration::from_secs(10);

/// The file a new process writes once it accepts on the sockets it was sent: `SOCK.taken`.
pub fn taken_marker(upgrade_sock: &Path) -> PathBuf {
    let mut name = upgrade_sock.as_os_str().to_owned();
    name.push(".taken");
    PathBuf::from(name)
}

impl Signals {
    /// Sends the listening sockets to the process waiting on the upgrade socket (it is given
    /// about 5 s to appear), then waits until it accepts on them: until then this process
    /// keeps accepting too (Pingora's new process picks the sockets up only about a second
    /// after they were sent), so no connection waits in the backlog meanwhile.
    async fn hand_over(&self) -> Result<(), String> {
        let marker = taken_marker(&self.upgrade_sock);
        let _ = std::fs::remove_file(&marker);
        self.send_sockets().await?;
        let deadline = tokio::time::Instant::now() + TAKEOVER_WAIT;
        while !marker.exists() {
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "the sockets were sent, but no process started accepting within {TAKEOVER_WAIT:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = std::fs::remove_file(&marker);
        Ok(())
    }

    async fn send_sockets(&self) -> Result<(), String> {
        let fds = self
            .fds
            .get()
            .ok_or("the listeners are not open yet")?
            .clone();
        let sock = self
            .upgrade_sock
            .to_str()
            .ok_or("the upgrade socket's path is not UTF-8")?
            .to_string();
        let sent = tokio::task::spawn_blocking(move || {
            let fds = fds.lock();
            if fds.is_empty() {
                return Err("no listening sockets to send".to_string());
            }
            fds.send_to_sock(sock.as_str())
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        sent.await.map_err(|e| e.to_string())?
    }
}

/// A service that does nothing but keep the listening-socket table Pingora passes to every
/// service, for [`Signals`] to send on an upgrade.
pub struct ListenFdsCapture {
    /// Filled when the service starts.
    pub fds: Arc<OnceLock<ListenFds>>,
}

#[async_trait]
impl Service for ListenFdsCapture {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        mut shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
    ) {
        if let Some(fds) = fds {
            let _ = self.fds.set(fds);
        }
        let _ = shutdown.changed().await;
    }

    fn name(&self) -> &str {
        "usher sockets"
    }

    fn threads(&self) -> Option<usize> {
        Some(1)
    }
}
