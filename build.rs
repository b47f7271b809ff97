//! Generates the KEDA external-scaler gRPC code from `proto/externalscaler.proto`.
//! protoc comes from `protoc-bin-vendored`, so a fresh machine needs nothing installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto/externalscaler.proto");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_protos(&["proto/externalscaler.proto"], &["proto"])?;
    Ok(())
}
