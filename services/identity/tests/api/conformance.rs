//! Identity resources registered with the testkit's conformance harness:
//! what every resource must do is checked there, once.
//!
//! Registered: API keys and invitations (every check; neither is updated,
//! and both are revoked rather than deleted, so the harness skips the mask
//! checks and audits the revoke), and organizations (the checks that fit,
//! see [`organizations_conform`]).
//!
//! Not registered:
//! - service accounts: no Get, no etag and no `request_id`; they are
//!   created, listed and disabled by internal callers only;
//! - memberships: no Create (an accepted invitation or a new organization
//!   makes them);
//! - users: no Create and no List (sign-in makes them).

use std::sync::Arc;

use foundry_identity::domain::Role as R;
use foundry_testkit::conformance::{self, Made, Resource, Scope};
use foundry_testkit::identity::*;
use foundry_testkit::{TestApp, authed};
use uuid::Uuid;

/// Where identity's audit events go.
const OUTBOX: &str = "identity.outbox";

fn made(id: String, etag: String) -> Made {
    Made { id, etag }
}

/// A fresh, distinct value for updated text fields.
fn fresh(what: &str) -> String {
    format!("{what} {}", Uuid::now_v7().simple())
}

/// An update mask of the harness's paths.
fn mask_of(paths: &[String]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.to_vec(),
    })
}

type S = Scope<()>;

#[tokio::test]
async fn api_keys_conform() {
    conformance::check(TestApp::start().await, &api_key_resource()).await;
}

#[tokio::test]
async fn invitations_conform() {
    conformance::check(TestApp::start().await, &invitation_resource()).await;
}

/// Organizations, with the checks that fit them. Not applicable:
/// - foreign organization `NOT_FOUND`: an organization is named by the
///   caller's token, and a caller acting in another organization gets
///   `PERMISSION_DENIED` `WRONG_ORGANIZATION` (organizations.rs covers
///   that); a user who is no member finds no organization to act in;
/// - request_id replay and one audit event per mutation: creating an
///   organization also makes (and audits, `identity.membership.create`) the
///   creator's owner membership, so a create writes two events by design
///   (organizations.rs covers the replay).
#[tokio::test]
async fn organizations_conform() {
    let app = Arc::new(TestApp::start().await);
    let r = organization_resource();
    conformance::stale_etags_are_aborted(&app, &r).await;
    conformance::bad_masks_are_refused(&app, &r).await;
    conformance::pages_have_no_gaps_or_repeats(&app, &r).await;
}

/// API keys of the caller's organization: never updated, revoked (and
/// still found) rather than deleted.
fn api_key_resource() -> Resource<()> {
    Resource {
        name: "API key",
        outbox: OUTBOX,
        audit_resource_type: "identity.api_key",
        audit_action_prefix: "identity.api_key",
        update_path: "",
        output_only_path: "",
        setup: conformance::setup(|_, _| async {}),
        create: conformance::create(|s: S, request_id, variant| async move {
            let req = CreateApiKeyRequest {
                api_key: Some(ApiKey {
                    kind: ApiKeyKind::ApiKey as i32,
                    display_name: format!("key {variant}"),
                    scopes: vec!["identity.*.read".into()],
                    ..Default::default()
                }),
                request_id: request_id.unwrap_or_default(),
            };
            let x = s
                .app
                .api_keys()
                .create_api_key(authed(s.token(), req))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        get: conformance::get(|s: S, id| async move {
            let x = s
                .app
                .api_keys()
                .get_api_key(authed(s.token(), GetApiKeyRequest { id }))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        list: conformance::list(|s: S, page_size, page_token| async move {
            let page = s
                .app
                .api_keys()
                .list_api_keys(authed(
                    s.token(),
                    ListApiKeysRequest {
                        page_size,
                        page_token,
                        ..Default::default()
                    },
                ))
                .await?
                .into_inner();
            Ok((
                page.api_keys.into_iter().map(|x| x.id).collect(),
                page.next_page_token,
            ))
        }),
        update: None,
        delete: conformance::revoke("revoke", |s: S, id, etag| async move {
            s.app
                .api_keys()
                .revoke_api_key(authed(s.token(), RevokeApiKeyRequest { id, etag }))
                .await?;
            Ok(())
        }),
    }
}

/// Invitations of the caller's organization: never updated, revoked (and
/// still found) rather than deleted.
fn invitation_resource() -> Resource<()> {
    Resource {
        name: "invitation",
        outbox: OUTBOX,
        audit_resource_type: "identity.invitation",
        audit_action_prefix: "identity.invitation",
        update_path: "",
        output_only_path: "",
        setup: conformance::setup(|_, _| async {}),
        create: conformance::create(|s: S, request_id, variant| async move {
            let req = CreateInvitationRequest {
                invitation: Some(Invitation {
                    email: format!("invitee-{variant}@example.com"),
                    role: Role::Editor as i32,
                    ..Default::default()
                }),
                request_id: request_id.unwrap_or_default(),
            };
            let x = s
                .app
                .invitations()
                .create_invitation(authed(s.token(), req))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        get: conformance::get(|s: S, id| async move {
            let x = s
                .app
                .invitations()
                .get_invitation(authed(s.token(), GetInvitationRequest { id }))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        list: conformance::list(|s: S, page_size, page_token| async move {
            let page = s
                .app
                .invitations()
                .list_invitations(authed(
                    s.token(),
                    ListInvitationsRequest {
                        page_size,
                        page_token,
                        ..Default::default()
                    },
                ))
                .await?
                .into_inner();
            Ok((
                page.invitations.into_iter().map(|x| x.id).collect(),
                page.next_page_token,
            ))
        }),
        update: None,
        delete: conformance::revoke("revoke", |s: S, id, etag| async move {
            s.app
                .invitations()
                .revoke_invitation(authed(s.token(), RevokeInvitationRequest { id, etag }))
                .await?;
            Ok(())
        }),
    }
}

/// The scope's user acting in no organization, as organizations are
/// created and listed.
fn user_token(s: &S) -> String {
    s.app.token(s.member.user_id, None, None)
}

/// The scope's user acting as owner in the organization `id`, as an
/// organization is read, updated and deleted.
fn owner_token(s: &S, id: &str) -> Result<String, tonic::Status> {
    let org = Uuid::parse_str(id).map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
    Ok(s.app.token(s.member.user_id, Some(org), Some(R::Owner)))
}

/// Organizations the scope's user creates (and owns).
fn organization_resource() -> Resource<()> {
    Resource {
        name: "organization",
        outbox: OUTBOX,
        audit_resource_type: "identity.organization",
        audit_action_prefix: "identity.organization",
        update_path: "name",
        output_only_path: "create_time",
        setup: conformance::setup(|_, _| async {}),
        create: conformance::create(|s: S, request_id, variant| async move {
            let user = s.member.user_id.simple().to_string();
            let req = CreateOrganizationRequest {
                organization: Some(Organization {
                    name: format!("Org {variant}"),
                    slug: format!("conf-{variant}-{}", &user[20..]),
                    ..Default::default()
                }),
                request_id: request_id.unwrap_or_default(),
            };
            let x = s
                .app
                .orgs()
                .create_organization(authed(&user_token(&s), req))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        get: conformance::get(|s: S, id| async move {
            let token = owner_token(&s, &id)?;
            let x = s
                .app
                .orgs()
                .get_organization(authed(&token, GetOrganizationRequest { id }))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        list: conformance::list(|s: S, page_size, page_token| async move {
            let page = s
                .app
                .orgs()
                .list_organizations(authed(
                    &user_token(&s),
                    ListOrganizationsRequest {
                        page_size,
                        page_token,
                    },
                ))
                .await?
                .into_inner();
            Ok((
                page.organizations.into_iter().map(|x| x.id).collect(),
                page.next_page_token,
            ))
        }),
        update: conformance::update(|s: S, id, etag, paths| async move {
            let token = owner_token(&s, &id)?;
            let x = s
                .app
                .orgs()
                .update_organization(authed(
                    &token,
                    UpdateOrganizationRequest {
                        organization: Some(Organization {
                            id,
                            name: fresh("name"),
                            etag,
                            ..Default::default()
                        }),
                        update_mask: mask_of(&paths),
                    },
                ))
                .await?
                .into_inner();
            Ok(x.etag)
        }),
        delete: conformance::delete(|s: S, id, etag| async move {
            let token = owner_token(&s, &id)?;
            s.app
                .orgs()
                .delete_organization(authed(&token, DeleteOrganizationRequest { id, etag }))
                .await?;
            Ok(())
        }),
    }
}
