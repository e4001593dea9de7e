//! The axum server every topic of this suite runs against, its handlers, and tokens. Time moves
//! with the server's FakeClock; sessions look at it every 20 ms.
#![allow(unused_imports)]

pub(crate) use crate::common;
pub(crate) use crate::common::ws::*;
pub(crate) use crate::common::{HMAC_SECRET, NOW, sign_hs256};
pub(crate) use std::convert::Infallible;
pub(crate) use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
pub(crate) use std::num::NonZeroU32;
pub(crate) use std::sync::Arc;
pub(crate) use std::time::Duration;

pub(crate) use axum::extract::ws::{Message as AxMessage, WebSocket, WebSocketUpgrade};
pub(crate) use axum::response::Response;
pub(crate) use axum::routing::get;
pub(crate) use axum::{Extension, Router};
pub(crate) use base64::Engine;
pub(crate) use base64::engine::general_purpose::URL_SAFE_NO_PAD;
pub(crate) use bytes::Bytes;
pub(crate) use futures_util::{SinkExt, StreamExt};
pub(crate) use http::{HeaderName, StatusCode};
pub(crate) use http_body_util::Full;
pub(crate) use hyper::body::Incoming;
pub(crate) use hyper_util::rt::TokioIo;
pub(crate) use hyper_util::service::TowerToHyperService;
pub(crate) use serde::Deserialize;
pub(crate) use serde_json::{Value, json};
pub(crate) use tokio::net::{TcpListener, TcpSocket, TcpStream};
pub(crate) use tokio::task::JoinHandle;
pub(crate) use tokio::time::timeout;
pub(crate) use tokio_tungstenite::WebSocketStream;
pub(crate) use tokio_tungstenite::tungstenite::client::IntoClientRequest;
pub(crate) use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
pub(crate) use tokio_tungstenite::tungstenite::protocol::Role;
pub(crate) use tokio_tungstenite::tungstenite::{Error as WsError, Message};
pub(crate) use tower::ServiceBuilder;
pub(crate) use tower::service_fn;
pub(crate) use tower_jwt_guard::clock::FakeClock;
pub(crate) use tower_jwt_guard::extract::TokenExtractor;
pub(crate) use tower_jwt_guard::keys::Key;
pub(crate) use tower_jwt_guard::lockout::{LockoutLayer, LockoutPolicy};
pub(crate) use tower_jwt_guard::rate_limit::{MessageLimiter, PlanQuotas, Quota};
pub(crate) use tower_jwt_guard::response::{JsonResponder, Responder};
pub(crate) use tower_jwt_guard::validate::Validator;
pub(crate) use tower_jwt_guard::ws::{
    AuthenticatedSocket, CloseFrameResponder, ConnectionLimits, RateLimitedSocket, SessionRegistry,
    WsSession, WsSessions,
};
pub(crate) use tower_jwt_guard::{AuthContext, JwtAuthLayer};

pub(crate) const TICK: Duration = Duration::from_millis(20);
pub(crate) const LEEWAY: u64 = 10;

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WsClaims {
    pub(crate) sub: String,
    #[serde(default)]
    pub(crate) role: Option<String>,
    #[serde(default)]
    pub(crate) plan: Option<String>,
}

pub(crate) fn plan_of(c: &WsClaims) -> Option<&str> {
    c.plan.as_deref()
}

// ---------------------------------------------------------------------------------------------
// Tokens

pub(crate) fn token(sub: &str, exp: u64) -> String {
    sign_hs256(&json!({"sub": sub, "exp": exp}))
}

/// A token for `sub` valid for an hour after [`NOW`].
pub(crate) fn fresh(sub: &str) -> String {
    token(sub, NOW + 3600)
}

pub(crate) fn with_claims(claims: Value) -> String {
    sign_hs256(&claims)
}

/// A well-formed token signed with another key.
pub(crate) fn bad_signature(sub: &str) -> String {
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

pub(crate) fn expired(sub: &str) -> String {
    token(sub, NOW - 3600)
}

// ---------------------------------------------------------------------------------------------
// The axum server

pub(crate) struct Setup {
    pub(crate) extractor: TokenExtractor,
    /// One `CloseFrameResponder` for every layer and the sessions.
    pub(crate) close_frames: bool,
    pub(crate) lockout: bool,
    pub(crate) registry: SessionRegistry,
    pub(crate) warning: Option<Duration>,
    pub(crate) plan: bool,
    /// The sessions' re-authentication token cap, when not the default.
    pub(crate) max_token_len: Option<usize>,
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
            max_token_len: None,
        }
    }
}

pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) clock: FakeClock,
    pub(crate) sessions: WsSessions<WsClaims>,
    _server: common::TestServer,
}

pub(crate) fn validator(clock: &FakeClock) -> Validator<WsClaims> {
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

pub(crate) async fn start(setup: Setup) -> Server {
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
    if let Some(max) = setup.max_token_len {
        sessions = sessions.max_token_len(max);
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
    let server = common::serve(router).await;
    Server {
        addr: server.addr,
        clock,
        sessions,
        _server: server,
    }
}

/// Echoes text and binary messages until the session ends.
pub(crate) async fn run_echo(mut socket: AuthenticatedSocket<WebSocket, WsClaims>) {
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
pub(crate) async fn echo(upgrade: WebSocketUpgrade, session: WsSession<WsClaims>) -> Response {
    let protocols = session
        .application_protocols()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    upgrade
        .protocols(protocols)
        .on_upgrade(|socket| run_echo(session.attach(socket)))
}

pub(crate) async fn echo_session_first(
    session: WsSession<WsClaims>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let protocols = session
        .application_protocols()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    upgrade
        .protocols(protocols)
        .on_upgrade(|socket| run_echo(session.attach(socket)))
}

/// Sends `{"id":..,"sub":..,"source":..,"plan":..}` first, then echoes.
pub(crate) async fn echo_with_id(
    upgrade: WebSocketUpgrade,
    session: WsSession<WsClaims>,
) -> Response {
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
pub(crate) async fn plain_echo(upgrade: WebSocketUpgrade) -> Response {
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
pub(crate) async fn push_only(session: WsSession<WsClaims>, upgrade: WebSocketUpgrade) -> Response {
    session.configure(upgrade).on_upgrade(|socket| async move {
        let socket = session.attach(socket);
        while socket.send(AxMessage::Text("tick".into())).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

/// Only the message limit, over axum's WebSocket.
pub(crate) async fn limited_echo(
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

impl Server {
    pub(crate) async fn connect(
        &self,
        path: &str,
        headers: &[(&str, String)],
    ) -> Result<Ws, WsError> {
        connect_from(self.addr, ip(1), path, headers)
            .await
            .map(|(ws, _)| ws)
    }

    pub(crate) async fn open(&self, token: &str) -> Ws {
        self.connect("/ws", &bearer(token)).await.expect("upgrade")
    }

    /// Connects to `/ws/id` and returns the socket and its hello message.
    pub(crate) async fn open_id(&self, token: &str) -> (Ws, Value) {
        let mut ws = self
            .connect("/ws/id", &bearer(token))
            .await
            .expect("upgrade");
        let hello = json_text(&mut ws).await;
        (ws, hello)
    }

    /// Polls the registry (every 20 ms, up to 5 s) until `check` holds.
    pub(crate) async fn wait_for(&self, what: &str, check: impl Fn(&SessionRegistry) -> bool) {
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

pub(crate) fn forbidden_token() -> String {
    with_claims(json!({"sub": "mallory", "exp": NOW + 3600, "role": "banned"}))
}
