// A stacked bar chart of blocked attempts per minute, drawn as SVG elements.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600;
const HEIGHT = 220;
const PAD = { left: 40, right: 8, top: 10, bottom: 24 };

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function minuteLabel(minute) {
  return new Date(minute * 60000).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

// `attempts`: {rates: {op: [n per minute, oldest first]}, minutes, first_minute};
// `order`: every operation in a fixed order (its index picks the colour class).
export function drawChart(root, attempts, order, labels) {
  const rates = attempts.rates || {};
  const minutes = attempts.minutes || 0;
  const ops = order.filter((op) => rates[op] && rates[op].some((n) => n > 0));
  const totals = Array.from({ length: minutes }, (_, i) => ops.reduce((sum, op) => sum + (rates[op][i] || 0), 0));
  const total = totals.reduce((a, b) => a + b, 0);
  const peak = Math.max(1, ...totals);
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const step = minutes ? plotW / minutes : plotW;
  const y = (value) => PAD.top + plotH - (value / peak) * plotH;

  const parts = [];
  for (const tick of [0, Math.ceil(peak / 2), peak]) {
    parts.push(svg("line", { class: "grid", x1: PAD.left, x2: WIDTH - PAD.right, y1: y(tick), y2: y(tick) }));
    parts.push(svg("text", { class: "axis", x: PAD.left - 6, y: y(tick) + 4, "text-anchor": "end" }, String(tick)));
  }
  totals.forEach((_, i) => {
    let base = 0;
    for (const op of ops) {
      const count = rates[op][i] || 0;
      if (!count) continue;
      const top = y(base + count);
      const bar = svg("rect", {
        class: `bar op-${order.indexOf(op)}`,
        x: PAD.left + i * step + 1,
        y: top,
        width: Math.max(1, step - 2),
        height: y(base) - top,
        "data-op": op,
        "data-count": count,
        "data-minute": attempts.first_minute + i,
      });
      bar.append(svg("title", {}, `${labels[op] || op}: ${count} at ${minuteLabel(attempts.first_minute + i)}`));
      parts.push(bar);
      base += count;
    }
  });
  if (minutes) {
    const last = attempts.first_minute + minutes - 1;
    parts.push(svg("text", { class: "axis", x: PAD.left, y: HEIGHT - 6 }, minuteLabel(attempts.first_minute)));
    parts.push(svg("text", { class: "axis", x: WIDTH - PAD.right, y: HEIGHT - 6, "text-anchor": "end" }, minuteLabel(last)));
  }
  if (!total) {
    parts.push(svg("text", { class: "empty", x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle" },
      `No blocked attempts in the last ${minutes} minutes`));
  }
  root.replaceChildren(...parts);
  root.setAttribute("data-total", String(total));
  return ops;
}
