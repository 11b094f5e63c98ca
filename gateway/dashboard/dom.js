// DOM helpers. Data only ever enters the page as text nodes or attribute values set through
// the DOM API (never innerHTML), so every value is escaped by construction.

/**
 * Create an element: h("tr", {class: "x", dataset: {id: 1}, on: {click: fn}}, child, ...).
 * Children are nodes, strings/numbers (become text nodes), arrays, null/undefined/false (skipped).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** Create an SVG element with attributes. */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "on") {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else if (k === "dataset") {
      for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = String(dv);
    } else if (k === "value") {
      el.value = String(v);
    } else if (k === "checked" || k === "disabled" || k === "selected") {
      el[k] = Boolean(v);
    } else if (k === "text") {
      el.textContent = String(v);
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
}

/** Append children (see h). */
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Remove every child. */
export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** Replace every child of el with the given children. */
export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

/** A local time for an RFC 3339 value ("—" when empty). */
export function time(value) {
  if (!value) return "—";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  // One time zone everywhere: China time (UTC+8, no daylight saving), whatever the browser's,
  // like the date filters and the CLI.
  const c = new Date(d.getTime() + 8 * 3600 * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${c.getUTCFullYear()}-${pad(c.getUTCMonth() + 1)}-${pad(c.getUTCDate())} ${pad(c.getUTCHours())}:${pad(c.getUTCMinutes())}:${pad(c.getUTCSeconds())} +08:00`;
}

/** A value or "—". */
export function dash(v) {
  return v === undefined || v === null || v === "" ? "—" : String(v);
}

/** A <table> with a header row and body rows (arrays of cells or <tr> elements). */
export function table(attrs, headers, rows) {
  return h(
    "table",
    attrs,
    h("thead", null, h("tr", null, headers.map((x) => h("th", null, x)))),
    h(
      "tbody",
      null,
      rows.map((r) => (r instanceof Node ? r : h("tr", null, r.map((c) => (c instanceof Node && c.tagName === "TD" ? c : h("td", null, c)))))),
    ),
  );
}
