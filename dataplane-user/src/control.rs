//! The agent's control socket (`/run/dataplane/<instance>.sock`): each
//! connection sends one request and gets one reply. Today the request is
//! the path of a configuration file (`dataplane apply`); the reply is
//! "ok <generation>" or "error <message>".

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::{mpsc, oneshot},
};

/// A request with the channel its reply goes back on.
pub type Request = (PathBuf, oneshot::Sender<String>);

/// The control socket of an instance's agent.
pub fn socket_path(instance: &str) -> PathBuf {
    PathBuf::from(format!("/run/dataplane/{instance}.sock"))
}

/// Listens on the control socket; requests arrive on the returned channel.
pub fn listen(instance: &str) -> Result<mpsc::Receiver<Request>> {
    let path = socket_path(instance);
    std::fs::create_dir_all(path.parent().expect("/run/dataplane"))?;
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)
        .with_context(|| format!("control socket {}", path.display()))?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut request = String::new();
                if conn.read_to_string(&mut request).await.is_err() {
                    return;
                }
                let (reply_tx, reply_rx) = oneshot::channel::<String>();
                if tx
                    .send((PathBuf::from(request.trim()), reply_tx))
                    .await
                    .is_err()
                {
                    return;
                }
                if let Ok(reply) = reply_rx.await {
                    let _ = conn.write_all(reply.as_bytes()).await;
                }
            });
        }
    });
    Ok(rx)
}

/// Sends `path` to the running agent and returns its reply.
pub fn request(instance: &str, path: &Path) -> Result<String> {
    use std::io::{Read, Write};
    let socket = socket_path(instance);
    let mut conn = std::os::unix::net::UnixStream::connect(&socket).with_context(|| {
        format!(
            "no running agent for instance {instance} ({} missing)",
            socket.display()
        )
    })?;
    conn.write_all(path.to_string_lossy().as_bytes())?;
    conn.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply)?;
    Ok(reply)
}
