// Lists what this page loaded and what crossed the wire for each file: a revalidated file moves
// only a few hundred header bytes (a 304), a new or changed one its whole body (a 200).
"use strict";

window.addEventListener("load", () => {
  const body = document.querySelector("#log tbody");
  const entries = performance.getEntriesByType("navigation")
    .concat(performance.getEntriesByType("resource"));
  for (const e of entries) {
    const row = body.insertRow();
    row.insertCell().textContent = new URL(e.name).pathname;
    const how = e.transferSize === 0 ? "from cache, not asked"
      : e.transferSize < e.encodedBodySize ? "revalidated: 304, body not sent"
      : "downloaded: 200";
    row.insertCell().textContent = how;
    row.insertCell().textContent = e.transferSize + " B";
  }
});
