// The emergency console: phase, live countdowns to the end of the grace, SIGTERM and
// SIGKILL, outcome counts, each worker's ladder, the lift checks and the lift itself.

import { byId, el, fillTable, flash, formatTime, humanSeconds, postJson, setText } from "./dom.js";

let current = null; // the last emergency view shown (for the countdowns)

function countdown(atSeconds, doneText) {
  if (!atSeconds) return "-";
  const left = atSeconds - Date.now() / 1000;
  const when = formatTime(atSeconds);
  return left > 0 ? `in ${humanSeconds(left)} (${when})` : `${doneText} (${when})`;
}

export function tickConsole() {
  if (!current || !current.plan) {
    for (const id of ["console-grace", "console-sigterm", "console-sigkill"]) setText(id, "-");
    return;
  }
  const plan = current.plan;
  setText("console-grace", countdown(plan.sigterm_at, "over"));
  setText("console-sigterm", countdown(plan.sigterm_at, "sent"));
  setText("console-sigkill", countdown(plan.kill_at, "sent"));
}

function ladderText(w) {
  return `${w.state || "-"}: ${w.running || 0} running, ${(w.terminated || []).length} terminated, ` +
    `${(w.killed || []).length} killed${(w.unterminable || []).length ? `, ${w.unterminable.length} cannot terminate` : ""}`;
}

export function renderConsole(view, config) {
  const box = byId("emergency-console");
  byId("emergency-open").hidden = Boolean(view) || !config.api.enabled;
  if (!view || view.error) {
    box.hidden = !(view && view.error);
    if (view && view.error) setText("console-check", view.error);
    current = null;
    return;
  }
  current = view;
  box.hidden = false;
  box.dataset.phase = view.phase || "";
  setText("console-id", view.emergency_id || "-");
  setText("console-phase", view.phase || "declared (no termination round yet)");
  setText("console-access", view.critical_admin_only ? "critical administrators only" : "administrators");
  byId("console-critical").hidden = Boolean(view.critical_admin_only) || !config.api.enabled;
  const report = byId("console-report");
  report.href = config.urls.report.replace("REPORT_ID", encodeURIComponent(view.emergency_id));
  report.textContent = `${view.emergency_id} (written when the emergency is lifted)`;
  const counts = { ...view.counts, running: (view.running || []).length };
  for (const cell of byId("console-counts").querySelectorAll("[data-count]")) {
    cell.textContent = String(counts[cell.dataset.count] || 0);
  }
  fillTable(byId("console-workers"), view.workers || [], (w) => [
    w.hostname || w.node || "-", w.pool || "-", ladderText(w),
    `updated ${formatTime(w.updated)}`,
  ], "No worker has reported a ladder yet.", (w) => ({ "data-state": w.state }));
  const check = view.check;
  const problems = check ? check.problems : [];
  setText("console-check", !check ? "-" : check.ok
    ? "Checks pass: nothing is running that should not be. The emergency can be lifted."
    : `A lift is refused now: ${problems.length} problem(s).`);
  byId("console-problems").replaceChildren(...problems.map((p) => el("li", {}, p)));
  tickConsole();
}

async function lift(config, force, refresh) {
  const result = await postJson(config.api.emergency_off, { requeue: true, force });
  const out = byId("console-lift-result");
  if (result.ok) {
    out.textContent = `Lifted. Requeued ${(result.body.requeued || []).length} job(s). Report ${result.body.report_id || "-"}.`;
    byId("console-force").hidden = true;
    flash("success", "The emergency was lifted.");
  } else {
    const problems = result.body.problems || [];
    out.textContent = `Lift refused: ${result.body.message || result.status}` +
      (problems.length ? ` — ${problems.join("; ")}` : "");
    byId("console-force").hidden = result.status !== 409;
  }
  refresh();
}

export function setupConsole(config, refresh) {
  if (!config.api.enabled) {
    byId("console-lift").hidden = true;
    return;
  }
  byId("console-critical").addEventListener("click", async () => {
    if (!window.confirm("Only administrators flagged critical will get through (other admins are signed out). Continue?")) return;
    try {
      const result = await postJson(config.api.critical_only, {});
      if (result.ok) flash("success", "Only critical administrators get through now.");
      else flash("error", `Not changed: ${result.body.message || result.status}`);
    } catch (error) {
      flash("error", `Not changed: ${error.message}`);
    }
    refresh();
  });
  byId("console-lift").addEventListener("click", () => lift(config, false, refresh).catch((e) => flash("error", e.message)));
  byId("console-force").addEventListener("click", () => {
    if (window.confirm("Lift despite the failed checks?")) lift(config, true, refresh).catch((e) => flash("error", e.message));
  });
}
