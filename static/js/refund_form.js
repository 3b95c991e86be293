/* The producer's refund form (templates/producer/new_refund.html): shows the amount the ticked units refund, and
   offers "return to sale" only for a unit being refunded. No dependencies. The amounts for 0, 1, 2... units come
   written by the server (data-amounts), so the page never formats money itself. Without this script the form works
   the same; the server refuses a unit returned to sale without being refunded, and says the amount afterwards. */
(function () {
  "use strict";

  var form = document.querySelector("[data-refund-form]");
  if (!form) {
    return;
  }
  var amounts = [];
  try {
    amounts = JSON.parse(form.getAttribute("data-amounts") || "[]");
  } catch (error) {
    amounts = [];
  }
  var output = form.querySelector("[data-refund-amount]");

  function update() {
    var ticked = 0;
    Array.prototype.forEach.call(form.querySelectorAll("[data-refund-box]"), function (box) {
      var returnBox = form.querySelector('[data-return-box][value="' + box.value + '"]');
      if (box.checked) {
        ticked += 1;
      }
      if (returnBox) {
        returnBox.disabled = !box.checked;
        if (!box.checked) {
          returnBox.checked = false;
        }
      }
    });
    if (output && amounts.length && form.querySelector("[data-refund-box]")) {
      output.textContent = amounts[Math.min(ticked, amounts.length - 1)];
    }
  }

  form.addEventListener("change", update);
  update();
})();
