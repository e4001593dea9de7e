//! Token sources.

use crate::setup::*;

#[tokio::test]
async fn each_token_source_opens_a_session() {
    let s = start(Setup {
        extractor: TokenExtractor::new()
            .bearer()
            .query("token")
            .header(HeaderName::from_static("x-auth-token"))
            .cookie("access_token")
            .websocket_protocol(),
        ..Setup::default()
    })
    .await;
    let t = fresh("alice");
    let protocol = format!(
        "echo, base64url.bearer.authorization.jwt.{}",
        URL_SAFE_NO_PAD.encode(&t)
    );
    let cases = [
        ("bearer", "/ws/id".into(), bearer(&t)),
        ("query", format!("/ws/id?token={t}"), vec![]),
        ("header", "/ws/id".into(), vec![("x-auth-token", t.clone())]),
        (
            "cookie",
            "/ws/id".into(),
            vec![("cookie", format!("theme=dark; access_token={t}"))],
        ),
        (
            "websocket_protocol",
            "/ws/id".into(),
            vec![("sec-websocket-protocol", protocol)],
        ),
    ];
    for (source, path, headers) in cases {
        let (mut ws, response) = connect_from(s.addr, ip(1), &path, &headers)
            .await
            .unwrap_or_else(|e| panic!("{source}: {e:?}"));
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        let selected = response.headers().get("sec-websocket-protocol");
        if source == "websocket_protocol" {
            assert_eq!(selected.unwrap(), "echo", "never the token protocol");
        } else {
            assert!(selected.is_none(), "{source}: {selected:?}");
        }
        let hello = json_text(&mut ws).await;
        assert_eq!(hello["source"], source, "{hello}");
        assert_eq!(hello["sub"], "alice");
        assert_eq!(hello["claims_sub"], "alice");
        assert_echo(&mut ws, source).await;
    }
}
