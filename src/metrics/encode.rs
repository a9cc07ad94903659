//! A [`Snapshot`] as Prometheus text: one collector, registered on a registry made for the
//! scrape, writes every family from the snapshot.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::{STAGE_BUCKETS, STAGES, Snapshot};
use crate::proxy::metrics::{BUCKETS, CLASSES, METHODS, UPSTREAM_ERRORS};

/// Encodes `snapshot` in the Prometheus text format 0.0.4.
pub fn text(snapshot: Snapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(snapshot)));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        .expect("writing to a String cannot fail");
    out
}

/// The content type of [`text`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Debug)]
struct SnapshotCollector(Snapshot);

fn counter(m: &mut MetricEncoder<'_>, labels: &impl EncodeLabelSet, v: u64) -> std::fmt::Result {
    m.encode_family(labels)?
        .encode_counter::<NoLabelSet, u64, u64>(&v, None)
}

fn counter_f64(m: &mut MetricEncoder<'_>, v: f64) -> std::fmt::Result {
    m.encode_counter::<NoLabelSet, f64, f64>(&v, None)
}

/// Bucket counts (not cumulative; the last one past every bound) with their bounds.
fn histogram(
    m: &mut MetricEncoder<'_>,
    labels: &impl EncodeLabelSet,
    bounds: &[f64],
    counts: &[u64],
    sum: f64,
) -> std::fmt::Result {
    let buckets: Vec<(f64, u64)> = bounds.iter().copied().zip(counts.iter().copied()).collect();
    let total = counts.iter().sum();
    m.encode_family(labels)?
        .encode_histogram::<NoLabelSet>(sum, total, &buckets, None)
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.0;
        let mut m = e.encode_descriptor(
            "rivetr_proxy_requests",
            "Requests the proxy answered, by app, method and status class (1xx..5xx).",
            None,
            MetricType::Counter,
        )?;
        for (app, d) in &s.routes {
            for (mi, method) in METHODS.iter().enumerate() {
                for (ci, class) in CLASSES.iter().enumerate() {
                    let n = d.answered[mi][ci];
                    if n > 0 {
                        let labels = [("app", app.as_str()), ("method", method), ("code", class)];
                        counter(&mut m, &labels, n)?;
                    }
                }
            }
        }
        let mut m = e.encode_descriptor(
            "rivetr_proxy_request_duration_seconds",
            "From a request's arrival to the app's response headers, per app.",
            None,
            MetricType::Histogram,
        )?;
        for (app, d) in &s.routes {
            histogram(
                &mut m,
                &[("app", app.as_str())],
                &BUCKETS,
                &d.duration_buckets,
                d.duration_sum,
            )?;
        }
        let mut m = e.encode_descriptor(
            "rivetr_proxy_upstream_errors",
            "Requests the app did not answer, by app and kind: connect (no connection), timeout (no response headers in time), reset (the connection failed).",
            None,
            MetricType::Counter,
        )?;
        for (app, d) in &s.routes {
            for (k, kind) in UPSTREAM_ERRORS.iter().enumerate() {
                counter(
                    &mut m,
                    &[("app", app.as_str()), ("kind", kind)],
                    d.upstream_errors[k],
                )?;
            }
        }
        for (name, help, pick) in [
            (
                "rivetr_proxy_received_bytes",
                "Request body bytes the proxy received from clients, per app.",
                (|d: &crate::proxy::metrics::Detail| d.totals.bytes_in) as fn(&_) -> u64,
            ),
            (
                "rivetr_proxy_sent_bytes",
                "Response body bytes the proxy sent to clients, per app.",
                |d: &crate::proxy::metrics::Detail| d.totals.bytes_out,
            ),
        ] {
            let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (app, d) in &s.routes {
                counter(&mut m, &[("app", app.as_str())], pick(d))?;
            }
        }
        let mut m = e.encode_descriptor(
            "rivetr_proxy_open_connections",
            "Client connections open on the proxy's listeners.",
            None,
            MetricType::Gauge,
        )?;
        for (listener, n) in [
            ("http", s.open_connections.0),
            ("https", s.open_connections.1),
        ] {
            m.encode_family(&[("listener", listener)])?
                .encode_gauge(&n)?;
        }

        let mut m = e.encode_descriptor(
            "rivetr_deployments",
            "Deployments that ended since Rivetr started, by app and result (succeeded, failed, rolled_back, cancelled, superseded).",
            None,
            MetricType::Counter,
        )?;
        for ((app, result), n) in &s.deployments {
            counter(&mut m, &[("app", app.as_str()), ("result", result)], *n)?;
        }
        let mut m = e.encode_descriptor(
            "rivetr_deployment_stage_duration_seconds",
            "How long each stage of the deployments that ended took.",
            None,
            MetricType::Histogram,
        )?;
        for (i, stage) in STAGES.iter().enumerate() {
            let (counts, sum) = &s.stages[i];
            histogram(&mut m, &[("stage", *stage)], &STAGE_BUCKETS, counts, *sum)?;
        }
        e.encode_descriptor(
            "rivetr_deployment_queue_depth",
            "Deployments waiting for their turn.",
            None,
            MetricType::Gauge,
        )?
        .encode_gauge(&(s.queued as i64))?;

        let mut m = e.encode_descriptor(
            "rivetr_tls_certificate_expiry_timestamp_seconds",
            "When each served certificate ends (Unix time).",
            None,
            MetricType::Gauge,
        )?;
        for (domain, until, _) in &s.certificates {
            if let Some(until) = until {
                m.encode_family(&[("domain", domain.as_str())])?
                    .encode_gauge(until)?;
            }
        }
        let mut m = e.encode_descriptor(
            "rivetr_tls_renewal_failures",
            "Failed certificate orders and renewals since Rivetr started, per domain.",
            None,
            MetricType::Counter,
        )?;
        for (domain, _, failures) in &s.certificates {
            counter(&mut m, &[("domain", domain.as_str())], *failures)?;
        }

        if let Some(apps) = &s.containers {
            let mut m = e.encode_descriptor(
                "rivetr_container_cpu_seconds",
                "CPU time of each app's running containers, from the engine (it starts again when a deployment replaces them).",
                None,
                MetricType::Counter,
            )?;
            for (app, (cpu, _)) in apps {
                m.encode_family(&[("app", app.as_str())])?
                    .encode_counter::<NoLabelSet, f64, f64>(cpu, None)?;
            }
            let mut m = e.encode_descriptor(
                "rivetr_container_memory_bytes",
                "Memory in use by each app's running containers, from the engine (page cache excluded).",
                None,
                MetricType::Gauge,
            )?;
            for (app, (_, memory)) in apps {
                m.encode_family(&[("app", app.as_str())])?
                    .encode_gauge(&(*memory as i64))?;
            }
        }

        let p = &s.process;
        counter_f64(
            &mut e.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time Rivetr spent, in seconds.",
                None,
                MetricType::Counter,
            )?,
            p.cpu_seconds,
        )?;
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                p.resident_bytes as f64,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                p.virtual_bytes as f64,
            ),
            (
                "process_open_fds",
                "Open file descriptors.",
                p.open_fds as f64,
            ),
            (
                "process_max_fds",
                "The limit of open file descriptors.",
                p.max_fds as f64,
            ),
            (
                "process_start_time_seconds",
                "When the process started (Unix time).",
                p.start_time,
            ),
            ("process_threads", "OS threads.", p.threads as f64),
        ] {
            e.encode_descriptor(name, help, None, MetricType::Gauge)?
                .encode_gauge(&value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::metrics::Detail;

    #[test]
    fn the_text_holds_each_family_with_its_labels_and_cumulative_buckets() {
        let mut d = Detail::default();
        d.answered[0][1] = 5;
        d.duration_buckets[0] = 2;
        d.duration_buckets[3] = 3;
        d.duration_sum = 0.05;
        d.totals.bytes_out = 1234;
        let mut s = Snapshot::default();
        s.routes.insert("web".into(), d);
        s.certificates
            .push(("a.example.com".into(), Some(1_800_000_000.0), 2));
        let text = text(s);
        for line in [
            "# TYPE rivetr_proxy_requests_total counter",
            "rivetr_proxy_requests_total{app=\"web\",method=\"GET\",code=\"2xx\"} 5",
            "rivetr_proxy_request_duration_seconds_bucket{app=\"web\",le=\"0.001\"} 2",
            "rivetr_proxy_request_duration_seconds_bucket{app=\"web\",le=\"0.025\"} 5",
            "rivetr_proxy_request_duration_seconds_bucket{app=\"web\",le=\"+Inf\"} 5",
            "rivetr_proxy_request_duration_seconds_count{app=\"web\"} 5",
            "rivetr_proxy_sent_bytes_total{app=\"web\"} 1234",
            "rivetr_tls_certificate_expiry_timestamp_seconds{domain=\"a.example.com\"} 1800000000",
            "rivetr_tls_renewal_failures_total{domain=\"a.example.com\"} 2",
            "rivetr_deployment_queue_depth 0",
            "# TYPE process_resident_memory_bytes gauge",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(line)),
                "{line} not in\n{text}"
            );
        }
    }
}
