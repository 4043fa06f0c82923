// IC card login through the cross-platform component (跨平台網頁元件). The component sends no CORS
// headers, so pages reach it through a popup of its own: the popup announces itself with
// {"func":"getTbs"}, takes one sign request and posts one answer back.
(function () {
  "use strict";

  const { api, t, sentences, showStatus } = window.MoCert;
  const form = document.getElementById("login-form");
  if (!form) return;
  const pinInput = document.getElementById("pin");
  const button = document.getElementById("login-button");
  const status = document.getElementById("login-status");
  const componentUrl = form.dataset.componentUrl.replace(/\/+$/, "");
  const componentOrigin = new URL(componentUrl).origin;
  const helpLink = { href: form.dataset.helpUrl, text: t("helpLink") };

  const READY_TIMEOUT_MS = 5000;
  // The popup closes itself right after answering, so it can look closed before its answer lands.
  const CLOSE_GRACE_MS = 1000;
  const SITE_NOT_TRUSTED = [0x76000031, 0x7600000f];
  const CARD_EXPIRED = 1984954370;
  // last_error as the real component gives it (its own pages test these): PKCS#11's CKR_PIN_INCORRECT and
  // CKR_PIN_LOCKED, and two of its own for a wrong PIN with two or one tries left.
  const PIN_INCORRECT = 160;
  const PIN_LOCKED = 164;
  const TRIES_LEFT = { [-2147483646]: 2, [-2147483647]: 1 };
  const NO_CARD = 0x76000006; // ret_code "未插入IC卡"
  const NO_READER = 0x76100003; // ret_code "無可用讀卡機"
  const CKR_TOKEN_NOT_PRESENT = 224; // last_error, as older MoCert agents answered

  // Errors whose message is meant for the person; anything else is a bug.
  class LoginError extends Error {
    constructor(message, link) {
      super(message);
      this.link = link;
    }
  }

  function openComponent() {
    const popup = window.open(componentUrl + "/popupForm", "mocert-card-component", "width=420,height=360");
    if (!popup) throw new LoginError(t("popupBlocked"), helpLink);

    let isReady = false;
    let markReady, deliver, fail, readyTimer, answerTimer;
    const ready = new Promise((resolve) => { markReady = resolve; });
    const answer = new Promise((resolve) => { deliver = resolve; });
    const failure = new Promise((resolve, reject) => { fail = reject; });
    failure.catch(() => {}); // observed through the races below
    const notRunning = () => new LoginError(t("componentNotRunning"), helpLink);

    readyTimer = setTimeout(() => fail(notRunning()), READY_TIMEOUT_MS);
    const closeWatch = setInterval(() => {
      if (!popup.closed) return;
      clearInterval(closeWatch);
      setTimeout(() => fail(isReady ? new LoginError(t("componentClosed")) : notRunning()), CLOSE_GRACE_MS);
    }, 300);

    function onMessage(event) {
      if (event.origin !== componentOrigin || event.source !== popup) return;
      let message;
      try {
        message = typeof event.data === "string" ? JSON.parse(event.data) : event.data;
      } catch (err) {
        return;
      }
      if (!message || typeof message !== "object") return;
      if (message.func === "getTbs") {
        isReady = true;
        clearTimeout(readyTimer);
        markReady();
      } else if (message.func === "sign") {
        deliver(message);
      }
    }
    window.addEventListener("message", onMessage);

    return {
      ready: Promise.race([ready, failure]),
      sign(request, timeoutMs) {
        answerTimer = setTimeout(() => fail(new LoginError(t("componentTimeout"))), timeoutMs);
        popup.postMessage(JSON.stringify(request), componentOrigin);
        return Promise.race([answer, failure]);
      },
      close() {
        clearTimeout(readyTimer);
        clearTimeout(answerTimer);
        clearInterval(closeWatch);
        window.removeEventListener("message", onMessage);
        if (!popup.closed) popup.close();
      },
    };
  }

  function codeText(reply) {
    const ret = Number(reply.ret_code);
    let code = Number.isInteger(ret) ? "0x" + (ret >>> 0).toString(16).toUpperCase() : String(reply.ret_code);
    if (reply.last_error) code += ", " + reply.last_error;
    return code;
  }

  // Turns a component answer into words, or null when it signed.
  function componentProblem(reply) {
    const ret = Number(reply.ret_code);
    if (ret === 0) return null;
    const lastError = Number(reply.last_error);
    // tries_left and pin_blocked are extras that MoCert's own component adds; the real one says it in last_error.
    let tries = reply.tries_left !== undefined && reply.tries_left !== null ? Number(reply.tries_left) : null;
    if (tries === null && lastError in TRIES_LEFT) tries = TRIES_LEFT[lastError];
    if (SITE_NOT_TRUSTED.includes(ret)) return new LoginError(t("siteNotTrusted"), helpLink);
    if (ret === CARD_EXPIRED) return new LoginError(t("cardExpired"));
    if (reply.pin_blocked === true || lastError === PIN_LOCKED || tries === 0) {
      return new LoginError(t("pinBlocked"));
    }
    if (lastError === PIN_INCORRECT || lastError < 0 || tries !== null) {
      const detail = tries !== null ? t("triesLeft", { n: tries }) : t("pinMaybeBlocked");
      return new LoginError(sentences(t("wrongPin"), detail));
    }
    if (ret === NO_CARD || lastError === CKR_TOKEN_NOT_PRESENT) return new LoginError(t("noCard"));
    if (ret === NO_READER) return new LoginError(t("noReader"), helpLink);
    let text = t("componentError", { code: codeText(reply) });
    if (typeof reply.message === "string" && reply.message) text = sentences(text, reply.message);
    return new LoginError(text);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (button.disabled) return;
    const pin = pinInput.value;
    pinInput.value = ""; // the PIN lives only in this handler, and only for one attempt
    if (!/^[0-9]{6,8}$/.test(pin)) {
      pinInput.setAttribute("aria-invalid", "true");
      showStatus(status, t("pinFormat"), "error");
      pinInput.focus();
      return;
    }
    pinInput.removeAttribute("aria-invalid");
    button.disabled = true;
    showStatus(status, t("contacting"), "info");

    let component = null;
    let leaving = false;
    try {
      // Before any await: browsers allow window.open only right after the click.
      component = openComponent();
      const begin = await api("POST", "/api/v1/card-login/begin");
      if (!begin.ok) throw new LoginError(begin.data.message);
      const challenge = begin.data;

      await component.ready;
      showStatus(status, t("signing"), "info");
      const reply = await component.sign({
        func: "MakeSignature",
        signatureType: "PKCS7",
        tbs: challenge.tbs,
        tbsEncoding: challenge.tbsEncoding,
        hashAlgorithm: challenge.hashAlgorithm,
        withCardSN: "true",
        pin: pin,
        nonce: "",
        slotDescription: "",
      }, (challenge.expires_in || 120) * 1000);
      component.close();
      const problem = componentProblem(reply);
      if (problem) throw problem;

      showStatus(status, t("verifying"), "info");
      const done = await api("POST", "/api/v1/card-login/complete", {
        login_id: challenge.login_id,
        signatureType: "PKCS7",
        signature: reply.signature,
        certb64: reply.certb64,
      });
      if (!done.ok) {
        const later = done.data.error === "revocation_unknown" ? " " + t("tryLater") : "";
        throw new LoginError(done.data.message + later);
      }
      if (done.data.status === "logged_in") {
        leaving = true;
        // The server passes only a safe local path as next (e.g. back to an OpenID Connect request).
        window.location.assign(form.dataset.nextUrl || form.dataset.accountUrl);
      } else if (done.data.status === "registration_required") {
        leaving = true;
        // A login that began elsewhere (an OpenID Connect request) carries on there after registering.
        const next = form.dataset.nextUrl ? "?next=" + encodeURIComponent(form.dataset.nextUrl) : "";
        window.location.assign(form.dataset.registerUrl + next);
      } else {
        throw new LoginError(t("unexpected"));
      }
    } catch (err) {
      if (!(err instanceof LoginError)) console.error(err);
      showStatus(status, err instanceof LoginError ? err.message : t("unexpected"), "error", err && err.link);
      pinInput.focus();
    } finally {
      if (component) component.close();
      if (!leaving) button.disabled = false;
    }
  });
})();
