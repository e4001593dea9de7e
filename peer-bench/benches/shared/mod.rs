//! What the peer benches share: the token, the claims, the two frameworks' routers, the guards
//! and the paths they are compared on.
#![allow(dead_code)]

use std::hint::black_box;

use serde::{Deserialize, Serialize};
use tower::ServiceExt;

use tower_jwt_guard::JwtAuthLayer;
use tower_jwt_guard::keys::Key;
use tower_jwt_guard::lockout::{LockoutLayer, LockoutPolicy};
use tower_jwt_guard::rate_limit::{PlanQuotas, Quota, UserRateLimitLayer};
use tower_jwt_guard::validate::Validator;

pub use axum07 as old;

pub const SECRET: &str = "peer-bench-secret-peer-bench-secret-0123";
pub const OTHER_SECRET: &str = "another-secret-another-secret-another-000";
pub const RSA_PRIVATE: &[u8] = include_bytes!("../../../tests/fixtures/rsa_private.pem");
pub const RSA_PUBLIC: &[u8] = include_bytes!("../../../tests/fixtures/rsa_public.pem");
pub const EC_PRIVATE: &[u8] = include_bytes!("../../../tests/fixtures/ec_private.pem");
pub const EC_PUBLIC: &[u8] = include_bytes!("../../../tests/fixtures/ec_public.pem");

/// The claims both guards decode into.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    #[serde(rename = "type")]
    pub kind: String,
}

pub fn claims(i: u64) -> Claims {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    Claims {
        sub: "user-4b5e-4d1a".into(),
        exp: now + 24 * 3600,
        iat: now - i,
        kind: "access".into(),
    }
}

pub fn sign(
    alg: jsonwebtoken::Algorithm,
    claims: &Claims,
    key: &jsonwebtoken::EncodingKey,
) -> String {
    jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), claims, key).expect("signing")
}

// ---- the two frameworks' requests and routers ------------------------------------------------

pub fn peer_addr() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 40_000))
}

/// A request as a client sends it: `Host`, `User-Agent`, `Accept`, and the token if any (the
/// framework's peer address and body are added by `new_request` / `old_request`).
fn client_request(token: Option<&str>) -> http::request::Builder {
    let mut b = http::Request::get("/")
        .header(http::header::HOST, "api.example.com")
        .header(http::header::USER_AGENT, "peer-bench/1")
        .header(http::header::ACCEPT, "*/*");
    if let Some(token) = token {
        b = b.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    b
}

/// [`client_request`] for axum 0.8, with the peer's address as hyper would hand it over.
pub fn new_request(token: Option<&str>) -> http::Request<axum::body::Body> {
    client_request(token)
        .extension(axum::extract::ConnectInfo(peer_addr()))
        .body(axum::body::Body::empty())
        .expect("a request")
}

/// [`client_request`] for axum 0.7.
pub fn old_request(token: Option<&str>) -> http::Request<old::body::Body> {
    client_request(token)
        .extension(old::extract::ConnectInfo(peer_addr()))
        .body(old::body::Body::empty())
        .expect("a request")
}

pub fn new_routes() -> axum::Router {
    axum::Router::new().route("/", axum::routing::get(|| async { "hello, world" }))
}

pub fn old_routes() -> old::Router {
    old::Router::new().route("/", old::routing::get(|| async { "hello, world" }))
}

/// One router of either framework, called the same way.
#[derive(Clone)]
pub enum Router {
    New(axum::Router),
    Old(old::Router),
}

impl Router {
    /// Sends `tokens[i % len]` (or no token) `n` times; the status of the last answer.
    pub async fn run(&self, tokens: &[Option<String>], start: usize, n: usize) -> u16 {
        let mut status = 0;
        for i in 0..n {
            let token = tokens[(start + i) % tokens.len()].as_deref();
            status = match self {
                Router::New(r) => {
                    let res = r.clone().oneshot(new_request(black_box(token))).await;
                    res.expect("infallible").status().as_u16()
                }
                Router::Old(r) => {
                    let res = r.clone().oneshot(old_request(black_box(token))).await;
                    res.expect("infallible").status().as_u16()
                }
            };
            black_box(status);
        }
        status
    }
}

// ---- the guards ------------------------------------------------------------------------------

pub fn ours(key: Key, cache: bool) -> axum::Router {
    let validator = Validator::<Claims>::builder()
        .key(key)
        .build()
        .expect("a valid configuration");
    let layer = if cache {
        JwtAuthLayer::new(validator)
    } else {
        JwtAuthLayer::builder(validator)
            .verified_token_cache(0)
            .build()
            .expect("a valid configuration")
    };
    new_routes().layer(layer)
}

/// The three layers as one (`ServiceBuilder`, applied with one `Router::layer`): axum boxes
/// each `Router::layer`'s service, future and body, so three calls cost two boxings more.
pub fn ours_stack(key: Key) -> axum::Router {
    let validator = Validator::<Claims>::builder()
        .key(key)
        .build()
        .expect("a valid configuration");
    new_routes().layer(
        tower::ServiceBuilder::new()
            .layer(
                LockoutLayer::builder(LockoutPolicy::new())
                    .build()
                    .expect("a valid configuration"),
            )
            .layer(JwtAuthLayer::new(validator))
            .layer(
                UserRateLimitLayer::builder(PlanQuotas::new(Quota::per_second(
                    std::num::NonZeroU32::MAX,
                )))
                .build()
                .expect("a valid configuration"),
            ),
    )
}

/// The same three layers, one `Router::layer` each (innermost first).
pub fn ours_stack_routers(key: Key) -> axum::Router {
    let validator = Validator::<Claims>::builder()
        .key(key)
        .build()
        .expect("a valid configuration");
    new_routes()
        .layer(
            UserRateLimitLayer::builder(PlanQuotas::new(Quota::per_second(
                std::num::NonZeroU32::MAX,
            )))
            .build()
            .expect("a valid configuration"),
        )
        .layer(JwtAuthLayer::new(validator))
        .layer(
            LockoutLayer::builder(LockoutPolicy::new())
                .build()
                .expect("a valid configuration"),
        )
}

pub fn peer(
    rt: &tokio::runtime::Runtime,
    builder: jwt_authorizer::AuthorizerBuilder<Claims>,
) -> old::Router {
    use jwt_authorizer::IntoLayer;
    let authorizer = rt.block_on(builder.build()).expect("a jwt-authorizer");
    old_routes().layer(authorizer.into_layer())
}

// ---- the paths ---------------------------------------------------------------------------------

/// One path: what our guard and jwt-authorizer are sent, and the status both must answer.
pub struct Path {
    pub name: &'static str,
    pub ours: Router,
    pub peer: Router,
    pub tokens: Vec<Option<String>>,
    pub expect: u16,
}

/// Tokens of `n` random base64url characters per segment in three segments shaped as an
/// RS256 token's (a 2 048-bit signature is 342 characters), or `garbage` of the same length
/// with no structure: what a scanner or a fuzzer sends. Deterministic (xorshift), so that runs
/// compare.
pub fn random_tokens(n: usize, shaped: bool) -> Vec<Option<String>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ALPHABET[(state % 64) as usize] as char
    };
    // An RS256 header: {"alg":"RS256","typ":"JWT"}.
    let header = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9";
    (0..n)
        .map(|_| {
            let payload: String = (0..120).map(|_| next()).collect();
            // 342 characters carry 256 bytes and 4 spare bits, which canonical base64url
            // leaves zero: the last character is one of A, Q, g, w, or the decoder refuses it.
            let mut signature: String = (0..341).map(|_| next()).collect();
            signature.push(['A', 'Q', 'g', 'w'][next() as usize % 4]);
            Some(if shaped {
                format!("{header}.{payload}.{signature}")
            } else {
                (0..header.len() + 120 + 342 + 2).map(|_| next()).collect()
            })
        })
        .collect()
}

/// Every path of the comparison, the routers built on `rt` (jwt-authorizer builds its keys
/// asynchronously).
pub fn paths(rt: &tokio::runtime::Runtime) -> Vec<Path> {
    use jsonwebtoken::{Algorithm, EncodingKey};
    let hs = EncodingKey::from_secret(SECRET.as_bytes()).expect("hmac key");
    let valid = sign(Algorithm::HS256, &claims(0), &hs);
    let forged = sign(
        Algorithm::HS256,
        &claims(0),
        &EncodingKey::from_secret(OTHER_SECRET.as_bytes()).expect("hmac key"),
    );
    let distinct: Vec<Option<String>> = (0..4 * tower_jwt_guard::auth::DEFAULT_VERIFIED_CACHE
        as u64)
        .map(|i| Some(sign(Algorithm::HS256, &claims(i), &hs)))
        .collect();
    let rs = sign(
        Algorithm::RS256,
        &claims(0),
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("rsa key"),
    );
    let es = sign(
        Algorithm::ES256,
        &claims(0),
        &EncodingKey::from_ec_pem(EC_PRIVATE).expect("ec key"),
    );
    let one = |t: &str| vec![Some(t.to_owned())];
    let hmac = || Key::hmac(SECRET).expect("a 32+ byte secret");
    let ours_cached = Router::New(ours(hmac(), true));
    let peer_hs = Router::Old(peer(rt, jwt_authorizer::JwtAuthorizer::from_secret(SECRET)));
    let rsa_pem = std::str::from_utf8(RSA_PUBLIC).expect("PEM");
    let ec_pem = std::str::from_utf8(EC_PUBLIC).expect("PEM");
    let ours_rs = Router::New(ours(Key::rsa_pem(RSA_PUBLIC).expect("rsa key"), true));
    let peer_rs = Router::Old(peer(
        rt,
        jwt_authorizer::JwtAuthorizer::from_rsa_pem_text(rsa_pem),
    ));
    let path = |name, ours: &Router, peer: &Router, tokens, expect| Path {
        name,
        ours: ours.clone(),
        peer: peer.clone(),
        tokens,
        expect,
    };
    vec![
        path(
            "valid token, repeated (cache hit)",
            &ours_cached,
            &peer_hs,
            one(&valid),
            200,
        ),
        path(
            "valid token, first use (cache off)",
            &Router::New(ours(hmac(), false)),
            &peer_hs,
            one(&valid),
            200,
        ),
        path(
            "valid tokens, 4 096 distinct (cache full)",
            &ours_cached,
            &peer_hs,
            distinct,
            200,
        ),
        path(
            "lockout + auth + rate limit, valid token, repeated",
            &Router::New(ours_stack(hmac())),
            &peer_hs,
            one(&valid),
            200,
        ),
        path("missing token", &ours_cached, &peer_hs, vec![None], 401),
        path("bad signature", &ours_cached, &peer_hs, one(&forged), 401),
        path("RS256, repeated", &ours_rs, &peer_rs, one(&rs), 200),
        path(
            "ES256, repeated",
            &Router::New(ours(Key::ec_pem(EC_PUBLIC).expect("ec key"), true)),
            &Router::Old(peer(
                rt,
                jwt_authorizer::JwtAuthorizer::from_ec_pem_text(ec_pem),
            )),
            one(&es),
            200,
        ),
        path(
            "random RS256-shaped tokens (right signature length)",
            &ours_rs,
            &peer_rs,
            random_tokens(512, true),
            401,
        ),
        path(
            "random garbage of an RS256 token's length",
            &ours_rs,
            &peer_rs,
            random_tokens(512, false),
            401,
        ),
    ]
}
