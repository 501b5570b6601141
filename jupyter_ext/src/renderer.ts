import { Notification } from '@jupyterlab/apputils';
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { ServerConnection } from '@jupyterlab/services';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { badge, h } from './dom';
import { IRun, isFinished, progress, RUN_MIME, runEndpoint } from './model';
import { requestAPI } from './request';

/**
 * Renders a run emitted by the magics and keeps it current by polling the server extension, so a
 * notebook output turns green while the kernel stays free. Polling stops when the run finishes,
 * backs off on errors and idles while the browser tab is hidden.
 */
export class RunRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(
    private readonly mimeType: string,
    private readonly serverSettings: ServerConnection.ISettings,
    private readonly translator: ITranslator = nullTranslator,
    private readonly interval = 3000
  ) {
    super();
    this.addClass('jp-Conveyor-run');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    this._run = model.data[this.mimeType] as unknown as IRun;
    this._draw();
    if (!isFinished(this._run.state) && !this._poll) {
      this._poll = new Poll({
        factory: () => this._refresh(),
        frequency: { interval: this.interval, backoff: true, max: 60_000 },
        standby: 'when-hidden',
        name: 'conveyor:run-renderer'
      });
    }
  }

  dispose(): void {
    this._poll?.dispose();
    super.dispose();
  }

  private async _refresh(): Promise<void> {
    if (!this._run) {
      return;
    }
    const trans = this.translator.load('conveyor');
    try {
      this._run = await requestAPI<IRun>(runEndpoint(this._run), {}, this.serverSettings);
      this._error = '';
    } catch (error) {
      this._error = (error as Error).message;
      this._draw();
      throw error; // rejected ticks make the Poll back off
    }
    this._draw();
    if (isFinished(this._run.state)) {
      const message = trans.__('%1 finished: %2', this._title(), this._run.state);
      if (this._run.state === 'success') {
        Notification.success(message, { autoClose: 5000 });
      } else {
        Notification.error(message, { autoClose: false });
      }
      this._poll?.dispose();
      this._poll = null;
    }
  }

  private _title(): string {
    const run = this._run!;
    return run.kind === 'kedro' ? `kedro ${run.pipeline} / ${run.run_id}` : `${run.dag_id} / ${run.run_id}`;
  }

  private _draw(): void {
    const run = this._run!;
    const links = Object.entries(run.links).map(([name, url]) =>
      h('a', { href: url, target: '_blank', rel: 'noopener', class: 'jp-Conveyor-link' }, name)
    );
    const done = progress(run);
    const tasks = run.tasks.map(t =>
      h('li', { 'data-task': t.task_id }, badge(t.state), ' ', t.task_id)
    );
    this.node.replaceChildren(
      h(
        'div',
        {},
        h(
        'div',
        { class: 'jp-Conveyor-run-header' },
        h('b', {}, this._title()),
        ' ',
        badge(run.state),
        done ? h('span', { class: 'jp-Conveyor-progress' }, ` ${done}`) : null,
        ' ',
        ...links
      ),
      run.message ? h('div', { class: 'jp-Conveyor-message' }, run.message) : null,
      this._error ? h('div', { class: 'jp-Conveyor-error' }, this._error) : null,
      tasks.length ? h('ul', { class: 'jp-Conveyor-tasks' }, ...tasks) : null
      )
    );
  }

  private _run: IRun | null = null;
  private _poll: Poll | null = null;
  private _error = '';
}

export function rendererFactory(
  serverSettings: ServerConnection.ISettings,
  translator: ITranslator,
  interval: () => number
): IRenderMime.IRendererFactory {
  return {
    safe: true,
    mimeTypes: [RUN_MIME],
    defaultRank: 50,
    createRenderer: options => new RunRenderer(options.mimeType, serverSettings, translator, interval())
  };
}
