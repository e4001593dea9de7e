//! The outbound layer (`outbound::TokenLayer`) on hyper-util's client, against a real server
//! on loopback built with this crate's own layers (`JwtAuthLayer`, a revocation list), on the
//! system clock: tokens of a few seconds refreshed ahead of expiry and never sent expired,
//! 1 000 concurrent requests and one refresh, a revocation mid-run replaced once, a failing
//! provider that recovers, a server that refuses everything (one retry, no loop), per-user
//! sources that never cross, and the retry rule for bodies.
#![cfg(all(feature = "axum", feature = "outbound"))]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use bytes::Bytes;
use http::{HeaderName, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tower::Layer;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_jwt_guard::extract::TokenExtractor;
use tower_jwt_guard::outbound::{
    CloneBodies, ForUser, IssuedToken, ProviderError, TokenLayer, TokenService, TokenSource,
    UserSources,
};
use tower_jwt_guard::revocation::RevocationList;
use tower_jwt_guard::validate::Validator;
use tower_jwt_guard::{AuthContext, JwtAuthLayer, keys::Key};

use common::{HMAC_SECRET, TestClaims, TestServer, init_crypto, serve, sign_hs256};

/// What the test server counts and how it behaves.
#[derive(Default)]
struct Upstream {
    /// Requests that reached the protected routes, and the 401s they got.
    hits: AtomicU64,
    refusals: AtomicU64,
    /// Tokens issued by `/token`, and its answer while `failing`.
    issued: AtomicU64,
    failing: AtomicBool,
    /// The `jti` of the last token issued.
    last_jti: Mutex<String>,
    /// Requests that arrived with the user header (it must have been removed).
    user_header_seen: AtomicU64,
}

struct App {
    upstream: Arc<Upstream>,
    revocations: RevocationList,
    server: TestServer,
}

fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

/// `/token` (`{"sub", "ttl"}` → `{"access_token", "expires_in"}`, after `delay`) and, behind
/// the crate's `JwtAuthLayer` (leeway 0, a revocation list), `/me` (the subject, the body) and
/// `/refuse` (401, always).
async fn start() -> App {
    init_crypto();
    let upstream = Arc::new(Upstream::default());
    let revocations = RevocationList::builder(Duration::from_secs(3_600)).build();
    let validator = Validator::<TestClaims>::builder()
        .key(Key::hmac(HMAC_SECRET).unwrap())
        .leeway(Duration::ZERO)
        .max_lifetime(Duration::from_secs(3_600))
        .revocations(revocations.clone())
        .build()
        .unwrap();

    async fn me(req: Request) -> Response {
        let sub = req
            .extensions()
            .get::<AuthContext>()
            .and_then(AuthContext::subject)
            .map(str::to_owned);
        let body = req.into_body().collect().await.unwrap().to_bytes();
        axum::Json(json!({"sub": sub, "body": String::from_utf8_lossy(&body)})).into_response()
    }
    async fn count(State(up): State<Arc<Upstream>>, req: Request, next: Next) -> Response {
        up.hits.fetch_add(1, Ordering::SeqCst);
        if req.headers().contains_key("x-act-as") {
            up.user_header_seen.fetch_add(1, Ordering::SeqCst);
        }
        let response = next.run(req).await;
        if response.status() == StatusCode::UNAUTHORIZED {
            up.refusals.fetch_add(1, Ordering::SeqCst);
        }
        response
    }
    async fn token(State(up): State<Arc<Upstream>>, body: axum::Json<Value>) -> Response {
        let delay = Duration::from_millis(body["delay_ms"].as_u64().unwrap_or(0));
        tokio::time::sleep(delay).await;
        if up.failing.load(Ordering::SeqCst) {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        let n = up.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let ttl = body["ttl"].as_u64().unwrap_or(300);
        let now = unix_now().as_secs();
        let jti = format!("t-{n}");
        *up.last_jti.lock().unwrap() = jti.clone();
        let token = sign_hs256(&json!({
            "sub": body["sub"], "jti": jti, "iat": now, "exp": now + ttl,
        }));
        axum::Json(json!({"access_token": token, "expires_in": ttl})).into_response()
    }

    let by_header = JwtAuthLayer::builder(validator.clone())
        .extractor(TokenExtractor::new().header(HeaderName::from_static("x-api-token")))
        .build()
        .unwrap();
    let protected = Router::new()
        .route("/me", any(me))
        .route("/refuse", get(|| async { StatusCode::UNAUTHORIZED }))
        .layer(JwtAuthLayer::new(validator))
        .layer(middleware::from_fn_with_state(Arc::clone(&upstream), count));
    let router = Router::new()
        .route("/token", post(token))
        .with_state(Arc::clone(&upstream))
        .merge(protected)
        .route("/by-header/me", get(me).layer(by_header));
    App {
        upstream,
        revocations,
        server: serve(router).await,
    }
}

/// A provider calling `/token` for `sub` with `ttl`; `expires_in` used or not.
fn provider(
    app: &App,
    ttl: u64,
    delay: Duration,
    use_expires_in: bool,
) -> impl Fn() -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<IssuedToken, ProviderError>> + Send>,
> + Send
+ Sync
+ 'static {
    let url = app.server.url("/token");
    let http = reqwest::Client::new();
    move || {
        let (url, http) = (url.clone(), http.clone());
        Box::pin(async move { fetch_token(&http, &url, "alice", ttl, delay, use_expires_in).await })
    }
}

async fn fetch_token(
    http: &reqwest::Client,
    url: &str,
    sub: &str,
    ttl: u64,
    delay: Duration,
    use_expires_in: bool,
) -> Result<IssuedToken, ProviderError> {
    let body = json!({"sub": sub, "ttl": ttl, "delay_ms": delay.as_millis() as u64});
    let reply = http
        .post(url)
        .json(&body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|_| ProviderError("the token endpoint did not answer"))?;
    if !reply.status().is_success() {
        return Err(ProviderError("the token endpoint refused"));
    }
    let reply: Value = reply.json().await.map_err(|_| ProviderError("not JSON"))?;
    let token = IssuedToken::new(reply["access_token"].as_str().unwrap_or_default());
    Ok(if use_expires_in {
        token.expires_in(Duration::from_secs(
            reply["expires_in"].as_u64().unwrap_or(0),
        ))
    } else {
        token
    })
}

type Http1 = Client<HttpConnector, Empty<Bytes>>;

/// A source of `ttl`-second tokens from `/token` (taking `delay`), lifetime from `expires_in`.
fn source(app: &App, ttl: u64, delay: Duration) -> TokenSource {
    TokenSource::builder(provider(app, ttl, delay, true)).build()
}

/// `client` behind the default `TokenLayer` on `source`.
fn layered<S>(source: &TokenSource, client: S) -> TokenService<S> {
    TokenLayer::new(source.clone()).layer(client)
}

/// One request through `service`, its status and its body.
async fn send<S, B>(service: &mut S, request: http::Request<B>) -> (StatusCode, String)
where
    S: Service<http::Request<B>, Response = http::Response<hyper::body::Incoming>>,
    S::Error: std::fmt::Debug,
{
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn http1() -> Http1 {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// What a run of requests gave.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    refused: u64,
    errors: u64,
    subjects: Vec<(String, String)>,
}

/// `n` `GET`s of `url` through `service`, `concurrency` at a time, spread over `spread`; each
/// as user `users[i % len]` when `users` is not empty.
async fn run<S>(
    service: S,
    url: &str,
    n: usize,
    concurrency: usize,
    spread: Duration,
    users: &[&str],
) -> Tally
where
    S: Service<http::Request<Empty<Bytes>>, Response = http::Response<hyper::body::Incoming>>
        + Clone
        + Send
        + 'static,
    S::Error: std::fmt::Display + Send,
    S::Future: Send,
{
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let at = start + spread.mul_f64(i as f64 / n as f64);
        tokio::time::sleep_until(at).await;
        let permit = Arc::clone(&gate).acquire_owned().await.unwrap();
        let mut service = service.clone();
        let mut request = http::Request::get(url).body(Empty::new()).unwrap();
        let user = (!users.is_empty()).then(|| users[i % users.len()].to_owned());
        if let Some(user) = &user {
            if i % 2 == 0 {
                request.extensions_mut().insert(ForUser::new(user.as_str()));
            } else {
                request
                    .headers_mut()
                    .insert("x-act-as", user.parse().unwrap());
            }
        }
        tasks.spawn(async move {
            let reply = tokio::time::timeout(Duration::from_secs(20), async {
                service.ready().await?.call(request).await
            })
            .await
            .expect("a request answered in 20 s");
            drop(permit);
            match reply {
                Ok(response) => {
                    let status = response.status();
                    let body = response.into_body().collect().await.unwrap().to_bytes();
                    (status, body, user)
                }
                Err(e) => (
                    StatusCode::from_u16(599).unwrap(),
                    Bytes::from(e.to_string()),
                    user,
                ),
            }
        });
    }
    let mut tally = Tally::default();
    while let Some(done) = tasks.join_next().await {
        let (status, body, user) = done.unwrap();
        match status.as_u16() {
            200 => {
                tally.ok += 1;
                if let Some(user) = user {
                    let body: Value = serde_json::from_slice(&body).unwrap();
                    let sub = body["sub"].as_str().unwrap_or_default().to_owned();
                    tally.subjects.push((user, sub));
                }
            }
            401 => tally.refused += 1,
            _ => tally.errors += 1,
        }
    }
    tally
}

#[tokio::test]
async fn short_lived_tokens_are_refreshed_ahead_and_never_sent_expired() {
    let app = start().await;
    // 3 s tokens (exp in whole seconds: 2 to 3 s left when issued), lifetime read from their
    // exp: refreshed at 50 to 70 % of it, every 1 to 2.1 s: 4 to 6 fetches in 7 s (the
    // bound below; 7 would take six refreshes at their shortest).
    let source = TokenSource::builder(provider(&app, 3, Duration::ZERO, false)).build();
    let service = layered(&source, http1());
    let tally = run(
        service,
        &app.server.url("/me"),
        300,
        10,
        Duration::from_secs(7),
        &[],
    )
    .await;
    assert_eq!(
        (tally.ok, tally.refused, tally.errors),
        (300, 0, 0),
        "{tally:?}"
    );
    let up = &app.upstream;
    assert_eq!(
        up.refusals.load(Ordering::SeqCst),
        0,
        "no request reached the server with an expired token"
    );
    assert_eq!(up.hits.load(Ordering::SeqCst), 300);
    let fetches = source.fetches();
    assert!(
        (4..=6).contains(&fetches),
        "{fetches} fetches in 7 s of 3 s tokens"
    );
    assert_eq!(up.issued.load(Ordering::SeqCst), fetches);
}

// On two worker threads: the races are real.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_share_one_refresh() {
    let app = start().await;
    // The token endpoint takes 300 ms: every request waits for the same fetch.
    let source = source(&app, 300, Duration::from_millis(300));
    // HTTP/2 (prior knowledge): 1 000 streams on one connection.
    let client: Http1 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new());
    let service = layered(&source, client);
    let tally = run(
        service,
        &app.server.url("/me"),
        1_000,
        1_000,
        Duration::ZERO,
        &[],
    )
    .await;
    assert_eq!(
        (tally.ok, tally.refused, tally.errors),
        (1_000, 0, 0),
        "{tally:?}"
    );
    assert_eq!(source.fetches(), 1);
    assert_eq!(app.upstream.issued.load(Ordering::SeqCst), 1);
}

// On two worker threads: the races are real.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_mid_run_is_one_forced_refresh_and_every_request_succeeds() {
    let app = start().await;
    let source = source(&app, 600, Duration::from_millis(50));
    let service = layered(&source, http1());
    let url = app.server.url("/me");
    let running =
        tokio::spawn(async move { run(service, &url, 400, 20, Duration::from_secs(3), &[]).await });
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let jti = app.upstream.last_jti.lock().unwrap().clone();
    assert_eq!(jti, "t-1");
    app.revocations.revoke_token(&jti, None).unwrap();
    let tally = running.await.unwrap();
    assert_eq!(
        (tally.ok, tally.refused, tally.errors),
        (400, 0, 0),
        "{tally:?}"
    );
    let up = &app.upstream;
    let refusals = up.refusals.load(Ordering::SeqCst);
    assert!(refusals >= 1, "the revoked token was refused");
    assert!(refusals <= 20, "{refusals}: only requests in flight saw it");
    // Each refused request was sent twice, the others once.
    assert_eq!(up.hits.load(Ordering::SeqCst), 400 + refusals);
    assert_eq!(
        source.fetches(),
        2,
        "one forced refresh for all who saw the token"
    );
}

#[tokio::test]
async fn a_failing_provider_backs_off_and_the_client_recovers() {
    let app = start().await;
    app.upstream.failing.store(true, Ordering::SeqCst);
    let source = TokenSource::builder(provider(&app, 600, Duration::ZERO, true))
        .backoff(Duration::from_millis(200), Duration::from_millis(400))
        .build();
    let service = layered(&source, http1());
    let url = app.server.url("/me");
    let failing = run(service.clone(), &url, 50, 5, Duration::from_secs(1), &[]).await;
    assert_eq!((failing.ok, failing.errors), (0, 50), "{failing:?}");
    assert_eq!(
        app.upstream.hits.load(Ordering::SeqCst),
        0,
        "nothing sent without a token"
    );
    // 200 ms, then 400 ms between calls: a handful in a second, not one per request.
    let calls = source.fetches();
    assert!((2..=5).contains(&calls), "{calls} provider calls");
    app.upstream.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(450)).await;
    let recovered = run(service, &url, 50, 5, Duration::from_millis(500), &[]).await;
    assert_eq!((recovered.ok, recovered.errors), (50, 0), "{recovered:?}");
    assert_eq!(source.fetches(), calls + 1);
}

#[tokio::test]
async fn a_server_refusing_every_token_gets_one_retry_per_request_and_no_loop() {
    let app = start().await;
    let source = source(&app, 600, Duration::ZERO);
    let service = layered(&source, http1());
    let tally = run(
        service,
        &app.server.url("/refuse"),
        100,
        10,
        Duration::from_secs(1),
        &[],
    )
    .await;
    assert_eq!(
        (tally.ok, tally.refused, tally.errors),
        (0, 100, 0),
        "{tally:?}"
    );
    let hits = app.upstream.hits.load(Ordering::SeqCst);
    assert!(
        (100..=200).contains(&hits),
        "{hits}: each request sent twice at most"
    );
    // The first token, one forced refresh; the next within the 5 s cooldown is not refreshed.
    assert_eq!(source.fetches(), 2);
}

// On two worker threads: the races are real.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_sources_never_cross_tokens() {
    let app = start().await;
    let url = app.server.url("/token");
    let http = reqwest::Client::new();
    let users = UserSources::builder(move |user: &str| {
        let (url, http, user) = (url.clone(), http.clone(), user.to_owned());
        async move { fetch_token(&http, &url, &user, 600, Duration::from_millis(20), true).await }
    })
    .max_users(100)
    .build();
    let service = ServiceBuilder::new()
        .layer(TokenLayer::per_user(users.clone()).user_header("x-act-as".parse().unwrap()))
        .service(http1());
    let names = [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
    ];
    let tally = run(
        service.clone(),
        &app.server.url("/me"),
        800,
        50,
        Duration::ZERO,
        &names,
    )
    .await;
    assert_eq!((tally.ok, tally.errors), (800, 0), "{tally:?}");
    assert_eq!(tally.subjects.len(), 800);
    for (user, sub) in &tally.subjects {
        assert_eq!(user, sub, "a request for {user} carried {sub}'s token");
    }
    assert_eq!(
        app.upstream.issued.load(Ordering::SeqCst),
        8,
        "one token per user"
    );
    assert_eq!(users.len(), 8);
    assert_eq!(app.upstream.user_header_seen.load(Ordering::SeqCst), 0);
    // A request naming no user is an error, and reaches no server.
    let mut service = service;
    let request = http::Request::get(app.server.url("/me"))
        .body(Empty::new())
        .unwrap();
    let error = service
        .ready()
        .await
        .unwrap()
        .call(request)
        .await
        .unwrap_err();
    assert!(error.is::<tower_jwt_guard::outbound::NoUser>(), "{error}");
    // Two values of the user header name no single user.
    let request = http::Request::get(app.server.url("/me"))
        .header("x-act-as", "alice")
        .header("x-act-as", "bob")
        .body(Empty::new())
        .unwrap();
    let error = service
        .ready()
        .await
        .unwrap()
        .call(request)
        .await
        .unwrap_err();
    assert!(error.is::<tower_jwt_guard::outbound::NoUser>(), "{error}");
}

#[tokio::test]
async fn a_body_that_can_be_sent_again_is_retried_and_one_that_cannot_is_not() {
    let app = start().await;
    let source = source(&app, 600, Duration::ZERO);
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let url = app.server.url("/me");
    let post = |body: &'static str| {
        http::Request::post(&url)
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    };
    // Cloneable bodies: a POST refused after a revocation is sent again, body intact.
    let mut cloning = TokenLayer::new(source.clone())
        .replay(CloneBodies)
        .layer(client.clone());
    assert_eq!(send(&mut cloning, post("one")).await.0, 200);
    app.revocations.revoke_token("t-1", None).unwrap();
    let (status, body) = send(&mut cloning, post("two")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["body"], "two");
    assert_eq!(source.fetches(), 2);
    // The default (empty bodies only): a POST with a body is not retried, the token is still
    // replaced, so the next request passes.
    let mut default = layered(&source, client);
    app.revocations.revoke_token("t-2", None).unwrap();
    tokio::time::sleep(Duration::from_millis(5_100)).await; // past the force cooldown
    assert_eq!(
        send(&mut default, post("three")).await.0,
        401,
        "not retried"
    );
    let (status, body) = send(&mut default, post("four")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(source.fetches(), 3);
}

#[tokio::test]
async fn a_named_header_carries_the_bare_token_and_idempotent_only_retries_no_post() {
    let app = start().await;
    let source = TokenSource::builder(provider(&app, 600, Duration::ZERO, true))
        .force_cooldown(Duration::from_millis(100))
        .build();
    // The bare token in `x-api-token`, for a server reading it there (and not elsewhere).
    let mut by_header = TokenLayer::new(source.clone())
        .header(HeaderName::from_static("x-api-token"))
        .layer(http1());
    let get = |path: &str| {
        http::Request::get(app.server.url(path))
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    let (status, body) = send(&mut by_header, get("/by-header/me")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["sub"],
        "alice"
    );
    assert_eq!(
        send(&mut by_header, get("/me")).await.0,
        401,
        "no bearer sent"
    );

    // Idempotent methods only: a refused POST is not sent again, a refused PUT is.
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut careful = TokenLayer::new(source.clone())
        .replay(CloneBodies)
        .retry_idempotent_only()
        .layer(client);
    let with = |method: http::Method, body: &'static str| {
        http::Request::builder()
            .method(method)
            .uri(app.server.url("/me"))
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    };
    let hits = app.upstream.hits.load(Ordering::SeqCst);
    // The /me 401 above replaced t-1 (and, if its retry came back after the cooldown, t-2
    // too): past the cooldown, whatever token was fetched last is the current one.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let fetched = source.fetches();
    let current = app.upstream.last_jti.lock().unwrap().clone();
    app.revocations.revoke_token(&current, None).unwrap();
    assert_eq!(
        send(&mut careful, with(http::Method::POST, "a")).await.0,
        401
    );
    assert_eq!(
        app.upstream.hits.load(Ordering::SeqCst),
        hits + 1,
        "sent once"
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    let current = app.upstream.last_jti.lock().unwrap().clone();
    app.revocations.revoke_token(&current, None).unwrap();
    let (status, body) = send(&mut careful, with(http::Method::PUT, "b")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        app.upstream.hits.load(Ordering::SeqCst),
        hits + 3,
        "sent twice"
    );
    assert_eq!(
        source.fetches(),
        fetched + 2,
        "one forced refresh per refusal"
    );
}
