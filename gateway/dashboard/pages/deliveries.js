// Deliveries: pending / delivered / dead per sink, the deliveries themselves, re-drive.
import { h, replace, time, dash, table } from "../dom.js";
import { t } from "../i18n.js";
import { api, query } from "../api.js";

/** Filters and paging, kept across page changes in this tab. */
const state = { sink: "", status: "dead", pages: [null] };

export default {
  id: "deliveries",
  navKey: "nav_deliveries",
  needs: "deliveries",
  mount(root, ctx) {
    const status = h("div", { id: "deliveries-status" });
    const counts = h("div", { id: "delivery-counts" });
    const list = h("div", { id: "delivery-list" });
    const pager = h("div", { class: "pager" });
    const sink = h("input", { id: "d-sink", value: state.sink, placeholder: t("all") });
    const statusSel = h(
      "select",
      { id: "d-status" },
      ["", "pending", "delivered", "dead", "superseded"].map((s) => h("option", { value: s, selected: s === state.status }, s ? t("delivery_" + s) : t("all"))),
    );
    const form = h(
      "form",
      {
        class: "filters",
        on: {
          submit: (ev) => {
            ev.preventDefault();
            Object.assign(state, { sink: sink.value.trim(), status: statusSel.value, pages: [null] });
            refresh().catch((e) => ctx.notice(status, "error", e.text()));
          },
        },
      },
      h("label", null, t("sink"), sink),
      h("label", null, t("status"), statusSel),
      h("button", { type: "submit", class: "primary" }, t("filter")),
    );
    replace(root, h("h2", null, t("nav_deliveries")), h("section", { class: "card" }, h("h3", null, t("per_sink")), counts), status, form, list, pager);

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
      const before = state.pages[state.pages.length - 1];
      const page = await api("GET", "/api/deliveries" + query({ sink: state.sink, status: state.status, before_id: before, limit: 50 }));
      const bySink = new Map();
      for (const c of page.counts) {
        if (!bySink.has(c.sink_id)) bySink.set(c.sink_id, { pending: 0, delivered: 0, dead: 0 });
        bySink.get(c.sink_id)[c.status] = c.count;
      }
      replace(
        counts,
        bySink.size
          ? table(
              { id: "delivery-counts-table", class: "grid" },
              [t("sink"), t("delivery_pending"), t("delivery_delivered"), t("delivery_dead"), ""],
              [...bySink.entries()].map(([id, c]) =>
                h(
                  "tr",
                  { dataset: { sink: id } },
                  h("td", null, id),
                  h("td", { class: "num pending" }, c.pending),
                  h("td", { class: "num delivered" }, c.delivered),
                  h("td", { class: "num dead" }, c.dead),
                  h(
                    "td",
                    null,
                    c.dead > 0
                      ? h("button", { type: "button", class: "small redrive-sink-btn", on: { click: () => redrive("/api/deliveries/redrive", { sink: id }, id) } }, t("redrive_all_dead"))
                      : null,
                  ),
                ),
              ),
            )
          : h("p", { class: "muted" }, t("nothing_found")),
      );
      replace(
        list,
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
                  h("td", null, h("code", null, d.idempotency_key)),
                  h("td", null, h("span", { class: "badge delivery-" + d.status }, t("delivery_" + d.status))),
                  h("td", { class: "num" }, d.attempts),
                  h("td", null, time(d.next_attempt_at)),
                  h("td", { class: "error-text" }, dash(d.last_error)),
                  h("td", null, time(d.created_at)),
                  h(
                    "td",
                    null,
                    d.status === "dead"
                      ? h("button", { type: "button", class: "small redrive-btn", on: { click: () => redrive(`/api/deliveries/${d.id}/redrive`, undefined, `#${d.id}`) } }, t("redrive"))
                      : null,
                  ),
                ),
              ),
            )
          : h("p", { class: "muted" }, t("nothing_found")),
      );
      replace(
        pager,
        h("button", { type: "button", disabled: state.pages.length <= 1, on: { click: () => (state.pages.pop(), refresh()) } }, t("newer")),
        h("span", { class: "muted" }, `${t("page")} ${state.pages.length}`),
        h("button", { type: "button", disabled: page.next_before_id === null, on: { click: () => (state.pages.push(page.next_before_id), refresh()) } }, t("older")),
      );
    }
    return { refresh };
  },
};
