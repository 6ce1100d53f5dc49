// Loads the status page in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core), waits in real time so the page collects a few
// samples, and writes a screenshot. Prints JSON: console errors, body state.
//   node tests/js/screenshot.js URL OUT.png [WAIT_MS]
const { chromium } = require('playwright-core');

(async () => {
  const [url, out, waitMs] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForTimeout(Number(waitMs || 8000));
  const state = await page.getAttribute('body', 'data-state');
  await page.screenshot({ path: out });
  await browser.close();
  console.log(JSON.stringify({ errors, state }));
})().catch((e) => { console.error(e); process.exit(1); });
