/* The orders pages (templates/producer/list_orders.html, show_order.html). No dependencies; both pages work without
   it. On the list, a "select all" box ([data-select-all], hidden until this script shows it) ticks every order on
   the page. On an order's page, the tracking page field ([data-tracking-url-field]) is shown only while the
   carrier select ([data-carrier-select]) says "Other", the one carrier whose tracking address is typed. */
(function () {
  "use strict";

  function setUpSelectAll(box) {
    var form = box.form;
    if (!form) {
      return;
    }
    var rows = Array.prototype.slice.call(form.querySelectorAll('input[type="checkbox"][name="order"]'));
    if (!rows.length) {
      return;
    }
    function reflect() {
      var ticked = rows.filter(function (row) { return row.checked; }).length;
      box.checked = ticked === rows.length;
      box.indeterminate = ticked > 0 && ticked < rows.length;
    }
    box.hidden = false;
    box.addEventListener("change", function () {
      rows.forEach(function (row) { row.checked = box.checked; });
    });
    rows.forEach(function (row) { row.addEventListener("change", reflect); });
    reflect();
  }

  function setUpCarrier(select) {
    var form = select.form;
    var urlField = form && form.querySelector("[data-tracking-url-field]");
    if (!urlField) {
      return;
    }
    function reflect() {
      // A field with a problem stays in view, whatever the carrier says, so its message is read.
      var invalid = urlField.querySelector('[aria-invalid="true"]');
      urlField.hidden = select.value !== "other" && !invalid;
    }
    select.addEventListener("change", reflect);
    reflect();
  }

  document.querySelectorAll("[data-select-all]").forEach(setUpSelectAll);
  document.querySelectorAll("[data-carrier-select]").forEach(setUpCarrier);
})();
