//! The framework ceiling: a bare tonic server (no database, no tenancy
//! layer, no request tracing) serving the same services and returning
//! messages of the same size as the real handlers (copies of real
//! responses taken from the suite before the run). Whatever a scenario
//! costs beyond this is Foundry's own.

use std::sync::Arc;

use foundry_proto::foundry::delivery::v1 as dpb;
use foundry_proto::foundry::identity::v1 as ipb;
use tonic::{Request, Response, Status};

/// The canned replies.
#[derive(Clone, Debug, Default)]
pub struct Replies {
    /// GetOrganization's.
    pub organization: ipb::Organization,
    /// GetTask's, CreateTask's and UpdateTask's.
    pub task: dpb::Task,
    /// ListTasks' (a page of 50).
    pub tasks: dpb::ListTasksResponse,
}

#[derive(Clone)]
struct Canned(Arc<Replies>);

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not part of the ceiling"))
}

#[tonic::async_trait]
impl ipb::organization_service_server::OrganizationService for Canned {
    async fn create_organization(
        &self,
        _: Request<ipb::CreateOrganizationRequest>,
    ) -> Result<Response<ipb::Organization>, Status> {
        unimplemented()
    }
    async fn get_organization(
        &self,
        _: Request<ipb::GetOrganizationRequest>,
    ) -> Result<Response<ipb::Organization>, Status> {
        Ok(Response::new(self.0.organization.clone()))
    }
    async fn list_organizations(
        &self,
        _: Request<ipb::ListOrganizationsRequest>,
    ) -> Result<Response<ipb::ListOrganizationsResponse>, Status> {
        unimplemented()
    }
    async fn update_organization(
        &self,
        _: Request<ipb::UpdateOrganizationRequest>,
    ) -> Result<Response<ipb::Organization>, Status> {
        unimplemented()
    }
    async fn delete_organization(
        &self,
        _: Request<ipb::DeleteOrganizationRequest>,
    ) -> Result<Response<ipb::Organization>, Status> {
        unimplemented()
    }
    async fn undelete_organization(
        &self,
        _: Request<ipb::UndeleteOrganizationRequest>,
    ) -> Result<Response<ipb::Organization>, Status> {
        unimplemented()
    }
}

#[tonic::async_trait]
impl dpb::task_service_server::TaskService for Canned {
    async fn create_task(
        &self,
        _: Request<dpb::CreateTaskRequest>,
    ) -> Result<Response<dpb::Task>, Status> {
        Ok(Response::new(self.0.task.clone()))
    }
    async fn get_task(
        &self,
        _: Request<dpb::GetTaskRequest>,
    ) -> Result<Response<dpb::Task>, Status> {
        Ok(Response::new(self.0.task.clone()))
    }
    async fn list_tasks(
        &self,
        _: Request<dpb::ListTasksRequest>,
    ) -> Result<Response<dpb::ListTasksResponse>, Status> {
        Ok(Response::new(self.0.tasks.clone()))
    }
    async fn update_task(
        &self,
        _: Request<dpb::UpdateTaskRequest>,
    ) -> Result<Response<dpb::Task>, Status> {
        Ok(Response::new(self.0.task.clone()))
    }
    async fn delete_task(
        &self,
        _: Request<dpb::DeleteTaskRequest>,
    ) -> Result<Response<()>, Status> {
        unimplemented()
    }
    async fn change_task_status(
        &self,
        _: Request<dpb::ChangeTaskStatusRequest>,
    ) -> Result<Response<dpb::Task>, Status> {
        unimplemented()
    }
}

/// Serves the canned replies on a loopback port until the returned sender
/// is dropped or fired; returns the address.
pub async fn serve(
    replies: Replies,
) -> anyhow::Result<(std::net::SocketAddr, tokio::sync::oneshot::Sender<()>)> {
    let (l, stop) = crate::env::Loopback::bind().await?;
    let canned = Canned(Arc::new(replies));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(
                ipb::organization_service_server::OrganizationServiceServer::new(canned.clone()),
            )
            .add_service(dpb::task_service_server::TaskServiceServer::new(canned))
            .serve_with_incoming_shutdown(l.incoming, l.stopped),
    );
    Ok((l.addr, stop))
}
