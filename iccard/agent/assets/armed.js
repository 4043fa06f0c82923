// The buttons that give a site something (button[data-armed]: trust it, allow it SHA-1) are enabled only once
// this window has been visible and focused for ARM_DELAY_MS without a break, and without the person pressing
// anything in quick succession. Each is one click, so without the wait a site could have it clicked for it: it
// asks the person to double-click, or to click fast and again and again (a game), opens our window under the
// pointer (left/top) so that the button lies there, and the next click lands on it. As Chromium guards its own
// permission prompts (InputEventActivationProtector), a press (pointerdown, keydown) while the buttons are
// disabled, or within REPEAT_MS of the press before it, is taken for part of such a run: it disables them
// (so its click does nothing) and restarts the wait. The buttons are disabled in the HTML (no script: no
// trusting), disabled again and the wait restarted whenever the window loses focus, is hidden, gains focus
// again, or (rearm) shows them anew.
(function () {
  "use strict";

  const ARM_DELAY_MS = 700;
  const REPEAT_MS = 500;
  let timer = null;
  let armed = false;
  let lastPress = -Infinity;

  function setDisabled(disabled) {
    armed = !disabled;
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

  function pressed() {
    // performance.now, not the event's timeStamp: one clock for this and setTimeout (and tests can drive it).
    const now = performance.now();
    const repeated = now - lastPress < REPEAT_MS;
    lastPress = now;
    if (!armed || repeated) rearm();
  }

  // Capturing on the window: seen before any button or page handler, whichever element the press is on.
  window.addEventListener("pointerdown", pressed, true);
  window.addEventListener("keydown", pressed, true);
  window.addEventListener("focus", rearm);
  window.addEventListener("blur", disarm);
  document.addEventListener("visibilitychange", rearm);
  // For a page that shows its buttons only later (the popup, once it knows the site is not trusted).
  window.mocertArm = { rearm, ARM_DELAY_MS, REPEAT_MS };
  rearm();
})();
