//! Issue 15, finding 2a: user references (`assignee_ids` of tasks and work
//! orders, `owner_user_id` of goals and risks) name active members of the
//! caller's organization, as delivery's membership replica has them: fed
//! by identity's membership events through the outbox, never by a call to
//! identity.

use std::time::{Duration, Instant};

use foundry_identity::domain::Role;
use foundry_testkit::delivery::*;
use foundry_testkit::{Code, Member, TestApp, assert_status, authed, identity, violated_fields};
use tonic::Status;

use crate::{mask, new_goal, new_risk, new_task, new_work_order, program};

/// The four user references, each on its resource.
#[derive(Clone, Copy, Debug)]
enum Reference {
    TaskAssignees,
    WorkOrderAssignees,
    GoalOwner,
    RiskOwner,
}

use Reference::*;

impl Reference {
    const ALL: [Reference; 4] = [TaskAssignees, WorkOrderAssignees, GoalOwner, RiskOwner];

    /// The field, as violations name it.
    fn field(self) -> &'static str {
        match self {
            TaskAssignees => "task.assignee_ids",
            WorkOrderAssignees => "work_order.assignee_ids",
            GoalOwner => "goal.owner_user_id",
            RiskOwner => "risk.owner_user_id",
        }
    }

    /// Whether it holds a list (else one id).
    fn is_list(self) -> bool {
        matches!(self, TaskAssignees | WorkOrderAssignees)
    }

    /// The violations a refusal of `users` at `refused` (their positions)
    /// names.
    fn violations(self, refused: &[usize]) -> Vec<String> {
        refused
            .iter()
            .map(|i| match self.is_list() {
                true => format!("{}[{i}]", self.field()),
                false => self.field().to_owned(),
            })
            .collect()
    }

    /// Creates one in `program` referencing `users` (an owner field takes
    /// the first, or none); its id and the users it references.
    async fn create(
        self,
        app: &TestApp,
        token: &str,
        program: &str,
        users: &[String],
    ) -> Result<(String, Vec<String>), Status> {
        let owner = users.first().cloned().unwrap_or_default();
        match self {
            TaskAssignees => {
                let mut req = new_task(program, "assigned");
                req.task.as_mut().unwrap().assignee_ids = users.to_vec();
                let t = app.tasks().create_task(authed(token, req)).await?;
                let t = t.into_inner();
                Ok((t.id, t.assignee_ids))
            }
            WorkOrderAssignees => {
                let mut req = new_work_order(program, "assigned");
                req.work_order.as_mut().unwrap().assignee_ids = users.to_vec();
                let w = app
                    .work_orders()
                    .create_work_order(authed(token, req))
                    .await?;
                let w = w.into_inner();
                Ok((w.id, w.assignee_ids))
            }
            GoalOwner => {
                let mut req = new_goal(program, "owned");
                req.goal.as_mut().unwrap().owner_user_id = owner;
                let g = app.goals().create_goal(authed(token, req)).await?;
                let g = g.into_inner();
                Ok((g.id, owned(g.owner_user_id)))
            }
            RiskOwner => {
                let mut req = new_risk(program, "owned", 2, 3);
                req.risk.as_mut().unwrap().owner_user_id = owner;
                let r = app.risks().create_risk(authed(token, req)).await?;
                let r = r.into_inner();
                Ok((r.id, owned(r.owner_user_id)))
            }
        }
    }

    /// Sets the reference of `id` to `users` (empty: clears it); the users
    /// it references after.
    async fn update(
        self,
        app: &TestApp,
        token: &str,
        id: &str,
        users: &[String],
    ) -> Result<Vec<String>, Status> {
        let path = self.field().split_once('.').map_or("", |(_, p)| p);
        self.write(app, token, id, users, path).await
    }

    /// Renames `id` (its references untouched); the users it references.
    async fn rename(self, app: &TestApp, token: &str, id: &str) -> Result<Vec<String>, Status> {
        self.write(app, token, id, &[], "title").await
    }

    /// Updates `path` of `id` to `users` (its reference) or a new title;
    /// the users it references after.
    async fn write(
        self,
        app: &TestApp,
        token: &str,
        id: &str,
        users: &[String],
        path: &str,
    ) -> Result<Vec<String>, Status> {
        let (id, title, update_mask) = (id.to_owned(), "renamed".to_owned(), mask(&[path]));
        let owner_user_id = users.first().cloned().unwrap_or_default();
        let assignee_ids = users.to_vec();
        Ok(match self {
            TaskAssignees => {
                let task = Some(Task {
                    id,
                    title,
                    assignee_ids,
                    ..Default::default()
                });
                let req = UpdateTaskRequest { task, update_mask };
                let t = app.tasks().update_task(authed(token, req)).await?;
                t.into_inner().assignee_ids
            }
            WorkOrderAssignees => {
                let work_order = Some(WorkOrder {
                    id,
                    title,
                    assignee_ids,
                    ..Default::default()
                });
                let req = UpdateWorkOrderRequest {
                    work_order,
                    update_mask,
                };
                let w = app
                    .work_orders()
                    .update_work_order(authed(token, req))
                    .await?;
                w.into_inner().assignee_ids
            }
            GoalOwner => {
                let goal = Some(Goal {
                    id,
                    title,
                    owner_user_id,
                    ..Default::default()
                });
                let req = UpdateGoalRequest { goal, update_mask };
                let g = app.goals().update_goal(authed(token, req)).await?;
                owned(g.into_inner().owner_user_id)
            }
            RiskOwner => {
                let risk = Some(Risk {
                    id,
                    title,
                    owner_user_id,
                    ..Default::default()
                });
                let req = UpdateRiskRequest { risk, update_mask };
                let r = app.risks().update_risk(authed(token, req)).await?;
                owned(r.into_inner().owner_user_id)
            }
        })
    }
}

/// An owner field as the users it references: none when empty.
fn owned(owner: String) -> Vec<String> {
    match owner.is_empty() {
        true => vec![],
        false => vec![owner],
    }
}

/// Asserts `r` is `INVALID_ARGUMENT` `USER_NOT_A_MEMBER` naming exactly
/// `fields`.
fn refused<T: std::fmt::Debug>(r: Result<T, Status>, fields: &[String], what: &str) {
    let s = match r {
        Ok(v) => panic!("{what}: a user reference that is not a member was accepted: {v:?}"),
        Err(s) => s,
    };
    let s = assert_status(Err::<(), _>(s), Code::InvalidArgument, "USER_NOT_A_MEMBER");
    assert_eq!(violated_fields(&s), fields, "{what}: {s:?}");
}

/// Polls `probe` until it holds (at most 20 s): the replica follows
/// identity by the relay's lag, which is short but not zero.
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !probe().await {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Whether `user` may be assigned a task in `program` now (the probe
/// creates one if so).
async fn assignable(app: &TestApp, token: &str, program: &str, user: &str) -> bool {
    TaskAssignees
        .create(app, token, program, &[user.to_owned()])
        .await
        .is_ok()
}

/// The id of `member`'s membership, as identity lists it to `owner`.
async fn membership_of(app: &TestApp, owner: &Member, member: &Member) -> identity::Membership {
    app.members()
        .list_memberships(authed(
            &owner.token,
            identity::ListMembershipsRequest {
                page_size: 100,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .memberships
        .into_iter()
        .find(|m| m.user_id == member.user_id.to_string())
        .expect("the member is listed")
}

#[tokio::test]
async fn user_references_must_be_members_of_the_callers_org() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "members").await.id;
    let alice = app.alice.user_id.to_string();
    let carol = app.new_member(&app.alice, Role::Editor).await;
    let carol_id = carol.user_id.to_string();
    // Bob owns the other organization; the random id is nobody's.
    let bob = app.bob.user_id.to_string();
    let nobody = uuid::Uuid::now_v7().to_string();
    let bobs = program(&app, &app.bob.token, "bobs").await.id;

    // Members are accepted, once identity's events have reached delivery.
    eventually("alice and carol assignable", || async {
        assignable(&app, t, &p, &alice).await && assignable(&app, t, &p, &carol_id).await
    })
    .await;
    for r in Reference::ALL {
        let members = match r.is_list() {
            true => vec![alice.clone(), carol_id.clone()],
            false => vec![carol_id.clone()],
        };
        let (_, got) = r.create(&app, t, &p, &members).await.unwrap();
        assert_eq!(got, members, "{r:?}");
    }

    // Another organization's user and a random id are refused, on create
    // and on update, each named by its field.
    for r in Reference::ALL {
        for stranger in [&bob, &nobody] {
            match r.is_list() {
                true => {
                    let users = [
                        alice.clone(),
                        stranger.clone(),
                        carol_id.clone(),
                        nobody.clone(),
                    ];
                    let refusal = match stranger == &nobody {
                        // A repeated id is one reference.
                        true => vec![1],
                        false => vec![1, 3],
                    };
                    refused(
                        r.create(&app, t, &p, &users).await,
                        &r.violations(&refusal),
                        &format!("{r:?} create with {stranger}"),
                    );
                }
                false => refused(
                    r.create(&app, t, &p, std::slice::from_ref(stranger)).await,
                    &r.violations(&[0]),
                    &format!("{r:?} create with {stranger}"),
                ),
            }
            let (id, _) = r.create(&app, t, &p, &[]).await.unwrap();
            let users = match r.is_list() {
                true => vec![carol_id.clone(), stranger.clone()],
                false => vec![stranger.clone()],
            };
            let at = if r.is_list() { 1 } else { 0 };
            refused(
                r.update(&app, t, &id, &users).await,
                &r.violations(&[at]),
                &format!("{r:?} update with {stranger}"),
            );
            // Bob is a member where he acts: his own organization.
            if stranger == &bob {
                let (_, got) = r
                    .create(&app, &app.bob.token, &bobs, std::slice::from_ref(&bob))
                    .await
                    .unwrap_or_else(|e| panic!("{r:?}: bob in his own organization: {e:?}"));
                assert_eq!(got, [bob.as_str()]);
            }
        }
        // Clearing a reference stays allowed.
        let (id, _) = r
            .create(&app, t, &p, std::slice::from_ref(&carol_id))
            .await
            .unwrap();
        assert_eq!(
            r.update(&app, t, &id, &[]).await.unwrap(),
            Vec::<String>::new(),
            "{r:?}"
        );
    }

    // A member identity adds becomes assignable once its event arrives;
    // a role change keeps it a member.
    let dave = app.new_member(&app.alice, Role::Viewer).await;
    let dave_id = dave.user_id.to_string();
    eventually("dave assignable", || assignable(&app, t, &p, &dave_id)).await;
    let m = membership_of(&app, &app.alice, &dave).await;
    app.members()
        .update_membership(authed(
            t,
            identity::UpdateMembershipRequest {
                membership: Some(identity::Membership {
                    id: m.id.clone(),
                    role: identity::Role::Editor as i32,
                    ..Default::default()
                }),
                update_mask: mask(&["role"]),
            },
        ))
        .await
        .unwrap();
    let mut held = vec![];
    for r in Reference::ALL {
        let (id, got) = r
            .create(&app, t, &p, std::slice::from_ref(&dave_id))
            .await
            .unwrap();
        assert_eq!(got, [dave_id.as_str()], "{r:?}");
        held.push((r, id));
    }

    // Removed in identity: refused once the removal arrives, on every
    // field; what already names the member keeps it (no cascade), and an
    // update that leaves the reference alone still goes through.
    app.members()
        .delete_membership(authed(
            t,
            identity::DeleteMembershipRequest {
                id: m.id.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
    eventually("dave refused", || async {
        !assignable(&app, t, &p, &dave_id).await
    })
    .await;
    for (r, id) in &held {
        refused(
            r.create(&app, t, &p, std::slice::from_ref(&dave_id)).await,
            &r.violations(&[0]),
            &format!("{r:?} create with a removed member"),
        );
        assert_eq!(
            r.rename(&app, t, id).await.unwrap(),
            [dave_id.as_str()],
            "{r:?}: an existing reference to a removed member stays"
        );
        let users = match r.is_list() {
            true => vec![dave_id.clone(), carol_id.clone()],
            false => vec![carol_id.clone()],
        };
        assert_eq!(
            r.update(&app, t, id, &users).await.unwrap(),
            users,
            "{r:?}: an update may keep a reference it already held"
        );
    }

    // Delivery reads no identity table for this: its replica is its own,
    // fed again from scratch (its cursor and inbox lost, say, in a
    // restore) it ends where identity is: dave removed, carol a member.
    let mut db = app.admin_db().await;
    for sql in [
        "DELETE FROM delivery.inbox",
        "DELETE FROM identity.outbox_cursors WHERE subscriber = 'delivery'",
    ] {
        sqlx::query(sql).execute(&mut db).await.unwrap();
    }
    eventually("everything redelivered", || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT coalesce((SELECT seq FROM identity.outbox_cursors \
                              WHERE subscriber = 'delivery' AND org_id = $1), 0) \
                    >= (SELECT max(seq) FROM identity.outbox WHERE org_id = $1)",
        )
        .bind(app.alice.org_id)
        .fetch_one(&mut app.admin_db().await)
        .await
        .unwrap()
    })
    .await;
    assert!(
        !assignable(&app, t, &p, &dave_id).await,
        "the removed member came back"
    );
    assert!(assignable(&app, t, &p, &carol_id).await);
}

#[tokio::test]
async fn user_references_must_be_members_of_the_callers_org_including_those_from_before_the_replica()
 {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "backfill").await.id;

    // As an earlier version left them: a user and a membership that no
    // membership event ever announced.
    let erin = uuid::Uuid::now_v7();
    let mut db = app.admin_db().await;
    sqlx::query("INSERT INTO identity.users (id, email, display_name) VALUES ($1, $2, 'Erin')")
        .bind(erin)
        .bind(format!("erin-{erin}@example.com"))
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO identity.memberships (org_id, id, user_id, role) VALUES ($1, $2, $3, 'editor')",
    )
    .bind(app.alice.org_id)
    .bind(uuid::Uuid::now_v7())
    .bind(erin)
    .execute(&mut db)
    .await
    .unwrap();
    let erin = erin.to_string();
    // (Alice's own membership, announced when it was made, is assignable.)
    let alice = app.alice.user_id.to_string();
    eventually("alice assignable", || assignable(&app, t, &p, &alice)).await;
    assert!(
        !assignable(&app, t, &p, &erin).await,
        "erin is in no replica yet"
    );

    // The upgrade's migration asks identity to announce every membership
    // once; identity's queue does, and the replica has her.
    let migration = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../migrations/identity/0010_membership_events.sql"
    ))
    .expect("identity's migration that starts the membership events");
    let mut tx = sqlx::Connection::begin(&mut db).await.unwrap();
    sqlx::query("SET LOCAL search_path TO identity")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::raw_sql(&migration).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    eventually("erin assignable", || assignable(&app, t, &p, &erin)).await;
    for r in Reference::ALL {
        let (_, got) = r
            .create(&app, t, &p, std::slice::from_ref(&erin))
            .await
            .unwrap();
        assert_eq!(got, [erin.as_str()], "{r:?}");
    }
    // Each existing membership was announced once.
    let announced: Vec<(String, i64)> = sqlx::query_as(
        "SELECT payload->'data'->>'user_id', count(*) FROM identity.outbox \
         WHERE type = 'identity.membership.snapshot' AND org_id = $1 GROUP BY 1 ORDER BY 1",
    )
    .bind(app.alice.org_id)
    .fetch_all(&mut db)
    .await
    .unwrap();
    let mut expected = vec![(alice.clone(), 1), (erin.clone(), 1)];
    expected.sort();
    assert_eq!(announced, expected);
    // By a job the migration enqueued with a time-ordered id, as the
    // queue's own are, which ran to its end.
    let job = "SELECT id, state FROM identity.jobs WHERE kind = 'identity.memberships.snapshot'";
    eventually("the job completed", || async {
        let (_, state): (uuid::Uuid, String) = sqlx::query_as(job)
            .fetch_one(&mut app.admin_db().await)
            .await
            .unwrap();
        state == "completed"
    })
    .await;
    let (id, _): (uuid::Uuid, String) = sqlx::query_as(job).fetch_one(&mut db).await.unwrap();
    assert_eq!(id.get_version_num(), 7, "{id}");
    let (secs, _) = id.get_timestamp().expect("a v7 id has a time").to_unix();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(secs) < 120, "{id}: minted {secs}, now {now}");
}

/// Identity's membership event `change` for `user` in `org`, as its relay
/// sends it, at `sequence`.
fn membership_event(
    org: uuid::Uuid,
    user: uuid::Uuid,
    change: foundry_outbox::membership::Change,
    sequence: i64,
) -> foundry_proto::foundry::events::v1::DomainEvent {
    let e = foundry_outbox::membership::Membership::event(
        org,
        change,
        (uuid::Uuid::now_v7(), user),
        "editor",
    );
    foundry_proto::foundry::events::v1::DomainEvent {
        id: e.id.to_string(),
        org_id: org.to_string(),
        r#type: e.r#type,
        version: e.version,
        subject_type: e.subject_type,
        subject_id: e.subject_id,
        occur_time: Some(foundry_platform::convert::timestamp(e.occurred_at)),
        data: Some(foundry_platform::convert::json_to_struct(&e.data)),
        sequence,
    }
}

#[tokio::test]
async fn a_late_or_redelivered_membership_event_never_brings_a_removed_member_back() {
    use foundry_outbox::membership::Change;
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "late").await.id;
    let (org, zed) = (app.alice.org_id, uuid::Uuid::now_v7());
    let relay = app
        .service_token_with("identity", &["delivery.events.receive"])
        .await;
    let inbox = || inbox_service_client::InboxServiceClient::new(app.channel.clone());
    let receive = |events: Vec<_>| {
        let relay = relay.clone();
        async move {
            inbox()
                .receive_domain_events(authed(
                    &relay,
                    ReceiveDomainEventsRequest {
                        domain_events: events,
                    },
                ))
                .await
                .map(tonic::Response::into_inner)
        }
    };

    let created = membership_event(org, zed, Change::Created, 1_000_000);
    let removed = membership_event(org, zed, Change::Removed, 1_000_002);
    let got = receive(vec![created.clone(), removed.clone()])
        .await
        .unwrap();
    assert_eq!((got.received, got.duplicates), (2, 0));
    let zed = zed.to_string();
    assert!(!assignable(&app, t, &p, &zed).await, "removed last");
    // The same removal again, and an addition older than it arriving late.
    let late = membership_event(org, zed.parse().unwrap(), Change::Updated, 1_000_001);
    let got = receive(vec![removed, late]).await.unwrap();
    assert_eq!((got.received, got.duplicates), (1, 1));
    assert!(
        !assignable(&app, t, &p, &zed).await,
        "a late event brought zed back"
    );
    // A newer addition does.
    let again = membership_event(org, zed.parse().unwrap(), Change::Created, 1_000_003);
    receive(vec![again]).await.unwrap();
    assert!(assignable(&app, t, &p, &zed).await);

    // Only identity's relay, with the capability, and only what delivery
    // takes of identity's events.
    let r = inbox()
        .receive_domain_events(authed(
            &app.service_token_with("delivery", &["delivery.events.receive"])
                .await,
            ReceiveDomainEventsRequest {
                domain_events: vec![created.clone()],
            },
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "NOT_SUBSCRIBED");
    let r = inbox()
        .receive_domain_events(authed(
            &app.service_token_with("identity", &["audit.events.append"])
                .await,
            ReceiveDomainEventsRequest {
                domain_events: vec![created.clone()],
            },
        ))
        .await;
    assert_eq!(r.unwrap_err().code(), Code::PermissionDenied);
    let mut other = created.clone();
    other.r#type = "identity.organization.created".into();
    let mut broken = created.clone();
    broken.data = None;
    let mut unordered = created;
    unordered.sequence = 0;
    let s = assert_status(
        receive(vec![other, broken, unordered]).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(
        violated_fields(&s),
        [
            "domain_events[0].type",
            "domain_events[1].data",
            "domain_events[2].sequence"
        ]
    );
}
