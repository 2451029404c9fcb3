//! The agent's lease, kept alive on a task of its own. The agent applies a
//! configuration synchronously, and a full read of a large cloud takes
//! longer than the lease's TTL (a minute at 100,000 ports): kept alive
//! from the agent's loop, the lease expired during every full read, the
//! agent's records went with it, and the agent connected and read
//! everything again, for ever.

use std::time::Duration;

use etcd_client::{LeaseKeepAliveStream, LeaseKeeper};
use tokio::{sync::watch, task::JoinHandle};

/// A lease kept alive until this is dropped, or until it is lost.
pub struct Lease {
    pub id: i64,
    lost: watch::Receiver<Option<String>>,
    task: JoinHandle<()>,
}

impl Lease {
    /// Keeps lease `id` alive, renewing it three times per `ttl` seconds.
    pub fn keep(id: i64, keeper: LeaseKeeper, stream: LeaseKeepAliveStream, ttl: i64) -> Lease {
        let (tx, lost) = watch::channel(None);
        let period = Duration::from_millis(ttl.max(1) as u64 * 1000 / 3);
        let task = tokio::spawn(async move {
            let why = renew(keeper, stream, period).await;
            let _ = tx.send(Some(why));
        });
        Lease { id, lost, task }
    }

    /// Waits until the lease is lost; why. Cancel-safe.
    pub async fn lost(&mut self) -> String {
        loop {
            if let Some(why) = self.lost.borrow_and_update().clone() {
                return why;
            }
            if self.lost.changed().await.is_err() {
                return "the lease's keeper ended".into();
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Renews the lease every `period` until etcd refuses or leaves a renewal
/// unanswered for two periods (the lease lasts three); why it stopped.
async fn renew(
    mut keeper: LeaseKeeper,
    mut stream: LeaseKeepAliveStream,
    period: Duration,
) -> String {
    loop {
        let next = tokio::time::Instant::now() + period;
        if let Err(e) = keeper.keep_alive().await {
            return format!("lease keep-alive: {e}");
        }
        match tokio::time::timeout(2 * period, stream.message()).await {
            Ok(Ok(Some(r))) if r.ttl() > 0 => {}
            Ok(Ok(_)) => return "the lease expired".into(),
            Ok(Err(e)) => return format!("lease: {e}"),
            Err(_) => return "lease: no answer to a keep-alive".into(),
        }
        tokio::time::sleep_until(next).await;
    }
}
