// Registration after a card login of an unknown card, or linking a replacement card.
(function () {
  "use strict";

  const { api, t, showStatus } = window.MoCert;
  const form = document.getElementById("register-form");
  if (!form) return;
  const button = form.querySelector('button[type="submit"]');
  const status = document.getElementById("register-status");
  const relogin = document.getElementById("relogin");
  const FIELDS = ["national_id", "email", "phone"];
  // Which input an API error is about, so its message appears next to that input.
  const FIELD_OF_ERROR = {
    invalid_national_id: "national_id",
    national_id_mismatch: "national_id",
    already_registered: "national_id",
    invalid_email: "email",
    invalid_phone: "phone",
  };

  function setFieldError(name, message) {
    const input = form.elements[name];
    const slot = document.getElementById(name + "-error");
    slot.textContent = message || "";
    slot.hidden = !message;
    if (message) {
      input.setAttribute("aria-invalid", "true");
    } else {
      input.removeAttribute("aria-invalid");
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    FIELDS.forEach((name) => setFieldError(name, ""));
    relogin.hidden = true;

    // Blank email and phone are sent as "": a replacement card needs only the national ID.
    const body = {
      national_id: form.elements.national_id.value.trim().toUpperCase(),
      email: form.elements.email.value.trim(),
      phone: form.elements.phone.value.trim(),
    };
    if (!body.national_id) {
      setFieldError("national_id", t("nationalIdRequired"));
      showStatus(status, t("fixField"), "error");
      form.elements.national_id.focus();
      return;
    }

    button.disabled = true;
    showStatus(status, t("saving"), "info");
    const result = await api("POST", "/api/v1/account/register", body);
    if (result.ok) {
      window.location.assign(form.dataset.nextUrl || form.dataset.accountUrl);
      return;
    }
    button.disabled = false;

    const field = FIELD_OF_ERROR[result.data.error];
    if (field) {
      setFieldError(field, result.data.message);
      // Every wrong field at once: the answer lists the others.
      (result.data.also || []).forEach((other) => {
        if (FIELD_OF_ERROR[other.error]) setFieldError(FIELD_OF_ERROR[other.error], other.message);
      });
      showStatus(status, t("fixField"), "error");
      form.elements[field].focus();
      return;
    }
    showStatus(status, result.data.message, "error");
    // The pending card login expired, never happened or tried too many IDs: the way forward is the card again.
    relogin.hidden = !["card_login_required", "too_many_identity_checks"].includes(result.data.error);
  });
})();
