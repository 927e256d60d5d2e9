//! The REST edge: authentication (401), authorisation (403), the role API end to end, and
//! validation answers (422 with field paths, 404, 409), all problem+json.

use http::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::on_both_stores;
use crate::support::TestApp;

on_both_stores!(
    every_route_without_a_token_is_401_problem_json,
    every_route_without_platform_role_manage_is_403_problem_json,
    an_admin_creates_lists_changes_and_deletes_a_role,
    an_admin_assigns_and_revokes_a_users_roles,
    an_unknown_permission_in_a_body_is_422_naming_its_index_and_nothing_is_written,
    unknown_fields_and_malformed_values_are_422_naming_the_field,
    system_roles_cannot_be_deleted_or_renamed_over_rest,
    a_user_reads_their_own_permissions_but_not_anothers,
    roles_are_not_assigned_to_users_identity_does_not_know,
);

/// Every route with a body it would accept.
fn routes() -> Vec<(Method, String, Option<Value>)> {
    let id = Uuid::now_v7();
    vec![
        (Method::POST, "/api/v1/roles".into(), Some(json!({"name": "x"}))),
        (Method::GET, "/api/v1/roles".into(), None),
        (Method::GET, format!("/api/v1/roles/{id}"), None),
        (
            Method::PUT,
            format!("/api/v1/roles/{id}"),
            Some(json!({"name": "x"})),
        ),
        (Method::PATCH, format!("/api/v1/roles/{id}"), Some(json!({}))),
        (Method::DELETE, format!("/api/v1/roles/{id}"), None),
        (
            Method::POST,
            format!("/api/v1/roles/{id}/permissions"),
            Some(json!({"permissions": ["a.b.c"]})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/roles/{id}/permissions/a.b.c"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/users/{id}/roles"),
            Some(json!({"role_ids": [id]})),
        ),
        (Method::GET, format!("/api/v1/users/{id}/roles"), None),
        (Method::DELETE, format!("/api/v1/users/{id}/roles/{id}"), None),
        (Method::GET, "/api/v1/permissions".into(), None),
        (Method::GET, format!("/api/v1/users/{id}/permissions"), None),
    ]
}

async fn every_route_without_a_token_is_401_problem_json(app: &TestApp) -> anyhow::Result<()> {
    for (method, path, body) in routes() {
        let (status, content_type, problem) = app.call(method.clone(), &path, None, body).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(content_type, "application/problem+json", "{method} {path}");
        assert_eq!(problem["status"], 401);
    }
    let (status, _, _) = app
        .call(Method::GET, "/api/v1/roles", Some("not.a.token"), None)
        .await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    Ok(())
}

async fn every_route_without_platform_role_manage_is_403_problem_json(app: &TestApp) -> anyhow::Result<()> {
    app.service.seed_roles().await?;
    let user = app.new_user();
    app.service.assign_roles_by_name(user, &["user", "guest"]).await?;
    let token = app.key.token_for(user);
    for (method, path, body) in routes() {
        let (status, content_type, problem) = app.call(method.clone(), &path, Some(&token), body).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(content_type, "application/problem+json");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("platform.role.manage")
        );
    }
    assert_eq!(app.count("roles").await?, 3, "nothing was written");
    Ok(())
}

async fn an_admin_creates_lists_changes_and_deletes_a_role(app: &TestApp) -> anyhow::Result<()> {
    let admin = app.admin().await?;
    let token = app.key.token_for(admin);
    let t = Some(token.as_str());
    let body = json!({"name": "Editor", "description": "Edits", "permissions": ["platform.user.read"]});
    let (status, _, role) = app.call(Method::POST, "/api/v1/roles", t, Some(body)).await?;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        (role["name"].as_str(), role["system"].as_bool()),
        (Some("editor"), Some(false))
    );
    let id = role["id"].as_str().unwrap_or_default().to_owned();

    let (status, _, list) = app
        .call(Method::GET, "/api/v1/roles?name=editor", t, None)
        .await?;
    assert_eq!(
        (status, list["items"][0]["id"].as_str()),
        (StatusCode::OK, Some(id.as_str()))
    );
    assert_eq!(list["next_cursor"], Value::Null);
    let (_, _, all) = app.call(Method::GET, "/api/v1/roles?limit=2", t, None).await?;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(2));
    assert!(all["next_cursor"].is_string(), "four roles, pages of two");

    let path = format!("/api/v1/roles/{id}");
    let put = json!({"name": "writer", "description": "Writes"});
    let (status, _, role) = app.call(Method::PUT, &path, t, Some(put)).await?;
    assert_eq!(
        (status, role["name"].as_str(), role["description"].as_str()),
        (StatusCode::OK, Some("writer"), Some("Writes"))
    );
    let (_, _, role) = app
        .call(
            Method::PATCH,
            &path,
            t,
            Some(json!({"description": "Writes a lot"})),
        )
        .await?;
    assert_eq!(
        (role["name"].as_str(), role["description"].as_str()),
        (Some("writer"), Some("Writes a lot"))
    );

    let grant = json!({"permissions": ["platform.audit.read", "platform.user.read"]});
    let (status, _, role) = app
        .call(Method::POST, &format!("{path}/permissions"), t, Some(grant))
        .await?;
    assert_eq!(
        (status, role["permissions"].clone()),
        (
            StatusCode::OK,
            json!(["platform.audit.read", "platform.user.read"])
        )
    );
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("{path}/permissions/platform.user.read"),
            t,
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, _, role) = app.call(Method::GET, &path, t, None).await?;
    assert_eq!(role["permissions"], json!(["platform.audit.read"]));

    let (status, _, _) = app.call(Method::DELETE, &path, t, None).await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, content_type, _) = app.call(Method::GET, &path, t, None).await?;
    assert_eq!(
        (status, content_type.as_str()),
        (StatusCode::NOT_FOUND, "application/problem+json")
    );
    let audited: Vec<String> = app
        .outbox()
        .await?
        .into_iter()
        .filter(|r| r.kind == "audit" && r.payload["actor_id"] == json!(admin))
        .map(|r| r.topic)
        .collect();
    assert_eq!(
        audited,
        [
            "authz.role.created",
            "authz.permission.granted",
            "authz.role.updated",
            "authz.role.updated",
            "authz.permission.granted",
            "authz.permission.revoked",
            "authz.role.deleted",
        ]
    );
    Ok(())
}

async fn an_admin_assigns_and_revokes_a_users_roles(app: &TestApp) -> anyhow::Result<()> {
    let admin = app.admin().await?;
    let token = app.key.token_for(admin);
    let t = Some(token.as_str());
    let body = json!({"name": "auditor", "permissions": ["platform.audit.read"]});
    let (_, _, role) = app.call(Method::POST, "/api/v1/roles", t, Some(body)).await?;
    let id = role["id"].as_str().unwrap_or_default().to_owned();
    let user = app.new_user();
    let roles_path = format!("/api/v1/users/{user}/roles");
    let (status, _, roles) = app
        .call(Method::POST, &roles_path, t, Some(json!({"role_ids": [id, id]})))
        .await?;
    assert_eq!(
        (status, roles["items"][0]["name"].as_str()),
        (StatusCode::OK, Some("auditor"))
    );
    assert_eq!(
        roles["items"].as_array().map(Vec::len),
        Some(1),
        "a repeated id is assigned once"
    );
    let (_, _, roles) = app.call(Method::GET, &roles_path, t, None).await?;
    assert_eq!(
        (
            roles["items"].as_array().map(Vec::len),
            roles["next_cursor"].clone()
        ),
        (Some(1), Value::Null)
    );
    let permissions_path = format!("/api/v1/users/{user}/permissions");
    let (_, _, permissions) = app.call(Method::GET, &permissions_path, t, None).await?;
    assert_eq!(
        permissions,
        json!({"user_id": user, "permissions": ["platform.audit.read"]})
    );

    let (status, _, _) = app
        .call(Method::DELETE, &format!("{roles_path}/{id}"), t, None)
        .await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, _, permissions) = app.call(Method::GET, &permissions_path, t, None).await?;
    assert_eq!(
        permissions["permissions"],
        json!([]),
        "the very next request sees the change"
    );
    let (_, _, catalogue) = app.call(Method::GET, "/api/v1/permissions", t, None).await?;
    assert_eq!(catalogue["items"].as_array().map(Vec::len), Some(5));
    assert_eq!(
        catalogue["items"][0],
        json!({"name": "platform.audit.read", "description": "Read the audit log", "module": "platform"})
    );
    Ok(())
}

async fn an_unknown_permission_in_a_body_is_422_naming_its_index_and_nothing_is_written(
    app: &TestApp,
) -> anyhow::Result<()> {
    let admin = app.admin().await?;
    let token = app.key.token_for(admin);
    let rows = app.outbox().await?.len();
    let body = json!({"name": "writer", "permissions": ["platform.user.read", "blog.post.create"]});
    let (status, content_type, problem) = app
        .call(Method::POST, "/api/v1/roles", Some(&token), Some(body))
        .await?;
    assert_eq!(
        (status, content_type.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "application/problem+json")
    );
    assert_eq!(problem["errors"][0]["field"], "permissions[1]");
    assert_eq!(problem["errors"][0]["code"], "unknown_permission");
    assert_eq!(app.count("roles").await?, 3);
    assert_eq!(app.outbox().await?.len(), rows);
    Ok(())
}

async fn unknown_fields_and_malformed_values_are_422_naming_the_field(app: &TestApp) -> anyhow::Result<()> {
    let admin = app.admin().await?;
    let token = app.key.token_for(admin);
    let t = Some(token.as_str());
    let cases = [
        (json!({"name": "x", "system": true}), "system"),
        (json!({"name": ""}), "name"),
        (
            json!({"name": "x", "permissions": ["ok.to.parse", 7]}),
            "permissions[1]",
        ),
    ];
    for (body, field) in cases {
        let (status, _, problem) = app
            .call(Method::POST, "/api/v1/roles", t, Some(body.clone()))
            .await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    let user = app.new_user();
    let (status, _, problem) = app
        .call(
            Method::POST,
            &format!("/api/v1/users/{user}/roles"),
            t,
            Some(json!({"role_ids": ["nope"]})),
        )
        .await?;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("role_ids[0]"))
    );
    // Present but empty is malformed too (`?cursor=` was a first page; found by scripts/api-fuzz.sh).
    for (query, field) in [
        ("limit=lots", "limit"),
        ("limit=", "limit"),
        ("cursor=", "cursor"),
    ] {
        let path = format!("/api/v1/roles?{query}");
        let (status, _, problem) = app.call(Method::GET, &path, t, None).await?;
        assert_eq!(
            (status, problem["errors"][0]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{query}"
        );
    }
    // A body is an object: serde would read a struct from an array, field by field, and a
    // `PATCH` of `[null, null]` used to pass as "change nothing" (found by scripts/api-fuzz.sh).
    let (_, _, user_role) = app.call(Method::GET, "/api/v1/roles?name=user", t, None).await?;
    let role = user_role["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/api/v1/roles/{role}"),
            json!([null, null]),
        ),
        (Method::PUT, format!("/api/v1/roles/{role}"), json!(["user", ""])),
        (Method::POST, "/api/v1/roles".to_owned(), json!(["x", "", []])),
    ] {
        let (status, _, problem) = app.call(method.clone(), &path, t, Some(body)).await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{method} {path}");
        assert_eq!(problem["errors"][0]["code"], "invalid_type", "{method} {path}");
    }
    assert_eq!(app.count("roles").await?, 3);
    Ok(())
}

async fn system_roles_cannot_be_deleted_or_renamed_over_rest(app: &TestApp) -> anyhow::Result<()> {
    let admin = app.admin().await?;
    let token = app.key.token_for(admin);
    let t = Some(token.as_str());
    let (_, _, list) = app.call(Method::GET, "/api/v1/roles?name=admin", t, None).await?;
    let path = format!(
        "/api/v1/roles/{}",
        list["items"][0]["id"].as_str().unwrap_or_default()
    );
    let (status, _, problem) = app.call(Method::DELETE, &path, t, None).await?;
    assert_eq!(
        (status, problem["status"].as_u64()),
        (StatusCode::CONFLICT, Some(409))
    );
    let (status, _, _) = app
        .call(Method::PATCH, &path, t, Some(json!({"name": "root"})))
        .await?;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("{path}/permissions/platform.role.manage"),
            t,
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, _) = app.call(Method::GET, &path, t, None).await?;
    assert_eq!(status, StatusCode::OK);
    Ok(())
}

async fn a_user_reads_their_own_permissions_but_not_anothers(app: &TestApp) -> anyhow::Result<()> {
    app.service.seed_roles().await?;
    let user = app.new_user();
    app.service.assign_roles_by_name(user, &["user"]).await?;
    let token = app.key.token_for(user);
    let (status, _, own) = app
        .call(
            Method::GET,
            &format!("/api/v1/users/{user}/permissions"),
            Some(&token),
            None,
        )
        .await?;
    assert_eq!((status, own["user_id"].clone()), (StatusCode::OK, json!(user)));
    let other = app.new_user();
    let (status, _, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/users/{other}/permissions"),
            Some(&token),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    Ok(())
}

async fn roles_are_not_assigned_to_users_identity_does_not_know(app: &TestApp) -> anyhow::Result<()> {
    let admin = app.admin().await?;
    let token = app.key.token_for(admin);
    let (_, _, list) = app
        .call(Method::GET, "/api/v1/roles?name=user", Some(&token), None)
        .await?;
    let body = json!({"role_ids": [list["items"][0]["id"]]});
    let stranger = Uuid::now_v7();
    let (status, _, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/users/{stranger}/roles"),
            Some(&token),
            Some(body),
        )
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = app
        .call(Method::GET, "/api/v1/roles/not-a-uuid", Some(&token), None)
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, content_type, _) = app
        .call(
            Method::DELETE,
            "/api/v1/roles/%FF/permissions/%C3%28",
            Some(&token),
            None,
        )
        .await?;
    assert_eq!(
        (status, content_type.as_str()),
        (StatusCode::NOT_FOUND, "application/problem+json")
    );
    assert_eq!(app.count("user_roles").await?, 1, "only the admin's");
    Ok(())
}
