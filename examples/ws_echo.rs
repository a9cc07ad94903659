//! A WebSocket echo server for `bench/proxy.sh`: the app behind both proxies when the bench
//! holds thousands of idle WebSockets open through them. nginx cannot answer a WebSocket by
//! itself, so both proxies forward the upgrades here.
//!
//! `ws_echo 127.0.0.1:PORT` accepts on that address (any path), echoes every text and binary
//! message, and keeps each connection until the client closes it. It raises its own limit of
//! open files to the hard limit, since it holds one socket per proxied WebSocket.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;

fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .expect("usage: ws_echo 127.0.0.1:PORT");
    raise_open_files_limit();
    let listener = TcpListener::bind(&addr).await?;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors for a moment: the next accept may succeed.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            let (mut tx, mut rx) = ws.split();
            while let Some(Ok(message)) = rx.next().await {
                if (message.is_text() || message.is_binary()) && tx.send(message).await.is_err() {
                    return;
                }
            }
        });
    }
}
