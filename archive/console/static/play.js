// Jump to an event of the timeline.
(function () {
  var video = document.getElementById("video");
  document.querySelectorAll("button.jump").forEach(function (b) {
    b.addEventListener("click", function () {
      if (!video) return;
      video.currentTime = Number(b.dataset.seconds);
      video.play();
    });
  });
})();
