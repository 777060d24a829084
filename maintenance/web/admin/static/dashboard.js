// Rendering of the status card and the monitoring panels from the server's JSON.

import { drawChart } from "./chart.js";
import { byId, el, fillTable, flash, formatTime, humanSeconds, localTime, setText } from "./dom.js";

let statusNow = null;
const drainPeak = new Map(); // activation id -> most blocked-type jobs seen running

function timeLeft(status) {
  if (!status || !status.is_active || !status.estimated_completion) return { text: "-", overdue: false };
  const left = (new Date(status.estimated_completion).getTime() - Date.now()) / 1000;
  if (left <= 0) return { text: `overdue by ${humanSeconds(-left)}`, overdue: true };
  return { text: humanSeconds(left), overdue: false };
}

export function tickClock() {
  const left = timeLeft(statusNow);
  const node = setText("status-left", left.text);
  node.classList.toggle("overdue", left.overdue);
}

export function renderStatus(status, labels = {}) {
  statusNow = status;
  const card = byId("status-card");
  const on = status.is_active;
  card.dataset.active = on ? "yes" : "no";
  card.dataset.mode = on ? status.mode : "off";
  card.dataset.version = String(status.version);
  const badge = setText("status-state", on ? `Maintenance on: ${status.mode}` : "Maintenance off");
  badge.className = `badge ${on ? `badge-${status.mode}` : "badge-off"}`;
  setText("status-reason", on ? status.reason || "-" : "-");
  setText("status-by", on ? status.enabled_by || "-" : "-");
  setText("status-started", on ? formatTime(status.started_at) : "-").title = on ? localTime(status.started_at) : "";
  const end = on && status.estimated_completion;
  setText("status-end", end ? formatTime(end) : "-").title = end ? localTime(end) : "";
  setText("status-blocked", on && status.blocked_operations.length ? status.blocked_operations.map((op) => labels[op] || op).join(", ") : "-");
  let logins = on && status.login_blocked && !status.test_mode ? "non-admin logins blocked" : "open";
  if (on && status.critical_admin_only) logins += "; critical admins only";
  setText("status-login", logins);
  const needing = status.jobs_needing_action_count ?? 0;
  setText("status-jobs", `${status.active_jobs_count ?? 0} running, ${status.deferred_jobs_count ?? 0} held`
    + (needing ? `, ${needing} need action` : ""));
  setText("status-version", String(status.version));
  const degraded = byId("status-degraded");
  degraded.hidden = !status.degraded;
  degraded.textContent = status.degraded ? `Degraded: ${status.degraded_reason || "unknown reason"}` : "";
  byId("disable-submit").disabled = !on;
  setText("control-title", on ? "Change maintenance" : "Enable maintenance");
  setText("enable-submit", on ? "Update maintenance" : "Enable maintenance");
  byId("expected_version").value = String(status.version);
  tickClock();
}

function renderAttempts(attempts, labels, order) {
  const table = byId("attempts-table");
  if (!attempts || attempts.error) {
    fillTable(table, [], () => [], attempts ? attempts.error : "-");
    return;
  }
  setText("chart-minutes", String(attempts.minutes));
  const ops = new Set([...Object.keys(attempts.by_operation), ...Object.keys(attempts.would_block),
    ...Object.keys(attempts.rates)]);
  const rows = order.filter((op) => ops.has(op)).map((op) => ({
    op,
    blocked: attempts.by_operation[op] || 0,
    would: attempts.would_block[op] || 0,
    recent: (attempts.rates[op] || []).reduce((a, b) => a + b, 0),
  }));
  fillTable(table, rows, (r) => [labels[r.op] || r.op, String(r.blocked), String(r.would), String(r.recent)],
    "No blocked attempts in this maintenance.", (r) => ({ "data-op": r.op }));
  const shown = drawChart(byId("attempts-chart"), attempts, order, labels);
  byId("chart-legend").replaceChildren(...shown.map((op) =>
    el("li", {}, el("span", { class: `swatch op-${order.indexOf(op)}`, "aria-hidden": "true" }), labels[op] || op)));
  fillTable(byId("recent-table"), attempts.recent, (r) => [
    formatTime(r.at), r.user || "anonymous", `${labels[r.operation] || r.operation}${r.would_block ? " (would block)" : ""}`,
    `${r.method || ""} ${r.endpoint || ""} (${r.channel})`,
  ], "None logged yet.");
}

function renderJobs(jobs, status, labels) {
  const summary = byId("drain-summary");
  const bar = byId("drain-progress");
  if (!jobs || jobs.error) {
    summary.textContent = jobs ? jobs.error : "-";
    return;
  }
  const left = jobs.blocked_kind_running;
  const key = status.activation_id || "none";
  const peak = Math.max(drainPeak.get(key) || 0, left);
  drainPeak.set(key, peak);
  bar.max = Math.max(1, peak);
  bar.value = peak ? peak - left : 1;
  if (!jobs.draining) {
    summary.textContent = status.is_active && status.test_mode
      ? `Test mode: nothing is drained. ${jobs.total} job(s) running.`
      : `No maintenance: nothing to drain. ${jobs.total} job(s) running.`;
  } else if (left) {
    summary.textContent = `Draining: ${left} running job(s) of a blocked type left; ${peak - left} of ${peak} finished.`;
  } else {
    summary.textContent = jobs.drained_at
      ? `Drained at ${formatTime(jobs.drained_at)}: no job of a blocked type is running.`
      : "Drained: no job of a blocked type is running.";
  }
  summary.dataset.left = String(left);
  fillTable(byId("jobs-table"), jobs.rows, (j) => [
    j.name, labels[j.operation] || j.operation, j.worker || "-",
    `${humanSeconds(j.age_seconds)}${j.state === "queued" ? " (queued)" : ""}`,
  ], "No job is running.", (j) => ({ class: j.blocked_kind ? "blocking" : null, "data-task": j.task_id }));
  const needing = jobs.needing_action || [];
  byId("needing-action").hidden = needing.length === 0;
  fillTable(byId("needing-table"), needing, (j) => [
    `${j.task_name} [${j.original_id}]`, j.outcome || "-", j.reason || "-",
  ], "-", (j) => ({ "data-task": j.original_id }));
}

function renderSessions(sessions) {
  const summary = byId("sessions-summary");
  const button = byId("sessions-invalidate");
  if (!sessions || sessions.error) {
    summary.textContent = sessions ? sessions.error : "Session tracking is not set up.";
    fillTable(byId("sessions-table"), [], () => [], "-");
    return;
  }
  summary.textContent = `${sessions.count} non-admin session(s) and ${sessions.admin_count} admin session(s) ` +
    `active in the last ${humanSeconds(sessions.window_seconds)}.`;
  summary.dataset.count = String(sessions.count);
  fillTable(byId("sessions-table"), sessions.sample, (s) => [s.user || "-", formatTime(s.last_seen), s.kind],
    "No active non-admin session.");
  button.hidden = false;
}

function renderNodes(nodes, status) {
  const lagging = nodes.filter((n) => n.lagging).length;
  setText("nodes-summary", `${nodes.length} live node(s) at status version ${status.version}` +
    (lagging ? `; ${lagging} behind.` : "; all up to date."));
  fillTable(byId("nodes-table"), nodes, (n) => [
    n.node_id, n.kind || "-", n.lagging ? `v${n.applied_version} (behind)` : `v${n.applied_version}`,
    `${humanSeconds(n.seen_seconds_ago)} ago`,
  ], "No live node.", (n) => ({ class: n.lagging ? "lagging" : null }));
}

// History: one page of the whole event log at a time, paged and filtered by the server
// (the panel's /history answers a page with the total and the kinds the log holds).
// The page arrives rendered; its form pages without JavaScript, and here by fetching.
// `wanted` is the page asked for; a refresh redraws it (the first page comes with the
// dashboard's data, another is fetched again), an older answer is dropped.
const historyView = { wanted: null, url: null, asked: 0, answered: 0 };

function optionsOf(select, kinds) {
  const have = [...select.options].map((o) => o.value).filter(Boolean);
  if (have.join() === kinds.join()) return;
  select.replaceChildren(el("option", { value: "" }, "every event"),
    ...kinds.map((kind) => el("option", { value: kind }, kind.replaceAll("_", " "))));
}

function drawHistory(page) {
  const table = byId("history-table");
  if (!page || !Array.isArray(page.events)) {
    fillTable(table, [], () => [], page ? page.error : "-");
    return;
  }
  fillTable(table, page.events, (e) => [e.when || formatTime(e.at), e.kind.replaceAll("_", " "),
    e.actor || "-", e.reason || "-", e.version ?? "-"], "Nothing happened yet.",
  (e) => ({ "data-kind": e.kind, "data-event-id": e.id }));
  const shown = page.events.length;
  setText("history-page", shown
    ? `${page.offset + 1}–${page.offset + shown} of ${page.total}` : `0 of ${page.total}`);
  const prev = byId("history-prev");
  const next = byId("history-next");
  prev.value = String(Math.max(0, page.offset - page.limit));
  prev.disabled = page.offset === 0;
  next.value = String(page.offset + page.limit);
  next.disabled = page.offset + page.limit >= page.total;
  const select = byId("history-kind");
  optionsOf(select, page.kinds || []);
  select.value = page.kind || "";
}

async function loadHistory(offset, kind) {
  historyView.wanted = { offset, kind };
  const asked = ++historyView.asked;
  const query = new URLSearchParams({ history_offset: String(offset) });
  if (kind) query.set("history_kind", kind);
  try {
    const response = await fetch(`${historyView.url}?${query}`,
      { credentials: "same-origin", headers: { Accept: "application/json" } });
    const body = await response.json();
    if (asked !== historyView.asked) return; // a newer page was asked for meanwhile
    if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
    drawHistory(body);
  } catch (error) {
    if (asked === historyView.asked) flash("warning", `The history could not load (${error.message}).`);
  } finally {
    if (asked === historyView.asked) historyView.answered = asked;
  }
}

function wireHistory(url) {
  historyView.url = url;
  byId("history-show").hidden = true; // the filter applies on change
  byId("history-kind").addEventListener("change", (event) => loadHistory(0, event.target.value));
  byId("history-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const offset = Number(event.submitter ? event.submitter.value : 0) || 0;
    loadHistory(offset, byId("history-kind").value);
  });
}

function renderHistory(page, url) {
  if (historyView.wanted === null) { // the page as rendered: remember which one it is
    wireHistory(url);
    historyView.wanted = page && Array.isArray(page.events)
      ? { offset: page.offset, kind: page.kind || "" } : { offset: 0, kind: "" };
    drawHistory(page);
    return;
  }
  if (historyView.answered !== historyView.asked) return; // a page is on its way
  const { offset, kind } = historyView.wanted;
  if (offset === 0 && !kind) drawHistory(page);
  else loadHistory(offset, kind);
}

function renderReports(reports, reportUrl) {
  const table = byId("reports-table");
  if (!Array.isArray(reports)) {
    fillTable(table, [], () => [], reports ? reports.error : "-");
    return;
  }
  fillTable(table, reports, (r) => [
    el("a", { href: reportUrl.replace("REPORT_ID", encodeURIComponent(r.id)), class: "report-link" }, r.id),
    r.kind, formatTime(r.created_at), r.activation_id || "-",
  ], "No report stored yet.", (r) => ({ "data-report": r.id }));
}

export function renderSnapshot(snapshot, config) {
  const order = config.operations;
  renderAttempts(snapshot.attempts, config.labels, order);
  renderJobs(snapshot.jobs, snapshot.status, config.labels);
  renderSessions(snapshot.sessions);
  renderNodes(snapshot.nodes, snapshot.status);
  renderHistory(snapshot.history, config.urls.history);
  renderReports(snapshot.reports, config.urls.report);
}
