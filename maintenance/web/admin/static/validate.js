// The server's rules for the panel's forms, with the limits the page hands over from the
// core's enable-request model (config.limits): no number is repeated here. The server
// checks everything again; these only spare a round trip and explain mistakes early.

// The checks for one set of limits: {max_reason, max_duration(_text), duration_units, modes}.
export function rulesFor(limits) {
  const units = limits.duration_units;
  const part = new RegExp(String.raw`(\d+(?:\.\d+)?)\s*([${Object.keys(units).join("")}]?)`, "y");
  const length = (text) => [...text].length;

  // {seconds} (null when empty: unknown end) or {error}.
  function parseDuration(raw, field = "duration") {
    const text = String(raw ?? "").trim().toLowerCase().replaceAll(" ", "");
    if (!text) return { seconds: null };
    let pos = 0;
    let seconds = 0;
    while (pos < text.length) {
      part.lastIndex = pos;
      const match = part.exec(text);
      if (!match || part.lastIndex === pos) {
        return { error: `${field} "${raw}" is not a duration (use e.g. 90s, 30m, 1h30m, 2d)` };
      }
      seconds += Number(match[1]) * units[match[2] || "s"];
      pos = part.lastIndex;
    }
    if (seconds <= 0) return { error: `${field} must be greater than zero` };
    if (seconds > limits.max_duration) return { error: `${field} must be at most ${limits.max_duration_text}` };
    return { seconds: Math.round(seconds) };
  }

  // An error message, or null when the reason is acceptable.
  function checkReason(raw) {
    const text = String(raw ?? "").trim();
    if (!text) return "reason is required";
    const n = length(text);
    return n > limits.max_reason ? `reason is ${n} characters; at most ${limits.max_reason} allowed` : null;
  }

  function checkNote(raw) {
    const n = length(String(raw ?? "").trim());
    return n > limits.max_reason ? `note is ${n} characters; at most ${limits.max_reason} allowed` : null;
  }

  // Every error of the enable form, by field name (the server uses the same names).
  function enableErrors(values, phrase) {
    const errors = {};
    const reason = checkReason(values.reason);
    if (reason) errors.reason = reason;
    const duration = parseDuration(values.duration);
    if (duration.error) errors.duration = duration.error;
    if (!limits.modes.includes(values.mode)) errors.mode = `unknown mode ${values.mode}`;
    // phrase null: an emergency already on is being edited; it is not asked again.
    if (phrase !== null && values.mode === "emergency" && String(values.confirm_emergency ?? "").trim() !== phrase) {
      errors.confirm_emergency = `type ${phrase} to confirm emergency maintenance`;
    }
    return errors;
  }

  return { parseDuration, checkReason, checkNote, enableErrors, length };
}
