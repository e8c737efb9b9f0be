//! Outgoing mail of the portal (invitations, password resets).
//!
//! With an SMTP server configured, mail goes through `lettre` over TLS. Without one — the
//! embedded default — each message is written as an `.eml` file (mode 0600) into the outbox
//! folder and its path is logged, so that a new installation can complete an invitation or a
//! password reset by opening the file. The log line names the file only: the link inside is a
//! secret.

use std::path::PathBuf;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Where mail goes.
#[derive(Clone)]
pub enum Mailer {
    /// Written to files in this folder.
    Outbox(PathBuf),
    /// Sent over SMTP.
    Smtp {
        /// The transport.
        transport: AsyncSmtpTransport<Tokio1Executor>,
        /// The sender.
        from: Mailbox,
    },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mailer::Outbox(dir) => write!(f, "Mailer::Outbox({})", dir.display()),
            Mailer::Smtp { from, .. } => write!(f, "Mailer::Smtp(from {from})"),
        }
    }
}

impl Mailer {
    /// An SMTP mailer: `url` as `smtps://user@host:465` or `smtp://user@host:587` (STARTTLS);
    /// the password comes separately (a secret).
    ///
    /// # Errors
    /// A malformed URL or sender address.
    pub fn smtp(url: &str, password: Option<String>, from: &str) -> Result<Mailer, String> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("SMTP URL: {e}"))?;
        if let Some(password) = password {
            let user = url::Url::parse(url)
                .map_err(|e| format!("SMTP URL: {e}"))?
                .username()
                .to_owned();
            builder = builder.credentials(Credentials::new(user, password));
        }
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("sender address {from:?}: {e}"))?;
        Ok(Mailer::Smtp {
            transport: builder.build(),
            from,
        })
    }

    /// Sends a plain-text message.
    ///
    /// # Errors
    /// What went wrong, for the log (never the body).
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), String> {
        let to: Mailbox = to.parse().map_err(|e| format!("recipient: {e}"))?;
        match self {
            Mailer::Smtp { transport, from } => {
                let message = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(body.to_owned())
                    .map_err(|e| e.to_string())?;
                transport
                    .send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("SMTP: {e}"))
            }
            Mailer::Outbox(dir) => {
                let from: Mailbox = "Auditex <auditex@localhost>"
                    .parse()
                    .map_err(|e| format!("sender: {e}"))?;
                let message = Message::builder()
                    .from(from)
                    .to(to)
                    .subject(subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(body.to_owned())
                    .map_err(|e| e.to_string())?;
                let path = dir.join(format!("{}.eml", uuid::Uuid::now_v7()));
                let bytes = message.formatted();
                let dir = dir.clone();
                let written = path.clone();
                tokio::task::spawn_blocking(move || write_private(&dir, &written, &bytes))
                    .await
                    .map_err(|e| e.to_string())??;
                tracing::info!(file = %path.display(), "outgoing mail written to the outbox (no SMTP server is configured)");
                Ok(())
            }
        }
    }
}

fn write_private(
    dir: &std::path::Path,
    path: &std::path::Path,
    bytes: &[u8],
) -> Result<(), String> {
    use std::io::Write as _;
    crate::file_modes::create_private_dir_all(dir)
        .map_err(|e| format!("outbox {}: {e}", dir.display()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("outbox {}: {e}", path.display()))?;
    file.write_all(bytes)
        .map_err(|e| format!("outbox {}: {e}", path.display()))
}
