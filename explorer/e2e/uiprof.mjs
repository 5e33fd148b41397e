// Where an open dashboard spends the browser's time: opens EXPLORER_URL (+ VIEW, e.g. "packets")
// in one headless chromium (WIDTH x HEIGHT, default 1400 x 900), waits WARMUP seconds (default 5),
// then prints what the page's main thread did over SECONDS (default 10; CDP Performance metrics)
// and the CPU of every chromium process. TRACE=1 also records a trace and prints the 30 largest
// totals by thread and event name (tracing inflates every number); DOM=1 prints the page's
// elements by tag. Run it against a node carrying traffic, e.g. `m2m-loadgen --rate 100000`.
import { chromium } from "playwright-core";
import { readFileSync, readdirSync } from "node:fs";

const url = process.env.EXPLORER_URL;
const seconds = Number(process.env.SECONDS ?? 10);
const warmup = Number(process.env.WARMUP ?? 5);
const view = process.env.VIEW ?? "";
const args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args });
const page = await browser.newPage({ viewport: { width: Number(process.env.WIDTH ?? 1400), height: Number(process.env.HEIGHT ?? 900) } });
await page.goto(url + view);
await page.waitForSelector('[data-testid="ws-status"][data-state="live"]', { timeout: 15000 });
const cdp = await page.context().newCDPSession(page);
await cdp.send("Performance.enable");
const ticks = () => {
  let total = 0;
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("/usr/lib/chromium/")) continue;
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
      total += Number(fields[11]) + Number(fields[12]);
    } catch {}
  }
  return total;
};
const metrics = async () => Object.fromEntries((await cdp.send("Performance.getMetrics")).metrics.map((m) => [m.name, m.value]));
await new Promise((r) => setTimeout(r, warmup * 1000));
const a = await metrics();
const ta = ticks();
if (process.env.TRACE) await browser.startTracing(page, { categories: ["devtools.timeline", "v8", "blink", "cc", "viz", "toplevel"] });
await new Promise((r) => setTimeout(r, seconds * 1000));
const b = await metrics();
if (process.env.TRACE) {
  const trace = JSON.parse((await browser.stopTracing()).toString());
  const byName = new Map();
  const threads = new Map();
  for (const event of trace.traceEvents) {
    if (event.ph === "M" && event.name === "thread_name") threads.set(`${event.pid}:${event.tid}`, event.args.name);
  }
  for (const event of trace.traceEvents) {
    if (event.ph !== "X" || !event.dur) continue;
    const key = `${threads.get(`${event.pid}:${event.tid}`) ?? event.tid} ${event.name}`;
    byName.set(key, (byName.get(key) ?? 0) + event.dur / 1000);
  }
  for (const [key, ms] of [...byName].sort((x, y) => y[1] - x[1]).slice(0, 30)) console.log(`${(ms / seconds).toFixed(2).padStart(8)} ms/s  ${key}`);
}
const tb = ticks();
const per = (name) => (((b[name] ?? 0) - (a[name] ?? 0)) * 1000 / seconds).toFixed(1);
console.log(`chromium CPU ${(100 * (tb - ta) / 100 / seconds).toFixed(1)}% of a core; main thread ms/s: task ${per("TaskDuration")}, script ${per("ScriptDuration")}, layout ${per("LayoutDuration")}, style ${per("RecalcStyleDuration")}; layouts/s ${(((b.LayoutCount ?? 0) - (a.LayoutCount ?? 0)) / seconds).toFixed(1)}, style recalcs/s ${(((b.RecalcStyleCount ?? 0) - (a.RecalcStyleCount ?? 0)) / seconds).toFixed(1)}, DOM nodes ${b.Nodes}, JS heap ${(b.JSHeapUsedSize / 1e6).toFixed(1)} MB`);
if (process.env.DOM) console.log(await page.evaluate(() => {
  const counts = {};
  for (const element of document.getElementsByTagName("*")) counts[element.tagName] = (counts[element.tagName] ?? 0) + 1;
  return JSON.stringify(counts) + " health chars " + (document.querySelector('[data-testid="health"]')?.textContent.length ?? 0);
}));
await browser.close();
