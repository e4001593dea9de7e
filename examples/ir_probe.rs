//! Instruction-count probe: `valgrind --tool=callgrind target/release/examples/ir_probe <case> <n>`
//! runs `n` in-process requests of one case; the difference between two `n` is the per-request
//! cost, independent of the machine's load.

use std::net::SocketAddr;
use std::num::NonZeroU32;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, header};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;
use tower_jwt_guard::JwtAuthLayer;
use tower_jwt_guard::keys::Key;
use tower_jwt_guard::lockout::{LockoutLayer, LockoutPolicy};
use tower_jwt_guard::rate_limit::{PlanQuotas, Quota, UserRateLimitLayer};
use tower_jwt_guard::validate::Validator;

const SECRET: &[u8] = b"bench-secret-bench-secret-bench-secret-0123";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct C {
    sub: String,
    exp: u64,
    iat: u64,
    #[serde(rename = "type")]
    kind: String,
}

fn request(token: Option<&str>) -> Request<Body> {
    let peer = SocketAddr::from(([127, 0, 0, 1], 40_000));
    let mut b = Request::get("/").extension(axum::extract::ConnectInfo(peer));
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap()
}

fn main() {
    tower_jwt_guard::crypto::install_crypto_provider();
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap();
    let n: usize = args.next().unwrap().parse().unwrap();
    let claims = C {
        sub: "user-1234".into(),
        exp: 4_000_000_000,
        iat: 1_700_000_000,
        kind: "access".into(),
    };
    let sign = |s: &[u8]| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(s).unwrap(),
        )
        .unwrap()
    };
    let valid = sign(SECRET);
    let invalid = sign(b"another-secret-another-secret-another-secret");
    let validator = Validator::<C>::builder()
        .key(Key::hmac(SECRET).unwrap())
        .build()
        .unwrap();
    let routes = || Router::new().route("/", get(|| async { "hello, world" }));
    let auth = routes().layer(JwtAuthLayer::new(validator.clone()));
    let stack = routes()
        .layer(
            UserRateLimitLayer::builder(PlanQuotas::new(Quota::per_second(NonZeroU32::MAX)))
                .build()
                .unwrap(),
        )
        .layer(JwtAuthLayer::new(validator.clone()))
        .layer(LockoutLayer::builder(LockoutPolicy::new()).build().unwrap());
    let (router, token) = match case.as_str() {
        "bare" => (routes(), Some(valid.as_str())),
        "valid" => (auth, Some(valid.as_str())),
        "stack" => (stack, Some(valid.as_str())),
        "missing" => (auth, None),
        "invalid" => (auth, Some(invalid.as_str())),
        other => panic!("unknown case {other}"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..n {
            let r = router.clone().oneshot(request(token)).await.unwrap();
            std::hint::black_box(r.status());
        }
    });
}
