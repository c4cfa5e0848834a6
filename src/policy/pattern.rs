//! Image-name patterns of a rule's `match`: globs over the canonical `<registry>/<repository>`
//! name where `*` is one path segment and `**` any number of them, compiled with `globset`.
//!
//! Specificity, for choosing between rules, is the length of the literal prefix before the first
//! wildcard: `ghcr.io/company/app` beats `ghcr.io/company/*` beats `ghcr.io/**`.

use globset::{GlobBuilder, GlobMatcher};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("pattern {pattern:?}: {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    matcher: GlobMatcher,
    specificity: usize,
}

impl Pattern {
    pub fn new(pattern: &str) -> Result<Pattern, PatternError> {
        let err = |reason: &str| PatternError {
            pattern: pattern.to_owned(),
            reason: reason.to_owned(),
        };
        if pattern.is_empty() {
            return Err(err("is empty"));
        }
        if pattern.starts_with('/') || pattern.ends_with('/') || pattern.contains("//") {
            return Err(err(
                "must look like <registry>/<repository>, e.g. ghcr.io/company/** (no leading, trailing or double slash)",
            ));
        }
        if pattern.chars().any(|c| c.is_whitespace() || c == '\\') {
            return Err(err("must not contain whitespace or backslashes"));
        }
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(false)
            .build()
            .map_err(|e| err(&e.kind().to_string()))?;
        let specificity = pattern.find(['*', '?', '[', '{']).unwrap_or(pattern.len());
        Ok(Pattern {
            source: pattern.to_owned(),
            matcher: glob.compile_matcher(),
            // An exact name beats any glob sharing its prefix.
            specificity: if specificity == pattern.len() {
                usize::MAX
            } else {
                specificity
            },
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn is_match(&self, name: &str) -> bool {
        self.matcher.is_match(name)
    }

    pub fn specificity(&self) -> usize {
        self.specificity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_is_one_segment_double_star_any_depth() {
        let one = Pattern::new("docker.io/company/*").unwrap();
        assert!(one.is_match("docker.io/company/app"));
        assert!(!one.is_match("docker.io/company/team/app"));
        assert!(!one.is_match("docker.io/companyx/app"));
        let any = Pattern::new("ghcr.io/company/**").unwrap();
        assert!(any.is_match("ghcr.io/company/app"));
        assert!(any.is_match("ghcr.io/company/team/sub/app"));
        assert!(!any.is_match("ghcr.io/company-evil/app"));
        assert!(!any.is_match("ghcr.io/other/company/app"));
        let mid = Pattern::new("*/library/*").unwrap();
        assert!(mid.is_match("docker.io/library/nginx"));
        assert!(!mid.is_match("docker.io/x/library/nginx"));
        let all = Pattern::new("**").unwrap();
        assert!(all.is_match("quay.io/a/b/c"));
        let exact = Pattern::new("ghcr.io/company/app").unwrap();
        assert!(exact.is_match("ghcr.io/company/app"));
        assert!(!exact.is_match("ghcr.io/company/app2"));
        let alt = Pattern::new("ghcr.io/{a,b}/*").unwrap();
        assert!(alt.is_match("ghcr.io/b/x"));
    }

    #[test]
    fn specificity_is_the_literal_prefix() {
        let s = |p: &str| Pattern::new(p).unwrap().specificity();
        assert!(s("ghcr.io/company/app") > s("ghcr.io/company/*"));
        assert!(s("ghcr.io/company/*") > s("ghcr.io/**"));
        assert_eq!(s("ghcr.io/company/*"), s("ghcr.io/company/**"));
        assert_eq!(s("**"), 0);
    }

    #[test]
    fn bad_patterns_are_named() {
        for p in ["", "/x", "x/", "a//b", "a b", "ghcr.io/[", "a\\b"] {
            let e = Pattern::new(p).unwrap_err();
            assert_eq!(e.pattern, p);
        }
    }
}
