//! Hermetic tests of the console's pages: the proxy in process in front of the ledger tests'
//! fake registry (one unsigned manifest everywhere; `team/*` under audit, `prod/*` under
//! enforce, signature lookups of `team/flaky` fail). Pulls go through the proxy, then each page
//! is read from the admin listener and checked against what was pulled; the browser test
//! (`tests/e2e/console.rs`) does the same with real clients in real Chromium.

use crate::fake::{client, Proxy};
use crate::ledger::{flush, manifest, rules, status, upstream};

async fn page(proxy: &Proxy, path: &str) -> (u16, http::HeaderMap, String) {
    let resp = client()
        .get(format!("{}{path}", proxy.admin))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

async fn ok(proxy: &Proxy, path: &str) -> String {
    let (status, headers, body) = page(proxy, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(
        headers["content-type"], "text/html; charset=utf-8",
        "{path}"
    );
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert!(!body.contains("<script"), "{path} carries a script");
    body
}

#[tokio::test]
async fn every_page_shows_what_was_pulled() {
    let up = upstream().await;
    let proxy = Proxy::in_front_of(&up, &rules()).await;
    let digest = crate::common::sha256(&manifest());
    let c = client();
    let base = &proxy.url;
    for _ in 0..3 {
        assert_eq!(
            status(c.get(format!("{base}/v2/team/app/manifests/v1"))).await,
            200
        );
    }
    assert_eq!(
        status(c.get(format!("{base}/v2/prod/app/manifests/v1"))).await,
        403
    );
    assert_eq!(
        status(c.get(format!("{base}/v2/team/flaky/manifests/v1"))).await,
        200
    );
    flush(&proxy).await;

    // Overview: the pulls of the last 24 h by outcome, per rule, and the digests first decided.
    let overview = ok(&proxy, "/ui/").await;
    let tile = |body: &str, id: &str| -> String {
        let at = body
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("{id} in {body}"));
        let rest = &body[at..];
        let v = rest.find("class=\"v\">").unwrap() + "class=\"v\">".len();
        rest[v..v + rest[v..].find('<').unwrap()].to_owned()
    };
    assert_eq!(tile(&overview, "tile-pulls"), "5");
    assert_eq!(tile(&overview, "tile-let_through"), "3");
    assert_eq!(tile(&overview, "tile-refused"), "1");
    assert_eq!(tile(&overview, "tile-fault"), "1");
    assert!(overview.contains("data-rule=\"team\""), "{overview}");
    assert!(overview.contains("data-rule=\"prod\""));
    assert!(overview.contains("<svg"), "the chart");
    assert!(overview.contains("<title>"), "the chart's tooltips");
    assert!(
        overview.contains("fake.local/team/app"),
        "first decided: {overview}"
    );
    let week = ok(&proxy, "/ui/?window=7d").await;
    assert_eq!(tile(&week, "tile-pulls"), "5");

    // Audit: the let-through, the refusal and the fault, each linked to its image.
    let audit = ok(&proxy, "/ui/audit?since=7d").await;
    for (section, image) in [
        ("let-through", "fake.local/team/app"),
        ("refused", "fake.local/prod/app"),
        ("faults", "fake.local/team/flaky"),
    ] {
        let at = audit
            .find(&format!("id=\"{section}\""))
            .unwrap_or_else(|| panic!("{section}: {audit}"));
        assert!(
            audit[at..].contains(&format!("href=\"/ui/images/{image}\"")),
            "{section}"
        );
    }
    assert!(audit.contains("1 image is unsigned"), "{audit}");
    let only_prod = ok(&proxy, "/ui/audit?rule=prod").await;
    assert!(
        only_prod.contains("fake.local/prod/app") && !only_prod.contains("fake.local/team/app\"")
    );
    // A second image let through: a section longer than `limit` says what it leaves out.
    assert_eq!(
        status(c.get(format!("{base}/v2/team/other/manifests/v1"))).await,
        200
    );
    flush(&proxy).await;
    let one = ok(&proxy, "/ui/audit?limit=1").await;
    assert!(one.contains("Showing the first 1 of 2 digests"), "{one}");
    let (code, _, body) = page(&proxy, "/ui/audit?limit=0").await;
    assert_eq!(code, 400, "{body}");
    let globbed = ok(&proxy, "/ui/audit?image=fake.local/team/**").await;
    assert!(!globbed.contains("id=\"refused\""), "{globbed}");

    // Image: its digest, the verdict in full, the client.
    let image = ok(&proxy, "/ui/images/fake.local/team/app").await;
    assert!(image.contains(&format!("id=\"{digest}\"")), "{image}");
    assert!(image.contains("Under rule team"), "{image}");
    assert!(image.contains("No signature found."), "{image}");
    assert!(
        image.contains("ledger-test/1"),
        "the client's user agent: {image}"
    );

    // Policies: the rules, and which applies to a name and why.
    let policies = ok(&proxy, "/ui/policies?image=fake.local/prod/app:1").await;
    assert!(policies.contains("id=\"rule-team\"") && policies.contains("id=\"rule-prod\""));
    assert!(
        policies.contains("Rule <strong>prod</strong> (enforce) applies"),
        "{policies}"
    );
    let unmatched = ok(&proxy, "/ui/policies?image=fake.local/other/x").await;
    assert!(unmatched.contains("No rule matches"), "{unmatched}");

    // Inventory: nothing ingested for these (no SBOMs), and it says what it could not see.
    let inventory = ok(&proxy, "/ui/inventory?package=lodash&range=%3C4.17.21").await;
    assert!(inventory.contains("id=\"by-package\""), "{inventory}");
    assert!(inventory.contains("0 hit(s)"), "{inventory}");

    // Bad input names what was wrong; an unknown page is a 404; text is escaped.
    let (code, _, body) = page(&proxy, "/ui/audit?since=forever").await;
    assert_eq!(code, 400);
    assert!(body.contains("since"), "{body}");
    let (code, _, body) = page(&proxy, "/ui/inventory?package=x&range=%3E%3D%3D1").await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("range"), "{body}");
    let (code, _, _) = page(&proxy, "/ui/nowhere").await;
    assert_eq!(code, 404);
    let (code, _, body) = page(&proxy, "/ui/policies?image=%3Cscript%3Ex").await;
    assert_eq!(code, 200);
    assert!(!body.contains("<script>"), "{body}");
}
