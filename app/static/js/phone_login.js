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
  const doneText = document.getElementById("phone-done-text");

  const base = "/api/v1/m/login/" + encodeURIComponent(root.dataset.token || "");
  const REQUEST_OVER = ["login_request_used", "login_request_expired", "login_request_unknown"];
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

  decline.addEventListener("click", () => endWith(t("declined")));

  approve.addEventListener("click", async () => {
    approve.disabled = true;
    showStatus(status, t("waitingForPhone"), "info");
    let credential;
    try {
      credential = await navigator.credentials.get({ publicKey: requestOptions(publicKeyJSON) });
    } catch (err) {
      approve.disabled = false;
      const kind = err && err.name;
      showStatus(status, kind === "NotAllowedError" ? t("cancelled") : t("webauthnFailed", { name: kind || "Error" }), "error");
      return;
    }
    showStatus(status, t("verifying"), "info");
    const result = await api("POST", base + "/complete", { credential: credentialJSON(credential) });
    approve.disabled = false;
    if (result.ok) {
      area.hidden = true;
      showStatus(status, "");
      doneText.textContent = t("done");
      done.hidden = false;
      doneText.setAttribute("tabindex", "-1");
      doneText.focus();
    } else if (result.status === 0 || result.status === 429 || result.status >= 500) {
      showStatus(status, result.data.message, "error");
    } else {
      // The server has spent this QR code on the attempt; its message says why (revoked, expired…).
      endWith(REQUEST_OVER.includes(result.data.error) ? t("startAgain", { message: result.data.message }) : result.data.message);
    }
  });

  init();
})();
