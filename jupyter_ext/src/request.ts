import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/**
 * Call the Conveyor server extension. Errors carry the server's own message (which service
 * failed and why), so the panel can show it as is.
 */
export async function requestAPI<T>(
  endPoint: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, 'conveyor', endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: any = text;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
  }
  if (!response.ok) {
    throw new ServerConnection.ResponseError(response, data?.message || String(data));
  }
  return data as T;
}

/** Binary endpoints (drift plots): fetched with the session's credentials, shown via object URLs. */
export async function requestBlob(
  endPoint: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<Blob> {
  const url = URLExt.join(settings.baseUrl, 'conveyor', endPoint);
  const response = await ServerConnection.makeRequest(url, {}, settings);
  if (!response.ok) {
    throw new ServerConnection.ResponseError(response, await response.text());
  }
  return response.blob();
}

export function runPath(dagId: string, runId: string): string {
  return `runs/${encodeURIComponent(dagId)}/${encodeURIComponent(runId)}`;
}
