// Shared test helpers: where the repository is and which Python runs the server.
import * as path from "node:path";

// Tests run from out/test/*.js; the extension root is two levels up, the repository root two more.
export const EXTENSION_ROOT = path.resolve(__dirname, "..", "..");
export const REPO_ROOT = path.resolve(EXTENSION_ROOT, "..", "..");

/** The Python with infill installed: INFILL_PYTHON, else `python` from PATH (the project venv in CI). */
export function python(): string {
  return process.env.INFILL_PYTHON ?? "python";
}
