// The console in real headless Chromium, for tests/e2e/console.rs (which pulls the images and
// passes what it pulled in CONSOLE_EXPECT). JavaScript is off in the page: everything checked
// here works without it. Prints "console test: all pages checked" when every check passed.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const base = process.env.CONSOLE_URL;
const user = process.env.CONSOLE_USER;
const token = process.env.CONSOLE_TOKEN;
const expect = JSON.parse(process.env.CONSOLE_EXPECT);
const shots = process.env.CONSOLE_SCREENSHOTS;
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  timeout: 60_000,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});

const text = async (page, selector) => (await page.locator(selector).first().innerText()).trim();
const shot = async (page, name) => {
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  console.log(`screenshot ${name}.png`);
};

try {
  // Without credentials the non-loopback admin listener refuses the console and the API: a
  // 401 with a Basic challenge, which the browser (no credentials to give) fails to load.
  const anonymous = await browser.newContext({ javaScriptEnabled: false });
  for (const path of ["/ui/", "/ui/audit", `/ui/images/${expect.shop}`, "/api/v1/audit"]) {
    const resp = await anonymous.request.get(`${base}${path}`);
    assert.equal(resp.status(), 401, `${path} without credentials`);
    assert.match(resp.headers()["www-authenticate"], /Basic realm="portcullis-admin"/);
    assert.doesNotMatch(await resp.text(), /portcullis<\/span>|Overview/, "no page in a refusal");
  }
  const bare = await anonymous.newPage();
  await assert.rejects(bare.goto(`${base}/ui/`), /ERR_INVALID_AUTH_CREDENTIALS/);
  const wrong = await browser.newContext({
    javaScriptEnabled: false,
    httpCredentials: { username: user, password: "not-the-token-at-all" },
  });
  assert.equal((await wrong.request.get(`${base}/ui/`)).status(), 401, "a wrong password");
  const refusedPage = await (await wrong.newPage()).goto(`${base}/ui/`);
  assert.equal(refusedPage.status(), 401, "the browser with a wrong password");
  await anonymous.close();
  await wrong.close();

  const context = await browser.newContext({
    javaScriptEnabled: false,
    httpCredentials: { username: user, password: token },
    viewport: { width: 1360, height: 900 },
  });
  const page = await context.newPage();

  // Overview: pulls by outcome, both rules, the refusal, the digests first decided today.
  let resp = await page.goto(`${base}/ui/`);
  assert.equal(resp.status(), 200);
  const pulls = Number((await text(page, "#tile-pulls .v")).replaceAll(",", ""));
  const refused = Number((await text(page, "#tile-refused .v")).replaceAll(",", ""));
  const letThrough = Number((await text(page, "#tile-let_through .v")).replaceAll(",", ""));
  assert.ok(refused >= 1, `refused ${refused}`);
  assert.ok(letThrough >= 2, `let through ${letThrough}: the two unsigned images under audit`);
  assert.ok(pulls >= refused + letThrough + 1, `pulls ${pulls}`);
  assert.equal(await page.locator('#by-rule tr[data-rule="vault"]').count(), 1);
  assert.equal(await page.locator('#by-rule tr[data-rule="shop"]').count(), 1);
  const vaultRefused = await text(page, '#by-rule tr[data-rule="vault"] td[data-outcome="refused"]');
  assert.ok(Number(vaultRefused) >= 1, `vault refused ${vaultRefused}`);
  // The chart's bars carry their tooltips as SVG titles.
  const tooltip = await page.locator("svg.chart rect title").first().textContent();
  assert.match(tooltip, /UTC: .+ \d/);
  const changes = await text(page, "#changes");
  for (const d of [expect.signed, expect.unsigned_spdx, expect.vault_digest]) {
    assert.ok(
      (await page.locator(`#changes a[href$="#${d}"]`).count()) >= 1,
      `${d} among the digests first decided: ${changes}`,
    );
  }
  await shot(page, "overview");
  await page.click('a[href="/ui/?window=7d"]');
  assert.ok(page.url().endsWith("/ui/?window=7d"));
  assert.equal(Number((await text(page, "#tile-pulls .v")).replaceAll(",", "")), pulls);

  // Audit: the unsigned images let through, the refusal under enforce; the filters; a link.
  await page.click('nav a[href="/ui/audit"]');
  assert.ok(page.url().endsWith("/ui/audit"));
  const letRows = page.locator("#let-through tr.finding");
  const letDigests = await letRows.evaluateAll((rows) => rows.map((r) => r.dataset.digest));
  assert.ok(letDigests.includes(expect.unsigned_spdx), `let through: ${letDigests}`);
  assert.ok(letDigests.includes(expect.unsigned_cdx), `let through: ${letDigests}`);
  assert.ok(!letDigests.includes(expect.signed), "the signed image is verified");
  assert.match(await text(page, "#let-through h3"), /rule shop \(audit\): \d+ images? (is|are) unsigned/);
  const refusedRow = page.locator(`#refused tr.finding[data-digest="${expect.vault_digest}"]`);
  assert.equal(await refusedRow.count(), 1, "the refused vault image");
  assert.match(await refusedRow.innerText(), /refused/);
  await shot(page, "audit");
  await page.selectOption('select[name="rule"]', "vault");
  await page.click('form.filters button[type="submit"]');
  assert.match(page.url(), /rule=vault/);
  assert.equal(await page.locator("#let-through").count(), 0, "vault has nothing let through");
  assert.equal(await page.locator("#refused tr.finding").count(), 1);
  await page.fill('input[name="image"]', `${expect.shop}*`);
  await page.selectOption('select[name="rule"]', "");
  await page.click('form.filters button[type="submit"]');
  assert.equal(await page.locator("#refused").count(), 0, "the glob leaves vault out");
  await page.goto(`${base}/ui/audit`);
  await page.click(`#refused a[href="/ui/images/${expect.vault}"]`);
  assert.equal(await text(page, "#image-name"), expect.vault);

  // Image: the signed digest's signature, the attestor and signer, its SBOM, its client.
  await page.goto(`${base}/ui/audit`);
  await page.click(`#let-through a[href="/ui/images/${expect.shop}"]`);
  assert.equal(await text(page, "#image-name"), expect.shop);
  const signed = page.locator(`section[id="${expect.signed}"]`);
  const signedText = await signed.innerText();
  assert.match(signedText, /Under rule shop: verified/);
  assert.ok(signedText.includes(expect.identity), `the signer in ${signedText}`);
  assert.match(signedText, /attestor 1 of rule shop: keyless/);
  assert.match(signedText, /spdx-2 from a signed attestation/);
  assert.ok(
    (await signed.locator("table.packages tr", { hasText: /musl/ }).count()) === 1,
    "musl among the signed image's packages",
  );
  const unsignedText = await page.locator(`section[id="${expect.unsigned_spdx}"]`).innerText();
  assert.match(unsignedText, /No signature found/);
  assert.match(unsignedText, /from an unsigned referrer/);
  const clients = await page.locator("#clients tr.client").allInnerTexts();
  assert.ok(clients.some((c) => /containerd/.test(c)), `containerd among ${clients}`);
  await shot(page, "image");

  // Inventory: zlib before 1.3.1-r2 is in the signed and the unsigned SPDX image, not the
  // CycloneDX one (1.3.1-r2).
  await page.click('nav a[href="/ui/inventory"]');
  await page.fill('input[name="package"]', "pkg:apk/alpine/zlib");
  await page.fill('input[name="range"]', "<1.3.1-r2");
  await page.click('form.filters button[type="submit"]');
  const hits = await page
    .locator("#by-package tr.hit")
    .evaluateAll((rows) => rows.map((r) => r.dataset.digest));
  assert.ok(hits.includes(expect.signed), `hits ${hits}`);
  assert.ok(hits.includes(expect.unsigned_spdx), `hits ${hits}`);
  assert.ok(!hits.includes(expect.unsigned_cdx), `hits ${hits}`);
  assert.match(await text(page, "#by-package .unseen"), /pulled digest\(s\) have no SBOM/);
  await shot(page, "inventory");
  await page.click(`#by-package tr.hit[data-digest="${expect.signed}"] td:nth-child(2) a`);
  assert.ok(page.url().endsWith(`#${expect.signed}`), page.url());

  // Policies: the rules, and why the vault rule applies to the vault image.
  await page.click('nav a[href="/ui/policies"]');
  assert.equal(await page.locator("#rule-vault, #rule-shop").count(), 2);
  await page.fill('input[name="image"]', `${expect.vault}:v1`);
  await page.click('#which button[type="submit"]');
  assert.match(await text(page, "#explanation .applies"), /Rule vault \(enforce\) applies/);
  assert.match(await text(page, "#explanation"), new RegExp(`Also matched[^]*shop: ${expect.shop_pattern.replaceAll("*", "\\*")}`));
  await shot(page, "policies");

  await context.close();
  console.log("console test: all pages checked");
} finally {
  await browser.close();
}
