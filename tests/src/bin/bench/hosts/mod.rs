//! Many hypervisors: host namespaces on an underlay, this datapath with an
//! agent per host on a real etcd (`lab::cloud`) against Neutron's
//! linuxbridge baseline with VXLAN (`bridges`), measured side by side in
//! one run.
//!
//! - `hosts-forwarding`: a flow across hosts against the same flow within
//!   one host, and the tunnel's floor;
//! - `hosts-etcd`: an etcd write until the first packet it lets through
//!   arrives on another host.

mod bridges;
mod etcd;
pub mod forwarding;
mod sender;
mod stats;

pub use etcd::run as etcd;
