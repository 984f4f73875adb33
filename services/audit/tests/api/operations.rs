//! Long-running operations: a chain verification run in the background and
//! followed through `google.longrunning.Operations`.

use foundry_identity::domain::Role;
use foundry_proto::foundry::operations::v1::Progress;
use foundry_proto::google::longrunning::{
    self as lro, Operation, operation::Result as Outcome, operations_client::OperationsClient,
};
use foundry_testkit::audit::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};
use prost::Message;
use tonic::transport::Channel;

use crate::{Org, org_with, org_with_events};

fn ops(app: &TestApp) -> OperationsClient<Channel> {
    OperationsClient::new(app.channel.clone())
}

async fn start(app: &TestApp, o: &Org, request_id: &str) -> Operation {
    app.audit()
        .start_audit_chain_verification(authed(
            &o.token,
            StartAuditChainVerificationRequest {
                verification: Some(VerifyAuditChainRequest::default()),
                request_id: request_id.into(),
            },
        ))
        .await
        .expect("start")
        .into_inner()
}

async fn wait(app: &TestApp, token: &str, name: &str) -> Operation {
    ops(app)
        .wait_operation(authed(
            token,
            lro::WaitOperationRequest {
                name: name.into(),
                timeout: Some(prost_types::Duration {
                    seconds: 20,
                    nanos: 0,
                }),
            },
        ))
        .await
        .expect("wait")
        .into_inner()
}

async fn get(app: &TestApp, token: &str, name: &str) -> Result<Operation, tonic::Status> {
    ops(app)
        .get_operation(authed(
            token,
            lro::GetOperationRequest { name: name.into() },
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn list(app: &TestApp, token: &str) -> lro::ListOperationsResponse {
    ops(app)
        .list_operations(authed(
            token,
            lro::ListOperationsRequest {
                name: "operations/audit".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner()
}

fn progress(op: &Operation) -> Progress {
    let m = op.metadata.as_ref().expect("metadata");
    assert_eq!(
        m.type_url,
        "type.googleapis.com/foundry.operations.v1.Progress"
    );
    Progress::decode(m.value.as_slice()).expect("progress")
}

#[tokio::test]
async fn a_verification_runs_in_the_background_and_reports_progress_and_its_result() {
    let app = TestApp::start().await;
    let (o, _) = org_with_events(&app, 25).await;
    let started = start(&app, &o, "").await;
    assert!(
        started.name.starts_with("operations/audit/"),
        "{}",
        started.name
    );
    let done = wait(&app, &o.token, &started.name).await;
    assert!(done.done, "{done:?}");
    let Some(Outcome::Response(any)) = &done.result else {
        panic!("no response: {done:?}");
    };
    assert_eq!(
        any.type_url,
        "type.googleapis.com/foundry.audit.v1.VerifyAuditChainResponse"
    );
    let r = VerifyAuditChainResponse::decode(any.value.as_slice()).expect("response");
    assert!(r.valid, "{r:?}");
    assert_eq!(r.events_checked, 25);
    let p = progress(&done);
    assert_eq!((p.stage.as_str(), p.done, p.total), ("verified", 25, 25));
    // Get and List show the same; another organization sees nothing.
    let got = get(&app, &o.token, &started.name).await.expect("get");
    assert_eq!(got, done);
    let listed = list(&app, &o.token).await;
    assert_eq!(listed.operations, std::slice::from_ref(&done));
    let other = org_with(&app, Role::Owner);
    let refused = get(&app, &other.token, &started.name).await;
    assert_status(refused, Code::NotFound, "OPERATION_NOT_FOUND");
    let theirs = list(&app, &other.token).await;
    assert!(theirs.operations.is_empty());
    for refused in [
        ops(&app)
            .cancel_operation(authed(
                &other.token,
                lro::CancelOperationRequest {
                    name: started.name.clone(),
                },
            ))
            .await
            .map(|_| ()),
        ops(&app)
            .delete_operation(authed(
                &other.token,
                lro::DeleteOperationRequest {
                    name: started.name.clone(),
                },
            ))
            .await
            .map(|_| ()),
    ] {
        assert_status(refused, Code::NotFound, "OPERATION_NOT_FOUND");
    }
}

#[tokio::test]
async fn a_request_id_starts_one_operation_and_a_done_one_is_cancelled_as_a_no_op_then_deleted() {
    let app = TestApp::start().await;
    let (o, _) = org_with_events(&app, 3).await;
    let request_id = uuid::Uuid::now_v7().to_string();
    let first = start(&app, &o, &request_id).await;
    let again = start(&app, &o, &request_id).await;
    assert_eq!(first.name, again.name);
    let done = wait(&app, &o.token, &first.name).await;
    assert!(done.done);
    // Still the same operation once it is done.
    let after = start(&app, &o, &request_id).await;
    assert_eq!(after, done);
    ops(&app)
        .cancel_operation(authed(
            &o.token,
            lro::CancelOperationRequest {
                name: first.name.clone(),
            },
        ))
        .await
        .expect("cancel");
    assert_eq!(wait(&app, &o.token, &first.name).await, done, "unchanged");
    ops(&app)
        .delete_operation(authed(
            &o.token,
            lro::DeleteOperationRequest {
                name: first.name.clone(),
            },
        ))
        .await
        .expect("delete");
    let gone = get(&app, &o.token, &first.name).await;
    assert_status(gone, Code::NotFound, "OPERATION_NOT_FOUND");
}

#[tokio::test]
async fn a_viewer_follows_operations_and_only_writers_cancel_them() {
    let app = TestApp::start().await;
    let (o, _) = org_with_events(&app, 2).await;
    let started = start(&app, &o, "").await;
    let viewer = crate::Org {
        id: o.id,
        token: app.token(uuid::Uuid::now_v7(), Some(o.id), Some(Role::Viewer)),
    };
    assert!(wait(&app, &viewer.token, &started.name).await.done);
    let refused = ops(&app)
        .cancel_operation(authed(
            &viewer.token,
            lro::CancelOperationRequest {
                name: started.name.clone(),
            },
        ))
        .await;
    assert_status(refused, Code::PermissionDenied, "PERMISSION_NOT_HELD");
}

#[tokio::test]
async fn bad_requests_name_their_fields() {
    let app = TestApp::start().await;
    let (o, _) = org_with_events(&app, 1).await;
    // Bad sequences, with a bad request id and then a good one: the id is
    // checked before the verification.
    let request = |request_id: &str| StartAuditChainVerificationRequest {
        verification: Some(VerifyAuditChainRequest {
            start_sequence: -1,
            end_sequence: -2,
            checkpoint: None,
        }),
        request_id: request_id.into(),
    };
    let bad_start = app
        .audit()
        .start_audit_chain_verification(authed(&o.token, request("not-a-uuid")))
        .await;
    let s = assert_status(bad_start, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["request_id"]);
    let bad_start = app
        .audit()
        .start_audit_chain_verification(authed(&o.token, request("")))
        .await;
    let s = assert_status(bad_start, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(
        violated_fields(&s),
        ["verification.start_sequence", "verification.end_sequence"]
    );
    for name in [
        "",
        "operations",
        "operations/audit",
        "operations/audit/x",
        "ops/audit/1",
    ] {
        let r = get(&app, &o.token, name).await;
        let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert_eq!(violated_fields(&s), ["name"], "{name:?}");
    }
    let elsewhere = format!("operations/billing/{}", uuid::Uuid::now_v7());
    let r = get(&app, &o.token, &elsewhere).await;
    assert_status(r, Code::NotFound, "OPERATION_NOT_FOUND");
    let r = ops(&app)
        .list_operations(authed(
            &o.token,
            lro::ListOperationsRequest {
                name: "operations/audit/x".into(),
                filter: "done".into(),
                page_size: -1,
                page_token: "!".into(),
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(
        violated_fields(&s),
        ["name", "filter", "page_size", "page_token"]
    );
    let r = ops(&app)
        .wait_operation(authed(
            &o.token,
            lro::WaitOperationRequest {
                name: "x".into(),
                timeout: Some(prost_types::Duration {
                    seconds: -1,
                    nanos: 0,
                }),
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["timeout", "name"]);
}
