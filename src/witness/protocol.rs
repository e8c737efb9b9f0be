//! The `add-checkpoint` call of C2SP tlog-witness: the request's syntax and the decision, in the
//! order and with the status codes the specification gives.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use ledger::checkpoint::Checkpoint;
use ledger::cosignature::{WitnessKey, cosign};
use ledger::merkle::{empty_root, verify_consistency};
use ledger::note::{Note, VerifierKey, verify_note};
use ledger::types::{Hash, TreeSize};

use super::state::{Evidence, Latest, WitnessState};

/// Most consistency proof lines a request may carry (the specification's limit).
pub const PROOF_LINES_MAX: usize = 63;

/// Largest `add-checkpoint` request body: a checkpoint note at its largest, plus the proof.
pub const REQUEST_BYTES_MAX: usize = ledger::note::NOTE_BYTES_MAX + 8 * 1024;

/// How often a request is decided again when another one moved the log's state meanwhile.
const ATTEMPTS_MAX: usize = 8;

/// The answer to an `add-checkpoint` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 200: the cosignature line(s).
    Cosigned(String),
    /// 409: the size of the latest cosigned checkpoint.
    Conflict(u64),
    /// 400 Bad Request.
    BadRequest(String),
    /// 403 Forbidden: not signed by the log.
    Forbidden(String),
    /// 404 Not Found: an unknown log.
    UnknownLog(String),
    /// 422 Unprocessable Entity: not consistent.
    Inconsistent(String),
    /// 500: the state could not be read or written.
    Failed(String),
}

/// A parsed request: the old size, the proof, the checkpoint note.
struct Request<'a> {
    old: u64,
    proof: Vec<Hash>,
    checkpoint: &'a str,
}

fn parse_decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

fn parse(body: &str) -> Result<Request<'_>, String> {
    let (head, checkpoint) = body
        .split_once("\n\n")
        .ok_or("the request has no empty line before the checkpoint")?;
    let mut lines = head.split('\n');
    let old = lines
        .next()
        .and_then(|l| l.strip_prefix("old "))
        .and_then(parse_decimal)
        .ok_or("the first line must be `old <size>`, a decimal without leading zeros")?;
    let mut proof = Vec::new();
    for line in lines {
        if proof.len() == PROOF_LINES_MAX {
            return Err(format!(
                "more than {PROOF_LINES_MAX} consistency proof lines"
            ));
        }
        let bytes = STANDARD
            .decode(line)
            .ok()
            .filter(|b| b.len() == 32 && STANDARD.encode(b) == line)
            .ok_or_else(|| format!("{line:?} is not a base64 hash of 32 bytes"))?;
        proof.push(Hash::from_slice(&bytes).map_err(|e| e.to_string())?);
    }
    Ok(Request {
        old,
        proof,
        checkpoint,
    })
}

/// A witness: its key, the logs it watches and its state.
pub struct Witness {
    key: SigningKey,
    vkey: WitnessKey,
    /// Each log's verifier keys, by origin.
    logs: HashMap<String, Vec<VerifierKey>>,
    state: WitnessState,
    /// The clock, in POSIX seconds (a test may set its own).
    clock: fn() -> u64,
}

fn system_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs().max(1))
}

impl Witness {
    /// A witness with `key` (named as `vkey`) watching the logs whose keys are `logs` (each
    /// named by its log's origin).
    pub fn new(
        key: SigningKey,
        vkey: WitnessKey,
        logs: Vec<VerifierKey>,
        state: WitnessState,
    ) -> Self {
        let mut by_origin: HashMap<String, Vec<VerifierKey>> = HashMap::new();
        for k in logs {
            by_origin.entry(k.name().to_owned()).or_default().push(k);
        }
        Witness {
            key,
            vkey,
            logs: by_origin,
            state,
            clock: system_seconds,
        }
    }

    /// The witness's public key.
    pub fn vkey(&self) -> &WitnessKey {
        &self.vkey
    }

    /// The state.
    pub fn state(&self) -> &WitnessState {
        &self.state
    }

    /// The origins watched.
    pub fn origins(&self) -> impl Iterator<Item = &str> {
        self.logs.keys().map(String::as_str)
    }

    /// Decides an `add-checkpoint` request.
    pub async fn add_checkpoint(&self, body: &[u8]) -> Answer {
        let Ok(text) = std::str::from_utf8(body) else {
            return Answer::BadRequest("the request is not UTF-8".into());
        };
        let request = match parse(text) {
            Ok(r) => r,
            Err(e) => return Answer::BadRequest(e),
        };
        let note = match Note::parse(request.checkpoint.as_bytes()) {
            Ok(n) => n,
            Err(e) => return Answer::BadRequest(format!("not a signed note: {e}")),
        };
        let checkpoint = match Checkpoint::parse_body(note.text()) {
            Ok(c) => c,
            Err(e) => return Answer::BadRequest(format!("not a checkpoint: {e}")),
        };
        let origin = checkpoint.origin();
        let Some(keys) = self.logs.get(origin) else {
            return Answer::UnknownLog(format!("this witness does not watch {origin:?}"));
        };
        let verified = match verify_note(&note, keys) {
            Ok(v) => v,
            Err(e) => return Answer::Forbidden(format!("not signed by the log: {e}")),
        };
        let size = checkpoint.size().get();
        // The state stores sizes as SQLite integers: a tree that large cannot be real.
        if i64::try_from(size).is_err() || i64::try_from(request.old).is_err() {
            return Answer::BadRequest("a tree size above 2^63 - 1".into());
        }
        if request.old > size {
            // A signed tree smaller than the one cosigned is kept: it may be a rollback.
            if let Ok(Some(latest)) = self.state.latest(origin).await
                && size < latest.size
            {
                self.keep(origin, "a checkpoint smaller than the one cosigned (a rollback, or a stale checkpoint)", Some(&latest), text).await;
            }
            return Answer::BadRequest(format!(
                "old size {} is larger than the checkpoint's size {size}",
                request.old
            ));
        }
        if size == 0 && checkpoint.root() != empty_root() {
            return Answer::Inconsistent(
                "a checkpoint of size 0 must have the empty tree's root".into(),
            );
        }
        if request.old == 0 && !request.proof.is_empty() {
            return Answer::Inconsistent("a proof from size 0 must be empty".into());
        }
        // The log's own signature lines, kept with the cosignature in the stored checkpoint.
        let log_lines: String = note
            .signatures()
            .iter()
            .filter(|s| {
                verified
                    .iter()
                    .any(|k| k.name() == s.name() && k.key_id() == s.key_id())
            })
            .map(|s| {
                let mut raw = s.key_id().as_bytes().to_vec();
                raw.extend_from_slice(s.signature_bytes());
                format!("\u{2014} {} {}\n", s.name(), STANDARD.encode(raw))
            })
            .collect();
        for _ in 0..ATTEMPTS_MAX {
            let latest = match self.state.latest(origin).await {
                Ok(l) => l,
                Err(e) => return Answer::Failed(e.to_string()),
            };
            let (stored_size, stored_root) = latest
                .as_ref()
                .map_or((0, empty_root()), |l| (l.size, l.root));
            if request.old != stored_size {
                return Answer::Conflict(stored_size);
            }
            if request.old == size {
                if checkpoint.root() != stored_root {
                    self.keep(
                        origin,
                        "another root at the size already cosigned (a fork)",
                        latest.as_ref(),
                        text,
                    )
                    .await;
                    return Answer::Inconsistent(format!(
                        "the root differs from the one cosigned at size {size}"
                    ));
                }
            } else if request.old > 0
                && verify_consistency(
                    TreeSize::new(request.old),
                    TreeSize::new(size),
                    &request.proof,
                    stored_root,
                    checkpoint.root(),
                )
                .is_err()
            {
                self.keep(origin, "the consistency proof from the cosigned checkpoint does not verify (a fork or a rewritten history)", latest.as_ref(), text).await;
                return Answer::Inconsistent(format!(
                    "the consistency proof from size {} to {size} does not verify",
                    request.old
                ));
            }
            let now = (self.clock)();
            let line = match cosign(self.vkey.name(), &self.key, note.text(), now) {
                Ok(l) => l,
                Err(e) => return Answer::Failed(e.to_string()),
            };
            let next = Latest {
                size,
                root: checkpoint.root(),
                checkpoint: format!("{}\n{log_lines}{line}", note.text()),
            };
            let from = latest.as_ref().map(|l| (l.size, l.root));
            match self.state.advance(origin, from, &next, now).await {
                Ok(true) => {
                    tracing::debug!(%origin, size, "cosigned");
                    return Answer::Cosigned(line);
                }
                // Another request moved the state meanwhile: decide again against it.
                Ok(false) => continue,
                Err(e) => return Answer::Failed(e.to_string()),
            }
        }
        Answer::Failed("the log's state kept moving; retry".into())
    }

    async fn keep(&self, origin: &str, reason: &str, latest: Option<&Latest>, request: &str) {
        tracing::warn!(%origin, reason, "refused a checkpoint signed by the log; keeping it as evidence");
        let evidence = Evidence {
            origin: origin.to_owned(),
            received_at: (self.clock)(),
            reason: reason.to_owned(),
            cosigned: latest.map(|l| l.checkpoint.clone()),
            request: request.to_owned(),
        };
        match self.state.keep_evidence(&evidence).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(%origin, "the same evidence is kept already, or the log's evidence is full")
            }
            Err(e) => tracing::error!(%origin, error = %e, "could not keep the evidence"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_exactly_as_the_spec_writes_them() {
        let body = "old 20852014\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\njrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
        let r = parse(body).expect("the spec's example parses");
        assert_eq!(r.old, 20_852_014);
        assert_eq!(r.proof.len(), 2);
        assert!(r.checkpoint.starts_with("example.com/behind-the-sofa\n"));
        assert_eq!(parse("old 0\n\nx").expect("no proof").proof.len(), 0);
        for bad in [
            "old 01\n\nx",
            "old -1\n\nx",
            "old\n\nx",
            "new 1\n\nx",
            "old 5\nnot-base64\n\nx",
            "old 5\nAAAA\n\nx",
            "old 5\nx",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let too_many = format!(
            "old 5\n{}\nx",
            "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n".repeat(64)
        );
        assert!(parse(&too_many).is_err());
    }
}
