//! VRRP failover with real keepalived (the scenario is `lab::vrrp`): the
//! client's pings to the VIP resume through the backup, and the datapath
//! makes the backup the group's active member. The same scenario runs
//! through a plain Linux bridge in the same test, and both losses are
//! reported (`cargo xtask bench` puts them in its results).

use lab::{
    require_root,
    vrrp::{PINGS, VIP, VRRP_MAC, scenario},
};

fn failover(vmac: bool) {
    let variant = if vmac { "use_vmac" } else { "no vmac" };
    let (bridge_lab, bridged) = scenario(true, vmac).unwrap();
    drop(bridge_lab);
    let (lab, through_dp) = scenario(false, vmac).unwrap();
    eprintln!(
        "keepalived failover ({variant}), {PINGS} pings at 0.1 s: lost {} through the datapath, \
         {} through a Linux bridge",
        through_dp.lost(),
        bridged.lost()
    );
    // The backup is the group's active member now.
    let m2 = lab.vm("m2");
    let vip = if vmac { VRRP_MAC } else { VIP };
    assert_eq!(
        lab.active_member(vip).as_deref(),
        Some(m2.port_id.as_str()),
        "m2 is not the active member: {}",
        lab.show("groups").unwrap()
    );
    for (how, o) in [("datapath", &through_dp), ("bridge", &bridged)] {
        assert!(
            o.received > 0 && o.last_reply + 10 >= o.sent,
            "{how}: service did not resume after failover ({} of {} answered, last seq {})",
            o.received,
            o.sent,
            o.last_reply
        );
    }
    // Replies came from the new master after the failure: far more than the
    // 3 s before it.
    assert!(
        through_dp.received > 40,
        "{} replies through the datapath",
        through_dp.received
    );
}

#[test]
fn keepalived_failover_without_vmac() {
    require_root!();
    failover(false);
}

#[test]
fn keepalived_failover_with_vmac() {
    require_root!();
    failover(true);
}
