//! Certificate identities (`subject` / `subjectRegExp`, `issuer` / `issuerRegExp`), which
//! Kyverno and policy-controller spell alike, as portcullis exact values or regexps.

use super::output::{Match, Rule};
use super::DocError;

/// How the plain `subject` / `issuer` values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plain {
    /// Kyverno: a whole-value pattern where `*` is any string and `?` any character.
    Wildcard,
    /// policy-controller: exact.
    Exact,
}

/// An exact value or a regexp (`…RegExp`) as a portcullis matcher. Shared with
/// policy-controller, whose identities have the same four keys.
pub fn identity(
    plain: Plain,
    exact: Option<&str>,
    regexp: Option<&str>,
    field: &str,
    rule: &mut Rule,
) -> Result<Match, DocError> {
    match (
        exact.filter(|s| !s.is_empty()),
        regexp.filter(|s| !s.is_empty()),
    ) {
        (Some(e), None) if plain == Plain::Wildcard && e.contains(['*', '?']) => {
            let mut re = String::new();
            for c in e.chars() {
                match c {
                    '*' => re.push_str(".*"),
                    '?' => re.push('.'),
                    c => re.push_str(&regex::escape(&c.to_string())),
                }
            }
            rule.notes.push(format!(
                "{field} {e:?} has wildcards: carried over as the regexp {re:?}"
            ));
            Ok(Match::Regexp(re))
        }
        (Some(e), None) => {
            if e.contains(['+', '[', '(', '|', '\\']) || e.contains(".*") {
                rule.notes.push(format!(
                    "{field} {e:?} looks like a regular expression, but it is compared as written (exact{}); use {field}RegExp for a regexp",
                    if plain == Plain::Wildcard { ", with only `*` and `?` as wildcards" } else { "" }
                ));
            }
            Ok(Match::Exact(e.to_owned()))
        }
        (Some(e), Some(re)) => {
            rule.not_carried.push(format!(
                "{field} and {field}RegExp are both set: only the exact value is kept"
            ));
            let _ = re;
            Ok(Match::Exact(e.to_owned()))
        }
        (None, Some(re)) => {
            regex::Regex::new(re).map_err(|e| DocError::Value {
                field: format!("{field}RegExp"),
                reason: format!("bad regexp {re:?}: {e}"),
            })?;
            if !(re.starts_with('^') && re.ends_with('$')) {
                rule.notes.push(format!(
                    "{field}RegExp {re:?} must match the whole value in portcullis; cosign accepted a match anywhere in it"
                ));
            }
            Ok(Match::Regexp(re.to_owned()))
        }
        (None, None) => {
            rule.notes
                .push(format!("{field} is not set: any value is accepted (`.*`)"));
            Ok(Match::Regexp(".*".to_owned()))
        }
    }
}
