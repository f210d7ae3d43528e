// Chromium opens the /status page of notmod serve --metrics while requests of a known mix (one
// 200, then 304s) arrive: the page, with no external asset, polls /metrics and shows the request
// rate and the 304 ratio. A screenshot of its tiles is checked: a PNG of the viewport's size,
// and not a blank one.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cpSync, mkdtempSync, rmSync, existsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const notmod = process.env.NOTMOD;
const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";

let dir, server, browser, siteUrl, metricsUrl;

function startServer(root) {
  return new Promise((resolve, reject) => {
    const p = spawn(notmod, ["serve", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
                             "--access-log", "off", root], { stdio: ["ignore", "ignore", "pipe"] });
    const timer = setTimeout(() => reject(new Error("notmod serve printed no metrics line")), 15000);
    let out = "";
    p.stderr.on("data", (chunk) => {
      out += chunk;
      const s = out.match(/serving .* on (http:\/\/127\.0\.0\.1:\d+\/)/);
      const m = out.match(/metrics on (http:\/\/127\.0\.0\.1:\d+\/)metrics/);
      if (s && m) {
        clearTimeout(timer);
        resolve({ proc: p, site: s[1], metrics: m[1] });
      }
    });
    p.on("exit", (code) => reject(new Error(`notmod serve exited with ${code}`)));
  });
}

// The PNG's width and height, from its IHDR chunk.
function pngSize(buf) {
  assert.equal(buf.subarray(1, 4).toString("latin1"), "PNG", "a PNG");
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

before(async () => {
  assert.ok(notmod && existsSync(notmod), "NOTMOD must name the notmod binary");
  assert.ok(existsSync(browserPath), `no Chromium at ${browserPath} (scripts/install-deps installs it)`);
  dir = mkdtempSync(join(tmpdir(), "notmod-status-"));
  cpSync(join(here, "..", "..", "examples", "site"), join(dir, "www"), { recursive: true });
  writeFileSync(join(dir, "www", "a.txt"), "a".repeat(100));
  const s = await startServer(join(dir, "www"));
  server = s.proc;
  siteUrl = s.site;
  metricsUrl = s.metrics;
  browser = await chromium.launch({
    executablePath: browserPath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.kill("SIGTERM");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("the status page shows the live request rate and 304 ratio", async () => {
  const first = await fetch(siteUrl + "a.txt");
  assert.equal(first.status, 200);
  const tag = first.headers.get("etag");
  await first.arrayBuffer();
  // One 200 and three 304s: a 75 % ratio once the page reads the counters.
  for (let i = 0; i < 3; i++) {
    const r = await fetch(siteUrl + "a.txt", { headers: { "If-None-Match": tag } });
    assert.equal(r.status, 304);
  }
  const page = await (await browser.newContext({ viewport: { width: 900, height: 500 } })).newPage();
  const external = [];
  page.on("request", (req) => { if (!req.url().startsWith(metricsUrl)) external.push(req.url()); });
  await page.goto(metricsUrl + "status", { waitUntil: "load" });
  await page.waitForFunction(() => document.getElementById("state").textContent === "live",
                             null, { timeout: 10000 });
  // The rate needs two polls; more traffic meanwhile makes it non-zero.
  for (let i = 0; i < 4; i++) {
    const r = await fetch(siteUrl + "a.txt", { headers: { "If-None-Match": tag } });
    assert.equal(r.status, 304);
  }
  await page.waitForFunction(() => Number(document.getElementById("rate").textContent) > 0,
                             null, { timeout: 10000 });
  const ratio = await page.textContent("#ratio");
  assert.match(ratio, /^\d+\.\d %$/);
  assert.ok(Number(ratio.split(" ")[0]) >= 75, `304 ratio ${ratio}`);
  assert.equal(await page.textContent("#total"), "8");
  assert.deepEqual(external, [], "the page loads nothing but itself and /metrics");

  const shot = await page.screenshot();
  assert.deepEqual(pngSize(shot), { width: 900, height: 500 });
  const tiles = await page.locator(".tiles").screenshot();
  const blank = await page.screenshot({ clip: { x: 880, y: 480, width: 20, height: 20 } });
  // Text compresses worse than an empty area of the same page.
  assert.ok(tiles.length > 4 * blank.length && tiles.length > 2000,
            `tiles ${tiles.length} bytes, blank ${blank.length} bytes`);
});
