// Keyboard shortcuts for the review page. Plain script, no build step; the page works without it.
(function () {
  "use strict";

  function typing(event) {
    var t = event.target;
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName) && t.type !== "radio");
  }

  function follow(id) {
    var link = document.getElementById(id);
    if (link) { window.location.href = link.href; }
  }

  // Data rating: y/n answer the highlighted question and move on; the last answer submits.
  function setupDataForm(form) {
    var questions = Array.prototype.slice.call(form.querySelectorAll("fieldset.question"));
    var current = 0;
    function highlight() {
      questions.forEach(function (q, i) { q.classList.toggle("current", i === current); });
    }
    function firstUnanswered() {
      for (var i = 0; i < questions.length; i++) {
        if (!questions[i].querySelector("input:checked")) { return i; }
      }
      return 0;
    }
    current = firstUnanswered();
    highlight();
    questions.forEach(function (q, i) {
      q.addEventListener("click", function () { current = i; highlight(); });
    });
    document.addEventListener("keydown", function (event) {
      if (typing(event) || event.ctrlKey || event.metaKey || event.altKey) { return; }
      var key = event.key.toLowerCase();
      if (key === "y" || key === "n") {
        var value = key === "y" ? "yes" : "no";
        var radio = questions[current].querySelector("input[value='" + value + "']");
        radio.checked = true;
        event.preventDefault();
        if (current === questions.length - 1) {
          form.submit();
        } else {
          current += 1;
          highlight();
        }
      } else if (key === "backspace") {
        event.preventDefault();
        current = Math.max(0, current - 1);
        highlight();
      } else if (key === "enter" && !/^(A|BUTTON)$/.test(event.target.tagName)) {
        event.preventDefault();
        if (form.reportValidity()) { form.submit(); }
      } else if (event.key === "ArrowLeft") {
        follow("prev-item");
      } else if (event.key === "ArrowRight") {
        follow("next-item");
      }
    });
  }

  // Response rating: a-d grade and submit at once.
  function setupGradeForm(form) {
    document.addEventListener("keydown", function (event) {
      if (typing(event) || event.ctrlKey || event.metaKey || event.altKey) { return; }
      var key = event.key.toUpperCase();
      if (["A", "B", "C", "D"].indexOf(key) >= 0) {
        form.querySelector("input[value='" + key + "']").checked = true;
        event.preventDefault();
        form.submit();
      } else if (event.key === "ArrowLeft") {
        follow("prev-item");
      } else if (event.key === "ArrowRight") {
        follow("next-item");
      }
    });
  }

  function setupBrowse(search) {
    document.addEventListener("keydown", function (event) {
      if (typing(event)) { return; }
      if (event.key === "/") {
        event.preventDefault();
        search.focus();
        search.select();
      } else if (event.key === "ArrowLeft") {
        follow("prev-page");
      } else if (event.key === "ArrowRight") {
        follow("next-page");
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var dataForm = document.getElementById("rate-form");
    var gradeForm = document.getElementById("grade-form");
    var search = document.getElementById("search");
    if (dataForm) { setupDataForm(dataForm); }
    if (gradeForm) { setupGradeForm(gradeForm); }
    if (search) { setupBrowse(search); }
  });
})();
