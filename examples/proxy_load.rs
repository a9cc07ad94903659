//! Load client for the proxy benchmark (`bench/proxy.sh`, issue 16): the two loads no Debian
//! package generates.
//!
//! - `rate`: a wrk2-style constant-rate client for the "latency under fixed load" row. R
//!   requests per second, request n due at `start + n/R`, spread round-robin over C keep-alive
//!   HTTP/1.1 connections (plain, or TLS 1.3). A connection still waiting for an answer sends
//!   its next request as soon as it is free, and latency is counted from when the request was
//!   due, not from when it went out: a stalled server is charged for the requests it kept
//!   waiting (coordinated omission, as wrk2 corrects it). Prints one line:
//!   `sent=N ok=N errors=N achieved_rps=X p50_ms=X p90_ms=X p99_ms=X p999_ms=X max_ms=X`
//!   on stdout, and on stderr the errors by kind and how late the client itself sent
//!   (`send_lag_p50_ms`, `send_lag_p99_ms`: its own share of the latency; a growing lag or
//!   `unsent` > 0 means the client or the machine could not keep the rate).
//! - `hold`: opens N connections, makes one keep-alive GET (or one WebSocket upgrade and echo)
//!   on each, prints `held=N failed=N`, and keeps them idle until SIGTERM or SIGINT, then
//!   prints `closed_by_peer=N` (connections the server closed while they were held).
//!
//! The HTTP/1.1 client is written against the socket (httparse for the answer's head) rather
//! than through hyper: at 15,000 req/s on the 2-CPU machine the benchmark shares with the
//! proxy under test, every microsecond the client spends is taken from the server.
//! Options: `proxy_load rate --help`, `proxy_load hold --help`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Buf, BytesMut};
use clap::{Args, Parser};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};

#[derive(Parser)]
#[command(
    name = "proxy_load",
    about = "Load client for bench/proxy.sh (issue 16)"
)]
enum Cli {
    /// Constant request rate over keep-alive connections; latency from each request's due time.
    Rate(RateArgs),
    /// Open N connections, one request (or WebSocket echo) each, then hold them idle.
    Hold(HoldArgs),
}

#[derive(Args)]
struct Target {
    /// http://ADDR[:PORT][/PATH] or https://...; ADDR is where to connect.
    #[arg(long)]
    url: String,
    /// Host header, and the TLS server name (SNI); defaults to the URL's host.
    #[arg(long)]
    host: Option<String>,
    /// Accept any server certificate (the benchmark's is self-signed). The handshake
    /// signature is still checked, so the client does the work a real one does.
    #[arg(long)]
    insecure: bool,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Seconds a connect plus answer may take before it counts as an error.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

#[derive(Args)]
struct RateArgs {
    #[command(flatten)]
    target: Target,
    /// Requests per second, across all connections.
    #[arg(long)]
    rate: f64,
    /// Keep-alive connections, opened before the clock starts.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds of load.
    #[arg(long)]
    duration: f64,
}

#[derive(Args)]
struct HoldArgs {
    #[command(flatten)]
    target: Target,
    /// Connections to open and hold.
    #[arg(long)]
    count: usize,
    /// Upgrade each connection to a WebSocket at this path and echo one message, instead of
    /// the GET.
    #[arg(long)]
    websocket: Option<String>,
    /// Connections being opened at once: enough to be quick, few enough that the server's
    /// accept queue does not overflow (a dropped SYN costs a one-second retransmit).
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let threads = match &cli {
        Cli::Rate(a) => a.target.threads,
        Cli::Hold(a) => a.target.threads,
    };
    raise_nofile_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    match cli {
        Cli::Rate(a) => runtime.block_on(rate(a)),
        Cli::Hold(a) => runtime.block_on(hold(a)),
    }
}

/// Raises the soft open-file limit to the hard one: `hold` needs 10,000 sockets and the
/// usual soft limit is 1,024. Failure is only reported, as connects then fail visibly.
fn raise_nofile_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a properly sized, initialised struct.
    let ok = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0
        }
    };
    if !ok {
        eprintln!(
            "proxy_load: could not raise RLIMIT_NOFILE: {}",
            io::Error::last_os_error()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Rate

#[derive(Default)]
struct RateStats {
    sent: AtomicU64,
    ok: AtomicU64,
    status_errors: AtomicU64,
    io_errors: AtomicU64,
    timeouts: AtomicU64,
    /// Requests due before the end.
    scheduled: AtomicU64,
    /// Requests that fell due but were not sent by the end: the client or server fell behind.
    unsent: AtomicU64,
}

async fn rate(a: RateArgs) -> anyhow::Result<()> {
    if !(a.rate > 0.0 && a.duration > 0.0 && a.connections > 0) {
        bail!("--rate, --duration and --connections must be positive");
    }
    let endpoint = Arc::new(Endpoint::new(&a.target).await?);
    let request: Arc<[u8]> = endpoint.get_request().into();
    let timeout = secs(a.target.timeout)?;
    let connections = a.connections;

    // Connected before the clock starts, so that a burst of handshakes (TLS above all) is not
    // measured as the first requests' latency. A failure here is retried at the first request.
    let permits = Arc::new(Semaphore::new(200));
    let mut opening = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (endpoint, permits) = (endpoint.clone(), permits.clone());
        opening.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            tokio::time::timeout(timeout, endpoint.connect()).await
        }));
    }
    let mut conns = Vec::with_capacity(connections);
    let mut connect_failures = 0;
    for task in opening {
        match task.await? {
            Ok(Ok(conn)) => conns.push(Some(conn)),
            _ => {
                connect_failures += 1;
                conns.push(None);
            }
        }
    }
    if connect_failures > 0 {
        eprintln!("proxy_load: {connect_failures} of {connections} connections failed to open");
    }

    let start = Instant::now() + Duration::from_millis(20);
    let end = start + secs(a.duration)?;
    let stats = Arc::new(RateStats::default());
    let histogram = Arc::new(Histogram::new());
    let send_lag = Arc::new(Histogram::new());
    let mut tasks = Vec::with_capacity(connections);
    for (i, conn) in conns.into_iter().enumerate() {
        let schedule = Schedule {
            start,
            end,
            rate: a.rate,
            first: i as u64,
            step: connections as u64,
        };
        let worker = RateConnection {
            endpoint: endpoint.clone(),
            request: request.clone(),
            stats: stats.clone(),
            histogram: histogram.clone(),
            send_lag: send_lag.clone(),
            timeout,
        };
        let timer = Timer::new().context("timerfd")?;
        tasks.push(tokio::spawn(worker.run(conn, schedule, timer)));
    }
    for task in tasks {
        task.await?;
    }
    // A connection stops once its next request would fall due after the end, which can be a
    // little before the end; the rate is over the whole window, or longer if answers came late.
    let elapsed = start.elapsed().as_secs_f64().max(a.duration);

    let s = &stats;
    let ok = s.ok.load(Ordering::Relaxed);
    let (status, io_err, timeouts) = (
        s.status_errors.load(Ordering::Relaxed),
        s.io_errors.load(Ordering::Relaxed),
        s.timeouts.load(Ordering::Relaxed),
    );
    eprintln!(
        "proxy_load: scheduled={} unsent={} non_2xx={status} io_errors={io_err} \
         timeouts={timeouts} elapsed_s={elapsed:.3} send_lag_p50_ms={:.3} send_lag_p99_ms={:.3}",
        s.scheduled.load(Ordering::Relaxed),
        s.unsent.load(Ordering::Relaxed),
        send_lag.quantile(0.5) as f64 / 1e6,
        send_lag.quantile(0.99) as f64 / 1e6,
    );
    let ms = |q: f64| histogram.quantile(q) as f64 / 1e6;
    println!(
        "sent={} ok={ok} errors={} achieved_rps={:.1} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} \
         p999_ms={:.3} max_ms={:.3}",
        s.sent.load(Ordering::Relaxed),
        status + io_err + timeouts,
        ok as f64 / elapsed,
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        histogram.max() as f64 / 1e6,
    );
    Ok(())
}

fn secs(s: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("{s} is not a duration in seconds"))
}

/// A one-shot timer precise to microseconds, on a timerfd the connection's runtime thread
/// waits on with its sockets. Not tokio's timers: they tick in whole milliseconds, and
/// sending up to a millisecond late would add that to every latency measured against a proxy
/// that answers in ~100 µs. Not a pacing thread waking the connections either: its
/// cross-thread wake per request cost a quarter more CPU than this (54 µs a request against
/// 43 at 15,000 req/s, in a VM where each sleep and wake of a thread is most of that cost).
struct Timer(AsyncFd<OwnedFd>);

impl Timer {
    fn new() -> io::Result<Self> {
        // SAFETY: timerfd_create returns a new descriptor (owned from here on) or -1.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just created and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the OwnedFd, moved into the AsyncFd, keeps the descriptor open and the same
        // for as long as the AsyncFd lives.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
        Ok(Self(fd))
    }

    async fn sleep_until(&self, due: Instant) -> io::Result<()> {
        let now = Instant::now();
        if due <= now {
            return Ok(());
        }
        let wait = due - now;
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let spec = libc::itimerspec {
            it_interval: zero,
            it_value: libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            },
        };
        let fd = self.0.get_ref().as_raw_fd();
        // SAFETY: a valid timerfd and itimerspec; the old value is not asked for.
        if unsafe { libc::timerfd_settime(fd, 0, &spec, std::ptr::null_mut()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        loop {
            let mut ready = self.0.readable().await?;
            let expired = ready.try_io(|fd| {
                let mut count = [0u8; 8];
                // SAFETY: reads at most 8 bytes into an 8-byte buffer.
                let n = unsafe { libc::read(fd.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            if let Ok(result) = expired {
                return result;
            }
        }
    }
}

/// Connection i's share of the schedule: its k-th request is due at
/// `start + (first + k*step) / rate`.
struct Schedule {
    start: Instant,
    end: Instant,
    rate: f64,
    first: u64,
    step: u64,
}

impl Schedule {
    fn due(&self, k: u64) -> Instant {
        self.start + Duration::from_secs_f64((self.first + k * self.step) as f64 / self.rate)
    }
}

struct RateConnection {
    endpoint: Arc<Endpoint>,
    request: Arc<[u8]>,
    stats: Arc<RateStats>,
    histogram: Arc<Histogram>,
    /// How late requests went out: the client's own share of the latency, and a sign that
    /// it (or the machine) cannot keep the rate.
    send_lag: Arc<Histogram>,
    timeout: Duration,
}

impl RateConnection {
    async fn run(self, mut conn: Option<Conn>, schedule: Schedule, timer: Timer) {
        let stats = &self.stats;
        let mut k: u64 = 0;
        loop {
            let due = schedule.due(k);
            k += 1;
            if due >= schedule.end {
                return;
            }
            stats.scheduled.fetch_add(1, Ordering::Relaxed);
            // Not sent: behind schedule at the end, or (only if the timerfd broke) unpaced.
            if timer.sleep_until(due).await.is_err() || Instant::now() >= schedule.end {
                stats.unsent.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            stats.sent.fetch_add(1, Ordering::Relaxed);
            self.send_lag.record(due.elapsed());
            match tokio::time::timeout(self.timeout, self.exchange(&mut conn)).await {
                Ok(Ok(head)) => {
                    if (200..300).contains(&head.status) {
                        stats.ok.fetch_add(1, Ordering::Relaxed);
                        self.histogram.record(due.elapsed());
                    } else {
                        stats.status_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    if !head.keep_alive {
                        conn = None;
                    }
                }
                Ok(Err(_)) => {
                    stats.io_errors.fetch_add(1, Ordering::Relaxed);
                    conn = None;
                }
                Err(_) => {
                    stats.timeouts.fetch_add(1, Ordering::Relaxed);
                    conn = None;
                }
            }
        }
    }

    /// One request and its whole answer, reconnecting first if the last connection closed.
    async fn exchange(&self, conn: &mut Option<Conn>) -> io::Result<Head> {
        let c = match conn {
            Some(c) => c,
            None => conn.insert(self.endpoint.connect().await?),
        };
        c.io.write_all(&self.request).await?;
        c.io.flush().await?;
        c.read_response().await
    }
}

// ---------------------------------------------------------------------------------------------
// Hold

async fn hold(a: HoldArgs) -> anyhow::Result<()> {
    let endpoint = Arc::new(Endpoint::new(&a.target).await?);
    let request: Arc<[u8]> = match &a.websocket {
        None => endpoint.get_request(),
        Some(path) => endpoint.upgrade_request(path),
    }
    .into();
    let timeout = secs(a.target.timeout)?;
    // Registered before any connection opens, so a signal during the opening is not lost.
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;

    let closed = Arc::new(AtomicU64::new(0));
    let opening = open_all(&a, endpoint, request, closed.clone(), timeout);
    tokio::select! {
        opened = opening => {
            let (held, failed) = opened?;
            println!("held={held} failed={failed}");
        }
        _ = stop_signal(&mut sigterm, &mut sigint) => {
            println!("interrupted while opening");
            return Ok(());
        }
    }
    stop_signal(&mut sigterm, &mut sigint).await;
    println!("closed_by_peer={}", closed.load(Ordering::Relaxed));
    Ok(())
}

/// Opens `a.count` connections, `a.concurrency` at a time, each left with a task that holds
/// it and counts it in `closed` if the server closes it; returns (held, failed).
async fn open_all(
    a: &HoldArgs,
    endpoint: Arc<Endpoint>,
    request: Arc<[u8]>,
    closed: Arc<AtomicU64>,
    timeout: Duration,
) -> anyhow::Result<(usize, usize)> {
    let websocket = a.websocket.is_some();
    let permits = Arc::new(Semaphore::new(a.concurrency.max(1)));
    let (opened_tx, mut opened_rx) = mpsc::unbounded_channel::<bool>();
    for _ in 0..a.count {
        let permit = permits.clone().acquire_owned().await?;
        let (endpoint, request, closed, opened) = (
            endpoint.clone(),
            request.clone(),
            closed.clone(),
            opened_tx.clone(),
        );
        // Detached on purpose: each task owns one held connection for the life of the
        // process; exit closes them all at once.
        tokio::spawn(async move {
            let opening = tokio::time::timeout(timeout, open_one(&endpoint, &request, websocket));
            let result = opening.await;
            drop(permit);
            let mut io = match result {
                Ok(Ok(io)) => io,
                Ok(Err(e)) => return report(&opened, Some(e)),
                Err(_) => return report(&opened, Some(io::ErrorKind::TimedOut.into())),
            };
            report(&opened, None);
            // Held idle; the read only notices the server closing the connection.
            let mut scrap = [0u8; 64];
            while let Ok(n) = io.read(&mut scrap).await {
                if n == 0 {
                    break;
                }
            }
            closed.fetch_add(1, Ordering::Relaxed);
        });
    }
    // Counted rather than waiting for the channel to close: the holding tasks outlive this.
    let (mut held, mut failed) = (0, 0);
    while held + failed < a.count {
        match opened_rx.recv().await {
            Some(true) => held += 1,
            Some(false) => failed += 1,
            None => break,
        }
    }
    Ok((held, failed))
}

/// Tells `open_all` how one connection went; the first few failures are shown.
fn report(opened: &mpsc::UnboundedSender<bool>, error: Option<io::Error>) {
    static SHOWN: AtomicU64 = AtomicU64::new(0);
    if let Some(e) = &error {
        if SHOWN.fetch_add(1, Ordering::Relaxed) < 5 {
            eprintln!("proxy_load: connection failed: {e}");
        }
    }
    let _ = opened.send(error.is_none());
}

async fn stop_signal(
    sigterm: &mut tokio::signal::unix::Signal,
    sigint: &mut tokio::signal::unix::Signal,
) {
    tokio::select! {
        _ = sigterm.recv() => {}
        _ = sigint.recv() => {}
    }
}

/// Opens one connection and makes its one exchange; returns the bare stream, its buffer freed,
/// so that 10,000 held connections cost the client little.
async fn open_one(endpoint: &Endpoint, request: &[u8], websocket: bool) -> io::Result<Box<dyn Io>> {
    let mut conn = endpoint.connect().await?;
    conn.io.write_all(request).await?;
    conn.io.flush().await?;
    let head = conn.read_response().await?;
    if websocket {
        if head.status != 101 {
            return Err(invalid(format!("upgrade answered {}", head.status)));
        }
        conn.websocket_echo(b"proxy_load echo").await?;
    } else if !(200..300).contains(&head.status) {
        return Err(invalid(format!("answered {}", head.status)));
    } else if !head.keep_alive {
        return Err(invalid("server closes the connection after the answer"));
    }
    Ok(conn.io)
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 over a socket

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Endpoint {
    addr: SocketAddr,
    /// The connector and server name (SNI, from the Host) for https.
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    host: String,
    path: String,
}

impl Endpoint {
    async fn new(target: &Target) -> anyhow::Result<Self> {
        let (https, authority, path) = split_url(&target.url)?;
        let host = target.host.clone().unwrap_or_else(|| authority.to_owned());
        let with_port = if has_port(authority) {
            authority.to_owned()
        } else {
            format!("{authority}:{}", if https { 443 } else { 80 })
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .with_context(|| format!("resolving {with_port}"))?
            .next()
            .with_context(|| format!("{with_port} has no address"))?;
        let tls = if https {
            let name = ServerName::try_from(host_name(&host).to_owned())
                .with_context(|| format!("{host} is not a TLS server name"))?;
            Some((
                tokio_rustls::TlsConnector::from(tls_config(target.insecure)?),
                name,
            ))
        } else {
            None
        };
        Ok(Self {
            addr,
            tls,
            host,
            path: path.to_owned(),
        })
    }

    async fn connect(&self) -> io::Result<Conn> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some((connector, name)) => Box::new(connector.connect(name.clone(), tcp).await?),
        };
        Ok(Conn {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
        })
    }

    fn get_request(&self) -> Vec<u8> {
        format!("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", self.path, self.host).into_bytes()
    }

    fn upgrade_request(&self, path: &str) -> Vec<u8> {
        // A fixed key: the handshake only has to be valid, and the echo proves the upgrade.
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            self.host
        )
        .into_bytes()
    }
}

/// `http[s]://AUTHORITY[/PATH]` -> (https, authority, path).
fn split_url(url: &str) -> anyhow::Result<(bool, &str, &str)> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else {
        bail!("{url}: only http:// and https:// URLs");
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        bail!("{url}: no host");
    }
    Ok((https, authority, path))
}

/// Whether `host[:port]` or `[v6][:port]` names a port.
fn has_port(authority: &str) -> bool {
    authority.rsplit_once(':').is_some_and(|(before, port)| {
        !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && (!before.starts_with('[') || before.ends_with(']'))
    })
}

/// The host of a Host value, without port or IPv6 brackets.
fn host_name(host: &str) -> &str {
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    match host.rsplit_once(':') {
        Some((name, _)) if has_port(host) => name,
        _ => host,
    }
}

fn tls_config(insecure: bool) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// `--insecure`: any certificate is accepted, but the handshake signature is verified.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// How much is read from the socket at a time.
const READ_CHUNK: usize = 32 * 1024;
/// An answer head or chunk-size line longer than this is an error rather than a buffer that
/// grows without end.
const MAX_HEAD: usize = 64 * 1024;

/// A connection and the bytes read from it but not yet consumed.
struct Conn {
    io: Box<dyn Io>,
    buf: BytesMut,
}

/// What the client needs of an answer's head.
#[derive(Debug, PartialEq)]
struct Head {
    status: u16,
    keep_alive: bool,
}

#[derive(Debug, PartialEq)]
enum Body {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

impl Conn {
    /// Reads one answer, its body read exactly and discarded. Interim 1xx answers are
    /// skipped; 101 (Switching Protocols) is returned with nothing after its head consumed.
    async fn read_response(&mut self) -> io::Result<Head> {
        let (head, body) = loop {
            match parse_head(&self.buf)? {
                Some((len, head, body)) => {
                    self.buf.advance(len);
                    if (100..200).contains(&head.status) && head.status != 101 {
                        continue;
                    }
                    break (head, body);
                }
                None if self.buf.len() > MAX_HEAD => return Err(invalid("answer head too long")),
                None => self.fill().await?,
            }
        };
        match body {
            Body::None => {}
            Body::Length(n) => self.skip(n).await?,
            Body::Chunked => self.skip_chunked().await?,
            Body::UntilClose => loop {
                self.buf.clear();
                self.buf.reserve(READ_CHUNK);
                if self.io.read_buf(&mut self.buf).await? == 0 {
                    break;
                }
            },
        }
        Ok(head)
    }

    /// Reads more from the socket; the end of the stream is an error, as every caller still
    /// expects bytes.
    async fn fill(&mut self) -> io::Result<()> {
        self.buf.reserve(READ_CHUNK);
        if self.io.read_buf(&mut self.buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    async fn need(&mut self, n: usize) -> io::Result<()> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(())
    }

    async fn skip(&mut self, mut n: u64) -> io::Result<()> {
        loop {
            let take = n.min(self.buf.len() as u64);
            self.buf.advance(take as usize);
            n -= take;
            if n == 0 {
                return Ok(());
            }
            self.fill().await?;
        }
    }

    /// Length of the next line, CRLF not included (the line stays in the buffer).
    async fn line(&mut self) -> io::Result<usize> {
        let mut searched = 0;
        loop {
            if let Some(i) = self.buf[searched..].windows(2).position(|w| w == b"\r\n") {
                return Ok(searched + i);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("line too long in chunked body"));
            }
            searched = self.buf.len().saturating_sub(1);
            self.fill().await?;
        }
    }

    async fn skip_chunked(&mut self) -> io::Result<()> {
        loop {
            let len = self.line().await?;
            let size = chunk_size(&self.buf[..len])?;
            self.buf.advance(len + 2);
            if size == 0 {
                // Trailer fields, up to the empty line.
                loop {
                    let len = self.line().await?;
                    self.buf.advance(len + 2);
                    if len == 0 {
                        return Ok(());
                    }
                }
            }
            self.skip(size).await?;
            self.need(2).await?;
            if &self.buf[..2] != b"\r\n" {
                return Err(invalid("chunk not followed by CRLF"));
            }
            self.buf.advance(2);
        }
    }

    /// Sends one masked text frame and waits for the same payload back; control frames the
    /// server sends meanwhile are skipped.
    async fn websocket_echo(&mut self, message: &[u8]) -> io::Result<()> {
        // The mask only has to be present (RFC 6455 5.3); it protects proxies from
        // cache poisoning by a hostile page, which this client is not.
        let mask = [0x5a, 0x17, 0xc3, 0x3e];
        let len = u8::try_from(message.len())
            .ok()
            .filter(|&l| l < 126)
            .expect("short message");
        let mut frame = vec![0x81, 0x80 | len];
        frame.extend_from_slice(&mask);
        frame.extend(message.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.io.write_all(&frame).await?;
        self.io.flush().await?;
        loop {
            self.need(2).await?;
            let (b0, b1) = (self.buf[0], self.buf[1]);
            if b1 & 0x80 != 0 {
                return Err(invalid("server sent a masked frame"));
            }
            let (header, len) = match b1 & 0x7f {
                126 => {
                    self.need(4).await?;
                    (4, u64::from(u16::from_be_bytes([self.buf[2], self.buf[3]])))
                }
                127 => {
                    self.need(10).await?;
                    let mut be = [0u8; 8];
                    be.copy_from_slice(&self.buf[2..10]);
                    (10, u64::from_be_bytes(be))
                }
                n => (2, u64::from(n)),
            };
            self.buf.advance(header);
            match b0 & 0x0f {
                0x1 | 0x2 => {
                    if len != message.len() as u64 {
                        return Err(invalid("echo of another length"));
                    }
                    self.need(message.len()).await?;
                    if &self.buf[..message.len()] != message {
                        return Err(invalid("echo differs from the message"));
                    }
                    self.buf.advance(message.len());
                    return Ok(());
                }
                0x8 => return Err(invalid("server closed the WebSocket")),
                _ => self.skip(len).await?,
            }
        }
    }
}

/// Parses an answer head: `None` until it is complete, else its length, what the client
/// needs of it, and how its body is delimited (RFC 9112 6.3).
fn parse_head(buf: &[u8]) -> io::Result<Option<(usize, Head, Body)>> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut answer = httparse::Response::new(&mut fields);
    let len = match answer.parse(buf).map_err(invalid)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    let status = answer.code.unwrap_or(0);
    let (mut length, mut chunked, mut close, mut keep_alive) = (None, false, false, false);
    for field in answer.headers.iter() {
        let value = std::str::from_utf8(field.value).map_err(invalid)?;
        if field.name.eq_ignore_ascii_case("content-length") {
            length = Some(value.trim().parse::<u64>().map_err(invalid)?);
        } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
        } else if field.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                close |= token.eq_ignore_ascii_case("close");
                keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        }
    }
    let mut keep_alive = if answer.version == Some(1) {
        !close
    } else {
        keep_alive && !close
    };
    let body = if (100..200).contains(&status) || status == 204 || status == 304 {
        Body::None
    } else if chunked {
        Body::Chunked
    } else if let Some(n) = length {
        Body::Length(n)
    } else {
        keep_alive = false;
        Body::UntilClose
    };
    Ok(Some((len, Head { status, keep_alive }, body)))
}

fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line.split(|&b| b == b';').next().unwrap_or(line);
    let digits = std::str::from_utf8(digits).map_err(invalid)?.trim();
    u64::from_str_radix(digits, 16).map_err(invalid)
}

fn invalid(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

// ---------------------------------------------------------------------------------------------
// Histogram

/// Log-linear buckets over nanoseconds, like HdrHistogram with 2 significant digits: values
/// below 256 have a bucket each; above, each power of two is split into 128 buckets, so a
/// bucket is at most 1/128 of its values wide (reported at its middle: within 0.4%).
/// Atomic counters, shared by all connections: at 15,000 records a second the contention is
/// nothing, and one table of 4,352 counters is smaller than one per connection.
struct Histogram {
    counts: Box<[AtomicU64]>,
    max: AtomicU64,
}

const SUB_BITS: u32 = 7;
/// Values are capped at 2^40 ns (18 minutes).
const MAX_BITS: u32 = 40;
const BUCKETS: usize = ((MAX_BITS - SUB_BITS + 1) << SUB_BITS) as usize;

impl Histogram {
    fn new() -> Self {
        Self {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
        }
    }

    fn record(&self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(ns, Ordering::Relaxed);
    }

    fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// The value at quantile q (0 < q <= 1) in ns: the middle of the bucket holding the
    /// ceil(q * count)-th smallest value, never above the exact maximum. 0 if empty.
    fn quantile(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, &c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, width) = bucket_range(i);
                return (low + width / 2).min(self.max());
            }
        }
        self.max()
    }
}

fn bucket_of(ns: u64) -> usize {
    let v = ns.min((1 << MAX_BITS) - 1);
    if v < 1 << (SUB_BITS + 1) {
        return v as usize;
    }
    let shift = 63 - v.leading_zeros() - SUB_BITS;
    ((u64::from(shift) << SUB_BITS) + (v >> shift)) as usize
}

/// The lowest value and width of bucket i.
fn bucket_range(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < 1 << (SUB_BITS + 1) {
        return (i, 1);
    }
    let shift = (i >> SUB_BITS) - 1;
    ((i - (shift << SUB_BITS)) << shift, 1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_within_one_percent() {
        let mut expected_low = 0;
        for i in 0..BUCKETS {
            let (low, width) = bucket_range(i);
            assert_eq!(low, expected_low, "bucket {i}");
            assert_eq!(bucket_of(low), i);
            assert_eq!(bucket_of(low + width - 1), i);
            assert!(width == 1 || width * 128 <= low, "bucket {i} too wide");
            expected_low = low + width;
        }
        assert_eq!(expected_low, 1 << MAX_BITS);
    }

    #[test]
    fn quantiles() {
        let h = Histogram::new();
        for us in 1..=1000 {
            h.record(Duration::from_micros(us));
        }
        for (q, us) in [(0.5, 500.0), (0.9, 900.0), (0.99, 990.0), (0.999, 999.0)] {
            let got = h.quantile(q) as f64 / 1e3;
            assert!((got - us).abs() / us < 0.005, "q{q}: {got} µs");
        }
        assert_eq!(h.quantile(1.0), 1_000_000);
    }

    async fn answers(wire: &[u8], count: usize) -> (Vec<Head>, usize) {
        let (mut server, client) = tokio::io::duplex(7);
        let wire = wire.to_vec();
        // Written in pieces smaller than any field, so every partial-read path is taken.
        let writer = tokio::spawn(async move { server.write_all(&wire).await });
        let mut conn = Conn {
            io: Box::new(client),
            buf: BytesMut::new(),
        };
        let mut heads = Vec::new();
        for _ in 0..count {
            heads.push(conn.read_response().await.unwrap());
        }
        writer.await.unwrap().unwrap();
        (heads, conn.buf.len())
    }

    #[tokio::test]
    async fn reads_bodies_exactly() {
        let wire = b"HTTP/1.1 100 Continue\r\n\r\n\
            HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\
            HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n\
            HTTP/1.1 204 No Content\r\n\r\n\
            HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n\
            HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        let (heads, left) = answers(wire, 5).await;
        let statuses: Vec<_> = heads.iter().map(|h| (h.status, h.keep_alive)).collect();
        assert_eq!(
            statuses,
            [
                (200, true),
                (200, true),
                (204, true),
                (503, false),
                (101, true)
            ]
        );
        assert_eq!(left, 0);
    }

    #[test]
    fn body_framing() {
        let head = |s: &str| parse_head(s.as_bytes()).unwrap().unwrap();
        assert_eq!(head("HTTP/1.0 200 OK\r\n\r\n").2, Body::UntilClose);
        assert!(
            !head("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n")
                .1
                .keep_alive
        );
        let keep = head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n");
        assert!(keep.1.keep_alive);
        assert_eq!(
            head("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n").2,
            Body::None
        );
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Le")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn urls() {
        assert_eq!(
            split_url("http://127.0.0.1:8080").unwrap(),
            (false, "127.0.0.1:8080", "/")
        );
        assert_eq!(
            split_url("https://[::1]/x?y").unwrap(),
            (true, "[::1]", "/x?y")
        );
        assert!(has_port("a.test:80") && has_port("[::1]:80"));
        assert!(!has_port("a.test") && !has_port("[::1]"));
        assert_eq!(host_name("bench.test:8443"), "bench.test");
        assert_eq!(host_name("[::1]:443"), "::1");
        assert_eq!(host_name("bench.test"), "bench.test");
    }
}
