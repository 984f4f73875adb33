//! HTTP/JSON through Envoy's gRPC-JSON transcoder against native gRPC, for
//! the same call (`GetOrganization`), the same callers and the same server:
//! Envoy runs `deploy/envoy/envoy.yaml` in front of the suite. gRPC through
//! the same Envoy separates the proxy's cost from the transcoding's.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::api::{Gateway, Params};
use crate::env::{Env, Tenant, authed, channel};
use crate::load::{self, Mode};

/// Envoy as a child process, killed on drop.
struct Envoy(tokio::process::Child);

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// HTTP/1.1 keep-alive connections, one per caller at a time.
struct Pool {
    addr: String,
    idle: Mutex<Vec<SendRequest<Empty<Bytes>>>>,
}

impl Pool {
    async fn connect(&self) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
        let stream = TcpStream::connect(&self.addr).await?;
        stream.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(send)
    }

    /// GET `path` with a bearer token; the status and the body's length.
    async fn get(&self, path: &str, token: &str) -> anyhow::Result<(u16, usize)> {
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        let mut send = match idle {
            Some(s) => s,
            None => self.connect().await?,
        };
        send.ready().await?;
        let req = http::Request::get(path)
            .header(http::header::HOST, &self.addr)
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Empty::new())?;
        let resp = send.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        if let Ok(mut v) = self.idle.lock() {
            v.push(send);
        }
        Ok((status, body.len()))
    }
}

/// Starts Envoy in front of the suite and measures the three paths.
pub async fn run(env: &Env, envoy: &Path, t: &Tenant, p: &Params) -> anyhow::Result<Gateway> {
    let dir = tempfile::Builder::new()
        .prefix("foundry-bench-envoy")
        .tempdir()?;
    let descriptor = dir.path().join("foundry.binpb");
    std::fs::write(&descriptor, foundry_proto::FILE_DESCRIPTOR_SET)?;
    let http_port = foundry::tools::free_port()?;
    let config = dir.path().join("envoy.yaml");
    std::fs::write(
        &config,
        foundry::gateway::render_envoy(http_port, &descriptor, &env.addr.to_string()),
    )?;
    let _envoy = Envoy(
        tokio::process::Command::new(envoy)
            .arg("-c")
            .arg(&config)
            .args([
                "--base-id",
                &foundry::tools::free_port()?.to_string(),
                "-l",
                "error",
            ])
            .args(["--concurrency", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?,
    );
    let pool = Arc::new(Pool {
        addr: format!("127.0.0.1:{http_port}"),
        idle: Mutex::new(vec![]),
    });
    let path = Arc::new(format!("/v1/organizations/{}", t.org));
    let token = Arc::new(t.token.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match pool.get(&path, &token).await {
            Ok((200, _)) => break,
            Ok((status, _)) if Instant::now() > deadline => {
                anyhow::bail!("Envoy answered {status} to GET {path}")
            }
            Err(e) if Instant::now() > deadline => anyhow::bail!("Envoy did not come up: {e}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let mode = Mode::Closed(p.concurrency);
    let grpc = |ch: tonic::transport::Channel, name: &'static str| {
        let client =
            foundry_proto::foundry::identity::v1::organization_service_client::OrganizationServiceClient::new(ch);
        let (token, org) = (token.clone(), t.org.to_string());
        load::run(name, mode, p.warmup, p.duration, move |_| {
            let (mut client, token, org) = (client.clone(), token.clone(), org.clone());
            async move {
                client
                    .get_organization(authed(
                        &token,
                        foundry_proto::foundry::identity::v1::GetOrganizationRequest { id: org },
                    )?)
                    .await?;
                Ok(())
            }
        })
    };
    let native_grpc = grpc(env.channel.clone(), "GetOrganization, gRPC").await;
    let via: std::net::SocketAddr = pool.addr.parse()?;
    let grpc_via_envoy = grpc(channel(via).await?, "GetOrganization, gRPC via Envoy").await;
    let http_via_envoy = load::run(
        "GET /v1/organizations/{id}, HTTP/JSON via Envoy",
        mode,
        p.warmup,
        p.duration,
        move |_| {
            let (pool, path, token) = (pool.clone(), path.clone(), token.clone());
            async move {
                let (status, len) = pool.get(&path, &token).await?;
                anyhow::ensure!(status == 200 && len > 0, "HTTP {status}");
                Ok(())
            }
        },
    )
    .await;
    Ok(Gateway {
        native_grpc,
        grpc_via_envoy,
        http_via_envoy,
    })
}

/// Envoy, as the end-to-end tests find it ([`foundry::tools::find`]).
pub fn find_envoy() -> Option<std::path::PathBuf> {
    foundry::tools::find("envoy", "ENVOY")
}
