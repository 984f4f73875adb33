//! The private signing keys (identity's token key, audit's checkpoint key)
//! are sealed with a key-encryption key the database does not hold: whoever
//! reads the rows cannot sign, and a suite given another key-encryption key
//! does not start on them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use ed25519_dalek::{SigningKey, VerifyingKey};
use foundry::Suite;
use foundry_keyring::{Binding, Kek, Keyring, LocalKek};
use foundry_testkit::{TestApp, authed, identity as pb};
use sqlx::Executor;

/// Every stored private key with its public key, of both services.
async fn stored_keys(app: &TestApp) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let mut db = app.admin_db().await;
    sqlx::query_as(
        "SELECT 'identity/' || kid, private_key, public_key FROM identity.signing_keys \
         UNION ALL SELECT 'audit/' || kid, private_key, public_key FROM audit.signing_keys",
    )
    .fetch_all(&mut db)
    .await
    .unwrap()
}

/// Whether `stored` gives away the private key of `public`: as a raw
/// Ed25519 seed anywhere in it, or as a PEM/PKCS#8 key.
fn usable(stored: &[u8], public: &[u8]) -> bool {
    let public = VerifyingKey::try_from(public).expect("a public key");
    let seed_inside = stored.windows(32).any(|seed| {
        let seed: [u8; 32] = seed.try_into().expect("32 bytes");
        SigningKey::from_bytes(&seed).verifying_key() == public
    });
    let text = String::from_utf8_lossy(stored);
    // The DER prefix of an Ed25519 PKCS#8 private key.
    let pkcs8 = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70,
    ];
    seed_inside || text.contains("PRIVATE KEY") || stored.windows(12).any(|w| w == pkcs8)
}

async fn checkpoint(app: &TestApp) {
    app.audit()
        .create_audit_checkpoint(authed(
            &app.alice.token,
            foundry_testkit::audit::CreateAuditCheckpointRequest::default(),
        ))
        .await
        .expect("audit signs a checkpoint");
}

async fn get_org(app: &TestApp, token: &str) -> Result<pb::Organization, tonic::Status> {
    app.orgs()
        .get_organization(authed(
            token,
            pb::GetOrganizationRequest {
                id: app.alice.org_id.to_string(),
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn private_signing_keys_are_encrypted_at_rest() {
    let app = TestApp::start().await;
    checkpoint(&app).await;

    let keys = stored_keys(&app).await;
    let services: Vec<&str> = keys
        .iter()
        .map(|k| k.0.split('/').next().unwrap())
        .collect();
    assert!(
        services.contains(&"identity") && services.contains(&"audit"),
        "{services:?}"
    );
    for (kid, private, public) in &keys {
        assert!(
            !usable(private, public),
            "{kid}: the database holds a usable private key"
        );
        assert_eq!(
            Keyring::sealed_by(private),
            Some(app.keyring.current_id()),
            "{kid}: sealed by the suite's key-encryption key"
        );
    }

    // The services sign and verify as ever.
    get_org(&app, &app.alice.token)
        .await
        .expect("a token signed with the sealed key verifies");

    // The database alone is not enough: on another key-encryption key the
    // suite refuses to start; on its own it starts.
    let mut other = foundry_testkit::suite_config(app.database_url.clone());
    let err = Suite::connect(other.clone())
        .await
        .expect_err("a suite with another key-encryption key must not start");
    assert!(
        format!("{err:#}").contains("not configured"),
        "refused for the key: {err:#}"
    );
    other.keyring = app.keyring.clone();
    Suite::connect(other)
        .await
        .expect("the right key opens them");

    // Nor can the database role write a plaintext key in their place.
    let mut db = app.admin_db().await;
    let seed = SigningKey::from_bytes(&[7; 32]);
    let r = sqlx::query(
        "INSERT INTO identity.signing_keys (kid, private_key, public_key, activates_at) \
         VALUES ('plain', $1, $2, now())",
    )
    .bind(seed.to_bytes().to_vec())
    .bind(seed.verifying_key().to_bytes().to_vec())
    .execute(&mut db)
    .await;
    let code = r
        .expect_err("a plaintext key is refused")
        .as_database_error()
        .and_then(|d| d.code().map(|c| c.into_owned()));
    assert_eq!(code.as_deref(), Some("23514"), "a check violation");
}

#[tokio::test]
async fn keys_stored_in_plaintext_are_sealed_and_a_rotated_kek_rewraps_them_on_start() {
    let old: Arc<dyn Kek> = Arc::new(LocalKek::generate());
    let first = Keyring::new(old.clone(), []).unwrap();
    let app = TestApp::start_configured(|c| c.keyring = first.clone()).await;
    checkpoint(&app).await;

    // As an earlier version left them: each private key in plaintext.
    let mut db = app.admin_db().await;
    for (schema, purpose) in [
        ("identity", foundry_identity::keys::SIGNING_KEY_PURPOSE),
        ("audit", foundry_audit::keys::SIGNING_KEY_PURPOSE),
    ] {
        let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(&format!(
            "SELECT kid, private_key FROM {schema}.signing_keys"
        ))
        .fetch_all(&mut db)
        .await
        .unwrap();
        db.execute(
            format!(
                "ALTER TABLE {schema}.signing_keys DROP CONSTRAINT signing_keys_private_key_sealed"
            )
            .as_str(),
        )
        .await
        .unwrap();
        for (kid, sealed) in rows {
            let binding = Binding {
                purpose,
                resource: &kid,
            };
            let seed = first.open(binding, &sealed).await.unwrap();
            sqlx::query(&format!(
                "UPDATE {schema}.signing_keys SET private_key = $2 WHERE kid = $1"
            ))
            .bind(&kid)
            .bind(seed.to_vec())
            .execute(&mut db)
            .await
            .unwrap();
        }
        // The upgrade's migration adds the rule over the plaintext rows.
        db.execute(
            format!(
                "ALTER TABLE {schema}.signing_keys ADD CONSTRAINT signing_keys_private_key_sealed \
                 CHECK (substring(private_key FROM 1 FOR 4) = 'FKR1'::bytea) NOT VALID"
            )
            .as_str(),
        )
        .await
        .unwrap();
    }
    assert!(
        stored_keys(&app)
            .await
            .iter()
            .all(|(_, private, public)| usable(private, public)),
        "the stand-in for an earlier version"
    );

    // A start seals them, with a new key-encryption key configured first and
    // the old one after it.
    let new: Arc<dyn Kek> = Arc::new(LocalKek::generate());
    let rotated = Keyring::new(new.clone(), [old]).unwrap();
    let mut config = foundry_testkit::suite_config(app.database_url.clone());
    config.keyring = rotated;
    let suite = Suite::connect(config.clone()).await.expect("start");
    for (kid, private, public) in stored_keys(&app).await {
        assert!(!usable(&private, &public), "{kid} still in plaintext");
        assert_eq!(Keyring::sealed_by(&private), Some(new.id()), "{kid}");
    }
    // The same keys: the earlier tokens still verify with the resealed key.
    let (token, _) = suite
        .identity
        .keys()
        .mint(foundry_identity::Grant::user(app.alice.user_id, None))
        .unwrap();
    suite.tenancy.verifier.verify(&token).await.expect("signs");
    suite
        .tenancy
        .verifier
        .verify(&app.alice.token)
        .await
        .expect("the key of before, resealed");

    // Everything is under the new key now: it alone opens them; the old key
    // alone no longer does.
    config.keyring = Keyring::new(new, []).unwrap();
    Suite::connect(config.clone())
        .await
        .expect("the new key alone");
    config.keyring = first;
    assert!(
        Suite::connect(config).await.is_err(),
        "the retired key alone"
    );
}

#[test]
fn a_fresh_suite_generates_its_key_encryption_key_beside_its_data() {
    use std::os::unix::fs::PermissionsExt;
    let dir = common::data_dir();
    let server = common::start(dir.path());
    let kek = dir.path().join(foundry_keyring::GENERATED_FILE);
    let mode = std::fs::metadata(&kek)
        .expect("a key-encryption key file was generated")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        !dir.path()
            .join("pg")
            .join(foundry_keyring::GENERATED_FILE)
            .exists(),
        "outside the database's directory"
    );
    let generated = std::fs::read(&kek).unwrap();
    server.stop();

    // The next start reads it back (and opens the keys it sealed).
    let again = common::start(dir.path());
    assert!(!again.token.is_empty());
    assert_eq!(
        std::fs::read(&kek).unwrap(),
        generated,
        "kept, not replaced"
    );
}
