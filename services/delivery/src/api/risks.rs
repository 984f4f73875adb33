//! `RiskService`.

use std::sync::Arc;

use async_trait::async_trait;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::db::Tx;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1::{self as pb, risk_service_server::RiskService};
use foundry_resource::{Create, Delete, Update, WireStamp};
use tonic::Request;

use crate::State;
use crate::api::{
    Reply, Wire, WireChange, WireNew, create, delete, enum_filter, get, hold, list_in_program,
    long_description, title, update,
};
use crate::domain::Program;
use crate::domain::{NewRisk, Risk, RiskChange, RiskLevel, RiskPath, RiskSeverity, RiskStatus};

/// Handlers of `RiskService`.
#[derive(Clone, Debug)]
pub struct Risks(pub Arc<State>);

impl Wire for Risk {
    type Message = pb::Risk;

    fn to_proto(&self) -> pb::Risk {
        let (f, w) = (&self.fields, WireStamp::from(&self.stamp));
        pb::Risk {
            id: self.id.to_string(),
            program_id: f.program_id.to_string(),
            title: f.title.clone(),
            description: f.description.clone(),
            likelihood: pb::RiskLevel::from(f.likelihood) as i32,
            impact: pb::RiskLevel::from(f.impact) as i32,
            severity: pb::RiskSeverity::from(self.severity) as i32,
            mitigation: f.mitigation.clone(),
            owner_user_id: f.owner_user_id.map(|x| x.to_string()).unwrap_or_default(),
            status: pb::RiskStatus::from(f.status) as i32,
            created_by: w.created_by,
            create_time: w.create_time,
            update_time: w.update_time,
            etag: w.etag,
        }
    }
}

impl WireNew for Risk {
    fn parse_new(v: &mut Violations, r: &pb::Risk) -> Option<NewRisk> {
        let program_id = v.id_of("risk.program_id", &r.program_id);
        let title = title(v, "risk.title", &r.title);
        let description = long_description(v, "risk.description", &r.description);
        let likelihood: Option<RiskLevel> = v.enum_value("risk.likelihood", r.likelihood);
        let impact: Option<RiskLevel> = v.enum_value("risk.impact", r.impact);
        let mitigation = long_description(v, "risk.mitigation", &r.mitigation);
        let owner_user_id = v.maybe_id("risk.owner_user_id", &r.owner_user_id);
        let status = match r.status {
            0 => Some(RiskStatus::Open),
            s => v.enum_value::<RiskStatus>("risk.status", s),
        };
        Some(NewRisk {
            program_id: program_id?,
            title: title?,
            description: description?,
            likelihood: likelihood?,
            impact: impact?,
            mitigation: mitigation?,
            owner_user_id: owner_user_id?,
            status: status?,
        })
    }
}

impl WireChange for Risk {
    fn parse_change(v: &mut Violations, path: RiskPath, r: &pb::Risk) -> Option<RiskChange> {
        match path {
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
        }
    }
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
    async fn create_risk(&self, req: Request<pb::CreateRiskRequest>) -> Reply<pb::Risk> {
        create::<Risk, _>(&self.0, req).await
    }

    #[tracing::instrument(skip_all)]
    async fn get_risk(&self, req: Request<pb::GetRiskRequest>) -> Reply<pb::Risk> {
        get::<Risk, _, _>(&self.0, req).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_risks(&self, req: Request<pb::ListRisksRequest>) -> Reply<pb::ListRisksResponse> {
        let r = req.get_ref();
        list_in_program::<Risk, _, _>(&self.0, &req, &r.program_id, |v| {
            vec![
                enum_filter::<RiskSeverity>(v, "severity", r.severity),
                enum_filter::<RiskStatus>(v, "status", r.status),
            ]
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_risk(&self, req: Request<pb::UpdateRiskRequest>) -> Reply<pb::Risk> {
        update::<Risk, _, _>(&self.0, req).await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_risk(&self, req: Request<pb::DeleteRiskRequest>) -> Reply<()> {
        delete::<Risk, _, _>(&self.0, req).await
    }
}
