// Chromium loads the example site from notmod serve, then comes back: every unchanged file must
// be revalidated with a conditional request and answered 304 with no body, and a changed file
// must arrive whole with its new ETag; a precompressed stylesheet keeps its variant's own
// ETag and Vary through the revalidation. The server's JSON access log is the witness. All of it
// runs twice: over cleartext HTTP/1.1, and over TLS with HTTP/2, with a certificate from a test
// CA made by the openssl CLI, which Chromium trusts by its key (--ignore-certificate-errors-spki-
// list), so that it caches as it would for a real site (it caches nothing from a site whose
// certificate it rejects).
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { createHash, createPublicKey } from "node:crypto";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const notmod = process.env.NOTMOD;
const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";
const assets = ["/", "/css/site.css", "/js/site.js", "/img/logo.svg"];

function openssl(...args) {
  const r = spawnSync("openssl", args, { encoding: "utf8" });
  assert.equal(r.status, 0, `openssl ${args[0]}: ${r.stderr}`);
}

// A test CA and a certificate for 127.0.0.1 and localhost signed by it, in dir. Returns the
// files and the base64 SHA-256 of the certificate key's SubjectPublicKeyInfo.
function makeCertificate(dir) {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  const f = (name) => join(dir, name);
  openssl("req", "-x509", ...ec, "-keyout", f("ca.key"), "-out", f("ca.pem"), "-days", "2",
          "-subj", "/CN=notmod browser test CA");
  openssl("req", ...ec, "-keyout", f("site.key"), "-out", f("site.csr"), "-subj", "/CN=localhost");
  writeFileSync(f("site.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  openssl("x509", "-req", "-in", f("site.csr"), "-CA", f("ca.pem"), "-CAkey", f("ca.key"),
          "-set_serial", "1001", "-days", "2", "-extfile", f("site.ext"), "-out", f("site.pem"));
  const spki = createPublicKey(readFileSync(f("site.key"))).export({ type: "spki", format: "der" });
  return { cert: f("site.pem"), key: f("site.key"),
           spki: createHash("sha256").update(spki).digest("base64") };
}

// What changes between the two runs: how notmod listens, how Chromium trusts it, the protocol.
const modes = [
  // Chromium leaves nextHopProtocol empty on a cleartext origin: only HTTP/2 is checked.
  { name: "HTTP/1.1 over cleartext", tls: false, protocol: null },
  { name: "HTTP/2 over TLS", tls: true, protocol: "h2" },
];

for (const mode of modes) describe(mode.name, () => {

let site, log, server, browser, base;

function startServer(tlsFiles) {
  return new Promise((resolve, reject) => {
    // The startup line is on stderr (stdout carries the access log); stderr is passed on.
    // Variants made on the fly would appear between two visits (identity first, then a
    // compressed variant under its own tag, a correct 200); here only sidecars make variants.
    const tlsArgs = tlsFiles ? ["--tls-cert", tlsFiles.cert, "--tls-key", tlsFiles.key] : [];
    const p = spawn(notmod, ["serve", "--listen", "127.0.0.1:0", ...tlsArgs, "--access-log", log,
                             "--log-format", "json", "--no-compress", site],
                    { stdio: ["ignore", "ignore", "pipe"] });
    const timer = setTimeout(() => reject(new Error("notmod serve printed no startup line")), 15000);
    let out = "";
    p.stderr.on("data", (chunk) => {
      process.stderr.write(chunk);
      out += chunk;
      const m = out.match(/https?:\/\/127\.0\.0\.1:(\d+)\//);
      if (m) {
        clearTimeout(timer);
        resolve({ proc: p, url: m[0] });
      }
    });
    p.on("exit", (code) => reject(new Error(`notmod serve exited with ${code}`)));
  });
}

// The access-log lines written since `from` (a line count), for the asset paths.
async function logSince(from, want) {
  for (let i = 0; i < 100; i++) {
    const lines = readFileSync(log, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
    const fresh = lines.slice(from).filter((e) => assets.includes(e.target));
    if (fresh.length >= want) return { lines: fresh, total: lines.length };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`fewer than ${want} access-log lines after 10 s`);
}

function logCount() {
  return readFileSync(log, "utf8").split("\n").filter(Boolean).length;
}

function byPath(lines) {
  const m = new Map();
  for (const e of lines) m.set(e.target, e);
  return m;
}

before(async () => {
  assert.ok(notmod && existsSync(notmod), "NOTMOD must name the notmod binary");
  assert.ok(existsSync(browserPath), `no Chromium at ${browserPath} (scripts/install-deps installs it)`);
  site = mkdtempSync(join(tmpdir(), "notmod-browser-"));
  cpSync(join(here, "..", "..", "examples", "site"), join(site, "www"), { recursive: true });
  log = join(site, "access.log");
  const tlsFiles = mode.tls ? makeCertificate(site) : null;
  site = join(site, "www");
  writeFileSync(log, "");
  const s = await startServer(tlsFiles);
  server = s.proc;
  base = s.url;
  const trust = tlsFiles ? [`--ignore-certificate-errors-spki-list=${tlsFiles.spki}`] : [];
  browser = await chromium.launch({
    executablePath: browserPath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           ...trust],
  });
});

// The protocol Chromium used for the page and each of its subresources.
async function assertProtocol(page) {
  if (!mode.protocol) return;
  const used = await page.evaluate(() =>
    performance.getEntriesByType("navigation").concat(performance.getEntriesByType("resource"))
      .map((e) => [new URL(e.name).pathname, e.nextHopProtocol]));
  assert.ok(used.length >= assets.length, `only ${used.length} timing entries`);
  for (const [path, protocol] of used) assert.equal(protocol, mode.protocol, `${path} went over ${protocol}`);
}

after(async () => {
  if (browser) await browser.close();
  if (server) server.kill("SIGTERM");
  if (site) rmSync(dirname(site), { recursive: true, force: true });
});

test("a return visit revalidates every file and gets 304s without bodies", async () => {
  const page = await (await browser.newContext()).newPage();
  const mark = logCount();
  await page.goto(base, { waitUntil: "load" });
  const first = await logSince(mark, assets.length);
  for (const e of first.lines) assert.equal(e.status, 200, `${e.target} on the first visit`);
  await assertProtocol(page);

  await page.goto(base, { waitUntil: "load" });
  const second = byPath((await logSince(first.total, assets.length)).lines);
  for (const path of assets) {
    const e = second.get(path);
    assert.ok(e, `${path} was not requested on the return visit`);
    assert.equal(e.status, 304, `${path} on the return visit`);
    assert.equal(e.bytes, 0, `${path} 304 carried a body`);
    assert.equal(e.etag, byPath(first.lines).get(path).etag, `${path} changed its ETag`);
  }
  // The page still renders from the revalidated copies.
  assert.equal(await page.textContent("h1"), "Has it changed since you got it?");
  await assertProtocol(page);
});

test("a changed file is downloaded again under its new ETag while the others stay 304", async () => {
  const page = await (await browser.newContext()).newPage();
  const mark = logCount();
  await page.goto(base, { waitUntil: "load" });
  const first = await logSince(mark, assets.length);
  const before = byPath(first.lines);

  writeFileSync(join(site, "css", "site.css"),
                readFileSync(join(site, "css", "site.css"), "utf8") + "h1 { color: #2b6cb0; }\n");
  await page.reload({ waitUntil: "load" });
  const after = byPath((await logSince(first.total, assets.length)).lines);
  assert.equal(after.get("/css/site.css").status, 200);
  assert.notEqual(after.get("/css/site.css").etag, before.get("/css/site.css").etag);
  for (const path of ["/", "/js/site.js", "/img/logo.svg"])
    assert.equal(after.get(path).status, 304, `${path} after another file changed`);
  const color = await page.evaluate(() => getComputedStyle(document.querySelector("h1")).color);
  assert.equal(color, "rgb(43, 108, 176)");
});

test("a precompressed stylesheet arrives compressed, then revalidates with 304 and Vary", async () => {
  // A rule only the new bytes have, so the computed style proves the decoded variant was used.
  const css = join(site, "css", "site.css");
  writeFileSync(css, readFileSync(css, "utf8") + "h1 { color: rgb(12, 120, 48); }\n");
  const made = spawnSync(notmod, ["compress", "-q", join(site, "css")], { encoding: "utf8" });
  assert.equal(made.status, 0, made.stderr);
  const sidecars = { br: "site.css.br", zstd: "site.css.zst", gzip: "site.css.gz" };
  for (const name of ["site.css.gz", "site.css.br"])
    assert.ok(existsSync(join(site, "css", name)), `notmod compress wrote no ${name}`);
  const tagOf = (file) => {
    const p = spawnSync(notmod, ["etag", join(site, "css", file)], { encoding: "utf8" });
    assert.equal(p.status, 0, p.stderr);
    return p.stdout.split(" ")[0];
  };

  const page = await (await browser.newContext()).newPage();
  const seen = [];
  page.on("response", (r) => {
    if (new URL(r.url()).pathname === "/css/site.css") seen.push(r);
  });
  const view = async (r) => ({ status: r.status(), headers: await r.allHeaders() });
  const mark = logCount();
  await page.goto(base, { waitUntil: "load" });
  const visit = await logSince(mark, assets.length);
  const first = byPath(visit.lines).get("/css/site.css");
  assert.equal(first.status, 200);
  const got = (await view(seen.at(-1))).headers;
  const coding = got["content-encoding"];
  assert.ok(coding === "br" || coding === "gzip" || coding === "zstd",
            `site.css came with Content-Encoding ${coding}`);
  assert.match(got.vary ?? "", /accept-encoding/i);
  // The tag is the variant's own: the hash of the sidecar's bytes, not of the source.
  assert.equal(got.etag, tagOf(sidecars[coding]));
  assert.equal(first.etag, got.etag);
  assert.notEqual(got.etag, tagOf("site.css"));

  const before = seen.length;
  await page.reload({ waitUntil: "load" });
  const second = byPath((await logSince(visit.total, assets.length)).lines).get("/css/site.css");
  assert.ok(second, "site.css was not requested on reload");
  assert.equal(second.status, 304, "site.css on reload");
  assert.equal(second.bytes, 0);
  assert.equal(second.etag, got.etag);
  const revalidated = seen.slice(before);
  assert.ok(revalidated.length > 0, "no response event for site.css on reload");
  const last = await view(revalidated.at(-1));
  assert.equal(last.status, 304, "Chromium's view of the reload");
  assert.match(last.headers.vary ?? "", /accept-encoding/i);
  assert.equal(last.headers.etag, got.etag);
  const color = await page.evaluate(() => getComputedStyle(document.querySelector("h1")).color);
  assert.equal(color, "rgb(12, 120, 48)");
});

});
