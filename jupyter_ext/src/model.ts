/**
 * Pure logic of the panel and the renderer (no JupyterLab imports, so it is unit-tested in Node):
 * run states, the trigger form built from Airflow DAG params, and conf assembly with errors that
 * name the field.
 */

export const RUN_MIME = 'application/vnd.conveyor.run+json';

export interface ITask {
  task_id: string;
  state: string | null;
  try_number: number;
  start_date?: string | null;
  end_date?: string | null;
  link?: string;
}

export interface IApproval {
  dag_id: string;
  run_id: string;
  task_id: string;
  subject: string;
  body: string;
  options: string[];
}

export interface IRun {
  kind: 'airflow' | 'kedro';
  run_id: string;
  dag_id: string;
  pipeline: string;
  state: string;
  logical_date?: string | null;
  start_date?: string | null;
  end_date?: string | null;
  conf: Record<string, unknown>;
  tasks: ITask[];
  links: Record<string, string>;
  approvals: IApproval[];
  message: string;
}

export interface IParamSpec {
  default: unknown;
  schema: Record<string, any>;
  description: string | null;
}

const TERMINAL = new Set(['success', 'failed', 'upstream_failed', 'skipped', 'removed']);

export function isFinished(state: string | null | undefined): boolean {
  return !!state && TERMINAL.has(state);
}

/** Where the renderer and panel poll for a run: Airflow runs and local Kedro jobs differ. */
export function runEndpoint(run: Pick<IRun, 'kind' | 'dag_id' | 'run_id'>): string {
  if (run.kind === 'kedro') {
    return `kedro/${encodeURIComponent(run.run_id)}`;
  }
  return `runs/${encodeURIComponent(run.dag_id)}/${encodeURIComponent(run.run_id)}`;
}

export function progress(run: IRun): string {
  if (!run.tasks.length) {
    return '';
  }
  const done = run.tasks.filter(t => isFinished(t.state)).length;
  return `${done}/${run.tasks.length}`;
}

export type FieldKind = 'string' | 'integer' | 'number' | 'boolean' | 'enum' | 'json';

export interface IField {
  name: string;
  kind: FieldKind;
  label: string;
  description: string;
  options: string[];
  required: boolean;
  initial: string;
}

function primaryType(schema: Record<string, any>): string | undefined {
  const t = schema.type;
  if (Array.isArray(t)) {
    return t.find((x: string) => x !== 'null');
  }
  return t;
}

function allowsNull(schema: Record<string, any>): boolean {
  const t = schema.type;
  return t === 'null' || (Array.isArray(t) && t.includes('null'));
}

/** One form field per DAG param, in the DAG's order, typed from the param's JSON schema. */
export function paramFields(params: Record<string, IParamSpec>): IField[] {
  return Object.entries(params).map(([name, spec]) => {
    const schema = spec.schema || {};
    const type = primaryType(schema);
    let kind: FieldKind = 'string';
    if (Array.isArray(schema.enum)) {
      kind = 'enum';
    } else if (type === 'integer' || type === 'number' || type === 'boolean') {
      kind = type;
    } else if (type === 'object' || type === 'array') {
      kind = 'json';
    } else if (type === undefined && spec.default !== null && typeof spec.default === 'object') {
      kind = 'json';
    }
    const initial =
      spec.default === null || spec.default === undefined
        ? ''
        : kind === 'json'
          ? JSON.stringify(spec.default)
          : String(spec.default);
    return {
      name,
      kind,
      label: schema.title || name,
      description: spec.description || schema.description || '',
      options: kind === 'enum' ? schema.enum.map(String) : [],
      required: (spec.default === null || spec.default === undefined) && !allowsNull(schema),
      initial
    };
  });
}

export interface IConfResult {
  conf: Record<string, unknown>;
  errors: Record<string, string>;
}

/**
 * Turn the form's strings into a conf. Fields left at their default are omitted, so the DAG's
 * own default applies; the server validates the result against the schema once more.
 */
export function buildConf(fields: IField[], values: Record<string, string>): IConfResult {
  const conf: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  for (const field of fields) {
    const raw = values[field.name] ?? field.initial;
    if (raw === field.initial && raw !== '') {
      continue;
    }
    if (raw === '') {
      if (field.required) {
        errors[field.name] = `${field.name} is required`;
      }
      continue;
    }
    switch (field.kind) {
      case 'integer': {
        if (!/^-?\d+$/.test(raw.trim())) {
          errors[field.name] = `${field.name} must be an integer`;
        } else {
          conf[field.name] = parseInt(raw, 10);
        }
        break;
      }
      case 'number': {
        const value = Number(raw);
        if (raw.trim() === '' || Number.isNaN(value)) {
          errors[field.name] = `${field.name} must be a number`;
        } else {
          conf[field.name] = value;
        }
        break;
      }
      case 'boolean':
        conf[field.name] = raw === 'true';
        break;
      case 'json':
        try {
          conf[field.name] = JSON.parse(raw);
        } catch {
          errors[field.name] = `${field.name} must be valid JSON`;
        }
        break;
      default:
        conf[field.name] = raw;
    }
  }
  return { conf, errors };
}

/** Runs whose state changed to finished since the last poll: the ones to toast about. */
export function newlyFinished(before: Map<string, string>, runs: IRun[]): IRun[] {
  return runs.filter(run => {
    const key = `${run.dag_id}/${run.run_id}`;
    const previous = before.get(key);
    return previous !== undefined && !isFinished(previous) && isFinished(run.state);
  });
}
