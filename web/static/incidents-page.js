// The incident board page (/command/incidents): the board, an incident's own view, the report form.
import { startBoard } from "./incidents.js";

startBoard();
