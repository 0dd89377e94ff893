//! One visitor's open `GET /_usher/events`: connects (within the shared bound on connections
//! still waiting for their first event), reports how long the first event took, then counts and
//! time-stamps every event until the stream says "admitted", fails, or the run stops it.
//!
//! The body is chunked; the task does not decode the chunks. Events end with a blank line
//! (`\n\n`), which neither the response head (`\r\n\r\n`) nor chunk framing (`\r\n<hex>\r\n`)
//! contains, so scanning the raw bytes for it finds every event.

use crate::http::{find, HOST};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};

/// What every stream task shares with the run.
pub struct Shared {
    pub addr: SocketAddr,
    /// Streams connecting or waiting for their first event: bounds the connect rate, so the
    /// kernel's accept backlog never overflows.
    pub connecting: Arc<Semaphore>,
    /// `data:` events received, over all streams.
    pub events: AtomicU64,
    /// Whether arrivals are time-stamped (the measured window).
    pub recording: AtomicBool,
    /// Time zero of the arrival stamps.
    pub base: Instant,
}

/// How a stream's setup went: the time from the start of its connect to its first event.
pub type Setup = Result<Duration, String>;

/// How a stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Still open when the run stopped it.
    Open,
    /// Its last event said "admitted" (usher ends the stream there).
    Admitted,
    /// Failed or closed before "admitted".
    Failed(String),
}

/// A stream's record.
pub struct Record {
    pub end: End,
    /// Arrival of each event in the measured window, ms after [`Shared::base`].
    pub arrivals: Vec<u32>,
}

/// Runs one stream until it ends or `stop` flips. Sends exactly one [`Setup`].
pub async fn run(
    shared: Arc<Shared>,
    cookie: String,
    setup: mpsc::UnboundedSender<Setup>,
    mut stop: watch::Receiver<bool>,
) -> Record {
    let mut record = Record {
        end: End::Open,
        arrivals: Vec::new(),
    };
    let Ok(permit) = shared.connecting.clone().acquire_owned().await else {
        record.end = End::Failed("semaphore closed".into());
        return record;
    };
    let mut permit = Some(permit);
    let started = Instant::now();
    let fail = |record: &mut Record, permit: &Option<_>, why: String| {
        // A stream that failed before its first event still owes the run its setup report.
        if permit.is_some() {
            let _ = setup.send(Err(why.clone()));
        }
        record.end = End::Failed(why);
    };
    let mut stream = match open(shared.addr, &cookie).await {
        Ok(stream) => stream,
        Err(e) => {
            fail(&mut record, &permit, format!("connect: {e}"));
            return record;
        }
    };
    let mut buf = Vec::with_capacity(1024);
    let mut head_seen = false;
    loop {
        let read = tokio::select! {
            read = stream.read_buf(&mut buf) => read,
            _ = stop.changed() => return record,
        };
        match read {
            Ok(0) => {
                fail(&mut record, &permit, "closed before admitted".into());
                return record;
            }
            Err(e) => {
                fail(&mut record, &permit, format!("read: {e}"));
                return record;
            }
            Ok(_) => {}
        }
        if !head_seen {
            let Some(end) = find(&buf, b"\r\n\r\n") else {
                continue;
            };
            if !buf.starts_with(b"HTTP/1.1 200") {
                let line = String::from_utf8_lossy(&buf[..buf.len().min(12)]).into_owned();
                fail(&mut record, &permit, format!("answered {line:?}"));
                return record;
            }
            head_seen = true;
            buf.drain(..end + 4);
        }
        let mut admitted = false;
        while let Some(end) = find(&buf, b"\n\n") {
            let event = &buf[..end];
            if find(event, b"data: ").is_some() {
                shared.events.fetch_add(1, Ordering::Relaxed);
                if shared.recording.load(Ordering::Relaxed) {
                    let at = shared.base.elapsed().as_millis() as u32;
                    record.arrivals.push(at);
                }
                admitted |= find(event, b"\"state\":\"admitted\"").is_some();
                if permit.take().is_some() {
                    let _ = setup.send(Ok(started.elapsed()));
                }
            }
            buf.drain(..end + 2);
        }
        if admitted {
            record.end = End::Admitted;
            return record;
        }
    }
}

async fn open(addr: SocketAddr, cookie: &str) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let request = format!(
        "GET /_usher/events HTTP/1.1\r\nHost: {HOST}\r\nAccept: text/event-stream\r\n\
         Cookie: {cookie}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    Ok(stream)
}
