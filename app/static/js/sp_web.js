// SP-API-WEB-01: MoCert's page for an agency's request. A QR code for the phone, or a passkey on this
// device; the page follows the request with its own token until a phone approves, asks the person for
// their national ID, then posts the signed answer to the agency's callback. A decline or expiry is posted
// back too, with its code.
(function () {
  "use strict";

  const { requestOptions, credentialJSON } = window.MoCertWebAuthn;
  const { api, t, sentences, showStatus, countdown } = window.MoCert;
  const root = document.getElementById("sp-web");
  if (!root) return;
  const token = root.dataset.token;
  const spTicket = root.dataset.spTicket;
  const area = document.getElementById("sp-web-area");
  const countdownElement = document.getElementById("sp-web-countdown");
  const status = document.getElementById("sp-web-status");
  const error = document.getElementById("sp-web-error");
  const passkey = document.getElementById("sp-web-passkey");
  const cancel = document.getElementById("sp-web-cancel");
  const idForm = document.getElementById("sp-web-id-form");
  const idInput = document.getElementById("sp-web-id-num");
  const idError = document.getElementById("sp-web-id-error");
  const send = document.getElementById("sp-web-send");

  const POLL_MS = 2000;
  let pollTimer = null;
  let clockTimer = null;
  let done = false; // the answer is on its way to the agency: nothing more to do here

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

  function hideChoices() {
    area.hidden = true;
    passkey.hidden = true;
    cancel.hidden = true;
  }

  // The answer goes to the agency as the contract has it: a form POST from the person's browser.
  function postBack(post) {
    done = true;
    stopTimers();
    const form = document.createElement("form");
    form.method = "post";
    form.action = post.action;
    form.hidden = true;
    Object.entries(post.fields).forEach(([name, value]) => {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      form.append(input);
    });
    document.body.append(form);
    form.submit();
  }

  function askForId() {
    stopTimers();
    hideChoices();
    idForm.hidden = false;
    idInput.focus();
  }

  function render(data) {
    const name = data.status;
    if (name === "pending" || name === "scanned") {
      if (name !== status.dataset.status) setStatus(name, t(name), "info");
      return true;
    }
    if (name === "approved") {
      if (name !== status.dataset.status) {
        setStatus(name, t("approved"), "success");
        askForId();
      }
      return false;
    }
    hideChoices();
    idForm.hidden = true;
    if (name === "released") {
      setStatus(name, t("released"), "info");
      stopTimers();
      return false;
    }
    // declined or expired: the agency hears it
    setStatus(name, t(name === "declined" ? "declined" : "expired"), "error");
    if (data.post) postBack(data.post);
    return false;
  }

  async function poll() {
    clearTimeout(pollTimer);
    if (done) return;
    const result = await api("POST", "/api/v1/sp-web/status", { token });
    if (done) return;
    if (result.ok) {
      showStatus(error, "");
      if (!render(result.data)) return;
    } else if (result.status === 404) {
      showStatus(error, result.data.message, "error");
      hideChoices();
      stopTimers();
      return;
    } else {
      showStatus(error, result.data.message, "error"); // a passing trouble: keep asking
    }
    pollTimer = setTimeout(poll, POLL_MS);
  }

  // -- a passkey on this device: the phone's own calls, with the ticket the QR code shows ----------------

  passkey.addEventListener("click", async () => {
    if (!window.PublicKeyCredential) {
      showStatus(error, t("passkeyUnsupported"), "error");
      return;
    }
    passkey.disabled = true;
    showStatus(error, "");
    const options = await api("POST", "/api/v1/m/sp-requests/options", { sp_ticket: spTicket });
    if (!options.ok) {
      passkey.disabled = false;
      showStatus(error, options.data.message, "error");
      return;
    }
    showStatus(status, t("passkeyWaiting"), "info");
    let credential;
    try {
      credential = await navigator.credentials.get({ publicKey: requestOptions(options.data.publicKey) });
    } catch (err) {
      passkey.disabled = false;
      status.dataset.status = "";
      showStatus(status, t("passkeyCancelled"), "error");
      return;
    }
    const answer = await api("POST", "/api/v1/m/sp-requests/complete", {
      sp_ticket: spTicket,
      credential: credentialJSON(credential),
    });
    passkey.disabled = false;
    if (!answer.ok) showStatus(error, answer.data.message, "error");
    poll();
  });

  // -- no: the agency hears APP_USER_CANCEL, as from a phone that declines ------------------------------

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    const answer = await api("POST", "/api/v1/m/sp-requests/decline", { sp_ticket: spTicket });
    if (!answer.ok) showStatus(error, answer.data.message, "error");
    cancel.disabled = false;
    poll();
  });

  // -- the national ID, once a phone has approved --------------------------------------------------------

  idForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    send.disabled = true;
    idError.hidden = true;
    const result = await api("POST", "/api/v1/sp-web/release", { token, id_num: idInput.value });
    send.disabled = false;
    if (result.ok) {
      idForm.hidden = true;
      const refused = result.data.status !== "released";
      setStatus(result.data.status, t(refused ? "refused" : "sending"), refused ? "error" : "success");
      postBack(result.data.post);
      return;
    }
    if (result.data.error === "national_id_not_confirmed") {
      let text = result.data.message;
      if (typeof result.data.attempts_left === "number") text = sentences(text, t("attemptsLeft", { num: result.data.attempts_left }));
      idError.textContent = text;
      idError.hidden = false;
      idInput.setAttribute("aria-invalid", "true");
      idInput.focus();
      return;
    }
    // Too late, or answered already: the status says what the agency hears.
    showStatus(error, result.data.message, "error");
    status.dataset.status = "";
    poll();
  });

  passkey.hidden = !window.PublicKeyCredential || !navigator.credentials;
  startClock(Date.now() + Number(root.dataset.expiresIn || 0) * 1000);
  setStatus("pending", t("pending"), "info");
  pollTimer = setTimeout(poll, POLL_MS);
})();
