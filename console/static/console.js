// Loa console: live updates (server-sent events), the CSRF token on htmx's
// requests, and the emergency form's confirmation hint. Pages work without
// it; they only stop updating by themselves.
"use strict";
(function () {
  const body = document.body;

  // Live parts of the page: the server sends {id, html} to redraw.
  if (body.dataset.events) {
    const es = new EventSource(body.dataset.events);
    es.addEventListener("swap", (e) => {
      const part = JSON.parse(e.data);
      const el = document.getElementById(part.id);
      if (el) {
        el.innerHTML = part.html;
        el.dispatchEvent(new CustomEvent("loa:swapped", { bubbles: true }));
      }
    });
    es.addEventListener("done", () => {
      es.close();
      body.dataset.live = "done";
    });
    es.addEventListener("signed-out", () => {
      es.close();
      window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname + window.location.search));
    });
    es.addEventListener("open", () => { body.dataset.live = "on"; });
  }

  // htmx requests carry the session's CSRF token, as forms do.
  body.addEventListener("htmx:configRequest", (e) => {
    e.detail.headers["X-CSRF-Token"] = body.dataset.csrf || "";
  });

  // The emergency form says what to type to confirm its target.
  const form = document.getElementById("emergency-form");
  if (form) {
    const want = document.getElementById("confirm-want");
    const update = () => {
      const target = form.querySelector("input[name=target]:checked");
      let text = "";
      if (target && target.value === "all") {
        text = target.dataset.confirm;
      } else {
        text = Array.from(form.querySelectorAll("input[name=group]:checked")).map((x) => x.value).join(", ");
      }
      want.textContent = text;
    };
    form.addEventListener("change", update);
    update();
  }
})();
