// Types of file-lock.mjs (plain JavaScript: the VirtualBox simulator imports it under bare node).
export declare const BREAKER_STALE_MS: number;
export declare function processAlive(pid: number): boolean;
export declare function lockOwner(path: string): number | undefined;
export declare function tryLock(path: string): boolean;
export declare function breakStale(path: string, deadOwner: number): void;
export declare function unlock(path: string): void;
