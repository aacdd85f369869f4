// Browser test of the dashboard: headless Chromium (Debian's /usr/bin/chromium) driven by
// playwright-core against a running gitvirt status server.
//
//   GITVIRT_URL=http://127.0.0.1:8080 node --test dashboard.test.mjs     (or ./run.sh URL)
//
// Environment: GITVIRT_URL (required); GITVIRT_TOKEN, a bearer token when the API wants one;
// GITVIRT_JOB_TIMEOUT_MS, how long to wait for a job to run to its end (default 120000);
// GITVIRT_SCREENSHOT, a PNG file to save the page to while the job runs;
// GITVIRT_MIN_PROGRESS_VALUES, how many distinct progress values a job must show (default 2; a
// job that ends showing fewer, because the test started late in it, is skipped for the next).
// The progress test needs a job to start and finish while it watches: the demo server runs one
// every few seconds; against a real `gitvirt serve`, start an apply.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const BASE = (process.env.GITVIRT_URL || "").replace(/\/$/, "");
const TOKEN = process.env.GITVIRT_TOKEN || "";
const JOB_TIMEOUT_MS = Number(process.env.GITVIRT_JOB_TIMEOUT_MS || 120000);
const SCREENSHOT = process.env.GITVIRT_SCREENSHOT || "";  // a PNG path: the page mid-job
const MIN_VALUES = Number(process.env.GITVIRT_MIN_PROGRESS_VALUES || 2);
assert.ok(BASE, "set GITVIRT_URL to the server's URL");

let profile;
let context;

before(async () => {
  profile = mkdtempSync(join(tmpdir(), "gitvirt-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    ignoreHTTPSErrors: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  if (TOKEN) {
    await context.addInitScript((token) => sessionStorage.setItem("gitvirt-token", token), TOKEN);
  }
});

after(async () => {
  if (context) await context.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

async function apiJson(path) {
  const headers = TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {};
  const response = await context.request.get(BASE + path, { headers });
  assert.equal(response.status(), 200, `${path}: HTTP ${response.status()}`);
  return response.json();
}

async function openDashboard() {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  const response = await page.goto(BASE + "/");
  assert.equal(response.status(), 200);
  return { page, errors };
}

test("the dashboard loads and shows every resource with its sync status", async () => {
  const { page, errors } = await openDashboard();
  const resources = await apiJson("/api/v1/resources?limit=1000");
  assert.ok(resources.total > 0, "the server has resources to show");

  await page.waitForSelector("#resources tbody tr[data-name]", { timeout: 15000 });
  await page.waitForFunction(
    (n) => document.querySelectorAll("#resources tbody tr[data-name]").length === n,
    Math.min(resources.total, 1000), { timeout: 15000 });
  for (const r of resources.items.slice(0, 25)) {
    const row = page.locator(`#resources tr[data-kind="${r.kind}"][data-name="${r.name}"]`);
    assert.equal(await row.count(), 1, `a row for ${r.kind}/${r.name}`);
    assert.equal(await row.getAttribute("data-sync"), r.sync);
    assert.equal(await row.getAttribute("data-health"), r.health);
  }

  const status = await apiJson("/api/v1/status");
  await page.waitForFunction(() => document.querySelector("#sync-state").dataset.state !== "");
  assert.equal(await page.locator("#sync-state").getAttribute("data-state"), status.lastSyncResult);
  assert.equal(await page.locator("#revision").textContent(),
               status.revision ? status.revision.slice(0, 10) : "-");
  assert.equal(await page.locator("#nodes [data-node]").count(), status.counts.nodes);
  assert.equal(await page.locator("#clusters tr[data-name]").count(), status.counts.clusters);

  // A drifted resource opens its details with the drift listed.
  const drifted = resources.items.find((r) => r.driftCount > 0);
  if (drifted) {
    await page.click(`#resources tr[data-kind="${drifted.kind}"][data-name="${drifted.name}"]`);
    await page.waitForSelector("#resource-detail:not([hidden]) #detail-drift tbody tr");
    assert.equal(await page.locator("#detail-name").textContent(), `${drifted.kind}/${drifted.name}`);
  }
  assert.deepEqual(errors, [], "no script errors");
  await page.close();
});

test("the job progress bar moves live while a job runs and ends at 100", async (t) => {
  const { page, errors } = await openDashboard();
  const bar = page.locator("#job-progress");
  const seen = new Map();  // job id -> values in the order seen
  let running = null;      // the job seen below 100
  const deadline = Date.now() + JOB_TIMEOUT_MS;
  let done = false;
  let shot = false;
  while (!done && Date.now() < deadline) {
    const [job, value] = await Promise.all([bar.getAttribute("data-job"), bar.getAttribute("aria-valuenow")]);
    const percent = Number(value);
    if (job) {
      const values = seen.get(job) || [];
      if (values[values.length - 1] !== percent) values.push(percent);
      seen.set(job, values);
      if (percent < 100 && !running) running = job;
      if (running === job && percent >= 40 && SCREENSHOT && !shot) {
        shot = true;
        await page.screenshot({ path: SCREENSHOT, fullPage: true });
      }
      if (running === job && percent === 100) {
        if (new Set(values).size >= MIN_VALUES) done = true;
        else running = null;  // caught too late in this job: watch the next one
      }
    }
    await page.waitForTimeout(100);
  }
  const values = running ? seen.get(running) : [];
  t.diagnostic(`job ${running}: progress ${values.join(" -> ")}`);
  assert.ok(running, `a job ran while the test watched (seen: ${JSON.stringify([...seen])})`);
  assert.ok(done, `job ${running} reached 100% (values: ${values})`);
  assert.ok(new Set(values).size >= Math.max(2, MIN_VALUES),
            `at least ${Math.max(2, MIN_VALUES)} progress values (values: ${values})`);
  assert.equal(values[values.length - 1], 100);
  // The job also shows as finished in the recent jobs table.
  await page.waitForSelector(`#jobs tr[data-id="${running}"]`, { timeout: 10000 });
  assert.deepEqual(errors, [], "no script errors");
  await page.close();
});
