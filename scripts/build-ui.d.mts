/** Builds the web console into .build/ui-<hash>/ (or under `buildDir`) and returns that folder. */
export function buildUi(options?: { buildDir?: string }): Promise<string>;
