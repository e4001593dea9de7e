//! The demo's gRPC contract checked by a client no one here wrote: Python's `grpcio`
//! (`pip install grpcio grpcio-status`, which `.ci/run` does), running
//! `tests/grpc_python/demo_client.py` against the demo's own server on loopback. In CI (`CI`
//! set, as `.ci/run` runs) a missing Python or grpcio fails the test; elsewhere it says so
//! loudly and passes, so that `cargo test` needs nothing installed by hand.
#![cfg(all(feature = "axum", feature = "websocket", feature = "tonic"))]

#[path = "common/demo.rs"]
mod demo;

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tower_jwt_guard::clock::Clock;

const SECRET: &[u8] = b"demo-grpc-python-test-secret-0123456789";

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

#[tokio::test]
async fn python_grpcio_sees_the_contract() {
    let probe = std::process::Command::new(python())
        .args(["-c", "import grpc, grpc_status"])
        .output();
    let available = probe.as_ref().is_ok_and(|p| p.status.success());
    if !available {
        let why = match &probe {
            Ok(p) => String::from_utf8_lossy(&p.stderr).into_owned(),
            Err(e) => format!("cannot run {}: {e} (set PYTHON)", python()),
        };
        let message = format!(
            "Python's grpcio is missing: python3 -m pip install grpcio grpcio-status ({why})"
        );
        assert!(std::env::var_os("CI").is_none(), "{message}");
        eprintln!("SKIPPED outside CI: {message}");
        return;
    }

    let demo = demo::start(SECRET).await;
    let now = demo.clock.now().as_secs();
    let valid = demo.sign(json!({"sub": "alice", "iat": now, "exp": now + 600, "type": "access"}));
    let expired =
        demo.sign(json!({"sub": "alice", "iat": now - 900, "exp": now - 60, "type": "access"}));
    let forbidden =
        demo.sign(json!({"sub": "alice", "iat": now, "exp": now + 600, "type": "refresh"}));
    let short_lived_exp = now + 30;
    let short_lived =
        demo.sign(json!({"sub": "bob", "iat": now, "exp": short_lived_exp, "type": "access"}));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/grpc_python/demo_client.py"
    );
    let mut child = tokio::process::Command::new(python())
        .arg(script)
        .arg(demo.addr.to_string())
        .args([&valid, &expired, &forbidden, &short_lived])
        .arg(short_lived_exp.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the Python client");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let outcome = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == "WATCHING" {
                // Past the short-lived token's exp and the 10 s leeway.
                demo.clock.advance(Duration::from_secs(30 + 11));
                stdin.write_all(b"go\n").await.unwrap();
                stdin.flush().await.unwrap();
            }
            seen.push(line);
        }
        child.wait().await.unwrap()
    })
    .await
    .expect("the Python client finishes within a minute");
    assert!(
        outcome.success() && seen.last().map(String::as_str) == Some("OK"),
        "the Python client failed: {seen:?}"
    );
    assert!(seen.iter().any(|l| l == "WATCHING"));
}
