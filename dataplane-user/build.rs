//! Embeds the eBPF object, built by the project's one recipe (`ebpf-build`).
//!
//! `DATAPLANE_BPF_OBJECT=PATH` embeds a prebuilt object instead (packaging);
//! `DATAPLANE_BPF_OBJECT=stub` embeds none, so that the agent compiles,
//! lints and unit-tests without nightly or bpf-linker (it then refuses to
//! load, saying why).

use std::{env, path::PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    println!("cargo:rerun-if-env-changed=DATAPLANE_BPF_OBJECT");
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("dataplane-ebpf.o");
    match env::var_os("DATAPLANE_BPF_OBJECT") {
        Some(v) if v == "stub" => {
            println!("cargo:warning=DATAPLANE_BPF_OBJECT=stub: building without the eBPF programs");
            std::fs::write(&out, b"").expect("writing the stub object");
        }
        Some(prebuilt) => copy(&PathBuf::from(prebuilt), &out),
        None => {
            for input in ebpf_build::inputs(&root) {
                println!("cargo:rerun-if-changed={}", input.display());
            }
            let object = ebpf_build::build(&root).unwrap_or_else(|e| panic!("{e}"));
            copy(&object, &out);
        }
    }
}

fn copy(from: &std::path::Path, to: &std::path::Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("cannot copy {}: {e}", from.display()));
    println!("cargo:rerun-if-changed={}", from.display());
}
