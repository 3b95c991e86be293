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
      document.dispatchEvent(new CustomEvent("release:stock", { detail: data })); // the number grid listens
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

  /* --- (e) Picking a number ------------------------------------------------------------------------------- */

  // The release page's number grid (small runs) or number box (long runs): templates/shop/_number_picker.html.
  // Without this script both are plain form fields and the server answers a taken number on the page itself.

  var NUMBER_CHECK_TIMEOUT_MS = 2500; // a slow answer at a drop must not stop the form: the claim decides anyway

  /* Ask the API about one number; resolves to its JSON answer, or null when there is none in time. */
  function askNumber(root, number) {
    if (!window.fetch) {
      return Promise.resolve(null);
    }
    var url = root.getAttribute("data-api") + "/" + encodeURIComponent(number);
    var request = window
      .fetch(url, { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.status === 200 || response.status === 404 ? response.json() : null;
      })
      .catch(function () {
        return null;
      });
    var late = new Promise(function (resolve) {
      window.setTimeout(resolve, NUMBER_CHECK_TIMEOUT_MS, null);
    });
    return Promise.race([request, late]);
  }

  function chosenNumber(root) {
    var checked = root.querySelector("input[name=number]:checked");
    var field = checked || root.querySelector("input[name=number]:not([type=radio])");
    return field ? field.value.trim() : "";
  }

  /* Say in the live region what the API said of a number; `choose` is offered the free number instead. */
  function answerNumber(root, data, choose) {
    var answer = root.querySelector("[data-number-answer]");
    if (!answer) {
      return;
    }
    answer.textContent = "";
    if (data.status === "free") {
      answer.textContent = "No. " + data.number + " is free.";
    } else if (data.status === "taken" && data.next_free) {
      answer.appendChild(document.createTextNode("No. " + data.number + " is taken \u2014 No. " + data.next_free + " is free: "));
      var button = makeElement("button", "button button--quiet", "choose it");
      button.type = "button";
      button.addEventListener("click", function () {
        choose(data.next_free);
        answer.textContent = "No. " + data.next_free + " is chosen.";
      });
      answer.appendChild(button);
    } else if (data.status === "taken") {
      answer.textContent = "No. " + data.number + " is taken, and so is every other number right now.";
    } else {
      answer.textContent = data.message || "That number is not in this run.";
    }
  }

  function chooseInGrid(root, number) {
    var radio = root.querySelector("#number-" + number);
    if (radio && !radio.disabled) {
      radio.checked = true;
      radio.focus();
    }
  }

  /* Show a grid number as free or taken (disabled, and said so to screen readers); returns whether the buyer
     had it chosen and lost it. */
  function markNumber(root, number, free) {
    var radio = root.querySelector("#number-" + number);
    if (!radio || radio.disabled === !free) {
      return false;
    }
    var label = root.querySelector("label[for=number-" + number + "]");
    var mark = label && label.querySelector(".visually-hidden");
    var lost = radio.checked && !free;
    radio.disabled = !free;
    if (free && mark) {
      label.removeChild(mark);
    } else if (!free && label && !mark) {
      label.appendChild(makeElement("span", "visually-hidden", " (taken)"));
    }
    if (lost) {
      radio.checked = false;
      var any = root.querySelector("#number-any");
      if (any) {
        any.checked = true;
      }
    }
    return lost;
  }

  function markTaken(root, number) {
    markNumber(root, number, false);
  }

  /* Check the chosen number before the form goes; a taken one is answered here and the form stays. */
  function checkNumberBeforeSubmit(form, root, choose) {
    var checked = false;
    // Capture phase: this runs before the one-reservation-per-click guard, which must count only a real send.
    form.addEventListener(
      "submit",
      function (event) {
        var number = chosenNumber(root);
        if (checked || !/^[0-9]{1,9}$/.test(number)) {
          checked = false;
          return; // nothing picked, or a typo the server explains next to the field
        }
        event.preventDefault();
        event.stopImmediatePropagation();
        var submitter = event.submitter;
        askNumber(root, number).then(function (data) {
          if (data && data.status === "taken") {
            markTaken(root, data.number);
            answerNumber(root, data, choose);
            return;
          }
          checked = true;
          if (form.requestSubmit) {
            form.requestSubmit(submitter || undefined);
          } else {
            form.submit();
          }
        });
      },
      true
    );
  }

  function startNumberSearch(root) {
    var input = root.querySelector("input[name=number]");
    var button = root.querySelector("[data-number-check]");
    if (!input || !button || !window.fetch) {
      return;
    }
    function choose(number) {
      input.value = String(number);
      input.focus();
    }
    button.hidden = false; // a button that needs this script appears with it
    button.addEventListener("click", function () {
      var number = input.value.trim();
      if (!/^[0-9]{1,9}$/.test(number)) {
        answerNumber(root, { status: "not_in_run", message: "Type a number in digits, such as 17." }, choose);
        return;
      }
      askNumber(root, number).then(function (data) {
        answerNumber(root, data || { message: "We could not check just now; reserve and we will tell you." }, choose);
      });
    });
    checkNumberBeforeSubmit(input.form, root, choose);
  }

  /* A number chosen for the buyer (the page answering a taken one) may sit below the grid's fold: scroll the grid,
     not the page, so it shows. */
  function showChosenInGrid(root) {
    var grid = root.querySelector(".number-grid");
    var chosen = grid && grid.querySelector("input:checked");
    if (!chosen || !chosen.parentNode) {
      return;
    }
    var cell = chosen.parentNode.getBoundingClientRect();
    var box = grid.getBoundingClientRect();
    grid.scrollTop += cell.top - box.top - (grid.clientHeight - cell.height) / 2;
  }

  /* Keep a small run's grid as fresh as the stock count: refetch the free numbers when the count moves. */
  function startNumberGrid(root) {
    var form = root.closest("form");
    var count = root.querySelector("[data-number-free]");
    var shownFree = count ? parseInt(count.textContent, 10) : NaN;
    function choose(number) {
      chooseInGrid(root, number);
    }
    function refresh() {
      window
        .fetch(root.getAttribute("data-api"), { cache: "no-store", credentials: "same-origin" })
        .then(function (response) {
          return response.ok ? response.json() : null;
        })
        .then(function (data) {
          if (!data || !data.complete) {
            return;
          }
          var radios = root.querySelectorAll("input[name=number]:not([value=''])");
          Array.prototype.forEach.call(radios, function (radio) {
            var number = parseInt(radio.value, 10);
            var free = data.ranges.some(function (range) {
              return range[0] <= number && number <= range[1];
            });
            if (markNumber(root, number, free)) {
              setText(root.querySelector("[data-number-answer]"), "No. " + number + " was just taken: pick another, or any free number.");
            }
          });
          setText(count, String(data.free));
        })
        .catch(function () {
          // Keep the grid as it is; the claim answers a taken number anyway.
        });
    }
    if (form) {
      checkNumberBeforeSubmit(form, root, choose);
    }
    showChosenInGrid(root);
    if (!window.fetch) {
      return;
    }
    document.addEventListener("release:stock", function (event) {
      var free = event.detail && event.detail.available;
      if (typeof free === "number" && free !== shownFree) {
        shownFree = free;
        refresh();
      }
    });
  }

  function start() {
    localiseTimes();
    Array.prototype.forEach.call(document.querySelectorAll("[data-number-grid]"), startNumberGrid);
    Array.prototype.forEach.call(document.querySelectorAll("[data-number-search]"), startNumberSearch);
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
