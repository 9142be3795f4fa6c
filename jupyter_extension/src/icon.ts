/** The sidebar icon (a small cluster of nodes), themed through jp-icon classes. */

export const JUNO_ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <circle cx="12" cy="5" r="3"/>
    <circle cx="5" cy="18" r="3"/>
    <circle cx="19" cy="18" r="3"/>
    <path d="M11 7.5h2v4.2l4.9 3.6-1.2 1.6L12 13.5l-4.7 3.4-1.2-1.6L11 11.7z"/>
  </g>
</svg>`;
