//! Builds the eBPF object (`dataplane-ebpf`, nightly, bpfel-unknown-none) so
//! that the loader can embed it. The eBPF crate has its own target directory
//! so this nested cargo never waits on the outer one's lock; cargo's own
//! fingerprints make the nested build a no-op when nothing changed.

use std::{env, path::PathBuf, process::Command};

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let ebpf_dir = root.join("dataplane-ebpf");
    for path in [
        "dataplane-ebpf/src",
        "dataplane-ebpf/Cargo.toml",
        "common/src",
        "common/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    println!("cargo:rerun-if-env-changed=DATAPLANE_BPF_OBJECT");

    // A prebuilt object may be supplied (for example by a packaging build).
    let object = if let Some(prebuilt) = env::var_os("DATAPLANE_BPF_OBJECT") {
        PathBuf::from(prebuilt)
    } else {
        let status = Command::new("rustup")
            .args(["run", "nightly", "cargo", "build", "--release"])
            .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
            .arg("--manifest-path")
            .arg(ebpf_dir.join("Cargo.toml"))
            .env(
                "CARGO_ENCODED_RUSTFLAGS",
                ["-Cdebuginfo=2", "-Clink-arg=--btf"].join("\x1f"),
            )
            // The outer cargo's compiler settings must not leak into the
            // nightly build.
            .env_remove("RUSTC")
            .env_remove("RUSTC_WRAPPER")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            .status()
            .expect("cannot run rustup: run `cargo xtask setup` first");
        if !status.success() {
            panic!(
                "building the eBPF programs failed ({status}); `cargo xtask setup` installs the \
                 nightly rust-src component and bpf-linker they need"
            );
        }
        ebpf_dir.join("target/bpfel-unknown-none/release/dataplane")
    };
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("dataplane.bpf.o");
    std::fs::copy(&object, &out)
        .unwrap_or_else(|e| panic!("cannot copy {}: {e}", object.display()));
    println!("cargo:rerun-if-changed={}", object.display());
}
