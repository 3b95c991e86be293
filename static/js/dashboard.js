/* The producer's dashboard: sales charts and counts that redraw themselves while a release sells.
   No dependencies. Each chart block ([data-sales-chart], templates/producer/_sales_chart.html) names the fragment
   endpoint that redraws it; every data-refresh-seconds this script fetches the block afresh, swaps it in, and copies
   its counts into the release's row of the table ([data-release-row]). A block opening soon (data-opens-at) starts
   at its on-sale time; a block whose fresh copy says data-live="false" stops. Without this script the page reloads
   itself (a <noscript> refresh) and nothing else changes. */
(function () {
  "use strict";

  var COUNTS = ["available", "held", "sold", "withheld", "total"];
  // setTimeout cannot wait longer than this (about 24.8 days); a longer wait is made of several.
  var LONGEST_WAIT_MS = 2147483647;

  /* Parse the server's ISO timestamps; some engines reject more than three fractional digits. */
  function parseIso(value) {
    if (!value) {
      return NaN;
    }
    return Date.parse(value.replace(/(\.\d{3})\d+/, "$1"));
  }

  function setCount(cell, name, value) {
    if (!cell || value === null) {
      return;
    }
    if (cell.getAttribute("data-" + name) !== value) {
      cell.setAttribute("data-" + name, value);
      cell.textContent = value;
    }
  }

  /* Copy the fresh block's counts, revenue and status into the release's row of the table. */
  function updateRow(block) {
    var row = document.querySelector('[data-release-row="' + block.getAttribute("data-release-id") + '"]');
    if (!row) {
      return;
    }
    COUNTS.forEach(function (name) {
      setCount(row.querySelector("[data-" + name + "]"), name, block.getAttribute("data-" + name));
    });
    setCount(row.querySelector("[data-revenue]"), "revenue", block.getAttribute("data-revenue"));
    var badge = row.querySelector("[data-status]");
    var status = block.getAttribute("data-status");
    if (badge && status && badge.getAttribute("data-status") !== status) {
      badge.setAttribute("data-status", status);
      badge.className = "badge badge--" + status;
      badge.textContent = block.getAttribute("data-status-label") || status;
    }
  }

  function watch(block) {
    var url = block.getAttribute("data-chart-url");
    var seconds = parseFloat(block.getAttribute("data-refresh-seconds"));
    var timer = null;
    var busy = false;
    if (!url || !window.fetch || !(seconds > 0)) {
      return;
    }
    // Wait for an opening against the server's clock, not the reader's, which may be minutes off.
    var serverNow = parseIso(block.getAttribute("data-server-now"));
    var offset = isNaN(serverNow) ? 0 : serverNow - Date.now();

    function isLive() {
      return block.getAttribute("data-live") === "true";
    }

    function untilOpening() {
      var opensAt = parseIso(block.getAttribute("data-opens-at"));
      return isNaN(opensAt) ? NaN : opensAt - (Date.now() + offset);
    }

    function schedule() {
      window.clearTimeout(timer);
      if (document.hidden) {
        return; // no polling from a hidden tab; catch up when the reader comes back
      }
      if (isLive()) {
        timer = window.setTimeout(refresh, seconds * 1000);
        return;
      }
      var wait = untilOpening();
      if (!isNaN(wait)) {
        // A second late, so the server already counts the release as on sale; then at the usual pace.
        timer = window.setTimeout(refresh, wait > 0 ? Math.min(wait + 1000, LONGEST_WAIT_MS) : seconds * 1000);
      }
    }

    function swapIn(html) {
      var template = document.createElement("template");
      template.innerHTML = html;
      var fresh = template.content.querySelector("[data-sales-chart]");
      if (!fresh) {
        return;
      }
      // Keep the heading level the page chose for this block.
      var heading = block.querySelector(".sales-chart-slot__title");
      var freshHeading = fresh.querySelector(".sales-chart-slot__title");
      if (heading && freshHeading && heading.tagName !== freshHeading.tagName) {
        var replacement = document.createElement(heading.tagName);
        replacement.className = freshHeading.className;
        replacement.textContent = freshHeading.textContent;
        freshHeading.parentNode.replaceChild(replacement, freshHeading);
      }
      block.parentNode.replaceChild(fresh, block);
      block = fresh;
      updateRow(block);
    }

    function refresh() {
      if (busy) {
        return;
      }
      busy = true;
      window
        .fetch(url, { cache: "no-store", credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (response) {
          // Signed out meanwhile (a redirect to the sign-in page) or an error: keep what is shown.
          return response.ok && !response.redirected ? response.text() : null;
        })
        .then(function (html) {
          if (html) {
            swapIn(html);
          }
        })
        .catch(function () {
          // Offline or a blip during a busy drop: keep the chart we have and try again next time.
        })
        .then(function () {
          busy = false;
          schedule();
        });
    }

    document.addEventListener("visibilitychange", function () {
      if (document.hidden) {
        window.clearTimeout(timer);
      } else if (isLive()) {
        refresh();
      } else {
        schedule();
      }
    });

    schedule();
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-sales-chart]"), watch);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
