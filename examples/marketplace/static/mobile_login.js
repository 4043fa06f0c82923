// The login with 行動自然人憑證: this page asks the marketplace (never MoCert) how the login stands; the
// marketplace's server asks MoCert at most every 4 s however often it is asked.
(function () {
  "use strict";
  var status = document.getElementById("mobile-status");
  var POLL_MS = 2000;

  function show(message) {
    var p = document.createElement("p");
    p.className = "error";
    p.id = "mobile-error";
    p.appendChild(document.createTextNode(message.zh + " "));
    var en = document.createElement("span");
    en.className = "en";
    en.textContent = message.en;
    p.appendChild(en);
    if (message.bind_url) {
      var link = document.createElement("a");
      link.id = "bind-link";
      link.href = message.bind_url;
      link.textContent = "前往 MoCert 綁定手機 Bind a phone at MoCert";
      p.appendChild(document.createElement("br"));
      p.appendChild(link);
    }
    status.replaceChildren(p);
  }

  function poll() {
    fetch(status.dataset.pollUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      body: new URLSearchParams({ csrf_token: status.dataset.csrf }),
    })
      .then(function (response) { return response.json(); })
      .then(function (answer) {
        status.dataset.status = answer.status;
        if (answer.status === "pending") {
          window.setTimeout(poll, POLL_MS);
        } else if (answer.status === "logged_in") {
          window.location.assign(answer.next);
        } else {
          show(answer.message);
        }
      })
      .catch(function () { window.setTimeout(poll, 2 * POLL_MS); }); // the marketplace away a moment
  }

  window.setTimeout(poll, POLL_MS);
})();
