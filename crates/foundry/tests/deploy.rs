//! The deployment files under `deploy/k8s` and `deploy/compose` parse, and
//! the fields that matter hold: probes, resources, security context, env
//! the binaries actually read, matching Services/HPAs/PDBs, compose
//! dependencies, and the gateway config kept in one place.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml_ng::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Every document of every `.yaml`/`.yml` file under `dir`, with its file.
fn documents(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML in {}", dir.display());
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let mut value =
                Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            value
                .apply_merge()
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if !value.is_null() {
                out.push((file.clone(), value));
            }
        }
    }
    out
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(v, path).and_then(Value::as_str)
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn seq<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path)
        .and_then(Value::as_sequence)
        .map_or(&[], Vec::as_slice)
}

fn labels(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_mapping)
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v.as_str().expect("label values are strings").to_owned(),
            )
        })
        .collect()
}

/// `selector ⊆ pod labels` (and the selector is not empty).
fn selects(selector: &BTreeMap<String, String>, pod: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| pod.get(k) == Some(v))
}

/// Environment variables each per-service binary reads (README
/// "Configuration" and the binaries' clap args).
fn binary_env(binary: &str) -> BTreeSet<&'static str> {
    let mut env: BTreeSet<&str> = [
        "FOUNDRY_LISTEN",
        "DATABASE_URL",
        "FOUNDRY_DATA_DIR",
        "FOUNDRY_LOG_FORMAT",
        "FOUNDRY_PAGE_TOKEN_KEY",
        "FOUNDRY_DB_MAX_CONNECTIONS",
        "FOUNDRY_JWKS_REFRESH_SECONDS",
        "FOUNDRY_TRUSTED_PROXY_HOPS",
        "FOUNDRY_MIGRATE",
        "FOUNDRY_METRICS_ADDR",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "RUST_LOG",
    ]
    .into();
    let own: &[&str] = match binary {
        "foundry-identity" => &[
            "FOUNDRY_OIDC_PROVIDERS",
            "FOUNDRY_AUDIT_ENDPOINT",
            "FOUNDRY_DELIVERY_ENDPOINT",
            "FOUNDRY_KEY_ENCRYPTION_KEY",
            "FOUNDRY_KEY_ENCRYPTION_KEY_FILE",
        ],
        "foundry-audit" => &[
            "FOUNDRY_IDENTITY_ENDPOINT",
            "FOUNDRY_AUDIT_CHECKPOINT_SECONDS",
            "FOUNDRY_KEY_ENCRYPTION_KEY",
            "FOUNDRY_KEY_ENCRYPTION_KEY_FILE",
        ],
        "foundry-delivery" => &[
            "FOUNDRY_IDENTITY_ENDPOINT",
            "FOUNDRY_AUDIT_ENDPOINT",
            "FOUNDRY_SERVICE_ACCOUNT_KEY",
        ],
        other => panic!("unknown binary {other}"),
    };
    env.extend(own);
    env
}

const SERVICES: [&str; 3] = ["identity", "audit", "delivery"];

#[test]
fn kubernetes_manifests() {
    let docs = documents(&deploy_dir().join("k8s"));
    let of_kind = |kind: &str| -> Vec<&Value> {
        docs.iter()
            .map(|(_, d)| d)
            .filter(|d| s(d, &["kind"]) == Some(kind))
            .collect()
    };
    for (file, doc) in &docs {
        assert!(
            s(doc, &["apiVersion"]).is_some() && s(doc, &["kind"]).is_some(),
            "{}: a document without apiVersion/kind",
            file.display()
        );
        if s(doc, &["kind"]) != Some("Namespace") {
            assert_eq!(
                s(doc, &["metadata", "namespace"]),
                Some("foundry"),
                "{}: {:?} outside the foundry namespace",
                file.display(),
                s(doc, &["metadata", "name"])
            );
        }
    }
    assert_eq!(of_kind("Namespace").len(), 1);

    let deployments = of_kind("Deployment");
    let names: BTreeSet<&str> = deployments
        .iter()
        .map(|d| s(d, &["metadata", "name"]).unwrap())
        .collect();
    assert_eq!(
        names,
        ["audit", "delivery", "envoy", "identity"].into(),
        "one Deployment per service plus the gateway"
    );
    let secrets = of_kind("Secret");

    for dep in &deployments {
        let name = s(dep, &["metadata", "name"]).unwrap();
        let pod_labels = labels(get(dep, &["spec", "template", "metadata", "labels"]));
        assert!(
            selects(
                &labels(get(dep, &["spec", "selector", "matchLabels"])),
                &pod_labels
            ),
            "{name}: selector does not match its pod labels"
        );
        let pod_meta = get(dep, &["spec", "template", "metadata"]).unwrap();
        let pod = get(dep, &["spec", "template", "spec"]).unwrap();
        assert_eq!(
            get(pod, &["securityContext", "runAsNonRoot"]).and_then(Value::as_bool),
            Some(true),
            "{name}: pod runAsNonRoot"
        );
        let containers = seq(pod, &["containers"]);
        assert!(!containers.is_empty(), "{name}: no containers");
        for c in containers.iter().chain(seq(pod, &["initContainers"])) {
            let cname = s(c, &["name"]).unwrap();
            assert!(
                s(c, &["image"]).is_some_and(|i| !i.is_empty()),
                "{name}/{cname}: image"
            );
            assert!(
                get(c, &["resources", "requests", "cpu"]).is_some()
                    && get(c, &["resources", "requests", "memory"]).is_some(),
                "{name}/{cname}: resources.requests"
            );
            assert!(
                get(c, &["resources", "limits"]).is_some(),
                "{name}/{cname}: resources.limits"
            );
            assert_eq!(
                get(c, &["securityContext", "readOnlyRootFilesystem"]).and_then(Value::as_bool),
                Some(true),
                "{name}/{cname}: readOnlyRootFilesystem"
            );
        }
        let main = &containers[0];
        let port = seq(main, &["ports"])[0]["containerPort"].as_u64().unwrap();

        if name == "envoy" {
            // Envoy serves HTTP: its health_check filter answers /healthz.
            assert_eq!(port, 8080);
            for probe in ["readinessProbe", "livenessProbe"] {
                assert_eq!(
                    get(main, &[probe, "httpGet", "port"]).and_then(Value::as_u64),
                    Some(port),
                    "envoy: {probe} on the container port"
                );
            }
            let volumes = seq(pod, &["volumes"]);
            let config_maps: BTreeSet<&str> = volumes
                .iter()
                .filter_map(|v| s(v, &["configMap", "name"]))
                .collect();
            assert_eq!(config_maps, ["foundry-descriptors", "foundry-envoy"].into());
        } else {
            let binary = format!("foundry-{name}");
            assert_eq!(
                seq(main, &["command"]),
                [Value::from(binary.as_str())],
                "{name}: command"
            );
            assert_eq!(port, 50051, "{name}: container port");
            let ready = get(main, &["readinessProbe", "grpc"])
                .unwrap_or_else(|| panic!("{name}: readinessProbe is not grpc"));
            assert_eq!(ready["port"].as_u64(), Some(port), "{name}: readiness port");
            let svc = s(ready, &["service"]).unwrap_or("");
            assert!(
                svc.starts_with(&format!("foundry.{name}.v1.")),
                "{name}: readiness asks for one of its own gRPC services, not {svc:?}"
            );
            let live = get(main, &["livenessProbe", "grpc"])
                .unwrap_or_else(|| panic!("{name}: livenessProbe is not grpc"));
            assert_eq!(live["port"].as_u64(), Some(port), "{name}: liveness port");

            // The migration runs first, with the same binary.
            let init = seq(pod, &["initContainers"]);
            assert_eq!(init.len(), 1, "{name}: one migrate initContainer");
            assert_eq!(
                seq(&init[0], &["command"]),
                [Value::from(binary.as_str()), Value::from("--migrate-only")],
                "{name}: initContainer command"
            );

            let allowed = binary_env(&binary);
            for c in [main, &init[0]] {
                let env = seq(c, &["env"]);
                let mut seen = BTreeSet::new();
                for var in env {
                    let var_name = s(var, &["name"]).unwrap();
                    assert!(
                        allowed.contains(var_name),
                        "{name}: {binary} does not read {var_name}"
                    );
                    assert!(seen.insert(var_name), "{name}: {var_name} set twice");
                    if let Some(key_ref) = get(var, &["valueFrom", "secretKeyRef"]) {
                        let (secret, key) = (s(key_ref, &["name"]), s(key_ref, &["key"]));
                        assert!(
                            secrets.iter().any(|sec| {
                                s(sec, &["metadata", "name"]) == secret
                                    && key.is_some_and(|k| get(sec, &["stringData", k]).is_some())
                            }),
                            "{name}: {var_name} refers to {secret:?}/{key:?}, absent from the example Secret"
                        );
                    }
                }
                let from_secret = |var: &str| {
                    env.iter().any(|v| {
                        s(v, &["name"]) == Some(var)
                            && get(v, &["valueFrom", "secretKeyRef"]).is_some()
                    })
                };
                assert!(
                    from_secret("DATABASE_URL"),
                    "{name}: DATABASE_URL from a secretKeyRef"
                );
            }
            let env = seq(main, &["env"]);
            let value = |var: &str| {
                env.iter()
                    .find(|v| s(v, &["name"]) == Some(var))
                    .and_then(|v| s(v, &["value"]))
            };
            assert_eq!(value("FOUNDRY_LISTEN"), Some("0.0.0.0:50051"), "{name}");
            assert_eq!(value("FOUNDRY_LOG_FORMAT"), Some("json"), "{name}");
            assert!(
                value("OTEL_EXPORTER_OTLP_ENDPOINT").is_some_and(|v| v.contains("otel-collector")),
                "{name}: OTLP endpoint"
            );
            // Prometheus finds the metrics port the binary serves.
            let metrics = value("FOUNDRY_METRICS_ADDR")
                .and_then(|a| a.rsplit_once(':'))
                .map(|(_, p)| p)
                .unwrap_or_else(|| panic!("{name}: FOUNDRY_METRICS_ADDR"));
            assert!(
                seq(main, &["ports"])
                    .iter()
                    .any(|p| s(p, &["name"]) == Some("metrics")
                        && p["containerPort"]
                            .as_u64()
                            .map(|p| p.to_string())
                            .as_deref()
                            == Some(metrics)),
                "{name}: a container port `metrics` at {metrics}"
            );
            let annotation = |key: &str| s(pod_meta, &["annotations", key]);
            assert_eq!(annotation("prometheus.io/scrape"), Some("true"), "{name}");
            assert_eq!(annotation("prometheus.io/port"), Some(metrics), "{name}");
            assert_eq!(annotation("prometheus.io/path"), Some("/metrics"), "{name}");
            for secret_var in [
                "FOUNDRY_PAGE_TOKEN_KEY",
                "FOUNDRY_SERVICE_ACCOUNT_KEY",
                "FOUNDRY_KEY_ENCRYPTION_KEY",
            ] {
                assert!(
                    value(secret_var).is_none(),
                    "{name}: {secret_var} as a plain value"
                );
            }
            // Endpoints name a Service of this namespace on its port.
            for var in [
                "FOUNDRY_IDENTITY_ENDPOINT",
                "FOUNDRY_AUDIT_ENDPOINT",
                "FOUNDRY_DELIVERY_ENDPOINT",
            ] {
                if let Some(url) = value(var) {
                    let host = url.trim_start_matches("http://");
                    let (host, port) = host.split_once(':').unwrap();
                    assert!(
                        SERVICES.contains(&host) && port == "50051",
                        "{name}: {var}={url} is not a foundry Service"
                    );
                }
            }
        }

        // A Service, an HPA and a PDB for every Deployment.
        let services: Vec<_> = of_kind("Service")
            .into_iter()
            .filter(|svc| selects(&labels(get(svc, &["spec", "selector"])), &pod_labels))
            .collect();
        assert_eq!(services.len(), 1, "{name}: one Service selects its pods");
        let ports = seq(services[0], &["spec", "ports"]);
        assert!(!ports.is_empty(), "{name}: Service ports");
        for p in ports {
            let target = &p["targetPort"];
            assert!(
                target.as_u64() == Some(port)
                    || target
                        .as_str()
                        .is_some_and(|t| seq(main, &["ports"])
                            .iter()
                            .any(|cp| s(cp, &["name"]) == Some(t))),
                "{name}: Service targetPort {target:?}"
            );
            if name != "envoy" {
                assert_eq!(p["port"].as_u64(), Some(50051), "{name}: Service port");
                assert_eq!(s(p, &["appProtocol"]), Some("grpc"), "{name}: appProtocol");
            } else {
                assert_eq!(p["port"].as_u64(), Some(8080), "envoy: Service port");
            }
        }
        assert_eq!(
            s(services[0], &["metadata", "name"]),
            Some(name),
            "{name}: the Service is its DNS name"
        );

        let hpas: Vec<_> = of_kind("HorizontalPodAutoscaler")
            .into_iter()
            .filter(|h| {
                s(h, &["spec", "scaleTargetRef", "kind"]) == Some("Deployment")
                    && s(h, &["spec", "scaleTargetRef", "name"]) == Some(name)
            })
            .collect();
        assert_eq!(hpas.len(), 1, "{name}: one HPA");
        assert_eq!(s(hpas[0], &["apiVersion"]), Some("autoscaling/v2"));
        let cpu = seq(hpas[0], &["spec", "metrics"])
            .iter()
            .find(|m| s(m, &["resource", "name"]) == Some("cpu"))
            .unwrap_or_else(|| panic!("{name}: HPA on CPU"));
        assert_eq!(
            get(cpu, &["resource", "target", "averageUtilization"]).and_then(Value::as_u64),
            Some(70)
        );

        let pdbs: Vec<_> = of_kind("PodDisruptionBudget")
            .into_iter()
            .filter(|p| {
                selects(
                    &labels(get(p, &["spec", "selector", "matchLabels"])),
                    &pod_labels,
                )
            })
            .collect();
        assert_eq!(pdbs.len(), 1, "{name}: one PDB selects its pods");
        assert_eq!(s(pdbs[0], &["apiVersion"]), Some("policy/v1"));
        assert_eq!(
            get(pdbs[0], &["spec", "minAvailable"]).and_then(Value::as_u64),
            Some(1)
        );
    }

    // Placeholders only in the example Secret.
    for sec in &secrets {
        for (k, v) in get(sec, &["stringData"])
            .and_then(Value::as_mapping)
            .expect("stringData")
        {
            assert!(
                v.as_str().unwrap().contains("CHANGE_ME"),
                "secret {k:?} is not a placeholder"
            );
        }
    }

    // The gateway ConfigMap is the compose config, verbatim.
    let envoy_cm = of_kind("ConfigMap")
        .into_iter()
        .find(|c| s(c, &["metadata", "name"]) == Some("foundry-envoy"))
        .expect("foundry-envoy ConfigMap");
    let in_cm = s(envoy_cm, &["data", "envoy.yaml"]).unwrap();
    let compose = std::fs::read_to_string(deploy_dir().join("compose/envoy.yaml")).unwrap();
    let compose_body = &compose[compose.find("admin:").unwrap()..];
    assert_eq!(
        in_cm, compose_body,
        "deploy/k8s/envoy.yaml's ConfigMap differs from deploy/compose/envoy.yaml"
    );
}

/// The rendered gateway config: the template's services, no placeholder
/// left, and each service's gRPC package routed to its own cluster.
#[test]
fn rendered_envoy_config() {
    let dir = deploy_dir();
    let rendered = std::fs::read_to_string(dir.join("compose/envoy.yaml")).unwrap();
    assert!(!rendered.contains("__"), "an unrendered placeholder");
    let template: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("envoy/envoy.yaml")).unwrap())
            .unwrap();
    let config: Value = serde_yaml_ng::from_str(&rendered).unwrap();
    let hcm = |v: &Value| -> Value {
        v["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            .clone()
    };
    let transcoder_services = |v: &Value| -> Vec<Value> {
        seq(&hcm(v), &["http_filters"])
            .iter()
            .find(|f| s(f, &["name"]) == Some("envoy.filters.http.grpc_json_transcoder"))
            .map(|f| seq(f, &["typed_config", "services"]).to_vec())
            .expect("transcoder")
    };
    assert_eq!(transcoder_services(&config), transcoder_services(&template));

    let clusters: BTreeSet<&str> = seq(&config, &["static_resources", "clusters"])
        .iter()
        .map(|c| s(c, &["name"]).unwrap())
        .collect();
    assert_eq!(clusters, SERVICES.into());
    let hcm = hcm(&config);
    let routes = seq(&hcm["route_config"]["virtual_hosts"][0], &["routes"]);
    // Operations go to the service their name carries, which the
    // foundry_operations filter puts in x-foundry-operations (live in
    // `binaries.rs`): one route per service.
    for cluster in SERVICES {
        let route = routes
            .iter()
            .find(|r| {
                s(r, &["match", "prefix"]) == Some("/google.longrunning.Operations/")
                    && seq(r, &["match", "headers"]).iter().any(|h| {
                        s(h, &["name"]) == Some("x-foundry-operations")
                            && s(h, &["string_match", "exact"]) == Some(cluster)
                    })
            })
            .unwrap_or_else(|| panic!("no operations route for {cluster}"));
        assert_eq!(s(route, &["route", "cluster"]), Some(cluster));
    }
    for svc in transcoder_services(&config) {
        let svc = svc.as_str().unwrap();
        if svc == "google.longrunning.Operations" {
            continue;
        }
        let package = svc.split('.').nth(1).unwrap();
        let route = routes
            .iter()
            .find(|r| s(r, &["match", "prefix"]).is_some_and(|p| format!("/{svc}/").starts_with(p)))
            .unwrap_or_else(|| panic!("no route for {svc}"));
        assert_eq!(
            s(route, &["route", "cluster"]),
            Some(package),
            "{svc} routed elsewhere"
        );
    }
}

#[test]
fn compose_topology() {
    let docs = documents(&deploy_dir().join("compose"));
    let compose = &docs
        .iter()
        .find(|(f, _)| f.ends_with("compose.yaml"))
        .expect("compose.yaml")
        .1;
    let services = compose["services"].as_mapping().expect("services");
    let names: BTreeSet<&str> = services.keys().map(|k| k.as_str().unwrap()).collect();
    for required in [
        "postgres",
        "identity",
        "audit",
        "delivery",
        "envoy",
        "otel-collector",
    ] {
        assert!(names.contains(required), "compose lacks {required}");
    }
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        assert!(s(svc, &["image"]).is_some(), "{name}: image");
        // depends_on: a list or a map of service names.
        let deps: Vec<&str> = match svc.get("depends_on") {
            None => vec![],
            Some(Value::Sequence(list)) => list.iter().map(|d| d.as_str().unwrap()).collect(),
            Some(Value::Mapping(map)) => map.keys().map(|d| d.as_str().unwrap()).collect(),
            Some(other) => panic!("{name}: depends_on {other:?}"),
        };
        for dep in deps {
            assert!(names.contains(dep), "{name} depends on undefined {dep}");
            assert_ne!(dep, name, "{name} depends on itself");
        }
    }
    for name in SERVICES {
        let svc = &services[name];
        let binary = format!("foundry-{name}");
        assert_eq!(
            seq(svc, &["command"]),
            [Value::from(binary.as_str()), Value::from("--migrate")],
            "{name}: command"
        );
        assert_eq!(s(svc, &["image"]), Some("ghcr.io/foundry/foundry:latest"));
        let env = svc["environment"].as_mapping().expect("environment map");
        let allowed = binary_env(&binary);
        for k in env.keys() {
            let k = k.as_str().unwrap();
            assert!(allowed.contains(k), "{name}: {binary} does not read {k}");
        }
        assert!(env.contains_key("DATABASE_URL"), "{name}: DATABASE_URL");
        assert_eq!(
            s(svc, &["environment", "OTEL_EXPORTER_OTLP_ENDPOINT"]),
            Some("http://otel-collector:4317")
        );
        let metrics = s(svc, &["environment", "FOUNDRY_METRICS_ADDR"])
            .and_then(|a| a.rsplit_once(':'))
            .map(|(_, p)| p)
            .unwrap_or_else(|| panic!("{name}: FOUNDRY_METRICS_ADDR"));
        assert!(
            seq(svc, &["ports"]).iter().any(|p| p
                .as_str()
                .is_some_and(|p| p.ends_with(&format!(":{metrics}")))),
            "{name}: the metrics port {metrics} is published"
        );
        for var in [
            "FOUNDRY_IDENTITY_ENDPOINT",
            "FOUNDRY_AUDIT_ENDPOINT",
            "FOUNDRY_DELIVERY_ENDPOINT",
        ] {
            if let Some(url) = s(svc, &["environment", var]) {
                let host = url.trim_start_matches("http://").split(':').next().unwrap();
                assert!(names.contains(host), "{name}: {var}={url}");
            }
        }
    }
    // Files the compose services mount exist (the descriptor set is built).
    for (name, svc) in services {
        for vol in seq(svc, &["volumes"]) {
            let src = vol.as_str().unwrap().split(':').next().unwrap();
            if let Some(rel) = src.strip_prefix("./")
                && rel != "foundry.binpb"
            {
                assert!(
                    deploy_dir().join("compose").join(rel).exists(),
                    "{} mounts missing {rel}",
                    name.as_str().unwrap()
                );
            }
        }
    }
}
