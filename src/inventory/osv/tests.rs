use super::*;
use crate::inventory::sbom;

/// The package the first entry of an SBOM with this purl and version gives.
fn pkg(purl: &str) -> Package {
    let doc = format!(
        r#"{{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{{"name":"x","purl":"{purl}"}}]}}"#
    );
    sbom::parse(doc.as_bytes()).unwrap().packages.remove(0)
}

const LOG4SHELL: &str = r#"{
  "schema_version": "1.4.0", "id": "GHSA-jfh8-c2jp-5v3q", "modified": "2024-01-01T00:00:00Z",
  "aliases": ["CVE-2021-44228"], "summary": "Remote code injection in Log4j",
  "affected": [
    {"package": {"ecosystem": "Maven", "name": "org.apache.logging.log4j:log4j-core",
                 "purl": "pkg:maven/org.apache.logging.log4j/log4j-core"},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.13.0"}, {"fixed": "2.15.0"}]},
                {"type": "ECOSYSTEM", "events": [{"introduced": "2.0-beta9"}, {"fixed": "2.3.1"},
                                                 {"introduced": "2.4"}, {"fixed": "2.12.2"}]}],
     "database_specific": {"source": "x"}}
  ]}"#;

#[test]
fn log4shell_affects_exactly_the_vulnerable_versions() {
    let a = Advisory::parse(LOG4SHELL.as_bytes()).unwrap();
    assert_eq!(
        a.ids().collect::<Vec<_>>(),
        ["GHSA-jfh8-c2jp-5v3q", "CVE-2021-44228"]
    );
    assert_eq!(
        a.packages(),
        vec![("maven", "org.apache.logging.log4j:log4j-core".to_owned())]
    );
    for (v, range) in [
        ("2.14.1", ">=2.13.0,<2.15.0"),
        ("2.0-beta9", ">=2.0-beta9,<2.3.1"),
        ("2.3", ">=2.0-beta9,<2.3.1"),
        ("2.11.0", ">=2.4,<2.12.2"),
    ] {
        let p = pkg(&format!(
            "pkg:maven/org.apache.logging.log4j/log4j-core@{v}"
        ));
        assert_eq!(
            a.check(&p),
            Verdict::Affected {
                range: range.to_owned(),
                scheme: Scheme::Maven
            },
            "{v}"
        );
    }
    for v in ["2.0-beta8", "2.3.1", "2.3.2", "2.12.2", "2.15.0", "2.17.1"] {
        let p = pkg(&format!(
            "pkg:maven/org.apache.logging.log4j/log4j-core@{v}"
        ));
        assert_eq!(a.check(&p), Verdict::NotAffected, "{v}");
    }
    // Another artifact of the same group, or another ecosystem's package of the same name.
    assert_eq!(
        a.check(&pkg("pkg:maven/org.apache.logging.log4j/log4j-api@2.14.1")),
        Verdict::NotAffected
    );
    assert_eq!(
        a.check(&pkg("pkg:npm/log4j-core@2.14.1")),
        Verdict::NotAffected
    );
    // No version in the SBOM: named, but unknown.
    assert!(matches!(
        a.check(&pkg("pkg:maven/org.apache.logging.log4j/log4j-core")),
        Verdict::Unknown { .. }
    ));
}

#[test]
fn last_affected_limit_and_version_lists() {
    let a = Advisory::parse(
        br#"{"id": "OSV-TEST-1", "affected": [
          {"package": {"ecosystem": "npm", "name": "@scope/pkg"},
           "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"last_affected": "1.2.3"}]},
                      {"type": "SEMVER", "events": [{"introduced": "2.0.0"}, {"limit": "2.5.0"}]},
                      {"type": "GIT", "repo": "https://x", "events": [{"introduced": "abc"}]}],
           "versions": ["3.0.0-weird"]}]}"#,
    )
    .unwrap();
    let check = |v: &str| a.check(&pkg(&format!("pkg:npm/%40scope/pkg@{v}")));
    assert!(matches!(check("0.1.0"), Verdict::Affected { range, .. } if range == ">=0,<=1.2.3"));
    assert!(matches!(check("1.2.3"), Verdict::Affected { .. }));
    assert_eq!(check("1.2.4"), Verdict::NotAffected);
    assert!(matches!(check("2.4.9"), Verdict::Affected { range, .. } if range == ">=2.0.0"));
    assert_eq!(check("2.5.0"), Verdict::NotAffected);
    assert!(
        matches!(check("3.0.0-weird"), Verdict::Affected { range, .. } if range == "listed version 3.0.0-weird")
    );
    assert_eq!(check("3.0.0"), Verdict::NotAffected);
    assert!(matches!(check("not.a.version"), Verdict::Unknown { .. }));
}

#[test]
fn distro_advisories_match_source_packages_of_their_release() {
    let a = Advisory::parse(
        br#"{"id": "DSA-5000-1", "aliases": ["CVE-2023-0001"], "affected": [
          {"package": {"ecosystem": "Debian:12", "name": "openssl"},
           "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.13-1~deb12u1"}]}]}]}"#,
    )
    .unwrap();
    let affected =
        pkg("pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&upstream=openssl&distro=debian-12");
    assert!(matches!(
        a.check(&affected),
        Verdict::Affected {
            scheme: Scheme::Debian,
            ..
        }
    ));
    let fixed = pkg("pkg:deb/debian/libssl3@3.0.13-1~deb12u1?upstream=openssl&distro=debian-12");
    assert_eq!(a.check(&fixed), Verdict::NotAffected);
    let other_release =
        pkg("pkg:deb/debian/libssl3@3.0.11-1~deb12u2?upstream=openssl&distro=debian-11");
    assert_eq!(a.check(&other_release), Verdict::NotAffected);
    let binary_named = pkg("pkg:deb/debian/openssl@3.0.11-1~deb12u2?distro=debian-12");
    assert!(matches!(a.check(&binary_named), Verdict::Affected { .. }));

    let alpine = Advisory::parse(
        br#"{"id": "ALPINE-1", "affected": [{"package": {"ecosystem": "Alpine:v3.19", "name": "musl"},
          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.2.4_git20230717-r5"}]}]}]}"#,
    )
    .unwrap();
    let musl = pkg("pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.19.1");
    assert!(matches!(
        alpine.check(&musl),
        Verdict::Affected {
            scheme: Scheme::Apk,
            ..
        }
    ));
}

#[test]
fn pypi_names_are_normalised() {
    let a = Advisory::parse(
        br#"{"id": "PYSEC-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "Zope.Interface"},
          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "5.0"}]}]}]}"#,
    )
    .unwrap();
    assert!(matches!(
        a.check(&pkg("pkg:pypi/zope-interface@4.7.1")),
        Verdict::Affected {
            scheme: Scheme::Pep440,
            ..
        }
    ));
    assert_eq!(a.packages(), vec![("pypi", "zope-interface".to_owned())]);
    // The stored OSV name gives the same answer as the one derived from the purl.
    let p = pkg("pkg:pypi/zope-interface@4.7.1");
    assert_eq!(a.check_named(&p, "zope-interface"), a.check(&p));
    assert_eq!(a.check_named(&p, "zope-interfaces"), Verdict::NotAffected);
}

#[test]
fn names_compare_as_their_normal_forms() {
    for (ecosystem, name) in [
        ("PyPI", "Zope.Interface"),
        ("PyPI", "typing_extensions"),
        ("PyPI", "A.b_C-d"),
        ("Maven", "org.Apache:Log4j_core"),
        ("npm", "@scope/Pkg.js"),
    ] {
        let normal = normal_name(ecosystem, name);
        assert!(is_named(ecosystem, name, &normal), "{ecosystem} {name}");
        assert!(!is_named(ecosystem, name, &format!("{normal}x")));
        assert!(!is_named(ecosystem, name, &normal[1..]));
    }
}

#[test]
fn documents_that_are_not_advisories() {
    assert!(matches!(Advisory::parse(b"{}"), Err(OsvError::Json(_))));
    assert!(matches!(
        Advisory::parse(br#"{"id": " "}"#),
        Err(OsvError::NoId)
    ));
    assert!(matches!(
        Advisory::parse(br#"{"id": "X", "affected": {"a": 1}}"#),
        Err(OsvError::Json(_))
    ));
}
