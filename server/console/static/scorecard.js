// The scorecard page: everything is drawn on the server; this only stops a custom period that ends before it
// begins from being sent (the server says so too) and keeps the two date fields within each other's bounds.
"use strict";
(() => {
  const from = document.getElementById("from"), to = document.getElementById("to");
  if (!from || !to) return;
  const bound = () => { to.min = from.value; from.max = to.value; };
  from.addEventListener("change", bound); to.addEventListener("change", bound); bound();
})();
