// The dashboard: login, navigation (hash routing), live refresh. Pages live in ./pages/.
import { h, replace, time } from "./dom.js";
import { t, lang, setLang } from "./i18n.js";
import { api, token, setToken, forget } from "./api.js";
import overview from "./pages/overview.js";
import quarantine from "./pages/quarantine.js";
import cases from "./pages/cases.js";
import mappings from "./pages/mappings.js";
import deliveries from "./pages/deliveries.js";

/** How often a page refreshes its data while the tab is visible. */
const REFRESH_MS = 3000;

const PAGES = [overview, quarantine, cases, mappings, deliveries];

/** What each role may do (mirrors the server's role table; the server decides in the end). */
const ROLE_ACTIONS = {
  admin: ["sourcesRead", "sourcesControl", "quarantineRead", "quarantineWrite", "casesRead", "deliveries", "mappings"],
  operator: ["sourcesRead", "sourcesControl", "quarantineRead", "quarantineWrite", "casesRead", "deliveries"],
  "standards-owner": ["sourcesRead", "quarantineRead", "casesRead", "mappings"],
  department: ["quarantineRead"],
};

const app = document.getElementById("app");
let me = null;
let current = null; // { page, handle, hash }
let timer = null;
let refreshing = false;

function can(action) {
  return Boolean(me && (ROLE_ACTIONS[me.role] || []).includes(action));
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
  const first = PAGES.find((p) => can(p.needs));
  return first ? "#/" + first.id : "#/quarantine";
}

function shell() {
  const nav = h(
    "nav",
    { class: "nav" },
    h("span", { class: "brand" }, t("app_title")),
    PAGES.filter((p) => can(p.needs)).map((p) => h("a", { href: "#/" + p.id, id: "nav-" + p.id, dataset: { page: p.id } }, t(p.navKey))),
    h("span", { class: "spacer" }),
    h("span", { class: "who", id: "who" }, `${me.name} · ${t("role_" + me.role.replace("-", "_"))}`),
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
  const main = h("main", { id: "page" });
  const live = h("div", { id: "live", class: "live muted" });
  replace(app, nav, main, h("footer", { class: "muted" }, live));
  route();
}

async function route() {
  if (!me) return;
  const hash = location.hash || defaultHash();
  const parts = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const page = PAGES.find((p) => p.id === parts[0] && can(p.needs));
  if (!page) {
    location.hash = defaultHash();
    return;
  }
  for (const a of app.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === page.id);
  const main = document.getElementById("page");
  if (!main) return;
  replace(main);
  stopTimer();
  const handle = page.mount(main, ctx, parts.slice(1));
  current = { page, handle, hash };
  await refresh();
  timer = setInterval(() => {
    // Not while the tab is hidden, and not while the user has text selected (to copy a value):
    // redrawing would wipe the selection. The page catches up once the selection is gone.
    const selecting = window.getSelection && String(window.getSelection()).length > 0;
    if (!document.hidden && !selecting) refresh();
    else if (selecting) paused();
  }, REFRESH_MS);
}

async function refresh() {
  if (!current || !current.handle || !current.handle.refresh || refreshing) return;
  refreshing = true;
  const live = document.getElementById("live");
  try {
    await current.handle.refresh();
    if (live) live.textContent = `${t("updated_at")} ${time(new Date().toISOString())}`;
  } catch (e) {
    if (live) live.textContent = `${t("refresh_failed")}: ${e.text ? e.text() : e}`;
  } finally {
    refreshing = false;
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
