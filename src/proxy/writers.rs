//! Writing usher's own answers: a [`Reply`] in one piece, and an event stream piece by piece.
//! HTTP/1.0 clients never get a chunked body: an event stream to them ends with the connection.

use crate::lifecycle::Lifecycle;
use crate::room::{EventStream, Reply};
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

/// How long a write to an event stream may block before the visitor is taken for gone.
const SSE_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Writes `reply` whole; `close`: the connection ends after it (an HTTP/1.0 client, or one
/// whose connection cannot be trusted any more).
pub(super) async fn reply(session: &mut Session, reply: Reply, close: bool) -> Result<()> {
    let mut header = ResponseHeader::build(reply.status, Some(6))?;
    header.insert_header("content-type", reply.content_type)?;
    header.insert_header("content-length", reply.body.len().to_string())?;
    header.insert_header("cache-control", reply.cache_control)?;
    if let Some(vary) = reply.vary {
        header.insert_header("vary", vary)?;
    }
    if let Some(cookie) = reply.set_cookie {
        header.insert_header("set-cookie", cookie)?;
    }
    if let Some(seconds) = reply.retry_after {
        header.insert_header("retry-after", seconds.to_string())?;
    }
    if close {
        header.insert_header("connection", "close")?;
        session.set_keepalive(None);
    }
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session
        .write_response_body(Some(Bytes::from(reply.body)), true)
        .await?;
    Ok(())
}

/// Sends the client to ask again for `target` on a new connection: `307` keeps the method and
/// body, and `Connection: close` makes the next try a new connection (which the process that
/// took over the listening socket accepts).
pub(super) async fn retry_elsewhere(session: &mut Session, target: &str) -> Result<()> {
    let mut header = ResponseHeader::build(307, Some(5))?;
    header.insert_header("location", target)?;
    header.insert_header("retry-after", "0")?;
    header.insert_header("cache-control", "no-store")?;
    header.insert_header("content-length", "0")?;
    header.insert_header("connection", "close")?;
    session.set_keepalive(None);
    session
        .write_response_header(Box::new(header), true)
        .await?;
    Ok(())
}

/// Streams `/_usher/events` until the stream ends, the visitor goes away (a write fails) or
/// the node drains (the browser reconnects, to the successor during an upgrade).
pub(super) async fn events(
    session: &mut Session,
    mut events: EventStream<'_>,
    http10: bool,
    lifecycle: &Lifecycle,
) -> Result<()> {
    let mut header = ResponseHeader::build(200, Some(5))?;
    header.insert_header("content-type", "text/event-stream")?;
    header.insert_header("cache-control", "no-store")?;
    // nginx and similar buffer responses unless told not to.
    header.insert_header("x-accel-buffering", "no")?;
    if http10 {
        // No chunks in HTTP/1.0: the body runs until the connection closes.
        header.insert_header("connection", "close")?;
        session.set_keepalive(None);
    } else {
        header.insert_header("transfer-encoding", "chunked")?;
    }
    // An open stream never reads again; the default read timeout would cut it after 60 s.
    session.set_read_timeout(None);
    // A visitor whose browser stopped reading must not hold the connection forever.
    session.set_write_timeout(Some(SSE_WRITE_TIMEOUT));
    session
        .write_response_header(Box::new(header), false)
        .await?;
    let preamble = events.preamble();
    session
        .write_response_body(Some(Bytes::from(preamble)), false)
        .await?;
    let drained = lifecycle.drained();
    tokio::pin!(drained);
    loop {
        let chunk = tokio::select! {
            chunk = events.next() => chunk,
            _ = &mut drained => None,
        };
        let Some(chunk) = chunk else { break };
        session
            .write_response_body(Some(Bytes::from(chunk)), false)
            .await?;
    }
    session.write_response_body(None, true).await?;
    Ok(())
}
