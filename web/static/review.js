// The periodic review's print button (the page itself needs no script).
document.getElementById("review-print")?.addEventListener("click", () => window.print());
