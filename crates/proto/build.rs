//! Compiles every `.proto` under `proto/` into OUT_DIR with tonic-build, using
//! the protoc binary vendored by `protoc-bin-vendored` (no system protoc), and
//! writes the descriptor set that reflection, the tenancy layer and gateways
//! load.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let root = root.canonicalize()?;
    let mut protos = Vec::new();
    collect(&root.join("foundry"), &mut protos)?;
    collect(&root.join("google"), &mut protos)?;
    protos.sort();

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    let includes = [root.clone(), protoc_bin_vendored::include_path()?];
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("foundry_descriptor.bin"))
        .include_file("foundry_protos.rs")
        .compile_with_config(config, &protos, &includes)?;

    println!("cargo:rerun-if-changed={}", root.display());
    for p in &protos {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    Ok(())
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
