//! Traces and metrics of the split deployment, proven from the outside:
//! spans as an OTLP receiver built from the official protobuf definitions
//! receives them (`otlp_receiver.py`: PyPI's opentelemetry-proto and
//! grpcio, which `scripts/test` installs), metrics as Prometheus scrapes
//! them from `GET /metrics`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use foundry_proto::foundry::delivery::v1 as delivery;
use foundry_testkit::authed;
use serde_json::Value;

mod common;

use common::free_port;
use common::split::Split;

/// The OTLP receiver, killed with the test.
struct Receiver {
    child: Child,
    port: u16,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    /// Starts it, appending what it receives to `out`.
    fn start(out: &Path) -> Receiver {
        let python = common::tool("python", "PYTHON", "opentelemetry-proto grpcio");
        let mut child = Command::new(python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/otlp_receiver.py"
            ))
            .arg(out)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the OTLP receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            panic!(
                "the OTLP receiver did not start (pip install opentelemetry-proto grpcio): {line:?}"
            )
        });
        Receiver { child, port }
    }

    /// The environment that points a process's export at it, quickly.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "500".into()),
        ]
    }
}

/// What the receiver wrote so far, one JSON object a record.
fn received(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    span["attributes"][key].as_str()
}

/// A program made with `owner`'s token through `channel`, the call
/// carrying `traceparent` when given.
async fn create_program(
    channel: tonic::transport::Channel,
    owner: &str,
    traceparent: Option<&str>,
) -> delivery::Program {
    let mut req = authed(
        owner,
        delivery::CreateProgramRequest {
            program: Some(delivery::Program {
                name: "Traced".into(),
                slug: "traced".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        },
    );
    if let Some(tp) = traceparent {
        req.metadata_mut()
            .insert("traceparent", tp.parse().unwrap());
    }
    delivery::program_service_client::ProgramServiceClient::new(channel)
        .create_program(req)
        .await
        .unwrap()
        .into_inner()
}

/// A mutation at delivery and its relay's delivery to audit, each process
/// exporting to the receiver: the mutation's server span is in the
/// caller's trace with the organization and method as attributes; the
/// relay's delivery span and audit's server span for it are one trace
/// across the two processes; and the delivery span links to the
/// mutation's trace.
#[tokio::test]
async fn a_mutation_and_its_relayed_event_are_traced_across_the_split_services() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("otlp.jsonl");
    let receiver = Receiver::start(&out);
    let url = foundry_testkit::empty_database().await;
    let mut split = Split::start(&url, &receiver.env(), &[]).await;
    split.audit.ready("foundry.audit.v1.AuditService").await;
    let (channel, dev, owner) = split.delivery_owner("traced").await;

    // The caller's trace.
    let (trace, caller_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    create_program(
        channel,
        &owner,
        Some(&format!("00-{trace}-{caller_span}-01")),
    )
    .await;

    let method = "/foundry.delivery.v1.ProgramService/CreateProgram";
    let deadline = Instant::now() + Duration::from_secs(30);
    let (spans, mutation, deliver, ingest) = loop {
        let spans: Vec<Value> = received(&out)
            .into_iter()
            .filter(|r| r.get("span_id").is_some())
            .collect();
        let mutation = spans
            .iter()
            .find(|s| s["name"] == "rpc" && attr(s, "rpc.method") == Some(method))
            .cloned();
        let deliver = spans
            .iter()
            .find(|s| {
                s["name"] == "outbox.deliver"
                    && s["service"] == "foundry-delivery"
                    && s["links"]
                        .as_array()
                        .is_some_and(|l| l.iter().any(|l| l["trace_id"] == trace))
            })
            .cloned();
        let ingest = deliver.as_ref().and_then(|d| {
            spans
                .iter()
                .find(|s| {
                    s["service"] == "foundry-audit"
                        && s["name"] == "rpc"
                        && s["trace_id"] == d["trace_id"]
                })
                .cloned()
        });
        if let (Some(m), Some(d), Some(i)) = (mutation, deliver, ingest) {
            break (spans, m, d, i);
        }
        assert!(
            Instant::now() < deadline,
            "the spans did not all arrive: {spans:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // The mutation: delivery's server span, in the caller's trace, under
    // the caller's span, with the organization and the method.
    assert_eq!(mutation["service"], "foundry-delivery");
    assert_eq!(mutation["trace_id"], trace);
    assert_eq!(mutation["parent_span_id"], caller_span);
    assert_eq!(mutation["kind"], 2, "SPAN_KIND_SERVER: {mutation}");
    assert_eq!(
        attr(&mutation, "org_id"),
        Some(dev.org_id.to_string().as_str()),
        "{mutation}"
    );

    // The relay's delivery: a trace of its own that crosses into audit,
    // whose server span for AppendAuditEvents is the delivery span's child.
    assert_ne!(deliver["trace_id"], trace);
    assert_eq!(deliver["parent_span_id"], "", "a root span: {deliver}");
    assert_eq!(ingest["parent_span_id"], deliver["span_id"], "{ingest}");
    assert_eq!(
        attr(&ingest, "rpc.method"),
        Some("/foundry.audit.v1.AuditIngestService/AppendAuditEvents")
    );
    let services: HashSet<&str> = spans
        .iter()
        .filter(|s| s["trace_id"] == deliver["trace_id"])
        .filter_map(|s| s["service"].as_str())
        .collect();
    assert_eq!(
        services,
        HashSet::from(["foundry-delivery", "foundry-audit"]),
        "one trace across both services"
    );

    // Its link points into the mutation's trace, at a span delivery
    // exported there (the one that wrote the event).
    let link = deliver["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["trace_id"] == trace)
        .unwrap();
    assert!(
        spans
            .iter()
            .any(|s| s["trace_id"] == trace && s["span_id"] == link["span_id"]),
        "the linked span {link} is not one of the mutation's: {spans:#?}"
    );

    // Metrics travel the same way.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !received(&out)
        .iter()
        .any(|r| r["metric"] == "rpc.server.duration" && r["service"] == "foundry-delivery")
    {
        assert!(Instant::now() < deadline, "no metrics over OTLP");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    split.stop().await;
}

/// A sample of the text format: its name, labels and value.
type Sample = (String, Vec<(String, String)>, f64);

/// The samples of a scrape.
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once("=\"").unwrap();
                    (k.to_owned(), v.trim_end_matches('"').to_owned())
                })
                .collect();
            (name.to_owned(), labels, value.parse().unwrap())
        })
        .collect()
}

/// After a few calls, one refused, delivery's `GET /metrics` has the RED
/// series of each (by service, method and status code), its pool's usage
/// and its outbox's backlog, and no label value is an id.
#[tokio::test]
async fn a_service_binary_serves_red_pool_and_outbox_metrics_without_ids() {
    let url = foundry_testkit::empty_database().await;
    let metrics_port = free_port();
    let addr = ("FOUNDRY_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"));
    let mut split = Split::start(&url, &[], &[addr]).await;
    let (channel, dev, owner) = split.delivery_owner("metrics").await;
    let program = create_program(channel.clone(), &owner, None).await;
    let mut programs = delivery::program_service_client::ProgramServiceClient::new(channel);
    let missing = programs
        .get_program(authed(
            &owner,
            delivery::GetProgramRequest {
                id: uuid::Uuid::now_v7().to_string(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let anonymous = programs
        .get_program(delivery::GetProgramRequest {
            id: program.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);

    let http = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let scrape = || {
        http.get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    };
    let has = |samples: &[Sample], name: &str, labels: &[(&str, &str)]| {
        samples.iter().any(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
    };
    let service = "foundry.delivery.v1.ProgramService";
    let expected: &[(&str, &[(&str, &str)])] = &[
        (
            "rpc_server_duration_seconds_count",
            &[
                ("rpc_service", service),
                ("rpc_method", "CreateProgram"),
                ("rpc_grpc_status_code", "0"),
            ],
        ),
        (
            "rpc_server_duration_seconds_count",
            &[
                ("rpc_service", service),
                ("rpc_method", "GetProgram"),
                ("rpc_grpc_status_code", "5"),
            ],
        ),
        (
            "rpc_server_duration_seconds_count",
            &[("rpc_method", "GetProgram"), ("rpc_grpc_status_code", "16")],
        ),
        (
            "rpc_server_duration_seconds_bucket",
            &[("rpc_method", "CreateProgram"), ("le", "+Inf")],
        ),
        (
            "db_client_connection_count",
            &[("pool_name", "delivery"), ("state", "idle")],
        ),
        ("db_client_connection_max", &[("pool_name", "delivery")]),
        // GetProgram read on a tenant read connection, idle since.
        (
            "db_client_connection_count",
            &[("pool_name", "delivery.reads"), ("state", "idle")],
        ),
        (
            "db_client_connection_max",
            &[("pool_name", "delivery.reads")],
        ),
        (
            "foundry_outbox_depth",
            &[("schema", "delivery"), ("subscriber", "audit")],
        ),
        ("foundry_outbox_lag_seconds", &[("schema", "delivery")]),
        ("foundry_outbox_parked_events", &[("schema", "delivery")]),
        ("foundry_jobs_depth", &[("schema", "delivery")]),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let (text, got) = loop {
        let text = scrape();
        let got = samples(&text);
        if expected.iter().all(|(n, l)| has(&got, n, l)) {
            break (text, got);
        }
        assert!(
            Instant::now() < deadline,
            "missing {:?} in\n{text}",
            expected
                .iter()
                .filter(|(n, l)| !has(&got, n, l))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (name, labels, _) in &got {
        for (k, v) in labels {
            assert!(
                uuid::Uuid::try_parse(v).is_err(),
                "{name}: label {k} is an id ({v})"
            );
        }
    }
    for id in [dev.org_id.to_string(), dev.user_id.to_string(), program.id] {
        assert!(!text.contains(&id), "{id} is in the metrics:\n{text}");
    }

    split.stop().await;
}
