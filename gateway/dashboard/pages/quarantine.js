// Quarantine browser: filters, paging, one entry with its raw record and violations side by
// side, replay, ignore with a reason.
import { h, replace, time, dash, table } from "../dom.js";
import { t } from "../i18n.js";
import { api, query } from "../api.js";

/** Filters and paging, kept across page changes in this tab. */
const state = { source: "", rule: "", status: "open", since: "", until: "", pages: [null] };

function statusBadge(s) {
  return h("span", { class: "badge status-" + s }, t("status_" + s));
}

function sourceChoices(ctx) {
  return ctx.can("sourcesRead")
    ? api("GET", "/api/sources").then((r) => r.items.map((s) => s.id))
    : Promise.resolve(ctx.me.sources || []);
}

function listView(root, ctx) {
  const status = h("div", { id: "quarantine-status" });
  const list = h("div", { id: "quarantine-list" });
  const pager = h("div", { class: "pager" });
  const sourceSel = h("select", { id: "f-source" }, h("option", { value: "" }, t("all")));
  const rule = h("input", { id: "f-rule", value: state.rule, placeholder: "uscc.check_char", list: "rule-choices", autocomplete: "off" });
  const ruleChoices = h("datalist", { id: "rule-choices" });
  const totals = h("div", { id: "quarantine-counts", class: "muted" });
  /** The rules of open entries with their exact counts, for the rule filter (and to explain an empty answer). */
  let knownRules = [];
  const statusSel = h(
    "select",
    { id: "f-status" },
    ["", "open", "replayed", "ignored", "superseded"].map((s) => h("option", { value: s, selected: s === state.status }, s ? t("status_" + s) : t("all"))),
  );
  const since = h("input", { id: "f-since", type: "date", value: state.since });
  const until = h("input", { id: "f-until", type: "date", value: state.until });
  sourceChoices(ctx)
    .then((ids) => {
      for (const id of ids) sourceSel.appendChild(h("option", { value: id, selected: id === state.source }, id));
    })
    .catch(() => {});
  const form = h(
    "form",
    {
      class: "filters",
      on: {
        submit: (ev) => {
          ev.preventDefault();
          Object.assign(state, {
            source: sourceSel.value,
            rule: rule.value.trim(),
            status: statusSel.value,
            since: since.value,
            until: until.value,
            pages: [null],
          });
          refresh().catch((e) => ctx.notice(status, "error", e.text()));
        },
      },
    },
    h("label", null, t("source"), sourceSel),
    h("label", null, t("rule"), rule),
    h("label", null, t("status"), statusSel),
    h("label", null, t("since"), since),
    h("label", null, t("until"), until),
    h("button", { type: "submit", class: "primary", id: "filter-btn" }, t("filter")),
  );
  const replayAll = ctx.can("quarantineWrite")
    ? h(
        "button",
        {
          type: "button",
          id: "replay-filtered-btn",
          on: {
            click: async () => {
              if (!state.source && !state.rule) {
                ctx.notice(status, "error", t("replay_needs_filter"));
                return;
              }
              try {
                const r = await api("POST", "/api/quarantine/replay", { source: state.source || undefined, rule: state.rule || undefined });
                ctx.notice(status, "ok", `${t("replayed")}: ${summaryText(r.summary)}`);
                await refresh();
              } catch (e) {
                ctx.notice(status, "error", e.text());
              }
            },
          },
        },
        t("replay_filtered"),
      )
    : null;
  replace(root, h("h2", null, t("nav_quarantine")), form, ruleChoices, totals, h("div", { class: "toolbar" }, replayAll), status, list, pager);

  async function refresh() {
    const before = state.pages[state.pages.length - 1];
    const [page, counts] = await Promise.all([
      api(
        "GET",
        "/api/quarantine" +
          query({ source: state.source, rule: state.rule, status: state.status, since: state.since, until: state.until, before_id: before, limit: 20 }),
      ),
      api("GET", "/api/quarantine/counts" + query({ status: state.status || "open" })).catch(() => null),
    ]);
    if (counts) {
      knownRules = counts.rules;
      replace(ruleChoices, ...counts.rules.map((r) => h("option", { value: r.rule }, `${r.rule} (${r.count})`)));
      const inSource = state.source ? counts.sources[state.source] || 0 : counts.total;
      replace(totals, `${t("status_" + (state.status || "open"))}: ${inSource} ${t("entries")}`);
    }
    const rows = page.items.map((e) =>
      h(
        "tr",
        { dataset: { id: e.id } },
        h("td", null, h("a", { href: `#/quarantine/${e.id}`, class: "open-entry" }, `#${e.id}`)),
        h("td", null, e.source_id),
        h("td", null, e.record_key),
        h("td", null, statusBadge(e.status)),
        h("td", null, [...new Set(e.violations.map((v) => v.rule))].join(", ")),
        h("td", null, `${e.mapping_id} v${e.mapping_version}`),
        h("td", null, time(e.created_at)),
        h("td", { class: "num" }, e.attempts),
      ),
    );
    replace(
      list,
      rows.length
        ? table({ id: "quarantine-table", class: "grid" }, ["#", t("source"), t("record_key"), t("status"), t("rules"), t("mapping"), t("created"), t("attempts")], rows)
        : h(
            "p",
            { class: "muted", id: "quarantine-empty" },
            state.rule && !knownRules.some((r) => r.rule === state.rule)
              ? `${t("unknown_rule")} ${state.rule}. ${t("rules_with_entries")}: ${knownRules.map((r) => `${r.rule} (${r.count})`).join(", ") || "—"}`
              : t("nothing_found"),
          ),
    );
    replace(
      pager,
      h(
        "button",
        {
          type: "button",
          disabled: state.pages.length <= 1,
          on: {
            click: () => {
              state.pages.pop();
              refresh();
            },
          },
        },
        t("newer"),
      ),
      h("span", { class: "muted" }, `${t("page")} ${state.pages.length}`),
      h(
        "button",
        {
          type: "button",
          disabled: page.next_before_id === null,
          on: {
            click: () => {
              state.pages.push(page.next_before_id);
              refresh();
            },
          },
        },
        t("older"),
      ),
    );
  }
  return { refresh };
}

function summaryText(s) {
  return `${t("received")} ${s.received} · ${t("accepted")} ${s.accepted} · ${t("updated")} ${s.updated} · ${t("unchanged")} ${s.unchanged} · ${t("stale")} ${s.stale || 0} · ${t("quarantined")} ${s.quarantined}`;
}

function detailView(root, ctx, id) {
  const meta = h("div", { id: "entry-meta", class: "card" });
  const raw = h("pre", { id: "raw-payload", class: "code" });
  const violations = h("div", { id: "violations" });
  const actions = h("div", { id: "entry-actions" });
  const result = h("div", { id: "action-result" });
  let shownStatus = null;
  replace(
    root,
    h("p", null, h("a", { href: "#/quarantine" }, "← " + t("back_to_list"))),
    h("h2", null, `${t("entry")} #${id}`),
    meta,
    result,
    actions,
    h(
      "div",
      { class: "side-by-side" },
      h("section", { class: "card" }, h("h3", null, t("raw_record")), raw),
      h("section", { class: "card" }, h("h3", null, t("violations")), violations),
    ),
  );

  function buildActions(entry) {
    if (!ctx.can("quarantineWrite") || entry.status !== "open") {
      replace(actions);
      return;
    }
    const reason = h("input", { id: "ignore-reason", placeholder: t("ignore_reason"), size: 40 });
    replace(
      actions,
      h(
        "div",
        { class: "toolbar" },
        h(
          "button",
          {
            type: "button",
            id: "replay-btn",
            class: "primary",
            on: {
              click: async () => {
                try {
                  const r = await api("POST", `/api/quarantine/${id}/replay`);
                  const now = r.entry ? r.entry.status : "";
                  ctx.notice(result, now === "replayed" ? "ok" : "error", `${t("replay_result")}: ${now ? t("status_" + now) : ""} (${summaryText(r.summary)})`);
                  await refresh();
                } catch (e) {
                  ctx.notice(result, "error", e.text());
                }
              },
            },
          },
          t("replay"),
        ),
        reason,
        h(
          "button",
          {
            type: "button",
            id: "ignore-btn",
            on: {
              click: async () => {
                if (!reason.value.trim()) {
                  ctx.notice(result, "error", t("ignore_needs_reason"));
                  return;
                }
                try {
                  await api("POST", `/api/quarantine/${id}/ignore`, { reason: reason.value.trim() });
                  ctx.notice(result, "ok", t("ignored_ok"));
                  await refresh();
                } catch (e) {
                  ctx.notice(result, "error", e.text());
                }
              },
            },
          },
          t("ignore"),
        ),
      ),
    );
  }

  async function refresh() {
    const d = await api("GET", `/api/quarantine/${encodeURIComponent(id)}`);
    const e = d.entry;
    replace(
      meta,
      h(
        "dl",
        { class: "facts" },
        h("dt", null, t("status")),
        h("dd", { id: "entry-status" }, statusBadge(e.status)),
        h("dt", null, t("source")),
        h("dd", null, e.source_id),
        h("dt", null, t("record_key")),
        h("dd", null, e.record_key),
        h("dt", null, t("mapping")),
        h("dd", null, `${e.mapping_id} v${e.mapping_version}`),
        h("dt", null, t("created")),
        h("dd", null, time(e.created_at)),
        h("dt", null, t("updated")),
        h("dd", null, time(e.updated_at)),
        h("dt", null, t("attempts")),
        h("dd", null, e.attempts),
        e.note ? [h("dt", null, t("note")), h("dd", null, e.note)] : null,
      ),
    );
    raw.textContent = d.raw.payload_pretty;
    replace(
      violations,
      table(
        { id: "violations-table", class: "grid" },
        [t("field"), t("rule"), t("severity"), t("value"), "中文", "English"],
        e.violations.map((v) => [
          h("code", null, v.pointer || "/"),
          h("code", null, v.rule),
          h("span", { class: "badge sev-" + v.severity }, t("sev_" + v.severity)),
          dash(v.value),
          h("span", { lang: "zh-CN" }, v.message_zh),
          h("span", { lang: "en" }, v.message_en),
        ]),
      ),
    );
    if (shownStatus !== e.status) {
      shownStatus = e.status;
      buildActions(e);
    }
  }
  return { refresh };
}

export default {
  id: "quarantine",
  navKey: "nav_quarantine",
  needs: "quarantineRead",
  mount(root, ctx, params) {
    return params[0] ? detailView(root, ctx, params[0]) : listView(root, ctx);
  },
};
