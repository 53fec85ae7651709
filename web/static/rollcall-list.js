// The roll-call page: the site picker says which sites are online now.
import { markOnline, watchPresence } from "./presence.js";

const picker = document.getElementById("rc-picker");
if (picker) watchPresence((online) => { markOnline(picker, online); window.__presence = online; });
