// The admin panel's entry point: wires the controls, the live stream and the dashboard.

import { renderConsole, setupConsole, tickConsole } from "./console.js";
import { renderSnapshot, renderStatus, tickClock } from "./dashboard.js";
import { byId, flash } from "./dom.js";
import { followStatus, poll } from "./live.js";
import { setupDisableForm, setupEmergency, setupEnableForm, setupSessions } from "./controls.js";

const config = JSON.parse(byId("admin-page").textContent);
const indicator = byId("live-indicator");

function setLive(state) {
  indicator.dataset.state = state;
  indicator.textContent = { live: "live", reconnecting: "reconnecting…", polling: "polling" }[state] || state;
}

let shown = config.snapshot.status;
function onStatus(status) {
  // The poll and the stream race; an answer older than what is shown is dropped.
  if (status.version < shown.version) return;
  const changed = status.is_active !== shown.is_active || status.mode !== shown.mode;
  if (changed && byId("enable-form").dataset.dirty === "yes") {
    flash("info", `Maintenance changed while you were editing: it is now ${status.is_active ? status.mode : "off"}. ` +
      "Review the form before saving.");
  }
  shown = status;
  renderStatus(status, config.labels);
}

renderStatus(shown, config.labels);
renderSnapshot(config.snapshot, config);
setupEnableForm(config);
setupDisableForm(config);
setupEmergency(config);
renderConsole(config.snapshot.emergency, config);

let failing = false;
const dashboard = poll(config.urls.data, config.poll_ms, (snapshot) => {
  onStatus(snapshot.status);
  renderSnapshot(snapshot, config);
  renderConsole(snapshot.emergency, config);
  failing = false;
}, (error) => {
  if (!failing) flash("warning", `The dashboard could not refresh (${error.message}); retrying.`);
  failing = true;
});
setupSessions(config, dashboard.refresh);
setupConsole(config, dashboard.refresh);

if (config.api.enabled) {
  followStatus(config.api.stream, (status) => {
    onStatus(status);
    dashboard.refresh();
  }, setLive);
} else {
  setLive("polling");
}
setInterval(() => { tickClock(); tickConsole(); }, 1000);
document.body.dataset.ready = "yes";
