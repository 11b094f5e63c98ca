// Deliveries: pending / delivered / dead per sink, the deliveries themselves with the exact
// total of the filter and numbered pages, re-drive.
import { h, replace, time, dash, table, update } from "../dom.js";
import { t, lang } from "../i18n.js";
import { api, query } from "../api.js";
import { showPager } from "../ui.js";

/** Filters and paging, kept across page changes in this tab. */
const state = { sink: "", status: "dead", offset: 0, limit: 20 };

export default {
  id: "deliveries",
  navKey: "nav_deliveries",
  needs: "deliveries_read",
  roles: ["admin", "operator"],
  mount(root, ctx) {
    const status = h("div", { id: "deliveries-status" });
    const counts = h("div", { id: "delivery-counts" });
    const list = h("div", { id: "delivery-list" });
    const pages = h("div", { id: "delivery-pages" });
    const sink = h("input", { id: "d-sink", value: state.sink, placeholder: t("all") });
    const statusSel = h(
      "select",
      { id: "d-status" },
      ["", "pending", "delivered", "dead", "superseded", "withheld"].map((s) => h("option", { value: s, selected: s === state.status }, s ? t("delivery_" + s) : t("all"))),
    );
    const canWrite = ctx.can("deliveries_write");
    const form = h(
      "form",
      {
        class: "filters",
        on: {
          submit: (ev) => {
            ev.preventDefault();
            Object.assign(state, { sink: sink.value.trim(), status: statusSel.value, offset: 0 });
            refresh().catch((e) => ctx.notice(status, "error", e.text()));
          },
        },
      },
      h("label", { for: "d-sink" }, t("sink"), sink),
      h("label", { for: "d-status" }, t("status"), statusSel),
      h("span", { class: "filter-buttons" }, h("button", { type: "submit", class: "primary", id: "deliveries-filter-btn" }, t("filter"))),
    );
    replace(
      root,
      h("h2", null, t("nav_deliveries")),
      h("section", { class: "card", "aria-labelledby": "per-sink-title" }, h("h3", { id: "per-sink-title" }, t("per_sink")), counts),
      status,
      form,
      pages,
      list,
    );

    async function redrive(path, body, what) {
      try {
        const r = await api("POST", path, body);
        ctx.notice(status, "ok", `${t("redriven")}: ${r.redriven} (${what})`);
        await refresh();
      } catch (e) {
        ctx.notice(status, "error", e.text());
      }
    }

    async function refresh() {
      const page = await api(
        "GET",
        "/api/deliveries" + query({ sink: state.sink, status: state.status, offset: state.offset, limit: state.limit }),
      );
      const bySink = new Map();
      for (const c of page.counts) {
        if (!bySink.has(c.sink_id)) bySink.set(c.sink_id, { pending: 0, delivered: 0, dead: 0, superseded: 0, withheld: 0 });
        bySink.get(c.sink_id)[c.status] = c.count;
      }
      const total = page.total;
      if (!showPager(pages, "deliveries-pager", state, total, refresh)) return refresh();
      const lng = lang();
      update(counts, JSON.stringify([lng, page.counts]), () =>
        bySink.size
          ? table(
              { id: "delivery-counts-table", class: "grid" },
              [t("sink"), t("delivery_pending"), t("delivery_delivered"), t("delivery_dead"), t("delivery_withheld"), ""],
              [...bySink.entries()].map(([id, c]) =>
                h(
                  "tr",
                  { dataset: { sink: id } },
                  h("td", null, id),
                  h("td", { class: "num pending" }, c.pending),
                  h("td", { class: "num delivered" }, c.delivered),
                  h("td", { class: "num dead" }, c.dead),
                  h("td", { class: "num withheld" }, c.withheld),
                  h(
                    "td",
                    null,
                    canWrite && c.dead > 0
                      ? h("button", { type: "button", class: "small redrive-sink-btn", on: { click: () => redrive("/api/deliveries/redrive", { sink: id }, id) } }, t("redrive_all_dead"))
                      : null,
                  ),
                ),
              ),
            )
          : h("p", { class: "muted" }, t("nothing_found")),
      );
      update(list, JSON.stringify([lng, page.items]), () =>
        page.items.length
          ? table(
              { id: "deliveries-table", class: "grid" },
              ["#", t("sink"), t("idempotency_key"), t("status"), t("attempts"), t("next_attempt"), t("last_error"), t("created"), ""],
              page.items.map((d) =>
                h(
                  "tr",
                  { dataset: { id: d.id } },
                  h("td", null, d.id),
                  h("td", null, d.sink_id),
                  h("td", { class: "wrap" }, h("code", null, d.idempotency_key)),
                  h("td", null, h("span", { class: "badge delivery-" + d.status }, t("delivery_" + d.status))),
                  h("td", { class: "num" }, d.attempts),
                  h("td", null, time(d.next_attempt_at)),
                  h("td", { class: "error-text" }, dash(d.last_error)),
                  h("td", null, time(d.created_at)),
                  h(
                    "td",
                    null,
                    canWrite && d.status === "dead"
                      ? h("button", { type: "button", class: "small redrive-btn", on: { click: () => redrive(`/api/deliveries/${d.id}/redrive`, undefined, `#${d.id}`) } }, t("redrive"))
                      : null,
                  ),
                ),
              ),
            )
          : h("p", { class: "muted" }, t("nothing_found")),
      );
    }
    return { refresh };
  },
};
