//! What Neutron's linuxbridge agent and iptables firewall driver install on
//! a hypervisor for its ports, as the baselines' filtering: the agent's
//! ebtables MAC and ARP anti-spoofing chains, and the driver's chains
//! (physdev match, conntrack zone, spoofing chain, RELATED/ESTABLISHED, the
//! ports' security-group rules, INVALID drop, fallback drop). Chain names
//! are shortened: interface names leave no room for Neutron's.

use std::path::Path;

use anyhow::{Context, Result};
use lab::netns::Netns;

/// One port on the hypervisor, as the firewall sees it.
pub struct FwPort {
    pub tap: String,
    pub mac: String,
    pub ip: String,
    /// Allowed address pairs (addresses or prefixes, with the port's MAC).
    pub pairs: Vec<String>,
    /// The port's ingress rules, as iptables matches ending in `-j RETURN`.
    pub ingress: Vec<String>,
}

/// Installs the rules for `ports` (those on this hypervisor, in boot
/// order) in `hv`, loaded with `restore` (`iptables-restore`, i.e.
/// iptables-nft, or `iptables-legacy-restore`). `uplinks` are the
/// network's other bridge ports (a vxlan device): Neutron puts what enters
/// through them into the network's conntrack zone too.
pub fn install(
    hv: &Netns,
    dir: &Path,
    restore: &str,
    ports: &[FwPort],
    uplinks: &[&str],
) -> Result<()> {
    hv.sh("sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1")?;
    hv.sh(&ebtables(ports)).context("ebtables")?;
    let rules = dir.join("iptables.rules");
    std::fs::write(&rules, iptables(ports, uplinks).join("\n") + "\n")?;
    hv.sh(&format!("{restore} < {}", rules.display()))
        .context(restore.to_string())?;
    Ok(())
}

/// The fixed IP and the pairs, as iptables source matches.
fn sources(p: &FwPort) -> impl Iterator<Item = String> + '_ {
    std::iter::once(p.ip.as_str())
        .chain(p.pairs.iter().map(String::as_str))
        .map(|a| {
            if a.contains('/') {
                a.to_string()
            } else {
                format!("{a}/32")
            }
        })
}

/// The linuxbridge agent's ARP and MAC spoofing protection, through
/// ebtables-nft by name: Debian's `ebtables` alternative points to the
/// legacy tool, and this kernel has no legacy ebtables nat table.
fn ebtables(ports: &[FwPort]) -> String {
    let mut eb = String::new();
    for (i, p) in ports.iter().enumerate() {
        let (mac, arp, tap) = (format!("nMAC{i}"), format!("nARP{i}"), &p.tap);
        eb += &format!("ebtables-nft -t nat -N {arp} -P DROP\n");
        for a in std::iter::once(&p.ip).chain(&p.pairs) {
            eb += &format!("ebtables-nft -t nat -A {arp} -p ARP --arp-ip-src {a} -j ACCEPT\n");
        }
        eb += &format!(
            "ebtables-nft -t nat -N {mac} -P DROP\n\
             ebtables-nft -t nat -A {mac} -i {tap} --among-src {} -j RETURN\n\
             ebtables-nft -t nat -A PREROUTING -p ARP -i {tap} -j {arp}\n\
             ebtables-nft -t nat -A PREROUTING -i {tap} -j {mac}\n",
            p.mac
        );
    }
    eb
}

/// The iptables firewall driver: one conntrack zone for the network, then
/// per port an ingress chain (i), an egress chain (o) and a spoofing chain
/// (s) holding the fixed IP and the pairs with the MAC.
fn iptables(ports: &[FwPort], uplinks: &[&str]) -> Vec<String> {
    let mut r = vec!["*raw".to_string(), ":PREROUTING ACCEPT".into()];
    let devices = ports
        .iter()
        .map(|p| p.tap.as_str())
        .chain(uplinks.iter().copied());
    for dev in devices {
        r.push(format!(
            "-A PREROUTING -m physdev --physdev-in {dev} -j CT --zone 1"
        ));
    }
    r.extend(
        [
            "COMMIT",
            "*filter",
            ":FORWARD ACCEPT",
            ":sg-chain -",
            ":sg-fallback -",
        ]
        .map(String::from),
    );
    for i in 0..ports.len() {
        r.extend([format!(":i{i} -"), format!(":o{i} -"), format!(":s{i} -")]);
    }
    r.push("-A sg-fallback -j DROP".into());
    for p in ports {
        for dir in ["out", "in"] {
            r.push(format!(
                "-A FORWARD -m physdev --physdev-{dir} {} --physdev-is-bridged -j sg-chain",
                p.tap
            ));
        }
    }
    for (i, p) in ports.iter().enumerate() {
        r.push(format!(
            "-A sg-chain -m physdev --physdev-out {} --physdev-is-bridged -j i{i}",
            p.tap
        ));
        r.push(format!(
            "-A sg-chain -m physdev --physdev-in {} --physdev-is-bridged -j o{i}",
            p.tap
        ));
    }
    r.push("-A sg-chain -j ACCEPT".into());
    for (i, p) in ports.iter().enumerate() {
        r.push(format!(
            "-A i{i} -m state --state RELATED,ESTABLISHED -j RETURN"
        ));
        r.extend(p.ingress.iter().map(|rule| format!("-A i{i} {rule}")));
        r.push(format!("-A i{i} -m state --state INVALID -j DROP"));
        r.push(format!("-A i{i} -j sg-fallback"));
        for a in sources(p) {
            r.push(format!(
                "-A s{i} -s {a} -m mac --mac-source {} -j RETURN",
                p.mac
            ));
        }
        r.push(format!("-A s{i} -j DROP"));
        r.extend([
            format!(
                "-A o{i} -s 0.0.0.0/32 -d 255.255.255.255/32 -p udp --sport 68 --dport 67 -j RETURN"
            ),
            format!("-A o{i} -j s{i}"),
            format!("-A o{i} -p udp --sport 67 --dport 68 -j DROP"),
            format!("-A o{i} -m state --state RELATED,ESTABLISHED -j RETURN"),
            // Every group here allows all egress.
            format!("-A o{i} -j RETURN"),
        ]);
    }
    r.push("COMMIT".into());
    r
}
