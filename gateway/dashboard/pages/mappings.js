// Mappings: each source with its active version; per source the history, one version's text and
// code tables, upload of a new version (paste TOML + tables), dry-run diff, activate, roll back.
import { h, replace, time, dash, table, update } from "../dom.js";
import { t, lang } from "../i18n.js";
import { api, query } from "../api.js";
import { textDiff, auditDetail } from "../ui.js";

function statusBadge(s) {
  return h("span", { class: "badge mstatus-" + s }, t("mstatus_" + s));
}

/** A button that asks for a second click before it acts. */
function confirmButton(attrs, label, confirmLabel, action) {
  let armed = false;
  const b = h("button", {
    type: "button",
    ...attrs,
    on: {
      click: async () => {
        if (!armed) {
          armed = true;
          b.textContent = confirmLabel;
          b.classList.add("armed");
          return;
        }
        b.disabled = true;
        try {
          await action();
        } finally {
          b.disabled = false;
          armed = false;
          b.textContent = label;
          b.classList.remove("armed");
        }
      },
    },
  });
  b.textContent = label;
  return b;
}

function errorBlock(e) {
  const items = [h("strong", null, e.text())];
  const d = e.details;
  if (d && d.file !== undefined) {
    const pos = [d.file, d.line, d.column].filter((x) => x !== null && x !== undefined).join(":");
    items.push(h("div", { class: "parse-error" }, h("code", null, pos), " ", h("span", null, `${d.message_zh} / ${d.message_en}`)));
  } else if (d && Array.isArray(d.failures)) {
    items.push(h("div", null, `${t("tests")}: ${d.passed}/${d.total}`));
    items.push(
      h(
        "ul",
        { class: "test-failures" },
        d.failures.map((f) => h("li", null, h("code", null, f.name), h("ul", null, f.problems.map((p) => h("li", null, p))))),
      ),
    );
  }
  return h("div", { class: "notice error", role: "alert" }, items);
}

function compact(v) {
  return v === undefined || v === null ? "∅" : typeof v === "string" ? v : JSON.stringify(v);
}

function dryRunReport(r) {
  const c = r;
  const counts = [
    ["total", c.total],
    ["unchanged", c.unchanged],
    ["changed", c.changed],
    ["newly_accepted", c.newly_accepted],
    ["newly_rejected", c.newly_rejected],
    ["still_rejected", c.still_rejected],
  ];
  return h(
    "div",
    { class: "card dry-run" },
    h("h3", null, `${t("dry_run")}: v${r.active_version} → v${r.candidate_version} (${t("last_n")} ${r.last_n})`),
    h(
      "div",
      { class: "counts" },
      counts.map(([k, v]) => h("div", { class: "count count-" + k, dataset: { count: k } }, h("span", { class: "n" }, v), h("span", { class: "l" }, t(k)))),
    ),
    h("h4", null, t("field_changes")),
    c.field_changes.length
      ? table(
          { class: "grid field-changes" },
          [t("field"), t("records"), t("samples")],
          c.field_changes.map((f) => [
            h("code", null, f.pointer),
            f.count,
            h(
              "ul",
              { class: "plain" },
              f.samples.map((s) => h("li", null, h("span", { class: "muted" }, s.record_key + ": "), h("del", null, compact(s.old)), " → ", h("ins", null, compact(s.new)))),
            ),
          ]),
        )
      : h("p", { class: "muted" }, t("no_field_changes")),
    c.newly_accepted_records.length
      ? [h("h4", null, t("newly_accepted")), h("ul", { class: "plain newly-accepted" }, c.newly_accepted_records.map((x) => h("li", null, `${x.record_key} (raw #${x.raw_id})`)))]
      : null,
    c.newly_rejected_records.length
      ? [
          h("h4", null, t("newly_rejected")),
          h(
            "ul",
            { class: "plain newly-rejected" },
            c.newly_rejected_records.map((x) =>
              h("li", null, h("strong", null, x.record_key), ": ", x.violations.map((v) => `${v.rule} ${v.pointer} — ${v.message_zh} / ${v.message_en}`).join("; ")),
            ),
          ),
        ]
      : null,
  );
}

function listView(root, ctx) {
  const list = h("div", { id: "mapping-list" });
  replace(root, h("h2", null, t("nav_mappings")), list);
  async function refresh() {
    const r = await api("GET", "/api/mappings");
    update(list, JSON.stringify([lang(), r.items]), () =>
      table(
        { id: "mappings-table", class: "grid" },
        [t("source"), t("mapping"), t("active_version"), t("description"), t("activated"), t("newest_version"), t("candidates")],
        r.items.map((m) =>
          h(
            "tr",
            { dataset: { source: m.source_id } },
            h("td", null, h("a", { href: `#/mappings/${encodeURIComponent(m.source_id)}`, class: "open-source" }, m.source_id)),
            h("td", null, dash(m.mapping_id)),
            h("td", { class: "num active-version" }, m.active_version === null ? "—" : `v${m.active_version}`),
            h("td", null, dash(m.description)),
            h("td", null, m.activated_at ? `${time(m.activated_at)} · ${dash(m.activated_by)}` : "—"),
            h("td", { class: "num" }, m.newest_version === null ? "—" : `v${m.newest_version}`),
            h("td", { class: "num" }, m.candidates),
          ),
        ),
      ),
    );
  }
  return { refresh };
}

function sourceView(root, ctx, source) {
  const status = h("div", { id: "mapping-status" });
  const history = h("div", { id: "mapping-history" });
  const view = h("div", { id: "version-view" });
  const report = h("div", { id: "dry-run-report" });
  const audit = h("div", { id: "mapping-audit" });
  const lastN = h("input", { id: "dry-run-last", type: "number", min: 1, max: 100000, value: 1000 });
  let active = null;

  // Upload form.
  const mappingText = h("textarea", { id: "upload-mapping", rows: 16, spellcheck: "false", placeholder: 'id = "…"\nversion = 2\n…' });
  const tables = h("div", { id: "upload-tables" });
  const uploadResult = h("div", { id: "upload-result" });
  function addTable(name = "", text = "") {
    const row = h(
      "div",
      { class: "table-file" },
      h("input", { class: "table-name", value: name, placeholder: "procedures.csv", "aria-label": t("table_file_name") }),
      h("textarea", { class: "table-text", rows: 5, spellcheck: "false", value: text, "aria-label": t("table_file_text") }),
      h("button", { type: "button", class: "small link", on: { click: () => row.remove() } }, t("remove")),
    );
    tables.appendChild(row);
    return row;
  }
  const upload = h(
    "form",
    {
      id: "upload-form",
      class: "card upload",
      on: {
        submit: async (ev) => {
          ev.preventDefault();
          const body = { mapping: mappingText.value, tables: {} };
          for (const row of tables.querySelectorAll(".table-file")) {
            const name = row.querySelector(".table-name").value.trim();
            if (name) body.tables[name] = row.querySelector(".table-text").value;
          }
          try {
            const r = await api("POST", `/api/mappings/${encodeURIComponent(source)}/versions`, body);
            replace(uploadResult, h("div", { class: "notice ok", role: "status" }, `${t("uploaded")}: v${r.version} (${t("tests")} ${r.tests.passed}/${r.tests.total})`));
            await refresh();
          } catch (e) {
            replace(uploadResult, errorBlock(e));
          }
        },
      },
    },
    h("h3", null, t("upload_new")),
    h("p", { class: "muted" }, t("upload_help")),
    h(
      "div",
      { class: "toolbar" },
      h(
        "button",
        {
          type: "button",
          id: "from-active-btn",
          on: {
            click: async () => {
              if (active === null) return;
              try {
                const v = await api("GET", `/api/mappings/${encodeURIComponent(source)}/versions/${active}`);
                mappingText.value = v.mapping_toml;
                tables.replaceChildren();
                for (const [name, text] of Object.entries(v.code_tables)) addTable(name, text);
              } catch (e) {
                replace(uploadResult, errorBlock(e));
              }
            },
          },
        },
        t("start_from_active"),
      ),
      h("button", { type: "button", id: "add-table-btn", on: { click: () => addTable() } }, t("add_table")),
    ),
    h("label", { for: "upload-mapping" }, "mapping.toml"),
    mappingText,
    h("h4", null, t("code_tables")),
    tables,
    h("button", { type: "submit", id: "upload-btn", class: "primary" }, t("upload")),
    uploadResult,
  );

  replace(
    root,
    h("p", null, h("a", { href: "#/mappings" }, "← " + t("nav_mappings"))),
    h("h2", null, `${t("mapping_of")} ${source}`),
    status,
    h("div", { class: "toolbar" }, h("label", null, t("dry_run_last"), lastN)),
    history,
    report,
    view,
    upload,
    h("section", null, h("h3", null, t("audit")), audit),
  );

  async function showVersion(v) {
    try {
      const d = await api("GET", `/api/mappings/${encodeURIComponent(source)}/versions/${v}`);
      replace(
        view,
        h(
          "div",
          { class: "card" },
          h("h3", null, `v${d.version} · ${d.mapping_id} · ${d.fingerprint.slice(0, 16)}…`),
          h("p", null, `${t("tests")}: ${d.tests.passed}/${d.tests.total}`),
          h("pre", { class: "code mapping-text", tabindex: 0 }, d.mapping_toml),
          Object.entries(d.code_tables).map(([name, text]) => h("details", null, h("summary", null, name), h("pre", { class: "code", tabindex: 0 }, text))),
        ),
      );
    } catch (e) {
      replace(view, errorBlock(e));
    }
  }

  async function dryRun(v) {
    replace(report, h("p", { class: "muted" }, t("running")));
    try {
      const n = Number(lastN.value) || 1000;
      const r = await api("POST", `/api/mappings/${encodeURIComponent(source)}/versions/${v}/dry-run` + query({ last: n }));
      replace(report, dryRunReport(r));
    } catch (e) {
      replace(report, errorBlock(e));
    }
  }

  async function change(kind, v) {
    try {
      const path =
        kind === "activate"
          ? `/api/mappings/${encodeURIComponent(source)}/versions/${v}/activate`
          : `/api/mappings/${encodeURIComponent(source)}/rollback`;
      const r = await api("POST", path, kind === "activate" ? undefined : { to: v });
      replace(
        status,
        h(
          "div",
          { class: "notice ok", role: "status", id: "activation-result" },
          `${t(kind === "activate" ? "activated_ok" : "rolled_back_ok")}: v${dash(r.previous_version)} → v${r.version}`,
          r.diff && r.diff.length ? h("details", { open: true }, h("summary", null, t("diff")), textDiff(r.diff, { id: "activation-diff" })) : null,
        ),
      );
      await refresh();
    } catch (e) {
      replace(status, errorBlock(e));
    }
  }

  async function refresh() {
    const hist = await api("GET", `/api/mappings/${encodeURIComponent(source)}/versions`);
    active = hist.active_version;
    const sig = JSON.stringify([hist.active_version, hist.versions.map((v) => [v.version, v.status]), hist.audit.length, document.documentElement.lang]);
    if (history.dataset.sig === sig) return;
    history.dataset.sig = sig;
    replace(
      history,
      table(
        { id: "versions-table", class: "grid" },
        [t("version"), t("status"), t("description"), t("uploaded"), t("tests"), t("activated"), ""],
        hist.versions.map((v) =>
          h(
            "tr",
            { dataset: { version: v.version, status: v.status } },
            h("td", { class: "num" }, `v${v.version}`),
            h("td", null, statusBadge(v.status)),
            h("td", null, v.description),
            h("td", null, `${time(v.uploaded_at)} · ${v.uploaded_by}`),
            h("td", null, `${v.tests.passed}/${v.tests.total}`),
            h("td", null, v.activated_at ? `${time(v.activated_at)} · ${dash(v.activated_by)}` : "—"),
            h(
              "td",
              { class: "actions" },
              h("button", { type: "button", class: "small view-btn", on: { click: () => showVersion(v.version) } }, t("view")),
              v.status !== "active" && active !== null
                ? h("button", { type: "button", class: "small dry-run-btn", on: { click: () => dryRun(v.version) } }, t("dry_run"))
                : null,
              v.status !== "active" && (active === null || v.version > active)
                ? confirmButton({ class: "small activate-btn" }, t("activate"), t("confirm_activate"), () => change("activate", v.version))
                : null,
              active !== null && v.version < active
                ? confirmButton({ class: "small rollback-btn" }, t("rollback"), t("confirm_rollback"), () => change("rollback", v.version))
                : null,
            ),
          ),
        ),
      ),
    );
    replace(
      audit,
      table(
        { class: "grid audit" },
        [t("time"), t("actor"), t("action"), t("detail")],
        hist.audit
          .slice(-20)
          .reverse()
          .map((a, i) => [time(a.at), a.actor, h("code", null, a.action), h("div", { class: "detail-cell" }, auditDetail({ ...a, id: a.id ?? "m" + i }))]),
      ),
    );
  }
  return { refresh };
}

export default {
  id: "mappings",
  navKey: "nav_mappings",
  needs: "mappings",
  roles: ["admin", "standards-owner"],
  mount(root, ctx, params) {
    return params[0] ? sourceView(root, ctx, params[0]) : listView(root, ctx);
  },
};
