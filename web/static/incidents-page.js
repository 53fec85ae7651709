// The incident board page (/command/incidents).
import { startBoard } from "./console.js";

startBoard();
