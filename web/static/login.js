// The login page after too many attempts: count the wait down and hold the button until it is over.

const box = document.getElementById("login-wait");
const button = document.querySelector("#login-form button[type=submit]");
let left = Number(box ? box.dataset.retryAfter : 0);

function paint() {
  for (const node of document.querySelectorAll(".login-seconds")) node.textContent = String(left);
  if (button) button.disabled = left > 0;
  if (left <= 0 && box) box.hidden = true;
}

if (left > 0) {
  paint();
  const timer = setInterval(() => {
    left -= 1;
    paint();
    if (left <= 0) clearInterval(timer);
  }, 1000);
}
