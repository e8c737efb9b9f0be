//! The witness policy of `auditex verify` (`--witness VKEY … --quorum N`): evidence is accepted
//! only when its checkpoint carries valid C2SP cosignatures (Ed25519 `cosignature/v1`) of at least
//! N of the trusted witnesses, so a split view would need that many witnesses to collude.
//!
//! The cosignatures' timestamps are the checkpoint's signed time: the tree existed no later than
//! the N-th earliest of them (by then N witnesses had seen it). A cosignature made before the
//! latest capture time of the records the evidence proves is impossible for an honest log and
//! witness, and fails the evidence.

use std::path::Path;

use ledger::cosignature::{Cosignature, WitnessKey, verify_cosignatures};
use ledger::evidence::CosignatureInfo;
use ledger::note::Note;
use ledger::policy::Policy;

use super::{Failure, Outcome, Unusable, VerifyOptions, checkpoint_note_of};

/// What the checkpoint's cosignatures must satisfy.
enum Rule {
    /// `--witness … --quorum N`: N of these keys.
    Quorum(Vec<WitnessKey>, usize),
    /// `--policy FILE`: the policy's quorum.
    Policy(Policy),
}

impl Rule {
    fn witnesses(&self) -> &[WitnessKey] {
        match self {
            Rule::Quorum(keys, _) => keys,
            Rule::Policy(p) => p.witnesses(),
        }
    }

    fn satisfied(&self, cosigned: &[Cosignature]) -> bool {
        let keys: Vec<WitnessKey> = self
            .witnesses()
            .iter()
            .filter(|w| cosigned.iter().any(|c| c.key == *w.verifying_key()))
            .cloned()
            .collect();
        match self {
            Rule::Quorum(_, n) => keys.len() >= *n,
            Rule::Policy(p) => p.satisfied(&keys),
        }
    }

    fn describe(&self) -> String {
        match self {
            Rule::Quorum(_, n) => format!("a quorum of {n}"),
            Rule::Policy(_) => "the policy file's quorum".to_owned(),
        }
    }
}

/// The rule from the options; `None` without `--witness` or `--policy`.
fn rule(options: &VerifyOptions) -> Result<Option<Rule>, Unusable> {
    if let Some(path) = &options.policy {
        // Read like the trust (`Trust::load` read it for its logs' keys), from a file only.
        if path.as_os_str() == "-" {
            return Err(Unusable(
                "--policy is read from a file, not standard input".into(),
            ));
        }
        let text = super::read_small_text(path)?;
        let policy =
            Policy::parse(&text).map_err(|e| Unusable(format!("{}: {e}", path.display())))?;
        return Ok(Some(Rule::Policy(policy)));
    }
    if options.witnesses.is_empty() {
        return match options.quorum {
            Some(_) => Err(Unusable(
                "--quorum needs the witnesses it counts: pass --witness VKEY (repeatable)".into(),
            )),
            None => Ok(None),
        };
    }
    let mut keys: Vec<WitnessKey> = Vec::new();
    for text in &options.witnesses {
        let key = WitnessKey::parse(text.trim())
            .map_err(|e| Unusable(format!("--witness {text}: {e}")))?;
        if keys.contains(&key) {
            continue;
        }
        // One key under two names would count one witness twice (a policy file refuses it too).
        if keys
            .iter()
            .any(|k| k.verifying_key().as_bytes() == key.verifying_key().as_bytes())
        {
            return Err(Unusable(format!(
                "--witness {text}: the same public key is given under another name; a witness counts once"
            )));
        }
        keys.push(key);
    }
    let quorum = options.quorum.unwrap_or(keys.len());
    if quorum == 0 || quorum > keys.len() {
        return Err(Unusable(format!(
            "--quorum {quorum}: must be between 1 and the {} distinct witness key(s) given",
            keys.len()
        )));
    }
    Ok(Some(Rule::Quorum(keys, quorum)))
}

/// RFC 3339 of POSIX seconds, for people.
fn rfc3339(seconds: u64) -> String {
    i64::try_from(seconds)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(|| format!("{seconds} s"), |t| t.to_rfc3339())
}

/// Applies the witness policy to a verified outcome (a failed one is left as it is).
pub(super) fn apply(
    mut outcome: Outcome,
    options: &VerifyOptions,
    evidence: Option<&Path>,
) -> Result<Outcome, Unusable> {
    let Some(rule) = rule(options)? else {
        return Ok(outcome);
    };
    if !outcome.verified {
        return Ok(outcome);
    }
    let note = match (&outcome.note, evidence) {
        (Some(note), _) => note.clone(),
        (None, Some(path)) if path.as_os_str() != "-" => match checkpoint_note_of(path)? {
            Ok(note) => note,
            Err(f) => {
                outcome.verified = false;
                outcome.failure = Some(f);
                return Ok(outcome);
            }
        },
        _ => {
            return Err(Unusable(
                "--witness needs the evidence as a file (standard input is read once)".into(),
            ));
        }
    };
    let cosigned: Vec<Cosignature> = Note::parse(note.as_bytes())
        .map(|n| verify_cosignatures(&n, rule.witnesses()))
        .unwrap_or_default();
    outcome.cosignatures = cosigned
        .iter()
        .map(|c| CosignatureInfo {
            witness: c.name.clone(),
            timestamp: c.timestamp,
        })
        .collect();
    if !rule.satisfied(&cosigned) {
        outcome.verified = false;
        outcome.failure = Some(
            Failure::new(
                "witness_quorum",
                format!(
                    "the checkpoint carries valid cosignatures of {} of the trusted witnesses, which does not meet {}",
                    cosigned.len(),
                    rule.describe()
                ),
            )
            .expected_found(
                format!("cosignatures meeting {}", rule.describe()),
                format!(
                    "{} ({})",
                    cosigned.len(),
                    cosigned
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        );
        return Ok(outcome);
    }
    // A witness cannot have seen a tree before its records were captured.
    if let Some(captured) = outcome.captured_max_us
        && let Some(early) = cosigned
            .iter()
            .find(|c| c.timestamp.saturating_add(1).saturating_mul(1_000_000) <= captured)
    {
        outcome.verified = false;
        outcome.failure = Some(
            Failure::new(
                "signed_time_before_capture",
                format!(
                    "witness {} cosigned the checkpoint at {}, before the latest capture time of its records: the capture times or the witness's clock are wrong",
                    early.name,
                    rfc3339(early.timestamp)
                ),
            )
            .expected_found(
                format!("a cosignature at or after {captured} µs since the epoch"),
                format!("{} s since the epoch", early.timestamp),
            ),
        );
        return Ok(outcome);
    }
    let mut times: Vec<u64> = cosigned.iter().map(|c| c.timestamp).collect();
    times.sort_unstable();
    // With `--quorum N`, N witnesses had seen it by the N-th earliest time; under a policy file,
    // by the latest of the cosignatures counted.
    let by = match &rule {
        Rule::Quorum(_, n) => times.get(n - 1).copied(),
        Rule::Policy(_) => times.last().copied(),
    };
    let names: Vec<&str> = cosigned.iter().map(|c| c.name.as_str()).collect();
    outcome.proven.push(format!(
        "the checkpoint is cosigned by {} of the trusted witnesses ({}; {}){}{}",
        cosigned.len(),
        names.join(", "),
        rule.describe(),
        by.map_or_else(String::new, |t| format!(
            ": it existed, consistent with what each of them had seen, no later than {} (witnessed time)",
            rfc3339(t)
        )),
        if outcome.captured_max_us.is_some() {
            ", and not before its records were captured"
        } else {
            ""
        }
    ));
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn witness(name: &str, seed: u8) -> String {
        WitnessKey::new(name, SigningKey::from_bytes(&[seed; 32]).verifying_key())
            .expect("key")
            .to_string()
    }

    #[test]
    fn one_key_under_two_names_is_refused_and_the_quorum_is_bounded() {
        let options = |witnesses: Vec<String>, quorum| VerifyOptions {
            witnesses,
            quorum,
            ..VerifyOptions::default()
        };
        let twice = options(
            vec![witness("w.example/a", 1), witness("w.example/b", 1)],
            Some(2),
        );
        assert!(rule(&twice).is_err(), "one key cannot count twice");
        let same = options(
            vec![witness("w.example/a", 1), witness("w.example/a", 1)],
            None,
        );
        assert!(matches!(rule(&same), Ok(Some(Rule::Quorum(ref k, 1))) if k.len() == 1));
        let two = options(
            vec![witness("w.example/a", 1), witness("w.example/b", 2)],
            None,
        );
        assert!(matches!(rule(&two), Ok(Some(Rule::Quorum(_, 2)))));
        assert!(rule(&options(vec![witness("w.example/a", 1)], Some(2))).is_err());
        assert!(rule(&options(vec![], Some(1))).is_err());
        assert!(matches!(rule(&options(vec![], None)), Ok(None)));
    }
}
