// The runtime class of every error the SDK throws or rejects with. The Rust side builds its
// errors with it (src/error.rs), js/kdf.js builds the worker's with it, and the package's
// entry (js/package/index.js) exports it, so `err instanceof SealsyncError` holds for all.

/** An error with a stable, machine-readable `code` (branch on it, never on the message). */
export class SealsyncError extends Error {
  /**
   * @param {string} code the stable code, e.g. "INVALID_OPTIONS"
   * @param {string} message a human-readable explanation
   * @param {{ cause?: unknown }} [options] what caused it, as for `Error`
   */
  constructor(code, message, options) {
    super(message, options);
    this.code = code;
  }
}

Object.defineProperty(SealsyncError.prototype, "name", {
  value: "SealsyncError",
  writable: true,
  configurable: true,
  enumerable: false,
});

/** Used by the Rust side (src/error.rs): `new SealsyncError(code, message)`. */
export function sealsyncError(code, message) {
  return new SealsyncError(code, message);
}
