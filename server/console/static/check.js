// The door-code check page (templates/check.html, server/console/badge_api.py): once the page is shown to a person,
// tell the server the code was seen, so that the officer's page says 企业已扫码核验. Opening the page (a GET) marks
// nothing: a messaging app's link preview fetches it too, without running this script. Posted once, only while the
// page is visible (a page prerendered in the background waits until it is shown), with a header a cross-site form
// cannot send.
(function () {
  "use strict";
  var card = document.getElementById("check-ok");
  if (!card || !card.dataset.seen) return;
  var sent = false;
  function send() {
    if (sent || document.visibilityState !== "visible") return;
    sent = true;
    fetch(card.dataset.seen, { method: "POST", headers: { "X-Check-Seen": "1" }, credentials: "omit", cache: "no-store" })
      .catch(function () { sent = false; });
  }
  document.addEventListener("visibilitychange", send);
  send();
})();
