// The computer's side of binding a phone: show a QR code, then follow the binding until it ends.
(function () {
  "use strict";

  const { api, t, showStatus, formatDate, countdown } = window.MoCert;
  const root = document.getElementById("bind");
  if (!root) return;
  const area = document.getElementById("bind-area");
  const qr = document.getElementById("bind-qr");
  const link = document.getElementById("bind-link");
  const countdownElement = document.getElementById("bind-countdown");
  const status = document.getElementById("bind-status");
  const error = document.getElementById("bind-error");
  const again = document.getElementById("bind-again");

  const POLL_MS = 1500;
  const FINAL = ["completed", "expired", "failed"];
  // Each binding gets a generation; timers of an older one stop themselves when a new one starts.
  let generation = 0;
  let pollTimer = null;
  let clockTimer = null;

  // What the person can do about an error that blocks binding, as a link.
  const ERROR_LINKS = {
    email_not_verified: () => ({ href: root.dataset.accountUrl, text: t("confirmEmail") }),
    device_limit: () => ({ href: root.dataset.accountUrl, text: t("unbindDevice") }),
    card_login_required: () => ({ href: root.dataset.loginUrl, text: t("loginWithCard") }),
  };

  // The failure reason is a code (the phone's answer was checked on the server); say it in words.
  const REASONS = {
    user_not_verified: "reasonUserNotVerified",
    origin_mismatch: "reasonOrigin",
    rp_id_mismatch: "reasonOrigin",
    credential_exists: "reasonCredentialExists",
    device_limit: "reasonDeviceLimit",
  };

  function stopTimers() {
    clearTimeout(pollTimer);
    clearInterval(clockTimer);
    pollTimer = null;
    clockTimer = null;
  }

  function setStatus(name, text, kind, extraLink) {
    status.dataset.status = name;
    showStatus(status, text, kind, extraLink);
  }

  function showError(data, fallbackLink) {
    const makeLink = ERROR_LINKS[data.error];
    showStatus(error, data.message, "error", makeLink ? makeLink() : fallbackLink);
  }

  function sessionEnded() {
    stopTimers();
    area.hidden = true;
    setStatus("", "");
    showStatus(error, t("sessionEnded"), "error", { href: root.dataset.loginUrl, text: t("loginAgain") });
  }

  function startClock(deadline) {
    clockTimer = countdown(countdownElement, deadline);
  }

  function finish(name) {
    stopTimers();
    area.hidden = true;
    again.hidden = name === "completed";
    if (name !== "completed") again.focus();
  }

  // A binding another page of this session replaced (a newer QR code, in another tab) is followed on: if
  // the phone binds with the newer one, this page hears it too (the server answers "completed").
  function shownAs(data) {
    return data.status === "failed" && data.reason === "binding_replaced" ? "replaced" : data.status;
  }

  function render(data) {
    const name = shownAs(data);
    // Polling repeats the same answer; saying it again would make screen readers repeat it too.
    if (name === status.dataset.status && (name === "pending" || name === "scanned" || name === "replaced")) return;
    if (name === "pending") {
      setStatus(name, t("pending"), "info");
    } else if (name === "scanned") {
      setStatus(name, t("scanned"), "info");
    } else if (name === "completed") {
      const device = data.device;
      const text = device
        ? t("completed", { name: device.name, date: formatDate(device.expires_at) })
        : t("completedNoDevice");
      setStatus(name, text, "success", { href: root.dataset.accountUrl, text: t("toAccount") });
      finish(name);
    } else if (name === "expired") {
      setStatus(name, t("expired"), "error");
      finish(name);
    } else if (name === "replaced") {
      // Not a failure of the phone's: another page of this session made a newer QR code.
      setStatus(name, t("replaced"), "error");
      finish(name);
    } else if (name === "failed") {
      setStatus(name, t("failed", { reason: t(REASONS[data.reason] || "reasonOther") }), "error");
      finish(name);
    }
  }

  async function poll(bindingId, mine, followUntil) {
    const result = await api("GET", "/api/v1/bindings/" + encodeURIComponent(bindingId));
    if (mine !== generation) return;
    if (result.status === 401) {
      sessionEnded();
      return;
    }
    if (result.ok) {
      showStatus(error, "");
      render(result.data);
      const replaced = shownAs(result.data) === "replaced";
      if (FINAL.includes(result.data.status) && !(replaced && Date.now() < followUntil)) return;
    } else if (result.status === 404) {
      // The binding is gone (say, removed on the server): nothing more will come of it.
      showError(result.data);
      setStatus("failed", "");
      finish("failed");
      return;
    } else {
      // A network hiccup or a busy server: say so, and keep asking.
      showStatus(error, result.data.message, "error");
    }
    pollTimer = setTimeout(() => poll(bindingId, mine, followUntil), POLL_MS);
  }

  async function start() {
    const mine = ++generation;
    stopTimers();
    again.hidden = true;
    again.disabled = true;
    area.hidden = true;
    showStatus(error, "");
    setStatus("creating", t("creating"), "info");
    const result = await api("POST", "/api/v1/bindings", {});
    again.disabled = false;
    if (mine !== generation) return;
    if (result.status === 401 && result.data.error !== "card_login_required") {
      sessionEnded();
      return;
    }
    if (!result.ok) {
      setStatus("", "");
      showError(result.data);
      // Only a passing trouble is worth another try from here; the others need the link's page.
      again.hidden = Boolean(ERROR_LINKS[result.data.error]);
      return;
    }
    const data = result.data;
    qr.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(data.qr_svg);
    link.href = data.url;
    link.textContent = data.url;
    area.hidden = false;
    const lifetime = Number(data.expires_in || 0) * 1000;
    startClock(Date.now() + lifetime);
    render({ status: "pending" });
    // A newer QR code made before this one expires lives at most one lifetime longer.
    pollTimer = setTimeout(() => poll(data.binding_id, mine, Date.now() + 2 * lifetime), POLL_MS);
  }

  again.addEventListener("click", start);
  start();
})();
