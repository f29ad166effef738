//! Outgoing mail: invitation links, over SMTP when `CLARI_MCP_SMTP_URL` is set.
//!
//! Sending never blocks the admin's request on the mail server for long: a failure is reported
//! to the admin in words (the link is shown to them anyway) and logged without the link.

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

/// How long one delivery may take (connect, TLS, dialogue).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks an SMTP URL as lettre reads it (`smtp://`, `smtps://`, `?tls=required|opportunistic`).
pub fn check_smtp_url(url: &str) -> Result<(), String> {
    AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map(|_| ())
        .map_err(|e| {
            format!("not an SMTP URL such as smtp://mail.example.com:587?tls=required ({e})")
        })
}

/// Checks a sender such as `clari-mcp <noreply@example.com>`.
pub fn check_sender(from: &str) -> Result<(), String> {
    from.parse::<Mailbox>()
        .map(|_| ())
        .map_err(|e| format!("'{from}' is not a mailbox such as Name <user@example.com> ({e})"))
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the message could not be built: {0}")]
    Build(String),
    #[error("the mail server refused or could not be reached: {0}")]
    Send(String),
    #[error("the mail server did not answer within {0:?}")]
    Timeout(Duration),
}

/// Sends mail through the configured server; `None` when no server is configured.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from).finish()
    }
}

impl Mailer {
    pub fn from_config(url: Option<&SecretString>, from: &str) -> Result<Option<Self>, String> {
        let Some(url) = url else {
            return Ok(None);
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
            .map_err(|e| e.to_string())?
            .timeout(Some(SEND_TIMEOUT))
            .build();
        let from = from.parse::<Mailbox>().map_err(|e| e.to_string())?;
        Ok(Some(Self { transport, from }))
    }

    /// Sends one plain-text message.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), MailError> {
        let to: Mailbox = to.parse().map_err(|e| MailError::Build(format!("{e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| MailError::Build(e.to_string()))?;
        match tokio::time::timeout(SEND_TIMEOUT, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(MailError::Send(e.to_string())),
            Err(_) => Err(MailError::Timeout(SEND_TIMEOUT)),
        }
    }
}

/// The invitation message: who invites, to what, the link and when it expires.
pub fn invitation_text(
    org_name: &str,
    org_slug: &str,
    inviter: &str,
    role: &str,
    link: &str,
    expires: &str,
) -> (String, String) {
    let subject = format!("You are invited to {org_name} on clari-mcp");
    let body = format!(
        "{inviter} invited you to join {org_name} ({org_slug}) on clari-mcp as {role}.\n\n\
         Accept the invitation here:\n{link}\n\n\
         The link works once and expires on {expires}. You will sign in with your own account, \
         or create one with a password only you know. If you did not expect this, ignore this \
         message: nothing happens until the link is used.\n"
    );
    (subject, body)
}
