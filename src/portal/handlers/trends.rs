//! The portal's trend charts: the dashboard's section (decisions per day by outcome, approval
//! rate per model version, override rate, how current the evidence is) and the page of one model
//! version (volume by outcome, outcome mix, score distribution, overridden decisions).
//!
//! Each page reads one window of whole UTC days — the last 30 or 90, a link switches — through
//! one store call (`dashboard_charts`, `model_charts`) and turns the answer into the charts of
//! [`crate::portal::charts`]. What "approval" means is fixed in the store
//! ([`APPROVAL_OUTCOMES`], the model's own outcome, before any override) so that the rate is a
//! property of the model, which is what a model-risk team watches drift.

use axum::extract::State;
use maud::{Markup, html};
use serde::Deserialize;

use super::age;
use crate::app::AppState;
use crate::portal::charts::{self, Bar, Category, Frame, Ratio, Series};
use crate::portal::input::PortalQuery;
use crate::portal::pages::{self, layout, when};
use crate::portal::{PortalError, Viewer};
use crate::store::Store;
use crate::store::views::ProjectionStatus;
use crate::store::views::{
    APPROVAL_OUTCOMES, CHART_OUTCOMES_MAX, ChartWindow, DashboardCharts, OutcomeMix,
};

/// The windows a page offers, in days; the first is the default.
pub const WINDOW_DAYS: [u32; 2] = [30, 90];

/// The `days` parameter of the dashboard and the model pages.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WindowQuery {
    days: Option<String>,
}

/// The window asked for, ending today by the store's clock (the clock of the capture times).
///
/// # Errors
/// [`PortalError::BadRequest`] naming `days` when it is not one of [`WINDOW_DAYS`].
pub fn window(store: &Store, q: &WindowQuery) -> Result<ChartWindow, PortalError> {
    let days = match q.days.as_deref().map(str::trim) {
        None | Some("") => WINDOW_DAYS[0],
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|d| WINDOW_DAYS.contains(d))
            .ok_or_else(|| {
                PortalError::BadRequest(format!(
                    "The parameter days must be one of {}.",
                    WINDOW_DAYS.map(|d| d.to_string()).join(", ")
                ))
            })?,
    };
    Ok(ChartWindow::ending_at(store.now_us(), days))
}

/// The window's days as chart categories.
fn categories(w: &ChartWindow) -> Vec<Category> {
    (0..w.days() as usize)
        .map(|i| {
            let label = w.day_text(i);
            let tick = chrono::NaiveDate::parse_from_str(&label, "%Y-%m-%d")
                .map(|d| d.format("%-d %b").to_string())
                .unwrap_or_default();
            Category { label, tick }
        })
        .collect()
}

/// The links that switch the window, the current one marked.
fn window_links(w: &ChartWindow, href: impl Fn(u32) -> String) -> Markup {
    html! {
        nav.window aria-label="Period" {
            @for d in WINDOW_DAYS {
                @if d == w.days() {
                    a href=(href(d)) aria-current="page" { "Last " (d) " days" }
                } @else {
                    a href=(href(d)) { "Last " (d) " days" }
                }
            }
        }
    }
}

/// The series of an outcome mix, named (the rest as "other (N outcomes)").
fn outcome_series(mix: &OutcomeMix) -> Vec<Series<u64>> {
    mix.series
        .iter()
        .map(|s| Series {
            name: match &s.outcome {
                Some(o) => o.clone(),
                None => format!("other ({} outcomes)", mix.others),
            },
            values: s.per_day.clone(),
        })
        .collect()
}

/// Decisions per day over every outcome.
fn totals(mix: &OutcomeMix, w: &ChartWindow) -> Vec<u64> {
    let mut out = w.zeros();
    for s in &mix.series {
        for (t, v) in out.iter_mut().zip(&s.per_day) {
            *t += v;
        }
    }
    out
}

/// The busiest outcome and its share, for the description of a chart.
fn busiest(mix: &OutcomeMix) -> String {
    let all: u64 = mix.series.iter().flat_map(|s| &s.per_day).sum();
    match mix.series.first() {
        Some(s) if all > 0 => {
            let n: u64 = s.per_day.iter().sum();
            format!(
                " The most frequent outcome is {} ({}).",
                s.outcome.as_deref().unwrap_or("other"),
                charts::percent(n as f64 / all as f64)
            )
        }
        _ => String::new(),
    }
}

/// The sentence naming the approval outcomes.
fn approval_words() -> String {
    APPROVAL_OUTCOMES.join(", ")
}

/// The dashboard's trend section.
pub fn dashboard_section(
    data: &DashboardCharts,
    lag: &[ProjectionStatus],
    checkpoint_age_s: Option<i64>,
) -> Markup {
    let w = &data.window;
    let days = categories(w);
    let per_day = totals(&data.outcomes, w);
    let decisions: u64 = per_day.iter().sum();
    let outcomes = charts::stacked_columns(
        &Frame {
            id: "chart-outcomes",
            title: "Decisions per day by outcome",
            desc: format!(
                "{} decisions in the last {} days, stacked by the model's outcome.{}",
                charts::count(decisions),
                w.days(),
                busiest(&data.outcomes)
            ),
            empty: "No decisions were recorded in this period.",
        },
        &days,
        &outcome_series(&data.outcomes),
    );
    let any_approval = data
        .versions
        .iter()
        .any(|v| v.approvals.iter().any(|a| *a > 0));
    let versions: Vec<Series<Ratio>> = if any_approval {
        data.versions
            .iter()
            .map(|v| Series {
                name: format!("{} {}", v.model_id, v.model_version),
                values: v
                    .decisions
                    .iter()
                    .zip(&v.approvals)
                    .map(|(d, a)| Ratio {
                        part: *a,
                        whole: *d,
                    })
                    .collect(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let approval_empty = if data.versions.is_empty() {
        "No decisions were recorded in this period.".to_owned()
    } else {
        format!(
            "No decision in this period has an outcome counted as an approval ({}).",
            approval_words()
        )
    };
    let approvals = charts::rate_lines(
        &Frame {
            id: "chart-approval",
            title: "Approval rate per model version",
            desc: format!(
                "Share of each model version's decisions per day whose outcome (the model's own, before any override) is an approval: {}. A change in a version's rate is a drift signal.",
                approval_words()
            ),
            empty: &approval_empty,
        },
        &days,
        &versions,
    );
    let overrides: u64 = data.overrides.iter().sum();
    let override_rate = charts::rate_lines(
        &Frame {
            id: "chart-overrides",
            title: "Override rate",
            desc: format!(
                "Overrides recorded per day divided by the decisions recorded that day: {} overrides of {} decisions in the last {} days.",
                charts::count(overrides),
                charts::count(decisions),
                w.days()
            ),
            empty: "No decisions were recorded in this period.",
        },
        &days,
        &[Series {
            name: "overrides ÷ decisions".into(),
            values: data
                .overrides
                .iter()
                .zip(&per_day)
                .map(|(o, d)| Ratio {
                    part: *o,
                    whole: *d,
                })
                .collect(),
        }],
    );
    let mut fresh = vec![match checkpoint_age_s {
        Some(s) => Bar {
            label: "Latest checkpoint".into(),
            value: s as f64,
            text: format!("signed {} ago", age(s * 1_000_000, 0)),
            warn: false,
        },
        None => Bar {
            label: "Latest checkpoint".into(),
            value: 0.0,
            text: "none yet".into(),
            warn: true,
        },
    }];
    for p in lag {
        fresh.push(Bar {
            label: format!("View: {}", p.name),
            value: p.lag_seconds,
            text: match p.stuck_at_seq {
                Some(seq) => format!("stopped at record {seq}"),
                None if p.lag_records == 0 => "current".into(),
                None => format!(
                    "{} behind ({} records)",
                    age((p.lag_seconds * 1e6) as i64, 0),
                    p.lag_records
                ),
            },
            warn: p.stuck_at_seq.is_some(),
        });
    }
    let freshness = charts::bars(
        &Frame {
            id: "chart-freshness",
            title: "How current the evidence is",
            desc: "Age of the latest signed checkpoint, and how far behind the ledger each read view is, in seconds. Shorter is better.".into(),
            empty: "Nothing to show yet.",
        },
        &fresh,
        "Age",
    );
    html! {
        section.trends aria-labelledby="trends-heading" {
            div.section-head {
                h2 id="trends-heading" { "Trends, last " (w.days()) " days" }
                (window_links(w, |d| format!("/?days={d}")))
            }
            div.chart-grid {
                (outcomes)
                div {
                    (approvals)
                    @if data.versions_more > 0 {
                        p.muted { "And " (data.versions_more) " more model versions with decisions in this period: see " a href="/models" { "Models" } "." }
                    }
                }
                (override_rate)
                (freshness)
            }
        }
    }
}

/// The `model_id`, `model_version` and `days` parameters of a model version's page.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ModelQuery {
    model_id: Option<String>,
    model_version: Option<String>,
    days: Option<String>,
}

/// A required text parameter: present, not blank, and no longer than a payload string.
fn required(value: &Option<String>, name: &str) -> Result<String, PortalError> {
    super::nonempty(value).ok_or_else(|| {
        PortalError::BadRequest(format!(
            "The parameter {name} is required: a model's id or version, at most {} bytes.",
            ledger::payload::STRING_BYTES_MAX
        ))
    })
}

/// The link to a model version's page.
pub fn model_href(model_id: &str, model_version: &str, days: Option<u32>) -> String {
    let mut params = url::form_urlencoded::Serializer::new(String::new());
    params.append_pair("model_id", model_id);
    params.append_pair("model_version", model_version);
    if let Some(d) = days {
        params.append_pair("days", &d.to_string());
    }
    format!("/models/version?{}", params.finish())
}

/// `GET /models/version`: one model version's inventory entry and its charts.
pub async fn model_page(
    State(state): State<AppState>,
    viewer: Viewer,
    PortalQuery(q): PortalQuery<ModelQuery>,
) -> Result<Markup, PortalError> {
    let model_id = required(&q.model_id, "model_id")?;
    let model_version = required(&q.model_version, "model_version")?;
    let w = window(
        &state.store,
        &WindowQuery {
            days: q.days.clone(),
        },
    )?;
    let store = &state.store;
    let tenant = viewer.tenant();
    // The inventory is the tenant's: another tenant's model, or none, is not found.
    let Some(model) = store
        .model_inventory(tenant, Some(&model_id))
        .await?
        .into_iter()
        .find(|m| m.model_version == model_version)
    else {
        return Err(PortalError::NotFound);
    };
    let data = store
        .model_charts(tenant, &model_id, &model_version, &w)
        .await?;
    let days = categories(&w);
    let in_window: u64 = data.decisions.iter().sum();
    let volume = charts::stacked_columns(
        &Frame {
            id: "chart-volume",
            title: "Decisions per day by outcome",
            desc: format!(
                "{} decisions of this version in the last {} days, stacked by the model's outcome.{}",
                charts::count(totals(&data.outcomes, &w).iter().sum()),
                w.days(),
                busiest(&data.outcomes)
            ),
            empty: "This version recorded no decisions in this period.",
        },
        &days,
        &outcome_series(&data.outcomes),
    );
    let mix_total: u64 = data.outcomes.series.iter().flat_map(|s| &s.per_day).sum();
    let mix_bars: Vec<Bar> = outcome_series(&data.outcomes)
        .into_iter()
        .map(|s| {
            let n: u64 = s.values.iter().sum();
            Bar {
                text: format!(
                    "{} ({})",
                    charts::count(n),
                    charts::percent(n as f64 / mix_total.max(1) as f64)
                ),
                label: s.name,
                value: n as f64,
                warn: false,
            }
        })
        .collect();
    let mix = charts::bars(
        &Frame {
            id: "chart-mix",
            title: "Outcome mix",
            desc: format!(
                "The model's outcomes over the last {} days, at most {} shown by name.{}",
                w.days(),
                CHART_OUTCOMES_MAX,
                busiest(&data.outcomes)
            ),
            empty: "This version recorded no decisions in this period.",
        },
        &mix_bars,
        "Decisions",
    );
    let scored: u64 = data.scores.bins.iter().sum();
    let scores = charts::histogram(
        &Frame {
            id: "chart-scores",
            title: "Score distribution",
            desc: format!(
                "Scores of {} decisions of the last {} days in {} equal bins from {} to {}{}.",
                charts::count(scored),
                w.days(),
                data.scores.bins.len(),
                data.scores.low,
                data.scores.high,
                if data.scores.unscored > 0 {
                    format!(
                        "; {} decisions had no score",
                        charts::count(data.scores.unscored)
                    )
                } else {
                    String::new()
                }
            ),
            empty: "No decision of this version in this period has a score.",
        },
        data.scores.low,
        data.scores.high,
        &data.scores.bins,
    );
    let overridden_n: u64 = data.overridden.iter().sum();
    let overridden = charts::rate_lines(
        &Frame {
            id: "chart-overridden",
            title: "Overridden decisions",
            desc: format!(
                "Share of each day's decisions that a person has overridden since: {} of {} in the last {} days.",
                charts::count(overridden_n),
                charts::count(in_window),
                w.days()
            ),
            empty: "This version recorded no decisions in this period.",
        },
        &days,
        &[Series {
            name: "overridden ÷ decisions".into(),
            values: data
                .overridden
                .iter()
                .zip(&data.decisions)
                .map(|(o, d)| Ratio {
                    part: *o,
                    whole: *d,
                })
                .collect(),
        }],
    );
    let title = format!("{} {}", model.model_id, model.model_version);
    let decisions_link = {
        let mut params = url::form_urlencoded::Serializer::new(String::new());
        params.append_pair("model_id", &model.model_id);
        params.append_pair("model_version", &model.model_version);
        format!("/decisions?{}", params.finish())
    };
    Ok(layout(
        &title,
        &viewer.chrome(),
        html! {
            p.breadcrumb { a href="/models" { "Models" } " › " (model.model_id) }
            h1 { "Model " (model.model_id) " " span.version { (model.model_version) } }
            div.cards {
                div.card { div.muted { "Status" } div.figure { (model.status) } }
                div.card { div.muted { "Decisions, all time" } div.figure { (charts::count(u64::try_from(model.decisions).unwrap_or(0))) } }
                div.card {
                    div.muted { "Override rate, all time" }
                    div.figure { @if model.decisions > 0 { (charts::percent(model.overrides as f64 / model.decisions as f64)) } @else { "—" } }
                }
                div.card {
                    div.muted { "Validation and approval" }
                    div { "Validation: " (pages::opt(model.validation_ref.as_deref())) }
                    div { "Approval: " (pages::opt(model.approval_ref.as_deref())) }
                }
            }
            p.muted {
                "First decision " (model.first_seen_us.map(when).unwrap_or_else(|| "—".into()))
                ", latest " (model.last_seen_us.map(when).unwrap_or_else(|| "—".into())) ". "
                a href=(decisions_link) { "Search this version's decisions" }
            }
            section.trends aria-labelledby="trends-heading" {
                div.section-head {
                    h2 id="trends-heading" { "Last " (w.days()) " days" }
                    (window_links(&w, |d| model_href(&model.model_id, &model.model_version, Some(d))))
                }
                div.chart-grid {
                    (volume)
                    (mix)
                    (scores)
                    (overridden)
                }
            }
        },
    ))
}
