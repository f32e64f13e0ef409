// The tenant portal's live parts: usage per meter (table and chart) and month-to-date charges,
// refreshed from the usage and quote APIs without reloading the page.
"use strict";
(function () {
  const root = document.getElementById("portal");
  if (!root) return;
  const tenant = root.dataset.tenant;
  const lang = root.dataset.lang;
  const currency = root.dataset.currency.toUpperCase();
  const numbers = new Intl.NumberFormat(lang, { maximumFractionDigits: 6 });
  const money = new Intl.NumberFormat(lang, { style: "currency", currency: currency });
  // Axis labels in the page language and in UTC, the zone usage is counted in.
  const hours = new Intl.DateTimeFormat(lang, { day: "numeric", month: "short", hour: "2-digit", timeZone: "UTC" });
  const days = new Intl.DateTimeFormat(lang, { day: "numeric", month: "short", timeZone: "UTC" });
  const status = document.getElementById("usage-status");
  const meterSelect = document.getElementById("chart-meter");
  const grainSelect = document.getElementById("chart-grain");
  const chartBox = document.getElementById("usage-chart");
  const base = "/api/v1/usage/" + encodeURIComponent(tenant);
  let chart = null;

  function sums(rows) {
    const now = new Date();
    const hour = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), now.getUTCHours());
    const day = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
    const totals = {};
    for (const row of rows) {
      const start = Date.parse(row.start);
      for (const [meter, text] of Object.entries(row)) {
        if (meter === "start") continue;
        const value = Number(text);
        const t = totals[meter] || (totals[meter] = { hour: 0, day: 0, month: 0 });
        t.month += value;
        if (start >= day) t.day += value;
        if (start >= hour) t.hour += value;
      }
    }
    return totals;
  }

  function fillTable(totals) {
    for (const row of document.querySelectorAll("#usage-table tbody tr")) {
      const t = totals[row.dataset.meter] || { hour: 0, day: 0, month: 0 };
      for (const cell of row.querySelectorAll("td[data-cell]")) {
        cell.textContent = numbers.format(t[cell.dataset.cell]);
      }
    }
  }

  function draw(listing) {
    const rows = listing.rows;
    const meter = meterSelect.value;
    const xs = rows.map(function (r) { return Date.parse(r.start) / 1000; });
    const ys = rows.map(function (r) { return Number(r[meter] || 0); });
    const data = [xs, ys];
    // The whole month on the x axis, however few hours have usage yet.
    const range = [Date.parse(listing.from) / 1000, Date.parse(listing.to) / 1000];
    const width = Math.max(280, chartBox.clientWidth);
    if (chart && chart.width === width && chart.meter === meter && chart.grain === listing.granularity) {
      chart.setData(data);
      return;
    }
    if (chart) chart.destroy();
    chart = new uPlot({
      width: width,
      height: 220,
      scales: { x: { time: true, range: function () { return range; } }, y: { range: function (u, min, max) { return [0, Math.max(1, max) * 1.1]; } } },
      series: [{}, { label: meterSelect.selectedOptions[0].textContent, stroke: "#1f5fbf", fill: "rgba(31,95,191,0.12)", width: 2, points: { show: true, size: 9, width: 2, fill: "#1f5fbf" } }],
      legend: { show: false },  // the table above gives the figures, in words a screen reader reads
      // Wide spacing and a day's name at midnight: localized labels are longer than uPlot's own.
      axes: [{ space: 120, values: function (u, ticks) { return ticks.map(function (t) { const d = new Date(t * 1000); return (d.getUTCHours() === 0 ? days : hours).format(d); }); } },
        { size: 70, values: function (u, ticks) { return ticks.map(function (v) { return numbers.format(v); }); } }],
    }, data, chartBox);
    chart.meter = meter;
    chart.grain = listing.granularity;
  }

  async function refreshUsage() {
    const hourly = await billing.getJson(base + "?granularity=hour");
    fillTable(sums(hourly.rows));
    draw(grainSelect.value === "hour" ? hourly : await billing.getJson(base + "?granularity=day"));
    status.textContent = root.dataset.labelUpdated + " " + billing.clock(lang);
  }

  async function refreshCharges() {
    const quote = await billing.getJson("/api/v1/tenants/" + encodeURIComponent(tenant) + "/quote");
    const put = function (id, value) { const el = document.getElementById(id); if (el) el.textContent = money.format(Number(value)); };
    put("mtd-subtotal", quote.subtotal);
    put("mtd-credits", quote.credits.applied);
    put("mtd-due", quote.amount_due);
  }

  // The 90% band of the month-end projection, drawn on a scale from zero to a little past its top.
  function drawBand() {
    const box = document.getElementById("projection");
    if (!box) return;
    const lower = Number(box.dataset.lower), mid = Number(box.dataset.subtotal), upper = Number(box.dataset.upper);
    const top = Math.max(upper, mid, 1) * 1.1;
    const range = box.querySelector(".band-range");
    range.style.left = (100 * lower / top) + "%";
    range.style.width = (100 * Math.max(upper - lower, 0) / top) + "%";
    box.querySelector(".band-mark").style.left = (100 * mid / top) + "%";
  }

  // Invoice statuses as they change (a payment confirmed by the provider, a finance action).
  const statuses = JSON.parse(root.dataset.statuses);
  const payable = JSON.parse(root.dataset.payable);
  async function refreshInvoices() {
    const listing = await billing.getJson("/api/v1/invoices?tenant_id=" + encodeURIComponent(tenant) + "&limit=24");
    for (const invoice of listing.invoices) {
      const row = document.querySelector('tr[data-invoice="' + invoice.invoice_id + '"]');
      const pill = row && row.querySelector("[data-status]");
      if (!pill || pill.dataset.status === invoice.status) continue;
      pill.dataset.status = invoice.status;
      pill.className = "status s-" + invoice.status;
      pill.textContent = statuses[invoice.status] || invoice.status;
      const form = row.querySelector("form");
      if (form && !payable.includes(invoice.status)) {
        const none = document.createElement("span");
        none.className = "muted";
        none.textContent = "—";
        form.replaceWith(none);
      }
    }
  }

  async function refresh() {
    try {
      await refreshUsage();
    } catch (error) {
      status.textContent = root.dataset.labelUnavailable;
      throw error;
    }
  }

  meterSelect.addEventListener("change", function () { if (chart) { chart.destroy(); chart = null; } refresh(); });
  grainSelect.addEventListener("change", function () { if (chart) { chart.destroy(); chart = null; } refresh(); });
  drawBand();
  refresh();
  billing.every(3000, refresh);
  billing.every(5000, refreshInvoices);
  billing.every(10000, refreshCharges);
})();
