//! The audit page (`/ui/audit`): the audit report of `portcullis audit` ("what would enforce
//! have refused?"), grouped by rule and image as a to-do list, then what enforce refused and the
//! lookup faults; filtered by rule, image glob and window, each image linked to its page.

use std::time::Duration;

use maud::{html, Markup};

use super::layout::{self, count, digest, image_link, since_select, when_text, Nav, Outcome};
use super::{ConsoleError, Params};
use crate::config::Config;
use crate::db::Database;
use crate::ledger::report::{self, Entry, Query};

const DEFAULT_SINCE: &str = "7d";
/// The digests a section lists unless `limit` asks for more (the counts cover them all).
const DEFAULT_LIMIT: usize = 200;

pub async fn page(db: &Database, config: &Config, params: &Params) -> Result<Markup, ConsoleError> {
    let since_text = params.get("since").unwrap_or(DEFAULT_SINCE);
    let since = params.since()?.unwrap_or(Duration::from_secs(7 * 86_400));
    let rule = params.get("rule").map(str::to_owned);
    let image = params.image_pattern()?;
    let q = Query {
        since,
        rule: rule.clone(),
        image,
    };
    let r = report::audit(db, &q).await?;
    let limit = super::limit(params, DEFAULT_LIMIT)?;
    let body = html! {
        h1 { "Audit" }
        p.sub { "From " (when_text(&r.since)) " to " (when_text(&r.until)) ": what audit rules let through unverified (enforce would refuse it), what was refused, and the signature lookups that failed." }
        form.filters method="get" action="/ui/audit" {
            label { "Rule"
                select name="rule" {
                    option value="" { "any rule" }
                    @for rl in &config.policies.rules {
                        option value=(rl.name) selected[rule.as_deref() == Some(rl.name.as_str())] { (rl.name) " (" (rl.mode.as_str()) ")" }
                    }
                }
            }
            label { "Image (glob)" input type="text" name="image" placeholder="docker.io/company/**" value=[params.get("image")]; }
            (since_select(since_text, &["24h", "7d", "30d"]))
            button type="submit" { "Filter" }
        }
        div.tiles {
            div.tile #count-let-through { div.v { (images(&r.let_through)) } div.k { "images let through unverified" } }
            div.tile #count-refused { div.v { (images(&r.refused)) } div.k { "images refused" } }
            div.tile #count-faults { div.v { (images(&r.faults)) } div.k { "images with lookup faults" } }
        }
        (section("let-through", "Let through unverified by audit rules: enforce would refuse these", &r.let_through, limit))
        (section("refused", "Refused", &r.refused, limit))
        (section("faults", "Signature lookup faults: neither signed nor unsigned, check the upstream", &r.faults, limit))
        @if r.let_through.is_empty() && r.refused.is_empty() && r.faults.is_empty() {
            p.empty #nothing { "Nothing to do: every pull in the window was verified (or not checked)." }
        }
    };
    Ok(layout::page("Audit", Nav::Audit, body))
}

/// Distinct images among the entries.
fn images(entries: &[Entry]) -> usize {
    let mut names: Vec<&str> = entries.iter().map(|e| e.image.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.len()
}

fn section(id: &str, title: &str, entries: &[Entry], limit: usize) -> Markup {
    if entries.is_empty() {
        return html! {};
    }
    let shown = &entries[..entries.len().min(limit)];
    let rules = report::grouped(shown);
    html! {
        section.card id=(id) {
            h2 { (title) }
            @if shown.len() < entries.len() {
                p.more { "Showing the first " (count(shown.len() as i64)) " of " (count(entries.len() as i64))
                    " digests: narrow the rule, image or window, or add " code { "limit=" (entries.len()) } " to the address." }
            }
            @for (rule, images) in &rules {
                h3 { (rule) ": " (report::findings_summary(images)) }
                table {
                    thead { tr {
                        th { "Image" } th { "Digest" } th { "Tags" } th { "Outcome" } th { "Why" }
                        th { "Signers" } th.num { "Pulls" } th.num { "Clients" } th { "First seen" } th { "Last seen" }
                    } }
                    tbody {
                        @for (image, digests) in images {
                            @for (i, d) in digests.iter().enumerate() {
                                tr.finding data-image=(image) data-digest=(d.digest) {
                                    td { @if i == 0 { (image_link(image)) } }
                                    td { a href={(layout::image_href(image)) "#" (d.digest)} { (digest(&d.digest)) } }
                                    td { (d.tags.join(", ")) }
                                    td { (Outcome::of(d.verdict, d.admission).badge()) " " (d.finding.phrase()) }
                                    td { ul.reasons { @for reason in &d.reasons { li { (reason) } } } }
                                    td { @for id in &d.identities { div.mono { (id) } } }
                                    td.num { (count(d.pulls)) }
                                    td.num { (count(d.clients)) }
                                    td { (when_text(&d.first_seen)) }
                                    td { (when_text(&d.last_seen)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
