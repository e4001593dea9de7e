//! The tower-jwt-guard quick start: `cargo run --release --example demo`.
//!
//! Environment: `DEMO_ADDR` (default `127.0.0.1:3000`), `JWT_SECRET` (the HS256 secret; a
//! random one is generated when unset), `REDIS_URL` (shared state), `OIDC_ISSUER` (an OpenID
//! Connect issuer whose tokens are accepted too; `OIDC_AUDIENCE`, `JWKS_REFRESH_S`,
//! `JWKS_COOLDOWN_S` tune it), `RUST_LOG` (default `info`, audit events included).

mod app;
mod grpc;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tower_jwt_guard::clock::SystemClock;
use tower_jwt_guard::extract::DEFAULT_WEBSOCKET_PROTOCOL_PREFIX;
use tower_jwt_guard::jsonwebtoken::EncodingKey;
use tower_jwt_guard::keys::MIN_HMAC_SECRET_LEN;
use tracing_subscriber::EnvFilter;

/// `OIDC_ISSUER`, `OIDC_AUDIENCE`, `JWKS_REFRESH_S`, `JWKS_COOLDOWN_S`.
fn oidc_from_env() -> Result<Option<app::OidcConfig>, Box<dyn std::error::Error>> {
    let Some(issuer) = std::env::var("OIDC_ISSUER").ok().filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let seconds = |name: &str, default: u64| -> Result<Duration, Box<dyn std::error::Error>> {
        match std::env::var(name) {
            Ok(v) if !v.is_empty() => match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Ok(Duration::from_secs(n)),
                _ => Err(format!("{name} must be a whole number of seconds above 0").into()),
            },
            _ => Ok(Duration::from_secs(default)),
        }
    };
    // Plain http only to a loopback address (by address, as the crate's fetcher checks): said
    // at start-up rather than as a warning at every fetch.
    if let Some(rest) = issuer.strip_prefix("http://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
            _ => authority,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if !host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
        {
            return Err("OIDC_ISSUER: plain http is only for a loopback address \
                        (127.0.0.1, [::1]); use https"
                .into());
        }
    }
    let audience = std::env::var("OIDC_AUDIENCE")
        .ok()
        .filter(|s| !s.is_empty());
    let refresh = seconds("JWKS_REFRESH_S", 600)?;
    let cooldown = seconds("JWKS_COOLDOWN_S", 30)?;
    tracing::info!(
        issuer = %issuer,
        audience = ?audience,
        refresh_s = refresh.as_secs(),
        cooldown_s = cooldown.as_secs(),
        "accepting tokens from the OpenID Connect issuer too (OIDC_ISSUER)"
    );
    if audience.is_none() {
        tracing::warn!(
            "OIDC_AUDIENCE is not set: the issuer's tokens are accepted whatever their aud, \
             so a token it issued for another service works here too; set OIDC_AUDIENCE"
        );
    }
    Ok(Some(app::OidcConfig {
        issuer,
        audience,
        refresh,
        cooldown,
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,tower_jwt_guard::audit=info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let secret = match std::env::var("JWT_SECRET") {
        Ok(s) if !s.is_empty() => {
            // A short secret is accepted, loudly: the demo is a development tool whose secret
            // is often shared with test tooling that uses short ones. The crate itself refuses
            // secrets under 32 bytes (`Key::hmac`); the demo opts out with the explicitly named
            // `Key::hmac_insecure_short`.
            if s.len() < MIN_HMAC_SECRET_LEN {
                tracing::warn!(
                    "JWT_SECRET is {} bytes; RFC 7518 asks for at least {MIN_HMAC_SECRET_LEN} for \
                     HS256, and a short secret can be brute-forced from one token. The demo \
                     accepts it; a real service must not (Key::hmac refuses it).",
                    s.len()
                );
            }
            s.into_bytes()
        }
        _ => {
            tracing::warn!(
                "JWT_SECRET is not set: using a random secret. Tokens will not survive a restart; \
                 set JWT_SECRET to sign tokens elsewhere."
            );
            let bytes: [u8; 32] = rand::random();
            URL_SAFE_NO_PAD.encode(bytes).into_bytes()
        }
    };

    // REDIS_URL: lockout, quotas, revocations and notifications shared by every demo process
    // on that Redis. Connects lazily: the demo starts (in memory until Redis answers) even when
    // Redis is down. The URL is never logged (it may carry a password).
    let redis = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            let client = tower_jwt_guard::redis::RedisClient::builder(url)
                .timeout(std::time::Duration::from_millis(250))
                .build()?;
            tracing::info!("shared state on Redis (REDIS_URL)");
            Some(client)
        }
        _ => None,
    };
    let oidc = oidc_from_env()?;
    let config = app::DemoConfig {
        secret,
        clock: Arc::new(SystemClock),
        session_tick: std::time::Duration::from_secs(30),
        send_timeout: std::time::Duration::from_secs(10),
        redis,
        oidc,
    };
    let router = app::app(&config)?;

    let addr: SocketAddr = std::env::var("DEMO_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".to_owned())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!("tower-jwt-guard demo listening on http://{local}");

    let token = app::sign_access_token(
        &EncodingKey::from_secret(&config.secret)?,
        &SystemClock,
        "alice",
        Some("free"),
    )?;
    let protocol = format!(
        "{DEFAULT_WEBSOCKET_PROTOCOL_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(&token)
    );
    println!(
        "\nA token for user alice (plan free, valid {} minutes):\n\n  TOKEN={token}\n\n\
         Try:\n\
         \x20 curl -s http://{local}/health\n\
         \x20 curl -s http://{local}/me -H \"Authorization: Bearer $TOKEN\"\n\
         \x20 curl -s \"http://{local}/me?token=$TOKEN\"\n\
         \x20 curl -s http://{local}/me -H \"X-Auth-Token: $TOKEN\"\n\
         \x20 curl -s -X POST http://{local}/orders -H \"Authorization: Bearer $TOKEN\"  # 30/min per user (a burst of 30, then 1 every 2 s)\n\
         \x20 curl -s http://{local}/me                      # 401 MISSING_TOKEN\n\
         \x20 curl -s http://{local}/me -H \"Authorization: Bearer nope\"   # 401 INVALID_TOKEN\n\
         \x20 curl -s -X POST http://{local}/auth/token -H 'content-type: application/json' \\\n\
         \x20      -d '{{\"sub\":\"bob\",\"plan\":\"pro\"}}'\n\
         WebSocket echo (the subprotocol carries the token, as browsers must):\n\
         \x20 websocat --protocol 'echo, {protocol}' ws://{local}/ws\n\
         \x20 websocat -H \"Authorization: Bearer $TOKEN\" ws://{local}/ws\n\
         \x20 then send: {{\"type\":\"reauth\",\"token\":\"<a newer token>\"}}\n",
        app::TOKEN_TTL.as_secs() / 60
    );

    app::serve(listener, router, app::HEADER_READ_TIMEOUT, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}
