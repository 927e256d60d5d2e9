//! The story of issue 3, over HTTP through the gateway: register → verify e-mail → login → a
//! protected route without permission is 403 → an admin grants a role → the same request is 200 →
//! the audit log shows each step.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Platform, access_token, unique_email};

#[tokio::test]
async fn a_new_user_is_forbidden_until_an_admin_grants_a_role_and_every_step_is_audited() {
    let platform = Platform::start().await;
    let email = unique_email("journey");
    let password = "journey passphrase 42";

    let user = platform.register(&email, password).await;
    let user_id = user["id"].as_str().expect("id").to_owned();
    assert_eq!(user["email"], email.as_str());
    assert_eq!(user["email_verified"], false);

    let token = platform.emailed_token(&email, "verify-email").await;
    let verified = platform
        .call(
            Method::POST,
            "/api/v1/users/verify-email",
            None,
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(verified.status, StatusCode::NO_CONTENT, "{}", verified.body);
    let again = platform
        .call(
            Method::POST,
            "/api/v1/users/verify-email",
            None,
            Some(json!({"token": token})),
        )
        .await;
    assert!(
        again.status.is_client_error(),
        "a verification token is single use: {}",
        again.status
    );

    let user_token = access_token(&platform.login(&email, password).await);
    let me = platform
        .call(Method::GET, "/api/v1/users/me", Some(&user_token), None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["email_verified"], true);

    let forbidden = platform
        .call(Method::GET, "/api/v1/audit-logs", Some(&user_token), None)
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN, "{}", forbidden.body);
    assert_eq!(forbidden.content_type, "application/problem+json");

    let admin = platform.admin_token().await;
    let role = platform
        .call(
            Method::POST,
            "/api/v1/roles",
            Some(&admin),
            Some(json!({"name": "auditor", "description": "reads the audit log", "permissions": ["platform.audit.read"]})),
        )
        .await;
    assert_eq!(role.status, StatusCode::CREATED, "{}", role.body);
    let role_id = role.body["id"].as_str().expect("role id").to_owned();
    let assigned = platform
        .call(
            Method::POST,
            &format!("/api/v1/users/{user_id}/roles"),
            Some(&admin),
            Some(json!({"role_ids": [role_id]})),
        )
        .await;
    assert!(
        assigned.status.is_success(),
        "{}: {}",
        assigned.status,
        assigned.body
    );

    // The very next request sees the new role: the callers' permission caches were invalidated.
    let allowed = platform
        .call(Method::GET, "/api/v1/audit-logs", Some(&user_token), None)
        .await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.body);

    let expected = [
        "identity.user.registered",
        "identity.email.verified",
        "auth.login.succeeded",
        "authz.role.created",
        "authz.role.assigned",
    ];
    let records = platform
        .audit_until(&admin, "", |items| {
            expected
                .iter()
                .all(|action| has_action(items, action, &user_id, &role_id))
        })
        .await;
    let registered = records
        .iter()
        .find(|r| r["action"] == "identity.user.registered" && r["target_id"] == user_id.as_str())
        .expect("registration record");
    assert!(
        registered["request_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{registered}"
    );

    // And a revocation applies to the very next request too: authz answers only once its events
    // (which evict the callers' cached permissions) are published.
    let revoked = platform
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{user_id}/roles/{role_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    let forbidden_again = platform
        .call(Method::GET, "/api/v1/audit-logs", Some(&user_token), None)
        .await;
    assert_eq!(
        forbidden_again.status,
        StatusCode::FORBIDDEN,
        "{}",
        forbidden_again.body
    );

    // Deleting the user takes their roles with them; the last administrator cannot be deleted.
    let deleted = platform
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{user_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    let me = platform
        .call(Method::GET, "/api/v1/users/me", Some(&admin), None)
        .await;
    let admin_id = me.body["id"].as_str().expect("the administrator's id").to_owned();
    let refused = platform
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{admin_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(
        refused.body["detail"],
        "the last holder of the admin role cannot be deleted; give the role to someone else first"
    );
    let still = platform
        .call(Method::GET, "/api/v1/users/me", Some(&admin), None)
        .await;
    assert_eq!(still.status, StatusCode::OK, "the administrator is still there");
    platform.stop().await;
}

fn has_action(items: &[Value], action: &str, user_id: &str, role_id: &str) -> bool {
    items.iter().any(|record| {
        record["action"] == action
            && [user_id, role_id]
                .iter()
                .any(|id| record["target_id"] == *id || record["actor_id"] == *id)
    })
}

#[tokio::test]
async fn an_authenticated_change_no_handler_audits_is_recorded_once_by_the_service() {
    let platform = Platform::start().await;
    let email = unique_email("net");
    let password = "audit net passphrase 7";
    let user = platform.register(&email, password).await;
    let user_id = user["id"].as_str().expect("id").to_owned();
    let user_token = access_token(&platform.login(&email, password).await);
    let admin = platform.admin_token().await;

    // An allowed change: its handler audits it (authz.role.created), so the net adds nothing.
    let created = platform
        .call(
            Method::POST,
            "/api/v1/roles",
            Some(&admin),
            Some(json!({"name": "net-checked", "permissions": []})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);

    // Then a denied attempt: authz's handler never ran, so no record of its own. authz's outbox
    // delivers in order, so once this record is in, any record of the change above is too.
    let denied = platform
        .call(
            Method::POST,
            "/api/v1/roles",
            Some(&user_token),
            Some(json!({"name": "sneaky", "permissions": []})),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.body);
    let records = platform
        .audit_until(&admin, "action=authz.request.completed", |items| {
            items.iter().any(|r| r["actor_id"] == user_id.as_str())
        })
        .await;
    let attempt = records
        .iter()
        .find(|r| r["actor_id"] == user_id.as_str())
        .expect("the denied attempt");
    assert_eq!(attempt["target_id"], "/api/v1/roles");
    assert_eq!(attempt["metadata"]["status"], 403);
    assert_eq!(attempt["metadata"]["method"], "POST");
    assert_eq!(attempt["metadata"]["route"], "/api/v1/roles");
    assert!(attempt["request_id"].as_str().is_some_and(|id| !id.is_empty()));

    let role_id = created.body["id"].as_str().expect("role id").to_owned();
    let created_records = platform
        .audit_until(&admin, "action=authz.role.created", |items| {
            items.iter().any(|r| r["target_id"] == role_id.as_str())
        })
        .await;
    let creation = created_records
        .iter()
        .find(|r| r["target_id"] == role_id.as_str())
        .expect("the creation record");
    let request_id = creation["request_id"].as_str().expect("request id");
    let same_request = platform
        .audit_until(&admin, &format!("request_id={request_id}"), |items| {
            !items.is_empty()
        })
        .await;
    assert_eq!(
        same_request.len(),
        1,
        "the audited change is recorded once: {same_request:?}"
    );
    platform.stop().await;
}
