// The control panel: client-side checks of the enable form (with the server's live
// consistency check), the disable form, the emergency dialog and session logout.

import { byId, el, flash, humanSeconds, postJson } from "./dom.js";
import { rulesFor } from "./validate.js";

function showError(id, message) {
  const node = byId(`${id}-error`);
  if (!node) return;
  node.textContent = message || "";
  node.hidden = !message;
  const input = byId(id);
  if (input) input.setAttribute("aria-invalid", message ? "true" : "false");
}

// The phrase an enable must carry: none while an emergency is already on (editing it).
function phraseFor(config) {
  return byId("status-card").dataset.mode === "emergency" ? null : config.emergency_phrase;
}

function showErrors(fields, errors) {
  for (const name of fields) showError(name, errors[name]);
  const first = fields.find((name) => errors[name]);
  if (first && byId(first)) byId(first).focus();
}

const ENABLE_FIELDS = ["reason", "duration", "mode", "blocked_operations", "scope", "confirm_emergency",
  "critical_admin_only", "form"];

function enableValues(form) {
  const data = new FormData(form);
  return {
    reason: data.get("reason"),
    duration: data.get("duration"),
    mode: data.get("mode"),
    confirm_emergency: data.get("confirm_emergency"),
  };
}

function checkQuery(form) {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData(form)) {
    // Never put the CSRF token or the confirmation phrase into a URL.
    if (key !== "csrf_token" && key !== "confirm_emergency" && key !== "acknowledge_warnings") {
      params.append(key, value);
    }
  }
  return params;
}

function renderFindings(findings) {
  const box = byId("findings");
  const list = byId("findings-list");
  list.replaceChildren(...findings.map((f) =>
    el("li", { class: `finding finding-${f.level}`, "data-code": f.code }, f.message)));
  box.hidden = findings.length === 0;
  const warnings = findings.filter((f) => f.level === "warning");
  byId("ack-box").hidden = warnings.length === 0;
  if (!warnings.length) byId("acknowledge_warnings").checked = false;
  return warnings;
}

export function setupEnableForm(config) {
  const { enableErrors, length, parseDuration } = rulesFor(config.limits);
  const form = byId("enable-form");
  const reason = byId("reason");
  const duration = byId("duration");
  const mode = byId("mode");
  let lastCheck = 0;
  let warnings = [];
  form.noValidate = true; // our messages replace the browser's bubbles
  form.dataset.dirty = "no";

  const updateReasonCount = () => {
    byId("reason-count").textContent = `${length(reason.value)} / ${config.limits.max_reason}`;
  };
  const updateDuration = () => {
    const parsed = parseDuration(duration.value);
    const preview = byId("duration-preview");
    if (parsed.error) preview.textContent = "";
    else if (parsed.seconds === null) preview.textContent = "No duration: users see no expected end.";
    else {
      const end = new Date(Date.now() + parsed.seconds * 1000);
      preview.textContent = `Expected end ${end.toLocaleString()} (in ${humanSeconds(parsed.seconds)}).`;
    }
  };
  const updateScope = () => {
    const custom = byId("scope-custom").checked;
    for (const box of form.querySelectorAll("input[name=operations]")) box.disabled = !custom;
    const defaults = config.mode_defaults[mode.value] || [];
    byId("mode-default-set").textContent = defaults.map((op) => config.labels[op] || op).join(", ");
    byId("emergency-confirm").hidden = mode.value !== "emergency" || phraseFor(config) === null;
  };

  async function serverCheck() {
    const stamp = ++lastCheck;
    const response = await fetch(`${config.urls.check}?${checkQuery(form)}`, {
      credentials: "same-origin", headers: { Accept: "application/json" },
    });
    if (!response.ok) throw new Error(`the server check failed (HTTP ${response.status})`);
    const body = await response.json();
    if (stamp === lastCheck) warnings = renderFindings(body.findings || []);
    return body;
  }

  let debounce = null;
  form.addEventListener("input", (event) => {
    form.dataset.dirty = "yes";
    if (event.target === reason) updateReasonCount();
    if (event.target === duration) updateDuration();
    const errors = enableErrors(enableValues(form), phraseFor(config));
    // Clear a field's message as soon as it is fixed; new ones wait for the submit.
    for (const name of ENABLE_FIELDS) if (!errors[name]) showError(name, "");
    clearTimeout(debounce);
    if (!errors.reason && !errors.duration) debounce = setTimeout(() => serverCheck().catch(() => {}), 400);
  });
  form.addEventListener("change", updateScope);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const errors = enableErrors(enableValues(form), phraseFor(config));
    showErrors(ENABLE_FIELDS, errors);
    showError("acknowledge_warnings", "");
    if (Object.keys(errors).length) {
      flash("error", "Nothing was sent: fix the fields marked below.");
      return;
    }
    const button = byId("enable-submit");
    button.disabled = true;
    try {
      const body = await serverCheck();
      if (Object.keys(body.errors || {}).length) {
        showErrors(ENABLE_FIELDS, body.errors);
        flash("error", "Nothing was sent: the server found problems in the fields marked below.");
        return;
      }
    } catch (error) {
      flash("warning", `Could not run the consistency check (${error.message}); the server checks again on save.`);
    } finally {
      button.disabled = false;
    }
    if (warnings.length && !byId("acknowledge_warnings").checked) {
      showError("acknowledge_warnings", "Read the warnings above and tick the box to save anyway.");
      byId("acknowledge_warnings").focus();
      return;
    }
    form.submit(); // a plain form post: the server validates again and answers with the page
  });

  updateReasonCount();
  updateDuration();
  updateScope();
}

export function setupDisableForm(config) {
  const { checkNote } = rulesFor(config.limits);
  const form = byId("disable-form");
  form.noValidate = true;
  form.addEventListener("submit", (event) => {
    const error = checkNote(byId("note").value);
    showError("note", error);
    if (error) event.preventDefault();
  });
}

// The emergency control: a modal that activates only once the phrase is typed.
export function setupEmergency(config) {
  const { checkReason, parseDuration } = rulesFor(config.limits);
  const dialog = byId("emergency-dialog");
  const open = byId("emergency-open");
  const activate = byId("em-activate");
  const confirmInput = byId("em-confirm");
  const form = byId("emergency-form");
  if (!config.api.enabled || typeof dialog.showModal !== "function") return;
  open.hidden = false;

  const armed = () => {
    activate.disabled = confirmInput.value.trim() !== config.emergency_phrase;
  };
  open.addEventListener("click", () => {
    form.reset();
    for (const id of ["em-reason", "em-duration", "em"]) showError(id, "");
    armed();
    dialog.showModal();
    byId("em-reason").focus();
  });
  byId("em-cancel").addEventListener("click", () => dialog.close("cancel"));
  confirmInput.addEventListener("input", armed);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (activate.disabled) return;
    const reasonError = checkReason(byId("em-reason").value);
    const duration = parseDuration(byId("em-duration").value);
    showError("em-reason", reasonError);
    showError("em-duration", duration.error);
    if (reasonError || duration.error) return;
    const payload = {
      reason: byId("em-reason").value.trim(),
      duration: duration.seconds,
      critical_admin_only: byId("em-critical").checked,
    };
    activate.disabled = true;
    try {
      const result = await postJson(config.api.emergency.url, payload);
      if (!result.ok) {
        const field = result.body.field === "duration" ? "em-duration" : result.body.field === "reason" ? "em-reason" : "em";
        showError(field, result.body.message || `refused (HTTP ${result.status})`);
        return;
      }
      dialog.close("activated");
      const version = result.body.status ? result.body.status.version : "?";
      flash("success", `Emergency maintenance is on (status version ${version}).`);
    } catch (error) {
      showError("em", `The request failed: ${error.message}`);
    } finally {
      armed();
    }
  });
}

export function setupSessions(config, refresh) {
  const button = byId("sessions-invalidate");
  if (!config.api.enabled) return;
  button.addEventListener("click", async () => {
    const count = byId("sessions-summary").dataset.count || "all";
    if (!window.confirm(`Log out ${count} non-admin session(s) now?`)) return;
    button.disabled = true;
    try {
      const result = await postJson(config.api.invalidate_sessions, {});
      if (result.ok) flash("success", `${result.body.count} non-admin session(s) logged out.`);
      else flash("error", `Sessions were not logged out: ${result.body.message || result.status}`);
    } catch (error) {
      flash("error", `Sessions were not logged out: ${error.message}`);
    } finally {
      button.disabled = false;
      refresh();
    }
  });
}
