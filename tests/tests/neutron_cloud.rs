//! Neutron drives the agents, end to end: a real Neutron 29 API (MariaDB,
//! the ML2 driver `aap`) runs in the underlay namespace of a cloud of
//! three hosts, each a namespace with its own agent enforcing, on the
//! cloud's etcd, VXLAN between them. Everything is made with the
//! `openstack` CLI or Neutron's API (nothing is written into etcd here):
//! networks, subnets, security groups, VM ports bound to hosts with a
//! shared VIP in their allowed address pairs; the VMs are namespaces with
//! the MACs and addresses Neutron allocated, behind the taps Nova would
//! plug. Then: the ports turn ACTIVE; traffic across hosts; a remote
//! group with a VIP holder as member; keepalived failing over between two
//! hosts and back; a port joining a group, pairs given to and taken from
//! a live port, a router interface, a port deleted, each timed from the
//! API call returning to the datapath enforcing it (pings every 10 ms,
//! stamped with their arrival). One cloud and one Neutron for all of it:
//! the scenarios use different VMs or addresses, and run in order.
//!
//! At the end no agent may have refused anything the driver wrote.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context, Result, anyhow, bail, ensure};
use lab::{
    cloud::Cloud,
    lab::{Vm, WAIT, wait_for},
    neutron::{Neutron, Options},
    probe::{Pinger, longest_gap, now},
    require_root, vrrp,
};
use serde_json::{Value, json};

const HOSTS: [&str; 3] = ["h1", "h2", "h3"];
/// The address m1 and m2 share with VRRP (outside the allocation pools,
/// so that Neutron gives it to no port).
const VIP: &str = "10.40.0.200";
/// An address given to a live port's pairs, and taken away.
const EXTRA: &str = "10.40.0.150";
/// How long a change may take to be enforced before the test fails
/// (measured: tens of ms; only a broken datapath waits this long).
const ENFORCED_WITHIN: Duration = Duration::from_secs(10);

/// A VM's port, as Neutron made it.
struct Port {
    id: String,
    host: String,
    mac: String,
    ip: String,
}

struct World {
    // Dropped first: the server runs in the cloud's underlay namespace.
    n: Neutron,
    cloud: Cloud,
    ports: BTreeMap<String, Port>,
    /// Ids of the networks, subnets and groups, by name.
    ids: BTreeMap<String, String>,
    /// Each change, timed.
    timings: Vec<(String, Timing)>,
}

/// When a change was enforced, against the call that made it.
#[derive(Clone, Copy, Debug)]
struct Timing {
    /// ms from the call returning to the datapath enforcing it (negative:
    /// before the call returned).
    after_return: f64,
    /// ms the call took.
    call: f64,
}

impl World {
    fn vm(&self, name: &str) -> &Vm {
        self.cloud.host(&self.ports[name].host).lab.vm(name)
    }

    /// Notes (and prints) how long `what` took to be enforced.
    fn record(&mut self, what: &str, t: Timing) {
        eprintln!(
            "latency: {what}: enforced {:+.0} ms after the call returned ({:.0} ms after it \
             started)",
            t.after_return,
            t.after_return + t.call
        );
        self.timings.push((what.to_string(), t));
    }

    fn id(&self, name: &str) -> &str {
        &self.ids[name]
    }

    /// The last lines of every agent's log, for a failure's report.
    fn agent_logs(&self) -> String {
        let mut s = String::new();
        for h in &self.cloud.hosts {
            let log = h.lab.agent_log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(25)..].join("\n");
            s.push_str(&format!("--- agent {} (tail) ---\n{tail}\n", h.name));
        }
        s
    }
}

#[test]
fn neutron_drives_the_agents_across_hosts() -> Result<()> {
    require_root!();
    let mut cloud = Cloud::new(HOSTS.len())?;
    for h in HOSTS {
        cloud.start(h, 0)?;
    }
    for h in HOSTS {
        cloud.wait_chassis(h, &HOSTS, WAIT)?;
    }
    let n = Neutron::start(Options::new(&cloud.etcd.url).inside(&cloud.underlay))?;
    let mut w = World {
        n,
        cloud,
        ports: BTreeMap::new(),
        ids: BTreeMap::new(),
        timings: Vec::new(),
    };
    scenarios(&mut w).map_err(|e| {
        anyhow!(
            "{e:#}\n--- neutron log (tail) ---\n{}\n{}",
            w.n.log_tail(40),
            w.agent_logs()
        )
    })
}

fn scenarios(w: &mut World) -> Result<()> {
    networks_and_groups(w)?;
    vm_ports(w)?;
    across_hosts(w)?;
    remote_group(w)?;
    keepalived_fails_over_and_back(w)?;
    joining_a_group(w)?;
    pairs_on_a_live_port(w)?;
    router_interface(w)?;
    port_deleted(w)?;
    report(&w.timings);
    nothing_refused(w)
}

fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or_default()
}

/// A command line's words (none of these has a space inside).
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Two VXLAN networks with a subnet each, groups `clients` and `web`
/// (ICMP in from members of `clients`).
fn networks_and_groups(w: &mut World) -> Result<()> {
    let n = &w.n;
    for (net, sub, prefix) in [("net1", "sub1", "10.40.0"), ("net2", "sub2", "10.41.0")] {
        let v = n.cli_json(&["network", "create", net])?;
        ensure!(s(&v, "provider:network_type") == "vxlan", "{v}");
        w.ids.insert(net.into(), s(&v, "id").into());
        let v = n.cli_json(&words(&format!(
            "subnet create {sub} --network {net} --subnet-range {prefix}.0/24 \
             --allocation-pool start={prefix}.10,end={prefix}.99"
        )))?;
        w.ids.insert(sub.into(), s(&v, "id").into());
    }
    for group in ["clients", "web"] {
        let v = n.cli_json(&["security", "group", "create", group])?;
        w.ids.insert(group.into(), s(&v, "id").into());
    }
    n.cli(&words(
        "security group rule create web --ingress --protocol icmp --remote-group clients",
    ))?;
    let default = n.api("GET", "/security-groups?name=default", None)?;
    let id = default["security_groups"][0]["id"]
        .as_str()
        .context("the project's default group")?;
    w.ids.insert("default".into(), id.into());
    Ok(())
}

/// The VMs: m1 (h1) and m2 (h2) share the VIP and are `clients`; c (h3)
/// is in the default group only; web (h2) in `web` only; far (h1) is on
/// the other network. Each port is created as Nova would, bound to its
/// host; its VM is plugged with what Neutron allocated; all turn ACTIVE.
fn vm_ports(w: &mut World) -> Result<()> {
    let pair_holder = format!(
        "--security-group default --security-group clients --allowed-address ip-address={VIP}"
    );
    let vms = [
        ("m1", "h1", "net1", pair_holder.as_str()),
        ("m2", "h2", "net1", &pair_holder),
        ("c", "h3", "net1", ""),
        ("web", "h2", "net1", "--security-group web"),
        ("far", "h1", "net2", ""),
    ];
    for (name, host, net, extra) in vms {
        let port = create_port(&w.n, name, host, net, extra)?;
        plug(&mut w.cloud, name, &port)?;
        w.ports.insert(name.into(), port);
    }
    let plugged = now();
    for (name, port) in &w.ports {
        wait_for(WAIT, &format!("port {name} ACTIVE"), || {
            w.n.api("GET", &format!("/ports/{}", port.id), None)
                .is_ok_and(|v| s(&v["port"], "status") == "ACTIVE")
        })?;
    }
    eprintln!(
        "neutron: every port ACTIVE {:.0} ms after the last VM was plugged",
        (now() - plugged) * 1e3
    );
    for h in HOSTS {
        let local = w.ports.values().filter(|p| p.host == h).count();
        w.cloud.wait_remote_ports(h, w.ports.len() - local, WAIT)?;
    }
    Ok(())
}

/// `openstack port create` as Nova asks for it; the port must be bound.
fn create_port(n: &Neutron, name: &str, host: &str, net: &str, extra: &str) -> Result<Port> {
    let v = n.cli_json(&words(&format!(
        "port create {name} --network {net} --host {host} --device-owner compute:nova \
         --device vm-{name} {extra}"
    )))?;
    ensure!(s(&v, "binding_vif_type") == "tap", "{name} not bound: {v}");
    Ok(Port {
        id: s(&v, "id").into(),
        host: host.into(),
        mac: s(&v, "mac_address").into(),
        ip: s(&v["fixed_ips"][0], "ip_address").into(),
    })
}

/// The VM behind Nova's tap (`tap` + the port id's first 11 characters),
/// with the MAC and address Neutron allocated.
fn plug(cloud: &mut Cloud, name: &str, port: &Port) -> Result<()> {
    let lab = &mut cloud.host_mut(&port.host).lab;
    let tap = format!("tap{}", &port.id[..11]);
    let i = lab.add_vm_for_port(name, &port.mac, &port.id, &tap)?;
    lab.vms[i].sh(&format!("ip addr add {}/24 dev eth0", port.ip))?;
    Ok(())
}

/// L2 across hosts: c (h3) reaches m1 (h1) and m2 (h2).
fn across_hosts(w: &World) -> Result<()> {
    let c = w.vm("c");
    c.reaches(&w.ports["m1"].ip, WAIT)?;
    c.reaches(&w.ports["m2"].ip, WAIT)
}

/// web (h2) lets in ICMP from members of `clients` only: m1 (h1) passes,
/// c (h3) is refused by web's host.
fn remote_group(w: &World) -> Result<()> {
    let web = &w.ports["web"];
    w.vm("m1").reaches(&web.ip, WAIT)?;
    let h2 = &w.cloud.host("h2").lab;
    let refused = || h2.drops(w.vm("web"), "sg_ingress");
    let before = refused();
    ensure!(!w.vm("c").ping(&web.ip, 2), "c is no member of clients");
    ensure!(refused() > before, "refused by web's ingress rules on h2");
    Ok(())
}

/// keepalived in m1 (h1, priority 200) and m2 (h2, 100); c (h3) pings the
/// VIP every 0.1 s while m1's link goes down (m2 takes over), and again
/// while it comes back (m1 takes the VIP back). Losses are printed; then
/// traffic from the VIP, now m1's, is let in by web (h2) through the
/// remote group `clients`, whose members' pairs count.
fn keepalived_fails_over_and_back(w: &World) -> Result<()> {
    let (m1, m2) = (w.vm("m1"), w.vm("m2"));
    for (host, vm, priority) in [("h1", m1, 200), ("h2", m2, 100)] {
        let dir = w.cloud.host(host).lab.dir.path();
        vrrp::keepalived(dir, vm, 62, priority, VIP, false)?;
    }
    wait_for(WAIT, "m1 to become master", || vrrp::holds(m1, VIP))?;
    w.vm("c").reaches(VIP, WAIT)?;
    failover(w, "m1 -> m2", "m2", || {
        m1.sh("ip link set eth0 down").map(drop)
    })?;
    failover(w, "m2 -> m1", "m1", || {
        m1.sh("ip link set eth0 up").map(drop)
    })?;
    m1.reaches_from(&w.ports["web"].ip, Some(VIP), WAIT)
        .context("web lets in the VIP of a member of clients")
}

/// Pings the VIP from c while `fail` makes `to` take it over; prints the
/// loss and the longest gap.
fn failover(w: &World, what: &str, to: &str, fail: impl FnOnce() -> Result<()>) -> Result<()> {
    let c = w.vm("c");
    let ping = Pinger::start(c, None, VIP, "0.1")?;
    wait_for(WAIT, "10 replies from the VIP", || {
        ping.replies().len() >= 10
    })?;
    let failed_at = now();
    fail()?;
    wait_for(WAIT, &format!("{to} to hold the VIP"), || {
        vrrp::holds(w.vm(to), VIP)
    })?;
    let (h3, member) = (&w.cloud.host("h3").lab, &w.ports[to].id);
    wait_for(WAIT, &format!("h3 sends the VIP to {to}"), || {
        h3.active_member(VIP).as_deref() == Some(member.as_str())
    })?;
    wait_for(WAIT, "10 replies after the failover", || {
        ping.replies().iter().filter(|r| r.at > failed_at).count() >= 10
    })?;
    let gap = longest_gap(&ping.replies());
    let (sent, received) = ping.finish()?;
    eprintln!(
        "neutron: VIP failover {what} across hosts: {} of {sent} pings lost (0.1 s apart), \
         longest gap {:.1} s",
        sent - received,
        gap.as_secs_f64()
    );
    Ok(())
}

/// c joins `clients` (a port update through the API): web (h2) lets its
/// pings in from then on.
fn joining_a_group(w: &mut World) -> Result<()> {
    let (c, web) = (&w.ports["c"], &w.ports["web"]);
    let body = json!({"port": {"security_groups": [w.id("default"), w.id("clients")]}});
    let ping = Pinger::start(w.vm("c"), None, &web.ip, "0.01")?;
    let t = timed_start(&ping, || {
        w.n.api("PUT", &format!("/ports/{}", c.id), Some(&body))
    })?;
    w.record("port joins a remote group (API)", t);
    Ok(())
}

/// Pairs given to and taken from c's live port, three times through the
/// API and once through the CLI (`port set --allowed-address` /
/// `--no-allowed-address`); pings from the address to m2 (on another
/// host, whose default group admits c's pairs) start and stop.
fn pairs_on_a_live_port(w: &mut World) -> Result<()> {
    let (m2_ip, m2_mac) = (w.ports["m2"].ip.clone(), w.ports["m2"].mac.clone());
    let c = w.vm("c");
    c.sh(&format!("ip addr add {EXTRA}/32 dev eth0"))?;
    // The pings' ARP would carry the unpaired source too: resolve m2 once
    // and for all, so that only port security and groups are measured.
    c.sh(&format!(
        "ip neigh replace {m2_ip} lladdr {m2_mac} dev eth0 nud permanent"
    ))?;
    let id = w.ports["c"].id.clone();
    let path = format!("/ports/{id}");
    let h3 = &w.cloud.host("h3").lab;
    let spoofed_before = h3.drops(w.vm("c"), "ipv4_src");
    let (with, without) = (
        json!({"port": {"allowed_address_pairs": [{"ip_address": EXTRA}]}}),
        json!({"port": {"allowed_address_pairs": []}}),
    );
    for round in 1..=3 {
        let ping = Pinger::start(w.vm("c"), Some(EXTRA), &m2_ip, "0.01")?;
        let t = timed_start(&ping, || w.n.api("PUT", &path, Some(&with)))?;
        w.record(&format!("pair added (API, {round})"), t);
        let t = timed_stop(&ping, || w.n.api("PUT", &path, Some(&without)))?;
        w.record(&format!("pair removed (API, {round})"), t);
    }
    let ping = Pinger::start(w.vm("c"), Some(EXTRA), &m2_ip, "0.01")?;
    let pair = format!("ip-address={EXTRA}");
    let t = timed_start(&ping, || {
        w.n.cli(&["port", "set", &id, "--allowed-address", &pair])
    })?;
    w.record("pair added (CLI)", t);
    let t = timed_stop(&ping, || {
        w.n.cli(&["port", "set", &id, "--no-allowed-address"])
    })?;
    w.record("pair removed (CLI)", t);
    let h3 = &w.cloud.host("h3").lab;
    ensure!(
        h3.drops(w.vm("c"), "ipv4_src") > spoofed_before,
        "c's pings from an address not (or no longer) paired are dropped at h3 as ipv4_src"
    );
    Ok(())
}

/// Router r1 joins sub1 (`openstack router add subnet`), then sub2
/// through the API: c (h3, net1) reaches far (h1, net2) from then on,
/// one routed hop.
fn router_interface(w: &mut World) -> Result<()> {
    let n = &w.n;
    let r = n.cli_json(&["router", "create", "r1"])?;
    let router = s(&r, "id").to_string();
    n.cli(&["router", "add", "subnet", "r1", "sub1"])?;
    let (c, far) = (w.vm("c"), w.vm("far"));
    c.sh("ip route add 10.41.0.0/24 via 10.40.0.1")?;
    far.sh("ip route add 10.40.0.0/24 via 10.41.0.1")?;
    let ping = Pinger::start(c, None, &w.ports["far"].ip, "0.01")?;
    let body = json!({"subnet_id": w.id("sub2")});
    let path = format!("/routers/{router}/add_router_interface");
    let t = timed_start(&ping, || n.api("PUT", &path, Some(&body)))?;
    drop(ping);
    let out = c.sh(&format!("ping -n -c 1 -W 2 {}", w.ports["far"].ip))?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(text.contains("ttl=63"), "one routed hop: {text}");
    w.record("router interface added (API)", t);
    Ok(())
}

/// far's port is deleted: c's pings to it stop, h1 forgets the port and
/// its binding record, and far reaches nobody.
fn port_deleted(w: &mut World) -> Result<()> {
    let far = &w.ports["far"];
    let ping = Pinger::start(w.vm("c"), None, &far.ip, "0.01")?;
    let path = format!("/ports/{}", far.id);
    let t = timed_stop(&ping, || w.n.api("DELETE", &path, None))?;
    let h1 = &w.cloud.host("h1").lab;
    wait_for(WAIT, "h1 forgets far's port", || {
        h1.show_ports().is_ok_and(|v| {
            v["ports"]
                .as_array()
                .is_some_and(|a| !a.iter().any(|p| p["id"] == far.id.as_str()))
        })
    })?;
    let key = format!("/aap/bindings/{}", far.id);
    wait_for(WAIT, "far's binding record gone", || {
        w.cloud.etcd.get(&key).is_ok_and(|v| v.is_none())
    })?;
    ensure!(!w.vm("far").ping(&w.ports["c"].ip, 2), "far reaches nobody");
    w.record("port deleted (API)", t);
    Ok(())
}

/// Runs `call` while `ping` is refused; the datapath enforced the change
/// when the first reply came (negative: before the call returned, as
/// the driver writes into etcd before Neutron answers).
fn timed_start<T>(ping: &Pinger, call: impl FnOnce() -> Result<T>) -> Result<Timing> {
    wait_for(WAIT, "requests refused before the change", || {
        ping.unanswered() >= 3
    })
    .with_context(|| format!("ping says:\n{}", ping.text()))?;
    ensure!(ping.replies().is_empty(), "replies before the change");
    let (started, returned) = run_call(call)?;
    wait_for(ENFORCED_WITHIN, "replies after the change", || {
        !ping.replies().is_empty()
    })?;
    Ok(timing(started, returned, ping.replies()[0].at))
}

/// Runs `call` while `ping` gets replies; the datapath enforced the
/// change after the last reply (the next ping, 10 ms later, got none).
fn timed_stop<T>(ping: &Pinger, call: impl FnOnce() -> Result<T>) -> Result<Timing> {
    wait_for(WAIT, "replies before the change", || {
        ping.replies().len() >= 5
    })?;
    let (started, returned) = run_call(call)?;
    // Stopped: no reply for a second, within the deadline.
    wait_for(ENFORCED_WITHIN, "the replies to stop", || {
        ping.replies().last().is_some_and(|r| now() - r.at > 1.0)
    })?;
    let last = ping.replies().last().map_or(returned, |r| r.at);
    Ok(timing(started, returned, last))
}

/// When `call` started and returned (wall clock, as ping stamps).
fn run_call<T>(call: impl FnOnce() -> Result<T>) -> Result<(f64, f64)> {
    let started = now();
    call()?;
    Ok((started, now()))
}

fn timing(started: f64, returned: f64, enforced: f64) -> Timing {
    Timing {
        after_return: (enforced - returned) * 1e3,
        call: (returned - started) * 1e3,
    }
}

/// The median and maximum time from the call returning to the datapath
/// enforcing, apart for API requests and for CLI commands (which return
/// about a second after Neutron answered: the CLI formats and exits).
fn report(timings: &[(String, Timing)]) {
    for cli in [false, true] {
        let mut all: Vec<Timing> = timings
            .iter()
            .filter(|(what, _)| what.contains("CLI") == cli)
            .map(|(_, t)| *t)
            .collect();
        if all.is_empty() {
            continue;
        }
        all.sort_by(|a, b| a.after_return.total_cmp(&b.after_return));
        // The lower median: of two, the smaller.
        let (mid, max) = (all[(all.len() - 1) / 2], all[all.len() - 1]);
        let mut calls: Vec<f64> = all.iter().map(|t| t.call).collect();
        calls.sort_by(f64::total_cmp);
        eprintln!(
            "latency: {} returned -> datapath enforcing, over {} changes: p50 {:+.0} ms, \
             max {:+.0} ms (pings every 10 ms); the calls took p50 {:.0} ms",
            if cli { "CLI command" } else { "API call" },
            all.len(),
            mid.after_return,
            max.after_return,
            calls[(calls.len() - 1) / 2]
        );
    }
}

/// No agent refused (or set aside) anything the driver wrote, nor
/// logged any other error, and Neutron logged no error.
fn nothing_refused(w: &World) -> Result<()> {
    for h in &w.cloud.hosts {
        let log = h.lab.agent_log();
        let refused: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.contains("these objects wait")
                    || l.contains("keeping the running configuration")
                    || l.contains(" ERROR ")
            })
            .collect();
        if !refused.is_empty() {
            bail!(
                "agent {} refused what the driver wrote:\n{}",
                h.name,
                refused.join("\n")
            );
        }
    }
    let errors = w.n.errors();
    ensure!(
        errors.is_empty(),
        "Neutron logged errors:\n{}",
        errors.join("\n")
    );
    Ok(())
}
