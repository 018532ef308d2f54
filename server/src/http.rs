//! The operations endpoint over HTTP: `/metrics` in the Prometheus (OpenMetrics) text format
//! with the figures of `eddy_catalog.progress` and `eddy_catalog.epochs`, and `/healthz`.
//!
//! Figures are read when scraped, like the system tables: nothing is kept for the exporter.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use eddy_sql::system::{self, Figures};

use crate::handle::Shared;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the endpoint serves from.
pub struct Endpoint {
    registry: Registry,
    shared: Arc<Shared>,
    /// Set once the server stops accepting connections: `/healthz` fails from then on.
    stopping: AtomicBool,
}

impl Endpoint {
    pub fn new(shared: Arc<Shared>) -> Arc<Self> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Pipeline {
            shared: shared.clone(),
        }));
        Arc::new(Self {
            registry,
            shared,
            stopping: AtomicBool::new(false),
        })
    }

    /// From now on `/healthz` answers 503: the server is shutting down.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    fn respond(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let reply = |status: StatusCode, kind: &str, body: String| {
            Response::builder()
                .status(status)
                .header(CONTENT_TYPE, kind)
                .body(Full::new(Bytes::from(body)))
                .expect("a response of a status, a header and a body")
        };
        let plain = "text/plain; charset=utf-8";
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return reply(
                StatusCode::METHOD_NOT_ALLOWED,
                plain,
                "only GET is served\n".into(),
            );
        }
        match request.uri().path() {
            "/metrics" => {
                let mut body = String::new();
                match prometheus_client::encoding::text::encode(&mut body, &self.registry) {
                    Ok(()) => reply(StatusCode::OK, OPENMETRICS, body),
                    Err(_) => reply(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        plain,
                        "the figures could not be read; the server log says why\n".into(),
                    ),
                }
            }
            "/healthz" => {
                if self.stopping.load(Ordering::SeqCst) {
                    reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        plain,
                        "shutting down\n".into(),
                    )
                } else if !self.shared.engine.is_running() {
                    reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        plain,
                        "the epoch driver has stopped\n".into(),
                    )
                } else {
                    reply(StatusCode::OK, plain, "ok\n".into())
                }
            }
            _ => reply(
                StatusCode::NOT_FOUND,
                plain,
                "not found: try /metrics or /healthz\n".into(),
            ),
        }
    }
}

/// Serves the endpoint on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, endpoint: Arc<Endpoint>) {
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = endpoint.respond(&request);
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service)
                .await
            {
                debug!(%peer, error = %e, "metrics endpoint: connection ended");
            }
        });
    }
}

/// The pipeline's figures, read at each scrape.
struct Pipeline {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

/// One metric with a value per relation.
struct PerRelation {
    name: &'static str,
    help: &'static str,
    counter: bool,
    value: fn(&Figures) -> Option<f64>,
}

const PER_RELATION: &[PerRelation] = &[
    PerRelation {
        name: "eddy_relation_rows",
        help: "Rows accepted by a stream (from its source, INSERT and COPY)",
        counter: true,
        value: |f| Some(f.rows as f64),
    },
    PerRelation {
        name: "eddy_relation_input_rows_per_second",
        help: "Rows of change taken in per second over the last 10 seconds",
        counter: false,
        value: |f| Some(f.input_rows_per_sec),
    },
    PerRelation {
        name: "eddy_relation_processed_rows_per_second",
        help: "Rows of change processed per second of work over the last 10 seconds",
        counter: false,
        value: |f| Some(f.processed_rows_per_sec),
    },
    PerRelation {
        name: "eddy_relation_last_epoch_duration_seconds",
        help: "Duration of the last epoch that changed the relation",
        counter: false,
        value: |f| f.last_epoch_duration.map(|d| d.as_secs_f64()),
    },
    PerRelation {
        name: "eddy_relation_lag_seconds",
        help: "In the last epoch that changed the relation, how long its oldest row waited between arrival and commit",
        counter: false,
        value: |f| f.lag.map(|d| d.as_secs_f64()),
    },
    PerRelation {
        name: "eddy_relation_watermark_seconds",
        help: "A stream's watermark, in seconds since the Unix epoch",
        counter: false,
        value: |f| f.watermark.map(|w| w as f64 / 1e6),
    },
    PerRelation {
        name: "eddy_relation_late_rows",
        help: "Rows a stream dropped because they arrived behind its watermark",
        counter: true,
        value: |f| Some(f.late_rows as f64),
    },
    PerRelation {
        name: "eddy_relation_state_rows",
        help: "Entries of operator state a materialized view holds",
        counter: false,
        value: |f| f.state_rows.map(|n| n as f64),
    },
    PerRelation {
        name: "eddy_relation_state_bytes",
        help: "Bytes of a materialized view's state in the store (estimated)",
        counter: false,
        value: |f| f.state_bytes.map(|n| n as f64),
    },
    PerRelation {
        name: "eddy_relation_dead_letters",
        help: "Records a stream's source could not read",
        counter: true,
        value: |f| Some(f.dead_letters as f64),
    },
    PerRelation {
        name: "eddy_relation_backlog",
        help: "A sink's changes not yet delivered to its target",
        counter: false,
        value: |f| f.backlog.map(|n| n as f64),
    },
    PerRelation {
        name: "eddy_relation_backfill_ratio",
        help: "How much of its history a view being created has read (0 to 1)",
        counter: false,
        value: |f| {
            f.backfill
                .as_ref()
                .and_then(|b| b.percent())
                .map(|p| p / 100.0)
        },
    },
    PerRelation {
        name: "eddy_relation_error",
        help: "1 while a source or sink is failing (eddy_catalog.progress.source_error says why)",
        counter: false,
        value: |f| Some(f64::from(u8::from(f.error.is_some()))),
    },
];

impl Collector for Pipeline {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let shared = &self.shared;
        let metrics = &shared.query.metrics;
        let catalog = shared.catalog.snapshot();
        let from = system::Sources {
            catalog: &catalog,
            store: &shared.store,
            metrics,
            sessions: &shared.query.sessions,
        };
        let figures = match system::figures(&from) {
            Ok(f) => f,
            Err(e) => {
                warn!(error = %e, "metrics endpoint: cannot read the pipeline's figures");
                return Err(std::fmt::Error);
            }
        };
        let totals = metrics.totals();
        let last_epoch = metrics.epochs().last().map_or(0, |e| e.id);
        let gauge = |encoder: &mut DescriptorEncoder<'_>, name, help, value: f64| {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
        };
        let counter = |encoder: &mut DescriptorEncoder<'_>, name, help, value: f64| {
            let c = ConstCounter::new(value);
            c.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
        };
        gauge(
            &mut encoder,
            "eddy_uptime_seconds",
            "Seconds since the server started",
            metrics.uptime().as_secs_f64(),
        )?;
        gauge(
            &mut encoder,
            "eddy_epoch",
            "The last epoch committed since the server started (0 before the first)",
            last_epoch as f64,
        )?;
        counter(
            &mut encoder,
            "eddy_epochs",
            "Epochs committed since the server started",
            totals.epochs as f64,
        )?;
        counter(
            &mut encoder,
            "eddy_epoch_seconds",
            "Seconds spent in epochs since the server started",
            totals.busy.as_secs_f64(),
        )?;
        counter(
            &mut encoder,
            "eddy_ingested_rows",
            "Rows of change written to streams and tables since the server started",
            totals.rows as f64,
        )?;
        counter(
            &mut encoder,
            "eddy_written_bytes",
            "Bytes written to the store by epochs since the server started",
            totals.bytes as f64,
        )?;
        gauge(
            &mut encoder,
            "eddy_sessions",
            "Open client connections",
            shared.query.sessions.list().len() as f64,
        )?;
        let cached = shared.query.catalog_results.figures();
        counter(
            &mut encoder,
            "eddy_catalog_query_hits",
            "Catalog queries answered from the results kept for the catalog snapshot",
            cached.hits as f64,
        )?;
        gauge(
            &mut encoder,
            "eddy_catalog_query_results",
            "Results of catalog queries kept for the catalog snapshot",
            cached.results as f64,
        )?;
        gauge(
            &mut encoder,
            "eddy_catalog_query_result_bytes",
            "Bytes of the kept results of catalog queries",
            cached.bytes as f64,
        )?;
        let (plans, reruns) = shared.query.catalog_plans.figures();
        gauge(
            &mut encoder,
            "eddy_catalog_query_plans",
            "Physical plans and Describe answers of catalog queries kept across definition changes",
            plans as f64,
        )?;
        counter(
            &mut encoder,
            "eddy_catalog_query_plan_reruns",
            "Catalog queries answered by running a kept plan under a newer snapshot",
            reruns as f64,
        )?;
        if let Ok(size) = shared.store.size_on_disk() {
            gauge(
                &mut encoder,
                "eddy_store_bytes",
                "Bytes the store occupies on disk",
                size as f64,
            )?;
        }
        for metric in PER_RELATION {
            let kind = match metric.counter {
                true => MetricType::Counter,
                false => MetricType::Gauge,
            };
            let mut family = encoder.encode_descriptor(metric.name, metric.help, None, kind)?;
            for f in &figures {
                let Some(value) = (metric.value)(f) else {
                    continue;
                };
                let labels = [("relation", f.relation.as_str()), ("kind", f.kind.as_str())];
                let encoder = family.encode_family(&labels)?;
                match metric.counter {
                    true => ConstCounter::new(value).encode(encoder)?,
                    false => ConstGauge::new(value).encode(encoder)?,
                }
            }
        }
        Ok(())
    }
}
