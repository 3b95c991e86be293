/* The hold banner's clock: "held until 10:42 IST" becomes "8:12 left", counted against the server's time.
   Without this script the banner keeps the deadline itself, which is all a buyer needs. */
(function () {
  "use strict";

  function parseIso(value) {
    return value ? Date.parse(value.replace(/(\.\d{3})\d+/, "$1")) : NaN;
  }

  function twoDigits(number) {
    return (number < 10 ? "0" : "") + number;
  }

  /* 8:12, or 1:02:09 for a hold of an hour or more (a waitlist offer). */
  function clockText(seconds) {
    var hours = Math.floor(seconds / 3600);
    var minutes = Math.floor((seconds % 3600) / 60);
    var rest = seconds % 60;
    return hours > 0 ? hours + ":" + twoDigits(minutes) + ":" + twoDigits(rest) : minutes + ":" + twoDigits(rest);
  }

  function startClock(element) {
    var deadline = parseIso(element.getAttribute("data-hold-deadline"));
    var serverNow = parseIso(element.getAttribute("data-server-now"));
    if (isNaN(deadline)) {
      return;
    }
    var offset = isNaN(serverNow) ? 0 : serverNow - Date.now();
    var hold = element.closest(".hold-banner__hold");
    var pay = hold ? hold.querySelector("[data-hold-continue]") : null;
    element.title = element.textContent.trim(); // the deadline stays one hover away

    function tick() {
      var remaining = Math.ceil((deadline - (Date.now() + offset)) / 1000);
      if (remaining <= 0) {
        element.textContent = "time is up";
        if (pay) {
          pay.hidden = true; // the payment page closes with the hold
        }
        return;
      }
      element.textContent = clockText(remaining) + " left";
      window.setTimeout(tick, ((deadline - (Date.now() + offset)) % 1000 || 1000) + 20);
    }

    tick();
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-hold-deadline]"), startClock);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
