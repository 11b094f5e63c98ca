// Cases: one search box (unified code, an agency's case number across agencies, a target's
// credit code or ID number), numbered pages with the exact total, case name, target and agency
// in the list. One case: its versions with lineage and deliveries, and what changed between
// two versions (coloured).
import { h, replace, time, dash, table, update } from "../dom.js";
import { t, tf, lang } from "../i18n.js";
import { api, query } from "../api.js";
import { badge, changesTable, showPager } from "../ui.js";

/** The search and paging, kept across page changes in this tab. */
const state = { q: "", source: "", offset: 0, limit: 20 };

/** True when version row `i` came from another source than the version before it (stale rows, never the head, do not count). */
function sourceChanged(versions, i) {
  if (versions[i].status === "stale") return false;
  const before = versions.slice(0, i).filter((x) => x.status !== "stale").pop();
  return before !== undefined && before.source_id !== versions[i].source_id;
}

/** What a list row shows of a case view (the server's summary, else read from the record). */
export function caseFacts(view) {
  const c = view.case;
  const key = c.key || c;
  const r = c.record || {};
  const s = view.summary || {};
  return {
    code: c.unified_code,
    name: s.case_name ?? r.case_name ?? null,
    target: s.target_name ?? (r.target && r.target.name) ?? null,
    targetId: r.target ? r.target.id_number : null,
    agency: s.agency_name ?? (r.agency && r.agency.name) ?? null,
    agencyCode: key.agency_credit_code,
    type: key.case_type,
    number: key.case_number,
    version: c.version ?? c.current_version,
    updated: c.updated_at,
    withdrawn: Boolean(c.withdrawn),
  };
}

function listView(root, ctx) {
  const status = h("div", { id: "cases-status" });
  const results = h("div", { id: "case-results" });
  const pages = h("div", { id: "case-pages" });
  const search = h("input", { id: "case-q", type: "search", value: state.q, placeholder: t("case_search_placeholder"), autocomplete: "off", spellcheck: "false" });
  const sourceSel = ctx.can("sources_read") ? h("select", { id: "case-source" }, h("option", { value: "" }, t("all"))) : null;
  if (sourceSel) {
    api("GET", "/api/sources")
      .then((r) => {
        for (const s of r.items) sourceSel.appendChild(h("option", { value: s.id, selected: s.id === state.source }, s.id));
      })
      .catch(() => {});
  }
  function apply() {
    Object.assign(state, { q: search.value.trim(), source: sourceSel ? sourceSel.value : "", offset: 0 });
    replace(status);
    refresh().catch((e) => ctx.notice(status, "error", e.text ? e.text() : String(e)));
  }
  const form = h(
    "form",
    {
      class: "filters",
      role: "search",
      on: {
        submit: (ev) => {
          ev.preventDefault();
          apply();
        },
      },
    },
    h("label", { for: "case-q", class: "grow" }, t("search"), search),
    sourceSel ? h("label", { for: "case-source" }, t("source"), sourceSel) : null,
    h(
      "span",
      { class: "filter-buttons" },
      h("button", { type: "submit", class: "primary", id: "case-search-btn" }, t("search")),
      h(
        "button",
        {
          type: "button",
          id: "case-clear",
          on: {
            click: () => {
              search.value = "";
              if (sourceSel) sourceSel.value = "";
              apply();
            },
          },
        },
        t("clear"),
      ),
    ),
  );
  replace(root, h("h2", null, t("nav_cases")), form, h("p", { class: "muted small-text" }, t("case_search_help")), status, pages, results);

  async function refresh() {
    const page = await api("GET", "/api/cases" + query({ q: state.q, source: state.source, offset: state.offset, limit: state.limit }));
    const total = typeof page.total === "number" ? page.total : page.items.length;
    if (!showPager(pages, "cases-pager", state, total, refresh)) return refresh();
    const lng = lang();
    const facts = page.items.map(caseFacts);
    update(results, JSON.stringify([lng, state.q, facts]), () =>
      facts.length
        ? table(
            { id: "cases-table", class: "grid" },
            [t("unified_code"), t("case_name"), t("target"), t("agency"), t("case_type"), t("version"), t("updated")],
            facts.map((f) =>
              h(
                "tr",
                { dataset: { code: f.code } },
                h("td", { class: "wrap" }, h("a", { href: `#/cases/${encodeURIComponent(f.code)}`, class: "open-case" }, f.code), f.withdrawn ? badge("status-withdrawn", t("case_withdrawn")) : null),
                h("td", { class: "wrap" }, dash(f.name), h("div", { class: "muted small-text" }, f.number)),
                h("td", { class: "wrap" }, dash(f.target), f.targetId ? h("div", { class: "muted small-text" }, f.targetId) : null),
                h("td", { class: "wrap" }, dash(f.agency)),
                h("td", null, t("type_" + f.type)),
                h("td", { class: "num" }, f.version),
                h("td", null, time(f.updated)),
              ),
            ),
          )
        : h("p", { class: "muted", id: "cases-empty" }, state.q ? tf("no_case_found", { q: state.q }) : t("nothing_found")),
    );
  }
  return { refresh };
}

/** The versions a diff can compare (stale records are lineage, not versions of the case). */
function comparable(versions) {
  return [...new Set(versions.filter((v) => v.status !== "stale").map((v) => v.version))].sort((a, b) => a - b);
}

function detailView(root, ctx, code) {
  const head = h("div", { id: "case-head" });
  const versionsBox = h("div", { id: "case-versions" });
  const rawBox = h("div", { id: "case-raw" });
  const recordBox = h("div", { id: "case-record" });
  const attachmentsBox = h("div", { id: "case-attachments" });
  const diffBox = h("div", { id: "case-diff" });
  const fromSel = h("select", { id: "diff-from" });
  const toSel = h("select", { id: "diff-to" });
  /** The raw record shown under the versions (its id), kept across refreshes. */
  let openRaw = null;
  let rawText = "";
  let known = "";
  const diffForm = h(
    "div",
    { class: "filters diff-pick" },
    h("label", { for: "diff-from" }, t("diff_from"), fromSel),
    h("label", { for: "diff-to" }, t("diff_to"), toSel),
  );
  fromSel.addEventListener("change", () => showDiff());
  toSel.addEventListener("change", () => showDiff());
  replace(
    root,
    h("p", null, h("a", { href: "#/cases" }, "← " + t("nav_cases"))),
    head,
    h("section", { class: "card", "aria-labelledby": "versions-title" }, h("h3", { id: "versions-title" }, t("versions")), versionsBox, rawBox),
    h("section", { class: "card", "aria-labelledby": "attachments-title" }, h("h3", { id: "attachments-title" }, t("attachments")), attachmentsBox),
    h("section", { class: "card", "aria-labelledby": "diff-title" }, h("h3", { id: "diff-title" }, t("version_diff")), diffForm, diffBox),
    recordBox,
  );

  async function showDiff() {
    const from = fromSel.value;
    const to = toSel.value;
    if (!from || !to) {
      replace(diffBox, h("p", { class: "muted" }, t("one_version_only")));
      return;
    }
    if (from === to) {
      replace(diffBox, h("p", { class: "muted" }, t("same_version")));
      return;
    }
    try {
      const d = await api("GET", `/api/cases/${encodeURIComponent(code)}/diff` + query({ from, to }));
      replace(
        diffBox,
        h("p", { class: "muted", id: "diff-summary" }, tf("diff_summary", { from: d.from, to: d.to, n: d.changes.length })),
        d.changes.length ? changesTable(d.changes, { id: "diff-table" }) : h("p", { class: "muted" }, t("no_field_changes")),
      );
    } catch (e) {
      ctx.notice(diffBox, "error", e.text ? e.text() : String(e));
    }
  }

  function showRaw(rawId) {
    openRaw = rawId;
    rawText = t("loading");
    drawRaw();
    api("GET", `/api/raw/${rawId}`)
      .then((raw) => {
        rawText = `# raw ${raw.id} · ${raw.source_id} · ${raw.record_key} · ${time(raw.received_at)}\n${raw.payload_pretty}`;
      })
      .catch((e) => {
        rawText = e.text ? e.text() : String(e);
      })
      .finally(drawRaw);
  }
  function drawRaw() {
    replace(
      rawBox,
      openRaw === null
        ? null
        : h(
            "div",
            { class: "raw-holder" },
            h("div", { class: "card-head" }, h("h4", null, `${t("raw_record")} #${openRaw}`), h("button", { type: "button", class: "small", id: "raw-close", on: { click: () => ((openRaw = null), drawRaw()) } }, t("close"))),
            h("pre", { class: "code raw-panel", tabindex: 0, dataset: { key: "raw-" + openRaw } }, rawText),
          ),
    );
  }

  async function refresh() {
    const view = await api("GET", `/api/cases/${encodeURIComponent(code)}`);
    const c = view.case;
    const f = caseFacts(view);
    const lng = lang();
    const sig = JSON.stringify([lng, f, view.versions.map((v) => [v.version, v.status, v.deliveries.map((d) => d.status + d.attempts)])]);
    update(head, sig, () => [
      h("h2", null, h("code", { class: "unified-code" }, c.unified_code), f.withdrawn ? badge("status-withdrawn", t("case_withdrawn")) : null),
      h(
        "dl",
        { class: "facts card" },
        h("dt", null, t("case_name")),
        h("dd", null, dash(f.name)),
        h("dt", null, t("target")),
        h("dd", null, dash(f.target), f.targetId ? ` (${f.targetId})` : ""),
        h("dt", null, t("agency")),
        h("dd", null, dash(f.agency), f.agencyCode ? ` (${f.agencyCode})` : ""),
        h("dt", null, t("case_type")),
        h("dd", null, t("type_" + f.type)),
        h("dt", null, t("case_number")),
        h("dd", { class: "wrap" }, f.number),
        h("dt", null, t("region")),
        h("dd", null, c.region ? `${c.region} · ${c.year}` : "—"),
        h("dt", null, t("version")),
        h("dd", { id: "case-version" }, f.version),
        h("dt", null, t("updated")),
        h("dd", null, time(f.updated)),
      ),
    ]);
    update(versionsBox, sig, () =>
      table(
        { class: "grid versions", id: "versions-table" },
        [t("version"), t("status"), t("created"), t("source"), t("mapping"), t("lineage_raw"), t("deliveries"), t("warnings")],
        view.versions.map((v, i) =>
          h(
            "tr",
            { dataset: { version: v.version, status: v.status } },
            h("td", { class: "num" }, v.version),
            h("td", null, h("span", { class: "badge status-" + v.status, title: v.status === "stale" ? t("stale_hint") : null }, t("case_" + v.status))),
            h("td", null, time(v.created_at)),
            h(
              "td",
              { class: "version-source" },
              v.source_id,
              sourceChanged(view.versions, i) ? h("span", { class: "badge source-changed", title: t("source_changed_hint") }, t("source_changed")) : null,
            ),
            h("td", null, `${v.mapping_id} v${v.mapping_version}`),
            h(
              "td",
              null,
              ctx.can("raw_read")
                ? h("button", { type: "button", class: "small raw-btn", on: { click: () => showRaw(v.raw_id) } }, `${t("raw_record")} #${v.raw_id}`)
                : `#${v.raw_id}`,
            ),
            h(
              "td",
              null,
              v.deliveries.length
                ? h(
                    "ul",
                    { class: "plain" },
                    v.deliveries.map((d) => h("li", null, `${d.sink_id}: `, h("span", { class: "badge delivery-" + d.status }, t("delivery_" + d.status)), ` (${t("attempts")} ${d.attempts})`)),
                  )
                : "—",
            ),
            h("td", null, v.warnings && v.warnings.length ? v.warnings.map((w) => w.rule).join(", ") : "—"),
          ),
        ),
      ),
    );
    await drawAttachments(lng);
    update(recordBox, JSON.stringify([lng, c.record]), () =>
      h(
        "details",
        { class: "card", dataset: { key: "canonical" } },
        h("summary", null, t("canonical_record")),
        h("pre", { class: "code", tabindex: 0 }, JSON.stringify(c.record, null, 2)),
      ),
    );
    // The version pickers: filled when the versions change; by default the version before the
    // current one against the current one.
    const numbers = comparable(view.versions);
    const nums = JSON.stringify(numbers);
    if (nums !== known) {
      known = nums;
      const last = numbers[numbers.length - 1];
      const before = numbers.length > 1 ? numbers[numbers.length - 2] : last;
      replace(fromSel, numbers.map((n) => h("option", { value: n, selected: n === before }, `v${n}`)));
      replace(toSel, numbers.map((n) => h("option", { value: n, selected: n === last }, `v${n}`)));
      if (numbers.length > 1) showDiff();
      else replace(diffBox, h("p", { class: "muted" }, t("one_version_only")));
    }
  }
  /** The case's evidence attachments (证据附件): state, origin and a signed download link. */
  async function drawAttachments(lng) {
    const list = await api("GET", `/api/cases/${encodeURIComponent(code)}/attachments`).catch(() => null);
    const items = list ? list.attachments : [];
    const sig = JSON.stringify([lng, items.map((a) => [a.id, a.status, a.attempts, a.last_error, a.sha256])]);
    update(attachmentsBox, sig, () =>
      items.length
        ? table(
            { class: "grid attachments", id: "attachments-table" },
            [t("version"), t("attachment_kind"), t("attachment_file"), t("attachment_size"), t("attachment_origin"), t("attachment_state"), t("attachment_download")],
            items.map((a) =>
              h(
                "tr",
                { dataset: { status: a.status } },
                h("td", { class: "num" }, `v${a.version} #${a.position}`),
                h("td", null, t("kind_" + a.kind), a.optional ? ` (${t("attachment_optional")})` : ""),
                h("td", { class: "wrap" }, dash(a.file_name || a.title), a.media_type ? h("div", { class: "muted" }, a.media_type) : null),
                h("td", { class: "num" }, a.bytes === null || a.bytes === undefined ? "—" : a.bytes.toLocaleString()),
                h("td", { class: "wrap" }, t("origin_" + a.origin), h("div", { class: "muted" }, a.origin_ref)),
                h(
                  "td",
                  null,
                  badge("attachment-" + a.status, t("attachment_" + a.status)),
                  a.attempts ? ` (${t("attempts")} ${a.attempts})` : "",
                  a.last_error ? h("div", { class: "muted wrap" }, a.last_error) : null,
                ),
                h(
                  "td",
                  null,
                  a.download_url
                    ? h("a", { href: a.download_url.replace(/^https?:\/\/[^/]+/, ""), download: a.file_name || a.sha256, class: "download-link" }, t("attachment_download"))
                    : "—",
                ),
              ),
            ),
          )
        : h("p", { class: "muted" }, t("attachments_none")),
    );
  }

  return { refresh };
}

export default {
  id: "cases",
  navKey: "nav_cases",
  needs: "cases_read",
  roles: ["admin", "operator", "standards-owner"],
  mount(root, ctx, params) {
    return params[0] ? detailView(root, ctx, params[0]) : listView(root, ctx);
  },
};
