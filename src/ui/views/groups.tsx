import type { ViewProps } from '../app.tsx';

// Placeholder while the view is built on its own branch (issue 14).
export function GroupsView(_props: ViewProps) {
  return <h1>Groups</h1>;
}

export function GroupView(_props: ViewProps) {
  return <h1>Groups</h1>;
}
