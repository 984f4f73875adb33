//! Outgoing calls carry the caller: its bearer token and the current trace
//! context (`traceparent`), so the next service authorizes the same principal
//! and the trace continues.

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Adds `authorization` and `traceparent` to every outgoing request.
#[derive(Clone, Debug)]
pub struct Propagate {
    authorization: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl Propagate {
    /// Propagates the given bearer token.
    pub fn bearer(token: &str) -> Self {
        Self {
            authorization: format!("Bearer {token}").parse().ok(),
        }
    }

    /// Propagates the caller of the current request.
    pub fn caller(caller: &crate::Caller) -> Self {
        Self::bearer(&caller.token)
    }
}

impl Interceptor for Propagate {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(auth) = &self.authorization {
            req.metadata_mut().insert("authorization", auth.clone());
        }
        foundry_platform::telemetry::inject_current_metadata(req.metadata_mut());
        Ok(req)
    }
}
