//! `dataplane publish FILE --etcd URL`: writes a configuration into etcd in
//! the layout the agents watch (`neutron/<collection>/<id>`), as a
//! difference: objects new or written differently are put, objects the
//! file no longer holds are deleted. Writes go in transactions that check
//! each key's revision, so that a concurrent writer is not overwritten
//! unseen (the batch is read again and retried), in dependency order
//! (networks before their subnets and ports; deletions the other way), so
//! that agents watching see references before what refers to them.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use dataplane_config::{Document, Kind};
use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};

/// Operations per transaction (etcd's default limit is 128).
const BATCH: usize = 64;
/// Rounds of reading and writing before giving up on concurrent writers.
const ROUNDS: usize = 5;

/// The key of an object of the layout.
pub fn key(prefix: &str, kind: Kind, id: &str) -> String {
    format!("{prefix}/neutron/{}/{id}", kind.section())
}

/// Publishes `path`; returns (objects written, objects deleted).
pub async fn file(
    path: &std::path::Path,
    endpoints: &[String],
    prefix: &str,
) -> Result<(usize, usize)> {
    let document = Document::read(path)?;
    // A configuration the agents would refuse is refused here, whole.
    dataplane_config::validate(&document)?;
    let prefix = prefix.trim_end_matches('/');
    let mut client = Client::connect(endpoints, None)
        .await
        .context("connecting to etcd")?;
    let mut want: Vec<(Kind, String, String)> = document
        .objects
        .iter()
        .filter(|o| !matches!(o.kind, Kind::Chassis | Kind::Active))
        .map(|o| (o.kind, key(prefix, o.kind, &o.id), o.value.to_string()))
        .collect();
    want.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    for _ in 0..ROUNDS {
        let have = read(&mut client, prefix).await?;
        match write(&mut client, &want, &have).await? {
            Some(counts) => return Ok(counts),
            None => continue,
        }
    }
    bail!("etcd kept changing under {prefix}/neutron/ while publishing; try again")
}

/// The kind of a key under `<prefix>/neutron/<collection>/`.
fn kind_of(key: &str) -> Option<Kind> {
    let rest = &key[key.find("/neutron/")? + "/neutron/".len()..];
    Kind::from_section(rest.split('/').next()?)
}

/// What etcd holds under the layout: key -> (value, mod revision).
async fn read(client: &mut Client, prefix: &str) -> Result<BTreeMap<String, (Vec<u8>, i64)>> {
    let resp = client
        .get(
            format!("{prefix}/neutron/"),
            Some(GetOptions::new().with_prefix()),
        )
        .await?;
    Ok(resp
        .kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                (kv.value().to_vec(), kv.mod_revision()),
            )
        })
        .collect())
}

/// Writes the difference; None if a concurrent writer changed a key first.
async fn write(
    client: &mut Client,
    want: &[(Kind, String, String)],
    have: &BTreeMap<String, (Vec<u8>, i64)>,
) -> Result<Option<(usize, usize)>> {
    let same = |k: &str, v: &str| {
        have.get(k).is_some_and(|(old, _)| {
            serde_json::from_slice::<serde_json::Value>(old).ok()
                == serde_json::from_str::<serde_json::Value>(v).ok()
        })
    };
    let revision = |k: &str| have.get(k).map(|(_, r)| *r).unwrap_or(0);
    let puts: Vec<(Compare, TxnOp)> = want
        .iter()
        .filter(|(_, k, v)| !same(k, v))
        .map(|(_, k, v)| {
            (
                Compare::mod_revision(k.clone(), CompareOp::Equal, revision(k)),
                TxnOp::put(k.clone(), v.clone(), None),
            )
        })
        .collect();
    let kept: std::collections::BTreeSet<&str> = want.iter().map(|(_, k, _)| k.as_str()).collect();
    // Deletions in reverse dependency order: ports before their networks.
    let mut gone: Vec<(Option<Kind>, &String, i64)> = have
        .iter()
        .filter(|(k, _)| !kept.contains(k.as_str()))
        .map(|(k, (_, r))| (kind_of(k), k, *r))
        .collect();
    gone.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let deletes: Vec<(Compare, TxnOp)> = gone
        .into_iter()
        .map(|(_, k, r)| {
            (
                Compare::mod_revision(k.clone(), CompareOp::Equal, r),
                TxnOp::delete(k.clone(), None),
            )
        })
        .collect();
    let counts = (puts.len(), deletes.len());
    for batch in puts.chunks(BATCH).chain(deletes.chunks(BATCH)) {
        let (compares, ops): (Vec<Compare>, Vec<TxnOp>) = batch.iter().cloned().unzip();
        let resp = client.txn(Txn::new().when(compares).and_then(ops)).await?;
        if !resp.succeeded() {
            return Ok(None);
        }
    }
    Ok(Some(counts))
}
