// Extension settings: what the user configures under `infill.*`, what the server receives, and how the
// server process is started. Pure (no `vscode` import) so it can be unit tested.

/** Settings the server understands (the LSP wire contract), camelCase as on the wire. */
export interface ServerSettings {
  model: string | null;
  device: string;
  maxTokens: number;
  steps: number | null;
  threshold: number | null;
  debounceMs: number;
  disabledLanguages: string[];
  trustRemoteCode: boolean;
  threads: number | null;
  nextEdit: boolean;
}

/** Settings only the extension uses (how to start the server, whether completions are shown). */
export interface ClientSettings {
  enable: boolean;
  serverCommand: string;
  serverArgs: string[];
  pythonPath: string | null;
  /** Mark the tokens an edit-mode rewrite found unlikely. */
  showLowConfidence: boolean;
}

export type InfillSettings = ServerSettings & ClientSettings;

// Must equal the defaults in package.json and the server's defaults; test/settingsSync.test.ts checks both.
export const SERVER_DEFAULTS: Readonly<ServerSettings> = Object.freeze({
  model: null,
  device: "auto",
  maxTokens: 64,
  steps: null,
  threshold: null,
  debounceMs: 150,
  disabledLanguages: [],
  trustRemoteCode: false,
  threads: null,
  nextEdit: false,
});

export const CLIENT_DEFAULTS: Readonly<ClientSettings> = Object.freeze({
  enable: true,
  serverCommand: "infill",
  serverArgs: [],
  pythonPath: null,
  showLowConfidence: true,
});

export const SERVER_SETTING_KEYS = Object.keys(SERVER_DEFAULTS) as (keyof ServerSettings)[];

/** Reads one `infill.<key>` value; the real implementation wraps `WorkspaceConfiguration.get`. */
export type SettingReader = (key: string) => unknown;

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}

function nonEmptyString(value: unknown): string | null {
  return typeof value === "string" && value.trim() !== "" ? value : null;
}

function positiveInt(value: unknown): number | null {
  return typeof value === "number" && Number.isInteger(value) && value > 0 ? value : null;
}

/**
 * Reads all settings, replacing values of the wrong type with the defaults (the server validates ranges
 * again and reports invalid values with one message, so the client only guards types).
 */
export function readSettings(read: SettingReader): InfillSettings {
  const device = nonEmptyString(read("device"));
  const maxTokens = positiveInt(read("maxTokens"));
  const debounce = read("debounceMs");
  const threshold = read("threshold");
  const disabled = read("disabledLanguages");
  const args = read("serverArgs");
  return {
    model: nonEmptyString(read("model")),
    device: device ?? SERVER_DEFAULTS.device,
    maxTokens: maxTokens ?? SERVER_DEFAULTS.maxTokens,
    steps: positiveInt(read("steps")),
    threshold: typeof threshold === "number" ? threshold : null,
    debounceMs:
      typeof debounce === "number" && Number.isInteger(debounce) && debounce >= 0
        ? debounce
        : SERVER_DEFAULTS.debounceMs,
    disabledLanguages: isStringArray(disabled) ? [...disabled] : [],
    trustRemoteCode: read("trustRemoteCode") === true,
    threads: positiveInt(read("threads")),
    nextEdit: read("nextEdit") === true,
    enable: read("enable") !== false,
    serverCommand: nonEmptyString(read("serverCommand")) ?? CLIENT_DEFAULTS.serverCommand,
    serverArgs: isStringArray(args) ? [...args] : [],
    pythonPath: nonEmptyString(read("pythonPath")),
    showLowConfidence: read("showLowConfidence") !== false,
  };
}

/** The `initializationOptions` / `didChangeConfiguration` payload: server settings only. */
export function serverSettings(settings: InfillSettings): ServerSettings {
  const out = {} as Record<keyof ServerSettings, unknown>;
  for (const key of SERVER_SETTING_KEYS) {
    out[key] = settings[key];
  }
  return out as unknown as ServerSettings;
}

export interface ServerLaunch {
  command: string;
  args: string[];
}

/** `infill serve ...args`, or `<python> -m infill_cli.main serve ...args` when a Python is configured. */
export function serverLaunch(settings: ClientSettings): ServerLaunch {
  if (settings.pythonPath !== null) {
    return { command: settings.pythonPath, args: ["-m", "infill_cli.main", "serve", ...settings.serverArgs] };
  }
  return { command: settings.serverCommand, args: ["serve", ...settings.serverArgs] };
}

/** Whether a settings change needs a new server process (the launch line changed). */
export function launchChanged(before: ClientSettings, after: ClientSettings): boolean {
  return JSON.stringify(serverLaunch(before)) !== JSON.stringify(serverLaunch(after));
}

/** Whether inline completions should be requested for a document of this language. */
export function completionsWanted(settings: InfillSettings, languageId: string): boolean {
  return settings.enable && !settings.disabledLanguages.includes(languageId);
}
