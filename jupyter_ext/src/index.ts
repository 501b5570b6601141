import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'conveyor-jupyter:plugin',
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    console.log('conveyor-jupyter activated');
  }
};

export default plugin;
