// The account page is filled from GET /api/v1/account, so it shows what the API says, not a copy.
(function () {
  "use strict";

  const { api, t, sentences, showStatus, formatDate } = window.MoCert;
  const root = document.getElementById("account");
  if (!root) return;
  const status = document.getElementById("account-status");
  const details = document.getElementById("account-details");
  const emailBadge = document.getElementById("email-badge");
  const verifySection = document.getElementById("email-verify");
  const verifyForm = document.getElementById("verify-form");
  const verifyStatus = document.getElementById("verify-status");
  const codeInput = document.getElementById("code");
  const resendButton = document.getElementById("resend-button");

  function setField(name, value) {
    root.querySelector('[data-field="' + name + '"]').textContent = value || "";
  }

  // Shown the way people in Taiwan write mobile numbers; other numbers stay in E.164.
  function formatPhone(e164) {
    const match = /^\+886(9\d\d)(\d{3})(\d{3})$/.exec(e164 || "");
    return match ? "0" + match[1] + "-" + match[2] + "-" + match[3] : e164;
  }

  function badge(text, kind) {
    const element = document.createElement("span");
    element.className = "badge";
    element.dataset.kind = kind;
    element.textContent = text;
    return element;
  }

  function renderEmail(verified) {
    emailBadge.textContent = verified ? t("verified") : t("unverified");
    emailBadge.dataset.kind = verified ? "ok" : "warn";
    verifySection.hidden = verified;
    document.getElementById("bind-email-hint").hidden = verified;
  }

  // "We sent" only when the mail server took the newest code; else it says so (the resend is beside it).
  function renderCodeSent(sent) {
    document.getElementById("email-code-sent").hidden = !sent;
    document.getElementById("email-code-not-sent").hidden = sent;
  }

  function renderCards(cards) {
    const body = document.getElementById("cards-body");
    // Column names double as labels when the table is stacked on narrow screens.
    const labels = Array.from(document.querySelectorAll("#cards-table th"), (th) => th.textContent);
    body.replaceChildren(...cards.map((card) => {
      const row = document.createElement("tr");
      const cells = [card.serial, card.issuer_name || card.issuer, formatDate(card.not_after)].map((text, index) => {
        const cell = document.createElement("td");
        cell.dataset.label = labels[index];
        cell.textContent = text;
        return cell;
      });
      cells[0].className = "serial";
      if (card.expired) cells[2].append(" ", badge(t("expired"), "danger"));
      row.append(...cells);
      return row;
    }));
    document.getElementById("cards-table").hidden = cards.length === 0;
    document.getElementById("no-cards").hidden = cards.length > 0;
  }

  // -- mobile devices ------------------------------------------------------------------------------

  const devicesStatus = document.getElementById("devices-status");
  const deviceTemplate = document.getElementById("device-template");
  const STATUS = {
    active: { key: "deviceActive", kind: "ok" },
    expired: { key: "deviceExpired", kind: "warn" },
    suspended: { key: "deviceSuspended", kind: "warn" },
    revoked: { key: "deviceRevoked", kind: "muted" },
  };

  // A moment as the service's display zone (Taiwan time by default) has it, named: "2026/03/02 14:05 (臺灣時間)".
  function formatTime(iso) {
    const date = new Date(iso);
    if (!iso || Number.isNaN(date.getTime())) return "";
    const parts = {};
    new Intl.DateTimeFormat("en-GB", {
      timeZone: root.dataset.timeZone || "Asia/Taipei", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    }).formatToParts(date).forEach((part) => { parts[part.type] = part.value; });
    const text = parts.year + "/" + parts.month + "/" + parts.day + " " + parts.hour + ":" + parts.minute;
    return t("timeIn", { time: text, zone: t("zone") });
  }

  // Why a phone cannot log in, who did it and when, and what to do: the API's notice in words.
  const NOTICES = {
    unbound: "noticeUnbound",
    revoked_by_service: "noticeRevokedByService",
    suspended: "noticeSuspended",
    expired: "noticeExpired",
    possibly_cloned: "noticePossiblyCloned",
  };

  function noticeText(notice) {
    const key = NOTICES[notice.kind];
    if (!key) return "";
    if (!notice.at && (notice.kind === "suspended" || notice.kind === "possibly_cloned")) return t(key + "Undated");
    return t(key, { time: formatTime(notice.at) });
  }

  function deviceItem(device) {
    const item = deviceTemplate.content.firstElementChild.cloneNode(true);
    const id = String(device.id);
    const notice = device.notice || null;
    let state = STATUS[device.status] || { key: device.status, kind: "muted" };
    if (notice && notice.kind === "revoked_by_service") state = { key: "deviceRevokedByService", kind: "danger" };
    if (notice && notice.kind === "possibly_cloned" && device.status === "active") {
      state = { key: "devicePossiblyCloned", kind: "danger" };
    }
    item.dataset.deviceId = id;
    item.dataset.status = device.status;
    if (notice) item.dataset.notice = notice.kind;
    item.querySelector(".device-name").textContent = device.name;
    const noticeLine = item.querySelector(".device-notice");
    noticeLine.textContent = notice ? noticeText(notice) : "";
    noticeLine.hidden = !noticeLine.textContent;
    const statusBadge = item.querySelector(".device-status");
    statusBadge.textContent = t(state.key);
    statusBadge.dataset.status = device.status;
    statusBadge.dataset.kind = state.kind;
    const fields = {
      platform: device.platform || t("unknownPlatform"),
      bound_at: formatDate(device.bound_at),
      expires_at: device.expires_at ? formatDate(device.expires_at) : "–",
      last_used_at: device.last_used_at ? formatDate(device.last_used_at) : t("never"),
    };
    Object.entries(fields).forEach(([name, text]) => {
      item.querySelector('[data-field="' + name + '"]').textContent = text;
    });

    // Labels need ids that are unique in the page, so each copy gets its own.
    item.querySelectorAll("label[data-for]").forEach((label) => {
      const control = label.parentElement.querySelector("input, select");
      control.id = "device-" + id + "-" + label.dataset.for;
      label.htmlFor = control.id;
    });

    const revoked = device.status === "revoked";
    item.querySelector(".device-actions").hidden = revoked;
    // Offered only when it would move the end date (not on a phone bound or renewed today).
    item.querySelector(".device-renew").hidden = !device.renews_until;
    const certificate = item.querySelector(".device-certificate");
    if (device.certificate_serial) {
      certificate.href = "/api/v1/devices/" + encodeURIComponent(id) + "/certificate";
    } else {
      certificate.hidden = true;
    }
    item.querySelector(".device-rename-form label").textContent = t("renameLabel", { name: device.name });
    item.querySelector(".unbind-question").textContent = t("unbindQuestion", { name: device.name });
    wireDevice(item, device);
    return item;
  }

  function renderDevices(devices) {
    const list = document.getElementById("devices-list");
    list.replaceChildren(...devices.map(deviceItem));
    list.hidden = devices.length === 0;
    document.getElementById("no-devices").hidden = devices.length > 0;
  }

  // After an action the list is drawn anew; focus goes back to the same device, or the section.
  async function reloadDevices(focusId) {
    const result = await api("GET", "/api/v1/devices");
    if (result.status === 401) {
      window.location.assign(root.dataset.loginUrl);
      return;
    }
    if (!result.ok) {
      showStatus(devicesStatus, result.data.message, "error");
      return;
    }
    renderDevices(result.data.devices || []);
    const item = focusId != null && document.querySelector('#devices-list [data-device-id="' + focusId + '"]');
    const target = item && item.querySelector(".device-actions:not([hidden]) button:not([hidden])");
    (target || document.getElementById("devices-heading")).focus();
  }

  function setItemBusy(item, busy) {
    item.querySelectorAll("button, input, select").forEach((control) => { control.disabled = busy; });
    item.setAttribute("aria-busy", busy ? "true" : "false");
  }

  function showForm(item, form) {
    item.querySelectorAll(".subform").forEach((other) => { other.hidden = other !== form; });
    item.querySelector(".device-actions").hidden = Boolean(form);
  }

  function wireDevice(item, device) {
    const renameForm = item.querySelector(".device-rename-form");
    const renewForm = item.querySelector(".device-renew-form");
    const unbindForm = item.querySelector(".device-unbind-form");
    const nameInput = renameForm.querySelector('input[name="name"]');
    const reasonSelect = unbindForm.querySelector('select[name="reason"]');
    const reasonOther = unbindForm.querySelector(".reason-other");
    const reasonText = unbindForm.querySelector('input[name="reason_text"]');
    const path = "/api/v1/devices/" + encodeURIComponent(String(device.id));

    function close(focusSelector) {
      showForm(item, null);
      item.querySelector(focusSelector).focus();
    }

    item.querySelector(".device-rename").addEventListener("click", () => {
      nameInput.value = device.name;
      nameInput.removeAttribute("aria-invalid");
      showForm(item, renameForm);
      nameInput.focus();
      nameInput.select();
    });

    item.querySelector(".device-unbind").addEventListener("click", () => {
      reasonSelect.value = reasonSelect.options[0].value;
      reasonOther.hidden = true;
      reasonText.value = "";
      showForm(item, unbindForm);
      reasonSelect.focus();
    });

    renameForm.querySelector(".device-cancel").addEventListener("click", () => close(".device-rename"));
    renewForm.querySelector(".device-cancel").addEventListener("click", () => close(".device-renew"));
    unbindForm.querySelector(".device-cancel").addEventListener("click", () => close(".device-unbind"));
    item.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      if (!renameForm.hidden) close(".device-rename");
      else if (!unbindForm.hidden) close(".device-unbind");
      else if (!renewForm.hidden) close(".device-renew");
    });

    reasonSelect.addEventListener("change", () => {
      reasonOther.hidden = reasonSelect.value !== "other";
      if (!reasonOther.hidden) reasonText.focus();
    });

    renameForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = nameInput.value.split(/\s+/).filter(Boolean).join(" ");
      if (!name) {
        nameInput.setAttribute("aria-invalid", "true");
        showStatus(devicesStatus, t("nameRequired"), "error");
        nameInput.focus();
        return;
      }
      setItemBusy(item, true);
      showStatus(devicesStatus, t("working"), "info");
      const result = await api("PATCH", path, { name });
      setItemBusy(item, false);
      if (!result.ok) {
        nameInput.setAttribute("aria-invalid", "true");
        showStatus(devicesStatus, result.data.message, "error");
        nameInput.focus();
        return;
      }
      showStatus(devicesStatus, t("renamed", { name: (result.data.device || {}).name || name }), "success");
      await reloadDevices(device.id);
    });

    unbindForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const typed = reasonText.value.trim();
      const reason = reasonSelect.value === "other" ? typed || "other" : reasonSelect.value;
      setItemBusy(item, true);
      showStatus(devicesStatus, t("working"), "info");
      const result = await api("DELETE", path, { reason });
      setItemBusy(item, false);
      if (!result.ok) {
        showStatus(devicesStatus, result.data.message, "error");
        // Already unbound elsewhere, say: the list shows how things stand now.
        if (result.status === 404 || result.status === 409) await reloadDevices(device.id);
        return;
      }
      showStatus(devicesStatus, t("unbound", { name: device.name }), "success");
      await reloadDevices(device.id);
    });

    // Renewing asks first, saying the end date it would give.
    item.querySelector(".device-renew").addEventListener("click", () => {
      renewForm.querySelector(".renew-question").textContent =
        t("renewQuestion", { name: device.name, date: formatDate(device.renews_until) });
      showForm(item, renewForm);
      renewForm.querySelector(".device-renew-confirm").focus();
    });

    renewForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      setItemBusy(item, true);
      showStatus(devicesStatus, t("renewing"), "info");
      const result = await api("POST", path + "/renew", {});
      setItemBusy(item, false);
      if (!result.ok) {
        showStatus(devicesStatus, result.data.message, "error");
        return;
      }
      const renewed = result.data.device || {};
      showStatus(devicesStatus, t("renewed", { name: device.name, date: formatDate(renewed.expires_at) }), "success");
      await reloadDevices(device.id);
    });
  }

  function render(account) {
    setField("name", account.name);
    setField("national_id_masked", account.national_id_masked);
    setField("email", account.email);
    setField("phone", formatPhone(account.phone));
    renderEmail(account.email_verified);
    renderCodeSent(!account.email_code || account.email_code.sent);
    renderCards(account.cards || []);
    renderDevices(account.devices || []);
  }

  // The API's message, plus the numbers it sends alongside for the person to act on.
  function explain(data) {
    const parts = [data.message];
    if (data.error === "wrong_code" && data.attempts_left != null) {
      parts.push(t("attemptsLeft", { n: data.attempts_left }));
    }
    if (data.retry_after != null) {
      parts.push(t("retryAfter", { n: Math.max(1, Math.ceil(data.retry_after / 60)) }));
    }
    if (data.error === "code_expired" || data.error === "no_pending_code") parts.push(t("requestNewCode"));
    return sentences(...parts);
  }

  function setBusy(busy) {
    verifyForm.querySelectorAll("button").forEach((button) => { button.disabled = busy; });
  }

  async function load() {
    const result = await api("GET", "/api/v1/account");
    if (result.status === 401) {
      window.location.assign(root.dataset.loginUrl);
      return;
    }
    if (!result.ok) {
      showStatus(status, result.data.message, "error");
      return;
    }
    render(result.data);
    showStatus(status, "");
    details.hidden = false;
  }

  verifyForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const code = codeInput.value.trim();
    if (!/^[0-9]{6}$/.test(code)) {
      codeInput.setAttribute("aria-invalid", "true");
      showStatus(verifyStatus, t("codeFormat"), "error");
      codeInput.focus();
      return;
    }
    codeInput.removeAttribute("aria-invalid");
    setBusy(true);
    showStatus(verifyStatus, t("checking"), "info");
    const result = await api("POST", "/api/v1/account/verify-email", { code });
    setBusy(false);
    if (result.ok) {
      codeInput.value = "";
      showStatus(verifyStatus, "");
      renderEmail(true);
      // The form is gone now, so the news goes to the status line that stays visible.
      showStatus(status, t("emailVerified"), "success");
      return;
    }
    showStatus(verifyStatus, explain(result.data), "error");
  });

  resendButton.addEventListener("click", async () => {
    setBusy(true);
    showStatus(verifyStatus, t("sending"), "info");
    const result = await api("POST", "/api/v1/account/email-code");
    setBusy(false);
    if (result.ok && result.data.email_sent) {
      renderCodeSent(true);
      showStatus(verifyStatus, t("codeSent"), "success");
      codeInput.focus();
    } else if (result.ok) {
      renderCodeSent(false);
      showStatus(verifyStatus, t("codeNotSent"), "error");
    } else {
      showStatus(verifyStatus, explain(result.data), "error");
    }
  });

  load();
})();
