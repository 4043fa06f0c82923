// The phone's side of logging in at /authorize: show which site and which code, and, when the person
// says they match the computer's, sign the challenge with the phone's passkey (discoverable: the phone
// is not logged in; the server knows the device by the credential it answers with).
(function () {
  "use strict";

  const { requestOptions, credentialJSON } = window.MoCertWebAuthn;

  const { api, t, showStatus } = window.MoCert;
  const root = document.getElementById("phone-login");
  if (!root) return;
  const unsupported = document.getElementById("phone-unsupported");
  const area = document.getElementById("phone-login-area");
  const clientName = document.getElementById("phone-client-name");
  const matchCode = document.getElementById("phone-match-code");
  const approve = document.getElementById("phone-approve");
  const decline = document.getElementById("phone-decline");
  const status = document.getElementById("phone-status");
  const done = document.getElementById("phone-done");
  const doneMark = document.getElementById("phone-done-mark");
  const doneText = document.getElementById("phone-done-text");

  const base = "/api/v1/m/login/" + encodeURIComponent(root.dataset.token || "");
  const REQUEST_OVER = ["login_request_used", "login_request_expired", "login_request_unknown", "login_request_declined"];
  let publicKeyJSON = null;

  function endWith(text) {
    area.hidden = true;
    showStatus(status, text, "error");
  }

  async function init() {
    showStatus(status, t("checking"), "info");
    if (!window.PublicKeyCredential || !navigator.credentials || !navigator.credentials.get) {
      showStatus(status, "");
      unsupported.hidden = false;
      return;
    }
    showStatus(status, t("loading"), "info");
    const result = await api("POST", base + "/options", {});
    if (!result.ok) {
      endWith(REQUEST_OVER.includes(result.data.error) ? t("startAgain", { message: result.data.message }) : result.data.message);
      return;
    }
    publicKeyJSON = result.data.publicKey;
    clientName.textContent = result.data.client_name;
    matchCode.textContent = result.data.match_code;
    showStatus(status, "");
    area.hidden = false;
  }

  function transient(result) {
    return result.status === 0 || result.status === 429 || result.status >= 500;
  }

  function finish(text, approved) {
    area.hidden = true;
    showStatus(status, "");
    doneMark.hidden = !approved;
    doneText.dataset.kind = approved ? "success" : "info";
    doneText.textContent = text;
    done.hidden = false;
    doneText.setAttribute("tabindex", "-1");
    doneText.focus();
  }

  // "Not me, or a different code": the server ends the request, so that the computer stops waiting and
  // this link approves nothing afterwards (a relayed QR code is stopped, not merely left alone).
  decline.addEventListener("click", async () => {
    approve.disabled = decline.disabled = true;
    showStatus(status, t("declining"), "info");
    const result = await api("POST", base + "/decline", {});
    approve.disabled = decline.disabled = false;
    if (result.ok) finish(t("declined"), false);
    else if (transient(result)) showStatus(status, result.data.message, "error");  // still open: try again
    else endWith(REQUEST_OVER.includes(result.data.error) ? t("startAgain", { message: result.data.message }) : result.data.message);
  });

  approve.addEventListener("click", async () => {
    approve.disabled = decline.disabled = true;
    showStatus(status, t("waitingForPhone"), "info");
    let credential;
    try {
      credential = await navigator.credentials.get({ publicKey: requestOptions(publicKeyJSON) });
    } catch (err) {
      approve.disabled = decline.disabled = false;
      const kind = err && err.name;
      showStatus(status, kind === "NotAllowedError" ? t("cancelled") : t("webauthnFailed", { name: kind || "Error" }), "error");
      return;
    }
    showStatus(status, t("verifying"), "info");
    const result = await api("POST", base + "/complete", { credential: credentialJSON(credential) });
    approve.disabled = decline.disabled = false;
    if (result.ok) {
      finish(t("done"), true);
    } else if (transient(result)) {
      showStatus(status, result.data.message, "error");
    } else {
      // The server has spent this QR code on the attempt; its message says why (revoked, expired…).
      endWith(REQUEST_OVER.includes(result.data.error) ? t("startAgain", { message: result.data.message }) : result.data.message);
    }
  });

  init();
})();
