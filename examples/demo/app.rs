//! The demo application: routes, token rules and the mock issuer, built from the crate's public
//! API. `main.rs` serves it; the contract tests build it with a controllable clock.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use super::grpc;
use tower_jwt_guard::clock::Clock;
use tower_jwt_guard::extract::TokenExtractor;
use tower_jwt_guard::jsonwebtoken::{EncodingKey, Header, encode};
use tower_jwt_guard::keys::{Key, MIN_HMAC_SECRET_LEN};
use tower_jwt_guard::lockout::{LockoutLayer, LockoutPolicy};
use tower_jwt_guard::rate_limit::{MessageLimiter, PlanQuotas, Quota, UserRateLimitLayer};
use tower_jwt_guard::redis::FanoutError;
use tower_jwt_guard::redis::{RedisClient, RedisFanout, RedisLockoutStore, RedisRateLimitStore};
use tower_jwt_guard::remote_keys::{HttpFetcher, RemoteKeySet};
use tower_jwt_guard::response::{JsonResponder, json_body};
use tower_jwt_guard::revocation::{RevocationError, RevocationList, Revoked};
use tower_jwt_guard::stream_expiry::StreamExpiryLayer;
use tower_jwt_guard::validate::{Issuer, Validator, ValidatorBuilder};
use tower_jwt_guard::ws::{ConnectionLimits, SessionRegistry, WsSession, WsSessions};
use tower_jwt_guard::{Algorithm, AuthContext, AuthError, Claims, ConfigError, JwtAuthLayer};

/// A client that has not sent its whole request head within this time is disconnected.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a token from `POST /auth/token` lives unless its `ttl` says otherwise.
pub const TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

/// The longest `ttl` of `POST /auth/token`, and so the validator's maximum token lifetime (and
/// the revocation list's).
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(86_400);

/// The demo's claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoClaims {
    /// The user id.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Must be `"access"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Absent, `"demo"`, or the `OIDC_ISSUER`'s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// `"free"` or `"pro"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// `"admin"` opens the admin routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// What the demo needs to start.
#[derive(Clone)]
pub struct DemoConfig {
    /// The HS256 secret.
    pub secret: Vec<u8>,
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
    /// How often a WebSocket session looks at the clock at the least (exact deadlines are
    /// used anyway; tests that move a fake clock use a few milliseconds).
    pub session_tick: Duration,
    /// How long a write to a WebSocket client may wait before the client is deemed not to read
    /// and is disconnected (10 s in the demo; tests use less).
    pub send_timeout: Duration,
    /// `REDIS_URL`'s client: lockout, quotas, revocations and notifications shared by every
    /// demo process on that Redis. `None`: in memory.
    pub redis: Option<RedisClient>,
    /// `OIDC_ISSUER`: an OpenID Connect issuer whose tokens are accepted too.
    pub oidc: Option<OidcConfig>,
}

/// `OIDC_ISSUER` and what tunes it.
#[derive(Clone, Debug)]
pub struct OidcConfig {
    /// The issuer URL (`iss`, and where discovery starts).
    pub issuer: String,
    /// `OIDC_AUDIENCE`: when set, the issuer's tokens must name it in `aud`.
    pub audience: Option<String>,
    /// `JWKS_REFRESH_S` (default 600 s).
    pub refresh: Duration,
    /// `JWKS_COOLDOWN_S` (default 30 s): the shortest time between fetches caused by
    /// unknown kids.
    pub cooldown: Duration,
}

#[derive(Clone)]
struct AppState {
    signing: Arc<EncodingKey>,
    clock: Arc<dyn Clock>,
    revocations: RevocationList,
    registry: SessionRegistry,
    /// With `REDIS_URL`: revocations and notifications reach every demo process.
    fanout: Option<RedisFanout>,
}

/// The validator: HS256 only, 10 s leeway, `sub` and `exp` required, `type == "access"`
/// (without the revocation list, which [`app`] adds; `tests/tonic_server.rs` uses it).
#[allow(dead_code)]
pub fn validator(config: &DemoConfig) -> Result<Validator<DemoClaims>, ConfigError> {
    validator_builder(config)?.build()
}

/// The revocation list of the admin routes: it covers the demo's longest token lifetime.
pub fn revocation_list(config: &DemoConfig) -> RevocationList {
    RevocationList::builder(MAX_TOKEN_TTL)
        .clock(Arc::clone(&config.clock))
        .build()
}

fn validator_builder(config: &DemoConfig) -> Result<ValidatorBuilder<DemoClaims>, ConfigError> {
    let key = if config.secret.len() >= MIN_HMAC_SECRET_LEN {
        Key::hmac(&config.secret)?
    } else {
        // The demo accepts whatever JWT_SECRET it is given, loudly; see main.rs.
        Key::hmac_insecure_short(&config.secret)?
    };
    let oidc_issuer = config.oidc.as_ref().map(|o| o.issuer.clone());
    let mut builder = Validator::builder();
    if let Some(oidc) = &config.oidc {
        builder = builder.issuer(oidc_issuer_config(oidc)?);
    }
    Ok(builder
        .key(key)
        .algorithms([Algorithm::HS256])
        .leeway(Duration::from_secs(10))
        .required_claims(["sub", "exp"])
        .require("the token is not an access token", |c: &DemoClaims| {
            c.kind == "access"
        })
        .require("the token plan is not recognised", |c: &DemoClaims| {
            matches!(c.plan.as_deref(), None | Some("free" | "pro"))
        })
        // The demo's own tokens carry no `iss` or "demo"; the OIDC issuer's are routed to its
        // keys by their `iss` (a token naming it is never checked with JWT_SECRET).
        .require("the token issuer is not accepted", move |c: &DemoClaims| {
            c.iss.is_none() || c.iss.as_deref() == Some("demo") || c.iss == oidc_issuer
        })
        // No token of the demo's lives longer than a day (POST /auth/token's longest `ttl`);
        // without this, `exp` far in the future would be accepted until then.
        .max_lifetime(MAX_TOKEN_TTL)
        .clock(Arc::clone(&config.clock)))
}

/// The OIDC issuer: keys found by discovery and kept fresh, RS256, ES256 or EdDSA, the
/// audience when `OIDC_AUDIENCE` is set. Starts the key set's refresher when a tokio runtime
/// runs.
fn oidc_issuer_config(oidc: &OidcConfig) -> Result<Issuer, ConfigError> {
    let set = RemoteKeySet::discover(oidc.issuer.clone(), HttpFetcher::new()?)
        .refresh_every(oidc.refresh)
        .cooldown(oidc.cooldown)
        .max_stale(
            oidc.refresh
                .saturating_mul(2)
                .max(Duration::from_secs(86_400)),
        )
        .build()?;
    if tokio::runtime::Handle::try_current().is_ok() {
        set.spawn_refresher();
    }
    let issuer = Issuer::new(oidc.issuer.clone())
        .remote_keys(set)
        .algorithms([Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]);
    Ok(match &oidc.audience {
        Some(audience) => issuer.audiences([audience.clone()]),
        None => issuer.accept_any_audience(),
    })
}

/// The token sources of the contract: Bearer, `?token=`, `X-Auth-Token`, WebSocket subprotocol.
pub fn extractor() -> TokenExtractor {
    TokenExtractor::new()
        .bearer()
        .query("token")
        .header(axum::http::HeaderName::from_static("x-auth-token"))
        .websocket_protocol()
}

/// The whole demo router.
pub fn app(config: &DemoConfig) -> Result<Router, ConfigError> {
    // Revocations are checked in memory on every request (HTTP, gRPC, WebSocket
    // re-authentication); a revoked subject's live WebSocket sessions close with 4002.
    let revocations = revocation_list(config);
    let validator = validator_builder(config)?
        .revocations(revocations.clone())
        .build()?;
    let auth = JwtAuthLayer::builder(validator)
        .extractor(extractor())
        .build()?;
    let registry = SessionRegistry::new(ConnectionLimits::new().global(MAX_WEBSOCKETS));
    {
        // Local revocations and those applied from other processes alike.
        let registry = registry.clone();
        revocations.on_revoke(move |revoked| {
            if let Revoked::Subject { subject, .. } = revoked {
                registry.revoke_user(subject);
            }
        });
    }
    let fanout = config.redis.as_ref().map(|client| {
        let notified = registry.clone();
        let fanout =
            RedisFanout::start(client.clone(), revocations.clone(), move |sub, message| {
                notified.notify_user(sub, message);
            });
        // `/admin/stats` adds up every process's sessions.
        fanout.share_stats(registry.clone());
        fanout
    });
    let state = AppState {
        // Not empty: `validator` above refused an empty secret.
        signing: Arc::new(
            EncodingKey::from_secret(&config.secret).expect("the validator checked the secret"),
        ),
        clock: Arc::clone(&config.clock),
        revocations,
        registry: registry.clone(),
        fanout,
    };
    // 5 failures within 15 minutes lock an address for 15 minutes (the policy's defaults). No
    // proxy is trusted: X-Forwarded-For and Forwarded from clients change nothing.
    let policy = LockoutPolicy::new();
    let lockout = LockoutLayer::builder(policy.clone())
        .clock(Arc::clone(&config.clock))
        .on_lock(|event| {
            tracing::warn!(client = %event.ip, failures = event.failures, "demo: address locked");
        });
    // 30 orders per minute per user, keyed on the token's subject. GCRA: a burst of 30, then
    // one every 2 s, so up to 35 pass in the first 10 s (see the rate_limit module docs;
    // `strict_quota` never lets more than 30 into any minute).
    // With Redis, the quotas are counted there (by Redis's clock), shared by every process.
    let orders = PlanQuotas::new(Quota::per_minute(
        std::num::NonZeroU32::new(30).expect("30 is not zero"),
    ));
    let orders_limit = UserRateLimitLayer::builder(orders.clone()).clock(Arc::clone(&config.clock));
    // WebSocket sessions: the same validator re-authenticates them; 10 messages per second per
    // user across all of that user's connections.
    let messages = PlanQuotas::new(Quota::per_second(
        std::num::NonZeroU32::new(10).expect("10 is not zero"),
    ));
    let messages_limit = MessageLimiter::builder(messages.clone()).clock(Arc::clone(&config.clock));
    let sessions = WsSessions::builder(auth.validator().clone());
    let sessions = match &config.redis {
        Some(client) => sessions.message_limiter(
            messages_limit
                .store(RedisRateLimitStore::new(client.clone(), messages).namespace("messages"))
                .build()?,
        ),
        None => sessions.message_limiter(messages_limit.build()?),
    };
    let sessions = sessions
        .max_tick(config.session_tick)
        .registry(registry)
        .max_message_size(64 * 1024)
        .send_timeout(config.send_timeout)
        .build()?;
    // gRPC: tonic's routes mounted in the same axum router, so that gRPC calls go through the
    // same layers as HTTP requests. `PlaceOrder` gets the orders quota (the same layer, so
    // the same per-user budget as `POST /orders`); the health service needs no token.
    let (orders_route, grpc_demo) = match &config.redis {
        Some(client) => order_routes(
            orders_limit
                .store(RedisRateLimitStore::new(client.clone(), orders).namespace("orders"))
                .build()?,
        ),
        None => order_routes(orders_limit.build()?),
    };
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    // Uncontended at start-up: completes at once.
    let _ = futures_util::FutureExt::now_or_never(
        health_reporter.set_serving::<grpc::DemoServer<grpc::DemoGrpc>>(),
    );
    let grpc_health = tonic::service::Routes::new(health_service)
        .into_axum_router()
        .reset_fallback();
    // A `Watch` stream (or any streaming response) ends when its token expires.
    let stream_expiry = StreamExpiryLayer::builder(auth.validator())
        .max_tick(config.session_tick)
        .build()?;
    let protected: Router = Router::new()
        .route("/me", get(me))
        // The sessions only where they are used: a layer on the whole router would box every
        // route once more.
        .route("/ws", get(ws_echo).layer(Extension(sessions)))
        .route("/admin/revoke", post(admin_revoke))
        .route("/admin/notify", post(admin_notify))
        .route("/admin/stats", get(admin_stats))
        .with_state(state.clone())
        .merge(orders_route)
        .merge(grpc_demo)
        // One route layer for both (auth outermost): each `route_layer` call boxes every
        // route's service, future and body once more.
        .route_layer(
            tower::ServiceBuilder::new()
                .layer(auth)
                .layer(stream_expiry),
        );
    // The lockout wraps everything, auth included, so it sees auth's rejections and refuses a
    // locked address on every route, HTTP, WebSocket and gRPC, before any token is parsed.
    // Every layer renders its rejections with the default responder: gRPC statuses for gRPC
    // calls (the `tonic` feature), JSON for the rest.
    let router = Router::new()
        .route("/health", get(health))
        .route("/auth/token", post(issue_token))
        .with_state(state)
        .merge(protected)
        .merge(grpc_health);
    Ok(match &config.redis {
        Some(client) => router.layer(
            lockout
                .store(RedisLockoutStore::new(client.clone(), &policy))
                .build()?,
        ),
        None => router.layer(lockout.build()?),
    })
}

/// `POST /orders` and the gRPC demo service, whose `PlaceOrder` shares the orders quota (the
/// same layer, so the same per-user budget).
fn order_routes<St>(orders_limit: UserRateLimitLayer<St>) -> (Router, Router)
where
    St: tower_jwt_guard::rate_limit::RateLimitStore,
{
    let demo = grpc::DemoServer::new(grpc::DemoGrpc::default());
    // tonic's router answers unknown paths with gRPC `UNIMPLEMENTED`; the demo's HTTP routes
    // keep axum's 404, so that fallback goes.
    let grpc_demo = tonic::service::Routes::new(demo.clone())
        .into_axum_router()
        .reset_fallback()
        .route_service(
            "/demo.v1.Demo/PlaceOrder",
            tower::Layer::layer(&orders_limit, demo),
        );
    let orders = Router::new().route("/orders", post(create_order).layer(orders_limit));
    (orders, grpc_demo)
}

/// Signs an access token for `sub` (the mock issuer's logic, also used to print the start-up
/// token): the default lifetime, no role.
pub fn sign_access_token(
    signing: &EncodingKey,
    clock: &dyn Clock,
    sub: &str,
    plan: Option<&str>,
) -> Result<String, AuthError> {
    let iat = clock.now().as_secs();
    sign_token(signing, sub, plan, None, iat, TOKEN_TTL.as_secs())
}

/// Signs an access token issued at `iat` that lives `ttl` seconds.
fn sign_token(
    signing: &EncodingKey,
    sub: &str,
    plan: Option<&str>,
    role: Option<&str>,
    iat: u64,
    ttl: u64,
) -> Result<String, AuthError> {
    let claims = DemoClaims {
        sub: sub.to_owned(),
        iat: Some(iat),
        exp: iat + ttl,
        nbf: None,
        kind: "access".to_owned(),
        iss: None,
        plan: plan.map(str::to_owned),
        role: role.map(str::to_owned),
    };
    encode(&Header::new(Algorithm::HS256), &claims, signing)
        .map_err(|_| AuthError::auth_failed("the token could not be signed"))
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

#[derive(Deserialize)]
struct TokenRequest {
    sub: String,
    #[serde(default)]
    plan: Option<String>,
    /// Seconds, 1 to 86 400.
    #[serde(default)]
    ttl: Option<u64>,
    #[serde(default)]
    role: Option<String>,
}

fn bad_request(message: &'static str) -> Response {
    let body = serde_json::json!({ "error": { "code": "BAD_REQUEST", "message": message } });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

async fn issue_token(
    State(state): State<AppState>,
    body: Result<Json<TokenRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(req)) = body else {
        return bad_request(
            "expected a JSON body {\"sub\": \"...\", \"plan\": \"free\"|\"pro\", \"ttl\": seconds, \"role\": \"...\"}",
        );
    };
    if req.sub.is_empty() || req.sub.len() > 256 {
        return bad_request("sub must be a non-empty string of at most 256 bytes");
    }
    if !matches!(req.plan.as_deref(), None | Some("free" | "pro")) {
        return bad_request("plan must be \"free\" or \"pro\"");
    }
    let ttl = req.ttl.unwrap_or(TOKEN_TTL.as_secs());
    if !(1..=MAX_TOKEN_TTL.as_secs()).contains(&ttl) {
        return bad_request("ttl must be 1 to 86400 seconds");
    }
    if req
        .role
        .as_ref()
        .is_some_and(|r| r.is_empty() || r.len() > 64)
    {
        return bad_request("role must be a non-empty string of at most 64 bytes");
    }
    // Revocations cover tokens issued at or before their moment, in whole seconds: a token for
    // a subject revoked this very second is dated the next one, so that it works as a token
    // issued after the revocation should.
    let now = state.clock.now().as_secs();
    let iat = state
        .revocations
        .subject_revoked_at(&req.sub)
        .map_or(now, |at| now.max(at + 1));
    match sign_token(
        &state.signing,
        &req.sub,
        req.plan.as_deref(),
        req.role.as_deref(),
        iat,
        ttl,
    ) {
        Ok(token) => Json(serde_json::json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": ttl,
        }))
        .into_response(),
        Err(err) => (err.status(), json_body(&err)).into_response(),
    }
}

/// The `403 FORBIDDEN` refusal, unless the token's `role` is `"admin"`.
fn refused_unless_admin(claims: &DemoClaims) -> Option<Response> {
    if claims.role.as_deref() == Some("admin") {
        return None;
    }
    let error = AuthError::forbidden("the admin routes need a token whose role is admin");
    // The crate's own rendering: 403 with `WWW-Authenticate: Bearer error="insufficient_scope"`.
    Some(
        JsonResponder::new()
            .render(&error)
            .map(axum::body::Body::from),
    )
}

#[derive(Deserialize)]
struct RevokeRequest {
    sub: String,
}

/// `POST /admin/revoke {"sub": "bob"}`: every token of `bob` issued at or before now is
/// refused from now on (`TOKEN_REVOKED`), and `bob`'s WebSocket sessions close with 4002.
async fn admin_revoke(
    State(state): State<AppState>,
    Claims(claims): Claims<DemoClaims>,
    body: Result<Json<RevokeRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Some(refused) = refused_unless_admin(&claims) {
        return refused;
    }
    let Ok(Json(req)) = body else {
        return bad_request("expected a JSON body {\"sub\": \"...\"}");
    };
    if req.sub.is_empty() || req.sub.len() > 256 {
        return bad_request("sub must be a non-empty string of at most 256 bytes");
    }
    let revoked = match &state.fanout {
        // Here at once, and on every demo process on the same Redis.
        Some(fanout) => match fanout.revoke_subject(&req.sub).await {
            Err(FanoutError::Redis(e)) => {
                tracing::warn!(error = %e, "demo: a revocation holds on this process only");
                state
                    .revocations
                    .subject_revoked_at(&req.sub)
                    .ok_or(RevocationError::Full)
            }
            Err(FanoutError::Revocation(e)) => Err(e),
            Ok(at) => Ok(at),
            Err(_) => Err(RevocationError::Full),
        },
        None => state.revocations.revoke_subject(&req.sub),
    };
    match revoked {
        Ok(at) => Json(serde_json::json!({ "revoked": req.sub, "at": at })).into_response(),
        Err(e) => {
            let body =
                serde_json::json!({ "error": { "code": "UNAVAILABLE", "message": e.to_string() } });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

#[derive(Deserialize)]
struct NotifyRequest {
    sub: String,
    message: String,
}

/// `POST /admin/notify {"sub": "bob", "message": "hi"}` → 202: every WebSocket session of
/// `bob` receives `{"type": "notification", "message": "hi"}`.
async fn admin_notify(
    State(state): State<AppState>,
    Claims(claims): Claims<DemoClaims>,
    body: Result<Json<NotifyRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Some(refused) = refused_unless_admin(&claims) {
        return refused;
    }
    let Ok(Json(req)) = body else {
        return bad_request("expected a JSON body {\"sub\": \"...\", \"message\": \"...\"}");
    };
    if req.message.len() > 4096 {
        return bad_request("message must be at most 4096 bytes");
    }
    // With Redis, every demo process tells its own sessions (this one included).
    let published = match &state.fanout {
        Some(fanout) => fanout.notify(&req.sub, &req.message).await.is_ok(),
        None => false,
    };
    if !published {
        state.registry.notify_user(&req.sub, &req.message);
    }
    StatusCode::ACCEPTED.into_response()
}

/// `GET /admin/stats` → `{"connections": N, "users": M}`: open authenticated WebSocket sessions
/// and the distinct users among them.
async fn admin_stats(
    State(state): State<AppState>,
    Claims(claims): Claims<DemoClaims>,
) -> Response {
    if let Some(refused) = refused_unless_admin(&claims) {
        return refused;
    }
    // With Redis, every process's sessions (reported within the last 3 s); else, or while Redis
    // is away, this process's.
    if let Some(fanout) = &state.fanout
        && let Ok(fleet) = fanout.fleet_stats().await
    {
        return Json(serde_json::json!({ "connections": fleet.connections, "users": fleet.users }))
            .into_response();
    }
    let stats = state.registry.stats();
    Json(serde_json::json!({ "connections": stats.connections, "users": stats.users }))
        .into_response()
}

/// `GET /ws`: a WebSocket echo of text messages for an authenticated user. The session takes
/// care of expiry, warnings, re-authentication and the message limit.
async fn ws_echo(session: WsSession<DemoClaims>, upgrade: WebSocketUpgrade) -> Response {
    // Selects the client's own subprotocol (e.g. `echo`), never the token one, and applies the
    // session's 64 KiB message limit to axum's reader.
    session.configure(upgrade).on_upgrade(|socket| async move {
        let mut socket = session.attach(socket);
        while let Some(Ok(message)) = socket.recv().await {
            if let Message::Text(text) = message
                && socket.send(Message::Text(text)).await.is_err()
            {
                break;
            }
        }
    })
}

async fn create_order(ctx: AuthContext) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "accepted",
        "user": ctx.subject(),
    }))
}

async fn me(ctx: AuthContext, Claims(claims): Claims<DemoClaims>) -> Json<Me> {
    Json(Me {
        sub: claims.sub,
        plan: claims.plan,
        iat: ctx.issued_at(),
        exp: ctx.expires_at(),
        token_source: ctx.source().map(|s| s.as_str()),
    })
}

/// What `GET /me` answers: serialized as it stands (a `serde_json::Value` map would build and
/// hash a map per request).
#[derive(Serialize)]
struct Me {
    sub: String,
    plan: Option<String>,
    iat: Option<u64>,
    exp: Option<u64>,
    token_source: Option<&'static str>,
}

/// At most this many connections are open at once; more are closed as they arrive.
pub const MAX_CONNECTIONS: usize = 16_384;

/// At most this many WebSocket sessions are open at once. For a client that stops reading,
/// each holds at most 8 of its messages (64 KiB each at most) and 8 echoes plus the one being
/// written, about 1.1 MiB, for at most the 10 s send timeout.
pub const MAX_WEBSOCKETS: usize = 10_000;

/// Serves `router` on `listener` until `shutdown` completes, the way a deployment should: with
/// hyper-util's server builder (HTTP/1.1 and HTTP/2 with prior knowledge on one port, WebSocket
/// upgrades, HTTP/2 extended CONNECT), the peer address in each request (for the lockout), and
/// a graceful shutdown. Limits:
///
/// - a connection must start its first request within `header_timeout`, and an HTTP/1.1 client
///   must send each request head within it (`axum::serve` has no such timer): a connection that
///   sends nothing, or only part of the HTTP/2 preface or of a request head, is closed;
/// - HTTP/2: 256 concurrent streams, 16 KiB of headers, and a keep-alive ping every 20 s that
///   must be answered within 10 s;
/// - at most [`MAX_CONNECTIONS`] connections at once.
///
/// What else a deployment needs, which the demo leaves to a reverse proxy or the defaults: a
/// per-address connection cap, request body limits (axum's `DefaultBodyLimit`, 2 MB, applies to
/// the JSON extractor; `tower_http::limit::RequestBodyLimitLayer` for other bodies), request
/// timeouts (`tower_http::timeout::TimeoutLayer`), and a header timer for HTTP/2 streams (hyper
/// has none: a client that opens a stream and never finishes its HEADERS keeps that stream,
/// within the stream and keep-alive limits above).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use axum::extract::ConnectInfo;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt;

    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol()
        .max_concurrent_streams(256)
        .max_header_list_size(16 * 1024)
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, for example: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!("{MAX_CONNECTIONS} connections open: closing a new one");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            if !request_starts(&stream, header_timeout).await {
                return;
            }
            let service =
                hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    router.clone().oneshot(req)
                });
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            // A connection's end (the client left, a timeout) is not an error of the server.
            let _ = watcher.watch(connection).await;
        });
    }
    // Let open requests finish, for at most 10 seconds.
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}

/// Whether the client starts a request within `within`: some bytes that are not just a prefix
/// of the HTTP/2 preface (hyper-util reads those to pick the protocol, with no timer of its
/// own).
async fn request_starts(stream: &tokio::net::TcpStream, within: Duration) -> bool {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; PREFACE.len()];
    loop {
        match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return false,
            Ok(Ok(n)) if n == PREFACE.len() || buf[..n] != PREFACE[..n] => return true,
            // Part of the preface: look again shortly (peek returns at once while bytes wait).
            Ok(Ok(_)) => {
                if tokio::time::Instant::now() >= deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
