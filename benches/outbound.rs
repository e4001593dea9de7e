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
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Empty;
use tower::{Layer, Service, ServiceExt};
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
    let plain = || request(None);
    case(&mut group, &rt, "no layer", Answer, plain);
    let retrying = TokenLayer::new(single.clone()).layer(Answer);
    case(
        &mut group,
        &rt,
        "TokenLayer (retry copy, default)",
        retrying,
        plain,
    );
    let no_retry = TokenLayer::new(single.clone())
        .replay(NoRetry)
        .layer(Answer);
    case(&mut group, &rt, "TokenLayer, NoRetry", no_retry, plain);
    let per_user = TokenLayer::per_user(users.clone())
        .replay(NoRetry)
        .layer(Answer);
    let n = std::cell::Cell::new(0usize);
    let for_a_user = || {
        n.set(n.get().wrapping_add(1));
        request(Some(names[n.get() % names.len()]))
    };
    case(
        &mut group,
        &rt,
        "TokenLayer per user (8 users), NoRetry",
        per_user,
        for_a_user,
    );
    group.finish();
}

/// One case: `make()` sent through a clone of `service`, readiness first, as a client does.
fn case<S>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    service: S,
    make: impl Fn() -> Request<Empty<Bytes>>,
) where
    S: Service<Request<Empty<Bytes>>> + Clone,
    S::Error: std::fmt::Debug,
{
    group.bench_function(name, |b| {
        b.to_async(rt).iter(|| {
            let mut service = service.clone();
            let request = make();
            async move { service.ready().await.unwrap().call(request).await.unwrap() }
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
