//! Loader of the allowed-address-pairs eBPF datapath: configuration,
//! compilation into map entries, and the running datapath.

pub mod compile;
pub mod config;
pub mod datapath;
pub mod interfaces;
pub mod metrics;
pub mod monitor;
pub mod policy;
pub mod show;
pub mod trace;
