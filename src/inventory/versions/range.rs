//! Version ranges: the plain form (`<2.17.1`, `>=2.0.0,<2.17.1`, `>=1 <2`, alternatives joined
//! by `||`, a bare version meaning `=`) compared under the package's scheme, and `vers:` URIs
//! (`vers:maven/>=2.0.0|<2.17.1`), which name their own scheme and are evaluated by the
//! vers-spec algorithm (constraints sorted by version, `=`/`!=` first, then contiguous pairs).

use std::cmp::Ordering;
use std::fmt;

use super::{compare, Scheme, VersionError};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RangeError {
    #[error("the range is empty")]
    Empty,
    #[error("{0:?} is not a constraint (an operator =, !=, <, <=, >, >= and a version)")]
    Constraint(String),
    #[error("the vers URI {0:?} has no versioning scheme (vers:<scheme>/<constraints>)")]
    VersScheme(String),
    #[error("the vers URI's versions cannot be ordered: {0}")]
    VersOrder(VersionError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub op: Op,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// Alternatives, each a conjunction.
    Plain(Vec<Vec<Constraint>>),
    /// `vers:`: sorted constraints; empty means `*`.
    Vers {
        scheme: Scheme,
        constraints: Vec<Constraint>,
    },
}

/// A parsed range, kept with the text it was written as (for answers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    text: String,
    kind: Kind,
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Constraint {
    fn parse(s: &str) -> Result<Constraint, RangeError> {
        let s = s.trim();
        let (op, rest) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("!=", Op::Ne),
            ("==", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
            ("=", Op::Eq),
        ]
        .iter()
        .find_map(|(p, op)| s.strip_prefix(p).map(|rest| (*op, rest)))
        .unwrap_or((Op::Eq, s));
        let version = rest.trim();
        if version.is_empty() || version.contains(['<', '>', '=', '!', ' ']) {
            return Err(RangeError::Constraint(s.to_owned()));
        }
        Ok(Constraint {
            op,
            version: version.to_owned(),
        })
    }

    /// Whether `v` satisfies this constraint.
    pub fn holds(&self, scheme: Scheme, v: &str) -> Result<bool, VersionError> {
        let o = compare(scheme, v, &self.version)?;
        Ok(match self.op {
            Op::Eq => o == Ordering::Equal,
            Op::Ne => o != Ordering::Equal,
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
            Op::Gt => o == Ordering::Greater,
            Op::Ge => o != Ordering::Less,
        })
    }
}

/// Splits a conjunction at `,` and whitespace, keeping an operator with the version after it.
fn conjunction(s: &str) -> Result<Vec<Constraint>, RangeError> {
    let mut pieces: Vec<String> = Vec::new();
    for token in s.split([',', ' ', '\t']).filter(|t| !t.is_empty()) {
        match pieces.last_mut() {
            Some(last) if last.chars().all(|c| "<>=!".contains(c)) => last.push_str(token),
            _ => pieces.push(token.to_owned()),
        }
    }
    if pieces.is_empty() {
        return Err(RangeError::Empty);
    }
    pieces.iter().map(|p| Constraint::parse(p)).collect()
}

impl Range {
    pub fn parse(s: &str) -> Result<Range, RangeError> {
        let text = s.trim().to_owned();
        if text.is_empty() {
            return Err(RangeError::Empty);
        }
        let kind = if let Some(rest) = text.strip_prefix("vers:") {
            let (scheme, list) = rest
                .split_once('/')
                .filter(|(s, _)| !s.is_empty())
                .ok_or_else(|| RangeError::VersScheme(text.clone()))?;
            let scheme = Scheme::of_vers(scheme);
            let list = list.trim();
            let constraints = if list == "*" {
                Vec::new()
            } else {
                let mut cs = list
                    .split('|')
                    .map(Constraint::parse)
                    .collect::<Result<Vec<_>, _>>()?;
                // Sorted by version, as the algorithm needs; a version that cannot be ordered
                // makes the whole range unusable.
                let mut err = None;
                cs.sort_by(|a, b| {
                    compare(scheme, &a.version, &b.version).unwrap_or_else(|e| {
                        err.get_or_insert(e);
                        Ordering::Equal
                    })
                });
                if let Some(e) = err {
                    return Err(RangeError::VersOrder(e));
                }
                cs
            };
            Kind::Vers {
                scheme,
                constraints,
            }
        } else {
            Kind::Plain(
                text.split("||")
                    .map(conjunction)
                    .collect::<Result<Vec<_>, _>>()?,
            )
        };
        Ok(Range { text, kind })
    }

    /// The scheme a `vers:` range names (a plain range uses the package's).
    pub fn own_scheme(&self) -> Option<Scheme> {
        match &self.kind {
            Kind::Vers { scheme, .. } => Some(*scheme),
            Kind::Plain(_) => None,
        }
    }

    /// Whether `version` is in the range; `scheme` is the package's.
    pub fn contains(&self, scheme: Scheme, version: &str) -> Result<bool, VersionError> {
        match &self.kind {
            Kind::Plain(alternatives) => {
                for all in alternatives {
                    let mut ok = true;
                    for c in all {
                        if !c.holds(scheme, version)? {
                            ok = false;
                            break;
                        }
                    }
                    if ok {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Kind::Vers {
                scheme,
                constraints,
            } => vers_contains(*scheme, constraints, version),
        }
    }
}

/// The vers-spec "checking if a version is contained within a range" algorithm.
fn vers_contains(scheme: Scheme, cs: &[Constraint], v: &str) -> Result<bool, VersionError> {
    if cs.is_empty() {
        return Ok(true);
    }
    let mut saw_ne = false;
    for c in cs {
        match c.op {
            Op::Eq if c.holds(scheme, v)? => return Ok(true),
            Op::Ne if !c.holds(scheme, v)? => return Ok(false),
            Op::Ne => saw_ne = true,
            _ => {}
        }
    }
    let rest: Vec<&Constraint> = cs
        .iter()
        .filter(|c| !matches!(c.op, Op::Eq | Op::Ne))
        .collect();
    match rest.as_slice() {
        [] => return Ok(saw_ne),
        [only] => return only.holds(scheme, v),
        _ => {}
    }
    let lower = |c: &Constraint| matches!(c.op, Op::Lt | Op::Le);
    let upper = |c: &Constraint| matches!(c.op, Op::Gt | Op::Ge);
    for (i, pair) in rest.windows(2).enumerate() {
        let (cur, next) = (pair[0], pair[1]);
        if i == 0 && lower(cur) && cur.holds(scheme, v)? {
            return Ok(true);
        }
        if i == rest.len() - 2 && upper(next) && next.holds(scheme, v)? {
            return Ok(true);
        }
        if upper(cur) && lower(next) && cur.holds(scheme, v)? && next.holds(scheme, v)? {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yes(range: &str, scheme: Scheme, versions: &[&str]) {
        let r = Range::parse(range).unwrap();
        for v in versions {
            assert!(r.contains(scheme, v).unwrap(), "{v} in {range}");
        }
    }

    fn no(range: &str, scheme: Scheme, versions: &[&str]) {
        let r = Range::parse(range).unwrap();
        for v in versions {
            assert!(!r.contains(scheme, v).unwrap(), "{v} not in {range}");
        }
    }

    #[test]
    fn plain_ranges() {
        yes(
            "<2.17.1",
            Scheme::Maven,
            &["2.14.1", "2.17.0", "2.0-beta9", "2.17.1-rc1"],
        );
        no("<2.17.1", Scheme::Maven, &["2.17.1", "2.17.2", "2.20.0"]);
        yes(">=2.0.0,<2.17.1", Scheme::Maven, &["2.0", "2.16.0"]);
        no(
            ">=2.0.0,<2.17.1",
            Scheme::Maven,
            &["1.2.17", "2.0-beta9", "2.17.1"],
        );
        // By precedence a pre-release of 2.0.0 is below it (npm's own range rule that skips
        // pre-releases is for choosing what to install, not for what is affected).
        yes(
            ">= 1.0 < 2",
            Scheme::SemVer,
            &["1.0.0", "1.9.9", "2.0.0-rc.1"],
        );
        no(">= 1.0 < 2", Scheme::SemVer, &["2.0.0", "0.9.0"]);
        yes(
            "<1.0 || >=2.0,<2.1 || 3.0",
            Scheme::Pep440,
            &["0.9", "2.0.5", "3.0.0"],
        );
        no(
            "<1.0 || >=2.0,<2.1 || 3.0",
            Scheme::Pep440,
            &["1.5", "2.1", "3.0.1"],
        );
        yes("!=1.2.3", Scheme::SemVer, &["1.2.4"]);
        no("=1.2.3", Scheme::SemVer, &["1.2.4"]);
        yes(
            "<3.0.11-1~deb12u2",
            Scheme::Debian,
            &["3.0.9-1", "3.0.11-1~deb12u1"],
        );
        no(
            "<3.0.11-1~deb12u2",
            Scheme::Debian,
            &["3.0.11-1", "3.0.13-1~deb12u1"],
        );
    }

    #[test]
    fn bad_ranges_name_what_is_wrong() {
        assert_eq!(Range::parse("  "), Err(RangeError::Empty));
        assert_eq!(
            Range::parse("<"),
            Err(RangeError::Constraint("<".to_owned()))
        );
        assert_eq!(
            Range::parse("<<1"),
            Err(RangeError::Constraint("<<1".to_owned()))
        );
        assert!(matches!(
            Range::parse("vers:/<1"),
            Err(RangeError::VersScheme(_))
        ));
        assert!(matches!(
            Range::parse("vers:pypi/<1|>=not a version!"),
            Err(RangeError::Constraint(_)) | Err(RangeError::VersOrder(_))
        ));
        // A version that cannot be read under the scheme is an error, not "not in range".
        let r = Range::parse("<2.0.0").unwrap();
        assert!(r.contains(Scheme::SemVer, "banana").is_err());
    }

    #[test]
    fn vers_uris_as_the_spec_evaluates_them() {
        // vers-spec examples.
        let any = Scheme::Generic;
        yes(
            "vers:npm/1.2.3|>=2.0.0|<5.0.0",
            any,
            &["1.2.3", "2.0.0", "4.9.9"],
        );
        no(
            "vers:npm/1.2.3|>=2.0.0|<5.0.0",
            any,
            &["1.2.4", "5.0.0", "1.0.0"],
        );
        yes(
            "vers:pypi/0.0.0|0.0.1|0.0.2|0.0.3|1.0|2.0pre1",
            any,
            &["0.0.2", "2.0pre1"],
        );
        no(
            "vers:pypi/0.0.0|0.0.1|0.0.2|0.0.3|1.0|2.0pre1",
            any,
            &["2.0", "0.0.4"],
        );
        yes("vers:maven/>=1.0.0-beta1|<=1.7.5|>=7.0.0-M1|<=7.0.7|>=7.1.0|<=7.1.2|>=8.0.0-M1|<=8.0.1", any, &["1.0.0", "7.1.1"]);
        no("vers:maven/>=1.0.0-beta1|<=1.7.5|>=7.0.0-M1|<=7.0.7|>=7.1.0|<=7.1.2|>=8.0.0-M1|<=8.0.1", any, &["1.8", "7.0.8", "8.0.2", "0.9"]);
        yes(
            "vers:deb/>=1:1.2.3~rc1|<1:1.2.4",
            any,
            &["1:1.2.3", "1:1.2.3~rc2"],
        );
        no(
            "vers:deb/>=1:1.2.3~rc1|<1:1.2.4",
            any,
            &["1.2.3", "1:1.2.4"],
        );
        yes("vers:gem/<1.0.0|>=2.0.0", any, &["0.9", "2.1"]);
        no("vers:gem/<1.0.0|>=2.0.0", any, &["1.5"]);
        yes("vers:npm/*", any, &["0.0.1"]);
        yes("vers:pypi/!=1.0", any, &["1.1"]);
        no("vers:pypi/!=1.0", any, &["1.0.0"]);
        // Written out of order: sorted first.
        yes("vers:npm/<5.0.0|>=2.0.0", any, &["3.0.0"]);
        no("vers:npm/<5.0.0|>=2.0.0", any, &["1.0.0"]);
        // A vers range uses its own scheme, whatever the package's.
        assert_eq!(
            Range::parse("vers:maven/<2.17.1").unwrap().own_scheme(),
            Some(Scheme::Maven)
        );
    }
}
