use super::*;

fn purls(s: &Sbom) -> Vec<(&str, Option<&str>, Keyed)> {
    s.packages
        .iter()
        .map(|p| (p.key.as_str(), p.version.as_deref(), p.keyed))
        .collect()
}

#[test]
fn spdx_2_3_packages_by_purl_with_either_category_spelling() {
    let doc = br#"{
      "spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "img",
      "packages": [
        {"name": "log4j-core", "versionInfo": "2.14.1", "supplier": "NOASSERTION",
         "externalRefs": [
           {"referenceCategory": "SECURITY", "referenceType": "cpe23Type",
            "referenceLocator": "cpe:2.3:a:apache:log4j:2.14.1:*:*:*:*:*:*:*"},
           {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
            "referenceLocator": "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"}]},
        {"name": "libssl3", "versionInfo": "3.0.11-1~deb12u2",
         "externalRefs": [{"referenceCategory": "PACKAGE_MANAGER", "referenceType": "purl",
            "referenceLocator": "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&upstream=openssl&distro=debian-12"}]},
        {"name": "no-purl-thing", "versionInfo": "NOASSERTION"},
        {"name": "log4j-core", "versionInfo": "2.14.1",
         "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
            "referenceLocator": "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"}]}
      ],
      "relationships": [{"spdxElementId": "x", "relatedSpdxElement": "y", "relationshipType": "CONTAINS"}]
    }"#;
    let s = parse(doc).unwrap();
    assert_eq!(s.format, Format::Spdx2);
    assert_eq!(s.spec_version, "SPDX-2.3");
    assert_eq!(
        purls(&s),
        vec![
            ("name:no-purl-thing", None, Keyed::Name),
            (
                "pkg:deb/debian/libssl3",
                Some("3.0.11-1~deb12u2"),
                Keyed::Purl
            ),
            (
                "pkg:maven/org.apache.logging.log4j/log4j-core",
                Some("2.14.1"),
                Keyed::Purl
            ),
        ]
    );
    let ssl = &s.packages[1];
    assert_eq!(ssl.distro.as_deref(), Some("debian-12"));
    assert_eq!(ssl.upstream.as_deref(), Some("openssl"));
    assert_eq!(ssl.ecosystem.as_deref(), Some("deb"));
    let log4j = &s.packages[2];
    assert_eq!(
        log4j.cpe.as_deref(),
        Some("cpe:2.3:a:apache:log4j:2.14.1:*:*:*:*:*:*:*")
    );
    assert_eq!(log4j.name, "log4j-core");
}

#[test]
fn spdx_2_2_and_an_upstream_with_a_version() {
    let doc = br#"{"spdxVersion": "SPDX-2.2", "packages": [
        {"name": "libc6", "versionInfo": "2.36-9",
         "externalRefs": [{"referenceCategory": "PACKAGE_MANAGER", "referenceType": "purl",
            "referenceLocator": "pkg:deb/debian/libc6@2.36-9?upstream=glibc%402.36-9+deb12u4"}]}]}"#;
    let s = parse(doc).unwrap();
    assert_eq!(s.packages[0].upstream.as_deref(), Some("glibc"));
}

#[test]
fn spdx_3_software_packages_only() {
    let doc = br#"{
      "@context": "https://spdx.org/rdf/3.0.1/spdx-context.jsonld",
      "@graph": [
        {"type": "CreationInfo", "@id": "_:creationinfo", "specVersion": "3.0.1"},
        {"type": "software_Package", "spdxId": "urn:a", "name": "requests",
         "software_packageVersion": "2.31.0",
         "externalIdentifier": [{"type": "ExternalIdentifier",
            "externalIdentifierType": "packageUrl", "identifier": "pkg:pypi/Requests@2.31.0"}]},
        {"type": "software_Package", "spdxId": "urn:b", "name": "lodash",
         "software_packageVersion": "4.17.20", "software_packageUrl": "pkg:npm/lodash@4.17.20"},
        {"type": "software_File", "name": "/usr/lib/x.so"},
        {"type": "Relationship", "from": "urn:a", "to": ["urn:b"], "relationshipType": "contains"}
      ]}"#;
    let s = parse(doc).unwrap();
    assert_eq!(s.format, Format::Spdx3);
    assert_eq!(
        purls(&s),
        vec![
            ("pkg:npm/lodash", Some("4.17.20"), Keyed::Purl),
            ("pkg:pypi/requests", Some("2.31.0"), Keyed::Purl),
        ]
    );
}

#[test]
fn cyclonedx_nested_components_and_the_metadata_component() {
    let doc = br#"{
      "bomFormat": "CycloneDX", "specVersion": "1.6", "serialNumber": "urn:uuid:x", "version": 1,
      "metadata": {"timestamp": "2024-01-01T00:00:00Z",
        "component": {"type": "container", "name": "app", "version": "sha256:abc"}},
      "components": [
        {"type": "library", "group": "org.apache.logging.log4j", "name": "log4j-core",
         "version": "2.14.1", "purl": "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
         "components": [
           {"type": "library", "name": "log4j-api", "version": "2.14.1",
            "purl": "pkg:maven/org.apache.logging.log4j/log4j-api@2.14.1",
            "components": [{"type": "library", "name": "deep", "version": "1",
              "purl": "pkg:cargo/deep@1.0.0"}]}]},
        {"type": "library", "name": "musl", "version": "1.2.4-r2",
         "purl": "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.19.1",
         "properties": [{"name": "syft:package:type", "value": "apk"}]},
        {"type": "library", "name": "bad-purl", "version": "1", "purl": "not a purl"}
      ],
      "dependencies": [{"ref": "a", "dependsOn": ["b"]}]
    }"#;
    let s = parse(doc).unwrap();
    assert_eq!(
        (s.format, s.spec_version.as_str()),
        (Format::CycloneDx, "1.6")
    );
    assert_eq!(
        purls(&s),
        vec![
            ("name:app", Some("sha256:abc"), Keyed::Name),
            ("name:bad-purl", Some("1"), Keyed::Name),
            ("pkg:apk/alpine/musl", Some("1.2.4-r2"), Keyed::Purl),
            ("pkg:cargo/deep", Some("1.0.0"), Keyed::Purl),
            (
                "pkg:maven/org.apache.logging.log4j/log4j-api",
                Some("2.14.1"),
                Keyed::Purl
            ),
            (
                "pkg:maven/org.apache.logging.log4j/log4j-core",
                Some("2.14.1"),
                Keyed::Purl
            ),
        ]
    );
    assert_eq!(s.packages[2].distro.as_deref(), Some("alpine-3.19.1"));
}

#[test]
fn every_cyclonedx_version_from_1_4_to_1_7_and_no_other() {
    for v in ["1.4", "1.5", "1.6", "1.7"] {
        let doc = format!(r#"{{"bomFormat": "CycloneDX", "specVersion": "{v}"}}"#);
        assert!(parse(doc.as_bytes()).unwrap().packages.is_empty(), "{v}");
    }
    let err = parse(br#"{"bomFormat": "CycloneDX", "specVersion": "1.2"}"#).unwrap_err();
    assert_eq!(
        err,
        SbomError::UnsupportedVersion {
            format: "CycloneDX",
            version: "1.2".into()
        }
    );
    let err = parse(br#"{"spdxVersion": "SPDX-2.1", "packages": []}"#).unwrap_err();
    assert!(
        err.to_string().contains("\"SPDX-2.1\" is not supported"),
        "{err}"
    );
}

#[test]
fn hostile_documents_are_rejected_with_a_reason() {
    // Larger than the bound: refused before any parsing.
    let huge = vec![b' '; MAX_BYTES + 1];
    assert!(matches!(parse(&huge), Err(SbomError::TooLarge { .. })));

    // Nested deeper than the component bound but within serde_json's recursion limit.
    let nest = |levels: usize| {
        let mut doc =
            String::from(r#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":["#);
        for i in 0..levels {
            doc.push_str(&format!(r#"{{"name":"c{i}","components":["#));
        }
        for _ in 0..levels {
            doc.push_str("]}");
        }
        doc.push_str("]}");
        doc
    };
    assert_eq!(
        parse(nest(MAX_NESTING).as_bytes()).unwrap().packages.len(),
        MAX_NESTING
    );
    assert_eq!(
        parse(nest(40).as_bytes()).unwrap_err(),
        SbomError::TooDeep {
            depth: MAX_NESTING + 1,
            max: MAX_NESTING
        }
    );
    // Deeper still: serde_json's own limit refuses it, without exhausting the stack.
    let err = parse(nest(10_000).as_bytes()).unwrap_err();
    assert!(err.to_string().contains("recursion limit"), "{err}");

    // Wrong types.
    let err = parse(br#"{"spdxVersion": "SPDX-2.3", "packages": {"name": "x"}}"#).unwrap_err();
    assert!(
        err.to_string()
            .contains("invalid type: map, expected a sequence"),
        "{err}"
    );
    let err =
        parse(br#"{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"name": 7}]}"#)
            .unwrap_err();
    assert!(err.to_string().contains("invalid type: integer"), "{err}");
    assert_eq!(
        parse(br#"{"hello": "world"}"#).unwrap_err(),
        SbomError::UnknownFormat
    );
    assert!(matches!(parse(b"[1,2"), Err(SbomError::Json(_))));
    assert!(matches!(parse(b"\xff\xfe"), Err(SbomError::Json(_))));
}
