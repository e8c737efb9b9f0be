//! `auditex serve` started as a user starts it, as a process of its own, for the benchmarks that
//! measure the service from outside (over HTTPS, with its read side and checkpointing running).
//! Included with `#[path]` by each bench that needs it.

#![allow(dead_code)]

use std::time::Instant;

use auditex::store::DatabaseUrl;

/// `auditex serve` as a process of its own, with its folder, key and database.
pub struct Served {
    _dir: tempfile::TempDir,
    /// The server process.
    pub child: std::process::Child,
    /// Its base URL (`https://localhost:<port>`).
    pub url: String,
    /// A client trusting its self-signed certificate.
    pub client: reqwest::Client,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The release binary the benches run: the one `AUDITEX_BENCH_BINARY` names (to compare two
/// builds on one machine within minutes), else the one a user builds, `cargo build --release
/// --bin auditex`, built here once per bench process.
///
/// Not the binary cargo builds beside a bench (`CARGO_BIN_EXE_auditex`): that one has the
/// dev-dependencies' features, which a user's build has not — serde_json's `preserve_order`
/// (asked for by the browser tests' WebDriver client: every JSON object an insertion-ordered,
/// hashed map rather than a B-tree) and the projections' test faults. Alternating the two
/// builds of one commit under the load benchmark, the user's build gave 8–20 % more batched
/// ingestion, single appends and proofs (medians of five runs each; BENCHMARKS.md, "The binary
/// a user builds").
pub fn binary() -> std::path::PathBuf {
    static BINARY: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Some(named) = std::env::var_os("AUDITEX_BENCH_BINARY") {
                return named.into();
            }
            users_build()
        })
        .clone()
}

/// Runs `cargo build --release --bin auditex` in this repository (cargo has let go of the
/// build folder while benches run) and returns the executable it reports.
///
/// Without the variables cargo sets for a bench it runs (the package's name and version, its
/// manifest, `OUT_DIR`): build scripts that watch them (ring's does) would otherwise see them
/// changed and be run again, and the crates above them built again, here and in the user's next
/// build.
fn users_build() -> std::path::PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building the binary a user builds: cargo build --release --bin auditex");
    let mut command = std::process::Command::new(cargo);
    for (name, _) in std::env::vars_os() {
        let set_for_the_bench = name.to_str().is_some_and(|n| {
            n == "OUT_DIR"
                || n == "CARGO_CRATE_NAME"
                || n == "CARGO_PRIMARY_PACKAGE"
                || n == "CARGO_TARGET_TMPDIR"
                || n == "CARGO_RUSTC_CURRENT_DIR"
                || n.starts_with("CARGO_MANIFEST_")
                || n.starts_with("CARGO_PKG_")
                || n.starts_with("CARGO_BIN_")
        });
        if set_for_the_bench {
            command.env_remove(&name);
        }
    }
    let out = command
        .args([
            "build",
            "--release",
            "--bin",
            "auditex",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo build --release --bin auditex failed"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "auditex")
        .find_map(|m| m["executable"].as_str().map(std::path::PathBuf::from))
        .expect("cargo names the auditex executable it built")
}

/// Runs the release binary ([`binary`]) with the bench's environment.
pub fn auditex(
    dir: &std::path::Path,
    database: &DatabaseUrl,
    admin: Option<&str>,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(binary());
    cmd.env("AUDITEX_DATA_DIR", dir.join("data"))
        .env("AUDITEX_MASTER_KEY_FILE", dir.join("master.key"))
        .stdin(std::process::Stdio::null());
    match database {
        DatabaseUrl::Sqlite(path) => {
            cmd.env("AUDITEX_DATABASE_URL", format!("sqlite:{}", path.display()));
        }
        DatabaseUrl::Postgres(url) => {
            cmd.env("AUDITEX_DATABASE_URL", url);
        }
    }
    if let Some(a) = admin {
        cmd.env("AUDITEX_ADMIN_DATABASE_URL", a);
    }
    cmd
}

/// Creates `tenants` (an ingest and a read key each, in that order), then starts `auditex serve`
/// on loopback with `env` added to its environment (its logs are read and dropped).
pub fn serve(
    database: &DatabaseUrl,
    admin: Option<&str>,
    tenants: &[&str],
    env: &[(&str, &str)],
) -> (Served, Vec<String>) {
    serve_with(database, admin, tenants, env, |_| {})
}

/// Like [`serve`], running `before` (given a runner of `auditex` commands that returns their
/// standard output) after the tenants and keys are made and before the service starts.
pub fn serve_with(
    database: &DatabaseUrl,
    admin: Option<&str>,
    tenants: &[&str],
    env: &[(&str, &str)],
    before: impl FnOnce(&dyn Fn(&[&str]) -> String),
) -> (Served, Vec<String>) {
    use std::io::BufRead;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("master.key");
    std::fs::write(&key, hex::encode(rand::random::<[u8; 32]>())).expect("key file");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let run = |args: &[&str]| {
        let out = auditex(dir.path(), database, admin)
            .args(args)
            .output()
            .expect("auditex");
        assert!(
            out.status.success(),
            "auditex {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let mut keys = Vec::new();
    for t in tenants {
        run(&["tenant", "create", t]);
        for role in ["ingest", "read"] {
            keys.push(run(&["apikey", "create", "--tenant", t, "--role", role]));
        }
    }
    before(&run);
    // The service runs with `env` and nothing of the shell's logging choice, so a figure is
    // measured at the log level it claims.
    // For a profile: `AUDITEX_BENCH_SERVER_RUST_LOG` sets the service's log filter and
    // `AUDITEX_BENCH_SERVER_LOG` names a file its log lines are written to.
    let mut cmd = auditex(dir.path(), database, admin);
    cmd.env_remove("RUST_LOG").envs(env.iter().copied());
    // The profile's filter wins over a bench's own choice.
    if let Ok(filter) = std::env::var("AUDITEX_BENCH_SERVER_RUST_LOG") {
        cmd.env("RUST_LOG", filter);
    }
    let mut log = std::env::var_os("AUDITEX_BENCH_SERVER_LOG")
        .map(|path| std::fs::File::create(path).expect("server log file"));
    let mut child = cmd
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(if log.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .spawn()
        .expect("spawn auditex serve");
    if let (Some(stderr), Some(file)) = (child.stderr.take(), log.as_ref()) {
        let mut file = file.try_clone().expect("server log file");
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::BufReader::new(stderr), &mut file);
        });
    }
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("serve says where it listens")
            .expect("line");
        if let Some(rest) = line.split(" listening on ").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .expect("address")
                .replace("127.0.0.1", "localhost");
        }
    };
    std::thread::spawn(move || {
        use std::io::Write;
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(file) = log.as_mut() {
                let _ = writeln!(file, "{line}");
            }
        }
    });
    let pem = std::fs::read(dir.path().join("data/tls/tls-cert.pem")).expect("certificate");
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("pem")])
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .expect("client");
    (
        Served {
            _dir: dir,
            child,
            url,
            client,
        },
        keys,
    )
}

/// Waits until the read side of `key`'s tenant has applied everything (lag 0 in every view).
pub async fn views_caught_up(served: &Served, key: &str) {
    let deadline = Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let status: serde_json::Value = served
            .client
            .get(format!("{}/v1/projections", served.url))
            .bearer_auth(key)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        let views = status["projections"]
            .as_array()
            .unwrap_or_else(|| panic!("no projection status: {status}"));
        // An empty list means the views have not run yet, not that they caught up.
        let lagging =
            views.is_empty() || views.iter().any(|p| p["lag_records"].as_u64() != Some(0));
        if !lagging {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the views did not catch up: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
