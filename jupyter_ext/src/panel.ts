import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';
import { ITranslator, nullTranslator, TranslationBundle } from '@jupyterlab/translation';
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { badge, button, h } from './dom';
import { buildConf, IField, IParamSpec, IRun, isFinished, newlyFinished, paramFields, progress } from './model';
import { requestAPI, requestBlob, runPath } from './request';

interface IDag {
  dag_id: string;
  is_paused: boolean;
  description: string | null;
  tags: string[];
}

type Tab = 'runs' | 'models' | 'drift';

/**
 * The Conveyor side panel: DAGs, recent runs with live status, run detail (tasks, logs, links,
 * cancel, approve), a trigger form generated from the DAG's params, the model registry and drift.
 * One Poll refreshes runs and the open run; it idles while the panel or the tab is hidden and
 * backs off while the server extension reports errors.
 */
export class ConveyorPanel extends Widget {
  constructor(
    private readonly serverSettings: ServerConnection.ISettings = ServerConnection.makeSettings(),
    translator: ITranslator = nullTranslator,
    interval = 3000,
    private readonly modelName = ''
  ) {
    super();
    this.id = 'conveyor-panel';
    this.addClass('jp-Conveyor-panel');
    this.trans = translator.load('conveyor');
    this.title.caption = this.trans.__('Conveyor');
    this._poll = new Poll({
      factory: () => this._tick(),
      frequency: { interval, backoff: true, max: 60_000 },
      standby: () => !this.isVisible || 'when-hidden',
      name: 'conveyor:panel'
    });
    this._draw();
  }

  dispose(): void {
    this._poll.dispose();
    super.dispose();
  }

  /** Refresh now (after an action) instead of waiting for the next tick. */
  refresh(): Promise<void> {
    return this._poll.refresh();
  }

  protected onAfterShow(): void {
    void this._poll.refresh();
  }

  private async _tick(): Promise<void> {
    try {
      const [dags, runs] = await Promise.all([
        requestAPI<{ dags: IDag[] }>('dags', {}, this.serverSettings),
        requestAPI<{ runs: IRun[] }>('runs?limit=15', {}, this.serverSettings)
      ]);
      this._dags = dags.dags;
      this._notify(runs.runs);
      this._runs = runs.runs;
      if (this._selected) {
        this._selected = await requestAPI<IRun>(
          runPath(this._selected.dag_id, this._selected.run_id),
          {},
          this.serverSettings
        );
      }
      this._error = '';
    } catch (error) {
      this._error = (error as Error).message;
      this._draw();
      throw error;
    }
    this._draw();
  }

  private _notify(runs: IRun[]): void {
    for (const run of newlyFinished(this._states, runs)) {
      const message = this.trans.__('%1 / %2 finished: %3', run.dag_id, run.run_id, run.state);
      if (run.state === 'success') {
        Notification.success(message, { autoClose: 5000 });
      } else {
        Notification.error(message, { autoClose: false });
      }
    }
    this._states = new Map(runs.map(r => [`${r.dag_id}/${r.run_id}`, r.state]));
  }

  private _draw(): void {
    const tabs = (['runs', 'models', 'drift'] as Tab[]).map(tab =>
      button(this.trans.__(tab), () => this._show(tab), {
        'data-tab': tab,
        class: `jp-Button jp-mod-styled jp-Conveyor-tab${this._tab === tab ? ' jp-mod-active' : ''}`
      })
    );
    const body = this._tab === 'runs' ? this._runsView() : this._tab === 'models' ? this._modelsNode : this._driftNode;
    this.node.replaceChildren(
      h(
        'div',
        {},
        h('div', { class: 'jp-Conveyor-header' }, h('h2', {}, this.trans.__('Conveyor')), ...tabs),
        this._error ? h('div', { class: 'jp-Conveyor-error', 'data-testid': 'conveyor-error' }, this._error) : null,
        body
      )
    );
  }

  private _show(tab: Tab): void {
    this._tab = tab;
    if (tab === 'models' && !this._modelsNode.childElementCount) {
      void this._withModel(this._modelsNode, name => this._loadModels(name));
    }
    if (tab === 'drift' && !this._driftNode.childElementCount) {
      void this._withModel(this._driftNode, name => this._loadDrift(name));
    }
    this._draw();
  }

  /**
   * The model the views show: the ``modelName`` setting, else the model of the Kedro project the
   * server is configured with (``CONVEYOR_KEDRO_PROJECT``, its conveyor.yml); no name is guessed.
   */
  private async _withModel(node: HTMLElement, load: (name: string) => Promise<void>): Promise<void> {
    let name = this.modelName;
    if (!name) {
      try {
        name = (await requestAPI<{ model_name: string }>('config', {}, this.serverSettings)).model_name;
      } catch (error) {
        node.replaceChildren(h('div', { class: 'jp-Conveyor-error' }, (error as Error).message));
        this._draw();
        return;
      }
    }
    if (!name) {
      node.replaceChildren(
        h(
          'div',
          { class: 'jp-Conveyor-error' },
          this.trans.__(
            'No model to show: set "Registered model" in the Conveyor settings, or start the server with CONVEYOR_KEDRO_PROJECT pointing at a project with conf/base/conveyor.yml.'
          )
        )
      );
      this._draw();
      return;
    }
    await load(name);
  }

  // --- runs -------------------------------------------------------------------------------
  private _runsView(): HTMLElement {
    const dags = h(
      'ul',
      { class: 'jp-Conveyor-dags' },
      ...this._dags.map(d =>
        h(
          'li',
          { 'data-dag': d.dag_id },
          h('span', { class: 'jp-Conveyor-dag-id' }, d.dag_id),
          d.is_paused ? h('span', { class: 'jp-Conveyor-paused' }, this.trans.__(' (paused)')) : null,
          ' ',
          button(this.trans.__('Trigger…'), () => void this._openForm(d.dag_id), {
            'data-action': 'open-trigger'
          })
        )
      )
    );
    const runs = h(
      'table',
      { class: 'jp-Conveyor-runs' },
      ...this._runs.map(r => {
        const row = h(
          'tr',
          { 'data-run': `${r.dag_id}/${r.run_id}`, class: 'jp-Conveyor-run-row' },
          h('td', {}, r.dag_id),
          h('td', {}, r.run_id),
          h('td', {}, badge(r.state))
        );
        row.addEventListener('click', () => this._select(r));
        return row;
      })
    );
    return h(
      'div',
      { class: 'jp-Conveyor-runs-view' },
      h('h3', {}, this.trans.__('DAGs')),
      dags,
      this._formNode,
      h('h3', {}, this.trans.__('Recent runs')),
      runs,
      this._selected ? this._detail(this._selected) : null
    );
  }

  private _select(run: IRun): void {
    this._selected = run;
    this._log = null;
    this._draw();
    void this._poll.refresh();
  }

  private async _openForm(dagId: string): Promise<void> {
    try {
      const dag = await requestAPI<{ params: Record<string, IParamSpec> }>(
        `dags/${encodeURIComponent(dagId)}`,
        {},
        this.serverSettings
      );
      this._renderForm(dagId, paramFields(dag.params));
    } catch (error) {
      this._error = (error as Error).message;
      this._draw();
    }
  }

  private _renderForm(dagId: string, fields: IField[]): void {
    const inputs = new Map<string, HTMLInputElement | HTMLSelectElement>();
    const errors = new Map<string, HTMLElement>();
    const rows = fields.map(field => {
      let input: HTMLInputElement | HTMLSelectElement;
      if (field.kind === 'enum' || field.kind === 'boolean') {
        const options = field.kind === 'boolean' ? ['true', 'false'] : field.options;
        input = h('select', {}, ...options.map(o => h('option', { value: o }, o)));
        input.value = field.initial || options[0];
      } else {
        input = h('input', { type: field.kind === 'integer' || field.kind === 'number' ? 'number' : 'text' });
        if (field.kind === 'number') {
          input.setAttribute('step', 'any');
        }
        input.value = field.initial;
      }
      input.setAttribute('name', field.name);
      input.setAttribute('data-param', field.name);
      inputs.set(field.name, input);
      const error = h('div', { class: 'jp-Conveyor-field-error' });
      errors.set(field.name, error);
      return h(
        'label',
        { class: 'jp-Conveyor-field' },
        h('span', {}, field.label + (field.required ? ' *' : '')),
        input,
        field.description ? h('small', {}, field.description) : null,
        error
      );
    });
    const status = h('div', { class: 'jp-Conveyor-form-status' });
    const submit = async () => {
      const values: Record<string, string> = {};
      inputs.forEach((input, name) => (values[name] = input.value));
      const { conf, errors: fieldErrors } = buildConf(fields, values);
      errors.forEach((el, name) => (el.textContent = fieldErrors[name] || ''));
      if (Object.keys(fieldErrors).length) {
        return;
      }
      try {
        const run = await requestAPI<IRun>(
          `dags/${encodeURIComponent(dagId)}/runs`,
          { method: 'POST', body: JSON.stringify({ conf }) },
          this.serverSettings
        );
        Notification.info(this.trans.__('Triggered %1 / %2', run.dag_id, run.run_id), { autoClose: 4000 });
        this._formNode.replaceChildren();
        this._states.set(`${run.dag_id}/${run.run_id}`, run.state);
        this._select(run);
      } catch (error) {
        status.textContent = (error as Error).message;
      }
    };
    this._formNode.replaceChildren(
      h(
        'form',
        { class: 'jp-Conveyor-form', 'data-dag': dagId },
        h('h3', {}, this.trans.__('Trigger %1', dagId)),
        ...rows,
        status,
        button(this.trans.__('Trigger'), () => void submit(), { type: 'button', 'data-action': 'trigger' }),
        button(this.trans.__('Close'), () => this._formNode.replaceChildren(), { type: 'button' })
      )
    );
    this._draw();
  }

  private _detail(run: IRun): HTMLElement {
    const tasks = run.tasks.map(t =>
      h(
        'li',
        { 'data-task': t.task_id },
        badge(t.state),
        ' ',
        t.task_id,
        ' ',
        button(this.trans.__('Logs'), () => void this._openLog(run, t.task_id), { 'data-action': 'logs' })
      )
    );
    const approvals = run.approvals.map(a =>
      h(
        'div',
        { class: 'jp-Conveyor-approval', 'data-approval': a.task_id },
        h('b', {}, a.subject || a.task_id),
        a.body ? h('p', {}, a.body) : null,
        button(this.trans.__('Approve'), () => void this._answer(run, a.task_id, true), {
          'data-action': 'approve'
        }),
        button(this.trans.__('Reject'), () => void this._answer(run, a.task_id, false), {
          'data-action': 'reject'
        })
      )
    );
    const links = Object.entries(run.links).map(([name, url]) =>
      h('a', { href: url, target: '_blank', rel: 'noopener', class: 'jp-Conveyor-link' }, name)
    );
    return h(
      'div',
      { class: 'jp-Conveyor-detail', 'data-run': `${run.dag_id}/${run.run_id}`, 'data-state': run.state },
      h('h3', {}, `${run.dag_id} / ${run.run_id} `, badge(run.state), ` ${progress(run)}`),
      h('div', {}, ...links),
      run.message ? h('div', { class: 'jp-Conveyor-message' }, run.message) : null,
      ...approvals,
      h('ul', { class: 'jp-Conveyor-tasks' }, ...tasks),
      isFinished(run.state)
        ? null
        : button(this.trans.__('Cancel run'), () => void this._cancel(run), { 'data-action': 'cancel' }),
      this._log
    );
  }

  private async _openLog(run: IRun, taskId: string): Promise<void> {
    try {
      const log = await requestAPI<{ text: string; try_number: number }>(
        `${runPath(run.dag_id, run.run_id)}/tasks/${encodeURIComponent(taskId)}/logs`,
        {},
        this.serverSettings
      );
      this._log = h(
        'div',
        { class: 'jp-Conveyor-log', 'data-log': taskId },
        h('h4', {}, this.trans.__('%1 (try %2)', taskId, log.try_number)),
        h('pre', {}, log.text)
      );
    } catch (error) {
      this._log = h('div', { class: 'jp-Conveyor-error' }, (error as Error).message);
    }
    this._draw();
  }

  private async _confirm(title: string, body: string, label: string): Promise<boolean> {
    const result = await showDialog({
      title,
      body,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label })]
    });
    return result.button.accept;
  }

  private async _cancel(run: IRun): Promise<void> {
    const ok = await this._confirm(
      this.trans.__('Cancel run?'),
      this.trans.__('Mark %1 / %2 as failed and stop its running tasks?', run.dag_id, run.run_id),
      this.trans.__('Cancel run')
    );
    if (!ok) {
      return;
    }
    try {
      await requestAPI(`${runPath(run.dag_id, run.run_id)}/cancel`, { method: 'POST' }, this.serverSettings);
    } catch (error) {
      Notification.error((error as Error).message);
    }
    await this._poll.refresh();
  }

  private async _answer(run: IRun, taskId: string, approve: boolean): Promise<void> {
    const verb = approve ? this.trans.__('Approve') : this.trans.__('Reject');
    const ok = await this._confirm(
      this.trans.__('%1 %2?', verb, taskId),
      this.trans.__('%1 the pending approval %2 of %3 / %4?', verb, taskId, run.dag_id, run.run_id),
      verb
    );
    if (!ok) {
      return;
    }
    try {
      await requestAPI(
        `${runPath(run.dag_id, run.run_id)}/approve`,
        { method: 'POST', body: JSON.stringify({ task_id: taskId, approve }) },
        this.serverSettings
      );
      Notification.success(this.trans.__('%1: %2', taskId, approve ? 'approved' : 'rejected'), {
        autoClose: 4000
      });
    } catch (error) {
      Notification.error((error as Error).message);
    }
    await this._poll.refresh();
  }

  // --- models and drift ---------------------------------------------------------------------
  private async _loadModels(name: string): Promise<void> {
    const node = this._modelsNode;
    try {
      const s = await requestAPI<any>(`models/${encodeURIComponent(name)}`, {}, this.serverSettings);
      const versions = h(
        'table',
        { class: 'jp-Conveyor-versions' },
        h('tr', {}, ...['version', 'aliases', 'gate', 'metrics', 'task'].map(c => h('th', {}, this.trans.__(c)))),
        ...s.versions.map((v: any) =>
          h(
            'tr',
            { 'data-version': v.version },
            h('td', {}, v.version),
            h('td', {}, v.aliases.join(', ')),
            h('td', {}, v.gate.status || ''),
            h(
              'td',
              {},
              Object.entries(v.metrics)
                .map(([k, m]) => `${k}=${Number(m).toPrecision(4)}`)
                .join(', ')
            ),
            // The version's own contract says what its numbers mean; none: registered without one.
            h('td', { class: 'jp-Conveyor-task' }, v.contract ? v.contract.task || v.contract.error : '–')
          )
        )
      );
      const fmt = (x: number | null) => (x === null || x === undefined ? '–' : Number(x).toPrecision(4));
      const comparison = h(
        'table',
        { class: 'jp-Conveyor-comparison' },
        h('tr', {}, ...['metric', 'champion', 'challenger', 'Δ'].map(c => h('th', {}, this.trans.__(c)))),
        ...s.comparison.map((c: any) =>
          h(
            'tr',
            { 'data-metric': c.metric },
            h('td', {}, c.metric),
            h('td', {}, fmt(c.champion)),
            h('td', {}, fmt(c.challenger)),
            h('td', improvement(c), fmt(c.delta))
          )
        )
      );
      node.replaceChildren(
        h('h3', {}, s.name),
        versions,
        h('h4', {}, this.trans.__('Champion vs challenger')),
        comparison
      );
    } catch (error) {
      node.replaceChildren(h('div', { class: 'jp-Conveyor-error' }, (error as Error).message));
    }
    this._draw();
  }

  private async _loadDrift(name: string): Promise<void> {
    const node = this._driftNode;
    try {
      const d = await requestAPI<any>(`drift/${encodeURIComponent(name)}`, {}, this.serverSettings);
      const images = await Promise.all(
        d.plots.map(async (path: string) => {
          const blob = await requestBlob(
            `artifacts/${encodeURIComponent(d.run_id)}?path=${encodeURIComponent(path)}`,
            this.serverSettings
          );
          return h('img', { src: URL.createObjectURL(blob), alt: path, class: 'jp-Conveyor-plot' });
        })
      );
      node.replaceChildren(
        h('h3', {}, this.trans.__('Drift of %1', name)),
        h('pre', { class: 'jp-Conveyor-drift-report' }, JSON.stringify(d.report, null, 2)),
        ...images
      );
    } catch (error) {
      node.replaceChildren(h('div', { class: 'jp-Conveyor-error' }, (error as Error).message));
    }
    this._draw();
  }

  private readonly trans: TranslationBundle;
  private readonly _poll: Poll;
  private _tab: Tab = 'runs';
  private _dags: IDag[] = [];
  private _runs: IRun[] = [];
  private _states = new Map<string, string>();
  private _selected: IRun | null = null;
  private _log: HTMLElement | null = null;
  private _error = '';
  private readonly _formNode = h('div', { class: 'jp-Conveyor-form-holder' });
  private readonly _modelsNode = h('div', { class: 'jp-Conveyor-models' });
  private readonly _driftNode = h('div', { class: 'jp-Conveyor-drift' });
}

/** Whether a champion-to-challenger change is good news, by the metric's direction (RMSE falls). */
function improvement(c: { delta: number | null; higher_is_better: boolean | null }): Record<string, string> {
  if (c.delta === null || c.delta === undefined || c.higher_is_better === null || c.higher_is_better === undefined) {
    return {};
  }
  if (c.delta === 0) {
    return { 'data-better': 'same' };
  }
  return { 'data-better': String(c.delta > 0 === c.higher_is_better) };
}
