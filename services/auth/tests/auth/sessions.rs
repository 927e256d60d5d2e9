//! Sessions: one per login, listed and ended by their user, all ended by an admin, by logout and
//! by user events.

use std::sync::PoisonError;
use std::time::Duration;

use http::{Method, StatusCode};
use keel_events::{Event, EventBus as _, topics};
use serde_json::json;

use crate::on_both_stores;
use crate::support::{Store, TestApp, claims};

on_both_stores!(
    two_logins_are_two_sessions_and_ending_one_leaves_the_other,
    logout_ends_the_session_and_is_audited,
    an_admin_ends_every_session_of_a_user,
    a_login_overtaken_by_the_end_of_all_sessions_keeps_no_session,
);

async fn two_logins_are_two_sessions_and_ending_one_leaves_the_other(store: &Store) -> anyhow::Result<()> {
    let app = TestApp::spawn(store, &[]).await?;
    app.peers.identity.add("ada@example.com", "pw", true);
    let laptop = app.login_ok("ada@example.com", "pw").await?;
    let phone = app.login_ok("ada@example.com", "pw").await?;
    let laptop_sid = claims(&laptop.access)?.sid;
    let phone_sid = claims(&phone.access)?.sid;

    let listed = app
        .send(Method::GET, "/api/v1/auth/sessions", None, Some(&phone.access))
        .await?;
    assert_eq!(listed.status, StatusCode::OK);
    let items = listed.body["items"].as_array().cloned().unwrap_or_default();
    let ids: Vec<_> = items
        .iter()
        .map(|s| s["id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(ids, [phone_sid.as_str(), laptop_sid.as_str()], "newest first");
    assert_eq!(items[0]["current"], true);
    assert_eq!(items[1]["current"], false);

    let path = format!("/api/v1/auth/sessions/{laptop_sid}");
    let ended = app.send(Method::DELETE, &path, None, Some(&phone.access)).await?;
    assert_eq!(ended.status, StatusCode::NO_CONTENT);

    assert_eq!(
        app.refresh(&laptop.refresh).await?.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.refresh(&phone.refresh).await?.status, StatusCode::OK);
    let again = app.send(Method::DELETE, &path, None, Some(&phone.access)).await?;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let revoked: Vec<_> = app
        .outbox_audit()
        .await?
        .into_iter()
        .filter(|r| r.action == "auth.session.revoked")
        .collect();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].target_id.as_deref(), Some(laptop_sid.as_str()));
    Ok(())
}

async fn logout_ends_the_session_and_is_audited(store: &Store) -> anyhow::Result<()> {
    let app = TestApp::spawn(store, &[]).await?;
    let ada = app.peers.identity.add("ada@example.com", "pw", true);
    app.peers.identity.add("bob@example.com", "pw", true);
    let session = app.login_ok("ada@example.com", "pw").await?;
    let bob = app.login_ok("bob@example.com", "pw").await?;
    let body = json!({"refresh_token": session.refresh});

    let anonymous = app
        .send(Method::POST, "/api/v1/auth/logout", Some(body.clone()), None)
        .await?;
    let someone_else = app
        .send(
            Method::POST,
            "/api/v1/auth/logout",
            Some(body.clone()),
            Some(&bob.access),
        )
        .await?;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(someone_else.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.refresh(&session.refresh).await?.status,
        StatusCode::OK,
        "still live"
    );

    // The refresh above rotated the token; logging out with the rotated one still ends the session.
    let own = app
        .send(
            Method::POST,
            "/api/v1/auth/logout",
            Some(body),
            Some(&session.access),
        )
        .await?;
    assert_eq!(own.status, StatusCode::NO_CONTENT);
    let listed = app
        .send(Method::GET, "/api/v1/auth/sessions", None, Some(&session.access))
        .await?;
    assert_eq!(listed.body["items"], json!([]));
    let logouts: Vec<_> = app
        .outbox_audit()
        .await?
        .into_iter()
        .filter(|r| r.action == "auth.logout.succeeded")
        .collect();
    assert_eq!(logouts.len(), 1);
    assert_eq!(logouts[0].actor_id, Some(ada));
    Ok(())
}

async fn an_admin_ends_every_session_of_a_user(store: &Store) -> anyhow::Result<()> {
    let app = TestApp::spawn(store, &[]).await?;
    let ada = app.peers.identity.add("ada@example.com", "pw", true);
    let admin = app.peers.identity.add("admin@example.com", "pw", true);
    let first = app.login_ok("ada@example.com", "pw").await?;
    let second = app.login_ok("ada@example.com", "pw").await?;
    let admin_tokens = app.login_ok("admin@example.com", "pw").await?;
    let path = format!("/api/v1/users/{ada}/sessions");

    let refused = app
        .send(Method::DELETE, &path, None, Some(&admin_tokens.access))
        .await?;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(app.refresh(&first.refresh).await?.status, StatusCode::OK);

    app.peers.authz.grant(admin, "platform.user.update");
    let ended = app
        .send(Method::DELETE, &path, None, Some(&admin_tokens.access))
        .await?;
    assert_eq!(ended.status, StatusCode::NO_CONTENT);

    assert_eq!(
        app.refresh(&second.refresh).await?.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&admin_tokens.refresh).await?.status,
        StatusCode::OK,
        "only ada's"
    );
    let record = app
        .outbox_audit()
        .await?
        .into_iter()
        .find(|r| r.action == "auth.session.revoked")
        .ok_or_else(|| anyhow::anyhow!("no auth.session.revoked record"))?;
    assert_eq!(record.actor_id, Some(admin));
    assert_eq!(record.target_id, Some(ada.to_string()));
    assert_eq!(record.metadata["sessions"], 2);
    Ok(())
}

/// The race a password change or reset runs: identity has checked the old password of a login,
/// then all of the user's sessions are ended, then the login writes its session. That session
/// must not survive, or the old password would keep a session the change was meant to end.
async fn a_login_overtaken_by_the_end_of_all_sessions_keeps_no_session(store: &Store) -> anyhow::Result<()> {
    let app = TestApp::spawn(store, &[]).await?;
    let ada = app.peers.identity.add("ada@example.com", "pw", true);
    let admin = app.peers.identity.add("admin@example.com", "pw", true);
    app.peers.authz.grant(admin, "platform.user.update");
    let admin_tokens = app.login_ok("admin@example.com", "pw").await?;
    let path = format!("/api/v1/users/{ada}/sessions");

    let (entered, release) = app.peers.identity.hold_next_verification();
    let end_all_meanwhile = async {
        entered.await?;
        let ended = app
            .send(Method::DELETE, &path, None, Some(&admin_tokens.access))
            .await?;
        let _ = release.send(());
        anyhow::Ok(ended.status)
    };
    let (login, ended) = tokio::join!(app.login("ada@example.com", "pw"), end_all_meanwhile);
    assert_eq!(ended?, StatusCode::NO_CONTENT);
    let login = login?;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED, "{:?}", login.body);
    assert_eq!(
        app.count("sessions WHERE revoked_at IS NULL").await?,
        1,
        "only the administrator's session lives: the overtaken login's was ended"
    );
    let revoked = app
        .outbox_audit()
        .await?
        .into_iter()
        .find(|r| r.action == "auth.session.revoked" && r.metadata["reason"] == "ended_during_login")
        .ok_or_else(|| anyhow::anyhow!("the overtaken session's end is not audited"))?;
    assert_eq!(revoked.metadata["user_id"], ada.to_string());

    // A login that starts after the end is not refused.
    let fresh = app.login_ok("ada@example.com", "pw").await?;
    assert_eq!(app.refresh(&fresh.refresh).await?.status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn sessions_need_a_valid_access_token() -> anyhow::Result<()> {
    let store = Store::sqlite()?;
    let app = TestApp::spawn(&store, &[]).await?;

    let none = app.send(Method::GET, "/api/v1/auth/sessions", None, None).await?;
    let forged = app
        .send(Method::GET, "/api/v1/auth/sessions", None, Some("e30.e30.e30"))
        .await?;

    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers["content-type"], "application/problem+json");
    Ok(())
}

#[tokio::test]
async fn a_user_deleted_or_password_changed_event_ends_the_users_sessions() -> anyhow::Result<()> {
    let store = Store::sqlite()?;
    let app = TestApp::spawn(&store, &[]).await?;
    let ada = app.peers.identity.add("ada@example.com", "pw", true);
    let bob = app.peers.identity.add("bob@example.com", "pw", true);
    let ada_tokens = app.login_ok("ada@example.com", "pw").await?;
    let bob_tokens = app.login_ok("bob@example.com", "pw").await?;
    app.service.start_background(&app.kernel);

    let deleted = json!({"user_id": ada, "email": "ada@example.com"});
    app.peers
        .bus
        .publish(&Event::new(topics::USER_DELETED, "identity", deleted)?)
        .await?;
    app.peers
        .bus
        .publish(&Event::new(
            topics::USER_PASSWORD_CHANGED,
            "identity",
            json!({"user_id": bob}),
        )?)
        .await?;

    for tokens in [&ada_tokens, &bob_tokens] {
        let mut status = StatusCode::OK;
        for _ in 0..50 {
            let listed = app
                .send(Method::GET, "/api/v1/auth/sessions", None, Some(&tokens.access))
                .await?;
            if listed.body["items"] == json!([]) {
                status = app.refresh(&tokens.refresh).await?.status;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // The relay delivered the audit records to the audit service.
    let mut delivered = Vec::new();
    for _ in 0..50 {
        delivered = app
            .peers
            .audit
            .records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|r| r.action.clone())
            .collect();
        if delivered.iter().filter(|a| *a == "auth.session.revoked").count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        delivered.iter().filter(|a| *a == "auth.session.revoked").count(),
        2
    );
    app.kernel.shutdown();
    Ok(())
}
