//! Version ordering and range matching, per ecosystem, in one place: every comparison the
//! inventory makes (a range given on the command line, an OSV advisory's events) goes through
//! [`compare`] with the [`Scheme`] of the package's ecosystem.
//!
//! Schemes: SemVer (npm, cargo, golang with its `v`), NuGet (SemVer with four parts, case-blind
//! pre-releases), Maven (`ComparableVersion`), PEP 440 (`pep440_rs`), Debian (policy §5.6.12),
//! RPM (`rpmvercmp`, `~` and `^`), Alpine apk, RubyGems (`Gem::Version`). An ecosystem with none
//! of these gets [`Scheme::Generic`], whose answers are flagged ([`Scheme::is_exact`] false),
//! never passed off as exact. Ranges ([`range`]): `<2.17.1`, `>=2.0.0,<2.17.1`, `||`
//! alternatives and `vers:` URIs (the vers-spec algorithm).

mod apk;
mod debian;
mod generic;
mod maven;
pub mod range;
mod rpm;
mod rubygems;
mod semver;

use std::cmp::Ordering;
use std::str::FromStr;

pub use range::{Range, RangeError};

/// How an ecosystem orders its versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    SemVer,
    NuGet,
    Maven,
    Pep440,
    Debian,
    Rpm,
    Apk,
    RubyGems,
    /// No comparator for the ecosystem: digits and letters compared in runs. Flagged.
    Generic,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{version:?} is not a {} version: {reason}", scheme.as_str())]
pub struct VersionError {
    pub scheme: Scheme,
    pub version: String,
    pub reason: String,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::SemVer => "semver",
            Scheme::NuGet => "nuget",
            Scheme::Maven => "maven",
            Scheme::Pep440 => "pep440",
            Scheme::Debian => "debian",
            Scheme::Rpm => "rpm",
            Scheme::Apk => "apk",
            Scheme::RubyGems => "rubygems",
            Scheme::Generic => "generic",
        }
    }

    /// Whether answers under this scheme follow the ecosystem's own rules (false: the generic
    /// fallback, which an answer must flag).
    pub fn is_exact(self) -> bool {
        self != Scheme::Generic
    }

    /// The scheme of a purl type (`npm`, `deb`, ...); `Generic` for types with no comparator.
    pub fn of_purl_type(ty: &str) -> Scheme {
        match ty.to_ascii_lowercase().as_str() {
            "npm" | "cargo" | "golang" | "semver" | "hex" | "swift" | "composer" | "pub" => {
                Scheme::SemVer
            }
            "nuget" => Scheme::NuGet,
            "maven" => Scheme::Maven,
            "pypi" => Scheme::Pep440,
            "deb" | "debian" => Scheme::Debian,
            "rpm" => Scheme::Rpm,
            "apk" | "alpine" => Scheme::Apk,
            "gem" => Scheme::RubyGems,
            _ => Scheme::Generic,
        }
    }

    /// The scheme of a `vers:` URI's versioning scheme (vers-spec names purl types, plus
    /// `semver`, `alpine` and `generic`).
    pub fn of_vers(name: &str) -> Scheme {
        Scheme::of_purl_type(name)
    }

    /// The scheme and the purl type of an OSV ecosystem (`npm`, `crates.io`, `Debian:12`,
    /// `Alpine:v3.19`, ...); the release suffix after `:` does not change the scheme.
    pub fn of_osv_ecosystem(ecosystem: &str) -> (Scheme, &'static str) {
        let base = ecosystem.split(':').next().unwrap_or("").trim();
        match base {
            "npm" => (Scheme::SemVer, "npm"),
            "crates.io" => (Scheme::SemVer, "cargo"),
            "Go" => (Scheme::SemVer, "golang"),
            "Hex" => (Scheme::SemVer, "hex"),
            "Packagist" => (Scheme::SemVer, "composer"),
            "Pub" => (Scheme::SemVer, "pub"),
            "SwiftURL" => (Scheme::SemVer, "swift"),
            "NuGet" => (Scheme::NuGet, "nuget"),
            "Maven" => (Scheme::Maven, "maven"),
            "PyPI" => (Scheme::Pep440, "pypi"),
            "RubyGems" => (Scheme::RubyGems, "gem"),
            "Debian" | "Ubuntu" => (Scheme::Debian, "deb"),
            "Alpine" | "Wolfi" | "Chainguard" => (Scheme::Apk, "apk"),
            "Red Hat" | "AlmaLinux" | "Rocky Linux" | "openSUSE" | "SUSE" | "Mageia"
            | "openEuler" | "Azure Linux" => (Scheme::Rpm, "rpm"),
            _ => (Scheme::Generic, ""),
        }
    }
}

/// Orders two versions under `scheme`.
pub fn compare(scheme: Scheme, a: &str, b: &str) -> Result<Ordering, VersionError> {
    let err = |version: &str, reason: String| VersionError {
        scheme,
        version: version.to_owned(),
        reason,
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() || b.is_empty() {
        let v = if a.is_empty() { a } else { b };
        return Err(err(v, "empty".to_owned()));
    }
    match scheme {
        Scheme::SemVer => {
            semver::compare(a, b, semver::Flavour::SemVer).map_err(|(v, r)| err(v, r))
        }
        Scheme::NuGet => semver::compare(a, b, semver::Flavour::NuGet).map_err(|(v, r)| err(v, r)),
        Scheme::Pep440 => {
            let parse =
                |v: &str| pep440_rs::Version::from_str(v).map_err(|e| err(v, e.to_string()));
            Ok(parse(a)?.cmp(&parse(b)?))
        }
        Scheme::Maven => Ok(maven::compare(a, b)),
        Scheme::Debian => debian::compare(a, b).map_err(|(v, r)| err(v, r)),
        Scheme::Rpm => Ok(rpm::compare_evr(a, b)),
        Scheme::Apk => apk::compare(a, b).map_err(|(v, r)| err(v, r)),
        Scheme::RubyGems => rubygems::compare(a, b).map_err(|(v, r)| err(v, r)),
        Scheme::Generic => Ok(generic::compare(a, b)),
    }
}

/// Asserts that `table` is strictly increasing under `scheme` (every pair, both ways).
#[cfg(test)]
pub(crate) fn assert_increasing(scheme: Scheme, table: &[&str]) {
    for (i, a) in table.iter().enumerate() {
        for (j, b) in table.iter().enumerate() {
            let got = compare(scheme, a, b).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(got, i.cmp(&j), "{scheme:?}: {a} vs {b}");
        }
    }
}

/// Asserts that each pair compares equal under `scheme`.
#[cfg(test)]
pub(crate) fn assert_equal(scheme: Scheme, pairs: &[(&str, &str)]) {
    for (a, b) in pairs {
        assert_eq!(
            compare(scheme, a, b).unwrap(),
            Ordering::Equal,
            "{scheme:?}: {a} = {b}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pep440_orders_as_the_spec_lists() {
        // PEP 440, "Summary of permitted suffixes and relative ordering".
        assert_increasing(
            Scheme::Pep440,
            &[
                "1.dev0",
                "1.0.dev456",
                "1.0a1",
                "1.0a2.dev456",
                "1.0a12.dev456",
                "1.0a12",
                "1.0b1.dev456",
                "1.0b2",
                "1.0b2.post345.dev456",
                "1.0b2.post345",
                "1.0rc1.dev456",
                "1.0rc1",
                "1.0",
                "1.0+abc.5",
                "1.0+abc.7",
                "1.0+5",
                "1.0.post456.dev34",
                "1.0.post456",
                "1.0.15",
                "1.1.dev1",
                "1!0.5",
            ],
        );
        assert_equal(
            Scheme::Pep440,
            &[("1.0", "1.0.0"), ("1.0RC1", "1.0rc1"), ("v2.0", "2.0")],
        );
        let e = compare(Scheme::Pep440, "1.0", "not a version").unwrap_err();
        assert_eq!(e.version, "not a version");
    }

    #[test]
    fn ecosystems_map_to_schemes() {
        assert_eq!(Scheme::of_purl_type("npm"), Scheme::SemVer);
        assert_eq!(Scheme::of_purl_type("deb"), Scheme::Debian);
        assert_eq!(Scheme::of_purl_type("conan"), Scheme::Generic);
        assert!(!Scheme::of_purl_type("conan").is_exact());
        assert_eq!(
            Scheme::of_osv_ecosystem("Debian:12"),
            (Scheme::Debian, "deb")
        );
        assert_eq!(
            Scheme::of_osv_ecosystem("Alpine:v3.19"),
            (Scheme::Apk, "apk")
        );
        assert_eq!(
            Scheme::of_osv_ecosystem("crates.io"),
            (Scheme::SemVer, "cargo")
        );
        assert_eq!(
            Scheme::of_osv_ecosystem("Rocky Linux:9"),
            (Scheme::Rpm, "rpm")
        );
        assert_eq!(Scheme::of_osv_ecosystem("GIT").0, Scheme::Generic);
    }

    #[test]
    fn the_generic_fallback_orders_digit_runs_numerically() {
        assert_increasing(
            Scheme::Generic,
            &["1.2", "1.2.1", "1.10", "2.0a", "2.0b", "10"],
        );
    }
}
