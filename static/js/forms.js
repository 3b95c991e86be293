/* Every page: after a refused form, move focus to its error summary ([data-error-summary], .form-problem), so a
   screen reader reads what went wrong and a keyboard user starts from there; a link in the summary moves focus to
   its field (a fragment link alone only scrolls), with the field's label in view. Loaded with `defer` from
   templates/base.html. */
(function () {
  "use strict";

  function isShown(element) {
    return !element.hidden && element.getClientRects().length > 0;
  }

  var summaries = Array.prototype.filter.call(
    document.querySelectorAll("[data-error-summary], .form-problem"),
    isShown
  );
  if (!summaries.length) {
    return;
  }

  summaries.forEach(function (summary) {
    summary.addEventListener("click", function (event) {
      var link = event.target.closest("a[href^='#']");
      var field = link && document.getElementById(link.getAttribute("href").slice(1));
      if (!field) {
        return;
      }
      event.preventDefault();
      var label = document.querySelector("label[for='" + field.id + "']");
      (label || field).scrollIntoView({ block: "start" });
      field.focus({ preventScroll: true });
    });
  });

  var summary = summaries[0];
  if (!summary.hasAttribute("tabindex")) {
    summary.setAttribute("tabindex", "-1");
  }
  summary.focus();
})();
