//! End-to-end tests of the inventory's storage and answers through the real binary: SBOM rows
//! recorded for two digests of one image (and one with no SBOM, one unreadable), their pulls in
//! the ledger, an OSV advisory imported with `portcullis advisories import`, then
//! `portcullis inventory affected` and `inventory query` name exactly the affected digest with
//! its pulls and provenance, on the SQLite default and on a real PostgreSQL (the ledger tests'
//! server). The SBOMs are written here, not yet made by syft, and recorded through the library,
//! not yet ingested from pulls.

use std::path::Path;
use std::process::Command;

use portcullis::config::Config;
use portcullis::db::inventory::SbomRow;
use portcullis::db::{Database, PullRow};
use portcullis::inventory::{query::record_sbom, sbom};
use serde_json::Value;

use crate::common::write_config;
use crate::ledger::Postgres;

const IMAGE: &str = "registry.local/company/api";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn spdx(log4j: &str) -> Vec<u8> {
    format!(
        r#"{{"spdxVersion":"SPDX-2.3","packages":[{{"name":"log4j-core","versionInfo":"{log4j}",
          "externalRefs":[{{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl",
          "referenceLocator":"pkg:maven/org.apache.logging.log4j/log4j-core@{log4j}"}}]}}]}}"#
    )
    .into_bytes()
}

fn row(d: char, provenance: &str, signer: &str) -> SbomRow {
    SbomRow {
        digest: digest(d),
        image: IMAGE.into(),
        status: String::new(),
        provenance: provenance.into(),
        signer: signer.into(),
        format: String::new(),
        error: String::new(),
    }
}

fn pull(d: char, tag: &str, pulls: i64) -> PullRow {
    let now = portcullis::db::now_ms();
    PullRow {
        day: 0,
        image: IMAGE.into(),
        digest: digest(d),
        tag: tag.into(),
        upstream: "registry.local".into(),
        rule: "company".into(),
        mode: "audit".into(),
        verdict: "verified".into(),
        admission: "served".into(),
        finding: "none".into(),
        client_addr: "10.1.2.3".into(),
        user_agent: "containerd/2.0".into(),
        user_name: String::new(),
        reasons: "[]".into(),
        identities: "[]".into(),
        pulls,
        first_seen: now,
        last_seen: now,
    }
}

fn portcullis(args: &[&str], config: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "portcullis {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn digests(answer: &Value) -> Vec<String> {
    answer["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["digest"].as_str().unwrap().to_owned())
        .collect()
}

async fn scenario(dir: &Path, database_yaml: &str) {
    let config = write_config(
        dir,
        "registry.local",
        "  registry.local: { url: \"http://127.0.0.1:9\" }",
        database_yaml,
    );
    let loaded = Config::load(Some(&config)).unwrap();
    let db = Database::open(&loaded.database).await.unwrap();
    record_sbom(
        &db,
        row(
            'a',
            "signed",
            "https://github.com/company/api/.github/workflows/release.yml@refs/heads/main",
        ),
        sbom::parse(&spdx("2.14.1")),
    )
    .await
    .unwrap();
    record_sbom(&db, row('b', "unsigned", ""), sbom::parse(&spdx("2.17.1")))
        .await
        .unwrap();
    record_sbom(
        &db,
        row('c', "unsigned", ""),
        sbom::parse(b"{\"bomFormat\": 7}"),
    )
    .await
    .unwrap();
    db.add_pulls(vec![pull('a', "v1", 3), pull('b', "v2", 1)])
        .await
        .unwrap();
    drop(db);

    let osv = dir.join("osv");
    std::fs::create_dir_all(&osv).unwrap();
    std::fs::write(
        osv.join("GHSA-jfh8-c2jp-5v3q.json"),
        r#"{"id": "GHSA-jfh8-c2jp-5v3q", "aliases": ["CVE-2021-44228"],
          "affected": [{"package": {"ecosystem": "Maven", "name": "org.apache.logging.log4j:log4j-core"},
          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.13.0"}, {"fixed": "2.15.0"}]}]}]}"#,
    )
    .unwrap();
    let imported = portcullis(
        &["advisories", "import", osv.to_str().unwrap(), "--json"],
        &config,
    );
    assert_eq!(imported["imported"], 1);

    let answer = portcullis(
        &["inventory", "affected", "--cve", "CVE-2021-44228", "--json"],
        &config,
    );
    assert_eq!(digests(&answer), [digest('a')], "{answer:#}");
    let e = &answer["entries"][0];
    assert_eq!(e["image"], IMAGE);
    assert_eq!(e["version"], "2.14.1");
    assert_eq!(e["range"], ">=2.13.0,<2.15.0");
    assert_eq!(e["tags"], serde_json::json!(["v1"]));
    assert_eq!(
        (e["pulls"].as_i64(), e["clients"].as_i64()),
        (Some(3), Some(1))
    );
    assert_eq!(e["sbom_provenance"], "signed");
    assert_eq!(answer["unseen"]["unparseable_sbom"], 1);

    let answer = portcullis(
        &[
            "inventory",
            "query",
            "--purl",
            "pkg:maven/org.apache.logging.log4j/log4j-core",
            "--range",
            "<2.17.1",
            "--since",
            "1d",
            "--json",
        ],
        &config,
    );
    assert_eq!(digests(&answer), [digest('a')], "{answer:#}");
    let answer = portcullis(
        &["inventory", "query", "--name", "log4j-core", "--json"],
        &config,
    );
    assert_eq!(digests(&answer), [digest('a'), digest('b')], "{answer:#}");
    let answer = portcullis(
        &[
            "inventory",
            "affected",
            "--osv",
            osv.join("GHSA-jfh8-c2jp-5v3q.json").to_str().unwrap(),
            "--json",
        ],
        &config,
    );
    assert_eq!(digests(&answer), [digest('a')], "{answer:#}");
}

#[tokio::test]
async fn inventory_answers_on_the_sqlite_default() {
    let tmp = tempfile::tempdir().unwrap();
    scenario(tmp.path(), "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_answers_on_postgresql() {
    let Some(pg) = Postgres::get() else {
        return;
    };
    let url = pg.database("inventory").await;
    let tmp = tempfile::tempdir().unwrap();
    scenario(tmp.path(), &format!("database: {{ url: \"{url}\" }}\n")).await;
}

/// A package as an SBOM of `version` lists it, for the migration test.
fn log4j(version: &str, name: &str) -> portcullis::db::inventory::PackageRow {
    portcullis::db::inventory::PackageRow {
        key: "pkg:maven/org.apache.logging.log4j/log4j-core".into(),
        version: version.into(),
        purl: format!("pkg:maven/org.apache.logging.log4j/log4j-core@{version}"),
        keyed: "purl".into(),
        ecosystem: "maven".into(),
        name: name.into(),
        osv_name: "org.apache.logging.log4j:log4j-core".into(),
        upstream: String::new(),
        distro: "é".into(),
    }
}

/// A PostgreSQL database at schema 6, its packages in the old one-row-per-digest table, opened
/// by this version: migration 7 stores each distinct package once, every SBOM still lists its
/// packages, and its fingerprints (computed by the server) are those of later ingests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_7_moves_the_packages_on_postgresql() {
    use portcullis::db::inventory::PackageLookup;
    let Some(pg) = Postgres::get() else {
        return;
    };
    let (url, client) = pg.database_at("migration", 6).await;
    for (d, packages) in [
        ('a', vec![log4j("2.14.1", "log4j-core")]),
        ('b', vec![log4j("2.14.1", "log4j-core")]),
        (
            'c',
            vec![log4j("2.14.1", "log4j"), log4j("2.17.1", "log4j-core")],
        ),
    ] {
        let s = row(d, "signed", "ci");
        client
            .execute(
                "INSERT INTO sboms (digest, image, status, provenance, signer, format, error,
                    packages, ingested_at) VALUES ($1, $2, 'found', $3, $4, 'spdx', '', $5, 0)",
                &[
                    &s.digest,
                    &s.image,
                    &s.provenance,
                    &s.signer,
                    &(packages.len() as i64),
                ],
            )
            .await
            .unwrap();
        for p in packages {
            client
                .execute(
                    "INSERT INTO sbom_packages (digest, key, version, purl, keyed, ecosystem,
                        name, osv_name, upstream, distro)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    &[
                        &s.digest,
                        &p.key,
                        &p.version,
                        &p.purl,
                        &p.keyed,
                        &p.ecosystem,
                        &p.name,
                        &p.osv_name,
                        &p.upstream,
                        &p.distro,
                    ],
                )
                .await
                .unwrap();
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        "registry.local",
        "  registry.local: { url: \"http://127.0.0.1:9\" }",
        &format!("database: {{ url: \"{url}\" }}\n"),
    );
    let db = Database::open(&Config::load(Some(&config)).unwrap().database)
        .await
        .unwrap();
    let key = PackageLookup::Key("pkg:maven/org.apache.logging.log4j/log4j-core".into());
    let mut found = db.find_packages(&key).await.unwrap();
    found.sort_by(|a, b| (&a.row.version, &a.row.name).cmp(&(&b.row.version, &b.row.name)));
    let names: Vec<(&str, &str)> = found
        .iter()
        .map(|p| (p.row.version.as_str(), p.row.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("2.14.1", "log4j"),
            ("2.14.1", "log4j-core"),
            ("2.17.1", "log4j-core")
        ]
    );
    let holders = |id: i64| {
        let db = &db;
        async move {
            let mut d: Vec<String> = db
                .holders_of(vec![id])
                .await
                .unwrap()
                .pairs()
                .map(|(_, s)| s.digest.clone())
                .collect();
            d.sort();
            d
        }
    };
    assert_eq!(holders(found[1].id).await, [digest('a'), digest('b')]);
    assert_eq!(db.packages_in(&digest('c')).await.unwrap().len(), 2);
    // A later SBOM listing the same package refers to the moved row.
    db.put_sbom(
        row('d', "signed", "ci"),
        vec![log4j("2.14.1", "log4j-core")],
    )
    .await
    .unwrap();
    assert_eq!(
        holders(found[1].id).await,
        [digest('a'), digest('b'), digest('d')]
    );
    let stored: i64 = client
        .query_one("SELECT count(*) FROM packages", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 3);
}
