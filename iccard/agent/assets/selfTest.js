// The component's self-test (/selfTest.htm): readers, cards and certificates, then a PIN check and a
// signature with the card. Our own page: it asks the component as a program on this computer would.
(function () {
  "use strict";

  const byId = (id) => document.getElementById(id);

  function date(seconds) {
    return new Date(seconds * 1000).toISOString().slice(0, 10);
  }

  function text(element, value) {
    element.textContent = value;
    return element;
  }

  async function listReaders() {
    const info = await (await fetch("/pkcs11info?withcert=true", { cache: "no-store" })).json();
    byId("version").textContent = info.serverVersion || "";
    const status = byId("readers-status");
    if (info.ret_code !== 0) {
      status.textContent = `✗ ${info.message} (0x${(info.ret_code >>> 0).toString(16)})`;
      return;
    }
    if (!info.slots.length) {
      status.textContent = "✗ 找不到讀卡機 No card reader found";
      return;
    }
    const body = byId("readers").querySelector("tbody");
    body.replaceChildren();
    for (const slot of info.slots) {
      const row = document.createElement("tr");
      row.append(text(document.createElement("td"), slot.slotDescription));
      if (!slot.token) {
        row.append(text(document.createElement("td"), "未插入IC卡 No card"), document.createElement("td"));
      } else {
        row.append(text(document.createElement("td"), slot.token.serialNumber));
        const certs = document.createElement("td");
        for (const cert of slot.token.certs || []) {
          const line = document.createElement("div");
          line.textContent = `${cert.label}: ${cert.subjectCN} (${cert.usage}) ${date(cert.notBeforeT)} – ${date(cert.notAfterT)}`;
          certs.append(line);
        }
        row.append(certs);
      }
      body.append(row);
    }
    byId("readers").hidden = false;
    status.textContent = `✓ ${info.slots.length} 個讀卡機 reader(s)`;
  }

  byId("sign-test").addEventListener("submit", async (event) => {
    event.preventDefault();
    const pin = byId("pin").value;
    byId("pin").value = "";
    const status = byId("sign-status");
    status.textContent = "簽章中… Signing…";
    const request = {
      func: "MakeSignature", signatureType: "PKCS7", tbs: "MoCert self-test " + new Date().toISOString(),
      tbsEncoding: "NONE", hashAlgorithm: "SHA256", pin: pin, withCardSN: "true",
    };
    const answer = await (await fetch("/sign", {
      method: "POST", body: new URLSearchParams({ tbsPackage: JSON.stringify(request) }),
    })).json();
    status.textContent = answer.ret_code === 0
      ? `✓ PIN碼正確，簽章成功（卡號 ${answer.cardSN}） PIN correct, signed (card ${answer.cardSN})`
      : `✗ ${answer.message} ${answer.message2 || ""} (0x${(answer.ret_code >>> 0).toString(16)})`;
  });

  listReaders().catch((err) => { byId("readers-status").textContent = "✗ " + err; });
})();
