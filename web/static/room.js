// The consultation room / video wall.
import { startPage } from "./page.js";

startPage({ localTile: true, mirrorLocal: true, facingMode: "user" });
