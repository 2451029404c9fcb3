//! The one recipe for the eBPF object (`dataplane-ebpf`, nightly,
//! `bpfel-unknown-none`, with BTF). `dataplane-user`'s build script embeds
//! what it builds; `cargo xtask build-ebpf`, `lint` and the packaging use
//! the same command, so there is one way to build it.
//!
//! The eBPF crate is its own workspace with its own target directory: a
//! nested cargo run from a build script then never waits on the outer
//! cargo's lock, and cargo's fingerprints make a second build a no-op.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The eBPF crate's directory, from the workspace root.
pub fn crate_dir(workspace_root: &Path) -> PathBuf {
    workspace_root.join("dataplane-ebpf")
}

/// The object `build` produces.
pub fn object_path(workspace_root: &Path) -> PathBuf {
    crate_dir(workspace_root).join("target/bpfel-unknown-none/release/dataplane-ebpf")
}

/// Sources whose change requires a rebuild (for `cargo:rerun-if-changed`).
pub fn inputs(workspace_root: &Path) -> Vec<PathBuf> {
    [
        "dataplane-ebpf/src",
        "dataplane-ebpf/Cargo.toml",
        "dataplane-ebpf/Cargo.lock",
        "common/src",
        "common/Cargo.toml",
    ]
    .iter()
    .map(|p| workspace_root.join(p))
    .collect()
}

/// `cargo <subcommand>` (build, clippy, fmt) for the eBPF crate with the nightly toolchain, the
/// BPF target, `build-std` and BTF, and none of the outer cargo's compiler
/// settings (a build script inherits them).
pub fn cargo(workspace_root: &Path, subcommand: &str) -> Command {
    let mut c = Command::new("rustup");
    c.args(["run", "nightly", "cargo", subcommand]);
    // Formatting needs no target; everything that compiles does.
    if subcommand != "fmt" {
        c.args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"]);
    }
    c.current_dir(crate_dir(workspace_root))
        // BTF lets bpftool show map fields by name.
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            ["-Cdebuginfo=2", "-Clink-arg=--btf"].join("\x1f"),
        );
    for var in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MANIFEST_DIR",
        "CARGO_PKG_NAME",
    ] {
        c.env_remove(var);
    }
    c
}

/// Builds the object (release) and returns its path.
pub fn build(workspace_root: &Path) -> Result<PathBuf, String> {
    let mut cmd = cargo(workspace_root, "build");
    cmd.arg("--release");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run rustup ({e}): run `cargo xtask setup` first"))?;
    if !status.success() {
        return Err(format!(
            "building the eBPF programs failed ({status}); `cargo xtask setup` installs the \
             nightly rust-src component and bpf-linker they need"
        ));
    }
    Ok(object_path(workspace_root))
}
