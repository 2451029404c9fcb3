//! The agent's etcd source at a cloud's scale, on a real etcd (loopback):
//! a full read of more than one gRPC message's worth (4 MiB) of Neutron
//! objects comes whole, in one snapshot (before the read went page by page
//! it failed on every attempt, silently, and the agent never started); the
//! agent's lease outlives an agent busy for longer than its TTL (applying
//! a large snapshot takes that long; the lease expired, and the agent read
//! everything again, for ever).

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
fn options(lease_ttl: i64, url: &str) -> EtcdOptions {
    EtcdOptions {
        endpoints: vec![url.to_string()],
        prefix: "/aap".into(),
        chassis: synthetic::chassis_name(0),
        underlay_ip: "192.168.100.1".parse().unwrap(),
        lease_ttl,
    }
}

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
    let mut source = EtcdSource::new(options(5, &etcd.url));
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

#[test]
fn the_lease_outlives_an_agent_busy_for_longer_than_its_ttl() {
    require_root!();
    let etcd = Etcd::start(None, "127.0.0.1", 0).unwrap();
    // As the agent's: two workers, the agent's loop on the caller.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _runtime = rt.enter();
    let mut source = EtcdSource::new(options(2, &etcd.url));
    let first = rt.block_on(tokio::time::timeout(Duration::from_secs(20), source.next()));
    assert!(matches!(first, Ok(Ok(Update::Snapshot(_)))));
    let record = format!("/aap/chassis/{}", synthetic::chassis_name(0));
    assert!(etcd.get(&record).unwrap().is_some());
    // The agent applying the snapshot, synchronously, for more than twice
    // the lease's TTL: nothing polls the source meanwhile. (Not a wait for
    // a condition: the time is what is tested.)
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        etcd.get(&record).unwrap().is_some(),
        "the chassis record went with an expired lease"
    );
    assert_eq!(source.status().resyncs, 1);
}
