// The consultation room / video wall.
import { startPage } from "./page.js";
import { initControl } from "./control.js";
import { initRollCall } from "./rollcall.js";
import { initRoster } from "./roster.js";
import { startInbox } from "./inbox.js";
import { pageData } from "./ui.js";
import { initRecording } from "./recording.js";

const { client, view } = startPage({ localTile: true, mirrorLocal: true, facingMode: "user" });
initRollCall(client, view);
const control = initControl(client, view);
initRoster(client, view, control, pageData());
startInbox(client, pageData());
initRecording(client, { indicator: document.getElementById("rec-pill"), button: document.getElementById("btn-record") });
