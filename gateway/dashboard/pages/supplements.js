// Awaiting supplement (待补录): cases accepted without fields their source system cannot supply,
// listed per department, and the form a department completes them with. A completion is
// validated like any record; refused ones show every violation, nothing is written.
import { h, replace, time, dash, table, update } from "../dom.js";
import { t, tf, lang, pick } from "../i18n.js";
import { api, query } from "../api.js";
import { showPager, sourceSelect } from "../ui.js";

/** Filters and paging of the list, kept across page changes in this tab. */
const state = { source: "", field: "", offset: 0, limit: 20 };

/** "title (pointer)" of an awaiting field. */
function fieldLabel(f) {
  return f.title ? `${f.title}（${f.pointer}）` : f.pointer;
}

function violationItem(v) {
  return h("li", null, h("code", { class: "rule" }, v.rule), " ", h("code", null, v.pointer), " ", pick(v.message_zh, v.message_en));
}

function listView(root, ctx) {
  const status = h("div", { id: "supplements-status" });
  const counts = h("div", { id: "supplements-counts" });
  const list = h("div", { id: "supplements-list" });
  const pages = h("div", { id: "supplements-pages" });
  const sourceSel = sourceSelect(ctx, "s-source", state.source);
  const field = h("input", { id: "s-field", type: "search", value: state.field, placeholder: "/item_code", autocomplete: "off", spellcheck: "false" });
  const form = h(
    "form",
    {
      class: "filters",
      role: "search",
      on: {
        submit: (ev) => {
          ev.preventDefault();
          Object.assign(state, { source: sourceSel.value, field: field.value.trim(), offset: 0 });
          replace(status);
          refresh().catch((e) => ctx.notice(status, "error", e.text ? e.text() : String(e)));
        },
      },
    },
    h("label", { for: "s-field", class: "grow" }, t("field_filter"), field),
    h("label", { for: "s-source" }, t("source"), sourceSel),
    h("span", { class: "filter-buttons" }, h("button", { type: "submit", class: "primary", id: "supplements-filter-btn" }, t("filter"))),
  );
  replace(
    root,
    h("h2", null, t("nav_supplements")),
    h("p", { class: "muted" }, t("supplements_help")),
    h("h3", null, t("supplements_counts")),
    counts,
    form,
    status,
    pages,
    list,
  );

  async function refresh() {
    const page = await api("GET", "/api/supplements" + query({ source: state.source, field: state.field, offset: state.offset, limit: state.limit }));
    if (!showPager(pages, "supplements-pager", state, page.total, refresh)) return refresh();
    const lng = lang();
    update(counts, JSON.stringify([lng, page.counts]), () =>
      page.counts.length
        ? table(
            { id: "supplements-counts-table", class: "grid" },
            [t("agency"), t("source"), t("cases_count"), t("oldest")],
            page.counts.map((c) => h("tr", null, h("td", null, h("code", null, c.agency_credit_code)), h("td", null, c.source_id), h("td", { class: "num" }, String(c.cases)), h("td", null, time(c.oldest)))),
          )
        : h("p", { class: "muted", id: "supplements-counts-empty" }, t("nothing_found")),
    );
    const canWrite = ctx.can("supplements_write");
    update(list, JSON.stringify([lng, page.items]), () =>
      page.items.length
        ? table(
            { id: "supplements-table", class: "grid" },
            [t("unified_code"), t("case_number"), t("case_type"), t("source"), t("awaiting_fields"), t("awaiting_since"), ""],
            page.items.map((c) =>
              h(
                "tr",
                { dataset: { code: c.code } },
                h("td", { class: "wrap code-cell" }, h("a", { href: `#/supplements/${encodeURIComponent(c.code)}`, class: "supplement-link" }, c.code)),
                h("td", { class: "wrap" }, dash(c.case_number)),
                h("td", null, t("type_" + c.case_type)),
                h("td", null, c.source_id),
                h("td", { class: "wrap" }, c.awaiting.map((f) => h("div", { title: f.reason || "" }, fieldLabel(f)))),
                h("td", null, time(c.since)),
                h(
                  "td",
                  null,
                  canWrite
                    ? h("a", { href: `#/supplements/${encodeURIComponent(c.code)}`, class: "button small supplement-btn" }, t("supplement_btn"))
                    : null,
                ),
              ),
            ),
          )
        : h("p", { class: "muted", id: "supplements-empty" }, t("nothing_found")),
    );
  }
  return { refresh };
}

function detailView(root, ctx, code) {
  const status = h("div", { id: "supplement-status" });
  const body = h("div", { id: "supplement-body" });
  replace(
    root,
    h("p", null, h("a", { href: "#/supplements", id: "supplement-back" }, "← " + t("supplement_back"))),
    h("h2", null, tf("supplement_title", { code })),
    status,
    body,
  );
  let drawn = null;

  function draw(c) {
    const inputs = c.awaiting.map((f, i) => ({ f, input: h("input", { id: `sup-field-${i}`, type: "text", autocomplete: "off", spellcheck: "false", dataset: { pointer: f.pointer } }) }));
    const note = h("input", { id: "sup-note", type: "text", autocomplete: "off" });
    const canWrite = ctx.can("supplements_write") && !c.withdrawn && c.awaiting.length > 0;
    const form = canWrite
      ? h(
          "form",
          {
            id: "supplement-form",
            class: "stacked",
            on: {
              submit: async (ev) => {
                ev.preventDefault();
                const fields = {};
                for (const { f, input } of inputs) if (input.value.trim()) fields[f.pointer] = input.value.trim();
                if (!Object.keys(fields).length) {
                  ctx.notice(status, "error", t("supplement_empty_value"));
                  return;
                }
                const button = ev.currentTarget.querySelector("button[type=submit]");
                button.disabled = true;
                try {
                  const r = await api("POST", `/api/supplements/${encodeURIComponent(code)}/complete`, { fields, note: note.value.trim() || null });
                  const still = r.awaiting.map(fieldLabel).join("、");
                  replace(
                    status,
                    h(
                      "div",
                      { class: "notice ok", role: "status" },
                      tf("supplement_done", { code, version: r.version }),
                      still ? h("div", null, tf("supplement_still", { fields: still })) : null,
                    ),
                  );
                  drawn = null;
                  await refresh();
                } catch (e) {
                  button.disabled = false;
                  const violations = e.body && Array.isArray(e.body.violations) ? e.body.violations : [];
                  replace(
                    status,
                    h(
                      "div",
                      { class: "notice error", role: "alert" },
                      violations.length ? t("supplement_invalid") : e.text ? e.text() : String(e),
                      violations.length ? h("ul", { id: "supplement-violations" }, violations.map(violationItem)) : null,
                    ),
                  );
                }
              },
            },
          },
          inputs.map(({ f, input }) =>
            h(
              "div",
              { class: "field" },
              h("label", { for: input.id }, fieldLabel(f)),
              input,
              f.reason ? h("div", { class: "muted small-text" }, t("supplement_reason"), "：", f.reason) : null,
            ),
          ),
          h("div", { class: "field" }, h("label", { for: "sup-note" }, t("supplement_note")), note),
          h("button", { type: "submit", class: "primary", id: "supplement-submit" }, t("supplement_submit")),
        )
      : h("p", { class: "muted", id: "supplement-nothing" }, c.awaiting.length ? "" : t("supplement_nothing"));
    const facts = h(
      "dl",
      { class: "facts" },
      h("dt", null, t("case_number")),
      h("dd", null, dash(c.case_number)),
      h("dt", null, t("case_type")),
      h("dd", null, t("type_" + c.case_type)),
      h("dt", null, t("case_name")),
      h("dd", null, dash(c.record && c.record.case_name)),
      h("dt", null, t("agency")),
      h("dd", null, dash(c.record && c.record.agency && c.record.agency.name), " ", h("code", null, c.agency_credit_code)),
      h("dt", null, t("source")),
      h("dd", null, c.source_id),
      h("dt", null, t("version")),
      h("dd", null, String(c.version)),
    );
    const history = c.supplied.length
      ? [
          h("h3", null, t("supplement_history")),
          table(
            { id: "supplement-history", class: "grid" },
            [t("field_filter"), t("value"), t("version"), t("supplied_by"), t("updated")],
            c.supplied.map((s) => h("tr", null, h("td", null, h("code", null, s.pointer)), h("td", { class: "wrap" }, typeof s.value === "string" ? s.value : JSON.stringify(s.value)), h("td", null, String(s.version)), h("td", null, s.actor), h("td", null, time(s.created_at)))),
          ),
        ]
      : null;
    replace(body, facts, form, history, ctx.can("cases_read") ? h("p", null, h("a", { href: `#/cases/${encodeURIComponent(code)}`, class: "case-link" }, t("nav_cases") + " →")) : null);
  }

  async function refresh() {
    const c = await api("GET", `/api/supplements/${encodeURIComponent(code)}`);
    // The form is drawn once per state of the case: a refresh does not wipe what is being typed.
    const sig = JSON.stringify([lang(), c.version, c.awaiting, c.supplied.length]);
    if (drawn === sig) return;
    drawn = sig;
    draw(c);
  }
  return { refresh };
}

export default {
  id: "supplements",
  navKey: "nav_supplements",
  needs: "supplements_read",
  roles: ["admin", "operator", "standards-owner", "department"],
  mount(root, ctx, params) {
    return params && params[0] ? detailView(root, ctx, params[0]) : listView(root, ctx);
  },
};
