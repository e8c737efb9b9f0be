//! C2SP tlog-policy (<https://c2sp.org/tlog-policy>): which logs are trusted, which witnesses,
//! and the quorum of witnesses whose cosignatures make a checkpoint valid.
//!
//! ```text
//! log <vkey> [<url>]
//! witness <name> <vkey> [<url>]
//! group <name> all|any|<k> <name>...
//! quorum <name>|none
//! ```
//!
//! Parsing follows the specification: lines end in LF, items are separated by spaces and tabs,
//! `#` starts a comment line, a group or the quorum may name only what earlier lines defined,
//! each name is listed as a group member at most once (in all groups together), duplicate keys are refused, exactly one
//! quorum line. Log keys are Ed25519 checkpoint keys (type 0x01) and witness keys Ed25519
//! cosignature keys (type 0x04), the types Auditex verifies.

use std::collections::{HashMap, HashSet};

use crate::cosignature::WitnessKey;
use crate::note::VerifierKey;

/// Most logs, witnesses and groups a policy may define (the specification recommends at
/// least 32 each).
pub const POLICY_ITEMS_MAX: usize = 256;

/// Why a policy file was refused, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy line {line}: {problem}")]
pub struct PolicyError {
    /// The line.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

/// A member of a group, or the quorum: a witness or a group, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Witness(usize),
    Group(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    threshold: usize,
    members: Vec<Member>,
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    logs: Vec<VerifierKey>,
    witnesses: Vec<WitnessKey>,
    groups: Vec<Group>,
    /// `None` for `quorum none`.
    quorum: Option<Member>,
}

impl Policy {
    /// Parses a policy file.
    ///
    /// # Errors
    /// [`PolicyError`] naming the first line that breaks the specification.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let mut logs: Vec<VerifierKey> = Vec::new();
        let mut witnesses: Vec<WitnessKey> = Vec::new();
        let mut groups: Vec<Group> = Vec::new();
        let mut names: HashMap<String, Member> = HashMap::new();
        let mut quorum: Option<Option<Member>> = None;
        let mut keys_seen: HashSet<[u8; 32]> = HashSet::new();
        // "Each defined name can be listed as a group member at most once" — in all groups
        // together, so that a witness contributes to the quorum in one way only.
        let mut listed: Vec<Member> = Vec::new();
        let lines: Vec<&str> = match text.strip_suffix('\n') {
            Some(body) => body.split('\n').collect(),
            None if text.is_empty() => Vec::new(),
            None => text.split('\n').collect(),
        };
        for (i, raw) in lines.iter().enumerate() {
            let line = i + 1;
            let fail = |problem: String| PolicyError { line, problem };
            if let Some(b) = raw.bytes().find(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                return Err(fail(format!("control character {b:#04x}")));
            }
            let items: Vec<&str> = raw
                .split([' ', '\t'])
                .filter(|item| !item.is_empty())
                .collect();
            let Some(&keyword) = items.first() else {
                continue;
            };
            if keyword.starts_with('#') {
                continue;
            }
            // Only definitions count: the quorum line after the last one is always allowed.
            if matches!(keyword, "log" | "witness" | "group")
                && logs.len() + witnesses.len() + groups.len() >= POLICY_ITEMS_MAX
            {
                return Err(fail(format!("more than {POLICY_ITEMS_MAX} definitions")));
            }
            match keyword {
                "log" => {
                    if !(2..=3).contains(&items.len()) {
                        return Err(fail("a log line is `log <vkey> [<url>]`".into()));
                    }
                    let key =
                        VerifierKey::parse(items[1]).map_err(|e| fail(format!("log key: {e}")))?;
                    if !keys_seen.insert(*key.verifying_key().as_bytes()) {
                        return Err(fail("a duplicate key".into()));
                    }
                    logs.push(key);
                }
                "witness" => {
                    if !(3..=4).contains(&items.len()) {
                        return Err(fail(
                            "a witness line is `witness <name> <vkey> [<url>]`".into(),
                        ));
                    }
                    let name = items[1];
                    if name == "none" || names.contains_key(name) {
                        return Err(fail(format!("the name {name:?} is taken")));
                    }
                    let key = WitnessKey::parse(items[2])
                        .map_err(|e| fail(format!("witness key: {e}")))?;
                    if !keys_seen.insert(*key.verifying_key().as_bytes()) {
                        return Err(fail("a duplicate key".into()));
                    }
                    names.insert(name.to_owned(), Member::Witness(witnesses.len()));
                    witnesses.push(key);
                }
                "group" => {
                    if items.len() < 4 {
                        return Err(fail(
                            "a group line is `group <name> all|any|<k> <name>...`".into(),
                        ));
                    }
                    let name = items[1];
                    if name == "none" || names.contains_key(name) {
                        return Err(fail(format!("the name {name:?} is taken")));
                    }
                    let mut members = Vec::new();
                    for member in &items[3..] {
                        let m = *names
                            .get(*member)
                            .ok_or_else(|| fail(format!("{member:?} is not defined above")))?;
                        if members.contains(&m) || listed.contains(&m) {
                            return Err(fail(format!("{member:?} is listed twice")));
                        }
                        members.push(m);
                    }
                    let n = members.len();
                    let threshold = match items[2] {
                        "all" => n,
                        "any" => 1,
                        k => {
                            let canonical =
                                k.bytes().all(|b| b.is_ascii_digit()) && !k.starts_with('0');
                            let k: usize =
                                canonical.then(|| k.parse().ok()).flatten().ok_or_else(|| {
                                    fail(format!("threshold {k:?} is not all, any or a decimal"))
                                })?;
                            if k == 0 || k > n {
                                return Err(fail(format!(
                                    "threshold {k} is not between 1 and {n}"
                                )));
                            }
                            k
                        }
                    };
                    listed.extend(members.iter().copied());
                    names.insert(name.to_owned(), Member::Group(groups.len()));
                    groups.push(Group { threshold, members });
                }
                "quorum" => {
                    if items.len() != 2 {
                        return Err(fail("a quorum line is `quorum <name>`".into()));
                    }
                    if quorum.is_some() {
                        return Err(fail("a second quorum line".into()));
                    }
                    quorum =
                        Some(if items[1] == "none" {
                            None
                        } else {
                            Some(*names.get(items[1]).ok_or_else(|| {
                                fail(format!("{:?} is not defined above", items[1]))
                            })?)
                        });
                }
                other => return Err(fail(format!("unknown keyword {other:?}"))),
            }
        }
        let quorum = quorum.ok_or(PolicyError {
            line: lines.len(),
            problem: "no quorum line".into(),
        })?;
        Ok(Policy {
            logs,
            witnesses,
            groups,
            quorum,
        })
    }

    /// The trusted logs' checkpoint keys.
    pub fn logs(&self) -> &[VerifierKey] {
        &self.logs
    }

    /// The witnesses' keys.
    pub fn witnesses(&self) -> &[WitnessKey] {
        &self.witnesses
    }

    /// Whether the witnesses whose cosignatures verified (by key) satisfy the quorum.
    pub fn satisfied(&self, cosigned: &[WitnessKey]) -> bool {
        let Some(quorum) = self.quorum else {
            return true;
        };
        let witnessed: Vec<bool> = self
            .witnesses
            .iter()
            .map(|w| cosigned.contains(w))
            .collect();
        // Groups only name earlier definitions, so one pass in order settles every group.
        let mut groups: Vec<bool> = Vec::with_capacity(self.groups.len());
        for g in &self.groups {
            let count = g
                .members
                .iter()
                .filter(|m| match m {
                    Member::Witness(i) => witnessed[*i],
                    Member::Group(i) => groups[*i],
                })
                .count();
            groups.push(count >= g.threshold);
        }
        match quorum {
            Member::Witness(i) => witnessed[i],
            Member::Group(i) => groups[i],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn wkey(seed: u8) -> WitnessKey {
        WitnessKey::new(
            &format!("witness.example/{seed}"),
            SigningKey::from_bytes(&[seed; 32]).verifying_key(),
        )
        .expect("key")
    }

    fn lkey() -> VerifierKey {
        VerifierKey::new(
            "log.example/a",
            SigningKey::from_bytes(&[1; 32]).verifying_key(),
        )
        .expect("key")
    }

    /// The specification's example, with keys.
    fn example() -> String {
        let w: Vec<String> = (11..=16).map(|s| wkey(s).to_string()).collect();
        format!(
            "log {}\n\n# the X organization\nwitness X1 {}\nwitness X2 {}\nwitness X3 {} https://x3.example/\ngroup X-witnesses 2 X1 X2 X3\n\n\twitness Y1 {}\nwitness Y2 {}\nwitness Y3 {}\ngroup Y-witnesses any Y1 Y2 Y3\n\ngroup X-and-Y all X-witnesses Y-witnesses\nquorum X-and-Y\n",
            lkey(),
            w[0],
            w[1],
            w[2],
            w[3],
            w[4],
            w[5]
        )
    }

    #[test]
    fn the_spec_s_example_needs_two_x_witnesses_and_one_y_witness() {
        let p = Policy::parse(&example()).expect("the example parses");
        assert_eq!(p.logs(), &[lkey()]);
        assert_eq!(p.witnesses().len(), 6);
        let x = |s: u8| wkey(s);
        assert!(p.satisfied(&[x(11), x(12), x(14)]));
        assert!(p.satisfied(&[x(11), x(13), x(16)]));
        assert!(!p.satisfied(&[x(11), x(14), x(15)]), "one X witness");
        assert!(!p.satisfied(&[x(11), x(12)]), "no Y witness");
        assert!(!p.satisfied(&[]));
        // A key not in the policy counts for nothing.
        assert!(!p.satisfied(&[x(11), x(12), wkey(99)]));
    }

    #[test]
    fn quorum_none_needs_no_cosignature_and_a_single_witness_needs_that_one() {
        let p = Policy::parse(&format!("log {}\nquorum none\n", lkey())).expect("parses");
        assert!(p.satisfied(&[]));
        let p = Policy::parse(&format!("witness W {}\nquorum W\n", wkey(3))).expect("parses");
        assert!(p.satisfied(&[wkey(3)]));
        assert!(!p.satisfied(&[wkey(4)]));
    }

    #[test]
    fn up_to_256_definitions_are_accepted_and_the_257th_is_refused() {
        let witnesses: String = (0..=254u8)
            .map(|i| format!("witness W{i} {}\n", wkey(i)))
            .collect();
        let full = format!("{witnesses}group G any W0\nquorum G\n");
        assert!(
            Policy::parse(&full).is_ok(),
            "256 definitions and the quorum"
        );
        let over = format!("{witnesses}group G any W0\ngroup H any W1\nquorum G\n");
        assert_eq!(Policy::parse(&over).map(|_| ()).expect_err("257").line, 257);
    }

    #[test]
    fn policies_that_break_the_rules_are_refused_with_their_line() {
        let w = wkey(3).to_string();
        let v = wkey(4).to_string();
        for (text, line) in [
            ("".to_owned(), 0),
            (format!("witness W {w}\n"), 1),
            (format!("quorum W\nwitness W {w}\n"), 1),
            (format!("witness W {w}\nwitness W {v}\nquorum W\n"), 2),
            (format!("witness W {w}\nwitness V {w}\nquorum W\n"), 2),
            (format!("witness W {w}\ngroup G 2 W\nquorum G\n"), 2),
            (format!("witness W {w}\ngroup G 0 W\nquorum G\n"), 2),
            (format!("witness W {w}\ngroup G any W W\nquorum G\n"), 2),
            (
                format!("witness W {w}\ngroup G any W\ngroup H any W\nquorum H\n"),
                3,
            ),
            (format!("witness W {w}\ngroup G any X\nquorum G\n"), 2),
            (format!("witness W {w}\nquorum W\nquorum W\n"), 3),
            (format!("witness none {w}\nquorum none\n"), 1),
            (format!("witness W {}\nquorum W\n", lkey()), 1),
            (format!("log {w}\nquorum none\n"), 1),
            ("frobnicate\nquorum none\n".to_owned(), 1),
            (format!("witness W {w}\r\nquorum W\n"), 1),
            (format!("witness W {w}\ngroup G 01 W\nquorum G\n"), 2),
        ] {
            let e = Policy::parse(&text).expect_err(&text);
            assert_eq!(e.line, line, "{text:?}: {e}");
        }
    }
}
