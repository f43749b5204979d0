// Flow page: fetch the figures as an HTML fragment every 10 s and swap them in.
// The fragment is rendered (and escaped) by the server; a 401 means the session ended.
(function () {
  "use strict";
  var box = document.getElementById("flow");
  if (!box) { return; }
  var url = box.getAttribute("data-fragment");
  var busy = false;

  function refresh() {
    if (busy || document.hidden) { return; }
    busy = true;
    fetch(url, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (response) {
        if (response.status === 401) {
          window.location.assign("/ui/login?done=expired");
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null) { box.innerHTML = html; }
      })
      .catch(function () { /* the next tick tries again */ })
      .then(function () { busy = false; });
  }

  window.setInterval(refresh, 10000);
}());
