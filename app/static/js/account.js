// The account page is filled from GET /api/v1/account, so it shows what the API says, not a copy.
(function () {
  "use strict";

  const { api, t, showStatus } = window.MoCert;
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
  const locale = document.documentElement.lang;

  function setField(name, value) {
    root.querySelector('[data-field="' + name + '"]').textContent = value || "";
  }

  function formatDate(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return iso;
    return date.toLocaleDateString(locale, { year: "numeric", month: "2-digit", day: "2-digit" });
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
  }

  function renderCards(cards) {
    const body = document.getElementById("cards-body");
    // Column names double as labels when the table is stacked on narrow screens.
    const labels = Array.from(document.querySelectorAll("#cards-table th"), (th) => th.textContent);
    body.replaceChildren(...cards.map((card) => {
      const row = document.createElement("tr");
      const cells = [card.serial, card.issuer, formatDate(card.not_after)].map((text, index) => {
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

  function renderDevices(devices) {
    const list = document.getElementById("devices-list");
    list.replaceChildren(...devices.map((device) => {
      const item = document.createElement("li");
      item.textContent = device.name || device.label || device.id || "";
      return item;
    }));
    list.hidden = devices.length === 0;
    document.getElementById("no-devices").hidden = devices.length > 0;
  }

  function render(account) {
    setField("name", account.name);
    setField("national_id_masked", account.national_id_masked);
    setField("email", account.email);
    setField("phone", formatPhone(account.phone));
    renderEmail(account.email_verified);
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
    return parts.join(" ");
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
    if (result.ok) {
      showStatus(verifyStatus, t("codeSent"), "success");
      codeInput.focus();
    } else {
      showStatus(verifyStatus, explain(result.data), "error");
    }
  });

  load();
})();
