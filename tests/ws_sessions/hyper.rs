//! Plain hyper + tokio-tungstenite.

use crate::setup::*;

type HyperBody = Full<Bytes>;

fn hyper_response(status: StatusCode, body: &str) -> http::Response<HyperBody> {
    let mut r = http::Response::new(Full::new(Bytes::from(body.to_owned())));
    *r.status_mut() = status;
    r
}

async fn hyper_ws_handler(
    sessions: WsSessions<WsClaims>,
    mut req: http::Request<Incoming>,
) -> Result<http::Response<HyperBody>, Infallible> {
    let headers = req.headers();
    let upgrade = headers
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let version = headers.get("sec-websocket-version").map(|v| v.as_bytes()) == Some(b"13");
    let (Some(key), true, true) = (headers.get("sec-websocket-key"), upgrade, version) else {
        return Ok(hyper_response(StatusCode::BAD_REQUEST, "not a WebSocket"));
    };
    let accept = derive_accept_key(key.as_bytes());
    let session = match sessions.open(req.headers(), req.extensions()) {
        Ok(session) => session,
        Err(e) => {
            return Ok(hyper_response(
                StatusCode::TOO_MANY_REQUESTS,
                e.code().as_str(),
            ));
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let config = Some(sessions.websocket_config());
        let stream =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, config).await;
        let mut socket = session.attach(stream);
        while let Some(Ok(message)) = socket.recv().await {
            if message.is_text() && socket.send(message).await.is_err() {
                break;
            }
        }
    });
    let mut response = hyper_response(StatusCode::SWITCHING_PROTOCOLS, "");
    let h = response.headers_mut();
    h.insert("upgrade", "websocket".parse().unwrap());
    h.insert("connection", "upgrade".parse().unwrap());
    h.insert("sec-websocket-accept", accept.parse().unwrap());
    Ok(response)
}

#[tokio::test]
async fn plain_hyper_with_tokio_tungstenite_echoes_and_expires() {
    common::init_crypto();
    let clock = FakeClock::at_unix_secs(NOW);
    let auth = JwtAuthLayer::new(validator(&clock));
    let sessions = WsSessions::builder(auth.validator().clone())
        .max_tick(TICK)
        .build()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = sessions.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let sessions = serving.clone();
            let svc = ServiceBuilder::new()
                .layer(auth.clone())
                .service(service_fn(move |req| {
                    hyper_ws_handler(sessions.clone(), req)
                }));
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                    .with_upgrades()
                    .await;
            });
        }
    });
    struct Abort(JoinHandle<()>);
    impl Drop for Abort {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _task = Abort(task);

    // Refused before the upgrade: the layer's HTTP answer.
    assert_http(
        connect_from(addr, ip(1), "/ws", &[]).await,
        401,
        "MISSING_TOKEN",
    );

    let exp = NOW + 3600;
    let (mut ws, response) = connect_from(addr, ip(1), "/ws", &bearer(&token("alice", exp)))
        .await
        .expect("upgrade");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_echo(&mut ws, "over hyper").await;
    let stats = sessions.registry().stats();
    assert_eq!(stats.per_user.get("alice"), Some(&1));
    assert_eq!(sessions.registry().send_to_user("alice", "pushed"), 1);
    assert_eq!(next_text(&mut ws).await, "pushed");

    clock.set_unix_secs(exp - 60);
    assert_eq!(
        json_text(&mut ws).await,
        json!({"type": "token.expiring", "expires_at": exp})
    );
    assert_echo(&mut ws, "warned").await;
    clock.set_unix_secs(exp + LEEWAY);
    assert_eq!(close_code(&mut ws).await, 4003);
    for _ in 0..250 {
        if sessions.registry().connections() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sessions.registry().stats(), Default::default());
}
