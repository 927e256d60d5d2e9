//! Module routes: each route a module's manifest declares is served through the gateway to the
//! module host, for exactly its method and path; a read's permission is checked at the edge, a
//! change needs a token there and its permission is the host's to check and audit.

use std::path::Path;

use keel_gateway::{GatewayConfig, RouteConfig};
use keel_registry::StaticRegistry;
use uuid::Uuid;

use crate::doubles::valid_claims;
use crate::support::{Echo, TestGateway, Upstream, client, problem};

/// The reference module's manifest, as `modules/blog/module.yaml` will hold it.
const BLOG: &str = "
name: blog
version: 0.1.0
dependencies: ['core >= 0.1.0']
permissions: [blog.post.create, blog.post.read, blog.post.update, blog.post.delete]
routes:
  - {method: POST, path: /api/v1/blog/posts, permission: blog.post.create}
  - {method: GET, path: /api/v1/blog/posts}
  - {method: GET, path: /api/v1/blog/posts/:id, permission: blog.post.read}
  - {method: PUT, path: /api/v1/blog/posts/:id, permission: blog.post.update}
  - {method: DELETE, path: /api/v1/blog/posts/:id, permission: blog.post.delete}
";

/// Writes `text` as `<dir>/<name>/module.yaml`.
fn write_module(dir: &Path, name: &str, text: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join(name))?;
    std::fs::write(dir.join(name).join("module.yaml"), text)?;
    Ok(())
}

/// A gateway routing the modules under `modules_dir` to an echo upstream registered as the
/// module host, `platform`.
async fn module_gateway(modules_dir: &Path) -> anyhow::Result<(TestGateway, Upstream)> {
    let host = Upstream::start("platform-1").await?;
    let mut config = GatewayConfig::new(vec![RouteConfig::new("/api/v1/users", "identity")]);
    config.modules.manifests = vec![modules_dir.to_owned()];
    let gateway = TestGateway::start_with(config, StaticRegistry::new()).await?;
    gateway.add("platform", &host).await?;
    Ok((gateway, host))
}

/// A gateway routing the blog module from a manifest directory (kept alive by the returned
/// guard) to an echo module host.
async fn blog_gateway() -> anyhow::Result<(tempfile::TempDir, TestGateway, Upstream)> {
    let modules = tempfile::tempdir()?;
    write_module(modules.path(), "blog", BLOG)?;
    let (gateway, host) = module_gateway(modules.path()).await?;
    Ok((modules, gateway, host))
}

#[tokio::test]
async fn manifest_routes_reach_the_module_host_with_reads_checked_at_the_edge() -> anyhow::Result<()> {
    let (_modules, gateway, host) = blog_gateway().await?;

    // A route without a permission: anyone, path and query unchanged.
    let response = client()
        .get(gateway.url("/api/v1/blog/posts?limit=5"))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let echo: Echo = response.json().await?;
    assert_eq!(
        (echo.instance.as_str(), echo.path.as_str()),
        ("platform-1", "/api/v1/blog/posts")
    );
    assert_eq!(echo.query.as_deref(), Some("limit=5"));

    // A route with one: no token is 401, a token without it 403, neither reaching the host.
    let reader = valid_claims();
    let token = gateway.key.sign(&reader);
    let response = client().get(gateway.url("/api/v1/blog/posts/42")).send().await?;
    assert_eq!(response.status(), 401);
    let response = client()
        .get(gateway.url("/api/v1/blog/posts/42"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(response.status(), 403);
    assert_eq!(
        problem(response).await?["detail"],
        "this action requires the permission blog.post.read"
    );
    assert_eq!(host.hits(), 1, "refused requests never reached the module host");

    // Granted: the host sees the request as the token's subject.
    gateway
        .authz
        .grant(Uuid::parse_str(&reader.sub)?, "blog.post.read");
    let response = client()
        .get(gateway.url("/api/v1/blog/posts/42"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let echo: Echo = response.json().await?;
    assert_eq!(echo.path, "/api/v1/blog/posts/42");
    assert_eq!(echo.header("x-user-id"), Some(reader.sub.as_str()));

    // A change needs a token here; its permission is the module host's to check (and a denied
    // attempt its to audit), so the request reaches the host.
    let response = client()
        .put(gateway.url("/api/v1/blog/posts/42"))
        .body("{}")
        .send()
        .await?;
    assert_eq!(response.status(), 401);
    let response = client()
        .put(gateway.url("/api/v1/blog/posts/42"))
        .bearer_auth(&token)
        .body("{}")
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(host.hits(), 3);
    Ok(())
}

#[tokio::test]
async fn undeclared_methods_are_405_with_allow_and_undeclared_paths_404() -> anyhow::Result<()> {
    let (_modules, gateway, host) = blog_gateway().await?;

    let response = client()
        .patch(gateway.url("/api/v1/blog/posts/42"))
        .send()
        .await?;
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "DELETE, GET, HEAD, PUT");
    let body = problem(response).await?;
    assert_eq!(body["type"], "urn:keel:problem:method-not-allowed");
    assert_eq!(body["detail"], "this path answers DELETE, GET, HEAD, PUT");

    // HEAD goes with GET.
    let response = client().head(gateway.url("/api/v1/blog/posts")).send().await?;
    assert_eq!(response.status(), 200);
    // Nothing below a module route, nor outside the declared paths.
    for path in [
        "/api/v1/blog/posts/42/comments",
        "/api/v1/blog/posts/",
        "/api/v1/blog",
    ] {
        let response = client().get(gateway.url(path)).send().await?;
        assert_eq!(response.status(), 404, "{path}");
    }
    assert_eq!(host.hits(), 1, "only the HEAD reached the module host");
    Ok(())
}

#[tokio::test]
async fn a_reload_reads_the_manifests_again_and_a_broken_one_changes_nothing() -> anyhow::Result<()> {
    let (modules, gateway, _host) = blog_gateway().await?;
    let mut config = GatewayConfig::new(vec![RouteConfig::new("/api/v1/users", "identity")]);
    config.modules.manifests = vec![modules.path().to_owned()];

    // A second module appears: its routes are served after the reload.
    write_module(
        modules.path(),
        "news",
        "name: news\nversion: 0.1.0\ndependencies: ['blog ^0.1']\nroutes:\n  - {method: GET, path: /api/v1/news/items, permission: blog.post.read}\n",
    )?;
    let response = client().get(gateway.url("/api/v1/news/items")).send().await?;
    assert_eq!(response.status(), 404, "not before the reload");
    gateway.gateway.reload(&config).await?;
    let response = client().get(gateway.url("/api/v1/news/items")).send().await?;
    assert_eq!(response.status(), 401, "its permission applies");

    // A manifest that breaks the set is refused whole, naming the module; the routes stay.
    write_module(
        modules.path(),
        "news",
        "name: news\nversion: 0.1.0\ndependencies: ['blog ^2']\n",
    )?;
    let error = gateway.gateway.reload(&config).await.err().map(|e| e.to_string());
    assert!(
        error
            .as_deref()
            .unwrap_or_default()
            .contains("gateway.modules: the modules cannot run together: module `news` needs `blog ^2`, but blog is 0.1.0"),
        "{error:?}"
    );
    let response = client().get(gateway.url("/api/v1/news/items")).send().await?;
    assert_eq!(response.status(), 401, "the routes are as they were");
    Ok(())
}

#[test]
fn the_manifest_paths_come_from_the_gateway_section() -> anyhow::Result<()> {
    let modules = tempfile::tempdir()?;
    write_module(modules.path(), "blog", BLOG)?;
    let listed = format!("[\"{}\"]", modules.path().display());
    let config = GatewayConfig::from_config(&keel_testkit::test_config(&[(
        "KEEL_GATEWAY__MODULES__MANIFESTS",
        &listed,
    )]))?;
    assert_eq!(config.modules.host, "platform");
    assert_eq!(config.modules.manifests, [modules.path().to_owned()]);

    let missing = format!("[\"{}\"]", modules.path().join("absent").display());
    let error = GatewayConfig::from_config(&keel_testkit::test_config(&[(
        "KEEL_GATEWAY__MODULES__MANIFESTS",
        &missing,
    )]))
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        error.contains("gateway.modules: cannot read module manifest") && error.contains("absent"),
        "{error}"
    );
    Ok(())
}

#[tokio::test]
async fn modules_given_in_code_survive_a_reload_from_the_files() -> anyhow::Result<()> {
    let host = Upstream::start("platform-1").await?;
    let blog = keel_module::Manifest::from_yaml(BLOG, "blog")?;
    let config = GatewayConfig::new(vec![RouteConfig::new("/api/v1/users", "identity")]).with_module(blog);
    let gateway = TestGateway::start_with(config, StaticRegistry::new()).await?;
    gateway.add("platform", &host).await?;
    assert_eq!(
        client()
            .get(gateway.url("/api/v1/blog/posts"))
            .send()
            .await?
            .status(),
        200
    );

    // What a SIGHUP reads: the files, which know nothing of the modules registered in code.
    let from_files = GatewayConfig::new(vec![RouteConfig::new("/api/v1/users", "identity")]);
    gateway.gateway.reload(&from_files).await?;
    assert_eq!(
        client()
            .get(gateway.url("/api/v1/blog/posts"))
            .send()
            .await?
            .status(),
        200,
        "the code's module is still routed"
    );
    Ok(())
}
