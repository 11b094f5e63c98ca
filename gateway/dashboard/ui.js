// Pieces several pages share: page numbers, status messages in the main area, coloured diffs.
import { h, update } from "./dom.js";
import { lang, t, tf } from "./i18n.js";
import { api } from "./api.js";

/**
 * The page numbers of a list whose `state` holds `offset` and `limit`, drawn into `el` (only
 * when something changed). When the total shrank below the offset, the offset moves to the
 * last page and the answer is false: the caller fetches again. `reload()` runs after the user
 * picks a page or a page size.
 */
export function showPager(el, id, state, total, reload) {
  const fixed = clampOffset(state.offset, state.limit, total);
  if (fixed !== state.offset) {
    state.offset = fixed;
    return false;
  }
  update(el, JSON.stringify([total, state.offset, state.limit, lang()]), () =>
    pager({
      id,
      total,
      offset: state.offset,
      limit: state.limit,
      onGo: (offset) => {
        state.offset = offset;
        reload();
      },
      onLimit: (limit) => {
        state.limit = limit;
        state.offset = 0;
        reload();
      },
    }),
  );
  return true;
}

/** The page sizes offered under every list. */
export const PAGE_SIZES = [20, 50, 100];

/**
 * Page numbers for a list of `total` entries shown `limit` at a time from `offset`:
 * first / previous / 1 2 3 … / next / last, the range shown of the exact total, and the page
 * size. `onGo(offset)` and `onLimit(limit)` are called with the new values.
 */
export function pager({ id, total, offset, limit, onGo, onLimit }) {
  const pages = Math.max(1, Math.ceil(total / limit));
  const current = Math.min(pages, Math.floor(offset / limit) + 1);
  const go = (p) => onGo((Math.min(Math.max(p, 1), pages) - 1) * limit);
  const step = (cls, text, label, p) =>
    h("button", { type: "button", class: "small page-step " + cls, "aria-label": label, title: label, disabled: p < 1 || p > pages || p === current, on: { click: () => go(p) } }, text);
  const numbers = [];
  const shown = new Set([1, pages, current - 2, current - 1, current, current + 1, current + 2].filter((p) => p >= 1 && p <= pages));
  let last = 0;
  for (const p of [...shown].sort((a, b) => a - b)) {
    if (p > last + 1) numbers.push(h("span", { class: "gap", "aria-hidden": "true" }, "…"));
    numbers.push(
      h(
        "button",
        {
          type: "button",
          class: "small page-num" + (p === current ? " current" : ""),
          "aria-current": p === current ? "page" : null,
          "aria-label": tf("page_n", { n: p }),
          dataset: { page: p },
          on: { click: () => go(p) },
        },
        String(p),
      ),
    );
    last = p;
  }
  const from = total === 0 ? 0 : (current - 1) * limit + 1;
  const to = Math.min(total, current * limit);
  const size = h(
    "select",
    { class: "page-size", "aria-label": t("page_size"), on: { change: (ev) => onLimit(Number(ev.target.value)) } },
    PAGE_SIZES.map((n) => h("option", { value: n, selected: n === limit }, tf("per_page_n", { n }))),
  );
  return h(
    "nav",
    { class: "pager", id, "aria-label": t("pages") },
    h("span", { class: "pager-total", dataset: { total } }, tf("showing_of_total", { from, to, total })),
    h(
      "span",
      { class: "pager-pages" },
      step("page-first", "«", t("page_first"), 1),
      step("page-prev", "‹", t("page_prev"), current - 1),
      numbers,
      step("page-next", "›", t("page_next"), current + 1),
      step("page-last", "»", t("page_last"), pages),
    ),
    size,
  );
}

/** When the list shrank below `offset` (entries resolved meanwhile): the offset of its last page. */
export function clampOffset(offset, limit, total) {
  if (offset < total || offset === 0) return offset;
  return Math.max(0, Math.ceil(total / limit) - 1) * limit;
}

/** A message that takes the main area: no access, not found, nothing to show. */
export function pageMessage(kind, title, ...lines) {
  return h(
    "section",
    { class: "card page-message " + kind, id: "page-message", role: kind === "error" ? "alert" : "status" },
    h("h2", null, title),
    lines.filter(Boolean).map((l) => h("p", null, l)),
  );
}

/** A unified diff (lines of text): added lines green with "+", removed red with "−", hunks blue. */
export function textDiff(lines, attrs = {}) {
  return h(
    "pre",
    { class: "diff", tabindex: 0, ...attrs },
    lines.map((line) => {
      const cls =
        line.startsWith("+++") || line.startsWith("---")
          ? "diff-file"
          : line.startsWith("+")
            ? "diff-add"
            : line.startsWith("-")
              ? "diff-del"
              : line.startsWith("@@")
                ? "diff-hunk"
                : "diff-ctx";
      return h("span", { class: cls }, line + "\n");
    }),
  );
}

/** A JSON value in one short line ("—" when absent). */
export function compact(v) {
  if (v === undefined || v === null) return "—";
  return typeof v === "string" ? v : JSON.stringify(v);
}

/** Field changes [{path, before, after}] as a table: removed value red, added value green. */
export function changesTable(changes, attrs = {}) {
  return h(
    "table",
    { class: "grid changes", ...attrs },
    h("thead", null, h("tr", null, h("th", { scope: "col" }, t("field")), h("th", { scope: "col" }, t("before")), h("th", { scope: "col" }, t("after")))),
    h(
      "tbody",
      null,
      changes.map((c) =>
        h(
          "tr",
          { dataset: { path: c.path } },
          h("td", { dataset: { label: t("field") } }, h("code", null, c.path)),
          h("td", { dataset: { label: t("before") } }, c.before === null || c.before === undefined ? h("span", { class: "muted" }, t("absent")) : h("del", null, "− " + compact(c.before))),
          h("td", { dataset: { label: t("after") } }, c.after === null || c.after === undefined ? h("span", { class: "muted" }, t("absent")) : h("ins", null, "+ " + compact(c.after))),
        ),
      ),
    ),
  );
}

/** A badge. */
export function badge(cls, text, title) {
  return h("span", { class: "badge " + cls, title }, text);
}

/** The day after a YYYY-MM-DD date (the API's `until` is exclusive; a filter's date is inclusive). */
export function dayAfter(date) {
  if (!date) return "";
  const d = new Date(date + "T00:00:00Z");
  if (Number.isNaN(d.getTime())) return date;
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}

/** The order summary counts are told in (others follow). */
const SUMMARY_ORDER = ["received", "accepted", "updated", "unchanged", "stale", "quarantined"];

/** A label for `key`, or the key itself when there is none. */
export function labelOr(prefix, key) {
  const label = t(prefix + key);
  return label === prefix + key ? key : label;
}

/** A replay or push summary in words. */
function summaryWords(s) {
  const rank = (k) => (SUMMARY_ORDER.includes(k) ? SUMMARY_ORDER.indexOf(k) : SUMMARY_ORDER.length);
  return Object.entries(s)
    .filter(([, v]) => typeof v === "number")
    .sort((a, b) => rank(a[0]) - rank(b[0]))
    .map(([k, v]) => `${labelOr("sum_", k)} ${v}`)
    .join(" · ");
}

/** An audit entry's detail: its diff coloured, its summary in words, the rest as label: value. */
export function auditDetail(a) {
  const d = a.detail;
  if (d === null || d === undefined) return "—";
  if (typeof d !== "object" || Array.isArray(d)) return h("code", { class: "small-text" }, compact(d));
  const parts = [];
  const rest = [];
  for (const [k, v] of Object.entries(d)) {
    if (k === "diff" && Array.isArray(v)) continue;
    if (k === "summary" && v && typeof v === "object") {
      parts.push(h("div", { class: "detail-summary" }, summaryWords(v)));
      continue;
    }
    if (v === null || v === undefined || v === "") continue;
    rest.push(h("dt", { title: k }, labelOr("dk_", k)), h("dd", null, compact(v)));
  }
  if (rest.length) parts.unshift(h("dl", { class: "kv" }, rest));
  if (Array.isArray(d.diff) && d.diff.length) {
    const added = d.diff.filter((l) => l.startsWith("+") && !l.startsWith("+++")).length;
    const removed = d.diff.filter((l) => l.startsWith("-") && !l.startsWith("---")).length;
    parts.push(
      h(
        "details",
        { class: "audit-diff", dataset: { key: "diff-" + a.id } },
        h("summary", null, `${t("diff")} `, h("ins", null, `+${added}`), " ", h("del", null, `−${removed}`)),
        textDiff(d.diff),
      ),
    );
  }
  return parts.length ? parts : "—";
}

/**
 * A source picker (`<select id=id>`, "all" first): a department's own sources, or every source
 * for a token that may read them; `selected` is chosen when it appears.
 */
export function sourceSelect(ctx, id, selected) {
  const sel = h("select", { id }, h("option", { value: "" }, t("all")));
  const fill = (ids) => {
    for (const s of ids) sel.appendChild(h("option", { value: s, selected: s === selected }, s));
  };
  if (ctx.me.role === "department") fill(ctx.me.sources || []);
  else if (ctx.can("sources_read"))
    api("GET", "/api/sources")
      .then((r) => fill(r.items.map((s) => s.id)))
      .catch(() => {});
  return sel;
}
