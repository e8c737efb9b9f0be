//! `auditex witness`: create and run a C2SP tlog-witness ([`crate::witness`]) — the independent
//! party that cosigns a log's checkpoints only while they stay consistent.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Subcommand;
use ledger::note::VerifierKey;

use super::CliResult;
use crate::http::TlsMode;
use crate::witness::WitnessDir;
use crate::witness::protocol::Witness;
use crate::witness::server::{WitnessConfig, WitnessServer};
use crate::witness::state::WitnessState;

/// Witness commands.
#[derive(Debug, Subcommand)]
pub enum WitnessCommand {
    /// Create a witness: a new Ed25519 key (owner-only file) and its name, in DIR. Prints the
    /// witness's public key (vkey) to give to the logs it witnesses and to verifiers.
    Init {
        /// The witness's folder.
        #[arg(long, env = "AUDITEX_WITNESS_DIR", value_name = "DIR")]
        dir: PathBuf,
        /// The witness's name: a schema-less URL that identifies it, e.g.
        /// `witness.example-audit.com/w1`.
        #[arg(long)]
        name: String,
    },
    /// Print the witness's public key (vkey).
    Vkey {
        /// The witness's folder.
        #[arg(long, env = "AUDITEX_WITNESS_DIR", value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print the checkpoints the witness refused though the log had signed them (forks,
    /// rollbacks, failed proofs), one JSON object per line.
    Evidence {
        /// The witness's folder.
        #[arg(long, env = "AUDITEX_WITNESS_DIR", value_name = "DIR")]
        dir: PathBuf,
    },
    /// Forget the checkpoint cosigned for one log, so that the witness accepts it from size 0
    /// again — only after the log's operator disclosed a rollback (its signed
    /// `rollback_acknowledged` record) and you decided to witness the new branch. The forgotten
    /// checkpoint is kept with the evidence, with the reason.
    ResetLog {
        /// The witness's folder.
        #[arg(long, env = "AUDITEX_WITNESS_DIR", value_name = "DIR")]
        dir: PathBuf,
        /// The log's origin.
        #[arg(long)]
        origin: String,
        /// Why (kept with the evidence).
        #[arg(long)]
        reason: String,
    },
    /// Run the witness over HTTPS until SIGTERM or Ctrl-C.
    Serve {
        /// The witness's folder.
        #[arg(long, env = "AUDITEX_WITNESS_DIR", value_name = "DIR")]
        dir: PathBuf,
        /// A log to witness: its checkpoint verifier key, named by its origin (repeatable).
        #[arg(long = "log", value_name = "VKEY")]
        logs: Vec<String>,
        /// A file of logs to witness, one verifier key per line (`#` starts a comment).
        #[arg(long = "logs", value_name = "FILE")]
        logs_file: Option<PathBuf>,
        /// Address to listen on.
        #[arg(long, env = "AUDITEX_WITNESS_LISTEN", default_value = "127.0.0.1:8444")]
        listen: SocketAddr,
        /// TLS certificate chain (PEM); without it a self-signed certificate is made in DIR/tls.
        #[arg(long, requires = "tls_key", value_name = "FILE")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM, mode 0600).
        #[arg(long, requires = "tls_cert", value_name = "FILE")]
        tls_key: Option<PathBuf>,
        /// Requests per second per client address.
        #[arg(long, default_value_t = 100)]
        rate_per_second: u32,
        /// Burst per client address.
        #[arg(long, default_value_t = 200)]
        rate_burst: u32,
    },
}

/// Runs a witness command.
///
/// # Errors
/// A message naming what is wrong.
pub async fn run(command: WitnessCommand) -> CliResult {
    match command {
        WitnessCommand::Init { dir, name } => {
            let vkey = WitnessDir::new(&dir).init(&name)?;
            println!("created witness {name} in {}", dir.display());
            println!("witness key (give it to the logs and to verifiers): {vkey}");
        }
        WitnessCommand::Vkey { dir } => {
            let (_, vkey) = WitnessDir::new(&dir).load()?;
            println!("{vkey}");
        }
        WitnessCommand::Evidence { dir } => {
            let folder = WitnessDir::new(&dir);
            let state = WitnessState::open(&folder.state_path()).await?;
            for e in state.evidence().await? {
                println!("{}", serde_json::to_string(&e)?);
            }
            state.close().await;
        }
        WitnessCommand::ResetLog {
            dir,
            origin,
            reason,
        } => {
            if reason.trim().is_empty() {
                return Err("--reason must say why the log's state is forgotten".into());
            }
            let folder = WitnessDir::new(&dir);
            let state = WitnessState::open(&folder.state_path()).await?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let done = state.reset(&origin, reason.trim(), now).await?;
            state.close().await;
            if !done {
                return Err(format!("the witness has cosigned nothing for {origin:?}").into());
            }
            println!(
                "forgot the checkpoint cosigned for {origin}; it is kept with the evidence. The witness accepts the log from size 0 again."
            );
        }
        WitnessCommand::Serve {
            dir,
            logs,
            logs_file,
            listen,
            tls_cert,
            tls_key,
            rate_per_second,
            rate_burst,
        } => {
            let folder = WitnessDir::new(&dir);
            let (key, vkey) = folder.load()?;
            let mut texts: Vec<String> = logs;
            if let Some(path) = &logs_file {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                texts.extend(
                    text.lines()
                        .map(|l| l.split('#').next().unwrap_or("").trim().to_owned())
                        .filter(|l| !l.is_empty()),
                );
            }
            if texts.is_empty() {
                return Err("no log to witness: pass --log VKEY or --logs FILE".into());
            }
            let mut keys = Vec::new();
            for text in &texts {
                keys.push(VerifierKey::parse(text).map_err(|e| format!("log key {text}: {e}"))?);
            }
            let state = WitnessState::open(&folder.state_path()).await?;
            let count = keys.len();
            let witness = Witness::new(key, vkey.clone(), keys, state);
            let tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => TlsMode::Files { cert, key },
                _ => TlsMode::SelfSigned(folder.tls_dir()),
            };
            let server = WitnessServer::build(
                witness,
                &WitnessConfig {
                    listen,
                    tls,
                    rate_per_second,
                    rate_burst,
                },
            )?;
            println!(
                "auditex witness {} listening on https://{} for {count} log key(s). Press Ctrl-C to stop.",
                vkey.name(),
                server.local_addr()
            );
            println!("witness key: {vkey}");
            if let Some(fp) = server.tls_fingerprint() {
                println!("TLS certificate SHA-256 fingerprint: {fp}");
            }
            server.run_until_stopped(super::shutdown_signal()).await?;
        }
    }
    Ok(())
}
