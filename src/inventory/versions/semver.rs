//! SemVer 2.0 precedence (semver.org §11), read leniently as SBOMs and advisories write it: a
//! leading `v` or `=` (Go modules always have the `v`), fewer than three parts (`1.2` is
//! `1.2.0`), build metadata ignored. Go's pseudo-versions are pre-releases and order as such.
//! NuGet's flavour allows a fourth part and compares pre-release labels case-blind.
//!
//! Hand-written rather than the `semver` crate: that crate refuses the partial and prefixed
//! versions SBOMs are full of, and precedence is all that is needed here.

use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flavour {
    SemVer,
    NuGet,
}

struct Parsed<'a> {
    core: Vec<u64>,
    pre: Vec<&'a str>,
}

fn parse(v: &str, flavour: Flavour) -> Result<Parsed<'_>, String> {
    let s = v.strip_prefix(['v', 'V', '=']).unwrap_or(v);
    let s = s.split_once('+').map_or(s, |(s, _build)| s);
    let (core, pre) = match s.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (s, None),
    };
    let max = if flavour == Flavour::NuGet { 4 } else { 3 };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() > max {
        return Err(format!("more than {max} numeric parts"));
    }
    let core = parts
        .iter()
        .map(|p| {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                Err(format!("{p:?} is not a number"))
            } else {
                p.parse::<u64>().map_err(|e| e.to_string())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let pre = match pre {
        None => Vec::new(),
        Some(p) => {
            let ids: Vec<&str> = p.split('.').collect();
            if ids.iter().any(|i| i.is_empty()) {
                return Err("an empty pre-release identifier".to_owned());
            }
            ids
        }
    };
    Ok(Parsed { core, pre })
}

pub(super) fn compare<'a>(
    a: &'a str,
    b: &'a str,
    flavour: Flavour,
) -> Result<Ordering, (&'a str, String)> {
    let pa = parse(a, flavour).map_err(|r| (a, r))?;
    let pb = parse(b, flavour).map_err(|r| (b, r))?;
    let n = pa.core.len().max(pb.core.len());
    for i in 0..n {
        let (x, y) = (
            pa.core.get(i).copied().unwrap_or(0),
            pb.core.get(i).copied().unwrap_or(0),
        );
        if x != y {
            return Ok(x.cmp(&y));
        }
    }
    // A version without pre-release outranks one with.
    match (pa.pre.is_empty(), pb.pre.is_empty()) {
        (true, true) => return Ok(Ordering::Equal),
        (true, false) => return Ok(Ordering::Greater),
        (false, true) => return Ok(Ordering::Less),
        (false, false) => {}
    }
    for (x, y) in pa.pre.iter().zip(&pb.pre) {
        let o = identifier(x, y, flavour);
        if o != Ordering::Equal {
            return Ok(o);
        }
    }
    Ok(pa.pre.len().cmp(&pb.pre.len()))
}

fn identifier(x: &str, y: &str, flavour: Flavour) -> Ordering {
    let numeric = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    match (numeric(x), numeric(y)) {
        (true, true) => {
            let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
            x.len().cmp(&y.len()).then_with(|| x.cmp(y))
        }
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) if flavour == Flavour::NuGet => {
            x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase())
        }
        (false, false) => x.cmp(y),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{assert_equal, assert_increasing, compare, Scheme};

    #[test]
    fn semver_precedence_as_the_spec_lists_it() {
        // semver.org §11 example, then core ordering.
        assert_increasing(
            Scheme::SemVer,
            &[
                "1.0.0-alpha",
                "1.0.0-alpha.1",
                "1.0.0-alpha.beta",
                "1.0.0-beta",
                "1.0.0-beta.2",
                "1.0.0-beta.11",
                "1.0.0-rc.1",
                "1.0.0",
                "1.0.1",
                "1.9.0",
                "1.10.0",
                "1.11.0",
                "2.0.0",
                "2.1.0",
                "2.1.1",
            ],
        );
        assert_equal(
            Scheme::SemVer,
            &[
                ("1.0.0+build.1", "1.0.0+build.2"),
                ("v1.2.3", "1.2.3"),
                ("1.2", "1.2.0"),
                ("=1", "1.0.0"),
            ],
        );
        assert!(compare(Scheme::SemVer, "1.2.3.4", "1").is_err());
        assert!(compare(Scheme::SemVer, "1.x", "1").is_err());
        assert!(compare(Scheme::SemVer, "1.0.0-", "1").is_err());
    }

    #[test]
    fn go_module_versions_with_pseudo_versions() {
        assert_increasing(
            Scheme::SemVer,
            &[
                "v0.0.0-20191109021931-daa7c04131f5",
                "v0.0.0-20210101000000-abcdefabcdef",
                "v0.1.0",
                "v1.2.3-pre",
                "v1.2.3",
                "v1.2.4-0.20220101000000-abcdefabcdef",
                "v2.0.0+incompatible",
            ],
        );
    }

    #[test]
    fn nuget_four_parts_and_case_blind_labels() {
        assert_increasing(
            Scheme::NuGet,
            &[
                "1.0.0-alpha",
                "1.0.0-Beta",
                "1.0.0-rc.1",
                "1.0.0",
                "1.0.0.1",
                "1.0.1",
                "4.1.0.0",
            ],
        );
        assert_equal(
            Scheme::NuGet,
            &[("1.0.0-BETA", "1.0.0-beta"), ("1.0", "1.0.0.0")],
        );
    }
}
