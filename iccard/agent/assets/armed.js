// The buttons that trust a site (button[data-armed]) are enabled only once this window has been visible and
// focused for ARM_DELAY_MS without a break. Trusting is one click, so without the wait a site could have it
// clicked for it: it asks the person to double-click, opens our window on the first click, placed (left/top)
// so that "Trust" lies under the pointer, and the second click lands on it. The buttons are disabled in the
// HTML (no script: no trusting), disabled again and the wait restarted whenever the window loses focus, is
// hidden, gains focus again, or (rearm) shows them anew.
(function () {
  "use strict";

  const ARM_DELAY_MS = 700;
  let timer = null;

  function setDisabled(disabled) {
    for (const button of document.querySelectorAll("button[data-armed]")) button.disabled = disabled;
  }

  function disarm() {
    clearTimeout(timer);
    timer = null;
    setDisabled(true);
  }

  function rearm() {
    disarm();
    if (document.visibilityState !== "visible" || !document.hasFocus()) return; // armed on the next focus
    timer = setTimeout(() => setDisabled(false), ARM_DELAY_MS);
  }

  window.addEventListener("focus", rearm);
  window.addEventListener("blur", disarm);
  document.addEventListener("visibilitychange", rearm);
  // For a page that shows its buttons only later (the popup, once it knows the site is not trusted).
  window.mocertArm = { rearm, ARM_DELAY_MS };
  rearm();
})();
