//! The `auditex` binary: reads an optional configuration file, parses the command line, sets up
//! logging, and hands over to [`auditex::cli`].

use clap::Parser;

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

fn main() -> std::process::ExitCode {
    if let Some(path) = config_path() {
        match auditex::config::read_config_file(&path, &auditex::cli::known_settings()) {
            Ok(pairs) => {
                for (key, value) in pairs {
                    // The environment overrides the file.
                    if std::env::var_os(&key).is_none() {
                        // SAFETY: no other thread exists yet (the runtime is built below), so
                        // nothing can read the environment concurrently.
                        unsafe { std::env::set_var(&key, value) };
                    }
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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
    let cli = auditex::cli::Cli::parse();
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
