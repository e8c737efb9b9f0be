//! The questions the views answer and the shape of their answers: what the store's callers pass
//! to a view query and get back, and what crosses the storage seam (`backend::ViewBackend`)
//! unchanged. A leaf: it imports nothing of the store.

use ledger::types::EventId;
use serde::Serialize;

/// Rows one page returns when the caller does not say.
pub const PAGE_ROWS_DEFAULT: u32 = 50;

/// Most rows one search page returns.
pub const PAGE_ROWS_MAX: u32 = 500;

/// A search over the decisions view. Every filter is optional; results come in sequence order
/// (newest first unless `ascending`), and `after` is the cursor: the last sequence number of the
/// previous page.
#[derive(Debug, Clone, Default)]
pub struct DecisionQuery {
    /// Model id.
    pub model_id: Option<String>,
    /// Model version.
    pub model_version: Option<String>,
    /// Outcome in force (after overrides).
    pub outcome: Option<String>,
    /// The model's own outcome.
    pub model_outcome: Option<String>,
    /// Status.
    pub status: Option<String>,
    /// Subject reference.
    pub subject_ref: Option<String>,
    /// Decided at or after (µs).
    pub decided_from: Option<i64>,
    /// Decided before (µs).
    pub decided_until: Option<i64>,
    /// Captured at or after (µs).
    pub captured_from: Option<i64>,
    /// Captured before (µs).
    pub captured_until: Option<i64>,
    /// Score at least.
    pub score_min: Option<f64>,
    /// Score at most.
    pub score_max: Option<f64>,
    /// Oldest first.
    pub ascending: bool,
    /// Cursor.
    pub after: Option<u64>,
    /// Page size (1..=[`PAGE_ROWS_MAX`]).
    pub limit: u32,
}

/// A filter over the oversight actions.
#[derive(Debug, Clone, Default)]
pub struct OversightQuery {
    /// Only actions on this decision.
    pub decision_id: Option<EventId>,
    /// Only actions by this person.
    pub actor: Option<String>,
    /// Only this kind (`human_review`, `override`, `contest`, `explanation_request`).
    pub event_type: Option<String>,
    /// Only this action: a review's `action`, an override's new outcome.
    pub action: Option<String>,
    /// Cursor: last sequence number of the previous page (newest first).
    pub after: Option<u64>,
    /// Page size.
    pub limit: u32,
}

/// One page of rows and the cursor of the next page, if there is one.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

// ---------------------------------------------------------------- the charts' aggregates

/// One UTC day in microseconds.
pub const DAY_US: i64 = 86_400_000_000;

/// Days a chart window spans at most (a year and a day): bounds every per-day answer.
pub const CHART_DAYS_MAX: u32 = 366;

/// Outcomes a per-day chart shows as their own series, the most frequent first; the others are
/// summed into one.
pub const CHART_OUTCOMES_MAX: usize = 7;

/// Model versions whose approval rate the dashboard draws, the busiest first; the others are
/// counted ("and N more").
pub const CHART_VERSIONS_MAX: usize = 6;

/// Bins of a score histogram.
pub const SCORE_BINS: usize = 20;

/// The model outcomes that count as an approval for the approval rate, compared without
/// regard to case. Outcomes are the tenant's own words; these are the ones in use for a
/// granted application or an accepted transaction. Every other outcome counts as not approved.
pub const APPROVAL_OUTCOMES: &[&str] = &[
    "approved", "approve", "accepted", "accept", "granted", "grant", "allowed", "allow",
];

/// A window of whole UTC days, the last one included, that a chart covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChartWindow {
    first_day: i64,
    days: u32,
}

impl ChartWindow {
    /// The `days` days (1 to [`CHART_DAYS_MAX`], clamped) that end with the day holding
    /// `now_us`.
    pub fn ending_at(now_us: i64, days: u32) -> ChartWindow {
        let days = days.clamp(1, CHART_DAYS_MAX);
        ChartWindow {
            first_day: now_us.div_euclid(DAY_US) - i64::from(days) + 1,
            days,
        }
    }

    /// How many days.
    pub fn days(&self) -> u32 {
        self.days
    }

    /// The first day's start, µs since the epoch.
    pub fn from_us(&self) -> i64 {
        self.first_day * DAY_US
    }

    /// The end (exclusive) of the last day, µs since the epoch.
    pub fn until_us(&self) -> i64 {
        (self.first_day + i64::from(self.days)) * DAY_US
    }

    /// The window's `i`-th day as the daily view writes days (`YYYY-MM-DD`).
    pub fn day_text(&self, i: usize) -> String {
        let day = self.first_day + i64::try_from(i).unwrap_or(0);
        chrono::DateTime::from_timestamp_micros(day * DAY_US)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    }

    /// The position in the window of the day `day` (days since the epoch), if it is in it.
    pub fn index_of_day(&self, day: i64) -> Option<usize> {
        let i = day.checked_sub(self.first_day)?;
        usize::try_from(i).ok().filter(|i| *i < self.days as usize)
    }

    /// The position in the window of a day written `YYYY-MM-DD`.
    pub fn index_of_text(&self, day: &str) -> Option<usize> {
        let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
        let start = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros();
        self.index_of_day(start.div_euclid(DAY_US))
    }

    /// A per-day series of zeros.
    pub fn zeros(&self) -> Vec<u64> {
        vec![0; self.days as usize]
    }
}

/// Decisions per day of one outcome (the model's own), or of the outcomes summed as the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeDays {
    /// The outcome, or `None` for the outcomes beyond [`CHART_OUTCOMES_MAX`] summed.
    pub outcome: Option<String>,
    /// Decisions per day of the window.
    pub per_day: Vec<u64>,
}

/// Decisions per day by outcome, the most frequent outcomes first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutcomeMix {
    /// One series per outcome shown, then (if any) the rest summed.
    pub series: Vec<OutcomeDays>,
    /// How many outcomes the summed series holds.
    pub others: u64,
}

/// One model version's decisions and approvals per day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionDays {
    /// Model id.
    pub model_id: String,
    /// Model version.
    pub model_version: String,
    /// Decisions per day of the window.
    pub decisions: Vec<u64>,
    /// Of which the model's outcome is one of [`APPROVAL_OUTCOMES`].
    pub approvals: Vec<u64>,
}

/// What the dashboard's charts show for one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardCharts {
    /// The window.
    pub window: ChartWindow,
    /// Decisions per day by the model's outcome (the daily view).
    pub outcomes: OutcomeMix,
    /// The busiest [`CHART_VERSIONS_MAX`] model versions of the window (the daily view).
    pub versions: Vec<VersionDays>,
    /// Model versions with decisions in the window that are not among `versions`.
    pub versions_more: u64,
    /// Overrides recorded per day (the oversight view).
    pub overrides: Vec<u64>,
}

/// A histogram of scores: counts in [`SCORE_BINS`] equal bins from `low` to `high`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScoreHistogram {
    /// The lower edge of the first bin: 0 when every score lies in 0..=1, else the lowest.
    pub low: f64,
    /// The upper edge of the last bin: 1 when every score lies in 0..=1, else the highest.
    pub high: f64,
    /// Decisions per bin; empty when no decision has a score.
    pub bins: Vec<u64>,
    /// Decisions of the window without a score.
    pub unscored: u64,
}

/// What a model version's page charts show for one window.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCharts {
    /// The window.
    pub window: ChartWindow,
    /// Decisions per day by the model's outcome (the daily view).
    pub outcomes: OutcomeMix,
    /// Decisions per day (the decisions view, by capture time).
    pub decisions: Vec<u64>,
    /// Of which overridden since (the decisions view).
    pub overridden: Vec<u64>,
    /// The scores of the window's decisions (the decisions view).
    pub scores: ScoreHistogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01T00:00:00Z.
    const NEW_YEAR_US: i64 = 1_767_225_600_000_000;

    #[test]
    fn a_window_ends_with_the_day_that_holds_now_and_starts_days_minus_one_before() {
        let w = ChartWindow::ending_at(NEW_YEAR_US + 5 * 3_600_000_000, 30);
        assert_eq!(w.days(), 30);
        assert_eq!(w.day_text(29), "2026-01-01");
        assert_eq!(w.day_text(0), "2025-12-03");
        assert_eq!(w.until_us(), NEW_YEAR_US + DAY_US);
        assert_eq!(w.from_us(), NEW_YEAR_US - 29 * DAY_US);
    }

    #[test]
    fn midnight_belongs_to_the_day_it_starts() {
        let w = ChartWindow::ending_at(NEW_YEAR_US, 1);
        assert_eq!(w.day_text(0), "2026-01-01");
        let before = ChartWindow::ending_at(NEW_YEAR_US - 1, 1);
        assert_eq!(before.day_text(0), "2025-12-31");
    }

    #[test]
    fn days_outside_the_window_have_no_position() {
        let w = ChartWindow::ending_at(NEW_YEAR_US, 30);
        let last = NEW_YEAR_US / DAY_US;
        assert_eq!(w.index_of_day(last), Some(29));
        assert_eq!(w.index_of_day(last - 29), Some(0));
        assert_eq!(w.index_of_day(last + 1), None);
        assert_eq!(w.index_of_day(last - 30), None);
        assert_eq!(w.index_of_text("2026-01-01"), Some(29));
        assert_eq!(w.index_of_text("2025-12-03"), Some(0));
        assert_eq!(w.index_of_text("2025-12-02"), None);
        assert_eq!(w.index_of_text("not a day"), None);
    }

    #[test]
    fn a_window_is_clamped_to_between_one_day_and_the_maximum() {
        assert_eq!(ChartWindow::ending_at(NEW_YEAR_US, 0).days(), 1);
        assert_eq!(
            ChartWindow::ending_at(NEW_YEAR_US, 10_000).days(),
            CHART_DAYS_MAX
        );
        assert_eq!(
            ChartWindow::ending_at(NEW_YEAR_US, 10_000).zeros().len(),
            366
        );
    }
}
