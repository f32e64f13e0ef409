// The finance console's live part: invoice runs and their progress, from the invoice-runs API.
"use strict";
(function () {
  const root = document.getElementById("console");
  if (!root) return;
  const body = document.querySelector("#runs-table tbody");
  const statuses = JSON.parse(root.dataset.statuses);

  function cell(tag, text) {
    const el = document.createElement(tag);
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function rowFor(run) {
    const percent = Math.round((run.progress || 0) * 100);
    const period = run.period.start.slice(0, 7);
    const tr = document.createElement("tr");
    tr.dataset.run = run.run_id;
    const head = cell("th", period);
    head.scope = "row";
    tr.append(head);
    const state = cell("td", statuses[run.status] || run.status);
    state.dataset.cell = "status";
    state.dataset.status = run.status;
    tr.append(state);
    const progressCell = cell("td");
    progressCell.dataset.cell = "progress";
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = percent;
    bar.setAttribute("aria-label", period);
    const label = cell("span", percent + "%");
    label.dataset.cell = "percent";
    const count = cell("span", " (" + run.tenants_done + "/" + (run.tenants_total || 0) + ")");
    count.className = "muted";
    progressCell.append(bar, " ", label, count);
    tr.append(progressCell);
    const failures = cell("td", String(run.failures.length));
    failures.dataset.cell = "failures";
    tr.append(failures);
    tr.append(cell("td", (run.started_at || run.created_at).slice(0, 19).replace("T", " ")));
    return tr;
  }

  async function refresh() {
    const listing = await billing.getJson("/api/v1/invoice-runs?limit=10");
    if (!listing.runs.length) return;
    body.replaceChildren.apply(body, listing.runs.map(rowFor));
  }

  // The other panels (revenue, churn, dunning, payments, deliveries) have no list API of their
  // own: the page is fetched again and each panel whose content changed is swapped in. Parsed
  // with DOMParser, so nothing in it runs; the server renders it as the first view, translated.
  async function refreshPanels() {
    const response = await fetch(location.pathname + location.search, { credentials: "same-origin" });
    if (!response.ok) throw new Error("console: " + response.status);
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const panel of document.querySelectorAll("section[data-live]")) {
      const next = fresh.querySelector('section[data-live="' + panel.dataset.live + '"]');
      if (next && next.innerHTML !== panel.innerHTML) panel.replaceChildren.apply(panel, Array.from(next.childNodes));
    }
  }

  billing.every(2000, refresh);
  billing.every(5000, refreshPanels);
})();
