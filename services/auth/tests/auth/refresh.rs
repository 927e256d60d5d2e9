//! Refresh-token rotation, reuse detection, the grace window and concurrent use.

use http::StatusCode;

use crate::on_both_stores;
use crate::support::{Store, TestApp, claims, tokens};

on_both_stores!(
    refresh_rotates_into_a_new_pair_of_the_same_session,
    a_reused_refresh_token_ends_its_session_and_is_audited,
    a_retry_within_the_grace_window_gets_a_fresh_pair_of_the_same_session,
    the_successor_a_grace_retry_retired_is_a_replay_even_within_the_window,
    two_concurrent_uses_of_one_token_give_one_success_and_one_reuse,
    refresh_tokens_are_stored_only_as_their_sha256,
);

async fn refresh_rotates_into_a_new_pair_of_the_same_session(store: &Store) -> anyhow::Result<()> {
    let app = TestApp::spawn(store, &[]).await?;
    let user_id = app.peers.identity.add("ada@example.com", "pw", true);
    let first = app.login_ok("ada@example.com", "pw").await?;

    let second = tokens(app.refresh(&first.refresh).await?)?;
    let third = tokens(app.refresh(&second.refresh).await?)?;

    assert_ne!(second.refresh, first.refresh);
    assert_ne!(third.refresh, second.refresh);
    let principal = app.verifier().await?.verify(&third.access).await?;
    assert_eq!(principal.user_id, user_id);
    assert_eq!(claims(&third.access)?.sid, claims(&first.access)?.sid);
    assert_eq!(app.count("sessions").await?, 1);
    assert_eq!(app.count("refresh_tokens").await?, 3);
    Ok(())
}

async fn a_reused_refresh_token_ends_its_session_and_is_audited(store: &Store) -> anyhow::Result<()> {
    let app = TestApp::spawn(store, &[]).await?;
    app.peers.identity.add("ada@example.com", "pw", true);
    let first = app.login_ok("ada@example.com", "pw").await?;
    let second = tokens(app.refresh(&first.refresh).await?)?;

    let replay = app.refresh(&first.refresh).await?;
    let newest = app.refresh(&second.refresh).await?;

    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert_eq!(replay.body["type"], "urn:keel:problem:unauthenticated");
    assert_eq!(
        newest.status,
        StatusCode::UNAUTHORIZED,
        "the whole family is revoked"
    );
    let records = app.outbox_audit().await?;
    let reuse: Vec<_> = records
        .iter()
        .filter(|r| r.action == "auth.refresh.reuse_detected")
        .collect();
    assert_eq!(reuse.len(), 1);
    assert_eq!(
        reuse[0].target_id.as_deref(),
        Some(claims(&first.access)?.sid.as_str())
    );
    Ok(())
}

async fn a_retry_within_the_grace_window_gets_a_fresh_pair_of_the_same_session(
    store: &Store,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(store, &[("KEEL_AUTH__REFRESH_REUSE_GRACE_SECS", "30")]).await?;
    app.peers.identity.add("ada@example.com", "pw", true);
    let first = app.login_ok("ada@example.com", "pw").await?;
    let _lost = tokens(app.refresh(&first.refresh).await?)?;

    let retried = tokens(app.refresh(&first.refresh).await?)?;
    let next = tokens(app.refresh(&retried.refresh).await?)?;

    assert_eq!(claims(&retried.access)?.sid, claims(&first.access)?.sid);
    assert_eq!(claims(&next.access)?.sid, claims(&first.access)?.sid);
    assert!(
        !app.audit_actions()
            .await?
            .iter()
            .any(|a| a == "auth.refresh.reuse_detected")
    );

    // Outside the window the same retry is a replay.
    app.peers.clock.advance(chrono::Duration::seconds(31));
    assert_eq!(
        app.refresh(&first.refresh).await?.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.refresh(&next.refresh).await?.status, StatusCode::UNAUTHORIZED);
    Ok(())
}

async fn the_successor_a_grace_retry_retired_is_a_replay_even_within_the_window(
    store: &Store,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(store, &[("KEEL_AUTH__REFRESH_REUSE_GRACE_SECS", "30")]).await?;
    app.peers.identity.add("ada@example.com", "pw", true);
    let first = app.login_ok("ada@example.com", "pw").await?;
    // The client never saw this answer (an attacker who captured it did)...
    let intercepted = tokens(app.refresh(&first.refresh).await?)?;
    // ...so the client retries with its old token, within the window, and gets a new pair.
    let retried = tokens(app.refresh(&first.refresh).await?)?;

    // The intercepted token was retired by that retry: using it is a replay at once, which ends
    // the session (the client's new pair with it), not a retry that would rotate the client out.
    assert_eq!(
        app.refresh(&intercepted.refresh).await?.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        app.audit_actions()
            .await?
            .iter()
            .any(|a| a == "auth.refresh.reuse_detected")
    );
    assert_eq!(
        app.refresh(&retried.refresh).await?.status,
        StatusCode::UNAUTHORIZED,
        "the session is over"
    );
    Ok(())
}

async fn two_concurrent_uses_of_one_token_give_one_success_and_one_reuse(
    store: &Store,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(store, &[]).await?;
    app.peers.identity.add("ada@example.com", "pw", true);
    let first = app.login_ok("ada@example.com", "pw").await?;

    let (a, b) = tokio::join!(app.refresh(&first.refresh), app.refresh(&first.refresh));
    let (a, b) = (a?, b?);

    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::UNAUTHORIZED]);
    let winner = tokens(if a.status == StatusCode::OK { a } else { b })?;
    assert_eq!(
        app.refresh(&winner.refresh).await?.status,
        StatusCode::UNAUTHORIZED,
        "the loser counted as reuse, which ended the session"
    );
    assert!(
        app.audit_actions()
            .await?
            .iter()
            .any(|a| a == "auth.refresh.reuse_detected")
    );
    Ok(())
}

#[tokio::test]
async fn an_expired_refresh_token_is_refused_without_ending_anything_else() -> anyhow::Result<()> {
    let store = Store::sqlite()?;
    let app = TestApp::spawn(&store, &[]).await?;
    app.peers.identity.add("ada@example.com", "pw", true);
    let first = app.login_ok("ada@example.com", "pw").await?;

    app.peers
        .clock
        .advance(chrono::Duration::days(7) + chrono::Duration::seconds(1));
    let reply = app.refresh(&first.refresh).await?;

    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(
        !app.audit_actions()
            .await?
            .iter()
            .any(|a| a == "auth.refresh.reuse_detected")
    );
    Ok(())
}

#[tokio::test]
async fn a_rotated_token_replayed_after_its_own_expiry_still_ends_its_live_session() -> anyhow::Result<()> {
    let store = Store::sqlite()?;
    let app = TestApp::spawn(&store, &[]).await?;
    app.peers.identity.add("ada@example.com", "pw", true);
    let first = app.login_ok("ada@example.com", "pw").await?;
    // Six days on the client rotates: the session lives on, the first token is used.
    app.peers.clock.advance(chrono::Duration::days(6));
    let second = tokens(app.refresh(&first.refresh).await?)?;
    // Two days later someone presents the first token, past its own seven days.
    app.peers.clock.advance(chrono::Duration::days(2));
    assert_eq!(
        app.refresh(&first.refresh).await?.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        app.audit_actions()
            .await?
            .iter()
            .any(|a| a == "auth.refresh.reuse_detected"),
        "a used token coming back is a theft signal, expired or not"
    );
    assert_eq!(
        app.refresh(&second.refresh).await?.status,
        StatusCode::UNAUTHORIZED,
        "the session it belonged to is over"
    );
    Ok(())
}

#[tokio::test]
async fn a_grace_retry_that_arrives_after_its_tokens_expiry_is_refused_without_ending_the_session()
-> anyhow::Result<()> {
    let store = Store::sqlite()?;
    let app = TestApp::spawn(&store, &[("KEEL_AUTH__REFRESH_REUSE_GRACE_SECS", "30")]).await?;
    app.peers.identity.add("ada@example.com", "pw", true);
    let first = app.login_ok("ada@example.com", "pw").await?;
    // Rotated two seconds before its own expiry; the client never saw the answer...
    app.peers
        .clock
        .advance(chrono::Duration::days(7) - chrono::Duration::seconds(2));
    let rotated = tokens(app.refresh(&first.refresh).await?)?;
    // ...and retries a few seconds later, after the first token expired, within the window.
    app.peers.clock.advance(chrono::Duration::seconds(3));
    assert_eq!(
        app.refresh(&first.refresh).await?.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        !app.audit_actions()
            .await?
            .iter()
            .any(|a| a == "auth.refresh.reuse_detected"),
        "a client's retry is not a theft signal"
    );
    assert_eq!(
        app.refresh(&rotated.refresh).await?.status,
        StatusCode::OK,
        "the session lives on"
    );
    Ok(())
}

#[tokio::test]
async fn an_unknown_refresh_token_is_401() -> anyhow::Result<()> {
    let store = Store::sqlite()?;
    let app = TestApp::spawn(&store, &[]).await?;

    let made_up = app.refresh("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await?;
    let not_even_base64 = app.refresh("not a token!").await?;

    assert_eq!(made_up.status, StatusCode::UNAUTHORIZED);
    assert_eq!(not_even_base64.status, StatusCode::UNAUTHORIZED);
    Ok(())
}

/// Hex SHA-256 of `token`, as a database reader would have to guess it.
fn sha256_hex(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

async fn refresh_tokens_are_stored_only_as_their_sha256(store: &Store) -> anyhow::Result<()> {
    let app = TestApp::spawn(store, &[]).await?;
    app.peers.identity.add("ada@example.com", "pw", true);
    let first = app.login_ok("ada@example.com", "pw").await?;
    let second = tokens(app.refresh(&first.refresh).await?)?;

    let stored = app.stored_refresh_hashes().await?;
    let mut expected = vec![sha256_hex(&first.refresh), sha256_hex(&second.refresh)];
    expected.sort();
    assert_eq!(stored, expected, "one row per token, keyed by its hash");
    for token in [&first.refresh, &second.refresh] {
        assert!(
            stored.iter().all(|hash| !hash.contains(token.as_str())),
            "no token is stored as issued"
        );
    }
    Ok(())
}
