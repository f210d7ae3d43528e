// Lists what this page loaded, with each response's ETag and the bytes that crossed the wire:
// 0 (or a few hundred header bytes) means the cached copy was revalidated with a 304.
"use strict";

async function describe(url) {
  const res = await fetch(url, { cache: "no-cache" });
  return { url, etag: res.headers.get("ETag") || "(none)" };
}

window.addEventListener("load", async () => {
  const body = document.querySelector("#log tbody");
  const entries = performance.getEntriesByType("resource").concat(performance.getEntriesByType("navigation"));
  for (const e of entries) {
    const { url, etag } = await describe(e.name);
    const row = body.insertRow();
    row.insertCell().textContent = new URL(url).pathname;
    const tag = row.insertCell();
    tag.className = "etag";
    tag.textContent = etag;
    row.insertCell().textContent = e.transferSize + " B";
  }
});
