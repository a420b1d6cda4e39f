// End-to-end check of mb-dashboard in a real headless browser.
//
// Usage: node dashboard.mjs BASE_URL [SCREENSHOT.png]
// Environment: MB_CHROMIUM (default /usr/bin/chromium).
//
// Loads the page of the fixture customer, checks that the three inline SVG
// charts are laid out and drawn (bars with a height, lines with points),
// switches the period with the page's own links (previous, next, the
// day/week/month selector), and checks that the page never requests
// anything outside the dashboard and logs no error. Prints one line per
// check; exits 1 on the first failure.
import { chromium } from 'playwright-core';

const base = process.argv[2];
const shot = process.argv[3];
if (!base) {
  console.error('usage: node dashboard.mjs BASE_URL [SCREENSHOT.png]');
  process.exit(2);
}

function check(cond, what) {
  if (!cond) {
    throw new Error(`FAIL: ${what}`);
  }
  console.log(`ok: ${what}`);
}

const browser = await chromium.launch({
  executablePath: process.env.MB_CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--no-first-run'],
});
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors = [];
  const foreign = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('request', (r) => { if (!r.url().startsWith(base)) foreign.push(r.url()); });

  // Charts are drawn: laid out with a size, and with marks in them.
  async function charts() {
    return page.$$eval('svg.chart', (svgs) => svgs.map((s) => {
      const box = s.getBoundingClientRect();
      const bars = [...s.querySelectorAll('rect.bar')]
        .filter((r) => r.getBoundingClientRect().height > 0).length;
      return {
        kind: s.getAttribute('class'),
        width: box.width,
        height: box.height,
        bars,
        lines: s.querySelectorAll('polyline').length,
        dots: s.querySelectorAll('circle.dot').length,
      };
    }));
  }
  const period = async () => (await page.textContent('#period')).trim();

  await page.goto(`${base}/?period=month&date=2026-11-03`);
  check(await period() === '2026-11', 'month page loads with period 2026-11');
  let c = await charts();
  check(c.length === 3, `three SVG charts (${c.map((x) => x.kind).join(', ')})`);
  check(c.every((x) => x.width > 300 && x.height > 50), 'every chart is laid out with a size');
  const hbars = c.find((x) => x.kind.includes('hbars'));
  check(hbars && hbars.bars === 3, 'cost by model: 3 bars drawn');
  const bars = c.find((x) => x.kind === 'chart bars');
  check(bars && bars.bars === 3, 'cost per day: 3 days with cost drawn (03, 10, 27)');
  const lines = c.find((x) => x.kind.includes('lines'));
  check(lines && lines.dots === 2, 'CPU and memory: one point each on day 03');
  const text = await page.textContent('#api');
  check(text.includes('<script>alert(1)</script>'), 'a hostile model name shows as text');
  check(await page.$$eval('script', (s) => s.length) === 0, 'no script element in the page');

  await page.click('#prev');
  check(await period() === '2026-10', 'previous link goes to 2026-10');
  await page.click('#next');
  check(await period() === '2026-11', 'next link comes back to 2026-11');
  await page.click('a[data-unit="week"]');
  check(await period() === '2026-W44', 'week selector shows the week of the month start, 2026-W44');
  await page.click('#next');
  check(await period() === '2026-W45', 'next week is 2026-W45');
  c = await charts();
  check(c.find((x) => x.kind === 'chart bars').bars === 1, 'W45 has cost on one day, Tue 03');
  await page.click('a[data-unit="day"]');
  check(await period() === '2026-11-02', 'day selector shows the first day of the week, 2026-11-02');
  await page.click('#next');
  check(await period() === '2026-11-03', 'next day is 2026-11-03');
  c = await charts();
  check(c.find((x) => x.kind === 'chart bars').bars === 2, 'hourly cost: bars at 10:00 and 14:00');
  check(c.find((x) => x.kind.includes('lines')).dots === 2, 'CPU and memory points drawn for hour 10');
  await page.click('a[data-unit="month"]');
  check(await period() === '2026-11', 'month selector returns to 2026-11');

  if (shot) {
    await page.goto(`${base}/?period=month&date=2026-11-03`);
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`screenshot: ${shot}`);
  }
  check(errors.length === 0, `no console errors ${JSON.stringify(errors)}`);
  check(foreign.length === 0, `no request leaves the dashboard ${JSON.stringify(foreign)}`);
} catch (e) {
  console.error(e.message);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
