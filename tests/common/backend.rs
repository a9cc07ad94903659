//! A real HTTP backend for proxy tests, on its own thread and runtime:
//!
//! - `GET /`                  200, body = the backend's name
//! - `GET /headers`           200, the request headers as JSON; the response also carries
//!   hop-by-hop headers (`Connection: X-Bar`, `X-Bar`, `Keep-Alive`) the proxy must remove
//! - `GET /stall?ms=N`        waits N ms, then 200 "done"
//! - `GET /big?bytes=N`       streams N bytes
//! - `POST /count`            reads the whole body, answers with its length
//! - `GET /ws`                WebSocket echo
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

pub struct Backend {
    pub addr: SocketAddr,
    pub name: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Backend {
    pub fn start(name: &str) -> Backend {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let owned = name.to_owned();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(serve(listener, owned, stopped));
        });
        Backend {
            addr,
            name: name.to_owned(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    name: String,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut stopped => return,
            a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
        };
        let name = name.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, name.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

type Resp = Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>;

fn full(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r
}

fn query(req: &Request<Incoming>, key: &str) -> Option<u64> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.parse().ok()).flatten()
    })
}

async fn handle(mut req: Request<Incoming>, name: String) -> Result<Resp, Infallible> {
    let path = req.uri().path().to_owned();
    Ok(match path.as_str() {
        "/" => full(StatusCode::OK, name),
        "/headers" => {
            let mut map = serde_json::Map::new();
            for key in req.headers().keys() {
                let values: Vec<&str> = req
                    .headers()
                    .get_all(key)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                map.insert(key.as_str().to_owned(), values.join(", ").into());
            }
            let mut r = full(StatusCode::OK, serde_json::Value::Object(map).to_string());
            let h = r.headers_mut();
            h.insert("connection", "X-Bar".parse().unwrap());
            h.insert("x-bar", "hop".parse().unwrap());
            h.insert("keep-alive", "timeout=5".parse().unwrap());
            h.insert("x-end-to-end", "kept".parse().unwrap());
            r
        }
        "/stall" => {
            let ms = query(&req, "ms").unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            full(StatusCode::OK, "done")
        }
        "/big" => {
            let bytes = query(&req, "bytes").unwrap_or(0);
            let mut r = Response::new(Zeros { left: bytes }.boxed());
            r.headers_mut()
                .insert("content-length", bytes.to_string().parse().unwrap());
            r
        }
        "/count" => {
            let mut body = req.into_body();
            let mut n: u64 = 0;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => n += f.data_ref().map(|d| d.len() as u64).unwrap_or(0),
                    Err(e) => return Ok(full(StatusCode::BAD_REQUEST, e.to_string())),
                }
            }
            full(StatusCode::OK, n.to_string())
        }
        "/ws" => {
            let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
                return Ok(full(StatusCode::BAD_REQUEST, "not a websocket request"));
            };
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = upgrade.await else { return };
                let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    None,
                )
                .await;
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_close() {
                        break;
                    }
                    if msg.is_text() || msg.is_binary() {
                        let _ = ws.send(msg).await;
                    }
                }
            });
            let mut r = full(StatusCode::SWITCHING_PROTOCOLS, Bytes::new());
            let h = r.headers_mut();
            h.insert("connection", "upgrade".parse().unwrap());
            h.insert("upgrade", "websocket".parse().unwrap());
            h.insert(
                "sec-websocket-accept",
                derive_accept_key(key.as_bytes()).parse().unwrap(),
            );
            r
        }
        _ => full(StatusCode::NOT_FOUND, "no such path"),
    })
}

/// A body of `left` zero bytes, produced 64 KiB at a time, never held whole.
struct Zeros {
    left: u64,
}

static CHUNK: [u8; 64 * 1024] = [0; 64 * 1024];

impl Body for Zeros {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(CHUNK.len() as u64) as usize;
        self.left -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK[..n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }
}
