// The computer's side of logging in at /authorize: a QR code for the phone, followed until the phone
// approves, then this browser (and only this one) completes the login and goes back to /authorize.
// Or, on this device: a passkey, asked for directly.
(function () {
  "use strict";

  const { requestOptions, credentialJSON } = window.MoCertWebAuthn;

  const { api, t, showStatus, countdown } = window.MoCert;
  const root = document.getElementById("authorize-login");
  if (!root) return;
  const area = document.getElementById("login-area");
  const qr = document.getElementById("login-qr");
  const matchCode = document.getElementById("login-match-code");
  const countdownElement = document.getElementById("login-countdown");
  const status = document.getElementById("login-status");
  const error = document.getElementById("login-error");
  const again = document.getElementById("login-again");
  const passkey = document.getElementById("login-passkey");

  const POLL_MS = 1000;
  const FINAL = ["approved", "expired", "failed", "declined"];
  const REASONS = {
    user_not_verified: "reasonUserNotVerified",
    origin_mismatch: "reasonOrigin",
    rp_id_mismatch: "reasonOrigin",
    credential_unknown: "reasonCredentialUnknown",
    device_revoked: "reasonRevoked",
    device_suspended: "reasonSuspended",
    device_expired: "reasonExpired",
    sign_count_regression: "reasonCloned",
  };
  let generation = 0;
  let requestId = null;
  let passkeyOptions = null;  // issued with the request: the passkey needs no second call
  let pollTimer = null;
  let clockTimer = null;

  function stopTimers() {
    clearTimeout(pollTimer);
    clearInterval(clockTimer);
  }

  function setStatus(name, text, kind) {
    status.dataset.status = name;
    showStatus(status, text, kind);
  }

  function startClock(deadline) {
    clockTimer = countdown(countdownElement, deadline);
  }

  function finish() {
    stopTimers();
    area.hidden = true;
    again.hidden = false;
    again.focus();
  }

  async function completeLogin(path, body) {
    const result = await api("POST", path, body);
    if (result.ok && result.data.redirect) {
      window.location.assign(result.data.redirect);
      return true;
    }
    showStatus(error, result.data.message, "error");
    return false;
  }

  async function render(data, mine) {
    const name = data.status;
    if (name === status.dataset.status && (name === "pending" || name === "scanned")) return;
    if (name === "pending") setStatus(name, t("pending"), "info");
    else if (name === "scanned") setStatus(name, t("scanned"), "info");
    else if (name === "expired") {
      setStatus(name, t("expired"), "error");
      finish();
    } else if (name === "declined") {
      // The person said no on the phone: the request is over on the server; a new QR code starts again.
      setStatus(name, t("declined"), "error");
      finish();
    } else if (name === "failed") {
      setStatus(name, t("failed", { reason: t(REASONS[data.reason] || "reasonOther") }), "error");
      finish();
    } else if (name === "approved") {
      stopTimers();
      setStatus(name, t("approved"), "success");
      const id = encodeURIComponent(requestId);
      if (mine === generation && !(await completeLogin("/api/v1/login-requests/" + id + "/complete", {}))) finish();
    }
  }

  async function poll(id, mine) {
    const result = await api("GET", "/api/v1/login-requests/" + encodeURIComponent(id));
    if (mine !== generation) return;
    if (result.ok) {
      showStatus(error, "");
      await render(result.data, mine);
      if (FINAL.includes(result.data.status)) return;
    } else if (result.status === 404) {
      showStatus(error, result.data.message, "error");
      finish();
      return;
    } else {
      showStatus(error, result.data.message, "error");  // a passing trouble: keep asking
    }
    pollTimer = setTimeout(() => poll(id, mine), POLL_MS);
  }

  async function start() {
    const mine = ++generation;
    stopTimers();
    again.hidden = true;
    area.hidden = true;
    showStatus(error, "");
    setStatus("creating", t("creating"), "info");
    const result = await api("POST", "/api/v1/login-requests", { authorize: root.dataset.authorizeQuery || "", qr: true });
    if (mine !== generation) return;
    if (!result.ok) {
      setStatus("", "");
      showStatus(error, result.data.message, "error");
      again.hidden = false;
      return;
    }
    const data = result.data;
    requestId = data.login_request_id;
    passkeyOptions = data.passkey;
    qr.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(data.qr_svg);
    matchCode.textContent = data.match_code;
    area.hidden = false;
    passkey.hidden = !window.PublicKeyCredential || !navigator.credentials;
    startClock(Date.now() + Number(data.expires_in || 0) * 1000);
    setStatus("pending", t("pending"), "info");
    pollTimer = setTimeout(() => poll(requestId, mine), POLL_MS);
  }

  // -- a passkey on this device ---------------------------------------------------------------------

  passkey.addEventListener("click", async () => {
    if (!requestId) return;
    if (!window.PublicKeyCredential) {
      showStatus(error, t("passkeyUnsupported"), "error");
      return;
    }
    const base = "/api/v1/login-requests/" + encodeURIComponent(requestId) + "/passkey";
    passkey.disabled = true;
    showStatus(error, "");
    showStatus(status, t("passkeyWaiting"), "info");
    let credential;
    try {
      credential = await navigator.credentials.get({ publicKey: requestOptions(passkeyOptions.publicKey) });
    } catch (err) {
      passkey.disabled = false;
      showStatus(status, t("passkeyCancelled"), "error");
      return;
    }
    generation++;  // this login goes on through the passkey: stop following the QR code
    stopTimers();
    if (!(await completeLogin(base + "/complete", { credential: credentialJSON(credential) }))) {
      passkey.disabled = false;
      finish();
    }
  });

  again.addEventListener("click", start);
  start();
})();
