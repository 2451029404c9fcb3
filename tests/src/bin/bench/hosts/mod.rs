//! Many hypervisors: host namespaces on an underlay, this datapath with an
//! agent per host on a real etcd (`lab::cloud`) against Neutron's
//! linuxbridge baseline with VXLAN (`bridges`), measured side by side in
//! one run.
//!
//! - `hosts-forwarding`: a flow across hosts against the same flow within
//!   one host, and the tunnel's floor.

mod bridges;
pub mod forwarding;
mod stats;
