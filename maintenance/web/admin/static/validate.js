// Client-side copies of the server's rules (maintenance/domain/validation.py): the server
// checks everything again; these only spare a round trip and explain mistakes early.

export const MAX_REASON = 500;
export const MAX_DURATION = 7 * 24 * 3600;
const UNITS = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

// {seconds} (null when empty: unknown end) or {error}.
export function parseDuration(raw, field = "duration") {
  const text = String(raw ?? "").trim().toLowerCase().replaceAll(" ", "");
  if (!text) return { seconds: null };
  const part = /(\d+(?:\.\d+)?)\s*([smhdw]?)/y;
  let pos = 0;
  let seconds = 0;
  while (pos < text.length) {
    part.lastIndex = pos;
    const match = part.exec(text);
    if (!match || part.lastIndex === pos) {
      return { error: `${field} "${raw}" is not a duration (use e.g. 90s, 30m, 1h30m, 2d)` };
    }
    seconds += Number(match[1]) * UNITS[match[2] || "s"];
    pos = part.lastIndex;
  }
  if (seconds <= 0) return { error: `${field} must be greater than zero` };
  if (seconds > MAX_DURATION) return { error: `${field} must be at most 7 days` };
  return { seconds: Math.round(seconds) };
}

// An error message, or null when the reason is acceptable.
export function checkReason(raw) {
  const text = String(raw ?? "").trim();
  if (!text) return "reason is required";
  const length = [...text].length;
  if (length > MAX_REASON) return `reason is ${length} characters; at most ${MAX_REASON} allowed`;
  return null;
}

export function checkNote(raw) {
  const length = [...String(raw ?? "").trim()].length;
  return length > MAX_REASON ? `note is ${length} characters; at most ${MAX_REASON} allowed` : null;
}

// Every error of the enable form, by field name (the server uses the same names).
export function enableErrors(values, phrase) {
  const errors = {};
  const reason = checkReason(values.reason);
  if (reason) errors.reason = reason;
  const duration = parseDuration(values.duration);
  if (duration.error) errors.duration = duration.error;
  if (!["normal", "emergency", "test"].includes(values.mode)) errors.mode = `unknown mode ${values.mode}`;
  if (values.mode === "emergency" && String(values.confirm_emergency ?? "").trim() !== phrase) {
    errors.confirm_emergency = `type ${phrase} to confirm emergency maintenance`;
  }
  return errors;
}
