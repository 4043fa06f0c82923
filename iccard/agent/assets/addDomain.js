// The trust page (/addDomain): as the real component's, it posts its answer, a JSON string with ret_code
// (0: trusted; 0x76000031: refused) and no func, to the page that opened it, which then reloads; and closes.
(function () {
  "use strict";

  const opener = window.opener;

  function answer(text, site) {
    if (!opener) return false;
    // The answer says only whether a site was added (not which); sent to that site when it is an origin, else
    // to whoever the opener is by now.
    const target = /^https?:\/\//.test(site || "") ? site : "*";
    opener.postMessage(text, target);
    window.close();
    return true;
  }

  const added = document.getElementById("added");
  if (added) {
    answer(added.dataset.answer, added.dataset.site);
    return;
  }
  const asking = document.getElementById("asking");
  const refuse = document.getElementById("trust-no");
  if (asking && refuse) {
    refuse.addEventListener("click", () => {
      if (!answer(asking.dataset.refused, document.getElementById("site").textContent)) window.close();
    });
    // Disabled in the HTML until now: a click before this script ran would answer nothing, and the page
    // that opened us would wait for an answer that never comes.
    refuse.disabled = false;
  }
})();
