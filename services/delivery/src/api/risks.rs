//! `RiskService`.

use std::sync::Arc;

use chrono::Utc;
use foundry_platform::Error;
use foundry_platform::convert::timestamp;
use foundry_platform::db::{check_etag, etag, idempotency};
use foundry_platform::validate::{Violations, update_mask};
use foundry_proto::foundry::delivery::v1::{self as pb, risk_service_server::RiskService};
use foundry_tenancy::caller;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{LONG_DESCRIPTION, actor, found, long_text, program, risk_not_found};
use crate::domain::{self, RiskLevel, RiskSeverity, RiskStatus};
use crate::store::{self, Lock, RiskFilter, RiskRow};

/// Handlers of `RiskService`.
#[derive(Clone, Debug)]
pub struct Risks(pub Arc<State>);

const RESOURCE: &str = "delivery.risk";

pub fn risk_to_proto(r: RiskRow) -> pb::Risk {
    pb::Risk {
        id: r.id.to_string(),
        program_id: r.program_id.to_string(),
        title: r.title,
        description: r.description,
        likelihood: pb::RiskLevel::from(RiskLevel::from_db(r.likelihood)) as i32,
        impact: pb::RiskLevel::from(RiskLevel::from_db(r.impact)) as i32,
        severity: pb::RiskSeverity::from(RiskSeverity::from_db(&r.severity)) as i32,
        mitigation: r.mitigation,
        owner_user_id: r.owner_user_id.map(|x| x.to_string()).unwrap_or_default(),
        status: pb::RiskStatus::from(RiskStatus::from_db(&r.status)) as i32,
        created_by: r.created_by.to_string(),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
        etag: etag(r.version),
    }
}

#[tonic::async_trait]
impl RiskService for Risks {
    #[tracing::instrument(skip_all)]
    async fn create_risk(
        &self,
        req: Request<pb::CreateRiskRequest>,
    ) -> Result<Response<pb::Risk>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let r = req.risk.unwrap_or_default();
        let mut v = Violations::new();
        let program_id = v.id("risk.program_id", &r.program_id);
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
        let owner_user_id = v.opt_id("risk.owner_user_id", &r.owner_user_id);
        let status = match r.status {
            0 => Some(RiskStatus::Open),
            s => v.enum_value::<RiskStatus>("risk.status", s),
        };
        let request_id = v.request_id(&req.request_id);
        v.finish()?;
        let (
            Some(program_id),
            Some(title),
            Some(description),
            Some(likelihood),
            Some(impact),
            Some(mitigation),
            Some(status),
        ) = (
            program_id,
            title,
            description,
            likelihood,
            impact,
            mitigation,
            status,
        )
        else {
            return Err(Error::invalid_field("risk", "is required").into());
        };

        let mut tx = self.0.db.tenant(org_id).await?;
        if let Some(rid) = request_id
            && let idempotency::Claim::Replay(prev) =
                idempotency::claim::<pb::Risk>(&mut tx, org_id, "CreateRisk", rid).await?
        {
            return Ok(Response::new(prev));
        }
        program(&mut tx, &caller, org_id, program_id, Lock::KeyShare).await?;
        let now = Utc::now();
        let row = store::insert_risk(
            &mut tx,
            &RiskRow {
                org_id,
                id: Uuid::nil(),
                program_id,
                title,
                description,
                likelihood: likelihood.value(),
                impact: impact.value(),
                severity: domain::severity(likelihood, impact).as_str().to_owned(),
                mitigation,
                owner_user_id,
                status: status.as_str().to_owned(),
                created_by: caller.principal_id(),
                version: 1,
                created_at: now,
                updated_at: now,
            },
        )
        .await?;
        actor
            .event("delivery.risk.create", RESOURCE, row.id)
            .project(Some(program_id))
            .set("title", &row.title)
            .set("description", &row.description)
            .set("likelihood", row.likelihood)
            .set("impact", row.impact)
            .set("severity", &row.severity)
            .set("mitigation", &row.mitigation)
            .set("owner_user_id", row.owner_user_id)
            .set("status", &row.status)
            .record(&mut tx)
            .await?;
        let out = risk_to_proto(row);
        if let Some(rid) = request_id {
            idempotency::complete(&mut tx, org_id, "CreateRisk", rid, &out).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_risk(
        &self,
        req: Request<pb::GetRiskRequest>,
    ) -> Result<Response<pb::Risk>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_risk(&mut tx, org_id, id, Lock::None).await?,
            &caller,
            |r| r.program_id,
            risk_not_found,
        )?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(risk_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_risks(
        &self,
        req: Request<pb::ListRisksRequest>,
    ) -> Result<Response<pb::ListRisksResponse>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let program_id = v.id("program_id", &req.program_id);
        let severity: Option<RiskSeverity> = v.opt_enum_value("severity", req.severity);
        let status: Option<RiskStatus> = v.opt_enum_value("status", req.status);
        v.finish()?;
        let Some(program_id) = program_id else {
            return Err(Error::invalid_field("program_id", "is required").into());
        };
        let page = self.0.pages.parse(
            req.page_size,
            &req.page_token,
            &format!(
                "program={program_id};severity={};status={}",
                req.severity, req.status
            ),
        )?;
        let mut tx = self.0.db.tenant(org_id).await?;
        program(&mut tx, &caller, org_id, program_id, Lock::None).await?;
        let mut rows = store::list_risks(
            &mut tx,
            org_id,
            RiskFilter {
                program_id,
                severity: severity.map(RiskSeverity::as_str),
                status: status.map(RiskStatus::as_str),
            },
            page.after,
            page.limit(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self.0.pages.finish(&page, &mut rows, |r| r.id);
        Ok(Response::new(pb::ListRisksResponse {
            risks: rows.into_iter().map(risk_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_risk(
        &self,
        req: Request<pb::UpdateRiskRequest>,
    ) -> Result<Response<pb::Risk>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let r = req.risk.unwrap_or_default();
        let mut v = Violations::new();
        let id = v.id("risk.id", &r.id);
        let paths = update_mask(
            &mut v,
            req.update_mask.as_ref(),
            &[
                "title",
                "description",
                "likelihood",
                "impact",
                "mitigation",
                "owner_user_id",
                "status",
            ],
            &[
                "id",
                "program_id",
                "severity",
                "created_by",
                "create_time",
                "update_time",
                "etag",
            ],
        );
        let mut title = None;
        let mut description = None;
        let mut likelihood = None;
        let mut impact = None;
        let mut mitigation = None;
        let mut owner_user_id = None;
        let mut status = None;
        for path in &paths {
            match *path {
                "title" => title = v.text("risk.title", &r.title, 1, 500),
                "description" => {
                    description = long_text(
                        &mut v,
                        "risk.description",
                        &r.description,
                        0,
                        LONG_DESCRIPTION,
                    )
                }
                "likelihood" => {
                    likelihood = v.enum_value::<RiskLevel>("risk.likelihood", r.likelihood)
                }
                "impact" => impact = v.enum_value::<RiskLevel>("risk.impact", r.impact),
                "mitigation" => {
                    mitigation = long_text(
                        &mut v,
                        "risk.mitigation",
                        &r.mitigation,
                        0,
                        LONG_DESCRIPTION,
                    )
                }
                // Empty leaves the risk unowned.
                "owner_user_id" => {
                    owner_user_id = Some(v.opt_id("risk.owner_user_id", &r.owner_user_id))
                }
                _ => status = v.enum_value::<RiskStatus>("risk.status", r.status),
            }
        }
        v.finish()?;
        let Some(id) = id else {
            return Err(Error::invalid_field("risk.id", "is required").into());
        };
        let mut tx = self.0.db.tenant(org_id).await?;
        let mut row = found(
            store::get_risk(&mut tx, org_id, id, Lock::NoKeyUpdate).await?,
            &caller,
            |r| r.program_id,
            risk_not_found,
        )?;
        check_etag(&r.etag, row.version, "risk")?;
        let before = row.clone();
        if let Some(x) = title {
            row.title = x;
        }
        if let Some(x) = description {
            row.description = x;
        }
        if let Some(x) = likelihood {
            row.likelihood = x.value();
        }
        if let Some(x) = impact {
            row.impact = x.value();
        }
        row.severity = domain::severity(
            RiskLevel::from_db(row.likelihood),
            RiskLevel::from_db(row.impact),
        )
        .as_str()
        .to_owned();
        if let Some(x) = mitigation {
            row.mitigation = x;
        }
        if let Some(x) = owner_user_id {
            row.owner_user_id = x;
        }
        if let Some(x) = status {
            row.status = x.as_str().to_owned();
        }
        let row = store::update_risk(&mut tx, &row).await?;
        actor
            .event("delivery.risk.update", RESOURCE, id)
            .project(Some(row.program_id))
            .change("title", &before.title, &row.title)
            .change("description", &before.description, &row.description)
            .change("likelihood", before.likelihood, row.likelihood)
            .change("impact", before.impact, row.impact)
            .change("severity", &before.severity, &row.severity)
            .change("mitigation", &before.mitigation, &row.mitigation)
            .change("owner_user_id", before.owner_user_id, row.owner_user_id)
            .change("status", &before.status, &row.status)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(risk_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_risk(
        &self,
        req: Request<pb::DeleteRiskRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_risk(&mut tx, org_id, id, Lock::Update).await?,
            &caller,
            |r| r.program_id,
            risk_not_found,
        )?;
        check_etag(&req.get_ref().etag, row.version, "risk")?;
        store::delete_risk(&mut tx, org_id, id).await?;
        actor
            .event("delivery.risk.delete", RESOURCE, id)
            .project(Some(row.program_id))
            .change("title", &row.title, None::<()>)
            .change("severity", &row.severity, None::<()>)
            .change("status", &row.status, None::<()>)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(()))
    }
}
