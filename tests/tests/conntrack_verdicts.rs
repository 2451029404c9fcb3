//! A full connection table: the least recently used connections are
//! evicted, new ones keep working, and the evictions are counted (`show
//! conntrack`, the metrics). Driven through BPF_PROG_TEST_RUN on `to_vm`'s
//! code with a real, deliberately small table.

use dataplane_agent::show;
use lab::{
    pkt::{mac, tcp4, v4},
    require_root,
    verdict::{Verdicts, XDP_DROP, XDP_PASS},
};
use serde_json::{Value, json};

const SERVER: &str = "55555555-aaaa-4000-8000-000000000005";
const CLIENT: &str = "66666666-bbbb-4000-8000-000000000006";
const MAC_S: &str = "fa:16:3e:00:00:05";
const MAC_C: &str = "fa:16:3e:00:00:06";
const CAPACITY: u32 = 128;

fn config() -> Value {
    json!({
        "networks": [{ "id": "net" }],
        "subnets": [{ "id": "v4", "network_id": "net", "cidr": "10.0.0.0/24", "ip_version": 4 }],
        "security_groups": [
            { "id": "web", "security_group_rules": [
                { "direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80 },
            ]},
            { "id": "client", "security_group_rules": [{ "direction": "egress" }] },
        ],
        "ports": [
            { "id": SERVER, "network_id": "net", "mac_address": MAC_S,
              "fixed_ips": [{ "subnet_id": "v4", "ip_address": "10.0.0.5" }], "security_groups": ["web"] },
            { "id": CLIENT, "network_id": "net", "mac_address": MAC_C,
              "fixed_ips": [{ "subnet_id": "v4", "ip_address": "10.0.0.6" }], "security_groups": ["client"] },
        ],
    })
}

/// The client's packet to the server's port 80 from `sport`: the opening
/// SYN, or a later ACK of the same connection.
fn packet(sport: u16, syn: bool) -> Vec<u8> {
    let mut f = tcp4(
        mac(MAC_C),
        mac(MAC_S),
        v4("10.0.0.6"),
        v4("10.0.0.5"),
        sport,
        80,
    );
    if !syn {
        // TCP flags: the 14th byte of the TCP header.
        f[14 + 20 + 13] = 0x10;
    }
    f
}

#[test]
fn a_full_table_evicts_the_oldest_counts_it_and_keeps_accepting() {
    require_root!();
    let mut v = Verdicts::with_connections(&config(), SERVER, CAPACITY).unwrap();
    let meta = v.sender_meta(CLIENT).unwrap();
    let dir = v.dir();

    // Ten tables' worth of connections, each tracked in two zones (the
    // client's egress, the server's ingress): every one is accepted.
    let opened: u16 = 10 * CAPACITY as u16;
    for i in 0..opened {
        let (action, _) = v.to_vm(&meta, &packet(10_000 + i, true), 1).unwrap();
        assert_eq!(action, XDP_PASS, "SYN {i} refused with a full table");
    }
    let ct = show::conntrack(&dir).unwrap();
    let t = &ct.table;
    assert_eq!(t.capacity, CAPACITY);
    assert!(t.entries <= u64::from(CAPACITY), "{t:?}");
    assert_eq!(t.created, 2 * u64::from(opened), "{t:?}");
    assert_eq!(t.removed, 0, "{t:?}");
    assert_eq!(t.evicted, t.created - t.entries, "{t:?}");
    assert!(t.evicted >= t.created - u64::from(CAPACITY), "{t:?}");

    // The newest connection is still tracked: its ACK passes. The oldest
    // was evicted: its ACK is a packet of no known connection.
    let (action, _) = v
        .to_vm(&meta, &packet(10_000 + opened - 1, false), 1)
        .unwrap();
    assert_eq!(action, XDP_PASS, "the newest connection was lost");
    let before = v.drops(CLIENT, "ct_invalid");
    let (action, _) = v.to_vm(&meta, &packet(10_000, false), 1).unwrap();
    assert_eq!(action, XDP_DROP, "the oldest connection was not evicted");
    assert_eq!(v.drops(CLIENT, "ct_invalid"), before + 1);

    // A repeated SYN of a live connection is no new entry.
    let created = show::conntrack(&dir).unwrap().table.created;
    let (action, _) = v
        .to_vm(&meta, &packet(10_000 + opened - 1, true), 1)
        .unwrap();
    assert_eq!(action, XDP_PASS);
    assert_eq!(show::conntrack(&dir).unwrap().table.created, created);

    // The metrics say the same.
    let text = dataplane_agent::metrics::render(&dir).unwrap();
    let evicted = show::conntrack(&dir).unwrap().table.evicted;
    assert!(
        text.contains(&format!("dataplane_conntrack_evicted_total {evicted}\n")),
        "{text}"
    );
    assert!(text.contains(&format!("dataplane_conntrack_capacity {CAPACITY}\n")));
}
