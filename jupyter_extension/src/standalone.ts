/**
 * Entry of the standalone dashboard page served by the head node
 * (`/`, API at same-origin `/api/...`, auth by the cookie the server set).
 */

import { buildEventsUrl, JunoApi, JunoApiError } from './api';
import { DashboardController } from './controller';
import { ConnectionHeader } from './views/connection';
import { DashboardView } from './views/dashboard';
import css from '../style/base.css';

/** The page's directory, so the dashboard also works behind a path prefix. */
function pageBase(): string {
  return new URL('.', window.location.href).pathname;
}

function start(): void {
  const style = document.createElement('style');
  style.textContent = css;
  document.head.appendChild(style);

  const base = pageBase();
  const api = new JunoApi({
    baseUrl: base,
    prefix: 'api',
    fetcher: (url, init) => fetch(url, { ...init, credentials: 'same-origin' })
  });
  const wsBase = `${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.host}${base}`;
  const controller = new DashboardController({
    api,
    eventsUrl: () => buildEventsUrl(wsBase, 'api'),
    createSocket: url => new WebSocket(url)
  });
  const header = new ConnectionHeader(controller.model, null);
  const view = new DashboardView(controller, header.node);
  const root = document.getElementById('juno-sidebar') ?? document.body;
  root.replaceChildren(view.node);

  controller.watch(null, true);
  // The first answer tells whether the token was accepted (a websocket can't say why it was refused).
  api.summary().then(
    summary => {
      controller.model.setAddress(summary.address);
      controller.model.applyUpdate({ summary });
    },
    (err: JunoApiError) => {
      if (err.status === 401 || err.status === 403) {
        // Retrying can't help: say how to log in instead of "reconnecting".
        controller.stream.stop();
        controller.model.setLink('unauthorized', err.message);
      } else {
        header.setSource(null, err.message);
      }
    }
  );
  document.addEventListener('visibilitychange', () => controller.setVisible(!document.hidden));
  controller.setVisible(!document.hidden);
}

if (document.readyState === 'loading') {
  document.addEventListener('DOMContentLoaded', start);
} else {
  start();
}
