//! Remote keys from a real, certified OpenID provider that no one here wrote: `oidc-provider`
//! from the npm registry (`tests/idp/`, installed by `.ci/run` with `npm ci`), started by the
//! test on a free loopback port. Discovery finds its key set; a token it issues (a JWT access
//! token, RS256, by the client-credentials grant) verifies with the keys found; after the
//! provider rotates to a new signing key (restarted with it first), the first token naming the
//! new `kid` makes one refetch and verifies. The demo with `OIDC_ISSUER` set to the provider
//! accepts its tokens (and its own), refuses a token naming the provider but signed with
//! `JWT_SECRET`, follows a rotation without a restart, and, started while the provider is
//! down, refuses the provider's tokens with `AUTH_FAILED` until its keys arrive. Without
//! Node.js or the package the tests fail: they never skip.
#![cfg(all(feature = "remote-keys-http", feature = "axum", feature = "websocket"))]

#[path = "common/demo.rs"]
mod demo;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tower_jwt_guard::Algorithm;
use tower_jwt_guard::remote_keys::{HttpFetcher, RemoteKeySet};
use tower_jwt_guard::validate::Validator;

/// The provider, killed when dropped.
struct Idp {
    child: Child,
    issuer: String,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_idp(port: u16, kids: &str, keys_dir: &std::path::Path) -> Idp {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/idp");
    assert!(
        std::path::Path::new(dir)
            .join("node_modules/oidc-provider")
            .exists(),
        "oidc-provider is not installed: run `npm ci` in tests/idp (.ci/run does)"
    );
    let mut child = Command::new("node")
        .arg("idp.mjs")
        .current_dir(dir)
        .env("PORT", port.to_string())
        .env("KIDS", kids)
        .env("KEYS_DIR", keys_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node (Node.js) to run the test identity provider");
    let stdout = child.stdout.take().expect("its stdout");
    // Owned from here: killed even if it never says it is ready.
    let mut idp = Idp {
        child,
        issuer: String::new(),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(issuer) = line.strip_prefix("ready ") {
                let _ = tx.send(issuer.to_owned());
            }
        }
    });
    idp.issuer = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the identity provider did not start within 20 s");
    idp
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A JWT access token from the provider (client-credentials grant).
async fn token(idp: &Idp) -> String {
    let reply: serde_json::Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/token", idp.issuer))
        .basic_auth("api-client", Some("api-client-secret-0123456789"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=api")
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("the token endpoint answers")
        .json()
        .await
        .expect("a JSON token response");
    reply["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token: {reply}"))
        .to_owned()
}

fn kid_of(token: &str) -> String {
    tower_jwt_guard::jsonwebtoken::decode_header(token)
        .unwrap()
        .kid
        .expect("a kid")
}

fn validator(set: &RemoteKeySet, issuer: &str) -> Validator<serde_json::Value> {
    Validator::builder()
        .keys(set.current().expect("keys").keys.iter().cloned())
        .algorithms([Algorithm::RS256])
        .issuers([issuer])
        .audiences(["urn:api"])
        .token_types(["at+jwt"])
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_tokens_and_rotation_with_a_real_openid_provider() {
    tower_jwt_guard::crypto::install_crypto_provider();
    let keys_dir = std::env::temp_dir().join(format!("tjg-idp-{}", std::process::id()));
    let port = free_port();
    let idp = start_idp(port, "k1", &keys_dir);
    let set = RemoteKeySet::discover(idp.issuer.clone(), HttpFetcher::new().unwrap())
        .build()
        .unwrap();
    set.refresh().await.expect("discovery and the key set");
    let first = token(&idp).await;
    assert_eq!(kid_of(&first), "k1");
    let claims = validator(&set, &idp.issuer)
        .validate(&first)
        .expect("the provider's token verifies with the keys discovered");
    assert_eq!(claims.claims["client_id"], "api-client");

    // Rotation: the provider now signs with k2 (and still publishes k1).
    drop(idp);
    let idp = start_idp(port, "k2,k1", &keys_dir);
    let second = token(&idp).await;
    assert_eq!(kid_of(&second), "k2");
    assert!(
        validator(&set, &idp.issuer).validate(&second).is_err(),
        "k2 not known yet"
    );
    let fetches = set.stats().fetches;
    assert!(
        set.refresh_for_unknown_kid(Some("k2")).await,
        "one refetch finds k2"
    );
    assert_eq!(set.stats().fetches, fetches + 1);
    validator(&set, &idp.issuer)
        .validate(&second)
        .expect("the rotated key verifies");
    validator(&set, &idp.issuer)
        .validate(&first)
        .expect("the old key is still published");
    let _ = std::fs::remove_dir_all(&keys_dir);
}

const SECRET: &[u8] = b"demo-oidc-test-secret-0123456789abcdef";

fn oidc(issuer: &str) -> demo::app::OidcConfig {
    demo::app::OidcConfig {
        issuer: issuer.to_owned(),
        audience: Some("urn:api".to_owned()),
        refresh: Duration::from_secs(600),
        cooldown: Duration::from_secs(1),
    }
}

/// `GET /me` with `token`: the status and the body.
async fn me(demo: &demo::Demo, token: &str) -> (u16, serde_json::Value) {
    let reply = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
        .get(format!("{}/me", demo.base()))
        .bearer_auth(token)
        .send()
        .await
        .expect("the demo answers");
    let status = reply.status().as_u16();
    (status, reply.json().await.expect("a JSON body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_accepts_the_providers_tokens_and_follows_its_rotation() {
    tower_jwt_guard::crypto::install_crypto_provider();
    let keys_dir = std::env::temp_dir().join(format!("tjg-idp-demo-{}", std::process::id()));
    let port = free_port();
    let idp = start_idp(port, "k1", &keys_dir);
    let demo = demo::start_with_oidc(SECRET, oidc(&idp.issuer)).await;

    // The provider's token: the first request may share the refresher's first fetch.
    let first = token(&idp).await;
    let (status, body) = me(&demo, &first).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sub"], "api-client");
    // The demo's own tokens keep working.
    let (status, body) = me(&demo, &demo.token("alice", 60)).await;
    assert_eq!((status, &body["sub"]), (200, &serde_json::json!("alice")));
    // A token naming the provider, signed with JWT_SECRET: refused.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = demo.sign(serde_json::json!({
        "sub": "mallory", "iat": now, "exp": now + 60, "type": "access",
        "iss": idp.issuer, "aud": "urn:api",
    }));
    let (status, body) = me(&demo, &forged).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "INVALID_TOKEN");

    // The provider rotates to k2: the demo picks it up at the first token naming it (once the
    // cooldown, 1 s here, has passed since the fetch the first token may have caused).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    drop(idp);
    let idp = start_idp(port, "k2,k1", &keys_dir);
    let second = token(&idp).await;
    assert_eq!(kid_of(&second), "k2");
    let (status, body) = me(&demo, &second).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = me(&demo, &first).await;
    assert_eq!(status, 200, "k1 is still published");
    drop(idp);
    let _ = std::fs::remove_dir_all(&keys_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_started_while_the_provider_is_down_recovers() {
    tower_jwt_guard::crypto::install_crypto_provider();
    let keys_dir = std::env::temp_dir().join(format!("tjg-idp-down-{}", std::process::id()));
    let port = free_port();
    // The provider's keys and a token of it, made before the demo starts; then it goes away.
    let idp = start_idp(port, "k1", &keys_dir);
    let issuer = idp.issuer.clone();
    let early = token(&idp).await;
    drop(idp);

    let demo = demo::start_with_oidc(SECRET, oidc(&issuer)).await;
    let (status, _) = me(&demo, &demo.token("alice", 60)).await;
    assert_eq!(status, 200, "the demo serves its own tokens");
    let (status, body) = me(&demo, &early).await;
    assert_eq!(body["error"]["code"], "AUTH_FAILED", "{body}");
    assert_eq!(status, 500);

    let _idp = start_idp(port, "k1", &keys_dir);
    let started = std::time::Instant::now();
    loop {
        let (status, body) = me(&demo, &early).await;
        if status == 200 {
            assert_eq!(body["sub"], "api-client");
            break;
        }
        assert_eq!(body["error"]["code"], "AUTH_FAILED", "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the keys never arrived"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = std::fs::remove_dir_all(&keys_dir);
}
