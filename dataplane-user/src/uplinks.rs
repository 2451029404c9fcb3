//! `dataplane run --uplink PHYSNET=IFNAME`: which host interface reaches
//! each physical network (as Neutron's `bridge_mappings`). An external
//! network whose `provider:physical_network` is PHYSNET is reached through
//! IFNAME; the compiler takes the map as `Locality::uplinks`.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

/// Reads the `--uplink` flags, each interface resolved by `ifindex`; a
/// malformed flag, a physical network or interface given twice, or an
/// interface that does not exist is an error naming the flag.
pub fn parse(
    specs: &[String],
    ifindex: impl Fn(&str) -> Option<u32>,
) -> Result<BTreeMap<String, u32>> {
    let mut out = BTreeMap::new();
    let mut names = BTreeMap::new();
    for spec in specs {
        let Some((physnet, ifname)) = spec.split_once('=') else {
            bail!("--uplink {spec}: expected PHYSNET=IFNAME (e.g. physnet1=eth1)");
        };
        let (physnet, ifname) = (physnet.trim(), ifname.trim());
        if physnet.is_empty() || ifname.is_empty() {
            bail!("--uplink {spec}: expected PHYSNET=IFNAME (e.g. physnet1=eth1)");
        }
        let Some(index) = ifindex(ifname) else {
            bail!("--uplink {spec}: no interface {ifname} on this host");
        };
        if let Some(other) = names.insert(index, physnet.to_string()) {
            bail!(
                "--uplink {spec}: {ifname} already carries physical network {other} (an uplink \
                 carries one external network)"
            );
        }
        if out.insert(physnet.to_string(), index).is_some() {
            bail!("--uplink {spec}: physical network {physnet} is given twice");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ifindex(name: &str) -> Option<u32> {
        match name {
            "eth1" => Some(3),
            "eth2" => Some(4),
            _ => None,
        }
    }

    fn parsed(specs: &[&str]) -> Result<BTreeMap<String, u32>> {
        let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
        parse(&specs, ifindex)
    }

    #[test]
    fn each_physical_network_to_its_interface() {
        let m = parsed(&["physnet1=eth1", " physnet2 = eth2"]).unwrap();
        assert_eq!(m, [("physnet1".into(), 3), ("physnet2".into(), 4)].into());
        assert!(parsed(&[]).unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_flag() {
        for (specs, says) in [
            (
                &["physnet1"][..],
                "--uplink physnet1: expected PHYSNET=IFNAME",
            ),
            (&["=eth1"][..], "--uplink =eth1: expected PHYSNET=IFNAME"),
            (
                &["physnet1=eth9"][..],
                "--uplink physnet1=eth9: no interface eth9",
            ),
            (
                &["physnet1=eth1", "physnet2=eth1"][..],
                "--uplink physnet2=eth1: eth1 already carries physical network physnet1",
            ),
            (
                &["physnet1=eth1", "physnet1=eth2"][..],
                "--uplink physnet1=eth2: physical network physnet1 is given twice",
            ),
        ] {
            let e = parsed(specs).unwrap_err().to_string();
            assert!(e.contains(says), "{specs:?}: {e}");
        }
    }
}
