//! Handlers from plain async functions, for work that needs no arguments
//! (maintenance: sweeps, checkpoints).

use std::future::Future;

use async_trait::async_trait;

use crate::{Handler, JobContext, JobError};

/// A handler that runs `f` and keeps what it returns as the job's result.
pub fn task<F, Fut>(f: F) -> Task<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<serde_json::Value>> + Send,
{
    Task(f)
}

/// See [`task`].
#[derive(Debug)]
pub struct Task<F>(F);

#[async_trait]
impl<F, Fut> Handler for Task<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<serde_json::Value>> + Send,
{
    async fn run(&self, _: &JobContext) -> Result<Option<serde_json::Value>, JobError> {
        Ok(Some((self.0)().await?))
    }
}
