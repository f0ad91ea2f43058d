// One running server and the state around it: current settings, the status item, toggling completions,
// pushing settings changes, restarting when the launch line changes. Pure over `SessionHost` and
// `ServerClient` so it can be unit tested without VS Code or a server process.

import {
  completionsWanted,
  InfillSettings,
  launchChanged,
  ServerLaunch,
  serverLaunch,
  ServerSettings,
  serverSettings,
} from "./settings";
import type { Replacement } from "./nextEdit";
import { StatusController } from "./status";

/** The language client as the session sees it (the real one wraps vscode-languageclient). */
export interface ServerClient {
  start(): Promise<void>;
  stop(): Promise<void>;
  sendRequest(method: string, params: unknown): Promise<unknown>;
  /** `workspace/didChangeConfiguration` with `{settings: {infill: settings}}`. */
  pushSettings(settings: ServerSettings): Promise<void>;
}

/** Callbacks the client needs from the session. */
export interface ClientHooks {
  onStatus(params: unknown): void;
  onStopped(): void;
  completionsWanted(languageId: string): boolean;
  /** `infill/nextEditReady` from the server. */
  onNextEditReady(params: unknown): void;
  /** A next-edit suggestion among the inline items for this document version (shown as a preview). */
  onNextEdit(uri: string, version: number, replacement: Replacement | undefined): void;
}

export type ClientFactory = (launch: ServerLaunch, initial: ServerSettings, hooks: ClientHooks) => ServerClient;

export interface SessionHost {
  readSettings(): InfillSettings;
  /** Persists `infill.enable` (user settings); the host then reports a settings change. */
  writeEnable(enable: boolean): Promise<void>;
  showError(message: string): void;
  /** Next-edit suggestions (absent in tests that do not need them). */
  nextEdits?: Pick<ClientHooks, "onNextEditReady" | "onNextEdit">;
}

export class InfillSession {
  private settings: InfillSettings;
  private client: ServerClient | undefined;
  // Bumped on every (re)start so a late callback from a replaced client cannot touch the status.
  private generation = 0;
  // The start or restart in progress (settled when it is done, whether or not it worked): a request made
  // meanwhile, say "Fill holes" right after a settings change restarted the server, waits for the new server
  // instead of racing the old one's shutdown or the new one's start.
  private transition: Promise<void> = Promise.resolve();

  constructor(
    private readonly host: SessionHost,
    private readonly status: StatusController,
    private readonly createClient: ClientFactory,
  ) {
    this.settings = host.readSettings();
    this.status.setEnabled(this.settings.enable);
  }

  get currentSettings(): InfillSettings {
    return this.settings;
  }

  /** Starts the server; failures are shown once and left in the status item, never thrown. */
  start(): Promise<void> {
    return this.track(this.launch());
  }

  private track(work: Promise<void>): Promise<void> {
    this.transition = work.then(
      () => undefined,
      () => undefined,
    );
    return work;
  }

  private async launch(): Promise<void> {
    const generation = ++this.generation;
    const launch = serverLaunch(this.settings);
    const hooks: ClientHooks = {
      onStatus: (params) => {
        if (generation === this.generation) {
          this.status.onNotification(params);
        }
      },
      onStopped: () => {
        if (generation === this.generation && this.status.current.state !== "error") {
          this.status.setState("stopped");
        }
      },
      completionsWanted: (languageId) => completionsWanted(this.settings, languageId),
      onNextEditReady: (params) => {
        if (generation === this.generation) {
          this.host.nextEdits?.onNextEditReady(params);
        }
      },
      onNextEdit: (uri, version, replacement) => {
        if (generation === this.generation) {
          this.host.nextEdits?.onNextEdit(uri, version, replacement);
        }
      },
    };
    this.status.setState("starting");
    const client = this.createClient(launch, serverSettings(this.settings), hooks);
    this.client = client;
    try {
      await client.start();
    } catch (error) {
      if (generation !== this.generation) {
        return;
      }
      const reason = (error as { message?: string } | null)?.message?.split("\n")[0] ?? String(error);
      const commandLine = [launch.command, ...launch.args].join(" ");
      this.status.setState("error", `could not start \`${commandLine}\``);
      this.host.showError(
        `Infill: could not start the server (\`${commandLine}\`): ${reason}. ` +
          "Set infill.serverCommand or infill.pythonPath.",
      );
    }
  }

  async stop(): Promise<void> {
    this.generation++;
    const client = this.client;
    this.client = undefined;
    if (client !== undefined) {
      try {
        await client.stop();
      } catch {
        // The process may already be gone; there is nothing left to clean up.
      }
    }
  }

  restart(): Promise<void> {
    return this.track(
      (async () => {
        await this.stop();
        await this.launch();
      })(),
    );
  }

  /** Called when any `infill.*` setting changed. */
  async onSettingsChanged(): Promise<void> {
    const before = this.settings;
    this.settings = this.host.readSettings();
    this.status.setEnabled(this.settings.enable);
    if (launchChanged(before, this.settings)) {
      await this.restart();
      return;
    }
    const wire = serverSettings(this.settings);
    if (this.client !== undefined && JSON.stringify(wire) !== JSON.stringify(serverSettings(before))) {
      await this.client.pushSettings(wire);
    }
  }

  async toggle(): Promise<boolean> {
    const enable = !this.settings.enable;
    await this.host.writeEnable(enable);
    return enable;
  }

  /** Sends a request to the running server, after a start or restart in progress; rejects when there is none. */
  async sendRequest(method: string, params: unknown): Promise<unknown> {
    await this.transition;
    if (this.client === undefined) {
      throw new Error("the infill server is not running");
    }
    return this.client.sendRequest(method, params);
  }

  async dispose(): Promise<void> {
    await this.stop();
  }
}
