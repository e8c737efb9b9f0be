//! The portal's charts: small SVG images written on the server with `maud`, so every label a
//! tenant chose (a model id, an outcome) is escaped like any other text, and no script is needed
//! to draw them.
//!
//! Each chart is a `figure` holding an `svg` with `role="img"`, a `<title>` and a `<desc>` that
//! says in a sentence what the chart shows (referenced by `aria-labelledby`), a legend in HTML,
//! and the numbers behind it as a table in a `<details>` element, for screen readers, for
//! copying, and for anyone who would rather read than look. Colours, line dashes and fonts come
//! from classes of the portal's stylesheet (`.s0` … `.s7`): the Content-Security-Policy allows
//! no inline `style` attribute, and presentation attributes carry only geometry. The output
//! depends on nothing but the input (fixed number formatting), so tests compare it exactly.
//!
//! Charts with nothing to show render their empty-state sentence instead of an empty frame.

use maud::{Markup, html};

/// The drawing's coordinate system; the image scales to its container's width.
const WIDTH: f64 = 720.0;
/// The drawing's height in the same units.
const HEIGHT: f64 = 240.0;
/// Room for the value axis labels on the left.
const MARGIN_LEFT: f64 = 52.0;
/// Room on the right so that the last tick label fits.
const MARGIN_RIGHT: f64 = 16.0;
/// Room above the highest tick label.
const MARGIN_TOP: f64 = 12.0;
/// Room for the category labels below the plot.
const MARGIN_BOTTOM: f64 = 28.0;
/// Value-axis ticks aimed at (the nice steps give between about half and twice as many).
const VALUE_TICKS: usize = 5;
/// Category labels shown at most under a column or line chart (every n-th category).
const CATEGORY_LABELS_MAX: usize = 10;
/// Series told apart by the stylesheet's classes `.s0` … `.s7`; more wrap around.
pub const SERIES_STYLES: usize = 8;
/// Height of one bar of a bar chart, and the gap between bars.
const BAR_ROW: f64 = 28.0;

/// A linear map from a value domain onto a drawing range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Linear {
    domain: (f64, f64),
    range: (f64, f64),
}

impl Linear {
    /// The map of `domain` onto `range`. An empty domain (both ends equal) is widened by one
    /// on the upper side, so that every value still lands inside the drawing.
    pub fn new(domain: (f64, f64), range: (f64, f64)) -> Linear {
        let domain = if domain.0 == domain.1 || !(domain.1 - domain.0).is_finite() {
            (domain.0, domain.0 + 1.0)
        } else {
            domain
        };
        Linear { domain, range }
    }

    /// Where `value` falls in the range.
    pub fn map(&self, value: f64) -> f64 {
        let (d0, d1) = self.domain;
        let (r0, r1) = self.range;
        r0 + (value - d0) / (d1 - d0) * (r1 - r0)
    }
}

/// The tick step for a span: 1, 2 or 5 times a power of ten, about `span / count`, and never
/// below `floor` (1 for counts, so that an axis of three decisions has no half decisions).
pub fn nice_step(span: f64, count: usize, floor: f64) -> f64 {
    if !(span.is_finite() && span > 0.0) || count == 0 {
        return floor.max(f64::MIN_POSITIVE);
    }
    let raw = span / count as f64;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power);
    step.max(floor)
}

/// Ticks from 0 to the first multiple of the step at or above `max` (a value axis that starts
/// at zero, as bars and rates must): the ticks and the axis's upper end.
pub fn zero_based_ticks(max: f64, floor: f64) -> (Vec<f64>, f64) {
    let step = nice_step(max, VALUE_TICKS, floor);
    let steps = (max / step).ceil().max(1.0) as usize;
    let ticks = (0..=steps).map(|i| i as f64 * step).collect();
    (ticks, steps as f64 * step)
}

/// A number for an axis label: as many decimals as writing the step exactly needs (0.25 has
/// two, 0.2 one), at most 6.
pub fn tick_label(value: f64, step: f64) -> String {
    let decimals = (0..=6usize)
        .find(|d| {
            let scaled = step * 10f64.powi(*d as i32);
            (scaled - scaled.round()).abs() < 1e-9 * scaled.abs().max(1.0)
        })
        .unwrap_or(6);
    format!("{value:.decimals$}")
}

/// A whole number with thin groups of three digits (`12 345`), as the portal prints counts.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

/// A share as a percentage with one decimal.
pub fn percent(share: f64) -> String {
    format!("{:.1} %", 100.0 * share)
}

/// A part of a whole: `part` of `whole` (a rate shown with the counts it comes from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    /// The part.
    pub part: u64,
    /// The whole; a ratio of nothing is not drawn.
    pub whole: u64,
}

impl Ratio {
    /// The share, or `None` for a ratio of nothing.
    pub fn share(self) -> Option<f64> {
        (self.whole > 0).then(|| self.part as f64 / self.whole as f64)
    }
}

/// A category along the horizontal axis (a day): its full label for the table and tooltips,
/// and the short one written under the axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    /// As the table writes it, e.g. `2026-12-05`.
    pub label: String,
    /// As the axis writes it, e.g. `5 Dec`.
    pub tick: String,
}

/// What every chart has: an id unique on the page (for `aria-labelledby`), its title, the
/// sentence that describes it, and what to say instead when there is nothing to draw.
#[derive(Debug, Clone)]
pub struct Frame<'a> {
    /// Unique on the page; letters, digits and dashes.
    pub id: &'a str,
    /// The chart's title.
    pub title: &'a str,
    /// One or two sentences saying what the chart shows and what stands out.
    pub desc: String,
    /// The empty state, shown instead of the chart when there is nothing to draw.
    pub empty: &'a str,
}

/// One series of a column or line chart: its name and one value per category.
#[derive(Debug, Clone)]
pub struct Series<T> {
    /// The name in the legend and the table header.
    pub name: String,
    /// One value per category, in category order.
    pub values: Vec<T>,
}

/// The figure around a drawing: title, description, legend and the data table.
fn figure(
    frame: &Frame<'_>,
    legend: &[String],
    svg_body: Markup,
    height: f64,
    table: Markup,
) -> Markup {
    let title_id = format!("{}-title", frame.id);
    let desc_id = format!("{}-desc", frame.id);
    html! {
        figure.chart id=(frame.id) {
            figcaption { (frame.title) }
            svg.chart xmlns="http://www.w3.org/2000/svg" role="img"
                viewBox=(format!("0 0 {WIDTH} {height}")) preserveAspectRatio="xMinYMin meet"
                aria-labelledby=(format!("{title_id} {desc_id}")) {
                title id=(title_id) { (frame.title) }
                desc id=(desc_id) { (frame.desc) }
                (svg_body)
            }
            @if !legend.is_empty() {
                ul.legend aria-hidden="true" {
                    @for (i, name) in legend.iter().enumerate() {
                        li { span class=(format!("swatch s{}", i % SERIES_STYLES)) {} (name) }
                    }
                }
            }
            details.data {
                summary { "Data table: " (frame.title) }
                (table)
            }
        }
    }
}

/// The empty state of a chart: its title and the sentence, no drawing.
fn empty(frame: &Frame<'_>) -> Markup {
    html! {
        figure.chart.empty id=(frame.id) {
            figcaption { (frame.title) }
            p.empty-state { (frame.empty) }
        }
    }
}

/// The value axis: horizontal grid lines and their labels.
fn value_axis(y: &Linear, ticks: &[f64], label: impl Fn(f64) -> String) -> Markup {
    html! {
        g.axis {
            @for t in ticks {
                @let at = px(y.map(*t));
                line.grid x1=(px(MARGIN_LEFT)) x2=(px(WIDTH - MARGIN_RIGHT)) y1=(at) y2=(at) {}
                text.tick x=(px(MARGIN_LEFT - 6.0)) y=(at) text-anchor="end" dominant-baseline="middle" { (label(*t)) }
            }
        }
    }
}

/// The category labels under the plot: every n-th, so that at most
/// [`CATEGORY_LABELS_MAX`] are written.
fn category_axis(categories: &[Category], centre: impl Fn(usize) -> f64) -> Markup {
    let every = categories.len().div_ceil(CATEGORY_LABELS_MAX).max(1);
    let baseline = HEIGHT - MARGIN_BOTTOM;
    html! {
        g.axis {
            line.baseline x1=(px(MARGIN_LEFT)) x2=(px(WIDTH - MARGIN_RIGHT)) y1=(px(baseline)) y2=(px(baseline)) {}
            @for (i, c) in categories.iter().enumerate() {
                @if i % every == 0 {
                    text.tick x=(px(centre(i))) y=(px(baseline + 18.0)) text-anchor="middle" { (c.tick) }
                }
            }
        }
    }
}

/// A coordinate with two decimals: enough for any screen, and the same text on every run.
fn px(v: f64) -> String {
    format!("{v:.2}")
}

/// Columns per category, the series stacked (decisions per day by outcome).
pub fn stacked_columns(
    frame: &Frame<'_>,
    categories: &[Category],
    series: &[Series<u64>],
) -> Markup {
    let totals: Vec<u64> = (0..categories.len())
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0);
    if max == 0 {
        return empty(frame);
    }
    let (ticks, top) = zero_based_ticks(max as f64, 1.0);
    let step = ticks.get(1).copied().unwrap_or(1.0);
    let y = Linear::new((0.0, top), (HEIGHT - MARGIN_BOTTOM, MARGIN_TOP));
    let band = (WIDTH - MARGIN_LEFT - MARGIN_RIGHT) / categories.len().max(1) as f64;
    // A gap between columns while they are wide enough to afford one.
    let gap = if band > 6.0 { band * 0.2 } else { 0.0 };
    let body = html! {
        (value_axis(&y, &ticks, |t| tick_label(t, step)))
        @for (i, c) in categories.iter().enumerate() {
            g {
                @for (k, s) in series.iter().enumerate() {
                    @let v = s.values.get(i).copied().unwrap_or(0);
                    @if v > 0 {
                        // The series before this one, stacked below it.
                        @let below: u64 = series[..k].iter().map(|b| b.values.get(i).copied().unwrap_or(0)).sum();
                        @let (y0, y1) = (y.map(below as f64), y.map((below + v) as f64));
                        rect class=(format!("s{}", k % SERIES_STYLES))
                            x=(px(MARGIN_LEFT + i as f64 * band + gap / 2.0)) width=(px(band - gap))
                            y=(px(y1)) height=(px(y0 - y1)) {
                            title { (c.label) " · " (s.name) ": " (count(v)) }
                        }
                    }
                }
            }
        }
        (category_axis(categories, |i| MARGIN_LEFT + (i as f64 + 0.5) * band))
    };
    let legend: Vec<String> = series.iter().map(|s| s.name.clone()).collect();
    let table = html! {
        table {
            thead { tr { th scope="col" { "Day" } @for s in series { th scope="col" { (s.name) } } th scope="col" { "Total" } } }
            tbody {
                @for (i, c) in categories.iter().enumerate() {
                    tr {
                        th scope="row" { (c.label) }
                        @for s in series { td.num { (count(s.values.get(i).copied().unwrap_or(0))) } }
                        td.num { (count(totals[i])) }
                    }
                }
            }
        }
    };
    figure(frame, &legend, body, HEIGHT, table)
}

/// Lines of rates (0 to 100 %) across the categories, one per series; a category without a
/// whole breaks the line rather than drawing a zero.
pub fn rate_lines(frame: &Frame<'_>, categories: &[Category], series: &[Series<Ratio>]) -> Markup {
    let drawn = series
        .iter()
        .any(|s| s.values.iter().any(|r| r.share().is_some()));
    if !drawn {
        return empty(frame);
    }
    let highest = series
        .iter()
        .flat_map(|s| s.values.iter().filter_map(|r| r.share()))
        .fold(0.0f64, f64::max);
    // Rates near zero (overrides) get an axis that shows them; others the whole 0–100 %.
    let top = if highest <= 0.25 {
        zero_based_ticks(highest.max(0.01), 0.001).1
    } else {
        1.0
    };
    let (ticks, top) = zero_based_ticks(top, 0.001);
    let step = ticks.get(1).copied().unwrap_or(0.25);
    let y = Linear::new((0.0, top), (HEIGHT - MARGIN_BOTTOM, MARGIN_TOP));
    let band = (WIDTH - MARGIN_LEFT - MARGIN_RIGHT) / categories.len().max(1) as f64;
    let x = |i: usize| MARGIN_LEFT + (i as f64 + 0.5) * band;
    let body = html! {
        (value_axis(&y, &ticks, |t| format!("{} %", tick_label(100.0 * t, 100.0 * step))))
        @for (k, s) in series.iter().enumerate() {
            @let class = format!("s{}", k % SERIES_STYLES);
            g class=(class) {
                @for run in runs(&s.values) {
                    @if run.len() > 1 {
                        polyline.line fill="none" points=(run.iter().map(|(i, v)| format!("{},{}", px(x(*i)), px(y.map(*v)))).collect::<Vec<_>>().join(" ")) {}
                    }
                    @for (i, v) in &run {
                        circle.point cx=(px(x(*i))) cy=(px(y.map(*v))) r="3" {
                            title {
                                (categories.get(*i).map_or("", |c| c.label.as_str())) " · " (s.name) ": " (percent(*v))
                                @if let Some(r) = s.values.get(*i) { " (" (count(r.part)) " of " (count(r.whole)) ")" }
                            }
                        }
                    }
                }
            }
        }
        (category_axis(categories, x))
    };
    let legend: Vec<String> = series.iter().map(|s| s.name.clone()).collect();
    let table = html! {
        table {
            thead { tr { th scope="col" { "Day" } @for s in series { th scope="col" { (s.name) } } } }
            tbody {
                @for (i, c) in categories.iter().enumerate() {
                    tr {
                        th scope="row" { (c.label) }
                        @for s in series {
                            td.num {
                                @match s.values.get(i).copied() {
                                    Some(r) if r.whole > 0 => { (percent(r.part as f64 / r.whole as f64)) " (" (count(r.part)) " of " (count(r.whole)) ")" }
                                    _ => { "—" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    figure(frame, &legend, body, HEIGHT, table)
}

/// The unbroken runs of a series: consecutive categories that have a share.
fn runs(values: &[Ratio]) -> Vec<Vec<(usize, f64)>> {
    let mut out: Vec<Vec<(usize, f64)>> = Vec::new();
    let mut current = Vec::new();
    for (i, r) in values.iter().enumerate() {
        match r.share() {
            Some(v) => current.push((i, v)),
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A histogram: counts of values in equal bins from `low` to `high`.
pub fn histogram(frame: &Frame<'_>, low: f64, high: f64, bins: &[u64]) -> Markup {
    let max = bins.iter().copied().max().unwrap_or(0);
    if max == 0 || high.partial_cmp(&low) != Some(std::cmp::Ordering::Greater) {
        return empty(frame);
    }
    let (ticks, top) = zero_based_ticks(max as f64, 1.0);
    let step = ticks.get(1).copied().unwrap_or(1.0);
    let y = Linear::new((0.0, top), (HEIGHT - MARGIN_BOTTOM, MARGIN_TOP));
    let x = Linear::new((low, high), (MARGIN_LEFT, WIDTH - MARGIN_RIGHT));
    let width = (high - low) / bins.len().max(1) as f64;
    let edge = |i: usize| low + i as f64 * width;
    let x_step = nice_step(high - low, 8, f64::MIN_POSITIVE);
    let first = (low / x_step).ceil() as i64;
    let last = (high / x_step).floor() as i64;
    let baseline = HEIGHT - MARGIN_BOTTOM;
    let label = |i: usize| {
        format!(
            "{} – {}",
            tick_label(edge(i), width),
            tick_label(edge(i + 1), width)
        )
    };
    let body = html! {
        (value_axis(&y, &ticks, |t| tick_label(t, step)))
        g.s0 {
            @for (i, n) in bins.iter().enumerate() {
                @if *n > 0 {
                    rect x=(px(x.map(edge(i)) + 1.0)) width=(px((x.map(edge(i + 1)) - x.map(edge(i)) - 2.0).max(1.0)))
                        y=(px(y.map(*n as f64))) height=(px(baseline - y.map(*n as f64))) {
                        title { (label(i)) ": " (count(*n)) }
                    }
                }
            }
        }
        g.axis {
            line.baseline x1=(px(MARGIN_LEFT)) x2=(px(WIDTH - MARGIN_RIGHT)) y1=(px(baseline)) y2=(px(baseline)) {}
            @for k in first..=last {
                @let v = k as f64 * x_step;
                text.tick x=(px(x.map(v))) y=(px(baseline + 18.0)) text-anchor="middle" { (tick_label(v, x_step)) }
            }
        }
    };
    let table = html! {
        table {
            thead { tr { th scope="col" { "Score" } th scope="col" { "Decisions" } } }
            tbody {
                @for (i, n) in bins.iter().enumerate() {
                    tr { th scope="row" { (label(i)) } td.num { (count(*n)) } }
                }
            }
        }
    };
    figure(frame, &[], body, HEIGHT, table)
}

/// One bar of a bar chart: its label, its value, and how the value is written.
#[derive(Debug, Clone)]
pub struct Bar {
    /// The label left of the bar.
    pub label: String,
    /// The length.
    pub value: f64,
    /// The value as written beside the bar and in the table.
    pub text: String,
    /// Drawn in the warning style (a view that has stopped, a checkpoint overdue).
    pub warn: bool,
}

/// Horizontal bars, one per row (an outcome mix, how far behind each view is). `unit` heads
/// the table's value column.
pub fn bars(frame: &Frame<'_>, rows: &[Bar], unit: &str) -> Markup {
    let max = rows.iter().map(|b| b.value).fold(0.0f64, f64::max);
    if rows.is_empty() {
        return empty(frame);
    }
    let label_width = 200.0;
    let height = MARGIN_TOP + rows.len() as f64 * BAR_ROW + 8.0;
    // Room on the right for the value written after the longest bar.
    let x = Linear::new(
        (0.0, max.max(f64::MIN_POSITIVE)),
        (label_width, WIDTH - 180.0),
    );
    let body = html! {
        @for (i, b) in rows.iter().enumerate() {
            @let top = MARGIN_TOP + i as f64 * BAR_ROW;
            g class=(if b.warn { "warn".to_owned() } else { format!("s{}", i % SERIES_STYLES) }) {
                text.label x=(px(label_width - 8.0)) y=(px(top + BAR_ROW / 2.0 - 2.0)) text-anchor="end" dominant-baseline="middle" { (b.label) }
                rect x=(px(label_width)) y=(px(top + 4.0)) height=(px(BAR_ROW - 12.0))
                    width=(px((x.map(b.value) - label_width).max(if b.value > 0.0 { 2.0 } else { 0.0 }))) {
                    title { (b.label) ": " (b.text) }
                }
                text.value x=(px(x.map(b.value) + 6.0)) y=(px(top + BAR_ROW / 2.0 - 2.0)) dominant-baseline="middle" { (b.text) }
            }
        }
    };
    let table = html! {
        table {
            thead { tr { th scope="col" { "" } th scope="col" { (unit) } } }
            tbody { @for b in rows { tr { th scope="row" { (b.label) } td.num { (b.text) } } } }
        }
    };
    figure(frame, &[], body, height, table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(n: usize) -> Vec<Category> {
        (0..n)
            .map(|i| Category {
                label: format!("2026-12-{:02}", i + 1),
                tick: format!("{} Dec", i + 1),
            })
            .collect()
    }

    fn frame(id: &str) -> Frame<'_> {
        Frame {
            id,
            title: "Decisions per day",
            desc: "Decisions per day by outcome.".into(),
            empty: "No decisions in this period.",
        }
    }

    #[test]
    fn a_linear_scale_maps_the_domain_ends_onto_the_range_ends_even_reversed() {
        let y = Linear::new((0.0, 50.0), (200.0, 10.0));
        assert_eq!(y.map(0.0), 200.0);
        assert_eq!(y.map(50.0), 10.0);
        assert_eq!(y.map(25.0), 105.0);
    }

    #[test]
    fn an_empty_domain_is_widened_so_that_nothing_divides_by_zero() {
        let x = Linear::new((3.0, 3.0), (0.0, 100.0));
        assert_eq!(x.map(3.0), 0.0);
        assert_eq!(x.map(4.0), 100.0);
    }

    #[test]
    fn nice_steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(100.0, 5, 0.0), 20.0);
        assert_eq!(nice_step(1234.0, 5, 0.0), 500.0);
        assert_eq!(nice_step(7.0, 5, 0.0), 2.0);
        assert!((nice_step(0.3, 5, 0.0) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn counts_never_get_a_step_below_one() {
        assert_eq!(nice_step(3.0, 5, 1.0), 1.0);
        assert_eq!(zero_based_ticks(3.0, 1.0), (vec![0.0, 1.0, 2.0, 3.0], 3.0));
    }

    #[test]
    fn zero_based_ticks_end_at_or_above_the_maximum() {
        let (ticks, top) = zero_based_ticks(87.0, 1.0);
        assert_eq!(ticks, vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(top, 100.0);
        let (ticks, top) = zero_based_ticks(1.0, 0.001);
        assert_eq!(top, 1.0);
        assert_eq!(ticks.len(), 6);
    }

    #[test]
    fn nonsense_spans_give_the_floor_step_not_a_panic_or_nan() {
        assert_eq!(nice_step(0.0, 5, 1.0), 1.0);
        assert_eq!(nice_step(f64::NAN, 5, 1.0), 1.0);
        assert_eq!(nice_step(f64::INFINITY, 5, 2.0), 2.0);
    }

    #[test]
    fn tick_labels_have_the_decimals_the_step_needs() {
        assert_eq!(tick_label(40.0, 20.0), "40");
        assert_eq!(tick_label(0.25, 0.05), "0.25");
        assert_eq!(tick_label(0.5, 0.1), "0.5");
        assert_eq!(tick_label(0.5, 0.25), "0.50");
        assert_eq!(tick_label(3.0, 0.001), "3.000");
        assert_eq!(count(1_234_567), "1\u{202f}234\u{202f}567");
        assert_eq!(count(999), "999");
        assert_eq!(percent(0.625), "62.5 %");
    }

    #[test]
    fn a_chart_has_a_labelled_image_with_title_and_description_and_a_data_table() {
        let series = vec![
            Series {
                name: "approved".into(),
                values: vec![3, 0, 5],
            },
            Series {
                name: "declined".into(),
                values: vec![1, 2, 0],
            },
        ];
        let html = stacked_columns(&frame("daily"), &days(3), &series).into_string();
        assert!(html.contains(r#"role="img""#), "{html}");
        assert!(html.contains(r#"aria-labelledby="daily-title daily-desc""#));
        assert!(html.contains(r#"<title id="daily-title">Decisions per day</title>"#));
        assert!(html.contains(r#"<desc id="daily-desc">Decisions per day by outcome.</desc>"#));
        assert!(html.contains("<details"));
        // One rectangle per non-zero value, four in all; the table has a row per day with the
        // day's total.
        assert_eq!(html.matches("<rect").count(), 4);
        assert_eq!(html.matches(r#"<th scope="row">"#).count(), 3);
        assert!(html.contains(r#"<th scope="row">2026-12-01</th><td class="num">3</td><td class="num">1</td><td class="num">4</td>"#));
        assert!(!html.contains("style="), "no inline styles under the CSP");
    }

    #[test]
    fn stacked_columns_put_each_series_on_the_one_below() {
        let series = vec![
            Series {
                name: "a".into(),
                values: vec![10],
            },
            Series {
                name: "b".into(),
                values: vec![10],
            },
        ];
        let html = stacked_columns(&frame("x"), &days(1), &series).into_string();
        // Axis 0..20 over y 212 (bottom) .. 12 (top): a from 212 up to 112, b from 112 to 12.
        assert!(html.contains(r#"y="112.00" height="100.00""#), "{html}");
        assert!(html.contains(r#"y="12.00" height="100.00""#), "{html}");
    }

    #[test]
    fn text_from_tenants_is_escaped_everywhere_it_appears() {
        let hostile = "<script>alert(1)</script>\"&";
        let series = vec![Series {
            name: hostile.into(),
            values: vec![Ratio { part: 1, whole: 2 }],
        }];
        let mut f = frame("r");
        f.desc = format!("About {hostile}");
        let html = rate_lines(&f, &days(1), &series).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&amp;"));
        let bar = bars(
            &frame("b"),
            &[Bar {
                label: hostile.into(),
                value: 1.0,
                text: "1".into(),
                warn: false,
            }],
            "Decisions",
        )
        .into_string();
        assert!(!bar.contains("<script>"), "{bar}");
    }

    #[test]
    fn nothing_to_draw_gives_the_empty_state_and_no_image() {
        let zero = vec![Series {
            name: "approved".into(),
            values: vec![0, 0],
        }];
        let html = stacked_columns(&frame("e"), &days(2), &zero).into_string();
        assert!(html.contains("No decisions in this period."));
        assert!(!html.contains("<svg"));
        let none = vec![Series {
            name: "v1".into(),
            values: vec![Ratio { part: 0, whole: 0 }],
        }];
        assert!(
            !rate_lines(&frame("e"), &days(1), &none)
                .into_string()
                .contains("<svg")
        );
        assert!(
            !histogram(&frame("e"), 0.0, 1.0, &[0, 0])
                .into_string()
                .contains("<svg")
        );
        assert!(!bars(&frame("e"), &[], "s").into_string().contains("<svg"));
    }

    #[test]
    fn a_day_without_decisions_breaks_a_rate_line_instead_of_drawing_zero() {
        let r = |part, whole| Ratio { part, whole };
        let values = vec![r(1, 2), r(2, 2), r(0, 0), r(1, 4)];
        assert_eq!(
            runs(&values),
            vec![vec![(0, 0.5), (1, 1.0)], vec![(3, 0.25)]]
        );
        let series = vec![Series {
            name: "m 1".into(),
            values,
        }];
        let html = rate_lines(&frame("l"), &days(4), &series).into_string();
        assert_eq!(html.matches("<polyline").count(), 1);
        assert_eq!(html.matches("<circle").count(), 3);
        assert!(html.contains("50.0 % (1 of 2)"));
        assert!(html.contains("<td class=\"num\">—</td>"));
    }

    #[test]
    fn a_histogram_draws_a_column_per_non_empty_bin_and_tables_every_bin() {
        let html = histogram(&frame("h"), 0.0, 1.0, &[2, 0, 5, 1]).into_string();
        assert_eq!(html.matches("<rect").count(), 3);
        assert!(
            html.contains(r#"<th scope="row">0.25 – 0.50</th><td class="num">0</td>"#),
            "{html}"
        );
    }

    #[test]
    fn the_same_input_renders_the_same_bytes() {
        let series = vec![Series {
            name: "a".into(),
            values: vec![1, 2, 3],
        }];
        let one = stacked_columns(&frame("d"), &days(3), &series).into_string();
        let two = stacked_columns(&frame("d"), &days(3), &series).into_string();
        assert_eq!(one, two);
    }
}
