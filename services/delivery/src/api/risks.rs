//! `RiskService`.

use std::sync::Arc;

use async_trait::async_trait;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::db::Tx;
use foundry_platform::rpc::Served;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1 as pb;
use foundry_proto::service::delivery_v1 as svc;
use foundry_resource::{Create, Delete, Update, stamped};

use crate::State;
use crate::api::{In, PathOf, Reply, Wire, enum_filter, list_in_program, long_description, title};
use crate::api::{members, standard};
use crate::domain::{NewRisk, Risk, RiskChange, RiskLevel, RiskPath, RiskSeverity, RiskStatus};

impl Wire for Risk {
    type Message = pb::Risk;

    fn to_proto(&self) -> pb::Risk {
        let f = &self.fields;
        pb::Risk {
            program_id: f.program_id.to_string(),
            title: f.title.clone(),
            description: f.description.clone(),
            likelihood: pb::RiskLevel::from(f.likelihood) as i32,
            impact: pb::RiskLevel::from(f.impact) as i32,
            severity: pb::RiskSeverity::from(self.severity) as i32,
            mitigation: f.mitigation.clone(),
            owner_user_id: f.owner_user_id.map(|x| x.to_string()).unwrap_or_default(),
            status: pb::RiskStatus::from(f.status) as i32,
            ..stamped(self.id, &self.stamp)
        }
    }

    fn parse(v: &mut Violations, r: &pb::Risk) -> Option<NewRisk> {
        let program_id = v.id_of("risk.program_id", &r.program_id);
        let title = title(v, "risk.title", &r.title);
        let description = long_description(v, "risk.description", &r.description);
        let likelihood: Option<RiskLevel> = v.enum_value("risk.likelihood", r.likelihood);
        let impact: Option<RiskLevel> = v.enum_value("risk.impact", r.impact);
        let mitigation = long_description(v, "risk.mitigation", &r.mitigation);
        let owner_user_id = v.maybe_id(OWNER, &r.owner_user_id);
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

    fn change(v: &mut Violations, path: PathOf<Self>, r: &Self::Message) -> Option<Self::Change> {
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
                .maybe_id(OWNER, &r.owner_user_id)
                .map(RiskChange::OwnerUserId),
            RiskPath::Status => v
                .enum_value::<RiskStatus>("risk.status", r.status)
                .map(RiskChange::Status),
        }
    }
}

#[async_trait]
impl Create for Risk {
    fn checks(new: &NewRisk) -> bool {
        new.owner_user_id.is_some()
    }

    /// The owner is a member (the program is held: `Resource::WITHIN`).
    async fn check_new(new: &NewRisk, tx: &mut Tx, call: &Call) -> Result<(), Error> {
        members::members_only(tx, call, members::owned(OWNER, new.owner_user_id, None)).await
    }
}

#[async_trait]
impl Update for Risk {
    /// A new owner must be a member.
    async fn check(&self, before: &Risk, tx: &mut Tx, call: &Call) -> Result<(), Error> {
        let (owner, held) = (self.fields.owner_user_id, before.fields.owner_user_id);
        members::members_only(tx, call, members::owned(OWNER, owner, held)).await
    }
}

/// The owner's field.
const OWNER: &str = "risk.owner_user_id";

impl Delete for Risk {}

/// `RiskService`.
pub(crate) fn service(state: &Arc<State>) -> Served<svc::RiskService> {
    standard::<Risk, _>(state).call(list_risks).complete()
}

async fn list_risks(c: In<pb::ListRisksRequest>) -> Reply<pb::ListRisksResponse> {
    let r = &c.req;
    list_in_program::<Risk, _, _>(&c, &r.program_id, |v| {
        vec![
            enum_filter::<RiskSeverity>(v, "severity", r.severity),
            enum_filter::<RiskStatus>(v, "status", r.status),
        ]
    })
    .await
}
