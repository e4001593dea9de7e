//! The demo's generated gRPC code is what `examples/demo/proto/demo.proto` gives today.
//!
//! `REGENERATE=1 cargo test --test grpc_codegen` rewrites `examples/demo/proto/demo.v1.rs`;
//! neither needs `protoc` (the schema is compiled by `protox`, in Rust).

use std::path::Path;

#[test]
fn generated_code_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo/proto");
    let descriptors =
        protox::compile([dir.join("demo.proto")], [&dir]).expect("demo.proto compiles");
    let out = std::env::temp_dir().join(format!("tjg-codegen-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .out_dir(&out)
        .compile_fds(descriptors)
        .expect("code generation");
    let generated = std::fs::read_to_string(out.join("demo.v1.rs")).unwrap();
    let _ = std::fs::remove_dir_all(&out);
    let checked_in = dir.join("demo.v1.rs");
    if std::env::var_os("REGENERATE").is_some() {
        std::fs::write(&checked_in, &generated).unwrap();
        return;
    }
    let current = std::fs::read_to_string(&checked_in).unwrap_or_default();
    assert!(
        current == generated,
        "examples/demo/proto/demo.v1.rs is out of date: run REGENERATE=1 cargo test --test grpc_codegen"
    );
}
