//! Many hypervisors: host namespaces on an underlay, this datapath with an
//! agent per host on a real etcd (`lab::cloud`) against Neutron's
//! linuxbridge baseline with VXLAN (`bridges`), measured side by side in
//! one run.
//!
//! - `hosts-forwarding`: a flow across hosts against the same flow within
//!   one host, and the tunnel's floor;
//! - `hosts-etcd`: an etcd write until the first packet it lets through
//!   arrives on another host;
//! - `hosts-failover`: keepalived's VIP failing over (and back) between
//!   hosts, and within one host.

mod bridges;
mod etcd;
mod failover;
pub mod forwarding;
mod sender;
mod stats;

pub use etcd::run as etcd;
pub use failover::run as failover;
