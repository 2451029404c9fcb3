//! The configuration side of external networks on a running agent:
//! `run --uplink PHYSNET=IFNAME` puts the interface's index into the
//! router's GATEWAYS entry and into UPLINKS, next to the floating IP's
//! entries (read back from the pinned maps); an interface that does not
//! exist is refused, naming the flag. (Packets through the uplink are the
//! datapath's side, tested with it.)

use common::{GATEWAY_F_SNAT, Gateway};
use dataplane_agent::datapath::{instance_dir, pinned};
use lab::{lab::Lab, require_root, topo::config};
use serde_json::{Value, json};

/// A tenant network behind router r1, whose gateway is on `public`
/// (physnet1), and a floating IP on a port whose VM is not plugged.
fn external() -> Value {
    let mut c = config(
        vec![
            json!({ "id": "net1" }),
            json!({ "id": "public", "router:external": true,
                    "provider:physical_network": "physnet1", "mtu": 1500 }),
        ],
        vec![
            json!({ "id": "sub1", "network_id": "net1", "cidr": "10.60.0.0/24",
                    "gateway_ip": "10.60.0.1" }),
            json!({ "id": "public-v4", "network_id": "public", "cidr": "203.0.113.0/24",
                    "gateway_ip": "203.0.113.1" }),
        ],
        vec![
            json!({ "id": "vm1", "network_id": "net1", "mac_address": "fa:16:3e:60:00:05",
                    "tap_name": "tapext-none", "fixed_ips": [{ "ip_address": "10.60.0.5" }] }),
            json!({ "id": "r1-if", "network_id": "net1", "mac_address": "fa:16:3e:60:01:00",
                    "device_owner": "network:router_interface", "device_id": "r1",
                    "fixed_ips": [{ "ip_address": "10.60.0.1" }] }),
            json!({ "id": "r1-gw", "network_id": "public", "mac_address": "fa:16:3e:60:02:00",
                    "device_owner": "network:router_gateway", "device_id": "r1",
                    "fixed_ips": [{ "ip_address": "203.0.113.10" }] }),
        ],
    );
    c["routers"] = json!([{ "id": "r1", "external_gateway_info": {
        "network_id": "public", "external_fixed_ips": [{ "ip_address": "203.0.113.10" }] } }]);
    c["floatingips"] = json!([{ "id": "f1", "floating_ip_address": "203.0.113.20",
        "floating_network_id": "public", "port_id": "vm1" }]);
    c
}

#[test]
fn an_uplink_reaches_the_gateway_and_uplinks_maps() {
    require_root!();
    let mut lab = Lab::new(false).unwrap();
    // The kernel has no dummy devices: one end of a veth pair.
    lab.hv
        .ip(&[
            "link", "add", "upl0", "type", "veth", "peer", "name", "upl1",
        ])
        .unwrap();
    let ifindex = lab.hv.ifindex("upl0").unwrap();
    lab.run_args = vec!["--uplink".into(), "physnet1=upl0".into()];
    lab.start(&external()).unwrap();
    let dir = instance_dir(&lab.instance);
    // Both slots are read: the live one holds the entries.
    let gateways: Vec<Gateway> = pinned::GATEWAYS(&dir)
        .unwrap()
        .iter()
        .map(|e| e.unwrap().1)
        .collect();
    assert!(
        gateways.iter().any(|g| g.ifindex == ifindex
            && g.addr == [203, 0, 113, 10]
            && g.mac == [0xfa, 0x16, 0x3e, 0x60, 2, 0]
            && g.flags & GATEWAY_F_SNAT != 0),
        "{gateways:?}"
    );
    let uplinks: Vec<u32> = pinned::UPLINKS(&dir)
        .unwrap()
        .keys()
        .map(|k| k.unwrap().ifindex)
        .collect();
    assert!(uplinks.contains(&ifindex), "{uplinks:?}");
    let floating: Vec<[u8; 4]> = pinned::FLOATING(&dir)
        .unwrap()
        .iter()
        .map(|e| e.unwrap().1.addr)
        .collect();
    assert!(floating.contains(&[203, 0, 113, 20]), "{floating:?}");
}

#[test]
fn an_uplink_that_does_not_exist_is_refused_naming_the_flag() {
    require_root!();
    let lab = Lab::new(false).unwrap();
    let path = lab.write_config("config.json", &external()).unwrap();
    let out = lab
        .dataplane(&[
            "run",
            "--config",
            path.to_str().unwrap(),
            "--uplink",
            "physnet1=nosuch0",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("--uplink physnet1=nosuch0: no interface nosuch0 on this host"),
        "{err}"
    );
}
