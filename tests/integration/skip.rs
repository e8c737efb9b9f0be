//! Tests that cannot run on this machine say so, visibly, and fail under CI.
//!
//! libtest has no run-time "ignored": a test that returns early is reported `ok`, and whatever it
//! prints with `eprintln!` is captured and shown only when it fails. So a test that lacks what it
//! needs calls [`Requirement::skip`], which
//!
//! - under CI (`CI` set, and not `false` or `0`) panics: CI must exercise everything, so a missing
//!   PostgreSQL or browser there is a failure, not a silent pass;
//! - otherwise prints one `SKIPPED:` line per requirement to the terminal, the first time a test
//!   needs it, naming what to install or which variable to set, so a local `cargo test` shows
//!   what it did not run;
//! - and leaves a line in the test's own captured output naming the test.

use std::io::Write as _;
use std::sync::Once;

/// Something a group of tests needs from the machine.
pub struct Requirement {
    /// What the group is, in words (“the PostgreSQL variants of the store tests”).
    group: &'static str,
    /// How to provide it (which variable to set, which package to install).
    remedy: &'static str,
    /// Whether a CI run without it fails.
    required_in_ci: bool,
    /// The group's `SKIPPED:` line is printed once per test run.
    announced: Once,
}

/// The PostgreSQL halves of the store suite and every PostgreSQL-only test.
pub static POSTGRES: Requirement = Requirement {
    group: "PostgreSQL tests (every `…::postgres` test and the PostgreSQL restart test)",
    remedy: "set AUDITEX_TEST_POSTGRES_ADMIN_URL (and AUDITEX_TEST_POSTGRES_APP_USER, \
             AUDITEX_TEST_POSTGRES_APP_PASSWORD; see scripts/postgres-test-setup)",
    required_in_ci: true,
    announced: Once::new(),
};

/// The PostgreSQL server binaries the crash tests start a private cluster with.
pub static POSTGRES_BINARIES: Requirement = Requirement {
    group: "PostgreSQL restart test",
    remedy: "install PostgreSQL's server binaries under /usr/lib/postgresql",
    required_in_ci: true,
    announced: Once::new(),
};

/// Headless Chromium driven by chromedriver, for the portal's browser tests.
pub static BROWSER: Requirement = Requirement {
    group: "browser tests (`browser::…`)",
    remedy: "install the Debian packages chromium and chromium-driver, or set \
             AUDITEX_TEST_CHROMEDRIVER and AUDITEX_TEST_CHROMIUM",
    required_in_ci: true,
    announced: Once::new(),
};

/// A small tmpfs the disk-full test fills. Mounting needs root or `CAP_SYS_ADMIN`, which a CI
/// container may lack although it runs everything else, so its absence does not fail CI.
pub static TMPFS_MOUNT: Requirement = Requirement {
    group: "disk-full test (`store::disk_full::…`)",
    remedy: "run as root or with CAP_SYS_ADMIN, so the test can mount a small tmpfs",
    required_in_ci: false,
    announced: Once::new(),
};

/// Whether this is a CI run, where a skipped test is a failure.
pub fn in_ci() -> bool {
    ci_means_on(std::env::var("CI").ok().as_deref())
}

/// Whether a value of `CI` turns CI mode on: set, and not empty, `false` or `0`.
fn ci_means_on(value: Option<&str>) -> bool {
    value.is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

impl Requirement {
    /// Records that the calling test does not run because this requirement is missing; `detail`
    /// says what exactly was looked for. The caller returns right after.
    ///
    /// # Panics
    /// Under CI, when the requirement is one CI must provide.
    #[track_caller]
    pub fn skip(&self, detail: &str) {
        assert!(
            !(self.required_in_ci && in_ci()),
            "CI is set but {detail}: the {} must run in CI; {}",
            self.group,
            self.remedy
        );
        self.announced.call_once(|| {
            // libtest captures only the print macros; a write to the stderr handle itself reaches
            // the terminal, between the `test … ok` lines.
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED: {}: {detail}, so they report ok without running; to run them, {}",
                self.group,
                self.remedy
            );
        });
        let test = std::thread::current()
            .name()
            .unwrap_or("this test")
            .to_owned();
        eprintln!("skipped: {test} ({detail}); {}", self.remedy);
    }
}

#[test]
fn ci_is_on_when_set_to_anything_but_empty_false_or_zero() {
    assert!(ci_means_on(Some("true")));
    assert!(ci_means_on(Some("1")));
    assert!(!ci_means_on(None));
    assert!(!ci_means_on(Some("")));
    assert!(!ci_means_on(Some("false")));
    assert!(!ci_means_on(Some("0")));
}
