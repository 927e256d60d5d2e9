//! The permission catalogue: core permissions at build, module permissions registered idempotently.

use keel_clients::{Permission, ServiceError};

use crate::on_both_stores;
use crate::support::TestApp;

on_both_stores!(
    the_core_permissions_are_in_the_catalogue_after_build,
    registering_module_permissions_is_idempotent_and_reaches_admin,
    a_malformed_or_misattributed_permission_is_rejected_with_its_field_path,
);

fn blog(name: &str) -> Permission {
    Permission {
        name: name.to_owned(),
        description: format!("{name} (blog)"),
        module: "blog".to_owned(),
    }
}

async fn the_core_permissions_are_in_the_catalogue_after_build(app: &TestApp) -> anyhow::Result<()> {
    let catalogue = app.client().list_permissions().await?;
    let names: Vec<&str> = catalogue.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "platform.audit.read",
            "platform.role.manage",
            "platform.user.delete",
            "platform.user.read",
            "platform.user.update"
        ]
    );
    assert!(
        catalogue
            .iter()
            .all(|p| p.module == "platform" && !p.description.is_empty())
    );
    Ok(())
}

async fn registering_module_permissions_is_idempotent_and_reaches_admin(app: &TestApp) -> anyhow::Result<()> {
    let admin = app.admin().await?;
    let client = app.client();
    let manifest = vec![blog("blog.post.create"), blog("blog.post.read")];
    assert_eq!(client.register_permissions(manifest.clone()).await?, 2);
    assert_eq!(
        client.register_permissions(manifest).await?,
        0,
        "a second registration adds nothing"
    );
    assert_eq!(client.list_permissions().await?.len(), 7);
    assert!(
        client.has_permission(admin, "blog.post.create").await?,
        "admin holds every permission, newly registered ones included"
    );
    Ok(())
}

async fn a_malformed_or_misattributed_permission_is_rejected_with_its_field_path(
    app: &TestApp,
) -> anyhow::Result<()> {
    let client = app.client();
    let mut misattributed = blog("shop.order.read");
    misattributed.module = "blog".to_owned();
    let error = client
        .register_permissions(vec![blog("blog.post.read"), misattributed, blog("Blog.Post")])
        .await
        .expect_err("rejected");
    let ServiceError::InvalidArgument { violations, .. } = error else {
        anyhow::bail!("expected InvalidArgument, got {error:?}");
    };
    let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["permissions[1].module", "permissions[2].name"]);
    assert_eq!(
        client.list_permissions().await?.len(),
        5,
        "nothing was registered"
    );
    Ok(())
}
