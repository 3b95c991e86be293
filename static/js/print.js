/* The packing sheet's Print button: shown only when this script runs (without it, the browser's own Print menu
   does the same), it opens the print dialog; static/css/print.css lays the labels out for the paper. */
(function () {
  "use strict";

  document.querySelectorAll("[data-print-sheet]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      window.print();
    });
  });
})();
