// Live dock bays: the server sends the rendered table on every status-board change.
(function () {
  var target = document.getElementById("bays");
  if (!target || !window.EventSource) return;
  var source = new EventSource("/docks/stream");
  source.addEventListener("bays", function (e) { target.innerHTML = e.data; target.dataset.updates = String(Number(target.dataset.updates || 0) + 1); });
})();
