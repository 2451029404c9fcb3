//! The benchmark's side of etcd: the synthetic cloud written in bulk
//! (transactions of many puts, several in flight, as a driver's resync
//! would), chassis records under a lease kept alive, single changes.
//! Its runtime is built on the calling thread, so that its connections
//! start in that thread's network namespace (etcd's).

use anyhow::{Context, Result};
use etcd_client::{Client, PutOptions, Txn, TxnOp};
use serde_json::Value;
use tokio::task::JoinSet;

/// Puts per transaction (etcd's limit is 128 operations).
const PUTS_PER_TXN: usize = 64;
/// Transactions in flight while loading.
const IN_FLIGHT: usize = 8;
/// Seconds the synthetic chassis records outlive the benchmark.
const LEASE_TTL: i64 = 10;

pub struct Db {
    rt: tokio::runtime::Runtime,
    client: Client,
    lease: Option<i64>,
}

impl Db {
    /// Connects from the calling thread's network namespace (the runtime's
    /// workers are its children and share it).
    pub fn connect(url: &str) -> Result<Db> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let client = rt
            .block_on(Client::connect([url], None))
            .context("connecting to etcd")?;
        Ok(Db {
            rt,
            client,
            lease: None,
        })
    }

    /// A lease for the chassis records, kept alive while this lives.
    pub fn lease(&mut self) -> Result<i64> {
        if let Some(id) = self.lease {
            return Ok(id);
        }
        let mut client = self.client.clone();
        let id = self.rt.block_on(async move {
            let id = client.lease_grant(LEASE_TTL, None).await?.id();
            let (mut keeper, mut stream) = client.lease_keep_alive(id).await?;
            tokio::spawn(async move {
                loop {
                    if keeper.keep_alive().await.is_err() || stream.message().await.is_err() {
                        // etcd restarting: try again shortly.
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        continue;
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                }
            });
            anyhow::Ok(id)
        })?;
        self.lease = Some(id);
        Ok(id)
    }

    /// Writes every (key, value) under `prefix` in transactions; returns
    /// the bytes written.
    pub fn put_all(
        &self,
        prefix: &str,
        items: impl Iterator<Item = (String, Value)>,
        lease: Option<i64>,
    ) -> Result<usize> {
        let options = lease.map(|l| PutOptions::new().with_lease(l));
        let mut bytes = 0;
        let mut batch = Vec::with_capacity(PUTS_PER_TXN);
        let mut tasks = JoinSet::new();
        let _guard = self.rt.enter();
        for (key, value) in items {
            let text = value.to_string();
            bytes += key.len() + text.len();
            batch.push(TxnOp::put(format!("{prefix}/{key}"), text, options.clone()));
            if batch.len() == PUTS_PER_TXN {
                self.submit(&mut tasks, std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            self.submit(&mut tasks, batch)?;
        }
        while let Some(done) = self.rt.block_on(tasks.join_next()) {
            done??;
        }
        Ok(bytes)
    }

    /// Starts one transaction, first waiting for a slot.
    fn submit(&self, tasks: &mut JoinSet<Result<()>>, ops: Vec<TxnOp>) -> Result<()> {
        while tasks.len() >= IN_FLIGHT {
            if let Some(done) = self.rt.block_on(tasks.join_next()) {
                done??;
            }
        }
        let mut client = self.client.clone();
        tasks.spawn(async move {
            client.txn(Txn::new().and_then(ops)).await?;
            Ok(())
        });
        Ok(())
    }

    /// One put; returns the revision it made.
    pub fn put(&self, key: &str, value: &Value) -> Result<i64> {
        let mut client = self.client.clone();
        let (key, value) = (key.to_string(), value.to_string());
        self.rt.block_on(async move {
            let resp = client.put(key, value, None).await?;
            Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
        })
    }
}
