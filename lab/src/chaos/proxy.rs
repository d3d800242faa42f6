//! A loopback TCP proxy the chaos run controls: the network between one
//! process and a service. [`Proxy::cut`] drops every open connection and
//! refuses new ones (accepted, then closed at once), which is what a client
//! sees of a network partition or a server restart; [`Proxy::restore`]
//! lets traffic through again. [`Proxy::swallow`] forwards requests but
//! drops every response: followed by `cut` a few seconds later, it makes
//! the client's writes *ambiguous* — applied by the server, answered by an
//! error (issue 13: a commit whose response is lost).
//!
//! Only loopback: the proxy listens on 127.0.0.1 and is meant for one
//! machine's test bed, never for production traffic.

use anyhow::Context as _;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Forwards both ways.
    Open,
    /// Forwards requests, drops responses.
    Swallow,
    /// Drops every connection, refuses new ones.
    Cut,
}

/// A running proxy; dropping it stops it and closes its connections.
pub struct Proxy {
    addr: SocketAddr,
    cut: watch::Sender<Mode>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the proxy port")?;
        let addr = listener.local_addr().context("reading the proxy address")?;
        let (cut, cut_rx) = watch::channel(Mode::Open);
        let task = tokio::spawn(accept_loop(listener, upstream, cut_rx));
        Ok(Proxy { addr, cut, task })
    }

    /// `127.0.0.1:PORT` clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.cut.send_replace(Mode::Cut);
    }

    /// Keeps forwarding what clients send but drops everything the
    /// upstream answers, on open and new connections, until
    /// [`Proxy::cut`] or [`Proxy::restore`].
    pub fn swallow(&self) {
        self.cut.send_replace(Mode::Swallow);
    }

    /// Lets traffic through again.
    pub fn restore(&self) {
        self.cut.send_replace(Mode::Open);
    }

    /// Whether the proxy is cut.
    #[cfg(test)]
    pub fn is_cut(&self) -> bool {
        *self.cut.borrow() == Mode::Cut
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Connection tasks watch `cut`; closing the channel ends them too.
        self.cut.send_replace(Mode::Cut);
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, cut: watch::Receiver<Mode>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if *cut.borrow() == Mode::Cut {
            drop(client);
            continue;
        }
        tokio::spawn(forward(client, upstream, cut.clone()));
    }
}

/// Copies both ways (responses only while not swallowing) until either
/// side closes or the proxy is cut.
async fn forward(client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = tokio::io::copy(&mut client_read, &mut server_write);
    let swallowing = mode.clone();
    let responses = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if *swallowing.borrow() != Mode::Open {
                continue;
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = requests => {}
        _ = responses => {}
        _ = mode.wait_for(|m| *m == Mode::Cut) => {}
    }
    // Dropping both streams closes them: the client sees a reset
    // connection, like a peer that went away.
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server, to proxy to.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn roundtrip(addr: SocketAddr) -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await?;
        Ok(buf.to_vec())
    }

    #[tokio::test]
    async fn forwards_then_cuts_open_connections_and_refuses_new_ones_until_restored() {
        let proxy = Proxy::start(echo().await).await.unwrap();
        assert_eq!(roundtrip(proxy.addr()).await.unwrap(), b"ping");

        let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
        open.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        open.read_exact(&mut one).await.unwrap();
        proxy.cut();
        assert!(proxy.is_cut());
        // The open connection is closed by the proxy: EOF or a reset.
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), open.read(&mut buf))
            .await
            .unwrap();
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "open connection still alive: {read:?}"
        );
        assert!(
            roundtrip(proxy.addr()).await.is_err(),
            "a new connection got through a cut proxy"
        );

        proxy.restore();
        assert_eq!(roundtrip(proxy.addr()).await.unwrap(), b"ping");
    }

    #[tokio::test]
    async fn swallowing_forwards_requests_drops_responses_then_a_cut_resets() {
        // An upstream that reports what it received, then echoes it.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = listener.local_addr().unwrap();
        let (got_tx, mut got) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 4];
            if s.read_exact(&mut buf).await.is_ok() && s.write_all(&buf).await.is_ok() {
                let _ = got_tx.send(buf.to_vec());
            }
            // Keep the connection open: only the proxy's cut ends it.
            let _ = s.read(&mut buf).await;
        });
        let proxy = Proxy::start(upstream).await.unwrap();
        proxy.swallow();
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        client.write_all(b"ping").await.unwrap();
        // The request reached the upstream, which answered it.
        assert_eq!(got.recv().await.unwrap(), b"ping");
        proxy.cut();
        // The answer never reached the client: it sees the connection end.
        let mut buf = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            client.read_to_end(&mut buf),
        )
        .await
        .unwrap();
        assert!(
            buf.is_empty(),
            "a swallowed response got through: {buf:?} ({read:?})"
        );
    }
}
