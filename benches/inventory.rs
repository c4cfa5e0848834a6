//! The inventory's answers over a large inventory (issue targets: a query by package and range
//! p99 < 50 ms, by an OSV advisory with 20 affected ranges < 100 ms, the ingest of a 10 MB syft
//! SBOM < 200 ms, on SQLite and PostgreSQL).
//!
//! Seeds a fresh database through the layer the proxy writes with: INVENTORY_IMAGES images
//! (default 10 000) of 300 packages each (CycloneDX documents read by the inventory's own
//! reader, recorded as the ingest records them), drawn from 3 000 packages across npm, Maven,
//! PyPI, Go, cargo, RubyGems, NuGet, Alpine, Debian and RPM with realistic purls (distro and
//! upstream qualifiers included), so that each package is in about 1 000 images in a spread of
//! versions; and the ledger of `benches/common/ledger_rows.rs` (LEDGER_ROWS, default
//! 1 000 000) whose digests are the images'. Then times, in process and with the JSON rendered
//! as the CLI and the admin API print it:
//! - 200 queries by purl and range over 50 packages of every ecosystem (p50, p99);
//! - an advisory naming 20 packages with a range each (median and max of 10);
//! - the ingest of a syft-shaped SPDX 2.3 document of about 10 MB: read, then recorded
//!   (median and max of 5, each a new digest).
//!
//! Then, on the same database (with a stored verdict for each of the images' 30 000 digests, as
//! the ledger's writer stores them), the console's pages (issue target: every page < 200 ms
//! with 10 000 images and 1 000 000 ledger records), each fetched through the admin listener's
//! handler with its HTML rendered, median and max of 5: the overview over 24 h and 7 d, the
//! audit report, one image, an inventory search by package and range and one by the advisory
//! above, and the policies with an explanation.
//!
//! SQLite always; PostgreSQL when PORTCULLIS_BENCH_POSTGRES_URL names an empty database.
//! Prints two lines per database. Run: `cargo bench --bench inventory`; `INVENTORY_SQLITE_PATH`
//! keeps the seeded SQLite file (`INVENTORY_SEEDED=1` times it again without seeding).

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis::db::inventory::SbomRow;
use portcullis::db::Database;
use portcullis::inventory::osv::Advisory;
use portcullis::inventory::query::{self, record_sbom};
use portcullis::inventory::sbom;
use portcullis::inventory::versions::Range;
use serde_json::{json, Value};

#[path = "common/databases.rs"]
mod databases;
#[path = "common/ledger_rows.rs"]
mod ledger_rows;

const PACKAGES_PER_IMAGE: usize = 300;
const POOL: usize = 3_000;
const ECOSYSTEMS: usize = 10;
const SBOM_BYTES: usize = 10 * 1024 * 1024;

/// Package `k` of the pool at version (major, minor, patch, revision): its purl, and the OSV
/// ecosystem and name an advisory would give it.
fn package(k: usize, v: (usize, usize, usize, usize)) -> (String, &'static str, String) {
    let (ma, mi, pa, r) = v;
    let n = k / ECOSYSTEMS;
    match k % ECOSYSTEMS {
        0 => (format!("pkg:npm/pkg-{n}@{ma}.{mi}.{pa}"), "npm", format!("pkg-{n}")),
        1 => (
            format!("pkg:maven/org.example.g{}/artifact-{n}@{ma}.{mi}.{pa}", n % 30),
            "Maven",
            format!("org.example.g{}:artifact-{n}", n % 30),
        ),
        2 => (format!("pkg:pypi/py-{n}@{ma}.{mi}.{pa}"), "PyPI", format!("py-{n}")),
        3 => (
            format!("pkg:golang/github.com/example/mod-{n}@v{ma}.{mi}.{pa}"),
            "Go",
            format!("github.com/example/mod-{n}"),
        ),
        4 => (format!("pkg:cargo/crate-{n}@{ma}.{mi}.{pa}"), "crates.io", format!("crate-{n}")),
        5 => (format!("pkg:gem/gem-{n}@{ma}.{mi}.{pa}"), "RubyGems", format!("gem-{n}")),
        6 => (format!("pkg:nuget/Example.Pkg{n}@{ma}.{mi}.{pa}"), "NuGet", format!("Example.Pkg{n}")),
        7 => (
            format!("pkg:apk/alpine/apk-{n}@{ma}.{mi}.{pa}-r{r}?arch=x86_64&distro=alpine-3.20.3"),
            "Alpine:v3.20",
            format!("apk-{n}"),
        ),
        8 => (
            format!("pkg:deb/debian/libdeb{n}@{ma}.{mi}.{pa}-{r}+deb12u1?arch=amd64&upstream=deb{n}&distro=debian-12"),
            "Debian:12",
            format!("deb{n}"),
        ),
        _ => (
            format!("pkg:rpm/redhat/rpm-{n}@{ma}.{mi}.{pa}-{r}.el9?arch=x86_64&distro=rhel-9.4"),
            "Red Hat",
            format!("rpm-{n}"),
        ),
    }
}

/// The versions of package `k` in image `i` spread over 1.0.0 to 4.19.9.
fn version(i: usize, k: usize) -> (usize, usize, usize, usize) {
    (1 + (i + k) % 4, (i / 7 + k) % 20, i % 10, i % 5)
}

/// The range "before 3.10.0" in package `k`'s ecosystem's spelling.
fn before(k: usize) -> &'static str {
    match k % ECOSYSTEMS {
        3 => "v3.10.0",
        7 => "3.10.0-r0",
        8 => "3.10.0-0",
        9 => "3.10.0-0.el9",
        _ => "3.10.0",
    }
}

/// Image `i`'s SBOM as CycloneDX.
fn image_sbom(i: usize) -> Vec<u8> {
    let components: Vec<Value> = (0..PACKAGES_PER_IMAGE)
        .map(|j| {
            let k = (i * 37 + j * 11) % POOL;
            let (purl, _, name) = package(k, version(i, k));
            let version = purl
                .rsplit_once('@')
                .map(|(_, v)| v.split('?').next().unwrap_or(v));
            json!({"type": "library", "name": name, "version": version, "purl": purl})
        })
        .collect();
    serde_json::to_vec(&json!({"bomFormat": "CycloneDX", "specVersion": "1.6",
        "metadata": {"component": {"type": "container", "name": ledger_rows::image(i)}},
        "components": components}))
    .expect("JSON")
}

fn row(digest: String, image: String) -> SbomRow {
    SbomRow {
        digest,
        image,
        status: String::new(),
        provenance: "signed".into(),
        signer: "https://github.com/company/app/.github/workflows/release.yml@refs/heads/main"
            .into(),
        format: String::new(),
        error: String::new(),
    }
}

/// A syft-shaped SPDX 2.3 document of about `bytes`: packages with cpe and purl references,
/// licenses, source info, and the files and relationships syft writes.
fn syft_spdx(bytes: usize) -> (Vec<u8>, usize) {
    let mut packages = Vec::new();
    let mut files = Vec::new();
    let mut relationships = Vec::new();
    let mut size = 0;
    let mut n = 0;
    while size < bytes {
        let k = n % POOL;
        let (purl, _, name) = package(k, version(n, k));
        let v = purl
            .rsplit_once('@')
            .map(|(_, v)| v.split('?').next().unwrap_or(v).to_owned());
        let id = format!("SPDXRef-Package-{n}-{:016x}", n * 2654435761);
        let p = json!({
            "name": name, "SPDXID": id, "versionInfo": v, "supplier": "NOASSERTION",
            "originator": "Person: Example Maintainer <maintainer@example.org>",
            "downloadLocation": "NOASSERTION", "filesAnalyzed": false,
            "sourceInfo": format!("acquired package info from installed package manifest files: /usr/lib/packages/{name}/METADATA, /usr/lib/packages/{name}/RECORD"),
            "licenseConcluded": "NOASSERTION", "licenseDeclared": "MIT AND Apache-2.0",
            "copyrightText": "NOASSERTION",
            "externalRefs": [
                {"referenceCategory": "SECURITY", "referenceType": "cpe23Type",
                 "referenceLocator": format!("cpe:2.3:a:example:{name}:{}:*:*:*:*:*:*:*", v.clone().unwrap_or_default())},
                {"referenceCategory": "SECURITY", "referenceType": "cpe23Type",
                 "referenceLocator": format!("cpe:2.3:a:{name}:{name}:{}:*:*:*:*:*:*:*", v.clone().unwrap_or_default())},
                {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl},
            ],
        });
        let file_id = format!("SPDXRef-File-{n}-{:016x}", n * 40503);
        let f = json!({"fileName": format!("/usr/lib/packages/{name}/RECORD"), "SPDXID": file_id,
            "checksums": [{"algorithm": "SHA1", "checksumValue": format!("{:040x}", n * 7919)},
                {"algorithm": "SHA256", "checksumValue": format!("{:064x}", n * 104729)}],
            "licenseConcluded": "NOASSERTION", "copyrightText": ""});
        let r = json!({"spdxElementId": id, "relatedSpdxElement": file_id, "relationshipType": "CONTAINS"});
        size += p.to_string().len() + f.to_string().len() + r.to_string().len() + 3;
        packages.push(p);
        files.push(f);
        relationships.push(r);
        n += 1;
    }
    let doc = json!({
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": "docker.io/company/big", "documentNamespace": "https://anchore.com/syft/image/big",
        "creationInfo": {"licenseListVersion": "3.25", "creators": ["Organization: Anchore, Inc", "Tool: syft-1.18.1"],
            "created": "2026-12-01T00:00:00Z"},
        "packages": packages, "files": files, "relationships": relationships,
    });
    (serde_json::to_vec(&doc).expect("JSON"), n)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    ms(sorted[i])
}

async fn measure(name: &str, db: &Arc<Database>, images: usize, ledger: usize, seed: bool) {
    let started = Instant::now();
    if seed {
        seed_all(db, images, ledger).await;
    }
    let seeded = started.elapsed();
    times(name, db, images, ledger, seeded).await;
}

async fn seed_all(db: &Database, images: usize, ledger: usize) {
    for i in 0..images {
        let parsed = sbom::parse(&image_sbom(i));
        let r = row(ledger_rows::digest(i, 0), ledger_rows::image(i));
        record_sbom(db, r, parsed)
            .await
            .expect("seeding the inventory");
    }
    let now = portcullis::ledger::now_ms();
    for batch in ledger_rows::rows(ledger, now) {
        db.add_pulls(batch).await.expect("seeding the ledger");
    }
    seed_verdicts(db, images).await;
}

async fn times(name: &str, db: &Arc<Database>, images: usize, ledger: usize, seeded: Duration) {
    // By package and range: 50 packages of every ecosystem, 4 times each.
    let mut times = Vec::new();
    let mut entries = 0;
    for round in 0..4 {
        for q in 0..50 {
            let k = (q * 61 + round) % POOL;
            let (purl, _, _) = package(k, (0, 0, 0, 0));
            let key = purl.split('@').next().expect("purl").to_owned();
            let range = Range::parse(&format!("<{}", before(k))).expect("range");
            let t = Instant::now();
            let answer = query::query(db, &key, Some(&range), &query::Scope::default())
                .await
                .expect("query");
            let json = serde_json::to_vec(&answer).expect("JSON");
            times.push(t.elapsed());
            entries += answer.entries.len();
            std::hint::black_box(json);
        }
    }
    times.sort();
    let queries = times.len();
    let (p50, p99) = (percentile(&times, 0.50), percentile(&times, 0.99));

    // By an advisory naming 20 packages (two of each ecosystem), fixed in 3.10.0.
    let affected: Vec<Value> = (0..20)
        .map(|a| {
            let k = a * 151 % POOL;
            let (_, ecosystem, osv_name) = package(k, (0, 0, 0, 0));
            json!({"package": {"ecosystem": ecosystem, "name": osv_name},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": before(k)}]}]})
        })
        .collect();
    let advisory_doc = serde_json::to_vec(
        &json!({"id": "GHSA-bench-0000-0000", "aliases": ["CVE-2099-0000"],
        "affected": affected}),
    )
    .expect("JSON");
    let advisory = Advisory::parse(&advisory_doc).expect("advisory");
    let mut advisory_times = Vec::new();
    let mut advisory_entries = 0;
    for _ in 0..10 {
        let t = Instant::now();
        let answer = query::affected(
            db,
            std::slice::from_ref(&advisory),
            &query::Scope::default(),
        )
        .await
        .expect("affected");
        let json = serde_json::to_vec(&answer).expect("JSON");
        advisory_times.push(t.elapsed());
        advisory_entries = answer.entries.len();
        std::hint::black_box(json);
    }
    advisory_times.sort();

    // The ingest of a 10 MB syft SBOM: read, then recorded under a new digest.
    let (doc, packages) = syft_spdx(SBOM_BYTES);
    let mut ingest_times = Vec::new();
    let mut read_times = Vec::new();
    for n in 0..5 {
        let t = Instant::now();
        let parsed = sbom::parse(&doc);
        read_times.push(t.elapsed());
        assert!(parsed.is_ok(), "{parsed:?}");
        let r = row(
            format!("sha256:{:064x}", 0xb16_0000 + n),
            "docker.io/company/big".into(),
        );
        record_sbom(db, r, parsed).await.expect("recording");
        ingest_times.push(t.elapsed());
    }
    ingest_times.sort();
    read_times.sort();
    println!(
        "inventory {name}: {images} images, {} packages, {ledger} pulls, seeded in {:.1} s; \
         query p50 {p50:.1} ms, p99 {p99:.1} ms ({queries} queries, {} entries on average); \
         advisory (20 ranges) median {:.1} ms, max {:.1} ms ({advisory_entries} entries); \
         ingest of a {}-byte SBOM ({packages} packages) median {:.1} ms, max {:.1} ms \
         (read: median {:.1} ms)",
        images * PACKAGES_PER_IMAGE,
        seeded.as_secs_f64(),
        entries / queries,
        ms(advisory_times[advisory_times.len() / 2]),
        ms(advisory_times[advisory_times.len() - 1]),
        doc.len(),
        ms(ingest_times[ingest_times.len() / 2]),
        ms(ingest_times[ingest_times.len() - 1]),
        ms(read_times[read_times.len() / 2]),
    );
    db.put_advisories(vec![portcullis::inventory::advisories::row(
        &advisory,
        String::from_utf8(advisory_doc).expect("UTF-8"),
    )])
    .await
    .expect("storing the advisory");
    let (purl, _, _) = package(61, (0, 0, 0, 0));
    let key = purl.split('@').next().expect("purl").to_owned();
    let range = format!("<{}", before(61));
    console(name, db, &key, &range).await;
}

/// A stored verdict (verified, one keyless signature) for each digest of every image.
async fn seed_verdicts(db: &Database, images: usize) {
    let now = portcullis::ledger::now_ms();
    let detail = json!({"verified": true, "reasons": [], "identities": ["https://github.com/company/app/.github/workflows/release.yml@refs/heads/main (issuer https://token.actions.githubusercontent.com)"],
        "evidence": [{"attestor": 1, "source": "referrer sha256:00", "signer": "https://github.com/company/app/.github/workflows/release.yml@refs/heads/main"}],
        "signatures": 1, "attestations": [], "signature_reports": [{"source": "referrer sha256:00", "verified_by": "attestor 1", "errors": []}]})
    .to_string();
    let mut rows = Vec::new();
    for i in 0..images {
        for variant in 0..3 {
            rows.push(portcullis::db::console::VerdictRow {
                digest: ledger_rows::digest(i, variant),
                rule: "company".into(),
                image: ledger_rows::image(i),
                verified: true,
                first_decided: now - (i as i64 * 7919) % (7 * 86_400_000),
                decided_at: now,
                detail: detail.clone(),
            });
        }
        if rows.len() >= 3_000 {
            db.put_verdicts(std::mem::take(&mut rows))
                .await
                .expect("seeding verdicts");
        }
    }
    db.put_verdicts(rows).await.expect("seeding verdicts");
}

/// The console's pages through the admin listener's handler: median and max of 5 each.
async fn console(name: &str, db: &Arc<Database>, purl: &str, range: &str) {
    let yaml = "listen: 127.0.0.1:5000\nadmin_listen: 127.0.0.1:9095\ndefault_upstream: docker.io\n\
        upstreams:\n  docker.io: { url: 'https://registry-1.docker.io' }\npolicies:\n\
        \x20 - name: company\n    match: [\"docker.io/company/**\"]\n    mode: enforce\n\
        \x20   attestors: [{ keyless: { subject_regexp: \"https://github.com/company/.+\", issuer: \"https://token.actions.githubusercontent.com\" } }]\n\
        \x20 - name: team\n    match: [\"docker.io/team/**\"]\n    mode: audit\n\
        \x20   attestors: [{ keyless: { subject_regexp: \"https://github.com/team/.+\", issuer: \"https://token.actions.githubusercontent.com\" } }]\n";
    let config = portcullis::config::Config::from_yaml(yaml, portcullis::config::Source::Embedded)
        .expect("the console bench's configuration");
    let state = Arc::new(portcullis::admin::AdminState {
        metrics: Arc::new(portcullis::metrics::Metrics::new()),
        ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        config: Arc::new(config),
        db: Some(db.clone()),
    });
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pages = [
        ("overview", "/ui/".to_owned()),
        ("overview_7d", "/ui/?window=7d".to_owned()),
        ("audit", "/ui/audit?since=7d".to_owned()),
        ("image", format!("/ui/images/{}", ledger_rows::image(42))),
        (
            "inventory_package",
            format!(
                "/ui/inventory?package={}&range={}",
                encode(purl),
                encode(range)
            ),
        ),
        (
            "inventory_advisory",
            "/ui/inventory?advisory=CVE-2099-0000".to_owned(),
        ),
        (
            "policies",
            format!("/ui/policies?image={}", ledger_rows::image(7)),
        ),
    ];
    let mut parts = Vec::new();
    for (page, path) in pages {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..5 {
            let req = http::Request::get(&path).body(()).expect("request");
            let t = Instant::now();
            let resp = portcullis::admin::handle(req, state.clone()).await;
            assert_eq!(resp.status(), 200, "{path}");
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .expect("page body")
                .to_bytes();
            times.push(t.elapsed());
            bytes = body.len();
        }
        times.sort();
        parts.push(format!(
            "{page} median {:.1} ms max {:.1} ms ({bytes} bytes)",
            ms(times[2]),
            ms(times[4])
        ));
    }
    println!("console {name}: {}", parts.join("; "));
}

#[tokio::main]
async fn main() {
    let env = |k: &str, default: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let images = env("INVENTORY_IMAGES", ledger_rows::IMAGES);
    let ledger = env("LEDGER_ROWS", 1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    // INVENTORY_SQLITE_PATH keeps the seeded file (to look at its plans with `sqlite3`); it
    // must not exist yet, unless INVENTORY_SEEDED says it holds a seeded copy of the same size
    // (the SQLite timings then run on it without seeding again: for trials only).
    // INVENTORY_PG_SEEDED says the same of the PostgreSQL database (seeded by an earlier run).
    let path = std::env::var_os("INVENTORY_SQLITE_PATH")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("portcullis.db"));
    let seeded = std::env::var_os("INVENTORY_SEEDED").is_some();
    assert!(
        seeded || !path.exists(),
        "{} exists already",
        path.display()
    );
    for (name, db) in databases::databases(path).await {
        let seed = match name {
            "sqlite" => !seeded,
            _ => std::env::var_os("INVENTORY_PG_SEEDED").is_none(),
        };
        measure(name, &Arc::new(db), images, ledger, seed).await;
    }
}
