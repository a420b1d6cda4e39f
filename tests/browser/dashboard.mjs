// End-to-end check of mb-dashboard in a real headless browser.
//
// Usage: node dashboard.mjs CUSTOMER_URL FLEET_URL ARTIFACT_DIR
//   CUSTOMER_URL: a dashboard scoped to the fixture customer (acme);
//   FLEET_URL:    an unscoped dashboard over the same database;
//   ARTIFACT_DIR: where the screenshots go (kept as test artifacts).
// Environment: MB_CHROMIUM (default /usr/bin/chromium).
//
// At 1400 and 800 px it checks what a reader sees: every piece of text
// lies inside its card (no label cut at the card's edge), chart text has
// the body's font size, axis labels do not overlap, nothing scrolls
// sideways, the invoice is the viewed month's (final for a past month,
// projected for the current one), empty sections share one empty state,
// and the fleet view marks the stale VM. It also switches the period with
// the page's own links, and checks that no request leaves the dashboard and
// nothing is logged as an error. Prints one line per check; exits 1 on the
// first failure.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [base, fleetBase, artifacts] = process.argv.slice(2);
if (!base || !fleetBase || !artifacts) {
  console.error('usage: node dashboard.mjs CUSTOMER_URL FLEET_URL ARTIFACT_DIR');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

function check(cond, what) {
  if (!cond) {
    throw new Error(`FAIL: ${what}`);
  }
  console.log(`ok: ${what}`);
}

// Text that leaves its card, as [section id, text, how far] triples. Each
// text node is measured with a Range, so a label pushed past the card's
// left edge (the old SVG text-anchor=end bug) or cut by overflow shows up.
function outside() {
  const bad = [];
  for (const sec of document.querySelectorAll('main section')) {
    const box = sec.getBoundingClientRect();
    const walk = document.createTreeWalker(sec, NodeFilter.SHOW_TEXT);
    for (let n = walk.nextNode(); n; n = walk.nextNode()) {
      if (!n.textContent.trim() || n.parentElement.closest('title')) continue;
      const r = document.createRange();
      r.selectNodeContents(n);
      for (const q of r.getClientRects()) {
        if (q.width === 0) continue;
        const off = Math.max(box.left - q.left, q.right - box.right, box.top - q.top,
          q.bottom - box.bottom);
        if (off > 0.5) bad.push([sec.id, n.textContent.trim().slice(0, 40), Math.round(off)]);
      }
    }
    // Inner scroll boxes must not scroll either.
    for (const el of sec.querySelectorAll('*')) {
      const cs = getComputedStyle(el);
      if ((cs.overflowX === 'auto' || cs.overflowX === 'scroll') && el.scrollWidth > el.clientWidth + 1) {
        bad.push([sec.id, `scrolls: ${el.tagName}.${el.className}`, el.scrollWidth - el.clientWidth]);
      }
    }
  }
  return bad;
}

// Font sizes of every piece of chart text, and of the body.
function fonts() {
  const body = getComputedStyle(document.body).fontSize;
  const sizes = [...document.querySelectorAll(
    'figure.chart .axis, figure.chart .legend, .hbar .label, .hbar .value, .empty')]
    .map((e) => [e.className, e.textContent.slice(0, 30), getComputedStyle(e).fontSize]);
  return { body, sizes, svgText: document.querySelectorAll('svg text').length };
}

// Pairs of x-axis labels of one chart that overlap.
function overlaps() {
  const bad = [];
  for (const fig of document.querySelectorAll('figure.chart')) {
    const xs = [...fig.querySelectorAll('.axis.x')].map((e) => [e.textContent, e.getBoundingClientRect()]);
    for (let i = 1; i < xs.length; i += 1) {
      if (xs[i][1].left < xs[i - 1][1].right) bad.push([xs[i - 1][0], xs[i][0]]);
    }
  }
  return bad;
}

const browser = await chromium.launch({
  executablePath: process.env.MB_CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--no-first-run'],
});
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  const foreign = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('request', (r) => {
    if (!r.url().startsWith(base) && !r.url().startsWith(fleetBase)) foreign.push(r.url());
  });

  async function charts() {
    return page.$$eval('figure.chart', (figs) => figs.map((f) => {
      const box = f.getBoundingClientRect();
      return {
        kind: f.getAttribute('class'),
        width: box.width,
        height: box.height,
        bars: [...f.querySelectorAll('rect.bar, .hbar .bar')]
          .filter((r) => r.getBoundingClientRect().height > 0 && r.getBoundingClientRect().width > 0).length,
        lines: f.querySelectorAll('polyline').length,
        dots: f.querySelectorAll('.dot').length,
      };
    }));
  }
  const period = async () => (await page.textContent('#period')).trim();
  const shot = async (name) => {
    const path = join(artifacts, name);
    await page.screenshot({ path, fullPage: true });
    console.log(`screenshot: ${path}`);
  };

  for (const width of [1400, 800]) {
    await page.setViewportSize({ width, height: 900 });
    await page.goto(`${base}/?period=month&date=2026-11-03`);
    check(await period() === '2026-11', `${width}px: month page loads with period 2026-11`);
    const c = await charts();
    check(c.length === 3, `${width}px: three charts (${c.map((x) => x.kind).join(', ')})`);
    check(c.every((x) => x.width > 300 && x.height > 50), `${width}px: every chart is laid out with a size`);
    check(c.find((x) => x.kind.includes('hbars')).bars === 4, `${width}px: cost by model: 4 bars`);
    check(c.find((x) => x.kind === 'chart bars').bars === 3, `${width}px: cost per day: 3 days with cost (03, 10, 27)`);
    check(c.find((x) => x.kind.includes('lines')).dots === 2, `${width}px: CPU and memory: one point each on day 03`);
    const out = await page.evaluate(outside);
    check(out.length === 0, `${width}px: every text lies inside its card ${JSON.stringify(out)}`);
    const label = await page.$$eval('.hbar .label', (ls) => ls.map((l) => l.textContent));
    check(label.includes('anthropic/claude-sonnet-4-5-20250929'),
      `${width}px: the long model label is shown whole`);
    const f = await page.evaluate(fonts);
    check(f.svgText === 0, `${width}px: no SVG text (it would scale with the chart)`);
    const odd = f.sizes.filter((s) => s[2] !== f.body);
    check(f.sizes.length > 20 && odd.length === 0,
      `${width}px: ${f.sizes.length} chart texts at the body size ${f.body} ${JSON.stringify(odd)}`);
    const ov = await page.evaluate(overlaps);
    check(ov.length === 0, `${width}px: x-axis labels do not overlap ${JSON.stringify(ov)}`);
    const sw = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    check(sw[0] <= sw[1], `${width}px: no sideways scroll (${sw[0]} <= ${sw[1]})`);
    const cost = await page.$eval('#api table.models', (t) => {
      const sec = t.closest('section').getBoundingClientRect();
      const th = [...t.querySelectorAll('th')].pop().getBoundingClientRect();
      return [th.right, sec.right, window.innerWidth];
    });
    check(cost[0] <= cost[1] && cost[1] <= cost[2], `${width}px: the cost column is inside the card and the window ${JSON.stringify(cost)}`);
    const inv = await page.$eval('#invoice', (s) => [s.dataset.month, s.dataset.state, s.textContent]);
    check(inv[0] === '2026-11' && inv[1] === 'projected' && inv[2].includes('Projected to month end'),
      `${width}px: the current month's invoice is a projection of 2026-11`);
    const badges = await page.textContent('#registry');
    check(badges.includes('tier pro') && badges.includes('active'), `${width}px: tier and status shown (${badges})`);
    const span = await page.textContent('#span');
    check(span.startsWith('2026-11-01 to 2026-11-30 (UTC)') && !span.includes('T00:00:00Z'),
      `${width}px: the heading gives local dates (${span.slice(0, 30)})`);
    await shot(`${width}-month.png`);

    // A past month: its own invoice, final.
    await page.click('#prev');
    check(await period() === '2026-10', `${width}px: previous link goes to 2026-10`);
    const past = await page.$eval('#invoice', (s) => [s.dataset.month, s.dataset.state, s.textContent]);
    check(past[0] === '2026-10' && past[1] === 'final' && !past[2].includes('Projected'),
      `${width}px: October shows October's invoice, final`);
    check((await page.evaluate(outside)).length === 0, `${width}px: October: every text inside its card`);
    await shot(`${width}-october.png`);

    // An empty month: one empty-state style, missing shown as missing.
    await page.goto(`${base}/?month=2026-01`);
    const empties = await page.$$eval('.empty', (es) => es.map((e) => {
      const cs = getComputedStyle(e);
      return [e.closest('section').id, cs.fontSize, cs.color, cs.fontStyle, e.tagName];
    }));
    const same = empties.every((e) => e.slice(1).join() === empties[0].slice(1).join());
    check(empties.length === 4 && same,
      `${width}px: api, cost, resources and activity share one empty state ${JSON.stringify(empties)}`);
    const zero = await page.$$eval('section dd', (d) => d.map((x) => x.textContent));
    check(!zero.some((t) => /^0\.0 (MB|%)/.test(t)), `${width}px: no missing figure shown as 0.0 ${JSON.stringify(zero)}`);
    check(await page.$$eval('main svg', (s) => s.length) === 0, `${width}px: no empty chart drawn`);
    await shot(`${width}-empty.png`);

    // The fleet view.
    await page.goto(`${fleetBase}/?period=month&date=2026-11-03`);
    const rows = await page.$$eval('#customers tbody tr', (r) => r.map((x) => x.textContent));
    check(rows.length === 3 && rows[2].startsWith('Total'), `${width}px: fleet: two customers and a total row`);
    check(rows[0].includes('pro') && rows[0].includes('active') && rows[0].includes('of 1,000,000'),
      `${width}px: fleet: tier, status and tokens against the allowance`);
    const vm = await page.$eval('#vms tr[data-vm="vm-1"]', (r) => [r.className, r.textContent]);
    check(vm[0].includes('state-stale') && vm[1].includes('stale'), `${width}px: fleet: vm-1 is marked stale`);
    const fo = await page.evaluate(outside);
    check(fo.length === 0, `${width}px: fleet: every text inside its card ${JSON.stringify(fo)}`);
    const fw = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    check(fw[0] <= fw[1], `${width}px: fleet: no sideways scroll (${fw[0]} <= ${fw[1]})`);
    await shot(`${width}-fleet.png`);
  }

  await page.setViewportSize({ width: 1400, height: 900 });
  await page.goto(`${base}/?period=month&date=2026-11-03`);
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
  let c = await charts();
  check(c.find((x) => x.kind === 'chart bars').bars === 1, 'W45 has cost on one day, Tue 03');
  check(await page.$eval('#invoice', (s) => s.dataset.month) === '2026-11', 'a November week shows the November invoice');
  await page.click('a[data-unit="day"]');
  check(await period() === '2026-11-02', 'day selector shows the first day of the week, 2026-11-02');
  await page.click('#next');
  check(await period() === '2026-11-03', 'next day is 2026-11-03');
  c = await charts();
  check(c.find((x) => x.kind === 'chart bars').bars === 2, 'hourly cost: bars at 10:00 and 14:00');
  check(c.find((x) => x.kind.includes('lines')).dots === 2, 'CPU and memory points drawn for hour 10');
  check((await page.evaluate(overlaps)).length === 0, 'hourly x-axis labels do not overlap');
  await shot('1400-day.png');
  await page.click('a[data-unit="month"]');
  check(await period() === '2026-11', 'month selector returns to 2026-11');

  check(errors.length === 0, `no console errors ${JSON.stringify(errors)}`);
  check(foreign.length === 0, `no request leaves the dashboard ${JSON.stringify(foreign)}`);
} catch (e) {
  console.error(e.message);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
