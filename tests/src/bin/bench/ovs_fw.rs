//! The OpenFlow tables Neutron's Open vSwitch agent installs on its
//! integration bridge (br-int) for ports with port security, when its
//! firewall driver is `openvswitch`: the agent's default tables, then what
//! the driver writes per port. Followed from neutron 28.0.1 (unchanged on
//! master in 2026-08):
//! `neutron/agent/linux/openvswitch_firewall/firewall.py` and `rules.py`,
//! `neutron/plugins/ml2/drivers/openvswitch/agent/openflow/native/br_int.py`
//! (`setup_default_table`), with the table and register numbers of
//! neutron-lib 5.0.1 (`neutron_lib/plugins/ml2/ovs_constants.py`,
//! `neutron_lib/agent/common/constants.py`; before 2021 they lived in
//! neutron's `plugins/ml2/drivers/openvswitch/agent/common/constants.py`).
//!
//! Each flow is written in the driver's own field names (`dl_type=0x0800`,
//! `nw_proto`, `reg5` for the port, `reg6` for the network) under a comment
//! naming the driver method that installs it, so that the file the bench
//! loads (`ovs-ofctl add-flows`) reads side by side with the driver.
//! Adapted to the bench: one tenant network (a tunnelled one, as VXLAN
//! tenant networks are: no physical-network direct flows), local VLAN 1,
//! no remote-group rules (so no conjunctions), `explicitly_egress_direct`
//! off and no permitted ethertypes (the defaults).

use std::fmt::Write as _;

/// The local VLAN of the bench's network; the driver uses it as the
/// conntrack zone (`reg6`, REG_NET).
pub const LOCAL_VLAN: u32 = 1;

const PACKET_RATE_LIMIT: u32 = 58;
const BANDWIDTH_RATE_LIMIT: u32 = 59;
const TRANSIENT_TABLE: u32 = 60;
const TRANSIENT_EGRESS_TABLE: u32 = 62;
const CANARY_TABLE: u32 = 23;
const ARP_SPOOF_TABLE: u32 = 24;
const LOCAL_EGRESS_TABLE: u32 = 30;
const LOCAL_IP_TABLE: u32 = 31;
const BASE_EGRESS_TABLE: u32 = 71;
const RULES_EGRESS_TABLE: u32 = 72;
const ACCEPT_OR_INGRESS_TABLE: u32 = 73;
const BASE_INGRESS_TABLE: u32 = 81;
const RULES_INGRESS_TABLE: u32 = 82;
const ACCEPTED_EGRESS_TRAFFIC_TABLE: u32 = 91;
const ACCEPTED_INGRESS_TRAFFIC_TABLE: u32 = 92;
/// Where the driver sends what it refuses: its only flow drops.
pub const DROPPED_TRAFFIC_TABLE: u32 = 93;
const ACCEPTED_EGRESS_TRAFFIC_NORMAL_TABLE: u32 = 94;
/// The dead VLAN (MAX_VLAN_TAG + 1) and OFPVID_PRESENT.
const DEAD_VLAN: u32 = 0x1000 | 4095;

/// ct_state matches of openvswitch_firewall/constants.py.
const TRACKED: &str = "+trk";
const NOT_TRACKED: &str = "-trk";
const NEW_NOT_ESTABLISHED: &str = "+new-est";
const NOT_ESTABLISHED: &str = "-est";
const ESTABLISHED: &str = "+est";
const ESTABLISHED_NOT_REPLY: &str = "+est-rel-rpl";
const ESTABLISHED_REPLY: &str = "+est-rel+rpl";
const RELATED: &str = "-new-est+rel-inv";
const INVALID: &str = "+trk+inv";
const CT_MARK_NORMAL: &str = "0x0";
const CT_MARK_INVALID: &str = "0x1";

/// `ct(...,zone=NXM_NX_REG6[0..15])`: the network's zone.
const ZONE: &str = "zone=NXM_NX_REG6[0..15]";

/// A security-group rule, as far as the bench's groups need: every rule
/// names its ethertype; `Udp` is a destination port range.
#[derive(Clone, Copy)]
pub enum Rule {
    Any { v6: bool },
    Udp { min: u16, max: u16 },
}

/// One port on br-int, as the driver's `OFPort` sees it.
pub struct OfPort {
    pub ofport: u32,
    pub mac: String,
    pub ipv4: Vec<String>,
    /// Allowed address pairs (addresses or prefixes), with the port's MAC.
    pub pairs: Vec<String>,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
}

/// The whole flow table for `ports`, as `ovs-ofctl add-flows` reads it
/// (`#` lines are comments).
pub fn flows(ports: &[OfPort]) -> String {
    let mut f = Flows(
        "# br-int as Neutron's OVS agent and its openvswitch firewall driver set it \
         up (neutron 28.0.1,\n# neutron-lib 5.0.1 table numbers; reg5 = port, reg6 = \
         network and conntrack zone).\n# Written by tests/src/bin/bench/ovs_fw.rs, loaded \
         with `ovs-ofctl -O OpenFlow13 add-flows br-int FILE`.\n"
            .to_string(),
    );
    agent_default_tables(&mut f);
    firewall_common(&mut f);
    for p in ports {
        f.head(&format!("port ofport {} ({})", p.ofport, p.mac));
        initialize_port_flows(&mut f, p);
        tracked(&mut f, p, RULES_INGRESS_TABLE);
        tracked(&mut f, p, RULES_EGRESS_TABLE);
        rules(&mut f, p);
    }
    f.0
}

struct Flows(String);

impl Flows {
    fn head(&mut self, what: &str) {
        let _ = write!(self.0, "\n# {what}\n");
    }

    fn add(&mut self, table: u32, priority: u32, matches: &str, actions: &str) {
        let sep = if matches.is_empty() { "" } else { "," };
        let _ = writeln!(
            self.0,
            "table={table},priority={priority}{sep}{matches},actions={actions}"
        );
    }
}

/// br_int.py `setup_default_table` (DHCP in OpenFlow off, the default),
/// and `_drop_all_unmatched_flows` / `_initialize_common_flows` /
/// `_initialize_third_party_tables` of the driver's `__init__`.
fn agent_default_tables(f: &mut Flows) {
    f.head("br_int.py setup_default_table");
    f.add(CANARY_TABLE, 0, "", "drop");
    f.add(0, 0, "", &format!("goto_table:{PACKET_RATE_LIMIT}"));
    f.add(
        PACKET_RATE_LIMIT,
        0,
        "",
        &format!("goto_table:{BANDWIDTH_RATE_LIMIT}"),
    );
    f.add(
        BANDWIDTH_RATE_LIMIT,
        0,
        "",
        &format!("goto_table:{TRANSIENT_TABLE}"),
    );
    f.add(TRANSIENT_TABLE, 1, "", "NORMAL");
    f.add(ARP_SPOOF_TABLE, 0, "", "drop");
    f.add(
        0,
        65535,
        &format!("vlan_tci=0x{DEAD_VLAN:04x}/0x1fff"),
        "drop",
    );
    f.add(TRANSIENT_EGRESS_TABLE, 3, "", "NORMAL");
    for t in [LOCAL_EGRESS_TABLE, LOCAL_IP_TABLE] {
        f.add(t, 0, "", &format!("goto_table:{PACKET_RATE_LIMIT}"));
    }
}

fn firewall_common(f: &mut Flows) {
    f.head("firewall.py _drop_all_unmatched_flows");
    for t in [
        BASE_EGRESS_TABLE,
        RULES_EGRESS_TABLE,
        ACCEPT_OR_INGRESS_TABLE,
        BASE_INGRESS_TABLE,
        RULES_INGRESS_TABLE,
    ] {
        f.add(t, 0, "", "drop");
    }
    f.head("firewall.py _initialize_common_flows");
    f.add(
        BASE_EGRESS_TABLE,
        110,
        &format!("ct_state={TRACKED}"),
        &format!("ct_clear,resubmit(,{BASE_EGRESS_TABLE})"),
    );
    f.head("firewall.py _initialize_third_party_tables");
    f.add(ACCEPTED_EGRESS_TRAFFIC_NORMAL_TABLE, 1, "", "NORMAL");
    f.add(
        ACCEPTED_EGRESS_TRAFFIC_TABLE,
        1,
        "",
        &format!("resubmit(,{ACCEPTED_EGRESS_TRAFFIC_NORMAL_TABLE})"),
    );
    f.add(ACCEPTED_INGRESS_TRAFFIC_TABLE, 0, "", "drop");
    f.add(DROPPED_TRAFFIC_TABLE, 0, "", "drop");
}

/// `initialize_port_flows`: which port a frame comes from or goes to,
/// then `_initialize_egress` and `_initialize_ingress`.
fn initialize_port_flows(f: &mut Flows, p: &OfPort) {
    let (n, v) = (p.ofport, LOCAL_VLAN);
    f.head("firewall.py initialize_port_flows");
    f.add(
        TRANSIENT_TABLE,
        100,
        &format!("in_port={n}"),
        &format!("set_field:{n}->reg5,set_field:{v}->reg6,resubmit(,{BASE_EGRESS_TABLE})"),
    );
    f.add(
        TRANSIENT_TABLE,
        90,
        &format!("dl_dst={},dl_vlan={v}", p.mac),
        &format!(
            "set_field:{n}->reg5,set_field:{v}->reg6,strip_vlan,resubmit(,{BASE_INGRESS_TABLE})"
        ),
    );
    initialize_egress(f, p);
    initialize_ingress(f, p);
}

/// The port's (MAC, IPv4) pairs: fixed IPs and allowed address pairs.
fn v4_pairs(p: &OfPort) -> Vec<(&str, &str)> {
    p.ipv4
        .iter()
        .chain(&p.pairs)
        .map(|ip| (p.mac.as_str(), ip.as_str()))
        .collect()
}

/// The port's IPv6 link-local address (EUI-64 from the MAC), which the
/// driver allows for neighbour discovery even without IPv6 subnets.
fn lla(mac: &str) -> String {
    // The bench's own MACs: a malformed one would show as a flow ovs-ofctl
    // refuses.
    mac.parse::<dataplane_config::MacAddr>()
        .map(|m| m.ipv6_link_local().to_string())
        .unwrap_or_default()
}

/// `_initialize_egress`: what a port may send (its MAC with its
/// addresses, DHCP as a client), then where accepted traffic goes.
fn initialize_egress(f: &mut Flows, p: &OfPort) {
    egress_pairs(f, p);
    egress_dhcp(f, p);
    f.head("firewall.py _initialize_egress: everything else from the port is dropped");
    f.add(
        BASE_EGRESS_TABLE,
        10,
        &from_port(p),
        &format!("ct_clear,resubmit(,{DROPPED_TRAFFIC_TABLE})"),
    );
    accept_or_ingress(f, p);
}

/// Matches a frame the port sent.
fn from_port(p: &OfPort) -> String {
    format!("in_port={},reg5={}", p.ofport, p.ofport)
}

/// The (MAC, IP) pairs: ARP, RARP and IPv4 for each; ICMPv6 neighbour
/// discovery and IPv6 for the link-local address.
fn egress_pairs(f: &mut Flows, p: &OfPort) {
    let port = from_port(p);
    let normal = format!("resubmit(,{ACCEPTED_EGRESS_TRAFFIC_NORMAL_TABLE})");
    let track = format!("ct(table={RULES_EGRESS_TABLE},{ZONE})");
    f.head("firewall.py _initialize_egress: IPv4 (MAC, IP) pairs, ARP and RARP");
    for (mac, ip) in v4_pairs(p) {
        let m = format!("{port},dl_src={mac},dl_type=0x0806,arp_spa={ip}");
        f.add(BASE_EGRESS_TABLE, 95, &m, &normal);
        let m = format!("{port},dl_type=0x8035,dl_src={mac}");
        f.add(BASE_EGRESS_TABLE, 95, &m, &normal);
        let m = format!("{port},dl_type=0x0800,dl_src={mac},nw_src={ip}");
        f.add(BASE_EGRESS_TABLE, 65, &m, &track);
    }
    let (mac, lla) = (p.mac.as_str(), lla(&p.mac));
    f.head("firewall.py _initialize_egress_ipv6_icmp, and IPv6 pairs (the link-local one)");
    // ICMPV6_ALLOWED_EGRESS_TYPES: MLD query, RS, NS; NA restricted to
    // the port's own targets.
    for t in [130, 133, 135] {
        let m =
            format!("{port},dl_type=0x86dd,nw_proto=58,icmp_type={t},dl_src={mac},ipv6_src={lla}");
        f.add(BASE_EGRESS_TABLE, 95, &m, &normal);
    }
    let m = format!("{port},dl_type=0x86dd,nw_proto=58,icmp_type=136,nd_target={lla}");
    f.add(BASE_EGRESS_TABLE, 95, &m, &normal);
    let m = format!("{port},dl_type=0x86dd,dl_src={mac},ipv6_src={lla}");
    f.add(BASE_EGRESS_TABLE, 65, &m, &track);
}

/// DHCP discovery from the port's pairs (and 0.0.0.0) allowed; DHCP
/// servers and router advertisements from the port dropped.
fn egress_dhcp(f: &mut Flows, p: &OfPort) {
    let port = from_port(p);
    let (mac, lla) = (p.mac.as_str(), lla(&p.mac));
    let dropped = format!("resubmit(,{DROPPED_TRAFFIC_TABLE})");
    f.head("firewall.py _initialize_egress: DHCP discovery, DHCP servers and RAs banned");
    let accept_or_ingress = format!("resubmit(,{ACCEPT_OR_INGRESS_TABLE})");
    for (m, ip) in v4_pairs(p).into_iter().chain([(mac, "0.0.0.0")]) {
        let m =
            format!("{port},dl_type=0x0800,dl_src={m},nw_src={ip},nw_proto=17,tp_src=68,tp_dst=67");
        f.add(BASE_EGRESS_TABLE, 80, &m, &accept_or_ingress);
    }
    let m = format!(
        "{port},dl_type=0x86dd,dl_src={mac},ipv6_src={lla},nw_proto=17,tp_src=546,tp_dst=547"
    );
    f.add(BASE_EGRESS_TABLE, 80, &m, &accept_or_ingress);
    for (dl_type, sp, dp) in [("0x0800", 67, 68), ("0x86dd", 547, 546)] {
        let m = format!("{port},dl_type={dl_type},nw_proto=17,tp_src={sp},tp_dst={dp}");
        f.add(BASE_EGRESS_TABLE, 70, &m, &dropped);
    }
    let m = format!("{port},dl_type=0x86dd,nw_proto=58,icmp_type=134");
    f.add(BASE_EGRESS_TABLE, 70, &m, &dropped);
}

/// Accepted egress to one of this host's ports goes to that port's
/// ingress tables; other new connections are committed and leave.
fn accept_or_ingress(f: &mut Flows, p: &OfPort) {
    let n = p.ofport;
    f.head("firewall.py _initialize_egress: accept_or_ingress");
    f.add(
        ACCEPT_OR_INGRESS_TABLE,
        100,
        &format!("dl_dst={},reg6={LOCAL_VLAN}", p.mac),
        &format!("set_field:{n}->reg5,resubmit(,{BASE_INGRESS_TABLE})"),
    );
    for dl_type in ["0x0800", "0x86dd"] {
        f.add(
            ACCEPT_OR_INGRESS_TABLE,
            90,
            &format!("dl_type={dl_type},reg5={n},ct_state={NEW_NOT_ESTABLISHED}"),
            &format!("ct(commit,{ZONE}),resubmit(,{ACCEPTED_EGRESS_TRAFFIC_TABLE})"),
        );
    }
    let normal = format!("resubmit(,{ACCEPTED_EGRESS_TRAFFIC_NORMAL_TABLE})");
    f.add(ACCEPT_OR_INGRESS_TABLE, 80, &format!("reg5={n}"), &normal);
}

fn initialize_ingress(f: &mut Flows, p: &OfPort) {
    let n = p.ofport;
    let out = format!("output:{n}");
    f.head("firewall.py _initialize_ingress: ARP, ICMPv6 (ND, MLD, RA), DHCP offers");
    f.add(
        BASE_INGRESS_TABLE,
        100,
        &format!("dl_type=0x0806,reg5={n}"),
        &out,
    );
    // ICMPV6_ALLOWED_INGRESS_TYPES (MLD query, NS, NA) and RA.
    for t in [130, 135, 136, 134] {
        f.add(
            BASE_INGRESS_TABLE,
            100,
            &format!("reg5={n},dl_type=0x86dd,nw_proto=58,icmp_type={t}"),
            &out,
        );
    }
    for (dl_type, sp, dp) in [("0x0800", 67, 68), ("0x86dd", 547, 546)] {
        f.add(
            BASE_INGRESS_TABLE,
            95,
            &format!("reg5={n},dl_type={dl_type},nw_proto=17,tp_src={sp},tp_dst={dp}"),
            &out,
        );
    }
    f.head("firewall.py _initialize_ingress: track what is not tracked yet");
    for dl_type in ["0x0800", "0x86dd"] {
        f.add(
            BASE_INGRESS_TABLE,
            90,
            &format!("reg5={n},dl_type={dl_type},ct_state={NOT_TRACKED}"),
            &format!("ct(table={RULES_INGRESS_TABLE},{ZONE})"),
        );
    }
    f.add(
        BASE_INGRESS_TABLE,
        80,
        &format!("ct_state={TRACKED},reg5={n}"),
        &format!("resubmit(,{RULES_INGRESS_TABLE})"),
    );
}

/// `_initialize_tracked_ingress` / `_initialize_tracked_egress`: invalid
/// and no-longer-allowed connections dropped, replies and related
/// packets accepted, established ones no rule allows marked invalid.
fn tracked(f: &mut Flows, p: &OfPort, table: u32) {
    let n = p.ofport;
    let ingress = table == RULES_INGRESS_TABLE;
    let dir = if ingress { "ingress" } else { "egress" };
    f.head(&format!("firewall.py _initialize_tracked_{dir}"));
    let dropped = format!("resubmit(,{DROPPED_TRAFFIC_TABLE})");
    let accept = if ingress {
        format!("output:{n}")
    } else {
        format!("resubmit(,{ACCEPTED_EGRESS_TRAFFIC_NORMAL_TABLE})")
    };
    f.add(table, 50, &format!("ct_state={INVALID}"), &dropped);
    f.add(
        table,
        50,
        &format!("reg5={n},ct_mark={CT_MARK_INVALID}"),
        &dropped,
    );
    for state in [ESTABLISHED_REPLY, RELATED] {
        f.add(
            table,
            50,
            &format!("ct_state={state},ct_mark={CT_MARK_NORMAL},reg5={n},ct_zone={LOCAL_VLAN}"),
            &accept,
        );
    }
    f.add(
        table,
        40,
        &format!("reg5={n},ct_state={NOT_ESTABLISHED}"),
        &dropped,
    );
    for dl_type in ["0x0800", "0x86dd"] {
        f.add(
            table,
            40,
            &format!("dl_type={dl_type},reg5={n},ct_state={ESTABLISHED}"),
            &format!("ct(commit,{ZONE},exec(set_field:{CT_MARK_INVALID}->ct_mark))"),
        );
    }
}

/// `add_flows_from_rules`: each rule through rules.py
/// `create_flows_from_rule_and_port` and `create_accept_flows` (one flow
/// for established connections, one that commits new ones).
fn rules(f: &mut Flows, p: &OfPort) {
    let n = p.ofport;
    f.head("firewall.py add_flows_from_rules (rules.py create_accept_flows)");
    let directions = [
        (RULES_INGRESS_TABLE, &p.ingress),
        (RULES_EGRESS_TABLE, &p.egress),
    ];
    for (table, rules) in directions {
        for rule in rules {
            // flow_priority_offset: 4 without a remote group, +3 with a
            // protocol and ports.
            let (priority, dl_type, l4) = match *rule {
                Rule::Any { v6 } => (
                    74,
                    if v6 { "0x86dd" } else { "0x0800" },
                    vec![String::new()],
                ),
                Rule::Udp { min, max } => (
                    77,
                    "0x0800",
                    port_rule_masking(min, max)
                        .into_iter()
                        .map(|m| format!(",nw_proto=17,udp_dst={m}"))
                        .collect(),
                ),
            };
            for l4 in l4 {
                let m = format!("dl_type={dl_type},reg5={n}{l4}");
                let (est, new) = if table == RULES_INGRESS_TABLE {
                    (
                        format!("output:{n}"),
                        format!(
                            "ct(commit,{ZONE}),output:{n},resubmit(,{ACCEPTED_INGRESS_TRAFFIC_TABLE})"
                        ),
                    )
                } else {
                    let next = format!("resubmit(,{ACCEPT_OR_INGRESS_TABLE})");
                    (next.clone(), next)
                };
                f.add(
                    table,
                    priority,
                    &format!("{m},ct_state={ESTABLISHED_NOT_REPLY}"),
                    &est,
                );
                f.add(
                    table,
                    priority,
                    &format!("{m},ct_state={NEW_NOT_ESTABLISHED}"),
                    &new,
                );
            }
        }
    }
}

/// neutron/common/utils.py `port_rule_masking`: a port range as the
/// fewest `value/mask` matches (aligned power-of-two blocks), which are the
/// datapath's own policy prefixes (`port_prefixes`) written as masks.
pub fn port_rule_masking(min: u16, max: u16) -> Vec<String> {
    dataplane_config::compile::port_prefixes(min, max)
        .into_iter()
        .map(|(lo, bits)| {
            let mask = (0xffff_u32 << (16 - u32::from(bits))) & 0xffff;
            format!("0x{lo:04x}/0x{mask:04x}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_cover_ranges_as_neutron_does() {
        assert_eq!(
            port_rule_masking(2000, 2009),
            ["0x07d0/0xfff8", "0x07d8/0xfffe"]
        );
        assert_eq!(port_rule_masking(80, 80), ["0x0050/0xffff"]);
        // Not aligned at either end: 5, 6-7, 8-11.
        assert_eq!(
            port_rule_masking(5, 11),
            ["0x0005/0xffff", "0x0006/0xfffe", "0x0008/0xfffc"]
        );
    }

    #[test]
    fn link_local_address_from_the_mac() {
        assert_eq!(lla("fa:16:3e:f0:00:01"), "fe80::f816:3eff:fef0:1");
    }
}
