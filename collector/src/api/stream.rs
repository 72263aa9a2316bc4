//! `GET /api/v1/stream` (WebSocket, or Server-Sent Events with `Accept: text/event-stream`) and
//! `POST /api/v1/stream/token`. Authenticated as every read is (a key's project, or the admin
//! token's `?project=`), or with a browser token from `/api/v1/stream/token` as `?token=`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as J, json};

use super::params::{reject_unknown, rfc3339};
use super::{ApiError, ApiState, project};
use crate::stream::Stream;
use crate::stream::hub::{Item, Subscription};
use crate::stream::message::{Filter, PARAMS};
use crate::telemetry::{Counter, metrics};

fn served(s: &ApiState) -> Result<&Arc<Stream>, ApiError> {
    s.stream
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("the live stream is off (api.stream.enabled)".into()))
}

fn now_s() -> i64 {
    crate::alerts::now_ns() / 1_000_000_000
}

/// The project a stream request reads: the token's, else as for every read.
async fn stream_project(
    s: &ApiState,
    stream: &Stream,
    headers: &HeaderMap,
    q: &mut HashMap<String, String>,
) -> Result<String, ApiError> {
    match q.remove("token") {
        Some(token) => stream.tokens.verify(&token, now_s()).ok_or_else(|| {
            ApiError::Unauthorized(
                "invalid or expired stream token; ask POST /api/v1/stream/token for a new one"
                    .into(),
            )
        }),
        None => project(s, headers, q).await,
    }
}

/// The text a subscriber receives for an item (a message's is shared, not copied).
fn text(item: &Item) -> (Option<String>, Utf8Bytes) {
    match item {
        Item::Message(id, m) => (Some(id.clone()), m.json.clone()),
        Item::Dropped(count, reason) => (
            None,
            json!({"type": "dropped", "count": count, "reason": reason})
                .to_string()
                .into(),
        ),
    }
}

pub async fn subscribe(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Query(mut q): Query<HashMap<String, String>>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    match open(&s, &headers, &mut q, ws.ok()).await {
        Ok(r) => r,
        Err(e) => {
            if matches!(e, ApiError::Unauthorized(_)) {
                s.telemetry
                    .counter(&metrics::STREAM_REFUSED, &[("reason", "unauthorized")])
                    .add(1);
            }
            e.into_response()
        }
    }
}

async fn open(
    s: &ApiState,
    headers: &HeaderMap,
    q: &mut HashMap<String, String>,
    ws: Option<WebSocketUpgrade>,
) -> Result<Response, ApiError> {
    let stream = served(s)?;
    let project = stream_project(s, stream, headers, q).await?;
    reject_unknown(q, &PARAMS)?;
    let filter = Filter::parse(q)?;
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| q.get("last_event_id").cloned());
    let sse = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    if !sse && ws.is_none() {
        return Err(ApiError::BadRequest(
            "connect with a WebSocket, or send `Accept: text/event-stream` for Server-Sent Events"
                .into(),
        ));
    }
    let subscription = stream
        .hub
        .subscribe(&project, filter, last_event_id.as_deref());
    let refused = |reason: &str| {
        s.telemetry
            .counter(&metrics::STREAM_REFUSED, &[("reason", "limit")])
            .add(1);
        tracing::debug!(%project, reason, "stream subscriber refused");
    };
    let heartbeat = stream.hub.config().heartbeat;
    let sent = s
        .telemetry
        .counter(&metrics::STREAM_MESSAGES, &[("result", "sent")]);
    match (ws, subscription) {
        (Some(ws), Ok(sub)) if !sse => Ok(ws
            // Clients send little: a small read buffer keeps a thousand sockets cheap.
            .read_buffer_size(4 << 10)
            .on_upgrade(move |socket| websocket(socket, sub, heartbeat, sent))),
        (Some(ws), Err(e)) if !sse => {
            refused(&e.to_string());
            let reason = e.to_string();
            Ok(ws.on_upgrade(move |mut socket| async move {
                let close = CloseFrame {
                    code: 1013, // try again later
                    reason: reason.into(),
                };
                let _ = socket.send(WsMessage::Close(Some(close))).await;
            }))
        }
        (_, Ok(sub)) => {
            let events = futures_util::stream::unfold((sub, sent), |(sub, sent)| async move {
                let item = sub.next().await;
                let (id, data) = text(&item);
                let mut event = Event::default().data(data.as_str());
                if let Some(id) = id {
                    sent.add(1);
                    event = event.id(id);
                }
                Some((Ok::<_, Infallible>(event), (sub, sent)))
            });
            let keep_alive = KeepAlive::new().interval(heartbeat).text("heartbeat");
            Ok(Sse::new(events).keep_alive(keep_alive).into_response())
        }
        (_, Err(e)) => {
            refused(&e.to_string());
            Ok((
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                Json(json!({"error": e.to_string()})),
            )
                .into_response())
        }
    }
}

/// Bytes written before one flush: what is queued goes out in few writes, and a socket's write
/// buffer stays small however many messages wait.
const WS_BATCH_BYTES: usize = 32 << 10;

/// Sends items and a heartbeat every `heartbeat` until the client leaves; the client's own
/// messages are read only to notice it closing.
async fn websocket(
    mut socket: WebSocket,
    sub: Subscription,
    heartbeat: std::time::Duration,
    sent: Counter,
) {
    use futures_util::SinkExt as _;
    let mut beat = tokio::time::interval(heartbeat);
    beat.tick().await;
    loop {
        let first = tokio::select! {
            item = sub.next() => Some(item),
            _ = beat.tick() => None,
            incoming = socket.recv() => match incoming {
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            },
        };
        let Some(first) = first else {
            let beat = json!({"type": "heartbeat", "time": rfc3339(crate::alerts::now_ns())});
            if socket
                .send(WsMessage::Text(beat.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
            continue;
        };
        let mut item = Some(first);
        let mut bytes = 0;
        while let Some(next) = item.take() {
            let (id, data) = text(&next);
            if id.is_some() {
                sent.add(1);
            }
            bytes += data.len();
            if socket.feed(WsMessage::Text(data)).await.is_err() {
                return;
            }
            if bytes < WS_BATCH_BYTES {
                item = sub.try_next();
            }
        }
        if socket.flush().await.is_err() {
            return;
        }
    }
}

/// `POST /api/v1/stream/token`: a short-lived token for this caller's project, for browsers.
pub async fn token(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Query(mut q): Query<HashMap<String, String>>,
) -> Result<Json<J>, ApiError> {
    let stream = served(&s)?;
    let project = project(&s, &headers, &mut q).await?;
    reject_unknown(&q, &[])?;
    let (token, expires) = stream.tokens.issue(&project, now_s());
    Ok(Json(json!({
        "token": token,
        "project": project,
        "expires_at": rfc3339(expires * 1_000_000_000),
    })))
}
