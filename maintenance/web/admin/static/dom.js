// Small DOM helpers: every text goes in through textContent, never as markup.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function byId(id) {
  return document.getElementById(id);
}

export function setText(id, text) {
  const node = byId(id);
  if (node) node.textContent = text;
  return node;
}

// Replace a table body's rows; `cells(row)` returns the cell values (strings or nodes).
export function fillTable(table, rows, cells, emptyText, rowAttrs = () => ({})) {
  const body = table.tBodies[0];
  const fresh = rows.map((row) => {
    const tr = el("tr", rowAttrs(row));
    for (const value of cells(row)) tr.append(el("td", {}, value ?? "-"));
    return tr;
  });
  if (!fresh.length) {
    fresh.push(el("tr", { class: "empty" }, el("td", { colspan: table.tHead.rows[0].cells.length }, emptyText)));
  }
  body.replaceChildren(...fresh);
}

const UNITS = [[86400, "d"], [3600, "h"], [60, "m"], [1, "s"]];

// 5400 -> "1h 30m" (two largest units), like the server's human_seconds.
export function humanSeconds(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  let left = Math.max(0, Math.round(seconds));
  if (left === 0) return "0s";
  const first = UNITS.findIndex(([size]) => left >= size);
  const [size, unit] = UNITS[first];
  const parts = [`${Math.floor(left / size)}${unit}`];
  if (first + 1 < UNITS.length) {
    const [small, smallUnit] = UNITS[first + 1];
    const rest = Math.floor((left % size) / small);
    if (rest) parts.push(`${rest}${smallUnit}`);
  }
  return parts.join(" ");
}

// An ISO timestamp or unix seconds as local date and time.
export function formatTime(value) {
  if (value === null || value === undefined || value === "") return "-";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  // UTC, as the CLI and the user pages write it; the viewer's local time is a hint (localTime).
  return `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

// The same instant in the viewer's time zone (a tooltip next to the UTC time).
export function localTime(value) {
  if (value === null || value === undefined || value === "") return "";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return "";
  return `your time: ${date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" })}`;
}

// A flash message at the top of the page (category: success | error | warning | info).
export function flash(category, message) {
  const box = byId("flashes");
  const node = el("p", { class: `flash flash-${category}`, role: category === "error" ? "alert" : "status" }, message);
  box.prepend(node);
  while (box.children.length > 5) box.lastElementChild.remove();
  return node;
}

// POST JSON to this site's API; resolves to {ok, status, body}.
export async function postJson(url, payload) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(payload),
  });
  let body = {};
  try {
    body = await response.json();
  } catch {
    body = { message: `HTTP ${response.status}` };
  }
  return { ok: response.ok, status: response.status, body };
}
