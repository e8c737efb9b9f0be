//! The aggregates behind the portal's charts, written once for both backends like the rest of
//! `shared`: per-day sums over a window of days, tenant-scoped, every answer bounded by the
//! window's days times a named maximum of series ([`CHART_OUTCOMES_MAX`],
//! [`CHART_VERSIONS_MAX`], [`SCORE_BINS`]).
//!
//! What each reads: decisions per day by outcome and per model version come from the daily view
//! (a range of its primary key); overrides per day from the oversight view and a model
//! version's decisions (overridden, scores) from the decisions view, both read over the
//! sequence range of the window — capture time never decreases along a chain, so
//! `first_captured_at_or_after` turns the window into a range of the keys those views' indexes
//! end in.

use std::collections::HashMap;

use ledger::types::TenantId;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, QueryBuilder, Transaction, Type};

use super::active_of;
use super::shared::{Dialect, Sql};
use crate::store::StoreError;
use crate::store::view_query::{
    APPROVAL_OUTCOMES, CHART_OUTCOMES_MAX, CHART_VERSIONS_MAX, ChartWindow, DAY_US,
    DashboardCharts, ModelCharts, OutcomeDays, OutcomeMix, SCORE_BINS, ScoreHistogram, VersionDays,
};

/// A model version: id and version.
pub(crate) type Version<'a> = (&'a str, &'a str);

/// A count read back from SQL, where it cannot be negative.
fn n(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl<DB> Sql<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> i32: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<f64>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
{
    /// Pushes `FROM proj_daily WHERE` the tenant's rows of the window (and of one version).
    fn from_daily(
        q: &mut QueryBuilder<DB>,
        g: i64,
        tenant: &TenantId,
        window: &ChartWindow,
        version: Option<Version<'_>>,
    ) {
        q.push(" FROM proj_daily WHERE generation = ")
            .push_bind(g)
            .push(" AND tenant_id = ")
            .push_bind(tenant.as_str().to_owned())
            .push(" AND day >= ")
            .push_bind(window.day_text(0))
            .push(" AND day <= ")
            .push_bind(window.day_text(window.days() as usize - 1));
        if let Some((id, v)) = version {
            q.push(" AND model_id = ")
                .push_bind(id.to_owned())
                .push(" AND model_version = ")
                .push_bind(v.to_owned());
        }
    }

    /// Decisions per day by the model's outcome: the [`CHART_OUTCOMES_MAX`] most frequent
    /// outcomes of the window, and the rest summed.
    pub(crate) async fn outcome_mix(
        tx: &mut Transaction<'static, DB>,
        g: i64,
        tenant: &TenantId,
        window: &ChartWindow,
        version: Option<Version<'_>>,
    ) -> Result<OutcomeMix, StoreError> {
        let mut q = QueryBuilder::<DB>::new("SELECT outcome, CAST(SUM(decisions) AS BIGINT)");
        Self::from_daily(&mut q, g, tenant, window, version);
        q.push(" GROUP BY outcome ORDER BY 2 DESC, outcome LIMIT ")
            .push_bind(CHART_OUTCOMES_MAX as i64);
        let top: Vec<(String, i64)> = q.build_query_as().fetch_all(&mut **tx).await?;
        if top.is_empty() {
            return Ok(OutcomeMix::default());
        }
        let mut q = QueryBuilder::<DB>::new("SELECT COUNT(DISTINCT outcome)");
        Self::from_daily(&mut q, g, tenant, window, version);
        let distinct: i64 = q.build_query_scalar().fetch_one(&mut **tx).await?;
        // Outcomes beyond the top ones come back as NULL and are summed per day.
        let mut q = QueryBuilder::<DB>::new("SELECT day, CASE WHEN outcome IN (");
        let mut list = q.separated(", ");
        for (o, _) in &top {
            list.push_bind(o.clone());
        }
        q.push(") THEN outcome END, CAST(SUM(decisions) AS BIGINT)");
        Self::from_daily(&mut q, g, tenant, window, version);
        q.push(" GROUP BY 1, 2");
        let rows: Vec<(String, Option<String>, i64)> =
            q.build_query_as().fetch_all(&mut **tx).await?;
        let mut series: Vec<OutcomeDays> = top
            .iter()
            .map(|(o, _)| OutcomeDays {
                outcome: Some(o.clone()),
                per_day: window.zeros(),
            })
            .collect();
        let others = n(distinct).saturating_sub(top.len() as u64);
        if others > 0 {
            series.push(OutcomeDays {
                outcome: None,
                per_day: window.zeros(),
            });
        }
        for (day, shown, decisions) in rows {
            let slot = window.index_of_text(&day).and_then(|i| {
                series
                    .iter_mut()
                    .find(|s| s.outcome == shown)
                    .and_then(|s| s.per_day.get_mut(i))
            });
            if let Some(slot) = slot {
                *slot += n(decisions);
            }
        }
        Ok(OutcomeMix { series, others })
    }

    /// The [`CHART_VERSIONS_MAX`] busiest model versions of the window with their decisions
    /// and approvals per day, and how many other versions had decisions in it.
    pub(crate) async fn version_days(
        tx: &mut Transaction<'static, DB>,
        g: i64,
        tenant: &TenantId,
        window: &ChartWindow,
    ) -> Result<(Vec<VersionDays>, u64), StoreError> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT model_id, model_version, CAST(SUM(decisions) AS BIGINT)",
        );
        Self::from_daily(&mut q, g, tenant, window, None);
        q.push(" GROUP BY model_id, model_version ORDER BY 3 DESC, model_id, model_version LIMIT ")
            .push_bind(CHART_VERSIONS_MAX as i64);
        let top: Vec<(String, String, i64)> = q.build_query_as().fetch_all(&mut **tx).await?;
        if top.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let mut q = QueryBuilder::<DB>::new(
            "SELECT COUNT(*) FROM (SELECT DISTINCT model_id, model_version",
        );
        Self::from_daily(&mut q, g, tenant, window, None);
        q.push(") v");
        let distinct: i64 = q.build_query_scalar().fetch_one(&mut **tx).await?;
        let mut q = QueryBuilder::<DB>::new(
            "SELECT day, model_id, model_version, CAST(SUM(decisions) AS BIGINT), \
             CAST(SUM(CASE WHEN LOWER(outcome) IN (",
        );
        let mut list = q.separated(", ");
        for o in APPROVAL_OUTCOMES {
            list.push_bind((*o).to_owned());
        }
        q.push(") THEN decisions ELSE 0 END) AS BIGINT)");
        Self::from_daily(&mut q, g, tenant, window, None);
        q.push(" AND (");
        for (i, (id, v, _)) in top.iter().enumerate() {
            if i > 0 {
                q.push(" OR ");
            }
            q.push("(model_id = ")
                .push_bind(id.clone())
                .push(" AND model_version = ")
                .push_bind(v.clone())
                .push(")");
        }
        q.push(") GROUP BY day, model_id, model_version");
        let rows: Vec<(String, String, String, i64, i64)> =
            q.build_query_as().fetch_all(&mut **tx).await?;
        let mut versions: Vec<VersionDays> = top
            .iter()
            .map(|(id, v, _)| VersionDays {
                model_id: id.clone(),
                model_version: v.clone(),
                decisions: window.zeros(),
                approvals: window.zeros(),
            })
            .collect();
        let at: HashMap<(String, String), usize> = top
            .into_iter()
            .enumerate()
            .map(|(i, (id, v, _))| ((id, v), i))
            .collect();
        for (day, id, v, decisions, approvals) in rows {
            if let (Some(d), Some(k)) = (window.index_of_text(&day), at.get(&(id, v)))
                && let Some(row) = versions.get_mut(*k)
            {
                row.decisions[d] += n(decisions);
                row.approvals[d] += n(approvals);
            }
        }
        let more = n(distinct).saturating_sub(versions.len() as u64);
        Ok((versions, more))
    }

    /// The sequence range `[from, until)` of the tenant's records captured in the window.
    async fn window_seqs(
        tx: &mut Transaction<'static, DB>,
        tenant: &TenantId,
        window: &ChartWindow,
    ) -> Result<(i64, i64), StoreError> {
        Ok((
            Self::first_captured_at_or_after(tx, tenant, window.from_us()).await?,
            Self::first_captured_at_or_after(tx, tenant, window.until_us()).await?,
        ))
    }

    /// Overrides recorded per day of the window (the oversight view).
    pub(crate) async fn overrides_per_day(
        tx: &mut Transaction<'static, DB>,
        g: i64,
        tenant: &TenantId,
        window: &ChartWindow,
    ) -> Result<Vec<u64>, StoreError> {
        let (from, until) = Self::window_seqs(tx, tenant, window).await?;
        let mut q = QueryBuilder::<DB>::new("SELECT captured_at_us / ");
        q.push_bind(DAY_US)
            .push(", COUNT(*) FROM proj_oversight WHERE generation = ")
            .push_bind(g)
            .push(" AND tenant_id = ")
            .push_bind(tenant.as_str().to_owned())
            .push(" AND seq >= ")
            .push_bind(from)
            .push(" AND seq < ")
            .push_bind(until)
            .push(" AND event_type = 'override' GROUP BY 1");
        let rows: Vec<(i64, i64)> = q.build_query_as().fetch_all(&mut **tx).await?;
        let mut out = window.zeros();
        for (day, count) in rows {
            if let Some(slot) = window.index_of_day(day).and_then(|i| out.get_mut(i)) {
                *slot += n(count);
            }
        }
        Ok(out)
    }

    /// Pushes `FROM proj_decisions WHERE` the decisions of one model version in the window.
    fn from_version_decisions(
        q: &mut QueryBuilder<DB>,
        g: i64,
        tenant: &TenantId,
        version: Version<'_>,
        seqs: (i64, i64),
    ) {
        q.push(" FROM proj_decisions WHERE generation = ")
            .push_bind(g)
            .push(" AND tenant_id = ")
            .push_bind(tenant.as_str().to_owned())
            .push(" AND model_id = ")
            .push_bind(version.0.to_owned())
            .push(" AND model_version = ")
            .push_bind(version.1.to_owned())
            .push(" AND seq >= ")
            .push_bind(seqs.0)
            .push(" AND seq < ")
            .push_bind(seqs.1);
    }

    /// One model version's decisions per day of the window, those overridden since, and the
    /// histogram of their scores (the decisions view).
    pub(crate) async fn version_decisions(
        tx: &mut Transaction<'static, DB>,
        g: i64,
        tenant: &TenantId,
        window: &ChartWindow,
        version: Version<'_>,
    ) -> Result<(Vec<u64>, Vec<u64>, ScoreHistogram), StoreError> {
        let seqs = Self::window_seqs(tx, tenant, window).await?;
        let mut q = QueryBuilder::<DB>::new("SELECT captured_at_us / ");
        q.push_bind(DAY_US)
            .push(", COUNT(*), CAST(SUM(CASE WHEN overrides > 0 THEN 1 ELSE 0 END) AS BIGINT)");
        Self::from_version_decisions(&mut q, g, tenant, version, seqs);
        q.push(" GROUP BY 1");
        let rows: Vec<(i64, i64, i64)> = q.build_query_as().fetch_all(&mut **tx).await?;
        let (mut decisions, mut overridden) = (window.zeros(), window.zeros());
        for (day, all, over) in rows {
            if let Some(i) = window.index_of_day(day) {
                decisions[i] += n(all);
                overridden[i] += n(over);
            }
        }
        let mut q =
            QueryBuilder::<DB>::new("SELECT MIN(score), MAX(score), COUNT(score), COUNT(*)");
        Self::from_version_decisions(&mut q, g, tenant, version, seqs);
        let (low, high, scored, all): (Option<f64>, Option<f64>, i64, i64) =
            q.build_query_as().fetch_one(&mut **tx).await?;
        let mut scores = ScoreHistogram {
            unscored: n(all - scored),
            ..ScoreHistogram::default()
        };
        let (Some(low), Some(high)) = (low, high) else {
            return Ok((decisions, overridden, scores));
        };
        // Probabilities get the scale they are read on; other scores their own extent, and a
        // single value a bin of width one around it.
        let (low, high) = if low >= 0.0 && high <= 1.0 {
            (0.0, 1.0)
        } else if low == high {
            (low - 0.5, high + 0.5)
        } else {
            (low, high)
        };
        // Multiplied by bins per unit rather than divided by the bin width, so that the edges
        // of probability bins (0.9 × 20 = 18) fall exactly where they are written.
        let per_unit = SCORE_BINS as f64 / (high - low);
        let (floor, close) = DB::FLOOR_INT;
        let mut q = QueryBuilder::<DB>::new(format!("SELECT {}(", DB::LEAST));
        q.push_bind(SCORE_BINS as i64 - 1)
            .push(format!(", {floor}(score - "))
            .push_bind(low)
            .push(") * ")
            .push_bind(per_unit)
            .push(format!("{close}), COUNT(*)"));
        Self::from_version_decisions(&mut q, g, tenant, version, seqs);
        q.push(" AND score IS NOT NULL GROUP BY 1");
        let rows: Vec<(i64, i64)> = q.build_query_as().fetch_all(&mut **tx).await?;
        let mut bins = vec![0; SCORE_BINS];
        for (bin, count) in rows {
            let slot = usize::try_from(bin).ok().and_then(|b| bins.get_mut(b));
            if let Some(slot) = slot {
                *slot += n(count);
            }
        }
        scores.low = low;
        scores.high = high;
        scores.bins = bins;
        Ok((decisions, overridden, scores))
    }

    /// Everything the dashboard's charts show, read in one transaction.
    pub(crate) async fn dashboard_charts(
        tx: &mut Transaction<'static, DB>,
        tenant: &TenantId,
        window: &ChartWindow,
    ) -> Result<DashboardCharts, StoreError> {
        let daily = active_of(Self::active(tx, "daily").await?, "daily")?;
        let oversight = active_of(Self::active(tx, "oversight").await?, "oversight")?;
        let outcomes = Self::outcome_mix(tx, daily, tenant, window, None).await?;
        let (versions, versions_more) = Self::version_days(tx, daily, tenant, window).await?;
        let overrides = Self::overrides_per_day(tx, oversight, tenant, window).await?;
        Ok(DashboardCharts {
            window: *window,
            outcomes,
            versions,
            versions_more,
            overrides,
        })
    }

    /// Everything a model version's charts show, read in one transaction.
    pub(crate) async fn model_charts(
        tx: &mut Transaction<'static, DB>,
        tenant: &TenantId,
        version: Version<'_>,
        window: &ChartWindow,
    ) -> Result<ModelCharts, StoreError> {
        let daily = active_of(Self::active(tx, "daily").await?, "daily")?;
        let decisions_view = active_of(Self::active(tx, "decisions").await?, "decisions")?;
        let outcomes = Self::outcome_mix(tx, daily, tenant, window, Some(version)).await?;
        let (decisions, overridden, scores) =
            Self::version_decisions(tx, decisions_view, tenant, window, version).await?;
        Ok(ModelCharts {
            window: *window,
            outcomes,
            decisions,
            overridden,
            scores,
        })
    }
}
