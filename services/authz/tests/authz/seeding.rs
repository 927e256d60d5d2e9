//! Seeding the system roles: what they hold, and that a second seed changes nothing.

use std::collections::BTreeMap;

use keel_clients::{PageRequest, Permission, Role};

use crate::on_both_stores;
use crate::support::TestApp;

on_both_stores!(
    seeding_creates_admin_user_and_guest_with_their_permissions,
    seeding_twice_leaves_the_same_state_and_records_nothing_more,
    a_seed_after_a_module_registers_grants_its_permissions_to_user_and_guest,
    the_seeded_admin_can_manage_roles,
);

async fn roles_by_name(app: &TestApp) -> anyhow::Result<BTreeMap<String, Role>> {
    let page = app.client().list_roles(None, PageRequest::default()).await?;
    Ok(page.items.into_iter().map(|r| (r.name.clone(), r)).collect())
}

async fn register_blog(app: &TestApp) -> anyhow::Result<()> {
    let permissions = [
        "blog.post.create",
        "blog.post.read",
        "blog.post.update.own",
        "blog.post.delete.own",
        "blog.post.delete",
    ]
    .iter()
    .map(|name| Permission {
        name: (*name).to_owned(),
        description: String::new(),
        module: "blog".to_owned(),
    })
    .collect();
    app.client().register_permissions(permissions).await?;
    Ok(())
}

async fn seeding_creates_admin_user_and_guest_with_their_permissions(app: &TestApp) -> anyhow::Result<()> {
    let report = app.service.seed_roles().await?;
    assert_eq!(report.created_roles, ["admin", "user", "guest"]);
    let roles = roles_by_name(app).await?;
    assert_eq!(roles.keys().collect::<Vec<_>>(), ["admin", "guest", "user"]);
    assert!(roles.values().all(|r| r.system));
    let catalogue: Vec<String> = app
        .client()
        .list_permissions()
        .await?
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(
        roles["admin"].permissions, catalogue,
        "admin holds the whole catalogue"
    );
    assert!(
        roles["user"].permissions.is_empty(),
        "self-service needs no permission; no blog yet"
    );
    assert!(roles["guest"].permissions.is_empty());
    Ok(())
}

async fn seeding_twice_leaves_the_same_state_and_records_nothing_more(app: &TestApp) -> anyhow::Result<()> {
    app.service.seed_roles().await?;
    let first = roles_by_name(app).await?;
    let outbox = app.outbox().await?.len();
    let report = app.service.seed_roles().await?;
    assert!(report.is_unchanged(), "{report:?}");
    assert_eq!(roles_by_name(app).await?, first);
    assert_eq!(
        app.outbox().await?.len(),
        outbox,
        "no event or audit record for a no-op seed"
    );
    assert_eq!(app.count("roles").await?, 3);
    Ok(())
}

async fn a_seed_after_a_module_registers_grants_its_permissions_to_user_and_guest(
    app: &TestApp,
) -> anyhow::Result<()> {
    app.service.seed_roles().await?;
    register_blog(app).await?;
    let report = app.service.seed_roles().await?;
    assert_eq!(
        report.granted.get("user").cloned().unwrap_or_default(),
        [
            "blog.post.create",
            "blog.post.delete.own",
            "blog.post.read",
            "blog.post.update.own"
        ]
    );
    assert_eq!(
        report.granted.get("guest").cloned().unwrap_or_default(),
        ["blog.post.read"]
    );
    assert!(
        !report.granted.contains_key("admin"),
        "admin received them at registration"
    );
    let roles = roles_by_name(app).await?;
    assert!(
        roles["admin"]
            .permissions
            .contains(&"blog.post.delete".to_owned())
    );
    assert!(
        !roles["user"].permissions.contains(&"blog.post.delete".to_owned()),
        "only own posts"
    );
    Ok(())
}

async fn the_seeded_admin_can_manage_roles(app: &TestApp) -> anyhow::Result<()> {
    let admin = app.admin().await?;
    let client = app.client();
    assert!(client.has_permission(admin, "platform.role.manage").await?);
    let roles = client.user_roles(admin).await?;
    assert_eq!(
        roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["admin"]
    );
    Ok(())
}
