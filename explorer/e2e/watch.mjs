// Keeps BROWSERS (default 2) headless chromium pages on the Explorer's dashboard, each with its
// own browser process and live stream, until stdin closes or SECONDS (default 600) pass.
// Used by scripts/explorer-overhead.sh: "two browsers connected". BLANK=1 opens about:blank
// instead (the control: chromium running, the Explorer not shown).
import { chromium } from "playwright-core";

const url = process.env.EXPLORER_URL;
const count = Number(process.env.BROWSERS ?? 2);
const seconds = Number(process.env.SECONDS ?? 600);
if (!url) throw new Error("EXPLORER_URL is not set");
const args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const browsers = [];
for (let i = 0; i < count; i++) {
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  if (process.env.BLANK) {
    await page.goto("about:blank"); // the control: a browser that shows nothing of the Explorer
  } else {
    await page.goto(url);
    await page.waitForSelector('[data-testid="ws-status"][data-state="live"]', { timeout: 15000 });
  }
  browsers.push(browser);
}
console.log(`watching ${url} with ${count} browsers`);
const done = () => Promise.all(browsers.map((browser) => browser.close())).then(() => process.exit(0));
process.stdin.on("end", done);
process.stdin.resume();
setTimeout(done, seconds * 1000);
