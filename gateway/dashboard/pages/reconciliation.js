// 对账 Reconciliation: per source and day, what the source says it holds against what the gateway
// received, accepted, quarantined and delivered, with the gaps and the missing record keys; and
// the departments with cases off the platform (未上平台案件). Operators may ask the sources now.
import { h, replace, time, dash, table, update } from "../dom.js";
import { t, tf, lang } from "../i18n.js";
import { api, query } from "../api.js";
import { badge } from "../ui.js";

/** Filters, kept across page changes in this tab. */
const state = { source: "", gapsOnly: false };

function statusBadge(s) {
  return badge("recon-" + s, t("recon_status_" + s));
}

export default {
  id: "reconciliation",
  navKey: "nav_reconciliation",
  needs: "sources_read",
  roles: ["admin", "operator", "standards-owner"],
  mount(root, ctx) {
    const status = h("div", { id: "recon-status" });
    const days = h("div", { id: "recon-days" });
    const off = h("div", { id: "off-platform" });
    const source = h("input", { id: "r-source", value: state.source, placeholder: t("all") });
    const gapsOnly = h("input", { id: "r-gaps", type: "checkbox", checked: state.gapsOnly });
    const canCheck = ctx.can("sources_control");
    const form = h(
      "form",
      {
        class: "filters",
        on: {
          submit: (ev) => {
            ev.preventDefault();
            Object.assign(state, { source: source.value.trim(), gapsOnly: gapsOnly.checked });
            refresh().catch((e) => ctx.notice(status, "error", e.text()));
          },
        },
      },
      h("label", { for: "r-source" }, t("source"), source),
      h("label", { for: "r-gaps", class: "check" }, gapsOnly, t("recon_gaps_only")),
      h(
        "span",
        { class: "filter-buttons" },
        h("button", { type: "submit", class: "primary", id: "recon-filter-btn" }, t("filter")),
        canCheck
          ? h(
              "button",
              {
                type: "button",
                id: "recon-check-btn",
                on: {
                  click: async () => {
                    try {
                      const r = await api("POST", "/api/reconciliation/check" + query({ source: state.source }));
                      const failed = r.claims.filter((c) => c.error);
                      ctx.notice(
                        status,
                        failed.length ? "error" : "ok",
                        tf("recon_checked", { n: r.claims.length, day: r.day }) +
                          failed.map((c) => ` ${c.source_id}: ${c.error}`).join(";"),
                      );
                      await refresh();
                    } catch (e) {
                      ctx.notice(status, "error", e.text());
                    }
                  },
                },
              },
              t("recon_check_now"),
            )
          : null,
      ),
    );
    replace(
      root,
      h("h2", null, t("nav_reconciliation")),
      h("p", { class: "muted" }, t("recon_help")),
      status,
      form,
      h("section", { class: "card", "aria-labelledby": "recon-days-title" }, h("h3", { id: "recon-days-title" }, t("recon_days")), days),
      h("section", { class: "card", "aria-labelledby": "off-platform-title" }, h("h3", { id: "off-platform-title" }, t("off_platform")), off),
    );

    async function refresh() {
      const [rec, offp] = await Promise.all([
        api("GET", "/api/reconciliation" + query({ source: state.source, gaps: state.gapsOnly ? "true" : "" })),
        api("GET", "/api/off-platform"),
      ]);
      const lng = lang();
      update(days, JSON.stringify([lng, rec.items]), () =>
        rec.items.length
          ? table(
              { id: "recon-table", class: "grid" },
              [t("recon_day"), t("source"), t("recon_claimed"), t("recon_received"), t("recon_accepted"), t("recon_quarantined"), t("delivery_pending"), t("delivery_dead"), t("recon_missing"), t("status")],
              rec.items.map((r) =>
                h(
                  "tr",
                  { dataset: { source: r.source_id, day: r.day, status: r.status } },
                  h("td", null, r.day),
                  h("td", null, r.source_id),
                  h("td", { class: "num" }, dash(r.claimed)),
                  h("td", { class: "num" }, r.received),
                  h("td", { class: "num" }, r.accepted),
                  h("td", { class: "num" }, r.quarantined),
                  h("td", { class: "num" }, r.pending),
                  h("td", { class: "num dead" }, r.dead),
                  h(
                    "td",
                    { class: "wrap" },
                    h("span", { class: "num" }, r.missing),
                    r.missing_keys.length
                      ? h("details", { class: "missing-keys", dataset: { key: `${r.source_id}/${r.day}` } }, h("summary", null, t("recon_missing_keys")), h("ul", null, r.missing_keys.map((k) => h("li", null, h("code", null, k)))))
                      : null,
                  ),
                  h(
                    "td",
                    null,
                    statusBadge(r.status),
                    r.gaps.map((g) => badge("recon-gap", t("recon_gap_" + g))),
                    r.check_error ? h("div", { class: "error-text" }, r.check_error) : null,
                    r.checked_at ? h("div", { class: "muted" }, `${t("recon_checked_at")} ${time(r.checked_at)}`) : null,
                  ),
                ),
              ),
            )
          : h("p", { class: "muted" }, t("nothing_found")),
      );
      update(off, JSON.stringify([lng, offp]), () =>
        h(
          "div",
          null,
          h("p", { class: "muted" }, tf("off_platform_help", { d: offp.delivery_overdue_hours, q: offp.quarantine_overdue_hours })),
          offp.departments.length
            ? table(
                { id: "off-platform-table", class: "grid" },
                [t("off_department"), t("off_undelivered"), t("off_quarantined"), t("oldest"), t("off_cases")],
                offp.departments.map((d) =>
                  h(
                    "tr",
                    { dataset: { department: d.department } },
                    h("td", null, h("code", null, d.department)),
                    h("td", { class: "num" }, d.undelivered),
                    h("td", { class: "num" }, d.quarantined),
                    h("td", null, time(d.oldest)),
                    h(
                      "td",
                      { class: "wrap" },
                      h(
                        "details",
                        { dataset: { key: "off/" + d.department } },
                        h("summary", null, tf("off_show", { n: d.deliveries.length + d.records.length })),
                        h(
                          "ul",
                          null,
                          d.deliveries.map((x) => h("li", null, h("code", null, x.unified_code), ` → ${x.sink_id} · ${t("delivery_" + x.status)} · ${time(x.since)}`, x.last_error ? ` · ${x.last_error}` : "")),
                          d.records.map((x) => h("li", null, h("code", null, x.record_key), ` · ${x.source_id} · ${x.rules.join(", ")} · ${time(x.since)}`)),
                        ),
                      ),
                    ),
                  ),
                ),
              )
            : h("p", { class: "muted", id: "off-platform-none" }, t("off_platform_none")),
        ),
      );
    }
    return { refresh };
  },
};
