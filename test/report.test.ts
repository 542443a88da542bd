/**
 * The HTML report in a real browser: headless Chromium (Debian's, driven by playwright-core)
 * opens the file offline, renders it without console errors, and every chart has data. Where no
 * Chromium is installed the test says so and skips (.ci/run installs it).
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { bootWorkload, summarize } from '../kernel/boot/cmd-run.ts';
import { renderReport } from '../kernel/boot/report.ts';
import { loadWorkload } from '../kernel/boot/workload.ts';
import { Timeline } from '../kernel/observe/timeline.ts';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

async function makeReport(dir: string): Promise<string> {
  const w = loadWorkload('userland/workloads/thrashing.yaml');
  const run = await bootWorkload(w);
  const timeline = new Timeline(run.m.kernel, 5_000_000);
  run.m.kernel.run();
  timeline.sample();
  run.m.shutdown();
  const html = renderReport({
    title: 'test report',
    workloadText: 'processes: []',
    args: run.args,
    summary: summarize(run.m, w),
    timeline,
    kernel: run.m.kernel,
  });
  const path = join(dir, 'report.html');
  writeFileSync(path, html);
  return path;
}

describe('the HTML report', () => {
  it('is one self-contained file: the chart library and the data are inlined', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmlab-report-'));
    const path = await makeReport(dir);
    const { readFileSync } = await import('node:fs');
    const html = readFileSync(path, 'utf8');
    expect(html).toContain('<script type="application/json" id="data">');
    expect(html).not.toMatch(/<script[^>]+src=/);
    expect(html).not.toMatch(/<link[^>]+href=/);
    const data = JSON.parse(
      html.split('<script type="application/json" id="data">')[1]!.split('</script>')[0]!,
    );
    expect(data.t.length).toBeGreaterThan(10);
    expect(data.frames.codes.length).toBe(8192);
    expect(Math.max(...data.rates.majorFaults)).toBeGreaterThan(0);
  });

  it.skipIf(CHROMIUM === undefined)(
    'renders in headless Chromium without console errors, every chart with data',
    async () => {
      const { chromium } = await import('playwright-core');
      const dir = mkdtempSync(join(tmpdir(), 'vmlab-report-'));
      const path = await makeReport(dir);
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      });
      try {
        const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
        const errors: string[] = [];
        page.on('console', (m) => {
          if (m.type() === 'error') errors.push(m.text());
        });
        page.on('pageerror', (e) => errors.push(String(e)));
        await page.goto(pathToFileURL(path).href);
        await page.waitForSelector('#c-cpu .u-over');
        const charts = await page.$$eval('[id^="c-"]', (els) =>
          els.map((e) => ({
            id: e.id,
            points: Number((e as unknown as { dataset: Record<string, string> }).dataset.points),
            canvases: e.querySelectorAll('canvas').length,
          })),
        );
        expect(charts).toHaveLength(4);
        for (const c of charts) {
          expect(c.points).toBeGreaterThan(10);
          expect(c.canvases).toBeGreaterThan(0);
        }
        expect(
          await page.$eval('#frames', (e) =>
            Number((e as unknown as { dataset: Record<string, string> }).dataset.frames),
          ),
        ).toBe(8192);
        expect(await page.$$eval('#procs tr', (rows) => rows.length)).toBe(13);
        await page.screenshot({ path: join(dir, 'report.png'), fullPage: true });
        expect(existsSync(join(dir, 'report.png'))).toBe(true);
        expect(errors).toEqual([]);
      } finally {
        await browser.close();
      }
    },
  );

  it.runIf(CHROMIUM === undefined)(
    'needs Chromium for the browser check (not installed here: skipped)',
    () => {
      expect(CHROMIUM).toBeUndefined();
    },
  );
});
