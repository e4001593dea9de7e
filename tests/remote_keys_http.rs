//! Remote key sets over real HTTP: a JWKS server of the test's own on loopback (axum), fetched
//! by the crate's `HttpFetcher`, for what a real identity provider will not do on demand: a new
//! `kid` used at once (one fetch for a burst), a 500, garbage, a 10 MiB body, a server that
//! hangs (known keys keep working, each fetch bounded), and a set started while its endpoint
//! is down that recovers without a restart.
#![cfg(all(feature = "remote-keys-http", feature = "axum"))]

mod common;

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_jwt_guard::remote_keys::{HttpFetcher, RemoteKeySet};

const EC_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const EC_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

const GOOD: u8 = 0;
const ERROR_500: u8 = 1;
const GARBAGE: u8 = 2;
const HUGE: u8 = 3;
const HANG: u8 = 4;

#[derive(Clone, Default)]
struct Endpoint {
    mode: Arc<AtomicU8>,
    kids: Arc<Mutex<Vec<String>>>,
    hits: Arc<AtomicU64>,
}

fn document(kids: &[String]) -> String {
    let keys: Vec<String> = kids
        .iter()
        .map(|k| format!(r#"{{"kty":"EC","kid":"{k}","crv":"P-256","x":"{EC_X}","y":"{EC_Y}"}}"#))
        .collect();
    format!(r#"{{"keys":[{}]}}"#, keys.join(","))
}

async fn jwks(State(endpoint): State<Endpoint>) -> Response {
    endpoint.hits.fetch_add(1, Ordering::SeqCst);
    // A little latency, so that a burst overlaps one fetch.
    tokio::time::sleep(Duration::from_millis(20)).await;
    match endpoint.mode.load(Ordering::SeqCst) {
        ERROR_500 => (http::StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        GARBAGE => "<html>not json</html>".into_response(),
        HUGE => " ".repeat(10 << 20).into_response(),
        HANG => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late".into_response()
        }
        _ => document(&endpoint.kids.lock().unwrap()).into_response(),
    }
}

async fn serve(endpoint: &Endpoint) -> common::TestServer {
    let app = Router::new()
        .route("/jwks", get(jwks))
        .with_state(endpoint.clone());
    common::serve(app).await
}

fn set(url: String) -> RemoteKeySet {
    let fetcher = HttpFetcher::new()
        .unwrap()
        .timeout(Duration::from_millis(500));
    RemoteKeySet::builder(url, fetcher).build().unwrap()
}

fn kids(set: &RemoteKeySet) -> Vec<String> {
    set.current()
        .map(|s| {
            s.keys
                .iter()
                .filter_map(|k| k.kid().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_failures_and_bounds_over_http() {
    let endpoint = Endpoint::default();
    *endpoint.kids.lock().unwrap() = vec!["k1".into()];
    let server = serve(&endpoint).await;
    let set = set(server.url("/jwks"));
    set.refresh().await.unwrap();
    assert_eq!(kids(&set), ["k1"]);

    // A new kid appears: a burst of 1 000 requests naming it makes one fetch.
    endpoint.kids.lock().unwrap().push("k2".into());
    let before = endpoint.hits.load(Ordering::SeqCst);
    let burst: Vec<_> = (0..1_000)
        .map(|_| {
            let set = set.clone();
            tokio::spawn(async move { set.refresh_for_unknown_kid(Some("k2")).await })
        })
        .collect();
    for task in burst {
        assert!(task.await.unwrap(), "the new key is found");
    }
    assert_eq!(
        endpoint.hits.load(Ordering::SeqCst) - before,
        1,
        "one fetch"
    );

    // 500, garbage, a 10 MiB body, a hang: each fetch fails within its bound, the keys stay,
    // and reading them never waits.
    for mode in [ERROR_500, GARBAGE, HUGE, HANG] {
        endpoint.mode.store(mode, Ordering::SeqCst);
        let started = Instant::now();
        let refresh = {
            let set = set.clone();
            tokio::spawn(async move { set.refresh().await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        // While the fetch is under way (reading is a snapshot load: it cannot wait).
        assert_eq!(kids(&set), ["k1", "k2"], "mode {mode}");
        assert!(refresh.await.unwrap().is_err(), "mode {mode}");
        // The fetcher's 500 ms bound, with room for a loaded machine.
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "mode {mode}: {:?}",
            started.elapsed()
        );
    }
    assert_eq!(set.stats().failures, 4);

    // Back to normal, with k1 removed: the next refresh drops it.
    endpoint.mode.store(GOOD, Ordering::SeqCst);
    *endpoint.kids.lock().unwrap() = vec!["k2".into()];
    set.refresh().await.unwrap();
    assert_eq!(kids(&set), ["k2"]);
}

#[tokio::test]
async fn a_set_started_while_its_endpoint_is_down_recovers() {
    // A port with nothing on it yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let set = set(format!("http://127.0.0.1:{port}/jwks"));
    let _refresher = set.spawn_refresher();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        set.current().is_none(),
        "no keys yet: tokens needing them are refused"
    );
    assert!(set.stats().failures >= 1);
    // The endpoint comes up on that port: the refresher's retry (1 s, then 2 s…) finds it.
    let endpoint = Endpoint::default();
    *endpoint.kids.lock().unwrap() = vec!["late".into()];
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let app = Router::new()
        .route("/jwks", get(jwks))
        .with_state(endpoint.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let started = Instant::now();
    while kids(&set) != ["late"] {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never recovered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn plain_http_to_other_hosts_is_refused_before_connecting() {
    let set = set("http://idp.example/jwks".to_owned());
    let error = set.refresh().await.unwrap_err();
    assert!(error.to_string().contains("not loopback"), "{error}");
}
