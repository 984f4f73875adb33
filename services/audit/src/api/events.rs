//! `AuditService`: list and get the caller organization's events here;
//! every other method routes to the module of its concern.

use std::sync::Arc;

use foundry_platform::Error;
use foundry_platform::convert::from_timestamp;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::audit::v1::{self as pb, audit_service_server::AuditService};
use foundry_tenancy::caller;
use tonic::{Request, Response, Status};

use crate::State;
use crate::api::{activity, checkpoints, event_to_proto, export, records, settings, verify};
use crate::domain;
use crate::store::{self, Keyset, ListFilter};

/// Handlers of `AuditService`.
#[derive(Clone, Debug)]
pub struct Events(pub Arc<State>);

fn not_found() -> Error {
    Error::not_found("AUDIT_EVENT_NOT_FOUND", "audit event")
}

fn time(
    v: &mut Violations,
    field: &str,
    t: Option<&prost_types::Timestamp>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let t = t?;
    let parsed = from_timestamp(t);
    if parsed.is_none() {
        v.add(field, "is not a valid time");
    }
    parsed
}

/// The [`FilterFields`] of a `ListAuditEventsRequest` or an
/// `ExportAuditEventsRequest` (the same fields).
macro_rules! filter_fields {
    ($req:expr) => {
        $crate::api::events::FilterFields {
            actor_id: &$req.actor_id,
            action: &$req.action,
            resource_type: &$req.resource_type,
            resource_id: &$req.resource_id,
            project_id: &$req.project_id,
            start_time: $req.start_time.as_ref(),
            end_time: $req.end_time.as_ref(),
        }
    };
}
pub(crate) use filter_fields;

/// The filters of `ListAuditEventsRequest` and `ExportAuditEventsRequest`
/// (the same fields).
pub struct FilterFields<'a> {
    /// `actor_id`.
    pub actor_id: &'a str,
    /// `action`.
    pub action: &'a str,
    /// `resource_type`.
    pub resource_type: &'a str,
    /// `resource_id`.
    pub resource_id: &'a str,
    /// `project_id`.
    pub project_id: &'a str,
    /// `start_time`.
    pub start_time: Option<&'a prost_types::Timestamp>,
    /// `end_time`.
    pub end_time: Option<&'a prost_types::Timestamp>,
}

impl FilterFields<'_> {
    /// Parses the filters, each problem a violation of its field.
    pub fn parse(&self, v: &mut Violations) -> ListFilter {
        let actor_id = v.opt_id("actor_id", self.actor_id);
        let action = (!self.action.is_empty()).then(|| self.action.to_owned());
        if action.as_deref().is_some_and(|a| !domain::is_action(a)) {
            v.add("action", "must be `<service>.<resource>.<verb>`");
        }
        let resource_type = (!self.resource_type.is_empty()).then(|| self.resource_type.to_owned());
        if resource_type
            .as_deref()
            .is_some_and(|t| !domain::is_resource_type(t))
        {
            v.add(
                "resource_type",
                "must be a resource type such as `identity.membership`",
            );
        }
        let resource_id = (!self.resource_id.is_empty()).then(|| self.resource_id.to_owned());
        if resource_id.is_some() && resource_type.is_none() {
            v.add("resource_id", "requires resource_type");
        }
        if self.resource_id.chars().count() > domain::MAX_RESOURCE_ID {
            v.add(
                "resource_id",
                format!("must be at most {} characters", domain::MAX_RESOURCE_ID),
            );
        }
        let project_id = v.opt_id("project_id", self.project_id);
        let start = time(v, "start_time", self.start_time);
        let end = time(v, "end_time", self.end_time);
        if let (Some(s), Some(e)) = (start, end)
            && e < s
        {
            v.add("end_time", "must not be before start_time");
        }
        let (min_id, max_id) = domain::id_bounds(start, end);
        ListFilter {
            actor_id,
            action,
            resource_type,
            resource_id,
            project_id,
            min_id,
            max_id,
            start,
            end,
        }
    }

    /// An unambiguous rendering (a JSON array), so that no two filter sets
    /// share a page token.
    pub fn render(&self) -> String {
        let stamp = |t: Option<&prost_types::Timestamp>| {
            t.map(|t| format!("{}.{:09}", t.seconds, t.nanos))
                .unwrap_or_default()
        };
        serde_json::json!([
            self.actor_id,
            self.action,
            self.resource_type,
            self.resource_id,
            self.project_id,
            stamp(self.start_time),
            stamp(self.end_time),
        ])
        .to_string()
    }
}

#[tonic::async_trait]
impl AuditService for Events {
    #[tracing::instrument(skip_all)]
    async fn list_audit_events(
        &self,
        req: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let who = caller(&req)?;
        let org_id = who.org_id()?;
        let req = req.into_inner();
        let fields = filter_fields!(req);
        let mut v = Violations::new();
        let mut filter = fields.parse(&mut v);
        v.finish()?;
        filter.project_id = who.confine("project_id", filter.project_id)?;
        let page = self
            .0
            .pages
            .parse(req.page_size, &req.page_token, &fields.render())?;
        let mut conn = self.0.db.read(org_id).await?;
        let keyset = Keyset::NewestFirst { before: page.after };
        let mut rows = store::list_events(&mut conn, org_id, &filter, keyset, page.limit()).await?;
        drop(conn);
        let next_page_token = self.0.pages.finish(&page, &mut rows, |r| r.event.id);
        Ok(Response::new(pb::ListAuditEventsResponse {
            audit_events: rows
                .into_iter()
                .map(event_to_proto)
                .collect::<Result<_, _>>()?,
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_audit_event(
        &self,
        req: Request<pb::GetAuditEventRequest>,
    ) -> Result<Response<pb::AuditEvent>, Status> {
        let who = caller(&req)?;
        let org_id = who.org_id()?;
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut conn = self.0.db.read(org_id).await?;
        // Outside a bound caller's project: not found, as if it were not.
        let row = store::get_event(&mut conn, org_id, id)
            .await?
            .filter(|r| who.sees(r.event.project_id, r.event.id))
            .ok_or_else(not_found)?;
        drop(conn);
        Ok(Response::new(event_to_proto(row)?))
    }

    #[tracing::instrument(skip_all)]
    async fn start_audit_chain_verification(
        &self,
        req: Request<pb::StartAuditChainVerificationRequest>,
    ) -> Result<Response<foundry_proto::google::longrunning::Operation>, Status> {
        verify::start_verification(&self.0, req).await
    }

    #[tracing::instrument(skip_all)]
    async fn verify_audit_chain(
        &self,
        req: Request<pb::VerifyAuditChainRequest>,
    ) -> Result<Response<pb::VerifyAuditChainResponse>, Status> {
        verify::verify_audit_chain(&self.0, req).await
    }

    type ExportAuditEventsStream = export::ExportStream;

    #[tracing::instrument(skip_all)]
    async fn export_audit_events(
        &self,
        req: Request<pb::ExportAuditEventsRequest>,
    ) -> Result<Response<Self::ExportAuditEventsStream>, Status> {
        export::export_audit_events(self.0.clone(), req).await
    }

    #[tracing::instrument(skip_all)]
    async fn create_audit_checkpoint(
        &self,
        req: Request<pb::CreateAuditCheckpointRequest>,
    ) -> Result<Response<pb::AuditCheckpoint>, Status> {
        checkpoints::create_audit_checkpoint(&self.0, req).await
    }

    #[tracing::instrument(skip_all)]
    async fn get_audit_checkpoint(
        &self,
        req: Request<pb::GetAuditCheckpointRequest>,
    ) -> Result<Response<pb::AuditCheckpoint>, Status> {
        checkpoints::get_audit_checkpoint(&self.0, req).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_audit_checkpoints(
        &self,
        req: Request<pb::ListAuditCheckpointsRequest>,
    ) -> Result<Response<pb::ListAuditCheckpointsResponse>, Status> {
        checkpoints::list_audit_checkpoints(&self.0, req).await
    }

    #[tracing::instrument(skip_all)]
    async fn get_audit_signing_keys(
        &self,
        req: Request<pb::GetAuditSigningKeysRequest>,
    ) -> Result<Response<pb::GetAuditSigningKeysResponse>, Status> {
        checkpoints::get_audit_signing_keys(&self.0, req).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_activity(
        &self,
        req: Request<pb::ListActivityRequest>,
    ) -> Result<Response<pb::ListActivityResponse>, Status> {
        activity::list_activity(&self.0, req).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_execution_audit_records(
        &self,
        req: Request<pb::ListExecutionAuditRecordsRequest>,
    ) -> Result<Response<pb::ListExecutionAuditRecordsResponse>, Status> {
        records::list_execution_audit_records(&self.0, req).await
    }

    #[tracing::instrument(skip_all)]
    async fn get_audit_settings(
        &self,
        req: Request<pb::GetAuditSettingsRequest>,
    ) -> Result<Response<pb::AuditSettings>, Status> {
        settings::get_audit_settings(&self.0, req).await
    }

    #[tracing::instrument(skip_all)]
    async fn update_audit_settings(
        &self,
        req: Request<pb::UpdateAuditSettingsRequest>,
    ) -> Result<Response<pb::AuditSettings>, Status> {
        settings::update_audit_settings(&self.0, req).await
    }
}
