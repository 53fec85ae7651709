// The recordings list: choosing another room shows its recordings at once.
const room = document.getElementById("rec-room");
if (room) room.addEventListener("change", () => room.form.submit());
