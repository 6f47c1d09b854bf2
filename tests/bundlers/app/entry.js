// Vite, webpack and Rollup: nothing to configure in the code.
import { start } from "./main.js";

start();
