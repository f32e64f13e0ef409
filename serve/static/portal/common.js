// Shared by the portal and the console: same-origin JSON reads with the session cookie.
// No credential is handled here: the cookie is HttpOnly, the server adds the bearer token.
"use strict";
window.billing = {
  getJson: async function (path) {
    const response = await fetch(path, { credentials: "same-origin", headers: { accept: "application/json" } });
    if (!response.ok) throw new Error(path + ": " + response.status);
    return response.json();
  },
  // Poll `fn` every `ms`, waiting for each round to end; paused while the tab is hidden.
  every: function (ms, fn) {
    const round = async function () {
      if (!document.hidden) {
        try { await fn(); } catch (error) { console.warn(error); }
      }
      setTimeout(round, ms);
    };
    setTimeout(round, ms);
  },
  clock: function (lang) {
    return new Date().toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  },
};
