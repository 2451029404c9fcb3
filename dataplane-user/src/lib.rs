//! The agent of the allowed-address-pairs eBPF datapath: loads the
//! programs, keeps their pinned maps in step with the configuration
//! (compiled by `dataplane-config`), and reads them back for operators.

pub mod datapath;
pub mod interfaces;
pub mod metrics;
pub mod monitor;
pub mod show;
pub mod trace;
