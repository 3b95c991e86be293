/* The phone's reserve bar (templates/shop/show_release.html, [data-reserve-bar]): hidden while the form's own
   Reserve button is on the screen or the buyer is filling the form in, so it never covers the form it points to;
   its link scrolls to the form and puts the cursor in the form's first field; its count follows the page's live
   count (release.js updates [data-available]).
   Without this script the bar simply stays, and its link still leads to the form. */
(function () {
  "use strict";

  var bar = document.querySelector("[data-reserve-bar]");
  var section = document.getElementById("reserve");
  if (!bar || !section) {
    return;
  }

  var link = bar.querySelector("[data-reserve-bar-link]");
  if (link) {
    link.addEventListener("click", function (event) {
      var field = section.querySelector("input:not([type=hidden]), select, textarea, button");
      if (!field) {
        return;
      }
      event.preventDefault();
      section.scrollIntoView({ block: "start" });
      field.focus({ preventScroll: true });
      if (window.history && window.history.replaceState) {
        window.history.replaceState(null, "", "#reserve");
      }
    });
  }

  // Away while the form's own Reserve button is on the screen, or while the buyer is filling the form in.
  var submit = section.querySelector("button[type=submit]");
  var submitInView = false;
  var filling = false;
  function update() {
    var away = submitInView || filling;
    bar.hidden = away; // also out of the tab order and the accessibility tree
  }
  section.addEventListener("focusin", function () {
    filling = true;
    update();
  });
  section.addEventListener("focusout", function (event) {
    filling = section.contains(event.relatedTarget);
    update();
  });
  if (submit && "IntersectionObserver" in window) {
    new IntersectionObserver(function (entries) {
      submitInView = entries[entries.length - 1].isIntersecting;
      update();
    }).observe(submit);
  }

  var count = bar.querySelector("[data-reserve-bar-available]");
  var live = document.querySelector("[data-release-stock] [data-available]");
  if (count && live && "MutationObserver" in window) {
    new MutationObserver(function () {
      count.textContent = live.textContent;
    }).observe(live, { childList: true, characterData: true, subtree: true });
  }
})();
