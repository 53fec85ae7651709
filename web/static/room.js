// The consultation room / video wall.
import { startPage } from "./page.js";
import { initControl } from "./control.js";
import { initRollCall } from "./rollcall.js";
import { startInbox } from "./inbox.js";
import { pageData } from "./page.js";

const { client, view } = startPage({ localTile: true, mirrorLocal: true, facingMode: "user" });
initRollCall(client, view);
initControl(client, view);
startInbox(client, pageData());
