//! Many concurrent authenticated WebSocket connections, each echoing once, then closing.
//!
//! The full run (10 000 connections by default, `WS_LOAD_CONNECTIONS` to change it):
//!
//! ```text
//! cargo test --release --all-features --test ws_load -- --ignored --nocapture
//! ```
//!
//! It measures, for a server with the guard (`JwtAuthLayer` + `WsSessions` with the registry and
//! a per-user message limiter) and for the same axum echo server without it:
//!
//! - handshakes per second: completed upgrades / wall time from the first connect to the last
//!   101, with at most 64 handshakes in flight;
//! - the server's memory per connection: VmRSS (from `/proc/self/status`) and live heap bytes
//!   (a counting allocator) with every connection open, minus the same before the first one,
//!   divided by the count; the guard's share is the difference between the two servers;
//! - that every client gets its echo, that every connection ends with a clean closing
//!   handshake (the server answers the client's close frame), and that the registry's
//!   statistics return to zero.
//!
//! 10 000 connections need 20 000 sockets on loopback, and the hard open-file limit here is
//! 20 000 (`ulimit -Hn`), so the full run serves from a child process (this test binary again,
//! `WS_LOAD_ROLE=server`) and keeps the clients in the test process: each side holds 10 000
//! sockets, and the server's memory figures are the server's alone. With a higher limit nothing
//! changes. Clients bind source addresses 127.0.0.1 to 127.0.0.8 in turn, so that no single
//! address runs out of ephemeral ports.
//!
//! The smoke variant (200 connections, server and clients in this process) runs with the other
//! tests and goes through the same code.
#![cfg(all(feature = "axum", feature = "websocket"))]

mod common;

use std::alloc::System;
use std::io::{BufRead, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::num::NonZeroU32;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message as AxMessage, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tower_jwt_guard::JwtAuthLayer;
use tower_jwt_guard::keys::Key;
use tower_jwt_guard::rate_limit::{MessageLimiter, PlanQuotas, Quota};
use tower_jwt_guard::validate::Validator;
use tower_jwt_guard::ws::{SessionRegistry, WsSession, WsSessions};

use common::{HMAC_SECRET, sign_hs256};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Handshakes in flight at once. With 256, bursts of SYNs on this machine's loopback were
/// dropped and retried a second later, which measured the kernel's retransmit timer instead of
/// the server.
const IN_FLIGHT: usize = 64;
/// Source addresses 127.0.0.1 ..= 127.0.0.SOURCES.
const SOURCES: u8 = 8;
/// Bound on each phase (connect, echo, close, drain).
const PHASE: Duration = Duration::from_secs(300);
/// Bound on one client's step.
const STEP: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Deserialize)]
struct LoadClaims {
    #[allow(dead_code)]
    sub: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Guarded,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Guarded => "guarded",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Memory

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Live heap bytes (allocated minus freed) since the process started.
fn heap_bytes() -> i64 {
    let s = GLOBAL.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64 + s.bytes_reallocated as i64
}

#[derive(Debug, Clone, Copy)]
struct Measure {
    rss_kb: u64,
    heap: i64,
    /// The registry's connections (guarded server only).
    connections: Option<usize>,
    users: Option<usize>,
}

// ---------------------------------------------------------------------------------------------
// The servers

async fn echo_guarded(upgrade: WebSocketUpgrade, session: WsSession<LoadClaims>) -> Response {
    upgrade.on_upgrade(|socket| async move {
        let mut socket = session.attach(socket);
        while let Some(Ok(message)) = socket.recv().await {
            if let AxMessage::Text(t) = message
                && socket.send(AxMessage::Text(t)).await.is_err()
            {
                break;
            }
        }
    })
}

async fn echo_plain(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(|mut socket: WebSocket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            if let AxMessage::Text(t) = message
                && socket.send(AxMessage::Text(t)).await.is_err()
            {
                break;
            }
        }
    })
}

struct LocalServer {
    addr: SocketAddr,
    registry: Option<SessionRegistry>,
    task: JoinHandle<()>,
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LocalServer {
    fn measure(&self) -> Measure {
        Measure {
            rss_kb: rss_kb(),
            heap: heap_bytes(),
            connections: self.registry.as_ref().map(SessionRegistry::connections),
            users: self.registry.as_ref().map(SessionRegistry::users),
        }
    }
}

async fn serve(mode: Mode) -> LocalServer {
    common::init_crypto();
    let (router, registry) = match mode {
        Mode::Plain => (Router::new().route("/ws", get(echo_plain)), None),
        Mode::Guarded => {
            let validator = Validator::<LoadClaims>::builder()
                .key(Key::hmac(HMAC_SECRET).unwrap())
                .build()
                .unwrap();
            let auth = JwtAuthLayer::new(validator);
            let sessions = WsSessions::builder(auth.validator().clone())
                .message_limiter(
                    MessageLimiter::builder(PlanQuotas::new(Quota::per_second(
                        NonZeroU32::new(100).unwrap(),
                    )))
                    .build()
                    .unwrap(),
                )
                .build()
                .unwrap();
            let registry = sessions.registry().clone();
            let router = Router::new()
                .route("/ws", get(echo_guarded))
                .route_layer(auth)
                .layer(Extension(sessions));
            (router, Some(registry))
        }
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    LocalServer {
        addr,
        registry,
        task,
    }
}

/// A server in a child process (this binary, `WS_LOAD_ROLE=server`), driven over its
/// stdin/stdout: `measure` answers one `WSLOAD measure ...` line.
struct ChildServer {
    addr: SocketAddr,
    child: Child,
    stdin: ChildStdin,
    lines: std::io::Lines<std::io::BufReader<ChildStdout>>,
}

impl ChildServer {
    fn spawn(mode: Mode) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["load_10k", "--exact", "--ignored", "--nocapture"])
            .env("WS_LOAD_ROLE", "server")
            .env("WS_LOAD_MODE", mode.name())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the server process");
        let stdin = child.stdin.take().unwrap();
        let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut server = Self {
            addr: "127.0.0.1:0".parse().unwrap(),
            child,
            stdin,
            lines,
        };
        let line = server.reply("addr");
        server.addr = line.parse().expect("server address");
        server
    }

    /// The next `WSLOAD <what> <rest>` line's rest (other output is skipped).
    fn reply(&mut self, what: &str) -> String {
        let prefix = format!("WSLOAD {what} ");
        for line in self.lines.by_ref() {
            let line = line.expect("server stdout");
            if let Some(rest) = line.strip_prefix(&prefix) {
                return rest.to_owned();
            }
        }
        panic!("the server process ended before `{what}`");
    }

    fn measure(&mut self) -> Measure {
        writeln!(self.stdin, "measure").unwrap();
        self.stdin.flush().unwrap();
        let v: serde_json::Value = serde_json::from_str(&self.reply("measure")).unwrap();
        Measure {
            rss_kb: v["rss_kb"].as_u64().unwrap(),
            heap: v["heap"].as_i64().unwrap(),
            connections: v["connections"].as_u64().map(|n| n as usize),
            users: v["users"].as_u64().map(|n| n as usize),
        }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child process: serves, answers `measure` until `quit` or end of input.
async fn run_server_child() {
    let mode = match std::env::var("WS_LOAD_MODE").as_deref() {
        Ok("plain") => Mode::Plain,
        Ok("guarded") => Mode::Guarded,
        other => panic!("WS_LOAD_MODE: {other:?}"),
    };
    let server = serve(mode).await;
    println!("WSLOAD addr {}", server.addr);
    let (tx, mut rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = rx.recv().await {
        match line.trim() {
            "measure" => {
                let m = server.measure();
                let v = json!({
                    "rss_kb": m.rss_kb, "heap": m.heap,
                    "connections": m.connections, "users": m.users,
                });
                println!("WSLOAD measure {v}");
            }
            "quit" => break,
            other => panic!("unknown command {other:?}"),
        }
    }
}

enum Server {
    Local(LocalServer),
    Child(ChildServer),
}

impl Server {
    fn addr(&self) -> SocketAddr {
        match self {
            Self::Local(s) => s.addr,
            Self::Child(s) => s.addr,
        }
    }

    fn measure(&mut self) -> Measure {
        match self {
            Self::Local(s) => s.measure(),
            Self::Child(s) => s.measure(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The clients

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Connect,
    Echo,
    Close,
}

#[derive(Debug)]
enum Event {
    Connected,
    Echoed,
}

/// How a client's connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The server answered the close frame, then the stream ended.
    CloseReply,
    /// The stream ended (or was reset) without a close reply.
    NoCloseReply,
}

async fn client(
    n: usize,
    addr: SocketAddr,
    token: String,
    handshakes: Arc<Semaphore>,
    mut phase: watch::Receiver<Phase>,
    events: mpsc::UnboundedSender<Event>,
) -> Result<Ending, String> {
    let from = Ipv4Addr::new(127, 0, 0, 1 + (n % usize::from(SOURCES)) as u8);
    let mut ws = {
        let _permit = handshakes.acquire().await.unwrap();
        let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let handshake = async {
            let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
            socket.set_reuseaddr(true).map_err(|e| e.to_string())?;
            socket
                .bind(SocketAddrV4::new(from, 0).into())
                .map_err(|e| format!("bind {from}: {e}"))?;
            let stream: TcpStream = socket.connect(addr).await.map_err(|e| e.to_string())?;
            tokio_tungstenite::client_async(req, stream)
                .await
                .map_err(|e| e.to_string())
        };
        let (ws, _) = timeout(STEP, handshake)
            .await
            .map_err(|_| "handshake timed out".to_owned())??;
        ws
    };
    let _ = events.send(Event::Connected);

    phase
        .wait_for(|p| *p >= Phase::Echo)
        .await
        .map_err(|e| e.to_string())?;
    let text = format!("hello from {n}");
    let echo = async {
        ws.send(Message::text(text.clone()))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.as_str() == text => return Ok(()),
                Some(Ok(Message::Text(t))) => return Err(format!("unexpected text {t}")),
                Some(Ok(Message::Close(f))) => return Err(format!("closed: {f:?}")),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("ended before the echo".to_owned()),
            }
        }
    };
    timeout(STEP, echo)
        .await
        .map_err(|_| "echo timed out".to_owned())??;
    let _ = events.send(Event::Echoed);

    phase
        .wait_for(|p| *p >= Phase::Close)
        .await
        .map_err(|e| e.to_string())?;
    let close = async {
        ws.close(None).await.map_err(|e| e.to_string())?;
        let mut answered = false;
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) => answered = true,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            }
        }
        Ok::<_, String>(if answered {
            Ending::CloseReply
        } else {
            Ending::NoCloseReply
        })
    };
    timeout(STEP, close)
        .await
        .map_err(|_| "close timed out".to_owned())?
}

/// Waits for `count` events of one kind (bounded by [`PHASE`]).
async fn wait_events(
    events: &mut mpsc::UnboundedReceiver<Event>,
    count: usize,
    what: &str,
    clients: &[JoinHandle<Result<Ending, String>>],
) {
    let wait = async {
        for _ in 0..count {
            if events.recv().await.is_none() {
                break;
            }
        }
    };
    if timeout(PHASE, wait).await.is_err() {
        let failed = clients.iter().filter(|c| c.is_finished()).count();
        panic!("{what}: not every client got there in {PHASE:?} ({failed} clients ended early)");
    }
}

#[derive(Debug)]
struct Report {
    mode: Mode,
    connections: usize,
    handshakes_per_sec: f64,
    connect_time: Duration,
    echo_time: Duration,
    rss_per_conn: f64,
    heap_per_conn: f64,
    close_replies: usize,
    no_close_reply: usize,
}

impl Report {
    fn print(&self) {
        println!(
            "[{}] {} connections: {:.0} handshakes/s ({:.2?}); echo round {:.2?}; \
             server memory per connection: RSS {:.1} KiB, live heap {:.1} KiB; \
             closes answered {} / unanswered {}",
            self.mode.name(),
            self.connections,
            self.handshakes_per_sec,
            self.connect_time,
            self.echo_time,
            self.rss_per_conn,
            self.heap_per_conn,
            self.close_replies,
            self.no_close_reply,
        );
    }
}

/// Connects `count` clients to `server`, measures, echoes once on each, closes all, and checks
/// that the server lets go of every connection.
async fn run(mode: Mode, mut server: Server, count: usize) -> Report {
    let addr = server.addr();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let tokens: Vec<String> = (0..count)
        .map(|n| sign_hs256(&json!({"sub": format!("user{n}"), "exp": exp})))
        .collect();
    let before = server.measure();
    assert_eq!(before.connections.unwrap_or(0), 0);

    let handshakes = Arc::new(Semaphore::new(IN_FLIGHT));
    let (phase_tx, phase_rx) = watch::channel(Phase::Connect);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let start = Instant::now();
    let clients: Vec<JoinHandle<Result<Ending, String>>> = tokens
        .into_iter()
        .enumerate()
        .map(|(n, token)| {
            tokio::spawn(client(
                n,
                addr,
                token,
                Arc::clone(&handshakes),
                phase_rx.clone(),
                events_tx.clone(),
            ))
        })
        .collect();
    drop(events_tx);
    wait_events(&mut events, count, "connect", &clients).await;
    let connect_time = start.elapsed();

    let open = server.measure();
    if mode == Mode::Guarded {
        assert_eq!(open.connections, Some(count), "registry with every client");
        assert_eq!(open.users, Some(count));
    }

    let echo_start = Instant::now();
    phase_tx.send(Phase::Echo).unwrap();
    wait_events(&mut events, count, "echo", &clients).await;
    let echo_time = echo_start.elapsed();

    phase_tx.send(Phase::Close).unwrap();
    let mut endings = Vec::with_capacity(count);
    let joined = timeout(PHASE, async {
        for c in clients {
            endings.push(c.await.expect("client task"));
        }
    })
    .await;
    assert!(joined.is_ok(), "clients did not finish closing in time");
    let failures: Vec<&String> = endings.iter().filter_map(|e| e.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} clients failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let close_replies = endings
        .iter()
        .filter(|e| matches!(e, Ok(Ending::CloseReply)))
        .count();

    // The server lets go of every connection.
    if mode == Mode::Guarded {
        let mut last = None;
        let drained = timeout(PHASE, async {
            loop {
                let m = server.measure();
                if m.connections == Some(0) && m.users == Some(0) {
                    return;
                }
                last = Some(m);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(drained.is_ok(), "registry did not return to zero: {last:?}");
    }

    let per_conn = |after: i64, before: i64| (after - before) as f64 / count as f64;
    Report {
        mode,
        connections: count,
        handshakes_per_sec: count as f64 / connect_time.as_secs_f64(),
        connect_time,
        echo_time,
        rss_per_conn: per_conn(open.rss_kb as i64, before.rss_kb as i64),
        heap_per_conn: per_conn(open.heap, before.heap) / 1024.0,
        close_replies,
        no_close_reply: count - close_replies,
    }
}

// ---------------------------------------------------------------------------------------------
// The tests

/// The same code as the full run, with 200 connections in this process, so that the normal
/// test run exercises it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_smoke_200() {
    for mode in [
        Mode::Plain,
        Mode::Plain,
        Mode::Guarded,
        Mode::Guarded,
        Mode::Plain,
    ] {
        let server = Server::Local(serve(mode).await);
        let report = run(mode, server, 200).await;
        report.print();
        assert!(report.handshakes_per_sec > 0.0);
        assert_eq!(
            report.close_replies, 200,
            "{mode:?}: every close is answered"
        );
    }
}

/// The full run; see the module docs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load run: cargo test --release --all-features --test ws_load -- --ignored --nocapture"]
async fn load_10k() {
    if std::env::var("WS_LOAD_ROLE").as_deref() == Ok("server") {
        return run_server_child().await;
    }
    let count: usize = std::env::var("WS_LOAD_CONNECTIONS")
        .ok()
        .map(|v| v.parse().expect("WS_LOAD_CONNECTIONS: a number"))
        .unwrap_or(10_000);
    let mut reports = Vec::new();
    for mode in [Mode::Plain, Mode::Guarded] {
        let server = Server::Child(ChildServer::spawn(mode));
        let report = run(mode, server, count).await;
        report.print();
        reports.push(report);
    }
    let (plain, guarded) = (&reports[0], &reports[1]);
    println!(
        "guard's share per connection: RSS {:.1} KiB, live heap {:.1} KiB; \
         handshakes/s {:.0} with the guard vs {:.0} without",
        guarded.rss_per_conn - plain.rss_per_conn,
        guarded.heap_per_conn - plain.heap_per_conn,
        guarded.handshakes_per_sec,
        plain.handshakes_per_sec,
    );
    for report in &reports {
        assert_eq!(report.close_replies, count, "every close is answered");
    }
}
