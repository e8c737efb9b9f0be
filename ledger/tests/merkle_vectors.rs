//! Runs every RFC 9162 inclusion and consistency test vector in `tests/vectors/rfc9162/` (the
//! shared test data of transparency-dev/merkle; see `tests/vectors/README.md`).
//!
//! Every file with `wantErr: false` (each `happy-path.json` among them) must verify; every file
//! with `wantErr: true` must be rejected. Each folder must yield files, so the tests cannot pass
//! by finding nothing.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ledger::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use ledger::types::{Hash, LeafIndex, TreeSize};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InclusionCase {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: Option<String>,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConsistencyCase {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: Option<String>,
    want_err: bool,
}

/// The bytes of a base64 field of a vector.
fn base64_field(field: &str, path: &Path) -> Vec<u8> {
    BASE64
        .decode(field)
        .unwrap_or_else(|e| panic!("{}: bad base64 {field:?}: {e}", path.display()))
}

/// A leaf hash or proof element as a `Hash`, or `None` when it is not 32 bytes long.
///
/// Our API takes typed 32-byte hashes, so such a value cannot even be passed in: the service
/// refuses it while parsing, which counts as a rejection (the Go library checks the leaf hash
/// length at the same point).
fn parse_hash(field: &str, path: &Path) -> Option<Hash> {
    Hash::from_slice(&base64_field(field, path)).ok()
}

/// The proof (`null` is empty), or `None` when an element is not 32 bytes long.
fn parse_proof(proof: Option<&[String]>, path: &Path) -> Option<Vec<Hash>> {
    proof
        .unwrap_or_default()
        .iter()
        .map(|element| parse_hash(element, path))
        .collect()
}

/// A root as a `Hash`, and whether it is a stand-in.
///
/// The Go data uses short placeholder roots ("don't care 1") where only the equality of two roots
/// matters, and one such consistency case must verify. So that every root reaches the verifier,
/// a root that is not 32 bytes long becomes a stand-in: SHA-256 of a label and the bytes, which
/// keeps equal placeholders equal and distinct ones distinct, and which no computed root matches.
struct Root {
    hash: Hash,
    stand_in: bool,
}

fn parse_root(field: &str, path: &Path) -> Root {
    let bytes = base64_field(field, path);
    match Hash::from_slice(&bytes) {
        Ok(hash) => Root {
            hash,
            stand_in: false,
        },
        Err(_) => {
            let mut labelled = b"merkle_vectors stand-in for a root that is not 32 bytes:".to_vec();
            labelled.extend_from_slice(&bytes);
            Root {
                hash: leaf_hash(&labelled),
                stand_in: true,
            }
        }
    }
}

/// Every `.json` file below `dir`, sorted so failures are reported in a stable order.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn vectors_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/rfc9162")
        .join(kind)
}

fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> T {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What happened to the files of one folder.
#[derive(Default)]
struct Tally {
    accepted: usize,
    rejected: usize,
    happy_paths_accepted: usize,
    failures: Vec<String>,
}

impl Tally {
    /// Records one case: `outcome` is `Ok` if the verifier accepted it (with no help from a
    /// stand-in root where that would matter), `Err` with the reason if it was rejected.
    fn record(
        &mut self,
        path: &Path,
        desc: Option<&str>,
        want_err: bool,
        outcome: Result<(), String>,
    ) {
        match (want_err, outcome) {
            (false, Ok(())) => {
                self.accepted += 1;
                if path.ends_with("happy-path.json") {
                    self.happy_paths_accepted += 1;
                }
            }
            (true, Err(_)) => self.rejected += 1,
            (want_err, outcome) => self.failures.push(format!(
                "{} ({desc:?}): wantErr {want_err}, got {outcome:?}",
                path.display()
            )),
        }
    }

    fn assert_complete(&self, kind: &str, files: &[PathBuf]) {
        assert!(
            self.failures.is_empty(),
            "{kind}: {} failures:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
        assert_eq!(self.accepted + self.rejected, files.len(), "{kind}");
        assert!(self.accepted > 0, "{kind}: nothing was expected to verify");
        assert!(self.rejected > 0, "{kind}: nothing was expected to fail");
        let happy_paths = files
            .iter()
            .filter(|path| path.ends_with("happy-path.json"))
            .count();
        assert!(happy_paths > 0, "{kind}: no happy-path.json");
        assert_eq!(
            self.happy_paths_accepted, happy_paths,
            "{kind}: happy paths"
        );
    }
}

#[test]
fn every_inclusion_vector_verifies_or_is_rejected_as_published() {
    let files = json_files(&vectors_dir("inclusion"));
    assert!(!files.is_empty(), "no inclusion vectors found");
    let mut tally = Tally::default();
    for path in &files {
        let case: InclusionCase = read(path);
        let root = parse_root(&case.root, path);
        let leaf = parse_hash(&case.leaf_hash, path);
        let proof = parse_proof(case.proof.as_deref(), path);
        let outcome = match (leaf, proof) {
            (Some(leaf), Some(proof)) => verify_inclusion(
                leaf,
                LeafIndex::new(case.leaf_idx),
                TreeSize::new(case.tree_size),
                &proof,
                root.hash,
            )
            .map_err(|e| e.to_string()),
            _ => Err("a leaf hash or proof element is not 32 bytes".to_owned()),
        };
        // A computed root never equals a stand-in, so a stand-in cannot make a case verify here;
        // the check only guards the harness itself.
        let outcome = outcome.and_then(|()| {
            if root.stand_in {
                Err("verified against a stand-in root".to_owned())
            } else {
                Ok(())
            }
        });
        tally.record(path, case.desc.as_deref(), case.want_err, outcome);
    }
    tally.assert_complete("inclusion", &files);
}

#[test]
fn every_consistency_vector_verifies_or_is_rejected_as_published() {
    let files = json_files(&vectors_dir("consistency"));
    assert!(!files.is_empty(), "no consistency vectors found");
    let mut tally = Tally::default();
    for path in &files {
        let case: ConsistencyCase = read(path);
        let root1 = parse_root(&case.root1, path);
        let root2 = parse_root(&case.root2, path);
        let outcome = match parse_proof(case.proof.as_deref(), path) {
            None => Err("a proof element is not 32 bytes".to_owned()),
            Some(proof) => {
                let result = verify_consistency(
                    TreeSize::new(case.size1),
                    TreeSize::new(case.size2),
                    &proof,
                    root1.hash,
                    root2.hash,
                )
                .map_err(|e| e.to_string());
                // A stand-in may only help a case verify where the verifier compares the two
                // roots as opaque values and hashes nothing: equal sizes, empty proof.
                let opaque_roots = case.size1 == case.size2 && proof.is_empty();
                let stand_in = root1.stand_in || root2.stand_in;
                result.and_then(|()| {
                    if stand_in && !opaque_roots {
                        Err("verified against a stand-in root".to_owned())
                    } else {
                        Ok(())
                    }
                })
            }
        };
        tally.record(path, case.desc.as_deref(), case.want_err, outcome);
    }
    tally.assert_complete("consistency", &files);
}

#[test]
fn each_case_folder_holds_vectors() {
    for kind in ["inclusion", "consistency"] {
        let dir = vectors_dir(kind);
        let folders: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .map(|entry| entry.expect("directory entry").path())
            .filter(|path| path.is_dir())
            .collect();
        assert!(!folders.is_empty(), "{kind}: no case folders");
        for folder in folders {
            assert!(
                !json_files(&folder).is_empty(),
                "{}: no vectors",
                folder.display()
            );
        }
    }
}
