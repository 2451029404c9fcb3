//! The agent's full read of a real etcd (on loopback) holding more than
//! one gRPC message's worth (4 MiB) of Neutron objects: every object comes
//! in one snapshot, at one revision. (Before the read went page by page it
//! failed on every attempt, silently, and the agent never started.)

use std::time::Duration;

use dataplane_agent::source::{EtcdSource, Source, etcd::EtcdOptions};
use dataplane_config::Update;
use etcd_client::{Client, Txn, TxnOp};
use lab::{
    etcd::Etcd,
    require_root,
    synthetic::{self, Shape},
};

const SHAPE: Shape = Shape {
    chassis: 10,
    ports: 4000,
    ports_per_network: 50,
    networks_per_project: 4,
};

/// Writes the synthetic cloud under `/aap`; (objects, bytes) written.
async fn write(url: &str) -> (usize, usize) {
    let mut client = Client::connect([url], None).await.unwrap();
    let (mut n, mut bytes) = (0, 0);
    let objects: Vec<_> = synthetic::neutron_objects(&SHAPE).collect();
    for chunk in objects.chunks(64) {
        let ops: Vec<TxnOp> = chunk
            .iter()
            .map(|(key, value)| {
                let text = value.to_string();
                bytes += text.len();
                TxnOp::put(format!("/aap/{key}"), text, None)
            })
            .collect();
        n += ops.len();
        client.txn(Txn::new().and_then(ops)).await.unwrap();
    }
    (n, bytes)
}

#[test]
fn a_snapshot_larger_than_one_grpc_message_is_read_whole() {
    require_root!();
    let etcd = Etcd::start(None, "127.0.0.1", 0).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (written, bytes) = rt.block_on(write(&etcd.url));
    assert!(
        bytes > 5 << 20,
        "only {bytes} bytes: not past the 4 MiB limit"
    );
    let _runtime = rt.enter();
    let mut source = EtcdSource::new(EtcdOptions {
        endpoints: vec![etcd.url.clone()],
        prefix: "/aap".into(),
        chassis: synthetic::chassis_name(0),
        underlay_ip: "192.168.100.1".parse().unwrap(),
        lease_ttl: 5,
    });
    let update = rt
        .block_on(tokio::time::timeout(Duration::from_secs(60), source.next()))
        .expect("no snapshot within 60 s")
        .expect("the read failed");
    let Update::Snapshot(doc) = update else {
        panic!("the first update is not a snapshot");
    };
    // Every object written, and the agent's own chassis record.
    assert_eq!(doc.objects.len(), written + 1);
    let ports = doc
        .objects
        .iter()
        .filter(|o| o.kind == dataplane_config::Kind::Port)
        .count();
    assert_eq!(ports, SHAPE.ports + SHAPE.networks());
    assert!(source.status().revision.unwrap_or(0) > 0);
}
