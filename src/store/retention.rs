//! Retention of erasable values (docs/OPERATIONS.md "Retention and legal hold").
//!
//! A tenant's **policy** is a list of rules `{event_type?, model_id?, erase_after_days}`. The
//! rule that applies to a record is the most specific one matching it (event type and model,
//! then event type, then model, then a rule naming neither; among equals the first listed);
//! a record no rule matches is kept. A record's model is its payload's `model_id` (decisions and
//! model changes carry one). The ledger records themselves are never deleted: retention erases
//! the erasable values beside them, through [`Store::erase_subject`] with legal basis
//! `retention`, so each erasure is an `erasure` record like any other.
//!
//! **The six-month floor.** The EU AI Act (Art. 19 and 26(6)) requires logs of high-risk systems
//! to be kept at least six months; a rule that would erase `decision` records' personal data
//! sooner than [`RETENTION_DECISION_MINIMUM_DAYS`] is refused unless the caller overrides it
//! with a reason. Setting a policy appends a signed `administration` record (action
//! `retention_policy_set`, the rules); an override appends a `retention_minimum_override`
//! record with the reason in the same batch. The appender writes `retention_rules` in the
//! transaction of the policy record, so the table never says what the ledger does not.
//!
//! **The scheduler** ([`Store::run_retention`], run by a worker every
//! `StoreConfig::retention_interval` and by `auditex retention run`) finds the records whose
//! values have outlived their rule (by capture time), leaves out held subjects and held
//! decisions (see `holds.rs`), and asks one erasure per subject naming the expired records, in
//! batches of [`EXPIRED_BATCH_RECORDS`] records so that a long backlog is not held in memory.

use std::collections::{BTreeMap, BTreeSet};

use ledger::record::{EventType, Record};
use ledger::types::{EventId, TenantId};
use serde_json::Value;

use super::service_draft::ServiceDraft;
use super::subjects::{ErasureError, SubjectErasure};
use super::{AppendError, Receipt, Store, StoreError};

/// The shortest time a rule may keep `decision` records' personal data without an override
/// (six months, EU AI Act Art. 19 and 26(6)), in days.
pub const RETENTION_DECISION_MINIMUM_DAYS: u64 = 183;

/// Default of `StoreConfig::retention_interval` for the service, in seconds (hourly).
pub const RETENTION_INTERVAL_S_DEFAULT: u64 = 3600;

/// Most rules one policy may hold.
pub const RETENTION_RULES_MAX: usize = 100;

/// Longest time a rule may name, in days (a century: beyond it, keep forever by naming no rule).
pub const RETENTION_DAYS_MAX: u64 = 36_525;

/// The `action` of the administration record that sets a policy.
pub const POLICY_SET_ACTION: &str = "retention_policy_set";

/// The `action` of the administration record that overrides the six-month floor.
pub const MINIMUM_OVERRIDE_ACTION: &str = "retention_minimum_override";

/// Records named per erasure (the payload limit of a list).
const ERASURE_EVENT_IDS_MAX: usize = 1000;

/// Candidate records read per page.
const CANDIDATES_PAGE: u64 = 1000;

/// Expired records gathered before they are erased: a run's memory is bounded by this, not by
/// how much expired since the last run.
const EXPIRED_BATCH_RECORDS: usize = 10_000;

const DAY_US: u64 = 86_400_000_000;

/// One retention rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RetentionRule {
    /// Only records of this event type (any when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Only records whose payload's `model_id` is this (any when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// Erase the values this many days after the record's capture.
    pub erase_after_days: u64,
}

impl RetentionRule {
    /// Parses `event_type=decision,model_id=credit,days=400` (members in any order; `days`
    /// required).
    ///
    /// # Errors
    /// What is wrong, naming the member.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rule = RetentionRule {
            event_type: None,
            model_id: None,
            erase_after_days: 0,
        };
        let mut days = None;
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not name=value"))?;
            let value = value.trim();
            match name.trim() {
                "event_type" => rule.event_type = Some(value.to_owned()),
                "model_id" => rule.model_id = Some(value.to_owned()),
                "days" | "erase_after_days" => {
                    days = Some(value.parse::<u64>().map_err(|_| {
                        format!("days must be a whole number of days, not {value:?}")
                    })?);
                }
                other => {
                    return Err(format!(
                        "unknown member {other:?} (use event_type, model_id, days)"
                    ));
                }
            }
        }
        rule.erase_after_days = days.ok_or("days is required (e.g. days=365)")?;
        rule.check()?;
        Ok(rule)
    }

    /// Checks the rule's members.
    fn check(&self) -> Result<(), String> {
        if self.erase_after_days == 0 || self.erase_after_days > RETENTION_DAYS_MAX {
            return Err(format!(
                "days must be 1 to {RETENTION_DAYS_MAX} (got {})",
                self.erase_after_days
            ));
        }
        if let Some(t) = &self.event_type {
            EventType::parse(t).map_err(|e| format!("event_type: {e}"))?;
        }
        if let Some(m) = &self.model_id
            && (m.trim().is_empty() || m.len() > 1024)
        {
            return Err("model_id must be 1 to 1024 bytes".into());
        }
        Ok(())
    }

    fn matches(&self, event_type: &str, model_id: Option<&str>) -> bool {
        self.event_type.as_deref().is_none_or(|t| t == event_type)
            && self.model_id.as_deref().is_none_or(|m| Some(m) == model_id)
    }

    fn specificity(&self) -> u8 {
        u8::from(self.event_type.is_some()) * 2 + u8::from(self.model_id.is_some())
    }
}

impl std::fmt::Display for RetentionRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(t) = &self.event_type {
            write!(f, "event_type={t},")?;
        }
        if let Some(m) = &self.model_id {
            write!(f, "model_id={m},")?;
        }
        write!(f, "days={}", self.erase_after_days)
    }
}

/// The index of the rule that applies to a record of `event_type` and `model_id`.
pub fn applicable(
    rules: &[RetentionRule],
    event_type: &str,
    model_id: Option<&str>,
) -> Option<usize> {
    rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.matches(event_type, model_id))
        // `max_by_key` keeps the last of equals: compare on (specificity, reversed position).
        .max_by_key(|(i, r)| (r.specificity(), std::cmp::Reverse(*i)))
        .map(|(i, _)| i)
}

/// The rules (by index) that decide some decision record's retention with fewer days than the
/// EU AI Act minimum: the rule [`applicable`] picks for decisions of each model a rule names, of a
/// model no rule names, and of none. A catch-all that a decision rule always outranks never
/// reaches a decision, so it needs no override.
pub fn decision_rules_below_minimum(rules: &[RetentionRule]) -> Vec<usize> {
    let unnamed = "\u{0}a model no rule names";
    let models = std::iter::once(None)
        .chain(std::iter::once(Some(unnamed)))
        .chain(rules.iter().filter_map(|r| r.model_id.as_deref().map(Some)));
    let deciding: std::collections::BTreeSet<usize> = models
        .filter_map(|m| applicable(rules, EventType::Decision.as_str(), m))
        .collect();
    deciding
        .into_iter()
        .filter(|i| rules[*i].erase_after_days < RETENTION_DECISION_MINIMUM_DAYS)
        .collect()
}

/// The policy a group's records set: the last `retention_policy_set` administration record
/// among them, with its rules.
///
/// # Errors
/// [`StoreError::Corrupt`] when such a record's rules cannot be read (the service wrote it).
pub(crate) fn policy_of_records(
    records: &[Record],
) -> Result<Option<(u64, Vec<RetentionRule>)>, StoreError> {
    let mut out = None;
    for r in records
        .iter()
        .filter(|r| r.event_type == EventType::Administration)
    {
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(r.payload.as_str()) else {
            continue;
        };
        if map.get("action").and_then(Value::as_str) != Some(POLICY_SET_ACTION) {
            continue;
        }
        let rules: Vec<RetentionRule> = serde_json::from_value(
            map.get("rules").cloned().unwrap_or(Value::Null),
        )
        .map_err(|e| StoreError::Corrupt(format!("retention policy record {}: {e}", r.seq)))?;
        out = Some((r.seq.get(), rules));
    }
    Ok(out)
}

/// A record holding erasable values, as the scheduler reads it.
#[derive(Debug, Clone)]
pub(crate) struct RetentionCandidate {
    pub seq: i64,
    pub event_id: String,
    pub event_type: String,
    pub captured_at_us: u64,
    pub payload: String,
    pub subject_ref: String,
}

/// A subject's expired records, each with the decisions it is or names, and the indexes of the
/// rules that expired them.
type Expired = (Vec<(String, BTreeSet<String>)>, BTreeSet<usize>);

/// A tenant's retention policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RetentionPolicy {
    /// The rules, in order (none: values are kept until erased on request).
    pub rules: Vec<RetentionRule>,
    /// The `administration` record that set them.
    pub set_by_seq: Option<u64>,
}

/// Why a policy was refused; nothing was appended.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// A rule is malformed (names the rule and the problem).
    #[error("rule {index}: {problem}")]
    BadRule {
        /// The rule's position (from 1).
        index: usize,
        /// What is wrong.
        problem: String,
    },
    /// A rule would erase decision records' personal data before six months.
    #[error(
        "rule {index} ({rule}) erases decision records' personal data after {} days, below the \
         minimum of {RETENTION_DECISION_MINIMUM_DAYS} days (EU AI Act Art. 19 and 26(6)); \
         override only with --override-minimum and a reason", rule.erase_after_days
    )]
    BelowMinimum {
        /// The rule's position (from 1).
        index: usize,
        /// The rule.
        rule: RetentionRule,
    },
    /// Too many rules, an empty actor or an empty override reason.
    #[error("{0}")]
    Invalid(String),
    /// The append failed.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// A database error.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one retention run did for a tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RetentionRun {
    /// Subjects with expired values that were erased (once per batch of expired records).
    pub subjects: u64,
    /// Values erased.
    pub values: u64,
    /// `erasure` records appended.
    pub erasures: u64,
    /// Subjects with expired values left alone because of a legal hold (once per batch).
    pub held: u64,
}

impl Store {
    /// Replaces the tenant's retention policy: appends a signed `administration` record naming
    /// `actor` and the rules (and, when `override_reason` is given, a
    /// `retention_minimum_override` record before it). An empty `rules` removes the policy.
    ///
    /// # Errors
    /// [`RetentionError::BelowMinimum`] for a rule under six months for decision records
    /// without an override; [`RetentionError::BadRule`] / [`RetentionError::Invalid`] for bad
    /// input; append and database errors. Nothing is appended then.
    pub async fn set_retention_policy(
        &self,
        tenant: &TenantId,
        rules: Vec<RetentionRule>,
        actor: &str,
        override_reason: Option<&str>,
    ) -> Result<Receipt, RetentionError> {
        if actor.trim().is_empty() || actor.len() > 1024 {
            return Err(RetentionError::Invalid(
                "actor must be 1 to 1024 bytes".into(),
            ));
        }
        if rules.len() > RETENTION_RULES_MAX {
            return Err(RetentionError::Invalid(format!(
                "a policy holds at most {RETENTION_RULES_MAX} rules (got {})",
                rules.len()
            )));
        }
        for (i, rule) in rules.iter().enumerate() {
            rule.check().map_err(|problem| RetentionError::BadRule {
                index: i + 1,
                problem,
            })?;
        }
        let below: Vec<(usize, &RetentionRule)> = decision_rules_below_minimum(&rules)
            .into_iter()
            .map(|i| (i, &rules[i]))
            .collect();
        let mut drafts = Vec::new();
        match (below.first(), override_reason) {
            (Some((i, rule)), None) => {
                return Err(RetentionError::BelowMinimum {
                    index: i + 1,
                    rule: (*rule).clone(),
                });
            }
            (Some(_), Some(reason)) => {
                if reason.trim().is_empty() || reason.len() > 16 * 1024 {
                    return Err(RetentionError::Invalid(
                        "the override reason must be 1 to 16384 bytes".into(),
                    ));
                }
                let below_rules: Vec<&RetentionRule> = below.iter().map(|(_, r)| *r).collect();
                drafts.push(service_draft(&serde_json::json!({
                    "actor": actor,
                    "action": MINIMUM_OVERRIDE_ACTION,
                    "target": "retention_policy",
                    "reason": reason,
                    "minimum_days": RETENTION_DECISION_MINIMUM_DAYS,
                    "rules": below_rules,
                }))?);
            }
            (None, _) => {}
        }
        drafts.push(service_draft(&serde_json::json!({
            "actor": actor,
            "action": POLICY_SET_ACTION,
            "target": "retention_policy",
            "rules": rules,
        }))?);
        self.append_service(tenant, drafts)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt("an append returned no receipt".into()).into())
    }

    /// The tenant's retention policy.
    ///
    /// # Errors
    /// A database error.
    pub async fn retention_policy(&self, tenant: &TenantId) -> Result<RetentionPolicy, StoreError> {
        let rows = self.backend().retention_policy(tenant).await?;
        Ok(RetentionPolicy {
            set_by_seq: rows.first().and_then(|(_, seq)| u64::try_from(*seq).ok()),
            rules: rows.into_iter().map(|(r, _)| r).collect(),
        })
    }

    /// Erases the tenant's values that have outlived their retention rule, except held ones:
    /// one erasure (legal basis `retention`) per subject naming the expired records.
    /// `progress` is called after each subject.
    ///
    /// # Errors
    /// A database or append error (erasures made before it stay made).
    pub async fn run_retention(
        &self,
        tenant: &TenantId,
        mut progress: impl FnMut(&RetentionRun),
    ) -> Result<RetentionRun, StoreError> {
        let mut run = RetentionRun::default();
        let policy = self.retention_policy(tenant).await?;
        let Some(shortest) = policy.rules.iter().map(|r| r.erase_after_days).min() else {
            return Ok(run);
        };
        let now = self.config().clock.now_unix_micros();
        let before = now.saturating_sub(shortest.saturating_mul(DAY_US));
        let mut expired: BTreeMap<String, Expired> = BTreeMap::new();
        let mut pending = 0usize;
        // The candidates of a page are numbered above `after`, and chains are numbered from 0:
        // the first page must start below every seq, or the chain's first record is never read.
        let mut after = -1i64;
        'pages: loop {
            let page = self
                .backend()
                .retention_candidates(tenant, after, CANDIDATES_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for c in page {
                // Capture times never decrease along a chain (FORMAT.md section 3), so the first
                // record inside the shortest rule ends the scan: nothing after it can expire.
                if c.captured_at_us >= before {
                    break 'pages;
                }
                let payload: serde_json::Map<String, Value> = match serde_json::from_str(&c.payload)
                {
                    Ok(Value::Object(map)) => map,
                    _ => continue,
                };
                let model = payload.get("model_id").and_then(Value::as_str);
                let Some(i) = applicable(&policy.rules, &c.event_type, model) else {
                    continue;
                };
                let days = policy.rules[i].erase_after_days;
                if c.captured_at_us.saturating_add(days.saturating_mul(DAY_US)) > now {
                    continue;
                }
                let mut decisions: BTreeSet<String> = EventType::parse(&c.event_type)
                    .map(|t| ledger::payload::linked_decisions(t, &payload))
                    .unwrap_or_default()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                decisions.insert(c.event_id.clone());
                let entry = expired.entry(c.subject_ref).or_default();
                entry.0.push((c.event_id, decisions));
                entry.1.insert(i);
                pending += 1;
            }
            // A run over years of data erases as it goes, holding a bounded batch in memory.
            if pending >= EXPIRED_BATCH_RECORDS {
                self.erase_expired(
                    tenant,
                    &policy,
                    std::mem::take(&mut expired),
                    &mut run,
                    &mut progress,
                )
                .await?;
                pending = 0;
            }
        }
        self.erase_expired(tenant, &policy, expired, &mut run, &mut progress)
            .await?;
        tracing::info!(tenant = %tenant, subjects = run.subjects, values = run.values,
            erasures = run.erasures, held = run.held, "retention run");
        Ok(run)
    }

    /// Erases one batch of expired records: per subject, unless a hold covers it, one erasure
    /// per [`ERASURE_EVENT_IDS_MAX`] records.
    async fn erase_expired(
        &self,
        tenant: &TenantId,
        policy: &RetentionPolicy,
        expired: BTreeMap<String, Expired>,
        run: &mut RetentionRun,
        progress: &mut impl FnMut(&RetentionRun),
    ) -> Result<(), StoreError> {
        if expired.is_empty() {
            return Ok(());
        }
        let subjects: Vec<&str> = expired.keys().map(String::as_str).collect();
        let holds = self.backend().active_holds(tenant, &subjects).await?;
        for (subject, (records, rule_ids)) in &expired {
            let subject_holds: Vec<_> =
                holds.iter().filter(|h| &h.subject_ref == subject).collect();
            if subject_holds.iter().any(|h| h.decision_id.is_none()) {
                run.held += 1;
                progress(run);
                continue;
            }
            let held_decisions: BTreeSet<&str> = subject_holds
                .iter()
                .filter_map(|h| h.decision_id.as_deref())
                .collect();
            let ids: Vec<EventId> = records
                .iter()
                .filter(|(_, ds)| !ds.iter().any(|d| held_decisions.contains(d.as_str())))
                .filter_map(|(id, _)| EventId::parse(id).ok())
                .collect();
            if ids.len() < records.len() {
                run.held += 1;
            }
            let rules: Vec<String> = rule_ids
                .iter()
                .map(|i| format!("rule {} ({})", i + 1, policy.rules[*i]))
                .collect();
            let mut erased_any = false;
            for chunk in ids.chunks(ERASURE_EVENT_IDS_MAX) {
                let request = SubjectErasure {
                    subject_ref: subject.clone(),
                    event_ids: Some(chunk.to_vec()),
                    fields: None,
                    reason: format!("retention period over: {}", rules.join(", ")),
                    legal_basis: "retention".into(),
                };
                match self.erase_subject(tenant, request).await {
                    Ok(outcome) => {
                        run.values += outcome.erased;
                        if !outcome.receipt.duplicate {
                            run.erasures += 1;
                        }
                        erased_any = true;
                    }
                    // Placed since the holds were read: the hold wins.
                    Err(ErasureError::Held { .. }) => run.held += 1,
                    Err(ErasureError::Store(e)) => return Err(e),
                    Err(ErasureError::Append(AppendError::Store(e))) => return Err(e),
                    Err(e) => {
                        tracing::warn!(tenant = %tenant, subject = %subject, error = %e,
                            "retention could not erase a subject's expired values; will retry");
                    }
                }
            }
            if erased_any {
                run.subjects += 1;
            }
            progress(run);
        }
        Ok(())
    }

    /// Runs retention for every tenant with a policy (the scheduler's tick). One tenant's
    /// failure is logged and does not stop the others.
    pub(crate) async fn run_retention_all(&self) {
        let tenants = match self.tenants().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "retention: cannot list tenants; will retry");
                return;
            }
        };
        for tenant in tenants {
            if self.inner.closed.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            if let Err(e) = self.run_retention(&tenant, |_| {}).await {
                tracing::warn!(tenant = %tenant, error = %e, "retention run failed; will retry");
            }
        }
    }
}

/// How often the scheduler looks whether the store is shutting down while it waits.
const SHUTDOWN_POLL_MS: u64 = 200;

/// Starts the retention scheduler: a run over every tenant each `interval`, the first one
/// `interval` after the start (a restart loop must not become a retention storm); it stops
/// when the store shuts down.
pub(crate) fn spawn_scheduler(
    store: Store,
    interval: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let poll = std::time::Duration::from_millis(SHUTDOWN_POLL_MS).min(interval);
        loop {
            let due = tokio::time::Instant::now() + interval;
            while tokio::time::Instant::now() < due {
                if store.inner.closed.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                tokio::time::sleep(poll).await;
            }
            store.run_retention_all().await;
        }
    })
}

fn service_draft(payload: &Value) -> Result<ServiceDraft, RetentionError> {
    ServiceDraft::prepare(
        &uuid::Uuid::now_v7().to_string(),
        EventType::Administration,
        payload,
    )
    .map_err(|e| RetentionError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::{RetentionRule, applicable, decision_rules_below_minimum};

    fn rule(text: &str) -> RetentionRule {
        RetentionRule::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn the_most_specific_matching_rule_applies_and_the_first_of_equals() {
        let rules = [
            rule("days=3650"),
            rule("model_id=credit,days=400"),
            rule("event_type=decision,days=365"),
            rule("event_type=decision,model_id=credit,days=200"),
            rule("event_type=decision,days=999"),
        ];
        assert_eq!(applicable(&rules, "decision", Some("credit")), Some(3));
        assert_eq!(applicable(&rules, "decision", Some("other")), Some(2));
        assert_eq!(applicable(&rules, "model_change", Some("credit")), Some(1));
        assert_eq!(applicable(&rules, "contest", None), Some(0));
        assert_eq!(applicable(&rules[1..2], "contest", None), None);
    }

    #[test]
    fn only_rules_that_decide_some_decisions_retention_must_respect_the_six_month_floor() {
        // The catch-all never reaches a decision: the decision rule outranks it for every model.
        let rules = [rule("days=30"), rule("event_type=decision,days=400")];
        assert_eq!(decision_rules_below_minimum(&rules), Vec::<usize>::new());
        // With decision rules for one model only, the catch-all decides the other models'.
        let rules = [
            rule("days=30"),
            rule("event_type=decision,model_id=credit,days=400"),
        ];
        assert_eq!(decision_rules_below_minimum(&rules), vec![0]);
        // A short rule for one model's decisions, and a short decision rule.
        let rules = [
            rule("event_type=decision,days=400"),
            rule("model_id=credit,days=20"),
            rule("event_type=decision,model_id=aml,days=10"),
        ];
        assert_eq!(decision_rules_below_minimum(&rules), vec![2]);
        assert_eq!(
            decision_rules_below_minimum(&[rule("model_id=credit,days=20")]),
            vec![0]
        );
        assert_eq!(
            decision_rules_below_minimum(&[rule("event_type=contest,days=1")]),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn a_malformed_rule_is_refused_naming_the_member() {
        for (text, expected) in [
            ("event_type=decision", "days is required"),
            ("days=0", "days must be 1 to"),
            ("days=ten", "days must be a whole number"),
            ("event_type=nope,days=200", "event_type: unknown event type"),
            ("colour=red,days=200", "unknown member \"colour\""),
            ("days", "is not name=value"),
        ] {
            let e = RetentionRule::parse(text).expect_err(text);
            assert!(e.contains(expected), "{text}: {e}");
        }
        assert_eq!(rule(" days = 200 ").to_string(), "days=200");
    }
}
