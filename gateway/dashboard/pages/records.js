// Records (a department's "My records"): what became of each record received from its sources —
// accepted with its unified code and version, quarantined and why (with the entry), replayed,
// ignored, stale — with replay of its own open entries after a fix.
import { h, replace, time, dash, table, update, invalidate } from "../dom.js";
import { t, tf, lang } from "../i18n.js";
import { api, query } from "../api.js";
import { badge, dayAfter, showPager, sourceSelect } from "../ui.js";

const OUTCOMES = ["accepted", "quarantined", "ignored", "stale", "superseded", "unchanged"];

/** Filters and paging, kept across page changes in this tab. */
const state = { source: "", outcome: "", q: "", since: "", until: "", offset: 0, limit: 20 };

function outcomeBadge(o) {
  return badge("outcome-" + o, t("outcome_" + o), t("outcome_hint_" + o));
}

export default {
  id: "records",
  navKey: (me) => (me && me.role === "department" ? "nav_my_records" : "nav_records"),
  needs: "records_read",
  roles: ["admin", "operator", "standards-owner", "department"],
  mount(root, ctx) {
    const status = h("div", { id: "records-status" });
    const list = h("div", { id: "records-list" });
    const pages = h("div", { id: "records-pages" });
    const sourceSel = sourceSelect(ctx, "r-source", state.source);
    const outcomeSel = h(
      "select",
      { id: "r-outcome" },
      h("option", { value: "" }, t("all")),
      OUTCOMES.map((o) => h("option", { value: o, selected: o === state.outcome }, t("outcome_" + o))),
    );
    const search = h("input", { id: "r-q", type: "search", value: state.q, placeholder: t("records_search_placeholder"), autocomplete: "off", spellcheck: "false" });
    const since = h("input", { id: "r-since", type: "date", value: state.since });
    const until = h("input", { id: "r-until", type: "date", value: state.until });
    const form = h(
      "form",
      {
        class: "filters",
        role: "search",
        on: {
          submit: (ev) => {
            ev.preventDefault();
            Object.assign(state, { source: sourceSel.value, outcome: outcomeSel.value, q: search.value.trim(), since: since.value, until: until.value, offset: 0 });
            replace(status);
            refresh().catch((e) => ctx.notice(status, "error", e.text ? e.text() : String(e)));
          },
        },
      },
      h("label", { for: "r-q", class: "grow" }, t("search"), search),
      h("label", { for: "r-outcome" }, t("outcome"), outcomeSel),
      h("label", { for: "r-source" }, t("source"), sourceSel),
      h("label", { for: "r-since" }, t("since"), since),
      h("label", { for: "r-until" }, t("until"), until),
      h("span", { class: "filter-buttons" }, h("button", { type: "submit", class: "primary", id: "records-filter-btn" }, t("filter"))),
    );
    const title = t(ctx.me.role === "department" ? "nav_my_records" : "nav_records");
    replace(root, h("h2", null, title), h("p", { class: "muted" }, t(ctx.me.role === "department" ? "my_records_help" : "records_help")), form, status, pages, list);

    async function replayEntry(id, button) {
      button.disabled = true;
      try {
        const r = await api("POST", `/api/quarantine/${id}/replay`);
        const now = r.entry ? r.entry.status : "";
        ctx.notice(status, now === "open" ? "error" : "ok", tf(now === "open" ? "replay_still_open" : "replay_done", { id, status: now ? t("status_" + now) : "" }));
        invalidate(list);
        await refresh();
      } catch (e) {
        button.disabled = false;
        ctx.notice(status, "error", e.text ? e.text() : String(e));
      }
    }

    async function refresh() {
      const page = await api(
        "GET",
        "/api/records" + query({ source: state.source, outcome: state.outcome, q: state.q, since: state.since, until: dayAfter(state.until), offset: state.offset, limit: state.limit }),
      );
      const total = typeof page.total === "number" ? page.total : page.items.length;
      if (!showPager(pages, "records-pager", state, total, refresh)) return refresh();
      const lng = lang();
      const canCases = ctx.can("cases_read");
      const canReplay = ctx.can("quarantine_replay");
      update(list, JSON.stringify([lng, page.items]), () =>
        page.items.length
          ? table(
              { id: "records-table", class: "grid" },
              [t("received"), t("case_number"), t("outcome"), t("unified_code"), t("quarantine_entry"), t("source"), ""],
              page.items.map((r) =>
                h(
                  "tr",
                  { dataset: { raw: r.raw_id, outcome: r.outcome, quarantine: r.quarantine_id ?? "" } },
                  h("td", null, time(r.received_at)),
                  h("td", { class: "wrap" }, dash(r.case_number), r.case_number !== r.record_key ? h("div", { class: "muted small-text", title: t("record_key") }, r.record_key) : null),
                  h("td", null, outcomeBadge(r.outcome)),
                  h(
                    "td",
                    { class: "wrap code-cell" },
                    r.code
                      ? [
                          canCases ? h("a", { href: `#/cases/${encodeURIComponent(r.code)}`, class: "case-link" }, r.code) : h("code", { class: "case-code" }, r.code),
                          r.version ? h("span", { class: "muted" }, ` v${r.version}`) : null,
                        ]
                      : "—",
                  ),
                  h(
                    "td",
                    { class: "wrap" },
                    r.quarantine_id
                      ? [
                          h("a", { href: `#/quarantine/${r.quarantine_id}`, class: "entry-link" }, `#${r.quarantine_id}`),
                          r.rules && r.rules.length ? h("div", null, r.rules.map((x) => h("code", { class: "rule" }, x))) : null,
                        ]
                      : "—",
                  ),
                  h("td", null, r.source_id),
                  h(
                    "td",
                    null,
                    canReplay && r.outcome === "quarantined" && r.quarantine_id
                      ? h(
                          "button",
                          {
                            type: "button",
                            class: "small replay-own-btn",
                            on: { click: (ev) => replayEntry(r.quarantine_id, ev.currentTarget) },
                          },
                          t("replay_short"),
                        )
                      : null,
                  ),
                ),
              ),
            )
          : h("p", { class: "muted", id: "records-empty" }, t("nothing_found")),
      );
    }
    return { refresh };
  },
};
