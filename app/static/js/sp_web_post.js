// SP-API-WEB-01: a refused request goes back to the agency's registered callback at once; the button is for
// a browser that stopped the automatic submission.
(function () {
  "use strict";

  const form = document.getElementById("sp-web-post");
  if (form) form.submit();
})();
