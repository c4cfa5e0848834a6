use std::io::Write;

use super::*;

const LOG4SHELL: &str = r#"{"id": "GHSA-jfh8-c2jp-5v3q", "modified": "2024-01-01T00:00:00Z",
  "aliases": ["CVE-2021-44228"], "summary": "Log4Shell",
  "affected": [{"package": {"ecosystem": "Maven", "name": "org.apache.logging.log4j:log4j-core"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.13.0"}, {"fixed": "2.15.0"}]}]}]}"#;
const WITHDRAWN: &str = r#"{"id": "GHSA-xxxx-yyyy-zzzz", "modified": "2024-02-01T00:00:00Z",
  "withdrawn": "2024-02-01T00:00:00Z", "aliases": ["CVE-2024-0001"], "affected": []}"#;

async fn sqlite(dir: &Path) -> Database {
    Database::Sqlite(
        crate::db::sqlite::Sqlite::open(dir.join("portcullis.db"))
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn a_directory_a_file_and_a_zip_are_imported_and_found_by_alias() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(dir.path()).await;
    let osv = dir.path().join("osv/nested");
    std::fs::create_dir_all(&osv).unwrap();
    std::fs::write(osv.join("GHSA-jfh8-c2jp-5v3q.json"), LOG4SHELL).unwrap();
    std::fs::write(osv.join("broken.json"), "{\"id\": 3}").unwrap();
    std::fs::write(osv.join("README.md"), "not read").unwrap();
    let report = import(&db, &dir.path().join("osv")).await.unwrap();
    assert_eq!((report.imported, report.withdrawn), (1, 0));
    assert_eq!(report.skipped.len(), 1);
    assert!(report.skipped[0].0.ends_with("broken.json"));
    assert!(report.skipped[0].1.contains("invalid type"), "{report}");

    // By id, by alias, case-blind.
    for name in ["GHSA-jfh8-c2jp-5v3q", "cve-2021-44228", "CVE-2021-44228"] {
        let found = db.advisories_named(name).await.unwrap();
        assert_eq!(found.len(), 1, "{name}");
        assert_eq!(found[0].0, "GHSA-jfh8-c2jp-5v3q");
        let a = Advisory::parse(found[0].1.as_bytes()).unwrap();
        assert_eq!(a.summary, "Log4Shell");
    }
    assert!(db
        .advisories_named("CVE-1999-0001")
        .await
        .unwrap()
        .is_empty());

    // An OSV all.zip: the same advisory again (replaced, not doubled) and a withdrawn one.
    let zip_path = dir.path().join("all.zip");
    {
        let mut w = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        w.start_file("GHSA-jfh8-c2jp-5v3q.json", opts).unwrap();
        w.write_all(LOG4SHELL.as_bytes()).unwrap();
        w.start_file("GHSA-xxxx-yyyy-zzzz.json", opts).unwrap();
        w.write_all(WITHDRAWN.as_bytes()).unwrap();
        w.finish().unwrap();
    }
    let report = import(&db, &zip_path).await.unwrap();
    assert_eq!((report.imported, report.withdrawn), (2, 1));
    let counts = db.advisory_counts().await.unwrap();
    assert_eq!((counts.advisories, counts.withdrawn), (2, 1));

    // One file.
    let single = dir.path().join("one.json");
    std::fs::write(&single, WITHDRAWN).unwrap();
    assert_eq!(import(&db, &single).await.unwrap().imported, 1);
    assert_eq!(db.advisory_counts().await.unwrap().advisories, 2);

    // What is not there is an error naming the path.
    let err = import(&db, &dir.path().join("missing")).await.unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}
