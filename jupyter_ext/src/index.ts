import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { LabIcon } from '@jupyterlab/ui-components';

import { ConveyorPanel } from './panel';
import { rendererFactory } from './renderer';

namespace CommandIDs {
  export const open = 'conveyor:open';
}

const PLUGIN_ID = 'conveyor-jupyter:plugin';

const conveyorIcon = new LabIcon({
  name: 'conveyor:icon',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<circle cx="5" cy="17" r="2.5"/><circle cx="12" cy="17" r="2.5"/><circle cx="19" cy="17" r="2.5"/>' +
    '<rect x="2" y="6" width="8" height="6" rx="1"/><rect x="13" y="6" width="8" height="6" rx="1"/></g></svg>'
});

/**
 * The Conveyor side panel and the renderer for `application/vnd.conveyor.run+json`. Both talk only
 * to the server extension (`<base_url>/conveyor/...`); Airflow and MLflow credentials stay there.
 */
const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Trigger, watch, approve and inspect Conveyor runs from JupyterLab.',
  autoStart: true,
  requires: [IRenderMimeRegistry],
  optional: [ISettingRegistry, ITranslator, ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    rendermime: IRenderMimeRegistry,
    settingRegistry: ISettingRegistry | null,
    translator: ITranslator | null,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ) => {
    const trans = (translator ?? nullTranslator).load('conveyor');
    const serverSettings = app.serviceManager.serverSettings;
    let interval = 3000;
    let modelName = '';

    rendermime.addFactory(rendererFactory(serverSettings, translator ?? nullTranslator, () => interval));

    let panel: ConveyorPanel | null = null;
    const createPanel = () => {
      panel = new ConveyorPanel(serverSettings, translator ?? nullTranslator, interval, modelName);
      panel.title.icon = conveyorIcon;
      app.shell.add(panel, 'left', { rank: 900 });
      restorer?.add(panel, 'conveyor-panel');
    };

    app.commands.addCommand(CommandIDs.open, {
      label: trans.__('Open Conveyor'),
      caption: trans.__('Show Conveyor runs, models and drift'),
      execute: () => {
        if (!panel || panel.isDisposed) {
          createPanel();
        }
        app.shell.activateById('conveyor-panel');
      }
    });
    palette?.addItem({ command: CommandIDs.open, category: trans.__('Conveyor') });

    const start = (settings: ISettingRegistry.ISettings | null) => {
      if (settings) {
        interval = (settings.get('pollInterval').composite as number) * 1000;
        modelName = settings.get('modelName').composite as string;
      }
      createPanel();
    };
    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(start)
        .catch(reason => {
          console.error('conveyor-jupyter: settings failed to load', reason);
          start(null);
        });
    } else {
      start(null);
    }
  }
};

export default plugin;
