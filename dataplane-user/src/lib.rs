//! The agent of the allowed-address-pairs eBPF datapath: loads the
//! programs, keeps their pinned maps in step with a configuration source
//! (validated and compiled by `dataplane-config`), and reads them back for
//! operators.
//!
//! - `agent`: the loop (a [`source::Source`], signals, taps, control socket);
//! - `controller`: one change, all or nothing (store, compiler, datapath);
//! - `datapath`: the loaded programs and their pinned maps;
//! - `lock`, `control`, `facts`, `lifecycle`: one agent per instance, its
//!   control socket, what it publishes for readers, how an instance ends;
//! - `show`, `trace`, `monitor`, `metrics`: readers of the pinned state;
//! - `adverts`: the periodic IPv6 router advertisements.

pub mod adverts;
pub mod agent;
pub mod commands;
pub mod control;
pub mod controller;
pub mod datapath;
pub mod explain;
pub mod facts;
pub mod interfaces;
pub mod lifecycle;
pub mod lock;
pub mod metrics;
pub mod monitor;
pub mod publish;
pub mod show;
pub mod source;
pub mod trace;
pub mod tunnel;
