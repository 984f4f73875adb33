//! Long-running operations (AIP-151), backed by jobs: a call that starts
//! background work enqueues a job marked as an operation and answers
//! [`operation`] of it; `google.longrunning.Operations` then serves its
//! state to the caller's organization.
//!
//! An operation's name is `operations/{service}/{job id}`. One
//! [`Operations`] serves the services of its process, each from its own
//! schema, dispatching by `{service}` (the gateway routes the HTTP form by
//! the same segment). Reading needs `{service}.operations.read`, cancelling
//! and deleting `{service}.operations.write`, checked here (the tenancy
//! layer only admits members of the organization). Another organization's
//! operation is `NOT_FOUND`, as a missing one is.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use foundry_platform::Error;
use foundry_platform::clock::SharedClock;
use foundry_platform::db::Db;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::operations::v1::Progress;
use foundry_proto::google::longrunning::{
    self as lro, Operation, operation::Result as Outcome, operations_server,
};
use foundry_proto::google::rpc::Status as RpcStatus;
use foundry_tenancy::caller;
use prost::Message;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::admin::{self, Cancel, Job};

/// How long WaitOperation waits at most (and by default).
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// How long before the call's deadline a wait answers.
const WAIT_MARGIN: Duration = Duration::from_millis(200);

/// The progress a job reports ([`crate::JobContext::progress`]): what an
/// operation's metadata shows.
pub fn progress(stage: &str, done: i64, total: i64) -> serde_json::Value {
    serde_json::json!({ "stage": stage, "done": done, "total": total })
}

/// A job's result that an operation answers as its response: `message`
/// under its type URL (`type.googleapis.com/<full message name>`).
pub fn response(full_name: &str, message: &impl Message) -> serde_json::Value {
    serde_json::json!({
        "type_url": format!("type.googleapis.com/{full_name}"),
        "value": STANDARD.encode(message.encode_to_vec()),
    })
}

/// A job's result that an operation answers as its error: the work was
/// refused for good (`code` and `message` as the call would have been).
pub fn failure(code: tonic::Code, message: &str) -> serde_json::Value {
    serde_json::json!({ "error": { "code": code as i32, "message": message } })
}

/// The operation of `job` of `service`, as it stands.
pub fn operation(service: &str, job: &Job) -> Operation {
    let p = job.progress.as_ref();
    let number = |k: &str| p.and_then(|p| p[k].as_i64()).unwrap_or(0);
    let metadata = Progress {
        stage: p
            .and_then(|p| p["stage"].as_str())
            .unwrap_or(match job.state.as_str() {
                "available" | "scheduled" | "retryable" => "queued",
                _ => "",
            })
            .to_string(),
        done: number("done"),
        total: number("total"),
        attempt: job.attempt,
    };
    let failed = |code: tonic::Code, message: String| {
        Some(Outcome::Error(RpcStatus {
            code: code as i32,
            message,
            details: vec![],
        }))
    };
    let last_error = || {
        job.errors
            .as_array()
            .and_then(|e| e.last())
            .and_then(|e| e["error"].as_str())
            .unwrap_or("it failed")
            .to_string()
    };
    let result = match job.state.as_str() {
        "completed" => match job.result.as_ref().map(|r| &r["error"]) {
            Some(e) if e.is_object() => Some(Outcome::Error(RpcStatus {
                code: e["code"]
                    .as_i64()
                    .and_then(|c| i32::try_from(c).ok())
                    .unwrap_or(2),
                message: e["message"].as_str().unwrap_or_default().to_string(),
                details: vec![],
            })),
            _ => Some(Outcome::Response(stored_response(job.result.as_ref()))),
        },
        "cancelled" => failed(tonic::Code::Cancelled, "the operation was cancelled".into()),
        "dead" | "discarded" => failed(
            tonic::Code::Aborted,
            format!(
                "the operation failed after {} attempts: {}",
                job.attempt,
                last_error()
            ),
        ),
        _ => None,
    };
    Operation {
        name: format!("operations/{service}/{}", job.id),
        metadata: Some(prost_types::Any {
            type_url: "type.googleapis.com/foundry.operations.v1.Progress".into(),
            value: metadata.encode_to_vec(),
        }),
        done: result.is_some(),
        result,
    }
}

fn stored_response(result: Option<&serde_json::Value>) -> prost_types::Any {
    let r = result.cloned().unwrap_or_default();
    prost_types::Any {
        type_url: r["type_url"].as_str().unwrap_or_default().to_string(),
        value: r["value"]
            .as_str()
            .and_then(|v| STANDARD.decode(v).ok())
            .unwrap_or_default(),
    }
}

/// A service whose operations are served: its schema and clock.
#[derive(Clone, Debug)]
struct Served {
    db: Db,
    clock: SharedClock,
}

/// `google.longrunning.Operations` for the services of a process.
#[derive(Clone, Debug, Default)]
pub struct Operations {
    services: HashMap<String, Served>,
}

/// Where a name points.
struct Named<'a> {
    service: &'a str,
    served: &'a Served,
    id: Uuid,
}

impl Operations {
    /// No service yet.
    pub fn new() -> Operations {
        Operations::default()
    }

    /// Serves `service`'s operations from `db`.
    #[must_use]
    pub fn serve(mut self, service: &str, db: Db, clock: SharedClock) -> Operations {
        self.services
            .insert(service.to_string(), Served { db, clock });
        self
    }

    /// The tonic service.
    pub fn into_server(self) -> operations_server::OperationsServer<Operations> {
        operations_server::OperationsServer::new(self)
    }

    fn service<'a>(&'a self, name: &'a str) -> Result<(&'a str, &'a Served), Status> {
        self.services
            .get_key_value(name)
            .map(|(k, v)| (k.as_str(), v))
            .ok_or_else(|| not_found().into())
    }

    /// `operations/{service}/{id}`: malformed is INVALID_ARGUMENT naming
    /// `name`, a service not served here NOT_FOUND.
    fn named<'a>(&'a self, name: &'a str) -> Result<Named<'a>, Status> {
        let mut v = Violations::new();
        let parts: Vec<&str> = name.split('/').collect();
        let parsed = match parts[..] {
            ["operations", service, id] if !service.is_empty() => match Uuid::parse_str(id) {
                Ok(id) => Some((service, id)),
                Err(_) => None,
            },
            _ => None,
        };
        if parsed.is_none() {
            v.add("name", "must be operations/{service}/{id}");
        }
        v.finish()?;
        let (service, id) = parsed.ok_or_else(|| Status::from(not_found()))?;
        let (service, served) = self.service(service)?;
        Ok(Named {
            service,
            served,
            id,
        })
    }

    /// The caller's organization, once it holds `{service}.operations.{verb}`.
    fn permitted<T>(req: &Request<T>, service: &str, verb: &str) -> Result<Uuid, Status> {
        let who = caller(req)?;
        let org = who.org_id()?;
        let permission = format!("{service}.operations.{verb}");
        if !who.can(&permission) {
            return Err(Error::permission_denied(
                "PERMISSION_NOT_HELD",
                format!("the caller does not hold {permission}"),
            )
            .into());
        }
        Ok(org)
    }

    async fn find(served: &Served, org: Uuid, id: Uuid) -> Result<Job, Status> {
        let mut tx = served.db.tenant(org).await?;
        let job = admin::get(&mut tx, id).await.map_err(Error::from)?;
        tx.commit().await.map_err(Error::from)?;
        job.filter(|j| j.operation && j.org_id == org)
            .ok_or_else(|| not_found().into())
    }
}

fn not_found() -> Error {
    Error::not_found("OPERATION_NOT_FOUND", "operation")
}

#[tonic::async_trait]
impl operations_server::Operations for Operations {
    async fn list_operations(
        &self,
        req: Request<lro::ListOperationsRequest>,
    ) -> Result<Response<lro::ListOperationsResponse>, Status> {
        let q = req.get_ref();
        let mut v = Violations::new();
        let service = q
            .name
            .strip_prefix("operations/")
            .filter(|s| !s.contains('/'));
        if service.is_none_or(str::is_empty) {
            v.add("name", "must be operations/{service}");
        }
        if !q.filter.is_empty() {
            v.add("filter", "is not supported: leave it empty");
        }
        if q.page_size < 0 {
            v.add("page_size", "must not be negative");
        }
        let after = if q.page_token.is_empty() {
            Some(None)
        } else {
            let id = URL_SAFE_NO_PAD
                .decode(&q.page_token)
                .ok()
                .and_then(|b| Uuid::from_slice(&b).ok());
            if id.is_none() {
                v.add("page_token", "is not a token this method returned");
            }
            id.map(Some)
        };
        v.finish()?;
        let (service, served) = self.service(service.unwrap_or_default())?;
        let org = Self::permitted(&req, service, "read")?;
        let size = match q.page_size {
            0 => 50,
            n => i64::from(n.min(500)),
        };
        let after = after.flatten();
        let mut tx = served.db.tenant(org).await?;
        let mut jobs = admin::operations(&mut tx, org, after, size + 1)
            .await
            .map_err(Error::from)?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = if jobs.len() as i64 > size {
            jobs.truncate(size as usize);
            jobs.last()
                .map(|j| URL_SAFE_NO_PAD.encode(j.id.as_bytes()))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(lro::ListOperationsResponse {
            operations: jobs.iter().map(|j| operation(service, j)).collect(),
            next_page_token,
        }))
    }

    async fn get_operation(
        &self,
        req: Request<lro::GetOperationRequest>,
    ) -> Result<Response<Operation>, Status> {
        let n = self.named(&req.get_ref().name)?;
        let org = Self::permitted(&req, n.service, "read")?;
        let job = Self::find(n.served, org, n.id).await?;
        Ok(Response::new(operation(n.service, &job)))
    }

    async fn delete_operation(
        &self,
        req: Request<lro::DeleteOperationRequest>,
    ) -> Result<Response<()>, Status> {
        let n = self.named(&req.get_ref().name)?;
        let org = Self::permitted(&req, n.service, "write")?;
        let job = Self::find(n.served, org, n.id).await?;
        if !operation(n.service, &job).done {
            return Err(Error::failed_precondition(
                "OPERATION_NOT_DONE",
                "the operation is not done: cancel it first",
            )
            .into());
        }
        admin::delete_ended(&n.served.db, org, n.id)
            .await
            .map_err(Error::internal)?;
        Ok(Response::new(()))
    }

    async fn cancel_operation(
        &self,
        req: Request<lro::CancelOperationRequest>,
    ) -> Result<Response<()>, Status> {
        let n = self.named(&req.get_ref().name)?;
        let org = Self::permitted(&req, n.service, "write")?;
        Self::find(n.served, org, n.id).await?;
        match admin::cancel(&n.served.db, &*n.served.clock, org, n.id)
            .await
            .map_err(Error::internal)?
        {
            Cancel::NotFound => Err(not_found().into()),
            Cancel::Cancelled | Cancel::Requested | Cancel::Ended => Ok(Response::new(())),
        }
    }

    async fn wait_operation(
        &self,
        req: Request<lro::WaitOperationRequest>,
    ) -> Result<Response<Operation>, Status> {
        let q = req.get_ref();
        let mut v = Violations::new();
        let wait = match &q.timeout {
            None => Some(MAX_WAIT),
            Some(d) if d.seconds < 0 || d.nanos < 0 => {
                v.add("timeout", "must not be negative");
                None
            }
            Some(d) => {
                Some(Duration::new(d.seconds.unsigned_abs(), d.nanos.unsigned_abs()).min(MAX_WAIT))
            }
        };
        let n = match self.named(&q.name) {
            Ok(n) => Some(n),
            Err(e) if e.code() == tonic::Code::InvalidArgument => {
                v.add("name", "must be operations/{service}/{id}");
                None
            }
            Err(e) => return Err(e),
        };
        v.finish()?;
        let (Some(n), Some(wait)) = (n, wait) else {
            return Err(not_found().into());
        };
        let org = Self::permitted(&req, n.service, "read")?;
        // Answer (with the operation as it stands) before the call's own
        // deadline, which a shorter `grpc-timeout` may have set.
        let wait = match foundry_platform::load::Deadline::remaining(req.extensions()) {
            Some(left) => wait.min(left.saturating_sub(WAIT_MARGIN)),
            None => wait,
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let job = Self::find(n.served, org, n.id).await?;
            let op = operation(n.service, &job);
            if op.done || tokio::time::Instant::now() >= deadline {
                return Ok(Response::new(op));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
