//! Authenticated routes: the user's own profile and password, and admin user management.

use http::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::support::{Backend, GOOD_PASSWORD, TestApp, on_both_backends};

on_both_backends!(
    the_own_profile_needs_a_token_and_can_be_read_and_renamed,
    changing_the_password_needs_the_current_one_and_ends_the_sessions,
    guessing_the_current_password_is_throttled_per_user,
    admin_routes_need_their_permission_except_reading_and_updating_oneself,
    users_are_listed_oldest_first_in_cursor_pages,
    an_admin_deletes_a_user_after_ending_their_sessions,
    the_last_administrator_cannot_be_deleted,
    a_change_whose_transaction_rolls_back_after_its_audit_record_still_leaves_a_trace,
);

async fn the_own_profile_needs_a_token_and_can_be_read_and_renamed(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let id = app.register("ada@example.com").await;
    let anonymous = app.request(Method::GET, "/api/v1/users/me").send().await;
    anonymous.assert_problem(StatusCode::UNAUTHORIZED);
    let forged = app
        .request(Method::GET, "/api/v1/users/me")
        .header("authorization", "Bearer not.a.token")
        .send()
        .await;
    forged.assert_problem(StatusCode::UNAUTHORIZED);

    let me = app
        .request(Method::GET, "/api/v1/users/me")
        .bearer_of(id)
        .send()
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["email"], "ada@example.com");

    let renamed = app
        .request(Method::PATCH, "/api/v1/users/me")
        .bearer_of(id)
        .json(&json!({"display_name": "  Ada L. "}))
        .send()
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.body["display_name"], "Ada L.");
    let sneaky = app
        .request(Method::PATCH, "/api/v1/users/me")
        .bearer_of(id)
        .json(&json!({"email": "other@example.com"}))
        .send()
        .await;
    sneaky.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    let audit = app.audit_records().await;
    let actions: Vec<_> = audit
        .iter()
        .map(|r| r["action"].as_str().unwrap_or_default())
        .collect();
    let updated = audit
        .iter()
        .rfind(|r| r["action"] == "identity.user.updated")
        .expect("the rename is audited");
    assert_eq!(updated["actor_id"], id.to_string());
    // The refused attempt is recorded too, by the audit net, with its status.
    let refused = audit.last().expect("audit");
    assert_eq!(refused["action"], "identity.request.completed", "{actions:?}");
    assert_eq!(refused["actor_id"], id.to_string());
    assert_eq!(refused["metadata"]["status"], 422);
    assert_eq!(refused["metadata"]["method"], "PATCH");
    let events = app.events().await;
    assert_eq!(events.last().expect("event")["topic"], "platform.user.updated");
    app.finish().await;
}

async fn changing_the_password_needs_the_current_one_and_ends_the_sessions(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let id = app.register("grace@example.com").await;
    let before = app.password_hash("grace@example.com").await;
    let change = |current: &str, new: &str| {
        app.request(Method::PUT, "/api/v1/users/me/password")
            .bearer_of(id)
            .json(&json!({"current_password": current, "new_password": new}))
    };
    let wrong = change("not-my-password-at-all", "quartz-lantern-88-meadow")
        .send()
        .await;
    wrong.assert_problem(StatusCode::FORBIDDEN);
    let weak = change(GOOD_PASSWORD, "abc").send().await;
    weak.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        weak.field_errors(),
        [("new_password".to_owned(), "too_short".to_owned())]
    );
    assert_eq!(app.password_hash("grace@example.com").await, before);
    assert!(app.auth.revocations().is_empty());

    let done = change(GOOD_PASSWORD, "quartz-lantern-88-meadow").send().await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.body);
    assert_ne!(app.password_hash("grace@example.com").await, before);
    // Ended before the commit (a failure would stop the change) and again after it (a login
    // that checked the old password meanwhile keeps nothing).
    let revoked = app.auth.revocations();
    assert_eq!(revoked.len(), 2);
    for (user, origin) in &revoked {
        assert_eq!((*user, origin.actor_id), (id, Some(id)));
    }
    let audit = app.audit_records().await;
    assert_eq!(
        audit.last().expect("audit")["action"],
        "identity.password.changed"
    );
    app.finish().await;
}

async fn guessing_the_current_password_is_throttled_per_user(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let thief = app.register("victim@example.com").await;
    let other = app.register("bystander@example.com").await;
    let guess = |user: uuid::Uuid, n: usize| {
        app.request(Method::PUT, "/api/v1/users/me/password")
            .bearer_of(user)
            .json(&json!({"current_password": format!("guess number {n}"), "new_password": "quartz-lantern-88-meadow"}))
    };
    // Five wrong guesses are free and the sixth is checked too (the shipped schedule)...
    for n in 0..6 {
        guess(thief, n).send().await.assert_problem(StatusCode::FORBIDDEN);
    }
    // ...then the next must wait, before any hash is spent on it.
    let throttled = guess(thief, 6).send().await;
    throttled.assert_problem(StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = throttled
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // Another user is not affected.
    guess(other, 0).send().await.assert_problem(StatusCode::FORBIDDEN);
    app.finish().await;
}

async fn admin_routes_need_their_permission_except_reading_and_updating_oneself(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let alice = app.register("alice@example.com").await;
    let bob = app.register("bob@example.com").await;
    let call = |method: Method, path: String| app.request(method, &path).bearer_of(alice);

    call(Method::GET, "/api/v1/users".into())
        .send()
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    call(Method::GET, format!("/api/v1/users/{bob}"))
        .send()
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    let patch_bob = call(Method::PATCH, format!("/api/v1/users/{bob}"))
        .json(&json!({"display_name": "Bobby"}))
        .send()
        .await;
    patch_bob.assert_problem(StatusCode::FORBIDDEN);
    let delete_self = call(Method::DELETE, format!("/api/v1/users/{alice}"))
        .send()
        .await;
    delete_self.assert_problem(StatusCode::FORBIDDEN);
    let own = call(Method::GET, format!("/api/v1/users/{alice}")).send().await;
    assert_eq!(own.status, StatusCode::OK);
    let own_patch = call(Method::PATCH, format!("/api/v1/users/{alice}"))
        .json(&json!({"display_name": "Alice"}))
        .send()
        .await;
    assert_eq!(own_patch.status, StatusCode::OK);

    app.authz.grant(alice, "platform.user.read");
    app.authz.grant(alice, "platform.user.update");
    let bob_read = call(Method::GET, format!("/api/v1/users/{bob}")).send().await;
    assert_eq!(bob_read.body["email"], "bob@example.com");
    let bob_patched = call(Method::PATCH, format!("/api/v1/users/{bob}"))
        .json(&json!({"display_name": "Bobby"}))
        .send()
        .await;
    assert_eq!(bob_patched.body["display_name"], "Bobby");
    let audit = app.audit_records().await;
    assert_eq!(
        audit.last().expect("audit")["actor_id"],
        alice.to_string(),
        "the admin acted"
    );
    let missing = call(Method::GET, format!("/api/v1/users/{}", Uuid::now_v7()))
        .send()
        .await;
    missing.assert_problem(StatusCode::NOT_FOUND);
    call(Method::GET, "/api/v1/users/not-a-uuid".into())
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    // A segment that does not even decode (not UTF-8) names nothing either: the same problem.
    call(Method::GET, "/api/v1/users/%FF".into())
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    app.finish().await;
}

async fn users_are_listed_oldest_first_in_cursor_pages(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.register(&format!("user{i}@example.com")).await);
    }
    let admin = Uuid::now_v7();
    app.authz.grant(admin, "platform.user.read");
    let mut seen = Vec::new();
    let mut path = "/api/v1/users?limit=2".to_owned();
    loop {
        let page = app.request(Method::GET, &path).bearer_of(admin).send().await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let items = page.body["items"].as_array().expect("items");
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|u| u["id"].as_str().expect("id").parse::<Uuid>().expect("uuid")),
        );
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/users?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let default = app
        .request(Method::GET, "/api/v1/users")
        .bearer_of(admin)
        .send()
        .await;
    assert_eq!(default.body["items"].as_array().map(Vec::len), Some(5));
    assert!(default.body["next_cursor"].is_null());
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("cursor=!!", "cursor"),
        ("sort=id", "sort"),
    ] {
        let reply = app
            .request(Method::GET, &format!("/api/v1/users?{query}"))
            .bearer_of(admin)
            .send()
            .await;
        reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(reply.field_errors()[0].0, field, "{query}");
    }
    app.finish().await;
}

async fn the_last_administrator_cannot_be_deleted(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let root = app.register("root@example.com").await;
    app.authz.grant(root, "platform.user.delete");
    app.authz.make_last_admin(root);
    let reply = app
        .request(Method::DELETE, &format!("/api/v1/users/{root}"))
        .bearer_of(root)
        .send()
        .await;
    reply.assert_problem(StatusCode::CONFLICT);
    assert_eq!(
        reply.body["detail"],
        "the last holder of the admin role cannot be deleted; give the role to someone else first"
    );
    assert_eq!(app.user_count().await, 1, "nothing deleted");
    assert!(app.auth.revocations().is_empty(), "no session ended");
    assert!(app.authz.released().is_empty());
    app.finish().await;
}

async fn a_change_whose_transaction_rolls_back_after_its_audit_record_still_leaves_a_trace(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let id = app.register("ada@example.com").await;
    // The outbox now refuses events: a rename queues its audit record, then its event fails, and
    // the transaction rolls back with the record in it.
    let refuse_events = match backend {
        Backend::Sqlite => vec![
            "CREATE TRIGGER refuse_events BEFORE INSERT ON keel_outbox WHEN NEW.kind = 'event' \
             BEGIN SELECT RAISE(ABORT, 'events refused by the test'); END",
        ],
        Backend::Postgres => vec![
            "CREATE FUNCTION refuse_events() RETURNS trigger AS $$ BEGIN \
             RAISE EXCEPTION 'events refused by the test'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_events BEFORE INSERT ON keel_outbox FOR EACH ROW \
             WHEN (NEW.kind = 'event') EXECUTE FUNCTION refuse_events()",
        ],
    };
    for sql in refuse_events {
        app.execute(sql).await;
    }
    let renamed = app
        .request(Method::PATCH, "/api/v1/users/me")
        .bearer_of(id)
        .json(&json!({"display_name": "Ada L."}))
        .send()
        .await;
    renamed.assert_problem(StatusCode::INTERNAL_SERVER_ERROR);
    let audit = app.audit_records().await;
    assert!(
        !audit.iter().any(|r| r["action"] == "identity.user.updated"),
        "the rename's own record rolled back with it: {audit:?}"
    );
    let attempt = audit.last().expect("the failed attempt is audited");
    assert_eq!(
        (
            attempt["action"].as_str(),
            attempt["actor_id"].as_str(),
            attempt["metadata"]["status"].as_u64()
        ),
        (
            Some("identity.request.completed"),
            Some(&*id.to_string()),
            Some(500)
        ),
        "{audit:?}"
    );
    app.finish().await;
}

async fn an_admin_deletes_a_user_after_ending_their_sessions(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let doomed = app.register("doomed@example.com").await;
    let admin = Uuid::now_v7();
    app.authz.grant(admin, "platform.user.delete");
    app.authz.grant(admin, "platform.user.read");
    let delete = || {
        app.request(Method::DELETE, &format!("/api/v1/users/{doomed}"))
            .bearer_of(admin)
    };

    app.auth.fail(true);
    delete()
        .send()
        .await
        .assert_problem(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        app.user_count().await,
        1,
        "nothing deleted while sessions could not be ended"
    );
    // The failed attempt still leaves its trace, by the audit net, with its status.
    let audit = app.audit_records().await;
    let attempt = audit.last().expect("the failed attempt is audited");
    assert_eq!(
        (attempt["action"].as_str(), attempt["metadata"]["status"].as_u64()),
        (Some("identity.request.completed"), Some(503)),
        "{audit:?}"
    );
    app.auth.fail(false);

    let reply = delete().send().await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert_eq!(app.user_count().await, 0);
    assert_eq!(app.auth.revocations()[0].0, doomed);
    assert_eq!(
        app.authz.released().last(),
        Some(&doomed),
        "authz took the roles first"
    );
    let tokens = app.rows("SELECT COUNT(*) AS n FROM tokens").await;
    assert_eq!(tokens[0].try_get::<i64>("", "n").expect("count"), 0);
    let events = app.events().await;
    let last = events.last().expect("event");
    assert_eq!(last["topic"], "platform.user.deleted");
    assert_eq!(last["payload"]["email"], "doomed@example.com");
    let audit = app.audit_records().await;
    let last = audit.last().expect("audit");
    assert_eq!(
        (last["action"].as_str(), last["actor_id"].as_str()),
        (Some("identity.user.deleted"), Some(&*admin.to_string()))
    );
    let gone = app
        .request(Method::GET, &format!("/api/v1/users/{doomed}"))
        .bearer_of(admin)
        .send()
        .await;
    gone.assert_problem(StatusCode::NOT_FOUND);
    delete().send().await.assert_problem(StatusCode::NOT_FOUND);
    app.finish().await;
}
