//! Role CRUD through the in-process client: validation, uniqueness, paging, system-role protection.

use keel_clients::{NewRole, Origin, PageRequest, RoleChanges, RoleSelector, ServiceError};

use crate::on_both_stores;
use crate::support::TestApp;

on_both_stores!(
    a_created_role_is_stored_with_its_permissions_and_lowercase_name,
    role_names_are_unique_regardless_of_case,
    roles_are_listed_by_name_a_page_at_a_time_and_filtered_by_name,
    a_system_role_can_be_redescribed_but_not_renamed_or_deleted,
    a_custom_role_can_be_renamed_and_deleted_and_its_holders_lose_it,
    an_unknown_permission_on_create_is_rejected_by_index_and_nothing_is_written,
);

fn new_role(name: &str, permissions: &[&str]) -> NewRole {
    NewRole {
        name: name.to_owned(),
        description: format!("{name} role"),
        permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
    }
}

fn violation_fields(error: &ServiceError) -> Vec<String> {
    match error {
        ServiceError::InvalidArgument { violations, .. } => {
            violations.iter().map(|v| v.field.clone()).collect()
        }
        _ => Vec::new(),
    }
}

async fn a_created_role_is_stored_with_its_permissions_and_lowercase_name(
    app: &TestApp,
) -> anyhow::Result<()> {
    let client = app.client();
    let origin = Origin::default();
    let role = client
        .create_role(
            new_role(
                "Editor",
                &["platform.user.update", "platform.user.read", "platform.user.read"],
            ),
            &origin,
        )
        .await?;
    assert_eq!(role.name, "editor");
    assert_eq!(
        role.permissions,
        ["platform.user.read", "platform.user.update"],
        "sorted, repeats dropped"
    );
    assert!(!role.system);
    assert_eq!(role.id.get_version_num(), 7);
    assert_eq!(client.get_role(role.id).await?, role);
    Ok(())
}

async fn role_names_are_unique_regardless_of_case(app: &TestApp) -> anyhow::Result<()> {
    let client = app.client();
    client
        .create_role(new_role("support", &[]), &Origin::default())
        .await?;
    let error = client
        .create_role(new_role("SUPPORT", &[]), &Origin::default())
        .await
        .expect_err("taken");
    assert!(matches!(error, ServiceError::AlreadyExists(_)), "{error:?}");
    let other = client
        .create_role(new_role("other", &[]), &Origin::default())
        .await?;
    let changes = RoleChanges {
        name: Some("Support".to_owned()),
        description: None,
    };
    let error = client
        .update_role(other.id, changes, &Origin::default())
        .await
        .expect_err("taken");
    assert!(matches!(error, ServiceError::AlreadyExists(_)), "{error:?}");
    assert_eq!(app.count("roles").await?, 2);
    Ok(())
}

async fn roles_are_listed_by_name_a_page_at_a_time_and_filtered_by_name(app: &TestApp) -> anyhow::Result<()> {
    let client = app.client();
    for name in ["delta", "alpha", "charlie", "bravo", "echo"] {
        client
            .create_role(new_role(name, &[]), &Origin::default())
            .await?;
    }
    let mut names = Vec::new();
    let mut cursor = None;
    loop {
        let page = client
            .list_roles(
                None,
                PageRequest {
                    limit: Some(2),
                    cursor,
                },
            )
            .await?;
        assert!(page.items.len() <= 2);
        names.extend(page.items.into_iter().map(|r| r.name));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(names, ["alpha", "bravo", "charlie", "delta", "echo"]);
    let only = client
        .list_roles(Some("CHARLIE".to_owned()), PageRequest::default())
        .await?;
    assert_eq!(
        only.items.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["charlie"]
    );
    let bad = PageRequest {
        limit: Some(101),
        cursor: None,
    };
    assert_eq!(
        violation_fields(&client.list_roles(None, bad).await.expect_err("too big")),
        ["limit"]
    );
    Ok(())
}

async fn a_system_role_can_be_redescribed_but_not_renamed_or_deleted(app: &TestApp) -> anyhow::Result<()> {
    app.service.seed_roles().await?;
    let client = app.client();
    let guest = client
        .list_roles(Some("guest".into()), PageRequest::default())
        .await?
        .items
        .remove(0);
    let rename = RoleChanges {
        name: Some("visitor".to_owned()),
        description: None,
    };
    let error = client
        .update_role(guest.id, rename, &Origin::default())
        .await
        .expect_err("system");
    assert!(matches!(error, ServiceError::FailedPrecondition(_)), "{error:?}");
    let error = client
        .delete_role(guest.id, &Origin::default())
        .await
        .expect_err("system");
    assert!(matches!(error, ServiceError::FailedPrecondition(_)), "{error:?}");
    let redescribe = RoleChanges {
        name: Some("Guest".to_owned()),
        description: Some("Visitors".to_owned()),
    };
    let updated = client
        .update_role(guest.id, redescribe, &Origin::default())
        .await?;
    assert_eq!(
        (updated.name.as_str(), updated.description.as_str()),
        ("guest", "Visitors")
    );
    assert!(updated.updated_at > guest.updated_at);
    Ok(())
}

async fn a_custom_role_can_be_renamed_and_deleted_and_its_holders_lose_it(
    app: &TestApp,
) -> anyhow::Result<()> {
    let client = app.client();
    let role = client
        .create_role(new_role("auditor", &["platform.audit.read"]), &Origin::default())
        .await?;
    let user = app.new_user();
    let selector = RoleSelector {
        ids: vec![role.id],
        names: Vec::new(),
    };
    client.assign_roles(user, selector, &Origin::default()).await?;
    assert!(client.has_permission(user, "platform.audit.read").await?);
    let rename = RoleChanges {
        name: Some("reviewer".to_owned()),
        description: None,
    };
    assert_eq!(
        client
            .update_role(role.id, rename, &Origin::default())
            .await?
            .name,
        "reviewer"
    );
    client.delete_role(role.id, &Origin::default()).await?;
    assert!(matches!(
        client.get_role(role.id).await,
        Err(ServiceError::NotFound(_))
    ));
    assert!(
        !client.has_permission(user, "platform.audit.read").await?,
        "the very next check sees it"
    );
    assert_eq!(app.count("user_roles").await?, 0);
    assert_eq!(app.count("role_permissions").await?, 0);
    Ok(())
}

async fn an_unknown_permission_on_create_is_rejected_by_index_and_nothing_is_written(
    app: &TestApp,
) -> anyhow::Result<()> {
    let client = app.client();
    let role = new_role(
        "writer",
        &["platform.user.read", "blog.post.create", "not a permission"],
    );
    let error = client
        .create_role(role, &Origin::default())
        .await
        .expect_err("rejected");
    assert_eq!(violation_fields(&error), ["permissions[2]"], "format first");
    let role = new_role("writer", &["platform.user.read", "blog.post.create"]);
    let error = client
        .create_role(role, &Origin::default())
        .await
        .expect_err("rejected");
    let ServiceError::InvalidArgument { violations, .. } = &error else {
        anyhow::bail!("expected InvalidArgument, got {error:?}");
    };
    assert_eq!(violations[0].field, "permissions[1]");
    assert_eq!(violations[0].code, "unknown_permission");
    assert_eq!(app.count("roles").await?, 0);
    assert_eq!(app.count("keel_outbox").await?, 0);
    Ok(())
}
