import type { ViewProps } from '../app.tsx';

// Placeholder while the view is built on its own branch (issue 14).
export function JobsView(_props: ViewProps) {
  return <h1>Jobs</h1>;
}

export function JobView(_props: ViewProps) {
  return <h1>Jobs</h1>;
}
