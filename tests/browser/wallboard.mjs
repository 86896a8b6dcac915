// Renders the wallboard in headless Chromium and prints what the page shows next to the
// snapshot it rendered, as one JSON line. Usage:
//   node wallboard.mjs <url with ?token=...> <screenshot.png> <queue> <min depth>
// Driven by tests/wallboard_browser.rs; needs Debian's chromium and playwright-core
// (scripts/install-test-deps.sh).
import { chromium } from "playwright-core";

const [url, screenshot, queue, minDepth] = process.argv.slice(2);
const executablePath = process.env.HOTLINE_CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
try {
  const page = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
  await page.goto(url);
  await page.waitForFunction(
    ([q, min]) => {
      const s = window.lastSnapshot;
      const row = document.querySelector(`tr[data-queue="${q}"]`);
      return s && row && s.queues.some(x => x.name === q && x.depth >= min);
    },
    [queue, Number(minDepth)],
    { timeout: 30000 },
  );
  // Read the DOM and the snapshot it was built from in one step, so they match.
  const shown = await page.evaluate(q => {
    const row = document.querySelector(`tr[data-queue="${q}"]`);
    const text = sel => document.querySelector(sel).textContent;
    return {
      snapshot: window.lastSnapshot,
      queue: {
        depth: row.querySelector(".depth").textContent,
        oldest: row.querySelector(".oldest").textContent,
        rowClass: row.className,
      },
      rateToday: text("#rate-today"),
      rate24h: text("#rate-24h"),
      overBudget: text("#over-budget"),
      callbacks: text("#callbacks"),
      callbacksPanel: document.querySelector("#callbacks-panel").className,
      urgent: text("#urgent"),
      complaints: text("#complaints"),
      link: text("#link"),
      agents: Object.fromEntries([...document.querySelectorAll("tr[data-agent]")].map(r => [r.dataset.agent, r.querySelector(".state").textContent])),
    };
  }, queue);
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify(shown));
} finally {
  await browser.close();
}
