/* Release pages: live countdowns, times in the reader's own zone, and a stock count that refreshes itself.
   No dependencies. Every feature is an enhancement: without this script the page still shows the server's
   times (in UTC), the count as it was when the page was made, and "On sale <date>" instead of a countdown. */
(function () {
  "use strict";

  // Must match status_labels in templates/_macros.html.
  var STATUS_LABELS = {
    upcoming: "Coming soon",
    on_sale: "On sale",
    paused: "Paused",
    sold_out: "Sold out",
    closed: "Closed"
  };

  var UNITS = [
    { name: "day", seconds: 86400 },
    { name: "hour", seconds: 3600 },
    { name: "minute", seconds: 60 },
    { name: "second", seconds: 1 }
  ];

  /* Parse the server's ISO timestamps; some engines reject more than three fractional digits. */
  function parseIso(value) {
    if (!value) {
      return NaN;
    }
    return Date.parse(value.replace(/(\.\d{3})\d+/, "$1"));
  }

  /* English page, so English words; but the reader's own English (en-GB, en-AU...) when they have one. */
  function pageLocale() {
    var reader = navigator.language || "";
    var page = document.documentElement.lang || "en";
    return reader.toLowerCase().indexOf(page.toLowerCase()) === 0 ? reader : page;
  }

  /* --- (b) Times in the reader's zone ---------------------------------------------------------------------- */

  function localiseTimes() {
    var options = {
      weekday: "short",
      day: "numeric",
      month: "long",
      year: "numeric",
      hour: "2-digit",
      minute: "2-digit",
      timeZoneName: "short"
    };
    var locale = pageLocale();
    var times = document.querySelectorAll("time.local-time[datetime]");
    Array.prototype.forEach.call(times, function (element) {
      var moment = parseIso(element.getAttribute("datetime"));
      if (isNaN(moment)) {
        return;
      }
      var text;
      try {
        text = new Date(moment).toLocaleString(locale, options);
      } catch (error) {
        text = new Date(moment).toLocaleString();
      }
      if (!element.title) {
        element.title = element.textContent.trim(); // the UTC time stays one hover away
      }
      element.textContent = text;
    });
  }

  /* --- (a) Countdowns -------------------------------------------------------------------------------------- */

  /* Reload at most once per page and moment, so a reader whose clock runs ahead of ours cannot loop. */
  function reloadOnce(key) {
    try {
      if (window.sessionStorage.getItem(key)) {
        return false;
      }
      window.sessionStorage.setItem(key, "1");
    } catch (error) {
      return false; // no storage (private mode): leave it to the stock check, which reloads on a real change
    }
    reloadPage();
    return true;
  }

  /* Fetch the page afresh. A page that answered a form (a refused reservation) names its own address, so
     "reload" asks for that page instead of sending the form a second time. */
  function reloadPage() {
    var named = document.querySelector("[data-page-url]");
    var url = named ? named.getAttribute("data-page-url") : "";
    if (url && url !== window.location.pathname) {
      window.location.assign(url);
    } else {
      window.location.reload();
    }
  }

  function makeElement(tag, className, text) {
    var element = document.createElement(tag);
    element.className = className;
    if (text !== undefined) {
      element.textContent = text;
    }
    return element;
  }

  function startCountdown(element) {
    var target = parseIso(element.getAttribute("data-countdown"));
    if (isNaN(target)) {
      return;
    }
    // Count against the server's clock, not the reader's, which may be minutes off.
    var serverNow = parseIso(element.getAttribute("data-server-now"));
    var offset = isNaN(serverNow) ? 0 : serverNow - Date.now();

    // Keep the "On sale <date>" text under the ticking clock.
    var when = makeElement("span", "countdown__when");
    while (element.firstChild) {
      when.appendChild(element.firstChild);
    }
    var clock = makeElement("span", "countdown__clock");
    clock.setAttribute("role", "timer"); // read on demand, not announced every second
    var parts = UNITS.map(function (unit) {
      var part = makeElement("span", "countdown__part");
      var value = makeElement("span", "countdown__value");
      var label = makeElement("span", "countdown__unit");
      part.appendChild(value);
      part.appendChild(document.createTextNode(" "));
      part.appendChild(label);
      clock.appendChild(part);
      return { unit: unit, part: part, value: value, label: label };
    });
    element.appendChild(clock);
    element.appendChild(when);

    // A countdown to an end (a hold's expiry) says so when it reaches zero; reloading would change nothing.
    var doneMessage = element.getAttribute("data-countdown-done");

    function finish() {
      if (doneMessage) {
        clock.textContent = doneMessage;
        clock.className = "countdown__clock countdown__clock--done";
        clock.setAttribute("role", "status");
        Array.prototype.forEach.call(document.querySelectorAll("[data-hide-after-countdown]"), function (part) {
          part.hidden = true;
        });
        return;
      }
      clock.textContent = "On sale now. Opening the shop\u2026";
      clock.className = "countdown__clock countdown__clock--done";
      var key = "release-countdown:" + window.location.pathname + ":" + target;
      if (!reloadOnce(key)) {
        document.dispatchEvent(new CustomEvent("release:check"));
      }
    }

    function tick() {
      var remaining = Math.ceil((target - (Date.now() + offset)) / 1000);
      if (remaining <= 0) {
        finish();
        return;
      }
      var rest = remaining;
      parts.forEach(function (entry) {
        var amount = Math.floor(rest / entry.unit.seconds);
        rest -= amount * entry.unit.seconds;
        entry.part.hidden = entry.unit.name === "day" && amount === 0;
        var value = String(amount);
        var label = entry.unit.name + (amount === 1 ? "" : "s");
        if (entry.value.textContent !== value) {
          entry.value.textContent = value;
        }
        if (entry.label.textContent !== label) {
          entry.label.textContent = label;
        }
      });
      // Wake just after the next whole second, so the seconds never skip or stutter.
      var untilNextSecond = (target - (Date.now() + offset)) % 1000;
      window.setTimeout(tick, (untilNextSecond > 0 ? untilNextSecond : 1000) + 20);
    }

    tick();
  }

  /* --- (c) Live stock -------------------------------------------------------------------------------------- */

  function setText(element, text) {
    if (element && element.textContent !== text) {
      element.textContent = text; // only on change, so the live region speaks only when something moved
    }
  }

  function watchStock(root) {
    var url = root.getAttribute("data-api");
    var seconds = parseFloat(root.getAttribute("data-refresh-seconds"));
    var badge = root.querySelector("[data-status]");
    var shownStatus = badge ? badge.getAttribute("data-status") : null;
    var timer = null;
    var busy = false;
    var stopped = false;
    if (!url || !window.fetch) {
      return;
    }

    function schedule() {
      window.clearTimeout(timer);
      if (!stopped && seconds > 0 && !document.hidden) {
        timer = window.setTimeout(check, seconds * 1000);
      }
    }

    function show(data) {
      if (typeof data.available === "number") {
        setText(root.querySelector("[data-available]"), String(data.available));
      }
      if (typeof data.total === "number") {
        setText(root.querySelector("[data-total]"), String(data.total));
      }
      if (typeof data.held === "number") {
        setText(root.querySelector("[data-held]"), String(data.held));
        var heldMessage = root.querySelector("[data-held-message]");
        if (heldMessage) {
          heldMessage.hidden = data.held <= 0;
        }
      }
      var status = data.status;
      if (!status || !STATUS_LABELS.hasOwnProperty(status)) {
        return;
      }
      if (badge && badge.getAttribute("data-status") !== status) {
        badge.setAttribute("data-status", status);
        badge.className = "badge badge--" + status;
        badge.textContent = STATUS_LABELS[status];
      }
      if (status === "closed") {
        stopped = true; // nothing changes after a release closes
      }
      // A new status changes the page itself (the reserve form appears or goes): fetch it afresh.
      if (shownStatus && status !== shownStatus) {
        stopped = true;
        reloadPage();
      }
    }

    function check() {
      if (busy || stopped) {
        return;
      }
      busy = true;
      window
        .fetch(url, { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          return response.ok ? response.json() : null;
        })
        .then(function (data) {
          if (data) {
            show(data);
          }
        })
        .catch(function () {
          // Offline or a blip during a busy drop: keep the numbers we have and try again next time.
        })
        .then(function () {
          busy = false;
          schedule();
        });
    }

    // No polling from a hidden tab; catch up as soon as the reader comes back.
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) {
        window.clearTimeout(timer);
      } else {
        check();
      }
    });
    // A countdown that reached zero but may not reload again asks for a check instead.
    document.addEventListener("release:check", check);

    schedule();
  }

  /* --- (d) One reservation per click ------------------------------------------------------------------------ */

  // A double click would send two reservations, and the first hold would keep its numbers from everyone
  // until it expires. Coming back to the page (the back button) makes the form usable again.
  function submitOnce(form) {
    var sent = false;
    form.addEventListener("submit", function (event) {
      if (sent) {
        event.preventDefault();
      }
      sent = true;
    });
    window.addEventListener("pageshow", function () {
      sent = false;
    });
  }

  function start() {
    localiseTimes();
    Array.prototype.forEach.call(document.querySelectorAll("form[data-submit-once]"), submitOnce);
    Array.prototype.forEach.call(document.querySelectorAll("[data-countdown]"), startCountdown);
    Array.prototype.forEach.call(document.querySelectorAll("[data-release-stock]"), watchStock);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
