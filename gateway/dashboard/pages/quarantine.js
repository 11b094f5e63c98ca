// Quarantine: one search box (case number, record key, target name, credit code / ID number),
// rules offered with their exact open counts, source, status, dates; numbered pages with the
// exact total; bulk replay and ignore of the filter with a preview count. One entry: its
// violations at full width (the source field each came from, highlighted in the raw record) and,
// once replayed, the case version it became.
import { h, replace, time, dash, table, update, invalidate } from "../dom.js";
import { t, tf, pick, lang } from "../i18n.js";
import { api, query } from "../api.js";
import { badge, dayAfter, showPager } from "../ui.js";
import { rawRecord, sourceFieldsFor } from "../raw.js";

/** Filters and paging, kept across page changes in this tab. */
const state = { q: "", source: "", rule: "", status: "open", since: "", until: "", offset: 0, limit: 20 };

/** Whether the violations also show the other language's message (kept in this tab). */
const view = { both: false };

export function statusBadge(s) {
  return badge("status-" + s, t("status_" + s));
}

function sourceChoices(ctx) {
  return ctx.can("sources_read") ? api("GET", "/api/sources").then((r) => r.items.map((s) => s.id)) : Promise.resolve(ctx.me.sources || []);
}

/** The filter as the API reads it (list and bulk actions alike). */
function filterParams() {
  return { q: state.q, source: state.source, rule: state.rule, since: state.since, until: dayAfter(state.until) };
}

/** The filter in words, for the bulk confirmation. */
function filterWords() {
  const parts = [];
  if (state.q) parts.push(`${t("search")}: ${state.q}`);
  if (state.rule) parts.push(`${t("rule")}: ${state.rule}`);
  if (state.source) parts.push(`${t("source")}: ${state.source}`);
  if (state.since) parts.push(`${t("since")}: ${state.since}`);
  if (state.until) parts.push(`${t("until")}: ${state.until}`);
  return parts.length ? parts.join(" · ") : t("no_filter");
}

function summaryText(s) {
  if (!s) return "";
  return `${t("received")} ${s.received} · ${t("accepted")} ${s.accepted} · ${t("updated")} ${s.updated} · ${t("unchanged")} ${s.unchanged} · ${t("stale")} ${s.stale || 0} · ${t("quarantined")} ${s.quarantined}`;
}

function rulesOf(e) {
  return [...new Set((e.violations || []).map((v) => v.rule))];
}

function listView(root, ctx) {
  const status = h("div", { id: "quarantine-status" });
  const list = h("div", { id: "quarantine-list" });
  const pages = h("div", { id: "quarantine-pages" });
  const bulk = h("div", { id: "bulk-panel" });
  const search = h("input", {
    id: "f-q",
    type: "search",
    value: state.q,
    placeholder: t("quarantine_search_placeholder"),
    autocomplete: "off",
    spellcheck: "false",
  });
  const sourceSel = h("select", { id: "f-source" }, h("option", { value: "" }, t("all")));
  const ruleSel = h("select", { id: "f-rule" });
  const statusSel = h(
    "select",
    { id: "f-status" },
    ["", "open", "replayed", "ignored", "superseded"].map((s) => h("option", { value: s, selected: s === state.status }, s ? t("status_" + s) : t("all"))),
  );
  const since = h("input", { id: "f-since", type: "date", value: state.since });
  const until = h("input", { id: "f-until", type: "date", value: state.until });
  const label = (forId, text, control) => h("label", { for: forId }, text, control);
  /** The rules with their exact counts (of the chosen status), for the rule picker. */
  let counts = null;
  let countsAt = 0;

  function fillRules() {
    const rules = counts ? counts.rules : [];
    const options = [h("option", { value: "" }, t("all_rules"))];
    for (const r of rules) options.push(h("option", { value: r.rule, selected: r.rule === state.rule }, `${r.rule} (${r.count})`));
    if (state.rule && !rules.some((r) => r.rule === state.rule)) options.push(h("option", { value: state.rule, selected: true }, `${state.rule} (0)`));
    const keep = ruleSel.value;
    replace(ruleSel, options);
    ruleSel.value = document.activeElement === ruleSel && keep !== undefined ? keep : state.rule;
  }

  async function loadCounts() {
    try {
      counts = await api("GET", "/api/quarantine/counts" + query({ status: state.status || "open" }));
      countsAt = Date.now();
      fillRules();
    } catch (_) {
      // The rule picker then offers the rule typed before; the list still works.
    }
  }
  fillRules();
  // Counts are asked for when the page opens, when the filter changes, after a bulk action, and
  // when the picker is opened after a while; the 3-second refresh asks only for the list.
  ruleSel.addEventListener("focus", () => {
    if (Date.now() - countsAt > 15000) loadCounts();
  });

  sourceChoices(ctx)
    .then((ids) => {
      for (const id of ids) sourceSel.appendChild(h("option", { value: id, selected: id === state.source }, id));
    })
    .catch(() => {});

  function apply() {
    Object.assign(state, {
      q: search.value.trim(),
      source: sourceSel.value,
      rule: ruleSel.value,
      status: statusSel.value,
      since: since.value,
      until: until.value,
      offset: 0,
    });
    replace(bulk);
    replace(status);
    loadCounts();
    refresh().catch((e) => ctx.notice(status, "error", e.text ? e.text() : String(e)));
  }

  const form = h(
    "form",
    {
      class: "filters",
      role: "search",
      on: {
        submit: (ev) => {
          ev.preventDefault();
          apply();
        },
      },
    },
    h("label", { for: "f-q", class: "grow" }, t("search"), search),
    label("f-rule", t("rule"), ruleSel),
    label("f-source", t("source"), sourceSel),
    label("f-status", t("status"), statusSel),
    label("f-since", t("since"), since),
    label("f-until", t("until"), until),
    h("span", { class: "filter-buttons" }, h("button", { type: "submit", class: "primary", id: "filter-btn" }, t("filter")), h(
      "button",
      {
        type: "button",
        id: "filter-clear",
        on: {
          click: () => {
            search.value = "";
            sourceSel.value = "";
            ruleSel.value = "";
            statusSel.value = "open";
            since.value = "";
            until.value = "";
            apply();
          },
        },
      },
      t("clear"),
    )),
  );

  const canReplay = ctx.can("quarantine_replay");
  const canIgnore = ctx.can("quarantine_ignore");
  const toolbar = h(
    "div",
    { class: "toolbar" },
    canReplay ? h("button", { type: "button", id: "bulk-replay-btn", on: { click: () => openBulk("replay") } }, t("bulk_replay")) : null,
    canIgnore ? h("button", { type: "button", id: "bulk-ignore-btn", on: { click: () => openBulk("ignore") } }, t("bulk_ignore")) : null,
  );

  /** The bulk panel: the filter in words, how many open entries it matches, a reason (ignore), confirm. */
  async function openBulk(kind) {
    replace(status);
    const body = { ...filterParams() };
    for (const k of Object.keys(body)) if (!body[k]) delete body[k];
    if (!body.q && !body.source && !body.rule) {
      ctx.notice(status, "error", t("bulk_needs_filter"));
      return;
    }
    const result = h("div", { id: "bulk-result" });
    const preview = h("p", { id: "bulk-preview", class: "bulk-count", role: "status" }, t("counting"));
    const reason = kind === "ignore" ? h("textarea", { id: "bulk-reason", rows: 2, required: true, placeholder: t("ignore_reason_placeholder") }) : null;
    const confirm = h("button", { type: "button", id: "bulk-confirm", class: "primary", disabled: true }, t(kind === "ignore" ? "confirm_ignore" : "confirm_replay"));
    const cancel = h("button", { type: "button", id: "bulk-cancel", on: { click: () => replace(bulk) } }, t("cancel"));
    replace(
      bulk,
      h(
        "section",
        { class: "card bulk", "aria-labelledby": "bulk-title" },
        h("h3", { id: "bulk-title" }, t(kind === "ignore" ? "bulk_ignore_title" : "bulk_replay_title")),
        h("p", { class: "muted" }, `${t("filter")}: ${filterWords()}`),
        preview,
        reason ? [h("label", { for: "bulk-reason" }, t("ignore_reason")), reason] : null,
        h("div", { class: "toolbar" }, confirm, cancel),
        result,
      ),
    );
    let matched = 0;
    try {
      const r = await api("POST", `/api/quarantine/${kind}`, { ...body, preview: true });
      matched = r.matched;
      preview.textContent = tf(kind === "ignore" ? "bulk_ignore_preview" : "bulk_replay_preview", { n: matched });
      confirm.disabled = matched === 0;
      if (matched > 0) confirm.textContent = tf(kind === "ignore" ? "confirm_ignore_n" : "confirm_replay_n", { n: matched });
    } catch (e) {
      preview.textContent = "";
      ctx.notice(result, "error", e.text ? e.text() : String(e));
      return;
    }
    confirm.addEventListener("click", async () => {
      if (reason && !reason.value.trim()) {
        ctx.notice(result, "error", t("ignore_needs_reason"));
        reason.focus();
        return;
      }
      confirm.disabled = true;
      try {
        const r = await api("POST", `/api/quarantine/${kind}`, kind === "ignore" ? { ...body, reason: reason.value.trim() } : body);
        const text =
          kind === "ignore" ? tf("bulk_ignored", { n: r.ignored ?? r.matched }) : `${tf("bulk_replayed", { n: r.matched ?? "" })} ${summaryText(r.summary)}`;
        replace(bulk);
        ctx.notice(status, "ok", text);
        invalidate(list);
        loadCounts();
        await refresh();
      } catch (e) {
        confirm.disabled = false;
        ctx.notice(result, "error", e.text ? e.text() : String(e));
      }
    });
  }

  replace(root, h("h2", null, t("nav_quarantine")), form, toolbar, bulk, status, pages, list);

  async function refresh() {
    const page = await api("GET", "/api/quarantine" + query({ ...filterParams(), status: state.status, offset: state.offset, limit: state.limit }));
    const total = typeof page.total === "number" ? page.total : page.items.length;
    if (!showPager(pages, "quarantine-pager", state, total, refresh)) return refresh();
    const lng = lang();
    const sig = JSON.stringify([lng, page.items.map((e) => [e.id, e.status, e.updated_at, e.attempts])]);
    update(list, sig, () =>
      page.items.length
        ? table(
            { id: "quarantine-table", class: "grid" },
            ["#", t("case_number"), t("target"), t("rules"), t("source"), t("status"), t("received")],
            page.items.map((e) => {
              const l = e.labels || {};
              return h(
                "tr",
                { dataset: { id: e.id } },
                h("td", { class: "num" }, e.id),
                h(
                  "td",
                  { class: "wrap" },
                  h("a", { href: `#/quarantine/${e.id}`, class: "open-entry" }, l.case_number || e.record_key),
                  l.case_number && l.case_number !== e.record_key ? h("div", { class: "muted small-text", title: t("record_key") }, e.record_key) : null,
                ),
                h("td", { class: "wrap" }, dash(l.target_name), l.target_id ? h("div", { class: "muted small-text" }, l.target_id) : null),
                h("td", { class: "wrap" }, rulesOf(e).map((r) => h("code", { class: "rule" }, r))),
                h("td", null, e.source_id),
                h("td", null, statusBadge(e.status)),
                h("td", null, time(e.created_at)),
              );
            }),
          )
        : h(
            "p",
            { class: "muted", id: "quarantine-empty" },
            state.rule && counts && !counts.rules.some((r) => r.rule === state.rule)
              ? `${t("unknown_rule")} ${state.rule}. ${t("rules_with_entries")}: ${counts.rules.map((r) => `${r.rule} (${r.count})`).join(", ") || "—"}`
              : t("nothing_found"),
          ),
    );
  }
  loadCounts();
  return { refresh };
}

/** The violations of an entry: field, the source field it came from, rule, severity, value, message. */
function violationsTable(entry, fields, marks) {
  return table(
    { id: "violations-table", class: "grid violations" },
    [t("field"), t("source_field"), t("rule"), t("severity"), t("value"), t("message")],
    entry.violations.map((v) => {
      const sources = sourceFieldsFor(fields, v.pointer);
      const mine = pick(v.message_zh, v.message_en);
      const other = pick(v.message_en, v.message_zh);
      return h(
        "tr",
        { dataset: { rule: v.rule, pointer: v.pointer || "/" } },
        h("td", { class: "wrap" }, h("code", null, v.pointer || "/")),
        h(
          "td",
          { class: "wrap source-fields" },
          sources.length
            ? sources.map((s) =>
                marks.has(s)
                  ? h(
                      "button",
                      {
                        type: "button",
                        class: "link source-field",
                        title: t("show_in_raw"),
                        on: {
                          click: () => {
                            const m = marks.get(s);
                            m.scrollIntoView({ block: "center" });
                            m.classList.add("flash");
                            setTimeout(() => m.classList.remove("flash"), 1500);
                          },
                        },
                      },
                      h("code", null, s),
                    )
                  : h("code", { class: "source-field" }, s),
              )
            : "—",
        ),
        h("td", { class: "wrap" }, h("code", null, v.rule)),
        h("td", null, badge("sev-" + v.severity, t("sev_" + v.severity))),
        h("td", { class: "wrap" }, dash(v.value)),
        h(
          "td",
          { class: "message" },
          h("span", { class: "msg", lang: lang() === "en" ? "en" : "zh-CN", title: other }, mine),
          view.both ? h("div", { class: "msg-other muted", lang: lang() === "en" ? "zh-CN" : "en" }, other) : null,
        ),
      );
    }),
  );
}

function detailView(root, ctx, id) {
  const meta = h("div", { id: "entry-meta", class: "card" });
  const resolution = h("div", { id: "entry-resolution" });
  const violations = h("div", { id: "violations" });
  const rawBox = h("div", { id: "raw-box" });
  const actions = h("div", { id: "entry-actions" });
  const result = h("div", { id: "action-result" });
  const both = h(
    "button",
    {
      type: "button",
      id: "lang-both",
      class: "small",
      "aria-pressed": String(view.both),
      on: {
        click: () => {
          view.both = !view.both;
          both.setAttribute("aria-pressed", String(view.both));
          both.textContent = t(view.both ? "messages_one_language" : "messages_both_languages");
          invalidate(violations);
          refresh().catch(() => {});
        },
      },
    },
    t(view.both ? "messages_one_language" : "messages_both_languages"),
  );
  let shownStatus = null;
  replace(
    root,
    h("p", null, h("a", { href: "#/quarantine" }, "← " + t("back_to_list"))),
    h("h2", null, `${t("entry")} #${id}`),
    resolution,
    meta,
    result,
    actions,
    h("section", { class: "card", "aria-labelledby": "violations-title" }, h("div", { class: "card-head" }, h("h3", { id: "violations-title" }, t("violations")), both), violations),
    h(
      "section",
      { class: "card", "aria-labelledby": "raw-title" },
      h("h3", { id: "raw-title" }, t("raw_record")),
      h("p", { class: "muted small-text" }, h("mark", { class: "src-field legend" }, t("highlighted")), " ", t("raw_highlight_help")),
      rawBox,
    ),
  );

  function buildActions(entry) {
    const replayable = ctx.can("quarantine_replay") && entry.status === "open";
    const ignorable = ctx.can("quarantine_ignore") && entry.status === "open";
    if (!replayable && !ignorable) {
      replace(actions);
      return;
    }
    const reason = h("input", { id: "ignore-reason", placeholder: t("ignore_reason_placeholder"), size: 40 });
    replace(
      actions,
      h(
        "div",
        { class: "toolbar" },
        replayable
          ? h(
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
                      ctx.notice(result, now === "open" ? "error" : "ok", `${t("replay_result")}: ${now ? t("status_" + now) : ""} (${summaryText(r.summary)})`);
                      await refresh();
                    } catch (e) {
                      ctx.notice(result, "error", e.text());
                    }
                  },
                },
              },
              t("replay"),
            )
          : null,
        ignorable
          ? [
              h("label", { for: "ignore-reason", class: "inline" }, t("ignore_reason"), reason),
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
            ]
          : null,
      ),
    );
  }

  async function refresh() {
    const d = await api("GET", `/api/quarantine/${encodeURIComponent(id)}`);
    const e = d.entry;
    const l = e.labels || {};
    const became = d.case || e.resolution || null;
    const lng = lang();
    const sig = JSON.stringify([lng, e.status, e.updated_at, e.attempts, e.note, became, view.both]);
    update(resolution, sig, () =>
      became && became.code
        ? h(
            "div",
            { class: "notice ok became", role: "status" },
            t("became_case"),
            " ",
            ctx.can("cases_read") ? h("a", { href: `#/cases/${encodeURIComponent(became.code)}`, id: "became-case-link" }, became.code) : h("code", { id: "became-case-code" }, became.code),
            " ",
            became.version === null || became.version === undefined ? t("became_case_unchanged") : tf("became_case_version", { version: became.version }),
          )
        : null,
    );
    update(meta, sig, () =>
      h(
        "dl",
        { class: "facts" },
        h("dt", null, t("status")),
        h("dd", { id: "entry-status" }, statusBadge(e.status)),
        h("dt", null, t("case_number")),
        h("dd", { id: "entry-case-number" }, dash(l.case_number)),
        h("dt", null, t("target")),
        h("dd", null, dash(l.target_name), l.target_id ? ` (${l.target_id})` : ""),
        h("dt", null, t("source")),
        h("dd", null, e.source_id),
        h("dt", null, t("record_key")),
        h("dd", { class: "wrap" }, e.record_key),
        h("dt", null, t("mapping")),
        h("dd", null, `${e.mapping_id} v${e.mapping_version}`),
        h("dt", null, t("received")),
        h("dd", null, time(e.created_at)),
        h("dt", null, t("updated")),
        h("dd", null, time(e.updated_at)),
        h("dt", null, t("attempts")),
        h("dd", null, e.attempts),
        e.note ? [h("dt", null, t("note")), h("dd", { id: "entry-note" }, e.note)] : null,
      ),
    );
    const paths = [...new Set(e.violations.flatMap((v) => sourceFieldsFor(d.fields, v.pointer)))];
    const raw = rawRecord(d.raw, paths, { id: "raw-payload", dataset: { key: "raw" } });
    update(rawBox, JSON.stringify([d.raw.id, paths]), () => raw.el);
    // The marks drawn now (the raw record is drawn once; its marks stay the same).
    const marks = new Map([...rawBox.querySelectorAll("mark.src-field")].reverse().map((m) => [m.dataset.field, m]));
    update(violations, sig, () => {
      const tbl = violationsTable(e, d.fields || {}, marks);
      // A resolved entry's violations are history: what was wrong when it was quarantined.
      return e.status === "open" || !became
        ? tbl
        : h("details", { dataset: { key: "old-violations" } }, h("summary", null, t("violations_before_replay")), tbl);
    });
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
  needs: "quarantine_read",
  roles: ["admin", "operator", "standards-owner", "department"],
  mount(root, ctx, params) {
    return params[0] ? detailView(root, ctx, params[0]) : listView(root, ctx);
  },
};
