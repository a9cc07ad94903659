//! Databases' public ports: for an administrator's tools (psql, DBeaver, a backup agent), a
//! database can be given a TCP port on `[databases] public_address`. Rivetr listens there
//! itself and forwards each connection to the database's address on a network of its own
//! that the host reaches (see [`super::lifecycle::public_network`]).
//!
//! Why Rivetr forwards rather than the engine publishing the port: a database sits on
//! several networks (its internal one, each linked app's), and rootful Podman 4.3 with CNI
//! sets up a published port on every network of a container in no fixed order, so the port
//! leads nowhere in about one start in ten (see `runtime/networks.rs`). A forwarder in
//! Rivetr also opens and closes the port without restarting the database, and logs who
//! connected.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How long a connection to the database may take to be accepted.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The open public ports, by database name.
#[derive(Clone, Default)]
pub struct PublicPorts {
    open: Arc<Mutex<HashMap<String, Forwarder>>>,
}

struct Forwarder {
    listen: SocketAddr,
    stop: CancellationToken,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl PublicPorts {
    /// Listens on `listen` and forwards each connection to `target`, replacing what
    /// `database` had open. A port already taken is an error (`AddrInUse`), and the
    /// previous forwarder is kept then.
    pub async fn open(
        &self,
        database: &str,
        listen: SocketAddr,
        target: SocketAddr,
    ) -> std::io::Result<()> {
        let current = self.lock().get(database).map(|f| f.listen);
        if current == Some(listen) {
            // Same port, maybe a new target (the database's address after a recreate).
            self.close(database);
        }
        let listener = TcpListener::bind(listen).await?;
        let stop = CancellationToken::new();
        tokio::spawn(accept(
            listener,
            target,
            database.to_owned(),
            stop.child_token(),
        ));
        tracing::info!(database, %listen, %target, "database public port open");
        self.lock()
            .insert(database.to_owned(), Forwarder { listen, stop });
        Ok(())
    }

    /// Stops listening for `database`; connections already made are closed too.
    pub fn close(&self, database: &str) {
        if let Some(f) = self.lock().remove(database) {
            tracing::info!(database, listen = %f.listen, "database public port closed");
        }
    }

    /// Where `database` listens, if it does.
    pub fn address(&self, database: &str) -> Option<SocketAddr> {
        self.lock().get(database).map(|f| f.listen)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Forwarder>> {
        // Held for a map operation only, never across an await.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn accept(
    listener: TcpListener,
    target: SocketAddr,
    database: String,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((client, peer)) => {
                tracing::info!(database = %database, %peer, "connection to the database's public port");
                tokio::spawn(forward(client, target, database.clone(), stop.clone()));
            }
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(database = %database, error = %e, "cannot accept on the database's public port");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn forward(
    mut client: TcpStream,
    target: SocketAddr,
    database: String,
    stop: CancellationToken,
) {
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await;
    let mut server = match connected {
        Ok(Ok(server)) => server,
        Ok(Err(e)) => {
            tracing::warn!(database = %database, %target, error = %e, "the database refused a public connection (is it running?)");
            return;
        }
        Err(_) => {
            tracing::warn!(database = %database, %target, "the database did not accept a public connection in time");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
    }
}
