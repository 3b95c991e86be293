/* "Confirming your payment" (templates/checkout/show_pending.html): ask the same address again every few seconds,
   without reloading, and open it only once it has changed (202 while the payment is still being confirmed). A whole
   page that reloads on a timer would throw a screen reader back to the top each time; without this script the page
   still reloads itself (a <noscript> refresh). */
(function () {
  "use strict";

  var status = document.querySelector("[data-check-payment]");
  if (!status || !window.fetch) {
    return;
  }
  var seconds = parseFloat(status.getAttribute("data-check-payment")) || 3;
  var url = window.location.href;

  function check() {
    fetch(url, { headers: { Accept: "text/html" }, cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 202) {
          seconds = Math.min(seconds * 1.5, 30);
          window.setTimeout(check, seconds * 1000);
        } else {
          window.location.replace(url);
        }
      })
      .catch(function () {
        window.setTimeout(check, 10000);
      });
  }

  window.setTimeout(check, seconds * 1000);
})();
