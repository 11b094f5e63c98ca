// Officer registry (执法人员名录), read-only: the officers of each agency with their certificate's
// validity and status, searchable by agency, name or certificate number, with numbered pages;
// and the latest loads with what each added, removed and changed.
import { h, replace, time, table, update } from "../dom.js";
import { t, lang } from "../i18n.js";
import { api, query } from "../api.js";
import { showPager } from "../ui.js";

/** Filters and paging, kept across page changes in this tab. */
const state = { agency: "", q: "", offset: 0, limit: 20 };

function statusCell(status) {
  return h("span", { class: "officer-status " + (status === "active" ? "ok" : "bad") }, t("officer_" + status));
}

function validity(o) {
  return `${o.valid_from || "—"} ~ ${o.valid_to || "—"}`;
}

export default {
  id: "officers",
  navKey: "nav_officers",
  needs: "officers_read",
  roles: ["admin", "operator", "standards-owner", "department"],
  mount(root, ctx) {
    const status = h("div", { id: "officers-status" });
    const list = h("div", { id: "officers-list" });
    const pages = h("div", { id: "officers-pages" });
    const versions = h("div", { id: "officer-versions" });
    const agency = h("input", { id: "o-agency", value: state.agency, autocomplete: "off", spellcheck: "false", placeholder: "11360100014523152U" });
    const q = h("input", { id: "o-q", value: state.q, autocomplete: "off", spellcheck: "false" });
    const form = h(
      "form",
      {
        class: "filters",
        role: "search",
        on: {
          submit: (ev) => {
            ev.preventDefault();
            Object.assign(state, { agency: agency.value.trim(), q: q.value.trim(), offset: 0 });
            replace(status);
            refresh().catch((e) => ctx.notice(status, "error", e.text ? e.text() : String(e)));
          },
        },
      },
      h("label", { for: "o-agency" }, t("agency_code"), agency),
      h("label", { for: "o-q" }, t("officer_search"), q),
      h("span", { class: "filter-buttons" }, h("button", { type: "submit", class: "primary", id: "officers-filter-btn" }, t("filter"))),
    );
    replace(
      root,
      h("h2", null, t("nav_officers")),
      h("p", { class: "muted" }, t("officers_help")),
      form,
      status,
      pages,
      list,
      h("h3", null, t("officer_versions")),
      versions,
    );

    async function refresh() {
      const page = await api("GET", "/api/officers" + query({ agency: state.agency, q: state.q, offset: state.offset, limit: state.limit }));
      const loads = await api("GET", "/api/officers/versions" + query({ agency: state.agency, limit: 10 }));
      if (!showPager(pages, "officers-pager", state, page.total, refresh)) return refresh();
      const lng = lang();
      update(list, JSON.stringify([lng, page.items]), () =>
        page.items.length
          ? table(
              { id: "officers-table", class: "grid" },
              [t("officer_name"), t("officer_cert"), t("agency_code"), t("officer_validity"), t("status")],
              page.items.map((o) =>
                h(
                  "tr",
                  { dataset: { cert: o.cert_no, status: o.status } },
                  h("td", null, o.name),
                  h("td", null, h("code", null, o.cert_no)),
                  h("td", null, h("code", { class: "small-text" }, o.agency_credit_code)),
                  h("td", null, validity(o)),
                  h("td", null, statusCell(o.status)),
                ),
              ),
            )
          : h("p", { class: "muted", id: "officers-empty" }, t("nothing_found")),
      );
      update(versions, JSON.stringify([lng, loads.items]), () =>
        loads.items.length
          ? table(
              { id: "officer-versions-table", class: "grid" },
              [t("time"), t("agency_code"), t("version"), t("officer_count"), t("officer_changes"), t("actor"), t("officer_origin")],
              loads.items.map((v) =>
                h(
                  "tr",
                  { dataset: { id: v.id } },
                  h("td", null, time(v.loaded_at)),
                  h("td", null, h("code", { class: "small-text" }, v.agency_credit_code)),
                  h("td", null, "v" + v.version),
                  h("td", null, String(v.officers)),
                  h("td", null, `+${v.added} −${v.removed} ~${v.changed}`),
                  h("td", { class: "wrap" }, v.loaded_by),
                  h("td", { class: "wrap" }, v.origin),
                ),
              ),
            )
          : h("p", { class: "muted", id: "officer-versions-empty" }, t("nothing_found")),
      );
    }
    return { refresh };
  },
};
