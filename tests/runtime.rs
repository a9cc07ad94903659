//! The container runtime conformance suite: the same test functions run against rootful
//! Podman, rootless Podman and Docker, each at the socket `scripts/test-env/engines.sh`
//! exports (`RIVETR_TEST_PODMAN_SOCKET`, `RIVETR_TEST_PODMAN_ROOTLESS_SOCKET`,
//! `RIVETR_TEST_DOCKER_SOCKET`). A missing engine is a failure with `CI=true` and a loud
//! skip otherwise. Every test names its containers and images uniquely and removes them,
//! so the tests run in parallel and leave nothing behind.

use crate::common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use rivetr::runtime::{
    BuildLimits, BuildSpec, BuiltImage, ContainerRuntime, ContainerState, DockerRuntime,
    EngineInfo, EngineKind, ExecSpec, ImageFilter, LABEL_APP, LABEL_DEPLOYMENT, LabelFilter,
    Limits, LogLine, LogOptions, LogSource, NetworkAttach, NetworkSpec, Networks, PodmanRuntime,
    PortSpec, RunSpec, RuntimeError, VolumeMount,
};

/// The local base image the harness imports into every engine.
const BASE: &str = "localhost/busybox:test";
/// Label every test object carries, so a test's cleanup finds exactly its own.
const TEST_LABEL: &str = "io.rivetr.test";

// ---------------------------------------------------------------------------------------
// The engines and the per-test context
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Which {
    Podman,
    PodmanRootless,
    Docker,
}

impl Which {
    fn var(self) -> &'static str {
        match self {
            Which::Podman => "RIVETR_TEST_PODMAN_SOCKET",
            Which::PodmanRootless => "RIVETR_TEST_PODMAN_ROOTLESS_SOCKET",
            Which::Docker => "RIVETR_TEST_DOCKER_SOCKET",
        }
    }

    fn kind(self) -> EngineKind {
        match self {
            Which::Podman | Which::PodmanRootless => EngineKind::Podman,
            Which::Docker => EngineKind::Docker,
        }
    }

    fn connect(self, socket: &str) -> Arc<dyn ContainerRuntime> {
        match self.kind() {
            EngineKind::Podman => Arc::new(PodmanRuntime::connect(socket).unwrap()),
            EngineKind::Docker => Arc::new(DockerRuntime::connect(socket).unwrap()),
        }
    }
}

/// Written past libtest's capture, so a skip is seen even when the test "passes".
fn shout(text: &str) {
    let mut err = std::io::stderr();
    let _ = writeln!(err, "\n!!!!!!!! {text} !!!!!!!!\n");
}

/// One test's view of one engine. Dropping it removes every container and image the test
/// labelled with its id.
struct Ctx {
    which: Which,
    socket: String,
    rt: Arc<dyn ContainerRuntime>,
    info: EngineInfo,
    /// Unique per test and process: `rt-<case>-<pid>-<n>`.
    id: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Ctx {
    /// The engine for `which`, or `None` after [`common::skip`] when its socket is not set.
    async fn new(which: Which, case: &str) -> Option<Ctx> {
        let var = which.var();
        let Some(socket) = std::env::var(var).ok().filter(|s| !s.is_empty()) else {
            common::skip(
                &format!("{case} on {which:?}"),
                &format!("{var} is not set (run through scripts/test-env/engines.sh)"),
            );
            return None;
        };
        let rt = which.connect(&socket);
        let info = rt
            .info()
            .await
            .unwrap_or_else(|e| panic!("{which:?} at {socket} does not answer: {e}"));
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        // Process ids repeat across runs; the clock makes the id (and so the build context)
        // new to the engine's cache every run.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let id = format!(
            "rt-{}-{}-{n}-{nanos:x}",
            case.replace('_', "-"),
            std::process::id()
        );
        Some(Ctx {
            which,
            socket,
            rt,
            info,
            id,
        })
    }

    /// A unique container name or image name part for this test.
    fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.id)
    }

    /// A unique image tag for this test.
    fn tag(&self, what: &str) -> String {
        format!("localhost/{}-{what}:1", self.id)
    }

    fn labels(&self, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([(TEST_LABEL.to_owned(), self.id.clone())]);
        for (k, v) in extra {
            labels.insert((*k).to_owned(), (*v).to_owned());
        }
        labels
    }

    /// A busybox container running `script` with `sh -c`.
    fn spec(&self, what: &str, script: &str) -> RunSpec {
        RunSpec {
            image: BASE.to_owned(),
            name: self.name(what),
            cmd: vec!["sh".into(), "-c".into(), script.into()],
            labels: self.labels(&[]),
            ..RunSpec::default()
        }
    }

    async fn build(
        &self,
        tag: &str,
        files: &[(&str, &str)],
        args: &[(&str, &str)],
    ) -> (Result<BuiltImage, RuntimeError>, Vec<String>) {
        self.build_within(tag, files, args, BuildLimits::default())
            .await
    }

    async fn build_within(
        &self,
        tag: &str,
        files: &[(&str, &str)],
        args: &[(&str, &str)],
        limits: BuildLimits,
    ) -> (Result<BuiltImage, RuntimeError>, Vec<String>) {
        let spec = || BuildSpec {
            context: tar_context(files),
            dockerfile: "Dockerfile".to_owned(),
            build_args: args
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            tag: tag.to_owned(),
            labels: self.labels(&[]),
            limits,
        };
        let mut lines = Vec::new();
        let mut result = self
            .rt
            .build(spec(), &mut |l: &str| lines.push(l.to_owned()))
            .await;
        // Podman 4.3 fails a build whose cached layer another test's image removal took away
        // at that moment; the pipeline builds again once on it, and so does this harness.
        if let Err(e) = &result
            && e.to_string().contains("layer not known")
        {
            lines.clear();
            result = self
                .rt
                .build(spec(), &mut |l: &str| lines.push(l.to_owned()))
                .await;
        }
        (result, lines)
    }

    /// Polls inspect until the container has ended.
    async fn wait_exited(&self, id: &str, within: Duration) -> rivetr::runtime::ContainerInfo {
        let deadline = Instant::now() + within;
        loop {
            let info = self.rt.inspect(id).await.unwrap();
            if info.state == ContainerState::Exited && info.engine_state == "exited" {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "{id} has not exited after {within:?}: {info:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// All lines the container wrote so far.
    async fn all_logs(&self, id: &str) -> Vec<LogLine> {
        self.rt
            .logs(id, LogOptions::default())
            .map(|l| l.unwrap())
            .collect()
            .await
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // Async cleanup from a destructor: a fresh client on a fresh runtime, in a thread,
        // joined, so the test's objects are gone before the next test is reported.
        let (which, socket, id) = (self.which, self.socket.clone(), self.id.clone());
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let engine = which.connect(&socket);
                let mine = [LabelFilter::eq(TEST_LABEL, id.clone())];
                for c in engine.list(&mine).await.unwrap_or_default() {
                    if let Err(e) = engine.remove(&c.id).await {
                        shout(&format!("cleanup: cannot remove container {}: {e}", c.name));
                    }
                }
                let images = engine
                    .list_images(&ImageFilter::Labels(mine.to_vec()))
                    .await
                    .unwrap_or_default();
                for image in images {
                    if let Err(e) = engine.remove_image(&image.id).await {
                        shout(&format!("cleanup: cannot remove image {}: {e}", image.id));
                    }
                }
                for network in engine.list_networks(&mine).await.unwrap_or_default() {
                    if let Err(e) = engine.remove_network(&network.name).await {
                        shout(&format!(
                            "cleanup: cannot remove network {}: {e}",
                            network.name
                        ));
                    }
                }
                for volume in engine.list_volumes(&mine).await.unwrap_or_default() {
                    if let Err(e) = engine.remove_volume(&volume.name).await {
                        shout(&format!(
                            "cleanup: cannot remove volume {}: {e}",
                            volume.name
                        ));
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// A tar of `files`, streamed in small chunks like a real context read from disk.
fn tar_context(files: &[(&str, &str)]) -> rivetr::runtime::BuildContext {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, text) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, path, text.as_bytes())
            .unwrap();
    }
    let bytes = builder.into_inner().unwrap();
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(1000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(chunks))
}

/// GET over HTTP/1.1 until it answers 200, up to `within`.
async fn http_ok(addr: SocketAddr, path: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let path_owned = path.to_owned();
        let answer =
            tokio::task::spawn_blocking(move || common::http_get(addr, &path_owned, "app.test"))
                .await
                .unwrap();
        match answer {
            Ok((200, body)) => return body,
            other if Instant::now() > deadline => {
                panic!("{addr}{path} never answered 200 within {within:?}: {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// This machine's IPv4 and IPv6 addresses that are not loopback.
fn non_loopback_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, which is walked read-only and freed once below.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return out;
        }
        let mut cur = list;
        while !cur.is_null() {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(addr as *const libc::sockaddr_in);
                        out.push(IpAddr::from(
                            u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                        ));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(addr as *const libc::sockaddr_in6);
                        out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    out.retain(|ip| match ip {
        IpAddr::V4(v4) => !v4.is_loopback(),
        // Link-local v6 needs a scope id to connect to; global ones are enough here.
        IpAddr::V6(v6) => !v6.is_loopback() && (v6.segments()[0] & 0xffc0) != 0xfe80,
    });
    out
}

// ---------------------------------------------------------------------------------------
// The cases: each takes the engine's context
// ---------------------------------------------------------------------------------------

async fn info_names_the_engine(c: Ctx) {
    let info = &c.info;
    assert_eq!(info.engine, c.which.kind(), "{info:?}");
    assert!(
        !info.version.is_empty() && !info.api_version.is_empty(),
        "{info:?}"
    );
    assert_eq!(info.rootless, c.which == Which::PodmanRootless, "{info:?}");
    assert_eq!(info.socket, c.socket);
    // Podman 4 cannot report OOM kills (containers/podman#13102); Rivetr must say so.
    let podman_4 = c.which.kind() == EngineKind::Podman && info.version.starts_with("4.");
    assert_eq!(info.reports_oom, !podman_4, "{info:?}");
}

/// Unique from its first step on (`UNIQUE` is replaced by the test's id): two tests sharing
/// a cached step would see each other's cleanup remove it.
const APP_DOCKERFILE: &str = "FROM localhost/busybox:test
RUN echo UNIQUE > /first
ARG GREETING=unset
RUN echo \"$GREETING\" > /greeting
COPY hello.txt /hello.txt
RUN echo built-UNIQUE > /unique
CMD [\"sh\", \"-c\", \"cat /greeting /hello.txt /unique\"]
";

async fn build_from_a_tar_context(c: Ctx) {
    let tag = c.tag("app");
    let dockerfile = APP_DOCKERFILE.replace("UNIQUE", &c.id);
    let (built, lines) = c
        .build(
            &tag,
            &[
                ("Dockerfile", &dockerfile),
                ("hello.txt", "hello from the context\n"),
            ],
            &[("GREETING", "hi-from-build-arg")],
        )
        .await;
    let built = built.unwrap_or_else(|e| panic!("build failed: {e}\n{lines:#?}"));
    assert!(built.id.starts_with("sha256:"), "{built:?}");
    assert_eq!(built.tag, tag);
    assert!(built.steps >= 6, "{built:?}");
    assert_eq!(
        built.cached_steps, 0,
        "a unique context cannot be cached: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("RUN echo \"$GREETING\" > /greeting")),
        "output lines were not streamed: {lines:#?}"
    );

    // The image runs and holds what the build put in it.
    let mut spec = c.spec("run", "");
    spec.image = tag.clone();
    spec.cmd.clear();
    let id = c.rt.run(&spec).await.unwrap().id;
    c.wait_exited(&id, Duration::from_secs(30)).await;
    let out: Vec<String> = c.all_logs(&id).await.into_iter().map(|l| l.line).collect();
    assert_eq!(
        out,
        vec![
            "hi-from-build-arg".to_owned(),
            "hello from the context".to_owned(),
            format!("built-{}", c.id),
        ]
    );

    // Images are found by label and by reference.
    let by_label =
        c.rt.list_images(&ImageFilter::Labels(vec![LabelFilter::eq(
            TEST_LABEL, &c.id,
        )]))
        .await
        .unwrap();
    assert!(by_label.iter().any(|i| i.id == built.id), "{by_label:?}");
    // Two labels at once (Podman 4.3's own filter answers nothing for two).
    let both = |value: &str| {
        ImageFilter::Labels(vec![
            LabelFilter::key(TEST_LABEL),
            LabelFilter::eq(TEST_LABEL, value),
        ])
    };
    let by_two = c.rt.list_images(&both(&c.id)).await.unwrap();
    assert!(by_two.iter().any(|i| i.id == built.id), "{by_two:?}");
    let by_wrong = c.rt.list_images(&both("another-test")).await.unwrap();
    assert!(by_wrong.is_empty(), "{by_wrong:?}");
    let by_ref =
        c.rt.list_images(&ImageFilter::Reference(tag.clone()))
            .await
            .unwrap();
    assert_eq!(by_ref.len(), 1, "{by_ref:?}");
    assert!(by_ref[0].tags.contains(&tag), "{by_ref:?}");
    assert_eq!(by_ref[0].labels.get(TEST_LABEL), Some(&c.id));
}

async fn unchanged_rebuild_hits_the_cache(c: Ctx) {
    let tag = c.tag("cached");
    let dockerfile = APP_DOCKERFILE.replace("UNIQUE", &c.id);
    let files = [("Dockerfile", dockerfile.as_str()), ("hello.txt", "same\n")];
    let (first, lines) = c.build(&tag, &files, &[]).await;
    let first = first.unwrap_or_else(|e| panic!("{e}\n{lines:#?}"));
    let started = Instant::now();
    let (second, lines) = c.build(&tag, &files, &[]).await;
    let elapsed = started.elapsed();
    let second = second.unwrap_or_else(|e| panic!("{e}\n{lines:#?}"));
    assert_eq!(second.id, first.id, "an unchanged rebuild made a new image");
    // Every step after FROM comes from the cache.
    assert_eq!(
        second.cached_steps,
        second.steps - 1,
        "{second:?}\n{lines:#?}"
    );
    shout(&format!(
        "{:?}: unchanged rebuild took {elapsed:?} ({} of {} steps cached)",
        c.which, second.cached_steps, second.steps
    ));
}

async fn failing_run_reports_the_step_and_its_output(c: Ctx) {
    let tag = c.tag("broken");
    // The failing RUN comes right after FROM, so the failed build leaves no layers behind.
    let dockerfile = format!(
        "FROM localhost/busybox:test\nRUN echo {id}-on-stdout; echo {id}-on-stderr >&2; exit 3\nRUN echo never\n",
        id = c.id
    );
    let (result, lines) = c.build(&tag, &[("Dockerfile", &dockerfile)], &[]).await;
    let err = result.expect_err("the build should fail");
    let text = err.to_string();
    let RuntimeError::BuildFailed {
        step,
        total,
        instruction,
        message,
        output,
    } = err
    else {
        panic!("not a BuildFailed: {text}");
    };
    // Three Dockerfile steps, plus the LABEL step both engines append for the build's labels.
    assert_eq!((step, total), (2, 4), "{text}\n{lines:#?}");
    assert!(
        instruction.starts_with("RUN echo") && instruction.contains("exit 3"),
        "{text}"
    );
    assert!(!message.is_empty(), "{text}");
    for want in [format!("{}-on-stdout", c.id), format!("{}-on-stderr", c.id)] {
        assert!(output.contains(&want), "{want} missing from {output:?}");
        assert!(
            text.contains(&want),
            "{want} missing from the error text: {text}"
        );
    }
    assert!(text.contains("step 2/4"), "{text}");
    let tagged =
        c.rt.list_images(&ImageFilter::Reference(tag))
            .await
            .unwrap();
    assert!(
        tagged.is_empty(),
        "a failed build tagged an image: {tagged:?}"
    );
}

/// Builds run within their limits where the engine can enforce them (memory above 2 GiB
/// included), a step over the memory limit fails as [`RuntimeError::BuildOutOfMemory`], a
/// build over its time limit as [`RuntimeError::BuildTimedOut`]; an engine that cannot
/// enforce limits builds without them and says so in the output.
async fn builds_run_within_their_limits(c: Ctx) {
    let shows = format!(
        "FROM localhost/busybox:test\nRUN echo {}; echo \"quota $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max) memory $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)\"\n",
        c.id
    );
    let limits = BuildLimits {
        memory_bytes: Some(3 << 30),
        cpus: Some(0.5),
        timeout: Some(Duration::from_secs(120)),
    };
    let (built, lines) = c
        .build_within(&c.tag("shows"), &[("Dockerfile", &shows)], &[], limits)
        .await;
    built.unwrap_or_else(|e| panic!("{e}\n{lines:#?}"));
    if c.info.limits_enforced {
        let want = format!("quota 50000 memory {}", 3u64 << 30);
        assert!(lines.contains(&want), "{want} not in {lines:#?}");
    } else {
        assert!(
            lines
                .iter()
                .any(|l| l.contains("cannot enforce memory and CPU limits on builds")),
            "{lines:#?}"
        );
    }

    let allocates = format!(
        "FROM localhost/busybox:test\nRUN echo {}; x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo ${{#x}}\n",
        c.id
    );
    let small = BuildLimits {
        memory_bytes: Some(64 << 20),
        ..limits
    };
    if c.info.limits_enforced {
        let (result, lines) = c
            .build_within(
                &c.tag("allocates"),
                &[("Dockerfile", &allocates)],
                &[],
                small,
            )
            .await;
        let err = result.expect_err("a step over the memory limit should fail");
        assert!(
            matches!(err, RuntimeError::BuildOutOfMemory { step: 2, limit_bytes, .. } if limit_bytes == 64 << 20),
            "{err}\n{lines:#?}"
        );
        assert!(err.to_string().contains("memory limit of 64 MiB"), "{err}");
    }

    let slow = format!(
        "FROM localhost/busybox:test\nRUN echo {}; sleep 20; echo done\n",
        c.id
    );
    let quick = BuildLimits {
        timeout: Some(Duration::from_secs(3)),
        ..limits
    };
    let started = Instant::now();
    let (result, lines) = c
        .build_within(&c.tag("slow"), &[("Dockerfile", &slow)], &[], quick)
        .await;
    let err = result.expect_err("a build over its time limit should fail");
    assert!(
        matches!(err, RuntimeError::BuildTimedOut { limit } if limit == Duration::from_secs(3)),
        "{err}\n{lines:#?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// The app used by several cases: busybox httpd serving its environment and its cgroup
/// limits as files.
const WEB_SCRIPT: &str = r#"mkdir -p /www
echo "$GREETING" > /www/greeting
cat /sys/fs/cgroup/memory/memory.limit_in_bytes > /www/memory 2>/dev/null || cat /sys/fs/cgroup/memory.max > /www/memory
cat /sys/fs/cgroup/pids/pids.max > /www/pids 2>/dev/null || cat /sys/fs/cgroup/pids.max > /www/pids
cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us > /www/cpu 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max > /www/cpu
exec httpd -f -p 8080 -h /www"#;

fn web_spec(c: &Ctx, what: &str) -> RunSpec {
    let mut spec = c.spec(what, WEB_SCRIPT);
    spec.env = vec![("GREETING".into(), format!("hello-{}", c.id))];
    spec.labels = c.labels(&[(LABEL_APP, &c.id), (LABEL_DEPLOYMENT, "d1")]);
    spec.port = Some(PortSpec {
        container_port: 8080,
        host_port: None,
    });
    spec.limits = Limits {
        memory_bytes: Some(64 << 20),
        cpus: Some(0.5),
        pids: Some(64),
    };
    spec.stop_timeout = Some(Duration::from_secs(2));
    spec
}

async fn run_publishes_on_loopback_only_with_env_labels_and_limits(c: Ctx) {
    let info = c.rt.run(&web_spec(&c, "web")).await.unwrap();
    assert_eq!(info.state, ContainerState::Running, "{info:?}");
    assert_eq!(info.labels.get(LABEL_APP), Some(&c.id));
    assert_eq!(
        info.labels.get(LABEL_DEPLOYMENT).map(String::as_str),
        Some("d1")
    );
    assert!(info.started_at.is_some(), "{info:?}");
    let port = info.host_port.expect("a published host port");
    assert_ne!(port, 8080, "the engine should pick the host port");

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let body = http_ok(addr, "/greeting", Duration::from_secs(20)).await;
    assert_eq!(body.trim(), format!("hello-{}", c.id));

    let others = non_loopback_addresses();
    assert!(
        !others.is_empty(),
        "no non-loopback address to check against"
    );
    for ip in others {
        let reached =
            TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(1));
        assert!(
            reached.is_err(),
            "port {port} answers on {ip}: it must be 127.0.0.1 only"
        );
    }

    let memory = http_ok(addr, "/memory", Duration::from_secs(5)).await;
    let pids = http_ok(addr, "/pids", Duration::from_secs(5)).await;
    let cpu = http_ok(addr, "/cpu", Duration::from_secs(5)).await;
    let seen = (memory.trim(), pids.trim(), cpu.trim());
    if c.info.limits_enforced {
        assert_eq!(
            seen,
            ("67108864", "64", "50000"),
            "limits inside the container"
        );
    } else {
        // Rootless Podman on cgroups v1 (these VMs) accepts limits and ignores them. What is
        // checked is that Rivetr says so, truthfully.
        shout(&format!(
            "{:?}: engine reports limits are NOT enforced (rootless, cgroups {:?}); container sees memory={} pids={} cpu={}",
            c.which, c.info.cgroup_version, seen.0, seen.1, seen.2
        ));
        assert_ne!(
            seen.0, "67108864",
            "limits are enforced after all; fix limits_enforced"
        );
    }
}

async fn a_taken_host_port_is_port_in_use(c: Ctx) {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut spec = web_spec(&c, "clash");
    spec.port = Some(PortSpec {
        container_port: 8080,
        host_port: Some(port),
    });
    let err = c.rt.run(&spec).await.expect_err("the port is taken");
    assert!(matches!(err, RuntimeError::PortInUse { .. }), "{err:?}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    assert!(
        !err.to_string().contains(&format!("hello-{}", c.id)),
        "env leaked: {err}"
    );
    // A failed run leaves no container behind.
    let left =
        c.rt.list(&[LabelFilter::eq(TEST_LABEL, &c.id)])
            .await
            .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

async fn a_missing_image_is_image_not_found(c: Ctx) {
    let mut spec = c.spec("noimage", "true");
    spec.image = c.tag("does-not-exist");
    let err = c.rt.run(&spec).await.expect_err("no such image");
    assert!(matches!(err, RuntimeError::ImageNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains(&spec.image), "{err}");
}

async fn logs_follow_new_lines_and_keep_stdout_and_stderr_apart(c: Ctx) {
    let script =
        r#"i=0; while true; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); sleep 0.1; done"#;
    let id = c.rt.run(&c.spec("logs", script)).await.unwrap().id;
    tokio::time::sleep(Duration::from_millis(800)).await;

    // What was written before following began.
    let before = c.all_logs(&id).await;
    let last_before = counter_max(&before, LogSource::Stdout);
    assert!(
        last_before.is_some(),
        "no output before following: {before:?}"
    );
    let last_before = last_before.unwrap();
    for l in &before {
        let want = if l.source == LogSource::Stdout {
            "out "
        } else {
            "err "
        };
        assert!(
            l.line.starts_with(want),
            "{l:?} came through the wrong stream"
        );
    }

    let tail =
        c.rt.logs(
            &id,
            LogOptions {
                tail: Some(2),
                ..LogOptions::default()
            },
        )
        .collect::<Vec<_>>()
        .await;
    assert_eq!(tail.len(), 2, "tail=2 gave {tail:?}");

    let since_future = SystemTime::now() + Duration::from_secs(3600);
    let none =
        c.rt.logs(
            &id,
            LogOptions {
                since: Some(since_future),
                ..LogOptions::default()
            },
        )
        .collect::<Vec<_>>()
        .await;
    assert!(none.is_empty(), "since a future time gave {none:?}");

    // Following with tail=0: only lines written from now on, and they keep coming.
    let mut stream = c.rt.logs(
        &id,
        LogOptions {
            follow: true,
            tail: Some(0),
            since: None,
        },
    );
    let mut after = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while after.len() < 20 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = tokio::time::timeout(left, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no new lines while following; got {after:?}"))
            .expect("the follow stream ended early")
            .unwrap();
        after.push(line);
    }
    drop(stream);
    let first_out = after
        .iter()
        .filter(|l| l.source == LogSource::Stdout)
        .find_map(|l| counter(&l.line));
    assert!(
        first_out.is_some_and(|n| n > last_before),
        "following replayed old lines (last before {last_before}): {after:?}"
    );
    for source in [LogSource::Stdout, LogSource::Stderr] {
        let want = if source == LogSource::Stdout {
            "out "
        } else {
            "err "
        };
        let of_source: Vec<&LogLine> = after.iter().filter(|l| l.source == source).collect();
        assert!(of_source.len() >= 5, "too few {source:?} lines: {after:?}");
        assert!(
            of_source.iter().all(|l| l.line.starts_with(want)),
            "{after:?}"
        );
    }
    c.rt.stop(&id, Duration::from_secs(1)).await.unwrap();
}

fn counter(line: &str) -> Option<u64> {
    line.split_whitespace().nth(1)?.parse().ok()
}

fn counter_max(lines: &[LogLine], source: LogSource) -> Option<u64> {
    lines
        .iter()
        .filter(|l| l.source == source)
        .filter_map(|l| counter(&l.line))
        .max()
}

async fn exit_code_three_is_reported(c: Ctx) {
    let id = c.rt.run(&c.spec("exit3", "exit 3")).await.unwrap().id;
    let info = c.wait_exited(&id, Duration::from_secs(30)).await;
    assert_eq!(info.exit_code, Some(3), "{info:?}");
    assert!(!info.oom_killed, "{info:?}");
    assert!(info.failure().is_none(), "{info:?}");
    // Both times are known. (For a process this short, both engines may record the end a
    // fraction of a millisecond before the start, so their order is not checked.)
    assert!(
        info.started_at.is_some() && info.finished_at.is_some(),
        "{info:?}"
    );
}

async fn memory_limit_breach_is_oom_killed(c: Ctx) {
    // After a second (like an app that runs a while, and so the engine's OOM watch is in
    // place: a process killed within milliseconds of starting can beat Docker's), dd
    // becomes PID 1 and allocates a 256 MiB buffer against a 32 MiB limit.
    let mut spec = c.spec(
        "oom",
        "sleep 1; exec dd if=/dev/zero of=/dev/null bs=256M count=1",
    );
    spec.limits.memory_bytes = Some(32 << 20);
    let id = c.rt.run(&spec).await.unwrap().id;
    let info = c.wait_exited(&id, Duration::from_secs(60)).await;
    if !c.info.limits_enforced {
        shout(&format!(
            "{:?}: memory limits are NOT enforced here (rootless, cgroups {:?}); checking that the container was indeed not OOM-killed",
            c.which, c.info.cgroup_version
        ));
        assert!(!info.oom_killed, "limits are enforced after all: {info:?}");
        assert_eq!(info.exit_code, Some(0), "{info:?}");
        return;
    }
    assert!(info.oom_killed, "not reported as OOM-killed: {info:?}");
    assert_eq!(info.exit_code, Some(137), "{info:?}");
    let err = info
        .failure()
        .expect("an OOM-killed container has a failure");
    assert!(matches!(err, RuntimeError::OutOfMemory { .. }), "{err:?}");
    assert!(err.to_string().contains(&spec.name), "{err}");
    assert_eq!(info.memory_limit_bytes, Some(32 << 20), "{info:?}");
    if !c.info.reports_oom {
        assert!(
            info.oom_inferred && err.to_string().contains("inferred"),
            "{err}"
        );
    }
    shout(&format!(
        "{:?}: OOM kill {} ({err})",
        c.which,
        if info.oom_inferred {
            "inferred by Rivetr; the engine did not flag it"
        } else {
            "flagged by the engine"
        }
    ));
}

async fn stop_honours_its_timeout(c: Ctx) {
    let mut spec = c.spec(
        "stubborn",
        r#"trap "" TERM; while true; do sleep 0.1; done"#,
    );
    // The container's own default is long, so only the call's timeout can explain a quick stop.
    spec.stop_timeout = Some(Duration::from_secs(30));
    // A memory limit too: the SIGKILL of a stop must not pass for an OOM kill.
    spec.limits.memory_bytes = Some(64 << 20);
    let id = c.rt.run(&spec).await.unwrap().id;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    c.rt.stop(&id, Duration::from_secs(2)).await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(7),
        "stop with a 2 s timeout took {took:?}"
    );
    let info = c.rt.inspect(&id).await.unwrap();
    assert_eq!(info.state, ContainerState::Exited, "{info:?}");
    assert_eq!(
        info.exit_code,
        Some(137),
        "SIGTERM was ignored, so SIGKILL: {info:?}"
    );
    assert!(!info.oom_killed, "a stop is no OOM kill: {info:?}");
    // Stopping again is not an error.
    c.rt.stop(&id, Duration::from_secs(2)).await.unwrap();
    shout(&format!(
        "{:?}: stop(2 s) of a container ignoring SIGTERM took {took:?}",
        c.which
    ));
}

async fn list_by_label_finds_only_rivetrs_containers(c: Ctx) {
    let app = c.id.clone();
    for (what, deployment) in [("d1", "d1"), ("d2", "d2")] {
        let mut spec = c.spec(what, "sleep 60");
        spec.labels = c.labels(&[(LABEL_APP, &app), (LABEL_DEPLOYMENT, deployment)]);
        c.rt.create(&spec).await.unwrap();
    }
    let mut foreign = c.spec("foreign", "sleep 60");
    foreign.labels = c.labels(&[("com.example.app", &app)]);
    c.rt.create(&foreign).await.unwrap();

    let names = |list: Vec<rivetr::runtime::ContainerSummary>| {
        let mut n: Vec<String> = list.into_iter().map(|s| s.name).collect();
        n.sort();
        n
    };
    let of_app =
        c.rt.list(&[LabelFilter::eq(LABEL_APP, &app)])
            .await
            .unwrap();
    assert!(
        of_app.iter().all(|s| s.state == ContainerState::Created),
        "{of_app:?}"
    );
    assert_eq!(names(of_app), vec![c.name("d1"), c.name("d2")]);

    let one =
        c.rt.list(&[
            LabelFilter::eq(LABEL_APP, &app),
            LabelFilter::eq(LABEL_DEPLOYMENT, "d2"),
        ])
        .await
        .unwrap();
    assert_eq!(names(one), vec![c.name("d2")]);

    let all_rivetr = names(c.rt.list(&[LabelFilter::key(LABEL_APP)]).await.unwrap());
    assert!(all_rivetr.contains(&c.name("d1")) && all_rivetr.contains(&c.name("d2")));
    assert!(!all_rivetr.contains(&c.name("foreign")), "{all_rivetr:?}");
}

async fn remove_and_remove_image_clean_up(c: Ctx) {
    let tag = c.tag("gone");
    let dockerfile = format!("FROM localhost/busybox:test\nRUN echo {} > /id\n", c.id);
    let (built, lines) = c.build(&tag, &[("Dockerfile", &dockerfile)], &[]).await;
    built.unwrap_or_else(|e| panic!("{e}\n{lines:#?}"));
    let mut spec = c.spec("gone", "sleep 60");
    spec.image = tag.clone();
    let id = c.rt.run(&spec).await.unwrap().id;

    c.rt.remove(&id).await.unwrap();
    let err = c.rt.inspect(&id).await.expect_err("removed");
    assert!(
        matches!(err, RuntimeError::ContainerNotFound { .. }),
        "{err:?}"
    );
    c.rt.remove(&id).await.expect("removing twice is fine");

    c.rt.remove_image(&tag).await.unwrap();
    let left =
        c.rt.list_images(&ImageFilter::Reference(tag.clone()))
            .await
            .unwrap();
    assert!(left.is_empty(), "{left:?}");
    c.rt.remove_image(&tag)
        .await
        .expect("removing twice is fine");
    let err = c.rt.run(&spec).await.expect_err("the image is gone");
    assert!(matches!(err, RuntimeError::ImageNotFound { .. }), "{err:?}");
}

/// Podman reports `stopped` for a while after a process exits; bollard cannot read that
/// (bollard issue 701). Polling inspect and list right through that window must never fail.
async fn the_stopped_window_never_fails_a_call(c: Ctx) {
    let raw = bollard::Docker::connect_with_unix(
        c.socket.trim_start_matches("unix://"),
        30,
        bollard::API_DEFAULT_VERSION,
    )
    .unwrap();
    let (mut calls, mut stopped_seen, mut bollard_failures) = (0u32, 0u32, 0u32);
    for n in 0..5 {
        let spec = c.spec(&format!("quick{n}"), "true");
        let id = c.rt.create(&spec).await.unwrap();
        c.rt.start(&id).await.unwrap();
        let mine = [LabelFilter::eq(TEST_LABEL, &c.id)];
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let info =
                c.rt.inspect(&id)
                    .await
                    .unwrap_or_else(|e| panic!("inspect failed: {e}"));
            let listed =
                c.rt.list(&mine)
                    .await
                    .unwrap_or_else(|e| panic!("list failed: {e}"));
            calls += 2;
            let in_list = listed.iter().find(|s| s.id == id).expect("listed");
            for (word, state) in [
                (&info.engine_state, info.state),
                (&in_list.engine_state, in_list.state),
            ] {
                if word == "stopped" {
                    assert_eq!(state, ContainerState::Exited, "{info:?}");
                }
            }
            if info.engine_state == "stopped" || in_list.engine_state == "stopped" {
                stopped_seen += 1;
                // What bollard's own inspect makes of the same moment.
                if raw.inspect_container(&id, None).await.is_err() {
                    bollard_failures += 1;
                }
            }
            if info.engine_state == "exited" {
                assert_eq!(info.exit_code, Some(0), "{info:?}");
                break;
            }
            assert!(Instant::now() < deadline, "never exited: {info:?}");
        }
    }
    shout(&format!(
        "{:?}: {calls} inspect/list calls across the exit of 5 containers; `stopped` seen {stopped_seen} times, bollard's own inspect failed {bollard_failures} times then; Rivetr's calls never failed",
        c.which
    ));
    if c.which.kind() == EngineKind::Podman {
        assert!(
            stopped_seen > 0,
            "the `stopped` window was never hit, so this proved nothing"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Detection, through the real binary and /api/health
// ---------------------------------------------------------------------------------------

/// Starts `rivetr serve` with `env`, returns its health JSON and STATUS line.
fn serve_and_read_health(env: &[(&str, String)]) -> (serde_json::Value, String) {
    let dir = common::TestDir::new();
    let notify = common::NotifySocket::bind(&dir);
    let mut launch =
        common::Launch::serve().env("NOTIFY_SOCKET", notify.path.display().to_string());
    for (k, v) in env {
        launch = launch.env(k, v.clone());
    }
    let started = Instant::now();
    let mut rivetr = launch.start(&dir);
    let (ready, _) = notify.recv_until("READY=1", Duration::from_secs(20));
    let ready_after = started.elapsed();
    assert!(
        ready_after < Duration::from_secs(12),
        "READY took {ready_after:?}:\n{}",
        rivetr.log()
    );
    let status = ready
        .lines()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_default()
        .to_owned();
    let body = rivetr.wait_healthy();
    (serde_json::from_str(&body).unwrap(), status)
}

async fn detection_picks_this_engine_from_its_socket(c: Ctx) {
    let socket = c.socket.clone();
    let (health, status) = tokio::task::spawn_blocking(move || {
        serve_and_read_health(&[("RIVETR_RUNTIME_SOCKET", socket)])
    })
    .await
    .unwrap();
    let runtime = &health["runtime"];
    assert_eq!(runtime["status"], "ok", "{health}");
    assert_eq!(runtime["engine"], c.info.engine.to_string(), "{health}");
    assert_eq!(runtime["version"], c.info.version, "{health}");
    assert_eq!(runtime["rootless"], c.info.rootless, "{health}");
    assert_eq!(runtime["socket"], c.socket, "{health}");
    let want = format!("runtime {} {}", c.info.engine, c.info.version);
    assert!(status.contains(&want), "STATUS={status}");

    // The other engine kind is refused, naming what the socket really is.
    let wrong = match c.info.engine {
        EngineKind::Podman => "docker",
        EngineKind::Docker => "podman",
    };
    let socket = c.socket.clone();
    let (health, status) = tokio::task::spawn_blocking(move || {
        serve_and_read_health(&[
            ("RIVETR_RUNTIME_SOCKET", socket),
            ("RIVETR_RUNTIME_ENGINE", wrong.to_owned()),
        ])
    })
    .await
    .unwrap();
    assert_eq!(health["status"], "ok", "Rivetr still serves: {health}");
    assert_eq!(health["runtime"]["status"], "unavailable", "{health}");
    let message = health["runtime"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("this is {}", c.info.engine)) && message.contains(&c.socket),
        "{message}"
    );
    assert!(
        status.contains("no container runtime (tried"),
        "STATUS={status}"
    );
}

/// What a database-like container answers: busybox httpd on 5432 serving `token`, on its
/// own internal network only.
fn db_like_spec(c: &Ctx, what: &str, network: &str) -> RunSpec {
    let mut spec = c.spec(
        what,
        &format!(
            "mkdir -p /srv && echo {} > /srv/token && exec httpd -f -p 5432 -h /srv",
            c.id
        ),
    );
    spec.networks = Networks::Attach {
        primary: NetworkAttach {
            network: network.to_owned(),
            ipv4: None,
        },
        extra: Vec::new(),
    };
    spec
}

/// An HTTP GET of `/token` on `host:5432`, run inside a container with busybox nc.
fn fetch_token_script(host: &str) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!("printf 'GET /token HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} 5432"),
    ]
}

/// The layout databases use: the database on its own internal network, the app on a network
/// of its own (with its published port), and the database joining the app's network at a
/// fixed address while both run.
async fn networks_give_a_fixed_address_and_keep_others_out(c: Ctx) {
    let db_net = c.name("dbnet");
    let app_net = c.name("appnet");
    let internal =
        c.rt.ensure_network(&NetworkSpec {
            name: db_net.clone(),
            internal: true,
            labels: c.labels(&[]),
        })
        .await
        .unwrap();
    assert!(internal.internal, "{internal:?}");
    let app_network =
        c.rt.ensure_network(&NetworkSpec {
            name: app_net.clone(),
            internal: false,
            labels: c.labels(&[]),
        })
        .await
        .unwrap();
    let subnet = app_network.subnet.clone().expect("a subnet");
    assert!(
        subnet.starts_with("10.213.") && subnet.ends_with(".0/24"),
        "{subnet}"
    );
    assert_ne!(internal.subnet, app_network.subnet);
    // Asking again finds the same network.
    let again =
        c.rt.ensure_network(&NetworkSpec {
            name: app_net.clone(),
            internal: false,
            labels: c.labels(&[]),
        })
        .await
        .unwrap();
    assert_eq!(again.id, app_network.id);
    let ip = app_network.fixed_address(0).unwrap();

    let db = c.rt.run(&db_like_spec(&c, "db", &db_net)).await.unwrap();
    assert_eq!(db.state, ContainerState::Running, "{db:?}");

    let mut app = web_spec(&c, "app");
    app.networks = Networks::Attach {
        primary: NetworkAttach {
            network: app_net.clone(),
            ipv4: None,
        },
        extra: Vec::new(),
    };
    app.extra_hosts = vec![("main-db".into(), ip)];
    let app = c.rt.run(&app).await.unwrap();
    // The running database joins the app's network.
    c.rt.connect_network(&app_net, &db.id, Some(ip))
        .await
        .unwrap();

    let port = app.host_port.expect("the app still publishes its port");
    let body = http_ok(
        SocketAddr::from(([127, 0, 0, 1], port)),
        "/greeting",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(body.trim(), format!("hello-{}", c.id));
    let exec = ExecSpec {
        cmd: fetch_token_script("main-db"),
        ..ExecSpec::default()
    };
    let mut seen = String::new();
    for _ in 0..50 {
        let out =
            c.rt.exec(&app.id, &exec, Duration::from_secs(10))
                .await
                .unwrap();
        seen = out.stdout;
        if seen.contains(&c.id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        seen.contains(&c.id),
        "the app reaches the database by name: {seen:?}"
    );

    // Nothing outside reaches the database's own network.
    let db_ip =
        c.rt.inspect_network(&db_net)
            .await
            .unwrap()
            .and_then(|n| n.subnet)
            .expect("the database's network has a subnet");
    let outsider =
        c.rt.run(&c.spec("outsider", "exec sleep 60"))
            .await
            .unwrap();
    for target in (2..=5).map(|n| db_ip.replace(".0/24", &format!(".{n}"))) {
        let out =
            c.rt.exec(
                &outsider.id,
                &ExecSpec {
                    cmd: fetch_token_script(&target),
                    ..ExecSpec::default()
                },
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert!(
            !out.stdout.contains(&c.id),
            "a container outside reached the database at {target}: {out:?}"
        );
    }
    // Nor does anything through the host's own addresses: nothing is published.
    for host_ip in non_loopback_addresses() {
        if let Ok(mut stream) =
            TcpStream::connect_timeout(&SocketAddr::new(host_ip, 5432), Duration::from_secs(1))
        {
            let _ = stream.write_all(b"GET /token HTTP/1.0\r\n\r\n");
            let mut answer = String::new();
            let _ = std::io::Read::read_to_string(&mut stream, &mut answer);
            assert!(
                !answer.contains(&c.id),
                "{host_ip}:5432 serves the private container"
            );
        }
    }

    // Leaving the app's network takes the database out of its reach.
    c.rt.disconnect_network(&app_net, &db.id).await.unwrap();
    c.rt.disconnect_network(&app_net, &db.id).await.unwrap();
    let out =
        c.rt.exec(&app.id, &exec, Duration::from_secs(10))
            .await
            .unwrap();
    assert!(!out.stdout.contains(&c.id), "{out:?}");

    // Removing: containers first, then the networks; a second removal is not an error.
    c.rt.remove(&app.id).await.unwrap();
    c.rt.remove(&db.id).await.unwrap();
    for net in [&app_net, &db_net] {
        c.rt.remove_network(net).await.unwrap();
        c.rt.remove_network(net).await.unwrap();
        assert!(c.rt.inspect_network(net).await.unwrap().is_none());
    }
}

async fn a_named_volume_outlives_its_containers(c: Ctx) {
    let name = c.name("vol");
    let volume = c.rt.ensure_volume(&name, &c.labels(&[])).await.unwrap();
    assert_eq!(volume.name, name);
    assert!(!volume.mountpoint.is_empty(), "{volume:?}");
    let mine = [LabelFilter::eq(TEST_LABEL, c.id.clone())];
    let listed = c.rt.list_volumes(&mine).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");

    let mut writer = c.spec("writer", &format!("echo {} > /data/kept", c.id));
    writer.volumes = vec![VolumeMount {
        volume: name.clone(),
        target: "/data".into(),
    }];
    let w = c.rt.run(&writer).await.unwrap();
    let ended = c.wait_exited(&w.id, Duration::from_secs(20)).await;
    assert_eq!(ended.exit_code, Some(0), "{ended:?}");
    c.rt.remove(&w.id).await.unwrap();

    let mut reader = c.spec("reader", "exec sleep 60");
    reader.volumes = writer.volumes.clone();
    let r = c.rt.run(&reader).await.unwrap();
    let out =
        c.rt.exec(
            &r.id,
            &ExecSpec {
                cmd: vec!["cat".into(), "/data/kept".into()],
                ..ExecSpec::default()
            },
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout.trim(), c.id, "{out:?}");
    c.rt.remove(&r.id).await.unwrap();

    c.rt.remove_volume(&name).await.unwrap();
    assert!(c.rt.inspect_volume(&name).await.unwrap().is_none());
    c.rt.remove_volume(&name).await.unwrap();
}

async fn exec_reports_output_exit_code_and_reads_stdin(c: Ctx) {
    let box_ = c.rt.run(&c.spec("box", "exec sleep 120")).await.unwrap();
    let out =
        c.rt.exec(
            &box_.id,
            &ExecSpec {
                cmd: vec![
                    "sh".into(),
                    "-c".into(),
                    "echo out $SECRET_WORD; echo err >&2; exit 3".into(),
                ],
                env: vec![("SECRET_WORD".into(), "swordfish".into())],
                ..ExecSpec::default()
            },
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 3, "{out:?}");
    assert_eq!(out.stdout.trim(), "out swordfish");
    assert_eq!(out.stderr.trim(), "err");

    // A megabyte through stdin, counted inside: what a restore does with a dump.
    let mut session =
        c.rt.exec_start(
            &box_.id,
            &ExecSpec {
                cmd: vec!["sh".into(), "-c".into(), "wc -c".into()],
                stdin: true,
                ..ExecSpec::default()
            },
        )
        .await
        .unwrap();
    let mut input = session.input.take().expect("stdin");
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..16 {
            input.write_all(&chunk).await.unwrap();
        }
        input.shutdown().await.unwrap();
    });
    let mut stdout = Vec::new();
    let read = async {
        while let Some(frame) = session.output.next().await {
            let (source, bytes) = frame.unwrap();
            if source == LogSource::Stdout {
                stdout.extend_from_slice(&bytes);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the command ends once its stdin is closed");
    writer.await.unwrap();
    assert_eq!(String::from_utf8_lossy(&stdout).trim(), "1048576");

    // A command that is not there fails clearly, without a hang.
    let missing =
        c.rt.exec(
            &box_.id,
            &ExecSpec {
                cmd: vec!["/no/such/tool".into()],
                ..ExecSpec::default()
            },
            Duration::from_secs(10),
        )
        .await;
    match missing {
        Ok(out) => assert_ne!(out.exit_code, 0, "{out:?}"),
        Err(e) => assert!(
            e.to_string().contains("no/such/tool")
                || e.to_string().contains("not found")
                || e.to_string().contains("no such file"),
            "{e}"
        ),
    }
}

/// Declares each case once per engine: `mod podman`, `mod podman_rootless`, `mod docker`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod podman {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(c) = super::Ctx::new(super::Which::Podman, stringify!($case)).await {
                        super::$case(c).await;
                    }
                }
            )*
        }
        mod podman_rootless {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(c) = super::Ctx::new(super::Which::PodmanRootless, stringify!($case)).await {
                        super::$case(c).await;
                    }
                }
            )*
        }
        mod docker {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(c) = super::Ctx::new(super::Which::Docker, stringify!($case)).await {
                        super::$case(c).await;
                    }
                }
            )*
        }
    };
}

conformance!(
    info_names_the_engine,
    build_from_a_tar_context,
    unchanged_rebuild_hits_the_cache,
    failing_run_reports_the_step_and_its_output,
    builds_run_within_their_limits,
    run_publishes_on_loopback_only_with_env_labels_and_limits,
    a_taken_host_port_is_port_in_use,
    a_missing_image_is_image_not_found,
    logs_follow_new_lines_and_keep_stdout_and_stderr_apart,
    exit_code_three_is_reported,
    memory_limit_breach_is_oom_killed,
    stop_honours_its_timeout,
    list_by_label_finds_only_rivetrs_containers,
    remove_and_remove_image_clean_up,
    the_stopped_window_never_fails_a_call,
    detection_picks_this_engine_from_its_socket,
    networks_give_a_fixed_address_and_keep_others_out,
    a_named_volume_outlives_its_containers,
    exec_reports_output_exit_code_and_reads_stdin,
);

// ---------------------------------------------------------------------------------------
// Detection without an engine-specific socket
// ---------------------------------------------------------------------------------------

#[test]
fn no_engine_found_is_reported_and_rivetr_still_serves() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("unix://{}/nothing.sock", dir.path().display());
    let (health, status) = serve_and_read_health(&[("RIVETR_RUNTIME_SOCKET", missing.clone())]);
    assert_eq!(health["status"], "ok", "{health}");
    let runtime = &health["runtime"];
    assert_eq!(runtime["status"], "unavailable", "{health}");
    assert_eq!(runtime["tried"][0]["socket"], missing, "{health}");
    assert_eq!(
        runtime["tried"][0]["source"], "[runtime] socket",
        "{health}"
    );
    assert_eq!(runtime["tried"][0]["error"], "no such socket", "{health}");
    assert!(
        status.contains(&format!(
            "no container runtime (tried {missing}: no such socket)"
        )),
        "STATUS={status}"
    );
}

/// Auto-detection's first place is the rootless socket under `$XDG_RUNTIME_DIR`, even when
/// Docker is reachable through `DOCKER_HOST`.
#[test]
fn auto_detection_prefers_the_rootless_podman_socket() {
    let (Ok(rootless), Ok(docker)) = (
        std::env::var(Which::PodmanRootless.var()),
        std::env::var(Which::Docker.var()),
    ) else {
        common::skip(
            "auto_detection_prefers_the_rootless_podman_socket",
            "it needs the rootless Podman and Docker sockets",
        );
        return;
    };
    let xdg = tempfile::tempdir().unwrap();
    std::fs::create_dir(xdg.path().join("podman")).unwrap();
    std::os::unix::fs::symlink(
        rootless.trim_start_matches("unix://"),
        xdg.path().join("podman/podman.sock"),
    )
    .unwrap();
    let (health, _) = serve_and_read_health(&[
        ("XDG_RUNTIME_DIR", xdg.path().display().to_string()),
        ("DOCKER_HOST", docker),
    ]);
    let runtime = &health["runtime"];
    assert_eq!(runtime["status"], "ok", "{health}");
    assert_eq!(runtime["engine"], "podman", "{health}");
    assert_eq!(runtime["rootless"], true, "{health}");
    assert_eq!(
        runtime["socket"],
        format!("unix://{}/podman/podman.sock", xdg.path().display()),
        "{health}"
    );
}

/// With `DOCKER_HOST` pointing at Docker and no Podman socket in the places before it,
/// auto-detection picks Docker. Skipped when a rootful Podman listens on the default path.
#[test]
fn auto_detection_falls_through_to_docker_host() {
    let Ok(docker) = std::env::var(Which::Docker.var()) else {
        common::skip(
            "auto_detection_falls_through_to_docker_host",
            "RIVETR_TEST_DOCKER_SOCKET is not set",
        );
        return;
    };
    if std::path::Path::new("/run/podman/podman.sock").exists() {
        shout(
            "auto_detection_falls_through_to_docker_host: SKIPPED, /run/podman/podman.sock exists and comes first",
        );
        return;
    }
    let xdg = tempfile::tempdir().unwrap();
    let (health, _) = serve_and_read_health(&[
        ("XDG_RUNTIME_DIR", xdg.path().display().to_string()),
        ("DOCKER_HOST", docker.clone()),
    ]);
    let runtime = &health["runtime"];
    assert_eq!(runtime["status"], "ok", "{health}");
    assert_eq!(runtime["engine"], "docker", "{health}");
    assert_eq!(runtime["socket"], docker, "{health}");
}

/// When the Podman socket files are missing, Rivetr asks systemd (user manager, then system
/// manager) over D-Bus to start `podman.socket`. These machines have no systemd as PID 1:
/// with no bus at all, and with a real D-Bus daemon that has no systemd on it, the attempt
/// must fail quickly and say why.
#[test]
fn systemd_socket_start_fails_cleanly_without_systemd() {
    let xdg = tempfile::tempdir().unwrap();
    let nothing = format!("unix:path={}/no-bus", xdg.path().display());
    let (health, _) = serve_and_read_health(&[
        ("RIVETR_RUNTIME_ENGINE", "podman".to_owned()),
        ("XDG_RUNTIME_DIR", xdg.path().display().to_string()),
        ("DBUS_SESSION_BUS_ADDRESS", nothing),
    ]);
    if health["runtime"]["status"] == "ok" {
        // A rootful Podman on /run/podman/podman.sock was found; nothing to check here.
        shout(
            "systemd_socket_start_fails_cleanly_without_systemd: SKIPPED, /run/podman/podman.sock answers",
        );
        return;
    }
    let tried = health["runtime"]["tried"].as_array().unwrap();
    let user = tried
        .iter()
        .find(|a| a["source"] == "$XDG_RUNTIME_DIR")
        .unwrap_or_else(|| panic!("{health}"));
    let error = user["error"].as_str().unwrap();
    assert!(
        error.starts_with("no such socket; then no user D-Bus to ask systemd"),
        "{error}"
    );

    // A real session bus, without systemd on it.
    let bus_path = xdg.path().join("bus");
    let mut daemon = std::process::Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--nopidfile"])
        .arg(format!("--address=unix:path={}", bus_path.display()))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("dbus-daemon (Debian package dbus) is needed");
    common::wait_for("the D-Bus socket", Duration::from_secs(10), || {
        bus_path.exists().then_some(())
    });
    let (health, _) = serve_and_read_health(&[
        ("RIVETR_RUNTIME_ENGINE", "podman".to_owned()),
        ("XDG_RUNTIME_DIR", xdg.path().display().to_string()),
        (
            "DBUS_SESSION_BUS_ADDRESS",
            format!("unix:path={}", bus_path.display()),
        ),
    ]);
    let _ = daemon.kill();
    let _ = daemon.wait();
    let tried = health["runtime"]["tried"].as_array().unwrap();
    let user = tried
        .iter()
        .find(|a| a["source"] == "$XDG_RUNTIME_DIR")
        .unwrap_or_else(|| panic!("{health}"));
    let error = user["error"].as_str().unwrap();
    assert!(
        error.contains("the user systemd manager did not start podman.socket")
            && error.contains("org.freedesktop.systemd1"),
        "{error}"
    );
}
