// Stands in for the `vscode` module and vscode-languageclient when the extension's entry point is loaded in
// plain Node (test/activation.test.ts): records what the extension registers, creates and disposes. Importing
// this module installs the stand-ins, so it must be imported before ../src/extension.
import Module from "node:module";

export interface Recorded {
  commands: Map<string, () => unknown>;
  disposed: string[];
  statusItems: { text: string; tooltip: unknown; command: unknown; shown: boolean; disposed: boolean }[];
  config: Record<string, unknown>;
  configListeners: ((event: { affectsConfiguration(section: string): boolean }) => void)[];
  clients: FakeLanguageClient[];
  messages: string[];
  executed: unknown[][];
}

export const recorded: Recorded = {
  commands: new Map(),
  disposed: [],
  statusItems: [],
  config: {},
  configListeners: [],
  clients: [],
  messages: [],
  executed: [],
};

function disposable(name: string) {
  return { dispose: () => recorded.disposed.push(name) };
}

export const fakeVscode = {
  StatusBarAlignment: { Left: 1, Right: 2 },
  ConfigurationTarget: { Global: 1, Workspace: 2, WorkspaceFolder: 3 },
  ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
  OverviewRulerLane: { Left: 1, Center: 2, Right: 4, Full: 7 },
  ThemeColor: class {
    constructor(readonly id: string) {}
  },
  MarkdownString: class {
    constructor(readonly value: string) {}
  },
  window: {
    createTextEditorDecorationType: () => disposable("decorationType"),
    visibleTextEditors: [],
    onDidChangeActiveTextEditor: () => disposable("onDidChangeActiveTextEditor"),
    createStatusBarItem: () => {
      const item = {
        text: "",
        tooltip: undefined as unknown,
        command: undefined as unknown,
        shown: false,
        disposed: false,
        show() {
          item.shown = true;
        },
        dispose() {
          item.disposed = true;
        },
      };
      recorded.statusItems.push(item);
      return item;
    },
    showErrorMessage: async (message: string) => void recorded.messages.push(message),
    showInformationMessage: async (message: string) => void recorded.messages.push(message),
    activeTextEditor: undefined,
  },
  commands: {
    executeCommand: async (...args: unknown[]) => void recorded.executed.push(args),
    registerCommand: (id: string, run: () => unknown) => {
      recorded.commands.set(id, run);
      return disposable(`command:${id}`);
    },
  },
  workspace: {
    textDocuments: [],
    onDidChangeTextDocument: () => disposable("onDidChangeTextDocument"),
    getConfiguration: (section: string) => ({
      get: (key: string) => recorded.config[`${section}.${key}`],
      inspect: () => ({ globalValue: undefined, workspaceValue: undefined }),
      update: async (key: string, value: unknown) => {
        recorded.config[`${section}.${key}`] = value;
        for (const listener of recorded.configListeners) {
          listener({ affectsConfiguration: (s: string) => s === section });
        }
      },
    }),
    onDidChangeConfiguration: (listener: Recorded["configListeners"][number]) => {
      recorded.configListeners.push(listener);
      return disposable("onDidChangeConfiguration");
    },
  },
};

type Handler = (params: unknown) => void;
type Next = (...args: unknown[]) => unknown;

export class FakeLanguageClient {
  notificationHandlers = new Map<string, Handler>();
  sentNotifications: { method: unknown; params: unknown }[] = [];
  started = false;
  disposed = false;
  constructor(
    readonly id: string,
    readonly name: string,
    readonly serverOptions: { command: string; args: string[]; transport?: number },
    readonly clientOptions: {
      initializationOptions: Record<string, unknown>;
      middleware: {
        provideInlineCompletionItems: (doc: { languageId: string }, ...rest: unknown[]) => unknown;
        provideCodeActions: (doc: unknown, range: unknown, context: unknown, token: unknown, next: Next) => Promise<unknown>;
        resolveCodeAction: (item: unknown, token: unknown, next: Next) => unknown;
      };
    },
  ) {
    recorded.clients.push(this);
  }
  onNotification(method: string, handler: Handler) {
    this.notificationHandlers.set(method, handler);
    return disposable(`notification:${method}`);
  }
  onDidChangeState() {
    return disposable("onDidChangeState");
  }
  async start() {
    this.started = true;
  }
  async dispose() {
    this.disposed = true;
  }
  async sendRequest(method: string, params: unknown) {
    return { method, params };
  }
  async sendNotification(method: unknown, params: unknown) {
    this.sentNotifications.push({ method, params });
  }
}

const fakeLanguageClient = {
  LanguageClient: FakeLanguageClient,
  State: { Stopped: 1, Starting: 3, Running: 2 },
  TransportKind: { stdio: 0, ipc: 1, pipe: 2, socket: 3 },
  DidChangeConfigurationNotification: { type: "workspace/didChangeConfiguration" },
};

const moduleInternals = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
const load = moduleInternals._load;
moduleInternals._load = function (request: string, ...rest: unknown[]) {
  if (request === "vscode") {
    return fakeVscode;
  }
  if (request === "vscode-languageclient/node") {
    return fakeLanguageClient;
  }
  return load.call(this, request, ...rest);
};
