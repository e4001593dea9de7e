//! Shared helpers for the integration tests, by concern:
//!
//! | module | what |
//! |---|---|
//! | [`tokens`] | keys, fixtures, signing, validators on a [`FakeClock`](tower_jwt_guard::clock::FakeClock) the caller keeps |
//! | [`servers`] | real axum servers on loopback, aborted when dropped |
//! | [`http_client`] | a real HTTP client with bounded timeouts, and assertions on its replies |
//! | [`ws`] | a real WebSocket client (tokio-tungstenite) from a chosen loopback address |
//! | [`logs`] | capturing what the crate logs |
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code, unused_imports)]

pub mod http_client;
pub mod logs;
pub mod servers;
pub mod tokens;
#[cfg(feature = "websocket")]
pub mod ws;

pub use http_client::*;
pub use logs::*;
pub use servers::*;
pub use tokens::*;
