// The command console page (/command).
import { startConsole } from "./console.js";

startConsole();
