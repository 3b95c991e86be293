/* The producer's catalogue forms: a slug that follows the name, provenance rows that can be added, moved and
   removed, and a story preview that follows the typing. No dependencies. Every feature is an enhancement: without
   this script the forms offer a few empty rows (emptying a row removes it) and a "Preview the story" button. */
(function () {
  "use strict";

  var PREVIEW_DELAY_MS = 400;

  /* --- Slugs ------------------------------------------------------------------------------------------------- */

  /* The same rule as storefront.domain.catalog.slugify, for showing what the server would make. */
  function slugify(text) {
    return text
      .normalize("NFKD")
      .replace(/[\u0300-\u036f]/g, "")
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 120)
      .replace(/-+$/, "");
  }

  /* A new product or batch: the slug follows the name until the producer types a slug of their own. An existing
     slug is never changed for them (it would break links already shared). */
  function setUpSlug(form) {
    var source = form.querySelector("[data-slug-source]");
    var target = form.querySelector("[data-slug-target]");
    if (!source || !target || target.value !== "") {
      return;
    }
    var following = true;
    target.addEventListener("input", function () {
      following = target.value === "";
    });
    source.addEventListener("input", function () {
      if (following) {
        target.value = slugify(source.value);
      }
    });
  }

  /* --- Provenance rows ------------------------------------------------------------------------------------------ */

  function button(text, hiddenText, className) {
    var element = document.createElement("button");
    element.type = "button";
    element.className = "button button--quiet " + className;
    element.textContent = text;
    if (hiddenText) {
      var hidden = document.createElement("span");
      hidden.className = "visually-hidden";
      hidden.setAttribute("data-row-number", "");
      element.appendChild(hidden);
    }
    return element;
  }

  function setUpFacts(editor) {
    var list = editor.querySelector("[data-fact-rows]");
    if (!list) {
      return;
    }
    var maxRows = parseInt(editor.getAttribute("data-max-rows"), 10) || 40;
    var status = document.createElement("p");
    status.className = "visually-hidden";
    status.setAttribute("role", "status");
    editor.appendChild(status);

    function rows() {
      return Array.prototype.slice.call(list.querySelectorAll("[data-fact-row]"));
    }

    /* Name the inputs facts-0-label, facts-1-label... in page order: the server reads the rows in that order. */
    function renumber() {
      var all = rows();
      all.forEach(function (row, index) {
        row.querySelectorAll("input").forEach(function (input) {
          var name = input.name.replace(/^facts-\d+-/, "facts-" + index + "-");
          input.name = name;
          input.id = name;
        });
        row.querySelectorAll("label").forEach(function (label) {
          var input = label.parentNode.querySelector("input");
          if (input) {
            label.htmlFor = input.id;
          }
        });
        row.querySelectorAll("[data-row-number]").forEach(function (span) {
          span.textContent = span.closest("label") ? " of fact " + (index + 1) : " fact " + (index + 1);
        });
        row.querySelector("[data-move='up']").disabled = index === 0;
        row.querySelector("[data-move='down']").disabled = index === all.length - 1;
      });
      addButton.disabled = all.length >= maxRows;
    }

    function addControls(row) {
      var controls = document.createElement("div");
      controls.className = "facts-editor__controls";
      var up = button("Move up", true, "facts-editor__up");
      up.setAttribute("data-move", "up");
      var down = button("Move down", true, "facts-editor__down");
      down.setAttribute("data-move", "down");
      var remove = button("Remove", true, "facts-editor__remove");
      remove.setAttribute("data-remove", "");
      controls.appendChild(up);
      controls.appendChild(down);
      controls.appendChild(remove);
      row.appendChild(controls);
    }

    function labelOf(row) {
      var input = row.querySelector("input");
      return input && input.value ? "“" + input.value + "”" : "Empty row";
    }

    function newRow() {
      var row = rows()[0].cloneNode(true);
      row.querySelectorAll("input").forEach(function (input) {
        input.value = "";
        input.removeAttribute("aria-invalid");
        input.removeAttribute("aria-describedby");
      });
      row.querySelectorAll(".field__error").forEach(function (error) {
        error.parentNode.removeChild(error);
      });
      row.querySelectorAll(".field--invalid").forEach(function (cell) {
        cell.classList.remove("field--invalid");
      });
      return row;
    }

    function isBlank(row) {
      return Array.prototype.every.call(row.querySelectorAll("input"), function (input) {
        return input.value.trim() === "";
      });
    }

    // The page offers a few empty rows for browsers without this script; here one is enough ("Add a fact" adds more).
    var initial = rows();
    while (initial.length > 1 && isBlank(initial[initial.length - 1]) && isBlank(initial[initial.length - 2])) {
      list.removeChild(initial.pop());
    }

    var addButton = button("Add a fact", false, "facts-editor__add");
    editor.appendChild(addButton);
    rows().forEach(addControls);

    addButton.addEventListener("click", function () {
      if (rows().length === 0 || rows().length >= maxRows) {
        return;
      }
      var row = newRow();
      list.appendChild(row);
      renumber();
      row.querySelector("input").focus();
      status.textContent = "Row " + rows().length + " added.";
    });

    list.addEventListener("click", function (event) {
      var target = event.target.closest("button");
      if (!target || !list.contains(target)) {
        return;
      }
      var row = target.closest("[data-fact-row]");
      var all = rows();
      var index = all.indexOf(row);
      if (target.hasAttribute("data-remove")) {
        if (all.length === 1) {
          row.querySelectorAll("input").forEach(function (input) {
            input.value = "";
          });
          status.textContent = "Row emptied.";
          row.querySelector("input").focus();
          return;
        }
        var next = all[index + 1] || all[index - 1];
        status.textContent = labelOf(row) + " removed.";
        list.removeChild(row);
        renumber();
        next.querySelector("input").focus();
        return;
      }
      var direction = target.getAttribute("data-move");
      if (direction === "up" && index > 0) {
        list.insertBefore(row, all[index - 1]);
      } else if (direction === "down" && index < all.length - 1) {
        list.insertBefore(row, all[index + 1].nextSibling);
      } else {
        return;
      }
      renumber();
      var place = rows().indexOf(row);
      status.textContent = labelOf(row) + " moved to place " + (place + 1) + " of " + rows().length + ".";
      // Keep focus on the button just pressed, unless it is now disabled (the row reached the top or bottom).
      var again = row.querySelector("[data-move='" + direction + "']");
      (again.disabled ? row.querySelector("[data-move='" + (direction === "up" ? "down" : "up") + "']") : again).focus();
    });

    renumber();
  }

  /* --- Story preview ---------------------------------------------------------------------------------------------- */

  function setUpPreview(editor) {
    var source = editor.querySelector("[data-story-source]");
    var output = editor.querySelector("[data-preview-output]");
    var status = editor.querySelector("[data-preview-status]");
    var url = editor.getAttribute("data-preview-url");
    var form = editor.closest("form");
    var token = form && form.querySelector("input[name='csrf_token']");
    if (!source || !output || !url || !token || !window.fetch) {
      return;
    }
    var noScriptButton = form.querySelector("[data-preview-button]");
    if (noScriptButton) {
      noScriptButton.hidden = true; // the preview now follows the typing
    }
    var timer = null;
    var latest = 0;

    function refresh() {
      var request = ++latest;
      var body = new FormData();
      body.append("csrf_token", token.value);
      body.append("story_markdown", source.value);
      fetch(url, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch" }
      })
        .then(function (response) {
          return response.text().then(function (text) {
            return { ok: response.ok, text: text };
          });
        })
        .then(function (answer) {
          if (request !== latest) {
            return; // a later keystroke's preview is on its way
          }
          if (answer.ok) {
            // Sanitised by the server with the public story page's own rules (storefront.text.render_markdown).
            output.innerHTML = answer.text;
            status.textContent = "";
          } else {
            status.textContent = answer.text.length < 300 ? answer.text : "The preview could not be shown.";
          }
        })
        .catch(function () {
          if (request === latest) {
            status.textContent = "The preview could not be refreshed (are you offline?). Your text is safe here.";
          }
        });
    }

    source.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, PREVIEW_DELAY_MS);
    });
  }

  function start() {
    document.querySelectorAll("[data-slug-form]").forEach(setUpSlug);
    document.querySelectorAll("[data-facts-editor]").forEach(setUpFacts);
    document.querySelectorAll("[data-story-editor]").forEach(setUpPreview);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
