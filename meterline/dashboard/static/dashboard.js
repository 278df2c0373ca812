// meterline's read-only dashboard. Data comes from GET /api/dashboard/<named query>; money
// arrives as exact decimal strings and is rounded here on the string (never through a float),
// so a shown figure is the query's figure. Every value is put in the page with textContent.
"use strict";

const API = "/api/dashboard/";
const TOKEN_KEY = "meterline.token";
const MONEY_PLACES = 4;
const PALETTE = ["#2563eb", "#f97316", "#16a34a", "#dc2626", "#9333ea", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d"];
const charts = {};
let refreshTimer = null;

// -- exact decimal strings -----------------------------------------------------------------
function plainDecimal(text) {
  // "1.5E-3" -> "-"? + "0.0015": the digits with the point moved, no exponent.
  const match = /^([-+]?)(\d*)(?:\.(\d*))?(?:[eE]([-+]?\d+))?$/.exec(String(text ?? "0").trim());
  if (!match || (match[2] + (match[3] || "")) === "") throw new Error(`not a decimal number: ${String(text).slice(0, 40)}`);
  const digits = match[2] + (match[3] || "");
  const point = match[2].length + Number(match[4] || 0);
  let plain;
  if (point <= 0) plain = "0." + "0".repeat(-point) + digits;
  else if (point >= digits.length) plain = digits + "0".repeat(point - digits.length);
  else plain = digits.slice(0, point) + "." + digits.slice(point);
  return (match[1] === "-" ? "-" : "") + plain;
}
function roundDecimal(text, places) {
  // Half-up rounding of a decimal string to `places` digits, on BigInt: no float in between.
  const value = plainDecimal(text);
  const negative = value.startsWith("-");
  const [whole, fraction = ""] = value.replace(/^[-+]/, "").split(".");
  const digits = BigInt((whole || "0") + fraction.padEnd(places + 1, "0").slice(0, places + 1));
  let scaled = digits / 10n;
  if (digits % 10n >= 5n) scaled += 1n;
  let out = scaled.toString().padStart(places + 1, "0");
  out = places ? out.slice(0, -places) + "." + out.slice(-places) : out;
  return (negative && scaled !== 0n ? "-" : "") + out;
}
function money(text) { return roundDecimal(text, MONEY_PLACES); }
function count(value) { return Number(value ?? 0).toLocaleString("en-US"); }
function chartNumber(text) { return Number(text ?? 0); } // for drawing only, never shown

// -- fetching ------------------------------------------------------------------------------
function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
function takeTokenFromHash() {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}
class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}
const BUSY_RETRIES = 5;
function pause(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }
async function fetchQuery(name, params) {
  // The worker runs sql.max_concurrent queries at once and answers 429 past that: wait, retry.
  const headers = {};
  if (token()) headers.Authorization = "Bearer " + token();
  for (let attempt = 0; ; attempt++) {
    const answer = await fetch(API + name + "?" + new URLSearchParams(params), { headers, cache: "no-store" });
    if (answer.ok) return answer.json();
    if (answer.status === 429 && attempt < BUSY_RETRIES) {
      await pause(1000 * Number(answer.headers.get("Retry-After") || 1));
      continue;
    }
    throw new ApiError(answer.status, (await answer.text()).trim());
  }
}
async function fetchAll(names, params) {
  const data = {};
  for (const name of names) data[name] = await fetchQuery(name, params); // one at a time: the worker's slots are few
  return data;
}

// -- filters -------------------------------------------------------------------------------
function isoDay(date) { return date.toISOString().slice(0, 10); }
function filterForm() { return document.getElementById("filters"); }
function readFilters() {
  const form = filterForm();
  const params = {};
  for (const name of ["from", "to", "bucket", "team", "project", "model"]) {
    const value = form.elements[name].value;
    if (value !== "") params[name] = value;
  }
  return params;
}
function initFilters() {
  const form = filterForm();
  const query = new URLSearchParams(location.search);
  const today = new Date();
  form.elements.to.value = query.get("to") || isoDay(today);
  form.elements.from.value = query.get("from") || isoDay(new Date(today.getTime() - 29 * 86400000));
  form.elements.bucket.value = query.get("bucket") || "day";
  for (const name of ["team", "project", "model"]) {
    if (query.get(name)) setOptions(form.elements[name], [query.get(name)], query.get(name));
  }
  if (query.get("refresh") !== null) form.elements.refresh.value = query.get("refresh");
}
function presetRange(preset, today) {
  // [from, to] as UTC dates, `to` inclusive.
  const day = 86400000;
  const y = today.getUTCFullYear(), m = today.getUTCMonth();
  if (preset === "7d") return [new Date(today.getTime() - 6 * day), today];
  if (preset === "30d") return [new Date(today.getTime() - 29 * day), today];
  if (preset === "month") return [new Date(Date.UTC(y, m, 1)), new Date(Date.UTC(y, m + 1, 0))];
  if (preset === "last-month") return [new Date(Date.UTC(y, m - 1, 1)), new Date(Date.UTC(y, m, 0))];
  return null;
}
function applyPreset() {
  const form = filterForm();
  const range = presetRange(form.elements.preset.value, new Date());
  if (!range) return;
  form.elements.from.value = isoDay(range[0]);
  form.elements.to.value = isoDay(range[1]);
}
function rememberFilters(params) {
  // The address carries the filters, so a view can be shared or bookmarked (never the token).
  const query = new URLSearchParams(params);
  query.set("refresh", filterForm().elements.refresh.value);
  history.replaceState(null, "", location.pathname + "?" + query);
}
function setOptions(select, values, keep) {
  const chosen = keep ?? select.value;
  const all = new Set(values);
  if (chosen) all.add(chosen);
  select.replaceChildren(new Option("all", ""), ...[...all].sort().filter((v) => v !== "").map((v) => new Option(v, v)));
  select.value = chosen;
}

// -- tables --------------------------------------------------------------------------------
// A column: [key, heading, kind]; kind is "money", "count", "text", "percent" or a function.
function fillTable(id, columns, rows, rowKey, rowClass) {
  const table = document.getElementById(id);
  const head = document.createElement("tr");
  for (const [, heading, kind] of columns) {
    const th = document.createElement("th");
    th.textContent = heading;
    if (kind === "money" || kind === "count" || kind === "percent") th.className = "num";
    head.append(th);
  }
  const body = rows.map((row) => {
    const tr = document.createElement("tr");
    tr.dataset.key = rowKey(row);
    if (rowClass) tr.className = rowClass(row);
    for (const [key, , kind] of columns) {
      const td = document.createElement("td");
      td.dataset.col = key;
      const value = row[key];
      if (kind === "money") { td.className = "num"; td.dataset.value = value ?? ""; td.textContent = value == null ? "–" : money(value); }
      else if (kind === "count") { td.className = "num"; td.dataset.value = value ?? 0; td.textContent = count(value); }
      else if (kind === "percent") { td.className = "num"; td.dataset.value = value; td.textContent = roundDecimal(value, 1) + " %"; }
      else if (typeof kind === "function") { td.textContent = kind(value, row); }
      else { td.textContent = value == null || value === "" ? "–" : String(value); }
      if (key === "reason") td.classList.add("reason");
      if (key === "status") td.classList.add("status-" + value);
      tr.append(td);
    }
    return tr;
  });
  if (!body.length) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = columns.length;
    td.className = "empty";
    td.textContent = "nothing in this period";
    tr.append(td);
    body.push(tr);
  }
  const thead = document.createElement("thead");
  thead.append(head);
  const tbody = document.createElement("tbody");
  tbody.append(...body);
  table.replaceChildren(thead, tbody);
}
function setKpi(name, value, kind) {
  const output = document.getElementById("kpi-" + name);
  output.dataset.value = value ?? (kind === "money" ? "0" : 0);
  output.textContent = kind === "money" ? money(value) : count(value);
}

// -- charts --------------------------------------------------------------------------------
function drawChart(id, config) {
  if (typeof Chart === "undefined") return; // the table beside it still shows every figure
  if (charts[id]) charts[id].destroy();
  config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options);
  charts[id] = new Chart(document.getElementById(id), config);
}
function spendChart(rows) {
  const buckets = [...new Set(rows.map((r) => r.bucket_start))].sort();
  const teams = [...new Set(rows.map((r) => r.team))].sort();
  const byKey = new Map(rows.map((r) => [r.bucket_start + "\u0000" + r.team, chartNumber(r.cost_usd)]));
  drawChart("chart-spend", {
    type: "bar",
    data: {
      labels: buckets.map((b) => b.slice(0, 16)),
      datasets: teams.map((team, i) => ({
        label: team, backgroundColor: PALETTE[i % PALETTE.length],
        data: buckets.map((b) => byKey.get(b + "\u0000" + team) ?? 0),
      })),
    },
    options: { scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: "USD" } } } },
  });
}
function budgetChart(rows) {
  drawChart("chart-budgets", {
    type: "bar",
    data: {
      labels: rows.map((r) => `${r.team}/${r.budget} ${r.period}`),
      datasets: [
        { label: "spend", backgroundColor: PALETTE[0], data: rows.map((r) => chartNumber(r.spend_usd)) },
        { label: "forecast", backgroundColor: "#93c5fd", data: rows.map((r) => chartNumber(r.forecast_usd)) },
        { label: "limit", backgroundColor: "#9ca3af", data: rows.map((r) => chartNumber(r.limit_usd)) },
      ],
    },
    options: { indexAxis: "y", scales: { x: { title: { display: true, text: "USD" } } } },
  });
}
function barChart(id, labels, values, label) {
  drawChart(id, {
    type: "bar",
    data: { labels, datasets: [{ label, backgroundColor: PALETTE[0], data: values.map(chartNumber) }] },
    options: { indexAxis: "y", plugins: { legend: { display: false } } },
  });
}
function doughnut(id, labels, values) {
  drawChart(id, {
    type: "doughnut",
    data: { labels, datasets: [{ backgroundColor: PALETTE, data: values.map(chartNumber) }] },
    options: { plugins: { legend: { position: "right" } } },
  });
}

// -- the page ------------------------------------------------------------------------------
const QUERIES = ["filter_options", "totals", "spend_over_time", "budgets", "top_models", "top_providers", "savings", "unpriced", "dlq", "alerts"];

function render(data) {
  const options = data.filter_options.rows[0] || { teams: [], projects: [], models: [] };
  const form = filterForm();
  setOptions(form.elements.team, options.teams);
  setOptions(form.elements.project, options.projects);
  setOptions(form.elements.model, options.models);

  const totals = data.totals.rows[0] || {};
  setKpi("cost_usd", totals.cost_usd, "money");
  setKpi("requests", totals.requests, "count");
  setKpi("cache_saving_usd", totals.cache_saving_usd, "money");
  setKpi("batch_saving_usd", totals.batch_saving_usd, "money");
  setKpi("unpriced_requests", totals.unpriced_requests, "count");
  setKpi("dead_letters", data.dlq.rows.reduce((sum, r) => sum + Number(r.dead_letters), 0), "count");

  spendChart(data.spend_over_time.rows);
  fillTable("table-spend_over_time", [
    ["bucket_start", "from (UTC)", (v) => String(v).slice(0, 16)], ["team", "team"], ["requests", "requests", "count"], ["cost_usd", "spend USD", "money"],
  ], data.spend_over_time.rows, (r) => `${String(r.bucket_start).slice(0, 16)}/${r.team}`);

  const budgets = data.budgets.rows;
  budgetChart(budgets);
  fillTable("table-budgets", [
    ["team", "team"], ["budget", "budget"], ["period", "period"], ["spend_usd", "spend USD", "money"],
    ["limit_usd", "limit USD", "money"], ["percent", "spent", "percent"], ["forecast_usd", "forecast USD", "money"],
    ["thresholds", "thresholds", (v, row) => (v || []).map((t, i) => `${roundDecimal(t, 0)} % (${money(row.threshold_usd[i])})`).join(", ") || "–"],
    ["over_hard_limit", "state", (v, row) => (v ? "over its hard limit" : row.hard_limit ? "hard limit" : "soft limit")],
  ], budgets, (r) => `${r.team}/${r.budget}/${r.period}`, (r) => (r.over_hard_limit || Number(r.percent) >= 100 ? "over" : ""));

  const models = data.top_models.rows;
  barChart("chart-models", models.map((r) => `${r.provider}/${r.model}`), models.map((r) => r.cost_usd), "spend USD");
  fillTable("table-top_models", [
    ["provider", "provider"], ["model", "model"], ["requests", "requests", "count"],
    ["input_tokens", "input tokens", "count"], ["output_tokens", "output tokens", "count"], ["cost_usd", "spend USD", "money"],
  ], models, (r) => `${r.provider}/${r.model}`);

  const providers = data.top_providers.rows;
  doughnut("chart-providers", providers.map((r) => r.provider), providers.map((r) => r.cost_usd));
  fillTable("table-top_providers", [["provider", "provider"], ["requests", "requests", "count"], ["cost_usd", "spend USD", "money"]],
    providers, (r) => r.provider);

  fillTable("table-savings", [
    ["team", "team"], ["cache_hits", "cache hits", "count"], ["cache_saving_usd", "cache saving USD", "money"],
    ["batch_requests", "batch calls", "count"], ["batch_saving_usd", "batch saving USD", "money"], ["total_saving_usd", "total USD", "money"],
  ], data.savings.rows, (r) => r.team);
  fillTable("table-unpriced", [
    ["team", "team"], ["provider", "provider"], ["model", "model"], ["requests", "requests", "count"],
    ["input_tokens", "input tokens", "count"], ["output_tokens", "output tokens", "count"], ["unpriced_reason", "reason"],
  ], data.unpriced.rows, (r) => `${r.team}/${r.provider}/${r.model}/${r.unpriced_reason}`);
  fillTable("table-dlq", [["error_kind", "kind"], ["dead_letters", "dead letters", "count"], ["reason", "reason"]],
    data.dlq.rows, (r) => `${r.error_kind}/${r.reason}`);
  fillTable("table-alerts", [
    ["recorded_at", "recorded (UTC)", (v) => String(v).slice(0, 19)], ["kind", "kind"], ["team", "team"], ["budget", "budget"],
    ["period", "period"], ["channel", "channel"], ["target", "target"], ["status", "state"], ["attempts", "attempts", "count"], ["reason", "reason"],
  ], data.alerts.rows, (r) => `${r.recorded_at}/${r.channel}/${r.target}`);
}

async function refresh() {
  const status = document.getElementById("status");
  const params = readFilters();
  try {
    render(await fetchAll(QUERIES, params));
    document.getElementById("token-form").hidden = true;
    status.className = "";
    status.textContent = `updated ${new Date().toISOString().slice(0, 19).replace("T", " ")} UTC · ${params.from} to ${params.to}`;
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
  } catch (error) {
    status.className = "error";
    if (error.status === 401) {
      document.getElementById("token-form").hidden = false;
      status.textContent = "this worker listens beyond loopback: give its token (or open the page as /#token=…)";
    } else {
      status.textContent = "could not load: " + error.message;
    }
    document.body.dataset.error = error.message;
  }
}

function schedule() {
  if (refreshTimer) clearInterval(refreshTimer);
  const seconds = Number(filterForm().elements.refresh.value);
  refreshTimer = seconds > 0 ? setInterval(refresh, seconds * 1000) : null;
}

// Under node (tests/unit/dashboard) the pure helpers are exported and nothing else runs.
if (typeof module !== "undefined") module.exports = { roundDecimal, presetRange };
if (typeof document !== "undefined") document.addEventListener("DOMContentLoaded", () => {
  takeTokenFromHash();
  initFilters();
  filterForm().addEventListener("submit", (event) => {
    event.preventDefault();
    rememberFilters(readFilters());
    refresh();
    schedule();
  });
  filterForm().elements.preset.addEventListener("change", () => { applyPreset(); filterForm().requestSubmit(); });
  for (const name of ["from", "to"]) filterForm().elements[name].addEventListener("change", () => { filterForm().elements.preset.value = ""; });
  filterForm().elements.refresh.addEventListener("change", schedule);
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, event.target.elements.token.value);
    event.target.reset();
    refresh();
  });
  refresh();
  schedule();
});
