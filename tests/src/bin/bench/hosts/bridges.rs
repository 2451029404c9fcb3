//! The baseline of the multi-host sections: what a Neutron linuxbridge
//! deployment with VXLAN builds on each compute node. Per host a Linux
//! bridge holding the VMs' taps and a vxlan device for the network
//! (`vxlan-<VNI>`, local address on the underlay, the IANA port), with the
//! l2population driver's static forwarding entries: one all-zero entry per
//! other host (broadcast, unknown unicast and multicast are sent to each)
//! and one per remote VM's MAC. Hosts sit on the same kind of underlay as
//! the datapath's ([`lab::cloud::underlay`]).

use anyhow::Result;
use lab::{
    cloud::{self, Host},
    lab::{Lab, Vm},
    netns::Netns,
};

/// The vxlan device Neutron's linuxbridge agent names after the VNI.
pub const VXLAN_DEV: &str = "vxlan-3001";
pub const VNI: u32 = 3001;

pub struct BridgeCloud {
    // Dropped first: the hosts' namespaces before the underlay's.
    pub hosts: Vec<Host>,
    // Held for its lifetime: dropping it removes the underlay.
    _underlay: Netns,
}

impl BridgeCloud {
    /// `n` hosts h1..hn, each with its bridge `br0` and vxlan device.
    pub fn new(n: usize) -> Result<BridgeCloud> {
        let underlay = cloud::underlay()?;
        let mut hosts = Vec::new();
        for i in 0..n {
            let host = cloud::join_underlay(&underlay, Lab::new(true)?, i)?;
            host.lab.hv.sh(&format!(
                "ip link add {VXLAN_DEV} type vxlan id {VNI} local {} dev ul0 dstport 4789 && \
                 ip link set {VXLAN_DEV} master br0 up",
                host.ip
            ))?;
            hosts.push(host);
        }
        Ok(BridgeCloud {
            hosts,
            _underlay: underlay,
        })
    }

    /// Adds VM `name` with `mac` and `ip`/24 on host `host` (0-based).
    pub fn add_vm(&mut self, host: usize, name: &str, mac: &str, ip: &str) -> Result<()> {
        let lab = &mut self.hosts[host].lab;
        let i = lab.add_vm(name, mac)?;
        lab.vms[i].sh(&format!("ip addr add {ip}/24 dev eth0"))?;
        Ok(())
    }

    pub fn vm(&self, host: usize, name: &str) -> &Vm {
        self.hosts[host].lab.vm(name)
    }

    /// What the l2population driver writes once every port is up: on each
    /// host, every other host as a flooding destination and every remote
    /// VM's MAC at its host.
    pub fn l2pop(&self) -> Result<()> {
        for (i, here) in self.hosts.iter().enumerate() {
            let mut script = String::new();
            for (j, there) in self.hosts.iter().enumerate() {
                if i == j {
                    continue;
                }
                script += &format!(
                    "bridge fdb append 00:00:00:00:00:00 dev {VXLAN_DEV} dst {}\n",
                    there.ip
                );
                for vm in &there.lab.vms {
                    script += &format!(
                        "bridge fdb replace {} dev {VXLAN_DEV} dst {}\n",
                        vm.mac, there.ip
                    );
                }
            }
            here.lab.hv.sh(&script)?;
        }
        Ok(())
    }
}
