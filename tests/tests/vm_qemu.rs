//! The VM tier: real guests (QEMU, TCG; Debian's kernel and a busybox
//! initramfs the harness builds from packages, see `lab::guest`) with
//! virtio-net NICs on real taps, the datapath attached to those taps. The
//! guests ping each other through it; a source address a guest may not use
//! is dropped and counted; a VIP both may carry (an allowed address pair)
//! moves from one to the other and each time the other one reaches it.
//!
//! Cost: two guests boot in parallel, about 6 s each on an idle machine
//! (TCG); the test takes 20-40 s. Alone: `cargo xtask test vm_guests`.

use std::time::Duration;

use lab::{
    guest,
    lab::{Lab, WAIT, wait_for},
    netns::unique,
    qemu::Guest,
    require_root,
    topo::{config, network, pair, subnet},
};
use serde_json::{Value, json};

const VIP: &str = "10.50.0.100";
const BOOT: Duration = Duration::from_secs(120);
const CMD: Duration = Duration::from_secs(30);

struct Vm {
    port_id: String,
    guest: Guest,
}

/// A port whose id starts with a name unique to this run, so that its tap
/// (`tap` + the id's first 11 characters, as Neutron names it) is too.
fn boot(lab: &Lab, image: &guest::Image, name: &str, mac: &str, ip: &str) -> (Vm, Value) {
    let port_id = format!("{:-<11}-{name}", unique("q"));
    let tap = format!("tap{}", &port_id[..11]);
    let guest = Guest::boot(&lab.hv, image, name, &tap, mac, &format!("{ip}/24")).unwrap();
    let port = json!({
        "id": port_id, "name": name, "network_id": "net", "mac_address": mac,
        "fixed_ips": [{ "subnet_id": "sub", "ip_address": ip }],
        "allowed_address_pairs": [pair(VIP, None)],
        "tap_name": tap,
    });
    (Vm { port_id, guest }, port)
}

fn drops(lab: &Lab, port_id: &str, reason: &str) -> u64 {
    lab.show_ports()
        .ok()
        .and_then(|v| {
            v["ports"]
                .as_array()?
                .iter()
                .find(|p| p["id"] == port_id)
                .and_then(|p| p["stats"]["drops"][reason].as_u64())
        })
        .unwrap_or(0)
}

/// `vm` takes the VIP: the address, then a gratuitous ARP announcing it.
fn take_vip(vm: &mut Vm) {
    vm.guest
        .ok(
            &format!("ip addr add {VIP}/32 dev eth0 && arping -U -c 1 -I eth0 -s {VIP} {VIP}"),
            CMD,
        )
        .unwrap();
}

/// `from` reaches the VIP, and the MAC it resolved it to is `holder`'s.
fn reaches_vip_at(from: &mut Vm, holder_mac: &str) {
    from.guest.reaches(VIP, None, WAIT).unwrap();
    let neigh = from.guest.ok(&format!("ip neigh show {VIP}"), CMD).unwrap();
    assert!(
        neigh.contains(holder_mac),
        "{VIP} resolved elsewhere: {neigh}"
    );
}

#[test]
fn vm_guests_ping_spoofing_is_dropped_and_a_vip_moves() {
    require_root!();
    let image = guest::image().unwrap();
    let mut lab = Lab::new(false).unwrap();
    let (mut a, port_a) = boot(&lab, &image, "a", "fa:16:3e:50:00:0a", "10.50.0.11");
    let (mut b, port_b) = boot(&lab, &image, "b", "fa:16:3e:50:00:0b", "10.50.0.12");
    let cfg = config(
        vec![network("net")],
        vec![subnet("sub", "net", "10.50.0.0/24", Some("10.50.0.1"))],
        vec![port_a, port_b],
    );
    lab.start(&cfg).unwrap();
    a.guest.wait_ready(BOOT).unwrap();
    b.guest.wait_ready(BOOT).unwrap();

    a.guest.reaches("10.50.0.12", None, WAIT).unwrap();
    b.guest.reaches("10.50.0.11", None, WAIT).unwrap();

    // A source a may not use: no reply, and its port counts the drop (the
    // ARP entry for b is fresh, so only the ICMP carries the address).
    let before = drops(&lab, &a.port_id, "ipv4_src");
    a.guest
        .ok("ip addr add 10.50.0.77/32 dev eth0", CMD)
        .unwrap();
    let (code, out) = a
        .guest
        .sh("ping -c 2 -W 1 -I 10.50.0.77 10.50.0.12", CMD)
        .unwrap();
    assert_ne!(code, 0, "a spoofed ping got a reply:\n{out}");
    wait_for(WAIT, "a's ipv4_src drops counted", || {
        drops(&lab, &a.port_id, "ipv4_src") >= before + 2
    })
    .unwrap();
    a.guest
        .ok("ip addr del 10.50.0.77/32 dev eth0", CMD)
        .unwrap();

    // The VIP on a: b reaches it there.
    take_vip(&mut a);
    wait_for(WAIT, "a is the VIP's active member", || {
        lab.active_member(VIP).as_deref() == Some(a.port_id.as_str())
    })
    .unwrap();
    reaches_vip_at(&mut b, "fa:16:3e:50:00:0a");

    // It moves to b: a reaches it there.
    a.guest
        .ok(&format!("ip addr del {VIP}/32 dev eth0"), CMD)
        .unwrap();
    take_vip(&mut b);
    wait_for(WAIT, "b is the VIP's active member", || {
        lab.active_member(VIP).as_deref() == Some(b.port_id.as_str())
    })
    .unwrap();
    reaches_vip_at(&mut a, "fa:16:3e:50:00:0b");

    // Nothing of this was dropped as spoofing.
    for vm in [&a, &b] {
        assert_eq!(
            drops(&lab, &vm.port_id, "arp_spa"),
            0,
            "{}",
            vm.guest.console()
        );
    }
}
