//! Signing keys: first start, restarts, rotation with overlap, configured keys, concurrent starts.

use keel_authn::AuthnError;
use sea_orm::{ConnectionTrait as _, Statement};

use crate::on_both_stores;
use crate::support::{Peers, Store, TestApp, kid};

/// RFC 8037 appendix A.1's private key, whose RFC 7638 thumbprint is given in A.3.
const RFC8037_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
    MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
    -----END PRIVATE KEY-----\n";
const RFC8037_KID: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";

on_both_stores!(
    rotation_keeps_the_old_key_published_until_its_tokens_expired,
    a_restart_adopts_the_stored_key,
    a_configured_key_signs_and_its_private_half_is_not_stored,
);

async fn rotation_keeps_the_old_key_published_until_its_tokens_expired(store: &Store) -> anyhow::Result<()> {
    let app = TestApp::spawn(store, &[]).await?;
    app.peers.identity.add("ada@example.com", "pw", true);
    let before = app.login_ok("ada@example.com", "pw").await?;
    let old_kid = kid(&before.access)?;

    // 30 days (auth.key_rotation_days) later, the next token is signed by a new key.
    app.peers
        .clock
        .advance(chrono::Duration::days(30) + chrono::Duration::seconds(1));
    let after = app.login_ok("ada@example.com", "pw").await?;
    let new_kid = kid(&after.access)?;
    assert_ne!(new_kid, old_kid);
    assert_eq!(app.published_kids().await?, [new_kid.clone(), old_kid.clone()]);
    let principal = app.verifier().await?.verify(&before.access).await?;
    assert_eq!(principal.token_id, crate::support::claims(&before.access)?.jti);

    // Once every token of the old key has expired (access TTL + leeway + re-read interval), it goes.
    app.peers
        .clock
        .advance(chrono::Duration::seconds(900 + 30 + 60 + 1));
    assert_eq!(app.published_kids().await?, [new_kid]);
    let refused = app.verifier().await?.verify(&before.access).await;
    assert!(matches!(refused, Err(AuthnError::UnknownKey(_))), "{refused:?}");
    Ok(())
}

async fn a_restart_adopts_the_stored_key(store: &Store) -> anyhow::Result<()> {
    let peers = Peers::default();
    peers.identity.add("ada@example.com", "pw", true);
    let first = TestApp::spawn_with(store, &[], peers.clone()).await?;
    let before = first.login_ok("ada@example.com", "pw").await?;
    drop(first);

    let second = TestApp::spawn_with(store, &[], peers).await?;
    let after = second.login_ok("ada@example.com", "pw").await?;

    assert_eq!(kid(&after.access)?, kid(&before.access)?);
    assert_eq!(second.published_kids().await?.len(), 1);
    second.verifier().await?.verify(&before.access).await?;
    Ok(())
}

async fn a_configured_key_signs_and_its_private_half_is_not_stored(store: &Store) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("signing.pem");
    std::fs::write(&file, RFC8037_PEM)?;
    let path = file.display().to_string();
    let peers = Peers::default();
    peers.identity.add("ada@example.com", "pw", true);

    let configured = TestApp::spawn_with(
        store,
        &[("KEEL_AUTH__SIGNING_PRIVATE_KEY_FILE", &path)],
        peers.clone(),
    )
    .await?;
    let tokens = configured.login_ok("ada@example.com", "pw").await?;
    assert_eq!(kid(&tokens.access)?, RFC8037_KID);
    configured.verifier().await?.verify(&tokens.access).await?;
    let db = configured.service.database().connection();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM signing_keys WHERE private_key IS NOT NULL",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no count"))?;
    assert_eq!(row.try_get::<i64>("", "n")?, 0);
    drop(configured);

    // Back to generated keys: a new one signs, the configured one stays published for its tokens.
    let generated = TestApp::spawn_with(store, &[], peers).await?;
    let later = generated.login_ok("ada@example.com", "pw").await?;
    assert_ne!(kid(&later.access)?, RFC8037_KID);
    assert_eq!(
        generated.published_kids().await?,
        [kid(&later.access)?, RFC8037_KID.to_owned()]
    );
    generated.verifier().await?.verify(&tokens.access).await?;
    Ok(())
}

#[tokio::test]
async fn concurrent_first_starts_on_postgresql_install_one_key() -> anyhow::Result<()> {
    // Several replicas on one SQLite file are not a supported deployment; PostgreSQL is where
    // replicas start together.
    let Some(store) = Store::postgres() else {
        return Ok(());
    };
    let outcome = Box::pin(async {
        let peers = Peers::default();
        peers.identity.add("ada@example.com", "pw", true);
        let (a, b, c) = tokio::join!(
            TestApp::spawn_with(&store, &[], peers.clone()),
            TestApp::spawn_with(&store, &[], peers.clone()),
            TestApp::spawn_with(&store, &[], peers.clone()),
        );
        let (a, b, c) = (a?, b?, c?);
        let kids = [
            kid(&a.login_ok("ada@example.com", "pw").await?.access)?,
            kid(&b.login_ok("ada@example.com", "pw").await?.access)?,
            kid(&c.login_ok("ada@example.com", "pw").await?.access)?,
        ];
        assert_eq!(kids[0], kids[1]);
        assert_eq!(kids[1], kids[2]);
        assert_eq!(a.published_kids().await?, [kids[0].clone()]);
        anyhow::Ok(())
    })
    .await;
    store.cleanup().await?;
    outcome
}
