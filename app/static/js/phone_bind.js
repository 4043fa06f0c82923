// The phone's side of binding: check the phone can do it, then create a passkey and hand it over.
// The page needs no login: the token in its address is the permission to bind, once.
(function () {
  "use strict";

  const { creationOptions, credentialJSON } = window.MoCertWebAuthn;

  const { api, t, showStatus, formatDate } = window.MoCert;
  const root = document.getElementById("phone-bind");
  if (!root) return;
  const unsupported = document.getElementById("phone-unsupported");
  const formArea = document.getElementById("phone-form-area");
  const accountLine = document.getElementById("phone-account");
  const form = document.getElementById("phone-bind-form");
  const nameInput = document.getElementById("device-name");
  const nameError = document.getElementById("device-name-error");
  const button = document.getElementById("phone-bind-button");
  const status = document.getElementById("phone-status");
  const done = document.getElementById("phone-done");
  const doneText = document.getElementById("phone-done-text");

  const NAME_MAX = 80;
  const base = "/api/v1/m/bind/" + encodeURIComponent(root.dataset.token || "");
  // Errors after which this QR code is spent: binding again starts on the computer.
  const BINDING_OVER = ["binding_used", "binding_expired", "binding_unknown"];
  let publicKeyJSON = null;
  let nameEdited = false;

  // -- what this phone can do --------------------------------------------------------------------

  async function supported() {
    if (!window.PublicKeyCredential || !navigator.credentials || !navigator.credentials.create) return false;
    try {
      return Boolean(await PublicKeyCredential.isUserVerifyingPlatformAuthenticatorAvailable());
    } catch (err) {
      return false;
    }
  }

  // A name the person recognises later in the account's device list; they can change it.
  function guessName() {
    const ua = navigator.userAgent || "";
    if (/iPhone/.test(ua)) return t("iphone");
    if (/iPad/.test(ua) || (/Macintosh/.test(ua) && navigator.maxTouchPoints > 1)) return t("ipad");
    if (/Android/.test(ua)) {
      // "(Linux; Android 14; Pixel 8 Build/…)": the part after the version is the model, unless the
      // browser hides it (Chrome now says "K").
      const inside = (/\(([^)]*)\)/.exec(ua) || ["", ""])[1].split(";").map((part) => part.trim());
      const at = inside.findIndex((part) => part.startsWith("Android"));
      const model = at >= 0 && inside[at + 1] ? inside[at + 1].replace(/\s*Build\/.*$/, "").trim() : "";
      return model && model !== "K" && model !== "wv" ? model.slice(0, NAME_MAX) : t("androidPhone");
    }
    return t("myPhone");
  }

  // Chrome on Android tells the real model when asked (its user agent string no longer does).
  async function refineName() {
    const data = navigator.userAgentData;
    if (!data || !data.getHighEntropyValues) return;
    try {
      const values = await data.getHighEntropyValues(["model"]);
      if (values.model && !nameEdited) nameInput.value = values.model.slice(0, NAME_MAX);
    } catch (err) {
      // Keep the guess.
    }
  }

  // -- WebAuthn's JSON forms, with a fallback for browsers older than the JSON helpers --------------

  // -- the page ----------------------------------------------------------------------------------

  function endWith(text) {
    formArea.hidden = true;
    showStatus(status, text, "error");
  }

  function setNameError(text) {
    nameError.textContent = text || "";
    nameError.hidden = !text;
    if (text) nameInput.setAttribute("aria-invalid", "true");
    else nameInput.removeAttribute("aria-invalid");
  }

  async function init() {
    showStatus(status, t("checking"), "info");
    if (!(await supported())) {
      showStatus(status, "");
      unsupported.hidden = false;
      return;
    }
    showStatus(status, t("loading"), "info");
    const result = await api("POST", base + "/options", {});
    if (!result.ok) {
      const over = BINDING_OVER.includes(result.data.error);
      endWith(over ? t("startAgain", { message: result.data.message }) : result.data.message);
      return;
    }
    const data = result.data;
    publicKeyJSON = data.publicKey;
    const account = data.account || {};
    accountLine.textContent = t("bindTo", {
      name: account.name_masked || "",
      national_id: account.national_id_masked || "",
      site: data.site || "MoCert",
    });
    nameInput.value = guessName();
    refineName();
    showStatus(status, "");
    formArea.hidden = false;
  }

  nameInput.addEventListener("input", () => {
    nameEdited = true;
    setNameError("");
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = nameInput.value.split(/\s+/).filter(Boolean).join(" ");
    if (!name) {
      setNameError(t("nameRequired"));
      nameInput.focus();
      return;
    }
    setNameError("");
    button.disabled = true;
    showStatus(status, t("waitingForPhone"), "info");

    let credential;
    try {
      credential = await navigator.credentials.create({ publicKey: creationOptions(publicKeyJSON) });
    } catch (err) {
      button.disabled = false;
      const kind = err && err.name;
      if (kind === "NotAllowedError") {
        showStatus(status, t("cancelled"), "error");
      } else if (kind === "InvalidStateError") {
        endWith(t("alreadyBound"));
      } else {
        showStatus(status, t("webauthnFailed", { name: kind || "Error" }), "error");
      }
      return;
    }

    showStatus(status, t("saving"), "info");
    const result = await api("POST", base + "/complete", { credential: credentialJSON(credential), device_name: name });
    button.disabled = false;
    if (result.ok) {
      const device = result.data.device || {};
      formArea.hidden = true;
      showStatus(status, "");
      doneText.textContent = device.expires_at ? t("done", { date: formatDate(device.expires_at) }) : t("doneNoDate");
      done.hidden = false;
      doneText.setAttribute("tabindex", "-1");
      doneText.focus();
      return;
    }
    const data = result.data;
    if (data.error === "invalid_device_name") {
      setNameError(data.message);
      showStatus(status, "");
      nameInput.focus();
    } else if (result.status === 0 || result.status === 429 || result.status >= 500) {
      // Nothing was used up on the server's side as far as we know: the person may try again.
      showStatus(status, data.message, "error");
    } else if (data.error === "credential_exists" || data.error === "binding_replaced") {
      endWith(data.message);  // nothing to start again: the computer shows its newer QR code already
    } else {
      // The server has spent this QR code on the attempt.
      endWith(t("startAgain", { message: data.message }));
    }
  });

  init();
})();
