//! The console's page shell (title, navigation, one inline style sheet) and the small pieces
//! every page uses: times, digests, verdict badges, links to an image.

use http::StatusCode;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::ledger::{Admission, LedgerVerdict};

/// The pages in the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Audit,
    Inventory,
    Policies,
    /// A page reached by a link (an image), or an error.
    None,
}

const STYLE: &str = r#"
:root { --fg:#1d232a; --muted:#5b6570; --line:#d8dde3; --bg:#f6f7f9; --card:#fff;
  --ok:#1f8a4c; --warn:#b7791f; --bad:#c53030; --fault:#6b46c1; --off:#8a939c; --link:#1f5fbf; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
header { background:#1d232a; color:#fff; padding:0 24px; display:flex; align-items:center; gap:24px; height:48px; }
header .brand { font-weight:600; letter-spacing:.02em; }
header nav a { color:#cfd6dd; text-decoration:none; padding:14px 10px; }
header nav a.current, header nav a:hover { color:#fff; border-bottom:2px solid #fff; }
main { padding:20px 24px 40px; max-width:1280px; }
h1 { font-size:20px; margin:0 0 4px; } h2 { font-size:16px; margin:24px 0 8px; } section.card > h2:first-child { margin-top:0; }
p.sub { color:var(--muted); margin:0 0 16px; }
section.card { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:14px 16px; margin:0 0 16px; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); vertical-align:top; overflow-wrap:anywhere; }
td.mono, td .mono, td code { max-width:36em; }
th { font-weight:600; color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.03em; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size:12.5px; }
a { color:var(--link); }
.badge { display:inline-block; padding:1px 7px; border-radius:10px; font-size:12px; font-weight:600; color:#fff; white-space:nowrap; }
.b-verified { background:var(--ok); } .b-let_through { background:var(--warn); } .b-refused { background:var(--bad); }
.b-fault { background:var(--fault); } .b-unchecked { background:var(--off); }
.tiles { display:flex; gap:12px; flex-wrap:wrap; margin-bottom:16px; }
.tile { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:10px 14px; min-width:150px; }
.tile .v { font-size:22px; font-weight:600; font-variant-numeric:tabular-nums; } .tile .k { color:var(--muted); font-size:12px; }
form.filters { display:flex; gap:10px; flex-wrap:wrap; align-items:flex-end; margin:0 0 16px; }
form.filters label { display:flex; flex-direction:column; font-size:12px; color:var(--muted); gap:2px; }
form.filters input, form.filters select { font:inherit; padding:4px 6px; border:1px solid var(--line); border-radius:4px; min-width:140px; }
form.filters button { font:inherit; padding:5px 14px; border:1px solid #1f5fbf; background:#1f5fbf; color:#fff; border-radius:4px; }
.empty { color:var(--muted); font-style:italic; }
.reasons { margin:0; padding-left:16px; }
.legend span { margin-right:14px; font-size:12px; }
.legend i { display:inline-block; width:10px; height:10px; margin-right:4px; border-radius:2px; }
.delta-up { color:var(--bad); } .delta-down { color:var(--ok); }
pre.explain { background:#f0f2f5; padding:10px 12px; border-radius:4px; white-space:pre-wrap; }
.cond-ok { color:var(--ok); } .cond-bad { color:var(--bad); }
"#;

/// A whole page: `title`, the navigation with `current` marked, and `body`.
pub fn page(title: &str, current: Nav, body: Markup) -> Markup {
    let link = |href: &str, nav: Nav, text: &str| {
        html! { a href=(href) class=[(current == nav).then_some("current")] { (text) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · portcullis" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    span.brand { "portcullis" }
                    nav {
                        (link("/ui/", Nav::Overview, "Overview"))
                        (link("/ui/audit", Nav::Audit, "Audit"))
                        (link("/ui/inventory", Nav::Inventory, "Inventory"))
                        (link("/ui/policies", Nav::Policies, "Policies"))
                    }
                }
                main { (body) }
            }
        }
    }
}

pub fn error_page(status: StatusCode, message: &str) -> Markup {
    page(
        status.canonical_reason().unwrap_or("Error"),
        Nav::None,
        html! {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
            p.sub #error { (message) }
            p { a href="/ui/" { "Back to the overview" } }
        },
    )
}

/// A time in unix milliseconds, to the second, in UTC.
pub fn when(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// An RFC 3339 time as the reports give it, shown like [`when`].
pub fn when_text(rfc3339: &str) -> String {
    rfc3339
        .parse::<jiff::Timestamp>()
        .map(|t| when(t.as_millisecond()))
        .unwrap_or_else(|_| rfc3339.to_owned())
}

/// `sha256:` and the first 12 hex digits, the whole digest in the tooltip.
pub fn digest(d: &str) -> Markup {
    let short: String = match d.split_once(':') {
        Some((alg, hex)) => format!("{alg}:{}", hex.chars().take(12).collect::<String>()),
        None => d.to_owned(),
    };
    html! { code title=(d) { (short) } }
}

/// The link to an image's page.
pub fn image_href(image: &str) -> String {
    format!("/ui/images/{image}")
}

pub fn image_link(image: &str) -> Markup {
    html! { a href=(image_href(image)) { (image) } }
}

/// What a pull's outcome was, as the console colours it (a closed set: every (verdict,
/// admission) maps to one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    Verified,
    /// Served unverified by an audit rule: what enforce would have refused.
    LetThrough,
    Refused,
    /// The signature lookup failed.
    Fault,
    /// Not checked: mode off, or no rule matched.
    Unchecked,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Verified,
        Outcome::LetThrough,
        Outcome::Refused,
        Outcome::Fault,
        Outcome::Unchecked,
    ];

    pub fn of(verdict: LedgerVerdict, admission: Admission) -> Outcome {
        match (verdict, admission) {
            (LedgerVerdict::Error, _) => Outcome::Fault,
            (_, Admission::Refused) => Outcome::Refused,
            (LedgerVerdict::Verified, _) => Outcome::Verified,
            (LedgerVerdict::Unverified, _) => Outcome::LetThrough,
            (LedgerVerdict::Off | LedgerVerdict::Unmatched, _) => Outcome::Unchecked,
        }
    }

    /// From a database row's strings; `None` for a value no version wrote.
    pub fn parse(verdict: &str, admission: &str) -> Option<Outcome> {
        Some(Outcome::of(
            LedgerVerdict::parse(verdict)?,
            Admission::parse(admission)?,
        ))
    }

    pub fn class(self) -> &'static str {
        match self {
            Outcome::Verified => "verified",
            Outcome::LetThrough => "let_through",
            Outcome::Refused => "refused",
            Outcome::Fault => "fault",
            Outcome::Unchecked => "unchecked",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Verified => "verified",
            Outcome::LetThrough => "let through unverified",
            Outcome::Refused => "refused",
            Outcome::Fault => "lookup fault",
            Outcome::Unchecked => "not checked",
        }
    }

    /// The chart's colour (the same as the badge's).
    pub fn colour(self) -> &'static str {
        match self {
            Outcome::Verified => "#1f8a4c",
            Outcome::LetThrough => "#b7791f",
            Outcome::Refused => "#c53030",
            Outcome::Fault => "#6b46c1",
            Outcome::Unchecked => "#8a939c",
        }
    }

    pub fn badge(self) -> Markup {
        html! { span class={"badge b-" (self.class())} { (self.label()) } }
    }
}

/// A count with thousands separators.
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A `<select>` of windows, `current` selected.
pub fn since_select(current: &str, choices: &[&str]) -> Markup {
    html! {
        label { "Window"
            select name="since" {
                @for c in choices {
                    option value=(c) selected[*c == current] { "last " (c) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_times_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(-1234), "-1,234");
        assert_eq!(when(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(when_text("2026-12-03T17:20:00Z"), "2026-12-03 17:20:00 UTC");
    }

    #[test]
    fn every_verdict_and_admission_has_an_outcome() {
        assert_eq!(
            Outcome::parse("unverified", "served"),
            Some(Outcome::LetThrough)
        );
        assert_eq!(
            Outcome::parse("unverified", "refused"),
            Some(Outcome::Refused)
        );
        assert_eq!(Outcome::parse("error", "refused"), Some(Outcome::Fault));
        assert_eq!(
            Outcome::parse("unmatched", "refused"),
            Some(Outcome::Refused)
        );
        assert_eq!(Outcome::parse("off", "served"), Some(Outcome::Unchecked));
        assert_eq!(Outcome::parse("bogus", "served"), None);
    }

    #[test]
    fn text_is_escaped() {
        let m = image_link("<script>alert(1)</script>");
        assert!(!m.into_string().contains("<script>"));
    }
}
