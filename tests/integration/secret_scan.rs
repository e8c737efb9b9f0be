//! The capture half of the secret-log scan: everything the service logs while this test binary
//! runs is written to files, and every secret the tests create or see is registered, so that
//! `scripts/secret-log-scan` can fail CI when any secret appears in any log.
//!
//! The check itself is a script because `cargo test` has no hook that runs after the last test:
//! a test cannot know that every other test has finished logging. `.ci/run` runs the script right
//! after `cargo test --workspace`.
//!
//! One test-binary process is one *run*, a folder under `<target>/tmp/secret-scan/` (or
//! `$AUDITEX_SECRET_SCAN_DIR`) named `run-<unix seconds>-<pid>`, mode 0700:
//!
//! - `lock`: held (`flock`, exclusive) for as long as the process lives, so the scanner can skip
//!   runs that are still going (the target folder is shared by everyone working in the tree);
//! - `secrets`: mode 0600, one `kind<TAB>text` line per secret. The scan is a substring search,
//!   so the text itself is stored (a hash could not be searched for); the file never leaves
//!   `target/`, and the scanner removes a run once it has scanned it clean;
//! - `logs/in-process.log`: a global `tracing` subscriber installed once ([`init`]) at the most
//!   verbose levels the service uses — `trace` for our crates, `debug` for every dependency —
//!   catching the in-process HTTP and store tests, where API keys are created and used;
//! - `logs/<label>-<n>.log`: what spawned `auditex` processes printed ([`record_output`],
//!   [`output_file`]).
//!
//! Registering a new kind of secret is one call where a test creates or sees it:
//! `secret_scan::register("session id", &session_id)` for text,
//! [`register_bytes`] for key material (hex, upper-case hex and base64 forms),
//! [`register_api_key`], [`register_pem_file`]. The test PostgreSQL server's passwords
//! (`AUDITEX_TEST_POSTGRES_*`) are registered when the run starts.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Overrides where runs are written; `scripts/secret-log-scan` reads the same variable.
pub const SCAN_DIR_VAR: &str = "AUDITEX_SECRET_SCAN_DIR";

/// The in-process subscriber's filter. `trace` is the most verbose level our crates use (the
/// appender's idempotency lookup); dependencies (sqlx statements, rustls, hyper) at `debug` show
/// what they would print if an operator turned debugging on, which is where connection strings
/// and headers tend to leak. The tests' own clients share the process but are not the service:
/// the WebDriver client (`thirtyfour`) and the HTTP client (`reqwest`, `hyper_util::client`)
/// log at debug what the tests send on purpose — passwords typed into the portal, reset links —
/// so they are left out.
const IN_PROCESS_LOG_FILTER: &str = "debug,auditex=trace,ledger=trace,projections=trace,\
     thirtyfour=off,reqwest=off,hyper_util::client=off";

/// Shortest text the scan searches for. Shorter text would match ordinary log lines by chance
/// and turn the scan into noise; tests choose secrets at least this long.
pub const SECRET_CHARS_MIN: usize = 8;

/// Environment variables of the test PostgreSQL server; their passwords are secrets.
const POSTGRES_ENV_PREFIX: &str = "AUDITEX_TEST_POSTGRES_";

/// Runs nobody scanned are removed after this long. The scan is meant to follow the tests at
/// once; without a limit, every local `cargo test` would leave tens of megabytes of logs (and a
/// secrets file) in `target/` for good.
const UNSCANNED_RUN_KEEP_SECS: u64 = 24 * 3600;

/// This process's run folder and its open files.
struct Run {
    dir: PathBuf,
    /// The secrets file, and what was written to it already (so repeats cost nothing).
    secrets: Mutex<(File, HashSet<String>)>,
    /// Numbers the output files of spawned processes.
    outputs: AtomicU64,
    /// Held until the process exits; the kernel releases the lock even after a crash.
    _lock: File,
}

static RUN: OnceLock<Run> = OnceLock::new();

/// What to do with a secret too short to search for.
#[derive(Clone, Copy)]
enum TooShort {
    /// A test chose it: fail, so that the test is fixed.
    Panic,
    /// It came from the environment (a developer's PostgreSQL password): say it is not scanned.
    Warn,
}

fn run() -> &'static Run {
    RUN.get_or_init(start_run)
}

/// Creates this process's run folder and installs the global subscriber that writes the
/// in-process log. Idempotent; every `register…` function calls it, and so does
/// `TestDb::new`, which every in-process test of the service goes through.
///
/// # Panics
/// When the folder cannot be created or another global subscriber is already installed (the
/// scan would then miss the in-process logs).
pub fn init() {
    run();
}

fn start_run() -> Run {
    let root = std::env::var_os(SCAN_DIR_VAR).map_or_else(
        || Path::new(env!("CARGO_TARGET_TMPDIR")).join("secret-scan"),
        PathBuf::from,
    );
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    remove_stale_runs(&root, started);
    let dir = root.join(format!("run-{started}-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("logs"))
        .unwrap_or_else(|e| panic!("secret scan: cannot create {}: {e}", dir.display()));
    set_mode(&dir, 0o700);
    let lock = create_private(&dir.join("lock"));
    #[cfg(unix)]
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .unwrap_or_else(|e| panic!("secret scan: cannot lock {}: {e}", dir.display()));
    let secrets = create_private(&dir.join("secrets"));
    let log = create_private(&dir.join("logs/in-process.log"));
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(IN_PROCESS_LOG_FILTER))
        .with_ansi(false)
        .with_writer(Mutex::new(log))
        .try_init()
        .unwrap_or_else(|e| {
            panic!("secret scan: another global tracing subscriber is installed: {e}")
        });
    let run = Run {
        dir,
        secrets: Mutex::new((secrets, HashSet::new())),
        outputs: AtomicU64::new(0),
        _lock: lock,
    };
    // The test PostgreSQL server's passwords are in every connection the suite makes; they are
    // registered here because no single test owns them.
    for (name, value) in std::env::vars() {
        if !name.starts_with(POSTGRES_ENV_PREFIX) {
            continue;
        }
        if name.ends_with("_PASSWORD") {
            run.add(
                &format!("database password ({name})"),
                &value,
                TooShort::Warn,
            );
        } else if let Ok(url) = url::Url::parse(&value) {
            run.add_url_password(&format!("database password ({name})"), &url, TooShort::Warn);
        }
    }
    run
}

impl Run {
    fn add(&self, kind: &str, secret: &str, too_short: TooShort) {
        assert!(
            !kind.contains(['\t', '\n', '\r']),
            "secret scan: a kind is one line without tabs: {kind:?}"
        );
        // Multi-line secrets (PEM) are searched for line by line: any line of the body in a log
        // is a leak, and `grep -F` patterns are lines. The armour lines are not secret.
        let pieces: Vec<&str> = if secret.contains(['\n', '\r', '\t']) {
            secret
                .split(['\n', '\r', '\t'])
                .map(str::trim)
                .filter(|l| l.len() >= SECRET_CHARS_MIN && !l.starts_with("-----"))
                .collect()
        } else {
            vec![secret]
        };
        let mut guard = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        let (file, seen) = &mut *guard;
        for piece in pieces {
            if piece.len() < SECRET_CHARS_MIN {
                match too_short {
                    TooShort::Panic => panic!(
                        "secret scan: a {kind} of {} characters is too short to search logs for \
                         (at least {SECRET_CHARS_MIN}); use a longer test secret",
                        piece.len()
                    ),
                    TooShort::Warn => {
                        eprintln!(
                            "secret scan: the {kind} is shorter than {SECRET_CHARS_MIN} characters \
                             and is not scanned for"
                        );
                        continue;
                    }
                }
            }
            if seen.insert(piece.to_owned()) {
                file.write_all(format!("{kind}\t{piece}\n").as_bytes())
                    .expect("secret scan: write the secrets file");
            }
        }
    }

    fn add_url_password(&self, kind: &str, url: &url::Url, too_short: TooShort) {
        if let Some(encoded) = url.password() {
            // Logs may show the URL (percent-encoded) or the password itself.
            self.add(kind, encoded, too_short);
            let decoded = percent_decode(encoded);
            if decoded != encoded {
                self.add(kind, &decoded, too_short);
            }
        }
    }
}

/// Registers secret text (an API key, a password, a session id, a reset token…): the scan fails
/// if it appears in any log. Multi-line text is searched for line by line.
///
/// # Panics
/// When the text (or a line of it) is shorter than [`SECRET_CHARS_MIN`].
pub fn register(kind: &str, secret: &str) {
    run().add(kind, secret, TooShort::Panic);
}

/// Registers binary key material in the forms a log could show it: hex, upper-case hex, and
/// base64 (standard and URL-safe).
///
/// # Panics
/// When the bytes are too few to search for.
pub fn register_bytes(kind: &str, bytes: &[u8]) {
    for (form, text) in encodings(bytes) {
        register(&format!("{kind} ({form})"), &text);
    }
}

/// The forms of `bytes` a log could show, by name. The base64 forms drop their last four
/// characters, which depend on what follows the bytes (padding, or more data when the bytes are
/// the start of a longer encoded value), so that they match either way.
pub fn encodings(bytes: &[u8]) -> Vec<(&'static str, String)> {
    use base64::Engine;
    let hex = hex::encode(bytes);
    let mut out = vec![("hex", hex.clone()), ("HEX", hex.to_uppercase())];
    for (form, engine) in [
        ("base64", base64::engine::general_purpose::STANDARD),
        (
            "base64url",
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ),
    ] {
        let text = engine.encode(bytes);
        out.push((form, text[..text.len().saturating_sub(4)].to_owned()));
    }
    out
}

/// Registers an API key as shown to its owner (`atx_<id>_<secret>_<check>`): the whole text and
/// its secret part in every encoding (the id and check digits are not secret).
///
/// # Panics
/// When `text` is not an API key.
pub fn register_api_key(text: &str) {
    register("API key", text);
    let secret = text
        .split('_')
        .nth(2)
        .filter(|_| auditex::auth::ApiKeySecret::parse(text).is_ok())
        .unwrap_or_else(|| panic!("secret scan: not an API key"));
    let bytes = hex::decode(secret).expect("an API key's secret is hex");
    register_bytes("API key secret part", &bytes);
}

/// Registers several API keys, as [`register_api_key`].
///
/// # Panics
/// When one is not an API key.
pub fn register_api_keys(keys: &[&str]) {
    for key in keys {
        register_api_key(key);
    }
}

/// Registers every line of a PEM file's body (a private key).
///
/// # Panics
/// When the file cannot be read.
pub fn register_pem_file(kind: &str, path: &Path) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("secret scan: read {}: {e}", path.display()));
    register(kind, &text);
}

/// Writes what a spawned process printed to a new log file of this run; `label` names it (for
/// example the command). Record stdout only where it is logging: a command whose job is to
/// print a secret once (`auditex apikey create`) records its stderr only.
pub fn record_output(label: &str, bytes: &[u8]) {
    let (mut file, path) = output_file(label);
    file.write_all(bytes)
        .unwrap_or_else(|e| panic!("secret scan: write {}: {e}", path.display()));
}

/// A new, empty log file of this run for a spawned process's output, for output that is copied
/// while the process runs (`auditex serve`).
pub fn output_file(label: &str) -> (File, PathBuf) {
    let run = run();
    let n = run.outputs.fetch_add(1, Ordering::SeqCst);
    let label: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(60)
        .collect();
    let path = run.dir.join(format!("logs/{label}-{n}.log"));
    (create_private(&path), path)
}

/// The in-process log of this run.
pub fn in_process_log() -> PathBuf {
    run().dir.join("logs/in-process.log")
}

/// The secrets file of this run.
pub fn secrets_file() -> PathBuf {
    run().dir.join("secrets")
}

/// Removes finished runs (their lock is free) older than [`UNSCANNED_RUN_KEEP_SECS`]. Runs the
/// scanner set aside as `failed-run-…` are left for people to look at.
fn remove_stale_runs(root: &Path, now: u64) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(started) = name
            .strip_prefix("run-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|t| t.parse::<u64>().ok())
        else {
            continue;
        };
        if now.saturating_sub(started) < UNSCANNED_RUN_KEEP_SECS {
            continue;
        }
        #[cfg(unix)]
        {
            let finished = File::open(entry.path().join("lock")).is_ok_and(|lock| {
                rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                    .is_ok()
            });
            if !finished {
                continue;
            }
        }
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

fn create_private(path: &Path) -> File {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .unwrap_or_else(|e| panic!("secret scan: create {}: {e}", path.display()))
}

fn set_mode(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("secret scan: chmod {}: {e}", path.display()));
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}

/// `%XX` decoding of a URL's userinfo (invalid escapes are kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The capture works: a debug event of the service's crates reaches the in-process log, and a
/// registered secret reaches the private secrets file. (That the scanner then finds a planted
/// secret is `scripts/secret-log-scan --self-test`, run by `.ci/run`.)
#[test]
fn debug_logs_and_registered_secrets_are_captured_for_the_scan() {
    init();
    let marker = format!("secret-scan-probe-{:016x}", rand::random::<u64>());
    tracing::debug!(target: "auditex::secret_scan", probe = %marker, "capture probe");
    let log = std::fs::read_to_string(in_process_log()).expect("the in-process log");
    assert!(
        log.lines()
            .any(|l| l.contains(" DEBUG ") && l.contains(&marker)),
        "debug events reach the in-process log"
    );

    let secret = format!("probe-secret-{:016x}", rand::random::<u64>());
    register("scan probe", &secret);
    register("scan probe", &secret);
    let secrets = std::fs::read_to_string(secrets_file()).expect("the secrets file");
    assert_eq!(
        secrets
            .lines()
            .filter(|l| *l == format!("scan probe\t{secret}"))
            .count(),
        1,
        "registered once, as kind<TAB>text"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&secrets_file()), 0o600, "the secrets file is private");
        assert_eq!(mode(&run().dir), 0o700, "so is the run folder");
    }

    let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIHrWQyNSi0bWOgmTWzPLA1EvRR1dh\n-----END PRIVATE KEY-----\n";
    register("scan probe PEM", pem);
    let secrets = std::fs::read_to_string(secrets_file()).expect("the secrets file");
    assert!(
        secrets.contains("scan probe PEM\tMC4CAQAwBQYDK2VwBCIEIHrWQyNSi0bWOgmTWzPLA1EvRR1dh\n")
    );
    assert!(
        !secrets.contains("scan probe PEM\t-----"),
        "armour lines are not secrets"
    );
    assert_eq!(percent_decode("a%2Fb%zz%"), "a/b%zz%");
}
