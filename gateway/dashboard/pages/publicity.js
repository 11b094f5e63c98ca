// Publicity (双公示): whether each department's penalties were made public within 7 working days
// of their decision, counted per department; the overdue ones listed first to act on, the
// withheld ones with the rule that withheld them.
import { h, replace, dash, table, update } from "../dom.js";
import { t, lang } from "../i18n.js";
import { api, query } from "../api.js";
import { showPager } from "../ui.js";

/** Filters and paging of the list, kept across page changes in this tab. */
const state = { status: "overdue", agency: "", offset: 0, limit: 20 };

const STATUSES = ["overdue", "due", "late", "on_time", "withheld", "deadline_unknown"];

export default {
  id: "publicity",
  navKey: "nav_publicity",
  needs: "publicity_read",
  roles: ["admin", "operator", "standards-owner", "department"],
  mount(root, ctx) {
    const status = h("div", { id: "publicity-status" });
    const counts = h("div", { id: "publicity-counts" });
    const list = h("div", { id: "publicity-list" });
    const pages = h("div", { id: "publicity-pages" });
    const statusSel = h(
      "select",
      { id: "p-status" },
      ["", ...STATUSES].map((s) => h("option", { value: s, selected: s === state.status }, s ? t("publicity_" + s) : t("all"))),
    );
    const agency = h("input", { id: "p-agency", type: "search", value: state.agency, placeholder: "11360100014523152U", autocomplete: "off", spellcheck: "false" });
    const form = h(
      "form",
      {
        class: "filters",
        role: "search",
        on: {
          submit: (ev) => {
            ev.preventDefault();
            Object.assign(state, { status: statusSel.value, agency: agency.value.trim(), offset: 0 });
            replace(status);
            refresh().catch((e) => ctx.notice(status, "error", e.text ? e.text() : String(e)));
          },
        },
      },
      h("label", { for: "p-agency", class: "grow" }, t("agency_code"), agency),
      h("label", { for: "p-status" }, t("status"), statusSel),
      h("span", { class: "filter-buttons" }, h("button", { type: "submit", class: "primary", id: "publicity-filter-btn" }, t("filter"))),
    );
    replace(root, h("h2", null, t("nav_publicity")), h("p", { class: "muted" }, t("publicity_help")), h("h3", null, t("supplements_counts")), counts, form, status, pages, list);

    async function refresh() {
      const page = await api("GET", "/api/publicity" + query({ status: state.status, agency: state.agency, offset: state.offset, limit: state.limit }));
      if (!showPager(pages, "publicity-pager", state, page.total, refresh)) return refresh();
      const lng = lang();
      update(counts, JSON.stringify([lng, page.agencies]), () =>
        page.agencies.length
          ? table(
              { id: "publicity-counts-table", class: "grid" },
              [t("agency"), t("publicity_decided"), ...STATUSES.map((s) => t("publicity_" + s))],
              page.agencies.map((a) =>
                h(
                  "tr",
                  { dataset: { agency: a.agency_credit_code } },
                  h("td", null, a.agency_name, h("br"), h("code", { class: "small-text" }, a.agency_credit_code)),
                  h("td", { class: "num" }, String(a.decided)),
                  ...STATUSES.map((s) => h("td", { class: "num" }, a[s] > 0 && (s === "overdue" || s === "late") ? h("span", { class: "badge publicity-" + s }, String(a[s])) : String(a[s]))),
                ),
              ),
            )
          : h("p", { class: "muted", id: "publicity-counts-empty" }, t("nothing_found")),
      );
      update(list, JSON.stringify([lng, page.items]), () =>
        page.items.length
          ? table(
              { id: "publicity-table", class: "grid" },
              [t("unified_code"), t("agency"), t("publicity_decision_date"), t("publicity_deadline"), t("publicity_published_on"), t("status"), t("publicity_reason")],
              page.items.map((p) =>
                h(
                  "tr",
                  { dataset: { code: p.code, status: p.status } },
                  h("td", null, ctx.can("cases_read") ? h("a", { href: `#/cases/${encodeURIComponent(p.code)}` }, h("code", null, p.code)) : h("code", null, p.code)),
                  h("td", { class: "wrap" }, p.agency_name),
                  h("td", null, p.decision_date),
                  h("td", null, dash(p.deadline)),
                  h("td", null, p.published_on ? p.published_on + (p.published_sink ? ` (${p.published_sink})` : "") : "—"),
                  h("td", null, h("span", { class: "badge publicity-" + p.status }, t("publicity_" + p.status))),
                  h("td", { class: "wrap" }, dash(p.withheld_reason)),
                ),
              ),
            )
          : h("p", { class: "muted", id: "publicity-empty" }, t("nothing_found")),
      );
    }
    return { refresh };
  },
};
