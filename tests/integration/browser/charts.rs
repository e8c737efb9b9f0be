//! The portal's charts in Chromium: the dashboard's trend section and a model version's page
//! with five weeks of decisions, overrides and scores behind them. Every chart is an SVG image
//! with a title and a description it is labelled by, a data table behind it with a row per day
//! (or per bin), and a screenshot of it that decodes as a PNG with the colours of a drawing in
//! it (not a blank frame). The window switches between 30 and 90 days by a link, a model
//! version without decisions in the window shows its empty states, and a window the portal does
//! not offer is refused naming the parameter.

use std::collections::HashSet;

use serde_json::json;
use thirtyfour::prelude::*;

use super::{Browser, draft, eventually};
use crate::portal_support::{ADMIN_EMAIL, PASSWORD, PortalServer};
use crate::support::Backend;
use auditex::store::views::ChartWindow;

/// Days of decisions seeded (more than the 30-day window).
const SEEDED_DAYS: u64 = 35;

/// Distinct colours a screenshot of a chart has at least: white, text, grid lines and the
/// series, where a blank or unstyled frame has one or two.
const CHART_COLOURS_MIN: usize = 6;

/// A deterministic number in 0..1 for the `i`-th draw (no test depends on a random seed).
fn unit(i: u64) -> f64 {
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ 0xD1B5_4A32_D192_ED03;
    (x % 10_000) as f64 / 10_000.0
}

/// Five weeks of a bank's decisions: two credit-scoring versions (the newer one approving less
/// and less as the weeks pass) and a fraud model, a few overrides a day, and one legacy version
/// that decided only on the first day. Returns how many decisions were appended.
async fn seed_weeks(server: &PortalServer) -> usize {
    let clock = server.clock.as_ref().expect("a manual clock");
    let start = auditex::store::Clock::now_unix_micros(clock.as_ref());
    let mut n = 0u64;
    let mut decisions = 0;
    for d in 0..SEEDED_DAYS {
        clock.set(start + d * 86_400_000_000 + 9 * 3_600_000_000);
        let mut batch = Vec::new();
        let mut ids = Vec::new();
        let drift = d as f64 / SEEDED_DAYS as f64;
        let models: [(&str, &str, u64, f64); 3] = [
            ("credit-scoring", "4.2", 14, 0.62),
            ("credit-scoring", "4.3", 6 + d / 2, 0.66 - 0.3 * drift),
            ("fraud-detect", "1.0", 10, 0.9),
        ];
        for (model, version, count, approve) in models {
            for _ in 0..count + (unit(n) * 5.0) as u64 {
                n += 1;
                let p = unit(n);
                let outcome = if p < approve {
                    "approved"
                } else if p < approve + 0.08 {
                    "referred"
                } else {
                    "declined"
                };
                // Scores that cluster by outcome, as a model's probability of default would.
                let score = ((1.0 - p) * 0.8 + unit(n + 7) * 0.2).clamp(0.0, 1.0);
                let id = uuid::Uuid::now_v7().to_string();
                let payload =
                    super::decision(&id, (model, version), outcome, &format!("cust-{n}"), score);
                batch.push(draft(&id, "decision", &payload));
                ids.push(id);
            }
        }
        if d == 0 {
            let id = uuid::Uuid::now_v7().to_string();
            let payload = super::decision(&id, ("legacy-limit", "0.9"), "approved", "cust-0", 0.4);
            batch.push(draft(&id, "decision", &payload));
            ids.push(id);
        }
        decisions += ids.len();
        // A few overrides of the day's decisions.
        for (k, id) in ids.iter().enumerate().filter(|(k, _)| k % 9 == 4) {
            batch.push(draft(
                &uuid::Uuid::now_v7().to_string(),
                "override",
                &json!({"decision_id": id, "reviewer": format!("analyst-{}", k % 3),
                        "new_outcome": "approved", "reason": "Income verified by hand"}),
            ));
        }
        server
            .store
            .append(&server.tenant, batch)
            .await
            .expect("append");
    }
    decisions
}

/// Decodes a PNG and counts its distinct colours.
fn colours(png_bytes: &[u8], name: &str) -> usize {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder
        .read_info()
        .unwrap_or_else(|e| panic!("{name} is a PNG: {e}"));
    let mut buf = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader
        .next_frame(&mut buf)
        .unwrap_or_else(|e| panic!("{name} decodes: {e}"));
    let bytes = &buf[..info.buffer_size()];
    let pixel = info.color_type.samples();
    assert!(
        info.width > 100 && info.height > 100,
        "{name} is {}×{}",
        info.width,
        info.height
    );
    bytes
        .chunks(pixel)
        .map(<[u8]>::to_vec)
        .collect::<HashSet<_>>()
        .len()
}

/// Asserts that the page has the chart `id`: an SVG image labelled by its title and
/// description, a data table with `rows` rows, and a screenshot with a drawing in it.
async fn assert_chart(browser: &Browser, id: &str, title: &str, rows: usize) {
    let figure = browser
        .driver
        .find(By::Id(id))
        .await
        .unwrap_or_else(|e| panic!("chart {id}: {e}"));
    let svg = figure
        .find(By::Css("svg[role='img']"))
        .await
        .unwrap_or_else(|e| panic!("chart {id} has an image: {e}"));
    let labelled_by = svg.attr("aria-labelledby").await.expect("attr");
    assert_eq!(
        labelled_by.as_deref(),
        Some(format!("{id}-title {id}-desc").as_str())
    );
    let named: Vec<String> = browser
        .driver
        .execute(
            "return arguments[0].getAttribute('aria-labelledby').split(' ').map(i => (document.getElementById(i) || {}).textContent || '');",
            vec![svg.to_json().expect("json")],
        )
        .await
        .expect("script runs")
        .convert()
        .expect("texts");
    assert_eq!(named.len(), 2);
    assert_eq!(named[0], title, "the {id} image's title");
    assert!(
        named[1].len() > 20,
        "the {id} image has a description: {named:?}"
    );
    let table_rows = figure
        .find_all(By::Css("details table tbody tr"))
        .await
        .expect("rows");
    assert_eq!(table_rows.len(), rows, "rows of the {id} data table");
    figure.scroll_into_view().await.expect("scroll");
    let png = figure.screenshot_as_png().await.expect("screenshot");
    let found = colours(&png, id);
    assert!(
        found >= CHART_COLOURS_MIN,
        "the {id} screenshot has {found} colours: a blank frame?"
    );
}

/// The window's size for this test: tall enough for each page's charts in one screenshot.
const WINDOW_PX: (u32, u32) = (1280, 1450);

/// Keeps a PNG of the page from its top.
async fn page_screenshot(browser: &Browser, name: &str) {
    browser
        .driver
        .execute("window.scrollTo(0, 0);", Vec::new())
        .await
        .expect("script runs");
    browser.screenshot(name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_a_model_page_draw_labelled_charts_with_data_tables_in_the_browser() {
    let server = PortalServer::start(&Backend::Sqlite, true).await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser
        .driver
        .set_window_rect(0, 0, WINDOW_PX.0, WINDOW_PX.1)
        .await
        .expect("resize");
    let decisions = seed_weeks(&server).await;
    let clock = server.clock.as_ref().expect("a manual clock");
    let now = i64::try_from(auditex::store::Clock::now_unix_micros(clock.as_ref())).expect("fits");
    eventually("the views to hold every seeded decision", || async {
        let w = ChartWindow::ending_at(now, 90);
        let charts = server
            .store
            .dashboard_charts(&server.tenant, &w)
            .await
            .ok()?;
        let seen: u64 = charts.outcomes.series.iter().flat_map(|s| &s.per_day).sum();
        let lag = server.store.projection_status(&server.tenant).await.ok()?;
        (seen == decisions as u64 && lag.iter().all(|p| p.lag_records == 0)).then_some(())
    })
    .await;
    server
        .store
        .publish_checkpoints()
        .await
        .expect("checkpoint");
    // Time passes after the checkpoint, so that its age shows.
    clock.set(u64::try_from(now + 90_000_000).expect("fits"));

    browser.sign_in(&server, ADMIN_EMAIL, PASSWORD).await;
    assert_chart(
        &browser,
        "chart-outcomes",
        "Decisions per day by outcome",
        30,
    )
    .await;
    assert_chart(
        &browser,
        "chart-approval",
        "Approval rate per model version",
        30,
    )
    .await;
    assert_chart(&browser, "chart-overrides", "Override rate", 30).await;
    let views = server
        .store
        .projection_status(&server.tenant)
        .await
        .expect("views")
        .len();
    assert_chart(
        &browser,
        "chart-freshness",
        "How current the evidence is",
        1 + views,
    )
    .await;
    let legend = browser.texts("#chart-approval .legend li").await;
    assert_eq!(
        legend,
        vec![
            "credit-scoring 4.3",
            "credit-scoring 4.2",
            "fraud-detect 1.0"
        ],
        "the versions of the window, busiest first, the legacy one (35 days ago) not among them"
    );
    page_screenshot(&browser, "20-dashboard-charts").await;

    // The link switches to 90 days: a row per day, the first day's legacy decision included.
    browser.follow("Last 90 days").await;
    browser.expect_page("Dashboard").await;
    assert_eq!(browser.path().await, "/?days=90");
    assert_chart(
        &browser,
        "chart-outcomes",
        "Decisions per day by outcome",
        90,
    )
    .await;
    assert_eq!(
        browser.texts("#chart-approval .legend li").await.len(),
        4,
        "the legacy version is in the 90-day window"
    );

    // A window the portal does not offer is refused, naming the parameter.
    browser.open(&server, "/?days=7").await;
    browser.expect_page("Bad request").await;
    browser.expect_text("days must be one of 30, 90").await;

    // From the inventory to a version's page.
    browser.open(&server, "/models").await;
    browser.expect_page("Model inventory").await;
    browser.follow("4.3").await;
    browser.expect_page("Model credit-scoring 4.3").await;
    assert!(
        browser
            .path()
            .await
            .starts_with("/models/version?model_id=credit-scoring&model_version=4.3")
    );
    assert_chart(&browser, "chart-volume", "Decisions per day by outcome", 30).await;
    assert_chart(&browser, "chart-mix", "Outcome mix", 3).await;
    assert_chart(&browser, "chart-scores", "Score distribution", 20).await;
    assert_chart(&browser, "chart-overridden", "Overridden decisions", 30).await;
    page_screenshot(&browser, "21-model-charts").await;

    // The legacy version decided only 35 days ago: clear empty states, no images.
    browser
        .open(
            &server,
            "/models/version?model_id=legacy-limit&model_version=0.9",
        )
        .await;
    browser.expect_page("Model legacy-limit 0.9").await;
    let empty = browser.texts(".empty-state").await;
    assert_eq!(empty.len(), 4, "every chart says it is empty: {empty:?}");
    assert!(empty[0].contains("no decisions in this period"));
    assert!(browser.none(By::Css("main svg")).await);
    // Another model id is not found; a missing parameter is refused by name.
    browser
        .open(&server, "/models/version?model_id=nobody&model_version=1")
        .await;
    browser.expect_page("Not found").await;
    browser
        .open(&server, "/models/version?model_id=legacy-limit")
        .await;
    browser.expect_page("Bad request").await;
    browser.expect_text("model_version is required").await;
    browser.quit().await;
    server.stop().await;
}
