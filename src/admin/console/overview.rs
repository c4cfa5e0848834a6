//! The overview page (`/ui/`): pulls by outcome over the last 24 hours (hourly bars) or 7 days
//! (daily bars), the same per rule and mode with the change from the window before, the cache
//! hit rates since start-up, and what changed since yesterday: the digests decided for the
//! first time in the last 24 hours. Reads the ledger's hourly sums and the stored verdicts,
//! never the pull rows themselves, so it costs the same over a million pulls as over ten.

use std::collections::BTreeMap;

use maud::{html, Markup};

use super::chart::{self, Bar};
use super::layout::{self, count, digest, image_link, when, Nav, Outcome};
use super::{ConsoleError, Params};
use crate::db::Database;
use crate::metrics::Metrics;

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// The window the page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    Day,
    Week,
}

impl Window {
    fn parse(s: Option<&str>) -> Result<Window, ConsoleError> {
        match s {
            None | Some("24h") => Ok(Window::Day),
            Some("7d") => Ok(Window::Week),
            Some(other) => Err(ConsoleError::BadParam {
                param: "window",
                reason: format!("{other:?}: give 24h or 7d"),
            }),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Window::Day => "24h",
            Window::Week => "7d",
        }
    }

    /// The bars' width in seconds and their count.
    fn buckets(self) -> (i64, usize) {
        match self {
            Window::Day => (HOUR, 24),
            Window::Week => (DAY, 7),
        }
    }
}

/// Pulls per outcome, in [`Outcome::ALL`] order.
type Counts = [i64; 5];

fn add(c: &mut Counts, o: Outcome, n: i64) {
    if let Some(i) = Outcome::ALL.iter().position(|x| *x == o) {
        c[i] += n;
    }
}

pub async fn page(
    db: &Database,
    metrics: &Metrics,
    params: &Params,
) -> Result<Markup, ConsoleError> {
    let window = Window::parse(params.get("window"))?;
    let now_ms = crate::db::now_ms();
    let now = now_ms.div_euclid(1000);
    let (width, n) = window.buckets();
    // The first bucket of the window, and of the window before it.
    let last_bucket = now.div_euclid(width) * width;
    let start = last_bucket - width * (n as i64 - 1);
    let previous = start - width * n as i64;
    let hours = db.pull_hours(previous).await?;
    let fresh = db.new_verdicts(now_ms - DAY * 1000, 50).await?;

    let mut bars: Vec<Counts> = vec![[0; 5]; n];
    let mut by_rule: BTreeMap<(String, String), (Counts, Counts)> = BTreeMap::new();
    let mut total: Counts = [0; 5];
    for h in &hours {
        let Some(outcome) = Outcome::parse(&h.verdict, &h.admission) else {
            continue;
        };
        let entry = by_rule.entry((h.rule.clone(), h.mode.clone())).or_default();
        if h.hour >= start {
            let i = ((h.hour - start) / width) as usize;
            if let Some(bar) = bars.get_mut(i) {
                add(bar, outcome, h.pulls);
            }
            add(&mut entry.0, outcome, h.pulls);
            add(&mut total, outcome, h.pulls);
        } else {
            add(&mut entry.1, outcome, h.pulls);
        }
    }
    let bars: Vec<Bar> = bars
        .into_iter()
        .enumerate()
        .map(|(i, parts)| {
            let at = (start + width * i as i64) * 1000;
            let (label, heading) = match window {
                Window::Day => (strftime(at, "%H"), strftime(at, "%Y-%m-%d %H:00 UTC")),
                Window::Week => (strftime(at, "%m-%d"), strftime(at, "%Y-%m-%d UTC")),
            };
            Bar {
                label,
                heading,
                parts,
            }
        })
        .collect();
    let pulls: i64 = total.iter().sum();
    let rates = metrics.hit_rates();
    let unverified_new = fresh.iter().filter(|v| !v.verified).count();

    let body = html! {
        h1 { "Overview" }
        p.sub { "Pulls through this proxy and what the policy said, over the last " (window.name())
            " (the ledger of every replica sharing the database). "
            @for w in [Window::Day, Window::Week] {
                @if w == window { strong { (w.name()) } } @else { a href={"/ui/?window=" (w.name())} { (w.name()) } }
                " "
            }
        }
        div.tiles {
            div.tile #tile-pulls { div.v { (count(pulls)) } div.k { "pulls" } }
            @for (o, n) in Outcome::ALL.iter().zip(total) {
                div.tile id={"tile-" (o.class())} { div.v { (count(n)) } div.k { (o.label()) } }
            }
        }
        section.card {
            h2 { "Pulls by outcome" }
            (chart::stacked(&bars, if window == Window::Day { 3 } else { 1 }))
        }
        section.card {
            h2 { "Verdicts by rule and mode" }
            @if by_rule.is_empty() {
                p.empty { "No pulls recorded in this window." }
            } @else {
                table #by-rule {
                    thead { tr {
                        th { "Rule" } th { "Mode" }
                        @for o in Outcome::ALL { th.num { (o.label()) } }
                        th.num { "Total" } th.num { "vs. the " (window.name()) " before" }
                    } }
                    tbody {
                        @for ((rule, mode), (now_c, before_c)) in &by_rule {
                            @let t: i64 = now_c.iter().sum();
                            @let b: i64 = before_c.iter().sum();
                            tr data-rule=(rule) {
                                td { @if rule.is_empty() { span.empty { "no rule" } } @else { (rule) } }
                                td { (if mode.is_empty() { "—" } else { mode.as_str() }) }
                                @for (o, n) in Outcome::ALL.iter().zip(now_c) {
                                    td.num data-outcome=(o.class()) { (count(*n)) }
                                }
                                td.num { (count(t)) }
                                td.num { (delta(t - b)) }
                            }
                        }
                    }
                }
            }
        }
        section.card #changes {
            h2 { "What changed since yesterday" }
            p { (fresh.len()) " digest(s) decided for the first time in the last 24 hours"
                @if !fresh.is_empty() { ", " (unverified_new) " of them unverified" } "." }
            @if !fresh.is_empty() {
                table {
                    thead { tr { th { "First decided" } th { "Image" } th { "Digest" } th { "Rule" } th { "Verdict" } } }
                    tbody {
                        @for v in &fresh {
                            tr {
                                td { (when(v.first_decided)) }
                                td { (image_link(&v.image)) }
                                td { a href={(layout::image_href(&v.image)) "#" (v.digest)} { (digest(&v.digest)) } }
                                td { (v.rule) }
                                td { @if v.verified { (Outcome::Verified.badge()) } @else { span.badge.b-let_through { "unverified" } } }
                            }
                        }
                    }
                }
            }
        }
        section.card #caches {
            h2 { "Cache hit rates" }
            p.sub { "This replica, since it started." }
            @if rates.is_empty() {
                p.empty { "No lookups yet." }
            } @else {
                table {
                    thead { tr { th { "Cache" } th.num { "Hits" } th.num { "Lookups" } th.num { "Hit rate" } } }
                    tbody {
                        @for r in &rates {
                            tr {
                                td { (r.cache) }
                                td.num { (count(r.hits as i64)) }
                                td.num { (count(r.lookups as i64)) }
                                td.num { @if r.lookups == 0 { "—" } @else { (format!("{:.1} %", 100.0 * r.hits as f64 / r.lookups as f64)) } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page("Overview", Nav::Overview, body))
}

fn strftime(ms: i64, format: &str) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime(format).to_string())
        .unwrap_or_default()
}

fn delta(d: i64) -> Markup {
    html! {
        @if d > 0 { span.delta-up { "+" (count(d)) } }
        @else if d < 0 { span.delta-down { (count(d)) } }
        @else { "±0" }
    }
}
