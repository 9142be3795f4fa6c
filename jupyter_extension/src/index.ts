/**
 * JupyterLab plugin: the "Juno" left-sidebar panel and the Juno commands.
 */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, InputDialog, showErrorMessage } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';

import { buildEventsUrl, JunoApi, ResponseLike } from './api';
import { DashboardController } from './controller';
import { JUNO_ICON_SVG } from './icon';
import { JunoPanel } from './panel';

export const junoIcon = new LabIcon({ name: 'juno-jupyterlab:cluster', svgstr: JUNO_ICON_SVG });

export namespace CommandIDs {
  export const openPanel = 'juno:open-panel';
  export const connect = 'juno:connect';
  export const startLocalCluster = 'juno:start-local-cluster';
  export const insertConnectionCode = 'juno:insert-connection-code';
}

const PALETTE_CATEGORY = 'Juno';

/** The code cell `juno:insert-connection-code` inserts. */
export function connectionCode(address: string): string {
  return `import juno\njuno.init(address=${JSON.stringify(address)})`;
}

function createController(): DashboardController {
  const settings = ServerConnection.makeSettings();
  const api = new JunoApi({
    baseUrl: settings.baseUrl,
    prefix: 'juno/api',
    // makeRequest adds Jupyter's token and the XSRF header.
    fetcher: (url, init) => ServerConnection.makeRequest(url, init, settings) as Promise<ResponseLike>
  });
  return new DashboardController({
    api,
    eventsUrl: address => buildEventsUrl(settings.wsUrl, 'juno/api', { address, token: settings.token || null }),
    createSocket: url => new settings.WebSocket(url)
  });
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'juno-jupyterlab:plugin',
  description: 'Juno cluster panel: nodes, tasks, actors, placement groups and logs.',
  autoStart: true,
  optional: [ICommandPalette, INotebookTracker, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    tracker: INotebookTracker | null,
    restorer: ILayoutRestorer | null
  ) => {
    const panel = new JunoPanel(createController());
    panel.title.icon = junoIcon;
    app.shell.add(panel, 'left', { rank: 150 });
    if (restorer) {
      restorer.add(panel, 'juno-sidebar');
    }

    const kernelOfCurrentNotebook = (): string | null =>
      tracker?.currentWidget?.sessionContext.session?.kernel?.id ?? null;
    if (tracker) {
      const follow = () => panel.setKernel(kernelOfCurrentNotebook());
      tracker.currentChanged.connect((_, notebook) => {
        follow();
        notebook?.sessionContext.kernelChanged.connect(follow);
      });
      tracker.widgetAdded.connect((_, notebook) => notebook.sessionContext.kernelChanged.connect(follow));
    }
    // A cell may have called juno.init() (a new cluster for that kernel): look again.
    NotebookActions.executed.connect(() => panel.requestDetect());
    void app.restored.then(() => panel.setKernel(kernelOfCurrentNotebook())).then(() => panel.detect());

    const { commands } = app;
    commands.addCommand(CommandIDs.openPanel, {
      label: 'Open the Juno panel',
      caption: 'Show the Juno cluster panel in the left sidebar',
      icon: junoIcon,
      execute: () => app.shell.activateById(panel.id)
    });
    commands.addCommand(CommandIDs.connect, {
      label: 'Connect to a Juno cluster…',
      execute: async () => {
        const result = await InputDialog.getText({
          title: 'Connect to a Juno cluster',
          label: 'Cluster address (host:port); empty for auto-detection',
          placeholder: '127.0.0.1:6379',
          text: panel.address ?? ''
        });
        if (!result.button.accept) {
          return;
        }
        const address = (result.value ?? '').trim();
        try {
          await panel.putConnection(address || null);
          app.shell.activateById(panel.id);
        } catch (err) {
          await showErrorMessage('Could not connect to the Juno cluster', (err as Error).message);
        }
      }
    });
    commands.addCommand(CommandIDs.startLocalCluster, {
      label: 'Start a local Juno cluster',
      execute: async () => {
        app.shell.activateById(panel.id);
        try {
          await panel.startLocalCluster();
        } catch (err) {
          await showErrorMessage('Could not start a local Juno cluster', (err as Error).message);
        }
      }
    });
    commands.addCommand(CommandIDs.insertConnectionCode, {
      label: 'Insert Juno connection code',
      caption: 'Insert a cell that connects this notebook to the cluster shown in the Juno panel',
      isEnabled: () => !!tracker?.currentWidget,
      execute: async () => {
        const notebookPanel = tracker?.currentWidget;
        if (!notebookPanel) {
          await showErrorMessage('No notebook', 'Open a notebook to insert the Juno connection code into.');
          return;
        }
        const address = panel.address;
        if (!address) {
          await showErrorMessage(
            'No Juno cluster',
            'The Juno panel has no cluster address yet: connect to one or start a local cluster first.'
          );
          return;
        }
        const notebook = notebookPanel.content;
        const model = notebook.model;
        if (!model) {
          return;
        }
        const index = Math.max(0, notebook.activeCellIndex);
        model.sharedModel.insertCell(index, { cell_type: 'code', source: connectionCode(address) });
        notebook.activeCellIndex = index;
      }
    });
    if (palette) {
      for (const command of Object.values(CommandIDs)) {
        palette.addItem({ command, category: PALETTE_CATEGORY });
      }
    }
  }
};

export default plugin;
