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

    // Another root at the cosigned size: a fork.
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
}
