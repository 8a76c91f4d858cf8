// An alert's page: acknowledge it, or assign it to someone; the page is shown again from the server after each.
"use strict";
(() => {
  const id = document.getElementById("alert").dataset.id;
  const notice = document.getElementById("notice"), problem = document.getElementById("problem");
  async function post(url, body, button) {
    button.disabled = true;
    try {
      const r = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: body ? JSON.stringify(body) : undefined});
      if (!r.ok) { problem.textContent = await errorText(r); notice.textContent = ""; return; }
      problem.textContent = "";
      notice.textContent = LANG === "zh" ? "已保存。" : "Saved.";
      setTimeout(() => location.reload(), 400);
    } catch (e) {
      problem.textContent = LANG === "zh" ? "网络连接失败，请检查网络后重试。" : "No network connection: check the network and try again.";
    } finally { button.disabled = false; }
  }
  const ack = document.getElementById("ack");
  if (ack) ack.addEventListener("click", () => post(`/api/v1/alerts/${id}/acknowledge`, null, ack));
  document.getElementById("assign").addEventListener("submit", e => {
    e.preventDefault();
    post(`/api/v1/alerts/${id}/assign`, {assignee: document.getElementById("assignee").value.trim()}, e.target.querySelector("button"));
  });
})();
