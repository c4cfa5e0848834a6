//! OSV advisories (ossf.github.io/osv-schema): the fields the inventory uses (`id`, `modified`,
//! `withdrawn`, `aliases`, `summary`, `affected[]` with `package`, `ranges[]` of events and
//! `versions[]`), and whether an advisory affects a package an SBOM lists.
//!
//! Matching follows the schema's evaluation: a version is affected when it is listed in
//! `versions`, or when a `SEMVER` or `ECOSYSTEM` range's events, sorted by version, leave it
//! affected (`introduced` ≤ v, not `fixed` ≤ v, not `last_affected` < v) and it is below one of
//! the range's `limit`s if it has any. `GIT` ranges name commits, which SBOMs do not carry: they
//! are skipped. Packages are matched by purl type and the ecosystem's name form (Maven
//! `group:artifact`, npm `@scope/name`, Go module paths), distro packages also by the purl's
//! `upstream` (source package) qualifier, since distro advisories name source packages, and
//! with the release of `Debian:12`, `Alpine:v3.19` agreeing with the purl's `distro`.

use std::cmp::Ordering;

use serde::Deserialize;

use super::sbom::Package;
use super::versions::{compare, Scheme, VersionError};

#[derive(Debug, thiserror::Error)]
pub enum OsvError {
    #[error("not an OSV advisory: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the advisory has no id")]
    NoId,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Advisory {
    pub id: String,
    #[serde(default)]
    pub modified: String,
    pub withdrawn: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub affected: Vec<Affected>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Affected {
    pub package: Option<OsvPackage>,
    #[serde(default)]
    pub ranges: Vec<OsvRange>,
    #[serde(default)]
    pub versions: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OsvPackage {
    pub ecosystem: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OsvRange {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Event {
    pub introduced: Option<String>,
    pub fixed: Option<String>,
    pub last_affected: Option<String>,
    pub limit: Option<String>,
}

/// How a package version stands against an advisory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Affected; `range` says which range or list matched, `scheme` by whose rules.
    Affected {
        range: String,
        scheme: Scheme,
    },
    NotAffected,
    /// The package is one the advisory names, but its version cannot be compared (no version
    /// in the SBOM, or one the scheme cannot read).
    Unknown {
        reason: String,
    },
}

impl Advisory {
    pub fn parse(bytes: &[u8]) -> Result<Advisory, OsvError> {
        let a: Advisory = serde_json::from_slice(bytes)?;
        if a.id.trim().is_empty() {
            return Err(OsvError::NoId);
        }
        Ok(a)
    }

    /// The id and every alias (CVE, GHSA, ...).
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.id.as_str()).chain(self.aliases.iter().map(String::as_str))
    }

    /// The (purl type, OSV name) pairs the advisory names, for looking packages up.
    pub fn packages(&self) -> Vec<(&'static str, String)> {
        let mut v: Vec<(&'static str, String)> = self
            .affected
            .iter()
            .filter_map(|a| a.package.as_ref())
            .map(|p| {
                (
                    Scheme::of_osv_ecosystem(&p.ecosystem).1,
                    normal_name(&p.ecosystem, &p.name),
                )
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// How `package` stands against this advisory: the first affected entry that names it and
    /// affects its version decides; otherwise not affected, or unknown if some entry named it
    /// but could not compare.
    pub fn check(&self, package: &Package) -> Verdict {
        self.check_named(package, &osv_name(package))
    }

    /// [`Advisory::check`] for a package whose [`osv_name`] is already known (the inventory
    /// stores it with each package), so that it is not derived again from the purl for each
    /// entry of the advisory.
    pub fn check_named(&self, package: &Package, osv_name: &str) -> Verdict {
        let mut unknown = None;
        for a in &self.affected {
            let Some(p) = &a.package else { continue };
            if !names(p, package, osv_name) {
                continue;
            }
            match a.check(&p.ecosystem, package.version.as_deref()) {
                Verdict::NotAffected => {}
                v @ Verdict::Affected { .. } => return v,
                v @ Verdict::Unknown { .. } => unknown = Some(v),
            }
        }
        unknown.unwrap_or(Verdict::NotAffected)
    }
}

/// An OSV name as the inventory compares it: PyPI names normalised (PEP 503), others as written.
fn normal_name(ecosystem: &str, name: &str) -> String {
    if ecosystem == "PyPI" {
        name.to_ascii_lowercase().replace(['_', '.'], "-")
    } else {
        name.to_owned()
    }
}

/// Whether `name`, as an advisory of `ecosystem` writes it, is `normal` (a name in its
/// [`normal_name`] form): [`normal_name`] without building the string, since an answer asks it
/// for every package found times every entry of the advisory.
fn is_named(ecosystem: &str, name: &str, normal: &str) -> bool {
    if ecosystem == "PyPI" {
        let normalised = name.chars().map(|c| match c {
            '_' | '.' => '-',
            c => c.to_ascii_lowercase(),
        });
        normalised.eq(normal.chars())
    } else {
        name == normal
    }
}

/// The name an OSV advisory would give a package with this purl.
pub fn osv_name(package: &Package) -> String {
    let Some(purl) = package
        .purl
        .as_deref()
        .and_then(|p| p.parse::<packageurl::PackageUrl>().ok())
    else {
        return package.name.clone();
    };
    match (purl.ty(), purl.namespace()) {
        ("maven", Some(ns)) => format!("{ns}:{}", purl.name()),
        ("npm" | "golang" | "composer" | "swift", Some(ns)) => format!("{ns}/{}", purl.name()),
        ("pypi", _) => normal_name("PyPI", purl.name()),
        _ => purl.name().to_owned(),
    }
}

/// Whether an advisory's package is this SBOM package (whose OSV name is `osv_name`).
fn names(p: &OsvPackage, package: &Package, osv_name: &str) -> bool {
    let (_, ty) = Scheme::of_osv_ecosystem(&p.ecosystem);
    if ty.is_empty() || package.ecosystem.as_deref() != Some(ty) {
        return false;
    }
    let distro = matches!(ty, "deb" | "apk" | "rpm");
    let by_name = is_named(&p.ecosystem, &p.name, osv_name)
        || (distro && package.upstream.as_deref() == Some(p.name.as_str()));
    by_name && release_agrees(&p.ecosystem, package.distro.as_deref())
}

/// `Debian:12` and `debian-12`, `Alpine:v3.19` and `alpine-3.19.1`; an advisory or a package
/// without a release agrees with any.
fn release_agrees(ecosystem: &str, distro: Option<&str>) -> bool {
    let (Some((_, release)), Some(distro)) = (ecosystem.split_once(':'), distro) else {
        return true;
    };
    let release = release.trim().trim_start_matches('v');
    let distro_release = distro.rsplit_once('-').map_or(distro, |(_, r)| r);
    distro_release == release || distro_release.starts_with(&format!("{release}."))
}

impl Affected {
    fn check(&self, ecosystem: &str, version: Option<&str>) -> Verdict {
        let Some(version) = version.filter(|v| !v.is_empty()) else {
            return Verdict::Unknown {
                reason: "the SBOM gives no version".to_owned(),
            };
        };
        let (eco_scheme, _) = Scheme::of_osv_ecosystem(ecosystem);
        if self.versions.iter().any(|v| v == version) {
            return Verdict::Affected {
                range: format!("listed version {version}"),
                scheme: eco_scheme,
            };
        }
        let mut unknown = None;
        for r in &self.ranges {
            let scheme = match r.kind.as_str() {
                "SEMVER" => Scheme::SemVer,
                "ECOSYSTEM" => eco_scheme,
                _ => continue,
            };
            match r.affects(scheme, version) {
                Ok(Some(range)) => return Verdict::Affected { range, scheme },
                Ok(None) => {}
                Err(e) => unknown = Some(e.to_string()),
            }
        }
        match unknown {
            Some(reason) => Verdict::Unknown { reason },
            None => Verdict::NotAffected,
        }
    }
}

impl OsvRange {
    /// `Some(the matching interval)` when `v` is affected by this range's events.
    fn affects(&self, scheme: Scheme, v: &str) -> Result<Option<String>, VersionError> {
        #[derive(Clone, Copy, PartialEq)]
        enum K {
            Introduced,
            Fixed,
            LastAffected,
        }
        let mut events: Vec<(K, &str)> = Vec::new();
        let mut limits: Vec<&str> = Vec::new();
        for e in &self.events {
            if let Some(x) = &e.introduced {
                events.push((K::Introduced, x));
            }
            if let Some(x) = &e.fixed {
                events.push((K::Fixed, x));
            }
            if let Some(x) = &e.last_affected {
                events.push((K::LastAffected, x));
            }
            if let Some(x) = &e.limit {
                limits.push(x);
            }
        }
        // Sorted by version, `0` (the beginning of time) first.
        let mut err = None;
        events.sort_by(|a, b| match (a.1, b.1) {
            ("0", "0") => Ordering::Equal,
            ("0", _) => Ordering::Less,
            (_, "0") => Ordering::Greater,
            (x, y) => compare(scheme, x, y).unwrap_or_else(|e| {
                err.get_or_insert(e);
                Ordering::Equal
            }),
        });
        if let Some(e) = err {
            return Err(e);
        }
        let at_least = |x: &str| -> Result<bool, VersionError> {
            Ok(x == "0" || compare(scheme, v, x)? != Ordering::Less)
        };
        let mut affected = false;
        let mut lower = "0";
        for (kind, x) in &events {
            match kind {
                K::Introduced if at_least(x)? => {
                    affected = true;
                    lower = x;
                }
                K::Fixed if at_least(x)? => affected = false,
                K::LastAffected if compare(scheme, v, x)? == Ordering::Greater => affected = false,
                _ => {}
            }
        }
        if !affected {
            return Ok(None);
        }
        if !limits.is_empty() {
            let mut below = false;
            for l in &limits {
                if *l == "*" || compare(scheme, v, l)? == Ordering::Less {
                    below = true;
                }
            }
            if !below {
                return Ok(None);
            }
        }
        // The interval: from the introduction that applies to the next fix or last version.
        let mut upper = String::new();
        let mut seen_lower = false;
        for (kind, x) in &events {
            if *kind == K::Introduced && *x == lower {
                seen_lower = true;
                continue;
            }
            if seen_lower {
                match kind {
                    K::Fixed => upper = format!(",<{x}"),
                    K::LastAffected => upper = format!(",<={x}"),
                    K::Introduced => continue,
                }
                break;
            }
        }
        Ok(Some(format!(">={lower}{upper}")))
    }
}

#[cfg(test)]
mod tests;
