//! Writing one checked change into the store, noting what it touches:
//! objects that depend on it are resolved again (ports are resolved after
//! every change of a batch is staged, so a batch may hold a network and its
//! ports in any order).

use std::collections::BTreeMap;

use super::{Change, Store, Touched, Written, digest};
use crate::{
    check::Checked,
    neutron::Kind,
    objects::{PortSpec, Settings},
};

/// Ports written by a batch, by id, until they are resolved together.
pub type WrittenPorts = BTreeMap<String, PortSpec>;

pub fn one(
    store: &mut Store,
    change: &Change,
    checked: Option<Checked>,
    touched: &mut Touched,
    written_ports: &mut WrittenPorts,
) {
    record(store, change);
    let id = change.id.clone();
    match (change.kind, checked) {
        (Kind::Settings, c) => settings(store, c, touched),
        (Kind::Network, c) => network(store, id, c, touched),
        (Kind::Subnet, c) => subnet(store, id, c, touched),
        (Kind::SecurityGroup, c) => security_group(store, id, c, touched),
        (Kind::Router, c) => router(store, id, c, touched),
        (Kind::Port, c) => port(store, id, c, touched, written_ports),
        (Kind::FloatingIp, c) => floating_ip(store, id, c, touched),
        (Kind::Chassis, c) => chassis(store, id, c, touched),
        (Kind::Active, c) => {
            store.actives.remove(&id);
            if let Some(Checked::Active(a)) = c {
                store.actives.insert(id.clone(), a);
            }
            touched.actives.insert(id);
        }
    }
}

/// A chassis came, went or moved: the ports bound to it are compiled
/// again (they become reachable, or not).
fn chassis(store: &mut Store, id: String, c: Option<Checked>, touched: &mut Touched) {
    store.chassis.remove(&id);
    if let Some(Checked::Chassis(ch)) = c {
        store.chassis.insert(id.clone(), ch);
    }
    touched.placed.extend(store.ports_of_host(&id).cloned());
    touched.chassis.insert(id);
}

/// Remembers how the object was written (and when it first came).
fn record(store: &mut Store, change: &Change) {
    let key = (change.kind, change.id.clone());
    let Some(v) = &change.value else {
        store.written.remove(&key);
        return;
    };
    let seq = match store.written.get(&key) {
        Some(w) => w.seq,
        None => {
            let s = *store.next_seq.get();
            store.next_seq.set(s + 1);
            s
        }
    };
    store.written.insert(
        key,
        Written {
            digest: digest(v),
            seq,
        },
    );
}

fn settings(store: &mut Store, c: Option<Checked>, touched: &mut Touched) {
    let settings = match c {
        Some(Checked::Settings(s)) => s,
        _ => Settings::default(),
    };
    if settings != *store.settings.get() {
        store.settings.set(settings);
        touched.settings = true;
        // The maximum number of pairs applies to every port.
        touched.ports.extend(store.ports.keys().cloned());
    }
}

fn network(store: &mut Store, id: String, c: Option<Checked>, touched: &mut Touched) {
    if let Some(old) = store.networks.remove(&id) {
        store.ix.visit_network(&old, false);
    }
    if let Some(Checked::Network(n)) = c {
        store.ix.visit_network(&n, true);
        store.networks.insert(id.clone(), n);
    }
    // Their default port security may have changed.
    touched.ports.extend(store.ports_of_network(&id).cloned());
    touched.networks.insert(id);
}

fn subnet(store: &mut Store, id: String, c: Option<Checked>, touched: &mut Touched) {
    // The ports of its network may have fixed IPs on it, or pick it.
    if let Some(old) = store.subnets.remove(&id) {
        store.ix.unindex_subnet(&old);
        touched
            .ports
            .extend(store.ports_of_network(&old.network_id).cloned());
    }
    if let Some(Checked::Subnet(s)) = c {
        store.ix.index_subnet(&s);
        touched
            .ports
            .extend(store.ports_of_network(&s.network_id).cloned());
        store.subnets.insert(id.clone(), s);
    }
    touched.subnets.insert(id);
}

fn security_group(store: &mut Store, id: String, c: Option<Checked>, touched: &mut Touched) {
    if let Some(old) = store.security_groups.remove(&id) {
        store.ix.unindex_group(&old);
    }
    if let Some(Checked::SecurityGroup(g)) = c {
        store.ix.index_group(&g);
        store.security_groups.insert(id.clone(), g);
    }
    touched.security_groups.insert(id);
}

fn router(store: &mut Store, id: String, c: Option<Checked>, touched: &mut Touched) {
    if let Some(old) = store.routers.remove(&id) {
        store.ix.visit_router(&old, false);
    }
    if let Some(Checked::Router(r)) = c {
        store.ix.visit_router(&r, true);
        store.routers.insert(id.clone(), r);
    }
    touched
        .ports
        .extend(store.interfaces_of_router(&id).cloned());
    touched.routers.insert(id);
}

/// A port leaves the store until it is resolved again with the others.
fn port(
    store: &mut Store,
    id: String,
    c: Option<Checked>,
    touched: &mut Touched,
    written_ports: &mut WrittenPorts,
) {
    if let Some(old) = store.ports.remove(&id) {
        store.ix.unindex_port(&old);
        if let Some(r) = &old.spec.router {
            touched.routers.insert(r.clone());
        }
    }
    // A later write of the port in the same batch replaces an earlier one.
    match c {
        Some(Checked::Port(spec)) => {
            written_ports.insert(id.clone(), spec);
        }
        _ => {
            written_ports.remove(&id);
        }
    }
    touched.ports.insert(id);
}

/// A floating IP is resolved (its port, fixed IP and router) with the
/// others once the batch is staged (`store::floating`).
fn floating_ip(store: &mut Store, id: String, c: Option<Checked>, touched: &mut Touched) {
    if let Some(old) = store.floating_ips.remove(&id) {
        store.ix.visit_floating_ip(&old, false);
    }
    if let Some(Checked::FloatingIp(f)) = c {
        store.ix.visit_floating_ip(&f, true);
        store.floating_ips.insert(id.clone(), f);
    }
    touched.floating_ips.insert(id);
}
