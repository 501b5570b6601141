/** A tiny element builder: the panel is small enough not to need React. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string | null | undefined)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'class') {
      el.className = value;
    } else {
      el.setAttribute(key, value);
    }
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      el.append(typeof child === 'string' ? document.createTextNode(child) : child);
    }
  }
  return el;
}

export function badge(state: string | null | undefined): HTMLElement {
  const s = state || 'none';
  return h('span', { class: `jp-Conveyor-state jp-Conveyor-state-${s}`, 'data-state': s }, s);
}

export function button(label: string, onClick: () => void, attrs: Record<string, string> = {}): HTMLButtonElement {
  const el = h('button', { class: 'jp-Button jp-mod-styled jp-Conveyor-button', ...attrs }, label);
  el.addEventListener('click', onClick);
  return el;
}
