//! The tiled log (C2SP tlog-tiles) over HTTPS: a client that knows only the spec computes every
//! proof the JSON API gives from the tiles, the bundles hold what the tiles hash, and who may read
//! follows the key, the tenant and the tenant's setting.

use std::collections::BTreeMap;

use auditex::auth::Role;
use ledger::checkpoint::open_checkpoint;
use ledger::merkle::{
    CompactTree, TileId, compact_range_node_ids, consistency_proof_node_ids, entries_from_bundle,
    entries_path, inclusion_proof_node_ids, leaf_hash, node_hashes_from_tiles,
    tile_hashes_from_bytes, tiles_for_nodes, verify_consistency, verify_inclusion,
};
use ledger::note::VerifierKey;
use ledger::record::Record;
use ledger::types::{Hash, LeafIndex, TreeSize};
use reqwest::StatusCode;
use reqwest::header;
use serde_json::Value;

use crate::http::Server;
use crate::support::{Backend, append_many, backend_tests};

backend_tests!(
    the_tiled_log_gives_every_proof_the_json_api_gives,
    entry_and_record_bundles_hold_what_the_tiles_hash,
    tiles_are_immutable_and_cached_the_checkpoint_is_not,
    tile_access_follows_the_key_the_tenant_and_the_setting,
    malformed_absent_and_non_get_tile_requests_are_refused,
    auditex_verify_tiles_proves_the_served_log_and_refuses_what_it_should,
);

/// The log prefix of the server's tenant: its origin's path, with a trailing slash.
async fn prefix(s: &Server) -> String {
    let origin = s.store.origin(&s.tenant).await.expect("origin");
    let path = origin.split_once('/').expect("the origin has a path").1;
    format!("/{path}/")
}

/// Appends 300 records, publishes, appends 400 more and publishes: two checkpoints, full and
/// partial tiles on level 0, a partial tile on level 1.
async fn grow(s: &Server) {
    append_many(&s.store, &s.tenant, 300, 100).await;
    s.store.publish_checkpoints().await.expect("publish");
    append_many(&s.store, &s.tenant, 400, 200).await;
    s.store.publish_checkpoints().await.expect("publish");
}

async fn fetch(s: &Server, key: Option<&str>, path: &str) -> reqwest::Response {
    let mut request = s.client.get(s.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("request")
}

async fn body(s: &Server, path: &str) -> Vec<u8> {
    let r = fetch(s, Some(&s.verify), path).await;
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.bytes().await.expect("body").to_vec()
}

/// Fetches the tiles holding `ids` in the tree of `size`, checking each is exactly as wide as
/// the spec says.
async fn tiles(
    s: &Server,
    prefix: &str,
    ids: &[ledger::merkle::NodeId],
    size: TreeSize,
) -> BTreeMap<TileId, Vec<Hash>> {
    let mut out = BTreeMap::new();
    for (tile, width) in tiles_for_nodes(ids, size).expect("nodes in the tree") {
        let path = format!("{prefix}{}", tile.path(width).expect("width"));
        let hashes = tile_hashes_from_bytes(&body(s, &path).await).expect("whole hashes");
        assert_eq!(hashes.len(), usize::from(width), "{path}");
        out.insert(tile, hashes);
    }
    out
}

fn hashes(list: &Value) -> Vec<Hash> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|h| Hash::from_hex(h.as_str().expect("hex")).expect("hash"))
        .collect()
}

async fn the_tiled_log_gives_every_proof_the_json_api_gives(backend: Backend) {
    let s = Server::start(&backend).await;
    grow(&s).await;
    let prefix = prefix(&s).await;
    assert_eq!(prefix, "/ledger/acme-bank/");

    // The checkpoint is the one the API serves, and opens with the tenant's key.
    let note = String::from_utf8(body(&s, &format!("{prefix}checkpoint")).await).expect("text");
    let latest = s
        .get(&s.verify, "/v1/checkpoints/latest")
        .await
        .text()
        .await
        .expect("text");
    assert_eq!(note, latest);
    let origin = s.store.origin(&s.tenant).await.expect("origin");
    let ring = s.store.key_history(&s.tenant).await.expect("keys");
    let vkey = VerifierKey::new(&origin, ring.intervals()[0].public_key).expect("vkey");
    let cp = open_checkpoint(note.as_bytes(), &[vkey], Some(&origin)).expect("opens");
    let size = cp.checkpoint().size();
    let root = cp.checkpoint().root();
    assert_eq!(size, TreeSize::new(700));

    // The root, from the tiles holding the tree's right edge.
    let edge_ids = compact_range_node_ids(size);
    let edge = tiles(&s, &prefix, &edge_ids, size).await;
    let edge = node_hashes_from_tiles(&edge_ids, &edge).expect("hashes");
    assert_eq!(
        CompactTree::from_parts(size, edge).expect("edge").root(),
        root
    );

    // Every inclusion proof: first and last leaves, both sides of tile boundaries.
    for seq in [0u64, 1, 255, 256, 299, 300, 511, 512, 698, 699] {
        let json: Value = s
            .get(&s.verify, &format!("/v1/proofs/inclusion?seq={seq}"))
            .await
            .json()
            .await
            .expect("proof");
        let nodes = inclusion_proof_node_ids(LeafIndex::new(seq), size).expect("in the tree");
        let fetched = tiles(&s, &prefix, nodes.ids(), size).await;
        let from_tiles = nodes
            .rehash(&node_hashes_from_tiles(nodes.ids(), &fetched).expect("hashes"))
            .expect("proof");
        assert_eq!(from_tiles, hashes(&json["proof"]), "seq {seq}");
        let leaf = Hash::from_hex(json["leaf_hash"].as_str().expect("leaf")).expect("leaf");
        verify_inclusion(leaf, LeafIndex::new(seq), size, &from_tiles, root).expect("verifies");
    }

    // The consistency proof from the first checkpoint.
    let json: Value = s
        .get(&s.verify, "/v1/proofs/consistency?from=300")
        .await
        .json()
        .await
        .expect("proof");
    let old = TreeSize::new(300);
    let nodes = consistency_proof_node_ids(old, size).expect("old <= new");
    let fetched = tiles(&s, &prefix, nodes.ids(), size).await;
    let from_tiles = nodes
        .rehash(&node_hashes_from_tiles(nodes.ids(), &fetched).expect("hashes"))
        .expect("proof");
    assert_eq!(from_tiles, hashes(&json["proof"]));
    let old_cp = open_checkpoint(
        json["from_checkpoint"].as_str().expect("note").as_bytes(),
        &[VerifierKey::new(&origin, ring.intervals()[0].public_key).expect("vkey")],
        Some(&origin),
    )
    .expect("opens");
    verify_consistency(old, size, &from_tiles, old_cp.checkpoint().root(), root)
        .expect("consistent");
}

async fn entry_and_record_bundles_hold_what_the_tiles_hash(backend: Backend) {
    let s = Server::start(&backend).await;
    grow(&s).await;
    let prefix = prefix(&s).await;
    let chain = crate::support::read_chain(&s.store, &s.tenant).await;
    for (index, width) in [(0u64, 256u16), (1, 256), (2, 188), (2, 5)] {
        let tile = TileId::new(0, index).expect("tile");
        let leaves = tile_hashes_from_bytes(
            &body(&s, &format!("{prefix}{}", tile.path(width).expect("w"))).await,
        )
        .expect("hashes");
        let bundle = body(
            &s,
            &format!("{prefix}{}", entries_path(index, width).expect("w")),
        )
        .await;
        let entries = entries_from_bundle(&bundle).expect("a bundle");
        assert_eq!(entries.len(), usize::from(width));
        let suffix =
            entries_path(index, width)
                .expect("w")
                .replacen("tile/entries/", "records/", 1);
        let records =
            String::from_utf8(body(&s, &format!("{prefix}{suffix}")).await).expect("utf-8");
        let records: Vec<Record> = records
            .lines()
            .map(|l| serde_json::from_str(l).expect("a record per line"))
            .collect();
        assert_eq!(records.len(), usize::from(width));
        for (i, entry) in entries.iter().enumerate() {
            let seq = index * 256 + i as u64;
            // The entry is the record hash; its RFC 6962 leaf hash is the level-0 tile's hash.
            assert_eq!(*entry, chain[seq as usize].hash.as_bytes(), "seq {seq}");
            assert_eq!(leaf_hash(entry), leaves[i], "seq {seq}");
            assert_eq!(records[i].seq.get(), seq);
            assert_eq!(records[i].compute_hash().as_bytes(), *entry, "seq {seq}");
        }
    }
}

async fn tiles_are_immutable_and_cached_the_checkpoint_is_not(backend: Backend) {
    let s = Server::start(&backend).await;
    grow(&s).await;
    let prefix = prefix(&s).await;
    for path in [
        "tile/0/000",
        "tile/0/002.p/188",
        "tile/entries/001",
        "records/000",
    ] {
        let r = fetch(&s, Some(&s.verify), &format!("{prefix}{path}")).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(
            r.headers()[header::CACHE_CONTROL],
            "private, max-age=31536000, immutable",
            "{path}"
        );
        let etag = r.headers()[header::ETAG]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            etag.starts_with('"') && etag.len() == 34,
            "a strong ETag: {etag}"
        );
        // The same bytes again give the same tag, and the tag gets 304 with no body.
        let again = s
            .client
            .get(s.url(&format!("{prefix}{path}")))
            .bearer_auth(&s.verify)
            .header(header::IF_NONE_MATCH, &etag)
            .send()
            .await
            .expect("request");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(again.headers()[header::ETAG], etag.as_str());
        assert!(again.bytes().await.expect("body").is_empty());
        let other = s
            .client
            .get(s.url(&format!("{prefix}{path}")))
            .bearer_auth(&s.verify)
            .header(header::IF_NONE_MATCH, "\"0000\"")
            .send()
            .await
            .expect("request");
        assert_eq!(other.status(), StatusCode::OK, "{path}");
    }
    let content_type = |path: &'static str| {
        let s = &s;
        let prefix = prefix.clone();
        async move {
            fetch(s, Some(&s.verify), &format!("{prefix}{path}"))
                .await
                .headers()[header::CONTENT_TYPE]
                .to_str()
                .expect("ascii")
                .to_owned()
        }
    };
    assert_eq!(
        content_type("tile/1/000.p/2").await,
        "application/octet-stream"
    );
    assert_eq!(
        content_type("tile/entries/000").await,
        "application/octet-stream"
    );
    assert_eq!(
        content_type("records/000.p/1").await,
        "application/x-ndjson"
    );
    let r = fetch(&s, Some(&s.verify), &format!("{prefix}checkpoint")).await;
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    assert_eq!(r.headers()[header::CACHE_CONTROL], "private, max-age=2");
    // HEAD answers like GET, without the body.
    let head = s
        .client
        .head(s.url(&format!("{prefix}tile/0/000")))
        .bearer_auth(&s.verify)
        .send()
        .await
        .expect("request");
    assert_eq!(head.status(), StatusCode::OK);
    assert!(head.headers().contains_key(header::ETAG));
    assert_eq!(
        head.headers()[header::CONTENT_LENGTH],
        "8192",
        "the GET's length"
    );

    // Bundles go gzip-compressed to a client that accepts it, under their own ETag; tiles (hashes
    // do not compress) never.
    let plain = body(&s, &format!("{prefix}records/001")).await;
    let gz = s
        .client
        .get(s.url(&format!("{prefix}records/001")))
        .bearer_auth(&s.verify)
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .expect("request");
    assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(gz.headers()[header::VARY], "accept-encoding");
    assert!(
        gz.headers()[header::ETAG]
            .to_str()
            .expect("ascii")
            .ends_with("-gzip\"")
    );
    let compressed = gz.bytes().await.expect("body");
    assert!(
        compressed.len() < plain.len() / 2,
        "{} of {}",
        compressed.len(),
        plain.len()
    );
    let mut unpacked = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&compressed[..]),
        &mut unpacked,
    )
    .expect("gzip");
    assert_eq!(unpacked, plain);
    for refused in ["identity", "gzip;q=0"] {
        let r = s
            .client
            .get(s.url(&format!("{prefix}records/001")))
            .bearer_auth(&s.verify)
            .header(header::ACCEPT_ENCODING, refused)
            .send()
            .await
            .expect("request");
        assert!(
            !r.headers().contains_key(header::CONTENT_ENCODING),
            "{refused}"
        );
    }
    let tile = s
        .client
        .get(s.url(&format!("{prefix}tile/0/000")))
        .bearer_auth(&s.verify)
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .expect("request");
    assert!(!tile.headers().contains_key(header::CONTENT_ENCODING));
}

async fn tile_access_follows_the_key_the_tenant_and_the_setting(backend: Backend) {
    let s = Server::start(&backend).await;
    grow(&s).await;
    let prefix = prefix(&s).await;
    let checkpoint = format!("{prefix}checkpoint");
    let tile = format!("{prefix}tile/0/000");
    let other = crate::support::tenant_id("other-bank");
    s.store.create_tenant(&other).await.expect("tenant");
    let outsider = s
        .store
        .create_api_key(&other, Role::Verify, "test", None)
        .await
        .expect("key")
        .reveal();
    crate::secret_scan::register_api_keys(&[&outsider]);

    // Private (the default): the tenant's read and verify keys only.
    for path in [&checkpoint, &tile] {
        assert_eq!(
            fetch(&s, None, path).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            fetch(&s, Some("not-a-key"), path).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            fetch(&s, Some(&s.ingest), path).await.status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            fetch(&s, Some(&s.read), path).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            fetch(&s, Some(&s.verify), path).await.status(),
            StatusCode::OK
        );
        // Another tenant's key: the log does not exist for it.
        let r = fetch(&s, Some(&outsider), path).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }
    // The other tenant's own log is at its own prefix, and the key of this one does not reach it.
    let other_prefix = prefix.replacen("acme-bank", "other-bank", 1);
    append_many(&s.store, &other, 3, 3).await;
    s.store.publish_checkpoints().await.expect("publish");
    let other_checkpoint = format!("{other_prefix}checkpoint");
    assert_eq!(
        fetch(&s, Some(&outsider), &other_checkpoint).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        fetch(&s, Some(&s.verify), &other_checkpoint).await.status(),
        StatusCode::NOT_FOUND
    );
    // The log lives only at its origin's path.
    assert_eq!(
        fetch(&s, Some(&s.verify), "/elsewhere/acme-bank/checkpoint")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        fetch(&s, Some(&s.verify), "/acme-bank/checkpoint")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // Public: anyone, with or without a key, and shared caches may keep it.
    s.store
        .set_tiles_public(&s.tenant, true)
        .await
        .expect("public");
    for path in [&checkpoint, &tile] {
        let r = fetch(&s, None, path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(
            r.headers()[header::CACHE_CONTROL]
                .to_str()
                .expect("ascii")
                .starts_with("public, "),
            "{path}"
        );
        assert_eq!(
            fetch(&s, Some(&outsider), path).await.status(),
            StatusCode::OK
        );
    }
    // Opening one tenant's log opens no other.
    assert_eq!(
        fetch(&s, None, &other_checkpoint).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // And closing it again takes effect at once on this node.
    s.store
        .set_tiles_public(&s.tenant, false)
        .await
        .expect("private");
    assert_eq!(
        fetch(&s, None, &tile).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // A tenant that does not exist cannot be opened.
    assert!(
        s.store
            .set_tiles_public(&crate::support::tenant_id("nobody"), true)
            .await
            .is_err()
    );
}

async fn malformed_absent_and_non_get_tile_requests_are_refused(backend: Backend) {
    let s = Server::start(&backend).await;
    grow(&s).await;
    let prefix = prefix(&s).await;
    for path in [
        // Not canonical, or not a tiles path at all.
        "tile/0/0000",
        "tile/0/x000/001",
        "tile/00/000",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/01",
        "tile/entries/x",
        "tile/64/000",
        // Well formed, but beyond the tree: 700 records are tiles 0..=2 (the last 188 wide).
        "tile/0/003",
        "tile/0/002",
        "tile/0/002.p/189",
        "tile/1/000",
        "tile/1/000.p/3",
        "tile/2/000.p/1",
        "tile/7/000",
        "tile/entries/002",
        "tile/entries/003.p/1",
        "records/002.p/189",
        "records/x999/999",
    ] {
        let r = fetch(&s, Some(&s.verify), &format!("{prefix}{path}")).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/problem+json",
            "{path}"
        );
    }
    // Only GET and HEAD.
    let r = s
        .client
        .post(s.url(&format!("{prefix}tile/0/000")))
        .bearer_auth(&s.verify)
        .body("x")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()[header::ALLOW], "GET, HEAD");
    // Other unknown paths are still plain 404 problems.
    let r = fetch(&s, Some(&s.verify), "/no/such/page").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
}

/// Runs `auditex verify tiles` with `args`, the API key `key` in the environment; returns the
/// exit code and standard output.
async fn verify_tiles(args: &[&str], key: Option<&str>) -> (i32, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_auditex"));
    command.args(["verify", "tiles"]).args(args);
    command.env_remove("AUDITEX_API_KEY");
    if let Some(key) = key {
        command.env("AUDITEX_API_KEY", key);
    }
    let out = command.output().await.expect("run auditex verify tiles");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

async fn auditex_verify_tiles_proves_the_served_log_and_refuses_what_it_should(backend: Backend) {
    let s = Server::start(&backend).await;
    grow(&s).await;
    let prefix = prefix(&s).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = dir.path().join("ca.pem");
    std::fs::write(&pem, s.certificate_pem()).expect("write");
    let pem = pem.to_str().expect("utf-8").to_owned();
    let origin = s.store.origin(&s.tenant).await.expect("origin");
    let ring = s.store.key_history(&s.tenant).await.expect("keys");
    let vkey = VerifierKey::new(&origin, ring.intervals()[0].public_key)
        .expect("vkey")
        .to_string();
    // The checkpoint an auditor saved at size 300.
    let early: Value = s
        .get(&s.verify, "/v1/proofs/consistency?from=300")
        .await
        .json()
        .await
        .expect("json");
    let old = dir.path().join("early.checkpoint");
    std::fs::write(&old, early["from_checkpoint"].as_str().expect("note")).expect("write");
    let old = old.to_str().expect("utf-8").to_owned();
    let saved = dir.path().join("saved.checkpoint");
    let saved = saved.to_str().expect("utf-8").to_owned();
    let url = s.url(&prefix);

    let (code, out) = verify_tiles(
        &[
            &url,
            "--key",
            &vkey,
            "--ca-cert",
            &pem,
            "--leaf",
            "0",
            "--leaf",
            "256",
            "--leaf",
            "699",
            "--old",
            &old,
            "--all",
            "--save",
            &saved,
            "--json",
        ],
        Some(&s.verify),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(&out).expect("JSON report");
    assert_eq!(report["verified"], true);
    assert_eq!(report["checkpoint"]["size"], 700);
    assert_eq!(report["records"], 700);
    // Root, three records, consistency, the whole log, the saved checkpoint.
    assert_eq!(report["proven"].as_array().expect("list").len(), 7, "{out}");
    let latest = s
        .get(&s.verify, "/v1/checkpoints/latest")
        .await
        .text()
        .await
        .expect("text");
    assert_eq!(std::fs::read_to_string(&saved).expect("saved"), latest);

    // A key the log was not signed with: not verified.
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
    let stranger = VerifierKey::new(&origin, stranger)
        .expect("vkey")
        .to_string();
    let (code, out) = verify_tiles(
        &[&url, "--key", &stranger, "--ca-cert", &pem],
        Some(&s.verify),
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("checkpoint_not_trusted"), "{out}");
    // An old checkpoint of another log: not an extension of it.
    let other = crate::support::tenant_id("other-bank");
    s.store.create_tenant(&other).await.expect("tenant");
    append_many(&s.store, &other, 5, 5).await;
    s.store.publish_checkpoints().await.expect("publish");
    let other_note = s
        .store
        .latest_checkpoint(&other)
        .await
        .expect("read")
        .expect("published")
        .signed_note;
    let other_origin = s.store.origin(&other).await.expect("origin");
    let other_ring = s.store.key_history(&other).await.expect("keys");
    let other_vkey = VerifierKey::new(&other_origin, other_ring.intervals()[0].public_key)
        .expect("vkey")
        .to_string();
    let foreign = dir.path().join("foreign.checkpoint");
    std::fs::write(&foreign, other_note).expect("write");
    let (code, out) = verify_tiles(
        &[
            &url,
            "--key",
            &vkey,
            "--key",
            &other_vkey,
            "--ca-cert",
            &pem,
            "--old",
            foreign.to_str().expect("utf-8"),
        ],
        Some(&s.verify),
    )
    .await;
    assert_eq!(code, 1, "{out}");
    // No key for a private log, a leaf beyond the tree, an unknown CA: unusable, not a verdict.
    let (code, out) = verify_tiles(&[&url, "--key", &vkey, "--ca-cert", &pem], None).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("401") && out.contains("AUDITEX_API_KEY"),
        "{out}"
    );
    let (code, out) = verify_tiles(
        &[&url, "--key", &vkey, "--ca-cert", &pem, "--leaf", "700"],
        Some(&s.verify),
    )
    .await;
    assert_eq!(code, 2, "{out}");
    let (code, out) = verify_tiles(&[&url, "--key", &vkey], Some(&s.verify)).await;
    assert_eq!(
        code, 2,
        "a self-signed certificate is not trusted by default: {out}"
    );
    // The API key never travels over plain http to another host.
    let (code, out) = verify_tiles(
        &[
            "http://ledger.example.com/ledger/acme-bank/",
            "--key",
            &vkey,
        ],
        Some(&s.verify),
    )
    .await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("https only"), "{out}");
    // A public log needs no key.
    s.store
        .set_tiles_public(&s.tenant, true)
        .await
        .expect("public");
    let (code, out) = verify_tiles(
        &[&url, "--key", &vkey, "--ca-cert", &pem, "--leaf", "5"],
        None,
    )
    .await;
    assert_eq!(code, 0, "{out}");
}
