// Case lookup: by unified code, business key or target credit code; each case with its
// versions and lineage (raw record, mapping version, deliveries per sink).
import { h, replace, time, table } from "../dom.js";
import { t } from "../i18n.js";
import { api, query } from "../api.js";

/** The last search, kept across page changes in this tab. */
const state = { mode: "list", code: "", agency: "", type: "penalty", number: "", target: "" };

/** True when version row `i` came from another source than the version before it (stale rows, never the head, do not count). */
function sourceChanged(versions, i) {
  if (versions[i].status === "stale") return false;
  const before = versions.slice(0, i).filter((x) => x.status !== "stale").pop();
  return before !== undefined && before.source_id !== versions[i].source_id;
}

function caseCard(view, ctx) {
  const c = view.case;
  const rawPanel = h("pre", { class: "code raw-panel", hidden: true });
  const versions = view.versions.map((v, i) =>
    h(
      "tr",
      { dataset: { version: v.version } },
      h("td", { class: "num" }, v.version),
      h("td", null, h("span", { class: "badge status-" + v.status, title: v.status === "stale" ? t("stale_hint") : null }, t("case_" + v.status))),
      h("td", null, time(v.created_at)),
      h(
        "td",
        { class: "version-source" },
        v.source_id,
        sourceChanged(view.versions, i)
          ? h("span", { class: "badge source-changed", title: t("source_changed_hint") }, t("source_changed"))
          : null,
      ),
      h("td", null, `${v.mapping_id} v${v.mapping_version}`),
      h(
        "td",
        null,
        h(
          "button",
          {
            type: "button",
            class: "small raw-btn",
            on: {
              click: async () => {
                try {
                  const raw = await api("GET", `/api/raw/${v.raw_id}`);
                  rawPanel.hidden = false;
                  rawPanel.textContent = `# raw ${raw.id} · ${raw.source_id} · ${raw.record_key} · ${time(raw.received_at)}\n${raw.payload_pretty}`;
                } catch (e) {
                  rawPanel.hidden = false;
                  rawPanel.textContent = e.text();
                }
              },
            },
          },
          `${t("raw_record")} #${v.raw_id}`,
        ),
      ),
      h(
        "td",
        null,
        v.deliveries.length
          ? h(
              "ul",
              { class: "plain" },
              v.deliveries.map((d) =>
                h("li", null, `${d.sink_id}: `, h("span", { class: "badge delivery-" + d.status }, t("delivery_" + d.status)), ` (${t("attempts")} ${d.attempts})`),
              ),
            )
          : "—",
      ),
      h("td", null, v.warnings.length ? v.warnings.map((w) => w.rule).join(", ") : "—"),
    ),
  );
  return h(
    "article",
    { class: "card case", dataset: { code: c.unified_code } },
    h("h3", null, h("code", { class: "unified-code" }, c.unified_code), c.withdrawn ? h("span", { class: "badge status-withdrawn" }, t("case_withdrawn")) : null),
    h(
      "dl",
      { class: "facts" },
      h("dt", null, t("agency_credit_code")),
      h("dd", null, c.key.agency_credit_code),
      h("dt", null, t("case_type")),
      h("dd", null, t("type_" + c.key.case_type)),
      h("dt", null, t("case_number")),
      h("dd", null, c.key.case_number),
      h("dt", null, t("region")),
      h("dd", null, `${c.region} · ${c.year}`),
      h("dt", null, t("version")),
      h("dd", null, c.version),
      h("dt", null, t("updated")),
      h("dd", null, time(c.updated_at)),
    ),
    table({ class: "grid versions" }, [t("version"), t("status"), t("created"), t("source"), t("mapping"), t("lineage_raw"), t("deliveries"), t("warnings")], versions),
    rawPanel,
    h("details", null, h("summary", null, t("canonical_record")), h("pre", { class: "code" }, JSON.stringify(c.record, null, 2))),
  );
}

export default {
  id: "cases",
  navKey: "nav_cases",
  needs: "casesRead",
  mount(root, ctx) {
    const status = h("div", { id: "cases-status" });
    const results = h("div", { id: "case-results" });
    const mode = h(
      "select",
      { id: "case-mode" },
      ["list", "code", "key", "target"].map((m) => h("option", { value: m, selected: m === state.mode }, t("lookup_" + m))),
    );
    const code = h("input", { id: "case-code", value: state.code, placeholder: "3601…", size: 24 });
    const agency = h("input", { id: "case-agency", value: state.agency, placeholder: t("agency_credit_code"), size: 20 });
    const type = h(
      "select",
      { id: "case-type" },
      ["penalty", "inspection", "coercion"].map((x) => h("option", { value: x, selected: x === state.type }, t("type_" + x))),
    );
    const number = h("input", { id: "case-number", value: state.number, placeholder: t("case_number") });
    const target = h("input", { id: "case-target", value: state.target, placeholder: t("target_credit_code"), size: 20 });
    const fields = h("span", { class: "mode-fields" });
    function showFields() {
      const m = mode.value;
      replace(fields, m === "code" ? code : m === "key" ? [agency, type, number] : m === "target" ? target : h("span", { class: "muted" }, t("lookup_list_help")));
    }
    mode.addEventListener("change", showFields);
    showFields();
    const form = h(
      "form",
      {
        class: "filters",
        on: {
          submit: (ev) => {
            ev.preventDefault();
            Object.assign(state, {
              mode: mode.value,
              code: code.value.trim(),
              agency: agency.value.trim(),
              type: type.value,
              number: number.value.trim(),
              target: target.value.trim(),
            });
            refresh().catch((e) => ctx.notice(status, "error", e.text()));
          },
        },
      },
      h("label", null, t("lookup_by"), mode),
      fields,
      h("button", { type: "submit", class: "primary", id: "case-search-btn" }, t("search")),
    );
    replace(root, h("h2", null, t("nav_cases")), form, status, results);

    async function refresh() {
      let views;
      try {
        if (state.mode === "code") {
          if (!state.code) return replace(results);
          views = [await api("GET", `/api/cases/${encodeURIComponent(state.code)}`)];
        } else if (state.mode === "key") {
          if (!state.number) {
            ctx.notice(status, "error", t("case_number_needed"));
            return replace(results);
          }
          // Without the agency, the number alone lists its cases across agencies and types.
          views = (
            await api(
              "GET",
              "/api/cases" + query(state.agency ? { agency_credit_code: state.agency, case_type: state.type, case_number: state.number } : { case_number: state.number, limit: 50 }),
            )
          ).items;
        } else if (state.mode === "target") {
          if (!state.target) return replace(results);
          views = (await api("GET", "/api/cases" + query({ target_credit_code: state.target, limit: 50 }))).items;
        } else {
          views = (await api("GET", "/api/cases" + query({ limit: 20 }))).items;
        }
      } catch (e) {
        if (e.status === 404) {
          // Forget what was shown, so that the next search that finds something redraws.
          delete results.dataset.sig;
          replace(results, h("p", { class: "muted" }, t("nothing_found")));
          return;
        }
        throw e;
      }
      // Keep open raw panels and <details> while refreshing: only redraw when something changed.
      const sig = JSON.stringify(views.map((v) => [v.case.unified_code, v.case.version, v.versions.map((x) => x.deliveries.map((d) => d.status + d.attempts))]));
      if (results.dataset.sig === sig) return;
      results.dataset.sig = sig;
      replace(results, views.length ? views.map((v) => caseCard(v, ctx)) : h("p", { class: "muted" }, t("nothing_found")));
    }
    return { refresh };
  },
};
