//! `RiskService`.

use std::sync::Arc;

use foundry_domain::Id;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::convert::timestamp;
use foundry_platform::db::{Tx, check_etag, etag};
use foundry_platform::idempotency::{self, Begun};
use foundry_platform::validate::{Violations, mask};
use foundry_proto::foundry::delivery::v1::{self as pb, risk_service_server::RiskService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{LONG_DESCRIPTION, SERVICE, found, long_text, program, risk_not_found};
use crate::domain::{
    NewRisk, Risk, RiskChange, RiskId, RiskLevel, RiskPath, RiskSeverity, RiskStatus,
};
use crate::store::{self, Lock, RiskFilter};

/// Handlers of `RiskService`.
#[derive(Clone, Debug)]
pub struct Risks(pub Arc<State>);

const RESOURCE: &str = "delivery.risk";

pub fn risk_to_proto(r: &Risk) -> pb::Risk {
    pb::Risk {
        id: r.id.to_string(),
        program_id: r.program_id.to_string(),
        title: r.title.clone(),
        description: r.description.clone(),
        likelihood: pb::RiskLevel::from(r.likelihood) as i32,
        impact: pb::RiskLevel::from(r.impact) as i32,
        severity: pb::RiskSeverity::from(r.severity) as i32,
        mitigation: r.mitigation.clone(),
        owner_user_id: r.owner_user_id.map(|x| x.to_string()).unwrap_or_default(),
        status: pb::RiskStatus::from(r.status) as i32,
        created_by: r.created_by.to_string(),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
        etag: etag(r.version),
    }
}

/// A `CreateRiskRequest` as a [`NewRisk`] and its request id.
fn parse_create(req: &pb::CreateRiskRequest) -> Result<(NewRisk, Option<Uuid>), Error> {
    let empty = pb::Risk::default();
    let r = req.risk.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let program_id = v.id_of("risk.program_id", &r.program_id);
    let title = v.text("risk.title", &r.title, 1, 500);
    let description = long_text(
        &mut v,
        "risk.description",
        &r.description,
        0,
        LONG_DESCRIPTION,
    );
    let likelihood: Option<RiskLevel> = v.enum_value("risk.likelihood", r.likelihood);
    let impact: Option<RiskLevel> = v.enum_value("risk.impact", r.impact);
    let mitigation = long_text(
        &mut v,
        "risk.mitigation",
        &r.mitigation,
        0,
        LONG_DESCRIPTION,
    );
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

/// An `UpdateRiskRequest` as the risk's id and the changes its mask names.
fn parse_update(req: &pb::UpdateRiskRequest) -> Result<(RiskId, Vec<RiskChange>), Error> {
    let empty = pb::Risk::default();
    let r = req.risk.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let id = v.id_of("risk.id", &r.id);
    let mut changes = Vec::new();
    for path in mask::<RiskPath>(&mut v, req.update_mask.as_ref()) {
        changes.push(match path {
            RiskPath::Title => v
                .text("risk.title", &r.title, 1, 500)
                .map(RiskChange::Title),
            RiskPath::Description => long_text(
                &mut v,
                "risk.description",
                &r.description,
                0,
                LONG_DESCRIPTION,
            )
            .map(RiskChange::Description),
            RiskPath::Likelihood => v
                .enum_value::<RiskLevel>("risk.likelihood", r.likelihood)
                .map(RiskChange::Likelihood),
            RiskPath::Impact => v
                .enum_value::<RiskLevel>("risk.impact", r.impact)
                .map(RiskChange::Impact),
            RiskPath::Mitigation => long_text(
                &mut v,
                "risk.mitigation",
                &r.mitigation,
                0,
                LONG_DESCRIPTION,
            )
            .map(RiskChange::Mitigation),
            // Empty leaves the risk unowned.
            RiskPath::OwnerUserId => v
                .maybe_id("risk.owner_user_id", &r.owner_user_id)
                .map(RiskChange::OwnerUserId),
            RiskPath::Status => v
                .enum_value::<RiskStatus>("risk.status", r.status)
                .map(RiskChange::Status),
        });
    }
    v.finish_with(|| Some((id?, changes.into_iter().collect::<Option<Vec<_>>>()?)))
}

/// A risk the caller may see, with `lock`.
async fn visible_risk(tx: &mut Tx, call: &Call, id: RiskId, lock: Lock) -> Result<Risk, Error> {
    found(
        store::get_risk(tx, call.org_id, id, lock).await?,
        &call.caller,
        |r| r.program_id.uuid(),
        risk_not_found,
    )
}

#[tonic::async_trait]
impl RiskService for Risks {
    #[tracing::instrument(skip_all)]
    async fn create_risk(
        &self,
        req: Request<pb::CreateRiskRequest>,
    ) -> Result<Response<pb::Risk>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (new, request_id) = parse_create(req.get_ref())?;
        let key = idempotency::Key::of(call.org_id, "CreateRisk", request_id, req.get_ref());
        let mut tx = match idempotency::begin(self.0.db.tenant(call.org_id).await?, key).await? {
            Begun::Replay(previous) => return Ok(Response::new(previous)),
            Begun::New(tx) => tx,
        };
        program(
            &mut tx,
            &call.caller,
            call.org_id,
            new.program_id.uuid(),
            Lock::KeyShare,
        )
        .await?;
        let risk = store::insert_risk(&mut tx, call.org_id, &new, call.principal_id()).await?;
        call.actor
            .event("delivery.risk.create", RESOURCE, risk.id)
            .project(Some(risk.program_id.uuid()))
            .created(&risk)
            .record(&mut tx)
            .await?;
        let out = risk_to_proto(&risk);
        tx.finish(&out).await?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_risk(
        &self,
        req: Request<pb::GetRiskRequest>,
    ) -> Result<Response<pb::Risk>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id = Violations::require_id("id", &req.get_ref().id).map(Id::from_uuid)?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let risk = visible_risk(&mut tx, &call, id, Lock::None).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(risk_to_proto(&risk)))
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
        let severity: Option<RiskSeverity> = v.opt_enum_value("severity", req.severity);
        let status: Option<RiskStatus> = v.opt_enum_value("status", req.status);
        let program_id = v.finish_with(|| program_id)?;
        let page = self.0.pages.parse(
            req.page_size,
            &req.page_token,
            &format!(
                "program={program_id};severity={};status={}",
                req.severity, req.status
            ),
        )?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        program(
            &mut tx,
            &call.caller,
            call.org_id,
            program_id.uuid(),
            Lock::None,
        )
        .await?;
        let mut risks = store::list_risks(
            &mut tx,
            call.org_id,
            RiskFilter {
                program_id,
                severity,
                status,
            },
            page.after,
            page.limit(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self.0.pages.finish(&page, &mut risks, |r| r.id.uuid());
        Ok(Response::new(pb::ListRisksResponse {
            risks: risks.iter().map(risk_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_risk(
        &self,
        req: Request<pb::UpdateRiskRequest>,
    ) -> Result<Response<pb::Risk>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (id, changes) = parse_update(req.get_ref())?;
        let etag = req.get_ref().risk.as_ref().map_or("", |r| r.etag.as_str());
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let before = visible_risk(&mut tx, &call, id, Lock::NoKeyUpdate).await?;
        check_etag(etag, before.version, "risk")?;
        let mut risk = before.clone();
        risk.apply(changes);
        let risk = store::update_risk(&mut tx, call.org_id, &risk).await?;
        call.actor
            .event("delivery.risk.update", RESOURCE, id)
            .project(Some(risk.program_id.uuid()))
            .diff(&before, &risk)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(risk_to_proto(&risk)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_risk(
        &self,
        req: Request<pb::DeleteRiskRequest>,
    ) -> Result<Response<()>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id = Violations::require_id("id", &req.get_ref().id).map(Id::from_uuid)?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let risk = visible_risk(&mut tx, &call, id, Lock::Update).await?;
        check_etag(&req.get_ref().etag, risk.version, "risk")?;
        store::delete_risk(&mut tx, call.org_id, id).await?;
        call.actor
            .event("delivery.risk.delete", RESOURCE, id)
            .project(Some(risk.program_id.uuid()))
            .removed(&risk)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(()))
    }
}
