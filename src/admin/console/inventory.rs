//! The inventory search page (`/ui/inventory`): by package (a purl or a name, optionally within
//! a version range) and by advisory (a CVE, GHSA or OSV id of an imported advisory), scoped like
//! `portcullis inventory` (window, rule, upstream, image glob). Each hit names the image, the
//! digest, its tags, the matched version and the range that matched, how it was compared, the
//! pulls and where the SBOM came from; and, as on the CLI, what the answer could not see.

use maud::{html, Markup};

use super::layout::{self, count, digest, image_link, when, Nav};
use super::{ConsoleError, Params};
use crate::config::Config;
use crate::db::Database;
use crate::inventory::query::{self, Answer, Scope};
use crate::inventory::versions::Range;

/// The hits an answer lists unless `limit` asks for more (the counts cover them all).
const DEFAULT_LIMIT: usize = 500;

pub async fn page(db: &Database, config: &Config, params: &Params) -> Result<Markup, ConsoleError> {
    let package = params.get("package");
    let advisory = params.get("advisory");
    let range = params
        .get("range")
        .map(|r| {
            Range::parse(r).map_err(|e| ConsoleError::BadParam {
                param: "range",
                reason: e.to_string(),
            })
        })
        .transpose()?;
    let scope = Scope {
        since: Scope::since(params.since()?),
        rule: params.get("rule").map(str::to_owned),
        upstream: params.get("upstream").map(str::to_owned),
        image: params.image_pattern()?,
    };
    let by_package = match package {
        Some(p) => Some(query::query(db, p, range.as_ref(), &scope).await?),
        None => None,
    };
    let by_advisory = match advisory {
        Some(id) => {
            let found = query::named_advisories(db, id).await?;
            Some(query::affected(db, &found, &scope).await?)
        }
        None => None,
    };
    let rule = params.get("rule");
    let limit = super::limit(params, DEFAULT_LIMIT)?;
    let body = html! {
        h1 { "Inventory" }
        p.sub { "Which pulled images contain a package, from the SBOMs attached to what was really pulled." }
        form.filters method="get" action="/ui/inventory" {
            label { "Package (purl or name)" input type="text" name="package" placeholder="pkg:maven/org.apache.logging.log4j/log4j-core" value=[package]; }
            label { "Version range" input type="text" name="range" placeholder=">=2.0.0,<2.17.1" value=[params.get("range")]; }
            label { "or advisory" input type="text" name="advisory" placeholder="CVE-2021-44228" value=[advisory]; }
            label { "Pulled within"
                select name="since" {
                    option value="" { "any time" }
                    @for c in ["24h", "7d", "30d", "90d"] {
                        option value=(c) selected[params.get("since") == Some(c)] { "last " (c) }
                    }
                }
            }
            label { "Rule"
                select name="rule" {
                    option value="" { "any rule" }
                    @for r in &config.policies.rules {
                        option value=(r.name) selected[rule == Some(r.name.as_str())] { (r.name) }
                    }
                }
            }
            label { "Upstream"
                select name="upstream" {
                    option value="" { "any upstream" }
                    @for key in config.upstreams.keys() {
                        option value=(key) selected[params.get("upstream") == Some(key.as_str())] { (key) }
                    }
                }
            }
            label { "Image (glob)" input type="text" name="image" placeholder="docker.io/company/**" value=[params.get("image")]; }
            button type="submit" { "Search" }
        }
        @if by_package.is_none() && by_advisory.is_none() {
            p.empty { "Give a package or an advisory id." }
        }
        @if let Some(a) = &by_package {
            (answer("by-package", &format!("Images containing {}{}", package.unwrap_or_default(),
                params.get("range").map(|r| format!(" in {r}")).unwrap_or_default()), a, limit))
        }
        @if let Some(a) = &by_advisory {
            (answer("by-advisory", &format!("Images affected by {}", advisory.unwrap_or_default()), a, limit))
        }
    };
    Ok(layout::page("Inventory", Nav::Inventory, body))
}

fn answer(id: &str, title: &str, a: &Answer, limit: usize) -> Markup {
    let shown = &a.entries[..a.entries.len().min(limit)];
    html! {
        section.card id=(id) {
            h2 { (title) }
            p.summary { (a.entries.len()) " hit(s) in "
                (distinct(a.entries.iter().map(|e| e.digest.as_str()))) " digest(s) of "
                (distinct(a.entries.iter().map(|e| e.image.as_str()))) " image(s)." }
            @if !a.withdrawn.is_empty() {
                p.cond-bad { "Withdrawn, matching nothing: " (a.withdrawn.join(", ")) }
            }
            @if shown.len() < a.entries.len() {
                p.more { "Showing the first " (count(shown.len() as i64)) " hits: narrow the window, rule, upstream or image, or add "
                    code { "limit=" (a.entries.len()) } " to the address." }
            }
            @if !shown.is_empty() {
                table.hits {
                    thead { tr { th { "Image" } th { "Digest" } th { "Tags" } th { "Package" } th { "Version" } th { "Matched" }
                        th { "Compared as" } th.num { "Pulls" } th.num { "Clients" } th { "Last pulled" } th { "SBOM from" } } }
                    tbody {
                        @for e in shown {
                            tr.hit data-digest=(e.digest) {
                                td { (image_link(&e.image)) }
                                td { a href={(layout::image_href(&e.image)) "#" (e.digest)} { (digest(&e.digest)) } }
                                td { (e.tags.join(", ")) }
                                td { (e.package) @if !e.purl.is_empty() { div.mono { (e.purl) } } }
                                td.mono { (e.version) }
                                td { @if let Some(adv) = &e.advisory { (adv) " " } @if let Some(r) = &e.range { code { (r) } } }
                                td { (e.scheme.as_str())
                                    @if !e.exact { " " span.cond-bad title="the generic fallback compared it, or it is keyed by name only: check by hand" { "(inexact)" } } }
                                td.num { (count(e.pulls)) }
                                td.num { (count(e.clients)) }
                                td { @if let Some(t) = e.last_pulled { (when(t)) } @else { "—" } }
                                td { (e.sbom_provenance) @if !e.sbom_signer.is_empty() { div.mono { (e.sbom_signer) } } }
                            }
                        }
                    }
                }
            }
            h3 { "What this answer could not see" }
            ul.unseen {
                li #no-sbom { (count(a.unseen.no_sbom)) " pulled digest(s) have no SBOM" }
                li #unparseable { (count(a.unseen.unparseable_sbom)) " have an SBOM that could not be read" }
                li #uncompared { (a.unseen.uncompared.len()) " matching package version(s) could not be compared"
                    @if !a.unseen.uncompared.is_empty() {
                        ul { @for u in &a.unseen.uncompared {
                            li { (image_link(&u.image)) " " (digest(&u.digest)) " " code { (u.version) } ": " (u.reason) }
                        } }
                    }
                }
            }
        }
    }
}

fn distinct<'a>(items: impl Iterator<Item = &'a str>) -> usize {
    let mut v: Vec<&str> = items.collect();
    v.sort_unstable();
    v.dedup();
    v.len()
}
