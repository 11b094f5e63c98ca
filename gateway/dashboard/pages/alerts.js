// 告警 Alerts: the firing alerts, the recent ones (firing and resolved) and the webhook messages
// with their status, attempts and last error.
import { h, replace, time, dash, table, update } from "../dom.js";
import { t, pick, lang } from "../i18n.js";
import { api, query } from "../api.js";
import { badge } from "../ui.js";

function alertRows(items) {
  return items.map((a) =>
    h(
      "tr",
      { dataset: { id: a.id, rule: a.rule, status: a.status } },
      h("td", null, a.id),
      h("td", null, badge("severity-" + a.severity, t("severity_" + a.severity))),
      h("td", null, t("rule_" + a.rule)),
      h("td", null, h("code", null, a.subject)),
      h("td", { class: "wrap" }, pick(a.summary_zh, a.summary_en)),
      h("td", null, a.value),
      h("td", null, time(a.started_at)),
      h("td", null, a.status === "resolved" ? time(a.resolved_at) : badge("alert-firing", t("alert_firing"))),
    ),
  );
}

export default {
  id: "alerts",
  navKey: "nav_alerts",
  needs: "sources_read",
  roles: ["admin", "operator", "standards-owner"],
  mount(root) {
    const firing = h("div", { id: "alerts-firing" });
    const recent = h("div", { id: "alerts-recent" });
    const messages = h("div", { id: "alert-messages" });
    replace(
      root,
      h("h2", null, t("nav_alerts")),
      h("section", { class: "card", "aria-labelledby": "firing-title" }, h("h3", { id: "firing-title" }, t("alerts_firing")), firing),
      h("section", { class: "card", "aria-labelledby": "recent-title" }, h("h3", { id: "recent-title" }, t("alerts_recent")), recent),
      h("section", { class: "card", "aria-labelledby": "messages-title" }, h("h3", { id: "messages-title" }, t("alert_messages")), messages),
    );
    const headers = () => ["#", t("severity"), t("rule"), t("subject"), t("alert_summary"), t("value"), t("alert_started"), t("alert_resolved")];

    async function refresh() {
      const r = await api("GET", "/api/alerts" + query({ limit: 50 }));
      const lng = lang();
      update(firing, JSON.stringify([lng, r.firing]), () =>
        r.firing.length ? table({ id: "alerts-firing-table", class: "grid" }, headers(), alertRows(r.firing)) : h("p", { class: "muted", id: "no-alerts" }, t("alerts_none")),
      );
      update(recent, JSON.stringify([lng, r.recent]), () =>
        r.recent.length ? table({ id: "alerts-recent-table", class: "grid" }, headers(), alertRows(r.recent)) : h("p", { class: "muted" }, t("nothing_found")),
      );
      update(messages, JSON.stringify([lng, r.notifications, r.webhooks]), () =>
        h(
          "div",
          null,
          h("p", { class: "muted" }, `${t("alert_webhooks")}: ${r.webhooks.length ? r.webhooks.map((w) => `${w.id} (${w.kind})`).join(", ") : t("alert_webhooks_none")}`),
          r.notifications.length
            ? table(
                { id: "alert-messages-table", class: "grid" },
                ["#", t("alert_id"), t("alert_webhook"), t("alert_event"), t("status"), t("attempts"), t("next_attempt"), t("last_error"), t("alert_sent")],
                r.notifications.map((n) =>
                  h(
                    "tr",
                    { dataset: { id: n.id, webhook: n.webhook_id, status: n.status } },
                    h("td", null, n.id),
                    h("td", null, n.alert_id),
                    h("td", null, n.webhook_id),
                    h("td", null, t("event_" + n.event)),
                    h("td", null, badge("message-" + n.status, t("message_" + n.status))),
                    h("td", { class: "num" }, n.attempts),
                    h("td", null, n.status === "pending" ? time(n.next_attempt_at) : "—"),
                    h("td", { class: "error-text" }, dash(n.last_error)),
                    h("td", null, time(n.sent_at)),
                  ),
                ),
              )
            : h("p", { class: "muted" }, t("nothing_found")),
        ),
      );
    }
    return { refresh };
  },
};

/** When the navigation's alert count was last asked for (ms since the epoch). */
let badgeAsked = 0;

/**
 * Keep the number of firing alerts beside 告警 in the navigation (asked at most every 15 s, by
 * tokens that may read alerts); red while any fires.
 */
export async function refreshBadge(can) {
  const link = document.getElementById("nav-alerts");
  if (!link || !can("sources_read") || Date.now() - badgeAsked < 15000) return;
  badgeAsked = Date.now();
  try {
    const r = await api("GET", "/api/alerts" + query({ limit: 1 }));
    let el = document.getElementById("alert-count");
    if (!el) {
      el = h("span", { id: "alert-count", class: "badge alert-count" });
      link.appendChild(el);
    }
    el.textContent = r.firing.length ? String(r.firing.length) : "";
    el.hidden = r.firing.length === 0;
    el.title = t("alerts_firing");
  } catch {
    // The page's own refresh reports failures.
  }
}
