use super::*;
use crate::db::PullRow;

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn sbom_row(d: char, image: &str, provenance: &str, signer: &str) -> SbomRow {
    SbomRow {
        digest: digest(d),
        image: image.to_owned(),
        status: String::new(),
        provenance: provenance.to_owned(),
        signer: signer.to_owned(),
        format: String::new(),
        error: String::new(),
    }
}

fn cyclonedx(log4j: &str) -> Vec<u8> {
    format!(
        r#"{{"bomFormat":"CycloneDX","specVersion":"1.6","components":[
          {{"name":"log4j-core","version":"{log4j}","purl":"pkg:maven/org.apache.logging.log4j/log4j-core@{log4j}"}},
          {{"name":"conan-thing","version":"1.0","purl":"pkg:conan/conan-thing@1.0"}},
          {{"name":"oddball","version":"junk","purl":"pkg:pypi/oddball@junk"}}]}}"#
    )
    .into_bytes()
}

fn pull(d: char, image: &str, tag: &str, client: &str, pulls: i64, at: i64) -> PullRow {
    PullRow {
        day: 0,
        image: image.to_owned(),
        digest: digest(d),
        tag: tag.to_owned(),
        upstream: "registry.local".into(),
        rule: "company".into(),
        mode: "audit".into(),
        verdict: "verified".into(),
        admission: "served".into(),
        finding: "none".into(),
        client_addr: client.into(),
        user_agent: "containerd/2.0".into(),
        user_name: String::new(),
        reasons: "[]".into(),
        identities: "[]".into(),
        pulls,
        first_seen: at,
        last_seen: at,
    }
}

const LOG4SHELL: &str = r#"{"id": "GHSA-jfh8-c2jp-5v3q", "aliases": ["CVE-2021-44228"],
  "affected": [{"package": {"ecosystem": "Maven", "name": "org.apache.logging.log4j:log4j-core"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.13.0"}, {"fixed": "2.15.0"}]}]}]}"#;

#[tokio::test]
async fn answers_name_exactly_the_affected_images_with_pulls_and_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::Sqlite(
        crate::db::sqlite::Sqlite::open(dir.path().join("p.db"))
            .await
            .unwrap(),
    );
    let old = "registry.local/company/old";
    let new = "registry.local/company/new";
    record_sbom(
        &db,
        sbom_row('a', old, "signed", "ci@company"),
        sbom::parse(&cyclonedx("2.14.1")),
    )
    .await
    .unwrap();
    record_sbom(
        &db,
        sbom_row('b', new, "unsigned", ""),
        sbom::parse(&cyclonedx("2.17.1")),
    )
    .await
    .unwrap();
    record_sbom(
        &db,
        sbom_row('c', "registry.local/company/bare", "", ""),
        Err(sbom::SbomError::UnknownFormat),
    )
    .await
    .unwrap();
    db.put_sbom(
        SbomRow {
            status: "none".into(),
            ..sbom_row('d', "registry.local/company/nosbom", "", "")
        },
        Vec::new(),
    )
    .await
    .unwrap();
    db.add_pulls(vec![
        pull('a', old, "v1", "10.0.0.1", 3, 1_000),
        pull('a', old, "latest", "10.0.0.2", 1, 5_000),
        pull('b', new, "v2", "10.0.0.1", 2, 9_000_000),
    ])
    .await
    .unwrap();

    // By purl and range: only the old image.
    let r = Range::parse("<2.17.1").unwrap();
    let a = query(
        &db,
        "pkg:maven/org.apache.logging.log4j/log4j-core",
        Some(&r),
        &Scope::default(),
    )
    .await
    .unwrap();
    assert_eq!(a.entries.len(), 1, "{a}");
    let e = &a.entries[0];
    assert_eq!((e.image.as_str(), e.digest.clone()), (old, digest('a')));
    assert_eq!(e.tags, vec!["latest".to_owned(), "v1".to_owned()]);
    assert_eq!(
        (e.version.as_str(), e.range.as_deref()),
        ("2.14.1", Some("<2.17.1"))
    );
    assert_eq!((e.pulls, e.clients), (4, 2));
    assert_eq!((e.first_pulled, e.last_pulled), (Some(1_000), Some(5_000)));
    assert_eq!(
        (e.sbom_provenance.as_str(), e.sbom_signer.as_str()),
        ("signed", "ci@company")
    );
    assert!(e.exact);
    assert_eq!((a.unseen.no_sbom, a.unseen.unparseable_sbom), (1, 1));

    // By name, any version: both; since a later time: only the recently pulled one.
    let a = query(&db, "log4j-core", None, &Scope::default())
        .await
        .unwrap();
    assert_eq!(
        a.entries
            .iter()
            .map(|e| e.image.as_str())
            .collect::<Vec<_>>(),
        [new, old]
    );
    let since = Scope {
        since: 1_000_000,
        ..Scope::default()
    };
    let a = query(&db, "log4j-core", None, &since).await.unwrap();
    assert_eq!(
        a.entries
            .iter()
            .map(|e| e.image.as_str())
            .collect::<Vec<_>>(),
        [new]
    );

    // Scoped to a rule or an upstream the pulls were not made under: nothing.
    for scope in [
        Scope {
            rule: Some("company".into()),
            ..Scope::default()
        },
        Scope {
            upstream: Some("docker.io".into()),
            ..Scope::default()
        },
        Scope {
            image: Some(crate::policy::Pattern::new("registry.local/company/new").unwrap()),
            ..Scope::default()
        },
    ] {
        let a = query(&db, "log4j-core", None, &scope).await.unwrap();
        let images: Vec<&str> = a.entries.iter().map(|e| e.image.as_str()).collect();
        let expected: &[&str] = match (&scope.rule, &scope.upstream) {
            (Some(_), _) => &[new, old],
            (_, Some(_)) => &[],
            _ => &[new],
        };
        assert_eq!(images, expected, "{scope:?}");
    }

    // By advisory.
    let adv = Advisory::parse(LOG4SHELL.as_bytes()).unwrap();
    let a = affected(&db, &[adv], &Scope::default()).await.unwrap();
    assert_eq!(a.entries.len(), 1, "{a}");
    assert_eq!(a.entries[0].digest, digest('a'));
    assert_eq!(a.entries[0].range.as_deref(), Some(">=2.13.0,<2.15.0"));
    assert_eq!(
        a.entries[0].advisory.as_deref(),
        Some("GHSA-jfh8-c2jp-5v3q")
    );
    let text = a.to_string();
    assert!(
        text.contains("registry.local/company/old@sha256:aaaa"),
        "{text}"
    );
    assert!(
        text.contains("1 pulled digests with no SBOM, 1 with an unreadable SBOM"),
        "{text}"
    );

    // A package with no comparator is flagged, not passed off as exact.
    let r = Range::parse(">=0.5").unwrap();
    let a = query(&db, "pkg:conan/conan-thing", Some(&r), &Scope::default())
        .await
        .unwrap();
    assert_eq!(a.entries.len(), 2);
    assert!(a
        .entries
        .iter()
        .all(|e| !e.exact && e.scheme == Scheme::Generic));
    // A version the scheme cannot read is listed as not compared.
    let r = Range::parse("<3").unwrap();
    let a = query(
        &db,
        "pkg:maven/org.apache.logging.log4j/log4j-core",
        Some(&r),
        &Scope::default(),
    )
    .await;
    assert_eq!(a.unwrap().entries.len(), 2);
    assert!(matches!(
        query(&db, "pkg:", None, &Scope::default()).await,
        Err(QueryError::Purl(_))
    ));
}
