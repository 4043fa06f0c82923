// The component's popup (/popupForm, /ChtPopupForm), as the HiPKI protocol has it: announce readiness to
// the opener with {"func":"getTbs"}, take ONE request posted back, answer with the response text, close.
// The asking site is the message event's origin, which the browser vouches for; that origin (not anything
// the page says) is what the trust list is checked against and what the component is told.
(function () {
  "use strict";

  const SITE_NOT_TRUSTED = 0x76000031;
  const CANCELLED = 0x76000999;
  const JSON_ERROR = 0x7600000b;
  const CKR_FUNCTION_CANCELED = 0x50;
  // Each request's answer name, and where the component takes it.
  const REPLY_FUNC = {
    MakeSignature: "sign", GetUserCert: "pkcs11info", CheckEnvir: "pkcs11info",
    DecryptData: "decrypt", changeUserPINCode: "changeUserPINCode",
  };
  const ENDPOINT = { DecryptData: "/decrypt", changeUserPINCode: "/CardManagement/sendCardCommand" };
  // Requests that use one card: with several cards and none named, the person picks.
  const ONE_CARD = ["MakeSignature", "DecryptData", "changeUserPINCode"];
  const opener = window.opener;
  const byId = (id) => document.getElementById(id);
  let handled = false;

  function show(section) {
    for (const id of ["waiting", "no-opener", "trust", "pick", "working"]) byId(id).hidden = id !== section;
  }

  function failure(func, retCode, lastError, message) {
    return JSON.stringify({ func: REPLY_FUNC[func] || String(func || ""), ret_code: retCode, last_error: lastError, message });
  }

  function choice(yesId, noId) {
    return new Promise((resolve) => {
      byId(yesId).addEventListener("click", () => resolve(true), { once: true });
      byId(noId).addEventListener("click", () => resolve(false), { once: true });
    });
  }

  function pickCard(slots) {
    const list = byId("cards");
    list.replaceChildren();
    return new Promise((resolve) => {
      for (const slot of slots) {
        const name = (slot.token.certs && slot.token.certs[0] && slot.token.certs[0].subjectCN) || slot.slotDescription;
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = `${name} (${slot.token.serialNumber})`;
        button.dataset.slot = slot.slotDescription;
        button.addEventListener("click", () => resolve(slot.slotDescription));
        const item = document.createElement("li");
        item.append(button);
        list.append(item);
      }
      byId("pick-cancel").addEventListener("click", () => resolve(null), { once: true });
      show("pick");
    });
  }

  async function getJSON(path) {
    const response = await fetch(path, { cache: "no-store" });
    return response.json();
  }

  function working(func) {
    for (const p of byId("working").querySelectorAll("p[id^=working-]")) {
      p.hidden = p.id !== "working-" + (func === "CheckEnvir" ? "GetUserCert" : func);
    }
    show("working");
  }

  async function handle(origin, request) {
    const func = request.func;
    // A sandboxed page's origin is "null": no one site, so it can never be trusted (trust.py refuses it too).
    if (origin === "null") return failure(func, SITE_NOT_TRUSTED, 0, "site not trusted");
    if ((await getJSON("/trust?origin=" + encodeURIComponent(origin))).trusted !== true) {
      show("trust");
      window.mocertArm.rearm(); // "Trust" is only now in view: the wait (armed.js) starts now
      if (!(await choice("trust-yes", "trust-no"))) {
        return failure(func, SITE_NOT_TRUSTED, 0, "site not trusted");
      }
      const added = await fetch("/addDomain", {
        method: "POST",
        headers: { Accept: "application/json" },
        body: new URLSearchParams({ domain: origin }),
      });
      if (!added.ok) return failure(func, SITE_NOT_TRUSTED, 0, "site not trusted");
    }
    if (ONE_CARD.includes(func) && !request.slotDescription && request.slotDescription !== 0) {
      const info = await getJSON("/pkcs11info?withcert=true");
      const cards = (info.slots || []).filter((slot) => slot.token);
      if (cards.length > 1) {
        const chosen = await pickCard(cards);
        if (chosen === null) return failure(func, CANCELLED, CKR_FUNCTION_CANCELED, "cancelled");
        request.slotDescription = chosen;
      }
    }
    working(func);
    const response = await fetch(ENDPOINT[func] || "/sign", {
      method: "POST",
      body: new URLSearchParams({ tbsPackage: JSON.stringify(request), origin }),
    });
    return response.text();
  }

  if (!opener) {
    show("no-opener");
    return;
  }

  window.addEventListener("message", async (event) => {
    if (event.source !== opener || handled) return; // one request per popup
    handled = true;
    const origin = event.origin;
    byId("site").textContent = origin;
    byId("site-en").textContent = origin;
    byId("asking").hidden = false;
    let answer;
    let func = "";
    try {
      const request = typeof event.data === "string" ? JSON.parse(event.data) : event.data;
      if (!request || typeof request !== "object") throw new Error("not a request");
      func = request.func;
      answer = await handle(origin, request);
    } catch (err) {
      answer = failure(func, JSON_ERROR, 0x07, "bad request");
    }
    try {
      // "null" is no target origin postMessage accepts (it throws): a sandboxed opener is answered with
      // "*", which is safe only because its answer is always "not trusted" (handle) or "bad request".
      opener.postMessage(answer, origin === "null" ? "*" : origin);
    } finally {
      window.close(); // whatever happened: a popup left open would wait for a click that answers no one
    }
  });

  opener.postMessage(JSON.stringify({ func: "getTbs" }), "*");
})();
