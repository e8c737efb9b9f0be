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

/// Runs the release binary with the bench's environment: this build's, or the one
/// `AUDITEX_BENCH_BINARY` names (to compare two builds on one machine within minutes).
pub fn auditex(
    dir: &std::path::Path,
    database: &DatabaseUrl,
    admin: Option<&str>,
) -> std::process::Command {
    let binary = std::env::var_os("AUDITEX_BENCH_BINARY")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_auditex").into());
    let mut cmd = std::process::Command::new(binary);
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
