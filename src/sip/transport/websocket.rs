//! SIP over WebSocket (RFC 7118): the HTTP upgrade with the `sip` subprotocol, then one SIP
//! message per WebSocket message, both ways. Pings are answered by the WebSocket layer.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request as HttpRequest, Response as HttpResponse,
};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::{RateLimiter, TransportHandle};
use crate::sip::peer::{ConnectionId, Peer, TransportKind};

/// Accepts the upgrade and serves the connection until it closes.
pub(super) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    handle: TransportHandle,
    stream: S,
    id: ConnectionId,
    addr: SocketAddr,
    kind: TransportKind,
    mut outbox: mpsc::Receiver<Vec<u8>>,
) {
    let settings = handle.inner.settings.clone();
    // The callback type is tungstenite's; its error is an HTTP response by design.
    #[allow(clippy::result_large_err)]
    let select_sip = |request: &HttpRequest,
                      mut response: HttpResponse|
     -> Result<HttpResponse, ErrorResponse> {
        let offers_sip = request
            .headers()
            .get_all("Sec-WebSocket-Protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("sip"));
        if !offers_sip {
            let mut refusal =
                ErrorResponse::new(Some("the sip subprotocol (RFC 7118) is required".into()));
            *refusal.status_mut() = StatusCode::BAD_REQUEST;
            return Err(refusal);
        }
        response
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("sip"));
        Ok(response)
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(settings.limits.max_message_bytes))
        .max_frame_size(Some(settings.limits.max_message_bytes));
    let upgrade = tokio_tungstenite::accept_hdr_async_with_config(stream, select_sip, Some(config));
    let mut ws = match tokio::time::timeout(Duration::from_secs(10), upgrade).await {
        Ok(Ok(ws)) => ws,
        _ => {
            handle.unregister(id);
            return;
        }
    };
    let peer = Peer {
        transport: kind,
        addr,
        connection: Some(id),
    };
    let mut limiter = RateLimiter::new(settings.max_messages_per_sec_per_ip);
    loop {
        tokio::select! {
            incoming = tokio::time::timeout(settings.idle_timeout, ws.next()) => {
                let bytes = match incoming {
                    Ok(Some(Ok(WsMessage::Text(text)))) => text.as_bytes().to_vec(),
                    Ok(Some(Ok(WsMessage::Binary(data)))) => data.to_vec(),
                    Ok(Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_)))) => continue,
                    _ => break,
                };
                if !limiter.allow(addr.ip(), Instant::now()) {
                    handle.inner.metrics.rate_limited.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    continue;
                }
                if let Some(answer) = handle.deliver(&bytes, peer).await
                    && ws.send(WsMessage::text(String::from_utf8_lossy(&answer).into_owned())).await.is_err()
                {
                    break;
                }
            }
            message = outbox.recv() => {
                let Some(bytes) = message else { break };
                let frame = match String::from_utf8(bytes) {
                    Ok(text) => WsMessage::text(text),
                    Err(e) => WsMessage::binary(e.into_bytes()),
                };
                if ws.send(frame).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = ws.close(None).await;
    handle.unregister(id);
}
