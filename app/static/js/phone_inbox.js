// A phone's inbox (/m/inbox): opened with the phone's passkey (discoverable: the phone is not logged in;
// the server knows it by the credential it answers with), it lists the agencies' requests pushed to this
// phone, asking again every few seconds while the page is open, and at once when a notice arrives. A
// request is answered with the passkey over that request's own challenge. The inbox token lives in this
// page only: a reload opens the inbox again.
(function () {
  "use strict";

  const { requestOptions, credentialJSON } = window.MoCertWebAuthn;
  const { api, t, showStatus } = window.MoCert;
  const root = document.getElementById("inbox");
  if (!root) return;
  const byId = (id) => document.getElementById(id);
  const unsupported = byId("inbox-unsupported");
  const closed = byId("inbox-closed");
  const openButton = byId("inbox-open");
  const area = byId("inbox-area");
  const deviceLine = byId("inbox-device");
  const list = byId("inbox-list");
  const empty = byId("inbox-empty");
  const notify = byId("inbox-notify");
  const pushOff = byId("inbox-push-off");
  const pushStatus = byId("inbox-push-status");
  const detail = byId("inbox-detail");
  const approve = byId("detail-approve");
  const decline = byId("detail-decline");
  const back = byId("detail-back");
  const status = byId("inbox-status");

  const API = "/api/v1/m/inbox";
  const POLL_MS = Math.max(2, Number(root.dataset.pollSeconds) || 4) * 1000;
  // The inbox is closed (timed out, or the phone was suspended or unbound): open it again.
  const CLOSED = ["inbox_unknown", "inbox_expired", "device_suspended", "device_revoked", "device_expired",
    "account_locked"];
  let token = null;
  let timer = null;
  let listed = null; // the ids shown, so a poll that changes nothing leaves the list (and the focus) alone
  let polling = false;
  let shown = null; // the request in the detail view: {id, name, publicKey}

  const auth = () => ({ Authorization: "Bearer " + token });

  function timeOf(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return "";
    const pad = (n) => String(n).padStart(2, "0");
    return pad(date.getHours()) + ":" + pad(date.getMinutes());
  }

  function operation(request) {
    const key = "op" + request.op_code;
    return t(key) === key ? request.op_code : t(key);
  }

  function closeInbox(message) {
    token = null;
    stopPolling();
    listed = null;
    shown = null;
    area.hidden = true;
    detail.hidden = true;
    closed.hidden = false;
    openButton.disabled = false;
    showStatus(status, message || "", "error");
  }

  function webauthnError(err) {
    const kind = err && err.name;
    return kind === "NotAllowedError" ? t("cancelled") : t("webauthnFailed", { name: kind || "Error" });
  }

  // -- opening ---------------------------------------------------------------------------------------------

  async function openInbox() {
    openButton.disabled = true;
    showStatus(status, t("loading"), "info");
    const options = await api("POST", API + "/options", {});
    if (!options.ok) {
      openButton.disabled = false;
      showStatus(status, options.data.message, "error");
      return;
    }
    showStatus(status, t("waitingForPhone"), "info");
    let credential;
    try {
      credential = await navigator.credentials.get({ publicKey: requestOptions(options.data.publicKey) });
    } catch (err) {
      openButton.disabled = false;
      showStatus(status, webauthnError(err), "error");
      return;
    }
    showStatus(status, t("verifying"), "info");
    const opened = await api("POST", API + "/open", {
      opening: options.data.opening,
      credential: credentialJSON(credential),
    });
    openButton.disabled = false;
    if (!opened.ok) {
      showStatus(status, opened.data.message, "error");
      return;
    }
    token = opened.data.inbox_token;
    deviceLine.textContent = t("thisPhone", { name: opened.data.device.name });
    closed.hidden = true;
    area.hidden = false;
    showStatus(status, "");
    offerNotices(opened.data.push);
    await refresh();
    startPolling();
  }

  // -- the list, live while the page is open ---------------------------------------------------------------

  async function refresh() {
    if (!token || polling || !detail.hidden) return;
    polling = true;
    const result = await api("GET", API, undefined, auth());
    polling = false;
    if (!token || !detail.hidden) return;
    if (!result.ok) {
      if (CLOSED.includes(result.data.error)) closeInbox(result.data.message);
      return; // a network hiccup or a busy server: the next poll asks again
    }
    render(result.data.requests);
  }

  function render(requests) {
    const ids = requests.map((r) => r.id).join(" ");
    if (ids === listed) return;
    listed = ids;
    list.replaceChildren(...requests.map((request) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "inbox-item";
      button.dataset.id = request.id;
      const name = document.createElement("strong");
      name.className = "inbox-item-agency";
      name.textContent = request.sp_name;
      const op = document.createElement("span");
      op.className = "inbox-item-op";
      op.textContent = operation(request);
      button.append(name, op);
      if (request.hint) {
        const hint = document.createElement("span");
        hint.className = "inbox-item-hint";
        hint.textContent = request.hint;
        button.append(hint);
      }
      const until = document.createElement("span");
      until.className = "inbox-item-until hint";
      until.textContent = t("until", { time: timeOf(request.expires_at) });
      button.append(until);
      button.addEventListener("click", () => showRequest(request.id));
      item.append(button);
      return item;
    }));
    empty.hidden = requests.length > 0;
  }

  function startPolling() {
    stopPolling();
    timer = window.setInterval(() => {
      if (document.visibilityState === "visible") refresh();
    }, POLL_MS);
  }

  function stopPolling() {
    if (timer !== null) window.clearInterval(timer);
    timer = null;
  }

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh();
  });

  // -- one request: what is asked, approve or decline ------------------------------------------------------

  async function showRequest(id) {
    showStatus(status, t("loading"), "info");
    const result = await api("POST", API + "/requests/" + encodeURIComponent(id) + "/options", {}, auth());
    if (!result.ok) {
      answerFailed(result);
      return;
    }
    const request = result.data;
    shown = { id, name: request.sp_name, publicKey: request.publicKey };
    byId("detail-sp-name").textContent = request.sp_name;
    byId("detail-op").textContent = operation(request);
    byId("detail-hint").textContent = request.hint || "";
    const signData = byId("detail-sign-data");
    const signSet = byId("detail-sign-set");
    signData.textContent = request.op_code === "SIGN" ? request.sign_data : "";
    signData.hidden = request.op_code !== "SIGN";
    signSet.replaceChildren(...(request.sign_data_set || []).map((text) => {
      const item = document.createElement("li");
      item.textContent = text;
      return item;
    }));
    signSet.hidden = request.op_code !== "BATSIGN";
    byId("detail-sign").hidden = request.op_code === "ATH";
    byId("detail-expires").textContent = t("until", { time: timeOf(request.expires_at) });
    approve.disabled = decline.disabled = false;
    area.hidden = true;
    detail.hidden = false;
    showStatus(status, "");
    byId("detail-sp-name").setAttribute("tabindex", "-1");
    byId("detail-sp-name").focus();
  }

  function backToList(message, kind) {
    shown = null;
    detail.hidden = true;
    area.hidden = false;
    listed = null;
    showStatus(status, message || "", kind || "info");
    refresh();
  }

  function answerFailed(result) {
    approve.disabled = decline.disabled = false;
    if (CLOSED.includes(result.data.error)) {
      closeInbox(result.data.message);
    } else if (result.status === 0 || result.status === 429 || result.status >= 500) {
      showStatus(status, result.data.message, "error"); // nothing was answered: try again
    } else {
      backToList(result.data.message, "error"); // answered already, expired, or not this phone's
    }
  }

  approve.addEventListener("click", async () => {
    if (!shown) return;
    const request = shown;
    approve.disabled = decline.disabled = true;
    showStatus(status, t("waitingForPhone"), "info");
    let credential;
    try {
      credential = await navigator.credentials.get({ publicKey: requestOptions(request.publicKey) });
    } catch (err) {
      approve.disabled = decline.disabled = false;
      showStatus(status, webauthnError(err), "error");
      return;
    }
    showStatus(status, t("verifying"), "info");
    const result = await api("POST", API + "/requests/" + encodeURIComponent(request.id) + "/complete",
      { credential: credentialJSON(credential) }, auth());
    if (result.ok) backToList(t("approved", { agency: request.name }), "success");
    else answerFailed(result);
  });

  decline.addEventListener("click", async () => {
    if (!shown) return;
    const request = shown;
    approve.disabled = decline.disabled = true;
    const result = await api("POST", API + "/requests/" + encodeURIComponent(request.id) + "/decline", {}, auth());
    if (result.ok) backToList(t("declined", { agency: request.name }), "info");
    else answerFailed(result);
  });

  back.addEventListener("click", () => backToList(""));

  // -- notices (Web Push) ----------------------------------------------------------------------------------

  function keyBytes(text) {
    const b64 = String(text).replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(b64 + "===".slice((b64.length + 3) % 4));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  }

  function sameKey(buffer, bytes) {
    if (!buffer) return false;
    const given = new Uint8Array(buffer);
    return given.length === bytes.length && given.every((b, i) => b === bytes[i]);
  }

  const canNotify = "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;

  function offerNotices(push) {
    if (!push || !push.enabled || !push.application_server_key) {
      pushOff.hidden = false;
      return;
    }
    if (!canNotify) {
      showStatus(pushStatus, t("pushUnsupported"), "info");
      return;
    }
    notify.hidden = false;
    // Subscribed on an earlier visit: kept for this phone again (it may have been bound anew since).
    navigator.serviceWorker.getRegistration(root.dataset.scope).then(async (registration) => {
      const existing = registration && (await registration.pushManager.getSubscription());
      if (existing && sameKey(existing.options.applicationServerKey, keyBytes(push.application_server_key))) {
        await saveSubscription(existing);
      }
    }).catch(() => {});
  }

  async function saveSubscription(subscription) {
    const result = await api("POST", API + "/push-subscription", { subscription: subscription.toJSON() }, auth());
    notify.disabled = false;
    if (result.ok) {
      notify.hidden = true;
      showStatus(pushStatus, t("pushOn"), "success");
    } else if (CLOSED.includes(result.data.error)) {
      closeInbox(result.data.message);
    } else {
      showStatus(pushStatus, result.data.message, "error");
    }
  }

  notify.addEventListener("click", async () => {
    const key = keyBytes(root.dataset.pushKey);
    notify.disabled = true;
    showStatus(pushStatus, t("pushAsking"), "info");
    try {
      if ((await Notification.requestPermission()) !== "granted") {
        notify.disabled = false;
        showStatus(pushStatus, t("pushDenied"), "error");
        return;
      }
      await navigator.serviceWorker.register(root.dataset.worker, { scope: root.dataset.scope });
      const registration = await navigator.serviceWorker.ready;
      let subscription = await registration.pushManager.getSubscription();
      if (subscription && !sameKey(subscription.options.applicationServerKey, key)) {
        await subscription.unsubscribe(); // made under a key MoCert no longer signs with
        subscription = null;
      }
      subscription = subscription || (await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }));
      await saveSubscription(subscription);
    } catch (err) {
      notify.disabled = false;
      showStatus(pushStatus, t("pushFailed", { name: (err && err.name) || "Error" }), "error");
    }
  });

  // The service worker tells an open inbox that a notice came: ask for the list now, not at the next poll.
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.addEventListener("message", (event) => {
      if (event.data && event.data.kind === "sp_request") refresh();
    });
    if (navigator.serviceWorker.startMessages) navigator.serviceWorker.startMessages();
  }

  // -- start -----------------------------------------------------------------------------------------------

  openButton.addEventListener("click", openInbox);
  showStatus(status, t("checking"), "info");
  if (!window.PublicKeyCredential || !navigator.credentials || !navigator.credentials.get) {
    showStatus(status, "");
    unsupported.hidden = false;
  } else {
    showStatus(status, "");
    closed.hidden = false;
  }
})();
