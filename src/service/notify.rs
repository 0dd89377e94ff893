//! The systemd notify protocol (`sd_notify`), so a unit with `Type=notify` knows when usher is
//! ready and which process is the service after `usher upgrade` replaced it (`MAINPID=`, which
//! needs `NotifyAccess=all`). Without `$NOTIFY_SOCKET` it does nothing.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Tells the service manager this process is ready and is the service's main process.
pub fn ready() {
    send(&format!("READY=1\nMAINPID={}\n", std::process::id()));
}

/// Sends `message` to `$NOTIFY_SOCKET`, if set; a failure is logged, never fatal.
fn send(message: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    // `@name` is a socket in the abstract namespace.
    let addr = match path.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(&path),
    };
    let sent = addr.and_then(|addr| {
        let socket = UnixDatagram::unbound()?;
        socket.send_to_addr(message.as_bytes(), &addr)
    });
    if let Err(e) = sent {
        tracing::warn!(socket = %path, error = %e, "could not notify the service manager");
    }
}
