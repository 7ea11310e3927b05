/* PersonaScope pages: behaviour only, as event listeners (the CSP allows no inline
   script). Data arrives as JSON in <script type="application/json"> blocks rendered by the
   server; text from data is only ever set with textContent, never as HTML. */
(function () {
  "use strict";

  // ------------------------------------------------------------------------------ plots
  var PLOT_CONFIG = {
    responsive: true,
    displaylogo: false,
    modeBarButtonsToRemove: [
      "select2d",
      "lasso2d",
      "autoScale2d",
      "zoomIn2d",
      "zoomOut2d",
      "toggleSpikelines",
      "hoverClosestCartesian",
      "hoverCompareCartesian",
    ],
  };
  // On a phone the toolbar would cover the data of a figure that is barely wider than it.
  var NARROW = "(max-width: 700px)";

  function plotConfig() {
    var narrow = window.matchMedia && window.matchMedia(NARROW).matches;
    return Object.assign({}, PLOT_CONFIG, { displayModeBar: narrow ? false : "hover" });
  }

  function readJSON(id) {
    var node = document.getElementById(id);
    if (!node) return null;
    try {
      return JSON.parse(node.textContent);
    } catch (err) {
      return null;
    }
  }

  function isLocalPath(url) {
    return typeof url === "string" && url.charAt(0) === "/" && url.charAt(1) !== "/";
  }

  // A figure's title is the top row and its legend the row under it (app/web/plots.py);
  // when a narrow screen wraps the legend onto more rows, make room rather than overlap.
  function separateTitleAndLegend(div) {
    var title = div.querySelector(".gtitle");
    var legend = div.querySelector(".legend .bg") || div.querySelector(".legend");
    if (!title || !legend || !div.layout) return;
    var t = title.getBoundingClientRect();
    var l = legend.getBoundingClientRect();
    var overlap = Math.ceil(t.bottom + 4 - l.top);
    if (overlap <= 0 || l.left >= t.right || t.left >= l.right) return;
    var margin = (div.layout.margin && div.layout.margin.t) || 0;
    window.Plotly.relayout(div, {
      "margin.t": margin + overlap,
      height: (div.layout.height || div.clientHeight) + overlap,
    });
  }

  function drawPlot(div) {
    if (div.getAttribute("data-drawn") === "1" || typeof window.Plotly === "undefined") return;
    var spec = readJSON(div.getAttribute("data-plot"));
    if (!spec) return;
    div.setAttribute("data-drawn", "1");
    window.Plotly.newPlot(div, spec.data, spec.layout, plotConfig()).then(function () {
      separateTitleAndLegend(div);
      div.on("plotly_afterplot", function () {
        separateTitleAndLegend(div);
      });
      if (spec.click === "link") {
        div.classList.add("clickable");
        div.on("plotly_click", function (event) {
          var point = event && event.points && event.points[0];
          if (point && isLocalPath(point.customdata)) window.location.assign(point.customdata);
        });
      }
    });
  }

  // plotly.js is 4.8 MB: it is fetched only when a page first has a plot to draw, after
  // the page is shown (its URL is in <meta name="plotly-src">), and once.
  var plotlyLoading = null;
  function withPlotly(then) {
    if (typeof window.Plotly !== "undefined") {
      then();
      return;
    }
    if (!plotlyLoading) {
      var meta = document.querySelector('meta[name="plotly-src"]');
      if (!meta) return;
      plotlyLoading = new Promise(function (resolve, reject) {
        var script = document.createElement("script");
        script.src = meta.getAttribute("content");
        script.onload = resolve;
        script.onerror = reject;
        document.head.appendChild(script);
      });
    }
    plotlyLoading.then(then, function () {
      flash("The plotting library could not be loaded; reload the page to try again.");
    });
  }

  function drawPlots(root) {
    var scope = root && root.querySelectorAll ? root : document;
    var divs = Array.prototype.slice.call(scope.querySelectorAll("[data-plot]"));
    if (scope.matches && scope.matches("[data-plot]")) divs.unshift(scope);
    if (!divs.length) return;
    withPlotly(function () {
      divs.forEach(drawPlot);
    });
  }

  // A plot drawn inside a closed <details> has no width: resize it when it opens.
  document.addEventListener(
    "toggle",
    function (event) {
      var el = event.target;
      if (!el.open || !el.querySelector || !el.querySelector("[data-plot]")) return;
      withPlotly(function () {
        el.querySelectorAll("[data-plot]").forEach(function (div) {
          if (div.getAttribute("data-drawn") === "1") window.Plotly.Plots.resize(div);
          else drawPlot(div);
        });
      });
    },
    true
  );

  // ----------------------------------------------------------- token details (inspector)
  function showDetail(tok) {
    var id = tok.getAttribute("data-detail");
    var detail = id && document.getElementById(id);
    if (!detail) return;
    var host = detail.parentElement;
    host.querySelectorAll(".tok-detail").forEach(function (d) {
      if (d !== detail) d.hidden = true;
    });
    detail.hidden = !detail.hidden;
    var row = tok.closest(".token-row");
    if (row) {
      row.querySelectorAll(".tok.selected").forEach(function (t) {
        if (t !== tok) {
          t.classList.remove("selected");
          t.setAttribute("aria-expanded", "false");
        }
      });
    }
    tok.classList.toggle("selected", !detail.hidden);
    tok.setAttribute("aria-expanded", detail.hidden ? "false" : "true");
  }

  document.addEventListener("click", function (event) {
    var tok = event.target.closest && event.target.closest(".tok[data-detail]");
    if (tok) showDetail(tok);
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" && event.key !== " ") return;
    var tok = event.target.closest && event.target.closest(".tok[data-detail]");
    if (tok) {
      event.preventDefault();
      showDetail(tok);
    }
  });

  // ------------------------------------------------- token values: tip, keyboard, context
  // A group of tokens (.tokens) is one tab stop: the arrow keys, Home and End move the
  // focus between its tokens (roving tabindex). The focused or hovered token's data-tip
  // (its text and value) shows in one tip next to it, which is also its description for
  // screen readers; Escape hides it.
  var tip = null;
  var tipOwner = null;

  function tipElement() {
    if (!tip) {
      tip = document.createElement("div");
      tip.id = "tok-tip";
      tip.className = "tok-tip";
      tip.setAttribute("role", "tooltip");
      tip.hidden = true;
      document.body.appendChild(tip);
    }
    return tip;
  }

  function showTip(tok) {
    var text = tok.getAttribute("data-tip");
    if (!text) return;
    var box = tipElement();
    box.textContent = text;
    box.hidden = false;
    if (tipOwner && tipOwner !== tok) tipOwner.removeAttribute("aria-describedby");
    tipOwner = tok;
    tok.setAttribute("aria-describedby", "tok-tip");
    // Below the token, kept inside the viewport (CSSOM positions: no inline style markup).
    var rect = tok.getBoundingClientRect();
    var width = box.offsetWidth;
    var left = Math.min(Math.max(4, rect.left), Math.max(4, window.innerWidth - width - 4));
    var top = rect.bottom + 4;
    if (top + box.offsetHeight > window.innerHeight - 4) top = rect.top - box.offsetHeight - 4;
    box.style.left = left + window.scrollX + "px";
    box.style.top = top + window.scrollY + "px";
  }

  function hideTip(tok) {
    if (!tip || (tok && tok !== tipOwner)) return;
    tip.hidden = true;
    if (tipOwner) tipOwner.removeAttribute("aria-describedby");
    tipOwner = null;
  }

  function tokenOf(node) {
    return node && node.closest ? node.closest(".tok[data-tip]") : null;
  }

  document.addEventListener("focusin", function (event) {
    var tok = tokenOf(event.target);
    if (!tok) return;
    showTip(tok);
    // The group's tab stop follows the focus (a click focuses a token too).
    var group = tok.closest(".tokens");
    if (group && tok.getAttribute("tabindex") !== "0") {
      group.querySelectorAll(".tok[tabindex='0']").forEach(function (t) {
        t.setAttribute("tabindex", "-1");
      });
      tok.setAttribute("tabindex", "0");
    }
  });
  document.addEventListener("focusout", function (event) {
    var tok = tokenOf(event.target);
    if (tok) hideTip(tok);
  });
  document.addEventListener("mouseover", function (event) {
    var tok = tokenOf(event.target);
    if (tok) showTip(tok);
  });
  document.addEventListener("mouseout", function (event) {
    var tok = tokenOf(event.target);
    if (!tok || tok === document.activeElement) return;
    var focused = tokenOf(document.activeElement);
    if (focused) showTip(focused); // back to the token that has the focus
    else hideTip(tok);
  });

  function visibleTokens(group) {
    var trimmed = group.classList.contains("trimmed");
    return Array.prototype.filter.call(group.querySelectorAll(".tok[data-tip]"), function (t) {
      return t.closest(".tokens") === group && !(trimmed && t.classList.contains("far"));
    });
  }

  function moveFocus(from, to) {
    from.setAttribute("tabindex", "-1");
    to.setAttribute("tabindex", "0");
    to.focus();
  }

  document.addEventListener("keydown", function (event) {
    var tok = tokenOf(event.target);
    if (!tok) return;
    if (event.key === "Escape") {
      hideTip(tok);
      return;
    }
    var group = tok.closest(".tokens");
    if (!group) return;
    var tokens = visibleTokens(group);
    var i = tokens.indexOf(tok);
    var next = null;
    if (event.key === "ArrowRight" || event.key === "ArrowDown") next = tokens[i + 1];
    else if (event.key === "ArrowLeft" || event.key === "ArrowUp") next = tokens[i - 1];
    else if (event.key === "Home") next = tokens[0];
    else if (event.key === "End") next = tokens[tokens.length - 1];
    else return;
    event.preventDefault();
    if (next) moveFocus(tok, next);
  });

  // "show full context": a trimmed snippet shows every token, and back.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button.context-toggle");
    if (!button) return;
    var group = button.previousElementSibling;
    if (!group || !group.classList.contains("tokens")) return;
    var full = group.classList.toggle("trimmed") === false;
    button.setAttribute("aria-expanded", full ? "true" : "false");
    button.textContent = full ? "show less" : "show full context";
    // The tab stop must stay on a token that shows.
    var focusable = group.querySelector(".tok[tabindex='0']");
    if (!full && focusable && focusable.classList.contains("far")) {
      var peak = group.querySelector(".tok.mark") || visibleTokens(group)[0];
      if (peak) {
        focusable.setAttribute("tabindex", "-1");
        peak.setAttribute("tabindex", "0");
      }
    }
  });

  // ------------------------------------------------------------------------- copy link
  function setStatus(button, text) {
    var status = button.parentElement && button.parentElement.querySelector(".copy-status");
    if (status) status.textContent = text;
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy]");
    if (!button) return;
    var text = button.getAttribute("data-copy");
    var input = button.parentElement && button.parentElement.querySelector(".share-url");
    function fallback() {
      if (input) {
        input.focus();
        input.select();
      }
      var ok = false;
      try {
        ok = document.execCommand("copy");
      } catch (err) {
        ok = false;
      }
      setStatus(button, ok ? "Copied" : "Press Ctrl+C to copy");
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () {
        setStatus(button, "Copied");
      }, fallback);
    } else {
      fallback();
    }
  });

  // --------------------------------------------------------------------- steering form
  function initAlphaSlider(root) {
    var slider = root.querySelector("#f-alpha-slider");
    if (!slider || slider.getAttribute("data-ready") === "1") return;
    slider.setAttribute("data-ready", "1");
    var readout = root.querySelector("#alpha-readout");
    var field = root.querySelector("#f-alphas");
    slider.addEventListener("input", function () {
      if (readout) readout.textContent = slider.value;
    });
    var set = root.querySelector("#alpha-set");
    var add = root.querySelector("#alpha-add");
    if (set && field) {
      set.addEventListener("click", function () {
        field.value = slider.value;
      });
    }
    if (add && field) {
      add.addEventListener("click", function () {
        var current = field.value.trim();
        field.value = current ? current + ", " + slider.value : slider.value;
      });
    }
  }

  // Models an SAE is not attached to cannot be picked with it.
  function syncModels(select) {
    var form = select.form;
    if (!form) return;
    var option = select.options[select.selectedIndex];
    var allowed = ((option && option.getAttribute("data-models")) || "").split(" ");
    var boxes = form.querySelectorAll("label.check[data-model] input[name=model]");
    var anyChecked = false;
    boxes.forEach(function (box) {
      var ok = allowed.indexOf(box.value) >= 0;
      box.disabled = !ok;
      if (!ok) box.checked = false;
      box.parentElement.classList.toggle("unavailable", !ok);
      box.parentElement.title = ok ? "" : "not attached to this SAE";
      anyChecked = anyChecked || box.checked;
    });
    if (!anyChecked) {
      for (var i = 0; i < boxes.length; i++) {
        if (!boxes[i].disabled) {
          boxes[i].checked = true;
          break;
        }
      }
    }
  }

  function initForms(root) {
    initAlphaSlider(root);
    initSteerForm(root);
    root.querySelectorAll("select.sae-select").forEach(function (select) {
      if (select.getAttribute("data-ready") === "1") return;
      select.setAttribute("data-ready", "1");
      syncModels(select);
      select.addEventListener("change", function () {
        syncModels(select);
      });
    });
  }

  // ------------------------------------------- steering: several edits, a conversation
  // The edit table's rows have no names: they are written into the form's one
  // `interventions` field as JSON (the request the API takes), whenever a row changes and
  // when the form is sent. A conversation keeps its turns in `messages` (JSON); sending a
  // message appends the answer the conversation continues from (the picked column's, the
  // baseline's by default) and the new message.
  function steerForm(node) {
    return node && node.closest ? node.closest("#steer-form") : null;
  }

  function typedNumber(text) {
    var t = String(text).trim();
    var n = Number(t);
    return t !== "" && isFinite(n) ? n : t; // what is not a number is left for the server to name
  }

  function writeEdits(form) {
    var hidden = form.querySelector("#f-interventions");
    var box = form.querySelector("#edits");
    if (!hidden || !box || !box.classList.contains("several")) return;
    var rows = form.querySelectorAll("#edit-rows tr.edit-row");
    if (!rows.length && box.getAttribute("data-touched") !== "1") return; // keep text as sent
    var out = [];
    rows.forEach(function (row) {
      var alpha = typedNumber(row.querySelector(".e-alpha").value);
      var method = row.querySelector(".e-method").value;
      if (row.getAttribute("data-kind") === "direction") {
        out.push({ direction: row.querySelector(".e-direction").value, alpha: alpha, method: method });
      } else {
        var latent = typedNumber(row.querySelector(".e-latent").value);
        out.push({ sae: row.querySelector(".e-sae").value, latent: latent, alpha: alpha, method: method });
      }
    });
    hidden.value = JSON.stringify(out);
  }

  function setSeveral(form, on) {
    var box = form.querySelector("#edits");
    if (!box) return;
    box.classList.toggle("several", on);
    form.querySelectorAll(".single-only").forEach(function (el) {
      el.hidden = on;
    });
    form.querySelectorAll(".several-only").forEach(function (el) {
      el.hidden = !on;
    });
    // One latent's fields and the edits are two shapes of the request: one is sent.
    ["#f-sae", "#f-latent", "#f-method"].forEach(function (sel) {
      var el = form.querySelector(sel);
      if (el) el.disabled = on;
    });
    form.querySelector("#f-interventions").disabled = !on;
  }

  function addEdit(form, kind, values) {
    var template = form.querySelector(kind === "direction" ? "#tpl-direction-edit" : "#tpl-latent-edit");
    var body = form.querySelector("#edit-rows");
    if (!template || !body) return null;
    var row = template.content.querySelector("tr").cloneNode(true);
    Object.keys(values || {}).forEach(function (key) {
      var input = row.querySelector(".e-" + key);
      if (input) input.value = values[key];
    });
    body.appendChild(row);
    form.querySelector("#edits").setAttribute("data-touched", "1");
    return row;
  }

  function setChat(form, on) {
    form.querySelectorAll(".prompt-box").forEach(function (el) {
      el.hidden = on;
    });
    var box = form.querySelector("#chat-box");
    if (box) box.hidden = !on;
    form.querySelectorAll("#f-prompt, input[name=chat]").forEach(function (el) {
      el.disabled = on;
    });
    var messages = form.querySelector("#f-messages");
    if (messages) messages.disabled = !on || !messages.value.trim();
  }

  // The next request's `messages`: the turns so far, the answer the conversation continues
  // from (after a user turn), then the new message. Returns a problem, or null.
  function composeMessages(form) {
    var hidden = form.querySelector("#f-messages");
    var reply = form.querySelector("#f-reply");
    var turns = [];
    if (hidden.value.trim()) {
      try {
        turns = JSON.parse(hidden.value);
      } catch (err) {
        return "This conversation could not be read; start a new conversation.";
      }
    }
    if (!Array.isArray(turns)) turns = [];
    var last = turns[turns.length - 1];
    if (!reply.value.trim()) {
      if (!last || last.role !== "user") return "Type a message first.";
      hidden.disabled = false; // nothing typed: your last message is answered again
      return null;
    }
    if (last && last.role === "user") {
      var picked = document.querySelector("#steer-results input[name=continue-from]:checked");
      var cell = picked && picked.closest(".gen-cell");
      if (!cell) return "Wait for the answers: the conversation continues from one of them.";
      turns.push({ role: "assistant", content: cell.getAttribute("data-text") || "" });
    }
    turns.push({ role: "user", content: reply.value });
    hidden.value = JSON.stringify(turns);
    hidden.disabled = false;
    return null;
  }

  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      if (!form || form.id !== "steer-form") return;
      writeEdits(form);
      var chat = form.querySelector("#mode-chat");
      if (!chat || !chat.checked) return;
      var problem = composeMessages(form);
      var note = form.querySelector("#chat-problem");
      if (note) {
        note.textContent = problem || "";
        note.hidden = !problem;
      }
      if (problem) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true // before htmx sends the form
  );

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button");
    var form = steerForm(button);
    if (!button || !form) return;
    if (button.id === "edits-start") {
      var latent = form.querySelector("#f-latent");
      var method = form.querySelector("#f-method");
      setSeveral(form, true);
      addEdit(form, "latent", {
        sae: form.querySelector("#f-sae").value,
        latent: latent ? latent.value : "",
        alpha: "1",
        method: method ? method.value : "add",
      });
    } else if (button.id === "edits-stop") {
      // One latent again: the first latent edit's, when there is one.
      var row = form.querySelector("#edit-rows tr[data-kind=latent]");
      if (row) {
        form.querySelector("#f-sae").value = row.querySelector(".e-sae").value;
        form.querySelector("#f-latent").value = row.querySelector(".e-latent").value;
        var single = form.querySelector("#f-method");
        if (single) single.value = row.querySelector(".e-method").value;
      }
      form.querySelectorAll("#edit-rows tr").forEach(function (row) {
        row.remove();
      });
      form.querySelector("#f-interventions").value = "";
      setSeveral(form, false);
      return;
    } else if (button.id === "add-latent-edit") {
      var first = form.querySelector("#edit-rows .e-sae");
      addEdit(form, "latent", first ? { sae: first.value } : {});
    } else if (button.id === "add-direction-edit") {
      addEdit(form, "direction", {});
    } else if (button.classList.contains("e-remove")) {
      button.closest("tr").remove();
      form.querySelector("#edits").setAttribute("data-touched", "1");
    } else if (button.id === "chat-send") {
      form.requestSubmit(); // the form's submit: the message is added as it is sent
      return;
    } else if (button.id === "chat-new") {
      var hidden = form.querySelector("#f-messages");
      hidden.value = "";
      hidden.disabled = true;
      var transcript = form.querySelector("#transcript");
      if (transcript) transcript.remove();
      form.querySelector("#f-reply").value = "";
      var results = document.getElementById("steer-results");
      if (results) results.remove();
      return;
    } else {
      return;
    }
    writeEdits(form);
  });

  // Ctrl+Enter (or Cmd+Enter) in the message box sends it.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    if (!event.target || event.target.id !== "f-reply") return;
    var form = steerForm(event.target);
    if (form && form.requestSubmit) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  function onSteerInput(event) {
    var form = steerForm(event.target);
    if (!form) return;
    if (event.target.name === "mode") setChat(form, event.target.value === "chat");
    else if (event.target.closest("#edit-rows")) writeEdits(form);
  }
  document.addEventListener("input", onSteerInput);
  document.addEventListener("change", onSteerInput);

  function initSteerForm(root) {
    var form = root.id === "steer-form" ? root : root.querySelector("#steer-form");
    if (!form || form.getAttribute("data-ready") === "1") return;
    form.setAttribute("data-ready", "1");
    var box = form.querySelector("#edits");
    setSeveral(form, !!box && box.classList.contains("several"));
    var chat = form.querySelector("#mode-chat");
    setChat(form, !!chat && chat.checked);
  }

  // ----------------------------------------------------------------- problems, politely
  function flash(message) {
    var box = document.getElementById("flash");
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
  }

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail && event.detail.xhr;
    flash(
      "The server answered " + (xhr ? xhr.status : "with an error") + ". Try again, or reload the page."
    );
  });
  document.addEventListener("htmx:sendError", function () {
    flash("The server could not be reached. Check that it is running, then try again.");
  });
  document.addEventListener("htmx:sseError", function (event) {
    var live = event.target && event.target.querySelector && event.target.querySelector(".live-state");
    if (live) live.textContent = "The connection to the server was lost.";
  });

  // -------------------------------------------------------------------------------- init
  function init(root) {
    var scope = root && root.querySelectorAll ? root : document;
    drawPlots(scope);
    initForms(scope);
  }

  if (window.htmx) {
    window.htmx.onLoad(init); // the page, then every piece htmx swaps in
  } else {
    document.addEventListener("DOMContentLoaded", function () {
      init(document);
    });
  }
})();
