// Client-side sort and filter for the ctbench leaderboard: plain JavaScript, no network.
"use strict";

function sortKey(cell) {
  const raw = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
  const number = parseFloat(raw);
  return Number.isNaN(number) ? raw.toLowerCase() : number;
}

function compareKeys(a, b) {
  const aEmpty = a === "" || a === "–", bEmpty = b === "" || b === "–";
  if (aEmpty || bEmpty) return aEmpty - bEmpty;  // empty cells last, whatever the direction
  if (typeof a === typeof b) return a < b ? -1 : a > b ? 1 : 0;
  return typeof a === "number" ? -1 : 1;
}

function sortTable(table, column, header) {
  const body = table.tBodies[0];
  const ascending = header.getAttribute("aria-sort") !== "ascending";
  table.querySelectorAll("th").forEach(th => th.removeAttribute("aria-sort"));
  header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  const rows = Array.from(body.rows);
  rows.sort((r, s) => {
    const order = compareKeys(sortKey(r.cells[column]), sortKey(s.cells[column]));
    return ascending ? order : -order;
  });
  rows.forEach(row => body.appendChild(row));
}

const RANKED = ["verified", "local"];

function statusShown(status, wanted) {
  return wanted === "all" || status === wanted || (wanted === "ranked" && RANKED.includes(status));
}

// Both filters at once: an element is shown when its domain and its status (where it has them) pass.
function applyFilters() {
  const domainSelect = document.getElementById("domain-filter");
  const statusSelect = document.getElementById("status-filter");
  const domain = domainSelect ? domainSelect.value : "all";
  const status = statusSelect ? statusSelect.value : "all";
  document.querySelectorAll("[data-domain], [data-status]").forEach(element => {
    const domainOk = element.dataset.domain === undefined || domain === "all" || element.dataset.domain === domain;
    const statusOk = element.dataset.status === undefined || statusShown(element.dataset.status, status);
    element.hidden = !(domainOk && statusOk);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("table.sortable").forEach(table => {
    Array.from(table.tHead.rows[table.tHead.rows.length - 1].cells).forEach((header, column) => {
      header.addEventListener("click", () => sortTable(table, column, header));
      header.title = "sort";
    });
  });
  ["domain-filter", "status-filter"].forEach(id => {
    const select = document.getElementById(id);
    if (select) select.addEventListener("change", applyFilters);
  });
});
