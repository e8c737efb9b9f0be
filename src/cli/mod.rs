//! The command line: `auditex serve`, `migrate`, `tenant`, `key`, `append` and `checkpoint`.
//!
//! Every command that opens the store takes the same flags and environment variables
//! ([`args::StoreArgs`]), which fill the plain [`crate::config::StoreSettings`]; a configuration
//! file's values become the defaults under them ([`command`]). The store-using commands live in
//! submodules ([`ops`], [`master_key`], [`evidence`], [`retention`]); [`configure`] builds the services'
//! configurations from settings; the offline verifier is [`crate::verify_cli`].

pub(crate) mod args;
pub(crate) mod configure;
pub(crate) mod evidence;
pub(crate) mod master_key;
pub(crate) mod ops;
pub(crate) mod result;
pub(crate) mod retention;
pub(crate) mod witness;

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use clap::{Parser, Subcommand};
use ledger::draft::prepare_client_draft;
use ledger::note::VerifierKey;
use ledger::types::TenantId;
use serde::Deserialize;

use crate::config::{HttpSettings, PortalSettings, StoreSettings};
use crate::store::{BATCH_RECORDS_MAX, Store};
use args::{HttpArgs, PortalArgs, StoreArgs};
use configure::open;
pub use result::{CliError, CliResult};

/// Auditex: the verifiable system of record for AI decisions in finance.
#[derive(Debug, Parser)]
#[command(
    name = "auditex",
    version,
    about,
    long_about = None,
    // Keep the address equal to `config::SECURITY_CONTACT` (a test checks it).
    after_help = "Operations guide: docs/OPERATIONS.md. Report vulnerabilities to security@auditex.dev (see SECURITY.md)."
)]
pub struct Cli {
    /// A configuration file of `AUDITEX_…=value` lines; the environment and flags override it.
    /// Secrets do not belong in it (use the environment or key files).
    #[arg(long, global = true, env = "AUDITEX_CONFIG_FILE", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the ledger service until interrupted (Ctrl-C or SIGTERM drains queued appends).
    Serve {
        /// Store settings.
        #[command(flatten)]
        store: StoreArgs,
        /// HTTPS settings.
        #[command(flatten)]
        http: HttpArgs,
        /// Portal settings.
        #[command(flatten)]
        portal: PortalArgs,
    },
    /// Portal accounts: create the first administrator of a tenant.
    User {
        /// The user command.
        #[command(subcommand)]
        command: UserCommand,
        /// Store settings.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The portal's session-signing keys: add a new signing key, retire an old one.
    SessionKeys {
        /// The key command.
        #[command(subcommand)]
        command: SessionKeysCommand,
        /// Store settings (for the data folder).
        #[command(flatten)]
        store: StoreArgs,
        /// Portal settings (for the key file).
        #[command(flatten)]
        portal: PortalArgs,
    },
    /// Manage a tenant's API keys (shown once at creation; only a hash is stored).
    Apikey {
        /// The API key command.
        #[command(subcommand)]
        command: ApikeyCommand,
        /// Store settings.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Read-side projections (decisions, models, oversight, subjects, daily): status and rebuilds.
    Projections {
        /// The projections command.
        #[command(subcommand)]
        command: ProjectionsCommand,
        /// Store settings.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the OpenAPI 3.1 document of the HTTP API.
    Openapi,
    /// Apply database migrations (PostgreSQL: pass the schema owner's URL as --admin-database-url).
    Migrate {
        /// Store settings.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Manage tenants.
    Tenant {
        /// The tenant command.
        #[command(subcommand)]
        command: TenantCommand,
        /// Store settings.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Manage a tenant's signing keys.
    Key {
        /// The key command.
        #[command(subcommand)]
        command: KeyCommand,
        /// Store settings.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Append events read as JSON lines from standard input (or generated), printing one receipt
    /// per line once it is durable. A line that is not a valid client event (an event type only
    /// the service writes, such as key_rotation, included) stops the command naming the line:
    /// nothing of its batch or after it is appended.
    Append {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Generate this many synthetic decision records instead of reading standard input.
        #[arg(long)]
        generate: Option<u64>,
        /// Records per append request.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Store settings.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Back up the embedded SQLite database to PATH while the service runs (consistent online
    /// copy; PostgreSQL: see docs/OPERATIONS.md).
    Backup {
        /// Where to write the backup (must not exist).
        path: std::path::PathBuf,
        /// Store settings.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Restore the SQLite database from a backup after verifying it (chains, Merkle roots,
    /// checkpoints); refuses a database in use, and asks for --force to replace an existing one.
    Restore {
        /// The backup file.
        backup: Option<std::path::PathBuf>,
        /// Replace an existing database (it is kept as `<database>.before-restore-<time>`).
        #[arg(long)]
        force: bool,
        /// Only verify the configured database in place (for example after a PostgreSQL
        /// point-in-time recovery); restores nothing.
        #[arg(long, conflicts_with = "force")]
        verify_only: bool,
        /// Store settings.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Rollback safety: report tenants whose database is behind the checkpoint published last,
    /// and acknowledge such a rollback.
    Rollback {
        /// The rollback command.
        #[command(subcommand)]
        command: ops::RollbackCommand,
        /// Store settings.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The master key: generate a new one, and re-seal every sealed value under it (rotation;
    /// see docs/OPERATIONS.md).
    MasterKey {
        /// The master-key command.
        #[command(subcommand)]
        command: master_key::MasterKeyCommand,
        /// Store settings.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Retention of erasable values: set or show a tenant's policy, or run it now (see
    /// docs/OPERATIONS.md "Retention and legal hold").
    Retention {
        /// The retention command.
        #[command(subcommand)]
        command: retention::RetentionCommand,
        /// Store settings.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print a tenant's latest signed checkpoint (C2SP tlog-checkpoint).
    Checkpoint {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Store settings.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Write a tenant's ledger export (JSON Lines, FORMAT.md section 12) from a sequence number
    /// to the latest checkpoint.
    Export {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The first sequence number to export.
        #[arg(long, default_value_t = 0)]
        from_seq: u64,
        /// Write to this file (atomically) instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
        /// Store settings.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Write the chain-of-custody bundle of a decision (JSON, FORMAT.md section 11).
    Bundle {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The decision's event id.
        #[arg(long, value_name = "EVENT_ID")]
        decision: String,
        /// Write to this file (atomically) instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
        /// Store settings.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Write the access package of one data subject (JSON Lines, FORMAT.md section 12b).
    Package {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The subject reference.
        #[arg(long, value_name = "SUBJECT_REF")]
        subject: String,
        /// Write to this file (atomically) instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
        /// Store settings.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Write the C2SP tlog-proof file of one record (--seq), or the consistency-proof file
    /// between two published checkpoints (--old-size).
    Proof {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The record's sequence number (a tlog-proof file).
        #[arg(
            long,
            conflicts_with = "old_size",
            required_unless_present = "old_size"
        )]
        seq: Option<u64>,
        /// The older tree size, which must have a published checkpoint (a consistency-proof
        /// file, FORMAT.md; the document GET /v1/proofs/consistency serves).
        #[arg(long)]
        old_size: Option<u64>,
        /// The newer tree size, which must have a published checkpoint (default: the latest).
        #[arg(long, requires = "old_size")]
        new_size: Option<u64>,
        /// Write to this file (atomically) instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
        /// Store settings.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Verify evidence offline (no server, no database): an export, a custody bundle, a
    /// tlog-proof file, or two checkpoints. Exit code 0: verified; 1: verification failed;
    /// 2: the input could not be read.
    Verify(crate::verify_cli::VerifyArgs),
    /// Run a C2SP tlog-witness: an independent party that cosigns a log's checkpoints only
    /// while each is consistent with the last one it cosigned.
    Witness {
        /// The witness command.
        #[command(subcommand)]
        command: witness::WitnessCommand,
    },
}

/// Tenant commands.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and its first signing key.
    Create {
        /// Tenant id: 1-63 characters of a-z, 0-9 and '-'.
        id: String,
        /// PostgreSQL with tenant cells: the cell to place the new tenant on (it is created on
        /// the home database and moved there at once; see `tenant move`).
        #[arg(long = "on-cell", value_name = "CELL")]
        on_cell: Option<String>,
    },
    /// List tenants.
    List,
    /// Move the tenant's ledger and views to another PostgreSQL cluster (a cell named in
    /// AUDITEX_CELLS; `home` is the database of AUDITEX_DATABASE_URL). The bulk is copied and
    /// checked while its writes go on; then its writes are refused with 503 (never lost) for
    /// about a second while the rest is copied and the nodes follow; reads go on throughout.
    /// Running it again resumes or finishes an interrupted move.
    Move {
        /// Tenant id.
        id: String,
        /// The cell to move it to.
        #[arg(long)]
        to: String,
    },
    /// Print the cell the tenant's ledger and views live on.
    Cell {
        /// Tenant id.
        id: String,
    },
    /// Choose who may read the tenant's tiled log (C2SP tlog-tiles, served under its origin):
    /// `private` (the default) admits only the tenant's own `read` and `verify` keys, `public`
    /// anyone. Running services follow within five seconds.
    Tiles {
        /// Tenant id.
        id: String,
        /// Who may read.
        #[arg(value_enum)]
        access: TileAccess,
    },
    /// The witnesses that cosign the tenant's checkpoints (C2SP tlog-witness).
    Witness {
        /// The witness command.
        #[command(subcommand)]
        command: TenantWitnessCommand,
    },
}

/// A tenant's witnesses.
#[derive(Debug, Subcommand)]
pub enum TenantWitnessCommand {
    /// Send the tenant's checkpoints to a witness (or change the one of that name): each new
    /// checkpoint is submitted with its consistency proof, and the cosignature is kept with it.
    Add {
        /// Tenant id.
        tenant: String,
        /// The witness's key, as `auditex witness vkey` prints it.
        #[arg(long)]
        vkey: String,
        /// The witness's submission URL (`<url>/add-checkpoint` is posted to).
        #[arg(long)]
        url: String,
        /// The CA certificate (PEM) to trust for this witness, when no public CA signs its
        /// certificate (a self-signed witness).
        #[arg(long, value_name = "PEM")]
        ca_cert: Option<std::path::PathBuf>,
    },
    /// Stop sending checkpoints to the witness named NAME (its cosignatures stay).
    Remove {
        /// Tenant id.
        tenant: String,
        /// The witness's name.
        name: String,
    },
    /// List the tenant's witnesses.
    List {
        /// Tenant id.
        tenant: String,
    },
}

/// Who may read a tenant's tiled log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TileAccess {
    /// Only the tenant's own `read` and `verify` keys.
    Private,
    /// Anyone, without a key.
    Public,
}

/// API key commands.
#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Throw a projection away and replay it from the ledger into a new generation, with a
    /// progress bar; a running service keeps serving the old view until the new one has caught
    /// up. Without NAME, every projection is rebuilt in turn.
    Rebuild {
        /// decisions, models, oversight, subjects or daily.
        name: Option<String>,
    },
    /// Bring every projection up to date once and print each one's generation and position.
    Status,
    /// List the projections stuck at a record they cannot apply: tenant, projection,
    /// generation, the record's sequence number, records behind, since when and why. A stuck
    /// projection stops for that tenant only; every other tenant and projection keeps up.
    Stuck {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Clear stuck marks (after an upgrade or a fix of the cause) and bring the projections up
    /// to date once; prints what is still stuck. A running service also retries within its
    /// poll interval.
    Retry {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only this projection: decisions, models, oversight, subjects or daily.
        name: Option<String>,
    },
}

/// Portal account commands.
#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Create a portal account. With --admin, the first administrator of a tenant; the password
    /// is read from standard input (one line) or generated and printed once.
    Create {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The email address the person signs in with.
        #[arg(long)]
        email: String,
        /// Make the account an administrator (otherwise give --role).
        #[arg(long)]
        admin: bool,
        /// admin, compliance, auditor or regulator.
        #[arg(long)]
        role: Option<String>,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Session-signing key commands.
#[derive(Debug, clap::Subcommand)]
pub enum SessionKeysCommand {
    /// Add a new key that signs new sessions; existing sessions stay valid.
    Rotate,
    /// Remove an old key; the sessions it signed end.
    Retire {
        /// The key id.
        id: String,
    },
    /// List the key ids, newest first.
    List,
}

async fn user_command(store: &Store, command: UserCommand) -> CliResult {
    use crate::store::users::PortalRole;
    match command {
        UserCommand::Create {
            tenant,
            email,
            admin,
            role,
            password_stdin,
        } => {
            let tenant = tenant_id(&tenant)?;
            if !store.tenant_exists(&tenant).await? {
                return Err(
                    format!("no tenant {tenant}; create it with `auditex tenant create`").into(),
                );
            }
            let role = match (admin, role.as_deref()) {
                (true, None | Some("admin")) => PortalRole::Admin,
                (true, Some(_)) => {
                    return Err("--admin and another --role contradict each other".into());
                }
                (false, Some(r)) => PortalRole::parse(r)
                    .ok_or("unknown role: use admin, compliance, auditor or regulator")?,
                (false, None) => return Err("give --admin or --role".into()),
            };
            if role == PortalRole::Regulator {
                return Err(
                    "regulator accounts need an end date: invite them from the portal's Users page"
                        .into(),
                );
            }
            let email = email.trim().to_lowercase();
            if !email.contains('@') || email.len() > 254 {
                return Err(format!("{email:?} is not an email address").into());
            }
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                (line.trim_end_matches(['\r', '\n']).to_owned(), false)
            } else {
                // 256 random bits in URL-safe base64: typeable, and never guessed.
                (crate::portal::security::random_token(), true)
            };
            if let Some(problem) = crate::portal::security::password_problem(&password) {
                return Err(problem.into());
            }
            let hash = crate::portal::security::hash_password(password.clone()).await?;
            // Recorded first: no account is created that the ledger does not know of.
            let audited = crate::portal::audit(
                store,
                &tenant,
                "administration",
                "auditex user create",
                &format!("user_created:{}", role.as_str()),
                Some(&email),
            )
            .await
            .map_err(|e| {
                format!(
                    "the account was not created: its record could not be appended to the \
                     ledger; nothing was changed ({e:?})"
                )
            })?;
            let created = store
                .create_user(&tenant, &email, role, &hash, None, store.now_us())
                .await;
            if created.is_err() {
                audited
                    .failed(store, "the account could not be stored")
                    .await;
            }
            let user = created?;
            println!(
                "created {} ({}) for tenant {tenant}",
                user.email,
                role.as_str()
            );
            if generated {
                println!("password (shown once; change it after signing in): {password}");
            }
            Ok(())
        }
    }
}

/// API key commands.
#[derive(Debug, clap::Subcommand)]
pub enum ApikeyCommand {
    /// Create a key; its text is printed once and cannot be shown again.
    Create {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// ingest (pipelines), read (compliance, auditors), verify (regulators) or privacy
        /// (erasure requests of data subjects).
        #[arg(long)]
        role: String,
        /// A label to recognise the key by.
        #[arg(long, default_value = "")]
        label: String,
        /// Expire the key after this many days.
        #[arg(long)]
        expires_in_days: Option<u64>,
        /// The key's own request rate per second (1 to 100000), instead of the service's default
        /// for its role (`AUDITEX_INGEST_RATE_PER_SECOND` for ingest keys,
        /// `AUDITEX_RATE_PER_SECOND` for the others).
        #[arg(long)]
        rate_per_second: Option<u32>,
    },
    /// Set a key's own request rate per second, or `default` for the service's default for its
    /// role. Takes effect at the key's next request (within 2 s on other service nodes).
    Rate {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The key id (16 hex digits, the part after `atx_`).
        key_id: String,
        /// Requests per second (1 to 100000), or `default`.
        rate: String,
    },
    /// List a tenant's keys with their last use.
    List {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
    /// Revoke a key by its id.
    Revoke {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The key id (16 hex digits, the part after `atx_`).
        key_id: String,
    },
}

/// A key's own rate, checked before anything is created.
fn key_rate(rate: u32) -> Result<u32, String> {
    let max = crate::store::API_KEY_RATE_MAX;
    if (1..=max).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!(
            "a key's rate must be between 1 and {max} requests a second, not {rate}"
        ))
    }
}

/// A key's label as the portal also takes it (see [`crate::store::api_key_label_problem`]); it
/// may be empty here.
fn key_label(label: &str) -> Result<(), String> {
    crate::store::api_key_label_problem(label).map_or(Ok(()), |p| Err(format!("a key's label {p}")))
}

async fn apikey(store: &Store, command: ApikeyCommand) -> CliResult {
    match command {
        ApikeyCommand::Create {
            tenant,
            role,
            label,
            expires_in_days,
            rate_per_second,
        } => {
            let tenant = tenant_id(&tenant)?;
            let role = crate::auth::Role::parse(&role)?;
            let expires = expires_in_days.map(|d| {
                chrono::Utc::now().timestamp_micros().max(0) as u64
                    + d.saturating_mul(86_400_000_000)
            });
            let rate = rate_per_second.map(key_rate).transpose()?;
            key_label(&label)?;
            let key = store.create_api_key(&tenant, role, &label, expires).await?;
            // The key exists now: it is shown whatever happens next, never left unseen.
            println!("{}", key.reveal());
            eprintln!(
                "API key {} ({role}) created for {tenant}. Store it now: it is not shown again.",
                key.id()
            );
            if rate.is_some() {
                store
                    .set_api_key_rate(&tenant, key.id(), rate)
                    .await
                    .map_err(|e| {
                        format!(
                            "the key was created with the default rate of its role; its own rate was not set ({e}): run `auditex apikey rate` again"
                        )
                    })?;
            }
        }
        ApikeyCommand::List { tenant } => {
            let tenant = tenant_id(&tenant)?;
            for k in store.api_keys(&tenant).await? {
                println!("{}", serde_json::to_string(&k)?);
            }
        }
        ApikeyCommand::Rate {
            tenant,
            key_id,
            rate,
        } => {
            let tenant = tenant_id(&tenant)?;
            let id = crate::auth::ApiKeyId::parse(&key_id)?;
            let rate = match rate.as_str() {
                "default" => None,
                n => Some(key_rate(n.parse().map_err(|_| {
                    format!("the rate must be a whole number of requests a second or `default`, not `{n}`")
                })?)?),
            };
            if !store.set_api_key_rate(&tenant, &id, rate).await? {
                return Err(format!("{tenant} has no active key {id}").into());
            }
            match rate {
                Some(r) => println!("{id}: {r} requests a second"),
                None => println!("{id}: the default rate of its role"),
            }
        }
        ApikeyCommand::Revoke { tenant, key_id } => {
            let tenant = tenant_id(&tenant)?;
            let id = crate::auth::ApiKeyId::parse(&key_id)?;
            if store.revoke_api_key(&tenant, &id).await? {
                println!("revoked {id}");
            } else {
                return Err(format!("{tenant} has no active key {id}").into());
            }
        }
    }
    Ok(())
}

/// Key commands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Rotate the tenant's signing key (a key-rotation record signed by the old key announces it).
    Rotate {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
    /// Print the tenant's public-key history (JSON) with C2SP verifier keys.
    History {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
}

/// One event on standard input for `auditex append`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputEvent {
    event_id: String,
    event_type: String,
    payload: serde_json::Value,
    #[serde(default)]
    erasable: BTreeMap<String, serde_json::Value>,
}

fn tenant_id(text: &str) -> Result<TenantId, CliError> {
    Ok(TenantId::parse(text)?)
}

async fn projections_command(store: &Store, command: ProjectionsCommand) -> CliResult {
    use projections::runner;
    match command {
        ProjectionsCommand::Rebuild { name } => {
            let chosen: Vec<&'static dyn projections::views::Projection> = match name {
                None => projections::ALL.to_vec(),
                Some(n) => vec![projections::by_name(&n).ok_or_else(|| {
                    let names: Vec<_> = projections::ALL.iter().map(|p| p.name()).collect();
                    format!(
                        "no projection is called {n:?}; there are: {}",
                        names.join(", ")
                    )
                })?],
            };
            let names: Vec<&str> = chosen.iter().map(|p| p.name()).collect();
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "rebuilding [{bar:30}] {pos}/{len} records, {per_sec}, ETA {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            let mut records = 0u64;
            for tenant in store.tenants().await? {
                records += store.tree_size(&tenant).await?.get();
            }
            let started = std::time::Instant::now();
            let progress = |done: u64, total: u64| {
                bar.set_length(total);
                bar.set_position(done);
            };
            let applied = runner::rebuild(store, &chosen, &progress).await?;
            bar.finish_and_clear();
            println!(
                "{}",
                rebuild_summary(&names, applied, records, started.elapsed())
            );
            Ok(())
        }
        ProjectionsCommand::Stuck { tenant } => {
            let tenant = tenant.as_deref().map(TenantId::parse).transpose()?;
            print_stuck(store, tenant.as_ref()).await
        }
        ProjectionsCommand::Retry { tenant, name } => {
            let tenant = tenant.as_deref().map(TenantId::parse).transpose()?;
            if let Some(n) = &name
                && projections::by_name(n).is_none()
            {
                let names: Vec<_> = projections::ALL.iter().map(|p| p.name()).collect();
                return Err(format!(
                    "no projection is called {n:?}; there are: {}",
                    names.join(", ")
                )
                .into());
            }
            let cleared = store.clear_stuck(tenant.as_ref(), name.as_deref()).await?;
            println!("cleared {cleared} stuck mark(s); applying pending records");
            let applied = runner::catch_up(store).await?;
            println!("applied {applied} pending record(s)");
            print_stuck(store, tenant.as_ref()).await
        }
        ProjectionsCommand::Status => {
            let applied = runner::catch_up(store).await?;
            if applied > 0 {
                println!("applied {applied} pending record(s)");
            }
            for state in projections::runner::ViewStore::states(store).await? {
                let version = projections::by_name(&state.name).map_or(0, |p| p.version());
                let building = state
                    .building
                    .map(|(g, v)| format!(", rebuilding generation {g} (version {v})"))
                    .unwrap_or_default();
                println!(
                    "{:<10} version {} (code {version}), generation {}{building}",
                    state.name, state.active_version, state.active_generation
                );
            }
            Ok(())
        }
    }
}

/// What `projections rebuild` did, in one line. A running service folds the same building
/// generations concurrently, and may apply most or all pages itself; the summary then says how
/// many records this command applied and leaves the rest to the service, rather than crediting
/// the command (and its rate) with the whole chain.
fn rebuild_summary(
    names: &[&str],
    applied_here: u64,
    records: u64,
    took: std::time::Duration,
) -> String {
    let names = names.join(", ");
    let seconds = took.as_secs_f64();
    if applied_here >= records {
        format!(
            "rebuilt {names}: this command applied {applied_here} records in {seconds:.1} s \
             ({:.0} records/s); the new generations are serving",
            applied_here as f64 / seconds.max(1e-9)
        )
    } else {
        format!(
            "rebuilt {names}: this command applied {applied_here} of {records} records in \
             {seconds:.1} s; the other {} were applied by another runner (a running service); \
             the new generations are serving",
            records - applied_here
        )
    }
}

/// Prints the stuck projections (of one tenant, or all), one line each.
async fn print_stuck(store: &Store, tenant: Option<&TenantId>) -> CliResult {
    use projections::runner::ViewStore;
    let stuck = store.stuck_projections(tenant).await?;
    if stuck.is_empty() {
        println!("no projection is stuck");
        return Ok(());
    }
    println!("{} stuck:", stuck.len());
    for s in stuck {
        let tenant = TenantId::parse(&s.tenant)?;
        let behind = store.chain_length(&tenant).await?.saturating_sub(s.seq);
        let since = chrono::DateTime::from_timestamp_micros(s.since_us)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        println!(
            "tenant {} projection {} generation {} at record {} ({behind} behind) since {since}: {}",
            s.tenant, s.name, s.generation, s.seq, s.error
        );
    }
    Ok(())
}

/// Runs a parsed command.
///
/// # Errors
/// Whatever the command failed with, for printing.
pub async fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Serve {
            store,
            http,
            portal,
        } => serve(&store.settings(), &http.settings(), &portal.settings()).await,
        Command::User { command, store } => {
            let s = open(&store.settings()).await?;
            let result = user_command(&s, command).await;
            s.shutdown().await;
            result
        }
        Command::SessionKeys {
            command,
            store,
            portal,
        } => {
            let path = portal.settings().session_keys_path(&store.settings());
            match command {
                SessionKeysCommand::Rotate => {
                    let id = crate::portal::security::rotate_key_file(&path)?;
                    println!(
                        "added session key {id} to {}; it signs new sessions after the next restart, and every older key still verifies (no one is signed out)",
                        path.display()
                    );
                }
                SessionKeysCommand::Retire { id } => {
                    crate::portal::security::retire_key_file(&path, &id)?;
                    println!(
                        "retired session key {id} from {}; sessions it signed end after the next restart",
                        path.display()
                    );
                }
                SessionKeysCommand::List => {
                    let ring = crate::portal::security::KeyRing::load_or_create(&path)?;
                    for (n, id) in ring.ids().iter().enumerate() {
                        println!("{id}{}", if n == 0 { "  (signs new sessions)" } else { "" });
                    }
                }
            }
            Ok(())
        }
        Command::Openapi => {
            println!("{}", crate::http::openapi::document_json());
            Ok(())
        }
        Command::Projections { command, store } => {
            let s = open(&store.settings()).await?;
            let result = projections_command(&s, command).await;
            s.shutdown().await;
            result
        }
        Command::Apikey { command, store } => {
            let s = open(&store.settings()).await?;
            let result = apikey(&s, command).await;
            s.shutdown().await;
            result
        }
        Command::Migrate { store } => {
            let store = store.settings();
            let applied = Store::migrate(
                &configure::database(&store),
                store.admin_database_url.as_deref(),
            )
            .await?;
            println!("{applied} migration(s) applied; the schema is current");
            Ok(())
        }
        Command::Tenant { command, store } => {
            let s = open(&store.settings()).await?;
            match command {
                TenantCommand::Create { id, on_cell: cell } => {
                    let tenant = tenant_id(&id)?;
                    if let Some(Err(e)) = cell.as_deref().map(|c| s.check_cell(c)) {
                        s.shutdown().await;
                        return Err(e.into());
                    }
                    let key = s.create_tenant(&tenant).await?;
                    let vkey = VerifierKey::new(&s.origin(&tenant).await?, key.public_key)?;
                    if let Some(cell) = cell.filter(|c| c != "home")
                        && let Err(e) = s.move_tenant(&tenant, &cell, &|_, _| {}).await
                    {
                        s.shutdown().await;
                        return Err(format!(
                            "created tenant {tenant} on the home database, but could not place \
                             it on cell {cell}: {e} (run `auditex tenant move {tenant} --to {cell}`)"
                        )
                        .into());
                    }
                    println!("created tenant {tenant}");
                    println!("signing key id: {}", key.key_id);
                    println!("checkpoint verifier key: {vkey}");
                }
                TenantCommand::List => {
                    for t in s.tenants().await? {
                        println!("{t}");
                    }
                }
                TenantCommand::Cell { id } => {
                    let tenant = tenant_id(&id)?;
                    if !s.tenant_exists(&tenant).await? {
                        s.shutdown().await;
                        return Err(format!("no tenant {tenant}").into());
                    }
                    println!("{}", s.placement(&tenant).await?);
                }
                TenantCommand::Move { id, to } => {
                    let tenant = tenant_id(&id)?;
                    let result = ops::move_tenant(&s, &tenant, &to).await;
                    if let Err(e) = result {
                        s.shutdown().await;
                        return Err(e);
                    }
                }
                TenantCommand::Tiles { id, access } => {
                    let tenant = tenant_id(&id)?;
                    s.set_tiles_public(&tenant, access == TileAccess::Public)
                        .await?;
                    let origin = s.origin(&tenant).await?;
                    let who = match access {
                        TileAccess::Public => "anyone",
                        TileAccess::Private => "the tenant's read and verify keys only",
                    };
                    println!("tiled log of {tenant}: readable by {who}");
                    println!("log prefix: https://{origin}/");
                }
                TenantCommand::Witness { command } => match command {
                    TenantWitnessCommand::Add {
                        tenant,
                        vkey,
                        url,
                        ca_cert,
                    } => {
                        let tenant = tenant_id(&tenant)?;
                        let ca = ca_cert
                            .map(|p| {
                                std::fs::read_to_string(&p)
                                    .map_err(|e| format!("{}: {e}", p.display()))
                            })
                            .transpose()?;
                        let key = s.add_witness(&tenant, &vkey, &url, ca).await?;
                        println!(
                            "{tenant}'s checkpoints now go to witness {} at {url}; running services follow within five seconds",
                            key.name()
                        );
                    }
                    TenantWitnessCommand::Remove { tenant, name } => {
                        let tenant = tenant_id(&tenant)?;
                        if s.remove_witness(&tenant, &name).await? {
                            println!("{tenant}'s checkpoints no longer go to witness {name}");
                        } else {
                            s.shutdown().await;
                            return Err(format!("{tenant} has no witness named {name}").into());
                        }
                    }
                    TenantWitnessCommand::List { tenant } => {
                        let tenant = tenant_id(&tenant)?;
                        for w in s.witnesses(&tenant).await? {
                            let last = s.last_cosigned(&tenant, w.key.name()).await?;
                            let last = last
                                .map_or_else(|| "nothing yet".to_owned(), |n| format!("size {n}"));
                            println!(
                                "{}\t{}\tlast cosigned: {last}\t{}",
                                w.key.name(),
                                w.url,
                                w.key
                            );
                        }
                    }
                },
            }
            s.shutdown().await;
            Ok(())
        }
        Command::Key { command, store } => {
            let s = open(&store.settings()).await?;
            match command {
                KeyCommand::Rotate { tenant } => {
                    let tenant = tenant_id(&tenant)?;
                    let key = s.rotate_key(&tenant).await?;
                    println!(
                        "rotated: new key {} signs from sequence {}",
                        key.key_id, key.from_seq
                    );
                }
                KeyCommand::History { tenant } => {
                    let tenant = tenant_id(&tenant)?;
                    let ring = s.key_history(&tenant).await?;
                    let origin = s.origin(&tenant).await?;
                    let history = ledger::keys::KeyHistory::of(&origin, &ring)?;
                    println!("{}", history.to_json());
                }
            }
            s.shutdown().await;
            Ok(())
        }
        Command::Append {
            tenant,
            generate,
            batch,
            store,
        } => {
            let s = open(&store.settings()).await?;
            let tenant = tenant_id(&tenant)?;
            let result = append(&s, &tenant, generate, batch.clamp(1, BATCH_RECORDS_MAX)).await;
            s.shutdown().await;
            result
        }
        Command::Backup { path, store } => ops::backup(&store.settings(), path).await,
        Command::Restore {
            backup,
            force,
            verify_only,
            store,
        } => ops::restore(&store.settings(), backup, force, verify_only).await,
        Command::Rollback { command, store } => ops::rollback(&store.settings(), command).await,
        Command::Export {
            tenant,
            from_seq,
            output,
            store,
        } => {
            evidence::export_command(&store.settings(), &tenant, from_seq, output.as_deref()).await
        }
        Command::Bundle {
            tenant,
            decision,
            output,
            store,
        } => {
            evidence::bundle_command(&store.settings(), &tenant, &decision, output.as_deref()).await
        }
        Command::Package {
            tenant,
            subject,
            output,
            store,
        } => {
            evidence::package_command(&store.settings(), &tenant, &subject, output.as_deref()).await
        }
        Command::Proof {
            tenant,
            seq,
            old_size,
            new_size,
            output,
            store,
        } => {
            evidence::proof_command(
                &store.settings(),
                &tenant,
                seq,
                old_size,
                new_size,
                output.as_deref(),
            )
            .await
        }
        // Verification needs neither the store nor the runtime, and has its own exit codes
        // (0 verified, 1 failed, 2 unreadable input), so it ends the process itself.
        Command::Verify(args) => {
            let code = tokio::task::block_in_place(|| crate::verify_cli::run(args));
            std::process::exit(i32::from(code))
        }
        Command::MasterKey { command, store } => master_key::run(&store.settings(), command).await,
        Command::Witness { command } => witness::run(command).await,
        Command::Retention { command, store } => retention::run(&store.settings(), command).await,
        Command::Checkpoint { tenant, store } => {
            let s = open(&store.settings()).await?;
            let tenant = tenant_id(&tenant)?;
            s.publish_checkpoints().await?;
            // Records another process appended (a running service, another node) are in no tree
            // this store holds: publish over the stored chain too.
            if s.rollback_status().problem(&tenant).is_none() {
                s.publish_checkpoint_of(&tenant).await?;
            }
            if let Some(problem) = s.rollback_status().problem(&tenant) {
                s.shutdown().await;
                return Err(format!(
                    "no checkpoint is published for {tenant}: {problem}; see `auditex rollback status`"
                )
                .into());
            }
            match s.latest_checkpoint(&tenant).await? {
                Some(c) => print!("{}", s.with_cosignatures(&tenant, c).await?.signed_note),
                None => eprintln!("no checkpoint yet: the tenant has no records"),
            }
            s.shutdown().await;
            Ok(())
        }
    }
}

async fn serve(args: &StoreSettings, http: &HttpSettings, portal: &PortalSettings) -> CliResult {
    // Before anything is created: what exists with loose modes is reported, never changed.
    crate::file_modes::warn_loose_modes(&configure::private_paths(args));
    let http_config = configure::http_config(http, args)?;
    let portal_config = configure::portal_config(portal, args, http)?;
    let mut config = configure::store_config(args)?;
    // The service keeps the read-side views current; one-shot commands leave that to it.
    config.projections_in_background = true;
    // Only the service runs the retention scheduler (`auditex retention run` runs it once).
    config.retention_interval = args.retention_interval();
    // The server starts the store's workers (and stops them): see `server`.
    let store = Store::open(config).await?;
    if let Some(v) = store.sqlite_version().await {
        tracing::info!(sqlite = %v, database = ?configure::database(args), "store open");
    } else {
        tracing::info!(database = ?configure::database(args), "store open");
    }
    let tenants = store.tenants().await?;
    let public_url = portal_config.public_url.clone();
    let app =
        crate::server::Application::build_with_portal(store, &http_config, Some(portal_config))
            .await?;
    let scheme = if app.tls_fingerprint().is_some() {
        "https"
    } else {
        "http"
    };
    println!(
        "auditex {} listening on {scheme}://{} ({} tenant(s)); checkpoints every {} ms. Press Ctrl-C to stop.",
        env!("CARGO_PKG_VERSION"),
        app.local_addr(),
        tenants.len(),
        args.checkpoint_interval_ms
    );
    if let Some(fp) = app.tls_fingerprint() {
        println!("TLS certificate SHA-256 fingerprint: {fp}");
    }
    println!(
        "Compliance portal: {public_url}/ (first administrator: `auditex user create --tenant NAME --email you@example.com --admin`)"
    );
    if tenants.is_empty() {
        println!(
            "No tenant yet: create one with `auditex tenant create NAME`, then `auditex apikey create --tenant NAME --role ingest`."
        );
    }
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// A synthetic decision, for demos, load and crash tests.
pub fn synthetic_decision(n: u64) -> serde_json::Value {
    serde_json::json!({
        "model_id": format!("credit-model-{}", n % 3),
        "model_version": "1.4.0",
        "input_commitment": format!("{:064x}", n),
        "outcome": if n.is_multiple_of(4) { "declined" } else { "approved" },
        "score": (n % 1000) as f64 / 1000.0,
        "reason_codes": ["R01"],
        "subject_ref": format!("subject-{}", n % 10_000),
        "decided_at": "2026-11-29T08:00:00Z",
        "oversight_mode": "human_on_the_loop",
    })
}

/// Appends the pending drafts and prints their receipts, one JSON line each, only after they are
/// durable (so a crash test can trust every printed line).
async fn flush(
    store: &Store,
    tenant: &TenantId,
    pending: &mut Vec<ledger::draft::ClientDraft>,
) -> CliResult {
    let receipts = store.append(tenant, std::mem::take(pending)).await?;
    let mut text = String::new();
    for r in receipts {
        text.push_str(&serde_json::to_string(&r)?);
        text.push('\n');
    }
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

async fn append(
    store: &Store,
    tenant: &TenantId,
    generate: Option<u64>,
    batch: usize,
) -> CliResult {
    let mut pending = Vec::with_capacity(batch);
    let mut line_no = 0u64;
    match generate {
        Some(count) => {
            for n in 0..count {
                let event_id = uuid::Uuid::now_v7().to_string();
                let draft = prepare_client_draft(
                    &event_id,
                    "decision",
                    &synthetic_decision(n),
                    &BTreeMap::new(),
                    rand::random,
                )
                .map_err(|e| format!("synthetic record invalid: {e:?}"))?;
                pending.push(draft);
                if pending.len() == batch {
                    flush(store, tenant, &mut pending).await?;
                }
            }
        }
        None => {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                line_no += 1;
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                let event: InputEvent =
                    ledger::json::from_str(&line).map_err(|e| format!("line {line_no}: {e}"))?;
                // The same door as the API's: a type only the service writes (a key rotation,
                // say) would make this tenant's ledger fail verification for good.
                let draft = prepare_client_draft(
                    &event.event_id,
                    &event.event_type,
                    &event.payload,
                    &event.erasable,
                    rand::random,
                )
                .map_err(|errors| {
                    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    format!("line {line_no}: {}", list.join("; "))
                })?;
                pending.push(draft);
                if pending.len() == batch {
                    flush(store, tenant, &mut pending).await?;
                }
            }
        }
    }
    if !pending.is_empty() {
        flush(store, tenant, &mut pending).await?;
    }
    Ok(())
}

/// The command line, with a configuration file's values (`(variable, value)` pairs, as
/// [`crate::config::read_config_file`] returns them) as the defaults of the settings they name.
/// clap takes a flag first, then the environment, then the default, so a file's value yields to
/// both while it overrides the built-in default; the process environment is never changed. A
/// value given twice counts the first time. Defaults from the file are not shown in `--help` for
/// settings whose environment values are hidden (database URLs, which may carry a password).
pub fn command(file: &[(String, String)]) -> clap::Command {
    use clap::CommandFactory;
    fn with_defaults(mut cmd: clap::Command, file: &BTreeMap<&str, &str>) -> clap::Command {
        let defaults: Vec<(clap::Id, String)> = cmd
            .get_arguments()
            .filter_map(|arg| {
                let value = file.get(arg.get_env()?.to_str()?)?;
                Some((arg.get_id().clone(), (*value).to_owned()))
            })
            .collect();
        for (id, value) in defaults {
            cmd = cmd.mut_arg(id, |arg| {
                let hide = arg.is_hide_env_values_set();
                arg.default_value(value).hide_default_value(hide)
            });
        }
        let subcommands: Vec<String> = cmd
            .get_subcommands()
            .map(|sub| sub.get_name().to_owned())
            .collect();
        for name in subcommands {
            cmd = cmd.mut_subcommand(name, |sub| with_defaults(sub, file));
        }
        cmd
    }
    let mut first = BTreeMap::new();
    for (key, value) in file {
        first.entry(key.as_str()).or_insert(value.as_str());
    }
    with_defaults(Cli::command(), &first)
}

/// Parses the process's arguments over a configuration file's values (see [`command`]); on bad
/// input prints clap's message and exits, as `Cli::parse` does.
pub fn parse(file: &[(String, String)]) -> Cli {
    use clap::FromArgMatches;
    let mut cmd = command(file);
    let mut matches = cmd.get_matches_mut();
    Cli::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.format(&mut cmd).exit())
}

/// Every environment variable the command line reads (for validating configuration files).
pub fn known_settings() -> Vec<String> {
    use clap::CommandFactory;
    let mut names = Vec::new();
    fn walk(cmd: &clap::Command, names: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if let Some(env) = arg.get_env() {
                names.push(env.to_string_lossy().into_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, names);
        }
    }
    walk(&Cli::command(), &mut names);
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{key_label, known_settings, rebuild_summary};

    #[test]
    fn a_key_label_with_a_control_character_or_over_200_bytes_is_refused() {
        assert!(key_label("").is_ok());
        assert!(key_label("nightly pipeline — Zürich").is_ok());
        assert!(key_label(&"x".repeat(200)).is_ok());
        assert!(key_label(&"x".repeat(201)).is_err());
        for bad in [
            "x\0y",
            "a\u{1b}[31mb",
            "line\nbreak",
            "tab\there",
            "c1\u{85}",
        ] {
            assert!(key_label(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_command_s_flags_are_well_formed() {
        // clap checks names and conflicts only when a command is parsed, and only in debug
        // builds: a flag clashing with a global one would panic the first user of that command.
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn a_rebuild_the_running_service_finished_is_not_credited_to_the_command() {
        let line = rebuild_summary(&["decisions"], 0, 10_268, Duration::from_secs(15));
        assert_eq!(
            line,
            "rebuilt decisions: this command applied 0 of 10268 records in 15.0 s; the other \
             10268 were applied by another runner (a running service); the new generations are \
             serving"
        );
        assert!(
            !line.contains("records/s"),
            "no rate for work it did not do"
        );
    }

    #[test]
    fn a_rebuild_the_command_did_alone_reports_its_records_and_rate() {
        let line = rebuild_summary(
            &["decisions", "daily"],
            1_000,
            1_000,
            Duration::from_secs(2),
        );
        assert_eq!(
            line,
            "rebuilt decisions, daily: this command applied 1000 records in 2.0 s (500 \
             records/s); the new generations are serving"
        );
    }

    /// Parses `argv` with the command line of [`super::command`], changed by `change`.
    fn parse_with(
        file: &[(&str, &str)],
        change: impl FnOnce(clap::Command) -> clap::Command,
        argv: &[&str],
    ) -> (crate::config::StoreSettings, crate::config::HttpSettings) {
        use clap::FromArgMatches;
        let file: Vec<(String, String)> = file
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let matches = change(super::command(&file))
            .try_get_matches_from(argv)
            .expect("parses");
        match super::Cli::from_arg_matches(&matches)
            .expect("a command")
            .command
        {
            super::Command::Serve { store, http, .. } => (store.settings(), http.settings()),
            other => panic!("not serve: {other:?}"),
        }
    }

    #[test]
    fn a_config_file_value_beats_the_default_and_yields_to_the_environment_and_to_a_flag() {
        let file = [
            ("AUDITEX_ORIGIN", "file.example/ledger"),
            ("AUDITEX_LISTEN", "127.0.0.1:9443"),
            ("AUDITEX_PRODUCTION", "true"),
            ("AUDITEX_ORIGIN", "second.example/ledger"),
        ];
        let same = |cmd| cmd;
        let (store, http) = parse_with(&file, same, &["auditex", "serve"]);
        assert_eq!(
            store.origin, "file.example/ledger",
            "the first value counts"
        );
        assert_eq!(http.listen.port(), 9443);
        assert!(store.production);
        let (store, _) = parse_with(&[], same, &["auditex", "serve"]);
        assert_eq!(store.origin, "auditex.local/ledger", "the built-in default");
        assert!(!store.production);
        let (store, http) = parse_with(
            &file,
            same,
            &[
                "auditex",
                "serve",
                "--origin",
                "flag.example/ledger",
                "--listen=[::1]:1",
            ],
        );
        assert_eq!(store.origin, "flag.example/ledger");
        assert_eq!(http.listen.port(), 1);
        // The environment: the origin read from a variable every test process has (the process
        // environment is not changed here, nor anywhere).
        let path = std::env::var("PATH").expect("PATH is set");
        let from_path = |cmd: clap::Command| {
            cmd.mut_subcommand("serve", |c| c.mut_arg("origin", |a| a.env("PATH")))
        };
        let (store, _) = parse_with(&file, from_path, &["auditex", "serve"]);
        assert_eq!(store.origin, path);
        let (store, _) = parse_with(
            &file,
            from_path,
            &["auditex", "serve", "--origin", "flag.example/ledger"],
        );
        assert_eq!(store.origin, "flag.example/ledger");
    }

    #[test]
    fn a_database_password_from_a_config_file_is_not_shown_in_the_help() {
        let file = [(
            "AUDITEX_DATABASE_URL".to_owned(),
            "postgres://app:s3cret@db/ledger".to_owned(),
        )];
        let mut cmd = super::command(&file);
        let serve = cmd.find_subcommand_mut("serve").expect("serve");
        let help = serve.render_long_help().to_string();
        assert!(help.contains("--database-url"), "{help}");
        assert!(!help.contains("s3cret"), "{help}");
        let listen = [("AUDITEX_LISTEN".to_owned(), "127.0.0.1:9443".to_owned())];
        let mut cmd = super::command(&listen);
        let serve = cmd.find_subcommand_mut("serve").expect("serve");
        let help = serve.render_long_help().to_string();
        assert!(help.contains("[default: 127.0.0.1:9443]"), "{help}");
    }

    #[test]
    fn a_config_file_sets_known_settings_and_refuses_secrets_and_typos() {
        let dir = tempfile::tempdir().expect("tempdir");
        let known = known_settings();
        assert!(known.iter().any(|k| k == "AUDITEX_LISTEN"));
        let good = dir.path().join("good.env");
        std::fs::write(
            &good,
            "# comment\nAUDITEX_LISTEN=127.0.0.1:9443\nAUDITEX_RATE_PER_SECOND = 50\n",
        )
        .expect("write");
        let pairs = crate::config::read_config_file(&good, &known).expect("valid");
        assert_eq!(
            pairs[0],
            ("AUDITEX_LISTEN".to_owned(), "127.0.0.1:9443".to_owned())
        );
        assert_eq!(pairs[1].1, "50");
        for (text, needle) in [
            ("AUDITEX_MASTER_KEY=00\n", "secret"),
            ("AUDITEX_LISTN=x\n", "unknown setting AUDITEX_LISTN"),
            ("just words\n", "line 1"),
        ] {
            let bad = dir.path().join("bad.env");
            std::fs::write(&bad, text).expect("write");
            let e = crate::config::read_config_file(&bad, &known).expect_err("must refuse");
            assert!(e.to_string().contains(needle), "{e}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let pw = dir.path().join("pw.env");
            std::fs::write(
                &pw,
                "AUDITEX_DATABASE_URL=postgres://app:secret@db/ledger\n",
            )
            .expect("write");
            std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            assert!(
                crate::config::read_config_file(&pw, &known).is_err(),
                "a readable file with a password is refused"
            );
            std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            assert!(crate::config::read_config_file(&pw, &known).is_ok());
        }
    }
}
