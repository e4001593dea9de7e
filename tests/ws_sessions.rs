//! WebSocket sessions through a real server (axum, and plain hyper) and a real WebSocket client
//! (tokio-tungstenite): every rejection in both modes, each token source, expiry and its
//! warning, re-authentication, connection limits, the registry (statistics, messages to a user,
//! revocation, slots freed when clients vanish) and `RateLimitedSocket`.
//!
//! Time moves with a FakeClock; sessions look at it every 20 ms. Clients bind their source
//! address (127.0.0.x) so that lockout tests can tell them apart.
#![cfg(all(feature = "axum", feature = "websocket"))]

mod common;

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message as AxMessage, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderName, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tower::ServiceBuilder;
use tower::service_fn;
use tower_jwt_guard::clock::FakeClock;
use tower_jwt_guard::extract::TokenExtractor;
use tower_jwt_guard::keys::Key;
use tower_jwt_guard::lockout::{LockoutLayer, LockoutPolicy};
use tower_jwt_guard::rate_limit::{MessageLimiter, PlanQuotas, Quota};
use tower_jwt_guard::response::{JsonResponder, Responder};
use tower_jwt_guard::validate::Validator;
use tower_jwt_guard::ws::{
    AuthenticatedSocket, CloseFrameResponder, ConnectionLimits, RateLimitedSocket, SessionRegistry,
    WsSession, WsSessions,
};
use tower_jwt_guard::{AuthContext, JwtAuthLayer};

use common::{HMAC_SECRET, NOW, sign_hs256};

const WAIT: Duration = Duration::from_secs(5);
const TICK: Duration = Duration::from_millis(20);
const LEEWAY: u64 = 10;

type Ws = WebSocketStream<TcpStream>;
type Handshake = http::Response<Option<Vec<u8>>>;

#[derive(Debug, Clone, Deserialize)]
struct WsClaims {
    sub: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    plan: Option<String>,
}

fn plan_of(c: &WsClaims) -> Option<&str> {
    c.plan.as_deref()
}

// ---------------------------------------------------------------------------------------------
// Tokens

fn token(sub: &str, exp: u64) -> String {
    sign_hs256(&json!({"sub": sub, "exp": exp}))
}

/// A token for `sub` valid for an hour after [`NOW`].
fn fresh(sub: &str) -> String {
    token(sub, NOW + 3600)
}

fn with_claims(claims: Value) -> String {
    sign_hs256(&claims)
}

/// A well-formed token signed with another key.
fn bad_signature(sub: &str) -> String {
    common::sign_with(
        tower_jwt_guard::Algorithm::HS256,
        &tower_jwt_guard::jsonwebtoken::EncodingKey::from_secret(
            b"another-secret-that-is-long-enough-0123456789",
        )
        .unwrap(),
        None,
        &json!({"sub": sub, "exp": NOW + 3600}),
    )
}

fn expired(sub: &str) -> String {
    token(sub, NOW - 3600)
}

// ---------------------------------------------------------------------------------------------
// The axum server

struct Setup {
    extractor: TokenExtractor,
    /// One `CloseFrameResponder` for every layer and the sessions.
    close_frames: bool,
    lockout: bool,
    registry: SessionRegistry,
    warning: Option<Duration>,
    plan: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            extractor: TokenExtractor::new().bearer(),
            close_frames: false,
            lockout: false,
            registry: SessionRegistry::default(),
            warning: None,
            plan: false,
        }
    }
}

struct Server {
    addr: SocketAddr,
    clock: FakeClock,
    sessions: WsSessions<WsClaims>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn validator(clock: &FakeClock) -> Validator<WsClaims> {
    Validator::builder()
        .key(Key::hmac(HMAC_SECRET).unwrap())
        .leeway(Duration::from_secs(LEEWAY))
        .require("banned users may not connect", |c: &WsClaims| {
            c.role.as_deref() != Some("banned")
        })
        .clock(clock.clone())
        .build()
        .unwrap()
}

async fn start(setup: Setup) -> Server {
    common::init_crypto();
    let clock = FakeClock::at_unix_secs(NOW);
    let responder: Arc<dyn Responder> = if setup.close_frames {
        Arc::new(CloseFrameResponder::new(JsonResponder::new()))
    } else {
        Arc::new(JsonResponder::new())
    };
    let auth = JwtAuthLayer::builder(validator(&clock))
        .extractor(setup.extractor)
        .responder(Arc::clone(&responder))
        .build()
        .unwrap();
    let mut sessions = WsSessions::builder(auth.validator().clone())
        .registry(setup.registry)
        .responder(Arc::clone(&responder))
        .max_tick(TICK);
    if let Some(w) = setup.warning {
        sessions = sessions.expiry_warning(w);
    }
    if setup.plan {
        sessions = sessions.plan_by(plan_of);
    }
    let sessions = sessions.build().unwrap();
    // 3 messages per second per user; flooding is judged over 1 s: more than 3 refused
    // messages within it (over twice the rate) close with 1008.
    let limiter = MessageLimiter::builder(PlanQuotas::new(Quota::per_second(
        NonZeroU32::new(3).unwrap(),
    )))
    .clock(clock.clone())
    .flood_window(Duration::from_secs(1))
    .build()
    .unwrap();
    let mut router = Router::new()
        .route("/ws", get(echo))
        .route("/ws/id", get(echo_with_id))
        .route("/ws/session-first", get(echo_session_first))
        .route("/ws/limited", get(limited_echo))
        .route("/ws/push", get(push_only))
        .route_layer(auth)
        // Not behind the guard: the control for close-handshake tests.
        .route("/plain", get(plain_echo))
        .layer(Extension(sessions.clone()))
        .layer(Extension(limiter));
    if setup.lockout {
        // 2 invalid tokens lock an address.
        let lockout =
            LockoutLayer::builder(LockoutPolicy::new().max_failures(NonZeroU32::new(2).unwrap()))
                .clock(clock.clone())
                .responder(Arc::clone(&responder))
                .build()
                .unwrap();
        router = router.layer(lockout);
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    Server {
        addr,
        clock,
        sessions,
        task,
    }
}

/// Echoes text and binary messages until the session ends.
async fn run_echo(mut socket: AuthenticatedSocket<WebSocket, WsClaims>) {
    while let Some(Ok(message)) = socket.recv().await {
        let reply = match message {
            AxMessage::Text(t) => AxMessage::Text(t),
            AxMessage::Binary(b) => AxMessage::Binary(b),
            _ => continue,
        };
        if socket.send(reply).await.is_err() {
            break;
        }
    }
}

/// The order of the crate's documentation: the upgrade, then the session.
async fn echo(upgrade: WebSocketUpgrade, session: WsSession<WsClaims>) -> Response {
    let protocols = session
        .application_protocols()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    upgrade
        .protocols(protocols)
        .on_upgrade(|socket| run_echo(session.attach(socket)))
}

async fn echo_session_first(session: WsSession<WsClaims>, upgrade: WebSocketUpgrade) -> Response {
    let protocols = session
        .application_protocols()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    upgrade
        .protocols(protocols)
        .on_upgrade(|socket| run_echo(session.attach(socket)))
}

/// Sends `{"id":..,"sub":..,"source":..,"plan":..}` first, then echoes.
async fn echo_with_id(upgrade: WebSocketUpgrade, session: WsSession<WsClaims>) -> Response {
    let protocols = session
        .application_protocols()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    upgrade
        .protocols(protocols)
        .on_upgrade(|socket| async move {
            let hello = json!({
                "id": session.id(),
                "sub": session.subject(),
                "claims_sub": session.claims().sub,
                "source": session.context().source().map(|s| s.as_str()),
                "plan": session.plan(),
                "expires_at": session.expires_at(),
            });
            let socket = session.attach(socket);
            if socket
                .send(AxMessage::Text(hello.to_string().into()))
                .await
                .is_ok()
            {
                run_echo(socket).await;
            }
        })
}

/// axum's WebSocket alone, no guard: echoes until `recv` returns `None`.
async fn plain_echo(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(|mut socket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            if let AxMessage::Text(t) = message
                && socket.send(AxMessage::Text(t)).await.is_err()
            {
                break;
            }
        }
    })
}

/// Sends "tick" every 10 ms and never reads: the session must still end on time.
async fn push_only(session: WsSession<WsClaims>, upgrade: WebSocketUpgrade) -> Response {
    session.configure(upgrade).on_upgrade(|socket| async move {
        let socket = session.attach(socket);
        while socket.send(AxMessage::Text("tick".into())).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

/// Only the message limit, over axum's WebSocket.
async fn limited_echo(
    upgrade: WebSocketUpgrade,
    context: AuthContext,
    Extension(limiter): Extension<MessageLimiter>,
) -> Response {
    let subject: Arc<str> = Arc::from(context.subject().unwrap_or_default());
    upgrade.on_upgrade(move |socket| async move {
        let mut socket = RateLimitedSocket::new(socket, limiter.gate(subject, None));
        while let Some(Ok(message)) = socket.recv().await {
            if let AxMessage::Text(t) = message
                && socket.send(AxMessage::Text(t)).await.is_err()
            {
                break;
            }
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The client

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// Opens a WebSocket to `path` from `from`, with `headers`.
async fn connect_from(
    addr: SocketAddr,
    from: Ipv4Addr,
    path: &str,
    headers: &[(&str, String)],
) -> Result<(Ws, Handshake), WsError> {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let handshake = async {
        let socket = TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddrV4::new(from, 0).into())
            .expect("bind a loopback source address");
        let stream = socket.connect(addr).await.expect("TCP connect");
        tokio_tungstenite::client_async(req, stream).await
    };
    timeout(WAIT, handshake).await.expect("handshake timed out")
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

impl Server {
    async fn connect(&self, path: &str, headers: &[(&str, String)]) -> Result<Ws, WsError> {
        connect_from(self.addr, ip(1), path, headers)
            .await
            .map(|(ws, _)| ws)
    }

    async fn open(&self, token: &str) -> Ws {
        self.connect("/ws", &bearer(token)).await.expect("upgrade")
    }

    /// Connects to `/ws/id` and returns the socket and its hello message.
    async fn open_id(&self, token: &str) -> (Ws, Value) {
        let mut ws = self
            .connect("/ws/id", &bearer(token))
            .await
            .expect("upgrade");
        let hello = json_text(&mut ws).await;
        (ws, hello)
    }

    /// Polls the registry (every 20 ms, up to 5 s) until `check` holds.
    async fn wait_for(&self, what: &str, check: impl Fn(&SessionRegistry) -> bool) {
        let registry = self.sessions.registry();
        for _ in 0..250 {
            if check(registry) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{what}: registry still at {:?}", registry.stats());
    }
}

/// The next text message, skipping control frames.
async fn next_text(ws: &mut Ws) -> String {
    loop {
        match timeout(WAIT, ws.next()).await.expect("no message in time") {
            Some(Ok(Message::Text(t))) => return t.to_string(),
            Some(Ok(Message::Close(frame))) => panic!("closed: {frame:?}"),
            Some(Ok(_)) => continue,
            other => panic!("socket ended: {other:?}"),
        }
    }
}

async fn json_text(ws: &mut Ws) -> Value {
    let text = next_text(ws).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Sends `text` and expects it back.
async fn assert_echo(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
    assert_eq!(next_text(ws).await, text);
}

/// Reads to the close frame, asserting that no data message comes before it; returns its code.
async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        match timeout(WAIT, ws.next()).await.expect("no close in time") {
            Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
            Some(Ok(Message::Text(t))) => panic!("data before the close frame: {t}"),
            Some(Ok(Message::Binary(b))) => panic!("data before the close frame: {b:?}"),
            Some(Ok(_)) => continue,
            other => panic!("ended without a close code: {other:?}"),
        }
    }
}

/// A refused upgrade in close-frame mode: 101, then a close with `code` and no echo of a
/// message sent right away.
async fn assert_closed_with(
    result: Result<(Ws, Handshake), WsError>,
    code: u16,
    reason: &str,
) -> Handshake {
    let (mut ws, response) = result.unwrap_or_else(|e| panic!("expected a 101, got {e:?}"));
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    // The client may already have the close frame; a send error is fine.
    let _ = ws.send(Message::text("must not be echoed")).await;
    let frame = loop {
        match timeout(WAIT, ws.next()).await.expect("no close in time") {
            Some(Ok(Message::Close(Some(frame)))) => break frame,
            Some(Ok(Message::Text(t))) => panic!("a refused client got data: {t}"),
            Some(Ok(Message::Binary(b))) => panic!("a refused client got data: {b:?}"),
            Some(Ok(_)) => continue,
            other => panic!("ended without a close code: {other:?}"),
        }
    };
    assert_eq!(u16::from(frame.code), code, "{frame:?}");
    assert_eq!(frame.reason.as_str(), reason);
    // Nothing follows the close.
    while let Ok(Some(Ok(message))) = timeout(WAIT, ws.next()).await {
        assert!(
            !message.is_text() && !message.is_binary(),
            "data after the close: {message:?}"
        );
    }
    response
}

/// A refused upgrade in HTTP mode: `status` and the JSON `code`, no upgrade.
fn assert_http(result: Result<(Ws, Handshake), WsError>, status: u16, code: &str) {
    match result {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status().as_u16(), status);
            let body: Value =
                serde_json::from_slice(response.body().as_deref().expect("a body")).unwrap();
            assert_eq!(body["error"]["code"], code, "{body}");
        }
        Err(e) => panic!("expected HTTP {status}, got {e:?}"),
        Ok((_, response)) => panic!(
            "expected HTTP {status}, got an upgrade ({})",
            response.status()
        ),
    }
}

fn forbidden_token() -> String {
    with_claims(json!({"sub": "mallory", "exp": NOW + 3600, "role": "banned"}))
}

// ---------------------------------------------------------------------------------------------
// 1. Rejections in both modes

#[tokio::test]
async fn close_frame_mode_refuses_with_the_close_code_of_each_failure() {
    let s = start(Setup {
        close_frames: true,
        ..Setup::default()
    })
    .await;
    let cases = [
        ("no token", vec![], 4001, "MISSING_TOKEN"),
        (
            "bad signature",
            bearer(&bad_signature("alice")),
            4002,
            "INVALID_TOKEN",
        ),
        ("garbage", bearer("not.a.jwt-at-all"), 4002, "INVALID_TOKEN"),
        ("expired", bearer(&expired("alice")), 4003, "TOKEN_EXPIRED"),
        ("forbidden", bearer(&forbidden_token()), 4000, "FORBIDDEN"),
    ];
    for (what, headers, code, reason) in cases {
        eprintln!("case: {what}");
        let result = connect_from(s.addr, ip(1), "/ws", &headers).await;
        assert_closed_with(result, code, reason).await;
    }
    // No session was ever opened for a refused client.
    assert_eq!(s.sessions.registry().connections(), 0);
    // A good token still gets a working socket in close-frame mode.
    let mut ws = s.open(&fresh("alice")).await;
    assert_echo(&mut ws, "hello").await;
}

#[tokio::test]
async fn close_frame_mode_answers_an_offered_application_protocol() {
    let s = start(Setup {
        close_frames: true,
        extractor: TokenExtractor::new().bearer().websocket_protocol(),
        ..Setup::default()
    })
    .await;
    let offered = format!(
        "chat, base64url.bearer.authorization.jwt.{}",
        URL_SAFE_NO_PAD.encode(expired("alice"))
    );
    let result = connect_from(s.addr, ip(1), "/ws", &[("sec-websocket-protocol", offered)]).await;
    let response = assert_closed_with(result, 4003, "TOKEN_EXPIRED").await;
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
}

#[tokio::test]
async fn http_mode_refuses_before_any_upgrade() {
    let s = start(Setup::default()).await;
    let cases = [
        (vec![], 401, "MISSING_TOKEN"),
        (bearer(&bad_signature("alice")), 401, "INVALID_TOKEN"),
        (bearer("garbage"), 401, "INVALID_TOKEN"),
        (bearer(&expired("alice")), 401, "TOKEN_EXPIRED"),
        (bearer(&forbidden_token()), 403, "FORBIDDEN"),
    ];
    for (headers, status, code) in cases {
        assert_http(
            connect_from(s.addr, ip(1), "/ws", &headers).await,
            status,
            code,
        );
    }
    assert_eq!(s.sessions.registry().connections(), 0);
}

#[tokio::test]
async fn a_locked_address_is_closed_with_4029_in_close_frame_mode() {
    let s = start(Setup {
        close_frames: true,
        lockout: true,
        ..Setup::default()
    })
    .await;
    let locked = ip(9);
    for _ in 0..2 {
        let r = connect_from(s.addr, locked, "/ws", &bearer("garbage")).await;
        assert_closed_with(r, 4002, "INVALID_TOKEN").await;
    }
    // Now even a valid token from that address is refused; another address is not.
    let r = connect_from(s.addr, locked, "/ws", &bearer(&fresh("alice"))).await;
    assert_closed_with(r, 4029, "LOCKED_OUT").await;
    let (mut ws, _) = connect_from(s.addr, ip(10), "/ws", &bearer(&fresh("alice")))
        .await
        .expect("another address is not locked");
    assert_echo(&mut ws, "free").await;
    // After the lock (15 minutes) the address is let in again.
    s.clock.advance(Duration::from_secs(15 * 60 + 1));
    let (mut ws, _) = connect_from(s.addr, locked, "/ws", &bearer(&fresh("alice")))
        .await
        .expect("the lock expired");
    assert_echo(&mut ws, "again").await;
}

#[tokio::test]
async fn a_locked_address_gets_429_in_http_mode() {
    let s = start(Setup {
        lockout: true,
        ..Setup::default()
    })
    .await;
    let locked = ip(11);
    for _ in 0..2 {
        let r = connect_from(s.addr, locked, "/ws", &bearer(&expired("alice"))).await;
        assert_http(r, 401, "TOKEN_EXPIRED");
    }
    let r = connect_from(s.addr, locked, "/ws", &bearer(&fresh("alice"))).await;
    assert_http(r, 429, "LOCKED_OUT");
    let (mut ws, _) = connect_from(s.addr, ip(12), "/ws", &bearer(&fresh("alice")))
        .await
        .expect("another address is not locked");
    assert_echo(&mut ws, "free").await;
}

// ---------------------------------------------------------------------------------------------
// 2. Token sources

#[tokio::test]
async fn each_token_source_opens_a_session() {
    let s = start(Setup {
        extractor: TokenExtractor::new()
            .bearer()
            .query("token")
            .header(HeaderName::from_static("x-auth-token"))
            .cookie("access_token")
            .websocket_protocol(),
        ..Setup::default()
    })
    .await;
    let t = fresh("alice");
    let protocol = format!(
        "echo, base64url.bearer.authorization.jwt.{}",
        URL_SAFE_NO_PAD.encode(&t)
    );
    let cases = [
        ("bearer", "/ws/id".into(), bearer(&t)),
        ("query", format!("/ws/id?token={t}"), vec![]),
        ("header", "/ws/id".into(), vec![("x-auth-token", t.clone())]),
        (
            "cookie",
            "/ws/id".into(),
            vec![("cookie", format!("theme=dark; access_token={t}"))],
        ),
        (
            "websocket_protocol",
            "/ws/id".into(),
            vec![("sec-websocket-protocol", protocol)],
        ),
    ];
    for (source, path, headers) in cases {
        let (mut ws, response) = connect_from(s.addr, ip(1), &path, &headers)
            .await
            .unwrap_or_else(|e| panic!("{source}: {e:?}"));
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        let selected = response.headers().get("sec-websocket-protocol");
        if source == "websocket_protocol" {
            assert_eq!(selected.unwrap(), "echo", "never the token protocol");
        } else {
            assert!(selected.is_none(), "{source}: {selected:?}");
        }
        let hello = json_text(&mut ws).await;
        assert_eq!(hello["source"], source, "{hello}");
        assert_eq!(hello["sub"], "alice");
        assert_eq!(hello["claims_sub"], "alice");
        assert_echo(&mut ws, source).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Expiry, warning, re-authentication

#[tokio::test]
async fn a_short_lived_token_warns_at_once_and_closes_after_exp_plus_leeway() {
    let s = start(Setup::default()).await;
    let exp = NOW + 30;
    let mut ws = s.open(&token("alice", exp)).await;
    // 30 s left is less than the default 5-minute warning time: warned at once.
    assert_eq!(
        json_text(&mut ws).await,
        json!({"type": "token.expiring", "expires_at": exp})
    );
    // One second before exp + leeway the session is open.
    s.clock.advance(Duration::from_secs(30 + LEEWAY - 1));
    assert_echo(&mut ws, "still open").await;
    // Once exp + leeway is reached it closes with 4003, without another warning.
    s.clock.advance(Duration::from_secs(1));
    assert_eq!(close_code(&mut ws).await, 4003);
    s.wait_for("expired session freed", |r| r.connections() == 0)
        .await;
}

#[tokio::test]
async fn the_warning_comes_at_the_configured_time_before_expiry() {
    let s = start(Setup {
        warning: Some(Duration::from_secs(60)),
        ..Setup::default()
    })
    .await;
    let exp = NOW + 600;
    let mut ws = s.open(&token("alice", exp)).await;
    // No warning yet: the first message is the echo.
    assert_echo(&mut ws, "early").await;
    // The warning is due 60 s before exp + leeway.
    s.clock.advance(Duration::from_secs(600 + LEEWAY - 61));
    assert_echo(&mut ws, "before the warning").await;
    s.clock.advance(Duration::from_secs(1));
    assert_eq!(
        json_text(&mut ws).await,
        json!({"type": "token.expiring", "expires_at": exp})
    );
    assert_echo(&mut ws, "after the warning").await;
    s.clock.advance(Duration::from_secs(60));
    assert_eq!(close_code(&mut ws).await, 4003);
}

#[tokio::test]
async fn reauth_extends_for_the_same_subject_only() {
    let s = start(Setup {
        warning: Some(Duration::from_secs(60)),
        ..Setup::default()
    })
    .await;
    let mut ws = s.open(&token("alice", NOW + 600)).await;
    let reauth = |t: &str| Message::text(json!({"type": "reauth", "token": t}).to_string());

    // A valid token for another user is refused as a forged one is: the answers do not tell
    // them apart.
    ws.send(reauth(&fresh("bob"))).await.unwrap();
    assert_eq!(
        json_text(&mut ws).await,
        json!({"type": "reauth.failed", "code": "INVALID_TOKEN"})
    );
    ws.send(reauth("garbage")).await.unwrap();
    assert_eq!(
        json_text(&mut ws).await,
        json!({"type": "reauth.failed", "code": "INVALID_TOKEN"})
    );
    // Three refusals close a socket: go on with a second one.
    let mut ws = s.open(&token("alice", NOW + 600)).await;
    ws.send(reauth(&bad_signature("alice"))).await.unwrap();
    assert_eq!(
        json_text(&mut ws).await,
        json!({"type": "reauth.failed", "code": "INVALID_TOKEN"})
    );
    ws.send(reauth(&expired("alice"))).await.unwrap();
    assert_eq!(
        json_text(&mut ws).await,
        json!({"type": "reauth.failed", "code": "TOKEN_EXPIRED"})
    );

    let new_exp = NOW + 7200;
    ws.send(reauth(&token("alice", new_exp))).await.unwrap();
    assert_eq!(
        json_text(&mut ws).await,
        json!({"type": "reauth.ok", "expires_at": new_exp})
    );
    // Past the first token's exp + leeway the session lives on, without a warning.
    s.clock.advance(Duration::from_secs(600 + LEEWAY + 5));
    assert_echo(&mut ws, "extended").await;
    // The new token's warning and expiry apply.
    s.clock.set_unix_secs(new_exp + LEEWAY - 30);
    assert_eq!(
        json_text(&mut ws).await,
        json!({"type": "token.expiring", "expires_at": new_exp})
    );
    s.clock.set_unix_secs(new_exp + LEEWAY);
    assert_eq!(close_code(&mut ws).await, 4003);
}

#[tokio::test]
async fn failed_reauth_changes_nothing() {
    let s = start(Setup::default()).await;
    let exp = NOW + 600;
    let (mut ws, hello) = {
        let mut ws = s
            .connect("/ws/id", &bearer(&token("alice", exp)))
            .await
            .unwrap();
        let hello = json_text(&mut ws).await;
        (ws, hello)
    };
    assert_eq!(hello["expires_at"], exp);
    ws.send(Message::text(
        json!({"type": "reauth", "token": token("bob", NOW + 7200)}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(json_text(&mut ws).await["type"], "reauth.failed");
    // Still closed at the original time, even though bob's token lives longer.
    s.clock.set_unix_secs(exp + LEEWAY);
    assert_eq!(close_code(&mut ws).await, 4003);
}

// ---------------------------------------------------------------------------------------------
// 3. Connection limits

fn limits_2_3() -> SessionRegistry {
    SessionRegistry::new(ConnectionLimits::new().per_user(2).global(3))
}

#[tokio::test]
async fn per_user_and_global_limits_answer_429() {
    let s = start(Setup {
        registry: limits_2_3(),
        ..Setup::default()
    })
    .await;
    let alice = fresh("alice");
    let mut a1 = s.open(&alice).await;
    let _a2 = s.open(&alice).await;
    let r = connect_from(s.addr, ip(1), "/ws", &bearer(&alice)).await;
    assert_http(r, 429, "RATE_LIMITED");
    // Another user gets in, up to the global limit of 3.
    let mut b1 = s.open(&fresh("bob")).await;
    assert_echo(&mut b1, "bob").await;
    let r = connect_from(s.addr, ip(1), "/ws", &bearer(&fresh("carol"))).await;
    assert_http(r, 429, "RATE_LIMITED");
    assert_eq!(s.sessions.registry().connections(), 3);
    // A refused upgrade leaves nothing behind, and a freed slot is usable again.
    a1.close(None).await.unwrap();
    s.wait_for("a slot freed", |r| r.connections() == 2).await;
    let mut c1 = s.open(&fresh("carol")).await;
    assert_echo(&mut c1, "carol").await;
}

#[tokio::test]
async fn over_a_limit_the_session_close_frames_give_4029_with_the_session_first() {
    let s = start(Setup {
        registry: limits_2_3(),
        close_frames: true,
        ..Setup::default()
    })
    .await;
    let alice = fresh("alice");
    let _a1 = s.open(&alice).await;
    let _a2 = s.open(&alice).await;
    let r = connect_from(s.addr, ip(1), "/ws/session-first", &bearer(&alice)).await;
    assert_closed_with(r, 4029, "RATE_LIMITED").await;
    let _b = s.open(&fresh("bob")).await;
    let r = connect_from(s.addr, ip(1), "/ws/session-first", &bearer(&fresh("carol"))).await;
    assert_closed_with(r, 4029, "RATE_LIMITED").await;
    assert_eq!(s.sessions.registry().connections(), 3);
}

/// The documentation asks for `WsSession` before `WebSocketUpgrade`: axum's upgrade extractor
/// removes hyper's `OnUpgrade`, so with the upgrade taken first a close-frame refusal cannot
/// complete the upgrade. The refusal must then still happen, over HTTP (429), never let the
/// client in.
#[tokio::test]
async fn over_a_limit_with_the_upgrade_taken_first_the_refusal_falls_back_to_http() {
    let s = start(Setup {
        registry: limits_2_3(),
        close_frames: true,
        ..Setup::default()
    })
    .await;
    let alice = fresh("alice");
    let _a1 = s.open(&alice).await;
    let _a2 = s.open(&alice).await;
    let r = connect_from(s.addr, ip(1), "/ws", &bearer(&alice)).await;
    assert_http(r, 429, "RATE_LIMITED");
    assert_eq!(s.sessions.registry().connections(), 2);
}

#[tokio::test]
async fn a_plan_has_its_own_per_user_limit() {
    let s = start(Setup {
        registry: SessionRegistry::new(
            ConnectionLimits::new()
                .per_user(1)
                .per_user_on_plan("pro", 3)
                .unwrap(),
        ),
        plan: true,
        ..Setup::default()
    })
    .await;
    let free = fresh("frank");
    let _f1 = s.open(&free).await;
    let r = connect_from(s.addr, ip(1), "/ws", &bearer(&free)).await;
    assert_http(r, 429, "RATE_LIMITED");

    let pro = with_claims(json!({"sub": "paula", "exp": NOW + 3600, "plan": "pro"}));
    let mut held = Vec::new();
    for _ in 0..3 {
        let (ws, hello) = s.open_id(&pro).await;
        assert_eq!(hello["plan"], "pro");
        held.push(ws);
    }
    let r = connect_from(s.addr, ip(1), "/ws", &bearer(&pro)).await;
    assert_http(r, 429, "RATE_LIMITED");
    assert_eq!(s.sessions.registry().connections_of("paula"), 3);
    assert_eq!(s.sessions.registry().connections_of("frank"), 1);
}

// ---------------------------------------------------------------------------------------------
// 4. The registry

#[tokio::test]
async fn registry_counts_sends_to_a_user_and_revokes_a_user() {
    let s = start(Setup::default()).await;
    let registry = s.sessions.registry();
    let alice = fresh("alice");
    let mut a1 = s.open(&alice).await;
    let mut a2 = s.open(&alice).await;
    let mut b1 = s.open(&fresh("bob")).await;
    // The upgrade has completed once each socket echoes.
    for ws in [&mut a1, &mut a2, &mut b1] {
        assert_echo(ws, "up").await;
    }
    let stats = registry.stats();
    assert_eq!(stats.connections, 3);
    assert_eq!(stats.users, 2);
    assert_eq!(stats.per_user.get("alice"), Some(&2));
    assert_eq!(stats.per_user.get("bob"), Some(&1));

    assert_eq!(registry.send_to_user("alice", "to alice"), 2);
    assert_eq!(next_text(&mut a1).await, "to alice");
    assert_eq!(next_text(&mut a2).await, "to alice");
    // Bob's next message is his own echo, not alice's message.
    assert_echo(&mut b1, "bob only").await;
    assert_eq!(registry.send_to_user("nobody", "x"), 0);

    assert_eq!(registry.revoke_user("alice"), 2);
    assert_eq!(close_code(&mut a1).await, 4002);
    assert_eq!(close_code(&mut a2).await, 4002);
    assert_echo(&mut b1, "still here").await;
    s.wait_for("alice's sessions freed", |r| {
        r.connections() == 1 && r.connections_of("alice") == 0
    })
    .await;
    assert_eq!(registry.users(), 1);
}

#[tokio::test]
async fn stats_return_to_zero_after_clean_closes_and_vanished_clients() {
    let s = start(Setup::default()).await;
    let mut clean = Vec::new();
    let mut vanish = Vec::new();
    for n in 0..6 {
        let mut ws = s.open(&fresh(&format!("user{}", n % 3))).await;
        assert_echo(&mut ws, "up").await;
        if n % 2 == 0 {
            clean.push(ws);
        } else {
            vanish.push(ws);
        }
    }
    let stats = s.sessions.registry().stats();
    assert_eq!((stats.connections, stats.users), (6, 3));
    for ws in &mut clean {
        // Whether the server answers the close is checked below; here only that it ends.
        ws.close(None).await.unwrap();
        while let Some(Ok(_)) = timeout(WAIT, ws.next()).await.expect("socket end") {}
    }
    s.wait_for("clean closes freed", |r| r.connections() == 3)
        .await;
    // The others just drop their TCP connection, no close frame.
    drop(vanish);
    s.wait_for("vanished clients freed", |r| r.connections() == 0)
        .await;
    assert_eq!(s.sessions.registry().stats(), Default::default());
}

/// Sends a close frame and reads to the end: `Ok` when the server answered with its own close
/// frame (RFC 6455 5.5.1), the error otherwise.
async fn close_handshake(ws: &mut Ws) -> Result<(), String> {
    ws.close(None).await.map_err(|e| e.to_string())?;
    let mut answered = false;
    loop {
        match timeout(WAIT, ws.next()).await.expect("socket end in time") {
            Some(Ok(Message::Close(_))) => answered = true,
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None if answered => return Ok(()),
            None => return Err("ended without a close reply".into()),
        }
    }
}

#[tokio::test]
async fn plain_axum_answers_a_client_close() {
    // The control for the next test: without the guard, the same echo loop completes the close
    // handshake.
    let s = start(Setup::default()).await;
    for _ in 0..3 {
        let mut ws = s.connect("/plain", &[]).await.unwrap();
        assert_echo(&mut ws, "plain").await;
        assert_eq!(close_handshake(&mut ws).await, Ok(()));
    }
}

#[tokio::test]
async fn an_authenticated_socket_answers_a_client_close() {
    let s = start(Setup::default()).await;
    for _ in 0..3 {
        let mut ws = s.open(&fresh("alice")).await;
        assert_echo(&mut ws, "guarded").await;
        assert_eq!(close_handshake(&mut ws).await, Ok(()));
    }
}

#[tokio::test]
async fn a_rate_limited_socket_answers_a_client_close() {
    let s = start(Setup::default()).await;
    for _ in 0..3 {
        let mut ws = s
            .connect("/ws/limited", &bearer(&fresh("alice")))
            .await
            .unwrap();
        assert_echo(&mut ws, "limited").await;
        assert_eq!(close_handshake(&mut ws).await, Ok(()));
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Session ids

#[tokio::test]
async fn two_devices_of_one_user_have_distinct_session_ids() {
    let s = start(Setup::default()).await;
    let alice = fresh("alice");
    let (mut phone, p) = s.open_id(&alice).await;
    let (mut laptop, l) = s.open_id(&alice).await;
    assert_eq!(p["sub"], "alice");
    assert_eq!(l["sub"], "alice");
    let (p, l) = (p["id"].as_u64().unwrap(), l["id"].as_u64().unwrap());
    assert_ne!(p, l);
    assert_echo(&mut phone, "phone").await;
    assert_echo(&mut laptop, "laptop").await;
    // A new session after one ends gets a fresh id too.
    phone.close(None).await.unwrap();
    s.wait_for("phone freed", |r| r.connections() == 1).await;
    let (_tablet, t) = s.open_id(&alice).await;
    let t = t["id"].as_u64().unwrap();
    assert!(t != p && t != l, "{t} reused");
}

// ---------------------------------------------------------------------------------------------
// 6. RateLimitedSocket over axum's WebSocket

#[tokio::test]
async fn rate_limited_socket_sends_notices_then_closes_a_flood_with_1008() {
    let s = start(Setup::default()).await;
    let mut ws = s
        .connect("/ws/limited", &bearer(&fresh("alice")))
        .await
        .unwrap();
    for i in 0..5 {
        ws.send(Message::text(format!("m{i}"))).await.unwrap();
    }
    for i in 0..3 {
        assert_eq!(next_text(&mut ws).await, format!("m{i}"));
    }
    for _ in 0..2 {
        let notice = json_text(&mut ws).await;
        assert_eq!(notice["type"], "rate_limited");
        assert_eq!(notice["code"], "RATE_LIMITED");
        assert!(notice["retry_after_ms"].as_u64().unwrap() > 0);
    }
    // A second later the budget is back and the strikes are forgotten.
    s.clock.advance(Duration::from_secs(1));
    assert_echo(&mut ws, "later").await;
    // Flooding: 10 a second against 3, for over a second (the flood window here): each
    // message is answered before the clock moves 100 ms; refusals interleave with deliveries
    // until the close.
    let (mut echoes, mut notices) = (0, 0);
    let mut code = None;
    for i in 0..40 {
        ws.send(Message::text(format!("f{i}"))).await.unwrap();
        match timeout(WAIT, ws.next())
            .await
            .expect("an answer to every message")
        {
            Some(Ok(Message::Text(t))) if t.contains("rate_limited") => notices += 1,
            Some(Ok(Message::Text(_))) => echoes += 1,
            Some(Ok(Message::Close(Some(frame)))) => {
                code = Some(u16::from(frame.code));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
        s.clock.advance(Duration::from_millis(100));
    }
    assert_eq!(code, Some(1008));
    assert!(
        echoes >= 3 && notices > 3,
        "{echoes} echoes, {notices} notices"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Plain hyper + tokio-tungstenite

type HyperBody = Full<Bytes>;

fn hyper_response(status: StatusCode, body: &str) -> http::Response<HyperBody> {
    let mut r = http::Response::new(Full::new(Bytes::from(body.to_owned())));
    *r.status_mut() = status;
    r
}

async fn hyper_ws_handler(
    sessions: WsSessions<WsClaims>,
    mut req: http::Request<Incoming>,
) -> Result<http::Response<HyperBody>, Infallible> {
    let headers = req.headers();
    let upgrade = headers
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let version = headers.get("sec-websocket-version").map(|v| v.as_bytes()) == Some(b"13");
    let (Some(key), true, true) = (headers.get("sec-websocket-key"), upgrade, version) else {
        return Ok(hyper_response(StatusCode::BAD_REQUEST, "not a WebSocket"));
    };
    let accept = derive_accept_key(key.as_bytes());
    let session = match sessions.open(req.headers(), req.extensions()) {
        Ok(session) => session,
        Err(e) => {
            return Ok(hyper_response(
                StatusCode::TOO_MANY_REQUESTS,
                e.code().as_str(),
            ));
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let config = Some(sessions.websocket_config());
        let stream =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, config).await;
        let mut socket = session.attach(stream);
        while let Some(Ok(message)) = socket.recv().await {
            if message.is_text() && socket.send(message).await.is_err() {
                break;
            }
        }
    });
    let mut response = hyper_response(StatusCode::SWITCHING_PROTOCOLS, "");
    let h = response.headers_mut();
    h.insert("upgrade", "websocket".parse().unwrap());
    h.insert("connection", "upgrade".parse().unwrap());
    h.insert("sec-websocket-accept", accept.parse().unwrap());
    Ok(response)
}

#[tokio::test]
async fn plain_hyper_with_tokio_tungstenite_echoes_and_expires() {
    common::init_crypto();
    let clock = FakeClock::at_unix_secs(NOW);
    let auth = JwtAuthLayer::new(validator(&clock));
    let sessions = WsSessions::builder(auth.validator().clone())
        .max_tick(TICK)
        .build()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = sessions.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let sessions = serving.clone();
            let svc = ServiceBuilder::new()
                .layer(auth.clone())
                .service(service_fn(move |req| {
                    hyper_ws_handler(sessions.clone(), req)
                }));
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                    .with_upgrades()
                    .await;
            });
        }
    });
    struct Abort(JoinHandle<()>);
    impl Drop for Abort {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _task = Abort(task);

    // Refused before the upgrade: the layer's HTTP answer.
    assert_http(
        connect_from(addr, ip(1), "/ws", &[]).await,
        401,
        "MISSING_TOKEN",
    );

    let exp = NOW + 3600;
    let (mut ws, response) = connect_from(addr, ip(1), "/ws", &bearer(&token("alice", exp)))
        .await
        .expect("upgrade");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_echo(&mut ws, "over hyper").await;
    let stats = sessions.registry().stats();
    assert_eq!(stats.per_user.get("alice"), Some(&1));
    assert_eq!(sessions.registry().send_to_user("alice", "pushed"), 1);
    assert_eq!(next_text(&mut ws).await, "pushed");

    clock.set_unix_secs(exp - 60);
    assert_eq!(
        json_text(&mut ws).await,
        json!({"type": "token.expiring", "expires_at": exp})
    );
    assert_echo(&mut ws, "warned").await;
    clock.set_unix_secs(exp + LEEWAY);
    assert_eq!(close_code(&mut ws).await, 4003);
    for _ in 0..250 {
        if sessions.registry().connections() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sessions.registry().stats(), Default::default());
}

// ---------------------------------------------------------------------------------------------
// 8. Sessions act without the application's help (hardening defect 3)

/// Reads until the close frame, skipping the handler's ticks and anything else; returns the
/// close code and the texts that were not ticks.
async fn close_among_ticks(ws: &mut Ws) -> (u16, Vec<String>) {
    let mut others = Vec::new();
    loop {
        match timeout(WAIT, ws.next()).await.expect("no close in time") {
            Some(Ok(Message::Close(Some(frame)))) => return (u16::from(frame.code), others),
            Some(Ok(Message::Text(t))) if t.as_str() == "tick" => {}
            Some(Ok(Message::Text(t))) => others.push(t.to_string()),
            Some(Ok(_)) => {}
            other => panic!("ended without a close code: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_push_only_handler_session_still_ends_at_expiry() {
    let s = start(Setup::default()).await;
    let mut ws = s
        .connect("/ws/push", &bearer(&token("alice", NOW + 60)))
        .await
        .unwrap();
    // The warning (less than its 5 minutes are left) and the handler's ticks.
    while next_text(&mut ws).await != "tick" {}
    // The handler never calls `recv`; the session's own task closes at exp + leeway.
    s.clock.advance(Duration::from_secs(60 + LEEWAY));
    let (code, others) = close_among_ticks(&mut ws).await;
    assert_eq!(code, 4003);
    assert!(
        others.iter().all(|t| t.contains("token.expiring")),
        "{others:?}"
    );
    s.wait_for("the slot is freed", |r| r.connections() == 0)
        .await;
}

#[tokio::test]
async fn a_push_only_handler_session_is_revoked_and_notified() {
    let s = start(Setup::default()).await;
    let mut ws = s
        .connect("/ws/push", &bearer(&fresh("alice")))
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await, "tick");
    let registry = s.sessions.registry();
    assert_eq!(registry.notify_user("alice", "hi \"there\""), 1);
    loop {
        let text = next_text(&mut ws).await;
        if text != "tick" {
            let json: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                json,
                json!({"type": "notification", "message": "hi \"there\""})
            );
            break;
        }
    }
    assert_eq!(registry.revoke_user("alice"), 1);
    assert_eq!(close_among_ticks(&mut ws).await.0, 4002);
}
