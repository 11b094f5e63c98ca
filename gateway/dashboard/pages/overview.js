// Overview: the gateway instances on the store (who is alive, gone, which jobs each holds),
// each source's health, throughput and error rate and the instance that runs it, a chart of
// accepted and quarantined records over time (sampled client-side from /api/sources), pull now /
// resync.
import { h, replace, time, dash, table, update } from "../dom.js";
import { t, tf, lang } from "../i18n.js";
import { api, query } from "../api.js";
import { lineChart } from "../chart.js";
import { instancesBody, runsOnCell, runsElsewhere } from "../cluster.js";

/** Samples of the totals, kept while the page is open in this tab. */
const samples = [];
const MAX_SAMPLES = 240;
/** The previous sample per source (for throughput). */
const previous = new Map();
/** Open quarantine counts are asked for at most this often (the sources every refresh). */
const COUNTS_EVERY_MS = 15000;

function lag(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 2 * 86400) return `${(seconds / 3600).toFixed(1)} h`;
  if (seconds < 120 * 86400) return `${Math.round(seconds / 86400)} d`;
  return `${(seconds / (365.25 * 86400)).toFixed(1)} a`;
}

/** The source's health state as a badge, with what operators need beside it. */
function healthCell(s) {
  const state = s.state || "healthy";
  const parts = [h("span", { class: "badge health-" + state, title: t("health_hint_" + state) }, t("health_" + state))];
  if (s.failures_in_row > 0) {
    parts.push(h("div", { class: "muted health-detail" }, `${t("failures_in_row")} ${s.failures_in_row} · ${t("since")} ${time(s.failing_since)}`));
  }
  if (state === "paused" && s.paused_until) {
    parts.push(h("div", { class: "muted health-detail" }, `${t("paused_until")} ${time(s.paused_until)}`));
  }
  if (state === "degraded" && s.degraded_reason) {
    parts.push(h("div", { class: "muted health-detail" }, s.degraded_reason));
  }
  if (s.health) {
    parts.push(h("span", { class: "badge circuit-" + s.health.circuit }, t("circuit_" + s.health.circuit)));
  }
  return parts;
}

export default {
  id: "overview",
  navKey: "nav_overview",
  needs: "sources_read",
  roles: ["admin", "operator", "standards-owner"],
  mount(root, ctx) {
    const status = h("div", { id: "overview-status" });
    const chart = h("div", { id: "chart", class: "card" });
    const tbl = h("div", { id: "sources" });
    const instances = h("div", { id: "instances" });
    replace(
      root,
      h("h2", null, t("nav_overview")),
      status,
      h("section", { class: "card", id: "instances-panel", "aria-labelledby": "instances-title" }, h("h3", { id: "instances-title" }, t("instances")), instances),
      h("section", { class: "card" }, h("h3", null, t("chart_title")), chart),
      h("section", null, h("h3", null, t("sources")), tbl),
    );

    async function command(id, what) {
      ctx.notice(status, "info", `${t(what === "pull" ? "pull_running" : "resync_running")}: ${id}`);
      try {
        // Wait for the run to end, and say how it ended: a pull that fails is not "sent".
        const r = await api("POST", `/api/sources/${encodeURIComponent(id)}/${what}` + query({ wait: 60 }));
        if (!r.finished) {
          ctx.notice(status, "info", `${t("run_still_running")}: ${id}`);
        } else if (r.last_run && r.last_run.ok) {
          const sm = r.last_run.summary;
          const counts = sm ? ` (${t("received")} ${sm.received} · ${t("accepted")} ${sm.accepted} · ${t("updated")} ${sm.updated} · ${t("quarantined")} ${sm.quarantined})` : "";
          ctx.notice(status, r.state === "degraded" ? "error" : "ok", `${t("run_ok")}: ${id}${counts}${r.last_run.message ? " — " + r.last_run.message : ""}`);
        } else {
          const why = (r.last_run && r.last_run.message) || (r.last_error && r.last_error.message) || "";
          ctx.notice(status, "error", `${t("run_failed")}: ${id} — ${t("health_" + r.state)}: ${why}`);
        }
        refresh().catch(() => {});
      } catch (e) {
        // Another instance took the job meanwhile: the server names it; the table catches up.
        ctx.notice(status, "error", `${id}: ${e.code === "runs_elsewhere" ? t("runs_elsewhere") + " — " : ""}${e.text()}`);
        if (e.code === "runs_elsewhere") refresh().catch(() => {});
      }
    }

    /** Exact open counts from the store (not counted here from a page of entries), refreshed every 15 s. */
    let counts = { sources: {} };
    let countsAt = 0;

    async function refresh() {
      const stale = Date.now() - countsAt > COUNTS_EVERY_MS;
      // One refresh cycle: the sources and the instances together (the open counts every 15 s).
      // The instances failing to load does not hide the sources: the panel says so instead.
      let instancesError = null;
      const [sources, cluster, fresh] = await Promise.all([
        api("GET", "/api/sources"),
        api("GET", "/api/instances").catch((e) => {
          if (e.status === 401) throw e;
          instancesError = e.text ? e.text() : String(e);
          return null;
        }),
        stale ? api("GET", "/api/quarantine/counts").catch(() => null) : null,
      ]);
      if (fresh) {
        counts = fresh;
        countsAt = Date.now();
      }
      const byId = new Map(((cluster && cluster.items) || []).map((i) => [i.id, i]));
      // Redrawn only when what it shows changed (the heartbeats' ages do, every few seconds).
      const shown = ((cluster && cluster.items) || []).map((i) => [i.id, i.host, i.pid, i.version, i.started_at, i.seconds_since_heartbeat, i.state, i.stopped_at, i.jobs, i.committed, i.this]);
      update(instances, JSON.stringify([lang(), instancesError, shown]), () => instancesBody(cluster, instancesError));
      const now = Date.now();
      let accepted = 0;
      let quarantined = 0;
      const rows = sources.items.map((s) => {
        const tot = s.totals;
        accepted += tot.accepted + tot.updated;
        quarantined += tot.quarantined;
        const prev = previous.get(s.id);
        let rate = "—";
        if (prev && now > prev.t) rate = `${(((tot.received - prev.received) * 1000) / (now - prev.t)).toFixed(1)}/s`;
        previous.set(s.id, { t: now, received: tot.received });
        const errRate = tot.received ? `${((100 * tot.quarantined) / tot.received).toFixed(1)} %` : "—";
        const err = s.last_error || (s.health && s.health.last_error);
        const openCount = counts.sources[s.id] || 0;
        const controls = [];
        const elsewhere = runsElsewhere(s);
        if (elsewhere) {
          // Its commands go to the instance running it (this one would answer 409).
          if (ctx.can("sources_control") && !s.lease.expired) controls.push(h("span", { class: "muted small-text" }, tf("commands_on_holder", { holder: s.lease.holder })));
        } else if (ctx.can("sources_control") && s.health) {
          controls.push(
            h("button", { type: "button", class: "small pull-btn", on: { click: () => command(s.id, "pull") } }, t("pull_now")),
            h("button", { type: "button", class: "small resync-btn", on: { click: () => command(s.id, "resync") } }, t("resync")),
          );
        }
        return h(
          "tr",
          { class: elsewhere ? "elsewhere" : null, dataset: { source: s.id } },
          h("td", null, h("strong", null, s.id), h("div", { class: "muted" }, `${s.kind} · ${s.format}` + (s.system ? ` · ${t("system_of")} ${s.system}` : ""))),
          h("td", null, s.mapping_id ? `${s.mapping_id} v${dash(s.mapping_version)}` : "—"),
          h(
            "td",
            null,
            healthCell(s),
            s.pulling ? h("span", { class: "badge live-badge" }, t("pulling")) : null,
            s.stalled ? h("span", { class: "badge stalled-badge", title: t("stalled_hint") }, t("stalled")) : null,
          ),
          h("td", { class: "runs-on" + (s.lease && s.lease.expired ? " lease-expired" : "") }, runsOnCell(s, byId)),
          h("td", null, time(s.last_pull_finished || s.last_pull_started)),
          h("td", null, time(s.next_pull)),
          h("td", { class: "lag" }, lag(s.lag_seconds)),
          h("td", { class: "num received" }, tot.received),
          h("td", { class: "num accepted" }, tot.accepted + tot.updated),
          h("td", { class: "num quarantined" }, tot.quarantined),
          h("td", { class: "num stale", title: t("stale_hint") }, tot.stale || 0),
          h("td", { class: "num open-quarantine" }, openCount),
          h("td", { class: "num" }, rate),
          h("td", { class: "num" }, errRate),
          h("td", { class: "error-text" }, err ? `${time(err.at)} ${err.message}` : "—"),
          h("td", null, controls),
        );
      });
      samples.push([now, accepted, quarantined]);
      if (samples.length > MAX_SAMPLES) samples.shift();
      replace(
        chart,
        lineChart(
          [
            { label: t("accepted"), cls: "s-accepted", points: samples.map((p) => [p[0], p[1]]) },
            { label: t("quarantined"), cls: "s-quarantined", points: samples.map((p) => [p[0], p[2]]) },
          ],
          { empty: t("chart_waiting"), label: t("chart_title") },
        ),
      );
      const sig = JSON.stringify([lang(), rows.map((r) => r.textContent)]);
      update(tbl, sig, () =>
        table(
          { id: "sources-table", class: "grid" },
          [
            t("source"),
            t("mapping"),
            t("circuit"),
            t("runs_on"),
            t("last_pull"),
            t("next_pull"),
            t("lag"),
            t("received"),
            t("accepted"),
            t("quarantined"),
            t("stale"),
            t("open_quarantine"),
            t("throughput"),
            t("error_rate"),
            t("last_error"),
            "",
          ],
          rows,
        ),
      );
    }
    return { refresh };
  },
};
