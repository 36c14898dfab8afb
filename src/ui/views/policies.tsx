import type { ViewProps } from '../app.tsx';

// Placeholder while the view is built on its own branch (issue 14).
export function PoliciesView(_props: ViewProps) {
  return <h1>Policies</h1>;
}

export function PolicyView(_props: ViewProps) {
  return <h1>Policies</h1>;
}
