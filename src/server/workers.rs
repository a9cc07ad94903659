//! Proxy worker threads: one single-threaded tokio runtime per core. The main runtime
//! accepts on the `http` and `https` sockets and hands the connections to the workers in
//! turn; each worker serves its connections and keeps its own connections to apps.
//!
//! A request then lives its whole life on one thread: the client connection, the upstream
//! connection and every wake-up between them. On a shared multi-threaded runtime the same
//! request hops between threads, and the futex wake-ups cost more than the proxying itself
//! (measured: one thread outran two). The API, the engine and the timers of the daemon stay on
//! the main runtime.

use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use tokio::sync::mpsc;

use super::accept::{self, Handoff, Probe, Source, probe};
use crate::proxy::{self, Proxy, Scheme};

/// How often each worker drops pooled connections that idled too long.
const SWEEP_EVERY: Duration = Duration::from_secs(15);

pub struct ProxyWorkers {
    threads: Vec<std::thread::JoinHandle<()>>,
    /// One per worker and listener, for the watchdog.
    pub probes: Vec<Probe>,
    /// Where the dispatchers send each worker its plain-HTTP and its TLS connections.
    pub http: Vec<mpsc::UnboundedSender<Handoff>>,
    pub https: Vec<mpsc::UnboundedSender<Handoff>>,
}

/// Everything a worker needs, cloned for each.
#[derive(Clone)]
pub struct WorkerSetup {
    pub proxy: Arc<Proxy>,
    pub tls: TlsAcceptor,
    pub shutdown: CancellationToken,
    pub grace: Duration,
}

/// The number of workers for `configured`. 0: half the CPUs, at least one. The apps run on
/// the same machine and need the other half: measured on 2 CPUs with the load generator and
/// the app beside the proxy (bench/proxy.sh), one worker served 47.6k-50.2k req/s where two
/// served 37.2k-40.1k, because a worker that wakes with more connections' work to do switches
/// context less often per request.
pub fn worker_count(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus / 2).max(1)
}

/// Starts `n` workers.
pub fn spawn(n: usize, setup: WorkerSetup) -> std::io::Result<ProxyWorkers> {
    let mut workers = ProxyWorkers {
        threads: Vec::new(),
        probes: Vec::new(),
        http: Vec::new(),
        https: Vec::new(),
    };
    for i in 0..n {
        let (http_tx, http_rx) = mpsc::unbounded_channel();
        let (https_tx, https_rx) = mpsc::unbounded_channel();
        let (http_probe, http_probes) = probe("http");
        let (https_probe, https_probes) = probe("https");
        let setup = setup.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(format!("rivetr-proxy-{i}"))
            .spawn(move || {
                proxy::shard::set_for_this_thread(i);
                runtime.block_on(run_worker(
                    http_rx,
                    https_rx,
                    http_probes,
                    https_probes,
                    setup,
                ));
            })?;
        workers.threads.push(thread);
        workers.probes.push(http_probe);
        workers.probes.push(https_probe);
        workers.http.push(http_tx);
        workers.https.push(https_tx);
    }
    Ok(workers)
}

async fn run_worker(
    http: mpsc::UnboundedReceiver<Handoff>,
    https: mpsc::UnboundedReceiver<Handoff>,
    http_probes: accept::ProbeReceiver,
    https_probes: accept::ProbeReceiver,
    setup: WorkerSetup,
) {
    // Every connection polls the shutdown token each time it wakes, and a token's every
    // method takes its lock: a token of this worker's own keeps that lock on one core.
    let shutdown = setup.shutdown.child_token();
    let worker = proxy::Worker::new(Arc::clone(&setup.proxy));
    let pool = Arc::clone(worker.pool());
    let w = Arc::clone(&worker);
    let plain = accept::serve(
        "http",
        Source::Handed(http),
        None,
        Some(Arc::clone(&worker)),
        move |peer| proxy::service(Arc::clone(&w), peer, Scheme::Http),
        http_probes,
        shutdown.clone(),
        setup.grace,
    );
    let tls = accept::serve(
        "https",
        Source::Handed(https),
        Some(setup.tls.clone()),
        Some(Arc::clone(&worker)),
        move |peer| proxy::service(Arc::clone(&worker), peer, Scheme::Https),
        https_probes,
        shutdown.clone(),
        setup.grace,
    );
    let sweep = async {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => pool.sweep(),
            }
        }
    };
    tokio::join!(plain, tls, sweep);
}

impl ProxyWorkers {
    /// Waits for every worker to finish draining.
    pub async fn join(self) {
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}
