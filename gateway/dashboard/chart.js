// A small SVG line chart (no library): series of (time, value) points on a shared time axis.
import { svg } from "./dom.js";

/**
 * lineChart([{label, cls, points: [[ms, value], ...]}], {width, height, empty}) -> <svg>.
 * Colours come from the CSS classes (cls) so the page needs no inline styles.
 */
export function lineChart(series, opts = {}) {
  const W = opts.width || 720;
  const H = opts.height || 220;
  const m = { l: 56, r: 16, t: 12, b: 28 };
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": opts.label || "" });
  const all = series.flatMap((s) => s.points);
  if (all.length < 2) {
    root.appendChild(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "chart-empty" }, opts.empty || "…"));
    return root;
  }
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(...all.map((p) => p[0]));
  let v0 = Math.min(...all.map((p) => p[1]));
  let v1 = Math.max(...all.map((p) => p[1]));
  if (v1 === v0) {
    v1 += 1;
    v0 = Math.max(0, v0 - 1);
  }
  const x = (tv) => m.l + ((tv - t0) / Math.max(1, t1 - t0)) * (W - m.l - m.r);
  const y = (vv) => H - m.b - ((vv - v0) / (v1 - v0)) * (H - m.t - m.b);
  // Grid and value labels.
  for (let i = 0; i <= 4; i++) {
    const vv = v0 + ((v1 - v0) * i) / 4;
    root.appendChild(svg("line", { x1: m.l, x2: W - m.r, y1: y(vv), y2: y(vv), class: "chart-grid" }));
    root.appendChild(svg("text", { x: m.l - 6, y: y(vv) + 4, "text-anchor": "end", class: "chart-axis" }, Number.isInteger(vv) ? String(vv) : vv.toFixed(1)));
  }
  // Time labels.
  const fmt = (ms) => {
    const d = new Date(ms + 8 * 3600 * 1000); // China time, read with the UTC getters
    const p = (n) => String(n).padStart(2, "0");
    return `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}`;
  };
  root.appendChild(svg("text", { x: m.l, y: H - 8, class: "chart-axis" }, fmt(t0)));
  root.appendChild(svg("text", { x: W - m.r, y: H - 8, "text-anchor": "end", class: "chart-axis" }, fmt(t1)));
  // Lines.
  series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const d = s.points.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    root.appendChild(svg("path", { d, class: "chart-line " + (s.cls || "") }));
    const lx = m.l + 10 + i * 160;
    root.appendChild(svg("rect", { x: lx, y: m.t, width: 12, height: 12, class: "chart-key " + (s.cls || "") }));
    root.appendChild(svg("text", { x: lx + 18, y: m.t + 11, class: "chart-legend" }, `${s.label}: ${s.points[s.points.length - 1][1]}`));
  });
  return root;
}
