//! Image-reference patterns of Kyverno (`imageReferences`) and policy-controller
//! (`images[].glob`) translated into portcullis `match` patterns over canonical names.
//!
//! Both tools match a pattern against the whole reference *with* its tag or digest
//! (`registry/path:tag`, `registry/path@sha256:…`; `:latest` when none is written). portcullis
//! matches the canonical name `<registry>/<repository>` and every tag of it. So:
//!
//! - A trailing wildcard, or an explicit `:*`, covers every tag: only the name part is kept.
//!   Any other tag pattern (`:v1*`, `@sha256:…`) cannot be carried over.
//! - A pattern ending in a literal matches no reference there (the tag is always present);
//!   it is imported as that repository and reported as not exact.
//! - Kyverno's `*` is any string, `/` included, and `?` any one character, `/` included.
//!   portcullis's `*` and `?` stay inside one segment, so each Kyverno `*` becomes the
//!   alternatives `*` (within a segment) and `*/**/*` (across segments), `*` as a whole last
//!   segment becomes `**`, and `?` becomes `?` or `/`.
//! - policy-controller's `*` is `[^/]*`, portcullis's `*` exactly; its `**` is any string
//!   (`.*`) and is translated like Kyverno's `*`. Its bare `*` and `*/*` mean
//!   `index.docker.io/library/*` and `index.docker.io/*/*`, as policy-controller rewrites them.
//! - A pattern without a registry means Docker Hub (`docker.io/`, and `library/` before a
//!   single name), as portcullis's canonical names do; `index.docker.io` and
//!   `registry-1.docker.io` are spelled `docker.io`.
//!
//! Every produced pattern is checked with portcullis's own [`Pattern`] parser.

use crate::policy::Pattern;

/// Which tool's wildcard rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Kyverno,
    PolicyController,
}

impl Dialect {
    fn tool(self) -> &'static str {
        match self {
            Dialect::Kyverno => "Kyverno",
            Dialect::PolicyController => "policy-controller",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GlobError {
    #[error("image pattern {0:?} is empty")]
    Empty(String),
    #[error(
        "image pattern {pattern:?}: character {ch:?} cannot appear in an image reference pattern"
    )]
    Character { pattern: String, ch: char },
    #[error("image pattern {0:?} has more than 3 wildcards that cross `/`; write it as several patterns")]
    TooWide(String),
    #[error(
        "image pattern {pattern:?} translates to {produced:?}, which portcullis refuses: {reason}"
    )]
    Invalid {
        pattern: String,
        produced: String,
        reason: String,
    },
}

/// The result of translating one pattern.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Translated {
    /// portcullis patterns; together they match exactly the names the input matched (unless
    /// `inexact` says otherwise).
    pub patterns: Vec<String>,
    /// Remarks for a YAML comment that do not change the meaning.
    pub notes: Vec<String>,
    /// What could not be carried over, when the translation is not exact.
    pub inexact: Option<String>,
}

pub fn translate(dialect: Dialect, input: &str) -> Result<Translated, GlobError> {
    let pattern = input.trim();
    if pattern.is_empty() {
        return Err(GlobError::Empty(input.to_owned()));
    }
    let allowed = |c: char| {
        c.is_ascii_alphanumeric()
            || "._-/:@*".contains(c)
            || (c == '?' && dialect == Dialect::Kyverno)
    };
    if let Some(ch) = pattern.chars().find(|c| !allowed(*c)) {
        return Err(GlobError::Character {
            pattern: pattern.to_owned(),
            ch,
        });
    }
    let mut out = Translated::default();
    let tool = dialect.tool();
    let rewritten = match (dialect, pattern) {
        (Dialect::Kyverno, p) if p.chars().all(|c| c == '*') => {
            out.patterns.push("**".to_owned());
            return Ok(out);
        }
        (Dialect::PolicyController, "*") => "index.docker.io/library/*",
        (Dialect::PolicyController, "*/*") => "index.docker.io/*/*",
        (_, p) => p,
    };

    // The tag or digest part: from the first `@`, else the first `:`, of the last segment.
    let last_slash = rewritten.rfind('/').map_or(0, |i| i + 1);
    let last = &rewritten[last_slash..];
    let tag_at = last
        .find('@')
        .or_else(|| last.find(':'))
        .map(|i| last_slash + i);
    let (name, tag) = match tag_at {
        Some(i) => (&rewritten[..i], Some(&rewritten[i..])),
        None => (rewritten, None),
    };
    if name.contains('@') {
        return Err(GlobError::Character {
            pattern: pattern.to_owned(),
            ch: '@',
        });
    }
    match tag {
        Some(t) if t.starts_with(':') && t[1..].chars().all(|c| c == '*') && t.len() > 1 => {
            out.notes.push(format!(
                "{pattern:?}: {tool} applied `:*` only to references by tag; portcullis checks references by digest too"
            ));
        }
        Some(t) => {
            out.inexact = Some(format!(
                "{pattern:?}: the tag or digest pattern {t:?} is not carried over (portcullis rules cover every tag and digest of a repository)"
            ));
        }
        None if name.ends_with('*') => {}
        None => {
            out.inexact = Some(format!(
                "{pattern:?}: {tool} compares patterns with the tag included (`:latest` when none is written), so a pattern ending in a literal name matched only references written without a tag there; imported as the repository {name:?} with every tag"
            ));
        }
    }

    let name = default_registry(name, &mut out.notes, pattern);
    let alternatives = expand(dialect, &name, pattern)?;
    for produced in alternatives {
        Pattern::new(&produced).map_err(|e| GlobError::Invalid {
            pattern: pattern.to_owned(),
            produced: produced.clone(),
            reason: e.reason,
        })?;
        if !out.patterns.contains(&produced) {
            out.patterns.push(produced);
        }
    }
    Ok(out)
}

/// A repository written in a policy (`repository:`, `source[].oci`) as a canonical name.
pub fn canonical_repository(repo: &str) -> String {
    let mut notes = Vec::new();
    default_registry(repo.trim(), &mut notes, repo)
}

/// Docker Hub defaulting and spelling, on the name part of a pattern.
fn default_registry(name: &str, notes: &mut Vec<String>, pattern: &str) -> String {
    let (first, rest) = match name.split_once('/') {
        Some((f, r)) => (f, Some(r)),
        None => (name, None),
    };
    let wild = |s: &str| s.contains(['*', '?']);
    let is_host = !wild(first) && (first.contains(['.', ':']) || first == "localhost");
    let (registry, repo) = match rest {
        Some(r) if is_host => (first, r.to_owned()),
        Some(_) if wild(first) => return name.to_owned(),
        _ => {
            notes.push(format!(
                "{pattern:?} names no registry: read as Docker Hub (docker.io)"
            ));
            ("docker.io", name.to_owned())
        }
    };
    let registry = match registry {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        r => r,
    };
    if registry == "docker.io" && !repo.contains('/') && !wild(&repo) {
        return format!("docker.io/library/{repo}");
    }
    format!("{registry}/{repo}")
}

/// One piece of a name pattern.
enum Piece {
    Text(String),
    /// A wildcard that may cross `/` (Kyverno `*`, policy-controller `**`).
    Cross,
    /// Kyverno's `?`: any one character, `/` included.
    AnyChar,
}

fn expand(dialect: Dialect, name: &str, pattern: &str) -> Result<Vec<String>, GlobError> {
    let mut pieces: Vec<Piece> = Vec::new();
    let mut text = String::new();
    let chars: Vec<char> = name.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|x| **x == '*').count();
        let crossing = match (dialect, c) {
            (Dialect::Kyverno, '*') => true,
            (Dialect::PolicyController, '*') => run >= 2,
            _ => false,
        };
        if crossing {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
            pieces.push(Piece::Cross);
            i += run;
        } else if dialect == Dialect::Kyverno && c == '?' {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
            pieces.push(Piece::AnyChar);
            i += 1;
        } else {
            text.push(c);
            i += 1;
        }
    }
    pieces.push(Piece::Text(text));
    let wide = pieces
        .iter()
        .filter(|p| matches!(p, Piece::Cross | Piece::AnyChar))
        .count();
    if wide > 3 {
        return Err(GlobError::TooWide(pattern.to_owned()));
    }
    let mut alternatives = vec![String::new()];
    let n = pieces.len();
    for (k, piece) in pieces.iter().enumerate() {
        let options: Vec<String> = match piece {
            Piece::Text(t) => vec![t.clone()],
            Piece::AnyChar => vec!["?".to_owned(), "/".to_owned()],
            Piece::Cross => {
                let at_end = k + 2 == n && matches!(&pieces[n - 1], Piece::Text(t) if t.is_empty());
                let before_slash = matches!(pieces.get(k.wrapping_sub(1)), Some(Piece::Text(t)) if t.ends_with('/') || (k == 1 && t.is_empty()));
                let after_slash =
                    matches!(pieces.get(k + 1), Some(Piece::Text(t)) if t.starts_with('/'));
                match (before_slash, at_end, after_slash) {
                    // A whole last segment: any depth below.
                    (true, true, _) => vec!["**".to_owned()],
                    // A whole middle segment: one segment or more.
                    (true, false, true) => vec!["*/**".to_owned()],
                    (_, true, _) => vec!["*".to_owned(), "*/**".to_owned()],
                    _ => vec!["*".to_owned(), "*/**/*".to_owned()],
                }
            }
        };
        alternatives = alternatives
            .iter()
            .flat_map(|a| options.iter().map(move |o| format!("{a}{o}")))
            .collect();
    }
    Ok(alternatives)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(p: &str) -> Translated {
        translate(Dialect::Kyverno, p).unwrap()
    }
    fn pc(p: &str) -> Translated {
        translate(Dialect::PolicyController, p).unwrap()
    }

    /// The names a translation matches, by portcullis's own matcher.
    fn matches(t: &Translated, name: &str) -> bool {
        t.patterns
            .iter()
            .any(|p| Pattern::new(p).unwrap().is_match(name))
    }

    #[test]
    fn kyverno_star_crosses_segments() {
        let t = k("our-registry.io/company/*");
        assert_eq!(t.patterns, ["our-registry.io/company/**"]);
        assert_eq!(t.inexact, None);
        assert!(matches(&t, "our-registry.io/company/api"));
        assert!(matches(&t, "our-registry.io/company/team/api"));
        assert!(!matches(&t, "our-registry.io/company"));
        assert!(!matches(&t, "our-registry.io/companyx/api"));

        let t = k("ghcr.io/kyverno/test-verify-image*");
        assert_eq!(
            t.patterns,
            [
                "ghcr.io/kyverno/test-verify-image*",
                "ghcr.io/kyverno/test-verify-image*/**"
            ]
        );
        assert!(matches(&t, "ghcr.io/kyverno/test-verify-image"));
        assert!(matches(&t, "ghcr.io/kyverno/test-verify-image-x/y/z"));
        assert!(!matches(&t, "ghcr.io/kyverno/other"));

        let t = k("ghcr.io/*/app:*");
        assert_eq!(t.patterns, ["ghcr.io/*/**/app"]);
        assert!(matches(&t, "ghcr.io/a/app"));
        assert!(matches(&t, "ghcr.io/a/b/c/app"));
        assert!(!matches(&t, "ghcr.io/app"));
        assert!(t.inexact.is_none());
        assert_eq!(t.notes.len(), 1, "digest references are noted");

        let t = k("ghcr.io/comp*ny/app:*");
        assert!(matches(&t, "ghcr.io/company/app"));
        assert!(matches(&t, "ghcr.io/comp/x/ny/app"));
        assert!(!matches(&t, "ghcr.io/compan/app"));

        let t = k("ghcr.io/a?b:*");
        assert!(matches(&t, "ghcr.io/axb"));
        assert!(matches(&t, "ghcr.io/a/b"));
        assert!(!matches(&t, "ghcr.io/ab"));

        assert_eq!(k("*").patterns, ["**"]);
    }

    #[test]
    fn tags_digests_and_literals() {
        let t = k("ghcr.io/company/app:v1*");
        assert_eq!(t.patterns, ["ghcr.io/company/app"]);
        assert!(t.inexact.unwrap().contains("v1*"));
        let t = k("ghcr.io/company/app@sha256:*");
        assert!(t.inexact.is_some());
        let t = k("ghcr.io/company/app");
        assert_eq!(t.patterns, ["ghcr.io/company/app"]);
        assert!(t.inexact.unwrap().contains("tag included"));
        // A registry port is not a tag.
        let t = k("localhost:5000/app/*");
        assert_eq!(t.patterns, ["localhost:5000/app/**"]);
        assert!(t.inexact.is_none());
    }

    #[test]
    fn docker_hub_defaulting() {
        assert_eq!(k("nginx:*").patterns, ["docker.io/library/nginx"]);
        assert_eq!(k("company/*").patterns, ["docker.io/company/**"]);
        assert_eq!(k("docker.io/nginx:*").patterns, ["docker.io/library/nginx"]);
        assert_eq!(
            pc("index.docker.io/library/*").patterns,
            ["docker.io/library/*"]
        );
        assert_eq!(pc("*").patterns, ["docker.io/library/*"]);
        assert_eq!(pc("*/*").patterns, ["docker.io/*/*"]);
    }

    #[test]
    fn policy_controller_star_is_one_segment() {
        let t = pc("ghcr.io/company/*");
        assert_eq!(t.patterns, ["ghcr.io/company/*"]);
        assert!(t.inexact.is_none());
        assert!(matches(&t, "ghcr.io/company/app"));
        assert!(!matches(&t, "ghcr.io/company/team/app"));
        assert_eq!(
            pc("gcr.io/projectsigstore/**").patterns,
            ["gcr.io/projectsigstore/**"]
        );
        let t = pc("ghcr.io/**/app*");
        assert!(matches(&t, "ghcr.io/x/y/app2"));
        assert!(!matches(&t, "ghcr.io/app2"));
        assert!(!matches(&t, "ghcr.io/x/app/y"));
        let t = pc("registry.local/a**");
        assert!(matches(&t, "registry.local/ab/c"));
        assert!(matches(&t, "registry.local/a"));
    }

    /// The tools' own matching, as regexps over the reference with its tag: Kyverno's wildcard
    /// (`*` any string, `?` any character) and policy-controller's glob (`*` is `[^/]*`, `**` is
    /// `.*`), both anchored.
    fn tool_matches(dialect: Dialect, pattern: &str, reference: &str) -> bool {
        let mut re = String::from("^");
        let chars: Vec<char> = pattern.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            match (dialect, chars[i]) {
                (Dialect::Kyverno, '*') => re.push_str(".*"),
                (Dialect::Kyverno, '?') => re.push('.'),
                (Dialect::PolicyController, '*') if chars.get(i + 1) == Some(&'*') => {
                    re.push_str(".*");
                    i += 1;
                }
                (Dialect::PolicyController, '*') => re.push_str("[^/]*"),
                (_, c) => re.push_str(&regex::escape(&c.to_string())),
            }
            i += 1;
        }
        re.push('$');
        regex::Regex::new(&re).unwrap().is_match(reference)
    }

    /// For every exact translation, portcullis matches a name exactly when the tool matched
    /// that name with some tag, and then with every tag and digest tried.
    #[test]
    fn exact_translations_agree_with_the_tools_on_sample_names() {
        let names = [
            "ghcr.io/company/app",
            "ghcr.io/company/app2",
            "ghcr.io/company/team/app",
            "ghcr.io/company/team/sub/app",
            "ghcr.io/companyx/app",
            "ghcr.io/app",
            "ghcr.io/a/b",
            "ghcr.io/axb",
            "ghcr.io/comp/x/ny/app",
            "quay.io/company/app",
            "our-registry.io/company/api",
            "our-registry.io/company/x/y/z",
            "docker.io/library/nginx",
            "docker.io/company/app",
        ];
        let refs = |n: &str| {
            vec![
                format!("{n}:latest"),
                format!("{n}:v1.2.3"),
                format!("{n}@sha256:{}", "a".repeat(64)),
            ]
        };
        let cases: &[(Dialect, &[&str])] = &[
            (
                Dialect::Kyverno,
                &[
                    "our-registry.io/company/*",
                    "ghcr.io/company/app*",
                    "ghcr.io/*/app*",
                    "ghcr.io/comp*ny/app*",
                    "ghcr.io/a?b*",
                    "*/company/*",
                    "ghcr.io/*",
                ],
            ),
            (
                Dialect::PolicyController,
                &[
                    "ghcr.io/company/*",
                    "ghcr.io/company/**",
                    "ghcr.io/**/app*",
                    "ghcr.io/*/app*",
                    "*/company/*",
                    "ghcr.io/**",
                ],
            ),
        ];
        for (dialect, patterns) in cases {
            for pattern in *patterns {
                let t = translate(*dialect, pattern).unwrap();
                assert!(t.inexact.is_none(), "{pattern}: {:?}", t.inexact);
                for name in names {
                    let tool: Vec<bool> = refs(name)
                        .iter()
                        .map(|r| tool_matches(*dialect, pattern, r))
                        .collect();
                    let ours = matches(&t, name);
                    assert_eq!(
                        ours,
                        tool.iter().any(|m| *m),
                        "{dialect:?} {pattern} on {name}: portcullis {ours}, tool {tool:?} ({:?})",
                        t.patterns
                    );
                    if ours {
                        assert!(
                            tool.iter().all(|m| *m),
                            "{pattern} on {name}: tag-dependent {tool:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(matches!(
            translate(Dialect::Kyverno, " "),
            Err(GlobError::Empty(_))
        ));
        assert!(matches!(
            translate(Dialect::Kyverno, "ghcr.io/{a,b}/*"),
            Err(GlobError::Character { ch: '{', .. })
        ));
        assert!(matches!(
            translate(Dialect::PolicyController, "ghcr.io/a?"),
            Err(GlobError::Character { ch: '?', .. })
        ));
        assert!(matches!(
            translate(Dialect::Kyverno, "*a*b*c*d:*"),
            Err(GlobError::TooWide(_))
        ));
    }
}
