//! What `outbound::TokenLayer` adds to a request on its way out: the token read from the
//! source's snapshot and its header value attached (a reference count), and, with the default
//! retry policy, the copy of the request's head kept for one retry after a 401.
//!
//! ```text
//! cargo bench --all-features --bench outbound -- --measurement-time 5
//! ```
//!
//! The inner service answers at once (no network): what is measured is the layer. Every case
//! builds the same `GET` with two headers, so the differences are the layer's.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Empty;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_jwt_guard::outbound::{
    ForUser, IssuedToken, NoRetry, ProviderError, TokenLayer, TokenSource, UserSources,
};

/// Answers every request at once, after looking at its `authorization`.
#[derive(Clone)]
struct Answer;

impl Service<Request<Empty<Bytes>>> for Answer {
    type Response = Response<Empty<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Empty<Bytes>>) -> Self::Future {
        black_box(request.headers().get("authorization"));
        ready(Ok(Response::new(Empty::new())))
    }
}

const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6NDEwMjQ0NDgwMCwiaWF0IjoxNzAwMDAwMDAwfQ.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU";

fn request(user: Option<&str>) -> Request<Empty<Bytes>> {
    let mut request = Request::get("http://127.0.0.1:3000/me")
        .header("accept", "application/json")
        .header("user-agent", "bench")
        .body(Empty::new())
        .unwrap();
    if let Some(user) = user {
        request.extensions_mut().insert(ForUser::new(user));
    }
    request
}

fn source() -> TokenSource {
    TokenSource::builder(|| async {
        Ok::<_, ProviderError>(IssuedToken::new(TOKEN).expires_in(Duration::from_secs(86_400)))
    })
    .build()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let single = source();
    rt.block_on(single.token()).unwrap();
    let users = UserSources::builder(|_: &str| async {
        Ok::<_, ProviderError>(IssuedToken::new(TOKEN).expires_in(Duration::from_secs(86_400)))
    })
    .build();
    let names = [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
    ];
    for name in names {
        rt.block_on(users.source(name).token()).unwrap();
    }

    let mut group = c.benchmark_group("outbound");
    let bare = Answer;
    group.bench_function("no layer", |b| {
        b.to_async(&rt).iter(|| {
            let mut service = bare.clone();
            async move {
                service
                    .ready()
                    .await
                    .unwrap()
                    .call(request(None))
                    .await
                    .unwrap()
            }
        })
    });
    let retrying = ServiceBuilder::new()
        .layer(TokenLayer::new(single.clone()))
        .service(Answer);
    group.bench_function("TokenLayer (retry copy, default)", |b| {
        b.to_async(&rt).iter(|| {
            let mut service = retrying.clone();
            async move {
                service
                    .ready()
                    .await
                    .unwrap()
                    .call(request(None))
                    .await
                    .unwrap()
            }
        })
    });
    let plain = ServiceBuilder::new()
        .layer(TokenLayer::new(single.clone()).replay(NoRetry))
        .service(Answer);
    group.bench_function("TokenLayer, NoRetry", |b| {
        b.to_async(&rt).iter(|| {
            let mut service = plain.clone();
            async move {
                service
                    .ready()
                    .await
                    .unwrap()
                    .call(request(None))
                    .await
                    .unwrap()
            }
        })
    });
    let per_user = ServiceBuilder::new()
        .layer(TokenLayer::per_user(users.clone()).replay(NoRetry))
        .service(Answer);
    let mut n = 0usize;
    group.bench_function("TokenLayer per user (8 users), NoRetry", |b| {
        b.to_async(&rt).iter(|| {
            n = n.wrapping_add(1);
            let mut service = per_user.clone();
            let request = request(Some(names[n % names.len()]));
            async move { service.ready().await.unwrap().call(request).await.unwrap() }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
