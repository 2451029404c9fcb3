//! Test harness: network namespaces, VMs behind taps, the datapath agent,
//! packet capture, configuration builders and BPF_PROG_TEST_RUN verdicts;
//! a real etcd, a real Neutron API server with the ML2 driver, a real
//! Prometheus, and QEMU guests.
//! The integration tests in `tests/` use it, and so does `cargo xtask run`
//! for the demo.

pub mod capture;
pub mod cloud;
pub mod demo;
pub mod etcd;
pub mod guest;
pub mod hostlock;
pub mod lab;
pub mod model;
pub mod netns;
pub mod neutron;
pub mod pkt;
pub mod probe;
pub mod process;
pub mod prometheus;
pub mod qemu;
pub mod rng;
pub mod synthetic;
pub mod topo;
pub mod verdict;
pub mod vrrp;

/// Skips a test (by returning) unless it runs as root: namespaces, XDP and
/// bpffs need it. `cargo xtask test` runs as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if unsafe { libc::geteuid() } != 0 {
            panic!("this test needs root (network namespaces, XDP, bpffs): run `cargo xtask test` as root");
        }
    };
}
