//! `auditex retention set|show|run`: a tenant's retention policy for erasable values and the
//! retention run (docs/OPERATIONS.md "Retention and legal hold"). The rules, the six-month floor
//! for decision records and the run itself live in [`crate::store::retention`]; this module
//! parses, prints and reports progress.

use clap::Subcommand;
use ledger::types::TenantId;

use crate::cli::configure::open;
use crate::cli::result::CliResult;
use crate::config::StoreSettings;
use crate::store::retention::RetentionRule;

/// `auditex retention` commands.
#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Replace the tenant's retention policy (appends a signed `administration` record). Each
    /// `--rule` is `event_type=T,model_id=M,days=N` (event_type and model_id optional); the most
    /// specific matching rule applies to a record. Rules that erase decision records' personal
    /// data before 183 days (EU AI Act Art. 19, 26(6)) need `--override-minimum --reason`.
    Set {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// A rule (repeat for several).
        #[arg(long = "rule", value_name = "RULE")]
        rules: Vec<String>,
        /// Remove the policy (values are then kept until erased on request).
        #[arg(long, conflicts_with = "rules")]
        clear: bool,
        /// Accept rules under the six-month minimum for decision records (needs --reason).
        #[arg(long, requires = "reason")]
        override_minimum: bool,
        /// Why the minimum is overridden (recorded in the ledger).
        #[arg(long, requires = "override_minimum")]
        reason: Option<String>,
        /// Who sets the policy (recorded in the ledger). Defaults to $SUDO_USER or $USER.
        #[arg(long)]
        actor: Option<String>,
    },
    /// Print the tenant's retention policy (JSON).
    Show {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
    /// Erase the tenant's values past their rule now (held subjects and decisions are skipped),
    /// printing progress and a JSON summary.
    Run {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
}

/// Runs a retention command.
///
/// # Errors
/// Bad rules or settings, a policy under the minimum without override, or the store's error.
pub async fn run(settings: &StoreSettings, command: RetentionCommand) -> CliResult {
    let store = open(settings).await?;
    let result = match command {
        RetentionCommand::Set {
            tenant,
            rules,
            clear,
            override_minimum: _,
            reason,
            actor,
        } => {
            let tenant = TenantId::parse(&tenant)?;
            if rules.is_empty() && !clear {
                store.shutdown().await;
                return Err("give at least one --rule (or --clear to remove the policy)".into());
            }
            let parsed: Result<Vec<RetentionRule>, String> = rules
                .iter()
                .enumerate()
                .map(|(i, r)| RetentionRule::parse(r).map_err(|e| format!("--rule {}: {e}", i + 1)))
                .collect();
            let actor = actor
                .or_else(|| std::env::var("SUDO_USER").ok())
                .or_else(|| std::env::var("USER").ok())
                .filter(|a| !a.trim().is_empty());
            match (parsed, actor) {
                (Err(e), _) => Err(e.into()),
                (_, None) => Err("say who sets the policy with --actor NAME".into()),
                (Ok(rules), Some(actor)) => {
                    let n = rules.len();
                    match store
                        .set_retention_policy(&tenant, rules, &actor, reason.as_deref())
                        .await
                    {
                        Ok(receipt) => {
                            println!("{}", serde_json::to_string(&receipt)?);
                            eprintln!(
                                "retention policy of {tenant} set by {actor}: {n} rule(s), record {}",
                                receipt.seq
                            );
                            Ok(())
                        }
                        Err(e) => Err(e.into()),
                    }
                }
            }
        }
        RetentionCommand::Show { tenant } => {
            let tenant = TenantId::parse(&tenant)?;
            match store.retention_policy(&tenant).await {
                Ok(policy) => {
                    println!("{}", serde_json::to_string_pretty(&policy)?);
                    if policy.rules.is_empty() {
                        eprintln!(
                            "{tenant} has no retention policy: values are kept until erased on request"
                        );
                    }
                    Ok(())
                }
                Err(e) => Err(e.into()),
            }
        }
        RetentionCommand::Run { tenant } => {
            let tenant = TenantId::parse(&tenant)?;
            let outcome = store
                .run_retention(&tenant, |p| {
                    eprintln!(
                        "retention {tenant}: {} subject(s) erased, {} value(s), {} held subject(s) skipped",
                        p.subjects, p.values, p.held
                    );
                })
                .await;
            match outcome {
                Ok(run) => {
                    println!("{}", serde_json::to_string(&run)?);
                    eprintln!(
                        "retention {tenant} done: {} value(s) of {} subject(s) erased in {} erasure record(s); {} held subject(s) skipped",
                        run.values, run.subjects, run.erasures, run.held
                    );
                    Ok(())
                }
                Err(e) => Err(e.into()),
            }
        }
    };
    store.shutdown().await;
    result
}
