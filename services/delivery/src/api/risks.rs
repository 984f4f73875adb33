//! `RiskService`.

use std::sync::Arc;

use async_trait::async_trait;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::db::Tx;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1::{self as pb, risk_service_server::RiskService};
use foundry_resource::{Create, Delete, Update, WireStamp};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{
    Order, Paging, SERVICE, create_one, delete_one, enum_filter, get_one, hold, list_children,
    long_description, parse_changes, title, update_one,
};
use crate::domain::{
    NewRisk, Risk, RiskChange, RiskId, RiskLevel, RiskPath, RiskSeverity, RiskStatus,
};
use crate::domain::{Program, ProgramId};

/// Handlers of `RiskService`.
#[derive(Clone, Debug)]
pub struct Risks(pub Arc<State>);

pub fn risk_to_proto(r: &Risk) -> pb::Risk {
    let w = WireStamp::from(&r.stamp);
    pb::Risk {
        id: r.id.to_string(),
        program_id: r.fields.program_id.to_string(),
        title: r.fields.title.clone(),
        description: r.fields.description.clone(),
        likelihood: pb::RiskLevel::from(r.fields.likelihood) as i32,
        impact: pb::RiskLevel::from(r.fields.impact) as i32,
        severity: pb::RiskSeverity::from(r.severity) as i32,
        mitigation: r.fields.mitigation.clone(),
        owner_user_id: r
            .fields
            .owner_user_id
            .map(|x| x.to_string())
            .unwrap_or_default(),
        status: pb::RiskStatus::from(r.fields.status) as i32,
        created_by: w.created_by,
        create_time: w.create_time,
        update_time: w.update_time,
        etag: w.etag,
    }
}

/// A `CreateRiskRequest` as a [`NewRisk`] and its request id.
fn parse_create(req: &pb::CreateRiskRequest) -> Result<(NewRisk, Option<Uuid>), Error> {
    let empty = pb::Risk::default();
    let r = req.risk.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let program_id = v.id_of("risk.program_id", &r.program_id);
    let title = title(&mut v, "risk.title", &r.title);
    let description = long_description(&mut v, "risk.description", &r.description);
    let likelihood: Option<RiskLevel> = v.enum_value("risk.likelihood", r.likelihood);
    let impact: Option<RiskLevel> = v.enum_value("risk.impact", r.impact);
    let mitigation = long_description(&mut v, "risk.mitigation", &r.mitigation);
    let owner_user_id = v.maybe_id("risk.owner_user_id", &r.owner_user_id);
    let status = match r.status {
        0 => Some(RiskStatus::Open),
        s => v.enum_value::<RiskStatus>("risk.status", s),
    };
    let request_id = v.maybe_request_id(&req.request_id);
    v.finish_with(|| {
        Some((
            NewRisk {
                program_id: program_id?,
                title: title?,
                description: description?,
                likelihood: likelihood?,
                impact: impact?,
                mitigation: mitigation?,
                owner_user_id: owner_user_id?,
                status: status?,
            },
            request_id?,
        ))
    })
}

/// An `UpdateRiskRequest` as the risk's id, etag and the changes its mask
/// names.
fn parse_update(req: &pb::UpdateRiskRequest) -> Result<(RiskId, String, Vec<RiskChange>), Error> {
    let empty = pb::Risk::default();
    let r = req.risk.as_ref().unwrap_or(&empty);
    parse_changes(
        "risk",
        (&r.id, &r.etag),
        req.update_mask.as_ref(),
        |v, path| match path {
            RiskPath::Title => title(v, "risk.title", &r.title).map(RiskChange::Title),
            RiskPath::Description => {
                long_description(v, "risk.description", &r.description).map(RiskChange::Description)
            }
            RiskPath::Likelihood => v
                .enum_value::<RiskLevel>("risk.likelihood", r.likelihood)
                .map(RiskChange::Likelihood),
            RiskPath::Impact => v
                .enum_value::<RiskLevel>("risk.impact", r.impact)
                .map(RiskChange::Impact),
            RiskPath::Mitigation => {
                long_description(v, "risk.mitigation", &r.mitigation).map(RiskChange::Mitigation)
            }
            // Empty leaves the risk unowned.
            RiskPath::OwnerUserId => v
                .maybe_id("risk.owner_user_id", &r.owner_user_id)
                .map(RiskChange::OwnerUserId),
            RiskPath::Status => v
                .enum_value::<RiskStatus>("risk.status", r.status)
                .map(RiskChange::Status),
        },
    )
}

#[async_trait]
impl Create for Risk {
    /// The program is visible and held (`FOR KEY SHARE`) until commit.
    async fn check_new(new: &NewRisk, tx: &mut Tx, call: &Call) -> Result<(), Error> {
        hold::<Program>(tx, call, new.program_id).await
    }
}

impl Update for Risk {}

impl Delete for Risk {}

#[tonic::async_trait]
impl RiskService for Risks {
    #[tracing::instrument(skip_all)]
    async fn create_risk(
        &self,
        req: Request<pb::CreateRiskRequest>,
    ) -> Result<Response<pb::Risk>, Status> {
        create_one(&self.0, &req, "CreateRisk", parse_create, risk_to_proto).await
    }

    #[tracing::instrument(skip_all)]
    async fn get_risk(
        &self,
        req: Request<pb::GetRiskRequest>,
    ) -> Result<Response<pb::Risk>, Status> {
        get_one(&self.0, &req, &req.get_ref().id, risk_to_proto).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_risks(
        &self,
        req: Request<pb::ListRisksRequest>,
    ) -> Result<Response<pb::ListRisksResponse>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let program_id = v.id_of("program_id", &req.program_id);
        let filters = [
            enum_filter::<RiskSeverity>(&mut v, "severity", req.severity),
            enum_filter::<RiskStatus>(&mut v, "status", req.status),
        ];
        let program_id: ProgramId = v.finish_with(|| program_id)?;
        let paging = Paging::under("program", program_id, req.page_size, &req.page_token);
        let parent = ("program_id", program_id);
        let (rows, next_page_token) = list_children::<Risk, Program>(
            &self.0,
            &call,
            paging,
            Order::newest(),
            parent,
            &filters,
        )
        .await?;
        Ok(Response::new(pb::ListRisksResponse {
            risks: rows.iter().map(risk_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_risk(
        &self,
        req: Request<pb::UpdateRiskRequest>,
    ) -> Result<Response<pb::Risk>, Status> {
        update_one(&self.0, &req, parse_update, risk_to_proto).await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_risk(
        &self,
        req: Request<pb::DeleteRiskRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.get_ref();
        delete_one::<Risk, _, _>(&self.0, &req, &r.id, &r.etag).await
    }
}
