//! The outbound side: `cargo run --release --example client` sends requests through
//! [`TokenLayer`] on hyper-util's client, which attaches a token to every request and keeps it
//! fresh.
//!
//! - It fetches a token (`POST TOKEN_URL` with `{"sub": SUB}`, answered with
//!   `{"access_token", "expires_in"}`) before the first request, refreshes it once 60 % of its
//!   lifetime has passed (a jitter spreads the moment between 61 % and 71 %), never sends a
//!   token it knows to be expired, and runs one refresh at a time however many requests wait.
//! - It sends `REQUESTS` `GET`s to `API_URL`, `CONCURRENCY` at a time, spread evenly over
//!   `DURATION_S` seconds, each with `Authorization: Bearer <token>`. On a 401 the token is
//!   replaced once (for every request that saw it) and the request is sent once more.
//! - At the end it prints `{"ok": N, "failed": N, "token_fetches": N}` on stdout and exits 0.
//!
//! Environment: `TOKEN_URL` (default `http://127.0.0.1:3000/auth/token`, the demo's), `API_URL`
//! (default `http://127.0.0.1:3000/me`), `REQUESTS` (200), `CONCURRENCY` (20), `DURATION_S`
//! (10), `SUB` (`alice`); `TOKEN_TTL`, when set, is sent as `"ttl"` too (the demo's tokens live
//! 15 minutes unless told). Plain `http` URLs. Logs (`RUST_LOG`, default `warn`) go to stderr.
//!
//! With the demo: `cargo run --release --example demo`, then
//! `TOKEN_TTL=3 cargo run --release --example client` (3 s tokens: a few refreshes in 10 s).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_jwt_guard::outbound::{IssuedToken, ProviderError, TokenLayer, TokenSource};

/// What the example is told to do.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where tokens come from.
    pub token_url: Uri,
    /// What is called.
    pub api_url: Uri,
    /// Requests in all.
    pub requests: usize,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// The time over which the requests are spread.
    pub duration: Duration,
    /// The user.
    pub sub: String,
    /// A lifetime to ask for (`"ttl"`), when set.
    pub ttl: Option<u64>,
}

impl Settings {
    /// From the environment (`var` looks a name up), or why not.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        fn number<T: std::str::FromStr>(
            var: &impl Fn(&str) -> Option<String>,
            name: &str,
            default: T,
        ) -> Result<T, String> {
            match var(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| format!("{name} must be a number, not {v:?}")),
            }
        }
        let url = |name: &str, default: &str| -> Result<Uri, String> {
            let text = var(name).unwrap_or_else(|| default.to_owned());
            let uri: Uri = text
                .parse()
                .map_err(|_| format!("{name} is not a URL: {text:?}"))?;
            if uri.scheme_str() != Some("http") || uri.host().is_none() {
                return Err(format!("{name} must be an http:// URL: {text:?}"));
            }
            Ok(uri)
        };
        let settings = Self {
            token_url: url("TOKEN_URL", "http://127.0.0.1:3000/auth/token")?,
            api_url: url("API_URL", "http://127.0.0.1:3000/me")?,
            requests: number(&var, "REQUESTS", 200)?,
            concurrency: number(&var, "CONCURRENCY", 20)?,
            duration: Duration::from_secs_f64(
                // NaN is no duration: taken as 0 (all at once), like a negative one.
                Some(number(&var, "DURATION_S", 10.0_f64)?)
                    .filter(|d| d.is_finite())
                    .unwrap_or(0.0)
                    .clamp(0.0, 86_400.0),
            ),
            sub: var("SUB").unwrap_or_else(|| "alice".to_owned()),
            ttl: var("TOKEN_TTL")
                .map(|t| t.trim().parse())
                .transpose()
                .map_err(|_| "TOKEN_TTL must be a number".to_owned())?,
        };
        if settings.concurrency == 0 || settings.concurrency > tokio::sync::Semaphore::MAX_PERMITS {
            return Err("CONCURRENCY must be at least 1 (and not absurd)".to_owned());
        }
        Ok(settings)
    }
}

/// What a run gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Requests answered with a 2xx status.
    pub ok: u64,
    /// The others: another status, or no answer.
    pub failed: u64,
    /// Calls to the token endpoint.
    pub token_fetches: u64,
}

impl Summary {
    /// The line the example prints.
    pub fn json_line(&self) -> String {
        format!(
            "{{\"ok\": {}, \"failed\": {}, \"token_fetches\": {}}}",
            self.ok, self.failed, self.token_fetches
        )
    }
}

/// The longest a token endpoint or a request may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// One token from the endpoint: `{"sub": SUB}` posted, `access_token` and `expires_in` read
/// (without `expires_in`, the lifetime comes from the token's `exp`).
async fn fetch_token(
    http: Client<HttpConnector, Full<Bytes>>,
    url: Uri,
    sub: String,
    ttl: Option<u64>,
) -> Result<IssuedToken, ProviderError> {
    const SLOW: ProviderError = ProviderError("the token endpoint did not answer in time");
    let mut body = json!({ "sub": sub });
    if let Some(ttl) = ttl {
        body["ttl"] = json!(ttl);
    }
    let request = Request::post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|_| ProviderError("cannot build the token request"))?;
    let response = tokio::time::timeout(CALL_TIMEOUT, http.request(request))
        .await
        .map_err(|_| SLOW)?
        .map_err(|_| ProviderError("the token endpoint cannot be reached"))?;
    if !response.status().is_success() {
        return Err(ProviderError("the token endpoint refused"));
    }
    let body = tokio::time::timeout(CALL_TIMEOUT, response.into_body().collect())
        .await
        .map_err(|_| SLOW)?
        .map_err(|_| ProviderError("the token endpoint's answer broke off"))?
        .to_bytes();
    let reply: Value =
        serde_json::from_slice(&body).map_err(|_| ProviderError("the token answer is not JSON"))?;
    let token = reply["access_token"]
        .as_str()
        .ok_or(ProviderError("the token answer has no access_token"))?;
    let issued = IssuedToken::new(token);
    // `expires_in`: seconds, a number (or, from some servers, a numeric string).
    let expires_in = match &reply["expires_in"] {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    Ok(match expires_in {
        Some(secs) if secs.is_finite() && secs > 0.0 => {
            issued.expires_in(Duration::from_secs_f64(secs.min(31_536_000.0)))
        }
        _ => issued,
    })
}

/// Runs the requests and counts them.
pub async fn run(settings: &Settings) -> Summary {
    let http: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let (url, sub, ttl) = (
        settings.token_url.clone(),
        settings.sub.clone(),
        settings.ttl,
    );
    let source =
        TokenSource::builder(move || fetch_token(http.clone(), url.clone(), sub.clone(), ttl))
            // "Once 60 % of its lifetime has passed": 66 % ± 5 %, never before 61 %.
            .refresh_at(0.66)
            .jitter(0.05)
            .build();
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let service = ServiceBuilder::new()
        .layer(TokenLayer::new(source.clone()))
        .service(client);

    // The token before the first request (a failure here shows in the requests' results).
    if let Err(e) = source.token().await {
        tracing::warn!(error = %e, "no first token");
    }
    let gate = Arc::new(tokio::sync::Semaphore::new(settings.concurrency));
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..settings.requests {
        #[allow(clippy::cast_precision_loss)]
        let at = start
            + settings
                .duration
                .mul_f64(i as f64 / settings.requests as f64);
        tokio::time::sleep_until(at).await;
        let Ok(permit) = Arc::clone(&gate).acquire_owned().await else {
            break;
        };
        let mut service = service.clone();
        let request = Request::get(settings.api_url.clone()).body(Empty::new());
        tasks.spawn(async move {
            let _permit = permit;
            let Ok(request) = request else { return false };
            let sent = tokio::time::timeout(CALL_TIMEOUT, async {
                let response = service.ready().await?.call(request).await?;
                let status = response.status();
                // Read to the end, so that the connection is used again.
                response.into_body().collect().await?;
                Ok::<StatusCode, tower_jwt_guard::outbound::BoxError>(status)
            })
            .await;
            match sent {
                Ok(Ok(status)) => status.is_success(),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "a request failed");
                    false
                }
                Err(_) => false,
            }
        });
    }
    let (mut ok, mut failed) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        if done.unwrap_or(false) {
            ok += 1;
        } else {
            failed += 1;
        }
    }
    Summary {
        ok,
        failed,
        token_fetches: source.fetches(),
    }
}

#[tokio::main]
#[allow(dead_code)]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let settings = match Settings::from_env(|name| std::env::var(name).ok()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("client: {e}");
            std::process::exit(2);
        }
    };
    println!("{}", run(&settings).await.json_line());
}
