// Directive alerts on a page outside a room (home, console, incident board, roll-call pages): its own
// command session feeds directive-alert.js, so a mandatory directive reaches the site wherever it is.
import { DirectiveAlerts } from "./directive-alert.js";
import { CommandSocket } from "./session.js";

const data = JSON.parse(document.getElementById("alert-data").textContent);
let socket = null;
const alerts = new DirectiveAlerts({ site: data.site, names: data.names || {}, request: (msg) => socket.request(msg), token: data.token });
socket = new CommandSocket(data.token, (msg) => alerts.apply(msg), (state) => { document.body.dataset.alerts = state; });
window.__siteAlerts = alerts;
