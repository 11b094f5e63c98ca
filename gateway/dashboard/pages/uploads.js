// Spreadsheet upload (上传表格) for departments without an interface: a filled-in template
// (.xlsx, .xls, .ods) or a CSV file goes to one of the department's push sources through
// POST /api/uploads/{source}; the answer says per row what became of it: accepted with its
// unified case code, or refused with each violation's field, rule, value and message.
import { h, replace, table } from "../dom.js";
import { t, tf, pick } from "../i18n.js";
import { api } from "../api.js";

/** The media type of a file by its extension (what browsers often leave empty). */
const TYPES = {
  xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  xls: "application/vnd.ms-excel",
  ods: "application/vnd.oasis.opendocument.spreadsheet",
  csv: "text/csv",
};

function mediaType(file) {
  const ext = (file.name.split(".").pop() || "").toLowerCase();
  return TYPES[ext] || "";
}

/** Where a row is, as the department sees it in its file. */
function where(row) {
  if (row.sheet) return tf("upload_row_of_sheet", { row: row.row, sheet: row.sheet });
  return tf("upload_row", { row: row.row });
}

function reasons(row) {
  const list = row.violations || [];
  if (!list.length) return null;
  return h(
    "ul",
    { class: "violations" },
    list.map((v) =>
      h(
        "li",
        null,
        h("code", { class: "small-text" }, v.pointer || "—"),
        " · ",
        h("code", { class: "small-text" }, v.rule),
        v.value !== undefined && v.value !== null ? [" · ", t("value"), " ", h("code", { class: "small-text" }, String(v.value))] : null,
        h("div", null, pick(v.message_zh, v.message_en)),
      ),
    ),
  );
}

function resultCell(row) {
  const ok = row.result !== "quarantined";
  return h("span", { class: "officer-status " + (ok ? "ok" : "bad") }, t("outcome_" + row.result) || row.result);
}

export default {
  id: "uploads",
  navKey: "nav_uploads",
  needs: "push",
  roles: ["admin", "department"],
  mount(root, ctx) {
    const status = h("div", { id: "upload-status" });
    const results = h("div", { id: "upload-results" });
    const source = h("select", { id: "upload-source", required: true });
    const fill = (ids) => {
      for (const s of ids) source.appendChild(h("option", { value: s }, s));
    };
    if (ctx.me.role === "department") fill(ctx.me.sources || []);
    else
      api("GET", "/api/sources")
        .then((r) => fill(r.items.filter((s) => s.kind === "push").map((s) => s.id)))
        .catch(() => {});
    const file = h("input", { id: "upload-file", type: "file", accept: ".xlsx,.xls,.ods,.csv", required: true });
    const button = h("button", { type: "submit", class: "primary", id: "upload-btn" }, t("upload_button"));
    const form = h(
      "form",
      {
        class: "filters",
        id: "upload-form",
        on: {
          submit: async (ev) => {
            ev.preventDefault();
            const chosen = file.files && file.files[0];
            if (!chosen || !source.value) return;
            const type = mediaType(chosen);
            if (!type) {
              ctx.notice(status, "error", t("upload_unsupported"));
              return;
            }
            button.disabled = true;
            replace(results);
            ctx.notice(status, "info", tf("upload_sending", { name: chosen.name }));
            try {
              const answer = await api("POST", "/api/uploads/" + encodeURIComponent(source.value), chosen, type);
              show(answer, chosen.name);
            } catch (e) {
              ctx.notice(status, "error", e.text ? e.text() : String(e));
            } finally {
              button.disabled = false;
            }
          },
        },
      },
      h("label", { for: "upload-source" }, t("source"), source),
      h("label", { for: "upload-file" }, t("upload_file"), file),
      h("span", { class: "filter-buttons" }, button),
    );
    replace(root, h("h2", null, t("nav_uploads")), h("p", { class: "muted" }, t("uploads_help")), form, status, results);

    function show(answer, name) {
      const s = answer.summary || {};
      ctx.notice(
        status,
        s.quarantined ? "info" : "ok",
        tf("upload_summary", {
          name,
          received: s.received ?? answer.rows.length,
          accepted: (s.accepted || 0) + (s.updated || 0) + (s.unchanged || 0),
          quarantined: s.quarantined || 0,
        }) + (answer.encoding ? " · " + tf("upload_encoding", { encoding: answer.encoding }) : ""),
      );
      replace(
        results,
        table(
          { id: "upload-table", class: "grid" },
          [t("upload_where"), t("outcome"), t("upload_code_or_reasons")],
          answer.rows.map((row) =>
            h(
              "tr",
              { dataset: { result: row.result, row: String(row.row) } },
              h("td", null, where(row)),
              h("td", null, resultCell(row)),
              h("td", { class: "wrap" }, row.result === "quarantined" ? reasons(row) : h("code", null, row.code || "—")),
            ),
          ),
        ),
      );
    }
    return { refresh: async () => {} };
  },
};
