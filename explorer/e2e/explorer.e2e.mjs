// The Explorer in a real browser: Debian's chromium driven by playwright-core, against a real
// node that carried loadgen traffic. Run by the Rust test `explorer::in_a_real_browser`
// (tests/it/explorer.rs), which starts the node and the traffic and answers this script's
// requests on stdin/stdout:
//   -> COUNTERS_OK   (start background traffic)   <- load
//   -> STOP_NODE                                   <- stopped
//   -> START_NODE                                  <- started
//   -> OK
// Environment: EXPLORER_URL, METRICS_URL, FULFILLED_LOG (lines "<condition> <fulfillment>"),
// OUT_DIR (screenshots, one per view). Exits 1 with the reason on the first failed check.
import { chromium } from "playwright-core";
import { mkdirSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { join } from "node:path";

const { EXPLORER_URL, METRICS_URL, FULFILLED_LOG, OUT_DIR } = process.env;
for (const [name, value] of Object.entries({ EXPLORER_URL, METRICS_URL, FULFILLED_LOG, OUT_DIR })) {
  if (!value) fail(`${name} is not set`);
}
mkdirSync(OUT_DIR, { recursive: true });

const lines = createInterface({ input: process.stdin });
const answers = [];
const waiting = [];
lines.on("line", (line) => (waiting.length ? waiting.shift()(line) : answers.push(line)));
function ask(request) {
  console.log(request);
  return new Promise((resolve) => (answers.length ? resolve(answers.shift()) : waiting.push(resolve)));
}

function fail(message) {
  console.error(`explorer e2e: ${message}`);
  process.exit(1);
}

async function check(what, body) {
  try {
    await body();
    console.error(`explorer e2e: ok: ${what}`);
  } catch (error) {
    await page?.screenshot({ path: join(OUT_DIR, "failure.png"), fullPage: true }).catch(() => undefined);
    fail(`${what}: ${error?.message ?? error}`);
  }
}

async function until(what, predicate, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await predicate();
      if (last === true) return;
    } catch (error) {
      last = error?.message ?? error;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${what} (last: ${JSON.stringify(last)})`);
}

async function metric(name, labels) {
  const text = await (await fetch(METRICS_URL)).text();
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    if (wanted.every((pair) => line.includes(pair))) return Number(line.split(" ").pop());
  }
  throw new Error(`no ${name} ${JSON.stringify(labels)} in /metrics`);
}

const testId = (id) => `[data-testid="${id}"]`;
let page;
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on("pageerror", (error) => console.error(`explorer e2e: page error: ${error.message}`));
  await page.goto(EXPLORER_URL);

  await check("the live stream connects", () => until("ws-status live", async () => (await page.getAttribute(testId("ws-status"), "data-state")) === "live"));

  await check("the dashboard's counters agree with /metrics", async () => {
    const fulfilled = await metric("ilp_packets_processed_total", { type: "prepare", status: "fulfilled" });
    const rejected = await metric("ilp_packets_processed_total", { type: "prepare", status: "rejected" });
    if (fulfilled === 0 || rejected === 0) throw new Error(`the traffic should have fulfilled and rejected packets (fulfilled ${fulfilled}, rejected ${rejected})`);
    await until(`dashboard shows fulfilled ${fulfilled} and rejected ${rejected}`, async () => {
      const shown = [await page.textContent(testId("total-fulfilled")), await page.textContent(testId("total-rejected"))];
      return shown[0] === String(fulfilled) && shown[1] === String(rejected) ? true : shown;
    });
  });
  await page.screenshot({ path: join(OUT_DIR, "1-dashboard.png"), fullPage: true });
  await ask("COUNTERS_OK");

  const logged = readFileSync(FULFILLED_LOG, "utf8").trim().split("\n").map((line) => line.split(" "));
  if (logged.length < 10) fail(`the fulfilled log has ${logged.length} lines`);
  const [condition, fulfillment] = logged[Math.floor(logged.length / 2)];

  await check("'/' focuses the search, and a logged condition opens the packet with its fulfillment", async () => {
    await page.keyboard.press("/");
    await until("search focused", async () => (await page.evaluate(() => document.activeElement?.getAttribute("data-testid"))) === "search");
    await page.keyboard.type(condition);
    await page.keyboard.press("Enter");
    await until("detail shows the fulfillment", async () => (await page.textContent(testId("detail-fulfillment")).catch(() => null)) === fulfillment);
    const shownCondition = await page.textContent(testId("detail-condition"));
    if (shownCondition !== condition) throw new Error(`condition shown ${shownCondition}, expected ${condition}`);
    const outcome = await page.textContent(testId("detail-outcome"));
    if (!outcome.startsWith("fulfilled")) throw new Error(`outcome ${outcome}`);
  });
  await page.screenshot({ path: join(OUT_DIR, "2-packets-detail.png"), fullPage: true });

  await check("filtering by a reject code lists only those packets", async () => {
    await page.click(testId("mode-history"));
    await page.fill(testId("filter-code"), "F02");
    await page.click(testId("filter-apply"));
    await until("rows with F02", async () => {
      const codes = await page.$$eval(testId("packet-row"), (rows) => rows.map((row) => row.getAttribute("data-code")));
      return codes.length > 0 && codes.every((code) => code === "F02") ? true : codes.slice(0, 5);
    });
    await page.fill(testId("filter-code"), "F99");
    await page.click(testId("filter-apply"));
    await until("rows with F99", async () => {
      const codes = await page.$$eval(testId("packet-row"), (rows) => rows.map((row) => row.getAttribute("data-code")));
      return codes.length > 0 && codes.every((code) => code === "F99") ? true : codes.slice(0, 5);
    });
  });
  await page.screenshot({ path: join(OUT_DIR, "2-packets-history-filtered.png"), fullPage: true });

  await check("Live → History → jump to live", async () => {
    await page.fill(testId("filter-code"), "");
    await page.click(testId("filter-apply"));
    await page.click(testId("mode-live"));
    await until("live mode", async () => (await page.getAttribute(testId("packets-meta"), "data-mode")) === "live");
    await until("live rows arrive", async () => (await page.$$(testId("packet-row"))).length > 0);
    await page.click(testId("mode-history"));
    await until("history mode", async () => (await page.getAttribute(testId("packets-meta"), "data-mode")) === "history");
    await until("history rows", async () => (await page.$$(testId("packet-row"))).length > 0);
    await page.click(testId("jump-live"));
    await until("back to live", async () => (await page.getAttribute(testId("packets-meta"), "data-mode")) === "live");
    if (await page.$(testId("jump-live"))) throw new Error("jump to live still shown in live mode");
  });

  await check("keys 3, 4, 5 and 1 switch views", async () => {
    await page.click("h1");
    for (const [key, id, shot] of [["3", "accounts", "3-accounts"], ["4", "peers-table", "4-peers"], ["5", "routes-table", "5-routes"], ["1", "total-fulfilled", "1-dashboard-live"]]) {
      await page.keyboard.press(key);
      await page.waitForSelector(testId(id), { timeout: 5000 });
      await page.waitForTimeout(300);
      await page.screenshot({ path: join(OUT_DIR, `${shot}.png`), fullPage: true });
    }
    const accounts = await page.goto(`${EXPLORER_URL}/accounts`).then(() => page.waitForSelector(testId("account-alice"), { timeout: 5000 }));
    if (!accounts) throw new Error("alice's account is not shown");
  });

  await check("the WebSocket recovers by itself when the node restarts", async () => {
    await until("live before the stop", async () => (await page.getAttribute(testId("ws-status"), "data-state")) === "live");
    await ask("STOP_NODE");
    await until("reconnecting while the node is down", async () => (await page.getAttribute(testId("ws-status"), "data-state")) === "reconnecting");
    await ask("START_NODE");
    await until("live again", async () => (await page.getAttribute(testId("ws-status"), "data-state")) === "live", 20000);
  });
  await page.screenshot({ path: join(OUT_DIR, "6-reconnected.png"), fullPage: true });
  console.log("OK");
} finally {
  await browser.close();
}
process.exit(0);
