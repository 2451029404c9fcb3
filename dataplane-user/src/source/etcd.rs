//! etcd as the north-bound database of many hosts (as Dragonflow had it).
//!
//! Layout under the prefix (default `/aap`):
//!
//! | key | value | written by |
//! |---|---|---|
//! | `neutron/<collection>/<id>` | the Neutron resource as the API returns it (networks, subnets, ports, security_groups with their rules, routers) | the ML2 driver or `dataplane publish` |
//! | `chassis/<name>` | `{"name", "underlay_ip", "tunnel_type"}` | each host's agent, under its lease |
//! | `bindings/<port id>` | `{"chassis", "tap"}`: the port's tap is attached there | the agent of the port's host, under its lease |
//! | `active/<network id>/<address>/<prefix>` or `active/<network id>/<MAC>` | `{"port", "chassis"}`: the member that last claimed the shared address | the agent that saw the claim, under its lease, in a transaction |
//!
//! The source reads everything at revision R (a snapshot), then watches from
//! R+1 and delivers each watch response's events as one change. A watch
//! that fails (etcd gone, the connection lost, the revision compacted) is
//! followed by a new full read once etcd answers again, with back-off; the
//! agent meanwhile keeps the datapath as it is. A lease (TTL ≤ 10 s) holds
//! the chassis record and everything the agent publishes, so that a host
//! that dies disappears from the others' view within the TTL.

use std::{collections::BTreeMap, net::Ipv4Addr, time::Duration};

use anyhow::{Context, Result};
use dataplane_config::{Change, Document, Kind, Update, neutron::Object};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, KeyValue, PutOptions, Txn, TxnOp,
    WatchOptions, WatchStream,
};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::{HostReport, Source, SourceStatus, etcd_lease::Lease, etcd_read::read_all};

/// What the agent needs to join the database.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    pub endpoints: Vec<String>,
    /// The layout's prefix, without a trailing slash.
    pub prefix: String,
    /// This host's chassis name (ports bound here have it as their
    /// `binding:host_id`).
    pub chassis: String,
    pub underlay_ip: Ipv4Addr,
    /// Seconds the chassis record outlives its agent.
    pub lease_ttl: i64,
}

/// The longest wait between two attempts to reach etcd.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A live connection: a client, the watch, the lease and its keeper.
struct Conn {
    client: Client,
    watch: WatchStream,
    lease: Lease,
}

pub struct EtcdSource {
    opts: EtcdOptions,
    conn: Option<Conn>,
    backoff: Duration,
    status: SourceStatus,
    /// Bindings this agent wrote under its current lease: port -> tap.
    bindings: BTreeMap<String, String>,
    /// Claims told: key -> the group's change count when told.
    told: BTreeMap<String, u64>,
    /// The active-member records as etcd holds them: key -> (mod
    /// revision, port).
    actives: BTreeMap<String, (i64, String)>,
}

/// Where an etcd key sits in the layout.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Object(Kind, String),
    Binding,
    Other,
}

impl EtcdSource {
    pub fn new(opts: EtcdOptions) -> EtcdSource {
        EtcdSource {
            opts,
            conn: None,
            backoff: Duration::from_millis(200),
            status: SourceStatus {
                connected: Some(false),
                ..SourceStatus::default()
            },
            bindings: BTreeMap::new(),
            told: BTreeMap::new(),
            actives: BTreeMap::new(),
        }
    }

    fn key(&self, rest: &str) -> String {
        format!("{}/{rest}", self.opts.prefix)
    }

    /// The layout's meaning of `key`.
    fn entry(&self, key: &str) -> Entry {
        let Some(rest) = key
            .strip_prefix(&self.opts.prefix)
            .and_then(|r| r.strip_prefix('/'))
        else {
            return Entry::Other;
        };
        if let Some(rest) = rest.strip_prefix("neutron/") {
            if let Some((section, id)) = rest.split_once('/') {
                if let Some(kind) = Kind::from_section(section) {
                    if !id.is_empty() && !matches!(kind, Kind::Chassis | Kind::Active) {
                        return Entry::Object(kind, id.to_string());
                    }
                }
            }
            return Entry::Other;
        }
        if let Some(name) = rest.strip_prefix("chassis/") {
            return Entry::Object(Kind::Chassis, name.to_string());
        }
        if let Some(id) = rest.strip_prefix("active/") {
            return Entry::Object(Kind::Active, id.to_string());
        }
        if rest.starts_with("bindings/") {
            return Entry::Binding;
        }
        Entry::Other
    }

    /// Connects, registers the chassis under a new lease, reads everything
    /// at one revision and starts watching from the next.
    async fn connect(&mut self) -> Result<Update> {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        let mut client = Client::connect(&self.opts.endpoints, Some(options))
            .await
            .context("connecting to etcd")?;
        let lease = client.lease_grant(self.opts.lease_ttl, None).await?.id();
        let (keeper, keep_stream) = client.lease_keep_alive(lease).await?;
        // Renewed from now on, while everything is read and applied.
        let lease = Lease::keep(lease, keeper, keep_stream, self.opts.lease_ttl);
        let record = json!({
            "name": self.opts.chassis,
            "underlay_ip": self.opts.underlay_ip.to_string(),
            "tunnel_type": "vxlan",
        });
        let key = self.key(&format!("chassis/{}", self.opts.chassis));
        client
            .put(
                key,
                record.to_string(),
                Some(PutOptions::new().with_lease(lease.id)),
            )
            .await?;
        let prefix = self.key("");
        self.actives.clear();
        let mut objects = Vec::new();
        let revision = read_all(&client, &prefix, |page| {
            self.collect(&page, &mut objects);
        })
        .await?;
        let document = snapshot(objects);
        let watch = client
            .watch(
                prefix,
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1),
                ),
            )
            .await?;
        // Everything published under an earlier lease is gone with it.
        self.bindings.clear();
        self.told.clear();
        self.conn = Some(Conn {
            client,
            watch,
            lease,
        });
        self.status.connected = Some(true);
        self.status.revision = Some(revision);
        self.status.resyncs += 1;
        self.backoff = Duration::from_millis(200);
        info!(
            revision,
            objects = document.objects.len(),
            "etcd: read everything; watching for changes"
        );
        Ok(Update::Snapshot(document))
    }

    /// The objects among `kvs` (a page of the full read), into `objects`.
    fn collect(&mut self, kvs: &[KeyValue], objects: &mut Vec<Object>) {
        for kv in kvs {
            let key = String::from_utf8_lossy(kv.key());
            if let Entry::Object(kind, id) = self.entry(&key) {
                self.note_active(kind, &id, kv);
                if let Some(value) = served(kind, &id, value(kv.value())) {
                    objects.push(Object { kind, id, value });
                }
            }
        }
    }

    fn note_active(&mut self, kind: Kind, id: &str, kv: &KeyValue) {
        if kind == Kind::Active {
            let port = serde_json::from_slice::<Value>(kv.value())
                .ok()
                .and_then(|v| v["port"].as_str().map(str::to_string))
                .unwrap_or_default();
            self.actives
                .insert(id.to_string(), (kv.mod_revision(), port));
        }
    }

    fn lost(&mut self, why: impl std::fmt::Display) {
        if self.conn.take().is_some() {
            warn!("etcd: {why}; the datapath keeps its last state until etcd answers again");
        }
        self.status.connected = Some(false);
        self.status.last_error = Some(why.to_string());
    }

    /// One watch response's events as changes (None: nothing to apply).
    fn changes(&mut self, resp: &etcd_client::WatchResponse) -> Vec<Change> {
        let mut changes = Vec::new();
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let Entry::Object(kind, id) = self.entry(&key) else {
                continue;
            };
            let value = match event.event_type() {
                EventType::Put => {
                    self.note_active(kind, &id, kv);
                    // An object left out is as good as deleted.
                    served(kind, &id, value(kv.value()))
                }
                EventType::Delete => {
                    if kind == Kind::Active {
                        self.actives.remove(&id);
                    }
                    None
                }
            };
            // A later event of the same key in one response wins.
            changes.retain(|c: &Change| !(c.kind == kind && c.id == id));
            changes.push(Change { kind, id, value });
        }
        changes
    }
}

/// The objects of a full read as a document: what is referred to before
/// what refers to it (document order).
fn snapshot(mut objects: Vec<Object>) -> Document {
    objects.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
    Document {
        objects,
        skipped: Vec::new(),
    }
}

/// The object as the datapath serves it, or None if it is left out
/// (a port or router administratively down, a floating IP's own port:
/// see `forms::leave_out`); what is left out or ignored is logged.
fn served(kind: Kind, id: &str, mut value: Value) -> Option<Value> {
    let (left_out, notes) = dataplane_config::neutron::forms::leave_out(kind, &mut value);
    for note in notes {
        info!(key = id, "etcd: {note}");
    }
    (!left_out).then_some(value)
}

/// A value as JSON; what is not JSON stays a string, which the checks
/// refuse naming the object.
fn value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into()))
}

impl Source for EtcdSource {
    fn describe(&self) -> String {
        format!(
            "etcd {} (prefix {}, chassis {})",
            self.opts.endpoints.join(","),
            self.opts.prefix,
            self.opts.chassis
        )
    }

    async fn next(&mut self) -> Result<Update> {
        loop {
            if self.conn.is_none() {
                match self.connect().await {
                    Ok(update) => return Ok(update),
                    Err(e) => {
                        let why = format!("{e:#}");
                        // Once per new error: an agent that cannot read
                        // etcd says why, without a line per attempt.
                        if self.status.last_error.as_deref() != Some(why.as_str()) {
                            warn!("etcd: {why}; trying again");
                        }
                        self.lost(why);
                        tokio::time::sleep(self.backoff).await;
                        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
            let conn = self.conn.as_mut().expect("connected");
            tokio::select! {
                msg = conn.watch.message() => match msg {
                    Ok(Some(resp)) => {
                        if resp.canceled() || resp.compact_revision() > 0 {
                            self.lost(format!(
                                "watch ended (compacted at {}: {})",
                                resp.compact_revision(),
                                resp.cancel_reason()
                            ));
                            continue;
                        }
                        if let Some(h) = resp.header() {
                            self.status.revision = Some(h.revision());
                        }
                        let changes = self.changes(&resp);
                        if !changes.is_empty() {
                            return Ok(Update::Changes(changes));
                        }
                    }
                    Ok(None) => self.lost("the watch stream ended"),
                    Err(e) => self.lost(format!("watch: {e}")),
                },
                why = conn.lease.lost() => self.lost(why),
            }
        }
    }

    fn watching(&self) -> String {
        format!(
            "etcd {}: every key under {}/ (watched from revision {}), as chassis {}",
            self.opts.endpoints.join(","),
            self.opts.prefix,
            self.status.revision.map(|r| r + 1).unwrap_or_default(),
            self.opts.chassis
        )
    }

    fn trigger(&self) -> String {
        format!(
            "etcd (revision {})",
            self.status.revision.unwrap_or_default()
        )
    }

    fn partial(&self) -> bool {
        true
    }

    async fn publish(&mut self, report: &HostReport) {
        if self.conn.is_none() {
            return;
        }
        if let Err(e) = self.publish_bindings(report).await {
            self.lost(format!("publishing bindings: {e:#}"));
            return;
        }
        if let Err(e) = self.publish_claims(report).await {
            self.lost(format!("publishing claims: {e:#}"));
        }
    }

    fn status(&self) -> SourceStatus {
        self.status.clone()
    }
}

impl EtcdSource {
    /// Bindings of local ports whose tap is attached: written and removed
    /// as that changes, under the lease.
    async fn publish_bindings(&mut self, report: &HostReport) -> Result<()> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let prefix = format!("{}/bindings", self.opts.prefix);
        for (port, tap) in &report.attached {
            if self.bindings.get(port) == Some(tap) {
                continue;
            }
            let value = json!({ "chassis": self.opts.chassis, "tap": tap });
            conn.client
                .put(
                    format!("{prefix}/{port}"),
                    value.to_string(),
                    Some(PutOptions::new().with_lease(conn.lease.id)),
                )
                .await?;
            self.bindings.insert(port.clone(), tap.clone());
        }
        let gone: Vec<String> = self
            .bindings
            .keys()
            .filter(|p| !report.attached.contains_key(*p))
            .cloned()
            .collect();
        for port in gone {
            conn.client.delete(format!("{prefix}/{port}"), None).await?;
            self.bindings.remove(&port);
        }
        Ok(())
    }

    /// Claims this host's datapath saw: each new one is told, in a
    /// transaction that writes only if the record is still the one this
    /// agent last saw, so that a late writer cannot undo a newer claim
    /// (it sees the newer record by the watch, and its own claim is not
    /// new any more).
    async fn publish_claims(&mut self, report: &HostReport) -> Result<()> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        for (key, (port, changes)) in &report.claims {
            if self.told.get(key) == Some(changes) {
                continue;
            }
            self.told.insert(key.clone(), *changes);
            let (seen, holder) = self.actives.get(key).cloned().unwrap_or((0, String::new()));
            if holder == *port {
                continue;
            }
            let full = format!("{}/active/{key}", self.opts.prefix);
            let value = json!({ "port": port, "chassis": self.opts.chassis }).to_string();
            let txn = Txn::new()
                .when([Compare::mod_revision(full.clone(), CompareOp::Equal, seen)])
                .and_then([TxnOp::put(
                    full.clone(),
                    value,
                    Some(PutOptions::new().with_lease(conn.lease.id)),
                )]);
            let resp = conn.client.txn(txn).await?;
            if resp.succeeded() {
                info!(key, port, "etcd: told the others of a claim");
            } else {
                info!(
                    key,
                    port, "etcd: a newer claim was written first; not overwritten"
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> EtcdSource {
        EtcdSource::new(EtcdOptions {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: "/aap".into(),
            chassis: "h1".into(),
            underlay_ip: Ipv4Addr::new(192, 168, 0, 1),
            lease_ttl: 5,
        })
    }

    #[test]
    fn keys_map_to_objects_of_the_layout() {
        let s = source();
        assert_eq!(
            s.entry("/aap/neutron/ports/p1"),
            Entry::Object(Kind::Port, "p1".into())
        );
        assert_eq!(
            s.entry("/aap/neutron/security_groups/g"),
            Entry::Object(Kind::SecurityGroup, "g".into())
        );
        assert_eq!(
            s.entry("/aap/neutron/floatingips/f1"),
            Entry::Object(Kind::FloatingIp, "f1".into())
        );
        assert_eq!(
            s.entry("/aap/chassis/h2"),
            Entry::Object(Kind::Chassis, "h2".into())
        );
        assert_eq!(
            s.entry("/aap/active/n1/10.0.0.100/32"),
            Entry::Object(Kind::Active, "n1/10.0.0.100/32".into())
        );
        assert_eq!(s.entry("/aap/bindings/p1"), Entry::Binding);
        for other in [
            "/aap/neutron/chassis/h1",
            "/aap/neutron/ports/",
            "/aap/neutron/widgets/x",
            "/aapx/neutron/ports/p1",
            "/other/neutron/ports/p1",
        ] {
            assert_eq!(s.entry(other), Entry::Other, "{other}");
        }
    }

    #[test]
    fn values_that_are_not_json_stay_strings_for_the_checks_to_refuse() {
        assert_eq!(value(br#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(value(b"{not json"), json!("{not json"));
    }
}
