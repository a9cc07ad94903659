//! Times Rivetr's container runtime against one engine; run by `bench/runtime.sh`.
//!
//! `runtime_bench <podman|docker> <unix:///socket> [runs]` prints, as medians of `runs`
//! (default 10) after one warm-up:
//! - create + start + first HTTP 200 from the published 127.0.0.1 port, through
//!   `ContainerRuntime::run` (create, start, inspect for the port) and a GET loop;
//! - an unchanged rebuild, with the labels Rivetr puts on its images and without labels
//!   (both engines add a LABEL step for labels, which Podman has to commit).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use rivetr::runtime::{
    BuildSpec, ContainerRuntime, DockerRuntime, LABEL_APP, PodmanRuntime, PortSpec, RunSpec,
};

const DOCKERFILE: &str = "FROM localhost/busybox:test
RUN mkdir -p /www && echo ok > /www/index.html
CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]
";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (engine, socket) = match (args.get(1), args.get(2)) {
        (Some(e), Some(s)) => (e.as_str(), s.as_str()),
        _ => bail!("usage: runtime_bench <podman|docker> <unix:///socket> [runs]"),
    };
    let runs: usize = args.get(3).map(|r| r.parse()).transpose()?.unwrap_or(10);
    let rt: Arc<dyn ContainerRuntime> = match engine {
        "podman" => Arc::new(PodmanRuntime::connect(socket)?),
        "docker" => Arc::new(DockerRuntime::connect(socket)?),
        other => bail!("unknown engine {other}"),
    };
    let info = rt.info().await.context("engine info")?;
    let tag = format!("localhost/rivetr-bench-{}:1", std::process::id());
    let labels = BTreeMap::from([(LABEL_APP.to_owned(), "bench".to_owned())]);

    build(&rt, &tag, &labels).await?;
    let start = time_runs(runs, || start_to_http(&rt, &tag)).await?;
    let rebuild_labels = time_runs(runs, || timed_build(&rt, &tag, &labels)).await?;
    let no_labels = format!("localhost/rivetr-bench-{}-nolabels:1", std::process::id());
    let none = BTreeMap::new();
    build(&rt, &no_labels, &none).await?;
    let rebuild_plain = time_runs(runs, || timed_build(&rt, &no_labels, &none)).await?;
    rt.remove_image(&tag).await?;
    rt.remove_image(&no_labels).await?;

    let who = format!(
        "{} {}{}",
        info.engine,
        info.version,
        if info.rootless { " rootless" } else { "" }
    );
    println!(
        "{who}: create+start+first HTTP 200      {}",
        summary(&start)
    );
    println!(
        "{who}: unchanged rebuild (with labels)  {}",
        summary(&rebuild_labels)
    );
    println!(
        "{who}: unchanged rebuild (no labels)    {}",
        summary(&rebuild_plain)
    );
    Ok(())
}

/// One warm-up, then `runs` timed runs.
async fn time_runs<F, Fut>(runs: usize, mut f: F) -> anyhow::Result<Vec<Duration>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Duration>>,
{
    f().await?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        times.push(f().await?);
    }
    Ok(times)
}

fn summary(times: &[Duration]) -> String {
    let mut sorted = times.to_vec();
    sorted.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = if sorted.len() % 2 == 1 {
        ms(sorted[sorted.len() / 2])
    } else {
        (ms(sorted[sorted.len() / 2 - 1]) + ms(sorted[sorted.len() / 2])) / 2.0
    };
    format!(
        "median {median:7.1} ms  (min {:.1}, max {:.1}, n={})",
        ms(sorted[0]),
        ms(sorted[sorted.len() - 1]),
        sorted.len()
    )
}

async fn build(
    rt: &Arc<dyn ContainerRuntime>,
    tag: &str,
    labels: &BTreeMap<String, String>,
) -> anyhow::Result<rivetr::runtime::BuiltImage> {
    let spec = BuildSpec {
        context: context()?,
        dockerfile: "Dockerfile".into(),
        build_args: Vec::new(),
        tag: tag.into(),
        labels: labels.clone(),
        limits: rivetr::runtime::BuildLimits::default(),
    };
    Ok(rt.build(spec, &mut |_: &str| {}).await?)
}

async fn timed_build(
    rt: &Arc<dyn ContainerRuntime>,
    tag: &str,
    labels: &BTreeMap<String, String>,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let built = build(rt, tag, labels).await?;
    let took = started.elapsed();
    if built.cached_steps + 1 != built.steps {
        bail!("rebuild was not fully cached: {built:?}");
    }
    Ok(took)
}

fn context() -> anyhow::Result<rivetr::runtime::BuildContext> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(DOCKERFILE.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, "Dockerfile", DOCKERFILE.as_bytes())?;
    let bytes = Bytes::from(builder.into_inner()?);
    Ok(Box::pin(futures_util::stream::once(async { Ok(bytes) })))
}

/// Create + start + first 200; the container is removed afterwards, untimed.
async fn start_to_http(rt: &Arc<dyn ContainerRuntime>, image: &str) -> anyhow::Result<Duration> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let spec = RunSpec {
        image: image.into(),
        name: format!("rivetr-bench-{}-{n}", std::process::id()),
        labels: BTreeMap::from([(LABEL_APP.to_owned(), "bench".to_owned())]),
        port: Some(PortSpec {
            container_port: 8080,
            host_port: None,
        }),
        ..RunSpec::default()
    };
    let started = Instant::now();
    let info = rt.run(&spec).await?;
    let port = info.host_port.context("no host port")?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = started + Duration::from_secs(30);
    loop {
        if get_is_200(addr) {
            break;
        }
        if Instant::now() > deadline {
            bail!("no HTTP 200 from {addr} within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = started.elapsed();
    rt.remove(&info.id).await?;
    Ok(took)
}

fn get_is_200(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}
