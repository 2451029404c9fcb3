//! The agent's control socket (`/run/dataplane/<instance>.sock`), which
//! only the holder of the instance's lock creates and removes (see
//! `lock`). Each connection sends one request line and gets one reply:
//!
//! - `apply PATH`: apply the configuration file PATH and watch it from
//!   then on (a bare absolute path, what older clients send, means the
//!   same); the reply is `ok <generation>`, `invalid <errors>` (the
//!   configuration was refused: it does not validate or does not fit) or
//!   `error <message>`;
//! - `stop`: detach and remove the datapath, then exit; the reply,
//!   `ok stopped` or `error <message>`, comes once everything is removed.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::{mpsc, oneshot},
};

use crate::lock::RUN_DIR;

/// What a client asks the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Apply(PathBuf),
    Stop,
}

impl Request {
    /// The request's line on the wire.
    pub fn encode(&self) -> String {
        match self {
            Request::Apply(path) => format!("apply {}", path.display()),
            Request::Stop => "stop".into(),
        }
    }

    pub fn parse(line: &str) -> Result<Request> {
        let line = line.trim();
        let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
        match (verb, arg.trim()) {
            ("apply", path) if !path.is_empty() => Ok(Request::Apply(PathBuf::from(path))),
            ("stop", "") => Ok(Request::Stop),
            // Before verbs, a request was the path alone.
            _ if line.starts_with('/') => Ok(Request::Apply(PathBuf::from(line))),
            _ => bail!("unknown request {line:?} (expected `apply PATH` or `stop`)"),
        }
    }
}

/// A request with the way back to its client.
pub struct Pending {
    pub request: Request,
    reply: oneshot::Sender<(String, oneshot::Sender<()>)>,
}

impl Pending {
    /// Answers; returns once the answer was written to the client (or the
    /// client went away, or 2 s passed): an agent about to exit uses this
    /// so that its last answer is not lost with it.
    pub async fn answer(self, text: String) {
        let (written_tx, written) = oneshot::channel();
        if self.reply.send((text, written_tx)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), written).await;
        }
    }
}

/// The control socket of an instance's agent.
pub fn socket_path(instance: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{instance}.sock"))
}

/// Listens on the control socket (the caller holds the instance's lock,
/// so a socket file already there is a dead agent's); requests arrive on
/// the returned channel.
pub fn listen(instance: &str) -> Result<mpsc::Receiver<Pending>> {
    let path = socket_path(instance);
    std::fs::create_dir_all(RUN_DIR)?;
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)
        .with_context(|| format!("control socket {}", path.display()))?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut line = String::new();
                if conn.read_to_string(&mut line).await.is_err() {
                    return;
                }
                let request = match Request::parse(&line) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = conn.write_all(format!("error {e}").as_bytes()).await;
                        return;
                    }
                };
                let (reply_tx, reply_rx) = oneshot::channel();
                let pending = Pending {
                    request,
                    reply: reply_tx,
                };
                if tx.send(pending).await.is_err() {
                    return;
                }
                if let Ok((reply, written)) = reply_rx.await {
                    let _ = conn.write_all(reply.as_bytes()).await;
                    let _ = conn.shutdown().await;
                    let _ = written.send(());
                }
            });
        }
    });
    Ok(rx)
}

/// Removes the control socket (its owner, the lock holder, is exiting).
pub fn remove_socket(instance: &str) {
    let _ = std::fs::remove_file(socket_path(instance));
}

/// Why a request could not be delivered.
#[derive(Debug, thiserror::Error)]
#[error("no running agent for instance {instance} ({} does not answer: {source})", .socket.display())]
pub struct NoAgent {
    pub instance: String,
    pub socket: PathBuf,
    pub source: std::io::Error,
}

/// Sends `request` to the running agent and returns its reply (waiting
/// up to `timeout` for it).
pub fn request(instance: &str, request: &Request, timeout: Duration) -> Result<String> {
    use std::io::{Read, Write};
    let socket = socket_path(instance);
    let mut conn = std::os::unix::net::UnixStream::connect(&socket).map_err(|source| NoAgent {
        instance: instance.to_string(),
        socket: socket.clone(),
        source,
    })?;
    conn.set_read_timeout(Some(timeout))?;
    conn.write_all(request.encode().as_bytes())?;
    conn.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply)
        .with_context(|| format!("waiting for the agent's answer on {}", socket.display()))?;
    if reply.is_empty() {
        bail!(
            "the agent closed {} without answering (did it exit?)",
            socket.display()
        );
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_a_bare_path_is_an_apply() {
        for r in [Request::Apply("/etc/dp/a b.toml".into()), Request::Stop] {
            assert_eq!(Request::parse(&r.encode()).unwrap(), r);
        }
        assert_eq!(
            Request::parse("/etc/dp/c.json\n").unwrap(),
            Request::Apply("/etc/dp/c.json".into())
        );
        assert!(Request::parse("stop now").is_err());
        assert!(Request::parse("apply").is_err());
        assert!(Request::parse("status").is_err());
    }
}
