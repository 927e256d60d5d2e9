//! Sending the service's e-mails: the [`Notifier`] port and its development implementation.
//!
//! The identity service only decides *what* to send (a verification or reset link); *how* it
//! travels is a port, so SMTP (infrastructure issue) plugs in without touching the flows.
//! [`FileOutboxNotifier`] writes each message as an RFC 5322 `.eml` file, which a developer opens
//! in a mail client or reads with `cat` (DESIGN §9).

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use lettre::message::header::ContentTransferEncoding;
use lettre::message::{Body, Mailbox};

use crate::domain::Email;

/// One e-mail to one recipient, plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailMessage {
    /// The recipient.
    pub to: Email,
    /// The subject line.
    pub subject: String,
    /// The body, plain text.
    pub text: String,
}

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The message could not be formatted (an invalid header value).
    #[error("the message could not be built: {0}")]
    Build(String),
    /// The transport failed (disk, network).
    #[error("the message could not be delivered: {0}")]
    Transport(String),
}

/// Delivers e-mails.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends `message`; returns once the transport has accepted it.
    async fn send(&self, message: &EmailMessage) -> Result<(), NotifyError>;
}

/// Writes each message as an `.eml` file into a directory (created when missing). File names
/// start with the UTC time of writing (`20261103T101501.123456Z-<uuid>.eml`), so they sort by
/// time; a file appears whole (written under a temporary name, then renamed).
#[derive(Debug, Clone)]
pub struct FileOutboxNotifier {
    directory: PathBuf,
    from: Mailbox,
}

impl FileOutboxNotifier {
    /// A notifier writing into `directory`, with `from` as the sender.
    pub fn new(directory: impl Into<PathBuf>, from: Mailbox) -> Self {
        Self {
            directory: directory.into(),
            from,
        }
    }

    /// The directory written to.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    fn format(&self, message: &EmailMessage) -> Result<Vec<u8>, NotifyError> {
        let to: Mailbox = message
            .to
            .as_str()
            .parse()
            .map_err(|e: lettre::address::AddressError| NotifyError::Build(e.to_string()))?;
        let built = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone())
            .date_now()
            .body(body(&message.text))
            .map_err(|e| NotifyError::Build(e.to_string()))?;
        Ok(built.formatted())
    }
}

/// Longest line RFC 5322 allows, without its CRLF.
const MAX_LINE: usize = 998;

/// The body as `7bit` when it is ASCII with lines RFC 5322 allows, so a link (longer than the
/// 76 characters after which lettre would pick quoted-printable) stays one intact line a person
/// or a test can copy out of the file. Anything else is left to lettre's choice of encoding.
fn body(text: &str) -> Body {
    let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
    let plain = crlf.is_ascii()
        && crlf
            .split("\r\n")
            .all(|line| line.len() <= MAX_LINE && !line.contains(['\0', '\r']));
    match plain {
        true => Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit),
        false => Body::new(text.to_owned()),
    }
}

#[async_trait]
impl Notifier for FileOutboxNotifier {
    async fn send(&self, message: &EmailMessage) -> Result<(), NotifyError> {
        let bytes = self.format(message)?;
        let stem = format!(
            "{}-{}",
            Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            uuid::Uuid::now_v7().simple()
        );
        let directory = self.directory.clone();
        let transport = |e: std::io::Error| NotifyError::Transport(e.to_string());
        tokio::fs::create_dir_all(&directory).await.map_err(transport)?;
        let partial = directory.join(format!(".{stem}.partial"));
        tokio::fs::write(&partial, bytes).await.map_err(transport)?;
        tokio::fs::rename(&partial, directory.join(format!("{stem}.eml")))
            .await
            .map_err(transport)?;
        Ok(())
    }
}

/// The message asking a new user to confirm their address.
pub(crate) fn verification_message(to: &Email, link: &str, ttl: Duration) -> EmailMessage {
    EmailMessage {
        to: to.clone(),
        subject: "Confirm your e-mail address".to_owned(),
        text: format!(
            "Welcome!\r\n\r\nPlease confirm your e-mail address by opening this link:\r\n\r\n{link}\r\n\r\n\
             The link works once and expires in {}. If you did not register, ignore this \
             message.\r\n",
            span(ttl)
        ),
    }
}

/// The message with a password reset link.
pub(crate) fn reset_message(to: &Email, link: &str, ttl: Duration) -> EmailMessage {
    EmailMessage {
        to: to.clone(),
        subject: "Reset your password".to_owned(),
        text: format!(
            "Someone asked to reset the password of this account.\r\n\r\nTo choose a new password, \
             open this link:\r\n\r\n{link}\r\n\r\nThe link works once and expires in {}. If you \
             did not ask, ignore this message: your password stays as it is.\r\n",
            span(ttl)
        ),
    }
}

/// A lifetime in words: whole hours when it is some, else minutes (rounded up).
fn span(ttl: Duration) -> String {
    let secs = ttl.as_secs();
    match (secs / 3600, secs % 3600) {
        (1, 0) => "1 hour".to_owned(),
        (hours, 0) if hours > 1 => format!("{hours} hours"),
        _ => match secs.div_ceil(60) {
            1 => "1 minute".to_owned(),
            minutes => format!("{minutes} minutes"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_message_becomes_one_rfc5322_file_with_the_link_intact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outbox = dir.path().join("outbox");
        let from: Mailbox = "Keel <no-reply@keel.invalid>".parse().expect("mailbox");
        let notifier = FileOutboxNotifier::new(&outbox, from);
        let to = Email::parse("ada@example.com").expect("email");
        let link = format!("http://127.0.0.1:8080/verify-email?token={}", "A".repeat(43));
        notifier
            .send(&verification_message(&to, &link, Duration::from_secs(86_400)))
            .await
            .expect("first");
        notifier
            .send(&reset_message(&to, &link, Duration::from_secs(1_800)))
            .await
            .expect("second");
        let mut names: Vec<String> = std::fs::read_dir(&outbox)
            .expect("outbox")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| n.ends_with(".eml")));
        let first = std::fs::read_to_string(outbox.join(&names[0])).expect("read");
        assert!(first.contains("To: ada@example.com"), "{first}");
        assert!(first.contains("From: Keel <no-reply@keel.invalid>"));
        assert!(first.contains("Subject: Confirm your e-mail address"));
        assert!(first.contains("Date: "));
        assert!(
            first.contains(&link),
            "the link is not wrapped or encoded: {first}"
        );
        let second = std::fs::read_to_string(outbox.join(&names[1])).expect("read");
        assert!(second.contains("Subject: Reset your password"));
        assert!(first.contains("expires in 24 hours") && second.contains("expires in 30 minutes"));
    }

    #[test]
    fn lifetimes_read_as_hours_or_minutes() {
        assert_eq!(span(Duration::from_secs(3600)), "1 hour");
        assert_eq!(span(Duration::from_secs(7200)), "2 hours");
        assert_eq!(span(Duration::from_secs(5400)), "90 minutes");
        assert_eq!(span(Duration::from_secs(30)), "1 minute");
    }

    #[test]
    fn bodies_that_7bit_cannot_carry_are_encoded_by_lettre() {
        assert_eq!(body("plain\nascii").encoding(), ContentTransferEncoding::SevenBit);
        assert_eq!(body("plain\nascii").as_ref(), b"plain\r\nascii");
        assert_ne!(body("Grüße").encoding(), ContentTransferEncoding::SevenBit);
        assert_ne!(
            body(&"x".repeat(1200)).encoding(),
            ContentTransferEncoding::SevenBit
        );
    }
}
