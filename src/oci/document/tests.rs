use super::*;

fn d(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// The digests a verified manifest covers, as the verdict engine reads them.
fn referenced(bytes: &[u8], max: usize) -> Vec<Digest> {
    Document::parse(bytes, Reading::References)
        .map(|doc| doc.referenced(max))
        .unwrap_or_default()
}

#[test]
fn references_are_bounded_and_parsed() {
    let index = format!(
        r#"{{"manifests":[{{"digest":"{}"}},{{"digest":"bogus"}},{{"digest":"{}"}},{{"digest":"{}"}}]}}"#,
        d('a'),
        d('b'),
        d('c')
    );
    let kids = referenced(index.as_bytes(), 2);
    assert_eq!(kids.len(), 2);
    assert_eq!(kids[1].to_string(), d('b'));
    assert!(referenced(b"{\"layers\":[]}", 10).is_empty());
    assert!(referenced(b"not json", 10).is_empty());
    let image = format!(
        r#"{{"config":{{"digest":"{}"}},"layers":[{{"digest":"{}"}}],"blobs":[{{"digest":"{}"}}]}}"#,
        d('a'),
        d('b'),
        d('c')
    );
    let refs: Vec<String> = referenced(image.as_bytes(), 10)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(refs, [d('a'), d('b'), d('c')]);
    // A descriptor without a digest is not a descriptor list: nothing is covered.
    assert!(referenced(br#"{"layers":[{"size":1}]}"#, 10).is_empty());
}

#[test]
fn lenient_reading_finds_the_media_type_of_any_object() {
    let t = |s: &str| Document::parse(s.as_bytes(), Reading::Lenient).map(|d| d.media_type);
    assert_eq!(
        t(r#"{"mediaType":"application/x","layers":5}"#).unwrap(),
        Some("application/x".to_owned())
    );
    assert_eq!(t(r#"{"schemaVersion":2}"#).unwrap(), None);
    assert!(t("[]").is_err());
    assert!(t(r#"{"layers":5}"#).is_err());
}

#[test]
fn schema_readings_require_what_the_schema_requires() {
    let desc = |c: char, extra: &str| {
        format!(r#"{{"mediaType":"m","digest":"{}","size":1{extra}}}"#, d(c))
    };
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{},{}]}}"#,
        desc('a', r#","platform":{"architecture":"amd64","os":"linux"}"#),
        desc(
            'b',
            &format!(
                r#","annotations":{{"vnd.docker.reference.type":"attestation-manifest","vnd.docker.reference.digest":"{}"}}"#,
                d('a')
            )
        )
    );
    let doc = Document::parse(index.as_bytes(), Reading::Index).unwrap();
    let platforms: Vec<_> = doc.platform_children().collect();
    assert_eq!(platforms.len(), 1);
    assert_eq!(platforms[0].digest.to_string(), d('a'));
    assert_eq!(platforms[0].platform.as_ref().unwrap().os, "linux");
    let attestations: Vec<_> = doc.attestation_children().collect();
    assert_eq!(attestations.len(), 1);
    assert_eq!(
        attestations[0].attestation_about().unwrap().to_string(),
        d('a')
    );

    assert!(Document::parse(br#"{"manifests":[]}"#, Reading::Index).is_err());
    assert!(Document::parse(br#"{"schemaVersion":2}"#, Reading::Index).is_err());
    let no_size = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"m","digest":"{}"}}]}}"#,
        d('a')
    );
    assert!(Document::parse(no_size.as_bytes(), Reading::Index).is_err());
    let bad_digest = r#"{"schemaVersion":2,"manifests":[{"mediaType":"m","digest":"x","size":1}]}"#;
    assert!(Document::parse(bad_digest.as_bytes(), Reading::Index).is_err());
    let manifest = format!(
        r#"{{"schemaVersion":2,"config":{},"layers":[{}],"subject":{}}}"#,
        desc('a', ""),
        desc('b', r#","annotations":{"k":"v"}"#),
        desc('c', "")
    );
    let m = Document::parse(manifest.as_bytes(), Reading::Manifest).unwrap();
    assert_eq!(m.layers[0].annotation("k"), Some("v"));
    assert_eq!(m.subject.unwrap().digest.to_string(), d('c'));
    let no_layers = format!(r#"{{"schemaVersion":2,"config":{}}}"#, desc('a', ""));
    assert!(Document::parse(no_layers.as_bytes(), Reading::Manifest).is_err());
    // Duplicated keys are refused, whatever another parser would make of them.
    let twice = format!(
        r#"{{"schemaVersion":2,"config":{},"layers":[],"layers":[]}}"#,
        desc('a', "")
    );
    assert!(Document::parse(twice.as_bytes(), Reading::Manifest).is_err());
}
