//! The policies page (`/ui/policies`): the rules in force, in the order they are written, with
//! their mode, patterns, attestors and attestation requirements; and, for a name typed in,
//! which upstream serves it and which rule applies, and why (`check-config IMAGE`'s
//! explanation, from [`crate::upstream::explain`]).

use maud::{html, Markup};

use super::layout::{self, Nav};
use super::Params;
use crate::config::Config;
use crate::upstream::explain::{explain, unmatched_name, Applies};

pub fn page(config: &Config, params: &Params) -> Markup {
    let image = params.get("image");
    let explained = image.map(|i| explain(config, i));
    let body = html! {
        h1 { "Policies" }
        p.sub { "The configuration in force (" (config.source) "). Unmatched images: "
            strong { (unmatched_name(config.policies.unmatched)) } "." }
        section.card #which {
            h2 { "Which rule applies to an image?" }
            form.filters method="get" action="/ui/policies" {
                label { "Image name" input type="text" name="image" placeholder="docker.io/company/app:1.2" value=[image]; }
                button type="submit" { "Explain" }
            }
            @match &explained {
                None => {},
                Some(Err(e)) => p.cond-bad #explain-error { (e) },
                Some(Ok(x)) => {
                    div #explanation {
                        p { "Served by upstream " strong { (x.upstream) } " (" code { (x.url) } ") as "
                            code { (x.canonical) } ", because " (x.routed_because) "." }
                        @match &x.applies {
                            Applies::Rule { name, mode, pattern, also } => {
                                p.applies { "Rule " strong { (name) } " (" (mode.as_str()) ") applies: its pattern "
                                    code { (pattern) } " is the most specific match." }
                                @if !also.is_empty() {
                                    p { "Also matched, less specific or later in the file:" }
                                    ul { @for (r, p) in also { li { (r) ": " code { (p) } } } }
                                }
                            },
                            Applies::Unmatched(u) => p.applies { "No rule matches: unmatched is "
                                (unmatched_name(*u)) ", so it is "
                                (match u { crate::policy::Unmatched::Allow => "served without signature checks", crate::policy::Unmatched::Deny => "refused (403 DENIED)" }) "." },
                        }
                        pre.explain { (x) }
                    }
                },
            }
        }
        section.card #rules {
            h2 { "Rules" }
            @if config.policies.rules.is_empty() { p.empty { "No rules: every image is unmatched." } }
            @for rule in &config.policies.rules {
                div.rule id={"rule-" (rule.name)} {
                    h3 { (rule.name) " " span class={"badge " (mode_class(rule.mode))} { (rule.mode.as_str()) } }
                    table {
                        tbody {
                            tr { th { "Patterns" } td { @for p in &rule.patterns { code { (p.as_str()) } " " } } }
                            tr { th { "Signatures" } td { (rule.count.min(rule.attestors.len())) " of " (rule.attestors.len()) " attestor(s) must verify"
                                @if let Some(repo) = &rule.signature_repository { ", signatures in " code { (repo) } } } }
                            @for (i, a) in rule.attestors.iter().enumerate() {
                                tr { th { "Attestor " (i + 1) } td.mono { (a) } }
                            }
                            @for a in &rule.attestations {
                                tr { th { "Attestation " (a.name) } td {
                                    code { (a.predicate_types.join(" or ")) }
                                    @if a.allow_unsigned { ", unsigned BuildKit attestations accepted" }
                                    @if !a.conditions.is_empty() {
                                        ul { @for c in &a.conditions { li { code { (c.source) } } } }
                                    }
                                } }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::page("Policies", Nav::Policies, body)
}

fn mode_class(mode: crate::policy::Mode) -> &'static str {
    match mode {
        crate::policy::Mode::Enforce => "b-refused",
        crate::policy::Mode::Audit => "b-let_through",
        crate::policy::Mode::Off => "b-unchecked",
    }
}
