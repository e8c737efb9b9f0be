//! `auditex verify tiles URL`: verifies a log served as C2SP tlog-tiles (FORMAT.md section 8a)
//! from its tiles alone, with no Auditex-specific API, as any tiles client would.
//!
//! It opens the served checkpoint with the trusted keys, recomputes its root from the tiles of
//! the tree's right edge, and on request proves records (`--leaf`: inclusion proof computed from
//! tiles, the entry bundle's record hash, the record from the record bundle), proves that the log
//! still extends a checkpoint saved earlier (`--old`: consistency proof computed from tiles; a
//! smaller tree is a rollback, another root at the same size a fork), or reads the whole log
//! (`--all`: every entry against its leaf hash, every record against its entry and the one
//! before, the root from all leaves). Every body is checked for exactly the width asked for.
//!
//! The API key of a private log comes from `AUDITEX_API_KEY`, never from the command line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use ledger::checkpoint::{Checkpoint, open_checkpoint};
use ledger::keys::KeyRing;
use ledger::merkle::{
    CompactTree, NodeId, TILE_HASHES_MAX, TileId, compact_range_node_ids,
    consistency_proof_node_ids, entries_from_bundle, entries_path, inclusion_proof_node_ids,
    leaf_hash, node_hashes_from_tiles, tile_hashes_from_bytes, tile_width, tiles_for_nodes,
    verify_inclusion,
};
use ledger::record::Record;
use ledger::types::{Hash, LeafIndex, TreeSize};
use ledger::verify::{ChainError, ChainVerifier, verify_checkpoint_consistency, verify_record};

use super::{
    CheckpointInfo, Failure, Outcome, SMALL_FILE_BYTES_MAX, Timed, Trust, Unusable, VerifyOptions,
    check_checkpoint_interval, checkpoint_note_of, checkpoint_origin, elapsed_ms, load_trust,
    progress_bar,
};

/// The environment variable holding the API key for a private log.
pub const API_KEY_VARIABLE: &str = "AUDITEX_API_KEY";

/// How long one request may take.
const REQUEST_TIMEOUT_S: u64 = 60;

/// `auditex verify tiles`: where the log is and what to prove.
#[derive(Debug, Args)]
pub struct TilesArgs {
    /// The log prefix URL, e.g. `https://ledger.example-bank.com/acme-bank/`.
    pub url: String,
    /// Prove the record at this sequence number (repeatable).
    #[arg(long = "leaf", value_name = "SEQ")]
    pub leaves: Vec<u64>,
    /// A checkpoint saved earlier (a signed note, or an export, bundle or proof file holding
    /// one): the served log must extend it.
    #[arg(long, value_name = "FILE")]
    pub old: Option<PathBuf>,
    /// Read the whole log: every entry, every record and its link, the root from all leaves.
    #[arg(long)]
    pub all: bool,
    /// Trust only this CA certificate (PEM) for HTTPS, instead of the system's.
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
    /// Once verified, save the served checkpoint here (for the next `--old`).
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Trust and output options.
    #[command(flatten)]
    pub options: VerifyOptions,
}

/// A fetch that did not give a body.
enum Fetch {
    /// 404: the log does not have the resource.
    Missing,
    /// A body longer than the resource can be.
    TooLarge(u64),
    /// Anything else: the request could not be made, or the server refused it.
    Unusable(Unusable),
}

struct Client {
    http: reqwest::Client,
    prefix: String,
    key: Option<String>,
}

impl Client {
    fn new(args: &TilesArgs) -> Result<Client, Unusable> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(REQUEST_TIMEOUT_S))
            .user_agent(concat!("auditex-verify/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &args.ca_cert {
            let pem =
                std::fs::read(path).map_err(|e| Unusable(format!("{}: {e}", path.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| Unusable(format!("{}: not a PEM certificate: {e}", path.display())))?;
            builder = builder.tls_certs_only([cert]);
        }
        let http = builder
            .build()
            .map_err(|e| Unusable(format!("cannot make an HTTPS client: {e}")))?;
        let url = url::Url::parse(&args.url)
            .map_err(|e| Unusable(format!("{}: not a URL: {e}", args.url)))?;
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err(Unusable(format!("{}: not an http(s) URL", args.url)));
        }
        let mut prefix = args.url.clone();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        let key = std::env::var(API_KEY_VARIABLE)
            .ok()
            .filter(|k| !k.trim().is_empty());
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        if key.is_some() && url.scheme() == "http" && !loopback {
            return Err(Unusable(format!(
                "{}: an API key is sent over https only (plain http only to a loopback address)",
                args.url
            )));
        }
        Ok(Client { http, prefix, key })
    }

    async fn get(&self, path: &str, max: u64) -> Result<Vec<u8>, Fetch> {
        let url = format!("{}{path}", self.prefix);
        let mut request = self.http.get(&url);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key.trim());
        }
        let response = request
            .send()
            .await
            .map_err(|e| Fetch::Unusable(Unusable(format!("{url}: {e}"))))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(Fetch::Missing);
        }
        if !status.is_success() {
            let hint = match status.as_u16() {
                401 => format!(" (a private log: set {API_KEY_VARIABLE} to a read or verify key)"),
                403 => " (the key's role may not read the log: use a read or verify key)".into(),
                _ => String::new(),
            };
            return Err(Fetch::Unusable(Unusable(format!(
                "{url}: HTTP {status}{hint}"
            ))));
        }
        crate::fetch::body_at_most(response, usize::try_from(max).unwrap_or(usize::MAX))
            .await
            .map_err(|e| Fetch::Unusable(Unusable(format!("{url}: {e}"))))?
            .ok_or(Fetch::TooLarge(max))
    }
}

/// What went wrong while proving: a verification failure (exit 1) or an unusable request (2).
enum Stop {
    Failed(Box<Failure>),
    Unusable(Unusable),
}

impl Stop {
    fn failed(f: Failure) -> Stop {
        Stop::Failed(Box::new(f))
    }
}

impl From<Unusable> for Stop {
    fn from(u: Unusable) -> Self {
        Stop::Unusable(u)
    }
}

/// A resource the checkpoint says exists, fetched: a 404 for it is a failure of the log.
async fn required(client: &Client, path: &str, max: u64) -> Result<Vec<u8>, Stop> {
    match client.get(path, max).await {
        Ok(body) => Ok(body),
        Err(Fetch::Missing) => Err(Stop::failed(
            Failure::new(
                "tile_missing",
                format!("{path} is missing, though the checkpoint's tree has it"),
            )
            .expected_found(format!("{path} served"), "404 Not Found".to_owned()),
        )),
        // Longer than the resource can be: what the log served is not what it must be.
        Err(Fetch::TooLarge(max)) => Err(Stop::failed(
            Failure::new(
                "malformed_bundle",
                format!("{path} is longer than it can be"),
            )
            .expected_found(format!("at most {max} bytes"), "more".to_owned()),
        )),
        Err(Fetch::Unusable(u)) => Err(Stop::Unusable(u)),
    }
}

/// Tile `tile` at `width`, checked to be exactly that wide.
async fn tile(client: &Client, tile: TileId, width: u16) -> Result<Vec<Hash>, Stop> {
    let path = tile
        .path(width)
        .map_err(|e| Stop::Unusable(Unusable(e.to_string())))?;
    let body = required(client, &path, u64::from(TILE_HASHES_MAX) * 32).await?;
    let hashes = tile_hashes_from_bytes(&body)
        .ok()
        .filter(|h| h.len() == usize::from(width))
        .ok_or_else(|| {
            Stop::failed(
                Failure::new("malformed_tile", format!("{path} is not {width} hashes"))
                    .expected_found(
                        format!("{} bytes", usize::from(width) * 32),
                        format!("{} bytes", body.len()),
                    ),
            )
        })?;
    Ok(hashes)
}

/// The hashes of `ids` in the tree of `size`, from the tiles that hold them.
async fn node_hashes(client: &Client, ids: &[NodeId], size: TreeSize) -> Result<Vec<Hash>, Stop> {
    let wanted = tiles_for_nodes(ids, size).map_err(|e| Stop::Unusable(Unusable(e.to_string())))?;
    let mut tiles = BTreeMap::new();
    for (t, width) in wanted {
        tiles.insert(t, tile(client, t, width).await?);
    }
    node_hashes_from_tiles(ids, &tiles).map_err(|e| Stop::Unusable(Unusable(e.to_string())))
}

/// Entry bundle `index` at `width`: the record hashes.
async fn entries(client: &Client, index: u64, width: u16) -> Result<Vec<Hash>, Stop> {
    let path = entries_path(index, width).map_err(|e| Stop::Unusable(Unusable(e.to_string())))?;
    // A valid bundle of record hashes is exactly `width` entries of 2 + 32 bytes.
    let body = required(client, &path, u64::from(width) * (2 + 32)).await?;
    let malformed = |found: String| {
        Stop::failed(
            Failure::new(
                "malformed_bundle",
                format!("{path} is not {width} record hashes"),
            )
            .expected_found(format!("{width} entries of 32 bytes"), found),
        )
    };
    let list = entries_from_bundle(&body).map_err(|e| malformed(e.to_string()))?;
    if list.len() != usize::from(width) {
        return Err(malformed(format!("{} entries", list.len())));
    }
    list.iter()
        .map(|e| {
            Hash::from_slice(e).map_err(|_| malformed(format!("an entry of {} bytes", e.len())))
        })
        .collect()
}

/// Record bundle `index` at `width`.
async fn records(client: &Client, index: u64, width: u16) -> Result<Vec<Record>, Stop> {
    let path = entries_path(index, width)
        .map_err(|e| Stop::Unusable(Unusable(e.to_string())))?
        .replacen("tile/entries/", "records/", 1);
    let body = required(
        client,
        &path,
        u64::from(width) * ledger::export::EXPORT_LINE_BYTES_MAX as u64,
    )
    .await?;
    let malformed = |found: String| {
        Stop::failed(
            Failure::new("malformed_bundle", format!("{path} is not {width} records"))
                .expected_found(format!("{width} records, one JSON object per line"), found),
        )
    };
    let text = String::from_utf8(body).map_err(|_| malformed("bytes that are not UTF-8".into()))?;
    // Exactly `width` lines, each ended by one LF (no CR, no blank line, nothing after).
    let Some(content) = text.strip_suffix('\n') else {
        return Err(malformed("a last line without its newline".into()));
    };
    let list = content
        .split('\n')
        .map(|line| ledger::json::from_slice::<Record>(line.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| malformed(e.to_string()))?;
    if list.len() != usize::from(width) {
        return Err(malformed(format!("{} lines", list.len())));
    }
    Ok(list)
}

/// Checks `record` is the one whose hash is `entry`, at `seq`.
fn check_record(record: &Record, entry: Hash, seq: u64) -> Result<(), Stop> {
    let computed = record.compute_hash();
    if record.seq.get() != seq || record.hash != entry || computed != entry {
        return Err(Stop::failed(
            Failure::new(
                "hash_mismatch",
                format!("the record served at position {seq} is not the one the log holds there"),
            )
            .at(Some(seq), Some(record.event_id))
            .expected_found(
                format!("record {seq} hashing to {entry}"),
                format!("record {} hashing to {computed}", record.seq),
            ),
        ));
    }
    Ok(())
}

/// Verifies the log at `args.url` and returns the outcome.
pub(super) fn verify_tiles(args: &TilesArgs) -> Result<Outcome, Unusable> {
    let run = verify_async(args);
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.block_on(run),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Unusable(format!("cannot start the HTTP client: {e}")))?
            .block_on(run),
    }
}

async fn verify_async(args: &TilesArgs) -> Result<Outcome, Unusable> {
    let started = Instant::now();
    let trust = load_trust(&args.options)?;
    let client = Client::new(args)?;
    let mut outcome = Outcome::new("tiles", args.url.clone());
    let note = match client.get("checkpoint", SMALL_FILE_BYTES_MAX).await {
        Ok(body) => String::from_utf8(body)
            .map_err(|_| Unusable(format!("{}checkpoint: not UTF-8 text", client.prefix)))?,
        Err(Fetch::Missing) => {
            return Err(Unusable(format!(
                "{}checkpoint: 404 (no log at this URL, or no checkpoint published yet)",
                client.prefix
            )));
        }
        Err(Fetch::TooLarge(max)) => {
            return Err(Unusable(format!(
                "{}checkpoint: larger than {max} bytes",
                client.prefix
            )));
        }
        Err(Fetch::Unusable(u)) => return Err(u),
    };
    let origin = checkpoint_origin(note.as_bytes()).unwrap_or_default();
    let checkpoint = match open_checkpoint(note.as_bytes(), &trust.vkeys, Some(&origin)) {
        Ok(verified) => {
            if let Err(f) = check_checkpoint_interval(&verified, &trust, "served")? {
                return Ok(outcome.failed(f, started));
            }
            verified.into_checkpoint()
        }
        Err(e) => {
            return Ok(outcome.failed(
                Failure::new(
                    "checkpoint_not_trusted",
                    format!("the served checkpoint: {e}"),
                )
                .expected_found("a checkpoint signed by a trusted key", e.to_string()),
                started,
            ));
        }
    };
    outcome.origin = Some(checkpoint.origin().to_owned());
    outcome.checkpoint = Some(CheckpointInfo::of(&checkpoint));
    // The witness policy judges the served checkpoint (see `witness.rs`).
    outcome.note = Some(note.clone());
    match prove(&client, args, &trust, &checkpoint, &mut outcome).await {
        Ok(()) => {
            outcome.verified = true;
            if let Some(path) = &args.save {
                std::fs::write(path, &note)
                    .map_err(|e| Unusable(format!("{}: {e}", path.display())))?;
                outcome
                    .proven
                    .push(format!("the checkpoint was saved to {}", path.display()));
            }
        }
        Err(Stop::Failed(f)) => outcome.failure = Some(*f),
        Err(Stop::Unusable(u)) => return Err(u),
    }
    outcome.elapsed_ms = elapsed_ms(started);
    Ok(outcome)
}

/// The key ring records are checked with: the trusted history of the log's origin, or its one
/// trusted key (valid for every record, as FORMAT.md section 5 allows when no history is given).
fn ring(trust: &Trust, origin: &str) -> Result<KeyRing, Unusable> {
    if let Some(keys) = trust.history_for(origin) {
        return KeyRing::new(keys.to_vec()).map_err(|e| Unusable(e.to_string()));
    }
    let named: Vec<_> = trust.vkeys.iter().filter(|k| k.name() == origin).collect();
    match named.as_slice() {
        [one] => Ok(KeyRing::single(*one.verifying_key())),
        _ => Err(Unusable(format!(
            "several trusted keys are named {origin:?}: pass --key-history so that each record's key and its validity interval can be checked"
        ))),
    }
}

async fn prove(
    client: &Client,
    args: &TilesArgs,
    trust: &Trust,
    checkpoint: &Checkpoint,
    outcome: &mut Outcome,
) -> Result<(), Stop> {
    let size = checkpoint.size();
    let root = checkpoint.root();
    let ring = ring(trust, checkpoint.origin())?;
    // The root, from the tiles of the tree's right edge.
    let edge_ids = compact_range_node_ids(size);
    let edge = node_hashes(client, &edge_ids, size).await?;
    let computed = CompactTree::from_parts(size, edge)
        .map_err(|e| Stop::Unusable(Unusable(e.to_string())))?
        .root();
    if computed != root {
        return Err(Stop::failed(
            Failure::new(
                "root_mismatch",
                "the tiles do not hash to the checkpoint's root",
            )
            .expected_found(root.to_string(), computed.to_string()),
        ));
    }
    outcome.proven.push(format!(
        "the tiles hash to the root of the checkpoint of size {size}, signed by a trusted key"
    ));

    for &seq in &args.leaves {
        if seq >= size.get() {
            return Err(Stop::Unusable(Unusable(format!(
                "--leaf {seq}: the checkpoint's tree has {size} records"
            ))));
        }
        let index = seq >> 8;
        let level0 = TileId::new(0, index).map_err(|e| Stop::Unusable(Unusable(e.to_string())))?;
        let width = tile_width(level0, size).unwrap_or(TILE_HASHES_MAX);
        let at = usize::try_from(seq & 0xff).unwrap_or(0);
        let entry = entries(client, index, width).await?[at];
        let leaf = tile(client, level0, width).await?[at];
        if leaf_hash(entry.as_bytes()) != leaf {
            return Err(Stop::failed(
                Failure::new(
                    "entry_mismatch",
                    "the entry does not hash to the tile's leaf",
                )
                .at(Some(seq), None)
                .expected_found(leaf.to_string(), leaf_hash(entry.as_bytes()).to_string()),
            ));
        }
        let nodes = inclusion_proof_node_ids(LeafIndex::new(seq), size)
            .map_err(|e| Stop::Unusable(Unusable(e.to_string())))?;
        let hashes = node_hashes(client, nodes.ids(), size).await?;
        let proof = nodes
            .rehash(&hashes)
            .map_err(|e| Stop::Unusable(Unusable(e.to_string())))?;
        if let Err(e) = verify_inclusion(leaf, LeafIndex::new(seq), size, &proof, root) {
            return Err(Stop::failed(
                Failure::new("inclusion_proof", e.to_string()).at(Some(seq), None),
            ));
        }
        let record = records(client, index, width).await?.swap_remove(at);
        check_record(&record, entry, seq)?;
        if let Err(e) = verify_record(&record, &ring) {
            return Err(Stop::failed(Failure::chain(&ChainError::Record(e))));
        }
        outcome.captured_max_us = outcome
            .captured_max_us
            .max(Some(record.captured_at_us.unix_micros()));
        outcome.proven.push(format!(
            "record {seq} ({}, event {}, hash {entry}) is in the checkpoint's tree",
            record.event_type, record.event_id
        ));
    }

    if let Some(path) = &args.old {
        let note = match checkpoint_note_of(path)? {
            Ok(note) => note,
            Err(f) => return Err(Stop::failed(f)),
        };
        let origin = checkpoint_origin(note.as_bytes()).unwrap_or_default();
        let older = open_checkpoint(note.as_bytes(), &trust.vkeys, Some(&origin))
            .map_err(|e| {
                Stop::failed(
                    Failure::new(
                        "checkpoint_not_trusted",
                        format!("the old checkpoint ({}): {e}", path.display()),
                    )
                    .expected_found("a checkpoint signed by a trusted key", e.to_string()),
                )
            })?
            .into_checkpoint();
        let grown =
            older.origin() == checkpoint.origin() && size > older.size() && older.size().get() > 0;
        let proof = if grown {
            let nodes = consistency_proof_node_ids(older.size(), size)
                .map_err(|e| Stop::Unusable(Unusable(e.to_string())))?;
            let hashes = node_hashes(client, nodes.ids(), size).await?;
            nodes
                .rehash(&hashes)
                .map_err(|e| Stop::Unusable(Unusable(e.to_string())))?
        } else {
            Vec::new()
        };
        verify_checkpoint_consistency(&older, checkpoint, &proof)
            .map_err(|e| Stop::failed(Failure::of_consistency(&e)))?;
        outcome.proven.push(format!(
            "the served tree of size {size} extends the old checkpoint of size {} (root {}): nothing in it was changed",
            older.size(),
            older.root()
        ));
    }

    if args.all {
        all(client, args, size, root, ring, outcome).await?;
    }
    Ok(())
}

/// Reads every entry and record of the tree of `size` and recomputes its root.
async fn all(
    client: &Client,
    args: &TilesArgs,
    size: TreeSize,
    root: Hash,
    ring: KeyRing,
    outcome: &mut Outcome,
) -> Result<(), Stop> {
    let bar = progress_bar(&args.options, size.get());
    let mut tree = CompactTree::new();
    // Every chain rule of FORMAT.md section 13: hashes, signatures and key intervals, links,
    // gap-free sequence, capture times, unique event ids, key rotations.
    let mut chain: Option<ChainVerifier> = None;
    let bundles = size.get().div_ceil(u64::from(TILE_HASHES_MAX));
    for index in 0..bundles {
        let level0 = TileId::new(0, index).map_err(|e| Stop::Unusable(Unusable(e.to_string())))?;
        let width = tile_width(level0, size).unwrap_or(TILE_HASHES_MAX);
        let leaves = tile(client, level0, width).await?;
        let hashes = entries(client, index, width).await?;
        let list = records(client, index, width).await?;
        for (i, ((leaf, entry), record)) in leaves.iter().zip(&hashes).zip(&list).enumerate() {
            let seq = (index << 8) + i as u64;
            if leaf_hash(entry.as_bytes()) != *leaf {
                return Err(Stop::failed(
                    Failure::new(
                        "entry_mismatch",
                        "the entry does not hash to the tile's leaf",
                    )
                    .at(Some(seq), None)
                    .expected_found(leaf.to_string(), leaf_hash(entry.as_bytes()).to_string()),
                ));
            }
            check_record(record, *entry, seq)?;
            let verifier = chain
                .get_or_insert_with(|| ChainVerifier::new(record.tenant.clone(), ring.clone()));
            if let Err(e) = verifier.push(record) {
                return Err(Stop::failed(Failure::chain(&e)));
            }
            outcome.captured_max_us = outcome
                .captured_max_us
                .max(Some(record.captured_at_us.unix_micros()));
            tree.push(*leaf)
                .map_err(|e| Stop::Unusable(Unusable(e.to_string())))?;
        }
        if let Some(bar) = &bar {
            bar.inc(u64::from(width));
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(verifier) = chain
        && let Err(e) = verifier.finish()
    {
        return Err(Stop::failed(Failure::chain(&e)));
    }
    if tree.root() != root {
        return Err(Stop::failed(
            Failure::new(
                "root_mismatch",
                "the leaves do not hash to the checkpoint's root",
            )
            .expected_found(root.to_string(), tree.root().to_string()),
        ));
    }
    outcome.records = Some(size.get());
    outcome.proven.push(format!(
        "all {size} records were read: each hashes to its entry, is signed by a key valid for it and links to the one before (sequence, capture times, event ids and key rotations checked), each entry hashes to its leaf, and the leaves to the checkpoint's root"
    ));
    Ok(())
}
