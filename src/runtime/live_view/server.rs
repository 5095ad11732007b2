//! The monitor's HTTP side (axum): the page, its websocket and the disarm
//! button. With a token, every request must carry it (`?token=` or
//! `Authorization: Bearer`), or gets 401.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio::sync::mpsc::UnboundedSender;

use super::{Hello, MonitorCounters};
use crate::display::DisplayBin;
use crate::runtime::control::Notice;

/// The page: one file, its script and style inline, no network needed.
const PAGE: &str = include_str!("page.html");
/// Updates queued per browser before a slow one skips (about 2.5 s).
const UPDATES_QUEUED: usize = 64;
/// Bytes the kernel buffers toward one browser: a browser that stops reading
/// soon lags and skips updates rather than receive seconds-old ones later.
const SEND_BUFFER: libc::c_int = 64 * 1024;
/// What a browser that connects late is sent of the past.
const HISTORY_BINS: usize = 10_000;
const HISTORY_EVENTS: usize = 200;

pub(super) struct AppState {
    token: Option<String>,
    hello: Value,
    updates: broadcast::Sender<Utf8Bytes>,
    history: Mutex<History>,
    notices: UnboundedSender<Notice>,
    pub counters: Arc<MonitorCounters>,
}

#[derive(Default)]
struct History {
    bins: VecDeque<DisplayBin>,
    events: VecDeque<Value>,
    status: Value,
}

impl AppState {
    pub fn new(
        token: Option<String>,
        hello: &Hello,
        notices: UnboundedSender<Notice>,
        counters: Arc<MonitorCounters>,
    ) -> Self {
        Self {
            token,
            hello: json!(hello),
            updates: broadcast::channel(UPDATES_QUEUED).0,
            history: Mutex::default(),
            notices,
            counters,
        }
    }

    /// Keep the newest bins, events and status for browsers that connect later.
    pub fn remember(&self, bins: &[DisplayBin], events: &[Value], status: &Value) {
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        keep_last(&mut history.bins, bins.iter().copied(), HISTORY_BINS);
        keep_last(&mut history.events, events.iter().cloned(), HISTORY_EVENTS);
        history.status = status.clone();
    }

    pub fn has_clients(&self) -> bool {
        self.updates.receiver_count() > 0
    }

    /// Send an update to every connected browser.
    pub fn broadcast(&self, update: String) {
        let _ = self.updates.send(update.into());
    }

    /// Updates some connected browser has not taken yet.
    pub fn undelivered(&self) -> usize {
        self.updates.len()
    }

    fn welcome(&self) -> String {
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        json!({
            "type": "hello",
            "session": self.hello,
            "bins": history.bins,
            "events": history.events,
            "status": history.status,
        })
        .to_string()
    }
}

fn keep_last<T>(queue: &mut VecDeque<T>, new: impl Iterator<Item = T>, limit: usize) {
    queue.extend(new);
    let excess = queue.len().saturating_sub(limit);
    queue.drain(..excess);
}

pub(super) async fn serve(listener: tokio::net::TcpListener, state: Arc<AppState>) {
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/ws", get(socket))
        .route("/disarm", post(disarm))
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state);
    let listener = listener.tap_io(|tcp| {
        // Best effort: updates are small and should leave at once.
        let _ = tcp.set_nodelay(true);
        limit_send_buffer(tcp);
    });
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!("monitor: stopped serving: {e}");
    }
}

fn limit_send_buffer(tcp: &tokio::net::TcpStream) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket and an int option of the right size. Best
    // effort: on failure the kernel's default buffer stays.
    unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&SEND_BUFFER as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// With a token, refuse any request that does not carry it. Without one
/// (loopback only), refuse requests that name another host or come from
/// another site's page: DNS rebinding and cross-site websockets.
async fn authorize(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(token) = &state.token else {
        return if from_loopback_page(request.headers()) {
            next.run(request).await
        } else {
            (
                StatusCode::FORBIDDEN,
                "this monitor answers pages of 127.0.0.1 or localhost only\n",
            )
                .into_response()
        };
    };
    let from_query = request
        .uri()
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("token="));
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let given = from_query.or(from_header).unwrap_or("");
    if same(given.as_bytes(), token.as_bytes()) {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            "this monitor needs its token: open the URL neuroloop printed\n",
        )
            .into_response()
    }
}

/// Whether the request names a loopback host and, if a page sent it, that
/// page is on one too (a missing header is a client that is not a browser).
fn from_loopback_page(headers: &axum::http::HeaderMap) -> bool {
    let loopback = |name, scheme: bool| {
        headers.get(name).map_or(true, |value| {
            let value = value.to_str().unwrap_or("");
            let host = if scheme {
                value.split_once("://").map_or("", |(_, host)| host)
            } else {
                value
            };
            names_loopback(host)
        })
    };
    loopback(header::HOST, false) && loopback(header::ORIGIN, true)
}

/// Whether a Host (or Origin without its scheme) is a loopback name, with or
/// without a port.
fn names_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    matches!(name, "127.0.0.1" | "localhost" | "::1")
}

/// Compare in a time that does not depend on where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Disarm the outputs and end the session, as Ctrl-C does; only on a monitor
/// with a token (which `authorize` has checked).
async fn disarm(State(state): State<Arc<AppState>>) -> Response {
    if state.token.is_none() {
        return (
            StatusCode::FORBIDDEN,
            "disarming from the page needs a monitor started with --monitor-token\n",
        )
            .into_response();
    }
    let _ = state.notices.send(Notice::Disarm);
    (
        StatusCode::OK,
        "disarming the outputs and ending the session\n",
    )
        .into_response()
}

async fn socket(ws: WebSocketUpgrade, State(state): State<Arc<AppState>>) -> Response {
    ws.on_upgrade(move |socket| client(socket, state))
}

/// One browser: the past first, then every update; a browser that falls
/// behind skips what it missed (counted), one that goes away ends here.
async fn client(mut socket: WebSocket, state: Arc<AppState>) {
    state.counters.connections.fetch_add(1, Ordering::Relaxed);
    let mut updates = state.updates.subscribe();
    if socket
        .send(Message::Text(state.welcome().into()))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            update = updates.recv() => match update {
                Ok(text) => {
                    if socket.send(Message::Text(text)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    state.counters.updates_skipped.fetch_add(n, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
