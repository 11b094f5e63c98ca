// Audit log: every change — replays, ignores, pushes, pulls, resyncs, re-drives, mapping changes —
// by actor, action and subject, with numbered pages; each entry's detail readable, a mapping
// activation's diff coloured.
import { h, replace, time, table, update } from "../dom.js";
import { t, lang } from "../i18n.js";
import { api, query } from "../api.js";
import { auditDetail, dayAfter, labelOr, showPager } from "../ui.js";

/** The actions the log holds (offered in the filter; any other can be typed). */
const ACTIONS = [
  "quarantine",
  "mapping",
  "quarantine.replay",
  "quarantine.ignore",
  "ingest.push",
  "source.pull",
  "source.resync",
  "delivery.redrive",
  "mapping.upload",
  "mapping.dry_run",
  "mapping.activate",
  "mapping.rollback",
  "case.source_changed",
  "officers.load",
  "joint",
  "joint.merge",
  "joint.dismiss",
  "joint.undo",
  "joint.reopened",
];

/** Filters and paging, kept across page changes in this tab. */
const state = { actor: "", action: "", subject: "", since: "", until: "", offset: 0, limit: 20 };

function actionLabel(action) {
  const key = action.replace(/[.\-]/g, "_");
  const label = labelOr("act_", key);
  return label === key ? action : label;
}

/** A subject ("quarantine:12", "case:3601…", "source:x") as a link where the dashboard has a page for it. */
function subjectCell(subject, ctx) {
  const m = /^([a-z_-]+):(.+)$/.exec(subject || "");
  if (m && m[1] === "quarantine" && /^\d+$/.test(m[2]) && ctx.can("quarantine_read")) return h("a", { href: `#/quarantine/${m[2]}` }, subject);
  if (m && m[1] === "case" && ctx.can("cases_read")) return h("a", { href: `#/cases/${encodeURIComponent(m[2])}` }, subject);
  if (m && m[1] === "mapping" && ctx.can("mappings")) return h("a", { href: `#/mappings/${encodeURIComponent(m[2])}` }, subject);
  if (m && m[1] === "joint-group" && /^\d+$/.test(m[2]) && ctx.can("joint_read")) return h("a", { href: `#/joint/${m[2]}` }, subject);
  return h("span", null, subject || "—");
}

export default {
  id: "audit",
  navKey: "nav_audit",
  needs: "audit_read",
  roles: ["admin", "operator", "standards-owner"],
  mount(root, ctx) {
    const status = h("div", { id: "audit-status" });
    const list = h("div", { id: "audit-list" });
    const pages = h("div", { id: "audit-pages" });
    const actor = h("input", { id: "a-actor", value: state.actor, autocomplete: "off", spellcheck: "false" });
    const action = h("input", { id: "a-action", value: state.action, list: "a-actions", autocomplete: "off", spellcheck: "false", placeholder: "quarantine.ignore" });
    const actions = h(
      "datalist",
      { id: "a-actions" },
      ACTIONS.map((x) => h("option", { value: x }, actionLabel(x))),
    );
    const subject = h("input", { id: "a-subject", value: state.subject, autocomplete: "off", spellcheck: "false", placeholder: "quarantine:12" });
    const since = h("input", { id: "a-since", type: "date", value: state.since });
    const until = h("input", { id: "a-until", type: "date", value: state.until });
    const form = h(
      "form",
      {
        class: "filters",
        role: "search",
        on: {
          submit: (ev) => {
            ev.preventDefault();
            Object.assign(state, { actor: actor.value.trim(), action: action.value.trim(), subject: subject.value.trim(), since: since.value, until: until.value, offset: 0 });
            replace(status);
            refresh().catch((e) => ctx.notice(status, "error", e.text ? e.text() : String(e)));
          },
        },
      },
      h("label", { for: "a-actor" }, t("actor"), actor),
      h("label", { for: "a-action" }, t("action"), action),
      actions,
      h("label", { for: "a-subject" }, t("subject"), subject),
      h("label", { for: "a-since" }, t("since"), since),
      h("label", { for: "a-until" }, t("until"), until),
      h("span", { class: "filter-buttons" }, h("button", { type: "submit", class: "primary", id: "audit-filter-btn" }, t("filter"))),
    );
    replace(root, h("h2", null, t("nav_audit")), h("p", { class: "muted" }, t("audit_help")), form, status, pages, list);

    async function refresh() {
      const page = await api("GET", "/api/audit" + query({ actor: state.actor, action: state.action, subject: state.subject, since: state.since, until: dayAfter(state.until), offset: state.offset, limit: state.limit }));
      const total = typeof page.total === "number" ? page.total : page.items.length;
      if (!showPager(pages, "audit-pager", state, total, refresh)) return refresh();
      const lng = lang();
      update(list, JSON.stringify([lng, page.items.map((a) => a.id)]), () =>
        page.items.length
          ? table(
              { id: "audit-table", class: "grid" },
              [t("time"), t("actor"), t("action"), t("subject"), t("detail")],
              page.items.map((a) =>
                h(
                  "tr",
                  { dataset: { id: a.id, action: a.action } },
                  h("td", null, time(a.at)),
                  h("td", { class: "wrap" }, a.actor),
                  h("td", null, h("span", { class: "action-label" }, actionLabel(a.action)), h("div", null, h("code", { class: "small-text" }, a.action))),
                  h("td", { class: "wrap" }, subjectCell(a.subject, ctx)),
                  h("td", { class: "wrap detail-cell" }, auditDetail(a)),
                ),
              ),
            )
          : h("p", { class: "muted", id: "audit-empty" }, t("nothing_found")),
      );
    }
    return { refresh };
  },
};
