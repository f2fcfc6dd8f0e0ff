/* The demo EHR: builds CDS Hooks requests from a synthetic record and shows the answers. */
(function () {
  "use strict";
  var state = { patients: [], services: {}, patient: null, orders: [], own: {} };
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k]; else if (k === "html") node.innerHTML = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "10000000-1000-4000-8000-100000000000".replace(/[018]/g, function (c) {
      return (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16);
    });
  }

  // Card detail is GitHub-flavoured Markdown; this renders the subset cards use, HTML escaped first.
  function markdown(text) {
    var esc = function (s) { return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); };
    var inline = function (s) {
      return esc(s).replace(/\*\*(.+?)\*\*/g, "<strong>$1</strong>").replace(/`([^`]+)`/g, "<code>$1</code>")
        .replace(/\[([^\]]+)\]\((https?:[^)\s]+)\)/g, '<a href="$2" target="_blank" rel="noopener">$1</a>')
        .replace(/(^|[\s(])_([^_]+)_(?=[\s).,;:]|$)/g, "$1<em>$2</em>").replace(/(^|[\s(])\*([^*]+)\*(?=[\s).,;:]|$)/g, "$1<em>$2</em>");
    };
    var out = [], list = null;
    text.split("\n").forEach(function (line) {
      var item = line.match(/^\s*[-*]\s+(.*)$/);
      if (item) { if (!list) { list = []; } list.push("<li>" + inline(item[1]) + "</li>"); return; }
      if (list) { out.push("<ul>" + list.join("") + "</ul>"); list = null; }
      if (/^>\s?/.test(line)) out.push("<blockquote>" + inline(line.replace(/^>\s?/, "")) + "</blockquote>");
      else if (line.trim()) out.push("<p>" + inline(line) + "</p>");
    });
    if (list) out.push("<ul>" + list.join("") + "</ul>");
    return out.join("");
  }

  function orderLabel(order) {
    var cc = order.code || order.medicationCodeableConcept || order.codeCodeableConcept || {};
    var coding = (cc.coding || [])[0] || {};
    return (cc.text || coding.display || order.resourceType) + (coding.code ? " (" + coding.code + ")" : "");
  }

  function savedResponses(patientId) {
    try { return JSON.parse(localStorage.getItem("cdshooks-demo-qr:" + patientId) || "[]"); } catch (e) { return []; }
  }

  function recordResources(patient) {
    return patient.resources.concat(savedResponses(patient.resources[0].id));
  }

  // Prefetch as an EHR computes it: each advertised template answered from the record.
  function prefetchFor(service, patient) {
    var resources = recordResources(patient), prefetch = {};
    Object.keys(service.prefetch || {}).forEach(function (key) {
      var type = service.prefetch[key].split(/[/?]/)[0];
      var matching = resources.filter(function (r) {
        return r.resourceType === type || (type === "MedicationRequest" && r.resourceType === "Medication");
      });
      if (key === "patient") { prefetch[key] = patient.resources[0]; return; }
      prefetch[key] = matching.length ? { resourceType: "Bundle", type: "searchset", entry: matching.map(function (r) { return { resource: r }; }) } : null;
    });
    return prefetch;
  }

  function chosenOrders() {
    var pid = state.patient.resources[0].id;
    return state.orders.filter(function (o, i) { return $("order-" + i).checked; }).map(function (o) {
      var copy = JSON.parse(JSON.stringify(o));
      if ("subject" in copy || copy.resourceType !== "Medication") copy.subject = { reference: "Patient/" + pid };
      return copy;
    });
  }

  function call(hook) {
    var service = state.services[hook], patient = state.patient;
    if (!service || !patient) return;
    var orders = chosenOrders();
    var context = { userId: "Practitioner/demo-clinician", patientId: patient.resources[0].id,
      draftOrders: { resourceType: "Bundle", type: "collection", entry: orders.map(function (r) { return { resource: r }; }) } };
    if (hook === "order-select") context.selections = orders.map(function (r) { return r.resourceType + "/" + r.id; });
    var body = { hook: hook, hookInstance: uuid(), context: context };
    if ($("send-prefetch").checked) body.prefetch = prefetchFor(service, patient);
    $("request-json").textContent = JSON.stringify(body, null, 2);
    $("status").textContent = "Calling " + hook + "…";
    $("cards").innerHTML = ""; $("coverage").innerHTML = "";
    fetch("../cds-services/" + encodeURIComponent(service.id), { method: "POST",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
      .then(function (resp) { return resp.text().then(function (text) { return { resp: resp, text: text }; }); })
      .then(function (r) { show(hook, service, r.resp.status, r.text); })
      .catch(function (err) { showError(hook, 0, "The service could not be reached: " + err); });
  }

  function show(hook, service, status, text) {
    $("response-json").textContent = text;
    var body = null;
    try { body = JSON.parse(text); } catch (e) { /* shown as an error below */ }
    if (status !== 200 || !body || !Array.isArray(body.cards)) {
      var diag = body && body.resourceType === "OperationOutcome" ? (body.issue || []).map(function (i) { return i.diagnostics; }).join("; ") : text.slice(0, 300);
      return showError(hook, status, diag);
    }
    $("status").textContent = hook + " answered 200 with " + body.cards.length + " card" + (body.cards.length === 1 ? "" : "s") + ".";
    if (!body.cards.length) {
      $("cards").appendChild(el("div", { "class": "allclear", id: "all-clear", text: "All clear: no medical policy applies to these orders, or nothing needs attention." }));
    }
    body.cards.forEach(function (card) { $("cards").appendChild(renderCard(card, service)); });
    if (hook === "order-sign") renderCoverage(body.systemActions || []);
  }

  function showError(hook, status, diagnostics) {
    $("status").textContent = hook + " failed" + (status ? " with HTTP " + status : "") + ".";
    $("cards").appendChild(el("div", { "class": "error-box", role: "alert", id: "call-error" }, [
      el("strong", { text: (status ? "Error " + status : "Error") + " — the service could not evaluate these orders. This is not an all-clear." }),
      el("div", { text: diagnostics || "(no detail)" })]));
  }

  function renderCard(card, service) {
    var node = el("div", { "class": "card " + card.indicator, "data-uuid": card.uuid || "" });
    node.appendChild(el("div", { "class": "summary", text: card.summary }));
    var source = el("div", { "class": "source" });
    source.appendChild(document.createTextNode(card.indicator.toUpperCase() + " · "));
    source.appendChild(card.source.url ? el("a", { href: card.source.url, target: "_blank", rel: "noopener", text: card.source.label }) : el("span", { text: card.source.label }));
    node.appendChild(source);
    if (card.detail) node.appendChild(el("div", { "class": "detail", html: markdown(card.detail) }));
    var row = el("div", { "class": "row" }), note = el("span", { "class": "feedback" });
    (card.suggestions || []).forEach(function (s) {
      var b = el("button", { type: "button", "class": "suggestion", text: "Accept: " + s.label });
      b.addEventListener("click", function () { applySuggestion(s); feedback(service, card, { outcome: "accepted", acceptedSuggestions: [{ id: s.uuid }] }, note); });
      row.appendChild(b);
    });
    (card.links || []).forEach(function (l) {
      row.appendChild(el("a", { "class": "button secondary link", href: l.url, target: "_blank", rel: "opener", text: l.label }));
    });
    if (card.uuid && card.overrideReasons) {
      var select = el("select", { "class": "override-reason", "aria-label": "Override reason" },
        card.overrideReasons.map(function (r, i) { return el("option", { value: i, text: r.display }); }));
      var ob = el("button", { type: "button", "class": "secondary override", text: "Override" });
      ob.addEventListener("click", function () {
        var r = card.overrideReasons[select.value];
        feedback(service, card, { outcome: "overridden", overrideReason: { reason: { system: r.system, code: r.code, display: r.display } } }, note);
      });
      row.appendChild(select); row.appendChild(ob);
    }
    node.appendChild(row); node.appendChild(note);
    return node;
  }

  function applySuggestion(s) {
    (s.actions || []).forEach(function (a) {
      if (a.type !== "update" || !a.resource) return;
      state.orders = state.orders.map(function (o) { return o.resourceType === a.resource.resourceType && o.id === a.resource.id ? a.resource : o; });
    });
    renderOrders(true);
  }

  function feedback(service, card, item, note) {
    item.card = card.uuid; item.outcomeTimestamp = new Date().toISOString();
    note.textContent = "Sending feedback…";
    fetch("../cds-services/" + encodeURIComponent(service.id) + "/feedback", { method: "POST",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ feedback: [item] }) })
      .then(function (resp) {
        note.className = resp.ok ? "feedback" : "feedback error";
        note.textContent = resp.ok ? "Feedback recorded: " + item.outcome + " (HTTP " + resp.status + ")." : "Feedback refused: HTTP " + resp.status;
      })
      .catch(function (err) { note.textContent = "Feedback not sent: " + err; });
  }

  var CRD = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information";
  function renderCoverage(actions) {
    var box = $("coverage");
    box.appendChild(el("h3", { text: "Coverage information (CRD systemActions)" }));
    if (!actions.length) { box.appendChild(el("p", { "class": "meta", id: "no-coverage", text: "None: no US policy applied with an active Coverage in the record." })); return; }
    var table = el("table", { id: "coverage-table" }, [el("tr", {}, ["Order", "Covered", "Prior auth", "Docs needed", "Info needed", "Reason"].map(function (h) { return el("th", { text: h }); }))]);
    actions.forEach(function (a) {
      (a.resource.extension || []).filter(function (e) { return e.url === CRD; }).forEach(function (ext) {
        var v = {};
        ext.extension.forEach(function (p) {
          var cc = p.valueCodeableConcept;
          v[p.url] = p.valueCode || p.valueString || p.valueCanonical || p.valueDate || p.valueUri ||
            (p.valueReference && p.valueReference.reference) ||
            (cc && (cc.text || ((cc.coding || [])[0] || {}).display || ((cc.coding || [])[0] || {}).code)) || "";
        });
        var doc = v["doc-needed"] ? v["doc-needed"] + (v["doc-purpose"] ? " (" + v["doc-purpose"] + ")" : "") : "no";
        var order = el("td", { text: a.resource.resourceType + "/" + a.resource.id });
        order.appendChild(el("div", { "class": "assertion", text: "assertion " + (v["coverage-assertion-id"] || "?") }));
        table.appendChild(el("tr", {}, [order,
          el("td", {}, [el("span", { "class": "pill " + (v.covered || ""), text: v.covered || "?" })]),
          el("td", { text: v["pa-needed"] || "—" }), el("td", { text: doc }), el("td", { text: v["info-needed"] || "—" }),
          el("td", { text: v.reason || "" })]));
      });
    });
    box.appendChild(table);
  }

  function renderOrders(keepChecks) {
    var checked = keepChecks ? state.orders.map(function (o, i) { var c = $("order-" + i); return c ? c.checked : true; }) : null;
    var box = $("orders"); box.innerHTML = "";
    state.orders.forEach(function (o, i) {
      var input = el("input", { type: "checkbox", id: "order-" + i, value: o.resourceType + "/" + o.id });
      input.checked = checked ? checked[i] !== false : state.own[o.resourceType + "/" + o.id] === true;
      var when = o.occurrenceDateTime || (o.occurrencePeriod && o.occurrencePeriod.start) || o.authoredOn;
      box.appendChild(el("label", {}, [input, document.createTextNode(" " + orderLabel(o) + " — " + o.resourceType + (when ? ", " + when.slice(0, 10) : ""))]));
    });
  }

  function pickPatient(key) {
    state.patient = state.patients.filter(function (p) { return p.key === key; })[0] || null;
    if (!state.patient) return;
    var pat = state.patient.resources[0], own = {};
    state.patient.orders.forEach(function (o) { own[o.resourceType + "/" + o.id] = true; });
    // The patient's own draft orders, then every other orderable item of the demo, once each.
    var seen = {}, list = [];
    state.patient.orders.concat([].concat.apply([], state.patients.map(function (p) { return p.orders; }))).forEach(function (o) {
      var id = o.resourceType + "/" + o.id, same = o.resourceType + ":" + orderLabel(o);
      if (seen[id] || seen[same] || o.resourceType === "Medication") return;
      seen[id] = seen[same] = true; list.push(JSON.parse(JSON.stringify(o)));
    });
    state.own = own; state.orders = list;
    $("patient-info").textContent = "Patient/" + pat.id + (pat.gender ? " · " + pat.gender : "") + (pat.birthDate ? " · born " + pat.birthDate : "") +
      " · " + recordResources(state.patient).length + " resources in the record";
    renderOrders(false); showDocs();
    $("cards").innerHTML = ""; $("coverage").innerHTML = ""; $("status").textContent = "No call yet.";
  }

  function showDocs() {
    if (!state.patient) return;
    var pid = state.patient.resources[0].id, n = savedResponses(pid).length;
    $("docs-on-file").textContent = n ? n + " QuestionnaireResponse" + (n === 1 ? "" : "s") + " added from the documentation form; every call now sends " + (n === 1 ? "it" : "them") + " in the prefetch (sign again to see the effect). " : "";
    if (n) {
      var forget = el("button", { type: "button", "class": "secondary", id: "forget-docs", text: "Remove them" });
      forget.addEventListener("click", function () { localStorage.removeItem("cdshooks-demo-qr:" + pid); showDocs(); });
      $("docs-on-file").appendChild(forget);
    }
  }

  function start() {
    Promise.all([fetch("../demo/patients").then(function (r) { return r.json(); }), fetch("../cds-services").then(function (r) { return r.json(); })])
      .then(function (both) {
        state.patients = both[0].patients;
        both[1].services.forEach(function (s) { state.services[s.hook] = s; });
        var select = $("patient"); select.innerHTML = "";
        state.patients.forEach(function (p) { select.appendChild(el("option", { value: p.key, text: p.label })); });
        var wanted = new URLSearchParams(location.search).get("patient");
        if (wanted) select.value = wanted;
        pickPatient(select.value);
      })
      .catch(function (err) { $("status").textContent = "Could not load the demo: " + err; });
    $("patient").addEventListener("change", function () { pickPatient(this.value); });
    $("select-btn").addEventListener("click", function () { call("order-select"); });
    $("sign-btn").addEventListener("click", function () { call("order-sign"); });
    window.addEventListener("storage", showDocs);
    window.addEventListener("message", function (e) { if (e.origin === location.origin) showDocs(); });
    window.addEventListener("focus", showDocs);
  }
  document.addEventListener("DOMContentLoaded", start);
})();
