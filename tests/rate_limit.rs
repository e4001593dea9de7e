//! Per-user rate limiting through a real axum server on loopback with a real client: the
//! `UserRateLimitLayer` sits inside `JwtAuthLayer`, keyed on the validated subject (or on a claim).
//! Time is a `FakeClock` shared by the validator and the rate-limit store, so refills and idle
//! cleanup are tested by moving the clock, never by sleeping.
#![cfg(all(feature = "axum", feature = "rate-limit"))]

mod common;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_jwt_guard::clock::FakeClock;
use tower_jwt_guard::keys::Key;
use tower_jwt_guard::rate_limit::{PlanQuotas, Quota, UserRateLimitBuilder, UserRateLimitLayer};
use tower_jwt_guard::validate::Validator;
use tower_jwt_guard::{Claims, JwtAuthLayer};

use common::{HMAC_SECRET, NOW, Reply, TestServer, client, send, sign_hs256};

/// The claims the test servers deserialize into: the plan and tenant the limiters read.
#[derive(Debug, Clone, Deserialize)]
struct PlanClaims {
    #[allow(dead_code)]
    sub: String,
    #[serde(default)]
    plan: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("non-zero quota")
}

fn per_minute(n: u32) -> PlanQuotas {
    PlanQuotas::new(Quota::per_minute(nz(n)))
}

/// A clock at [`NOW`]; clones share its time.
fn clock() -> FakeClock {
    FakeClock::at_unix_secs(NOW)
}

/// A validator with the HMAC test key reading time from `clock`.
fn validator(clock: &FakeClock) -> Validator<PlanClaims> {
    Validator::<PlanClaims>::builder()
        .key(Key::hmac(HMAC_SECRET).expect("HMAC key"))
        .clock(clock.clone())
        .build()
        .expect("validator")
}

/// A rate-limit builder over `quotas` reading time from `clock`.
fn limiter(quotas: PlanQuotas, clock: &FakeClock) -> UserRateLimitBuilder<MemoryLockoutStore> {
    UserRateLimitLayer::builder(quotas).clock(clock.clone())
}

type MemoryLockoutStore = tower_jwt_guard::rate_limit::MemoryRateLimitStore;

/// A token for `sub` with extra claims, valid for an hour after [`NOW`].
fn token(sub: &str, extra: Value) -> String {
    let mut claims = json!({ "sub": sub, "exp": NOW + 3600 });
    if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        claims.extend(extra);
    }
    sign_hs256(&claims)
}

fn plain(sub: &str) -> String {
    token(sub, json!({}))
}

/// `POST /orders` and `GET /other` behind `auth`; `route` limits `/orders` only, `global`
/// (if any) the whole router, inside authentication.
fn app(
    auth: JwtAuthLayer<PlanClaims>,
    route: Option<UserRateLimitLayer>,
    global: Option<UserRateLimitLayer>,
) -> Router {
    let orders = post(|| async { "ordered" });
    let orders = match route {
        Some(layer) => orders.layer(layer),
        None => orders,
    };
    let router = Router::new()
        .route("/orders", orders)
        .route("/other", get(|| async { "other" }));
    let router = match global {
        Some(layer) => router.layer(layer),
        None => router,
    };
    router.layer(auth)
}

/// `POST /orders` with an optional bearer token.
async fn order(server: &TestServer, token: Option<&str>) -> Reply {
    let mut req = client().post(server.url("/orders"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    send(req).await
}

/// `GET /other` with a bearer token.
async fn other(server: &TestServer, token: &str) -> Reply {
    send(client().get(server.url("/other")).bearer_auth(token)).await
}

/// How many of `max` consecutive `POST /orders` pass before the first refusal, and that refusal
/// (asserted to be a 429 `RATE_LIMITED`). Panics if none is refused within `max`.
async fn orders_until_limited(server: &TestServer, token: &str, max: usize) -> (usize, Reply) {
    for passed in 0..max {
        let reply = order(server, Some(token)).await;
        if reply.status != 200 {
            assert_rate_limited(&reply);
            return (passed, reply);
        }
        assert_eq!(reply.text, "ordered");
    }
    panic!("no request was refused in {max}");
}

/// The same for `GET /other`.
async fn others_until_limited(server: &TestServer, token: &str, max: usize) -> (usize, Reply) {
    for passed in 0..max {
        let reply = other(server, token).await;
        if reply.status != 200 {
            assert_rate_limited(&reply);
            return (passed, reply);
        }
        assert_eq!(reply.text, "other");
    }
    panic!("no request was refused in {max}");
}

fn assert_rate_limited(reply: &Reply) {
    common::assert_rejected(reply, "RATE_LIMITED");
}

fn retry_after(reply: &Reply) -> u64 {
    reply
        .header("retry-after")
        .expect("Retry-After on a 429")
        .parse()
        .expect("Retry-After in whole seconds")
}

#[tokio::test]
async fn the_31st_order_in_a_minute_is_refused_until_the_clock_refills_it() {
    let clock = clock();
    let orders = limiter(per_minute(30), &clock).build().unwrap();
    let server = common::serve(app(
        JwtAuthLayer::new(validator(&clock)),
        Some(orders),
        None,
    ))
    .await;
    let alice = plain("alice");

    let (passed, refused) = orders_until_limited(&server, &alice, 40).await;
    assert_eq!(passed, 30);
    assert_eq!(refused.status, 429);
    assert_eq!(refused.code().as_deref(), Some("RATE_LIMITED"));
    // 30 per minute refills one request every 2 s.
    assert_eq!(retry_after(&refused), 2);

    // Another user has a budget of their own.
    let bob = plain("bob");
    let (passed, _) = orders_until_limited(&server, &bob, 40).await;
    assert_eq!(passed, 30);

    // One second is not enough; at two seconds one request (and only one) is back.
    clock.advance(Duration::from_secs(1));
    let reply = order(&server, Some(&alice)).await;
    assert_rate_limited(&reply);
    assert_eq!(retry_after(&reply), 1);
    clock.advance(Duration::from_secs(1));
    assert_eq!(order(&server, Some(&alice)).await.status, 200);
    let reply = order(&server, Some(&alice)).await;
    assert_rate_limited(&reply);
    assert_eq!(retry_after(&reply), 2);

    // After a full minute the whole burst is back.
    clock.advance(Duration::from_secs(60));
    let (passed, _) = orders_until_limited(&server, &alice, 40).await;
    assert_eq!(passed, 30);
}

#[tokio::test]
async fn plans_have_their_own_quotas_and_unknown_plans_get_the_default() {
    let clock = clock();
    let quotas = per_minute(3)
        .plan("pro", Quota::per_minute(nz(10)))
        .unwrap();
    let orders = limiter(quotas, &clock)
        .plan_by(|ext| ext.get::<Claims<PlanClaims>>()?.plan.as_deref())
        .build()
        .unwrap();
    let server = common::serve(app(
        JwtAuthLayer::new(validator(&clock)),
        Some(orders),
        None,
    ))
    .await;

    let free = token("f", json!({ "plan": "free" }));
    let pro = token("p", json!({ "plan": "pro" }));
    let gold = token("g", json!({ "plan": "gold" }));
    let none = plain("n");

    let (passed, refused) = orders_until_limited(&server, &free, 20).await;
    assert_eq!(passed, 3, "free (not a named plan: the default)");
    assert_eq!(retry_after(&refused), 20);
    let (passed, refused) = orders_until_limited(&server, &pro, 20).await;
    assert_eq!(passed, 10, "pro");
    assert_eq!(retry_after(&refused), 6);
    let (passed, _) = orders_until_limited(&server, &gold, 20).await;
    assert_eq!(passed, 3, "unknown plan");
    let (passed, _) = orders_until_limited(&server, &none, 20).await;
    assert_eq!(passed, 3, "no plan claim");
}

#[tokio::test]
async fn a_route_quota_and_a_global_quota_stack() {
    let clock = clock();
    // Global: 6 a minute (one every 10 s); /orders: 3 a minute (one every 20 s). Headers on
    // the route layer only, so a 429 says which layer refused it.
    let global = limiter(per_minute(6), &clock).build().unwrap();
    let route = limiter(per_minute(3), &clock)
        .rate_limit_headers()
        .build()
        .unwrap();
    let server = common::serve(app(
        JwtAuthLayer::new(validator(&clock)),
        Some(route),
        Some(global),
    ))
    .await;

    // The route quota is the smaller one on /orders: it binds.
    let carol = plain("carol");
    let (passed, refused) = orders_until_limited(&server, &carol, 10).await;
    assert_eq!(passed, 3);
    assert_eq!(retry_after(&refused), 20, "refused by the route layer");
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some("\"default\";q=3;w=60")
    );
    // Another route is not limited by the route quota, only by the global one, which counted
    // the four /orders requests that reached it (the fourth was refused further in).
    let (passed, refused) = others_until_limited(&server, &carol, 10).await;
    assert_eq!(passed, 2);
    assert_eq!(retry_after(&refused), 10, "refused by the global layer");
    assert_eq!(refused.header("ratelimit-policy"), None);

    // Requests to /other count only against the global quota: once it is spent, /orders is
    // refused by the global layer although its own quota is untouched.
    let dave = plain("dave");
    let (passed, refused) = others_until_limited(&server, &dave, 10).await;
    assert_eq!(passed, 6);
    assert_eq!(retry_after(&refused), 10);
    let reply = order(&server, Some(&dave)).await;
    assert_rate_limited(&reply);
    assert_eq!(retry_after(&reply), 10, "refused by the global layer");
    assert_eq!(reply.header("ratelimit-policy"), None);
    // Once the global quota has refilled, the route still has its whole burst: /other did not
    // spend it.
    clock.advance(Duration::from_secs(60));
    let reply = order(&server, Some(&dave)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("ratelimit"), Some("\"default\";r=2;t=20"));
}

#[tokio::test]
async fn unauthenticated_requests_are_never_rate_limited() {
    let clock = clock();

    // Optional authentication: no token passes the rate-limit layer untouched.
    let orders = limiter(per_minute(3), &clock).build().unwrap();
    let auth = JwtAuthLayer::builder(validator(&clock))
        .optional()
        .build()
        .unwrap();
    let server = common::serve(app(auth, Some(orders), None)).await;
    for i in 0..50 {
        let reply = order(&server, None).await;
        assert_eq!(reply.status, 200, "anonymous request {i}: {:?}", reply.text);
    }
    // ... while the layer is in force for authenticated users on the same route.
    let (passed, _) = orders_until_limited(&server, &plain("alice"), 10).await;
    assert_eq!(passed, 3);
    assert_eq!(order(&server, None).await.status, 200);
    // A bad token is still refused by authentication, not counted.
    common::assert_rejected(&order(&server, Some("not.a.jwt")).await, "INVALID_TOKEN");

    // With `reject_unauthenticated`, no token is 401 MISSING_TOKEN, never 429.
    let orders = limiter(per_minute(3), &clock)
        .reject_unauthenticated()
        .build()
        .unwrap();
    let auth = JwtAuthLayer::builder(validator(&clock))
        .optional()
        .build()
        .unwrap();
    let server = common::serve(app(auth, Some(orders), None)).await;
    for _ in 0..10 {
        common::assert_rejected(&order(&server, None).await, "MISSING_TOKEN");
    }
    let (passed, _) = orders_until_limited(&server, &plain("alice"), 10).await;
    assert_eq!(passed, 3);
    common::assert_rejected(&order(&server, None).await, "MISSING_TOKEN");

    // Required authentication: once alice's quota is spent, a request without a token is
    // still 401, not 429.
    let orders = limiter(per_minute(3), &clock).build().unwrap();
    let server = common::serve(app(
        JwtAuthLayer::new(validator(&clock)),
        Some(orders),
        None,
    ))
    .await;
    let alice = plain("alice");
    let (passed, _) = orders_until_limited(&server, &alice, 10).await;
    assert_eq!(passed, 3);
    for _ in 0..5 {
        common::assert_rejected(&order(&server, None).await, "MISSING_TOKEN");
    }
    assert_rate_limited(&order(&server, Some(&alice)).await);
}

#[tokio::test]
async fn ietf_rate_limit_headers_count_down() {
    let clock = clock();
    let orders = limiter(per_minute(30), &clock)
        .rate_limit_headers()
        .build()
        .unwrap();
    let server = common::serve(app(
        JwtAuthLayer::new(validator(&clock)),
        Some(orders),
        None,
    ))
    .await;
    let alice = plain("alice");

    for used in 1..=30u32 {
        let reply = order(&server, Some(&alice)).await;
        assert_eq!(reply.status, 200, "request {used}");
        assert_eq!(
            reply.header("ratelimit-policy"),
            Some("\"default\";q=30;w=60"),
            "request {used}"
        );
        // `t`: seconds until the whole burst is back, 2 s per request used.
        let expected = format!("\"default\";r={};t={}", 30 - used, 2 * used);
        assert_eq!(
            reply.header("ratelimit"),
            Some(expected.as_str()),
            "request {used}"
        );
    }
    let refused = order(&server, Some(&alice)).await;
    assert_rate_limited(&refused);
    assert_eq!(retry_after(&refused), 2);
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some("\"default\";q=30;w=60")
    );
    assert_eq!(refused.header("ratelimit"), Some("\"default\";r=0;t=2"));

    // Without the option, no such headers.
    let orders = limiter(per_minute(30), &clock).build().unwrap();
    let server = common::serve(app(
        JwtAuthLayer::new(validator(&clock)),
        Some(orders),
        None,
    ))
    .await;
    let reply = order(&server, Some(&alice)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("ratelimit-policy"), None);
    assert_eq!(reply.header("ratelimit"), None);
}

#[tokio::test]
async fn ietf_headers_name_the_plan() {
    let clock = clock();
    let quotas = per_minute(3)
        .plan("pro", Quota::per_minute(nz(10)))
        .unwrap();
    let orders = limiter(quotas, &clock)
        .plan_by(|ext| ext.get::<Claims<PlanClaims>>()?.plan.as_deref())
        .rate_limit_headers()
        .build()
        .unwrap();
    let server = common::serve(app(
        JwtAuthLayer::new(validator(&clock)),
        Some(orders),
        None,
    ))
    .await;

    let reply = order(&server, Some(&token("p", json!({ "plan": "pro" })))).await;
    assert_eq!(reply.header("ratelimit-policy"), Some("\"pro\";q=10;w=60"));
    assert_eq!(reply.header("ratelimit"), Some("\"pro\";r=9;t=6"));
    let reply = order(&server, Some(&plain("n"))).await;
    assert_eq!(
        reply.header("ratelimit-policy"),
        Some("\"default\";q=3;w=60")
    );
    assert_eq!(reply.header("ratelimit"), Some("\"default\";r=2;t=20"));
}

#[tokio::test]
async fn a_custom_key_lets_a_tenant_share_one_budget() {
    let clock = clock();
    let orders = limiter(per_minute(4), &clock)
        .key_by(|ext| {
            let tenant = ext.get::<Claims<PlanClaims>>()?.tenant.as_deref()?;
            Some(Arc::from(tenant))
        })
        .build()
        .unwrap();
    let server = common::serve(app(
        JwtAuthLayer::new(validator(&clock)),
        Some(orders),
        None,
    ))
    .await;

    let alice = token("alice", json!({ "tenant": "acme" }));
    let bob = token("bob", json!({ "tenant": "acme" }));
    for _ in 0..2 {
        assert_eq!(order(&server, Some(&alice)).await.status, 200);
    }
    // Bob has what is left of acme's budget, and then neither of them has any.
    let (passed, _) = orders_until_limited(&server, &bob, 10).await;
    assert_eq!(passed, 2);
    assert_rate_limited(&order(&server, Some(&alice)).await);

    // Another tenant is unaffected, whichever subject.
    let carol = token("alice", json!({ "tenant": "globex" }));
    let (passed, _) = orders_until_limited(&server, &carol, 10).await;
    assert_eq!(passed, 4);

    // No tenant claim: no key, so the request passes uncounted.
    let loner = plain("loner");
    for _ in 0..10 {
        assert_eq!(order(&server, Some(&loner)).await.status, 200);
    }
}

#[tokio::test]
async fn idle_users_are_forgotten_during_checks() {
    let clock = clock();
    let orders = limiter(per_minute(30), &clock).build().unwrap();
    let store_view = orders.clone();
    let server = common::serve(app(
        JwtAuthLayer::new(validator(&clock)),
        Some(orders),
        None,
    ))
    .await;
    assert!(store_view.store().is_empty());

    for user in ["a", "b", "c"] {
        assert_eq!(order(&server, Some(&plain(user))).await.status, 200);
    }
    let heavy = plain("heavy");
    let (passed, _) = orders_until_limited(&server, &heavy, 40).await;
    assert_eq!(passed, 30);
    assert_eq!(store_view.store().len(), 4);

    // 29 s later the light users have their burst back, but no cleanup is due yet (the first
    // check, at NOW, ran one; the 30 s are counted from it).
    clock.advance(Duration::from_secs(29));
    assert_eq!(order(&server, Some(&heavy)).await.status, 200);
    assert_eq!(store_view.store().len(), 4);

    // Past 30 s, a cleanup is due: the store looks at the clock once every 256 checks (per
    // thread; this server runs on one), so within 256 more checks the idle users are dropped;
    // the heavy user (whose burst is not back) is kept, and the new one is added.
    clock.advance(Duration::from_secs(2));
    let late = plain("late");
    let mut checks = 0;
    while store_view.store().len() != 2 && checks < 256 {
        order(&server, Some(&late)).await;
        checks += 1;
    }
    assert_eq!(store_view.store().len(), 2, "after {checks} checks");
    // Forgetting the heavy user would have handed them a fresh burst.
    let (passed, _) = orders_until_limited(&server, &heavy, 40).await;
    assert!(passed < 30, "the heavy user got {passed} requests");
}

/// A plan the quotas do not name gets the default quota, so the headers should name the
/// default policy; instead they name the raw claim, which may even filter down to `""`.
#[tokio::test]
async fn ietf_headers_name_the_default_policy_for_an_unknown_plan() {
    let clock = clock();
    let quotas = per_minute(3)
        .plan("pro", Quota::per_minute(nz(10)))
        .unwrap();
    let orders = limiter(quotas, &clock)
        .plan_by(|ext| ext.get::<Claims<PlanClaims>>()?.plan.as_deref())
        .rate_limit_headers()
        .build()
        .unwrap();
    let server = common::serve(app(
        JwtAuthLayer::new(validator(&clock)),
        Some(orders),
        None,
    ))
    .await;
    for plan in ["gold", "\u{20ac}"] {
        let reply = order(&server, Some(&token(plan, json!({ "plan": plan })))).await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("ratelimit-policy"),
            Some("\"default\";q=3;w=60"),
            "plan {plan:?}"
        );
        assert_eq!(
            reply.header("ratelimit"),
            Some("\"default\";r=2;t=20"),
            "plan {plan:?}"
        );
    }
}

/// The module docs' setup: headers on the global layer, none on the route. When the route
/// refuses, the global layer (which allowed the request) still stamps its own state on the 429,
/// telling the client it has requests left.
#[tokio::test]
async fn a_429_from_the_route_does_not_advertise_remaining_quota() {
    let clock = clock();
    let global = limiter(per_minute(6), &clock)
        .rate_limit_headers()
        .build()
        .unwrap();
    let route = limiter(per_minute(3), &clock).build().unwrap();
    let server = common::serve(app(
        JwtAuthLayer::new(validator(&clock)),
        Some(route),
        Some(global),
    ))
    .await;
    let (passed, refused) = orders_until_limited(&server, &plain("zoe"), 10).await;
    assert_eq!(passed, 3);
    assert_eq!(retry_after(&refused), 20, "refused by the route layer");
    // Absent, or (if several policies are listed) one of them exhausted.
    if let Some(state) = refused.header("ratelimit") {
        assert!(
            state.contains(";r=0;"),
            "a 429 advertises remaining quota: RateLimit: {state}"
        );
    }
}
