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

/**
 * A <table> with a header row and body rows (arrays of cells or <tr> elements). Each body cell
 * gets its column's header as `data-label`, which the narrow-screen layout shows beside the value
 * (tables become cards under 600 px).
 */
export function table(attrs, headers, rows) {
  const el = h(
    "table",
    attrs,
    h("thead", null, h("tr", null, headers.map((x) => h("th", { scope: "col" }, x)))),
    h(
      "tbody",
      null,
      rows.map((r) => (r instanceof Node ? r : h("tr", null, r.map((c) => (c instanceof Node && c.tagName === "TD" ? c : h("td", null, c)))))),
    ),
  );
  const labels = headers.map((x) => (x instanceof Node ? x.textContent : String(x ?? "")));
  for (const tr of el.tBodies[0].rows) {
    [...tr.cells].forEach((td, i) => {
      if (labels[i] && !td.dataset.label) td.dataset.label = labels[i];
      // One box for the value, so that a card shows "label | value" even for a value of several parts.
      if (td.childNodes.length > 1) {
        const body = h("div", { class: "cell" });
        while (td.firstChild) body.appendChild(td.firstChild);
        td.appendChild(body);
      }
    });
  }
  return el;
}

/** The path of child indexes from `root` down to `node` (null when node is not inside root). */
function pathTo(root, node) {
  const path = [];
  for (let n = node; n && n !== root; n = n.parentNode) {
    if (!n.parentNode) return null;
    path.unshift([...n.parentNode.children].indexOf(n));
  }
  return path;
}

function nodeAt(root, path) {
  let n = root;
  for (const i of path) {
    n = n && n.children[i];
  }
  return n || null;
}

/**
 * Redraw `el` with `build()` only when `sig` (a string standing for the data shown) differs from
 * the last one, keeping what the user had: open or closed <details> and the scroll position of
 * elements that carry a `data-key`, the focused control (by its id, else by its place), and the
 * window's scroll position. Answers whether it redrew.
 */
export function update(el, sig, build) {
  if (el.dataset.sig === sig) return false;
  const kept = new Map();
  for (const k of el.querySelectorAll("[data-key]")) {
    kept.set(k.tagName + ":" + k.dataset.key, { open: k.tagName === "DETAILS" ? k.open : undefined, top: k.scrollTop });
  }
  const active = document.activeElement;
  const focus = active && active !== document.body && el.contains(active) ? { id: active.id, path: pathTo(el, active), tag: active.tagName } : null;
  const x = window.scrollX;
  const y = window.scrollY;
  replace(el, build());
  el.dataset.sig = sig;
  for (const k of el.querySelectorAll("[data-key]")) {
    const was = kept.get(k.tagName + ":" + k.dataset.key);
    if (!was) continue;
    if (was.open !== undefined) k.open = was.open;
    if (was.top) k.scrollTop = was.top;
  }
  if (focus) {
    const target = (focus.id && document.getElementById(focus.id)) || (focus.path && nodeAt(el, focus.path));
    if (target && target.tagName === focus.tag && typeof target.focus === "function") target.focus({ preventScroll: true });
  }
  if (window.scrollX !== x || window.scrollY !== y) window.scrollTo(x, y);
  return true;
}

/** Forget what `update` last drew into `el` (the next update redraws). */
export function invalidate(el) {
  delete el.dataset.sig;
}
