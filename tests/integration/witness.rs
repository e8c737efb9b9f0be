//! `auditex witness serve` as a separate process over HTTPS, driven by a log written here from
//! the C2SP specifications alone (its own key, its own tree), so that nothing Auditex-specific
//! helps the witness: consistent checkpoints are cosigned, 409 names the cosigned size, forks,
//! rollbacks and bad proofs are refused and kept as evidence, and the state survives SIGKILL.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use ledger::checkpoint::Checkpoint;
use ledger::cosignature::{WitnessKey, verify_cosignatures};
use ledger::merkle::{empty_root, leaf_hash, node_hash};
use ledger::note::{Note, NoteSigner, VerifierKey, sign_note};
use ledger::types::{Hash, TreeSize};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

/// A log of random leaves, with its own key, written from RFC 9162 and C2SP alone.
pub struct TestLog {
    key: SigningKey,
    pub origin: String,
    leaves: Vec<Hash>,
}

fn largest_power_of_two_below(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = largest_power_of_two_below(n);
            node_hash(mth(&leaves[..k]), mth(&leaves[k..]))
        }
    }
}

/// RFC 9162 §2.1.4.1 SUBPROOF.
fn subproof(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if whole { Vec::new() } else { vec![mth(leaves)] };
    }
    let k = largest_power_of_two_below(n);
    if m <= k {
        let mut p = subproof(m, &leaves[..k], whole);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = subproof(m - k, &leaves[k..], false);
        p.push(mth(&leaves[..k]));
        p
    }
}

impl TestLog {
    pub fn new(origin: &str, seed: u8, size: usize) -> TestLog {
        let leaves = (0..size)
            .map(|i| leaf_hash(format!("{origin} entry {i}").as_bytes()))
            .collect();
        TestLog {
            key: SigningKey::from_bytes(&[seed; 32]),
            origin: origin.to_owned(),
            leaves,
        }
    }

    pub fn vkey(&self) -> VerifierKey {
        VerifierKey::new(&self.origin, self.key.verifying_key()).expect("vkey")
    }

    pub fn root(&self, size: usize) -> Hash {
        mth(&self.leaves[..size])
    }

    /// The checkpoint of `size` with `root`, signed by `key` (the log's own by default).
    pub fn signed(&self, size: usize, root: Hash, key: &SigningKey) -> String {
        let body = Checkpoint::new(self.origin.clone(), TreeSize::new(size as u64), root)
            .expect("checkpoint")
            .to_body();
        let signer = NoteSigner::new(&self.origin, key).expect("signer");
        sign_note(&body, &[signer]).expect("signed")
    }

    pub fn checkpoint(&self, size: usize) -> String {
        self.signed(size, self.root(size), &self.key)
    }

    pub fn proof(&self, old: usize, new: usize) -> Vec<Hash> {
        if old == 0 || old == new {
            Vec::new()
        } else {
            subproof(old, &self.leaves[..new], true)
        }
    }

    /// The `add-checkpoint` body from `old` to `new`.
    pub fn request(&self, old: usize, new: usize) -> String {
        request(old, &self.proof(old, new), &self.checkpoint(new))
    }
}

pub fn request(old: usize, proof: &[Hash], checkpoint: &str) -> String {
    let mut body = format!("old {old}\n");
    for h in proof {
        body.push_str(&STANDARD.encode(h.as_bytes()));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(checkpoint);
    body
}

/// `auditex witness serve` in its own process.
pub struct WitnessProcess {
    child: Child,
    pub base: String,
    pub client: reqwest::Client,
    pub vkey: WitnessKey,
}

impl WitnessProcess {
    /// Creates the witness in `dir` unless it exists, and starts it watching `logs`.
    pub fn start(dir: &Path, name: &str, logs: &[VerifierKey]) -> WitnessProcess {
        let auditex = env!("CARGO_BIN_EXE_auditex");
        if !dir.join("witness.key").exists() {
            let out = Command::new(auditex)
                .args(["witness", "init", "--name", name, "--dir"])
                .arg(dir)
                .output()
                .expect("witness init");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut command = Command::new(auditex);
        command
            .args(["witness", "serve", "--listen", "127.0.0.1:0", "--dir"])
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for log in logs {
            command.args(["--log", &log.to_string()]);
        }
        let mut child = command.spawn().expect("spawn the witness");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut base = None;
        let mut vkey = None;
        for line in lines.by_ref() {
            let line = line.expect("a line");
            if let Some(rest) = line.split("listening on ").nth(1) {
                base = rest.split(' ').next().map(str::to_owned);
            }
            if let Some(k) = line.strip_prefix("witness key: ") {
                vkey = Some(WitnessKey::parse(k).expect("witness vkey"));
                break;
            }
        }
        // Keep draining its output so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let pem = std::fs::read(dir.join("tls").join("tls-cert.pem")).expect("certificate");
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("cert")])
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        WitnessProcess {
            child,
            base: base
                .expect("the witness printed its address")
                .replace("127.0.0.1", "localhost"),
            client,
            vkey: vkey.expect("the witness printed its key"),
        }
    }

    pub async fn add(&self, body: &str) -> (StatusCode, String, String) {
        let r = self
            .client
            .post(format!("{}/add-checkpoint", self.base))
            .body(body.to_owned())
            .send()
            .await
            .expect("request");
        let status = r.status();
        let content_type = r
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("").to_owned())
            .unwrap_or_default();
        (status, content_type, r.text().await.expect("text"))
    }

    pub async fn monitored(&self, origin: &str) -> (StatusCode, String) {
        let hash = hex::encode(Sha256::digest(origin.as_bytes()));
        let r = self
            .client
            .get(format!("{}/{hash}/checkpoint", self.base))
            .send()
            .await
            .expect("request");
        (r.status(), r.text().await.expect("text"))
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WitnessProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The cosignatures of `witness` on `checkpoint` + `lines`.
fn cosignatures(witness: &WitnessKey, checkpoint: &str, lines: &str) -> Vec<u64> {
    let note = Note::parse(format!("{checkpoint}{lines}").as_bytes()).expect("a note");
    verify_cosignatures(&note, std::slice::from_ref(witness))
        .into_iter()
        .map(|c| c.timestamp)
        .collect()
}

async fn evidence(dir: &Path) -> Vec<serde_json::Value> {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_auditex"))
        .args(["witness", "evidence", "--dir"])
        .arg(dir)
        .output()
        .await
        .expect("witness evidence");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_cosigns_consistent_checkpoints_and_answers_409_with_its_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = TestLog::new("log.example.com/tests", 1, 1000);
    let w = WitnessProcess::start(dir.path(), "witness.example.com/w1", &[log.vkey()]);
    // Nothing cosigned yet: nothing to monitor.
    assert_eq!(w.monitored(&log.origin).await.0, StatusCode::NOT_FOUND);

    let (status, _, lines) = w.add(&log.request(0, 300)).await;
    assert_eq!(status, StatusCode::OK, "{lines}");
    let stamps = cosignatures(&w.vkey, &log.checkpoint(300), &lines);
    assert_eq!(stamps.len(), 1, "one valid cosignature: {lines}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    assert!(
        stamps[0] <= now && stamps[0] + 60 >= now,
        "a current timestamp"
    );

    // A log that does not know the witness's size learns it from 409.
    let (status, content_type, body) = w.add(&log.request(0, 700)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(content_type, "text/x.tlog.size");
    assert_eq!(body, "300\n");
    // With the proof from that size it is cosigned, and the same checkpoint again too.
    let (status, _, lines) = w.add(&log.request(300, 700)).await;
    assert_eq!(status, StatusCode::OK, "{lines}");
    assert_eq!(cosignatures(&w.vkey, &log.checkpoint(700), &lines).len(), 1);
    let (status, _, _) = w.add(&log.request(700, 700)).await;
    assert_eq!(status, StatusCode::OK);
    // The monitoring endpoint serves it with the log's signature and the cosignature.
    let (status, served) = w.monitored(&log.origin).await;
    assert_eq!(status, StatusCode::OK);
    let note = Note::parse(served.as_bytes()).expect("a note");
    assert_eq!(
        ledger::note::verify_note(&note, &[log.vkey()])
            .expect("log-signed")
            .len(),
        1
    );
    assert_eq!(
        verify_cosignatures(&note, std::slice::from_ref(&w.vkey)).len(),
        1
    );
    assert!(served.starts_with(&format!("{}\n700\n", log.origin)));
    assert!(evidence(dir.path()).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_refuses_a_fork_a_rollback_and_a_bad_proof_and_keeps_the_evidence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = TestLog::new("log.example.com/forking", 2, 1000);
    // The same origin and key, other entries: the fork a malicious log would show someone else.
    let mut fork = TestLog::new("log.example.com/forking", 2, 1000);
    fork.leaves[250] = leaf_hash(b"rewritten");
    let w = WitnessProcess::start(dir.path(), "witness.example.com/w2", &[log.vkey()]);
    assert_eq!(w.add(&log.request(0, 500)).await.0, StatusCode::OK);

    // Another root at the cosigned size: a fork. Sent again, it is refused again, and kept once.
    let (status, _, _) = w.add(&fork.request(500, 500)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _, _) = w.add(&fork.request(500, 500)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // A longer tree that does not extend the cosigned one (its proof is for its own history).
    let (status, _, _) = w.add(&fork.request(500, 800)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // A proof that is not a proof.
    let mut bad = log.proof(500, 800);
    bad[0] = leaf_hash(b"x");
    let (status, _, _) = w.add(&request(500, &bad, &log.checkpoint(800))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // A smaller tree than the one cosigned: a rollback.
    let (status, _, _) = w.add(&request(500, &[], &log.checkpoint(400))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Nothing of that moved the witness: it still stands at 500 and extends from there.
    let (status, _, body) = w.add(&log.request(0, 900)).await;
    assert_eq!((status, body.as_str()), (StatusCode::CONFLICT, "500\n"));
    let (status, served) = w.monitored(&log.origin).await;
    assert_eq!(status, StatusCode::OK);
    assert!(served.starts_with(&format!("{}\n500\n", log.origin)));
    assert_eq!(w.add(&log.request(500, 900)).await.0, StatusCode::OK);

    // Each refusal of a log-signed checkpoint is kept, with the checkpoint it contradicted.
    let kept = evidence(dir.path()).await;
    assert_eq!(kept.len(), 4, "{kept:?}");
    assert!(kept[0]["reason"].as_str().expect("reason").contains("fork"));
    assert!(
        kept[3]["reason"]
            .as_str()
            .expect("reason")
            .contains("rollback")
    );
    for e in &kept {
        assert_eq!(e["origin"], log.origin.as_str());
        assert!(
            e["cosigned"]
                .as_str()
                .expect("the cosigned checkpoint")
                .starts_with(&format!("{}\n500\n", log.origin))
        );
        // The offered checkpoint, with the log's own signature: proof of what the log signed.
        let offered = e["request"].as_str().expect("request");
        let note = offered.split_once("\n\n").expect("checkpoint").1;
        let note = Note::parse(note.as_bytes()).expect("note");
        assert!(ledger::note::verify_note(&note, &[log.vkey()]).is_ok());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_refuses_what_the_log_did_not_sign_and_logs_it_does_not_watch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = TestLog::new("log.example.com/watched", 3, 100);
    let stranger = TestLog::new("log.example.com/unknown", 4, 100);
    let w = WitnessProcess::start(dir.path(), "witness.example.com/w3", &[log.vkey()]);
    // Not watched: 404.
    assert_eq!(
        w.add(&stranger.request(0, 10)).await.0,
        StatusCode::NOT_FOUND
    );
    // The watched origin, signed by another key: 403.
    let forged = log.signed(10, log.root(10), &SigningKey::from_bytes(&[99; 32]));
    assert_eq!(
        w.add(&request(0, &[], &forged)).await.0,
        StatusCode::FORBIDDEN
    );
    // The log's key name and id with a broken signature: 403.
    let mut broken = log.checkpoint(10);
    let at = broken.rfind(' ').expect("signature") + 10;
    let replacement = if &broken[at..=at] == "A" { "B" } else { "A" };
    broken.replace_range(at..=at, replacement);
    assert_eq!(
        w.add(&request(0, &[], &broken)).await.0,
        StatusCode::FORBIDDEN
    );
    // Malformed requests: 400.
    for body in [
        "",
        "old 01\n\n",
        "old 0\n",
        "old 0\nnot base64\n\nx\n",
        "old 0\n\nnot a note\n",
    ] {
        assert_eq!(w.add(body).await.0, StatusCode::BAD_REQUEST, "{body:?}");
    }
    // A proof from size 0, or a size-0 tree with another root: 422.
    assert_eq!(
        w.add(&request(0, &log.proof(5, 10), &log.checkpoint(10)))
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let empty_with_root = log.signed(0, log.root(3), &log.key);
    assert_eq!(
        w.add(&request(0, &[], &empty_with_root)).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // A tree size no real log reaches (above 2^63 - 1): 400, nothing stored.
    let huge = log.signed(1usize << 63, log.root(3), &log.key);
    assert_eq!(
        w.add(&request(0, &[], &huge)).await.0,
        StatusCode::BAD_REQUEST
    );
    // old above the checkpoint's size: 400.
    assert_eq!(
        w.add(&request(20, &[], &log.checkpoint(10))).await.0,
        StatusCode::BAD_REQUEST
    );
    // A body over the limit is refused before it is read.
    let huge = "x".repeat(400 * 1024);
    assert_eq!(w.add(&huge).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    // None of it moved the state.
    assert_eq!(w.monitored(&log.origin).await.0, StatusCode::NOT_FOUND);
    assert_eq!(w.add(&log.request(0, 10)).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_killed_under_load_keeps_what_it_cosigned_and_never_goes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = TestLog::new("log.example.com/load", 5, 2000);
    let w = WitnessProcess::start(dir.path(), "witness.example.com/w4", &[log.vkey()]);
    assert_eq!(w.add(&log.request(0, 100)).await.0, StatusCode::OK);
    // Many clients at once, each from the size it believes the witness has: exactly the ones
    // that name the current size win, the state only grows, and every answer is 200 or 409.
    let mut cosigned = vec![100usize];
    for round in 0..5 {
        let base = *cosigned.last().expect("a size");
        let sizes: Vec<usize> = (1..=8).map(|i| base + round * 10 + i * 7).collect();
        let mut tasks = Vec::new();
        for &size in &sizes {
            let body = log.request(base, size);
            let client = w.client.clone();
            let url = format!("{}/add-checkpoint", w.base);
            tasks.push(tokio::spawn(async move {
                let r = client.post(url).body(body).send().await.expect("request");
                (size, r.status())
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            let (size, status) = t.await.expect("task");
            assert!(
                status == StatusCode::OK || status == StatusCode::CONFLICT,
                "{status} for {size}"
            );
            if status == StatusCode::OK {
                winners.push(size);
            }
        }
        assert_eq!(winners.len(), 1, "one request per state wins: {winners:?}");
        cosigned.push(winners[0]);
    }
    let last = *cosigned.last().expect("a size");
    let w = {
        w.kill();
        WitnessProcess::start(dir.path(), "witness.example.com/w4", &[log.vkey()])
    };
    // After SIGKILL the witness still stands where it last answered 200.
    let (status, _, body) = w.add(&log.request(0, 1500)).await;
    assert_eq!((status, body), (StatusCode::CONFLICT, format!("{last}\n")));
    let (status, served) = w.monitored(&log.origin).await;
    assert_eq!(status, StatusCode::OK);
    assert!(served.starts_with(&format!("{}\n{last}\n", log.origin)));
    assert_eq!(w.add(&log.request(last, 1500)).await.0, StatusCode::OK);
    // Its key is the one it had: a cosignature by the restarted witness verifies under it.
    let (_, _, lines) = w.add(&log.request(1500, 1500)).await;
    assert_eq!(
        cosignatures(&w.vkey, &log.checkpoint(1500), &lines).len(),
        1
    );

    // Killed while requests are in flight: after the restart it stands at least where it last
    // answered 200, at a size some client asked for, and never behind it.
    let client = w.client.clone();
    let url = format!("{}/add-checkpoint", w.base);
    let bodies: Vec<(usize, String)> = (1501..=1960)
        .step_by(20)
        .scan(1500usize, |from, to| {
            let body = log.request(*from, to);
            *from = to;
            Some((to, body))
        })
        .collect();
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(1500));
    let sender = {
        let acked = acked.clone();
        tokio::spawn(async move {
            for (to, body) in bodies {
                match client.post(&url).body(body).send().await {
                    Ok(r) if r.status() == StatusCode::OK => {
                        acked.store(to, std::sync::atomic::Ordering::SeqCst);
                    }
                    _ => break,
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    w.kill();
    let _ = sender.await;
    let acked = acked.load(std::sync::atomic::Ordering::SeqCst);
    let w = WitnessProcess::start(dir.path(), "witness.example.com/w4", &[log.vkey()]);
    let (status, _, body) = w.add(&log.request(0, 1999)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let stands: usize = body.trim().parse().expect("a size");
    assert!(stands >= acked, "acknowledged {acked}, stands at {stands}");
    assert!(
        stands == 1500 || (stands - 1501).is_multiple_of(20),
        "a size asked for: {stands}"
    );
    assert_eq!(w.add(&log.request(stands, 1999)).await.0, StatusCode::OK);
}

/// The service's checkpoints, cosigned by three witness processes: the cosignatures come back
/// with every checkpoint the service hands out, `auditex verify --witness … --quorum N` holds
/// evidence to them, and a witness that was down catches up from the size it had.
mod with_the_service {
    use super::*;
    use crate::http::Server;
    use crate::support::{Backend, append_many, backend_tests};

    backend_tests!(checkpoints_are_cosigned_and_evidence_is_held_to_a_quorum);

    /// The tenant's log key, as a witness is told it.
    async fn log_key(s: &Server, tenant: &ledger::types::TenantId) -> VerifierKey {
        let origin = s.store.origin(tenant).await.expect("origin");
        let ring = s.store.key_history(tenant).await.expect("keys");
        VerifierKey::new(&origin, ring.intervals()[0].public_key).expect("vkey")
    }

    /// Waits until the latest checkpoint of `tenant` carries cosignatures of all `witnesses`;
    /// returns the note.
    async fn cosigned_by(s: &Server, key: &str, witnesses: &[&WitnessKey]) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            s.store.publish_checkpoints().await.expect("publish");
            let note = s
                .get(key, "/v1/checkpoints/latest")
                .await
                .text()
                .await
                .expect("text");
            let parsed = Note::parse(note.as_bytes()).expect("note");
            let keys: Vec<WitnessKey> = witnesses.iter().map(|w| (*w).clone()).collect();
            if verify_cosignatures(&parsed, &keys).len() == witnesses.len() {
                return note;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not cosigned by all within 60 s: {note}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn verify(args: &[&str]) -> (i32, String) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_auditex"))
            .arg("verify")
            .args(args)
            .output()
            .await
            .expect("auditex verify");
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    async fn checkpoints_are_cosigned_and_evidence_is_held_to_a_quorum(backend: Backend) {
        let s = Server::start(&backend).await;
        let other = crate::support::tenant_id("other-bank");
        s.store.create_tenant(&other).await.expect("tenant");
        let logs = [log_key(&s, &s.tenant).await, log_key(&s, &other).await];
        let dirs: Vec<tempfile::TempDir> = (0..3)
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        let names = [
            "witness.example.com/a",
            "witness.example.com/b",
            "witness.example.com/c",
        ];
        let mut witnesses: Vec<WitnessProcess> = dirs
            .iter()
            .zip(names)
            .map(|(d, n)| WitnessProcess::start(d.path(), n, &logs))
            .collect();
        // acme-bank sends to all three, other-bank to the first only.
        for (i, w) in witnesses.iter().enumerate() {
            let ca = std::fs::read_to_string(dirs[i].path().join("tls").join("tls-cert.pem"))
                .expect("ca");
            s.store
                .add_witness(&s.tenant, &w.vkey.to_string(), &w.base, Some(ca.clone()))
                .await
                .expect("witness");
            if i == 0 {
                s.store
                    .add_witness(&other, &w.vkey.to_string(), &w.base, Some(ca))
                    .await
                    .expect("witness");
            }
        }
        let vkeys: Vec<WitnessKey> = witnesses.iter().map(|w| w.vkey.clone()).collect();
        append_many(&s.store, &s.tenant, 40, 20).await;
        append_many(&s.store, &other, 5, 5).await;
        let note = cosigned_by(&s, &s.verify, &[&vkeys[0], &vkeys[1], &vkeys[2]]).await;
        // Cosignatures carry a current time, not before the records were captured.
        let parsed = Note::parse(note.as_bytes()).expect("note");
        for c in verify_cosignatures(&parsed, &vkeys) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("time")
                .as_secs();
            assert!(c.timestamp <= now && c.timestamp + 120 >= now, "{c:?}");
        }
        // The other tenant's checkpoints went to its one witness only.
        let other_note = s
            .store
            .latest_checkpoint(&other)
            .await
            .expect("read")
            .expect("published");
        let other_note = s
            .store
            .with_cosignatures(&other, other_note)
            .await
            .expect("cosignatures")
            .signed_note;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut other_note = other_note;
        while verify_cosignatures(&Note::parse(other_note.as_bytes()).expect("note"), &vkeys)
            .is_empty()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "other-bank not cosigned"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            let c = s
                .store
                .latest_checkpoint(&other)
                .await
                .expect("read")
                .expect("published");
            other_note = s
                .store
                .with_cosignatures(&other, c)
                .await
                .expect("c")
                .signed_note;
        }
        let found = verify_cosignatures(&Note::parse(other_note.as_bytes()).expect("note"), &vkeys);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, names[0]);

        // Evidence carries the cosigned checkpoint, and the verifier holds it to the policy.
        let dir = tempfile::tempdir().expect("tempdir");
        let log_vkey = logs[0].to_string();
        let w: Vec<String> = vkeys.iter().map(ToString::to_string).collect();
        let export = dir.path().join("export.jsonl");
        std::fs::write(
            &export,
            s.get(&s.verify, "/v1/export")
                .await
                .bytes()
                .await
                .expect("b"),
        )
        .expect("write");
        let proof = dir.path().join("r7.proof");
        std::fs::write(
            &proof,
            s.get(&s.verify, "/v1/proofs/inclusion/7/tlog-proof")
                .await
                .bytes()
                .await
                .expect("b"),
        )
        .expect("write");
        for file in [&export, &proof] {
            let file = file.to_str().expect("utf-8");
            let (code, out) = verify(&[
                file,
                "--key",
                &log_vkey,
                "--witness",
                &w[0],
                "--witness",
                &w[1],
                "--witness",
                &w[2],
                "--quorum",
                "2",
                "--json",
            ])
            .await;
            assert_eq!(code, 0, "{out}");
            let report: serde_json::Value = serde_json::from_str(&out).expect("json");
            assert_eq!(
                report["cosignatures"].as_array().expect("list").len(),
                3,
                "{out}"
            );
            assert!(out.contains("witnessed time"), "{out}");
            // A witness that never saw it cannot be counted: a quorum of the fourth fails.
            let stranger = WitnessKey::new(
                "witness.example.com/d",
                SigningKey::from_bytes(&[77; 32]).verifying_key(),
            )
            .expect("key")
            .to_string();
            let (code, out) = verify(&[file, "--key", &log_vkey, "--witness", &stranger]).await;
            assert_eq!(code, 1, "{out}");
            assert!(
                out.contains("witness_quorum") || out.contains("cosignatures of 0"),
                "{out}"
            );
            // A quorum larger than the witnesses given is an unusable request.
            let (code, _) = verify(&[
                file,
                "--key",
                &log_vkey,
                "--witness",
                &w[0],
                "--quorum",
                "2",
            ])
            .await;
            assert_eq!(code, 2);
        }

        // The same, from a C2SP tlog-policy file: the log's key and a quorum of groups.
        let policy = dir.path().join("policy.txt");
        std::fs::write(
            &policy,
            format!(
                "# acme-bank, witnessed\nlog {log_vkey}\nwitness A {}\nwitness B {}\nwitness C {} {}\ngroup AB any A B\ngroup all-of-it all AB C\nquorum all-of-it\n",
                w[0], w[1], w[2], witnesses[2].base
            ),
        )
        .expect("write");
        let strict = dir.path().join("strict.txt");
        let stranger = WitnessKey::new(
            "witness.example.com/d",
            SigningKey::from_bytes(&[77; 32]).verifying_key(),
        )
        .expect("key");
        std::fs::write(
            &strict,
            format!("log {log_vkey}\nwitness A {}\nwitness D {stranger}\ngroup both all A D\nquorum both\n", w[0]),
        )
        .expect("write");
        let export_path = export.to_str().expect("utf-8");
        let (code, out) = verify(&[export_path, "--policy", policy.to_str().expect("utf-8")]).await;
        assert_eq!(code, 0, "{out}");
        let (code, out) = verify(&[export_path, "--policy", strict.to_str().expect("utf-8")]).await;
        assert_eq!(code, 1, "{out}");
        let (code, _) = verify(&[
            export_path,
            "--policy",
            policy.to_str().expect("utf-8"),
            "--witness",
            &w[0],
        ])
        .await;
        assert_eq!(code, 2, "--policy and --witness are exclusive");

        // A witness down for a while catches up from the size it had once it is back.
        let down = witnesses.pop().expect("three");
        down.kill();
        append_many(&s.store, &s.tenant, 30, 10).await;
        let _ = cosigned_by(&s, &s.verify, &[&vkeys[0], &vkeys[1]]).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let failing = s.store.witness_statuses().into_iter().any(|st| {
                st.witness == names[2] && st.last_error.is_some() && st.lag_records() > 0
            });
            if failing {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the dead witness is not reported"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let metrics = s.metrics_text().await;
        assert!(
            metrics.contains(&format!(
                "auditex_witness_failing{{witness=\"{}\"}} 1",
                names[2]
            )),
            "{metrics}"
        );
        // Back up, on the same state and key: it is sent the proof from its old size.
        witnesses.push(WitnessProcess::start(dirs[2].path(), names[2], &logs));
        let restarted_base = witnesses[2].base.clone();
        let ca =
            std::fs::read_to_string(dirs[2].path().join("tls").join("tls-cert.pem")).expect("ca");
        s.store
            .add_witness(&s.tenant, &w[2], &restarted_base, Some(ca))
            .await
            .expect("new address");
        let _ = cosigned_by(&s, &s.verify, &[&vkeys[0], &vkeys[1], &vkeys[2]]).await;
        assert!(
            evidence(dirs[2].path()).await.is_empty(),
            "nothing refused on catching up"
        );
    }

    /// After a restore and an acknowledged rollback, the log's new branch cannot be cosigned by
    /// a witness that saw the old one: it refuses it and keeps the log-signed proof of the fork.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_witness_refuses_the_branch_after_a_rollback_and_keeps_the_proof() {
        use crate::support::TestDb;
        let backend = Backend::Sqlite;
        let checkpoints = tempfile::tempdir().expect("tempdir");
        let with_dir = |db: &TestDb| {
            let mut config = db.config();
            config.checkpoint_dir = Some(checkpoints.path().to_owned());
            config
        };
        let db = TestDb::new(&backend).await;
        let tenant = crate::support::tenant_id("acme-bank");
        let store = auditex::store::Store::open_with_workers(with_dir(&db))
            .await
            .expect("open");
        store.create_tenant(&tenant).await.expect("tenant");
        append_many(&store, &tenant, 10, 10).await;
        store.publish_checkpoints().await.expect("publish");
        let backup_dir = tempfile::tempdir().expect("tempdir");
        let backup = backup_dir.path().join("backup.db");
        store.backup(&backup).await.expect("backup");
        let s = Server::start_on(db, store, tenant.clone(), 1000, 1000).await;
        let logs = [log_key(&s, &tenant).await];
        let wdir = tempfile::tempdir().expect("tempdir");
        let w = WitnessProcess::start(wdir.path(), "witness.example.com/r", &logs);
        let ca = std::fs::read_to_string(wdir.path().join("tls").join("tls-cert.pem")).expect("ca");
        s.store
            .add_witness(&tenant, &w.vkey.to_string(), &w.base, Some(ca.clone()))
            .await
            .expect("witness");
        append_many(&s.store, &tenant, 30, 10).await;
        let _ = cosigned_by(&s, &s.verify, &[&w.vkey]).await;
        let (status, served) = w.monitored(logs[0].name()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            served.contains("\n40\n"),
            "the witness saw 40 records: {served}"
        );

        // The database goes back to the backup of 10 records; the rollback is acknowledged and
        // the log grows again, past the size the witness cosigned, with other records.
        let db = s.stop().await;
        auditex::store::backup::restore_sqlite(&backup, &with_dir(&db), true)
            .await
            .expect("restore");
        let store = auditex::store::Store::open_with_workers(with_dir(&db))
            .await
            .expect("reopen");
        assert!(!store.rollback_status().is_clear(), "held");
        let s = Server::start_on(db, store, tenant.clone(), 1000, 1000).await;
        s.store
            .acknowledge_rollback(&tenant, "dana", "restored the volume")
            .await
            .expect("acknowledged");
        // The restored database predates the witness's configuration.
        s.store
            .add_witness(&tenant, &w.vkey.to_string(), &w.base, Some(ca))
            .await
            .expect("witness");
        append_many(&s.store, &tenant, 40, 10).await;
        s.store.publish_checkpoints().await.expect("publish");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let kept = loop {
            let kept = evidence(wdir.path()).await;
            if !kept.is_empty() {
                break kept;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the witness kept no evidence"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(
            kept[0]["reason"]
                .as_str()
                .expect("reason")
                .contains("consistency proof"),
            "{kept:?}"
        );
        // The evidence holds both: what the witness cosigned (40) and what the log signed since.
        assert!(
            kept[0]["cosigned"]
                .as_str()
                .expect("cosigned")
                .contains("\n40\n")
        );
        let offered = kept[0]["request"].as_str().expect("request");
        let note = Note::parse(offered.split_once("\n\n").expect("checkpoint").1.as_bytes())
            .expect("note");
        assert!(
            ledger::note::verify_note(&note, &logs).is_ok(),
            "signed by the log"
        );
        // The new branch carries no cosignature of that witness, and the service says why.
        let latest = s
            .get(&s.verify, "/v1/checkpoints/latest")
            .await
            .text()
            .await
            .expect("text");
        let parsed = Note::parse(latest.as_bytes()).expect("note");
        assert!(verify_cosignatures(&parsed, std::slice::from_ref(&w.vkey)).is_empty());
        let status = s
            .store
            .witness_statuses()
            .into_iter()
            .find(|st| st.witness == "witness.example.com/r")
            .expect("status");
        assert!(status.last_error.is_some(), "{status:?}");
        // Still 40 at the witness: the refused branch moved nothing.
        let (_, served) = w.monitored(logs[0].name()).await;
        assert!(served.contains("\n40\n"), "{served}");

        // Shown the disclosure, the witness's operator forgets the old branch: the new one is
        // cosigned from then on, and the forgotten checkpoint stays with the evidence.
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_auditex"))
            .args([
                "witness",
                "reset-log",
                "--origin",
                logs[0].name(),
                "--reason",
                "rollback disclosed",
            ])
            .arg("--dir")
            .arg(wdir.path())
            .output()
            .await
            .expect("reset-log");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        append_many(&s.store, &tenant, 2, 2).await;
        let _ = cosigned_by(&s, &s.verify, &[&w.vkey]).await;
        let kept = evidence(wdir.path()).await;
        assert!(
            kept.iter().any(|e| e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("rollback disclosed"))
                && e["cosigned"].as_str().is_some_and(|c| c.contains("\n40\n"))),
            "{kept:?}"
        );
    }
}
