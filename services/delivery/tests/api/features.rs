use foundry_testkit::delivery::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};

use crate::{actions, count, error_metadata, feature, mask, new_feature, outbox, program, rid};

async fn list_slugs(app: &TestApp, token: &str, req: ListFeaturesRequest) -> (Vec<String>, usize) {
    let (mut out, mut req, mut pages) = (Vec::new(), req, 0);
    loop {
        let page = app
            .features()
            .list_features(authed(token, req.clone()))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        out.extend(page.features.into_iter().map(|f| f.slug));
        if page.next_page_token.is_empty() {
            return (out, pages);
        }
        req.page_token = page.next_page_token;
    }
}

fn reparent(id: &str, parent: &str) -> UpdateFeatureRequest {
    UpdateFeatureRequest {
        feature: Some(Feature {
            id: id.into(),
            parent_feature_id: parent.into(),
            ..Default::default()
        }),
        update_mask: mask(&["parent_feature_id"]),
    }
}

#[tokio::test]
async fn a_feature_tree_is_built_and_reads_back() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "features").await;
    let root = app
        .features()
        .create_feature(authed(
            t,
            CreateFeatureRequest {
                feature: Some(Feature {
                    program_id: p.id.clone(),
                    name: " Checkout ".into(),
                    slug: "checkout".into(),
                    description: "Pay\nand ship".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(root.name, "Checkout");
    assert_eq!(root.parent_feature_id, "");
    assert_eq!(root.etag, "1");
    let child = feature(&app, t, &p.id, "payments", &root.id).await;
    assert_eq!(child.parent_feature_id, root.id);
    let got = app
        .features()
        .get_feature(authed(
            t,
            GetFeatureRequest {
                id: child.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, child);
    // Slugs are unique in a program only.
    let r = app
        .features()
        .create_feature(authed(t, new_feature(&p.id, "checkout", "")))
        .await;
    assert_status(r, Code::AlreadyExists, "FEATURE_SLUG_TAKEN");
    let other = program(&app, t, "features-other").await;
    feature(&app, t, &other.id, "checkout", "").await;
    // A parent from another program is refused.
    let r = app
        .features()
        .create_feature(authed(t, new_feature(&other.id, "cards", &root.id)))
        .await;
    assert_status(r, Code::FailedPrecondition, "DIFFERENT_PROGRAM");
    let r = app
        .features()
        .create_feature(authed(
            t,
            new_feature(&p.id, "ghost-child", &uuid::Uuid::now_v7().to_string()),
        ))
        .await;
    assert_status(r, Code::NotFound, "FEATURE_NOT_FOUND");
}

#[tokio::test]
async fn every_bad_feature_field_is_reported_by_name() {
    let app = TestApp::start().await;
    let r = app
        .features()
        .create_feature(authed(
            &app.alice.token,
            CreateFeatureRequest {
                feature: Some(Feature {
                    program_id: "p".into(),
                    parent_feature_id: "q".into(),
                    name: " ".into(),
                    slug: "Not A Slug".into(),
                    description: "bell\u{7}".into(),
                    ..Default::default()
                }),
                request_id: "again".into(),
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(
        violated_fields(&s),
        [
            "feature.program_id",
            "feature.parent_feature_id",
            "feature.name",
            "feature.slug",
            "feature.description",
            "request_id"
        ]
    );
    let r = app
        .features()
        .list_features(authed(
            &app.alice.token,
            ListFeaturesRequest {
                program_id: String::new(),
                parent_feature_id: "x".into(),
                ..Default::default()
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["program_id", "parent_feature_id"]);
}

#[tokio::test]
async fn features_list_newest_first_and_by_parent_across_pages() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "feature-list").await;
    let other = program(&app, t, "feature-other").await;
    feature(&app, t, &other.id, "elsewhere", "").await;
    let root = feature(&app, t, &p.id, "root", "").await;
    for i in 0..5 {
        let parent = if i % 2 == 0 { root.id.as_str() } else { "" };
        feature(&app, t, &p.id, &format!("f{i}-x"), parent).await;
    }
    let list = |parent: &str, page_size| ListFeaturesRequest {
        program_id: p.id.clone(),
        page_size,
        page_token: String::new(),
        parent_feature_id: parent.into(),
    };
    let (all, pages) = list_slugs(&app, t, list("", 2)).await;
    assert_eq!(all, ["f4-x", "f3-x", "f2-x", "f1-x", "f0-x", "root"]);
    assert_eq!(pages, 3);
    let (children, pages) = list_slugs(&app, t, list(&root.id, 1)).await;
    assert_eq!(children, ["f4-x", "f2-x", "f0-x"]);
    assert_eq!(pages, 3);
    // A token is bound to its filters.
    let first = app
        .features()
        .list_features(authed(t, list(&root.id, 1)))
        .await
        .unwrap()
        .into_inner();
    let mut other_filter = list("", 1);
    other_filter.page_token = first.next_page_token;
    let r = app.features().list_features(authed(t, other_filter)).await;
    assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn a_parent_that_would_close_a_cycle_is_refused_naming_it() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "feature-cycles").await;
    // A chain of 30: f0 <- f1 <- ... <- f29.
    let mut chain: Vec<Feature> = Vec::new();
    for i in 0..30 {
        let parent = chain.last().map(|f| f.id.clone()).unwrap_or_default();
        chain.push(feature(&app, t, &p.id, &format!("f{i}-node"), &parent).await);
    }
    let r = app
        .features()
        .update_feature(authed(t, reparent(&chain[0].id, &chain[29].id)))
        .await;
    let s = assert_status(r, Code::FailedPrecondition, "FEATURE_PARENT_CYCLE");
    let cycle = error_metadata(&s)["cycle"].clone();
    let ids: Vec<&str> = cycle.split(',').collect();
    assert_eq!(ids.len(), 31, "f0, f29, f28 ... f1, f0");
    assert_eq!(ids[0], chain[0].id);
    assert_eq!(ids[1], chain[29].id);
    assert_eq!(ids[29], chain[1].id);
    assert_eq!(ids[30], chain[0].id);
    let r = app
        .features()
        .update_feature(authed(t, reparent(&chain[5].id, &chain[5].id)))
        .await;
    assert_status(r, Code::FailedPrecondition, "FEATURE_PARENT_CYCLE");
    // Moving a subtree elsewhere is fine, and so is making it top-level.
    let side = feature(&app, t, &p.id, "side", "").await;
    let out = app
        .features()
        .update_feature(authed(t, reparent(&chain[10].id, &side.id)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.parent_feature_id, side.id);
    let out = app
        .features()
        .update_feature(authed(t, reparent(&chain[10].id, "")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.parent_feature_id, "");
    // Now f0 may go under f29 (f10..f29 are no longer its descendants).
    app.features()
        .update_feature(authed(t, reparent(&chain[0].id, &chain[29].id)))
        .await
        .unwrap();
    let other = program(&app, t, "feature-cycles-2").await;
    let elsewhere = feature(&app, t, &other.id, "elsewhere", "").await;
    let r = app
        .features()
        .update_feature(authed(t, reparent(&chain[3].id, &elsewhere.id)))
        .await;
    assert_status(r, Code::FailedPrecondition, "DIFFERENT_PROGRAM");
}

#[tokio::test]
async fn update_changes_masked_fields_and_refuses_a_taken_slug() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "feature-update").await;
    let f = feature(&app, t, &p.id, "old-slug", "").await;
    feature(&app, t, &p.id, "taken", "").await;
    let update = |slug: &str, etag: &str, paths: &[&str]| UpdateFeatureRequest {
        feature: Some(Feature {
            id: f.id.clone(),
            name: "New".into(),
            slug: slug.into(),
            description: "not in the mask".into(),
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: mask(paths),
    };
    let out = app
        .features()
        .update_feature(authed(t, update("new-slug", "1", &["name", "slug"])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.name, "New");
    assert_eq!(out.slug, "new-slug");
    assert_eq!(out.description, "");
    assert_eq!(out.etag, "2");
    let r = app
        .features()
        .update_feature(authed(t, update("taken", "", &["slug"])))
        .await;
    assert_status(r, Code::AlreadyExists, "FEATURE_SLUG_TAKEN");
    let r = app
        .features()
        .update_feature(authed(
            t,
            update("x-y-z", "", &["program_id", "created_by"]),
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["update_mask", "update_mask"]);
}

#[tokio::test]
async fn another_organizations_features_are_not_found() {
    let app = TestApp::start().await;
    let bobs = program(&app, &app.bob.token, "bobs-features").await;
    let f = feature(&app, &app.bob.token, &bobs.id, "bobs", "").await;
    let t = &app.alice.token;
    let mine = program(&app, t, "alices-features").await;
    let res = app
        .features()
        .create_feature(authed(t, new_feature(&bobs.id, "mine", "")))
        .await;
    assert_status(res, Code::NotFound, "PROGRAM_NOT_FOUND");
    let res = app
        .features()
        .create_feature(authed(t, new_feature(&mine.id, "under-bobs", &f.id)))
        .await;
    assert_status(res, Code::NotFound, "FEATURE_NOT_FOUND");
    let res = app
        .features()
        .get_feature(authed(t, GetFeatureRequest { id: f.id.clone() }))
        .await;
    assert_status(res, Code::NotFound, "FEATURE_NOT_FOUND");
    let res = app
        .features()
        .list_features(authed(
            t,
            ListFeaturesRequest {
                program_id: bobs.id.clone(),
                ..Default::default()
            },
        ))
        .await;
    assert_status(res, Code::NotFound, "PROGRAM_NOT_FOUND");
    let res = app
        .features()
        .update_feature(authed(t, reparent(&f.id, "")))
        .await;
    assert_status(res, Code::NotFound, "FEATURE_NOT_FOUND");
    let res = app
        .features()
        .delete_feature(authed(
            t,
            DeleteFeatureRequest {
                id: f.id.clone(),
                etag: String::new(),
            },
        ))
        .await;
    assert_status(res, Code::NotFound, "FEATURE_NOT_FOUND");
    assert_eq!(count(&app, "features").await, 1);
}

#[tokio::test]
async fn a_repeated_request_id_returns_the_first_feature() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "feature-idem").await;
    let mut req = new_feature(&p.id, "once", "");
    req.request_id = rid();
    let a = app
        .features()
        .create_feature(authed(t, req.clone()))
        .await
        .unwrap()
        .into_inner();
    let b = app
        .features()
        .create_feature(authed(t, req))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a, b);
    assert_eq!(count(&app, "features").await, 1);
}

#[tokio::test]
async fn every_feature_mutation_writes_its_event_and_a_parent_is_deleted_last() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "feature-events").await;
    let before = outbox(&app).await.len();
    let root = feature(&app, t, &p.id, "root", "").await;
    let f = feature(&app, t, &p.id, "search", "").await;
    app.features()
        .update_feature(authed(t, reparent(&f.id, &root.id)))
        .await
        .unwrap();
    let del = |id: &str, etag: &str| DeleteFeatureRequest {
        id: id.into(),
        etag: etag.into(),
    };
    let res = app
        .features()
        .delete_feature(authed(t, del(&root.id, "")))
        .await;
    assert_status(res, Code::FailedPrecondition, "FEATURE_HAS_CHILDREN");
    app.features()
        .delete_feature(authed(t, del(&f.id, "2")))
        .await
        .unwrap();
    app.features()
        .delete_feature(authed(t, del(&root.id, "1")))
        .await
        .unwrap();
    let events = outbox(&app).await.split_off(before);
    assert_eq!(
        actions(&events),
        [
            "delivery.feature.create",
            "delivery.feature.create",
            "delivery.feature.update",
            "delivery.feature.delete",
            "delivery.feature.delete"
        ]
    );
    for e in &events {
        assert_eq!(e["project_id"], p.id);
        assert_eq!(e["resource_type"], "delivery.feature");
    }
    assert_eq!(events[2]["resource_id"], f.id);
    assert_eq!(events[2]["changes"]["parent_feature_id"]["new"], root.id);
    assert_eq!(events[3]["changes"]["slug"]["old"], "search");
    assert_eq!(count(&app, "features").await, 0);
}

#[tokio::test]
async fn viewers_read_features_and_editors_write_them() {
    use foundry_identity::domain::Role as R;
    let app = TestApp::start().await;
    let p = program(&app, &app.alice.token, "feature-roles").await;
    let viewer = app.new_member(&app.alice, R::Viewer).await;
    let editor = app.new_member(&app.alice, R::Editor).await;
    let r = app
        .features()
        .create_feature(authed(&viewer.token, new_feature(&p.id, "nope", "")))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
    let made = feature(&app, &editor.token, &p.id, "yes", "").await;
    app.features()
        .get_feature(authed(&viewer.token, GetFeatureRequest { id: made.id }))
        .await
        .expect("viewers read");
}
