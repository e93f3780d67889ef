//! Compiles `proto/` with protox (pure Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/girok/v1/events.proto",
        "proto/girok/v1/state.proto",
        "proto/girok/quic/v1/frames.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    prost_build::Config::new()
        // Bodies the QUIC frames carry are shared, not copied.
        .bytes([".girok.quic"])
        .compile_fds(descriptors)?;
    Ok(())
}
