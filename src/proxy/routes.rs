//! The route table: which upstreams serve which host.
//!
//! The table is an immutable [`Routes`] value behind an `ArcSwap`. The proxy reads it with one
//! atomic load per request and takes no lock; writers build a whole new table and store it in
//! one atomic swap, so a request sees either the old routes or the new ones, never a mix.
//! [`RouteTable::replace`], [`RouteTable::set_owner`] and [`RouteTable::set_owners`] are the
//! only ways to change it.
//!
//! A host has exactly one owner (an app, `[[proxy.routes]]`, or `[server] domain`): a claim
//! on a host another owner holds is refused and reported as a [`Conflict`], never a silent
//! takeover, whichever order deploys and reloads come in. Hosts are compared exactly: the
//! wildcard `*.example.com` and the name `a.example.com` are different hosts (the name wins
//! the lookup for itself), so they may have different owners; two identical wildcards are the
//! same host.
//!
//! State that must outlive a swap (per-route counters, which upstream recently refused
//! connections) is kept in a registry and handed to each new table when it is built, off the
//! request path.
//!
//! The maps hash with foldhash rather than std's SipHash: their keys are hosts and addresses
//! the administrator and the apps declare (a request's Host is only looked up, never
//! inserted), and SipHash was an eighth of a 10,000-route rebuild (`perf` during
//! `bench/scale.sh`'s swaps).

use std::collections::HashMap as StdHashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, Guard};

use super::metrics::RouteMetrics;
use super::shard;
use crate::config::TlsMode;

type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;

/// An empty map for `n` entries.
fn map_for<K, V>(n: usize) -> HashMap<K, V> {
    HashMap::with_capacity_and_hasher(n, Default::default())
}

/// Who declared a route; updates replace one owner's routes without touching the others'.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// `[[proxy.routes]]` in the configuration file.
    Config,
    /// `[server] domain`: Rivetr's own API.
    Server,
    /// A deployed app, by name.
    App(String),
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Config => f.write_str("a [[proxy.routes]] entry of the configuration"),
            Owner::Server => f.write_str("[server] domain of the configuration"),
            Owner::App(name) => write!(f, "app `{name}`"),
        }
    }
}

/// A claim on a host that another owner holds, refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub host: String,
    /// Who holds the host and keeps it.
    pub holder: Owner,
    /// Who asked for it.
    pub claimant: Owner,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "host `{}` of {} belongs to {}",
            self.host, self.claimant, self.holder
        )
    }
}

/// A route as declared: plain data, compared and diffed freely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Lower-cased host, or `*.suffix` wildcard.
    pub host: String,
    pub upstreams: Vec<SocketAddr>,
    pub tls: TlsMode,
    pub owner: Owner,
}

/// One upstream of a route, with its passive-failover state.
#[derive(Debug)]
pub struct Upstream {
    pub addr: SocketAddr,
    state: Arc<UpstreamState>,
}

#[derive(Debug, Default)]
struct UpstreamState {
    /// Milliseconds since the table's epoch until which this upstream is skipped; 0: healthy.
    down_until_ms: AtomicU64,
}

/// A route ready to serve: its upstreams and counters. Built once per table and shared, read
/// only, by every worker's copy of it (see [`WorkerRoutes`]).
#[derive(Debug)]
pub struct Route {
    /// Owned by `[server] domain`: the route to Rivetr's own API.
    pub is_server: bool,
    pub upstreams: Arc<[Upstream]>,
    pub metrics: Arc<RouteMetrics>,
    epoch: Instant,
}

impl Route {
    /// Skips `upstream` for `period`.
    pub fn mark_down(&self, upstream: &Upstream, period: Duration) {
        let until = self.now_ms() + period.as_millis() as u64;
        upstream.state.down_until_ms.store(until, Ordering::Relaxed);
    }

    fn now_ms(&self) -> u64 {
        // Never 0, which means "healthy".
        self.epoch.elapsed().as_millis() as u64 + 1
    }
}

/// One worker's copy of the routes: the shared [`Route`]s and the worker's own round-robin
/// positions, behind an `Arc` of its own, so the reference count a request takes and the
/// position it moves are touched by that worker's thread only. A copy costs two allocations,
/// whatever the number of routes. (With the `Route`s themselves copied per worker, taking a
/// reference on each one's upstreams and counters was a fifth of a 10,000-route rebuild:
/// `perf` during `bench/scale.sh`'s swaps.)
#[derive(Debug, Default)]
struct WorkerRoutes {
    routes: Arc<[Route]>,
    next: Box<[AtomicUsize]>,
}

/// A request's hold on its route: the route's copy of the table and the route's place in it.
/// Cloning it touches the reference count of the calling worker's copy only.
#[derive(Debug, Clone)]
pub struct RouteRef {
    copy: Arc<WorkerRoutes>,
    index: usize,
}

impl std::ops::Deref for RouteRef {
    type Target = Route;

    fn deref(&self) -> &Route {
        &self.copy.routes[self.index]
    }
}

impl RouteRef {
    /// Whether both hold the same `Route` of the same copy.
    pub fn ptr_eq(a: &RouteRef, b: &RouteRef) -> bool {
        Arc::ptr_eq(&a.copy, &b.copy) && a.index == b.index
    }

    /// Upstreams in the order to try them for one request: round-robin, with those that
    /// recently refused connections moved to the back (still tried if all else fails).
    pub fn candidates(&self) -> impl Iterator<Item = &Upstream> {
        let route: &Route = self;
        let n = route.upstreams.len();
        let start = if n > 1 {
            self.copy.next[self.index].fetch_add(1, Ordering::Relaxed) % n
        } else {
            0
        };
        // Health is read once, up front: an upstream marked down while the caller walks the
        // list must not come round a second time. A lone upstream is tried whatever its
        // health, so it costs no clock read.
        let down: u64 = if n > 1 {
            let now = route.now_ms();
            route
                .upstreams
                .iter()
                .take(64)
                .enumerate()
                .filter(|(_, u)| u.is_down(now))
                .fold(0, |mask, (i, _)| mask | (1 << i))
        } else {
            0
        };
        let is_down = move |i: usize| i < 64 && down & (1 << i) != 0;
        let order = move || (0..n).map(move |k| (start + k) % n);
        let healthy = order().filter(move |&i| !is_down(i));
        let sick = order().filter(move |&i| is_down(i));
        healthy.chain(sick).map(move |i| &route.upstreams[i])
    }
}

impl Upstream {
    fn is_down(&self, now_ms: u64) -> bool {
        self.state.down_until_ms.load(Ordering::Relaxed) > now_ms
    }
}

/// An immutable routing table: one per-worker copy of it. The host index, the declarations
/// and the `Route`s are shared by the copies (read-only, so sharing them costs the workers
/// nothing); the reference count and the round-robin positions are the copy's own.
#[derive(Debug, Default)]
pub struct Routes {
    /// Host -> index in `routes`.
    exact: Arc<HashMap<String, usize>>,
    /// `(".example.com", index in routes)`, longest suffix first, so the most specific
    /// wildcard wins.
    wildcards: Arc<Vec<(String, usize)>>,
    routes: Arc<WorkerRoutes>,
    specs: Arc<Vec<RouteSpec>>,
}

impl Routes {
    /// The route for a normalised host: an exact match, else the most specific wildcard.
    pub fn lookup(&self, host: &str) -> Option<RouteRef> {
        let index = match self.exact.get(host) {
            Some(&i) => i,
            None => self
                .wildcards
                .iter()
                .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
                .map(|&(_, i)| i)?,
        };
        Some(RouteRef {
            copy: Arc::clone(&self.routes),
            index,
        })
    }

    /// The declarations this table was built from.
    pub fn specs(&self) -> &[RouteSpec] {
        &self.specs
    }

    pub fn len(&self) -> usize {
        self.specs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }
}

/// The specs of `current` not owned by `owners`, plus those of `specs` whose host none of the
/// former holds; and the conflicts, for those that were left out.
fn claim(
    current: &[RouteSpec],
    owners: &[Owner],
    specs: Vec<RouteSpec>,
) -> (Vec<RouteSpec>, Vec<Conflict>) {
    let others: Vec<RouteSpec> = current
        .iter()
        .filter(|s| !owners.contains(&s.owner))
        .cloned()
        .collect();
    let mut held: HashMap<&str, &Owner> = map_for(others.len());
    held.extend(others.iter().map(|s| (s.host.as_str(), &s.owner)));
    let mut conflicts = Vec::new();
    let mut granted = Vec::new();
    for spec in specs {
        match held.get(spec.host.as_str()) {
            Some(&holder) => conflicts.push(Conflict {
                host: spec.host.clone(),
                holder: holder.clone(),
                claimant: spec.owner.clone(),
            }),
            None => granted.push(spec),
        }
    }
    (others.into_iter().chain(granted).collect(), conflicts)
}

/// One spec per host, in first-seen order; a later spec for the same host wins. Without
/// duplicates (the usual case) the list is returned as it is, with nothing copied.
fn dedup_by_host(specs: Vec<RouteSpec>) -> Vec<RouteSpec> {
    // Per host: the position of its first spec and of its last.
    let mut seen: HashMap<&str, (usize, usize)> = map_for(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        seen.entry(spec.host.as_str())
            .and_modify(|(_, last)| *last = i)
            .or_insert((i, i));
    }
    if seen.len() == specs.len() {
        return specs;
    }
    // take_from[first position] = the position of the spec that wins there.
    let mut take_from = vec![None; specs.len()];
    for &(first, last) in seen.values() {
        take_from[first] = Some(last);
    }
    drop(seen);
    let mut slots: Vec<Option<RouteSpec>> = specs.into_iter().map(Some).collect();
    take_from
        .into_iter()
        .flatten()
        .map(|i| {
            slots[i]
                .take()
                .expect("each host's last spec is taken once")
        })
        .collect()
}

/// The index of `specs` (one per host) by host: exact names, and `*.` wildcards as
/// `(".suffix", index)`, longest suffix first, so the most specific wildcard wins.
fn index_hosts(specs: &[RouteSpec]) -> (HashMap<String, usize>, Vec<(String, usize)>) {
    let mut exact = map_for(specs.len());
    let mut wildcards = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        match spec.host.strip_prefix('*') {
            Some(suffix) => wildcards.push((suffix.to_owned(), i)),
            None => {
                exact.insert(spec.host.clone(), i);
            }
        }
    }
    wildcards.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
    (exact, wildcards)
}

/// From this many routes, a swap gives the allocator's free memory back to the system.
const TRIM_AFTER_ROUTES: usize = 1_000;

/// Gives freed memory back to the system. A large table is rebuilt on a configuration reload
/// right after the configuration was parsed: glibc kept the memory of both (26 MB with 10,000
/// routes, measured with `bench/scale.sh`) in the arena of whichever thread did it.
///
/// Not at once but once the table has been left alone for [`TRIM_WHEN_QUIET`], on a thread of
/// its own: given back after every swap, the memory had to be faulted in again by the next
/// build, which made page faults a third of a 10,000-route rebuild in a burst of reloads
/// (`perf record` during `bench/scale.sh`'s swaps).
fn release_free_memory_soon() {
    use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
    static TRIMMER: std::sync::OnceLock<Option<Sender<()>>> = std::sync::OnceLock::new();
    let trimmer = TRIMMER.get_or_init(|| {
        let (tx, rx) = channel::<()>();
        let quiet_then_trim = move || {
            while rx.recv().is_ok() {
                loop {
                    match rx.recv_timeout(TRIM_WHEN_QUIET) {
                        Ok(()) => continue,
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                crate::memory::release_free_memory();
            }
        };
        std::thread::Builder::new()
            .name("rivetr-trim".into())
            .spawn(quiet_then_trim)
            .ok()
            .map(|_| tx)
    });
    if let Some(tx) = trimmer {
        let _ = tx.send(());
    }
}

/// How long the table stays unchanged before [`release_free_memory_soon`] trims.
const TRIM_WHEN_QUIET: Duration = Duration::from_secs(1);

/// The table in one copy per proxy worker (see [`super::shard`]): the same routes, each copy
/// with a reference count and round-robin positions of its own ([`WorkerRoutes`]), touched
/// by one thread only. Counters and upstream health are shared by the copies. Dereferences to
/// the first copy for everyone outside the request path.
#[derive(Debug)]
pub struct Tables {
    copies: Vec<Routes>,
}

impl Tables {
    /// The copy of the calling proxy worker.
    pub fn for_this_thread(&self) -> &Routes {
        &self.copies[shard::this_thread() % self.copies.len()]
    }
}

impl std::ops::Deref for Tables {
    type Target = Routes;

    fn deref(&self) -> &Routes {
        &self.copies[0]
    }
}

/// Metrics and upstream state that survive table swaps.
#[derive(Debug, Default)]
struct Registry {
    metrics: HashMap<String, Arc<RouteMetrics>>,
    upstreams: HashMap<SocketAddr, Arc<UpstreamState>>,
    /// Hosts retired since the certificates last looked (see [`RouteTable::retire`]).
    retired: Vec<String>,
}

/// The shared handle to the current routes.
#[derive(Debug)]
pub struct RouteTable {
    current: ArcSwap<Tables>,
    /// Serialises writers (and guards the registry); readers never touch it.
    writer: Mutex<Registry>,
    /// Bumped after every change, for those who follow the table (certificates).
    changes: tokio::sync::watch::Sender<u64>,
    epoch: Instant,
}

impl Default for RouteTable {
    fn default() -> Self {
        RouteTable::new()
    }
}

impl RouteTable {
    pub fn new() -> RouteTable {
        RouteTable {
            current: ArcSwap::from_pointee(Tables {
                copies: vec![Routes::default()],
            }),
            writer: Mutex::new(Registry::default()),
            changes: tokio::sync::watch::Sender::new(0),
            epoch: Instant::now(),
        }
    }

    /// The current routes. Lock-free; hold the guard only for the lookup.
    pub fn load(&self) -> Guard<Arc<Tables>> {
        self.current.load()
    }

    /// A clone of the current table's `Arc`, for holding across `.await`.
    pub fn snapshot(&self) -> Arc<Tables> {
        self.current.load_full()
    }

    /// Replaces the whole table. Later specs for the same host win.
    pub fn replace(&self, specs: Vec<RouteSpec>) {
        let mut registry = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        self.swap(&mut registry, Instant::now(), specs);
    }

    /// Notified after every change of the table.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Replaces the table with `f(current specs)`; concurrent updates are serialised.
    fn update(&self, f: impl FnOnce(&[RouteSpec]) -> Vec<RouteSpec>) {
        let mut registry = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let specs = f(self.current.load().specs());
        self.swap(&mut registry, started, specs);
    }

    /// Replaces the routes of one owner, keeping everyone else's. Specs for hosts another
    /// owner holds are left out and returned: the holder keeps them.
    pub fn set_owner(&self, owner: &Owner, specs: Vec<RouteSpec>) -> Vec<Conflict> {
        let mut refused = Vec::new();
        self.update(|current| {
            let (kept, conflicts) = claim(current, std::slice::from_ref(owner), specs);
            refused = conflicts;
            kept
        });
        refused
    }

    /// Replaces the routes of every owner in `owners` with `specs` (whose owners must be among
    /// them), all or nothing: when a spec claims a host an owner outside `owners` holds,
    /// nothing changes and the conflicts are returned.
    pub fn set_owners(&self, owners: &[Owner], specs: Vec<RouteSpec>) -> Result<(), Vec<Conflict>> {
        let mut registry = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let (next, conflicts) = claim(self.current.load().specs(), owners, specs);
        if !conflicts.is_empty() {
            return Err(conflicts);
        }
        self.swap(&mut registry, started, next);
        Ok(())
    }

    /// Says that `hosts` are gone for good (a closed pull request's preview): their counters
    /// go now, and whoever follows the table forgets the rest ([`RouteTable::take_retired`]),
    /// so hosts that never come back do not pile up. A host routed again is left alone.
    pub fn retire(&self, hosts: &[String]) {
        let mut registry = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.current.load();
        for host in hosts {
            let host = host.to_ascii_lowercase();
            if current.specs().iter().any(|s| s.host == host) {
                continue;
            }
            registry.metrics.remove(&host);
            registry.retired.push(host);
        }
        drop(current);
        self.changes.send_modify(|v| *v += 1);
    }

    /// The hosts retired since the last call, not routed again since.
    pub fn take_retired(&self) -> Vec<String> {
        let mut registry = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let retired = std::mem::take(&mut registry.retired);
        let current = self.current.load();
        retired
            .into_iter()
            .filter(|h| !current.specs().iter().any(|s| &s.host == h))
            .collect()
    }

    /// Counters of every route the table has served, by host.
    pub fn metrics(&self) -> Vec<(String, Arc<RouteMetrics>)> {
        let registry = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = registry
            .metrics
            .iter()
            .map(|(h, m)| (h.clone(), Arc::clone(m)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Builds the table of `specs`, stores it, and tells the followers. The time from
    /// `started` (the writer's lock taken) to the store, and to the old table freed, goes to a
    /// debug event: `bench/scale.sh` reads it with `[log] level =
    /// "warn,rivetr::proxy::routes=debug"`.
    fn swap(&self, registry: &mut Registry, started: Instant, specs: Vec<RouteSpec>) {
        let tables = self.build(registry, specs);
        let routes = tables.len();
        let old = self.current.swap(Arc::new(tables));
        let swapped = started.elapsed();
        // Freed here, under the writer's lock, unless a reader still holds it (then by the
        // last reader): not on the request path in the usual case.
        let freed = old.len();
        drop(old);
        let total = started.elapsed();
        self.changes.send_modify(|v| *v += 1);
        if routes.max(freed) >= TRIM_AFTER_ROUTES {
            release_free_memory_soon();
        }
        tracing::debug!(
            routes,
            swap_us = swapped.as_micros() as u64,
            total_us = total.as_micros() as u64,
            "routes swapped"
        );
    }

    /// The per-worker copies of the table of `specs`. Everything but each copy's reference
    /// count and round-robin positions (see [`WorkerRoutes`]) is built once and shared.
    /// (With an allocation per route and copy, and a copy of each declaration, a swap of
    /// 10,000 routes made 90,000 allocations: `bench/scale.sh`.)
    fn build(&self, registry: &mut Registry, specs: Vec<RouteSpec>) -> Tables {
        let specs = Arc::new(dedup_by_host(specs));
        let routes: Arc<[Route]> = specs.iter().map(|s| self.route(registry, s)).collect();
        let (exact, wildcards) = index_hosts(&specs);
        let (exact, wildcards) = (Arc::new(exact), Arc::new(wildcards));
        let copies = (0..shard::table_copies())
            .map(|_| Routes {
                exact: Arc::clone(&exact),
                wildcards: Arc::clone(&wildcards),
                specs: Arc::clone(&specs),
                routes: Arc::new(WorkerRoutes {
                    routes: Arc::clone(&routes),
                    next: (0..routes.len()).map(|_| AtomicUsize::new(0)).collect(),
                }),
            })
            .collect();
        Tables { copies }
    }

    /// The route of `spec`, with the counters and upstream health its host and upstreams had
    /// in earlier tables.
    fn route(&self, registry: &mut Registry, spec: &RouteSpec) -> Route {
        let metrics = match registry.metrics.get(&spec.host) {
            Some(m) => Arc::clone(m),
            None => Arc::clone(registry.metrics.entry(spec.host.clone()).or_default()),
        };
        let upstreams = spec
            .upstreams
            .iter()
            .map(|&addr| Upstream {
                addr,
                state: Arc::clone(registry.upstreams.entry(addr).or_default()),
            })
            .collect();
        Route {
            is_server: spec.owner == Owner::Server,
            upstreams,
            metrics,
            epoch: self.epoch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(host: &str, ports: &[u16]) -> RouteSpec {
        RouteSpec {
            host: host.to_owned(),
            upstreams: ports
                .iter()
                .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
                .collect(),
            tls: TlsMode::None,
            owner: Owner::Config,
        }
    }

    fn port_for(table: &RouteTable, host: &str) -> Option<u16> {
        table
            .load()
            .lookup(host)
            .map(|r| r.candidates().next().unwrap().addr.port())
    }

    #[test]
    fn exact_beats_wildcard_and_longer_wildcards_beat_shorter() {
        let table = RouteTable::new();
        table.replace(vec![
            spec("*.example.com", &[1]),
            spec("*.apps.example.com", &[2]),
            spec("exact.apps.example.com", &[3]),
        ]);
        assert_eq!(port_for(&table, "a.example.com"), Some(1));
        assert_eq!(port_for(&table, "x.y.example.com"), Some(1));
        assert_eq!(port_for(&table, "a.apps.example.com"), Some(2));
        assert_eq!(port_for(&table, "exact.apps.example.com"), Some(3));
        assert_eq!(port_for(&table, "example.com"), None);
        assert_eq!(port_for(&table, "other.org"), None);
    }

    #[test]
    fn a_later_spec_for_a_host_wins_in_the_first_ones_place() {
        let table = RouteTable::new();
        table.replace(vec![
            spec("a.test", &[1]),
            spec("b.test", &[2]),
            spec("a.test", &[3]),
            spec("c.test", &[4]),
            spec("b.test", &[5]),
        ]);
        let routes = table.load();
        let order: Vec<(&str, u16)> = routes
            .specs()
            .iter()
            .map(|s| (s.host.as_str(), s.upstreams[0].port()))
            .collect();
        assert_eq!(order, [("a.test", 3), ("b.test", 5), ("c.test", 4)]);
        assert_eq!(port_for(&table, "b.test"), Some(5));
    }

    #[test]
    fn every_worker_copy_routes_alike_and_shares_the_counters() {
        let table = RouteTable::new();
        table.replace(vec![spec("a.test", &[1]), spec("*.w.test", &[2])]);
        let tables = table.load();
        let counters: Vec<_> = (0..tables.copies.len())
            .map(|i| {
                let copy = &tables.copies[i];
                assert_eq!(copy.lookup("x.w.test").unwrap().upstreams[0].addr.port(), 2);
                let route = copy.lookup("a.test").unwrap();
                route.metrics.count_request();
                Arc::clone(&route.metrics)
            })
            .collect();
        assert!(counters.iter().all(|m| Arc::ptr_eq(m, &counters[0])));
        assert_eq!(counters[0].snapshot().requests, counters.len() as u64);
        // Each copy has a reference count of its own: a request's hold stays on its worker.
        assert!(!RouteRef::ptr_eq(
            &tables.copies[0].lookup("a.test").unwrap(),
            &tables.copies[1].lookup("a.test").unwrap()
        ));
    }

    #[test]
    fn each_worker_copy_keeps_its_own_round_robin_turn() {
        let table = RouteTable::new();
        table.replace(vec![spec("a.test", &[1, 2])]);
        let tables = table.load();
        let first = |copy: &Routes| {
            let route = copy.lookup("a.test").unwrap();
            route.candidates().next().unwrap().addr.port()
        };
        assert_eq!(first(&tables.copies[0]), 1);
        assert_eq!(first(&tables.copies[0]), 2);
        assert_eq!(first(&tables.copies[1]), 1, "copy 1's turn is its own");
    }

    #[test]
    fn round_robin_and_down_upstreams_go_last() {
        let table = RouteTable::new();
        table.replace(vec![spec("a.test", &[1, 2, 3])]);
        let routes = table.load();
        let route = routes.lookup("a.test").unwrap();
        let firsts: Vec<u16> = (0..6)
            .map(|_| route.candidates().next().unwrap().addr.port())
            .collect();
        assert_eq!(firsts, vec![1, 2, 3, 1, 2, 3]);
        let two = route.upstreams.iter().find(|u| u.addr.port() == 2).unwrap();
        route.mark_down(two, Duration::from_secs(60));
        for _ in 0..6 {
            let order: Vec<u16> = route.candidates().map(|u| u.addr.port()).collect();
            assert_ne!(order[0], 2);
            assert_eq!(order[2], 2, "{order:?}");
        }
    }

    #[test]
    fn an_upstream_marked_down_during_the_walk_is_not_offered_twice() {
        let table = RouteTable::new();
        table.replace(vec![spec("a.test", &[1, 2])]);
        let routes = table.load();
        let route = routes.lookup("a.test").unwrap();
        let mut seen = Vec::new();
        for u in route.candidates() {
            route.mark_down(u, Duration::from_secs(60));
            seen.push(u.addr.port());
        }
        seen.sort();
        assert_eq!(seen, vec![1, 2]);
    }

    #[test]
    fn down_state_and_metrics_survive_a_swap() {
        let table = RouteTable::new();
        table.replace(vec![spec("a.test", &[1, 2])]);
        {
            let routes = table.load();
            let route = routes.lookup("a.test").unwrap();
            route.metrics.count_request();
            route.mark_down(&route.upstreams[0], Duration::from_secs(60));
        }
        table.replace(vec![spec("a.test", &[1, 2]), spec("b.test", &[3])]);
        let routes = table.load();
        let route = routes.lookup("a.test").unwrap();
        assert_eq!(route.metrics.snapshot().requests, 1);
        for _ in 0..4 {
            assert_eq!(route.candidates().next().unwrap().addr.port(), 2);
        }
    }

    #[test]
    fn set_owner_replaces_only_that_owners_routes() {
        let table = RouteTable::new();
        table.replace(vec![spec("conf.test", &[1])]);
        let app = Owner::App("blog".into());
        let mut s = spec("blog.test", &[2]);
        s.owner = app.clone();
        table.set_owner(&app, vec![s.clone()]);
        s.upstreams = vec![SocketAddr::from(([127, 0, 0, 1], 5))];
        table.set_owner(&app, vec![s]);
        assert_eq!(port_for(&table, "conf.test"), Some(1));
        assert_eq!(port_for(&table, "blog.test"), Some(5));
        table.set_owner(&app, vec![]);
        assert_eq!(port_for(&table, "blog.test"), None);
        assert_eq!(table.load().len(), 1);
    }

    #[test]
    fn a_retired_host_loses_its_counters_and_is_handed_over_once_unless_routed_again() {
        let table = RouteTable::new();
        let preview = Owner::App("web-pr-7".into());
        table.set_owner(&preview, vec![owned("pr-7.web.test", 2, &preview)]);
        assert!(table.metrics().iter().any(|(h, _)| h == "pr-7.web.test"));
        table.set_owner(&preview, vec![]);
        table.retire(&["PR-7.web.test".to_owned()]);
        assert!(!table.metrics().iter().any(|(h, _)| h == "pr-7.web.test"));
        assert_eq!(table.take_retired(), vec!["pr-7.web.test".to_owned()]);
        assert!(table.take_retired().is_empty(), "handed over once");
        // A host routed again (by the time the certificates look) is not retired.
        let app = Owner::App("other".into());
        table.retire(&["again.test".to_owned()]);
        table.set_owner(&app, vec![owned("again.test", 3, &app)]);
        assert!(table.take_retired().is_empty());
        table.retire(&["again.test".to_owned()]);
        assert!(table.take_retired().is_empty(), "still routed: kept");
        assert_eq!(port_for(&table, "again.test"), Some(3));
    }

    fn owned(host: &str, port: u16, owner: &Owner) -> RouteSpec {
        RouteSpec {
            owner: owner.clone(),
            ..spec(host, &[port])
        }
    }

    #[test]
    fn an_app_cannot_take_a_configured_host_and_the_config_cannot_take_an_apps() {
        let table = RouteTable::new();
        let app = Owner::App("blog".into());
        table
            .set_owners(
                &[Owner::Config, Owner::Server],
                vec![
                    owned("grafana.test", 1, &Owner::Config),
                    owned("paas.test", 2, &Owner::Server),
                ],
            )
            .unwrap();

        // The app's deploy keeps what is free and is refused the rest.
        let refused = table.set_owner(
            &app,
            vec![
                owned("blog.test", 3, &app),
                owned("grafana.test", 3, &app),
                owned("paas.test", 3, &app),
            ],
        );
        assert_eq!(
            refused
                .iter()
                .map(|c| (c.host.as_str(), c.holder.clone()))
                .collect::<Vec<_>>(),
            [
                ("grafana.test", Owner::Config),
                ("paas.test", Owner::Server)
            ]
        );
        assert_eq!(port_for(&table, "grafana.test"), Some(1));
        assert_eq!(port_for(&table, "paas.test"), Some(2));
        assert_eq!(port_for(&table, "blog.test"), Some(3));

        // A reload claiming the app's host changes nothing at all.
        let err = table
            .set_owners(
                &[Owner::Config, Owner::Server],
                vec![
                    owned("new.test", 4, &Owner::Config),
                    owned("blog.test", 4, &Owner::Config),
                ],
            )
            .unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].holder, app);
        assert_eq!(
            err[0].to_string(),
            "host `blog.test` of a [[proxy.routes]] entry of the configuration belongs to app `blog`"
        );
        assert_eq!(port_for(&table, "blog.test"), Some(3));
        assert_eq!(port_for(&table, "new.test"), None);
        assert_eq!(port_for(&table, "grafana.test"), Some(1));
    }

    #[test]
    fn a_wildcard_and_a_name_under_it_are_different_hosts_but_equal_wildcards_conflict() {
        let table = RouteTable::new();
        let app = Owner::App("shop".into());
        table
            .set_owners(&[Owner::Config], vec![owned("*.w.test", 1, &Owner::Config)])
            .unwrap();
        let refused = table.set_owner(
            &app,
            vec![owned("a.w.test", 2, &app), owned("*.w.test", 2, &app)],
        );
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].host, "*.w.test");
        assert_eq!(port_for(&table, "a.w.test"), Some(2));
        assert_eq!(port_for(&table, "b.w.test"), Some(1));
    }
}
