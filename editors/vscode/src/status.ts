// The status-bar item: shows the server state reported by the `infill/status` notification, and whether
// completions are switched off. Pure over a small `StatusItem` interface so it can be unit tested.

export type ServerState = "starting" | "loading" | "ready" | "busy" | "error" | "stopped";

/** `infill/status` notification params (server -> client). */
export interface StatusParams {
  state: "loading" | "ready" | "busy" | "error";
  message?: string;
}

/** The parts of a `vscode.StatusBarItem` the controller uses. */
export interface StatusItem {
  text: string;
  // `object` admits VS Code's MarkdownString / Command; the controller only writes strings.
  tooltip: string | object | undefined;
  command: string | object | undefined;
  show(): void;
}

const STATE_LABELS: Record<ServerState, { icon: string; tooltip: string }> = {
  starting: { icon: "$(loading~spin)", tooltip: "Infill: starting the server" },
  loading: { icon: "$(loading~spin)", tooltip: "Infill: loading the model" },
  ready: { icon: "$(sparkle)", tooltip: "Infill: ready" },
  busy: { icon: "$(sync~spin)", tooltip: "Infill: filling" },
  error: { icon: "$(error)", tooltip: "Infill: error" },
  stopped: { icon: "$(debug-stop)", tooltip: "Infill: server stopped" },
};

const KNOWN_STATES = new Set(["loading", "ready", "busy", "error"]);

/** Validates an `infill/status` payload; unknown shapes are ignored rather than shown. */
export function parseStatus(params: unknown): StatusParams | null {
  if (typeof params !== "object" || params === null) {
    return null;
  }
  const { state, message } = params as { state?: unknown; message?: unknown };
  if (typeof state !== "string" || !KNOWN_STATES.has(state)) {
    return null;
  }
  return typeof message === "string"
    ? { state: state as StatusParams["state"], message }
    : { state: state as StatusParams["state"] };
}

export class StatusController {
  private state: ServerState = "starting";
  private message: string | undefined;
  private enabled = true;

  constructor(
    private readonly item: StatusItem,
    toggleCommand: string,
  ) {
    item.command = toggleCommand;
    this.render();
    item.show();
  }

  get current(): { state: ServerState; message: string | undefined; enabled: boolean } {
    return { state: this.state, message: this.message, enabled: this.enabled };
  }

  setState(state: ServerState, message?: string): void {
    this.state = state;
    this.message = message;
    this.render();
  }

  /** Applies an `infill/status` notification; returns false when the payload was not understood. */
  onNotification(params: unknown): boolean {
    const status = parseStatus(params);
    if (status === null) {
      return false;
    }
    this.setState(status.state, status.message);
    return true;
  }

  setEnabled(enabled: boolean): void {
    this.enabled = enabled;
    this.render();
  }

  private render(): void {
    const label = STATE_LABELS[this.state];
    const off = this.enabled ? "" : " (off)";
    this.item.text = `${label.icon} infill${off}`;
    const details = this.message ? `: ${this.message}` : "";
    const toggleHint = this.enabled ? "click to turn completions off" : "click to turn completions on";
    this.item.tooltip = `${label.tooltip}${details}${off}\n(${toggleHint})`;
  }
}
