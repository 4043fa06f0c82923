// Shared by every page: the JSON API helper, translated strings and status messages.
(function () {
  "use strict";

  // Pages hand their translated strings over as JSON data blocks (see base.html), merged here.
  const strings = window.MOCERT_I18N || {};
  document.querySelectorAll('script[type="application/json"].mocert-i18n').forEach((block) => {
    Object.assign(strings, JSON.parse(block.textContent));
  });
  window.MOCERT_I18N = strings;

  // Templates render placeholders as {name}, so one catalogue entry serves any value.
  function t(key, params) {
    const text = strings[key];
    if (text === undefined) return key;
    return text.replace(/\{(\w+)\}/g, (match, name) => (params && name in params ? String(params[name]) : match));
  }

  // Sentences one after another: a space after an English one, none after a full-width stop (。！？，；：),
  // which Chinese typesetting never follows with a half-width space.
  // Chinese (and its full-width punctuation, 」 and ） included) takes no space between sentences; English does.
  const WIDE = /[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]/;
  function sentences(...parts) {
    return parts.filter(Boolean).reduce((text, part) => {
      if (!text) return part;
      return WIDE.test(text.slice(-1)) || WIDE.test(part[0]) ? text + part : text + " " + part;
    }, "");
  }

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // Always resolves, so callers handle one shape: {ok, status, data}. On failure data is the
  // API's {error, message}, or one made up here when the server or network gave none. headers: more
  // request headers (a phone's inbox sends its token as Authorization).
  async function api(method, path, body, headers) {
    const init = { method, credentials: "same-origin", headers: Object.assign({ Accept: "application/json" }, headers) };
    if (method !== "GET" && method !== "HEAD") {
      init.headers["X-CSRF-Token"] = csrfToken();
      init.headers["Content-Type"] = "application/json";
      // An empty object rather than no body: the server parses every POST as JSON.
      init.body = JSON.stringify(body === undefined ? {} : body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      return { ok: false, status: 0, data: { error: "network_error", message: t("networkError") } };
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok && !(data && data.message)) {
      data = Object.assign({ error: "http_" + response.status, message: t("serverError") }, data);
    }
    return { ok: response.ok, status: response.status, data: data || {} };
  }

  // kind: "info", "success" or "error" (styled by [data-kind]); link: optional {href, text}.
  function showStatus(element, text, kind, link) {
    element.textContent = text || "";
    element.dataset.kind = kind || "info";
    if (text && link) {
      const anchor = document.createElement("a");
      anchor.href = link.href;
      anchor.textContent = link.text;
      element.append(" ", anchor);
    }
  }

  // Dates as YYYY/MM/DD in the person's own time zone, in every language (unambiguous, and how
  // Taiwan writes them). The API sends ISO 8601; a time without a zone is UTC.
  function formatDate(iso) {
    if (!iso) return "";
    const text = String(iso);
    const zoned = /T.*(Z|[+-]\d\d:?\d\d)$/.test(text) || !text.includes("T") ? text : text + "Z";
    const date = new Date(zoned);
    if (Number.isNaN(date.getTime())) return text;
    const pad = (n) => String(n).padStart(2, "0");
    return date.getFullYear() + "/" + pad(date.getMonth() + 1) + "/" + pad(date.getDate());
  }

  // A QR code's time left, "m:ss", in ``element`` every second until ``deadline`` (ms since the epoch); the
  // interval's id, for clearInterval. When time is up the page's next poll brings the server's word on it.
  function countdown(element, deadline) {
    const tick = () => {
      const left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      const time = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
      element.textContent = left > 0 ? t("timeLeft", { time }) : t("timeUp");
      element.dataset.remaining = String(left);
    };
    tick();
    return setInterval(tick, 1000);
  }

  const logoutButton = document.getElementById("logout-button");
  if (logoutButton) {
    logoutButton.addEventListener("click", async () => {
      logoutButton.disabled = true;
      const result = await api("POST", "/api/v1/logout");
      // 401: the session had already ended, which is what the person wanted anyway.
      if (result.ok || result.status === 401) {
        window.location.assign("/");
        return;
      }
      logoutButton.disabled = false;
      showStatus(document.getElementById("page-status"), result.data.message, "error");
    });
  }

  window.MoCert = { api, t, sentences, showStatus, formatDate, countdown };
})();
