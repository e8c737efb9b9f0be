//! The `auditex` binary: reads an optional configuration file, sets up logging, parses the
//! command line with the file's values as defaults, and hands over to [`auditex::cli`].

/// Finds `--config FILE` (or `--config=FILE`) before clap runs, so that the file's settings can
/// act as defaults for every flag; falls back to `AUDITEX_CONFIG_FILE`.
fn config_path() -> Option<std::path::PathBuf> {
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--config" {
            return args.next().map(Into::into);
        }
        if let Some(path) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            return Some(path.into());
        }
    }
    std::env::var_os("AUDITEX_CONFIG_FILE").map(Into::into)
}

/// mimalloc serves the service's own allocations: under batched ingestion glibc's `malloc` and
/// `free` took a fifth of the server's CPU (BENCHMARKS.md "The allocator"). SQLite's C code
/// still allocates through glibc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Before any thread exists, so that every thread's arena is counted against the limit.
    auditex::app::configure_allocators();
    let file = match config_path() {
        Some(path) => {
            match auditex::config::read_config_file(&path, &auditex::cli::known_settings()) {
                Ok(pairs) => pairs,
                Err(e) => {
                    eprintln!("error: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            }
        }
        None => Vec::new(),
    };
    // RUST_LOG from the environment, else (the first) from the file, else `info`.
    let from_file = file.iter().find(|(key, _)| key == "RUST_LOG");
    let filter = match (std::env::var_os("RUST_LOG"), from_file) {
        (None, Some((_, value))) => tracing_subscriber::EnvFilter::try_new(value).ok(),
        _ => tracing_subscriber::EnvFilter::try_from_default_env().ok(),
    }
    .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    // AUDITEX_LOG_FORMAT=json gives one JSON object per line for log shippers.
    if std::env::var("AUDITEX_LOG_FORMAT").is_ok_and(|v| v == "json") {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let cli = auditex::cli::parse(&file);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(auditex::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
