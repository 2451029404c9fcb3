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
//! - `netlink`: link events (ports wait for their taps) and link facts;
//! - `agent_status`, `status_keeper`: what the agent says of itself;
//! - `logging`: text or JSON logs; `clidocs`: completions and man pages;
//! - `show`, `status`, `topology`, `trace`, `monitor`, `metrics`,
//!   `link_health`: readers of the pinned state, the agent's record and
//!   the interfaces;
//! - `adverts`: the periodic IPv6 router advertisements;
//! - `uplinks`: `run --uplink PHYSNET=IFNAME`, the interfaces that reach
//!   external networks.

pub mod adverts;
pub mod agent;
pub mod agent_status;
pub mod clidocs;
pub mod commands;
pub mod control;
pub mod controller;
pub mod costs;
pub mod datapath;
pub mod explain;
pub mod facts;
pub mod interfaces;
pub mod launch;
pub mod lifecycle;
pub mod link_health;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod nat_view;
pub mod netlink;
pub mod publish;
pub mod show;
pub mod source;
pub mod status;
pub mod status_keeper;
pub mod topology;
pub mod trace;
pub mod tunnel;
pub mod uplinks;
