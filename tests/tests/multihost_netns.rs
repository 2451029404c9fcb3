//! Many hypervisors: host namespaces on an underlay, each with its own
//! agent on a real etcd, VMs behind taps on each; traffic between hosts
//! goes over VXLAN.

use std::time::Duration;

use lab::{
    cloud::Cloud,
    lab::WAIT,
    require_root,
    topo::{config, port_on, subnet, vxlan_network},
};
use serde_json::Value;

/// Three hosts, a VM on each (net1, 10.30.0.0/24), all agents running.
fn three_hosts() -> (Cloud, Value) {
    let mut cloud = Cloud::new(3).unwrap();
    let mut ports = Vec::new();
    for (i, name) in ["h1", "h2", "h3"].iter().enumerate() {
        let lab = &mut cloud.host_mut(name).lab;
        let vm = lab
            .add_vm(
                &format!("vm{}", i + 1),
                &format!("fa:16:3e:30:00:{:02x}", i + 1),
            )
            .unwrap();
        let vm = &lab.vms[vm];
        let ip = format!("10.30.0.{}", 11 + i);
        vm.sh(&format!("ip addr add {ip}/24 dev eth0")).unwrap();
        ports.push(port_on(vm, name, "net1", &[("sub1", &ip)]));
    }
    let cfg = config(
        vec![vxlan_network("net1", 3001)],
        vec![subnet("sub1", "net1", "10.30.0.0/24", Some("10.30.0.1"))],
        ports,
    );
    cloud.publish(&cfg).unwrap();
    for name in ["h1", "h2", "h3"] {
        cloud.start(name, 1).unwrap();
    }
    for name in ["h1", "h2", "h3"] {
        cloud.wait_chassis(name, &["h1", "h2", "h3"], WAIT).unwrap();
        cloud.wait_remote_ports(name, 2, WAIT).unwrap();
    }
    (cloud, cfg)
}

#[test]
fn vms_on_different_hosts_reach_each_other() {
    require_root!();
    let (cloud, _) = three_hosts();
    let vm1 = cloud.host("h1").lab.vm("vm1");
    vm1.reaches("10.30.0.12", WAIT).unwrap();
    vm1.reaches("10.30.0.13", WAIT).unwrap();
    let vm3 = cloud.host("h3").lab.vm("vm3");
    vm3.reaches("10.30.0.12", Duration::from_secs(5)).unwrap();
}
