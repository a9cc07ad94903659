//! Connections for the app-answer targets: Rivetr's `h1::Conn` wraps a real `TcpStream`, so
//! the targets make loopback connections once and reuse them. The parsers never read the
//! socket; only the bytes a target puts in the connection's buffer.

use std::cell::RefCell;
use std::net::TcpListener;

use rivetr::proxy::h1::Conn;
use tokio::runtime::Runtime;

struct Link {
    runtime: Runtime,
    listener: TcpListener,
}

thread_local! {
    static LINK: Link = {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("a tokio runtime");
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
        Link { runtime, listener }
    };
    static SPARE: RefCell<Option<Conn>> = const { RefCell::new(None) };
}

/// A connection to the loopback listener. Both ends close with a reset (zero linger), so the
/// millions a long run makes leave no TIME_WAIT sockets to run out of ports with.
fn connect() -> Conn {
    LINK.with(|link| {
        let _entered = link.runtime.enter();
        let client = std::net::TcpStream::connect(link.listener.local_addr().unwrap()).unwrap();
        let (server, _) = link.listener.accept().unwrap();
        for s in [&client, &server] {
            s.set_nonblocking(true).unwrap();
        }
        let client = tokio::net::TcpStream::from_std(client).unwrap();
        let server = tokio::net::TcpStream::from_std(server).unwrap();
        client.set_zero_linger().unwrap();
        server.set_zero_linger().unwrap();
        drop(server);
        Conn::new(client)
    })
}

/// Runs `f` with a connection, and keeps the one it gives back for the next input.
pub fn with_conn<T>(f: impl FnOnce(Conn) -> (T, Option<Conn>)) -> T {
    let conn = SPARE
        .with(|s| s.borrow_mut().take())
        .unwrap_or_else(connect);
    let (out, back) = f(conn);
    SPARE.with(|s| *s.borrow_mut() = back);
    out
}
