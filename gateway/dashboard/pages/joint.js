// Joint inspections (联合检查比对): groups of inspections of one target by several agencies,
// listed with filters and numbered pages; one group's inspections side by side, merged with a
// lead agency or dismissed (a reason either way), a decision undone. Departments read only.
import { h, replace, time, dash, table, update } from "../dom.js";
import { lang } from "../i18n.js";
import { api, query } from "../api.js";
import { showPager } from "../ui.js";

/** This page's labels, Chinese first. */
const L = {
  title: ["联合检查比对", "Joint inspections"],
  help: [
    "同一检查对象在相近日期（默认 7 天内）被不同部门检查，或声明同一联合检查任务的记录。核对后可合并为一次联合检查（选择牵头部门），或驳回；均须说明原因并记入操作日志。",
    "Inspections of one target by different agencies on close dates (within 7 days by default), or naming one joint task. Merge them into one joint inspection (choosing the lead agency) or dismiss them; either needs a reason and goes into the audit log.",
  ],
  status: ["状态", "Status"],
  kind: ["类型", "Kind"],
  target: ["检查对象", "Target"],
  agency: ["执法部门", "Agency"],
  search: ["搜索", "Search"],
  search_hint: ["案件编码、部门代码或任务编号", "case code, agency code or task"],
  filter: ["筛选", "Filter"],
  all: ["全部", "all"],
  candidate: ["待比对", "candidate"],
  merged: ["已合并", "merged"],
  dismissed: ["已驳回", "dismissed"],
  similar: ["相似", "similar"],
  declared: ["已声明", "declared"],
  group: ["组", "Group"],
  cases: ["检查", "Inspections"],
  dates: ["检查日期", "Dates"],
  updated: ["更新时间", "Updated"],
  open: ["比对", "Compare"],
  nothing: ["没有记录", "Nothing found"],
  back: ["返回列表", "Back to the list"],
  field: ["项目", "Field"],
  code: ["统一案件编码", "Unified code"],
  agency_name: ["执法部门名称", "Agency name"],
  check_date: ["检查日期", "Check date"],
  item: ["检查事项", "Item"],
  officers: ["执法人员", "Officers"],
  form: ["检查形式", "Form"],
  method: ["检查方式", "Method"],
  result: ["检查结果", "Result"],
  source: ["来源", "Source"],
  task: ["联合检查任务", "Joint task"],
  lead: ["牵头部门", "Lead agency"],
  reason: ["原因（必填）", "Reason (required)"],
  merge: ["合并为联合检查", "Merge into a joint inspection"],
  dismiss: ["驳回", "Dismiss"],
  undo: ["撤销决定", "Undo the decision"],
  need_reason: ["请填写原因", "Give a reason"],
  decision: ["决定", "Decision"],
  previous: ["此前的决定（成员变化或已撤销）", "Earlier decision (members changed, or undone)"],
  by: ["操作人", "by"],
  joint_record: ["联合检查记录", "Joint record"],
  done_merge: ["已合并", "Merged"],
  done_dismiss: ["已驳回", "Dismissed"],
  done_undo: ["已撤销，重新待比对", "Undone: a candidate again"],
  read_only: ["只读：合并、驳回由运维或管理员操作。", "Read only: operators and admins merge and dismiss."],
};

function tt(key) {
  const pair = L[key];
  if (!pair) return key;
  return lang() === "zh" ? pair[0] : pair[1];
}

/** Filters and paging, kept across page changes in this tab. */
const state = { status: "candidate", kind: "", target: "", agency: "", q: "", offset: 0, limit: 20 };

function statusBadge(s) {
  return h("span", { class: "badge joint-" + s }, tt(s));
}

function decisionText(d) {
  if (!d) return null;
  const lead = d.lead_agency ? ` · ${tt("lead")} ${d.lead_agency}` : "";
  return `${tt(d.status)} · ${tt("by")} ${d.actor} · ${time(d.at)}${lead} · ${d.reason}`;
}

function listView(root, ctx) {
  const status = h("div", { id: "joint-status" });
  const list = h("div", { id: "joint-list" });
  const pages = h("div", { id: "joint-pages" });
  const statusSel = h(
    "select",
    { id: "j-status" },
    ["", "candidate", "merged", "dismissed"].map((s) => h("option", { value: s, selected: s === state.status }, s ? tt(s) : tt("all"))),
  );
  const kindSel = h(
    "select",
    { id: "j-kind" },
    ["", "similar", "declared"].map((s) => h("option", { value: s, selected: s === state.kind }, s ? tt(s) : tt("all"))),
  );
  const target = h("input", { id: "j-target", value: state.target, autocomplete: "off", spellcheck: "false" });
  const agency = h("input", { id: "j-agency", value: state.agency, autocomplete: "off", spellcheck: "false" });
  const q = h("input", { id: "j-q", value: state.q, autocomplete: "off", spellcheck: "false", placeholder: tt("search_hint") });
  const form = h(
    "form",
    {
      class: "filters",
      role: "search",
      on: {
        submit: (ev) => {
          ev.preventDefault();
          Object.assign(state, { status: statusSel.value, kind: kindSel.value, target: target.value.trim(), agency: agency.value.trim(), q: q.value.trim(), offset: 0 });
          replace(status);
          refresh().catch((e) => ctx.notice(status, "error", e.text ? e.text() : String(e)));
        },
      },
    },
    h("label", { for: "j-status" }, tt("status"), statusSel),
    h("label", { for: "j-kind" }, tt("kind"), kindSel),
    h("label", { for: "j-target" }, tt("target"), target),
    h("label", { for: "j-agency" }, tt("agency"), agency),
    h("label", { for: "j-q" }, tt("search"), q),
    h("span", { class: "filter-buttons" }, h("button", { type: "submit", class: "primary", id: "joint-filter-btn" }, tt("filter"))),
  );
  replace(root, h("h2", null, tt("title")), h("p", { class: "muted" }, tt("help")), form, status, pages, list);

  async function refresh() {
    const page = await api(
      "GET",
      "/api/joint-groups" + query({ status: state.status, kind: state.kind, target: state.target, agency: state.agency, q: state.q, offset: state.offset, limit: state.limit }),
    );
    if (!showPager(pages, "joint-pager", state, page.total, refresh)) return refresh();
    update(list, JSON.stringify([lang(), page.items]), () =>
      page.items.length
        ? table(
            { id: "joint-table", class: "grid" },
            [tt("group"), tt("target"), tt("status"), tt("agency"), tt("dates"), tt("updated")],
            page.items.map((g) =>
              h(
                "tr",
                { dataset: { id: g.group_id, status: g.status } },
                h("td", null, h("a", { href: `#/joint/${g.group_id}`, class: "joint-open" }, `${tt("open")} #${g.group_id}`), h("div", { class: "muted" }, tt(g.kind))),
                h("td", { class: "wrap" }, h("code", null, g.target_id)),
                h("td", null, statusBadge(g.status)),
                h("td", { class: "wrap" }, [...new Set(g.members.map((m) => m.agency))].map((a) => h("div", null, h("code", null, a)))),
                h("td", { class: "wrap" }, g.members.map((m) => h("div", null, m.check_date))),
                h("td", null, time(g.updated_at)),
              ),
            ),
          )
        : h("p", { class: "muted", id: "joint-empty" }, tt("nothing")),
    );
  }
  return { refresh };
}

function detailView(root, ctx, id) {
  const status = h("div", { id: "joint-status", "aria-live": "polite" });
  const head = h("div", { id: "joint-head" });
  const side = h("div", { id: "joint-side" });
  const actions = h("div", { id: "joint-actions" });
  replace(root, h("p", null, h("a", { href: "#/joint" }, "← " + tt("back"))), h("h2", null, `${tt("title")} #${id}`), status, head, side, actions);
  const canDecide = ctx.can("joint_decide");
  let shownSig = null;

  async function decide(what, body) {
    try {
      await api("POST", `/api/joint-groups/${id}/${what}`, body);
      ctx.notice(status, "ok", tt("done_" + what));
      shownSig = null;
      await refresh();
    } catch (e) {
      ctx.notice(status, "error", e.text ? e.text() : String(e));
    }
  }

  function reasonField(idSuffix) {
    return h("input", { id: "j-reason-" + idSuffix, class: "joint-reason", autocomplete: "off", "aria-required": "true" });
  }

  function actionForms(g) {
    if (!canDecide) return h("p", { class: "muted" }, tt("read_only"));
    if (g.status !== "candidate") {
      const reason = reasonField("undo");
      return h(
        "form",
        { id: "joint-undo-form", class: "filters", on: { submit: (ev) => { ev.preventDefault(); if (!reason.value.trim()) return ctx.notice(status, "error", tt("need_reason")); decide("undo", { reason: reason.value.trim() }); } } },
        h("label", { for: "j-reason-undo" }, tt("reason"), reason),
        h("span", { class: "filter-buttons" }, h("button", { type: "submit", id: "joint-undo-btn" }, tt("undo"))),
      );
    }
    const agencies = [...new Set(g.members.map((m) => m.agency))];
    const lead = h("select", { id: "j-lead" }, agencies.map((a) => h("option", { value: a }, a)));
    const mergeReason = reasonField("merge");
    const dismissReason = reasonField("dismiss");
    return h(
      "div",
      { class: "joint-forms" },
      h(
        "form",
        { id: "joint-merge-form", class: "filters", on: { submit: (ev) => { ev.preventDefault(); if (!mergeReason.value.trim()) return ctx.notice(status, "error", tt("need_reason")); decide("merge", { lead_agency: lead.value, reason: mergeReason.value.trim() }); } } },
        h("label", { for: "j-lead" }, tt("lead"), lead),
        h("label", { for: "j-reason-merge" }, tt("reason"), mergeReason),
        h("span", { class: "filter-buttons" }, h("button", { type: "submit", class: "primary", id: "joint-merge-btn" }, tt("merge"))),
      ),
      h(
        "form",
        { id: "joint-dismiss-form", class: "filters", on: { submit: (ev) => { ev.preventDefault(); if (!dismissReason.value.trim()) return ctx.notice(status, "error", tt("need_reason")); decide("dismiss", { reason: dismissReason.value.trim() }); } } },
        h("label", { for: "j-reason-dismiss" }, tt("reason"), dismissReason),
        h("span", { class: "filter-buttons" }, h("button", { type: "submit", id: "joint-dismiss-btn" }, tt("dismiss"))),
      ),
    );
  }

  async function refresh() {
    const d = await api("GET", `/api/joint-groups/${id}`);
    const g = d.group;
    update(head, JSON.stringify([lang(), g]), () =>
      h(
        "dl",
        { class: "facts", id: "joint-facts" },
        h("dt", null, tt("status")),
        h("dd", { id: "joint-group-status" }, statusBadge(g.status), " ", tt(g.kind)),
        h("dt", null, tt("target")),
        h("dd", null, h("code", null, g.target_id)),
        g.task_id ? [h("dt", null, tt("task")), h("dd", null, g.task_id)] : null,
        g.decision ? [h("dt", null, tt("decision")), h("dd", { id: "joint-decision", class: "wrap" }, decisionText(g.decision))] : null,
        g.previous ? [h("dt", null, tt("previous")), h("dd", { id: "joint-previous", class: "wrap" }, decisionText(g.previous))] : null,
        g.joint_id ? [h("dt", null, tt("joint_record")), h("dd", null, h("code", null, `${g.joint_id} v${g.joint_version}`))] : null,
      ),
    );
    // Side by side: one column per inspection, one row per field.
    const rows = [
      ["code", (m) => h("code", null, m.unified_code)],
      ["agency", (m) => h("code", null, m.agency_credit_code)],
      ["agency_name", (m) => dash(m.agency_name)],
      ["check_date", (m) => m.check_date],
      ["item", (m) => dash(m.case_name || m.item_code || m.implementation_list_code)],
      ["officers", (m) => dash((m.officers || []).join("、"))],
      ["form", (m) => dash(m.form)],
      ["method", (m) => dash(m.method)],
      ["result", (m) => dash(m.result)],
      ["source", (m) => m.source_id],
    ];
    update(side, JSON.stringify([lang(), d.members]), () =>
      h(
        "div",
        { class: "side-by-side", "data-key": "joint-side" },
        table(
          { id: "joint-compare", class: "grid compare" },
          [tt("field"), ...d.members.map((m, i) => `${tt("cases")} ${i + 1}`)],
          rows.map(([key, cell]) => h("tr", { dataset: { field: key } }, h("th", { scope: "row" }, tt(key)), d.members.map((m) => h("td", { class: "wrap" }, cell(m))))),
        ),
      ),
    );
    const sig = JSON.stringify([lang(), g.status, g.members.map((m) => m.agency)]);
    if (sig !== shownSig) {
      shownSig = sig;
      replace(actions, actionForms(g));
    }
  }
  return { refresh };
}

export default {
  id: "joint",
  navKey: "nav_joint",
  needs: "joint_read",
  roles: ["admin", "operator", "standards-owner", "department"],
  mount(root, ctx, parts) {
    const id = parts && parts[0];
    return id ? detailView(root, ctx, encodeURIComponent(id)) : listView(root, ctx);
  },
};
