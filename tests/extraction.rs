//! Token sources through a real server: Bearer, query, named header (with and without prefix),
//! cookie, WebSocket subprotocol; conflicts, precedence, size caps, duplicate headers.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderName;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::json;
use tower_jwt_guard::JwtAuthLayer;
use tower_jwt_guard::extract::{
    DEFAULT_MAX_TOKEN_LEN, DEFAULT_WEBSOCKET_PROTOCOL_PREFIX, TokenExtractor,
};

use common::*;

fn all_sources() -> TokenExtractor {
    TokenExtractor::new()
        .bearer()
        .query("token")
        .header(HeaderName::from_static("x-auth-token"))
        .cookie("jwt")
        .websocket_protocol()
}

async fn server_with(extractor: TokenExtractor) -> TestServer {
    let layer = JwtAuthLayer::builder(hmac_validator())
        .extractor(extractor)
        .build()
        .expect("layer");
    serve_layer(layer).await
}

/// `chat` and the token subprotocol: an upgrade must offer an application protocol beside it.
fn ws_protocol(token: &str) -> String {
    format!(
        "chat, {DEFAULT_WEBSOCKET_PROTOCOL_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(token)
    )
}

/// The headers that make a request a WebSocket upgrade, the only requests on which the
/// subprotocol source is read (the handler answers 200, which is enough to see the decision).
fn upgrade() -> reqwest::header::HeaderMap {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("connection", "upgrade".parse().unwrap());
    h.insert("upgrade", "websocket".parse().unwrap());
    h
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let server = serve_layer(JwtAuthLayer::new(hmac_validator())).await;
    let token = token_for("alice");
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let reply = send(
            client()
                .get(server.url("/me"))
                .header("authorization", format!("{scheme} {token}")),
        )
        .await;
        assert_accepted(&reply, "alice");
        assert_eq!(reply.json()["source"], "bearer", "{scheme}");
    }
}

#[tokio::test]
async fn other_authorization_schemes_are_not_a_token() {
    let server = serve_layer(JwtAuthLayer::new(hmac_validator())).await;
    let reply = send(
        client()
            .get(server.url("/me"))
            .header("authorization", "Basic dXNlcjpwYXNz"),
    )
    .await;
    assert_rejected(&reply, "MISSING_TOKEN");
    // A Bearer scheme with nothing after it is a presented-but-unusable token.
    let reply = send(
        client()
            .get(server.url("/me"))
            .header("authorization", "Bearer "),
    )
    .await;
    assert_rejected(&reply, "INVALID_TOKEN");
}

#[tokio::test]
async fn default_extractor_ignores_query_tokens() {
    let server = serve_layer(JwtAuthLayer::new(hmac_validator())).await;
    let reply = send(client().get(server.url(&format!("/me?token={}", token_for("alice"))))).await;
    assert_rejected(&reply, "MISSING_TOKEN");
}

#[tokio::test]
async fn query_parameter() {
    let server = server_with(TokenExtractor::new().query("token")).await;
    let token = token_for("bob");
    let reply = send(client().get(server.url(&format!("/me?x=1&token={token}&y=2")))).await;
    assert_accepted(&reply, "bob");
    assert_eq!(reply.json()["source"], "query");

    // Percent-encoded dots decode to the same token.
    let encoded = token.replace('.', "%2E");
    let reply = send(client().get(server.url(&format!("/me?token={encoded}")))).await;
    assert_accepted(&reply, "bob");

    // Another parameter with a similar name is not the token.
    let reply = send(client().get(server.url(&format!("/me?xtoken={token}")))).await;
    assert_rejected(&reply, "MISSING_TOKEN");

    // The same parameter twice with different tokens is a conflict.
    let other = token_for("mallory");
    let reply = send(client().get(server.url(&format!("/me?token={token}&token={other}")))).await;
    assert_rejected(&reply, "INVALID_REQUEST");
}

#[tokio::test]
async fn named_header_without_and_with_prefix() {
    let plain =
        server_with(TokenExtractor::new().header(HeaderName::from_static("x-auth-token"))).await;
    let token = token_for("carol");
    let reply = send(
        client()
            .get(plain.url("/me"))
            .header("X-Auth-Token", &token),
    )
    .await;
    assert_accepted(&reply, "carol");
    assert_eq!(reply.json()["source"], "header");

    let prefixed = server_with(
        TokenExtractor::new().header_with_prefix(HeaderName::from_static("x-auth-token"), "Token "),
    )
    .await;
    for value in [format!("Token {token}"), format!("token {token}")] {
        let reply = send(
            client()
                .get(prefixed.url("/me"))
                .header("x-auth-token", value),
        )
        .await;
        assert_accepted(&reply, "carol");
    }
    // Without the prefix the header is present but unusable.
    let reply = send(
        client()
            .get(prefixed.url("/me"))
            .header("x-auth-token", &token),
    )
    .await;
    assert_rejected(&reply, "INVALID_TOKEN");
    let reply = send(
        client()
            .get(prefixed.url("/me"))
            .header("x-auth-token", format!("Bearer {token}")),
    )
    .await;
    assert_rejected(&reply, "INVALID_TOKEN");
}

#[tokio::test]
async fn cookie() {
    let server = server_with(TokenExtractor::new().cookie("jwt")).await;
    let token = token_for("dave");
    let reply = send(
        client()
            .get(server.url("/me"))
            .header("cookie", format!("theme=dark; jwt={token}; lang=en")),
    )
    .await;
    assert_accepted(&reply, "dave");
    assert_eq!(reply.json()["source"], "cookie");

    // A cookie with another name is not the token.
    let reply = send(
        client()
            .get(server.url("/me"))
            .header("cookie", format!("jwt2={token}")),
    )
    .await;
    assert_rejected(&reply, "MISSING_TOKEN");
}

#[tokio::test]
async fn websocket_subprotocol_header() {
    let server = server_with(TokenExtractor::new().websocket_protocol()).await;
    let token = token_for("erin");
    let reply = send(client().get(server.url("/me")).headers(upgrade()).header(
        "sec-websocket-protocol",
        format!("chat, {}", ws_protocol(&token)),
    ))
    .await;
    assert_accepted(&reply, "erin");
    assert_eq!(reply.json()["source"], "websocket_protocol");

    // Padded base64url is refused.
    let padded = format!(
        "{DEFAULT_WEBSOCKET_PROTOCOL_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE.encode(format!("{token}x"))
    );
    assert!(padded.ends_with('='));
    let reply = send(
        client()
            .get(server.url("/me"))
            .headers(upgrade())
            .header("sec-websocket-protocol", format!("chat, {padded}")),
    )
    .await;
    assert_rejected(&reply, "INVALID_TOKEN");

    // Two token subprotocols are refused, even with the same token.
    let reply = send(client().get(server.url("/me")).headers(upgrade()).header(
        "sec-websocket-protocol",
        format!("{}, {}", ws_protocol(&token), ws_protocol(&token)),
    ))
    .await;
    assert_rejected(&reply, "INVALID_REQUEST");

    // Other subprotocols alone are no token at all.
    let reply = send(
        client()
            .get(server.url("/me"))
            .headers(upgrade())
            .header("sec-websocket-protocol", "chat, superchat"),
    )
    .await;
    assert_rejected(&reply, "MISSING_TOKEN");
}

#[tokio::test]
async fn conflicting_tokens_in_two_sources_are_refused() {
    let server = server_with(all_sources()).await;
    // Both tokens are valid on their own: only the conflict refuses the request.
    let alice = token_for("alice");
    let mallory = token_for("mallory");
    assert_accepted(&get_bearer(&server, &alice).await, "alice");
    assert_accepted(&get_bearer(&server, &mallory).await, "mallory");

    let cases: Vec<reqwest::RequestBuilder> = vec![
        client()
            .get(server.url(&format!("/me?token={mallory}")))
            .bearer_auth(&alice),
        client()
            .get(server.url("/me"))
            .bearer_auth(&alice)
            .header("x-auth-token", &mallory),
        client()
            .get(server.url("/me"))
            .header("x-auth-token", &alice)
            .header("cookie", format!("jwt={mallory}")),
        client()
            .get(server.url("/me"))
            .header("cookie", format!("jwt={alice}"))
            .headers(upgrade())
            .header("sec-websocket-protocol", ws_protocol(&mallory)),
        client()
            .get(server.url("/me"))
            .header("cookie", format!("jwt={alice}; jwt={mallory}")),
    ];
    for (i, request) in cases.into_iter().enumerate() {
        let reply = send(request).await;
        // Two credentials: RFC 6750's invalid_request (no token was validated, so the request
        // is never counted as a failed attempt, even with a valid token among them).
        assert_rejected(&reply, "INVALID_REQUEST");
        assert!(
            reply.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("conflicting"),
            "case {i}: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn same_token_in_every_source_is_accepted() {
    let server = server_with(all_sources()).await;
    let token = token_for("alice");
    let reply = send(
        client()
            .get(server.url(&format!("/me?token={token}")))
            .bearer_auth(&token)
            .header("x-auth-token", &token)
            .header("cookie", format!("jwt={token}"))
            .headers(upgrade())
            .header("sec-websocket-protocol", ws_protocol(&token)),
    )
    .await;
    assert_accepted(&reply, "alice");
    // The first configured source is recorded.
    assert_eq!(reply.json()["source"], "bearer");
}

#[tokio::test]
async fn first_match_follows_configuration_order() {
    let header_first = server_with(
        TokenExtractor::new()
            .header(HeaderName::from_static("x-auth-token"))
            .query("token")
            .first_match(),
    )
    .await;
    let query_first = server_with(
        TokenExtractor::new()
            .query("token")
            .header(HeaderName::from_static("x-auth-token"))
            .first_match(),
    )
    .await;
    let from_header = token_for("header-user");
    let from_query = token_for("query-user");

    let request = |server: &TestServer| {
        client()
            .get(server.url(&format!("/me?token={from_query}")))
            .header("x-auth-token", &from_header)
    };
    let reply = send(request(&header_first)).await;
    assert_accepted(&reply, "header-user");
    assert_eq!(reply.json()["source"], "header");

    let reply = send(request(&query_first)).await;
    assert_accepted(&reply, "query-user");
    assert_eq!(reply.json()["source"], "query");

    // With first_match, a later source is not examined at all, not even for validity.
    let reply = send(
        client()
            .get(header_first.url("/me?token=garbage"))
            .header("x-auth-token", &from_header),
    )
    .await;
    assert_accepted(&reply, "header-user");

    // When the first source is absent, the next one is used.
    let reply = send(client().get(header_first.url(&format!("/me?token={from_query}")))).await;
    assert_accepted(&reply, "query-user");
}

/// A valid token whose length is as close as possible to `target` from the side `above` says.
fn token_of_len_near(target: usize, above: bool) -> String {
    let base = token_for("alice").len();
    assert!(base < target);
    // Each padding byte adds 4/3 characters; search a bounded window around the estimate.
    let estimate = (target - base) * 3 / 4;
    let mut best: Option<String> = None;
    for pad in estimate.saturating_sub(32)..estimate + 8 {
        let token = sign_hs256(&json!({
            "sub": "alice",
            "exp": NOW + 3600,
            "pad": "p".repeat(pad),
        }));
        let fits = if above {
            token.len() > target
        } else {
            token.len() <= target
        };
        let better = best.as_ref().is_none_or(|b| {
            if above {
                token.len() < b.len()
            } else {
                token.len() > b.len()
            }
        });
        if fits && better {
            best = Some(token);
        }
    }
    best.expect("a token of the wanted size")
}

#[tokio::test]
async fn default_size_cap_is_8_kib() {
    let server = server_with(all_sources()).await;
    let just_under = token_of_len_near(DEFAULT_MAX_TOKEN_LEN, false);
    let just_over = token_of_len_near(DEFAULT_MAX_TOKEN_LEN, true);
    assert!(just_under.len() >= DEFAULT_MAX_TOKEN_LEN - 3);
    assert!(just_over.len() <= DEFAULT_MAX_TOKEN_LEN + 3);

    assert_accepted(&get_bearer(&server, &just_under).await, "alice");
    assert_rejected(&get_bearer(&server, &just_over).await, "INVALID_TOKEN");

    let over_in_query = send(client().get(server.url(&format!("/me?token={just_over}")))).await;
    assert_rejected(&over_in_query, "INVALID_TOKEN");
    let over_in_cookie = send(
        client()
            .get(server.url("/me"))
            .header("cookie", format!("jwt={just_over}")),
    )
    .await;
    assert_rejected(&over_in_cookie, "INVALID_TOKEN");
    let over_in_header = send(
        client()
            .get(server.url("/me"))
            .header("x-auth-token", &just_over),
    )
    .await;
    assert_rejected(&over_in_header, "INVALID_TOKEN");
    let over_in_protocol = send(
        client()
            .get(server.url("/me"))
            .headers(upgrade())
            .header("sec-websocket-protocol", ws_protocol(&just_over)),
    )
    .await;
    assert_rejected(&over_in_protocol, "INVALID_TOKEN");
    let under_in_protocol = send(
        client()
            .get(server.url("/me"))
            .headers(upgrade())
            .header("sec-websocket-protocol", ws_protocol(&just_under)),
    )
    .await;
    assert_accepted(&under_in_protocol, "alice");
}

#[tokio::test]
async fn custom_small_size_cap() {
    let token = token_for("alice");
    let exact = server_with(all_sources().max_token_len(token.len())).await;
    let small = server_with(all_sources().max_token_len(token.len() - 1)).await;

    assert_accepted(&get_bearer(&exact, &token).await, "alice");
    let reply = get_bearer(&small, &token).await;
    assert_rejected(&reply, "INVALID_TOKEN");
    assert!(reply.text.contains("maximum size"), "{}", reply.text);

    let reply = send(client().get(small.url(&format!("/me?token={token}")))).await;
    assert_rejected(&reply, "INVALID_TOKEN");
    let reply = send(
        client()
            .get(small.url("/me"))
            .headers(upgrade())
            .header("sec-websocket-protocol", ws_protocol(&token)),
    )
    .await;
    assert_rejected(&reply, "INVALID_TOKEN");
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let server = serve_layer(JwtAuthLayer::new(hmac_validator())).await;
    let token = token_for("alice");
    let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    for second in [
        value.clone(),
        HeaderValue::from_static("Basic dXNlcjpwYXNz"),
    ] {
        let mut headers = HeaderMap::new();
        headers.append("authorization", value.clone());
        headers.append("authorization", second);
        assert_eq!(headers.get_all("authorization").iter().count(), 2);
        let reply = send(client().get(server.url("/me")).headers(headers)).await;
        assert_rejected(&reply, "INVALID_REQUEST");
    }
    // One header with the same token passes.
    assert_accepted(&get_bearer(&server, &token).await, "alice");
}

#[tokio::test]
async fn non_ascii_token_header_is_invalid_not_a_crash() {
    let server = server_with(all_sources()).await;
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_bytes(b"Bearer \xe9\xe9.\xff.x").unwrap(),
    );
    let reply = send(client().get(server.url("/me")).headers(headers)).await;
    assert_rejected(&reply, "INVALID_TOKEN");
    // The server is still serving.
    assert_accepted(&get_bearer(&server, &token_for("alice")).await, "alice");
}

#[test]
fn a_token_subprotocol_prefix_must_be_a_nonempty_token() {
    for bad in ["", "two words.", "a,b.", "tab\t."] {
        let built = JwtAuthLayer::builder(hmac_validator())
            .extractor(TokenExtractor::new().websocket_protocol_with_prefix(bad))
            .build();
        assert!(built.is_err(), "{bad:?} accepted");
    }
    assert!(
        JwtAuthLayer::builder(hmac_validator())
            .extractor(TokenExtractor::new().websocket_protocol_with_prefix("my.jwt."))
            .build()
            .is_ok()
    );
}

/// Fuzz reproducer (`fuzz/`, target `extract`): a query value whose percent-decoding is not
/// UTF-8 (`%cc`) was decoded lossily into a token containing U+FFFD, which the input never
/// held; it is now a malformed token.
#[test]
fn fuzz_regression_a_non_utf8_query_value_is_malformed() {
    let uri: http::Uri = "/p?token=1);;+R~++Rw;;;+%cctoke".parse().unwrap();
    let extractor = TokenExtractor::new().bearer().query("token");
    assert_eq!(
        extractor
            .extract(&http::HeaderMap::new(), &uri, false)
            .unwrap_err(),
        tower_jwt_guard::extract::ExtractError::Malformed
    );
}
