//! Signed checkpoints: what they state, verification outside Foundry, and
//! the tampering a hash chain alone cannot show (truncation with the head
//! fixed, a chain rewritten with recomputed hashes) found against one.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use foundry_audit::domain::{self, Event, GENESIS};
use foundry_audit::store::EventRow;
use foundry_identity::domain::Role;
use foundry_testkit::audit::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};
use sqlx::Executor;
use uuid::Uuid;

use super::*;

/// The canonical form, rebuilt as a customer would: a JSON library
/// writing sorted, compact JSON from the checkpoint's fields.
fn canonical(c: &AuditCheckpoint) -> String {
    let time = |t: &Option<prost_types::Timestamp>| {
        t.as_ref()
            .map(|t| {
                DateTime::from_timestamp(t.seconds, t.nanos as u32)
                    .expect("time")
                    .to_rfc3339_opts(SecondsFormat::Micros, true)
            })
            .unwrap_or_default()
    };
    let reason = match CheckpointReason::try_from(c.reason).expect("reason") {
        CheckpointReason::OnDemand => "on_demand",
        CheckpointReason::Periodic => "periodic",
        CheckpointReason::Retention => "retention",
        CheckpointReason::Unspecified => "",
    };
    serde_json::json!({
        "create_time": time(&c.create_time),
        "event_count": c.event_count,
        "first_occur_time": time(&c.first_occur_time),
        "head_hash": c.head_hash,
        "id": c.id,
        "key_id": c.key_id,
        "last_occur_time": time(&c.last_occur_time),
        "org_id": c.org_id,
        "reason": reason,
        "sequence": c.sequence,
        "type": "foundry.audit.checkpoint.v1",
    })
    .to_string()
}

fn verifies_outside(c: &AuditCheckpoint, public_key: &str) -> bool {
    let key: [u8; 32] = URL_SAFE_NO_PAD
        .decode(public_key)
        .expect("b64")
        .try_into()
        .expect("32 bytes");
    let sig: [u8; 64] = URL_SAFE_NO_PAD
        .decode(&c.signature)
        .expect("b64")
        .try_into()
        .expect("64 bytes");
    VerifyingKey::from_bytes(&key)
        .expect("key")
        .verify_strict(canonical(c).as_bytes(), &Signature::from_bytes(&sig))
        .is_ok()
}

use foundry_audit::store::events::EVENT_COLS;

#[tokio::test]
async fn a_checkpoint_states_the_head_and_verifies_outside_foundry() {
    let app = TestApp::start().await;
    let (o, events) = org_with_events(&app, 5).await;
    let listed = list_all(&app, &o.token, ListAuditEventsRequest::default()).await;
    let c = checkpoint(&app, &o.token).await;
    assert_eq!(c.org_id, o.id.to_string());
    assert_eq!(c.reason, CheckpointReason::OnDemand as i32);
    assert_eq!((c.sequence, c.event_count), (5, 5));
    assert_eq!(c.head_hash, listed[0].hash);
    assert_eq!(c.first_occur_time, listed[4].occur_time);
    assert_eq!(c.last_occur_time, listed[0].occur_time);
    assert_eq!(listed[4].id, events[0].id);
    assert!(c.create_time.is_some() && !c.key_id.is_empty());

    // The published key (no token needed) is the key in the checkpoint,
    // and a customer's own Ed25519 verifies the signature.
    let keys = app
        .audit()
        .get_audit_signing_keys(GetAuditSigningKeysRequest {})
        .await
        .expect("keys")
        .into_inner()
        .keys;
    let key = keys.iter().find(|k| k.key_id == c.key_id).expect("key");
    assert_eq!(
        (key.key_type.as_str(), key.curve.as_str()),
        ("OKP", "Ed25519")
    );
    assert_eq!(key.public_key, c.public_key);
    assert!(verifies_outside(&c, &key.public_key));
    let mut edited = c.clone();
    edited.sequence = 4;
    assert!(!verifies_outside(&edited, &key.public_key));

    // Get and List return it as created, and it verifies the chain.
    let got = app
        .audit()
        .get_audit_checkpoint(authed(
            &o.token,
            GetAuditCheckpointRequest { id: c.id.clone() },
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got, c);
    let v = verify_against(&app, &o.token, &c).await;
    assert_eq!(outcome(&v), (true, ChainProblem::Unspecified, 0));
    assert_eq!(v.events_checked, 5);

    // An empty chain has a checkpoint too: nothing, signed.
    let empty = org(&app);
    let c = checkpoint(&app, &empty.token).await;
    assert_eq!((c.sequence, c.event_count), (0, 0));
    assert_eq!(c.head_hash, "0".repeat(64));
    assert!(c.first_occur_time.is_none());
    assert!(verifies_outside(&c, &key.public_key));
    assert!(verify_against(&app, &empty.token, &c).await.valid);
}

#[tokio::test]
async fn checkpoints_list_newest_first_in_pages() {
    let app = TestApp::start().await;
    let (o, _) = org_with_events(&app, 2).await;
    let mut made = Vec::new();
    for _ in 0..3 {
        made.push(checkpoint(&app, &o.token).await.id);
    }
    made.reverse();
    let list = |page_size: i32, page_token: String| {
        let app = &app;
        let token = o.token.clone();
        async move {
            app.audit()
                .list_audit_checkpoints(authed(
                    &token,
                    ListAuditCheckpointsRequest {
                        page_size,
                        page_token,
                    },
                ))
                .await
        }
    };
    let first = list(2, String::new()).await.expect("page").into_inner();
    let ids: Vec<String> = first
        .audit_checkpoints
        .iter()
        .map(|c| c.id.clone())
        .collect();
    assert_eq!(ids, made[..2]);
    let second = list(2, first.next_page_token)
        .await
        .expect("page")
        .into_inner();
    assert_eq!(second.audit_checkpoints.len(), 1);
    assert_eq!(second.audit_checkpoints[0].id, made[2]);
    assert!(second.next_page_token.is_empty());

    let status = assert_status(
        list(-1, String::new()).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["page_size"]);
    let status = assert_status(
        list(1, "nope".into()).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["page_token"]);
    let r = app
        .audit()
        .get_audit_checkpoint(authed(
            &o.token,
            GetAuditCheckpointRequest { id: "x".into() },
        ))
        .await;
    let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["id"]);
    let r = app
        .audit()
        .get_audit_checkpoint(authed(
            &o.token,
            GetAuditCheckpointRequest {
                id: Uuid::now_v7().to_string(),
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "AUDIT_CHECKPOINT_NOT_FOUND");
}

#[tokio::test]
async fn another_organizations_checkpoints_are_invisible_and_refused() {
    let app = TestApp::start().await;
    let (acme, _) = org_with_events(&app, 3).await;
    let globex = org(&app);
    let c = checkpoint(&app, &acme.token).await;

    let r = app
        .audit()
        .get_audit_checkpoint(authed(
            &globex.token,
            GetAuditCheckpointRequest { id: c.id.clone() },
        ))
        .await;
    assert_status(r, Code::NotFound, "AUDIT_CHECKPOINT_NOT_FOUND");
    let listed = app
        .audit()
        .list_audit_checkpoints(authed(
            &globex.token,
            ListAuditCheckpointsRequest::default(),
        ))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.audit_checkpoints.is_empty());
    let r = app
        .audit()
        .verify_audit_chain(authed(
            &globex.token,
            VerifyAuditChainRequest {
                checkpoint: Some(c.clone()),
                ..Default::default()
            },
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "WRONG_ORGANIZATION");

    // Reading takes audit.checkpoints.read, signing audit.checkpoints.write
    // (owners and admins).
    let admin = org_with(&app, Role::Admin);
    checkpoint(&app, &admin.token).await;
    let viewer = org_with(&app, Role::Viewer);
    app.audit()
        .list_audit_checkpoints(authed(
            &viewer.token,
            ListAuditCheckpointsRequest::default(),
        ))
        .await
        .expect("viewers read checkpoints");
    let r = app
        .audit()
        .create_audit_checkpoint(authed(&viewer.token, CreateAuditCheckpointRequest {}))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
}

#[tokio::test]
async fn removing_the_newest_events_and_fixing_the_head_is_found_against_a_checkpoint() {
    let app = TestApp::start().await;
    let (o, _) = org_with_events(&app, 10).await;
    let c = checkpoint(&app, &o.token).await;
    let svc = app.service_token().await;
    append(&app, &svc, vec![event(o.id), event(o.id)]).await;

    // Events 8.. go, and the head is set to event 7 as if it were the last:
    // the chain alone still verifies.
    tamper(
        &app,
        "DELETE FROM audit.events WHERE org_id = $1 AND sequence > 7",
        o.id,
    )
    .await;
    tamper(
        &app,
        "UPDATE audit.chain_heads h SET sequence = 7, hash = e.hash FROM audit.events e \
         WHERE h.org_id = $1 AND e.org_id = $1 AND e.sequence = 7",
        o.id,
    )
    .await;
    let v = verify(&app, &o.token, 0, 0).await;
    assert!(
        v.valid,
        "without a checkpoint the truncation is invisible: {v:?}"
    );

    let v = verify_against(&app, &o.token, &c).await;
    assert_eq!(outcome(&v), (false, ChainProblem::CheckpointMismatch, 8));
    assert_eq!(v.events_checked, 7);
    assert!(v.detail.contains("removed"), "{}", v.detail);

    // And the service refuses to sign the truncated chain.
    let r = app
        .audit()
        .create_audit_checkpoint(authed(&o.token, CreateAuditCheckpointRequest {}))
        .await;
    assert_status(r, Code::FailedPrecondition, "AUDIT_CHAIN_INVALID");
}

#[tokio::test]
async fn a_chain_rewritten_with_recomputed_hashes_is_found_against_a_checkpoint() {
    let app = TestApp::start().await;
    let (o, _) = org_with_events(&app, 8).await;
    let c = checkpoint(&app, &o.token).await;

    // Whoever can write the database edits event 3 and recomputes every
    // hash and link after it, and the head: a consistent chain.
    let mut db = app.admin_db().await;
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "SELECT {EVENT_COLS} FROM audit.events WHERE org_id = $1 ORDER BY sequence"
    ))
    .bind(o.id)
    .fetch_all(&mut db)
    .await
    .expect("rows");
    let mut events: Vec<Event> = rows.into_iter().map(|r| r.event).collect();
    events[2].action = "identity.membership.delete".into();
    let (hashes, head, head_hash) = domain::link(&mut events, 0, &GENESIS);
    assert_eq!(head, 8);
    for (e, h) in events.iter().zip(&hashes) {
        sqlx::query(
            "UPDATE audit.events SET action = $3, prev_hash = $4, hash = $5 \
             WHERE org_id = $1 AND sequence = $2",
        )
        .bind(o.id)
        .bind(e.sequence)
        .bind(&e.action)
        .bind(&e.prev_hash)
        .bind(h.as_slice())
        .execute(&mut db)
        .await
        .expect("rewrite");
    }
    sqlx::query("UPDATE audit.chain_heads SET hash = $2 WHERE org_id = $1")
        .bind(o.id)
        .bind(&head_hash)
        .execute(&mut db)
        .await
        .expect("head");
    let v = verify(&app, &o.token, 0, 0).await;
    assert!(v.valid, "a recomputed chain verifies on its own: {v:?}");

    let v = verify_against(&app, &o.token, &c).await;
    assert_eq!(outcome(&v), (false, ChainProblem::CheckpointMismatch, 8));
    assert!(v.detail.contains("rewritten"), "{}", v.detail);

    // Once the chain grows again, the checkpointer will not sign it: it
    // reports the chain instead.
    let svc = app.service_token().await;
    append(&app, &svc, vec![event(o.id)]).await;
    let round = app.suite.audit.checkpoint_round().await.expect("round");
    assert!(round.failed >= 1, "{round:?}");
    let v = verify_against(&app, &o.token, &c).await;
    assert_eq!(outcome(&v), (false, ChainProblem::CheckpointMismatch, 8));
}

#[tokio::test]
async fn an_edited_or_forged_checkpoint_is_refused() {
    let app = TestApp::start().await;
    let (o, _) = org_with_events(&app, 6).await;
    let c = checkpoint(&app, &o.token).await;
    assert!(verify_against(&app, &o.token, &c).await.valid);

    type Edit = Box<dyn Fn(&mut AuditCheckpoint)>;
    let edits: Vec<Edit> = vec![
        Box::new(|c| c.sequence = 5),
        Box::new(|c| c.head_hash = "ab".repeat(32)),
        Box::new(|c| c.event_count = 1),
        Box::new(|c| c.reason = CheckpointReason::Periodic as i32),
        Box::new(|c| c.id = Uuid::now_v7().to_string()),
        Box::new(|c| c.key_id = "not-a-key".into()),
    ];
    for (i, edit) in edits.iter().enumerate() {
        let mut e = c.clone();
        edit(&mut e);
        let v = verify_against(&app, &o.token, &e).await;
        assert_eq!(
            (v.valid, v.problem),
            (false, ChainProblem::CheckpointSignatureInvalid as i32),
            "edit {i}: {v:?}"
        );
        assert_eq!(v.events_checked, 0);
    }
    // Signed by another key under the service's key id: forged.
    let forger = SigningKey::from_bytes(&[9; 32]);
    let mut forged = c.clone();
    forged.sequence = 6;
    forged.signature =
        URL_SAFE_NO_PAD.encode(forger.sign(canonical(&forged).as_bytes()).to_bytes());
    let v = verify_against(&app, &o.token, &forged).await;
    assert_eq!(
        outcome(&v),
        (false, ChainProblem::CheckpointSignatureInvalid, 6)
    );
    // The public key sent along is not trusted: only the service's is.
    forged.public_key = URL_SAFE_NO_PAD.encode(forger.verifying_key().to_bytes());
    assert!(!verify_against(&app, &o.token, &forged).await.valid);

    // Malformed checkpoints and ranges are refused field by field.
    let bad = |edit: Box<dyn Fn(&mut VerifyAuditChainRequest)>| {
        let app = &app;
        let token = o.token.clone();
        let c = c.clone();
        async move {
            let mut req = VerifyAuditChainRequest {
                checkpoint: Some(c),
                ..Default::default()
            };
            edit(&mut req);
            let r = app.audit().verify_audit_chain(authed(&token, req)).await;
            violated_fields(&assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT"))
        }
    };
    let set = |f: fn(&mut AuditCheckpoint)| -> Box<dyn Fn(&mut VerifyAuditChainRequest)> {
        Box::new(move |r| f(r.checkpoint.as_mut().expect("checkpoint")))
    };
    assert_eq!(
        bad(set(|c| c.signature = "!!".into())).await,
        ["checkpoint.signature"]
    );
    assert_eq!(
        bad(set(|c| c.head_hash = "xyz".into())).await,
        ["checkpoint.head_hash"]
    );
    assert_eq!(
        bad(set(|c| c.org_id = "acme".into())).await,
        ["checkpoint.org_id"]
    );
    assert_eq!(
        bad(set(|c| c.create_time = None)).await,
        ["checkpoint.create_time"]
    );
    assert_eq!(
        bad(Box::new(|r| r.end_sequence = 3)).await,
        ["end_sequence"]
    );
    assert_eq!(
        bad(Box::new(|r| r.start_sequence = 7)).await,
        ["start_sequence"]
    );
    // A start before the checkpoint's position is a range that covers it.
    let v = app
        .audit()
        .verify_audit_chain(authed(
            &o.token,
            VerifyAuditChainRequest {
                start_sequence: 4,
                checkpoint: Some(c.clone()),
                ..Default::default()
            },
        ))
        .await
        .expect("verify")
        .into_inner();
    assert!(v.valid && v.events_checked == 3, "{v:?}");
}

#[tokio::test]
async fn the_checkpointer_signs_the_chains_that_grew_and_only_those() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let (o, _) = org_with_events(&app, 3).await;
    let quiet = org(&app);
    let count = |token: String| {
        let app = &app;
        async move {
            app.audit()
                .list_audit_checkpoints(authed(&token, ListAuditCheckpointsRequest::default()))
                .await
                .expect("list")
                .into_inner()
                .audit_checkpoints
        }
    };
    let round = app.suite.audit.checkpoint_round().await.expect("round");
    assert!(round.checkpoints >= 1 && round.failed == 0, "{round:?}");
    let cs = count(o.token.clone()).await;
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].reason, CheckpointReason::Periodic as i32);
    assert_eq!(cs[0].sequence, 3);
    assert!(count(quiet.token.clone()).await.is_empty());

    // Nothing new, nothing signed; one more event, one more checkpoint.
    app.suite.audit.checkpoint_round().await.expect("round");
    assert_eq!(count(o.token.clone()).await.len(), 1);
    append(&app, &svc, vec![event(o.id)]).await;
    app.suite.audit.checkpoint_round().await.expect("round");
    let cs = count(o.token.clone()).await;
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0].sequence, 4);
    assert!(verify_against(&app, &o.token, &cs[1]).await.valid);
}

#[tokio::test]
async fn the_suite_runs_the_checkpointer_periodically() {
    let app = TestApp::start_configured(|c| {
        c.audit_checkpoint_interval = Some(Duration::from_millis(100));
    })
    .await;
    let (o, _) = org_with_events(&app, 2).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let cs = app
            .audit()
            .list_audit_checkpoints(authed(&o.token, ListAuditCheckpointsRequest::default()))
            .await
            .expect("list")
            .into_inner()
            .audit_checkpoints;
        if let Some(c) = cs.first() {
            assert_eq!(
                (c.reason, c.sequence),
                (CheckpointReason::Periodic as i32, 2)
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no periodic checkpoint"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_service_role_cannot_change_keys_or_checkpoints() {
    let app = TestApp::start().await;
    let (o, _) = org_with_events(&app, 2).await;
    checkpoint(&app, &o.token).await;
    let mut db = app.admin_db().await;
    db.execute("SET ROLE foundry_audit; SET search_path TO audit; SET app.system = 'on'")
        .await
        .expect("act as the service");
    for sql in [
        "UPDATE checkpoints SET sequence = 1",
        "DELETE FROM checkpoints",
        "UPDATE signing_keys SET public_key = private_key",
        "DELETE FROM signing_keys",
        "UPDATE execution_records SET task_title = 'x'",
        "DELETE FROM execution_records",
        "DELETE FROM retention_watermarks",
        "INSERT INTO retention_watermarks (org_id, sequence, hash, occurred_at, removed) \
         VALUES (gen_random_uuid(), 1, '\\x00', now(), 0)",
    ] {
        let r = sqlx::query(sql).execute(&mut db).await;
        let code = r
            .expect_err(sql)
            .as_database_error()
            .and_then(|d| d.code().map(|c| c.into_owned()));
        assert_eq!(code.as_deref(), Some("42501"), "{sql}");
    }
}
