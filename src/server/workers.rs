//! Proxy worker threads: one single-threaded tokio runtime per core. The main runtime
//! accepts on the `http` and `https` sockets and hands the connections to the workers in
//! turn (plain HTTP to half of them, see [`plan`]); each worker serves its connections and
//! keeps its own connections to apps.
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

/// How many workers run, and how many of them take plain-HTTP connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Worker threads; TLS connections go to each in turn.
    pub threads: usize,
    /// The first this many workers take the plain-HTTP connections, in turn.
    pub plain: usize,
}

/// The workers for `configured` threads (0: one per CPU, like nginx's `worker_processes
/// auto`). Plain HTTP goes to half of them, at least one: it costs the proxy little CPU per
/// request, and one worker that wakes with more connections' work to do switches context less
/// often per request (bench/proxy.sh on 2 CPUs, with the load generator and the app beside the
/// proxy: row 1 at 1.03-1.04 of nginx on one worker, 0.97 on two). TLS goes to all: its
/// encryption keeps a worker busy, and on one worker row 2 (HTTPS keep-alive) reached 1.00 of
/// nginx with 11 % of the CPUs idle, on two 1.08 with 5-9 % idle.
pub fn plan(configured: usize) -> Plan {
    let threads = if configured > 0 {
        configured
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    Plan {
        threads,
        plain: (threads / 2).max(1),
    }
}

/// Starts the workers of `plan`.
pub fn spawn(plan: Plan, setup: WorkerSetup) -> std::io::Result<ProxyWorkers> {
    let mut workers = ProxyWorkers {
        threads: Vec::new(),
        probes: Vec::new(),
        http: Vec::new(),
        https: Vec::new(),
    };
    for i in 0..plan.threads {
        let http = (i < plan.plain).then(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let (probe, probes) = probe("http");
            workers.http.push(tx);
            workers.probes.push(probe);
            (rx, probes)
        });
        let (https_tx, https_rx) = mpsc::unbounded_channel();
        let (https_probe, https_probes) = probe("https");
        let setup = setup.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(format!("rivetr-proxy-{i}"))
            .spawn(move || {
                proxy::shard::set_for_this_thread(i);
                runtime.block_on(run_worker(http, (https_rx, https_probes), setup));
            })?;
        workers.threads.push(thread);
        workers.probes.push(https_probe);
        workers.https.push(https_tx);
    }
    Ok(workers)
}

/// A listener's connections as handed to one worker, and the watchdog's probes of it.
type Handed = (mpsc::UnboundedReceiver<Handoff>, accept::ProbeReceiver);

async fn run_worker(http: Option<Handed>, https: Handed, setup: WorkerSetup) {
    // Every connection polls the shutdown token each time it wakes, and a token's every
    // method takes its lock: a token of this worker's own keeps that lock on one core.
    let shutdown = setup.shutdown.child_token();
    let worker = proxy::Worker::new(Arc::clone(&setup.proxy));
    let pool = Arc::clone(worker.pool());
    // One accept loop per listener this worker takes, both serving through `worker`.
    let listen = |name, (connections, probes): Handed, tls, scheme| {
        let w = Arc::clone(&worker);
        accept::serve(
            name,
            Source::Handed(connections),
            tls,
            Some(Arc::clone(&worker)),
            move |peer| proxy::service(Arc::clone(&w), peer, scheme),
            probes,
            shutdown.clone(),
            setup.grace,
        )
    };
    let plain = http.map(|http| listen("http", http, None, Scheme::Http));
    let plain = async {
        if let Some(plain) = plain {
            plain.await
        }
    };
    let tls = listen("https", https, Some(setup.tls.clone()), Scheme::Https);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_goes_to_half_the_workers_and_tls_to_all() {
        let split = |n| {
            let p = plan(n);
            (p.threads, p.plain)
        };
        assert_eq!(split(1), (1, 1));
        assert_eq!(split(2), (2, 1));
        assert_eq!(split(3), (3, 1));
        assert_eq!(split(4), (4, 2));
    }

    #[test]
    fn zero_workers_means_one_per_cpu() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(plan(0).threads, cpus);
        assert_eq!(plan(0).plain, (cpus / 2).max(1));
    }
}
