// Several gateway instances on one store: the instances panel of the overview (from
// GET /api/instances) and, per source, which instance runs its scheduled job (its `lease`).
import { h, time, table } from "./dom.js";
import { t, tf } from "./i18n.js";

/** A duration in seconds as "12 秒前" / "12 s ago" (minutes, hours, days when longer). */
export function ago(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return tf("ago_s", { n: s });
  if (s < 7200) return tf("ago_min", { n: Math.round(s / 60) });
  if (s < 2 * 86400) return tf("ago_h", { n: (s / 3600).toFixed(1) });
  return tf("ago_d", { n: Math.round(s / 86400) });
}

const STATE_RANK = { alive: 0, gone: 1, stopped: 2 };

/** Instances in the order an operator reads them: this one, the others alive, the gone, the stopped; newest heartbeat first. */
function ordered(items) {
  return [...items].sort(
    (a, b) =>
      (STATE_RANK[a.state] ?? 3) - (STATE_RANK[b.state] ?? 3) ||
      Number(b.this) - Number(a.this) ||
      a.seconds_since_heartbeat - b.seconds_since_heartbeat ||
      a.id.localeCompare(b.id),
  );
}

function stateBadge(i) {
  return h("span", { class: "badge inst-" + i.state, title: t("inst_hint_" + i.state) }, t("inst_" + i.state));
}

function instanceRow(i) {
  const jobs = i.jobs || [];
  return h(
    "tr",
    { class: "inst-row inst-row-" + i.state + (i.this ? " inst-this" : ""), dataset: { instance: i.id, state: i.state } },
    h(
      "td",
      { class: "inst-id" },
      h("strong", null, i.id),
      i.this ? h("span", { class: "badge this-badge", title: t("this_instance_hint") }, t("this_instance")) : null,
    ),
    h("td", { class: "inst-host" }, i.host, h("div", { class: "muted" }, `PID ${i.pid}`)),
    h("td", null, i.version),
    h("td", null, time(i.started_at)),
    h("td", { class: "inst-heartbeat", title: time(i.last_heartbeat) }, ago(i.seconds_since_heartbeat)),
    h(
      "td",
      { class: "inst-state" },
      stateBadge(i),
      i.state === "stopped" && i.stopped_at ? h("div", { class: "muted health-detail" }, `${t("stopped_at")} ${time(i.stopped_at)}`) : null,
      i.state === "gone" ? h("div", { class: "gone-detail" }, t(jobs.length ? "gone_jobs_wait" : "gone_no_jobs")) : null,
    ),
    h("td", { class: "inst-jobs" }, jobs.length ? h("ul", { class: "plain" }, jobs.map((j) => h("li", null, h("code", null, j)))) : "—"),
    h("td", { class: "num inst-committed" }, i.committed),
  );
}

function instancesTable(id, items) {
  return table(
    { id, class: "grid instances" },
    [t("instance"), t("host"), t("version"), t("started"), t("last_heartbeat"), t("status"), t("jobs_held"), t("committed")],
    items.map(instanceRow),
  );
}

/**
 * The instances panel's body: every instance alive or gone (gone in red), the stopped ones folded
 * away (each restart leaves one), or why the list cannot be shown.
 */
export function instancesBody(data, error) {
  if (!data) return h("div", { class: "notice error", role: "alert" }, `${t("instances_unavailable")}${error ? ": " + error : ""}`);
  const items = ordered(data.items || []);
  const count = (s) => items.filter((i) => i.state === s).length;
  const gone = count("gone");
  const current = items.filter((i) => i.state !== "stopped");
  const stopped = items.filter((i) => i.state === "stopped");
  return [
    h(
      "p",
      { id: "instances-summary", class: "instances-summary" },
      tf("instances_summary", { alive: count("alive"), gone, stopped: stopped.length }),
      gone ? h("strong", { class: "gone-detail" }, t("instances_gone_warning")) : null,
    ),
    current.length ? instancesTable("instances-table", current) : null,
    // Its heartbeat comes with `gateway run` (and `gateway demo`); until the first, it is not listed.
    items.some((i) => i.this) ? null : h("p", { class: "muted", id: "this-not-listed" }, tf("this_not_listed", { id: data.this })),
    stopped.length
      ? h(
          "details",
          { class: "stopped-instances", dataset: { key: "stopped-instances" } },
          h("summary", null, tf("stopped_instances_n", { n: stopped.length })),
          instancesTable("stopped-instances-table", stopped),
        )
      : null,
  ];
}

/** Which instance runs a source (its "runs on" cell), given the instances by id (may be empty). */
export function runsOnCell(s, instances) {
  const lease = s.lease;
  if (!lease) {
    if (s.kind === "push" || s.kind === "amqp") {
      return h("span", { class: "muted runs-any", title: t("runs_any_hint_" + s.kind) }, t("runs_any"));
    }
    return "—";
  }
  if (lease.expired) {
    return [
      h("span", { class: "badge runs-nobody", title: t("runs_nobody_hint") }, t("runs_nobody")),
      h("div", { class: "runs-warning" }, lease.holder ? tf("lease_expired_was", { holder: lease.holder }) : t("lease_never_taken")),
    ];
  }
  if (lease.here) {
    return h("span", { class: "badge this-badge runs-here", title: t("runs_here_hint") }, t("this_instance"));
  }
  const holder = instances.get(lease.holder);
  return [
    h("code", { class: "runs-holder", title: holder ? `${holder.host} · PID ${holder.pid}` : null }, lease.holder),
    holder && holder.state !== "alive" ? h("span", { class: "badge inst-" + holder.state }, t("inst_" + holder.state)) : null,
    holder && holder.state === "gone" ? h("div", { class: "runs-warning" }, t("holder_gone_until_expiry")) : null,
    h("div", { class: "muted elsewhere-note" }, tf("figures_elsewhere", { holder: lease.holder })),
  ];
}

/** Whether another instance runs the source's job (its commands go there, its live figures are there). */
export function runsElsewhere(s) {
  return Boolean(s.lease && !s.lease.here);
}
