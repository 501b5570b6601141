import { describe, expect, it } from 'vitest';

import {
  buildConf,
  IRun,
  isFinished,
  newlyFinished,
  paramFields,
  progress,
  runEndpoint
} from '../model';

// Params as Airflow's GET /api/v2/dags/{id}/details returns them, after the server's param_specs().
const PARAMS = {
  partition: { default: '2013-01', schema: { type: 'string', description: 'month' }, description: 'month' },
  epochs: { default: 3, schema: { type: 'integer', minimum: 1 }, description: null },
  lr: { default: 0.01, schema: { type: 'number' }, description: null },
  auto_approve: { default: false, schema: { type: 'boolean' }, description: null },
  strategy: { default: 'canary', schema: { type: 'string', enum: ['canary', 'blue_green', 'shadow'] }, description: null },
  thresholds: { default: { auc: 0.6 }, schema: { type: 'object' }, description: null },
  reason: { default: null, schema: { type: ['null', 'string'] }, description: null },
  owner: { default: null, schema: { type: 'string' }, description: null }
};

function run(state: string, id = 'r1', tasks: IRun['tasks'] = []): IRun {
  return {
    kind: 'airflow',
    run_id: id,
    dag_id: 'ml_ci',
    pipeline: '',
    state,
    conf: {},
    tasks,
    links: {},
    approvals: [],
    message: ''
  };
}

describe('paramFields', () => {
  const fields = paramFields(PARAMS);
  const byName = Object.fromEntries(fields.map(f => [f.name, f]));

  it('keeps the DAG order and types each field from its schema', () => {
    expect(fields.map(f => f.name)).toEqual(Object.keys(PARAMS));
    expect(byName.epochs.kind).toBe('integer');
    expect(byName.lr.kind).toBe('number');
    expect(byName.auto_approve.kind).toBe('boolean');
    expect(byName.strategy.kind).toBe('enum');
    expect(byName.strategy.options).toEqual(['canary', 'blue_green', 'shadow']);
    expect(byName.thresholds.kind).toBe('json');
    expect(byName.thresholds.initial).toBe('{"auc":0.6}');
  });

  it('marks only params without default that do not allow null as required', () => {
    expect(byName.owner.required).toBe(true);
    expect(byName.reason.required).toBe(false);
    expect(byName.epochs.required).toBe(false);
    expect(byName.reason.kind).toBe('string');
  });
});

describe('buildConf', () => {
  const fields = paramFields(PARAMS);

  it('omits untouched defaults so the DAG default applies, converts edited values', () => {
    const { conf, errors } = buildConf(fields, {
      epochs: '5',
      lr: '0.1',
      auto_approve: 'true',
      owner: 'ana',
      thresholds: '{"auc": 0.7}'
    });
    expect(errors).toEqual({});
    expect(conf).toEqual({ epochs: 5, lr: 0.1, auto_approve: true, owner: 'ana', thresholds: { auc: 0.7 } });
  });

  it('names the field for each bad value and for a missing required one', () => {
    const { errors } = buildConf(fields, { epochs: '2.5', lr: 'fast', thresholds: '{oops' });
    expect(errors.epochs).toBe('epochs must be an integer');
    expect(errors.lr).toBe('lr must be a number');
    expect(errors.thresholds).toBe('thresholds must be valid JSON');
    expect(errors.owner).toBe('owner is required');
  });
});

describe('run states', () => {
  it('knows which states are final', () => {
    expect(isFinished('success')).toBe(true);
    expect(isFinished('failed')).toBe(true);
    expect(isFinished('running')).toBe(false);
    expect(isFinished('queued')).toBe(false);
    expect(isFinished(null)).toBe(false);
  });

  it('reports finished tasks over all tasks', () => {
    const r = run('running', 'r1', [
      { task_id: 'a', state: 'success', try_number: 1 },
      { task_id: 'b', state: 'running', try_number: 1 },
      { task_id: 'c', state: null, try_number: 0 }
    ]);
    expect(progress(r)).toBe('1/3');
    expect(progress(run('queued'))).toBe('');
  });

  it('toasts only runs seen unfinished that are now finished', () => {
    const before = new Map([
      ['ml_ci/r1', 'running'],
      ['ml_ci/r2', 'success'],
      ['ml_ci/r3', 'running']
    ]);
    const after = [run('success', 'r1'), run('success', 'r2'), run('running', 'r3'), run('failed', 'r4')];
    expect(newlyFinished(before, after).map(r => r.run_id)).toEqual(['r1']);
  });

  it('polls Airflow runs and local Kedro jobs at their own endpoints, run ids encoded', () => {
    expect(runEndpoint({ kind: 'airflow', dag_id: 'ml_ci', run_id: 'manual__2026-01-01T00:00:00+00:00' })).toBe(
      'runs/ml_ci/manual__2026-01-01T00%3A00%3A00%2B00%3A00'
    );
    expect(runEndpoint({ kind: 'kedro', dag_id: '', run_id: '20260101T000000-abc' })).toBe(
      'kedro/20260101T000000-abc'
    );
  });
});
