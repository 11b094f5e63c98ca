// The dashboard: login, navigation (hash routing), live refresh. Pages live in ./pages/.
import { h, replace, time } from "./dom.js";
import { t, tf, lang, setLang } from "./i18n.js";
import { api, token, setToken, forget, personalClear, setPersonalClear } from "./api.js";
import { pageMessage } from "./ui.js";
import overview from "./pages/overview.js";
import quarantine from "./pages/quarantine.js";
import cases from "./pages/cases.js";
import records from "./pages/records.js";
import supplements from "./pages/supplements.js";
import audit from "./pages/audit.js";
import mappings from "./pages/mappings.js";
import deliveries from "./pages/deliveries.js";
import officers from "./pages/officers.js";
import joint from "./pages/joint.js";
import publicity from "./pages/publicity.js";
import reconciliation from "./pages/reconciliation.js";
import alerts, { refreshBadge } from "./pages/alerts.js";
import uploads from "./pages/uploads.js";

/** How often a page refreshes its data while the tab is visible. */
const REFRESH_MS = 3000;

const PAGES = [overview, quarantine, cases, records, uploads, supplements, joint, publicity, audit, mappings, deliveries, officers, reconciliation, alerts];

const app = document.getElementById("app");
let me = null;
let current = null; // { page, handle, hash }
let timer = null;
/** The page handle whose refresh is running (a new page's first refresh does not wait for it). */
let refreshing = null;

/** Whether the token may do `action` (the names `GET /api/me` lists; the server decides in the end). */
function can(action) {
  return Boolean(me && Array.isArray(me.actions) && me.actions.includes(action));
}

/** The page's name in the navigation. */
function navLabel(page) {
  return t(typeof page.navKey === "function" ? page.navKey(me) : page.navKey);
}

function notice(el, kind, text) {
  replace(el, h("div", { class: "notice " + kind, role: kind === "error" ? "alert" : "status" }, text));
}

const ctx = {
  can,
  get me() {
    return me;
  },
  go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
  notice,
};

/** For a token holding `personal-data`: a switch asking for personal data in clear (each read audit-logged). */
function personalSwitch() {
  if (!me || !me.personal_data) return null;
  const box = h("input", {
    type: "checkbox",
    id: "personal-clear",
    checked: personalClear(),
    on: {
      change: (e) => {
        setPersonalClear(e.target.checked);
        start();
      },
    },
  });
  return h("label", { class: "link", title: t("personal_clear_help") }, box, " ", t("personal_clear"));
}

function langButton() {
  return h(
    "button",
    {
      type: "button",
      id: "lang-toggle",
      class: "link",
      title: "中文 / English",
      on: {
        click: () => {
          setLang(lang() === "zh" ? "en" : "zh");
          start();
        },
      },
    },
    lang() === "zh" ? "English" : "中文",
  );
}

function loginView(message) {
  stopTimer();
  current = null;
  me = null;
  const input = h("input", {
    id: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: t("token_placeholder"),
    required: true,
  });
  const status = h("div", { id: "login-status" });
  if (message) notice(status, "error", message);
  const form = h(
    "form",
    {
      id: "login-form",
      class: "login",
      on: {
        submit: async (ev) => {
          ev.preventDefault();
          const value = input.value.trim();
          if (!value) return;
          setToken(value);
          try {
            me = await api("GET", "/api/me");
            if (!location.hash || location.hash === "#/login") location.hash = defaultHash();
            shell();
          } catch (e) {
            forget();
            notice(status, "error", e.text ? e.text() : String(e));
          }
        },
      },
    },
    h("h1", null, t("app_title")),
    h("p", { class: "muted" }, t("login_help")),
    h("label", { for: "token" }, t("token")),
    input,
    h("button", { type: "submit", id: "login-btn", class: "primary" }, t("login")),
    status,
    h("p", { class: "lang-line" }, langButton()),
  );
  replace(app, form);
  input.focus();
}

function defaultHash() {
  // A department starts with its own records; everyone else with the first page they may use.
  const mine = me && me.role === "department" && can(records.needs) ? records : null;
  const first = mine || PAGES.find((p) => can(p.needs));
  return first ? "#/" + first.id : "#/";
}

function shell() {
  const nav = h(
    "nav",
    { class: "nav", "aria-label": t("navigation") },
    h("span", { class: "brand" }, t("app_title")),
    PAGES.filter((p) => can(p.needs)).map((p) => h("a", { href: "#/" + p.id, id: "nav-" + p.id, dataset: { page: p.id } }, navLabel(p))),
    h("span", { class: "spacer" }),
    h("span", { class: "who", id: "who" }, `${me.name} · ${t("role_" + me.role.replace("-", "_"))}`),
    personalSwitch(),
    langButton(),
    h(
      "button",
      {
        type: "button",
        id: "logout",
        class: "link",
        on: {
          click: () => {
            forget();
            location.hash = "#/login";
            loginView();
          },
        },
      },
      t("logout"),
    ),
  );
  const main = h("main", { id: "page", tabindex: "-1" });
  const live = h("div", { id: "live", class: "live muted" });
  replace(app, nav, main, h("footer", { class: "muted" }, live));
  route();
}

/** Counts route() calls: only the latest one starts the refresh timer (a login both sets the hash and draws the page). */
let routeSeq = 0;

async function route() {
  if (!me) return;
  const seq = ++routeSeq;
  const hash = location.hash && location.hash !== "#/" ? location.hash : defaultHash();
  const parts = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const main = document.getElementById("page");
  if (!main) return;
  stopTimer();
  const page = PAGES.find((p) => p.id === parts[0]);
  for (const a of app.querySelectorAll("nav a")) {
    const here = Boolean(page) && a.dataset.page === page.id;
    a.classList.toggle("active", here);
    if (here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  current = null;
  if (!page || !parts[0]) {
    replace(main, pageMessage("error", t(parts[0] ? "no_such_page" : "no_page_allowed"), parts[0] ? tf("no_such_page_help", { page: parts[0] }) : tf("no_page_allowed_help", { role: roleName() })));
    return;
  }
  if (!can(page.needs)) {
    // Never a blank page: say which permission the page needs, and who has it.
    replace(
      main,
      pageMessage(
        "error",
        tf("no_access_title", { page: navLabel(page) }),
        tf("no_access_help", { action: page.needs, role: roleName(), roles: (page.roles || []).map((r) => t("role_" + r.replace("-", "_"))).join(t("list_sep")) }),
        t("no_access_ask"),
      ),
    );
    return;
  }
  replace(main);
  const handle = page.mount(main, ctx, parts.slice(1));
  current = { page, handle, hash, main };
  await refresh();
  if (seq !== routeSeq) return;
  stopTimer();
  timer = setInterval(() => {
    // Not while the tab is hidden, and not while the user has text selected (to copy a value):
    // redrawing would wipe the selection. The page catches up once the selection is gone.
    const selecting = window.getSelection && String(window.getSelection()).length > 0;
    if (!document.hidden && !selecting) refresh();
    else if (selecting) paused();
  }, REFRESH_MS);
}

function roleName() {
  return me ? t("role_" + me.role.replace("-", "_")) : "";
}

async function refresh() {
  if (!current || !current.handle || !current.handle.refresh || refreshing === current.handle) return;
  refreshing = current.handle;
  const live = document.getElementById("live");
  const shown = current;
  try {
    await shown.handle.refresh();
    refreshBadge(can);
    if (live) live.textContent = `${t("updated_at")} ${time(new Date().toISOString())}`;
  } catch (e) {
    if (shown === current && (e.status === 404 || e.status === 403)) {
      // What the token may not see, or what does not exist: said in the page, not the footer.
      stopTimer();
      current = null;
      replace(
        shown.main,
        h("p", null, h("a", { href: "#/" + shown.page.id }, "← " + navLabel(shown.page))),
        pageMessage("error", t(e.status === 404 ? "not_found_title" : "forbidden_title"), e.text ? e.text() : String(e), e.status === 404 ? t("not_found_help") : null),
      );
      if (live) live.textContent = "";
    } else if (live) {
      live.textContent = `${t("refresh_failed")}: ${e.text ? e.text() : e}`;
    }
  } finally {
    if (refreshing === shown.handle) refreshing = null;
  }
}

/** Say in the status line that refreshing waits for the selection to end. */
function paused() {
  const live = document.getElementById("live");
  if (live) live.textContent = t("refresh_paused_selection");
}

function stopTimer() {
  if (timer) clearInterval(timer);
  timer = null;
}

async function start() {
  document.documentElement.lang = lang() === "zh" ? "zh-CN" : "en";
  document.title = t("app_title");
  if (!token()) {
    loginView();
    return;
  }
  try {
    me = await api("GET", "/api/me");
    shell();
  } catch (e) {
    if (e.status !== 401) loginView(e.text ? e.text() : String(e));
  }
}

window.addEventListener("hashchange", () => {
  if (me) route();
});
window.addEventListener("gw-logout", (ev) => {
  loginView(ev.detail && ev.detail.text ? ev.detail.text() : t("session_expired"));
});
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refresh();
});

start();
