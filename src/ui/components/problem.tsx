import { explain } from '../api.ts';

/** An API failure, said in words (401/403 explained), announced to screen readers. */
export function ProblemBanner({ error }: { error: unknown }) {
  if (error === null || error === undefined) return null;
  return (
    <p role="alert" class="problem">
      {explain(error)}
    </p>
  );
}
