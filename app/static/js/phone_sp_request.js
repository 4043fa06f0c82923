// The phone's side of an agency's request (TW FidO): show who asks, their message and what is signed, all
// from the server's record (never from the ticket, which anyone can write), then sign the request's
// challenge with the phone's passkey, or decline. Everything the agency wrote goes in as textContent.
(function () {
  "use strict";

  const { requestOptions, credentialJSON } = window.MoCertWebAuthn;

  const { api, t, showStatus, formatDate } = window.MoCert;
  const root = document.getElementById("phone-sp");
  if (!root) return;
  const byId = (id) => document.getElementById(id);
  const unsupported = byId("phone-unsupported");
  const area = byId("sp-area");
  const approve = byId("sp-approve");
  const decline = byId("sp-decline");
  const status = byId("sp-status");
  const done = byId("sp-done");
  const doneMark = byId("sp-done-mark");
  const doneText = byId("sp-done-text");
  const returnRow = byId("sp-return-row");
  const returnLink = byId("sp-return");
  const scanRow = byId("sp-scan-row");

  const base = "/api/v1/m/sp-requests/";
  const spTicket = root.dataset.spTicket || "";
  // The codes after which this phone can do nothing more with the request (answered, expired, not its own).
  const REQUEST_OVER = [
    "SPTKTID_SPTKT_RDM", "SPTKT_OVD", "SPTKTID_SPTKT_NF", "SPTKT_PLD_FT_ERR", "SPTKT_DIG_FT_ERR",
    "DEVID_SPTKT_MISMATCH",
  ];
  let request = null; // the options answer
  let busy = false;
  let expiryTimer = null;

  function transient(result) {
    return result.status === 0 || result.status === 429 || result.status >= 500;
  }

  function endWith(text) {
    area.hidden = true;
    clearTimeout(expiryTimer);
    showStatus(status, text, "error");
    scanRow.hidden = false;
  }

  function formatTime(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    const pad = (n) => String(n).padStart(2, "0");
    return formatDate(iso) + " " + pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }

  function show(data) {
    byId("sp-name").textContent = data.sp_name;
    byId("sp-operation").textContent = t("op" + data.op_code);
    byId("sp-hint").textContent = data.hint || t("noHint");
    if (data.op_code === "SIGN") {
      byId("sp-sign-data").textContent = data.sign_data;
      byId("sp-sign-data-label").hidden = byId("sp-sign-data-value").hidden = false;
    }
    if (data.op_code === "BATSIGN") {
      const list = byId("sp-batch");
      (data.sign_data_set || []).forEach((item) => {
        const entry = document.createElement("li");
        const text = document.createElement("pre");
        text.className = "sp-sign-data";
        text.textContent = item;
        entry.append(text);
        list.append(entry);
      });
      byId("sp-batch-label").hidden = byId("sp-batch-value").hidden = false;
    }
    const expires = byId("sp-expires");
    expires.dateTime = data.expires_at;
    expires.textContent = formatTime(data.expires_at);
    // setTimeout's delay is a 32-bit count of milliseconds; a request lasts at most 10 minutes.
    const left = Math.min(new Date(data.expires_at).getTime() - Date.now(), 2 ** 31 - 1);
    expiryTimer = setTimeout(() => { if (!busy) endWith(t("expired")); }, Math.max(left, 0));
  }

  // After the answer: where an agency's mobile page sent the person here (MWEB2APP), a way back to it,
  // only where the server said the agency may be returned to, with the agency's rtn_val.
  function offerReturn() {
    if (!request || !request.return_url) return;
    let url;
    try {
      url = new URL(request.return_url);
    } catch (err) {
      return;
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") return;
    if (root.dataset.rtnVal) url.searchParams.append("rtn_val", root.dataset.rtnVal);
    returnLink.href = url.href;
    returnLink.textContent = t("backTo", { agency: request.sp_name });
    returnRow.hidden = false;
  }

  function finish(text, approved) {
    clearTimeout(expiryTimer);
    area.hidden = true;
    showStatus(status, "");
    doneMark.hidden = !approved;
    doneText.dataset.kind = approved ? "success" : "info";
    doneText.textContent = text;
    done.hidden = false;
    offerReturn();
    doneText.setAttribute("tabindex", "-1");
    doneText.focus();
  }

  function refused(result) {
    if (transient(result) || !REQUEST_OVER.includes(result.data.error)) {
      // Still open (a network failure, or a WebAuthn answer the server refused): the person may try again.
      showStatus(status, result.data.message, "error");
    } else {
      endWith(result.data.message);
    }
  }

  async function init() {
    showStatus(status, t("checking"), "info");
    if (!window.PublicKeyCredential || !navigator.credentials || !navigator.credentials.get) {
      showStatus(status, "");
      unsupported.hidden = false;
      return;
    }
    showStatus(status, t("loading"), "info");
    const body = { sp_ticket: spTicket };
    if (root.dataset.rtnUrl) body.rtn_url = root.dataset.rtnUrl;
    const result = await api("POST", base + "options", body);
    if (!result.ok) {
      endWith(result.data.message);
      if (transient(result)) scanRow.hidden = true; // reloading this page is the way on
      return;
    }
    request = result.data;
    show(request);
    showStatus(status, "");
    area.hidden = false;
  }

  function setBusy(value) {
    busy = value;
    approve.disabled = decline.disabled = value;
  }

  approve.addEventListener("click", async () => {
    if (busy || !request) return;
    setBusy(true);
    showStatus(status, t("waitingForPhone"), "info");
    let credential;
    try {
      credential = await navigator.credentials.get({ publicKey: requestOptions(request.publicKey) });
    } catch (err) {
      setBusy(false);
      const kind = err && err.name;
      // NotAllowedError: the person cancelled, or did not confirm in time; nothing was sent.
      showStatus(status, kind === "NotAllowedError" ? t("cancelled") : t("webauthnFailed", { name: kind || "Error" }), "error");
      return;
    }
    showStatus(status, t("verifying"), "info");
    const result = await api("POST", base + "complete", { sp_ticket: spTicket, credential: credentialJSON(credential) });
    setBusy(false);
    if (result.ok) finish(t("done"), true);
    else refused(result);
  });

  decline.addEventListener("click", async () => {
    if (busy || !request) return;
    setBusy(true);
    showStatus(status, t("declining"), "info");
    const result = await api("POST", base + "decline", { sp_ticket: spTicket });
    setBusy(false);
    if (result.ok) finish(t("declined"), false);
    else refused(result);
  });

  init();
})();
