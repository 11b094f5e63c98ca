// The operator API, with the token kept in sessionStorage (gone when the tab closes).
import { t, pick } from "./i18n.js";

const TOKEN_KEY = "gw.token";

/** The stored token, or null. */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Keep the token for this tab. */
export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

/** Forget the token. */
export function forget() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(CLEAR_KEY);
}

const CLEAR_KEY = "gw.personal_clear";

/** Whether answers are asked for with personal data in clear (tokens holding `personal-data`; each read is audit-logged). */
export function personalClear() {
  return sessionStorage.getItem(CLEAR_KEY) === "1";
}

/** Ask for personal data in clear (true) or masked (false) from now on, in this tab. */
export function setPersonalClear(on) {
  if (on) sessionStorage.setItem(CLEAR_KEY, "1");
  else sessionStorage.removeItem(CLEAR_KEY);
}

/** An error answer of the API (or a network failure). */
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message_en || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || (status === 0 ? "network" : "http_" + status);
    this.zh = e.message_zh || (status === 0 ? "网络错误" : `HTTP ${status}`);
    this.en = e.message_en || (status === 0 ? "network error" : `HTTP ${status}`);
    this.details = e.details;
    /** The whole answer (e.g. the violations of a refused completion). */
    this.body = body;
  }
  /** The message in the chosen language. */
  text() {
    return pick(this.zh, this.en);
  }
}

/**
 * Call the API: api("GET", "/api/sources") or api("POST", path, body). With `contentType`, the
 * body (a File or Blob) is sent as it is with that type (uploads). A 401 forgets the token and
 * sends the user back to the login form (event "gw-logout").
 */
export async function api(method, path, body, contentType) {
  const headers = { Accept: "application/json" };
  const tok = token();
  if (tok) headers.Authorization = "Bearer " + tok;
  if (personalClear()) headers["X-Personal-Data"] = "clear";
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined && contentType) {
    headers["Content-Type"] = contentType;
    init.body = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, { error: { message_zh: t("network_error"), message_en: String(e) } });
  }
  let data = null;
  const text = await resp.text();
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = null;
  }
  if (resp.status === 401) {
    forget();
    window.dispatchEvent(new CustomEvent("gw-logout", { detail: new ApiError(401, data) }));
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

/** A query string from an object, skipping empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}
